/* request.c — a completion request's lifetime (see request.h). */
#include "request.h"

#include <stdlib.h>
#include <string.h>

request *request_new(void)
{
    request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->gen = gen_default_params();
    r->cache_prompt = true;
    r->slot = -1;
    r->refs = 1;
    atomic_init(&r->cancelled, false);
    return r;
}

static void request_free(request *r)
{
    free(r->prompt);
    for (int32_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    free(r->bias_token);
    free(r->bias_value);
    textbuf_free(&r->text);
    textbuf_free(&r->all_text);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void request_release(request *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left == 0) request_free(r);
}

bool request_add_stop(request *r, const char *s)
{
    char **grown = realloc(r->stops, (size_t)(r->n_stops + 1) * sizeof *grown);
    if (!grown) return false;
    r->stops = grown;
    if (!(r->stops[r->n_stops] = strdup(s))) return false;
    r->n_stops++;
    r->gen.stop = (const char *const *)r->stops;
    r->gen.n_stop = r->n_stops;
    return true;
}
