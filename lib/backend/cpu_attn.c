/*
 * cpu_attn.c — the CPU backend's attention: grouped-query attention of a
 * micro-batch over the KV cache, in llama.cpp's summation orders, without
 * flash attention and with it (the end of the file), split over the
 * thread pool.
 */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "backend/cpu.h"
#include "core/threadpool.h"
#include "cpu/attn_kernels.h"
#include "cpu/flash_attn.h"
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
    if (cb->flash_attn) {
        cpu_flash_attention(cb, a);
        return;
    }
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

/* ------------------------------------------------------- flash attention */

/*
 * Flash attention in llama.cpp's recipe (ggml_compute_forward_flash_attn_ext
 * on the CPU), which kinfer follows to the bit where its kernels do
 * (flash_attn.h).  A query row reads the keys it may see in cell order with
 * an online softmax; no row of scores over the whole context exists.  An
 * F32 cache is read as F16, as llama.cpp casts it.  Three paths, chosen as
 * llama.cpp chooses them:
 *   rows   (a micro-batch of fewer than FA_TILE tokens, or a quantized
 *          cache): one key at a time; q in K's dot type, the running max M
 *          and sum S = S * ms + vs fused, the values summed in F16 (an F16
 *          V) or F32;
 *   tiled  (FA_TILE tokens or more, K and V F16): tiles of FA_TILE keys
 *          from cell 0, scores an F32 product of q and the F16 keys, the
 *          tile's max, e^(s - M) summed as ggml_vec_soft_max_f32, the
 *          values an F32 product;
 *   split  (one token, K and V F16, llama.cpp's padded view of FA_SPLIT_KV
 *          cells or more): the view cut into one chunk per thread, each
 *          summed as `rows`, the chunks merged in order.
 * Every query row's bits depend only on its keys (and, tiled, their cells'
 * tiles), not on the other rows of the batch nor the threads, but `split`
 * depends on the thread count, as llama.cpp's does.  Under kv_seq_regions
 * every batch takes `rows`, so a token's bits never depend on its batch.
 */
#define FA_TILE 64      /* ggml's GGML_FA_TILE_Q and GGML_FA_TILE_KV */
#ifndef FA_SPLIT_KV
#define FA_SPLIT_KV 512 /* the view (cells) from which one token is split */
#endif
#define FA_MAX_G KINFER_ATTN_MAX_G

static const int32_t fa_iota[FA_TILE] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

/* Query heads stacked in one tile (fa_tile): as many as keep its query
 * and output rows (G * FA_TILE * (hd_k + hd_v) floats) within 256 KiB,
 * so that they stay in L2 beside the tile of keys and values. */
static int fa_tile_heads(const model_hparams *hp)
{
    const size_t per_head = (size_t)FA_TILE * ((size_t)hp->head_dim_k + (size_t)hp->head_dim_v) * sizeof(float);
    const size_t g = ((size_t)256 << 10) / (per_head ? per_head : 1);
    return g < 1 ? 1 : g > FA_MAX_G ? FA_MAX_G : (int)g;
}

/* One thread's flash-attention scratch (sizes in cpu_fa_stride); tiled,
 * R = fa_tile_heads * FA_TILE stacked query rows. */
typedef struct fa_buf {
    int32_t *rows;     /* (n_ctx) the rows a token sees */
    uint64_t *bits;    /* (FA_TILE, n_words) tiled: the rows each token of the tile sees */
    uint8_t *qq;       /* (MAX_G, q_size) query heads in K's dot type */
    float *s;          /* (MAX_G, FA_TILE) a block of scores */
    float *acc;        /* (MAX_G, hd_v) accumulators: F16 or F32 */
    float *v32;        /* (hd_v) a dequantized value row */
    kinfer_fp16 *k16;  /* (FA_TILE, hd_k) F32 keys as F16 */
    kinfer_fp16 *v16;  /* (hd_v) an F32 value row as F16 */
    float *qt, *kq, *vkq, *vt, *kt; /* tiled: (R, hd_k) (R, TILE) (R, hd_v) (TILE, hd_v) (hd_k, TILE) */
    float *m, *sum;    /* (R) tiled: running max and sum per query row */
    kinfer_fp16 *z16;  /* (hd_k) tiled: zeros, the key of a row no token sees */
    float *part;       /* (n_head, 2 + hd_v) split: M, S and the sums of each head */
} fa_buf;

