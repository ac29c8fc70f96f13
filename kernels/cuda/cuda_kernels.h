/*
 * cuda_kernels.h — launchers of the CUDA kernels (internal), plain C.
 *
 * Every launcher is asynchronous: it queues work on `stream` (a cudaStream_t
 * passed as void *, NULL = the legacy default stream) and returns at once.
 * It returns a kinfer_cuda_err, the numeric value of a cudaError_t: 0 when
 * the launch was accepted, KINFER_CUDA_ERR_INVALID_VALUE for a bad argument
 * (checked before anything is queued), KINFER_CUDA_ERR_NOT_SUPPORTED for a
 * type the kernel lacks, or the launch error itself.  Errors that happen
 * while the kernel runs show up at the next synchronization.
 * lib/backend_cuda.h turns these codes into kinfer_status with a message;
 * the rest of the library calls the backend, never these directly.
 *
 * Pointers are device pointers unless a comment says otherwise; parameter
 * structs themselves are read on the host during the call.  Shapes are
 * (rows, cols) with rows contiguous; "n" counts elements.  The math is the
 * CPU reference's (kernels/cpu/ref.c, kernels/cpu/ops.c): tests/test_cuda.c
 * holds each kernel to it.
 *
 * The static inline helpers at the end are pure host arithmetic (launch
 * geometry, scratch sizes, argument checks) shared by the launchers, the
 * backend and the tests; they compile, and are tested, without CUDA.
 */
#ifndef KINFER_CUDA_KERNELS_H
#define KINFER_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "rope.h"
#include "kinfer.h"
#include "quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A cudaError_t as an int (0 = success). */
typedef int kinfer_cuda_err;
#define KINFER_CUDA_ERR_INVALID_VALUE 1   /* cudaErrorInvalidValue */
#define KINFER_CUDA_ERR_NOT_SUPPORTED 801 /* cudaErrorNotSupported */

/* ------------------------------------------------------------- weights */

/* dst (n) in dst_type (KINFER_TYPE_F32 or KINFER_TYPE_F16) = src (n
 * elements of `type`, n a multiple of its block size), bit for bit what the
 * reference to_float gives (then rounded to nearest even for F16). */
kinfer_cuda_err kinfer_cuda_dequantize(int type, const void *src, int64_t n, int dst_type,
                                       void *dst, void *stream);

/*
 * y = W x for a few tokens (decode), reading W's blocks directly:
 *   w: (n_rows, n_cols) in `type`, row stride kinfer_row_size(type, n_cols)
 *   x: (n_tokens, n_cols) f32          y: (n_tokens, n_rows) f32
 * One warp per row, float accumulation.  Any n_tokens works; tokens are
 * taken KINFER_CUDA_GEMV_MAX_TOKENS at a time (W is read once per group).
 */
kinfer_cuda_err kinfer_cuda_gemv(int type, const void *w, int64_t n_rows, int64_t n_cols,
                                 const float *x, int64_t n_tokens, float *y, void *stream);

/* Embedding lookup: out row i (f32, n_cols) = row ids[i] of table
 * (n_rows_table rows of n_cols elements of type).  ids are device int32; an
 * id out of range gives a row of NaN (callers check ids on the host). */
kinfer_cuda_err kinfer_cuda_get_rows(int type, const void *table, int64_t n_rows_table,
                                     int64_t n_cols, const int32_t *ids, int64_t n_ids, float *out,
                                     void *stream);

/* Scatter-convert (the KV cache write): row ids[i] of table (n_rows_table
 * rows of n_cols elements of type: F32, F16, BF16 or Q8_0) = src row i
 * (f32, n_ids rows), quantized exactly as the reference from_float does.
 * ids NULL = row i goes to row i (a plain conversion).  Rows not named are
 * left as they are; an id out of range writes nothing (callers check). */
kinfer_cuda_err kinfer_cuda_set_rows(int type, void *table, int64_t n_rows_table, int64_t n_cols,
                                     const int32_t *ids, int64_t n_ids, const float *src,
                                     void *stream);

