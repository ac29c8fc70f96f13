/*
 * forward.c — the transformer forward pass over one micro-batch, driven by
 * the architecture descriptor (arch.h).
 *
 * Per token: embed -> for each layer { x += attn(norm(x)); x += ffn(norm(x)) }
 * -> final norm -> logits (only for the tokens that asked).  Every projection
 * is one matrix-matrix product over the whole micro-batch (kinfer_matmul).
 * Attention runs over the KV cache: a token sees the cells of its own
 * sequence at positions <= its own (and within the window on sliding-window
 * layers), so several sequences can share one batch.
 */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "runtime/context.h"
#include "cpu/attn_kernels.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "core/threadpool.h"

/*
 * y (n, rows) = W x, x (n, cols): one projection of the whole micro-batch.
 * Always the quantized path: activations are quantized to the weight's dot
 * type as llama.cpp does (its logits are our reference), and every token's
 * row comes out the same whatever the batch size (the BLAS path would make
 * logits depend on how a prompt was split).
 */
static kinfer_status matmul(kinfer_context *ctx, const wtensor *w, const float *x, int32_t n,
                            float *y)
{
    kinfer_status st = kinfer_matmul_ex(ctx->pool, ctx->buf.mm, ctx->buf.mm_size, w->type, w->data,
                                        w->ne1, w->ne0, x, n, y, KINFER_MATMUL_QUANT);
    if (st) return ctx_fail(ctx, st, "matmul of a %s weight (%lld x %lld) failed: %s",
                            kinfer_type_name(w->type), (long long)w->ne1, (long long)w->ne0,
                            kinfer_status_str(st));
    return KINFER_OK;
}

/* out (n, dim) = rmsnorm of each row of x (n, dim) times w. */
static void rmsnorm_rows(float *out, const float *x, const wtensor *w, int32_t n, int64_t dim,
                         float eps)
{
    for (int32_t t = 0; t < n; t++)
        kinfer_rmsnorm(out + (size_t)t * dim, x + (size_t)t * dim, w->data, dim, eps);
}

/* x (n, dim) += bias (dim) per row. */
static void add_bias(float *x, const wtensor *b, int32_t n, int64_t dim)
{
    for (int32_t t = 0; t < n; t++)
        kinfer_add(x + (size_t)t * dim, x + (size_t)t * dim, b->data, dim);
}

/* Per-thread attention scratch: rows of the visible cells, the scores of up
 * to KINFER_ATTN_MAX_G query heads, those heads in the K cache's dot type. */
typedef struct att_thread_buf {
    int32_t *rows;   /* (n_ctx) cache rows the current token sees, in cell order */
    float *s;        /* (MAX_G, n_ctx) their scores, then weights, per head */
    void *qq;        /* (MAX_G, q_size bytes) query heads as the K cache's vec_dot_type */
} att_thread_buf;

static att_thread_buf att_buf_of(const kinfer_context *ctx, int ith)
{
    const size_t stride = ctx->buf.att_stride, n_ctx = ctx->sz.n_ctx;
    uint8_t *base = (uint8_t *)ctx->buf.att_tmp + (size_t)ith * stride;
    att_thread_buf tb = {
        .rows = (int32_t *)base,
        .s = (float *)(base + n_ctx * sizeof(int32_t)),
        .qq = base + n_ctx * (sizeof(int32_t) + KINFER_ATTN_MAX_G * sizeof(float)),
    };
    return tb;
}

/*
 * The cells a micro-batch may attend to, found once per micro-batch (the
 * cell table does not change while its layers run): used cells, in cell
 * order, seen by at least one sequence of the batch.  Each token then
 * filters this short list per layer instead of scanning the whole table.
 */
