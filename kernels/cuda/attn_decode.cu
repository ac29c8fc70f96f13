/*
 * attn_decode.cu — attention for a few query tokens (decode), flash-decoding
 * style.  Grid (split, head, query): each block takes KINFER_CUDA_ATTN_SPLIT
 * cells, one warp per cell computes q.k, then the block computes its local
 * max m, the sum l of exp(s - m) and the partial output o = sum exp(s - m) v,
 * written to scratch as [m, l, o...].  A second kernel merges the splits:
 * out = sum_s exp(m_s - M) o_s / sum_s exp(m_s - M) l_s, M = max m_s.
 */
#include "attn.cuh"

#define DEC_THREADS 128

template <int TK, int TV>
static __global__ void __launch_bounds__(DEC_THREADS)
kcu_attn_split_kernel(kinfer_cuda_attn_params p, int n_splits, float *part)
{
    __shared__ float sq[KINFER_CUDA_ATTN_MAX_HEAD_DIM]; /* the query, f32 */
    __shared__ float ss[KINFER_CUDA_ATTN_SPLIT];        /* scores, then weights */
    __shared__ float tmp[32];
    const int split = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int hk = p.head_dim_k, hv = p.head_dim_v;
    const int kvh = h / (p.n_head / p.n_head_kv);
    const int64_t c0 = (int64_t)split * KINFER_CUDA_ATTN_SPLIT;
    const int len = (int)min((int64_t)KINFER_CUDA_ATTN_SPLIT, (int64_t)p.n_kv - c0);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    const int32_t qpos = p.q_pos[t];
    const int32_t qseq = p.kv_seq ? p.q_seq[t] : 0;

    const float *q = p.q + ((int64_t)t * p.n_head + h) * hk;
    for (int d = threadIdx.x; d < hk; d += blockDim.x)
        sq[d] = q[d];
    __syncthreads();

    for (int j = warp; j < len; j += nw) {
        float s = -INFINITY;
        if (kcu_attn_visible(p, c0 + j, qpos, qseq)) { /* uniform over the warp */
            float dot = 0.0f;
            for (int d = lane; d < hk; d += 32)
                dot += sq[d] * kcu_cache_elem<TK>(p.k, p.k_row_bytes, c0 + j, kvh, hk, d);
            s = kcu_attn_score(p, kcu_warp_sum(dot));
        }
        if (lane == 0)
            ss[j] = s;
    }
    __syncthreads();

    float m = -INFINITY;
    for (int j = threadIdx.x; j < len; j += blockDim.x)
        m = fmaxf(m, ss[j]);
    m = kcu_block_max(m, tmp);
    float *o = part + (((int64_t)t * p.n_head + h) * n_splits + split) * (hv + 2);
    if (m == -INFINITY) { /* nothing visible here (uniform over the block) */
        for (int d = threadIdx.x; d < hv; d += blockDim.x)
            o[2 + d] = 0.0f;
        if (threadIdx.x == 0) {
            o[0] = -INFINITY;
            o[1] = 0.0f;
        }
        return;
    }
    float l = 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        const float e = expf(ss[j] - m); /* 0 for a masked cell */
        ss[j] = e;
        l += e;
    }
    l = kcu_block_sum(l, tmp); /* also publishes ss */
    for (int d = threadIdx.x; d < hv; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < len; j++) {
            const float w = ss[j];
            if (w != 0.0f) /* never read a cell nobody sees: it may hold NaN */
                acc += w * kcu_cache_elem<TV>(p.v, p.v_row_bytes, c0 + j, kvh, hv, d);
        }
        o[2 + d] = acc;
    }
    if (threadIdx.x == 0) {
        o[0] = m;
        o[1] = l;
    }
}

static __global__ void kcu_attn_combine_kernel(const float *part, int n_splits, int n_head, int hv,
                                               float *out)
{
    const int h = blockIdx.x, t = blockIdx.y;
    const float *base = part + ((int64_t)t * n_head + h) * n_splits * (hv + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_splits; s++)
        M = fmaxf(M, base[(int64_t)s * (hv + 2)]);
    float L = 0.0f;
    for (int s = 0; s < n_splits; s++) {
        const float ms = base[(int64_t)s * (hv + 2)];
        if (ms != -INFINITY)
            L += base[(int64_t)s * (hv + 2) + 1] * expf(ms - M);
    }
    float *o = out + ((int64_t)t * n_head + h) * hv;
    for (int d = threadIdx.x; d < hv; d += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < n_splits; s++) {
            const float ms = base[(int64_t)s * (hv + 2)];
            if (ms != -INFINITY)
                acc += base[(int64_t)s * (hv + 2) + 2 + d] * expf(ms - M);
        }
        o[d] = L > 0.0f ? acc / L : 0.0f;
    }
}

extern "C" kinfer_cuda_err kinfer_cuda_attn_decode(const kinfer_cuda_attn_params *p,
                                                   float *scratch, size_t scratch_bytes,
                                                   void *stream)
{
    kinfer_cuda_err err = kinfer_cuda_attn_check(p);
    if (err != 0)
        return err;
    if (p->n_q == 0)
        return 0;
    if (p->n_q > KINFER_CUDA_MAX_GRID)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    cudaStream_t s = kcu_stream(stream);
    if (p->n_kv == 0) { /* nothing to see: zeros */
        return (kinfer_cuda_err)cudaMemsetAsync(
            p->out, 0, (size_t)p->n_q * p->n_head * p->head_dim_v * sizeof(float), s);
    }
    const int64_t n_splits = kinfer_cuda_attn_n_splits(p->n_kv);
    const size_t need = kinfer_cuda_attn_decode_scratch_bytes(p->n_q, p->n_head, p->n_kv,
                                                              p->head_dim_v);
    if (scratch == NULL || scratch_bytes < need || n_splits > KINFER_CUDA_MAX_GRID)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    const dim3 grid((unsigned)n_splits, (unsigned)p->n_head, (unsigned)p->n_q);
    const bool known = kcu_dispatch_cache_type(p->type_k, [&](auto tk) {
        kcu_dispatch_cache_type(p->type_v, [&](auto tv) {
            constexpr int TK = decltype(tk)::value, TV = decltype(tv)::value;
            kcu_attn_split_kernel<TK, TV><<<grid, DEC_THREADS, 0, s>>>(*p, (int)n_splits, scratch);
        });
    });
    if (!known)
        return KINFER_CUDA_ERR_NOT_SUPPORTED;
    err = kcu_launch_result();
    if (err != 0)
        return err;
    kcu_attn_combine_kernel<<<dim3((unsigned)p->n_head, (unsigned)p->n_q), 128, 0, s>>>(
        scratch, (int)n_splits, p->n_head, p->head_dim_v, p->out);
    return kcu_launch_result();
}