/* ---------------------------------------------------------- elementwise */

/* Per row of x (n_rows, n): out = x / sqrt(mean(x^2) + eps) * w (w (n) may
 * be NULL).  out may alias x. */
kinfer_cuda_err kinfer_cuda_rmsnorm(float *out, const float *x, const float *w, int64_t n_rows,
                                    int64_t n, float eps, void *stream);

/* In place on x (n_tokens, n_heads, head_dim), token t at position pos[t]
 * (device int32), as kinfer_rope.  p is read on the host; p->freq_factors,
 * when not NULL, is a DEVICE array of n_rot/2 floats. */
kinfer_cuda_err kinfer_cuda_rope(float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                                 const int32_t *pos, const kinfer_rope_params *p, void *stream);

/* In place softmax of each row of x (n_rows, n), max subtracted. */
kinfer_cuda_err kinfer_cuda_softmax(float *x, int64_t n_rows, int64_t n, void *stream);

/* out = silu(g) * u; out = gelu(g) * u (ggml's tanh approximation, as
 * kinfer_gelu_gate).  out may alias g or u. */
kinfer_cuda_err kinfer_cuda_silu_gate(float *out, const float *g, const float *u, int64_t n,
                                      void *stream);
kinfer_cuda_err kinfer_cuda_gelu_gate(float *out, const float *g, const float *u, int64_t n,
                                      void *stream);

/* out = a + b (out may alias either); x *= s. */
kinfer_cuda_err kinfer_cuda_add(float *out, const float *a, const float *b, int64_t n,
                                void *stream);
kinfer_cuda_err kinfer_cuda_scale(float *x, float s, int64_t n, void *stream);

/* ------------------------------------------------------------ attention */

/*
 * Attention of n_q query tokens over n_kv cache cells.  Cells are in no
 * particular order (see lib/kvcache.h): query t sees cell c when
 *   kv_pos[c] >= 0 && kv_pos[c] <= q_pos[t]
 *   && (n_swa <= 0 || q_pos[t] - kv_pos[c] < n_swa)
 *   && (kv_seq == NULL || bit q_seq[t] of kv_seq row c is set),
 * the rule of lib/forward.c's mask.  Cells nobody sees are never read as
 * numbers (free cells may hold garbage).  A query that sees nothing gets a
 * row of zeros.  Query head h reads kv head h / (n_head / n_head_kv).
 * Scores are scale * q.k, then softcap * tanh(s / softcap) when softcap > 0.
 */
typedef struct kinfer_cuda_attn_params {
    int32_t n_q;              /* query tokens */
    int32_t n_head, n_head_kv;
    int32_t head_dim_k, head_dim_v; /* <= KINFER_CUDA_ATTN_MAX_HEAD_DIM */
    const float *q;           /* (n_q, n_head, head_dim_k) f32 */
    const int32_t *q_pos;     /* (n_q) */
    const int32_t *q_seq;     /* (n_q) sequence ids; read only when kv_seq != NULL */
    int32_t n_kv;             /* cells */
    int type_k, type_v;       /* KINFER_TYPE_F32, F16 or Q8_0 */
    const void *k;            /* (n_kv, n_head_kv * head_dim_k) in type_k */
    const void *v;            /* (n_kv, n_head_kv * head_dim_v) in type_v */
    size_t k_row_bytes, v_row_bytes; /* row strides of k and v */
    const int32_t *kv_pos;    /* (n_kv) position of each cell, < 0 = free */
    const uint64_t *kv_seq;   /* (n_kv, kv_seq_words) sequence bit sets, or NULL */
    int32_t kv_seq_words;
    float scale;              /* usually 1 / sqrt(head_dim_k) */
    float softcap;            /* 0 = off */
    int32_t n_swa;            /* sliding window, 0 = off */
    float *out;               /* (n_q, n_head, head_dim_v) f32 */
} kinfer_cuda_attn_params;

