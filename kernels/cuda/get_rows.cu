/*
 * get_rows.cu — embedding lookup: out row i = dequantized row ids[i] of a
 * table of any supported type.  Blocks stride over the columns (x) and the
 * ids (y); an id out of range writes NaN so that the bug cannot hide.
 */
#include "common.cuh"

template <int T>
static __global__ void kcu_get_rows_kernel(const uint8_t *table, size_t row_bytes,
                                           int64_t n_rows_table, int64_t n_cols,
                                           const int32_t *ids, int64_t n_ids, float *out)
{
    for (int64_t r = blockIdx.y; r < n_ids; r += gridDim.y) {
        const int32_t id = ids[r];
        const bool ok = id >= 0 && id < n_rows_table;
        const uint8_t *row = table + (size_t)(ok ? id : 0) * row_bytes;
        float *o = out + r * n_cols;
        for (int64_t i = kcu_gid(); i < n_cols; i += kcu_gstride())
            o[i] = ok ? kcu_elem<T>(row, i) : __int_as_float(0x7fc00000);
    }
}

extern "C" kinfer_cuda_err kinfer_cuda_get_rows(int type, const void *table, int64_t n_rows_table,
                                                int64_t n_cols, const int32_t *ids, int64_t n_ids,
                                                float *out, void *stream)
{
    if (!kinfer_cuda_type_supported(type))
        return KINFER_CUDA_ERR_NOT_SUPPORTED;
    const size_t row_bytes = kinfer_row_size(type, n_cols);
    if (n_cols < 0 || n_ids < 0 || n_rows_table < 0 || (n_cols > 0 && row_bytes == 0))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n_cols == 0 || n_ids == 0)
        return 0;
    if (table == NULL || ids == NULL || out == NULL)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    const int threads = 256;
    const dim3 grid(kinfer_cuda_blocks(n_cols, threads, 1024),
                    kinfer_cuda_blocks(n_ids, 1, KINFER_CUDA_MAX_GRID));
    kcu_dispatch_type(type, [&](auto tc) {
        constexpr int T = decltype(tc)::value;
        kcu_get_rows_kernel<T><<<grid, threads, 0, kcu_stream(stream)>>>(
            (const uint8_t *)table, row_bytes, n_rows_table, n_cols, ids, n_ids, out);
    });
    return kcu_launch_result();
}
