/*
 * set_rows.cu — convert f32 rows and scatter them into a table: the KV
 * cache write (cell indices as ids) and plain f32 -> F16 conversion (ids
 * NULL) for the cuBLAS path.  F32/F16/BF16 one element per thread; Q8_0 one
 * warp per 32-block (warp max for the scale), with the reference's exact
 * arithmetic: d = amax / 127, q = roundf(x * (1 / d)).
 */
#include "common.cuh"

template <int T>
static __global__ void kcu_set_rows_kernel(uint8_t *table, size_t row_bytes, int64_t n_rows_table,
                                           int64_t n_cols, const int32_t *ids, int64_t n_ids,
                                           const float *src)
{
    if constexpr (T == KINFER_TYPE_Q8_0) {
        const int lane = threadIdx.x % 32;
        const int64_t nb = n_cols / QK8_0, total = n_ids * nb;
        for (int64_t k = kcu_gid() / 32; k < total; k += kcu_gstride() / 32) {
            const int64_t r = k / nb, b = k % nb; /* uniform over the warp */
            const int64_t id = ids ? ids[r] : r;
            const float x = src[r * n_cols + b * QK8_0 + lane];
            const float amax = kcu_warp_max(fabsf(x));
            if (id < 0 || id >= n_rows_table)
                continue;
            const float d = amax / 127;
            const float inv = d != 0.0f ? 1.0f / d : 0.0f;
            block_q8_0 *blk = (block_q8_0 *)(table + (size_t)id * row_bytes) + b;
            blk->qs[lane] = (int8_t)roundf(x * inv);
            if (lane == 0)
                blk->d = kcu_f2h(d);
        }
    } else {
        for (int64_t i = kcu_gid(); i < n_ids * n_cols; i += kcu_gstride()) {
            const int64_t r = i / n_cols, j = i % n_cols;
            const int64_t id = ids ? ids[r] : r;
            if (id < 0 || id >= n_rows_table)
                continue;
            const float x = src[i];
            uint8_t *row = table + (size_t)id * row_bytes;
            if constexpr (T == KINFER_TYPE_F32)
                ((float *)row)[j] = x;
            else if constexpr (T == KINFER_TYPE_F16)
                ((uint16_t *)row)[j] = kcu_f2h(x);
            else
                ((uint16_t *)row)[j] = kcu_f2bf(x);
        }
    }
}

extern "C" kinfer_cuda_err kinfer_cuda_set_rows(int type, void *table, int64_t n_rows_table,
                                                int64_t n_cols, const int32_t *ids, int64_t n_ids,
                                                const float *src, void *stream)
{
    if (!kinfer_cuda_set_rows_type_supported(type))
        return KINFER_CUDA_ERR_NOT_SUPPORTED;
    const size_t row_bytes = kinfer_row_size(type, n_cols);
    if (n_cols < 0 || n_ids < 0 || n_rows_table < 0 || (n_cols > 0 && row_bytes == 0))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n_cols == 0 || n_ids == 0)
        return 0;
    if (table == NULL || src == NULL)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    const int threads = 256;
    uint8_t *t = (uint8_t *)table;
    cudaStream_t s = kcu_stream(stream);
    switch (type) {
    case KINFER_TYPE_F32:
        kcu_set_rows_kernel<KINFER_TYPE_F32><<<kinfer_cuda_blocks(n_ids * n_cols, threads, 1u << 20),
                                               threads, 0, s>>>(t, row_bytes, n_rows_table, n_cols,
                                                                ids, n_ids, src);
        break;
    case KINFER_TYPE_F16:
        kcu_set_rows_kernel<KINFER_TYPE_F16><<<kinfer_cuda_blocks(n_ids * n_cols, threads, 1u << 20),
                                               threads, 0, s>>>(t, row_bytes, n_rows_table, n_cols,
                                                                ids, n_ids, src);
        break;
    case KINFER_TYPE_BF16:
        kcu_set_rows_kernel<KINFER_TYPE_BF16><<<kinfer_cuda_blocks(n_ids * n_cols, threads, 1u << 20),
                                                threads, 0, s>>>(t, row_bytes, n_rows_table, n_cols,
                                                                 ids, n_ids, src);
        break;
    default: /* Q8_0: one warp per block */
        kcu_set_rows_kernel<KINFER_TYPE_Q8_0><<<kinfer_cuda_blocks(n_ids * (n_cols / QK8_0) * 32,
                                                                   threads, 1u << 20),
                                                threads, 0, s>>>(t, row_bytes, n_rows_table, n_cols,
                                                                 ids, n_ids, src);
        break;
    }
    return kcu_launch_result();
}
