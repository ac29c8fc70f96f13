/*
 * cpu_attn.c — the CPU backend's attention: grouped-query attention of a
 * micro-batch over the KV cache, in llama.cpp's summation orders (no flash
 * attention), split over the thread pool.
 */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "backend/cpu.h"
#include "core/threadpool.h"
#include "cpu/attn_kernels.h"
#include "cpu/kernels.h"

size_t cpu_attn_stride(uint32_t n_ctx, int head_dim_k, int type_k)
{
    /* visible rows (n_ctx), scores of up to KINFER_ATTN_MAX_G heads (n_ctx
     * each) and those query heads in the K cache's dot type; a multiple of
     * 64 bytes */
    const kinfer_cpu_kernels *kk = kinfer_cpu_kernels_get(type_k);
    size_t q = kk ? kinfer_row_size(kk->vec_dot_type, head_dim_k) : 0;
    size_t bytes = (size_t)n_ctx * (sizeof(int32_t) + KINFER_ATTN_MAX_G * sizeof(float)) +
                   KINFER_ATTN_MAX_G * q;
    return (bytes + 63) & ~(size_t)63;
}

int32_t cpu_attn_slices(const model_hparams *hp, int32_t n_threads)
{
    /* a decode split over the threads holds every kv head's group of up to
     * KINFER_ATTN_MAX_G query heads at once */
    const int32_t n_units = hp->n_head_kv * ((hp->n_head / hp->n_head_kv + KINFER_ATTN_MAX_G - 1) /
                                             KINFER_ATTN_MAX_G);
    return n_threads > n_units ? n_threads : n_units;
}

/* Per-thread attention scratch: rows of the visible cells, the scores of up
 * to KINFER_ATTN_MAX_G query heads, those heads in the K cache's dot type. */
typedef struct att_thread_buf {
    int32_t *rows;   /* (n_ctx) cache rows the current token sees, in cell order */
    float *s;        /* (MAX_G, n_ctx) their scores, then weights, per head */
    void *qq;        /* (MAX_G, q_size bytes) query heads as the K cache's vec_dot_type */
} att_thread_buf;

static att_thread_buf att_buf_of(const cpu_backend *cb, int ith)
{
    const size_t stride = cb->att_stride, n_ctx = cb->n_ctx;
    uint8_t *base = (uint8_t *)cb->att_tmp + (size_t)ith * stride;
    att_thread_buf tb = {
        .rows = (int32_t *)base,
        .s = (float *)(base + n_ctx * sizeof(int32_t)),
        .qq = base + n_ctx * (sizeof(int32_t) + KINFER_ATTN_MAX_G * sizeof(float)),
    };
    return tb;
}

/* The period of llama.cpp's lanes over cache rows: 16 lanes of 4
 * accumulators in the one-token order, 16 lanes in the batch order. */
#define ATT_LANE_PERIOD 64

/*
 * Cache rows of layer il token t may see (kv_visible_rows), with llama.cpp's
 * lane phase: it sums the weights and the weighted values in lanes by cache
 * row (attn_order.h), over every row from 0, the ones a token may not see
 * weighing 0.  When the visible rows are a run that starts past row 0 (a
 * sliding window that has moved on), *n_pad rows lead the list to keep
 * that phase: their scores are to be -inf, their weights 0 (head_weights).
 */
static int32_t visible_rows(const kv_cache *kv, const kv_view *view, int il, kinfer_pos p,
                            kinfer_seq_id s, int swa, int32_t *rows, int32_t *n_pad)
{
    int32_t nv = kv_visible_rows(kv, view, il, p, s, swa, rows);
    const int32_t pad = nv > 0 ? rows[0] % ATT_LANE_PERIOD : 0;
    *n_pad = 0;
    if (pad > 0 && rows[nv - 1] - rows[0] == nv - 1 && (size_t)(nv + pad) <= kv->n_ctx) {
        memmove(rows + pad, rows, (size_t)nv * sizeof *rows);
        for (int32_t r = 0; r < pad; r++) rows[r] = rows[pad];
        *n_pad = pad;
        nv += pad;
    }
    return nv;
}

/* What every attention task of a layer needs: the heads' shapes and the
 * kernels. */
typedef struct att_shape {
    int hd_k, hd_v, n_head, gqa;
    int64_t QD, OD;                   /* q and att floats per token */
    const kinfer_cpu_kernels *kk, *kq; /* of the K type and of its dot type */
    size_t q_size, n_ctx;
    float scale;
} att_shape;

