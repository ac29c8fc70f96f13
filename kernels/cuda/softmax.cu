/*
 * softmax.cu — one block per row, in place: max, exp(x - max) with the sum,
 * then the scale by 1 / sum.
 */
#include "common.cuh"

#define SOFTMAX_THREADS 256

static __global__ void __launch_bounds__(SOFTMAX_THREADS)
kcu_softmax_kernel(float *x, int64_t n)
{
    __shared__ float tmp[32];
    float *xr = x + (int64_t)blockIdx.x * n;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        mx = fmaxf(mx, xr[i]);
    mx = kcu_block_max(mx, tmp);
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float e = expf(xr[i] - mx);
        xr[i] = e;
        sum += e;
    }
    sum = kcu_block_sum(sum, tmp);
    const float inv = 1.0f / sum;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        xr[i] *= inv; /* each thread rescales the elements it wrote */
}

extern "C" kinfer_cuda_err kinfer_cuda_softmax(float *x, int64_t n_rows, int64_t n, void *stream)
{
    if (n_rows < 0 || n < 0 || n_rows > INT32_MAX)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n_rows == 0 || n == 0)
        return 0;
    if (x == NULL)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    kcu_softmax_kernel<<<(unsigned)n_rows, SOFTMAX_THREADS, 0, kcu_stream(stream)>>>(x, n);
    return kcu_launch_result();
}
