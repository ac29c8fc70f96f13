/*
 * attn_prompt.cu — attention for many query tokens (prompts), tiled.
 * Grid (query tile, head).  A block keeps BQ queries and their output
 * accumulators in shared memory and walks the cells BK at a time: it loads
 * the K and V tile as f32, computes the BQ x BK scores (masked by the
 * visibility rule: causal by position, sliding window, sequence), and folds
 * them in with the online softmax (running max m, sum l; the output is
 * rescaled by exp(m_old - m_new) when the max grows).  A tile no query of
 * the block sees is skipped before K and V are read, which is what makes a
 * causal prompt over a cache in position order cost about half.
 */
#include "attn.cuh"

#define PR_THREADS 128
#define BQ KINFER_CUDA_ATTN_BQ
#define BK KINFER_CUDA_ATTN_BK
static_assert(BK <= 32, "one lane per cell of a tile row");

template <int TK, int TV>
static __global__ void __launch_bounds__(PR_THREADS) kcu_attn_tile_kernel(kinfer_cuda_attn_params p)
{
    extern __shared__ float smem[];
    const int hk = p.head_dim_k, hv = p.head_dim_v;
    float *sq = smem;             /* (BQ, hk) queries */
    float *sk = sq + BQ * hk;     /* (BK, hk) keys of the tile */
    float *sv = sk + BK * hk;     /* (BK, hv) values of the tile */
    float *so = sv + BK * hv;     /* (BQ, hv) output accumulators */
    float *ss = so + BQ * hv;     /* (BQ, BK) scores, then weights */
    float *row_m = ss + BQ * BK;  /* (BQ) running max */
    float *row_l = row_m + BQ;    /* (BQ) running sum */
    float *row_c = row_l + BQ;    /* (BQ) rescale of this step */
    int32_t *row_pos = (int32_t *)(row_c + BQ); /* (BQ) */
    int32_t *row_seq = row_pos + BQ;            /* (BQ) */

    const int q0 = blockIdx.x * BQ, h = blockIdx.y;
    const int nq = min(BQ, p.n_q - q0);
    const int kvh = h / (p.n_head / p.n_head_kv);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;

    for (int idx = threadIdx.x; idx < BQ * hk; idx += blockDim.x) {
        const int i = idx / hk, d = idx % hk;
        sq[idx] = i < nq ? p.q[((int64_t)(q0 + i) * p.n_head + h) * hk + d] : 0.0f;
    }
    for (int idx = threadIdx.x; idx < BQ * hv; idx += blockDim.x)
        so[idx] = 0.0f;
    for (int i = threadIdx.x; i < BQ; i += blockDim.x) {
        row_m[i] = -INFINITY;
        row_l[i] = 0.0f;
        row_pos[i] = i < nq ? p.q_pos[q0 + i] : INT32_MIN; /* INT32_MIN sees nothing */
        row_seq[i] = i < nq && p.kv_seq ? p.q_seq[q0 + i] : 0;
    }
    __syncthreads();

    for (int64_t c0 = 0; c0 < p.n_kv; c0 += BK) {
        const int nk = (int)min((int64_t)BK, (int64_t)p.n_kv - c0);
        /* visibility: 0 where query i sees cell j, -inf elsewhere */
        int any = 0;
        for (int idx = threadIdx.x; idx < BQ * BK; idx += blockDim.x) {
            const int i = idx / BK, j = idx % BK;
            const bool vis = j < nk && kcu_attn_visible(p, c0 + j, row_pos[i], row_seq[i]);
            ss[idx] = vis ? 0.0f : -INFINITY;
            any |= vis;
        }
        if (!__syncthreads_or(any))
            continue; /* nobody here sees this tile */

        for (int idx = threadIdx.x; idx < BK * hk; idx += blockDim.x) {
            const int j = idx / hk, d = idx % hk;
            sk[idx] = j < nk ? kcu_cache_elem<TK>(p.k, p.k_row_bytes, c0 + j, kvh, hk, d) : 0.0f;
        }
        for (int idx = threadIdx.x; idx < BK * hv; idx += blockDim.x) {
            const int j = idx / hv, d = idx % hv;
            sv[idx] = j < nk ? kcu_cache_elem<TV>(p.v, p.v_row_bytes, c0 + j, kvh, hv, d) : 0.0f;
        }
        __syncthreads();

        /* scores of the visible pairs (a free cell's K may be NaN: skipped) */
        for (int idx = threadIdx.x; idx < BQ * BK; idx += blockDim.x) {
            if (ss[idx] != 0.0f)
                continue;
            const int i = idx / BK, j = idx % BK;
            float dot = 0.0f;
            for (int d = 0; d < hk; d++)
                dot += sq[i * hk + d] * sk[j * hk + d];
            ss[idx] = kcu_attn_score(p, dot);
        }
        __syncthreads();

        /* online softmax, one warp per query row, one lane per cell */
        for (int i = warp; i < BQ; i += nw) {
            const float s = lane < BK ? ss[i * BK + lane] : -INFINITY;
            const float m_old = row_m[i];
            const float m_new = fmaxf(m_old, kcu_warp_max(s));
            const float w = s == -INFINITY ? 0.0f : expf(s - m_new);
            const float corr = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
            const float lsum = kcu_warp_sum(w);
            if (lane < BK)
                ss[i * BK + lane] = w;
            if (lane == 0) {
                row_m[i] = m_new;
                row_l[i] = row_l[i] * corr + lsum;
                row_c[i] = corr;
            }
        }
        __syncthreads();

        /* o = o * corr + w . v (cells with weight 0 skipped: V may be NaN) */
        for (int idx = threadIdx.x; idx < BQ * hv; idx += blockDim.x) {
            const int i = idx / hv, d = idx % hv;
            float acc = so[idx] * row_c[i];
            for (int j = 0; j < nk; j++) {
                const float w = ss[i * BK + j];
                if (w != 0.0f)
                    acc += w * sv[j * hv + d];
            }
            so[idx] = acc;
        }
        __syncthreads();
    }

    for (int idx = threadIdx.x; idx < nq * hv; idx += blockDim.x) {
        const int i = idx / hv, d = idx % hv;
        const float l = row_l[i];
        p.out[((int64_t)(q0 + i) * p.n_head + h) * hv + d] = l > 0.0f ? so[idx] / l : 0.0f;
    }
}

