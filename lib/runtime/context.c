/*
 * context.c — contexts: creation (KV cache, scratch), kinfer_decode (batch
 * validation, micro-batches, logits), and the KV-cache calls of the API.
 */
#include "runtime/context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda.h"
#include "cpu/attn_kernels.h"
#include "cpu/kernels.h"
#include "quant.h"
#include "core/threadpool.h"

kinfer_status ctx_fail(kinfer_context *ctx, kinfer_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

kinfer_context_params kinfer_context_default_params(void)
{
    kinfer_context_params p = {0};
    p.n_ctx = 0;
    p.n_batch = 512;
    p.n_seq_max = 1;
    p.n_threads = 0;
    p.type_k = KINFER_TYPE_F16;
    p.type_v = KINFER_TYPE_F16;
    p.n_gpu_layers = 0;
    p.gpu_margin_bytes = (uint64_t)512 << 20;
    return p;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static size_t mm_scratch(const wtensor *t, int64_t n_tokens, int n_threads)
{
    return kinfer_matmul_scratch_size(t->type, t->ne0, n_tokens, n_threads);
}

/* Per-thread attention scratch (forward.c's att_thread_buf): visible rows
 * (n_ctx), scores of up to KINFER_ATTN_MAX_G heads (n_ctx each) and those
 * query heads in the K cache's dot type; a multiple of 64 bytes. */
static size_t context_att_stride(uint32_t n_ctx, int head_dim, int type_k)
{
    const kinfer_cpu_kernels *kk = kinfer_cpu_kernels_get(type_k);
    size_t q = kk ? kinfer_row_size(kk->vec_dot_type, head_dim) : 0;
    size_t bytes = (size_t)n_ctx * (sizeof(int32_t) + KINFER_ATTN_MAX_G * sizeof(float)) +
                   KINFER_ATTN_MAX_G * q;
    return (bytes + 63) & ~(size_t)63;
}

/* Per token: the attention's q, k, v and output, which the FFN's gated
 * product reuses (the two are never live at once). */
static uint64_t attn_ffn_floats(const model_hparams *hp)
{
    const uint64_t attn = (uint64_t)hp->n_head * (hp->head_dim_k + hp->head_dim_v) +
                          (uint64_t)hp->n_head_kv * (hp->head_dim_k + hp->head_dim_v);
    return attn > (uint64_t)hp->n_ff ? attn : (uint64_t)hp->n_ff;
}

static uint64_t tensor_bytes(const wtensor *t)
{
    return t->data ? t->row_size * (uint64_t)t->ne1 : 0;
}

static uint64_t layer_weight_bytes(const layer_weights *L)
{
    const wtensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->bq, &L->bk, &L->bv,
                           &L->q_norm, &L->k_norm, &L->wo, &L->attn_post_norm, &L->ffn_norm,
                           &L->ffn_gate, &L->ffn_up, &L->ffn_down, &L->ffn_post_norm};
    uint64_t bytes = 0;
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) bytes += tensor_bytes(ts[i]);
    return bytes;
}

/* Device scratch of a context with any layer on the GPU: the activations
 * (as on the host), the largest matmul's F16 staging, flash-decoding
 * partials for the longest context. */
static uint64_t device_compute_bytes(const model_weights *w, const context_sizes *sz,
                                     uint64_t activation_bytes)
{
    const model_hparams *hp = &w->hp;
    size_t mm = kcuda_matmul_scratch_bytes(w->output.type, w->output.ne1, w->output.ne0, sz->n_batch,
                                           KCUDA_GEMM_PANEL_BYTES_DEFAULT, KCUDA_MATMUL_AUTO);
    for (int il = 0; il < hp->n_layer; il++) {
        const layer_weights *L = &w->layers[il];
        const wtensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            mm = max_sz(mm, kcuda_matmul_scratch_bytes(ts[i]->type, ts[i]->ne1, ts[i]->ne0, sz->n_batch,
                                                       KCUDA_GEMM_PANEL_BYTES_DEFAULT,
                                                       KCUDA_MATMUL_AUTO));
    }
    return activation_bytes + mm +
           kinfer_cuda_attn_decode_scratch_bytes(KCUDA_GEMV_MAX_BATCH, hp->n_head, sz->n_ctx,
                                                 hp->head_dim_v);
}

/*
 * Where the layers go (placement.h): on device 0's free memory, capped by
 * params.gpu_budget_bytes; without a GPU, on a simulated device of that
 * budget (for kinfer_model_estimate), or nowhere.
 */
