/*
 * context.c — contexts: creation (KV cache, backend, buffers), kinfer_decode
 * (batch validation, micro-batches, logits), and the KV-cache calls of the
 * API.
 */
#include "runtime/context.h"

#include <stdlib.h>
#include <string.h>

#include "backend/cpu.h"
#include "backend/cuda_backend.h"

kinfer_status kinfer_context_new(const kinfer_model *model, const kinfer_context_params *params,
                                 kinfer_context **out)
{
    if (!out) return KINFER_E_INVALID_ARG;
    kinfer_context *ctx = *out = calloc(1, sizeof *ctx);
    if (!ctx) return KINFER_E_NOMEM;
    if (!model || !model->gguf) return ctx_fail(ctx, KINFER_E_INVALID_ARG, "model is NULL or not loaded");
    if (!model->w.arch)
        return ctx_fail(ctx, KINFER_E_UNSUPPORTED, "cannot run this model: %s", model->w.unsupported);
    kinfer_context_params defaults = kinfer_context_default_params();
    ctx->params = params ? *params : defaults;
    ctx->model = model;
    kinfer_status st = context_plan(model, &ctx->params, &ctx->sz, ctx->errmsg, sizeof ctx->errmsg);
    if (st) return st;
    const context_sizes *sz = &ctx->sz;
    const int32_t n_layer = model->w.hp.n_layer;
    const int on_gpu = sz->gpu.n_gpu_layers > 0;
    if (on_gpu && sz->gpu.n_gpu_layers < n_layer)
        return ctx_fail(ctx, KINFER_E_UNSUPPORTED, "n_gpu_layers: %d of the model's %d layers would go "
                        "to the GPU, but splitting a model between CPU and GPU is not there yet "
                        "(issue 24: the layer split); use 0, or %d or more for all of them",
                        sz->gpu.n_gpu_layers, n_layer, n_layer);
    if (sz->gpu_simulated && on_gpu)
        return ctx_fail(ctx, KINFER_E_DEVICE, "n_gpu_layers: %d layers planned for a GPU of %llu "
                        "bytes, but there is no usable GPU", sz->gpu.n_gpu_layers,
                        (unsigned long long)ctx->params.gpu_budget_bytes);
    if (on_gpu && sz->embeddings)
        return ctx_fail(ctx, KINFER_E_UNSUPPORTED, "embeddings do not run on the GPU yet "
                        "(use n_gpu_layers = 0)");
    if (on_gpu && sz->kv_region)
        return ctx_fail(ctx, KINFER_E_UNSUPPORTED, "kv_seq_regions does not run on the GPU yet "
                        "(use n_gpu_layers = 0)");
    if (on_gpu && (st = backend_cuda_check(&model->w, sz->type_k, sz->type_v, ctx->errmsg,
                                           sizeof ctx->errmsg)))
        return st;

    st = kv_init(&ctx->kv, &model->w, sz->n_ctx, sz->n_seq_max, sz->n_batch, sz->kv_region,
                 sz->type_k, sz->type_v);
    if (st)
        return ctx_fail(ctx, st, "cannot allocate the KV cache (%llu bytes for %u cells)",
                        (unsigned long long)sz->kv_bytes, sz->n_ctx);
    if (on_gpu) {
        /* every layer and the output on device 0 (the host cache keeps the cell table) */
        const cuda_backend_shape shape = {.w = &model->w, .kv = &ctx->kv, .n_tokens = sz->n_slice,
                                          .device = 0, .progress = ctx->params.progress,
                                          .progress_user_data = ctx->params.progress_user_data};
        st = backend_cuda_new(&shape, &ctx->be, ctx->errmsg, sizeof ctx->errmsg);
    } else {
        const cpu_backend_shape shape = {.w = &model->w, .n_ctx = sz->n_ctx, .type_k = sz->type_k,
                                         .n_tokens = sz->n_slice, .n_threads = sz->n_threads,
                                         .batch_invariant = sz->kv_region != 0,
                                         .flash_attn = sz->flash_attn};
        st = backend_cpu_new(&shape, &ctx->be, ctx->errmsg, sizeof ctx->errmsg);
    }
    if (st) return st;
    ctx->fwd = (forward){
        .w = &model->w,
        .kv = &ctx->kv,
        .be = ctx->be,
        .abort_callback = ctx->params.abort_callback,
        .abort_user_data = ctx->params.abort_user_data,
        .errmsg = ctx->errmsg,
        .errmsg_size = sizeof ctx->errmsg,
    };
    if ((st = forward_init(&ctx->fwd, sz->n_slice))) return st;
    ctx->cells_taken = malloc((size_t)sz->n_ctx * sizeof *ctx->cells_taken);
    ctx->seq_last = malloc((size_t)sz->n_seq_max * sizeof *ctx->seq_last);
    if (sz->embeddings) {
        ctx->embd_seq.n_seq = sz->n_seq_max;
        ctx->embd_seq.rows = malloc((size_t)sz->n_seq_max * (size_t)model->w.hp.n_embd * sizeof(float));
        ctx->embd_seq.set = calloc(sz->n_seq_max, 1);
        if (!ctx->embd_seq.rows || !ctx->embd_seq.set)
            return ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for %u pooled embeddings",
                            sz->n_seq_max);
    }
    if (!ctx->cells_taken || !ctx->seq_last)
        return ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for a context of %u cells", sz->n_ctx);
    return KINFER_OK;
}

