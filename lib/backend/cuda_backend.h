/*
 * cuda_backend.h — the CUDA backend: the operations of backend.h on one GPU
 * for a fully offloaded model (internal).
 *
 * Every layer and the output live on the device: the weights are uploaded
 * once when the backend is made (one allocation, in their quantized blocks),
 * the KV rows of every layer sit in device memory laid out as the kernels
 * expect ((rows, n_head_kv * head_dim) per layer; the host cache keeps only
 * the cell table, kvcache.h), and the activations are device buffers.  The
 * token embedding stays on the host (a row lookup, uploaded per slice).
 * Per slice the positions, sequences, cache rows and the cell table go over
 * once (backend begin); per step the logits come back once (backend logits).
 *
 * Built without CUDA every kcuda_* call fails, so backend_cuda_new does too
 * (KINFER_E_UNSUPPORTED); the sizing and the checks are pure host code.
 */
#ifndef KINFER_BACKEND_CUDA_BACKEND_H
#define KINFER_BACKEND_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

typedef struct cuda_backend_shape {
    const model_weights *w;
    const kv_cache *kv;             /* initialized: its rows are made on the device */
    int32_t n_tokens;               /* the most tokens one call sees (the forward slice) */
    int device;
    kinfer_progress_fn progress;    /* per weight uploaded; false cancels; NULL: none */
    void *progress_user_data;
} cuda_backend_shape;

/* Device bytes the backend allocates, by kind. */
typedef struct cuda_backend_bytes {
    uint64_t weights;   /* every tensor but the token embedding (the output even when tied) */
    uint64_t kv;        /* K and V rows of every layer */
    uint64_t compute;   /* per-slice tables, the up product, one row block of logits */
    int32_t n_weights;  /* distinct tensors uploaded */
} cuda_backend_bytes;

/* Alignment of every weight inside the one weight allocation. */
#define CUDA_BACKEND_ALIGN 256

/* What backend_cuda_new would allocate (the weight kernels' scratch and the
 * activations of forward.c come on top). */
void backend_cuda_bytes(const cuda_backend_shape *shape, cuda_backend_bytes *out);

/* KINFER_E_UNSUPPORTED, with err naming why, when the model cannot run on
 * the GPU: a mixture-of-experts layer, a weight type without CUDA kernels,
 * heads wider than the attention kernels take, a KV type they cannot read. */
kinfer_status backend_cuda_check(const model_weights *w, int type_k, int type_v, char *err,
                                 size_t err_size);

/* Opens the device, uploads the weights, allocates the KV rows and the
 * per-slice buffers.  KINFER_E_DEVICE with the sizes when device memory runs
 * out (nothing is left allocated), KINFER_E_ABORTED when progress cancelled.
 * err gets a message on failure. */
kinfer_status backend_cuda_new(const cuda_backend_shape *shape, backend **out, char *err,
                               size_t err_size);

/*
 * The cell table as the attention kernels read it, for full (swa 0) or
 * sliding-window (swa 1) layers: per row of the layer's store, the position
 * of the cell held there (-1: none) and, when seq is not NULL, its
 * sequence bits (KV_SEQ_WORDS words per row).  Full layers' rows are the
 * cells [0, n_rows); a sliding-window layer's are its slots.  Pure host
 * code (tested without a GPU).
 */
void cuda_cell_table(const kv_cache *kv, int swa, uint32_t n_rows, int32_t *pos, uint64_t *seq);

#endif /* KINFER_BACKEND_CUDA_BACKEND_H */
