/*
 * gemm.h — batched quantized dot products for prompt matmuls (internal).
 *
 * vec_dot_x4 decodes a weight row once per 4 tokens but gathers every
 * activation block's scale and bytes from the Q8 blocks again for every
 * weight row.  Here the activation rows of a matmul are first repacked once
 * (quant bytes contiguous, scales as floats, Q8_0 bytes offset to unsigned
 * so the weight can be the signed operand of vpdpbusd), and one weight row
 * is decoded once for up to KINFER_GEMM_MAX_NT tokens.
 *
 * Every result is bit for bit the type's vec_dot at the same CPU level (the
 * same integer lane sums, float products and summation order), so a token's
 * output does not depend on the batch it came in.  tests/test_quant.c holds
 * each kernel to that.
 */
#ifndef KINFER_CPU_GEMM_H
#define KINFER_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

#define KINFER_GEMM_MAX_NT 8

/* One activation row (n elements in the weight type's vec_dot_type, as
 * from_float_act wrote it) -> the packed layout, kinfer_gemm_packed_size(n)
 * bytes at out. */
typedef void (*kinfer_gemm_pack_fn)(int64_t n, const void *act, uint8_t *out);

/* out[i + t * out_stride] = vec_dot(n, weight row i, token t), for weight
 * rows w + i * w_stride, i < nr, and tokens t < nt (1 .. MAX_NT), token t's
 * packed row at a + t * a_stride. */
typedef void (*kinfer_gemm_fn)(int64_t n, const void *w, size_t w_stride, int nr, const uint8_t *a,
                               size_t a_stride, int nt, float *out, size_t out_stride);

typedef struct kinfer_gemm_kernels {
    kinfer_gemm_pack_fn pack;
    kinfer_gemm_fn gemm;
} kinfer_gemm_kernels;

/* Kernels for a weight type at the best level this CPU has, or {NULL, NULL}
 * when there are none (then use vec_dot / vec_dot_x4). */
kinfer_gemm_kernels kinfer_gemm_get(int type);

/* Bytes of one packed activation row of n elements (a multiple of 64). */
size_t kinfer_gemm_packed_size(int64_t n);

#if defined(__x86_64__)
/* The AVX-512 kernels of a type, {NULL, NULL} for a type without them. */
kinfer_gemm_kernels kinfer_gemm_avx512(int type);
#endif

#endif /* KINFER_CPU_GEMM_H */
