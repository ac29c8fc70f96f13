/*
 * plan.c — a context's sizes from its params (cache, scratch, threads), the
 * split of its layers between host and GPU, and kinfer_model_estimate.
 */
#include "runtime/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu.h"
#include "backend/cuda.h"
#include "forward/forward.h"
#include "kvcache/kvcache.h"
#include "model/model.h"
#include "quant.h"

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
    p.flash_attn = KINFER_FLASH_ATTN_AUTO;
    p.embeddings = false;
    p.pooling = KINFER_POOLING_UNSPECIFIED;
    return p;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
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
        for (int i = 0; i < n_layer_tensors; i++) {
            const wtensor *t = layer_tensor_of(&w->layers[il], i);
            if (!(layer_tensors[i].flags & WT_MATRIX) || !t->data) continue;
            mm = max_sz(mm, kcuda_matmul_scratch_bytes(t->type, t->ne1, t->ne0, sz->n_batch,
                                                       KCUDA_GEMM_PANEL_BYTES_DEFAULT,
                                                       KCUDA_MATMUL_AUTO));
        }
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
    if (w->hp.n_expert > 0) {
        if (p->n_gpu_layers < 0) return KINFER_OK; /* automatic: everything on the CPU */
        snprintf(err, err_size,
                 "n_gpu_layers = %d: the layers are mixtures of %d experts, which the CUDA backend "
                 "cannot run yet (use n_gpu_layers = 0)", p->n_gpu_layers, w->hp.n_expert);
        return KINFER_E_UNSUPPORTED;
    }
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
                          kv_layer_bytes(w, il, out->n_ctx, out->n_seq_max, out->n_batch,
                                         out->kv_region, p->type_k, p->type_v);
    const placement_need need = {
        .n_layer = n_layer,
        .layer_bytes = layer_bytes,
        .output_bytes = wtensor_bytes(&w->output_norm) + wtensor_bytes(&w->output),
        .compute_bytes = device_compute_bytes(w, out, activation_bytes),
    };
    kinfer_status st = placement_plan(&need, p->n_gpu_layers, free_bytes, p->gpu_margin_bytes,
                                      &out->gpu, err, err_size);
    free(layer_bytes);
    if (st) return st;
    for (int il = out->gpu.first_gpu_layer; il < n_layer; il++) {
        out->weights_device_bytes += layer_weight_bytes(&w->layers[il]);
        out->kv_device_bytes +=
            kv_layer_bytes(w, il, out->n_ctx, out->n_seq_max, out->n_batch, out->kv_region, p->type_k,
                           p->type_v);
    }
    if (out->gpu.output_on_gpu) out->weights_device_bytes += need.output_bytes;
    out->compute_device_bytes = out->gpu.n_gpu_layers > 0 ? need.compute_bytes : 0;
    return KINFER_OK;
}