typedef struct att_cells {
    const int32_t *cell;   /* (n) cell indices, ascending */
    const int32_t *pos;    /* (n) their positions */
    int32_t n;
    int one_seq;           /* every token of the batch is of one sequence */
    /* a one-token micro-batch: the rows it sees on full (0) and
     * sliding-window (1) layers, the same on every layer of a kind (cells
     * and slots are shared), found by the first (nv -1: not yet), kept in
     * buf.dec_rows */
    int32_t dec_nv[2], dec_pad[2];
} att_cells;

static att_cells att_cells_find(kinfer_context *ctx, const fwd_ubatch *ub)
{
    uint64_t want[KV_SEQ_WORDS] = {0};
    for (int32_t t = 0; t < ub->n; t++) want[ub->seq[t] >> 6] |= 1ull << (ub->seq[t] & 63);
    int one_seq = 1;
    for (int32_t t = 1; t < ub->n; t++) one_seq &= ub->seq[t] == ub->seq[0];
    const kv_cell *cells = ctx->kv.cells;
    int32_t *cell = ctx->buf.att_cell, *pos = ctx->buf.att_pos, n = 0;
    for (uint32_t c = 0; c < ctx->kv.hi; c++) {
        if (cells[c].pos < 0) continue;
        uint64_t any = 0;
        for (int w = 0; w < KV_SEQ_WORDS; w++) any |= cells[c].seq[w] & want[w];
        if (!any) continue;
        cell[n] = (int32_t)c;
        pos[n] = cells[c].pos;
        n++;
    }
    return (att_cells){.cell = cell, .pos = pos, .n = n, .one_seq = one_seq, .dec_nv = {-1, -1}};
}

/* The period of llama.cpp's lanes over cache rows: 16 lanes of 4
 * accumulators in the one-token order, 16 lanes in the batch order. */
#define ATT_LANE_PERIOD 64

/*
 * Cache rows of layer il token t may see, in cell order: of its own
 * sequence, at a position not after its own and, on a sliding-window
 * layer, less than n_swa behind.  Returns how many.
 *
 * llama.cpp sums the weights and the weighted values in lanes by cache row
 * (attn_order.h), over every row from 0, the ones a token may not see
 * weighing 0.  When the visible rows are a run that starts past row 0 (a
 * sliding window that has moved on), *n_pad rows lead the list to keep
 * that phase: their scores are to be -inf, their weights 0 (head_weights).
 */
