/*
 * kernels.h — the CPU kernels the forward pass calls (internal).
 *
 * Quantized kernels come in variants (scalar reference, AVX2, AVX-512/VNNI):
 * one kernel table per ISA level (isa.h), the one this CPU runs chosen once,
 * at start, and the rest of the program sees its kernels per type.  Everything here is thread-safe and
 * keeps no mutable state besides that one-time choice.
 *
 * Shapes: rows are contiguous; "n" counts elements (not blocks or bytes).
 */
#ifndef KINFER_CPU_KERNELS_H
#define KINFER_CPU_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"
#include "quant.h"
#include "rope.h"

struct kinfer_threadpool;

/* ------------------------------------------------------ per-type kernels */

typedef enum kinfer_cpu_level {
    KINFER_CPU_SCALAR = 0,
    KINFER_CPU_AVX2 = 1,   /* AVX2 + FMA + F16C */
    KINFER_CPU_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI */
    KINFER_CPU_LEVEL_COUNT
} kinfer_cpu_level;

/* Dequantize n elements (a multiple of blck_size) of one row to floats. */
typedef void (*kinfer_to_float_fn)(const void *src, float *dst, int64_t n);
/* Quantize n floats (a multiple of blck_size) into blocks. */
typedef void (*kinfer_from_float_fn)(const float *src, void *dst, int64_t n);
/* Dot product of n elements: a weight row w of this type with an activation
 * row a already in vec_dot_type. */
typedef float (*kinfer_vec_dot_fn)(int64_t n, const void *w, const void *a);

/* One weight row against 4 activation rows (a, a + a_stride, ... bytes):
 * out[t] = w . a_t, bit for bit what vec_dot gives for each, but the
 * weights are decoded once for all four. */
typedef void (*kinfer_vec_dot_x4_fn)(int64_t n, const void *w, const void *a, size_t a_stride,
                                     float *out);

/* Four weight rows (w, w + w_stride, ...) dotted with one activation row:
 * out[i] is bit for bit vec_dot of row i; the rows' accumulations run side
 * by side (a single row's is one dependent chain in ggml's order). */
typedef void (*kinfer_vec_dot_r4_fn)(int64_t n, const void *w, size_t w_stride, const void *a,
                                     float *out);

typedef struct kinfer_cpu_kernels {
    kinfer_to_float_fn to_float;     /* dequantize a row */
    kinfer_from_float_fn from_float; /* quantize a row (the reference quantizer) */
    kinfer_vec_dot_fn vec_dot;       /* weight row . activation row in vec_dot_type */
    int vec_dot_type;
    kinfer_vec_dot_x4_fn vec_dot_x4; /* optional (NULL): batched vec_dot */
    /* quantize an activation row before vec_dot (or a KV cache row) with
     * ggml's CPU numerics; equals from_float except for Q8_0 and Q8_1,
     * whose from_float is the reference quantizer model files are made with */
    kinfer_from_float_fn from_float_act;
    kinfer_vec_dot_r4_fn vec_dot_r4; /* optional (NULL): four rows, one token */
    /* optional (NULL): the kernels for a weight matrix of a multiple of 8
     * rows, which llama.cpp repacks and sums in another order (x86 Q4_0,
     * quant_avx512.h); the type's own stay for every other use (KV cache
     * rows, matrices it does not repack) */
    const struct kinfer_cpu_kernels *repacked;
} kinfer_cpu_kernels;

/* Kernels of a type at the best level this CPU has; NULL for a type we have
 * no kernels for.  Fields may be NULL (e.g. vec_dot of Q8_K, which only ever
 * is an activation type). */
const kinfer_cpu_kernels *kinfer_cpu_kernels_get(int type);

/* Same at a given level, or NULL when this CPU (or build) lacks that level.
 * A level fills in what it does not implement from the level below, so the
 * table is always complete.  For tests and benchmarks. */
const kinfer_cpu_kernels *kinfer_cpu_kernels_at(int type, kinfer_cpu_level level);

/* The reference kernels of a type (ref.c, ref_kquants.c): its scalar
 * level, the ground truth every SIMD and CUDA kernel is tested against. */
const kinfer_cpu_kernels *kinfer_cpu_ref_kernels(int type);

/* Level chosen for this CPU and its name ("avx512", "avx2", "scalar"). */
kinfer_cpu_level kinfer_cpu_best_level(void);
const char *kinfer_cpu_level_name(kinfer_cpu_level level);