void kinfer_context_free(kinfer_context *ctx)
{
    if (!ctx) return;
    forward_free(&ctx->fwd);
    backend_free(ctx->be);
    kv_free(&ctx->kv);
    free(ctx->logits);
    free(ctx->logit_row);
    free(ctx->embd);
    free(ctx->embd_seq.rows);
    free(ctx->embd_seq.set);
    free(ctx->cells_taken);
    free(ctx->seq_last);
    free(ctx);
}

const char *kinfer_context_errmsg(const kinfer_context *ctx)
{
    return ctx ? ctx->errmsg : "context is NULL";
}

uint32_t kinfer_context_n_ctx(const kinfer_context *ctx)
{
    return ctx ? ctx->sz.n_ctx : 0;
}

/* ------------------------------------------------------------------ decode */

/* Check everything about a batch before touching the cache. */
static kinfer_status validate(kinfer_context *ctx, const kinfer_batch *batch)
{
    if (!batch || batch->n_tokens <= 0)
        return ctx_fail(ctx, KINFER_E_INVALID_ARG, "empty batch (n_tokens = %d)",
                        batch ? batch->n_tokens : 0);
    if (!batch->token || !batch->pos)
        return ctx_fail(ctx, KINFER_E_INVALID_ARG, "batch has no %s array",
                        batch->token ? "pos" : "token");
    const int32_t n = batch->n_tokens, n_vocab = ctx->model->w.hp.n_vocab;
    for (uint32_t s = 0; s < ctx->sz.n_seq_max; s++) ctx->seq_last[s] = INT32_MIN;
    for (int32_t i = 0; i < n; i++) {
        const kinfer_token tok = batch->token[i];
        const kinfer_pos pos = batch->pos[i];
        const kinfer_seq_id seq = batch->seq_id ? batch->seq_id[i] : 0;
        if (tok < 0 || tok >= n_vocab)
            return ctx_fail(ctx, KINFER_E_INVALID_ARG,
                            "token %d: id %d is outside the vocabulary [0, %d)", i, tok, n_vocab);
        if (seq < 0 || (uint32_t)seq >= ctx->sz.n_seq_max)
            return ctx_fail(ctx, KINFER_E_INVALID_ARG,
                            "token %d: sequence id %d is outside [0, %u) (n_seq_max)", i, seq,
                            ctx->sz.n_seq_max);
        if (pos < 0 || (uint32_t)pos >= ctx->sz.n_ctx)
            return ctx_fail(ctx, KINFER_E_INVALID_ARG,
                            "token %d: position %d is outside the context [0, %u)", i, pos,
                            ctx->sz.n_ctx);
        if (ctx->model->w.pos_embd.data && pos >= ctx->model->w.hp.n_ctx_train)
            return ctx_fail(ctx, KINFER_E_INVALID_ARG,
                            "token %d: position %d is past the model's %d position embeddings", i,
                            pos, ctx->model->w.hp.n_ctx_train);
        if (ctx->kv.region && (uint32_t)pos >= ctx->kv.region)
            return ctx_fail(ctx, KINFER_E_CONTEXT_FULL,
                            "token %d: position %d of sequence %d is past its KV region of %u "
                            "cells (kv_seq_regions: n_ctx / n_seq_max rounded down to 64)",
                            i, pos, seq, ctx->kv.region);
        if (ctx->seq_last[seq] == INT32_MIN) {
            ctx->seq_last[seq] = kv_seq_pos_max(&ctx->kv, seq);
            if (pos > ctx->seq_last[seq] && kv_swa_lost(&ctx->kv, seq, pos))
                return ctx_fail(ctx, KINFER_E_INVALID_ARG,
                                "token %d: sequence %d no longer holds the sliding-window "
                                "history before position %d (the window had moved past it "
                                "before kv_seq_rm); clear the sequence and decode it again",
                                i, seq, pos);
        }
        if (pos <= ctx->seq_last[seq])
            return ctx_fail(ctx, KINFER_E_INVALID_ARG,
                            "token %d: position %d of sequence %d is not after its last "
                            "position %d",
                            i, pos, seq, ctx->seq_last[seq]);
        ctx->seq_last[seq] = pos;
    }
    const uint32_t n_free = ctx->kv.n_ctx - ctx->kv.n_used;
    if ((uint32_t)n > n_free)
        return ctx_fail(ctx, KINFER_E_CONTEXT_FULL,
                        "the KV cache is full: %d tokens need cells, %u of %u are free", n,
                        n_free, ctx->kv.n_ctx);
    return KINFER_OK;
}

