/*
 * rope.cu — rotary position embedding in place, kinfer_rope's semantics
 * (normal pairs (2i, 2i+1) or NeoX halves (i, i + n_rot/2), freq_scale,
 * attn_factor, Llama 3.1 / LongRoPE freq_factors, YaRN's ramp and magnitude).  One block per token: each thread
 * takes pairs, computes the angle, cos and sin in double as the CPU does
 * (n_tokens * n_rot / 2 of them, cheap), and rotates that pair in every head.
 */
#include "common.cuh"

static __global__ void kcu_rope_kernel(float *x, int64_t n_heads, int64_t head_dim,
                                       const int32_t *pos, int neox, int n_rot, float freq_base,
                                       float fscale, float mscale, const float *freq_factors,
                                       float ext_factor, float corr0, float corr1)
{
    const int64_t t = blockIdx.x;
    const int half = n_rot / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        double extrap = (double)pos[t] * pow((double)freq_base, -2.0 * i / (double)n_rot);
        if (freq_factors != NULL)
            extrap /= freq_factors[i];
        double theta = fscale * extrap;
        float ms = mscale;
        if (ext_factor != 0.0f) {
            const float y = ((float)i - corr0) / fmaxf(0.001f, corr1 - corr0);
            const double mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * ext_factor;
            theta = theta * (1.0 - mix) + extrap * mix;
            ms *= 1.0f + 0.1f * logf(1.0f / fscale);
        }
        double s, c;
        sincos(theta, &s, &c);
        const float cs = (float)c * ms, sn = (float)s * ms;
        const int a = neox ? i : 2 * i;
        const int b = neox ? i + half : 2 * i + 1;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * head_dim;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs - x1 * sn;
            v[b] = x0 * sn + x1 * cs;
        }
    }
}

extern "C" kinfer_cuda_err kinfer_cuda_rope(float *x, int64_t n_tokens, int64_t n_heads,
                                            int64_t head_dim, const int32_t *pos,
                                            const kinfer_rope_params *p, void *stream)
{
    if (p == NULL || n_tokens < 0 || n_heads < 0 || head_dim < 0 || n_tokens > INT32_MAX ||
        p->n_rot < 0 || p->n_rot % 2 != 0 || p->n_rot > head_dim)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    if (n_tokens == 0 || n_heads == 0 || p->n_rot == 0)
        return 0;
    if (x == NULL || pos == NULL)
        return KINFER_CUDA_ERR_INVALID_VALUE;
    const float mscale = p->attn_factor != 0.0f ? p->attn_factor : 1.0f;
    const float fscale = p->freq_scale != 0.0f ? p->freq_scale : 1.0f;
    const int half = p->n_rot / 2;
    const int threads = half < 128 ? 32 * ((half + 31) / 32) : 128;
    kcu_rope_kernel<<<(unsigned)n_tokens, threads, 0, kcu_stream(stream)>>>(
        x, n_heads, head_dim, pos, p->neox ? 1 : 0, p->n_rot, p->freq_base, fscale, mscale,
        p->freq_factors, p->ext_factor, p->corr_dims[0], p->corr_dims[1]);
    return kcu_launch_result();
}