/*
 * Checked entry points.  KINFER_E_UNSUPPORTED for a type without that
 * kernel, KINFER_E_INVALID_ARG when n is negative or not a multiple of the
 * type's block size, or a pointer is NULL (with n > 0).
 */
kinfer_status kinfer_dequantize_row(int type, const void *src, float *dst, int64_t n);
kinfer_status kinfer_quantize_row(int type, const float *src, void *dst, int64_t n);
/* Same with from_float_act: activations and KV cache rows at run time. */
kinfer_status kinfer_quantize_act_row(int type, const float *src, void *dst, int64_t n);
/* *out = w . a, with a already in the type's vec_dot_type. */
kinfer_status kinfer_vec_dot(int type, int64_t n, const void *w, const void *a, float *out);

/* ------------------------------------------------------------- matmul */

/*
 * y = W x for a batch of tokens:
 *   w: (n_rows, n_cols) in `type`, rows contiguous, row stride
 *      kinfer_row_size(type, n_cols)
 *   x: (n_tokens, n_cols) f32          y: (n_tokens, n_rows) f32
 * Each x row is quantized once to the type's vec_dot_type, then weight rows
 * are split across the pool's threads (pool may be NULL: calling thread
 * only).  For many tokens it either tiles the quantized dot products or
 * dequantizes panels of W and calls OpenBLAS, whichever measured faster.
 *
 * scratch must hold kinfer_matmul_scratch_size(...) bytes (64-byte aligned
 * is best); it is only used during the call.
 * KINFER_E_UNSUPPORTED: no kernels for type.  KINFER_E_INVALID_ARG: bad
 * shape (n_cols not a multiple of the block size, negative counts) or
 * scratch too small.
 */
size_t kinfer_matmul_scratch_size(int type, int64_t n_cols, int64_t n_tokens, int n_threads);
kinfer_status kinfer_matmul(struct kinfer_threadpool *pool, void *scratch, size_t scratch_size,
                            int type, const void *w, int64_t n_rows, int64_t n_cols,
                            const float *x, int64_t n_tokens, float *y);

/* How kinfer_matmul does many tokens; AUTO picks by measured crossover.
 * The others are for tests and benchmarks. */
typedef enum kinfer_matmul_path {
    KINFER_MATMUL_AUTO = 0,
    KINFER_MATMUL_QUANT = 1, /* quantized dot products, tiled */
    KINFER_MATMUL_BLAS = 2,  /* dequantize panels + cblas_sgemm */
    /* quantized, in the orders of llama.cpp's mul_mat_id (an expert's
     * tokens): as QUANT, except that the matrices llama.cpp repacks
     * (kinfer_gemm_groups_tokens) sum every token in the one-token order,
     * batched through kinfer_gemm_get_mmid's kernels where there are some */
    KINFER_MATMUL_QUANT_MMID = 3,
    /* quantized, every token in the order of a one-token matmul (vec_dot
     * per row), whatever the batch: each token's output has the bits it
     * has alone (a batch-invariant server's K-quants, whose batched orders
     * differ); the weight rows still go through L1 once for all tokens */
    KINFER_MATMUL_QUANT_ONE_TOKEN = 4
} kinfer_matmul_path;

/* OpenBLAS is loaded on first use: where it cannot be, AUTO takes the
 * quantized path and BLAS returns KINFER_E_UNSUPPORTED. */

kinfer_status kinfer_matmul_ex(struct kinfer_threadpool *pool, void *scratch, size_t scratch_size,
                               int type, const void *w, int64_t n_rows, int64_t n_cols,
                               const float *x, int64_t n_tokens, float *y,
                               kinfer_matmul_path path);

/* out[i] = act(g[i]) * u[i], i < n: kinfer_silu_gate or kinfer_gelu_gate */
typedef void (*kinfer_gate_fn)(float *out, const float *g, const float *u, int64_t n);

/*
 * y = gate(W_gate x, W_up x), the gated FFN's two projections at once:
 * both matrices (n_rows, n_cols) of one type, x quantized once, and each
 * row chunk's products gated while they are in cache, so neither product
 * is ever stored whole (y is the only (n_tokens, n_rows) output).  Every
 * element has the bits of two kinfer_matmul_ex(QUANT) calls followed by
 * gate over each token's row.  Same errors as kinfer_matmul; scratch of
 * kinfer_matmul_gated_scratch_size bytes.
 */
