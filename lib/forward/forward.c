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

#include <string.h>

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

/* A backend's failure, with its message, as the forward pass's. */
static kinfer_status failed(const forward *f, kinfer_status st)
{
    return status_fail(f->errmsg, f->errmsg_size, st, "%s", f->be->errmsg);
}

kinfer_status forward_init(forward *f, int32_t n_slice)
{
    const model_hparams *hp = &f->w->hp;
    fwd_buffers *b = &f->buf;
    const size_t nb = (size_t)n_slice, E = (size_t)hp->n_embd;
    const backend_ops *be = f->be->ops;
    f->n_slice = n_slice;
    void *x = NULL, *xb = NULL, *q = NULL;
    kinfer_status st = be->alloc(f->be, nb * E * sizeof(float), &x);
    if (!st) st = be->alloc(f->be, nb * E * sizeof(float), &xb);
    if (!st) st = be->alloc(f->be, nb * attn_ffn_floats(hp) * sizeof(float), &q);
    b->x = x, b->xb = xb, b->q = q;
    if (st) return failed(f, st);
    b->k = b->q + nb * (size_t)hp->n_head * hp->head_dim_k;
    b->v = b->k + nb * (size_t)hp->n_head_kv * hp->head_dim_k;
    b->att = b->v + nb * (size_t)hp->n_head_kv * hp->head_dim_v;
    b->ffn_h = b->q;
    return KINFER_OK;
}