/* Flash-decoding: each (query, head) splits the cells into chunks of
 * KINFER_CUDA_ATTN_SPLIT, one block each computes a partial softmax-weighted
 * sum, a second kernel combines them.  For few queries (decode).  scratch
 * (device, f32) holds kinfer_cuda_attn_decode_scratch_bytes(...) bytes. */
kinfer_cuda_err kinfer_cuda_attn_decode(const kinfer_cuda_attn_params *p, float *scratch,
                                        size_t scratch_bytes, void *stream);

/* Tiled (KINFER_CUDA_ATTN_BQ queries x KINFER_CUDA_ATTN_BK cells in shared
 * memory, online softmax) for prompts; skips tiles no query sees. */
kinfer_cuda_err kinfer_cuda_attn_prompt(const kinfer_cuda_attn_params *p, void *stream);

/* ---------------------------------------------------------------- misc */

/* Whether this build has kernel code the current device can run
 * (cudaErrorNoKernelImageForDevice / cudaErrorInvalidDeviceFunction when the
 * GPU's architecture was not compiled for). */
kinfer_cuda_err kinfer_cuda_probe(void);

/* ------------------------------------------------- host-side arithmetic */

#define KINFER_CUDA_GEMV_MAX_TOKENS 8  /* tokens per pass of kinfer_cuda_gemv */
#define KINFER_CUDA_GEMV_WARPS 4       /* rows (warps) per block */
#define KINFER_CUDA_ATTN_SPLIT 256     /* cells per block of the decode kernel */
#define KINFER_CUDA_ATTN_MAX_HEAD_DIM 256
#define KINFER_CUDA_ATTN_BQ 16         /* queries per tile of the prompt kernel */
#define KINFER_CUDA_ATTN_BK 16         /* cells per tile of the prompt kernel */
#define KINFER_CUDA_MAX_GRID 65535     /* grid y/z limit, and our cap on x */

/* Types the weight kernels (dequantize, gemv, get_rows) read. */
static inline int kinfer_cuda_type_supported(int type)
{
    switch (type) {
    case KINFER_TYPE_F32: case KINFER_TYPE_F16: case KINFER_TYPE_BF16:
    case KINFER_TYPE_Q4_0: case KINFER_TYPE_Q4_1: case KINFER_TYPE_Q5_0: case KINFER_TYPE_Q5_1:
    case KINFER_TYPE_Q8_0: case KINFER_TYPE_Q2_K: case KINFER_TYPE_Q3_K: case KINFER_TYPE_Q4_K:
    case KINFER_TYPE_Q5_K: case KINFER_TYPE_Q6_K: case KINFER_TYPE_IQ4_NL: case KINFER_TYPE_IQ4_XS:
        return 1;
    default:
        return 0;
    }
}

/* Types set_rows writes. */
static inline int kinfer_cuda_set_rows_type_supported(int type)
{
    return type == KINFER_TYPE_F32 || type == KINFER_TYPE_F16 || type == KINFER_TYPE_BF16 ||
           type == KINFER_TYPE_Q8_0;
}

/* Types attention reads as a KV cache. */
static inline int kinfer_cuda_attn_type_supported(int type)
{
    return type == KINFER_TYPE_F32 || type == KINFER_TYPE_F16 || type == KINFER_TYPE_Q8_0;
}

/* Blocks of `threads` to cover n items with a grid-stride loop: ceil(n /
 * threads), at least 1, at most cap. */
static inline unsigned kinfer_cuda_blocks(int64_t n, int threads, unsigned cap)
{
    if (n <= 0 || threads <= 0)
        return 1;
    const int64_t b = (n + threads - 1) / threads;
    return b > (int64_t)cap ? cap : (unsigned)b;
}

/* Decode-attention chunks of a cache of n_kv cells. */
static inline int64_t kinfer_cuda_attn_n_splits(int64_t n_kv)
{
    return n_kv <= 0 ? 0 : (n_kv + KINFER_CUDA_ATTN_SPLIT - 1) / KINFER_CUDA_ATTN_SPLIT;
}

