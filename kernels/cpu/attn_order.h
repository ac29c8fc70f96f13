/*
 * attn_order.h — attention over an F16 KV cache in llama.cpp's summation
 * orders (x86/attn_order_avx512.c explains them), for the heads that share
 * one KV head; the AVX-512 kernel table (isa.h) holds them.
 * AVX-512 only: call after kinfer_cpu_best_level() >= KINFER_CPU_AVX512.
 */
#ifndef KINFER_CPU_ATTN_ORDER_H
#define KINFER_CPU_ATTN_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/attn_kernels.h"
#include "quant.h"

#if defined(__x86_64__)
/* Scores of g (1 to KINFER_ATTN_MAX_G) query heads against the same K rows:
 * s_k[r] = scale * (K row rows[r] . q_k), hd f16 elements, r < nv, k < g;
 * s_k at s + k * s_stride floats, q_k at q + k * q_stride bytes, K rows at
 * k0 + rows[r] * row_k.  Every s_k[r] is summed in the order alone, so it
 * depends neither on g nor on nv. */
void kinfer_attn_scores_f16_ordered_avx512(float *s, size_t s_stride, int g, int hd, const uint8_t *k0,
                                           size_t row_k, const int32_t *rows, int32_t nv,
                                           const kinfer_fp16 *q, size_t q_stride, float scale, int order);
/* out_k (hd) = sum over r < nv of p_k[r] * V row rows[r], k < g; out_k at
 * out + k * out_stride, p_k at p + k * p_stride floats; hd a multiple of
 * 16.  Each output dim is summed on its own, so a caller may split the
 * dims (v0 and out offset alike) without changing a bit. */
void kinfer_attn_wsum_f16_ordered_avx512(float *out, size_t out_stride, int g, int hd, const uint8_t *v0,
                                         size_t row_v, const int32_t *rows, const float *p, size_t p_stride,
                                         int32_t nv, int order);
#endif

#endif /* KINFER_CPU_ATTN_ORDER_H */
