/*
 * dequant.cu — dequantize a run of blocks of any supported type to F32 or
 * F16: one element per thread, grid-stride.  Feeds the cuBLAS prompt path
 * (W to F16) and tests the element readers of common.cuh against the CPU
 * reference bit for bit.
 */
#include "common.cuh"

template <int T, bool F16_OUT>
static __global__ void kcu_dequant_kernel(const uint8_t *src, int64_t n, void *dst)
{
    for (int64_t i = kcu_gid(); i < n; i += kcu_gstride()) {
        const float v = kcu_elem<T>(src, i);
        if constexpr (F16_OUT)
            ((uint16_t *)dst)[i] = kcu_f2h(v);
        else
            ((float *)dst)[i] = v;
    }
}

extern "C" kinfer_cuda_err kinfer_cuda_dequantize(int type, const void *src, int64_t n,
                                                  int dst_type, void *dst, void *stream)
{
    if (!kinfer_cuda_type_supported(type))
        return KINFER_CUDA_ERR_NOT_SUPPORTED;
    if (n < 0 || (n > 0 && kinfer_row_size(type, n) == 0) ||
        (dst_type != KINFER_TYPE_F32 && dst_type != KINFER_TYPE_F16) ||
        (n > 0 && (src == NULL || dst == NULL)))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n == 0)
        return 0;
    const int threads = 256;
    const unsigned blocks = kinfer_cuda_blocks(n, threads, 1u << 20);
    const uint8_t *s = (const uint8_t *)src;
    kcu_dispatch_type(type, [&](auto tc) {
        constexpr int T = decltype(tc)::value;
        if (dst_type == KINFER_TYPE_F16)
            kcu_dequant_kernel<T, true><<<blocks, threads, 0, kcu_stream(stream)>>>(s, n, dst);
        else
            kcu_dequant_kernel<T, false><<<blocks, threads, 0, kcu_stream(stream)>>>(s, n, dst);
    });
    return kcu_launch_result();
}