#define FA_N_ARRAYS 16

static size_t fa_align(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* byte sizes of fa_buf's arrays, in its order */
static void fa_sizes(uint32_t n_ctx, const model_hparams *hp, size_t q_size, size_t sz[FA_N_ARRAYS])
{
    const size_t dk = (size_t)hp->head_dim_k, dv = (size_t)hp->head_dim_v, T = FA_TILE;
    const size_t R = (size_t)fa_tile_heads(hp) * T, words = ((size_t)n_ctx + 63) / 64;
    /* kq doubles as the rows path's (MAX_G, hd_v) sums */
    const size_t kq = R * T > FA_MAX_G * dv ? R * T : FA_MAX_G * dv;
    const size_t s[FA_N_ARRAYS] = {n_ctx * sizeof(int32_t), T * words * 8, FA_MAX_G * q_size, FA_MAX_G * T * 4,
                                   FA_MAX_G * dv * 4, dv * 4, T * dk * 2, dv * 2, R * dk * 4, kq * 4, R * dv * 4,
                                   T * dv * 4, dk * T * 4, R * 4, R * 4, dk * 2};
    memcpy(sz, s, sizeof s);
}

static size_t fa_q_size(const model_hparams *hp, int type_k)
{
    /* F16 for an F16 or F32 cache, else K's dot type */
    const int t = type_k == KINFER_TYPE_F32 ? KINFER_TYPE_F16 : type_k;
    const kinfer_cpu_kernels *kk = kinfer_cpu_kernels_get(t);
    return kk ? kinfer_row_size(kk->vec_dot_type, hp->head_dim_k) : 0;
}

size_t cpu_fa_stride(uint32_t n_ctx, const model_hparams *hp, int type_k)
{
    size_t sz[FA_N_ARRAYS], bytes = 0;
    fa_sizes(n_ctx, hp, fa_q_size(hp, type_k), sz);
    for (int i = 0; i < FA_N_ARRAYS; i++) bytes += fa_align(sz[i]);
    return bytes + fa_align((size_t)hp->n_head * (2 + (size_t)hp->head_dim_v) * sizeof(float));
}

static fa_buf fa_buf_of(const cpu_backend *cb, const model_hparams *hp, int type_k, int ith)
{
    size_t sz[FA_N_ARRAYS];
    fa_sizes(cb->n_ctx, hp, fa_q_size(hp, type_k), sz);
    uint8_t *p = (uint8_t *)cb->att_tmp + (size_t)ith * cb->att_stride;
    void *a[FA_N_ARRAYS];
    for (int i = 0; i < FA_N_ARRAYS; i++) a[i] = p, p += fa_align(sz[i]);
    return (fa_buf){.rows = a[0], .bits = a[1], .qq = a[2], .s = a[3], .acc = a[4], .v32 = a[5],
                    .k16 = a[6], .v16 = a[7], .qt = a[8], .kq = a[9], .vkq = a[10], .vt = a[11],
                    .kt = a[12], .m = a[13], .sum = a[14], .z16 = a[15], .part = (float *)p};
}

typedef struct fa_job {
    const cpu_backend *cb;
    const backend_attn *a;
    const kv_cache *kv;
    const kinfer_fa_kernels *fk;
    const kinfer_cpu_kernels *kk, *kq, *kvv, *f16; /* K's, its dot type's, V's, F16's */
    kinfer_attn_scores_fn scores16; /* F16 scores in ggml_vec_dot_f16's order; NULL: vec_dot */
    const model_hparams *hp;
    int hd_k, hd_v, n_head, gqa;
    int k16, v16;                   /* K / V read as F16 (an F16 or F32 cache) */
    size_t q_size;
    int64_t QD, OD;
    int tiled;
    int32_t n_rows;                 /* rows of the layer's store */
    /* split: the token's rows, the view's cells (llama.cpp's n_kv) and the chunk */
    const int32_t *rows;
    int32_t nv, n_kv, chunk;
    atomic_int_fast64_t next;       /* units claimed so far (task_fa) */
} fa_job;

/* A row of an F16 or F32 cache as F16: in place, or converted into tmp. */
static const kinfer_fp16 *fa_row_f16(const fa_job *j, const uint8_t *row, int type, int64_t n,
                                     kinfer_fp16 *tmp)
{
    if (type == KINFER_TYPE_F16) return (const kinfer_fp16 *)row;
    j->f16->from_float_act((const float *)row, tmp, n);
    return tmp;
}

/*
 * Query heads h0 .. h0+g-1 (of kv head kvh) of token t over rows[0..nv), one
 * key at a time (ggml's flash_attn_ext_f16_one_chunk): M, S and the
 * unnormalized sums out (g, hd_v) of each head.
 */
static void fa_rows(const fa_job *j, fa_buf *b, int32_t t, int kvh, int h0, int g, const int32_t *rows,
                    int32_t nv, float *M, float *S, float *out)
{
    const kv_cache *kv = j->kv;
    const int il = j->a->il, hd_k = j->hd_k, hd_v = j->hd_v;
    const float scale = j->a->scale;
    for (int k = 0; k < g; k++) {
        j->kq->from_float_act(j->a->q + (size_t)t * j->QD + (size_t)(h0 + k) * hd_k, b->qq + k * j->q_size, hd_k);
        M[k] = -INFINITY;
        S[k] = 0.0f;
    }
    kinfer_fp16 *acc16 = (kinfer_fp16 *)b->acc;
    float *acc32 = b->acc;
    if (j->v16) memset(acc16, 0, (size_t)g * hd_v * sizeof *acc16);
    else memset(acc32, 0, (size_t)g * hd_v * sizeof *acc32);
    const uint8_t *k0 = kv_k_head(kv, il, kvh), *v0 = kv_v_head(kv, il, kvh);
    for (int32_t r0 = 0; r0 < nv; r0 += FA_TILE) {
        const int32_t nb = nv - r0 < FA_TILE ? nv - r0 : FA_TILE;
        /* the scores of this block of keys, s[k * FA_TILE + i] */
        if (j->k16) {
            const uint8_t *base = k0;
            const int32_t *rr = rows + r0;
            size_t stride = kv->head_k;
            if (kv->type_k != KINFER_TYPE_F16) {
                for (int32_t i = 0; i < nb; i++)
                    fa_row_f16(j, k0 + (size_t)rows[r0 + i] * kv->head_k, kv->type_k, hd_k, b->k16 + (size_t)i * hd_k);
                base = (const uint8_t *)b->k16, rr = fa_iota, stride = (size_t)hd_k * sizeof(kinfer_fp16);
            }
            if (j->scores16) {
                j->scores16(b->s, FA_TILE, g, hd_k, base, stride, rr, nb, b->qq, j->q_size, scale);
            } else {
                for (int k = 0; k < g; k++)
                    for (int32_t i = 0; i < nb; i++)
                        b->s[k * FA_TILE + i] =
                            j->f16->vec_dot(hd_k, base + (size_t)rr[i] * stride, b->qq + k * j->q_size) * scale;
            }
        } else {
            for (int k = 0; k < g; k++)
                for (int32_t i = 0; i < nb; i++)
                    b->s[k * FA_TILE + i] =
                        j->kk->vec_dot(hd_k, k0 + (size_t)rows[r0 + i] * kv->head_k, b->qq + k * j->q_size) * scale;
        }
        for (int32_t i = 0; i < nb; i++) {
            const uint8_t *vrow = v0 + (size_t)rows[r0 + i] * kv->head_v;
            const kinfer_fp16 *vh = NULL;
            if (j->v16) vh = fa_row_f16(j, vrow, kv->type_v, hd_v, b->v16);
            else j->kvv->to_float(vrow, b->v32, hd_v);
            for (int k = 0; k < g; k++) {
                const float s = b->s[k * FA_TILE + i];
                float ms = 1.0f, vs = 1.0f;
                if (s > M[k]) {
                    /* a new maximum: the sums so far shrink by e^(M - s) */
                    ms = expf(M[k] - s);
                    M[k] = s;
                    if (j->v16) j->fk->scale_f16(hd_v, acc16 + (size_t)k * hd_v, ms);
                    else
                        for (int d = 0; d < hd_v; d++) acc32[(size_t)k * hd_v + d] *= ms;
                } else {
                    vs = expf(s - M[k]);
                }
                if (j->v16) j->fk->mad_f16(hd_v, acc16 + (size_t)k * hd_v, vh, vs);
                else j->fk->mad_f32(hd_v, acc32 + (size_t)k * hd_v, b->v32, vs);
                S[k] = fmaf(S[k], ms, vs);
            }
        }
    }
    for (int64_t i = 0; i < (int64_t)g * hd_v; i++)
        out[i] = j->v16 ? kinfer_fp16_to_fp32(acc16[i]) : acc32[i];
}

/* out (n) = acc / S (0 when S is 0), as ggml scales it */
static void fa_normalize(float *out, const float *acc, float S, int n)
{
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int d = 0; d < n; d++) out[d] = acc[d] * inv;
}

