/*
 * attn_order.h — attention over an F16 KV cache in llama.cpp's summation
 * orders (x86/attn_order_avx512.c explains them), one head at a time; the
 * attention getters of attn_kernels.h hand them out for several heads.
 * AVX-512 only: call after kinfer_cpu_best_level() >= KINFER_CPU_AVX512.
 */
#ifndef KINFER_CPU_ATTN_ORDER_H
#define KINFER_CPU_ATTN_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/attn_kernels.h"
#include "quant.h"

#if defined(__x86_64__)
/* s[r] = scale * (K row rows[r] . q), hd f16 elements (K rows at
 * k0 + rows[r] * row_k), r < nv */
void kinfer_attn_scores_f16_ordered_avx512(float *s, int hd, const uint8_t *k0, size_t row_k,
                                           const int32_t *rows, int32_t nv, const kinfer_fp16 *q,
                                           float scale, int order);
/* out (hd) = sum over r < nv of p[r] * V row rows[r]; hd a multiple of 16 */
void kinfer_attn_wsum_f16_ordered_avx512(float *out, int hd, const uint8_t *v0, size_t row_v,
                                         const int32_t *rows, const float *p, int32_t nv, int order);
#endif

#endif /* KINFER_CPU_ATTN_ORDER_H */