static kinfer_status plan_gpu(const kinfer_model *model, const kinfer_context_params *p,
                              uint64_t activation_bytes, context_sizes *out, char *err,
                              size_t err_size)
{
    const model_weights *w = &model->w;
    const int32_t n_layer = w->hp.n_layer;
    if (p->n_gpu_layers == 0) return KINFER_OK;
    uint64_t free_bytes = p->gpu_budget_bytes;
    kcuda_device_info info;
    char why[256];
    if (kcuda_device_info_get(0, &info, why, sizeof why) == KINFER_OK) {
        if (!free_bytes || info.free_bytes < free_bytes) free_bytes = info.free_bytes;
    } else if (free_bytes) {
        out->gpu_simulated = 1;
    } else if (p->n_gpu_layers > 0) {
        snprintf(err, err_size, "n_gpu_layers = %d, but there is no usable GPU: %s", p->n_gpu_layers, why);
        return KINFER_E_DEVICE;
    } else {
        return KINFER_OK; /* automatic, no GPU: everything on the CPU */
    }
    uint64_t *layer_bytes = malloc((size_t)n_layer * sizeof *layer_bytes);
    if (!layer_bytes) {
        snprintf(err, err_size, "out of memory");
        return KINFER_E_NOMEM;
    }
    for (int il = 0; il < n_layer; il++)
        layer_bytes[il] = layer_weight_bytes(&w->layers[il]) +
                          kv_layer_bytes(w, il, out->n_ctx, out->n_seq_max, out->n_batch, p->type_k,
                                         p->type_v);
    const placement_need need = {
        .n_layer = n_layer,
        .layer_bytes = layer_bytes,
        .output_bytes = tensor_bytes(&w->output_norm) + tensor_bytes(&w->output),
        .compute_bytes = device_compute_bytes(w, out, activation_bytes),
    };
    kinfer_status st = placement_plan(&need, p->n_gpu_layers, free_bytes, p->gpu_margin_bytes,
                                      &out->gpu, err, err_size);
    free(layer_bytes);
    if (st) return st;
    for (int il = out->gpu.first_gpu_layer; il < n_layer; il++) {
        out->weights_device_bytes += layer_weight_bytes(&w->layers[il]);
        out->kv_device_bytes +=
            kv_layer_bytes(w, il, out->n_ctx, out->n_seq_max, out->n_batch, p->type_k, p->type_v);
    }
    if (out->gpu.output_on_gpu) out->weights_device_bytes += need.output_bytes;
    out->compute_device_bytes = out->gpu.n_gpu_layers > 0 ? need.compute_bytes : 0;
    return KINFER_OK;
}

