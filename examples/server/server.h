/*
 * server.h — what the server's parts share: the loaded model, the options
 * from the command line, the engine and the metrics.  Read-only after start
 * (ready flips once, when the model and engine exist).
 */
#ifndef KINFER_SERVER_SERVER_H
#define KINFER_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "metrics.h"

#define KINFER_SERVER_VERSION "0.1.0"

typedef struct server_options {
    const char *model_path;
    const char *alias;          /* -a: the model name clients see */
    const char *host;
    int port;
    const char *api_key;        /* NULL = no authentication */
    const char *chat_template;  /* NULL = the model's */
    bool metrics_enabled;
    size_t max_body;            /* bytes of a request body */
    int32_t n_predict;          /* -n default; -1 = until the slot's context is full */
    float temperature;          /* --temp default */
    int64_t seed;               /* --seed default; -1 = random per request */
    engine_params engine;
} server_options;

typedef struct server {
    server_options opt;
    kinfer_model *model;        /* NULL until loaded */
    engine *engine;
    metrics metrics;
    atomic_bool ready;
    const char *template_used;  /* what kinfer_chat_apply_template gets (NULL = the model's) */
    int64_t created;            /* start time, the models' "created" */
} server;

#endif
