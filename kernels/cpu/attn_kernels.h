/*
 * attn_kernels.h — kernels of attention over the KV cache (internal).
 *
 * The decode step reads every cached value row of a sequence once per query
 * head; these kernels read the rows in place, in the cache's type, instead
 * of dequantizing the cache to f32 first.  Variants: scalar (any CPU),
 * AVX2 + FMA + F16C, AVX-512; the getters read the CPU's kernel table
 * (isa.h), the same choice as kinfer_cpu_best_level.
 */
#ifndef KINFER_CPU_ATTN_KERNELS_H
#define KINFER_CPU_ATTN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Weighted sums of value rows, for g (1 to 4) heads that read the same rows:
 *   out_k (n) = sum over r = 0 .. nr-1 of w_k[r] * row r,   k < g,
 * out_k at out + k * out_stride floats, w_k at w + k * w_stride floats, row
 * r being n elements of the kernel's type at base + rows[r] * stride bytes.
 * Every element is accumulated in a fixed order (row order from zero, one
 * rounding per row, each row read once for all g heads; the llama.cpp-order
 * F16 kernels: that order), so out_k is bit for bit the same whatever g, nr
 * of other calls, or thread count, and each output element is computed on
 * its own (a caller may split the n elements, in whole blocks).  n is a
 * multiple of the type's block size.
 */
#define KINFER_ATTN_MAX_G 4
typedef void (*kinfer_attn_wsum_fn)(float *out, size_t out_stride, int g, int64_t n,
                                    const uint8_t *base, size_t stride, const int32_t *rows,
                                    const float *w, size_t w_stride, int32_t nr);

/*
 * Scores of g (1 to 4) query heads against the same K rows:
 *   s_k[r] = scale * (q_k . row r),   r < nr, k < g,
 * s_k at s + k * s_stride floats, q_k at q + k * q_stride bytes in the K
 * type's vec_dot_type, rows as in the weighted sum.  The same sum order for
 * every r and k, so s_k[r] does not depend on g, nr or the thread count; it
 * differs from vec_dot only by float rounding.  NULL from the getter when
 * there is no such kernel for the type and head size at this level (then
 * use vec_dot).
 */
typedef void (*kinfer_attn_scores_fn)(float *s, size_t s_stride, int g, int64_t n,
                                      const uint8_t *base, size_t stride, const int32_t *rows,
                                      int32_t nr, const void *q, size_t q_stride, float scale);
/* The summation order to follow: llama.cpp's for a micro-batch of 2+ tokens
 * (GEMM) or of one token (VEC); see x86/attn_order_avx512.c.  On AVX-512
 * an F16 cache with a head size that is a multiple of 16 gets kernels in
 * exactly that order; other caches and CPUs ignore it. */
enum { KINFER_F16_ORDER_GEMM, KINFER_F16_ORDER_VEC };

kinfer_attn_scores_fn kinfer_attn_scores_get(int type, int64_t n, int order);

/* Softmax of attention scores in place: kinfer_softmax's math (max
 * subtracted, the sum in double); on AVX-512 exactly ggml_vec_soft_max_f32
 * (its vectorized exp, chunks of 16 summed in float, then in double). */
void kinfer_attn_softmax(float *x, int64_t n);

/* x[i] rounded to fp16 and back (ties to even), as kinfer_round_fp16. */
void kinfer_attn_round_fp16(float *x, int64_t n);

/* Kernel for a KV cache type (F32, F16, Q8_0) and head size n at the best
 * level this CPU has, in the given order where it applies; NULL for
 * another type. */
kinfer_attn_wsum_fn kinfer_attn_wsum_get(int type, int64_t n, int order);

/* Same at a given kinfer_cpu_level, or NULL when the CPU lacks it.  For tests. */
kinfer_attn_wsum_fn kinfer_attn_wsum_at(int type, int level);

#endif /* KINFER_CPU_ATTN_KERNELS_H */
