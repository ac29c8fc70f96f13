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
#include <string.h>

#include "context.h"
#include "cpu/attn_kernels.h"
#include "cpu/kernels.h"
#include "threadpool.h"

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
    return (att_cells){.cell = cell, .pos = pos, .n = n, .one_seq = one_seq};
}

/*
 * Cache rows of layer il token t may see, in cell order: of its own
 * sequence, at a position not after its own and, on a sliding-window
 * layer, less than n_swa behind.  Returns how many.
 */
static int32_t visible_rows(const kinfer_context *ctx, const att_cells *ac, int il, kinfer_pos p,
                            kinfer_seq_id s, int swa, int32_t *rows)
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
    return nv;
}

typedef struct att_job {
    kinfer_context *ctx;
    const fwd_ubatch *ub;
    const layer_weights *L;
    const att_cells *ac;
    int il;
    kinfer_attn_wsum_fn wsum;
    kinfer_attn_scores_fn scores;  /* NULL: vec_dot */
} att_job;

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
    const att_job *j = arg;
    const kinfer_context *ctx = j->ctx;
    const fwd_ubatch *ub = j->ub;
    const model_hparams *hp = &ctx->model->w.hp;
    const kv_cache *kv = &ctx->kv;
    const fwd_buffers *b = &ctx->buf;
    const int hd_k = hp->head_dim_k, hd_v = hp->head_dim_v, n_head = hp->n_head;
    const int64_t QD = (int64_t)n_head * hd_k, OD = (int64_t)n_head * hd_v;
    const int gqa = n_head / hp->n_head_kv;
    const kinfer_cpu_kernels *kk = kinfer_cpu_kernels_get(kv->type_k);
    const kinfer_cpu_kernels *kq = kinfer_cpu_kernels_get(kk->vec_dot_type);
    const size_t k_head_bytes = kinfer_row_size(kv->type_k, hd_k);
    const size_t v_head_bytes = kinfer_row_size(kv->type_v, hd_v);
    const size_t q_size = kinfer_row_size(kk->vec_dot_type, hd_k);
    const size_t n_ctx = ctx->sz.n_ctx;
    const float scale = hp->attn_scale;
    att_thread_buf tb = att_buf_of(ctx, ith);

    const int64_t n_pairs = (int64_t)ub->n * n_head;
    const int64_t per = (n_pairs + nth - 1) / nth;
    const int64_t i0 = per * ith, i1 = i0 + per < n_pairs ? i0 + per : n_pairs;
    int32_t t_vis = -1, nv = 0;
    for (int64_t i = i0; i < i1;) {
        const int32_t t = (int32_t)(i / n_head);
        const int h = (int)(i % n_head), kvh = h / gqa;
        int g = 1; /* heads h .. h+g-1: same token, same kv head, this thread's */
        while (g < KINFER_ATTN_MAX_G && i + g < i1 && h + g < n_head && (h + g) / gqa == kvh) g++;
        if (t != t_vis) {
            nv = visible_rows(ctx, j->ac, j->il, ub->pos[t], ub->seq[t], j->L->is_swa, tb.rows);
            t_vis = t;
        }
        /* scores: q_h . k_c, with q_h in the K cache's dot type */
        uint8_t *qq = tb.qq;
        for (int k = 0; k < g; k++)
            kq->from_float_act(b->q + (size_t)t * QD + (size_t)(h + k) * hd_k, qq + k * q_size, hd_k);
        const uint8_t *k0 = kv->k[j->il] + (size_t)kvh * k_head_bytes;
        if (j->scores) {
            j->scores(tb.s, n_ctx, g, hd_k, k0, kv->row_k, tb.rows, nv, qq, q_size, scale);
        } else if (g > 1 && kk->vec_dot_x4) {
            /* one K row against all g heads (the unused slots repeat head h) */
            for (int k = g; k < 4; k++) memcpy(qq + k * q_size, qq, q_size);
            for (int32_t r = 0; r < nv; r++) {
                float d4[4];
                kk->vec_dot_x4(hd_k, k0 + (size_t)tb.rows[r] * kv->row_k, qq, q_size, d4);
                for (int k = 0; k < g; k++) tb.s[k * n_ctx + r] = d4[k] * scale;
            }
        } else {
            for (int k = 0; k < g; k++)
                for (int32_t r = 0; r < nv; r++)
                    tb.s[k * n_ctx + r] =
                        kk->vec_dot(hd_k, k0 + (size_t)tb.rows[r] * kv->row_k, qq + k * q_size) * scale;
        }
        for (int k = 0; k < g; k++) kinfer_attn_softmax(tb.s + k * n_ctx, nv);
        /* llama.cpp (no flash attention) multiplies V by the weights in V's
         * type: with an F16 cache they are rounded to F16 first */
        if (kv->type_v == KINFER_TYPE_F16)
            for (int k = 0; k < g; k++) kinfer_round_fp16(tb.s + k * n_ctx, nv);
        /* out_h = sum over visible cells of weight * v_c, v read in place */
        j->wsum(b->att + (size_t)t * OD + (size_t)h * hd_v, (size_t)hd_v, g, hd_v,
                kv->v[j->il] + (size_t)kvh * v_head_bytes, kv->row_v, tb.rows, tb.s, n_ctx, nv);
        i += g;
    }
}

