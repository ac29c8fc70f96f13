/*
 * gemv.cu — y = W x for decode over quantized weights, reading W's blocks
 * directly.  One warp per weight row: lane l takes elements l, l + 32, ...,
 * dequantizes each once and multiplies it into up to
 * KINFER_CUDA_GEMV_MAX_TOKENS token accumulators; a shuffle reduction ends
 * the row.  Plain and obviously right; the dp4a / Q8-activation version
 * DESIGN.md §4 asks for is later work, to be measured against this one.
 */
#include "common.cuh"

#define GEMV_THREADS (32 * KINFER_CUDA_GEMV_WARPS)

template <int T>
static __global__ void __launch_bounds__(GEMV_THREADS)
kcu_gemv_kernel(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                const float *x, int n_tokens, float *y)
{
    const int lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * KINFER_CUDA_GEMV_WARPS + threadIdx.x / 32;
    if (r >= n_rows)
        return; /* the whole warp leaves together */
    const uint8_t *row = w + (size_t)r * row_bytes;
    float acc[KINFER_CUDA_GEMV_MAX_TOKENS];
#pragma unroll
    for (int t = 0; t < KINFER_CUDA_GEMV_MAX_TOKENS; t++)
        acc[t] = 0.0f;
    for (int64_t i = lane; i < n_cols; i += 32) {
        const float wv = kcu_elem<T>(row, i);
#pragma unroll
        for (int t = 0; t < KINFER_CUDA_GEMV_MAX_TOKENS; t++)
            if (t < n_tokens)
                acc[t] += wv * x[(int64_t)t * n_cols + i];
    }
#pragma unroll
    for (int t = 0; t < KINFER_CUDA_GEMV_MAX_TOKENS; t++) {
        if (t < n_tokens) { /* uniform over the warp */
            const float s = kcu_warp_sum(acc[t]);
            if (lane == 0)
                y[(int64_t)t * n_rows + r] = s;
        }
    }
}

extern "C" kinfer_cuda_err kinfer_cuda_gemv(int type, const void *w, int64_t n_rows,
                                            int64_t n_cols, const float *x, int64_t n_tokens,
                                            float *y, void *stream)
{
    if (!kinfer_cuda_type_supported(type))
        return KINFER_CUDA_ERR_NOT_SUPPORTED;
    const size_t row_bytes = kinfer_row_size(type, n_cols);
    if (n_rows < 0 || n_cols <= 0 || n_tokens < 0 || row_bytes == 0)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n_rows == 0 || n_tokens == 0)
        return 0;
    if (w == NULL || x == NULL || y == NULL)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    const int64_t n_blocks = (n_rows + KINFER_CUDA_GEMV_WARPS - 1) / KINFER_CUDA_GEMV_WARPS;
    if (n_blocks > INT32_MAX)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    kinfer_cuda_err err = 0;
    for (int64_t t0 = 0; t0 < n_tokens && err == 0; t0 += KINFER_CUDA_GEMV_MAX_TOKENS) {
        const int nt = (int)(n_tokens - t0 < KINFER_CUDA_GEMV_MAX_TOKENS
                                 ? n_tokens - t0 : KINFER_CUDA_GEMV_MAX_TOKENS);
        const float *xt = x + t0 * n_cols;
        float *yt = y + t0 * n_rows;
        kcu_dispatch_type(type, [&](auto tc) {
            constexpr int T = decltype(tc)::value;
            kcu_gemv_kernel<T><<<(unsigned)n_blocks, GEMV_THREADS, 0, kcu_stream(stream)>>>(
                (const uint8_t *)w, row_bytes, n_rows, n_cols, xt, nt, yt);
        });
        err = kcu_launch_result();
    }
    return err;
}
