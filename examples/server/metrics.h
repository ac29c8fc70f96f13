/*
 * metrics.h — the server's counters, rendered in Prometheus text format for
 * GET /metrics.  Thread-safe: HTTP threads count requests, the scheduler
 * counts tokens and seconds.
 */
#ifndef KINFER_SERVER_METRICS_H
#define KINFER_SERVER_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "../common/textbuf.h"

#define METRICS_MAX_ROUTES 64

typedef struct metrics {
    pthread_mutex_t mu;
    struct { char endpoint[32]; int status; uint64_t count; } routes[METRICS_MAX_ROUTES];
    int n_routes;
    uint64_t prompt_tokens, generated_tokens, cache_hit_tokens;
    double prompt_seconds, generation_seconds;
    int64_t in_flight, queued;      /* gauges, set by the scheduler */
    int64_t kv_cells_used, kv_cells_total;
    uint64_t decode_steps;
} metrics;

void metrics_init(metrics *m);
void metrics_destroy(metrics *m);
void metrics_count_request(metrics *m, const char *endpoint, int status);
void metrics_add_tokens(metrics *m, uint64_t prompt, uint64_t generated, uint64_t cache_hits,
                        double prompt_s, double generation_s);
void metrics_set_gauges(metrics *m, int64_t in_flight, int64_t queued, int64_t kv_used,
                        int64_t kv_total);
/* Add from's counters and gauges (a model's engine) to into's. */
void metrics_accumulate(metrics *into, metrics *from);
/* Append the Prometheus text to out. */
void metrics_render(metrics *m, textbuf *out);

#endif