kinfer_status context_plan(const kinfer_model *model, const kinfer_context_params *p,
                           context_sizes *out, char *err, size_t err_size)
{
    char dummy[8];
    if (!err) err = dummy, err_size = sizeof dummy;
    memset(out, 0, sizeof *out);
    const model_weights *w = &model->w;
    const model_hparams *hp = &w->hp;
    out->n_ctx = p->n_ctx ? p->n_ctx : (uint32_t)hp->n_ctx_train;
    out->n_batch = p->n_batch ? p->n_batch : 512;
    out->n_seq_max = p->n_seq_max ? p->n_seq_max : 1;
    out->n_threads = p->n_threads > 0 ? p->n_threads : (int32_t)sysconf(_SC_NPROCESSORS_ONLN);
    if (out->n_threads <= 0) out->n_threads = 1;
    out->type_k = p->type_k;
    out->type_v = p->type_v;
    if (out->n_ctx > (1u << 24)) {
        snprintf(err, err_size, "n_ctx %u is too large (at most %u)", out->n_ctx, 1u << 24);
        return KINFER_E_INVALID_ARG;
    }
    if (out->n_batch > 65536) {
        snprintf(err, err_size, "n_batch %u is too large (at most 65536)", out->n_batch);
        return KINFER_E_INVALID_ARG;
    }
    if (out->n_batch > out->n_ctx) out->n_batch = out->n_ctx;
    out->n_slice = out->n_batch < FWD_SLICE_TOKENS ? out->n_batch : FWD_SLICE_TOKENS;
    if (out->n_seq_max > KINFER_MAX_SEQ) {
        snprintf(err, err_size, "n_seq_max %u is over the limit of %d", out->n_seq_max,
                 KINFER_MAX_SEQ);
        return KINFER_E_INVALID_ARG;
    }
    const int types_ok[] = {KINFER_TYPE_F16, KINFER_TYPE_F32, KINFER_TYPE_Q8_0};
    int ok_k = 0, ok_v = 0;
    for (size_t i = 0; i < 3; i++) {
        ok_k |= (int)p->type_k == types_ok[i];
        ok_v |= (int)p->type_v == types_ok[i];
    }
    if (!ok_k || !ok_v) {
        snprintf(err, err_size, "KV cache types must be F16, F32 or Q8_0 (got %s / %s)",
                 kinfer_type_name(p->type_k) ? kinfer_type_name(p->type_k) : "?",
                 kinfer_type_name(p->type_v) ? kinfer_type_name(p->type_v) : "?");
        return KINFER_E_INVALID_ARG;
    }
    /* attention reads one head of a K row in place: heads must be whole blocks */
    if (!kinfer_row_size(p->type_k, hp->head_dim_k) || !kinfer_row_size(p->type_v, hp->head_dim_v)) {
        snprintf(err, err_size, "heads of %d / %d elements do not fit %s / %s KV cache blocks",
                 hp->head_dim_k, hp->head_dim_v, kinfer_type_name(p->type_k),
                 kinfer_type_name(p->type_v));
        return KINFER_E_UNSUPPORTED;
    }
    out->kv_bytes = kv_cache_bytes(w, out->n_ctx, out->n_seq_max, out->n_batch, p->type_k, p->type_v);

    /* matmul scratch: the largest any projection needs */
    const int64_t nb = out->n_slice;
    const int nt = out->n_threads;
    size_t mm = mm_scratch(&w->output, nb, nt);
    for (int il = 0; il < hp->n_layer; il++) {
        const layer_weights *L = &w->layers[il];
        const wtensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up,
                               &L->ffn_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) mm = max_sz(mm, mm_scratch(ts[i], nb, nt));
    }
    for (int il = 0; il < hp->n_layer; il++) {
        const layer_weights *L = &w->layers[il];
        out->ffn_split |= L->ffn_gate.type != L->ffn_up.type;
        mm = max_sz(mm, kinfer_matmul_gated_scratch_size(L->ffn_gate.type, L->ffn_gate.ne0, nb, nt));
    }
    out->matmul_scratch = mm;
    const uint64_t E = (uint64_t)hp->n_embd;
    uint64_t floats = nb * (2 * E + attn_ffn_floats(hp) + (out->ffn_split ? (uint64_t)hp->n_ff : 0));
    floats += 4 * (uint64_t)out->n_ctx; /* att_cell, att_pos, dec_rows (4-byte ints) */
    out->att_stride = context_att_stride(out->n_ctx, hp->head_dim_k, p->type_k);
    /* a decode split over the threads holds every kv head's group of up to
     * KINFER_ATTN_MAX_G query heads at once */
    const int32_t n_units = hp->n_head_kv * ((hp->n_head / hp->n_head_kv + KINFER_ATTN_MAX_G - 1) /
                                             KINFER_ATTN_MAX_G);
    out->att_slices = out->n_threads > n_units ? out->n_threads : n_units;

    /* logits: one row (the default, last token only); each further token
     * that asks for logits adds 4 * n_vocab bytes when it is decoded */
    floats += (uint64_t)hp->n_vocab;
    out->compute_bytes = floats * sizeof(float) + mm + out->att_stride * (size_t)out->att_slices;
    return plan_gpu(model, p, floats * sizeof(float), out, err, err_size);
}

