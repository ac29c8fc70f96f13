/* metrics.c — counters and their Prometheus text (see metrics.h). */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

void metrics_init(metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void metrics_destroy(metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

static void add_requests(metrics *m, const char *endpoint, int status, uint64_t count)
{
    int i = 0;
    while (i < m->n_routes && (m->routes[i].status != status || strcmp(m->routes[i].endpoint, endpoint)))
        i++;
    if (i == m->n_routes && m->n_routes < METRICS_MAX_ROUTES) {
        snprintf(m->routes[i].endpoint, sizeof m->routes[i].endpoint, "%s", endpoint);
        m->routes[i].status = status;
        m->routes[i].count = 0;
        m->n_routes++;
    }
    if (i < m->n_routes) m->routes[i].count += count;
}

void metrics_count_request(metrics *m, const char *endpoint, int status)
{
    pthread_mutex_lock(&m->mu);
    add_requests(m, endpoint, status, 1);
    pthread_mutex_unlock(&m->mu);
}

void metrics_add_tokens(metrics *m, uint64_t prompt, uint64_t generated, uint64_t cache_hits,
                        double prompt_s, double generation_s)
{
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += prompt;
    m->generated_tokens += generated;
    m->cache_hit_tokens += cache_hits;
    m->prompt_seconds += prompt_s;
    m->generation_seconds += generation_s;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_gauges(metrics *m, int64_t in_flight, int64_t queued, int64_t kv_used,
                        int64_t kv_total)
{
    pthread_mutex_lock(&m->mu);
    m->in_flight = in_flight;
    m->queued = queued;
    m->kv_cells_used = kv_used;
    m->kv_cells_total = kv_total;
    m->decode_steps++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_render(metrics *m, textbuf *out)
{
    pthread_mutex_lock(&m->mu);
    textbuf_printf(out, "# HELP kinfer_requests_total HTTP requests by endpoint and status.\n"
              "# TYPE kinfer_requests_total counter\n");
    for (int i = 0; i < m->n_routes; i++)
        textbuf_printf(out, "kinfer_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", m->routes[i].endpoint,
             m->routes[i].status, (unsigned long long)m->routes[i].count);
    textbuf_printf(out, "# HELP kinfer_prompt_tokens_total Prompt tokens evaluated (cache hits excluded).\n"
              "# TYPE kinfer_prompt_tokens_total counter\nkinfer_prompt_tokens_total %llu\n",
         (unsigned long long)m->prompt_tokens);
    textbuf_printf(out, "# HELP kinfer_tokens_predicted_total Tokens generated.\n"
              "# TYPE kinfer_tokens_predicted_total counter\nkinfer_tokens_predicted_total %llu\n",
         (unsigned long long)m->generated_tokens);
    textbuf_printf(out, "# HELP kinfer_prompt_seconds_total Time from admission to the first token.\n"
              "# TYPE kinfer_prompt_seconds_total counter\nkinfer_prompt_seconds_total %.6f\n",
         m->prompt_seconds);
    textbuf_printf(out, "# HELP kinfer_tokens_predicted_seconds_total Time generating.\n"
              "# TYPE kinfer_tokens_predicted_seconds_total counter\n"
              "kinfer_tokens_predicted_seconds_total %.6f\n", m->generation_seconds);
    textbuf_printf(out, "# HELP kinfer_cache_hit_tokens_total Prompt tokens taken from the prompt cache.\n"
              "# TYPE kinfer_cache_hit_tokens_total counter\nkinfer_cache_hit_tokens_total %llu\n",
         (unsigned long long)m->cache_hit_tokens);
    textbuf_printf(out, "# HELP kinfer_requests_processing Requests in a slot.\n"
              "# TYPE kinfer_requests_processing gauge\nkinfer_requests_processing %lld\n",
         (long long)m->in_flight);
    textbuf_printf(out, "# HELP kinfer_requests_deferred Requests waiting in the queue.\n"
              "# TYPE kinfer_requests_deferred gauge\nkinfer_requests_deferred %lld\n",
         (long long)m->queued);
    textbuf_printf(out, "# HELP kinfer_kv_cache_tokens KV cache cells in use (a prefix that slots share counts once).\n"
              "# TYPE kinfer_kv_cache_tokens gauge\nkinfer_kv_cache_tokens %lld\n",
         (long long)m->kv_cells_used);
    textbuf_printf(out, "# HELP kinfer_kv_cache_cells KV cache cells in all.\n"
              "# TYPE kinfer_kv_cache_cells gauge\nkinfer_kv_cache_cells %lld\n",
         (long long)m->kv_cells_total);
    textbuf_printf(out, "# HELP kinfer_decode_steps_total Scheduler steps.\n"
              "# TYPE kinfer_decode_steps_total counter\nkinfer_decode_steps_total %llu\n",
         (unsigned long long)m->decode_steps);
    pthread_mutex_unlock(&m->mu);
}

void metrics_accumulate(metrics *into, metrics *from)
{
    pthread_mutex_lock(&from->mu);
    metrics snap = *from;   /* (its mutex is not used) */
    pthread_mutex_unlock(&from->mu);
    pthread_mutex_lock(&into->mu);
    for (int i = 0; i < snap.n_routes; i++) add_requests(into, snap.routes[i].endpoint, snap.routes[i].status, snap.routes[i].count);
    into->prompt_tokens += snap.prompt_tokens;
    into->generated_tokens += snap.generated_tokens;
    into->cache_hit_tokens += snap.cache_hit_tokens;
    into->prompt_seconds += snap.prompt_seconds;
    into->generation_seconds += snap.generation_seconds;
    into->in_flight += snap.in_flight;
    into->queued += snap.queued;
    into->kv_cells_used += snap.kv_cells_used;
    into->kv_cells_total += snap.kv_cells_total;
    into->decode_steps += snap.decode_steps;
    pthread_mutex_unlock(&into->mu);
}
