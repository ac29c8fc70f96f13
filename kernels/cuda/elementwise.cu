/*
 * elementwise.cu — out = a + b and x *= s, grid-stride.
 */
#include "common.cuh"

static __global__ void kcu_add_kernel(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = kcu_gid(); i < n; i += kcu_gstride())
        out[i] = a[i] + b[i];
}

static __global__ void kcu_scale_kernel(float *x, float s, int64_t n)
{
    for (int64_t i = kcu_gid(); i < n; i += kcu_gstride())
        x[i] *= s;
}

extern "C" kinfer_cuda_err kinfer_cuda_add(float *out, const float *a, const float *b, int64_t n,
                                           void *stream)
{
    if (n < 0 || (n > 0 && (out == NULL || a == NULL || b == NULL)))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n == 0)
        return 0;
    kcu_add_kernel<<<kinfer_cuda_blocks(n, 256, 1u << 20), 256, 0, kcu_stream(stream)>>>(out, a, b,
                                                                                        n);
    return kcu_launch_result();
}

extern "C" kinfer_cuda_err kinfer_cuda_scale(float *x, float s, int64_t n, void *stream)
{
    if (n < 0 || (n > 0 && x == NULL))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n == 0)
        return 0;
    kcu_scale_kernel<<<kinfer_cuda_blocks(n, 256, 1u << 20), 256, 0, kcu_stream(stream)>>>(x, s, n);
    return kcu_launch_result();
}