/*
 * Tokens t0 .. t0+T-1 (T <= FA_TILE) of query heads h0 .. h0+g-1 (of kv
 * head kvh), tiled (ggml's flash_attn_ext_tiled).  The g heads' query rows
 * are stacked (row k * T + tq), so each tile of keys and values is
 * converted once for all of them; every row's bits are its own, as alone.
 * b->bits already holds the rows each token sees, hi the end of the last.
 */
static void fa_tile(const fa_job *j, fa_buf *b, int kvh, int h0, int g, int32_t t0, int T, int32_t hi)
{
    const kv_cache *kv = j->kv;
    const int il = j->a->il, hd_k = j->hd_k, hd_v = j->hd_v, R = g * T;
    const size_t n_words = ((size_t)j->cb->n_ctx + 63) / 64;
    const uint8_t *k0 = kv_k_head(kv, il, kvh), *v0 = kv_v_head(kv, il, kvh);
    for (int k = 0; k < g; k++)
        for (int tq = 0; tq < T; tq++)
            memcpy(b->qt + (size_t)(k * T + tq) * hd_k, j->a->q + (size_t)(t0 + tq) * j->QD + (size_t)(h0 + k) * hd_k,
                   (size_t)hd_k * sizeof(float));
    for (int r = 0; r < R; r++) b->m[r] = -INFINITY, b->sum[r] = 0.0f;
    memset(b->vkq, 0, (size_t)R * hd_v * sizeof(float));
    memset(b->z16, 0, (size_t)hd_k * sizeof *b->z16);
    for (int32_t ic = 0; ic < hi; ic += FA_TILE) {
        const size_t w = (size_t)ic / 64;
        uint64_t any = 0;
        for (int tq = 0; tq < T; tq++) any |= b->bits[(size_t)tq * n_words + w];
        if (!any) continue; /* every token masks the whole tile */
        /* the tile's keys transposed (kt[d][tk]) and values as F32; rows
         * no token sees weigh 0 and are left 0 */
        const kinfer_fp16 *krows[FA_TILE];
        for (int tk = 0; tk < FA_TILE; tk++) {
            const int32_t r = ic + tk;
            if (!((any >> tk) & 1u) || r >= j->n_rows) {
                krows[tk] = b->z16;
                memset(b->vt + (size_t)tk * hd_v, 0, (size_t)hd_v * sizeof(float));
                continue;
            }
            krows[tk] = fa_row_f16(j, k0 + (size_t)r * kv->head_k, kv->type_k, hd_k, b->k16 + (size_t)tk * hd_k);
            const kinfer_fp16 *vr = fa_row_f16(j, v0 + (size_t)r * kv->head_v, kv->type_v, hd_v, b->v16);
            j->f16->to_float(vr, b->vt + (size_t)tk * hd_v, hd_v);
        }
        j->fk->pack_kt(b->kt, krows, hd_k);
        memset(b->kq, 0, (size_t)R * FA_TILE * sizeof(float));
        j->fk->gemm_f32(b->kq, b->qt, b->kt, R, hd_k, FA_TILE);
        for (int r = 0; r < R; r++) {
            float *kq = b->kq + (size_t)r * FA_TILE;
            const uint64_t seen = b->bits[(size_t)(r % T) * n_words + w];
            const float tmax = j->fk->mask_max(kq, FA_TILE, seen, j->a->scale);
            if (tmax == -INFINITY) {
                memset(kq, 0, FA_TILE * sizeof(float));
                continue;
            }
            const float mold = b->m[r], mnew = fmaxf(mold, tmax);
            if (mnew > mold) {
                const float ms = expf(mold - mnew);
                j->fk->scale_f32(hd_v, b->vkq + (size_t)r * hd_v, ms);
                b->sum[r] *= ms;
            }
            b->m[r] = mnew;
            b->sum[r] = (float)((double)b->sum[r] + j->fk->exp_sum(kq, FA_TILE, mnew));
        }
        j->fk->gemm_f32(b->vkq, b->kq, b->vt, R, FA_TILE, hd_v);
    }
    for (int k = 0; k < g; k++)
        for (int tq = 0; tq < T; tq++)
            fa_normalize(j->a->out + (size_t)(t0 + tq) * j->OD + (size_t)(h0 + k) * hd_v,
                         b->vkq + (size_t)(k * T + tq) * hd_v, b->sum[k * T + tq], hd_v);
}