static kinfer_status layer_forward(kinfer_context *ctx, const fwd_ubatch *ub, const att_cells *ac,
                                   int il)
{
    const model_weights *w = &ctx->model->w;
    const model_hparams *hp = &w->hp;
    const arch_desc *a = w->arch;
    const layer_weights *L = &w->layers[il];
    fwd_buffers *b = &ctx->buf;
    const int32_t n = ub->n;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k;
    const int64_t KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v;
    kinfer_status st;

    /* ---- attention ---- */
    rmsnorm_rows(b->xb, b->x, &L->attn_norm, n, E, hp->rms_eps);   /* xb (n, E) */
    if ((st = matmul(ctx, &L->wq, b->xb, n, b->q))) return st;     /* q (n, QD) */
    if ((st = matmul(ctx, &L->wk, b->xb, n, b->k))) return st;     /* k (n, KD) */
    if ((st = matmul(ctx, &L->wv, b->xb, n, b->v))) return st;     /* v (n, VD) */
    if (L->bq.data) {
        add_bias(b->q, &L->bq, n, QD);
        add_bias(b->k, &L->bk, n, KD);
        add_bias(b->v, &L->bv, n, VD);
    }
    if (L->q_norm.data) {
        /* QK-norm: each head's vector on its own */
        rmsnorm_rows(b->q, b->q, &L->q_norm, n * hp->n_head, hp->head_dim_k, hp->rms_eps);
        rmsnorm_rows(b->k, b->k, &L->k_norm, n * hp->n_head_kv, hp->head_dim_k, hp->rms_eps);
    }
    kinfer_rope_params rp = {
        .neox = a->rope_neox != 0,
        .n_rot = hp->n_rot,
        .freq_base = L->rope_base,
        .freq_scale = L->rope_scale,
        .attn_factor = 1.0f,
        .freq_factors = w->rope_freqs.data,
    };
    kinfer_rope(b->q, n, hp->n_head, hp->head_dim_k, ub->pos, &rp);
    kinfer_rope(b->k, n, hp->n_head_kv, hp->head_dim_k, ub->pos, &rp);

    /* store this batch's keys and values; the batch then attends to itself
     * through the cache, at cache precision */
    for (int32_t t = 0; t < n; t++)
        kv_write(&ctx->kv, il, ub->cell[t], b->k + (size_t)t * KD, b->v + (size_t)t * VD);
    att_job job = {.ctx = ctx, .ub = ub, .L = L, .ac = ac, .il = il,
                   .wsum = kinfer_attn_wsum_get(ctx->kv.type_v),
                   .scores = kinfer_attn_scores_get(ctx->kv.type_k, hp->head_dim_k)};
    kinfer_threadpool_run(ctx->pool, task_attention, &job);       /* att (n, OD) */

    if ((st = matmul(ctx, &L->wo, b->att, n, b->xb))) return st;   /* xb (n, E) */
    if (L->attn_post_norm.data) rmsnorm_rows(b->xb, b->xb, &L->attn_post_norm, n, E, hp->rms_eps);
    kinfer_add(b->x, b->x, b->xb, (int64_t)n * E);                 /* x += attn */

    /* ---- feed-forward ---- */
    rmsnorm_rows(b->xb, b->x, &L->ffn_norm, n, E, hp->rms_eps);    /* xb (n, E) */
    if ((st = matmul(ctx, &L->ffn_gate, b->xb, n, b->ffn_g))) return st; /* g (n, F) */
    if ((st = matmul(ctx, &L->ffn_up, b->xb, n, b->ffn_u))) return st;   /* u (n, F) */
    if (a->act == ARCH_ACT_GELU)
        kinfer_gelu_gate(b->ffn_g, b->ffn_g, b->ffn_u, (int64_t)n * F);
    else
        kinfer_silu_gate(b->ffn_g, b->ffn_g, b->ffn_u, (int64_t)n * F);
    if ((st = matmul(ctx, &L->ffn_down, b->ffn_g, n, b->xb))) return st; /* xb (n, E) */
    if (L->ffn_post_norm.data) rmsnorm_rows(b->xb, b->xb, &L->ffn_post_norm, n, E, hp->rms_eps);
    kinfer_add(b->x, b->x, b->xb, (int64_t)n * E);                 /* x += ffn */
    return KINFER_OK;
}

kinfer_status forward_ubatch(kinfer_context *ctx, const fwd_ubatch *ub)
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

    const att_cells ac = att_cells_find(ctx, ub);
    for (int il = 0; il < hp->n_layer; il++) {
        if (ctx->params.abort_callback && ctx->params.abort_callback(ctx->params.abort_user_data))
            return ctx_fail(ctx, KINFER_E_ABORTED, "decode aborted by the callback at layer %d", il);
        if ((st = layer_forward(ctx, ub, &ac, il))) return st;
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
