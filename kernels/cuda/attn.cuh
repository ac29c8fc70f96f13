/*
 * attn.cuh — what the two attention kernels share (internal, C++): the
 * visibility rule and the loading of one cache element.
 */
#ifndef KINFER_CUDA_ATTN_CUH
#define KINFER_CUDA_ATTN_CUH

#include "common.cuh"

/* Whether a query at position qpos in sequence qseq sees cell c
 * (cuda_kernels.h states the rule). */
static __device__ __forceinline__ bool kcu_attn_visible(const kinfer_cuda_attn_params &p, int64_t c,
                                                        int32_t qpos, int32_t qseq)
{
    const int32_t cp = p.kv_pos[c];
    if (cp < 0 || cp > qpos)
        return false;
    if (p.n_swa > 0 && (int64_t)qpos - cp >= p.n_swa)
        return false;
    if (p.kv_seq != NULL) {
        if (qseq < 0 || qseq >= 64 * p.kv_seq_words)
            return false;
        const uint64_t word = p.kv_seq[c * p.kv_seq_words + qseq / 64];
        return ((word >> (qseq % 64)) & 1u) != 0;
    }
    return true;
}

/* Score of a dot product: scale, then the optional soft cap. */
static __device__ __forceinline__ float kcu_attn_score(const kinfer_cuda_attn_params &p, float dot)
{
    float s = dot * p.scale;
    if (p.softcap > 0.0f)
        s = p.softcap * tanhf(s / p.softcap);
    return s;
}

/* Element d of kv head kvh in cell c of a cache of type T. */
template <int T>
static __device__ __forceinline__ float kcu_cache_elem(const void *base, size_t row_bytes, int64_t c,
                                                       int kvh, int head_dim, int d)
{
    const uint8_t *row = (const uint8_t *)base + (size_t)c * row_bytes;
    return kcu_elem<T>(row, (int64_t)kvh * head_dim + d);
}

#endif /* KINFER_CUDA_ATTN_CUH */