/* Size the output buffer (logits, or embeddings) for n_out rows and the
 * token->row map for n tokens. */
static kinfer_status reserve_outputs(kinfer_context *ctx, int32_t n, int32_t n_out)
{
    const size_t n_vocab = (size_t)ctx->model->w.hp.n_vocab;
    if (ctx->sz.embeddings && (size_t)n_out > ctx->embd_cap) {
        const size_t E = (size_t)ctx->model->w.hp.n_embd;
        float *p = realloc(ctx->embd, (size_t)n_out * E * sizeof *p);
        if (!p) return ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for %d embeddings", n_out);
        ctx->embd = p;
        ctx->embd_cap = (size_t)n_out;
    }
    if (!ctx->sz.embeddings && (size_t)n_out > ctx->logits_cap) {
        float *p = realloc(ctx->logits, (size_t)n_out * n_vocab * sizeof *p);
        if (!p) return ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for %d rows of logits", n_out);
        ctx->logits = p;
        ctx->logits_cap = (size_t)n_out;
    }
    if ((size_t)n > ctx->logit_row_cap) {
        int32_t *p = realloc(ctx->logit_row, (size_t)n * sizeof *p);
        if (!p) return ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for a batch of %d", n);
        ctx->logit_row = p;
        ctx->logit_row_cap = (size_t)n;
    }
    return KINFER_OK;
}