static void *alloc_floats(uint64_t n)
{
    return calloc((size_t)(n ? n : 1), sizeof(float));
}

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
    if (sz->gpu_simulated && sz->gpu.n_gpu_layers > 0)
        return ctx_fail(ctx, KINFER_E_DEVICE, "n_gpu_layers: %d layers planned for a GPU of %llu "
                        "bytes, but there is no usable GPU", sz->gpu.n_gpu_layers,
                        (unsigned long long)ctx->params.gpu_budget_bytes);
    if (sz->gpu.n_gpu_layers > 0)
        return ctx_fail(ctx, KINFER_E_UNSUPPORTED, "n_gpu_layers: %d layers would go to the GPU, "
                        "but the forward pass runs on the CPU only so far (use n_gpu_layers = 0)",
                        sz->gpu.n_gpu_layers);
    const model_hparams *hp = &model->w.hp;

    st = kv_init(&ctx->kv, &model->w, sz->n_ctx, sz->n_seq_max, sz->n_batch, sz->type_k,
                 sz->type_v);
    if (st)
        return ctx_fail(ctx, st, "cannot allocate the KV cache (%llu bytes for %u cells)",
                        (unsigned long long)sz->kv_bytes, sz->n_ctx);

    fwd_buffers *b = &ctx->buf;
    const uint64_t nb = sz->n_slice, E = (uint64_t)hp->n_embd;
    const uint64_t QD = (uint64_t)hp->n_head * hp->head_dim_k;
    const uint64_t KD = (uint64_t)hp->n_head_kv * hp->head_dim_k;
    const uint64_t VD = (uint64_t)hp->n_head_kv * hp->head_dim_v;
    b->x = alloc_floats(nb * E);
    b->xb = alloc_floats(nb * E);
    b->q = alloc_floats(nb * attn_ffn_floats(hp));
    if (b->q) {
        b->k = b->q + nb * QD;
        b->v = b->k + nb * KD;
        b->att = b->v + nb * VD;
        b->ffn_h = b->q;
    }
    if (sz->ffn_split) b->ffn_u = alloc_floats(nb * (uint64_t)hp->n_ff);
    b->att_cell = malloc((size_t)sz->n_ctx * sizeof *b->att_cell);
    b->att_pos = malloc((size_t)sz->n_ctx * sizeof *b->att_pos);
    b->dec_rows = malloc(2 * (size_t)sz->n_ctx * sizeof *b->dec_rows);
    b->att_stride = sz->att_stride;
    b->att_tmp = aligned_alloc(64, b->att_stride * (size_t)sz->att_slices);
    b->mm_size = sz->matmul_scratch;
    b->mm = b->mm_size ? aligned_alloc(64, (b->mm_size + 63) & ~(size_t)63) : NULL;
    if (sz->n_threads > 1) {
        ctx->pool = kinfer_threadpool_new(sz->n_threads);
        if (!ctx->pool)
            return ctx_fail(ctx, KINFER_E_NOMEM, "cannot start %d threads", sz->n_threads);
    }
    ctx->cells_taken = malloc((size_t)sz->n_ctx * sizeof *ctx->cells_taken);
    ctx->seq_last = malloc((size_t)sz->n_seq_max * sizeof *ctx->seq_last);
    ctx->horizon = malloc(2 * (size_t)sz->n_seq_max * sizeof *ctx->horizon);
    ctx->cell_mine = calloc(sz->n_ctx, 1);
    if (!b->x || !b->xb || !b->q || !b->k || !b->v || !b->att || (sz->ffn_split && !b->ffn_u) ||
        !b->att_cell || !b->att_pos || !b->dec_rows || !b->att_tmp || (b->mm_size && !b->mm) ||
        !ctx->cells_taken || !ctx->seq_last || !ctx->horizon || !ctx->cell_mine)
        return ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for %llu bytes of scratch",
                        (unsigned long long)sz->compute_bytes);
    return KINFER_OK;
}

