/*
 * server.h — what the server's parts share: the options from the command
 * line, the router (which owns the models and their engines), the metrics,
 * and `served`, one loaded model as the API mappings see it.
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

/* One model's settings: the flags' values, overridden per model by the
 * models directory's models.json. */
typedef struct model_opts {
    const char *chat_template;  /* NULL = the model's */
    int32_t n_predict;          /* -n default; -1 = until the slot's context is full */
    float temperature;          /* --temp default */
    int64_t seed;               /* --seed default; -1 = random per request */
    engine_params engine;
    int64_t keep_alive_ms;      /* kept loaded after its last request; < 0 = forever */
} model_opts;

/* A loaded model: what a request's parsing and answers read.  Immutable
 * while a request holds it (router_acquire .. router_release). */
typedef struct served {
    const char *alias;          /* the model name clients see */
    model_opts opt;
    kinfer_model *model;
    engine *engine;
    const char *template_used;  /* what kinfer_chat_apply_template gets (NULL = the model's) */
    int64_t created;            /* the models' "created" */
} served;

typedef struct server_options {
    const char *model_path;     /* -m: one model, loaded at start */
    const char *models_dir;     /* --models-dir: every *.gguf there, loaded on demand */
    const char *alias;          /* -a: the -m model's name */
    const char *host;
    int port;
    const char *api_key;        /* NULL = no authentication */
    bool metrics_enabled;
    size_t max_body;            /* bytes of a request body */
    model_opts model;           /* every model's defaults */
    uint64_t mem_budget;        /* bytes the loaded models may need in all (kinfer_model_estimate) */
    int32_t max_loaded;         /* models loaded at once; 0 = no cap */
} server_options;

struct router;

typedef struct server {
    server_options opt;
    _Atomic(struct router *) router;  /* set once the models of -m are loaded */
    metrics metrics;            /* requests by route (the engines count into their model's) */
    int64_t created;            /* start time */
} server;

#endif