extern "C" kinfer_cuda_err kinfer_cuda_attn_prompt(const kinfer_cuda_attn_params *p, void *stream)
{
    const kinfer_cuda_err err = kinfer_cuda_attn_check(p);
    if (err != 0)
        return err;
    if (p->n_q == 0)
        return 0;
    const int64_t n_tiles = ((int64_t)p->n_q + BQ - 1) / BQ;
    if (n_tiles > INT32_MAX)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    const size_t smem = kinfer_cuda_attn_prompt_smem_bytes(p->head_dim_k, p->head_dim_v);
    const dim3 grid((unsigned)n_tiles, (unsigned)p->n_head);
    cudaStream_t s = kcu_stream(stream);
    kinfer_cuda_err launch_err = 0;
    const bool known = kcu_dispatch_cache_type(p->type_k, [&](auto tk) {
        kcu_dispatch_cache_type(p->type_v, [&](auto tv) {
            constexpr int TK = decltype(tk)::value, TV = decltype(tv)::value;
            /* over 48 KiB of dynamic shared memory is opt-in (head_dim 256) */
            if (smem > 48 * 1024) {
                launch_err = (kinfer_cuda_err)cudaFuncSetAttribute(
                    kcu_attn_tile_kernel<TK, TV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                    (int)smem);
                if (launch_err != 0)
                    return;
            }
            kcu_attn_tile_kernel<TK, TV><<<grid, PR_THREADS, smem, s>>>(*p);
            launch_err = kcu_launch_result();
        });
    });
    if (!known)
        return KINFER_CUDA_ERR_NOT_SUPPORTED;
    return launch_err;
}