void kinfer_context_free(kinfer_context *ctx)
{
    if (!ctx) return;
    kv_free(&ctx->kv);
    fwd_buffers *b = &ctx->buf;
    free(b->x);
    free(b->xb);
    free(b->q); /* and k, v, att, ffn_h with it */
    free(b->ffn_u);
    free(b->att_cell);
    free(b->att_pos);
    free(b->dec_rows);
    free(b->att_tmp);
    kinfer_threadpool_free(ctx->pool);
    free(b->mm);
    free(ctx->logits);
    free(ctx->logit_row);
    free(ctx->cells_taken);
    free(ctx->seq_last);
    free(ctx->horizon);
    free(ctx->cell_mine);
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

/* Size the logits buffer for n_out rows and the token->row map for n tokens. */
static kinfer_status reserve_outputs(kinfer_context *ctx, int32_t n, int32_t n_out)
{
    const size_t n_vocab = (size_t)ctx->model->w.hp.n_vocab;
    if ((size_t)n_out > ctx->logits_cap) {
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

    /* which tokens want logits: the array, or the last token */
    int32_t n_out = 0;
    for (int32_t i = 0; i < n; i++) n_out += batch->logits ? batch->logits[i] != 0 : i == n - 1;
    if ((st = reserve_outputs(ctx, n, n_out))) return st;
    int32_t row = 0;
    for (int32_t i = 0; i < n; i++) {
        int want = batch->logits ? batch->logits[i] != 0 : i == n - 1;
        ctx->logit_row[i] = want ? row++ : -1;
    }

    /* cells for every token of the batch, taken now: validation made sure
     * they exist */
    if (!kv_find_free(&ctx->kv, (uint32_t)n, ctx->cells_taken))
        return ctx_fail(ctx, KINFER_E_CONTEXT_FULL, "the KV cache is full");
    for (int32_t i = 0; i < n; i++)
        kv_cell_take(&ctx->kv, ctx->cells_taken[i], batch->pos[i],
                     batch->seq_id ? batch->seq_id[i] : 0);

    /* the batch's seq ids, materialized when NULL (all sequence 0) */
    kinfer_seq_id *zeros = NULL;
    const kinfer_seq_id *seq = batch->seq_id;
    if (!seq) {
        seq = zeros = calloc((size_t)n, sizeof *zeros);
        if (!zeros) st = ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for a batch of %d", n);
    }
    for (int32_t i = 0; i < n; i++) ctx->cell_mine[ctx->cells_taken[i]] = 1;
    /* sliding-window slots: horizons per sequence (see kv_swa_assign), from
     * the cells that were there before this call */
    int32_t *h_before = ctx->horizon, *h_now = ctx->horizon + ctx->sz.n_seq_max;
    if (ctx->kv.n_swa > 0) {
        for (uint32_t q = 0; q < ctx->sz.n_seq_max; q++) h_before[q] = 0;
        for (uint32_t c = 0; c < ctx->kv.hi; c++) {
            const kv_cell *cell = &ctx->kv.cells[c];
            if (cell->pos < 0 || ctx->cell_mine[c]) continue;
            for (int w = 0; w < KV_SEQ_WORDS; w++)
                for (uint64_t bits = cell->seq[w]; bits; bits &= bits - 1) {
                    const int q = w * 64 + __builtin_ctzll(bits);
                    if (cell->pos + 1 > h_before[q]) h_before[q] = cell->pos + 1;
                }
        }
        memcpy(h_now, h_before, ctx->sz.n_seq_max * sizeof *h_now);
    }
    /* Micro-batches in order.  The cells of later micro-batches are taken
     * but not written yet; no token can see them: the same sequence's later
     * tokens have later positions, other sequences are masked by sequence. */
    for (int32_t i0 = 0; !st && i0 < n; i0 += (int32_t)ctx->sz.n_batch) {
        int32_t m = n - i0 < (int32_t)ctx->sz.n_batch ? n - i0 : (int32_t)ctx->sz.n_batch;
        if (ctx->kv.n_swa > 0) {
            for (int32_t i = m; i-- > 0;) h_now[seq[i0 + i]] = batch->pos[i0 + i]; /* first */
            if (!kv_swa_assign(&ctx->kv, ctx->cells_taken + i0, m, ctx->cell_mine, h_before,
                               h_now)) {
                st = ctx_fail(ctx, KINFER_E_CONTEXT_FULL,
                              "the sliding-window store (%u slots) is full",
                              ctx->kv.n_swa_slots);
                break;
            }
            for (int32_t i = 0; i < m; i++) h_now[seq[i0 + i]] = batch->pos[i0 + i] + 1;
        }
        fwd_ubatch ub = {
            .n = m,
            .token = batch->token + i0,
            .pos = batch->pos + i0,
            .seq = seq + i0,
            .cell = ctx->cells_taken + i0,
            .out_row = ctx->logit_row + i0,
        };
        st = forward_ubatch(ctx, &ub);
    }
    free(zeros);
    for (int32_t i = 0; i < n; i++) ctx->cell_mine[ctx->cells_taken[i]] = 0;
    if (st) {
        /* leave the cache as it was before the call */
        for (int32_t i = 0; i < n; i++) kv_cell_release(&ctx->kv, ctx->cells_taken[i]);
        return st;
    }
    ctx->n_batch_tokens = n;
    return KINFER_OK;
}

const float *kinfer_get_logits(kinfer_context *ctx, int32_t i)
{
    if (!ctx || i < 0 || i >= ctx->n_batch_tokens || ctx->logit_row[i] < 0) return NULL;
    return ctx->logits + (size_t)ctx->logit_row[i] * (size_t)ctx->model->w.hp.n_vocab;
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
    st = kv_seq_add(&ctx->kv, &ctx->model->w, seq, p0, p1, delta);
    if (st) return ctx_fail(ctx, st, "kv_seq_add: out of memory");
    return KINFER_OK;
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
