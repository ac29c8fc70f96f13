/*
 * backend_cuda.h — the CUDA backend's host side (internal).
 *
 * A kcuda is what one context owns on one GPU: the device number, a stream
 * (every op of the context is queued on it, in order), the cuBLAS handle
 * bound to that stream, and a scratch buffer that grows on demand.  It
 * belongs to one thread at a time, like its context; kcuda_activate() makes
 * its device current for the calling thread (every kcuda_* op does it
 * itself).
 *
 * Errors: every CUDA and cuBLAS failure becomes a kinfer_status (see
 * kcuda_status_of) and a message naming the call, kept on the handle
 * (kcuda_errmsg) or, for calls without one, written to err.  Ops are
 * asynchronous: a fault inside a kernel is reported by the next call that
 * synchronizes (kcuda_sync, kcuda_download).
 *
 * Built without CUDA (KINFER_CUDA=0) every function exists and fails with
 * KINFER_E_UNSUPPORTED ("kinfer was built without CUDA"), so callers need
 * no #ifdef; the pure helpers (kcuda_status_of, kcuda_matmul_scratch_bytes)
 * work in both builds.
 *
 * Pointers named dst/src/w/x/y/table/out are device memory unless the
 * comment says host.
 */
#ifndef KINFER_BACKEND_CUDA_H
#define KINFER_BACKEND_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "cuda/cuda_kernels.h"
#include "kinfer.h"

typedef struct kcuda kcuda;

typedef struct kcuda_device_info {
    int device;
    char name[256];
    int cc_major, cc_minor;     /* compute capability */
    int sm_count;
    size_t total_bytes, free_bytes;
    int driver_version;         /* CUDA version the driver supports, 12040 = 12.4 */
    int runtime_version;        /* CUDA runtime kinfer runs with */
} kcuda_device_info;

/* ---------------------------------------------------------------- errors */

/* kinfer_status of a cudaError_t value (as kinfer_cuda_err): 0 -> OK,
 * invalid value -> INVALID_ARG, not supported -> UNSUPPORTED, anything else
 * (out of memory, no device, launch failure, ...) -> DEVICE. */
kinfer_status kcuda_status_of(int cuda_err);

/* kinfer_status of a cublasStatus_t value. */
kinfer_status kcuda_cublas_status_of(int cublas_status);

/* "what: cudaErrorName (description)" into buf (always NUL-terminated). */
void kcuda_format_error(char *buf, size_t size, const char *what, int cuda_err);

/* ------------------------------------------------------ device and handle */

/* Properties of a device.  Makes it the calling thread's current device. */
kinfer_status kcuda_device_info_get(int device, kcuda_device_info *out, char *err,
                                    size_t err_size);

/* Open device `device`: checks that a driver and the device exist, that the
 * build has code for its architecture, creates the stream and the cuBLAS
 * handle.  KINFER_E_DEVICE (no GPU, driver too old, no kernel image, ...)
 * or KINFER_E_INVALID_ARG (no such device number), with err naming the
 * failing call; nothing is left allocated on failure. */
kinfer_status kcuda_new(int device, kcuda **out, char *err, size_t err_size);

/* Waits for queued work, then releases everything.  NULL is fine. */
void kcuda_free(kcuda *cu);

/* Message of the handle's last failure ("" if none). */
const char *kcuda_errmsg(const kcuda *cu);

int kcuda_device(const kcuda *cu);
void *kcuda_stream(const kcuda *cu); /* the cudaStream_t */
kinfer_status kcuda_activate(kcuda *cu);

/* --------------------------------------------------------------- memory */

/* Device memory.  A failed allocation (including out of memory, which
 * names the size) leaves *out NULL. */
kinfer_status kcuda_alloc(kcuda *cu, size_t bytes, void **out);
/* n buffers at once: all succeed, or none is left allocated. */
kinfer_status kcuda_alloc_many(kcuda *cu, int n, const size_t *bytes, void **out);
/* Frees device memory (NULL is fine); waits for the device. */
void kcuda_dealloc(kcuda *cu, void *p);

/* Copies on the handle's stream that return when the copy is done (src of
 * an upload / dst of a download are host memory, any kind). */
kinfer_status kcuda_upload(kcuda *cu, void *dst, const void *src, size_t bytes);
kinfer_status kcuda_download(kcuda *cu, void *dst, const void *src, size_t bytes);
kinfer_status kcuda_memset(kcuda *cu, void *dst, int value, size_t bytes);
/* Wait for everything queued on the stream; reports kernel faults. */
kinfer_status kcuda_sync(kcuda *cu);

