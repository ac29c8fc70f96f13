/*
 * forward.c — the transformer forward pass over one micro-batch, driven by
 * the architecture descriptor (model/arch.h), on a backend.
 *
 * Per token: embed -> for each layer { x += attn(norm(x)); x += ffn(norm(x)) }
 * -> final norm -> logits (only for the tokens that asked).  Every projection
 * is one matrix-matrix product over the whole slice.  Attention runs over
 * the KV cache: a token sees the cells of its own sequence at positions <=
 * its own (and within the window on sliding-window layers), so several
 * sequences can share one batch.
 */
#include "forward/forward.h"

#include <stdlib.h>

#include "core/status.h"

/* Per token: the attention's q, k, v and output, which the FFN's gated
 * product reuses (the two are never live at once). */
static uint64_t attn_ffn_floats(const model_hparams *hp)
{
    const uint64_t attn = (uint64_t)hp->n_head * (hp->head_dim_k + hp->head_dim_v) +
                          (uint64_t)hp->n_head_kv * (hp->head_dim_k + hp->head_dim_v);
    return attn > (uint64_t)hp->n_ff ? attn : (uint64_t)hp->n_ff;
}

uint64_t forward_buffer_bytes(const model_hparams *hp, int32_t n_slice)
{
    return (uint64_t)n_slice * (2 * (uint64_t)hp->n_embd + attn_ffn_floats(hp)) * sizeof(float);
}

kinfer_status forward_init(forward *f, int32_t n_slice)
{
    const model_hparams *hp = &f->w->hp;
    fwd_buffers *b = &f->buf;
    const size_t nb = (size_t)n_slice, E = (size_t)hp->n_embd;
    f->n_slice = n_slice;
    b->x = calloc(nb * E, sizeof(float));
    b->xb = calloc(nb * E, sizeof(float));
    b->q = calloc(nb * attn_ffn_floats(hp), sizeof(float));
    if (!b->x || !b->xb || !b->q)
        return status_fail(f->errmsg, f->errmsg_size, KINFER_E_NOMEM,
                           "out of memory for %llu bytes of activations",
                           (unsigned long long)forward_buffer_bytes(hp, n_slice));
    b->k = b->q + nb * (size_t)hp->n_head * hp->head_dim_k;
    b->v = b->k + nb * (size_t)hp->n_head_kv * hp->head_dim_k;
    b->att = b->v + nb * (size_t)hp->n_head_kv * hp->head_dim_v;
    b->ffn_h = b->q;
    return KINFER_OK;
}

void forward_free(forward *f)
{
    free(f->buf.x);
    free(f->buf.xb);
    free(f->buf.q); /* and k, v, att, ffn_h with it */
    f->buf = (fwd_buffers){0};
}

/* A backend's failure, with its message, as the forward pass's. */
static kinfer_status failed(const forward *f, kinfer_status st)
{
    return status_fail(f->errmsg, f->errmsg_size, st, "%s", f->be->errmsg);
}

/* The residual step after a block: xb = post_norm(xb) when the layer has
 * one, x += xb, then xb = next_norm(x) when asked (the next block's input). */
static void residual(const forward *f, int32_t n, const wtensor *post_norm, const wtensor *next_norm)
{
    const model_hparams *hp = &f->w->hp;
    const backend_ops *be = f->be->ops;
    const fwd_buffers *b = &f->buf;
    const int64_t E = hp->n_embd;
    if (post_norm->data) be->rmsnorm(f->be, b->xb, b->xb, post_norm, n, E, hp->rms_eps);
    be->add(f->be, b->x, b->xb, (int64_t)n * E);
    if (next_norm) be->rmsnorm(f->be, b->xb, b->x, next_norm, n, E, hp->rms_eps);
}

/* q, k, v of xb, with biases, QK-norm and RoPE; k and v into the cache.
 * The batch then attends to itself through the cache, at cache precision. */
static kinfer_status attn_qkv(const forward *f, const fwd_ubatch *ub, int il)
{
    const model_hparams *hp = &f->w->hp;
    const layer_weights *L = &f->w->layers[il];
    const backend_ops *be = f->be->ops;
    const fwd_buffers *b = &f->buf;
    const int32_t n = ub->n;
    kinfer_status st;
    if ((st = be->matmul(f->be, &L->wq, b->xb, n, b->q))) return st;  /* q (n, QD) */
    if ((st = be->matmul(f->be, &L->wk, b->xb, n, b->k))) return st;  /* k (n, KD) */
    if ((st = be->matmul(f->be, &L->wv, b->xb, n, b->v))) return st;  /* v (n, VD) */
    if (L->bq.data) {
        be->add_bias(f->be, b->q, &L->bq, n);
        be->add_bias(f->be, b->k, &L->bk, n);
        be->add_bias(f->be, b->v, &L->bv, n);
    }
    if (L->q_norm.data) {
        /* QK-norm: each head's vector on its own */
        be->rmsnorm(f->be, b->q, b->q, &L->q_norm, (int64_t)n * hp->n_head, hp->head_dim_k, hp->rms_eps);
        be->rmsnorm(f->be, b->k, b->k, &L->k_norm, (int64_t)n * hp->n_head_kv, hp->head_dim_k, hp->rms_eps);
    }
    const kinfer_rope_params rp = model_layer_rope(f->w, il, kv_ctx_seq(f->kv));
    be->rope(f->be, b->q, n, hp->n_head, hp->head_dim_k, ub->pos, &rp);
    be->rope(f->be, b->k, n, hp->n_head_kv, hp->head_dim_k, ub->pos, &rp);
    if (hp->attn_scale_on_q) be->scale(f->be, b->q, hp->attn_scale, (int64_t)n * hp->n_head * hp->head_dim_k);
    be->kv_store(f->be, f->kv, il, ub->cell, n, b->k, b->v);
    return KINFER_OK;
}