/* b->bits for tokens t0 .. t0+T-1: bit r of token tq's words set when it
 * sees row r; returns the end of the last row any sees. */
static int32_t fa_tile_bits(const fa_job *j, fa_buf *b, int32_t t0, int T)
{
    const backend_attn *a = j->a;
    const size_t n_words = ((size_t)j->cb->n_ctx + 63) / 64;
    int32_t hi = 0;
    memset(b->bits, 0, (size_t)T * n_words * sizeof *b->bits);
    for (int tq = 0; tq < T; tq++) {
        const int32_t t = t0 + tq;
        const int32_t nv = kv_visible_rows(j->kv, a->view, a->il, a->pos[t], a->seq[t], a->swa, b->rows);
        uint64_t *bits = b->bits + (size_t)tq * n_words;
        for (int32_t i = 0; i < nv; i++) bits[b->rows[i] >> 6] |= (uint64_t)1 << (b->rows[i] & 63);
        if (nv > 0 && b->rows[nv - 1] + 1 > hi) hi = b->rows[nv - 1] + 1;
    }
    return hi;
}

/*
 * The split over threads; any split gives every row the same bits.
 * Tiled: units (tile of FA_TILE tokens, kv head, up to fa_tile_heads of its
 * query heads), claimed from a shared counter, the last tiles (those that
 * see the most cells) first, so the threads finish together.  Rows: with
 * enough tokens, whole tokens claimed the same way; else the (token, head)
 * pairs cut evenly, a thread taking its consecutive heads of one kv head
 * (up to FA_MAX_G) together.
 */
