/*
 * rmsnorm.cu — one block per row: sum of squares in double (as the CPU
 * does), then out = x * scale * w.
 */
#include "common.cuh"

#define RMS_THREADS 256

static __global__ void __launch_bounds__(RMS_THREADS)
kcu_rmsnorm_kernel(float *out, const float *x, const float *w, int64_t n, float eps)
{
    __shared__ double tmp[32];
    const float *xr = x + (int64_t)blockIdx.x * n;
    float *outr = out + (int64_t)blockIdx.x * n;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        ss += (double)xr[i] * xr[i];
    ss = kcu_block_sum_d(ss, tmp);
    const float scale = (float)(1.0 / sqrt(ss / (double)(n > 0 ? n : 1) + (double)eps));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        outr[i] = w ? xr[i] * scale * w[i] : xr[i] * scale;
}

extern "C" kinfer_cuda_err kinfer_cuda_rmsnorm(float *out, const float *x, const float *w,
                                               int64_t n_rows, int64_t n, float eps, void *stream)
{
    if (n_rows < 0 || n < 0 || n_rows > INT32_MAX)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n_rows == 0 || n == 0)
        return 0;
    if (out == NULL || x == NULL)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    kcu_rmsnorm_kernel<<<(unsigned)n_rows, RMS_THREADS, 0, kcu_stream(stream)>>>(out, x, w, n, eps);
    return kcu_launch_result();
}