size_t kinfer_matmul_gated_scratch_size(int type, int64_t n_cols, int64_t n_tokens, int n_threads);
kinfer_status kinfer_matmul_gated(struct kinfer_threadpool *pool, void *scratch, size_t scratch_size,
                                  int type, const void *w_gate, const void *w_up, int64_t n_rows,
                                  int64_t n_cols, const float *x, int64_t n_tokens, float *y,
                                  kinfer_gate_fn gate);
/* The same with a path: QUANT (as kinfer_matmul_gated; AUTO reads as it),
 * QUANT_MMID (both products in mul_mat_id's orders: an expert's gate and
 * up) or QUANT_ONE_TOKEN (each token the bits of its one-token call).
 * BLAS: KINFER_E_INVALID_ARG. */
kinfer_status kinfer_matmul_gated_ex(struct kinfer_threadpool *pool, void *scratch, size_t scratch_size,
                                     int type, const void *w_gate, const void *w_up, int64_t n_rows,
                                     int64_t n_cols, const float *x, int64_t n_tokens, float *y,
                                     kinfer_gate_fn gate, kinfer_matmul_path path);

/* --------------------------------------------------------- elementwise */

/* out = x / sqrt(mean(x^2) + eps) * w over n elements (w may be NULL for no
 * weight; Gemma's (1 + w) is a different w).  out may alias x. */
void kinfer_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* Rotate, in place, x: (n_tokens, n_heads, head_dim), token t at position
 * pos[t]: angle of pair i is pos * freq_scale * base^(-2i/n_rot) / ff[i],
 * computed in float with ggml's recurrence (so it matches llama.cpp, whose
 * angles drift by up to ~1e-4 rad at positions in the thousands). */
void kinfer_rope(float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                 const int32_t *pos, const kinfer_rope_params *p);

/* In place, numerically stable (max subtracted). */
void kinfer_softmax(float *x, int64_t n);

/*
 * The mixture-of-experts router as llama.cpp's CPU backend computes it:
 * probs (n_tokens, n_expert) = softmax of each row of x (n_tokens, n_cols)
 * times w^T, w (n_expert, n_cols) F32.  On AVX-512 the dot products take
 * ggml's order for an F32 matmul of n_tokens tokens (one: ggml_vec_dot_f32;
 * more, n_cols a multiple of 16: llamafile's tinyBLAS) and the softmax is
 * ggml_soft_max's; elsewhere plain float sums.  A token's row depends only
 * on whether n_tokens is 1.
 */
void kinfer_moe_router(const float *w, int64_t n_expert, int64_t n_cols, const float *x,
                       int64_t n_tokens, float *probs);

/* out = silu(g) * u, silu(g) = g / (1 + e^-g).  out may alias g or u. */
void kinfer_silu_gate(float *out, const float *g, const float *u, int64_t n);

/* out = gelu(g) * u with ggml's tanh approximation
 * gelu(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))), evaluated as
 * ggml's CPU backend does: g rounded to fp16, the result rounded to fp16,
 * 0 below -10 and g above 10 (so logits match llama.cpp's). */
void kinfer_gelu_gate(float *out, const float *g, const float *u, int64_t n);

/* out = gelu(x), as kinfer_gelu_gate's gelu (ggml_gelu on the CPU: fp16
 * table).  out may alias x. */
void kinfer_gelu(float *out, const float *x, int64_t n);

/* out = (x - mean) / sqrt(var + eps) * w + b over n elements, as ggml_norm
 * followed by ggml_mul and ggml_add (w, b may be NULL).  out may alias x. */
void kinfer_layernorm(float *out, const float *x, const float *w, const float *b, int64_t n, float eps);

/* x[i] = x[i] rounded to fp16 and back (ties to even). */
void kinfer_round_fp16(float *x, int64_t n);
/* out = a + b; out may alias either. */
void kinfer_add(float *out, const float *a, const float *b, int64_t n);

/* x *= s */
void kinfer_scale(float *x, float s, int64_t n);

/* Embedding lookup: out row i = row ids[i] of table (n_rows_table rows of
 * n_cols elements of type), as f32.  KINFER_E_INVALID_ARG for an id out of
 * range or a bad row length; KINFER_E_UNSUPPORTED for a type we cannot read. */
kinfer_status kinfer_get_rows(int type, const void *table, int64_t n_rows_table, int64_t n_cols,
                              const int32_t *ids, int64_t n_ids, float *out);

#endif /* KINFER_CPU_KERNELS_H */