static void task_fa(void *arg, int ith, int nth)
{
    fa_job *j = arg;
    const backend_attn *a = j->a;
    fa_buf b = fa_buf_of(j->cb, j->hp, j->kv->type_k, ith);
    const int n_kvh = j->n_head / j->gqa;
    if (j->tiled) {
        const int G = fa_tile_heads(j->hp), per_kv = (j->gqa + G - 1) / G;
        const int32_t n_tiles = (a->n + FA_TILE - 1) / FA_TILE;
        const int64_t per_tile = (int64_t)n_kvh * per_kv, n_units = n_tiles * per_tile;
        int32_t tile_bits = -1, hi = 0;
        for (;;) {
            const int64_t u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
            if (u >= n_units) break;
            const int32_t tile = n_tiles - 1 - (int32_t)(u / per_tile), t0 = tile * FA_TILE;
            const int T = a->n - t0 < FA_TILE ? a->n - t0 : FA_TILE;
            const int rest = (int)(u % per_tile), kvh = rest / per_kv, first = rest % per_kv * G;
            const int g = j->gqa - first < G ? j->gqa - first : G;
            if (tile != tile_bits) hi = fa_tile_bits(j, &b, t0, T), tile_bits = tile;
            fa_tile(j, &b, kvh, kvh * j->gqa + first, g, t0, T, hi);
        }
        return;
    }
    const int by_token = a->n >= 2 * nth;
    const int64_t n_pairs = (int64_t)a->n * j->n_head, per = (n_pairs + nth - 1) / nth;
    int32_t t_vis = -1, nv = 0;
    float M[FA_MAX_G], S[FA_MAX_G];
    for (int first = 1;; first = 0) {
        int64_t i0, i1;
        if (by_token) {
            const int64_t k = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
            if (k >= a->n) break;
            i0 = (a->n - 1 - k) * j->n_head;
            i1 = i0 + j->n_head;
        } else {
            if (!first) break;
            i0 = per * ith;
            i1 = i0 + per < n_pairs ? i0 + per : n_pairs;
        }
        for (int64_t i = i0; i < i1;) {
            const int32_t t = (int32_t)(i / j->n_head);
            const int h0 = (int)(i % j->n_head), kvh = h0 / j->gqa;
            int g = 1; /* heads h0 .. h0+g-1: same token, same kv head, this thread's */
            while (g < FA_MAX_G && i + g < i1 && h0 + g < j->n_head && (h0 + g) / j->gqa == kvh) g++;
            if (t != t_vis) nv = kv_visible_rows(j->kv, a->view, a->il, a->pos[t], a->seq[t], a->swa, b.rows), t_vis = t;
            fa_rows(j, &b, t, kvh, h0, g, b.rows, nv, M, S, b.kq);
            for (int k = 0; k < g; k++)
                fa_normalize(a->out + (size_t)t * j->OD + (size_t)(h0 + k) * j->hd_v, b.kq + (size_t)k * j->hd_v,
                             S[k], j->hd_v);
            i += g;
        }
    }
}