static int32_t visible_rows(const kinfer_context *ctx, const att_cells *ac, int il, kinfer_pos p,
                            kinfer_seq_id s, int swa, int32_t *rows, int32_t *n_pad)
{
    const kv_cache *kv = &ctx->kv;
    const int32_t n_swa = ctx->model->w.hp.n_swa;
    const int by_slot = kv->layer_swa && kv->layer_swa[il];
    int32_t nv = 0;
    for (int32_t r = 0; r < ac->n; r++) {
        const int32_t cp = ac->pos[r], c = ac->cell[r];
        if (cp > p || (swa && p - cp >= n_swa)) continue;
        if (!ac->one_seq && !kv_cell_has_seq(&kv->cells[c], s)) continue;
        rows[nv++] = by_slot ? kv->slot[c] : c;
    }
    const int32_t pad = nv > 0 ? rows[0] % ATT_LANE_PERIOD : 0;
    *n_pad = 0;
    if (pad > 0 && rows[nv - 1] - rows[0] == nv - 1 && (size_t)(nv + pad) <= ctx->sz.n_ctx) {
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

static att_shape att_shape_of(const kinfer_context *ctx)
{
    const model_hparams *hp = &ctx->model->w.hp;
    const kv_cache *kv = &ctx->kv;
    att_shape a = {.hd_k = hp->head_dim_k, .hd_v = hp->head_dim_v, .n_head = hp->n_head,
                   .gqa = hp->n_head / hp->n_head_kv, .n_ctx = ctx->sz.n_ctx,
                   .scale = hp->attn_scale_on_q ? 1.0f : hp->attn_scale};
    a.QD = (int64_t)a.n_head * a.hd_k;
    a.OD = (int64_t)a.n_head * a.hd_v;
    a.kk = kinfer_cpu_kernels_get(kv->type_k);
    a.kq = kinfer_cpu_kernels_get(a.kk->vec_dot_type);
    a.q_size = kinfer_row_size(a.kk->vec_dot_type, a.hd_k);
    return a;
}

typedef struct att_job {
    kinfer_context *ctx;
    const fwd_ubatch *ub;
    const layer_weights *L;
    att_cells *ac;
    int il;
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
    const kv_cache *kv = &j->ctx->kv;
    const size_t n_ctx = sh->n_ctx, q_size = sh->q_size;
    const int g = un.g;
    /* q_h . k_c, with q_h in the K cache's dot type */
    for (int k = 0; k < g; k++)
        sh->kq->from_float_act(j->ctx->buf.q + (size_t)t * sh->QD + (size_t)(un.h0 + k) * sh->hd_k,
                               qq + k * q_size, sh->hd_k);
    const uint8_t *k0 = kv_k_head(kv, j->il, un.kvh);
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
    const kv_cache *kv = &j->ctx->kv;
    j->wsum(j->ctx->buf.att + (size_t)t * sh->OD + (size_t)un.h0 * sh->hd_v + d0, (size_t)sh->hd_v, un.g, nd,
            kv_v_head(kv, j->il, un.kvh) + kinfer_row_size(kv->type_v, d0), kv->head_v, rows,
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
    const kinfer_context *ctx = j->ctx;
    const fwd_ubatch *ub = j->ub;
    const att_shape *sh = &j->sh;
    const int n_head = sh->n_head;
    att_thread_buf tb = att_buf_of(ctx, ith);

    /* the split: with enough tokens, each thread claims whole tokens from a
     * shared counter, the last (those that see the most cells) first, so
     * the threads finish together even when one is slowed down; with few
     * tokens, consecutive (token, head) pairs, evenly */
    const int by_token = ub->n >= 2 * nth;
    const int64_t n_pairs = (int64_t)ub->n * n_head;
    const int64_t per = (n_pairs + nth - 1) / nth;
    int32_t t_vis = -1, nv = 0, n_pad = 0;
    for (int first = 1;; first = 0) {
        int64_t i0, i1;
        if (by_token) {
            const int32_t k = atomic_fetch_add_explicit(&j->next_token, 1, memory_order_relaxed);
            if (k >= ub->n) break;
            i0 = (int64_t)(ub->n - 1 - k) * n_head;
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
                nv = visible_rows(ctx, j->ac, j->il, ub->pos[t], ub->seq[t], j->L->is_swa, tb.rows, &n_pad);
                t_vis = t;
            }
            const att_unit un = {.kvh = kvh, .h0 = h, .g = g};
            unit_scores(j, un, t, tb.rows, nv, tb.s, tb.qq);
            for (int k = 0; k < g; k++) head_weights(&ctx->kv, tb.s + k * sh->n_ctx, nv, n_pad);
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
    const att_thread_buf tb = att_buf_of(j->ctx, ith);
    for (int i = 0; i < j->n_units; i++)
        unit_scores(j, att_unit_of(&j->sh, i), 0, j->rows + r0, r1 - r0,
                    att_buf_of(j->ctx, i).s + r0, tb.qq);
}

static void task_att_weights(void *arg, int ith, int nth)
{
    const att_job *j = arg;
    int n_rows = 0; /* rows of weights: the heads of every unit */
    for (int i = 0; i < j->n_units; i++) n_rows += att_unit_of(&j->sh, i).g;
    const int k0 = n_rows * ith / nth, k1 = n_rows * (ith + 1) / nth;
    for (int i = 0, k = 0; i < j->n_units; i++) {
        const int g = att_unit_of(&j->sh, i).g;
        float *s = att_buf_of(j->ctx, i).s;
        for (int h = 0; h < g; h++, k++)
            if (k >= k0 && k < k1) head_weights(&j->ctx->kv, s + (size_t)h * j->sh.n_ctx, j->nv, j->n_pad);
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
                    att_buf_of(j->ctx, u).s);
        i += c1 - c0;
    }
}

/* att (n, OD) for layer il: the split over cells for one token that sees
 * many of them, else task_attention. */
static void attention(kinfer_context *ctx, att_job *j)
{
    const int nth = kinfer_threadpool_size(ctx->pool);
    const fwd_ubatch *ub = j->ub;
    if (ub->n == 1 && nth > 1) {
        att_cells *ac = j->ac;
        const int kind = j->L->is_swa != 0;
        int32_t *rows = ctx->buf.dec_rows + (size_t)kind * ctx->sz.n_ctx;
        if (ac->dec_nv[kind] < 0)
            ac->dec_nv[kind] = visible_rows(ctx, ac, j->il, ub->pos[0], ub->seq[0], j->L->is_swa, rows,
                                            &ac->dec_pad[kind]);
        const int32_t nv = ac->dec_nv[kind], n_pad = ac->dec_pad[kind];
        if (nv >= ATT_SPLIT_MIN_CELLS) {
            /* every unit at once, unit i's weights in scratch slice i
             * (context.c sizes the slices for it) */
            j->rows = rows, j->nv = nv, j->n_pad = n_pad;
            j->n_units = ctx->model->w.hp.n_head_kv * att_units_per_kv(&j->sh);
            kinfer_threadpool_run(ctx->pool, task_att_scores, j);
            kinfer_threadpool_run(ctx->pool, task_att_weights, j);
            kinfer_threadpool_run(ctx->pool, task_att_values, j);
            return;
        }
    }
    kinfer_threadpool_run(ctx->pool, task_attention, j);
}

/*
 * The elementwise steps between the matmuls, one token range per thread.
 * Each token's row goes through the same calls whatever the split, so the
 * results do not depend on the thread count.
 */
typedef struct rows_job {
    kinfer_context *ctx;
    const fwd_ubatch *ub;
    const layer_weights *L;
    int il;
    const kinfer_rope_params *rp;
} rows_job;

/* tokens [t0, t1) of this slice */
static void rows_of(const rows_job *j, int ith, int nth, int32_t *t0, int32_t *t1)
{
    *t0 = (int32_t)((int64_t)j->ub->n * ith / nth);
    *t1 = (int32_t)((int64_t)j->ub->n * (ith + 1) / nth);
}

/* Run a rows task on the pool, or inline for a few tokens (decode), where
 * waking the workers costs more than the work. */
static void run_rows(kinfer_context *ctx, kinfer_task_fn fn, rows_job *j)
{
    if (j->ub->n < 4)
        fn(j, 0, 1);
    else
        kinfer_threadpool_run(ctx->pool, fn, j);
}

/* q, k, v of the projections -> biases, QK-norm, RoPE, then k and v into
 * the cache. */
static void task_qkv(void *arg, int ith, int nth)
{
    const rows_job *j = arg;
    kinfer_context *ctx = j->ctx;
    const model_hparams *hp = &ctx->model->w.hp;
    const layer_weights *L = j->L;
    fwd_buffers *b = &ctx->buf;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k;
    const int64_t KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v;
    int32_t t0, t1;
    rows_of(j, ith, nth, &t0, &t1);
    const int32_t n = t1 - t0;
    if (n <= 0) return;
    float *q = b->q + (size_t)t0 * QD, *k = b->k + (size_t)t0 * KD, *v = b->v + (size_t)t0 * VD;
    if (L->bq.data) {
        add_bias(q, &L->bq, n, QD);
        add_bias(k, &L->bk, n, KD);
        add_bias(v, &L->bv, n, VD);
    }
    if (L->q_norm.data) {
        /* QK-norm: each head's vector on its own */
        rmsnorm_rows(q, q, &L->q_norm, n * hp->n_head, hp->head_dim_k, hp->rms_eps);
        rmsnorm_rows(k, k, &L->k_norm, n * hp->n_head_kv, hp->head_dim_k, hp->rms_eps);
    }
    kinfer_rope(q, n, hp->n_head, hp->head_dim_k, j->ub->pos + t0, j->rp);
    kinfer_rope(k, n, hp->n_head_kv, hp->head_dim_k, j->ub->pos + t0, j->rp);
    if (hp->attn_scale_on_q) kinfer_scale(q, hp->attn_scale, (int64_t)n * QD);
    /* store this batch's keys and values; the batch then attends to itself
     * through the cache, at cache precision */
    for (int32_t t = t0; t < t1; t++)
        kv_write(&ctx->kv, j->il, j->ub->cell[t], b->k + (size_t)t * KD, b->v + (size_t)t * VD);
}

/* The residual step after a block: xb = post_norm(xb) when the layer has
 * one, x += xb, then xb = next_norm(x) when asked (the next block's input). */
static void residual_rows(const rows_job *j, int ith, int nth, const wtensor *post_norm,
                          const wtensor *next_norm)
{
    const model_hparams *hp = &j->ctx->model->w.hp;
    fwd_buffers *b = &j->ctx->buf;
    const int64_t E = hp->n_embd;
    int32_t t0, t1;
    rows_of(j, ith, nth, &t0, &t1);
    const int32_t n = t1 - t0;
    if (n <= 0) return;
    float *x = b->x + (size_t)t0 * E, *xb = b->xb + (size_t)t0 * E;
    if (post_norm->data) rmsnorm_rows(xb, xb, post_norm, n, E, hp->rms_eps);
    kinfer_add(x, x, xb, (int64_t)n * E);
    if (next_norm) rmsnorm_rows(xb, x, next_norm, n, E, hp->rms_eps);
}

/* x += attention out; xb = ffn_norm(x) */
static void task_attn_out(void *arg, int ith, int nth)
{
    const rows_job *j = arg;
    residual_rows(j, ith, nth, &j->L->attn_post_norm, &j->L->ffn_norm);
}

/* The FFN's activation: llama.cpp's GELU (tanh) or SiLU gate */
static kinfer_gate_fn ffn_gate_fn(const kinfer_context *ctx)
{
    return ctx->model->w.arch->act == ARCH_ACT_GELU ? kinfer_gelu_gate : kinfer_silu_gate;
}

/* h = act(h) * u, token by token (kinfer_matmul_gated's rows) */
static void task_ffn_act(void *arg, int ith, int nth)
{
    const rows_job *j = arg;
    fwd_buffers *b = &j->ctx->buf;
    const int64_t F = j->ctx->model->w.hp.n_ff;
    const kinfer_gate_fn gate = ffn_gate_fn(j->ctx);
    int32_t t0, t1;
    rows_of(j, ith, nth, &t0, &t1);
    for (int32_t t = t0; t < t1; t++)
        gate(b->ffn_h + (size_t)t * F, b->ffn_h + (size_t)t * F, b->ffn_u + (size_t)t * F, F);
}

/* h (n, F) = act(gate xb) * (up xb): one pass over both matrices when they
 * share a type, else two products and the gate (context.c then gave the up
 * product a buffer of its own). */
static kinfer_status ffn_gate_up(kinfer_context *ctx, rows_job *rj)
{
    const layer_weights *L = rj->L;
    fwd_buffers *b = &ctx->buf;
    const int32_t n = rj->ub->n;
    kinfer_status st;
    if (L->ffn_gate.type != L->ffn_up.type) {
        if ((st = matmul(ctx, &L->ffn_gate, b->xb, n, b->ffn_h))) return st;
        if ((st = matmul(ctx, &L->ffn_up, b->xb, n, b->ffn_u))) return st;
        run_rows(ctx, task_ffn_act, rj);
        return KINFER_OK;
    }
    const wtensor *g = &L->ffn_gate;
    st = kinfer_matmul_gated(ctx->pool, b->mm, b->mm_size, g->type, g->data, L->ffn_up.data, g->ne1, g->ne0,
                             b->xb, n, b->ffn_h, ffn_gate_fn(ctx));
    if (st) return ctx_fail(ctx, st, "gated matmul of %s weights (2 x %lld x %lld) failed: %s",
                            kinfer_type_name(g->type), (long long)g->ne1, (long long)g->ne0,
                            kinfer_status_str(st));
    return KINFER_OK;
}

/* x += ffn out */
static void task_ffn_out(void *arg, int ith, int nth)
{
    const rows_job *j = arg;
    residual_rows(j, ith, nth, &j->L->ffn_post_norm, NULL);
}

/* xb = attn_norm(x) */
static void task_attn_norm(void *arg, int ith, int nth)
{
    const rows_job *j = arg;
    const model_hparams *hp = &j->ctx->model->w.hp;
    fwd_buffers *b = &j->ctx->buf;
    const int64_t E = hp->n_embd;
    int32_t t0, t1;
    rows_of(j, ith, nth, &t0, &t1);
    if (t1 <= t0) return;
    rmsnorm_rows(b->xb + (size_t)t0 * E, b->x + (size_t)t0 * E, &j->L->attn_norm, t1 - t0, E,
                 hp->rms_eps);
}

static kinfer_status layer_forward(kinfer_context *ctx, const fwd_ubatch *ub, att_cells *ac,
                                   int il)
{
    const model_weights *w = &ctx->model->w;
    const model_hparams *hp = &w->hp;
    const arch_desc *a = w->arch;
    const layer_weights *L = &w->layers[il];
    fwd_buffers *b = &ctx->buf;
    const int32_t n = ub->n;
    kinfer_status st;

    kinfer_rope_params rp = {
        .neox = a->rope_neox != 0,
        .n_rot = hp->n_rot,
        .freq_base = L->rope_base,
        .freq_scale = L->rope_scale,
        .attn_factor = 1.0f,
        .freq_factors = w->rope_freqs.data,
    };
    rows_job rj = {.ctx = ctx, .ub = ub, .L = L, .il = il, .rp = &rp};

    /* ---- attention ---- */
    run_rows(ctx, task_attn_norm, &rj);                            /* xb (n, E) */
    if ((st = matmul(ctx, &L->wq, b->xb, n, b->q))) return st;     /* q (n, QD) */
    if ((st = matmul(ctx, &L->wk, b->xb, n, b->k))) return st;     /* k (n, KD) */
    if ((st = matmul(ctx, &L->wv, b->xb, n, b->v))) return st;     /* v (n, VD) */
    run_rows(ctx, task_qkv, &rj);                                  /* rotated, cached */
    /* llama.cpp sums F16 attention in one order for a single token and in
     * another for a batch (attn_kernels.h): follow it */
    const int order = n > 1 ? KINFER_F16_ORDER_GEMM : KINFER_F16_ORDER_VEC;
    att_job job = {.ctx = ctx, .ub = ub, .L = L, .ac = ac, .il = il, .sh = att_shape_of(ctx),
                   .wsum = kinfer_attn_wsum_get(ctx->kv.type_v, hp->head_dim_v, order),
                   .scores = kinfer_attn_scores_get(ctx->kv.type_k, hp->head_dim_k, order)};
    atomic_init(&job.next_token, 0);
    attention(ctx, &job);                                          /* att (n, OD) */

    if ((st = matmul(ctx, &L->wo, b->att, n, b->xb))) return st;   /* xb (n, E) */
    run_rows(ctx, task_attn_out, &rj);                             /* x += attn; xb = norm */

    /* ---- feed-forward ---- */
    if ((st = ffn_gate_up(ctx, &rj))) return st;                   /* h (n, F) */
    if ((st = matmul(ctx, &L->ffn_down, b->ffn_h, n, b->xb))) return st; /* xb (n, E) */
    run_rows(ctx, task_ffn_out, &rj);                              /* x += ffn */
    return KINFER_OK;
}

/* tokens of ub (at most n_slice) through every layer, then their logits */
static kinfer_status forward_slice(kinfer_context *ctx, const fwd_ubatch *ub, att_cells *ac)
{
    const model_weights *w = &ctx->model->w;
    const model_hparams *hp = &w->hp;
    fwd_buffers *b = &ctx->buf;
    const int32_t n = ub->n;
    const int64_t E = hp->n_embd;

    /* x (n, E) = token embeddings (times sqrt(n_embd) for Gemma) */
    kinfer_status st = kinfer_get_rows(w->tok_embd.type, w->tok_embd.data, w->tok_embd.ne1, E,
                                       ub->token, n, b->x);
    if (st) return ctx_fail(ctx, st, "embedding lookup failed: %s", kinfer_status_str(st));
    if (hp->embd_scale != 1.0f) kinfer_scale(b->x, hp->embd_scale, (int64_t)n * E);

    for (int il = 0; il < hp->n_layer; il++) {
        if (ctx->params.abort_callback && ctx->params.abort_callback(ctx->params.abort_user_data))
            return ctx_fail(ctx, KINFER_E_ABORTED, "decode aborted by the callback at layer %d", il);
        if ((st = layer_forward(ctx, ub, ac, il))) return st;
    }

    /* Only the tokens that asked for logits: gather their rows into xb. */
    int32_t n_out = 0, row0 = -1;
    for (int32_t t = 0; t < n; t++) {
        if (ub->out_row[t] < 0) continue;
        if (row0 < 0) row0 = ub->out_row[t];
        kinfer_rmsnorm(b->xb + (size_t)n_out * E, b->x + (size_t)t * E, w->output_norm.data, E,
                       hp->rms_eps);                                /* xb (n_out, E) */
        n_out++;
    }
    if (n_out == 0) return KINFER_OK;
    /* logit rows of one micro-batch are consecutive (context.c assigns them
     * in token order) */
    float *logits = ctx->logits + (size_t)row0 * hp->n_vocab;     /* (n_out, n_vocab) */
    if ((st = matmul(ctx, &w->output, b->xb, n_out, logits))) return st;
    if (hp->logit_softcap > 0.0f) {
        const float c = hp->logit_softcap;
        for (size_t i = 0; i < (size_t)n_out * hp->n_vocab; i++)
            logits[i] = c * tanhf(logits[i] / c);
    }
    return KINFER_OK;
}

/*
 * A micro-batch in slices of up to n_slice tokens (context.h), in order.
 * The cells of the whole micro-batch are taken before and its
 * sliding-window slots assigned, so the cache is laid out as for one pass;
 * a slice's tokens see the earlier slices' keys and values, written by
 * then, and no later one's (later positions).  The bits are the whole
 * micro-batch's: the kernels pick llama.cpp's order by token count (the
 * batched attention from 2 tokens, the tiled matmuls from 8, gemm.h) and
 * group tokens by 8 from the start of a call, so slices start on a
 * multiple of 8 and none is left shorter than 8.
 */
kinfer_status forward_ubatch(kinfer_context *ctx, const fwd_ubatch *ub)
{
    att_cells ac = att_cells_find(ctx, ub);
    const int32_t most = (int32_t)ctx->sz.n_slice, min = KINFER_GEMM_TILED_MIN_TOKENS;
    for (int32_t i0 = 0, m; i0 < ub->n; i0 += m) {
        m = ub->n - i0 < most ? ub->n - i0 : most;
        if (ub->n - i0 - m > 0 && ub->n - i0 - m < min) m -= KINFER_GEMM_MAX_NT;
        const fwd_ubatch slice = {
            .n = m,
            .token = ub->token + i0,
            .pos = ub->pos + i0,
            .seq = ub->seq + i0,
            .cell = ub->cell + i0,
            .out_row = ub->out_row + i0,
        };
        kinfer_status st = forward_slice(ctx, &slice, &ac);
        if (st) return st;
    }
    return KINFER_OK;
}
