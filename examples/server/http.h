/*
 * http.h — the HTTP side on libmicrohttpd: routes, bodies, the API key,
 * and the answers (whole or streamed as Server-Sent Events).  One thread
 * per connection, so a streaming answer can wait for the engine's text.
 */
#ifndef KINFER_SERVER_HTTP_H
#define KINFER_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

typedef struct http_server http_server;

/* Listen on srv->opt.host:port and serve; routes answer 503 until
 * srv->ready.  NULL with the reason in err. */
http_server *http_start(server *srv, char *err, size_t err_size);
/* Stop accepting connections; those open go on. */
void http_quiesce(http_server *h);
/* Close everything (waits for the connection threads) and free. */
void http_stop(http_server *h);
/* The port actually bound (useful with --port 0). */
int http_port(const http_server *h);

#endif