/* Scratch of kinfer_cuda_attn_decode: per (query, head, split) a running
 * max, a sum and head_dim_v partial outputs, as f32. */
static inline size_t kinfer_cuda_attn_decode_scratch_bytes(int64_t n_q, int64_t n_head,
                                                           int64_t n_kv, int64_t head_dim_v)
{
    if (n_q <= 0 || n_head <= 0 || n_kv <= 0 || head_dim_v <= 0)
        return 0;
    return (size_t)n_q * (size_t)n_head * (size_t)kinfer_cuda_attn_n_splits(n_kv) *
           (size_t)(head_dim_v + 2) * sizeof(float);
}

/* Dynamic shared memory of one block of kinfer_cuda_attn_prompt: Q, K, V
 * and O tiles and the score tile as f32, per-query m, l, correction, and
 * position and sequence as int32. */
static inline size_t kinfer_cuda_attn_prompt_smem_bytes(int64_t head_dim_k, int64_t head_dim_v)
{
    const int64_t bq = KINFER_CUDA_ATTN_BQ, bk = KINFER_CUDA_ATTN_BK;
    const int64_t floats = bq * head_dim_k + bk * head_dim_k + bk * head_dim_v +
                           bq * head_dim_v + bq * bk + 3 * bq;
    return (size_t)floats * sizeof(float) + (size_t)(2 * bq) * sizeof(int32_t);
}

/* Check attention parameters; 0 or a kinfer_cuda_err. */
static inline kinfer_cuda_err kinfer_cuda_attn_check(const kinfer_cuda_attn_params *p)
{
    if (p == NULL || p->n_q < 0 || p->n_kv < 0 || p->n_head <= 0 || p->n_head_kv <= 0 ||
        p->n_head % p->n_head_kv != 0 || p->head_dim_k <= 0 || p->head_dim_v <= 0 ||
        p->head_dim_k > KINFER_CUDA_ATTN_MAX_HEAD_DIM ||
        p->head_dim_v > KINFER_CUDA_ATTN_MAX_HEAD_DIM || p->n_head > KINFER_CUDA_MAX_GRID)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (!kinfer_cuda_attn_type_supported(p->type_k) ||
        !kinfer_cuda_attn_type_supported(p->type_v))
        return KINFER_CUDA_ERR_NOT_SUPPORTED;
    /* a head's slice of a cache row must be whole blocks */
    if (kinfer_row_size(p->type_k, p->head_dim_k) == 0 ||
        kinfer_row_size(p->type_v, p->head_dim_v) == 0)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (p->k_row_bytes < kinfer_row_size(p->type_k, (int64_t)p->n_head_kv * p->head_dim_k) ||
        p->v_row_bytes < kinfer_row_size(p->type_v, (int64_t)p->n_head_kv * p->head_dim_v))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (p->kv_seq != NULL && (p->kv_seq_words <= 0 || p->q_seq == NULL))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (p->n_q > 0 && (p->q == NULL || p->q_pos == NULL || p->out == NULL))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (p->n_q > 0 && p->n_kv > 0 && (p->k == NULL || p->v == NULL || p->kv_pos == NULL))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    return 0;
}

/* Rows of W dequantized per cuBLAS call when a panel of rows must fit in
 * max_bytes of F16: at least 1, at most n_rows. */
static inline int64_t kinfer_cuda_gemm_panel_rows(int64_t n_rows, int64_t n_cols, size_t max_bytes)
{
    if (n_rows <= 0)
        return 0;
    const size_t row = (size_t)(n_cols > 0 ? n_cols : 1) * 2;
    const size_t fit = max_bytes / row;
    if (fit < 1)
        return 1;
    return (int64_t)fit < n_rows ? (int64_t)fit : n_rows;
}

#ifdef __cplusplus
}
#endif

#endif /* KINFER_CUDA_KERNELS_H */