/* split: thread ith's chunk of the view for every head, into its partials */
static void task_fa_chunk(void *arg, int ith, int nth)
{
    const fa_job *j = arg;
    (void)nth;
    fa_buf b = fa_buf_of(j->cb, j->hp, j->kv->type_k, ith);
    const int32_t c0 = ith * j->chunk, c1 = c0 + j->chunk < j->n_kv ? c0 + j->chunk : j->n_kv;
    int32_t lo = 0, hi;
    while (lo < j->nv && j->rows[lo] < c0) lo++;
    for (hi = lo; hi < j->nv && j->rows[hi] < c1; hi++) {}
    if (c0 >= j->n_kv) hi = lo;
    const int per_kv = (j->gqa + FA_MAX_G - 1) / FA_MAX_G;
    float M[FA_MAX_G], S[FA_MAX_G];
    for (int kvh = 0; kvh < j->n_head / j->gqa; kvh++)
        for (int p = 0; p < per_kv; p++) {
            const int h0 = kvh * j->gqa + p * FA_MAX_G;
            const int g = j->gqa - p * FA_MAX_G < FA_MAX_G ? j->gqa - p * FA_MAX_G : FA_MAX_G;
            fa_rows(j, &b, 0, kvh, h0, g, j->rows + lo, hi - lo, M, S, b.kq);
            for (int k = 0; k < g; k++) {
                float *part = b.part + (size_t)(h0 + k) * (2 + j->hd_v);
                part[0] = M[k], part[1] = S[k];
                memcpy(part + 2, b.kq + (size_t)k * j->hd_v, (size_t)j->hd_v * sizeof(float));
            }
        }
}

/* split: the chunks of each head merged in order (ggml's reduce_partials,
 * its products fused as its compiler fuses them) */