static kinfer_status layer_forward(const forward *f, const fwd_ubatch *ub, const kv_view *view, int il)
{
    const model_weights *w = f->w;
    const model_hparams *hp = &w->hp;
    const layer_weights *L = &w->layers[il];
    const backend_ops *be = f->be->ops;
    const fwd_buffers *b = &f->buf;
    const int32_t n = ub->n;
    kinfer_status st;

    /* ---- attention ---- */
    be->rmsnorm(f->be, b->xb, b->x, &L->attn_norm, n, hp->n_embd, hp->rms_eps); /* xb (n, E) */
    if ((st = attn_qkv(f, ub, il))) return st;               /* q; k, v cached */
    const backend_attn a = {
        .kv = f->kv, .view = view, .il = il, .swa = L->is_swa, .n = n, .pos = ub->pos,
        .seq = ub->seq, .q = b->q, .out = b->att, .n_head = hp->n_head,
        .scale = hp->attn_scale_on_q ? 1.0f : hp->attn_scale, .n_ubatch = ub->n_ubatch,
    };
    be->attention(f->be, &a);                                      /* att (n, OD) */
    if ((st = be->matmul(f->be, &L->wo, b->att, n, b->xb))) return st; /* xb (n, E) */
    residual(f, n, &L->attn_post_norm, &L->ffn_norm);              /* x += attn; xb = norm */

    /* ---- feed-forward ---- */
    st = be->matmul_gated(f->be, &L->ffn_gate, &L->ffn_up, w->arch->act, b->xb, n, b->ffn_h);
    if (st) return st;                                             /* h (n, F) */
    if ((st = be->matmul(f->be, &L->ffn_down, b->ffn_h, n, b->xb))) return st; /* xb (n, E) */
    residual(f, n, &L->ffn_post_norm, NULL);                       /* x += ffn */
    return KINFER_OK;
}

/* tokens of ub (at most n_slice) through every layer, then their logits */
static kinfer_status forward_slice(const forward *f, const fwd_ubatch *ub, const kv_view *view)
{
    const model_weights *w = f->w;
    const model_hparams *hp = &w->hp;
    const backend_ops *be = f->be->ops;
    const fwd_buffers *b = &f->buf;
    const int32_t n = ub->n;
    const int64_t E = hp->n_embd;

    /* x (n, E) = token embeddings (times sqrt(n_embd) for Gemma) */
    kinfer_status st = be->get_rows(f->be, &w->tok_embd, ub->token, n, b->x);
    if (st) return failed(f, st);
    if (hp->embd_scale != 1.0f) be->scale(f->be, b->x, hp->embd_scale, (int64_t)n * E);

    for (int il = 0; il < hp->n_layer; il++) {
        if (f->abort_callback && f->abort_callback(f->abort_user_data))
            return status_fail(f->errmsg, f->errmsg_size, KINFER_E_ABORTED,
                               "decode aborted by the callback at layer %d", il);
        if ((st = layer_forward(f, ub, view, il))) return failed(f, st);
    }

    /* Only the tokens that asked for output: their normed rows into xb, or
     * into the embedding rows, which are the whole output. */
    int32_t n_out = 0, row0 = -1;
    for (int32_t t = 0; t < n; t++) {
        if (ub->out_row[t] < 0) continue;
        if (row0 < 0) row0 = ub->out_row[t];
        float *dst = ub->embd ? ub->embd + (size_t)ub->out_row[t] * E : b->xb + (size_t)n_out * E;
        be->rmsnorm(f->be, dst, b->x + (size_t)t * E, &w->output_norm, 1, E,
                    hp->rms_eps);                                    /* xb (n_out, E) */
        n_out++;
    }
    if (n_out == 0 || ub->embd) return be->sync(f->be);
    float *logits = ub->logits + (size_t)row0 * hp->n_vocab;       /* (n_out, n_vocab) */
    if ((st = be->matmul(f->be, &w->output, b->xb, n_out, logits))) return failed(f, st);
    if (hp->logit_softcap > 0.0f) be->softcap(f->be, logits, hp->logit_softcap, (int64_t)n_out * hp->n_vocab);
    return be->sync(f->be);
}

/*
 * A micro-batch in slices of up to n_slice tokens, in order.  The cells of
 * the whole micro-batch are taken before and its sliding-window slots
 * assigned, so the cache is laid out as for one pass; a slice's tokens see
 * the earlier slices' keys and values, written by then, and no later one's
 * (later positions).  The bits are the whole micro-batch's: slices start on
 * a multiple of BACKEND_TOKEN_GROUP and none is left shorter.
 */
kinfer_status forward_ubatch(forward *f, const fwd_ubatch *ub)
{
    const kv_view view = kv_view_of(f->kv, ub->seq, ub->n);
    const int32_t most = f->n_slice, min = BACKEND_TOKEN_GROUP;
    for (int32_t i0 = 0, m; i0 < ub->n; i0 += m) {
        m = ub->n - i0 < most ? ub->n - i0 : most;
        if (ub->n - i0 - m > 0 && ub->n - i0 - m < min) m -= BACKEND_TOKEN_GROUP;
        const fwd_ubatch slice = {
            .n = m,
            .token = ub->token + i0,
            .pos = ub->pos + i0,
            .seq = ub->seq + i0,
            .cell = ub->cell + i0,
            .out_row = ub->out_row + i0,
            .logits = ub->logits,
            .n_ubatch = ub->n,
            .embd = ub->embd,
        };
        kinfer_status st = forward_slice(f, &slice, &view);
        if (st) return st;
    }
    return KINFER_OK;
}