kinfer_status kinfer_decode(kinfer_context *ctx, const kinfer_batch *batch)
{
    if (!ctx) return KINFER_E_INVALID_ARG;
    ctx->n_batch_tokens = 0; /* logits of an earlier batch are gone either way */
    ctx->errmsg[0] = '\0';
    kinfer_status st = validate(ctx, batch);
    if (st) return st;
    const int32_t n = batch->n_tokens;
    /* an encoder keeps no cache: a batch is on its own, seen at once */
    const int encoder = ctx->model->w.arch->encoder;
    if (encoder && (uint32_t)n > ctx->sz.n_batch)
        return ctx_fail(ctx, KINFER_E_INVALID_ARG, "an encoder (%s) sees a batch at once: %d tokens "
                        "are more than n_batch %u", ctx->model->w.arch->name, n, ctx->sz.n_batch);

    /* which tokens want logits: the array, or the last token; with
     * embeddings, every token (llama.cpp's output_all) */
    const int all = ctx->sz.embeddings;
    int32_t n_out = 0;
    for (int32_t i = 0; i < n; i++)
        n_out += all || (batch->logits ? batch->logits[i] != 0 : i == n - 1);
    if ((st = reserve_outputs(ctx, n, n_out))) return st;
    int32_t row = 0;
    for (int32_t i = 0; i < n; i++) {
        int want = all || (batch->logits ? batch->logits[i] != 0 : i == n - 1);
        ctx->logit_row[i] = want ? row++ : -1;
    }

    /* the batch's seq ids, materialized when NULL (all sequence 0) */
    kinfer_seq_id *zeros = NULL;
    const kinfer_seq_id *seq = batch->seq_id;
    if (!seq) {
        seq = zeros = calloc((size_t)n, sizeof *zeros);
        if (!zeros) return ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for a batch of %d", n);
    }
    /* cells for every token of the batch, taken now: validation made sure
     * they exist */
    if (encoder) memset(ctx->cells_taken, 0, (size_t)n * sizeof *ctx->cells_taken);
    else if (kv_batch_begin(&ctx->kv, n, batch->pos, seq, ctx->cells_taken)) {
        free(zeros);
        return ctx_fail(ctx, KINFER_E_CONTEXT_FULL, "the KV cache is full");
    }
    /* micro-batches in order */
    for (int32_t i0 = 0; !st && i0 < n; i0 += (int32_t)ctx->sz.n_batch) {
        int32_t m = n - i0 < (int32_t)ctx->sz.n_batch ? n - i0 : (int32_t)ctx->sz.n_batch;
        if (!encoder && !kv_batch_ubatch(&ctx->kv, ctx->cells_taken + i0, m, batch->pos + i0, seq + i0)) {
            st = ctx_fail(ctx, KINFER_E_CONTEXT_FULL, "the sliding-window store (%u slots) is full",
                          ctx->kv.n_swa_slots);
            break;
        }
        const fwd_ubatch ub = {
            .n = m,
            .token = batch->token + i0,
            .pos = batch->pos + i0,
            .seq = seq + i0,
            .cell = ctx->cells_taken + i0,
            .out_row = ctx->logit_row + i0,
            .logits = ctx->logits,
            .embd = ctx->sz.embeddings ? ctx->embd : NULL,
        };
        st = forward_ubatch(&ctx->fwd, &ub);
    }
    /* on failure the cache is left as it was before the call */
    if (!encoder) kv_batch_end(&ctx->kv, ctx->cells_taken, n, st != KINFER_OK);
    if (!st && ctx->sz.embeddings)
        st = embd_pool(&ctx->embd_seq, ctx->sz.pooling, &ctx->model->w, ctx->be, ctx->embd, n, batch->pos, seq,
                       ctx->errmsg, sizeof ctx->errmsg);
    free(zeros);
    if (st) return st;
    ctx->n_batch_tokens = n;
    return KINFER_OK;
}

const float *kinfer_get_logits(kinfer_context *ctx, int32_t i)
{
    if (!ctx || ctx->sz.embeddings || i < 0 || i >= ctx->n_batch_tokens || ctx->logit_row[i] < 0)
        return NULL;
    return ctx->logits + (size_t)ctx->logit_row[i] * (size_t)ctx->model->w.hp.n_vocab;
}

kinfer_pooling kinfer_context_pooling(const kinfer_context *ctx)
{
    return ctx ? ctx->sz.pooling : KINFER_POOLING_NONE;
}

const float *kinfer_get_embeddings_ith(kinfer_context *ctx, int32_t i)
{
    if (!ctx || !ctx->sz.embeddings || ctx->sz.pooling != KINFER_POOLING_NONE || i < 0 ||
        i >= ctx->n_batch_tokens)
        return NULL;
    return ctx->embd + (size_t)i * (size_t)ctx->model->w.hp.n_embd;
}

const float *kinfer_get_embeddings_seq(kinfer_context *ctx, kinfer_seq_id seq)
{
    if (!ctx || !ctx->sz.embeddings || ctx->sz.pooling == KINFER_POOLING_NONE || seq < 0 ||
        (uint32_t)seq >= ctx->sz.n_seq_max || !ctx->n_batch_tokens || !ctx->embd_seq.set[seq])
        return NULL;
    return ctx->embd_seq.rows + (size_t)seq * (size_t)ctx->model->w.hp.n_embd;
}

/* --------------------------------------------------------------- KV cache */