uint64_t plan_host_available_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[128];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
    fclose(f);
    return (uint64_t)kib * 1024;
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
    out->n_slice = forward_slice_tokens(out->n_batch);
    if (w->arch->encoder) {
        /* attention over whole sequences: a micro-batch goes through at once */
        out->n_slice = (int32_t)out->n_batch;
        if (!p->embeddings) {
            snprintf(err, err_size, "%s is an encoder-only model: it gives embeddings, not text "
                     "(set embeddings = true)", w->arch->name);
            return KINFER_E_UNSUPPORTED;
        }
    }
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
    if (p->flash_attn != KINFER_FLASH_ATTN_AUTO && p->flash_attn != KINFER_FLASH_ATTN_OFF &&
        p->flash_attn != KINFER_FLASH_ATTN_ON) {
        snprintf(err, err_size, "flash_attn %d is not one of auto (-1), off (0), on (1)", (int)p->flash_attn);
        return KINFER_E_INVALID_ARG;
    }
    /* llama.cpp's rule: a quantized V cache needs flash attention (without
     * it V is read transposed, which a block type cannot be) */
    const int v_quantized = p->type_v != KINFER_TYPE_F16 && p->type_v != KINFER_TYPE_F32;
    if (v_quantized && p->flash_attn == KINFER_FLASH_ATTN_OFF) {
        snprintf(err, err_size, "a quantized V cache (%s) needs flash attention: set flash_attn to "
                 "on or auto (-fa on), or use an F16 V cache", kinfer_type_name(p->type_v));
        return KINFER_E_INVALID_ARG;
    }
    out->flash_attn = p->flash_attn != KINFER_FLASH_ATTN_OFF;
    if (p->pooling < KINFER_POOLING_UNSPECIFIED || p->pooling > KINFER_POOLING_RANK) {
        snprintf(err, err_size, "pooling %d is not one of unspecified (-1), none (0), mean (1), "
                 "cls (2), last (3), rank (4)", (int)p->pooling);
        return KINFER_E_INVALID_ARG;
    }
    out->embeddings = p->embeddings;
    out->pooling = KINFER_POOLING_NONE;
    if (p->embeddings) {
        /* llama.cpp's rule: unspecified takes the model's, and none when it has none */
        out->pooling = p->pooling != KINFER_POOLING_UNSPECIFIED ? p->pooling
                       : hp->pooling_type != KINFER_POOLING_UNSPECIFIED
                           ? (kinfer_pooling)hp->pooling_type : KINFER_POOLING_NONE;
        if (out->pooling == KINFER_POOLING_RANK && !w->cls_out.data) {
            snprintf(err, err_size, "pooling rank needs a reranker's classification head "
                     "(cls.output.weight), which this %s model does not have",
                     w->arch->name);
            return KINFER_E_UNSUPPORTED;
        }
    }
    if (p->kv_seq_regions) {
        out->kv_region = kv_region_size(out->n_ctx, out->n_seq_max);
        if (!out->kv_region) {
            snprintf(err, err_size, "kv_seq_regions: n_ctx %u gives the %u sequences less than 64 "
                     "cells each", out->n_ctx, out->n_seq_max);
            return KINFER_E_INVALID_ARG;
        }
    }
    out->kv_bytes = kv_cache_bytes(w, out->n_ctx, out->n_seq_max, out->n_batch, out->kv_region,
                                   p->type_k, p->type_v);

    /* activations, the CPU backend's scratch, and one row of logits (the
     * default, last token only; each further token that asks for logits
     * adds 4 * n_vocab bytes when it is decoded) */
    const cpu_backend_shape cpu = {.w = w, .n_ctx = out->n_ctx, .type_k = p->type_k,
                                   .n_tokens = out->n_slice, .n_threads = out->n_threads,
                                   .flash_attn = out->flash_attn};
    const uint64_t activations = forward_buffer_bytes(hp, out->n_slice);
    out->compute_bytes = activations + backend_cpu_scratch_bytes(&cpu) + (uint64_t)hp->n_vocab * sizeof(float);
    kinfer_status st = plan_gpu(model, p, activations, out, err, err_size);
    if (st) return st;
    /* a context too big for the machine fails here, not in a calloc that
     * overcommit lets through to be killed later */
    const host_need host = {.n_ctx = out->n_ctx,
                            .weights_bytes = w->tensor_bytes - out->weights_device_bytes,
                            .kv_bytes = out->kv_bytes - out->kv_device_bytes,
                            .compute_bytes = out->compute_bytes};
    return placement_host_check(&host, plan_host_available_bytes(), err, err_size);
}

kinfer_status kinfer_model_estimate(const kinfer_model *model, const kinfer_context_params *params,
                                    kinfer_estimate *out)
{
    if (!model || !out) return KINFER_E_INVALID_ARG;
    if (!model->gguf || !model->w.arch) return KINFER_E_UNSUPPORTED;
    kinfer_context_params defaults = kinfer_context_default_params();
    if (!params) params = &defaults;
    memset(out, 0, sizeof *out);
    context_sizes sz;
    kinfer_status st = context_plan(model, params, &sz, out->errmsg, sizeof out->errmsg);
    if (st) return st;
    /* a tied output matrix is the token embedding: it stays on the host too */
    const uint64_t output_bytes = (uint64_t)model->w.output.row_size * (uint64_t)model->w.output.ne1;
    const uint64_t left_on_host =
        sz.gpu.output_on_gpu && model->w.output_tied ? output_bytes : 0;
    out->weights_device_bytes = sz.weights_device_bytes;
    out->weights_host_bytes = model->w.tensor_bytes - sz.weights_device_bytes + left_on_host;
    out->kv_device_bytes = sz.kv_device_bytes;
    out->kv_host_bytes = sz.kv_bytes - sz.kv_device_bytes;
    out->compute_device_bytes = sz.compute_device_bytes;
    out->compute_host_bytes = sz.compute_bytes;
    out->host_bytes = out->weights_host_bytes + out->kv_host_bytes + out->compute_host_bytes;
    out->device_bytes = out->weights_device_bytes + out->kv_device_bytes + out->compute_device_bytes;
    out->n_gpu_layers = sz.gpu.n_gpu_layers;
    return KINFER_OK;
}
