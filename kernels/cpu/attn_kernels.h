/*
 * attn_kernels.h — kernels of attention over the KV cache (internal).
 *
 * The decode step reads every cached value row of a sequence once per query
 * head; these kernels read the rows in place, in the cache's type, instead
 * of dequantizing the cache to f32 first.  Variants: scalar (any CPU),
 * AVX2 + FMA + F16C, AVX-512; the best one the CPU has is chosen at first use
 * (the same choice as kinfer_cpu_best_level).
 */
#ifndef KINFER_CPU_ATTN_KERNELS_H
#define KINFER_CPU_ATTN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Weighted sum of value rows:
 *   out (n) = sum over r = 0 .. nr-1 of w[r] * row r,
 * row r being n elements of the kernel's type at base + rows[r] * stride
 * bytes.  Rows are added in order r = 0, 1, ... to a zero start, one element
 * at a time, so a result never depends on how many rows or threads others
 * used.  n is a multiple of the type's block size.
 */
typedef void (*kinfer_attn_wsum_fn)(float *out, int64_t n, const uint8_t *base, size_t stride,
                                    const int32_t *rows, const float *w, int32_t nr);

/* Kernel for a KV cache type (F32, F16, Q8_0) at the best level this CPU
 * has; NULL for another type. */
kinfer_attn_wsum_fn kinfer_attn_wsum_get(int type);

/* Same at a given kinfer_cpu_level, or NULL when the CPU lacks it.  For tests. */
kinfer_attn_wsum_fn kinfer_attn_wsum_at(int type, int level);

#if defined(__x86_64__)
/* Per-ISA variants (x86/attn_avx2.c, x86/attn_avx512.c); NULL for a type
 * they lack. */
kinfer_attn_wsum_fn kinfer_attn_wsum_avx2(int type);
kinfer_attn_wsum_fn kinfer_attn_wsum_avx512(int type);
#endif

#endif /* KINFER_CPU_ATTN_KERNELS_H */
