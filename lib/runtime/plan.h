/*
 * plan.h — what a context with given params needs, and where its layers go
 * (internal).  kinfer_context_new and kinfer_model_estimate both plan with
 * context_plan, so the estimate is what a context takes.
 */
#ifndef KINFER_PLAN_H
#define KINFER_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"
#include "runtime/placement.h"

typedef struct context_sizes {
    uint32_t n_ctx, n_batch, n_seq_max;
    int32_t n_slice;           /* tokens the forward pass takes at once (forward.h) */
    int32_t n_threads;
    int type_k, type_v;
    uint32_t kv_region;        /* kv_seq_regions: cells per sequence (kv_region_size); 0 off */
    int flash_attn;            /* params.flash_attn resolved: 1 on, 0 off */
    int embeddings;            /* params.embeddings */
    kinfer_pooling pooling;    /* params.pooling resolved (the model's default); NONE without
                                * embeddings */
    uint64_t kv_bytes;         /* K and V rows of every layer */
    uint64_t compute_bytes;    /* activations, backend scratch, one row of logits */
    placement gpu;             /* the layers on the GPU */
    int gpu_simulated;         /* no GPU: planned for params.gpu_budget_bytes */
    uint64_t weights_device_bytes, kv_device_bytes, compute_device_bytes;
} context_sizes;

/* Resolve defaults and check params; err (may be NULL) gets a message.  A
 * context whose KV cache and scratch exceed the machine's available memory
 * is KINFER_E_NOMEM here, before anything is allocated. */
kinfer_status context_plan(const kinfer_model *model, const kinfer_context_params *params,
                           context_sizes *out, char *err, size_t err_size);

/* The machine's MemAvailable (/proc/meminfo) in bytes; 0 when unknown. */
uint64_t plan_host_available_bytes(void);

#endif /* KINFER_PLAN_H */
