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
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "cpu/kernels.h"

/* y (n, rows) = W x, x (n, cols): one projection of the whole micro-batch. */
static kinfer_status matmul(kinfer_context *ctx, const wtensor *w, const float *x, int32_t n,
                            float *y)
{
    const char *dbg = getenv("KINFER_DBG_MM");
    kinfer_status st = kinfer_matmul_ex(ctx->pool, ctx->buf.mm, ctx->buf.mm_size, w->type, w->data,
                                     w->ne1, w->ne0, x, n, y, dbg ? atoi(dbg) : KINFER_MATMUL_QUANT);
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

/*
 * mask (nt, hi) for tokens [t0, t0 + nt): 0 where token t may see cell c, -inf
 * elsewhere.  A token sees a used cell of its own sequence whose position is
 * not after its own, and, on a sliding-window layer, less than n_swa behind.
 */
static void build_mask(const kinfer_context *ctx, const fwd_ubatch *ub, int32_t t0, int32_t nt,
                       uint32_t hi, int swa, float *mask)
{
    const kv_cell *cells = ctx->kv.cells;
    const int32_t n_swa = ctx->model->w.hp.n_swa;
    for (int32_t r = 0; r < nt; r++) {
        const int32_t t = t0 + r;
        const int32_t p = ub->pos[t], s = ub->seq[t];
        float *m = mask + (size_t)r * hi;
        for (uint32_t c = 0; c < hi; c++) {
            const kv_cell *cell = &cells[c];
            int see = cell->pos >= 0 && cell->pos <= p && kv_cell_has_seq(cell, s);
            if (see && swa && p - cell->pos >= n_swa) see = 0;
            m[c] = see ? 0.0f : -INFINITY;
        }
    }
}

/*
 * Grouped-query attention of the micro-batch over the cache of layer il.
 *   q   (n, n_head * hd_k)       already normed, rotated
 *   kf  (hi, n_head_kv * hd_k)   cached keys (this batch's included)
 *   vf  (hi, n_head_kv * hd_v)   cached values
 *   att (n, n_head * hd_v)       out
 * Query head h reads kv head h / (n_head / n_head_kv).
 */
static void attention(kinfer_context *ctx, const fwd_ubatch *ub, const layer_weights *L,
                      uint32_t hi)
{
    const model_hparams *hp = &ctx->model->w.hp;
    fwd_buffers *b = &ctx->buf;
    const int hd_k = hp->head_dim_k, hd_v = hp->head_dim_v;
    const int QD = hp->n_head * hd_k, KD = hp->n_head_kv * hd_k;
    const int VD = hp->n_head_kv * hd_v, OD = hp->n_head * hd_v;
    const int gqa = hp->n_head / hp->n_head_kv;

    for (int32_t t0 = 0; t0 < ub->n; t0 += FWD_ATT_CHUNK) {
        const int32_t nt = ub->n - t0 < FWD_ATT_CHUNK ? ub->n - t0 : FWD_ATT_CHUNK;
        build_mask(ctx, ub, t0, nt, hi, L->is_swa, b->att_mask);
        for (int h = 0; h < hp->n_head; h++) {
            const int kvh = h / gqa;
            /* s (nt, hi) = scale * q_h (nt, hd_k) . k_kvh (hi, hd_k)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, (int)hi, hd_k,
                        hp->attn_scale, b->q + (size_t)t0 * QD + (size_t)h * hd_k, QD,
                        b->kf + (size_t)kvh * hd_k, KD, 0.0f, b->att_s, (int)hi);
            for (int32_t r = 0; r < nt; r++) {
                float *s = b->att_s + (size_t)r * hi;
                kinfer_add(s, s, b->att_mask + (size_t)r * hi, hi);
                kinfer_softmax(s, hi);
            }
            /* att_h (nt, hd_v) = p (nt, hi) . v_kvh (hi, hd_v) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, hd_v, (int)hi, 1.0f,
                        b->att_s, (int)hi, b->vf + (size_t)kvh * hd_v, VD, 0.0f,
                        b->att + (size_t)t0 * OD + (size_t)h * hd_v, OD);
        }
    }
}

static kinfer_status layer_forward(kinfer_context *ctx, const fwd_ubatch *ub, int il)
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

    /* store this batch's keys and values, then read the cache back as f32
     * (the batch attends to itself through the cache, at cache precision) */
    for (int32_t t = 0; t < n; t++)
        kv_write(&ctx->kv, il, ub->cell[t], b->k + (size_t)t * KD, b->v + (size_t)t * VD);
    const uint32_t hi = ctx->kv.hi;
    kv_read_k(&ctx->kv, il, 0, hi, b->kf);                         /* kf (hi, KD) */
    kv_read_v(&ctx->kv, il, 0, hi, b->vf);                         /* vf (hi, VD) */
    attention(ctx, ub, L, hi);                                     /* att (n, OD) */

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

    for (int il = 0; il < hp->n_layer; il++) {
        if (ctx->params.abort_callback && ctx->params.abort_callback(ctx->params.abort_user_data))
            return ctx_fail(ctx, KINFER_E_ABORTED, "decode aborted by the callback at layer %d", il);
        if ((st = layer_forward(ctx, ub, il))) return st;
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
