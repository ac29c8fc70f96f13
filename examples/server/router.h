/*
 * router.h — which models the server has and which are loaded.  A request
 * names its model; router_acquire loads it on demand (the requests that wait
 * for one model share its one load; loads run one at a time in the order
 * they were asked for) and holds it until router_release.  Each loaded model
 * has its own engine (context, slots, scheduler thread), so requests to two
 * models run at the same time.
 *
 * Memory: before a model's context is made, kinfer_model_estimate says what
 * it needs; while the loaded ones and it would pass the budget (or the
 * count cap), idle models are unloaded least recently used first.  A model
 * that requests hold is never unloaded under them: the load waits (and new
 * requests for that model wait behind it, first come first served).  After
 * its last request a model stays loaded for its keep_alive (Ollama's
 * meaning: 0 unloads at once, negative keeps it).
 *
 * The worker thread does the loads, the evictions and the keep_alive
 * expiries; HTTP threads only wait.  Thread-safe.
 */
#ifndef KINFER_SERVER_ROUTER_H
#define KINFER_SERVER_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/textbuf.h"
#include "oai.h"
#include "server.h"

typedef struct router router;

/* keep_alive of a request that did not set one: the model's own applies. */
#define KEEP_ALIVE_UNSET INT64_MIN

/* The models of srv->opt (-m, or --models-dir with its models.json), and the
 * worker.  With -m the model is loaded now (the caller sees the time).
 * NULL with the reason in err. */
router *router_new(server *srv, char *err, size_t err_size);
/* Cancel what every engine runs and stop them (later acquires fail). */
void router_stop(router *rt);
/* Stop, unload everything, free.  NULL is fine. */
void router_free(router *rt);

/* The model a request names (NULL or "": the only model, with -m), loaded
 * and held; *load_ns gets the time this request waited for a load (0 when
 * it was loaded).  NULL with *err: 404 for an unknown name, 400 when a name
 * is needed, 500 when its load failed (the reason), 503 when stopping. */
served *router_acquire(router *rt, const char *name, uint64_t *load_ns, api_error *err);
/* The model when it is loaded now (held: router_unhold it), else NULL; no
 * load, and the hold counts as no use. */
served *router_acquire_loaded(router *rt, const char *name);
void router_unhold(router *rt, served *sv);
/* Done with it.  keep_alive_ms: this request's keep_alive (KEEP_ALIVE_UNSET
 * = the model's own), counted from now once no request holds the model. */
void router_release(router *rt, served *sv, int64_t keep_alive_ms);

/* True once the models loaded at start are (with -m: the model). */
bool router_ready(router *rt);

/* What listings show of one model. */
typedef struct router_entry {
    char name[128];
    char path[512];
    uint64_t file_bytes;
    int64_t mtime;             /* the file's, seconds since the epoch */
    bool loaded, loading;
    float progress;            /* of the load in progress */
    uint64_t mem_bytes;        /* loaded: kinfer_model_estimate's host + device bytes */
    uint64_t device_bytes;
    int64_t expires_ms;        /* loaded: when keep_alive unloads it (epoch ms); -1 = never, 0 = busy */
    int32_t n_ctx;             /* loaded: a slot's context (a request's room) */
    uint64_t loads, evictions;
    char error[256];           /* the last load's failure, "" if none */
} router_entry;

/* Every model the directory holds now (rescanned), sorted by name: a
 * malloc'd array the caller frees; its count, or -1 when out of memory. */
int router_list(router *rt, router_entry **out);
/* The file of a model for /api/show (its path into path); false if unknown. */
bool router_path(router *rt, const char *name, char *path, size_t size, char *canonical, size_t canonical_size);

/* Append the per-model families (loads, evictions, load seconds, memory
 * held) and sum each model's engine metrics into total. */
void router_metrics(router *rt, metrics *total, textbuf *out);

/* Seconds as milliseconds, clamped to +-9e15. */
int64_t router_seconds_ms(double seconds);
/* "5m", "1h30m", "10s", "-1", "300" (seconds) as milliseconds; false if not a duration. */
bool router_parse_duration(const char *s, int64_t *ms);
/* "512M", "8G", "1.5G", bytes: false if not a size. */
bool router_parse_size(const char *s, uint64_t *bytes);

#endif