static void task_fa_merge(void *arg, int ith, int nth)
{
    const fa_job *j = arg;
    const int hd_v = j->hd_v;
    for (int h = ith; h < j->n_head; h += nth) {
        float *out = j->a->out + (size_t)h * hd_v;
        float M = -INFINITY, S = 0.0f;
        memset(out, 0, (size_t)hd_v * sizeof(float));
        for (int c = 0; c < nth; c++) {
            if ((int64_t)c * j->chunk >= j->n_kv) continue;
            const float *part = fa_buf_of(j->cb, j->hp, j->kv->type_k, c).part + (size_t)h * (2 + hd_v);
            if (part[1] == 0.0f) continue;
            const float mnew = fmaxf(M, part[0]);
            const float so = expf(M - mnew), sn = expf(part[0] - mnew);
            for (int d = 0; d < hd_v; d++) out[d] = fmaf(out[d], so, part[2 + d] * sn);
            S = fmaf(S, so, part[1] * sn);
            M = mnew;
        }
        if (S != 0.0f) fa_normalize(out, out, S, hd_v);
    }
}

/* llama.cpp's n_kv for this layer: its store's used rows padded to 256 */
static int32_t fa_view_cells(const kv_cache *kv, int swa, int32_t n_rows)
{
    int32_t used = 0;
    if (!swa || !kv->n_swa_slots || kv->region) {
        used = (int32_t)kv->hi_ubatch;
    } else {
        /* (the cells of later micro-batches have no slot yet) */
        for (uint32_t c = 0; c < kv->hi; c++)
            if (kv->cells[c].pos >= 0 && kv->slot[c] + 1 > used) used = kv->slot[c] + 1;
    }
    int32_t n = (used + 255) / 256 * 256;
    if (n < 256) n = 256;
    return n < n_rows ? n : n_rows;
}

void cpu_flash_attention(cpu_backend *cb, const backend_attn *a)
{
    const kv_cache *kv = a->kv;
    const model_hparams *hp = cb->hp;
    fa_job j = {.cb = cb, .a = a, .kv = kv, .fk = kinfer_fa_kernels_get(), .hp = hp,
                .hd_k = (int)kv->head_dim_k, .hd_v = (int)kv->head_dim_v, .n_head = a->n_head,
                .gqa = a->n_head / kv->n_head_kv, .n_rows = (int32_t)kv_layer_rows(kv, a->il)};
    j.k16 = kv->type_k == KINFER_TYPE_F16 || kv->type_k == KINFER_TYPE_F32;
    j.v16 = kv->type_v == KINFER_TYPE_F16 || kv->type_v == KINFER_TYPE_F32;
    j.f16 = kinfer_cpu_kernels_get(KINFER_TYPE_F16);
    j.kk = j.k16 ? j.f16 : kinfer_cpu_kernels_get(kv->type_k);
    j.kq = kinfer_cpu_kernels_get(j.kk->vec_dot_type);
    j.kvv = kinfer_cpu_kernels_get(kv->type_v);
    j.q_size = kinfer_row_size(j.kk->vec_dot_type, j.hd_k);
    j.QD = (int64_t)j.n_head * j.hd_k;
    j.OD = (int64_t)j.n_head * j.hd_v;
    if (j.k16) j.scores16 = kinfer_attn_scores_get(KINFER_TYPE_F16, j.hd_k, KINFER_F16_ORDER_VEC);
    const int32_t n_ubatch = a->n_ubatch > 0 ? a->n_ubatch : a->n;
    const int f16_both = j.k16 && j.v16, nth = kinfer_threadpool_size(cb->pool);
    j.tiled = !kv->region && f16_both && n_ubatch >= FA_TILE;
    if (!kv->region && f16_both && n_ubatch == 1 && a->n == 1) {
        j.n_kv = fa_view_cells(kv, a->swa, j.n_rows);
        if (j.n_kv >= FA_SPLIT_KV) {
            j.nv = kv_visible_rows(kv, a->view, a->il, a->pos[0], a->seq[0], a->swa, cb->dec_rows);
            j.rows = cb->dec_rows;
            j.chunk = (j.n_kv + nth - 1) / nth;
            kinfer_threadpool_run(cb->pool, task_fa_chunk, &j);
            kinfer_threadpool_run(cb->pool, task_fa_merge, &j);
            return;
        }
    }
    atomic_init(&j.next, 0);
    kinfer_threadpool_run(cb->pool, task_fa, &j);
}