static att_shape att_shape_of(const backend_attn *at)
{
    const kv_cache *kv = at->kv;
    att_shape a = {.hd_k = (int)kv->head_dim_k, .hd_v = (int)kv->head_dim_v, .n_head = at->n_head,
                   .gqa = at->n_head / kv->n_head_kv, .n_ctx = kv->n_ctx, .scale = at->scale};
    a.QD = (int64_t)a.n_head * a.hd_k;
    a.OD = (int64_t)a.n_head * a.hd_v;
    a.kk = kinfer_cpu_kernels_get(kv->type_k);
    a.kq = kinfer_cpu_kernels_get(a.kk->vec_dot_type);
    a.q_size = kinfer_row_size(a.kk->vec_dot_type, a.hd_k);
    return a;
}

typedef struct att_job {
    const cpu_backend *cb;
    const backend_attn *a;
    att_shape sh;
    kinfer_attn_wsum_fn wsum;
    kinfer_attn_scores_fn scores;  /* NULL: vec_dot */
    atomic_int next_token;         /* tokens claimed so far (prompt split) */
    /* the split of one token over its cells (decode): every unit, unit
     * i's weights in scratch slice i */
    const int32_t *rows;           /* (nv) the cache rows the token sees */
    int32_t nv, n_pad;             /* (visible_rows) */
    int n_units;
} att_job;

/* Query heads h0 .. h0+g-1 of one kv head: what one kernel call takes. */
typedef struct att_unit {
    int kvh, h0, g;
} att_unit;

/* Units kv head by kv head, each kv head's query heads in groups of up to
 * KINFER_ATTN_MAX_G. */
static int att_units_per_kv(const att_shape *sh)
{
    return (sh->gqa + KINFER_ATTN_MAX_G - 1) / KINFER_ATTN_MAX_G;
}

static att_unit att_unit_of(const att_shape *sh, int u)
{
    const int per_kv = att_units_per_kv(sh);
    const int kvh = u / per_kv, first = u % per_kv * KINFER_ATTN_MAX_G;
    const int g = sh->gqa - first < KINFER_ATTN_MAX_G ? sh->gqa - first : KINFER_ATTN_MAX_G;
    return (att_unit){.kvh = kvh, .h0 = kvh * sh->gqa + first, .g = g};
}

/* s_k[r] = scale * q . K row rows[r] for the query heads of un (s_k at
 * s + k * n_ctx), r < nv, q of token t; qq: scratch for the converted
 * query heads. */
static void unit_scores(const att_job *j, att_unit un, int32_t t, const int32_t *rows, int32_t nv,
                        float *s, uint8_t *qq)
{
    const att_shape *sh = &j->sh;
    const kv_cache *kv = j->a->kv;
    const size_t n_ctx = sh->n_ctx, q_size = sh->q_size;
    const int g = un.g;
    /* q_h . k_c, with q_h in the K cache's dot type */
    for (int k = 0; k < g; k++)
        sh->kq->from_float_act(j->a->q + (size_t)t * sh->QD + (size_t)(un.h0 + k) * sh->hd_k,
                               qq + k * q_size, sh->hd_k);
    const uint8_t *k0 = kv_k_head(kv, j->a->il, un.kvh);
    if (j->scores) {
        j->scores(s, n_ctx, g, sh->hd_k, k0, kv->head_k, rows, nv, qq, q_size, sh->scale);
    } else if (g > 1 && sh->kk->vec_dot_x4) {
        /* one K row against all g heads (the unused slots repeat head h0) */
        for (int k = g; k < 4; k++) memcpy(qq + k * q_size, qq, q_size);
        for (int32_t r = 0; r < nv; r++) {
            float d4[4];
            sh->kk->vec_dot_x4(sh->hd_k, k0 + (size_t)rows[r] * kv->head_k, qq, q_size, d4);
            for (int k = 0; k < g; k++) s[k * n_ctx + r] = d4[k] * sh->scale;
        }
    } else {
        for (int k = 0; k < g; k++)
            for (int32_t r = 0; r < nv; r++)
                s[k * n_ctx + r] = sh->kk->vec_dot(sh->hd_k, k0 + (size_t)rows[r] * kv->head_k, qq + k * q_size) *
                                   sh->scale;
    }
}

/* Scores to weights in place (the first n_pad rows only keep the lanes'
 * phase: weight 0): softmax, then, as llama.cpp (no flash attention)
 * multiplies V by them in V's type, rounded to F16 for an F16 cache. */
static void head_weights(const kv_cache *kv, float *s, int32_t nv, int32_t n_pad)
{
    for (int32_t r = 0; r < n_pad; r++) s[r] = -INFINITY;
    kinfer_attn_softmax(s, nv);
    if (kv->type_v == KINFER_TYPE_F16) kinfer_attn_round_fp16(s, nv);
}

