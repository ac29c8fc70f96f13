/*
 * cpu_encoder.c — an encoder's attention on the CPU (BERT family): every
 * token of a batch attends to all tokens of its own sequence in the batch,
 * keys and values in f32 straight from the projections, as llama.cpp's
 * attention without a cache.  Rows (token, head) are split evenly over
 * the pool; each is a softmax over its sequence's keys in float with the
 * sum in double, then the values weighted and divided by that sum (the
 * order of llama.cpp's flash attention, whose online softmax differs in
 * rounding only).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu.h"
#include "core/status.h"
#include "core/threadpool.h"

typedef struct self_attn_job {
    const backend_self_attn *a;
    int failed;              /* a thread found no memory for its scores */
} self_attn_job;

static float dot(const float *x, const float *y, int n)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++) s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

/* rows [r0, r1) of (token, head), scores (n) as scratch */
static void attend_rows(const backend_self_attn *a, int64_t r0, int64_t r1, float *scores)
{
    const int group = a->n_head / a->n_head_kv;
    const size_t qs = (size_t)a->n_head * a->head_dim_k, ks = (size_t)a->n_head_kv * a->head_dim_k;
    const size_t vs = (size_t)a->n_head_kv * a->head_dim_v, os = (size_t)a->n_head * a->head_dim_v;
    for (int64_t r = r0; r < r1; r++) {
        const int32_t t = (int32_t)(r / a->n_head);
        const int h = (int)(r % a->n_head), hk = h / group;
        const float *q = a->q + (size_t)t * qs + (size_t)h * a->head_dim_k;
        float max = -INFINITY;
        for (int32_t u = 0; u < a->n; u++) {
            if (a->seq[u] != a->seq[t]) continue;
            scores[u] = dot(q, a->k + (size_t)u * ks + (size_t)hk * a->head_dim_k, a->head_dim_k) * a->scale;
            if (scores[u] > max) max = scores[u];
        }
        float *out = a->out + (size_t)t * os + (size_t)h * a->head_dim_v;
        memset(out, 0, (size_t)a->head_dim_v * sizeof *out);
        double sum = 0.0;
        for (int32_t u = 0; u < a->n; u++) {
            if (a->seq[u] != a->seq[t]) continue;
            const float e = expf(scores[u] - max);
            sum += e;
            const float *v = a->v + (size_t)u * vs + (size_t)hk * a->head_dim_v;
            for (int d = 0; d < a->head_dim_v; d++) out[d] += v[d] * e;
        }
        const float inv = (float)(1.0 / sum);
        for (int d = 0; d < a->head_dim_v; d++) out[d] *= inv;
    }
}

static void self_attn_task(void *p, int ith, int nth)
{
    self_attn_job *j = p;
    const backend_self_attn *a = j->a;
    const int64_t rows = (int64_t)a->n * a->n_head;
    const int64_t r0 = rows * ith / nth, r1 = rows * (ith + 1) / nth;
    if (r1 <= r0) return;
    float *scores = malloc((size_t)a->n * sizeof *scores);
    if (!scores) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    attend_rows(a, r0, r1, scores);
    free(scores);
}

kinfer_status cpu_self_attention(backend *be, const backend_self_attn *a)
{
    cpu_backend *cb = (cpu_backend *)be;
    self_attn_job j = {.a = a};
    if (cb->pool && a->n > 1) kinfer_threadpool_run(cb->pool, self_attn_task, &j);
    else self_attn_task(&j, 0, 1);
    if (j.failed)
        return status_fail(be->errmsg, sizeof be->errmsg, KINFER_E_NOMEM,
                           "out of memory for the attention scores of %d tokens", a->n);
    return KINFER_OK;
}