void forward_free(forward *f)
{
    if (!f->be) return; /* nothing was allocated */
    f->be->ops->dealloc(f->be, f->buf.x);
    f->be->ops->dealloc(f->be, f->buf.xb);
    f->be->ops->dealloc(f->be, f->buf.q); /* and k, v, att, ffn_h with it */
    f->buf = (fwd_buffers){0};
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

/* q (n, QD), k (n, KD), v (n, VD) of the n rows in, with their biases. */
static kinfer_status qkv_proj(const forward *f, const layer_weights *L, const float *in, int32_t n)
{
    const backend_ops *be = f->be->ops;
    const fwd_buffers *b = &f->buf;
    kinfer_status st;
    if ((st = be->matmul(f->be, &L->wq, in, n, b->q))) return st;
    if ((st = be->matmul(f->be, &L->wk, in, n, b->k))) return st;
    if ((st = be->matmul(f->be, &L->wv, in, n, b->v))) return st;
    if (L->bq.data) {
        be->add_bias(f->be, b->q, &L->bq, n);
        be->add_bias(f->be, b->k, &L->bk, n);
        be->add_bias(f->be, b->v, &L->bv, n);
    }
    return KINFER_OK;
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
    if ((st = qkv_proj(f, L, b->xb, n))) return st;
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

/* xb = ffn(xb): the dense gated FFN, or the layer's mixture of experts */
static kinfer_status ffn_block(const forward *f, int32_t n, const layer_weights *L)
{
    const backend_ops *be = f->be->ops;
    const fwd_buffers *b = &f->buf;
    const arch_desc *a = f->w->arch;
    kinfer_status st;
    if (L->ffn_gate_inp.data) {
        if (!be->moe_ffn)
            return status_fail(f->be->errmsg, sizeof f->be->errmsg, KINFER_E_UNSUPPORTED,
                               "the %s backend cannot run mixture-of-experts layers", be->name);
        const backend_moe m = {
            .gate_inp = &L->ffn_gate_inp, .gate_exps = &L->ffn_gate_exps, .up_exps = &L->ffn_up_exps,
            .down_exps = &L->ffn_down_exps, .n_used = f->w->hp.n_expert_used,
            .norm_weights = a->moe_norm_weights, .act = a->act,
        };
        return be->moe_ffn(f->be, &m, b->xb, n, b->xb);                /* xb (n, E) */
    }
    st = be->matmul_gated(f->be, &L->ffn_gate, &L->ffn_up, a->act, b->xb, n, b->ffn_h);
    if (st) return st;                                             /* h (n, F) */
    return be->matmul(f->be, &L->ffn_down, b->ffn_h, n, b->xb);    /* xb (n, E) */
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
    if ((st = ffn_block(f, n, L))) return st;                      /* xb (n, E) */
    residual(f, n, &L->ffn_post_norm, NULL);                       /* x += ffn */
    return KINFER_OK;
}

/* ------------------------------------------------------------ encoders */

/* One post-norm encoder layer (BERT family) on x (n, E): x = LN(x +
 * attn(x)), x = LN(x + ffn(x)).  q/k/v come from x itself and stay in
 * f32: the batch attends to itself, each sequence to its own tokens. */
static kinfer_status encoder_layer(const forward *f, const fwd_ubatch *ub, int il)
{
    const model_hparams *hp = &f->w->hp;
    const arch_desc *arch = f->w->arch;
    const layer_weights *L = &f->w->layers[il];
    const backend_ops *be = f->be->ops;
    const fwd_buffers *b = &f->buf;
    const int32_t n = ub->n;
    const int64_t E = hp->n_embd;
    kinfer_status st;
    if ((st = qkv_proj(f, L, b->x, n))) return st;
    if (!arch->pos_embd) { /* rotary positions (nomic-bert) */
        const kinfer_rope_params rp = model_layer_rope(f->w, il, (uint32_t)hp->n_ctx_train);
        be->rope(f->be, b->q, n, hp->n_head, hp->head_dim_k, ub->pos, &rp);
        be->rope(f->be, b->k, n, hp->n_head_kv, hp->head_dim_k, ub->pos, &rp);
    }
    const backend_self_attn a = {
        .n = n, .seq = ub->seq, .q = b->q, .k = b->k, .v = b->v, .out = b->att,
        .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim_k = hp->head_dim_k,
        .head_dim_v = hp->head_dim_v, .scale = hp->attn_scale,
    };
    if ((st = be->self_attention(f->be, &a))) return st;             /* att (n, OD) */
    if ((st = be->matmul(f->be, &L->wo, b->att, n, b->xb))) return st; /* xb (n, E) */
    if (L->bo.data) be->add_bias(f->be, b->xb, &L->bo, n);
    be->add(f->be, b->xb, b->x, (int64_t)n * E);
    be->layernorm(f->be, b->x, b->xb, &L->attn_out_norm, &L->attn_out_norm_b, n, E, hp->rms_eps);

    if (arch->ffn_ungated) {                                          /* h (n, F) */
        if ((st = be->matmul(f->be, &L->ffn_up, b->x, n, b->ffn_h))) return st;
        if (L->ffn_up_b.data) be->add_bias(f->be, b->ffn_h, &L->ffn_up_b, n);
        be->gelu(f->be, b->ffn_h, (int64_t)n * hp->n_ff);
    } else if ((st = be->matmul_gated(f->be, &L->ffn_gate, &L->ffn_up, arch->act, b->x, n, b->ffn_h))) {
        return st;
    }
    if ((st = be->matmul(f->be, &L->ffn_down, b->ffn_h, n, b->xb))) return st; /* xb (n, E) */
    if (L->ffn_down_b.data) be->add_bias(f->be, b->xb, &L->ffn_down_b, n);
    be->add(f->be, b->xb, b->x, (int64_t)n * E);
    be->layernorm(f->be, b->x, b->xb, &L->layer_out_norm, &L->layer_out_norm_b, n, E, hp->rms_eps);
    return KINFER_OK;
}

/* An encoder's micro-batch (one slice: attention needs every token):
 * embeddings -> layers -> each token's hidden state as its embedding row. */
static kinfer_status encoder_slice(const forward *f, const fwd_ubatch *ub)
{
    const model_weights *w = f->w;
    const model_hparams *hp = &w->hp;
    const backend_ops *be = f->be->ops;
    const fwd_buffers *b = &f->buf;
    const int32_t n = ub->n;
    const int64_t E = hp->n_embd;
    if (!be->self_attention)
        return status_fail(f->errmsg, f->errmsg_size, KINFER_E_UNSUPPORTED,
                           "the %s backend cannot run an encoder (%s)", be->name, w->arch->name);
    /* x (n, E) = token + type-0 (+ position) embeddings, LayerNorm */
    kinfer_status st = be->get_rows(f->be, &w->tok_embd, ub->token, n, b->x);
    if (st) return failed(f, st);
    if (w->type_embd.data) be->add_bias(f->be, b->x, &w->type_embd, n);
    if (w->pos_embd.data) {
        if ((st = be->get_rows(f->be, &w->pos_embd, ub->pos, n, b->xb))) return failed(f, st);
        be->add(f->be, b->x, b->xb, (int64_t)n * E);
    }
    be->layernorm(f->be, b->x, b->x, &w->tok_norm, &w->tok_norm_b, n, E, hp->rms_eps);
    for (int il = 0; il < hp->n_layer; il++) {
        if (f->abort_callback && f->abort_callback(f->abort_user_data))
            return status_fail(f->errmsg, f->errmsg_size, KINFER_E_ABORTED,
                               "decode aborted by the callback at layer %d", il);
        if ((st = encoder_layer(f, ub, il))) return failed(f, st);
    }
    for (int32_t t = 0; t < n; t++)
        if (ub->out_row[t] >= 0 && ub->embd)
            memcpy(ub->embd + (size_t)ub->out_row[t] * E, b->x + (size_t)t * E, (size_t)E * sizeof(float));
    st = be->sync(f->be);
    return st ? failed(f, st) : KINFER_OK;
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

    kinfer_status st = be->begin(f->be, f->kv, n, ub->pos, ub->seq, ub->cell);
    if (st) return failed(f, st);
    /* x (n, E) = token embeddings (times sqrt(n_embd) for Gemma) */
    st = be->get_rows(f->be, &w->tok_embd, ub->token, n, b->x);
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
    if (n_out == 0 || ub->embd) {
        st = be->sync(f->be);
        return st ? failed(f, st) : KINFER_OK;
    }
    float *logits = ub->logits + (size_t)row0 * hp->n_vocab;       /* (n_out, n_vocab) */
    st = be->logits(f->be, &w->output, b->xb, n_out, hp->logit_softcap, logits);
    if (!st) st = be->sync(f->be);
    return st ? failed(f, st) : KINFER_OK;
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
    if (f->w->arch->encoder) {
        if (ub->n > f->n_slice)
            return status_fail(f->errmsg, f->errmsg_size, KINFER_E_INVALID_ARG,
                               "an encoder sees a micro-batch at once: %d tokens, room for %d",
                               ub->n, f->n_slice);
        return encoder_slice(f, ub);
    }
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