/* out_k (dims d0 .. d0+nd-1 of head h0+k of token t) = sum over the rows of
 * w_k[r] * V row rows[r], w_k at w + k * n_ctx */
static void unit_values(const att_job *j, att_unit un, int32_t t, int d0, int nd, const int32_t *rows,
                        int32_t nv, const float *w)
{
    const att_shape *sh = &j->sh;
    const kv_cache *kv = j->a->kv;
    j->wsum(j->a->out + (size_t)t * sh->OD + (size_t)un.h0 * sh->hd_v + d0, (size_t)sh->hd_v, un.g, nd,
            kv_v_head(kv, j->a->il, un.kvh) + kinfer_row_size(kv->type_v, d0), kv->head_v, rows,
            w, sh->n_ctx, nv);
}

/*
 * Grouped-query attention of the micro-batch over the cache of layer il, one
 * (token, head) pair at a time, the pairs split evenly over the threads.
 *   q   (n, n_head * hd_k)         normed, rotated queries
 *   K   cache rows (rows, n_head_kv * hd_k) in type_k, read in place
 *   V   cache rows (rows, n_head_kv * hd_v) in type_v, read in place
 *   att (n, n_head * hd_v)         out
 * Query head h reads kv head h / (n_head / n_head_kv).  A thread takes its
 * consecutive pairs of one token and one kv head (up to 4) together, so each
 * K and V row is fetched once for all of them; the kernels give each head
 * the same bits as alone (vec_dot_x4 is vec_dot per row, the weighted sum
 * is per head), so results depend neither on the batch size nor on the
 * thread count.
 */
static void task_attention(void *arg, int ith, int nth)
{
    att_job *j = arg;
    const backend_attn *a = j->a;
    const att_shape *sh = &j->sh;
    const int n_head = sh->n_head;
    att_thread_buf tb = att_buf_of(j->cb, ith);

    /* the split: with enough tokens, each thread claims whole tokens from a
     * shared counter, the last (those that see the most cells) first, so
     * the threads finish together even when one is slowed down; with few
     * tokens, consecutive (token, head) pairs, evenly */
    const int by_token = a->n >= 2 * nth;
    const int64_t n_pairs = (int64_t)a->n * n_head;
    const int64_t per = (n_pairs + nth - 1) / nth;
    int32_t t_vis = -1, nv = 0, n_pad = 0;
    for (int first = 1;; first = 0) {
        int64_t i0, i1;
        if (by_token) {
            const int32_t k = atomic_fetch_add_explicit(&j->next_token, 1, memory_order_relaxed);
            if (k >= a->n) break;
            i0 = (int64_t)(a->n - 1 - k) * n_head;
            i1 = i0 + n_head;
        } else {
            if (!first) break;
            i0 = per * ith;
            i1 = i0 + per < n_pairs ? i0 + per : n_pairs;
        }
        for (int64_t i = i0; i < i1;) {
            const int32_t t = (int32_t)(i / n_head);
            const int h = (int)(i % n_head), kvh = h / sh->gqa;
            int g = 1; /* heads h .. h+g-1: same token, same kv head, this thread's */
            while (g < KINFER_ATTN_MAX_G && i + g < i1 && h + g < n_head && (h + g) / sh->gqa == kvh) g++;
            if (t != t_vis) {
                nv = visible_rows(a->kv, a->view, a->il, a->pos[t], a->seq[t], a->swa, tb.rows, &n_pad);
                t_vis = t;
            }
            const att_unit un = {.kvh = kvh, .h0 = h, .g = g};
            unit_scores(j, un, t, tb.rows, nv, tb.s, tb.qq);
            for (int k = 0; k < g; k++) head_weights(a->kv, tb.s + k * sh->n_ctx, nv, n_pad);
            unit_values(j, un, t, 0, sh->hd_v, tb.rows, nv, tb.s);
            i += g;
        }
    }
}

/*
 * One token over many cells (decode at depth) takes every thread on every
 * kv head, each K and V byte read once, in three steps over every unit
 * (a scratch slice each): the scores, split by cells; the weights, split by
 * heads; the weighted sums, split by 32-dim slices of the heads.
 * Each score, weight and output dim is computed by the same calls as in
 * task_attention, so the bits do not change.
 */
#define ATT_SPLIT_MIN_CELLS 256