/* The handle's scratch, at least `bytes`, valid until the next call that
 * grows it.  Ops below use it too (between their start and end on the
 * stream), so a caller's use must not overlap theirs. */
kinfer_status kcuda_scratch(kcuda *cu, size_t bytes, void **out);

/* ---------------------------------------------------------------- matmul */

typedef enum kcuda_matmul_path {
    KCUDA_MATMUL_AUTO = 0, /* GEMV up to KCUDA_GEMV_MAX_BATCH tokens, else GEMM */
    KCUDA_MATMUL_GEMV = 1, /* quantized GEMV kernel (any batch) */
    KCUDA_MATMUL_GEMM = 2  /* dequantize W to F16 by panels + cublasGemmEx */
} kcuda_matmul_path;

#define KCUDA_GEMV_MAX_BATCH 8
#define KCUDA_GEMM_PANEL_BYTES_DEFAULT ((size_t)64 << 20)

/* Scratch bytes kcuda_matmul_ex needs: for GEMM the F16 copy of x
 * (n_tokens, n_cols) plus, unless W is F16 already, one F16 panel of W of
 * at most panel_bytes; 0 for GEMV. */
size_t kcuda_matmul_scratch_bytes(int type, int64_t n_rows, int64_t n_cols, int64_t n_tokens,
                                  size_t panel_bytes, kcuda_matmul_path path);

/* y (n_tokens, n_rows) f32 = W (n_rows, n_cols, type) x (n_tokens, n_cols) f32,
 * as kinfer_matmul.  KINFER_E_UNSUPPORTED for a type without CUDA kernels. */
kinfer_status kcuda_matmul(kcuda *cu, int type, const void *w, int64_t n_rows, int64_t n_cols,
                           const float *x, int64_t n_tokens, float *y);
kinfer_status kcuda_matmul_ex(kcuda *cu, int type, const void *w, int64_t n_rows, int64_t n_cols,
                              const float *x, int64_t n_tokens, float *y, kcuda_matmul_path path);

/* Bound on the F16 panel of W of the GEMM path (default 64 MiB); tests make
 * it small to exercise several panels.  0 restores the default. */
void kcuda_set_gemm_panel_bytes(kcuda *cu, size_t bytes);

/* ------------------------------------------------------------ other ops */
/* Thin checked wrappers of the launchers in kernels/cuda/cuda_kernels.h
 * (same arguments and meaning), queued on the handle's stream. */

kinfer_status kcuda_dequantize(kcuda *cu, int type, const void *src, int64_t n, int dst_type,
                               void *dst);
kinfer_status kcuda_get_rows(kcuda *cu, int type, const void *table, int64_t n_rows_table,
                             int64_t n_cols, const int32_t *ids, int64_t n_ids, float *out);
kinfer_status kcuda_set_rows(kcuda *cu, int type, void *table, int64_t n_rows_table,
                             int64_t n_cols, const int32_t *ids, int64_t n_ids, const float *src);
kinfer_status kcuda_rmsnorm(kcuda *cu, float *out, const float *x, const float *w, int64_t n_rows,
                            int64_t n, float eps);
kinfer_status kcuda_rope(kcuda *cu, float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                         const int32_t *pos, const kinfer_rope_params *p);
kinfer_status kcuda_softmax(kcuda *cu, float *x, int64_t n_rows, int64_t n);
kinfer_status kcuda_silu_gate(kcuda *cu, float *out, const float *g, const float *u, int64_t n);
kinfer_status kcuda_gelu_gate(kcuda *cu, float *out, const float *g, const float *u, int64_t n);
kinfer_status kcuda_add(kcuda *cu, float *out, const float *a, const float *b, int64_t n);
kinfer_status kcuda_scale(kcuda *cu, float *x, float s, int64_t n);

typedef enum kcuda_attn_path {
    KCUDA_ATTN_AUTO = 0,   /* decode kernel up to KCUDA_ATTN_DECODE_MAX_Q queries */
    KCUDA_ATTN_DECODE = 1, /* split + combine (uses the scratch) */
    KCUDA_ATTN_PROMPT = 2  /* tiled */
} kcuda_attn_path;

#define KCUDA_ATTN_DECODE_MAX_Q 4

kinfer_status kcuda_attention(kcuda *cu, const kinfer_cuda_attn_params *p);
kinfer_status kcuda_attention_ex(kcuda *cu, const kinfer_cuda_attn_params *p,
                                 kcuda_attn_path path);

#endif /* KINFER_BACKEND_CUDA_H */