static kinfer_status check_seq(kinfer_context *ctx, kinfer_seq_id seq, const char *what)
{
    if (seq < 0 || (uint32_t)seq >= ctx->sz.n_seq_max)
        return ctx_fail(ctx, KINFER_E_INVALID_ARG, "%s: sequence id %d is outside [0, %u)", what,
                        seq, ctx->sz.n_seq_max);
    return KINFER_OK;
}

kinfer_status kinfer_kv_clear(kinfer_context *ctx)
{
    if (!ctx) return KINFER_E_INVALID_ARG;
    kv_clear(&ctx->kv);
    return KINFER_OK;
}

kinfer_status kinfer_kv_seq_rm(kinfer_context *ctx, kinfer_seq_id seq, kinfer_pos p0, kinfer_pos p1)
{
    if (!ctx) return KINFER_E_INVALID_ARG;
    kinfer_status st = check_seq(ctx, seq, "kv_seq_rm");
    if (st) return st;
    kv_seq_rm(&ctx->kv, seq, p0, p1);
    return KINFER_OK;
}

kinfer_status kinfer_kv_seq_cp(kinfer_context *ctx, kinfer_seq_id src, kinfer_seq_id dst,
                               kinfer_pos p0, kinfer_pos p1)
{
    if (!ctx) return KINFER_E_INVALID_ARG;
    kinfer_status st = check_seq(ctx, src, "kv_seq_cp");
    if (!st) st = check_seq(ctx, dst, "kv_seq_cp");
    if (st) return st;
    kv_seq_cp(&ctx->kv, src, dst, p0, p1);
    return KINFER_OK;
}

kinfer_status kinfer_kv_seq_keep(kinfer_context *ctx, kinfer_seq_id seq)
{
    if (!ctx) return KINFER_E_INVALID_ARG;
    kinfer_status st = check_seq(ctx, seq, "kv_seq_keep");
    if (st) return st;
    kv_seq_keep(&ctx->kv, seq);
    return KINFER_OK;
}

kinfer_status kinfer_kv_seq_add(kinfer_context *ctx, kinfer_seq_id seq, kinfer_pos p0,
                                kinfer_pos p1, kinfer_pos delta)
{
    if (!ctx) return KINFER_E_INVALID_ARG;
    kinfer_status st = check_seq(ctx, seq, "kv_seq_add");
    if (st) return st;
    if (ctx->sz.gpu.n_gpu_layers > 0 && delta != 0)
        return ctx_fail(ctx, KINFER_E_UNSUPPORTED, "kv_seq_add: shifting positions re-rotates the "
                        "cached keys, which the GPU cache does not do yet (n_gpu_layers > 0)");
    st = kv_seq_add(&ctx->kv, &ctx->model->w, seq, p0, p1, delta);
    if (st == KINFER_E_CONTEXT_FULL)
        return ctx_fail(ctx, st, "kv_seq_add: a position of sequence %d would move past its KV "
                        "region of %u cells (kv_seq_regions)", seq, ctx->kv.region);
    if (st == KINFER_E_UNSUPPORTED)
        return ctx_fail(ctx, st, "kv_seq_add: a position of sequence %d would move onto one it "
                        "still holds outside [p0, p1) (kv_seq_regions keeps one cell per "
                        "position)", seq);
    if (st) return ctx_fail(ctx, st, "kv_seq_add: out of memory");
    return KINFER_OK;
}

uint32_t kinfer_kv_n_used(const kinfer_context *ctx)
{
    return ctx ? ctx->kv.n_used : 0;
}

kinfer_status kinfer_kv_seq_pos_range(const kinfer_context *ctx, kinfer_seq_id seq,
                                      kinfer_pos *min, kinfer_pos *max)
{
    if (!ctx || seq < 0 || (uint32_t)seq >= ctx->sz.n_seq_max) return KINFER_E_INVALID_ARG;
    int32_t lo = INT32_MAX, hi = -1;
    for (uint32_t i = 0; i < ctx->kv.hi; i++) {
        const kv_cell *c = &ctx->kv.cells[i];
        if (c->pos < 0 || !kv_cell_has_seq(c, seq)) continue;
        if (c->pos < lo) lo = c->pos;
        if (c->pos > hi) hi = c->pos;
    }
    if (hi < 0) return KINFER_E_NOT_FOUND;
    if (min) *min = lo;
    if (max) *max = hi;
    return KINFER_OK;
}