static void task_att_scores(void *arg, int ith, int nth)
{
    const att_job *j = arg;
    /* whole blocks of 16 keys per thread (the kernels' tile) */
    const int64_t nb = (j->nv + 15) / 16;
    const int32_t r0 = (int32_t)(16 * (nb * ith / nth));
    int32_t r1 = (int32_t)(16 * (nb * (ith + 1) / nth));
    if (r1 > j->nv) r1 = j->nv;
    if (r0 >= r1) return;
    const att_thread_buf tb = att_buf_of(j->cb, ith);
    for (int i = 0; i < j->n_units; i++)
        unit_scores(j, att_unit_of(&j->sh, i), 0, j->rows + r0, r1 - r0,
                    att_buf_of(j->cb, i).s + r0, tb.qq);
}

static void task_att_weights(void *arg, int ith, int nth)
{
    const att_job *j = arg;
    int n_rows = 0; /* rows of weights: the heads of every unit */
    for (int i = 0; i < j->n_units; i++) n_rows += att_unit_of(&j->sh, i).g;
    const int k0 = n_rows * ith / nth, k1 = n_rows * (ith + 1) / nth;
    for (int i = 0, k = 0; i < j->n_units; i++) {
        const int g = att_unit_of(&j->sh, i).g;
        float *s = att_buf_of(j->cb, i).s;
        for (int h = 0; h < g; h++, k++)
            if (k >= k0 && k < k1) head_weights(j->a->kv, s + (size_t)h * j->sh.n_ctx, j->nv, j->n_pad);
    }
}

static void task_att_values(void *arg, int ith, int nth)
{
    const att_job *j = arg;
    const int hd_v = j->sh.hd_v, slice = hd_v % 32 == 0 ? 32 : hd_v, n_slices = hd_v / slice;
    const int n_items = j->n_units * n_slices;
    const int i0 = n_items * ith / nth, i1 = n_items * (ith + 1) / nth;
    /* consecutive slices of one unit in one call */
    for (int i = i0; i < i1;) {
        const int u = i / n_slices, c0 = i % n_slices;
        const int c1 = n_slices < c0 + (i1 - i) ? n_slices : c0 + (i1 - i);
        unit_values(j, att_unit_of(&j->sh, u), 0, c0 * slice, (c1 - c0) * slice, j->rows, j->nv,
                    att_buf_of(j->cb, u).s);
        i += c1 - c0;
    }
}

/* a->out for layer il: the split over cells for one token that sees many
 * of them, else task_attention. */
void cpu_attention(backend *be, const backend_attn *a)
{
    cpu_backend *cb = (cpu_backend *)be;
    const kv_cache *kv = a->kv;
    /* llama.cpp sums F16 attention in one order for a single token and in
     * another for a batch (attn_kernels.h): follow it.  Under kv_seq_regions
     * a token's bits must not depend on the batch it came in: the
     * single-token order for every batch.  (Its rows need nothing more: a
     * sequence's cells are a run in its region, which starts on a multiple
     * of ATT_LANE_PERIOD, so visible_rows gives each row the lane of its
     * position, as for a sequence alone in the cache.) */
    const int order = a->n > 1 && !kv->region ? KINFER_F16_ORDER_GEMM : KINFER_F16_ORDER_VEC;
    att_job job = {.cb = cb, .a = a, .sh = att_shape_of(a),
                   .wsum = kinfer_attn_wsum_get(kv->type_v, kv->head_dim_v, order),
                   .scores = kinfer_attn_scores_get(kv->type_k, kv->head_dim_k, order)};
    atomic_init(&job.next_token, 0);
    const int nth = kinfer_threadpool_size(cb->pool);
    if (a->n == 1 && nth > 1) {
        if (cb->dec_view != a->view->id) {
            cb->dec_view = a->view->id;
            cb->dec_nv[0] = cb->dec_nv[1] = -1;
        }
        const int kind = a->swa != 0;
        int32_t *rows = cb->dec_rows + (size_t)kind * cb->n_ctx;
        if (cb->dec_nv[kind] < 0)
            cb->dec_nv[kind] = visible_rows(kv, a->view, a->il, a->pos[0], a->seq[0], a->swa, rows,
                                            &cb->dec_pad[kind]);
        const int32_t nv = cb->dec_nv[kind];
        if (nv >= ATT_SPLIT_MIN_CELLS) {
            /* every unit at once, unit i's weights in scratch slice i
             * (cpu_attn_slices sizes them for it) */
            job.rows = rows, job.nv = nv, job.n_pad = cb->dec_pad[kind];
            job.n_units = kv->n_head_kv * att_units_per_kv(&job.sh);
            kinfer_threadpool_run(cb->pool, task_att_scores, &job);
            kinfer_threadpool_run(cb->pool, task_att_weights, &job);
            kinfer_threadpool_run(cb->pool, task_att_values, &job);
            return;
        }
    }
    kinfer_threadpool_run(cb->pool, task_attention, &job);
}
