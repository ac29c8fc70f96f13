/*
 * cpu.h — the CPU backend: the operations of backend.h on kernels/cpu/,
 * split over a thread pool (internal).
 */
#ifndef KINFER_BACKEND_CPU_H
#define KINFER_BACKEND_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

struct kinfer_threadpool;

/* What a CPU backend is made for: the model, the cache's cells and K type,
 * the most tokens one call sees, the threads. */
typedef struct cpu_backend_shape {
    const model_weights *w;
    uint32_t n_ctx;
    int type_k;
    int32_t n_tokens;
    int32_t n_threads;
    /* kv_seq_regions: a token's bits must not depend on its batch, even
     * where llama.cpp's order does (cpu_matmul) */
    int batch_invariant;
    int flash_attn;     /* attention as llama.cpp's flash attention (cpu_attn.c) */
} cpu_backend_shape;

/* Host scratch bytes the backend will allocate (for the memory estimate). */
uint64_t backend_cpu_scratch_bytes(const cpu_backend_shape *shape);

/* err gets a message on failure. */
kinfer_status backend_cpu_new(const cpu_backend_shape *shape, backend **out, char *err,
                              size_t err_size);

/* ------------------------------------------- shared by cpu.c and cpu_attn.c */

typedef struct cpu_backend {
    backend base;
    struct kinfer_threadpool *pool; /* NULL: the calling thread does everything */
    uint32_t n_ctx;
    int batch_invariant;            /* cpu_backend_shape's */
    int flash_attn;                 /* cpu_backend_shape's */
    const model_hparams *hp;
    void *mm;                       /* kinfer_matmul scratch */
    size_t mm_size;
    float *up;                      /* (n_tokens, n_ff) the up product when gate and up
                                     * differ in type (kinfer_matmul_gated needs none) */
    int64_t n_ff;
    /* attention: per-slice scratch (cpu_attn.c's att_slice) */
    void *att_tmp;                  /* (att_slices, att_stride) */
    size_t att_stride;
    int32_t att_slices;
    /* a lone token's visible rows on full (0) and sliding-window (1) layers:
     * the same on every layer of a kind, found by the first of the view
     * dec_view (nv -1: not yet) */
    int32_t *dec_rows;              /* (2, n_ctx) */
    uint64_t dec_view;
    int32_t dec_nv[2], dec_pad[2];
    /* mixture of experts: cpu_moe.c's scratch for up to moe_tokens tokens
     * (NULL: a dense model) */
    float *moe_mem;
    int32_t moe_tokens;
} cpu_backend;

/* Attention scratch bytes of one slice, and the slices a context needs. */
size_t cpu_attn_stride(uint32_t n_ctx, int head_dim_k, int type_k);
int32_t cpu_attn_slices(const model_hparams *hp, int32_t n_threads);

/* Flash attention's scratch bytes of one slice (one per thread). */
size_t cpu_fa_stride(uint32_t n_ctx, const model_hparams *hp, int type_k);

void cpu_attention(backend *be, const backend_attn *a);
/* cpu_encoder.c: an encoder's attention of a batch over itself */
kinfer_status cpu_self_attention(backend *be, const backend_self_attn *a);
void cpu_flash_attention(cpu_backend *cb, const backend_attn *a);

/* cpu_moe.c: the scratch of n_tokens (0 for a dense model), its
 * allocation, and the operation */
size_t cpu_moe_scratch_bytes(const model_hparams *hp, int32_t n_tokens);
kinfer_status cpu_moe_init(cpu_backend *cb, const model_hparams *hp, int32_t n_tokens);
kinfer_status cpu_moe_ffn(backend *be, const backend_moe *m, const float *x, int32_t n, float *y);

#endif /* KINFER_BACKEND_CPU_H */
