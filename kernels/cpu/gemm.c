/*
 * gemm.c — choice of the batched prompt-matmul kernels (see gemm.h).  They
 * mirror the AVX-512 vec_dot kernels bit for bit (tests/test_quant.c holds
 * them to it), so they are only offered where those are the ones in use.
 */
#include "cpu/gemm.h"

#include "cpu/kernels.h"
#include "quant.h"

size_t kinfer_gemm_packed_size(int64_t n)
{
    /* per token and 32-element block: 32 quant bytes, 8 int32 lane
     * corrections and a float (the 32-element types' groups), or 32 quant
     * bytes and two floats (Q8_1); K-quants: 256 bytes and a 64-byte record
     * per 256 elements */
    const size_t nb = (size_t)(n > 0 ? n : 0) / 32;
    return (nb * (32 + 32 + 4) + 63) & ~(size_t)63;
}

size_t kinfer_gemm_decoded_row_size(int64_t n)
{
    /* per 32-element block 32 quant bytes, d and m */
    const size_t nb = (size_t)(n > 0 ? n : 0) / 32;
    return (nb * (32 + 8) + 63) & ~(size_t)63;
}

kinfer_gemm_kernels kinfer_gemm_get(int type)
{
#if defined(__x86_64__)
    if (kinfer_cpu_best_level() >= KINFER_CPU_AVX512) return kinfer_gemm_avx512(type);
#endif
    (void)type;
    return (kinfer_gemm_kernels){0};
}

kinfer_gemm_fn kinfer_gemm_get_tiled(int type)
{
#if defined(__x86_64__)
    if (kinfer_cpu_best_level() >= KINFER_CPU_AVX512) return kinfer_gemm_tiled_avx512(type);
#endif
    (void)type;
    return NULL;
}

kinfer_gemm_kernels kinfer_gemm_get_repacked(int type)
{
#if defined(__x86_64__)
    if (kinfer_cpu_best_level() >= KINFER_CPU_AVX512) return kinfer_gemm_repacked_avx512(type);
#endif
    (void)type;
    return (kinfer_gemm_kernels){0};
}
