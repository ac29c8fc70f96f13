/*
 * rope.h — the parameters of rotary position embedding, shared by the CPU
 * and CUDA kernels and the backends that call them (plain data, no
 * function pointers).
 */
#ifndef KINFER_ROPE_H
#define KINFER_ROPE_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_rope_params {
    bool neox;                  /* rotate pairs (i, i + n_rot/2), not (2i, 2i+1) */
    int n_rot;                  /* leading dims of each head that rotate (even;
                                 * clamped to head_dim) */
    float freq_base;            /* theta base, e.g. 10000 */
    float freq_scale;           /* linear position scale (1 = none) */
    float attn_factor;          /* multiplies cos and sin (1 = none) */
    const float *freq_factors;  /* n_rot/2 divisors of each frequency, or NULL
                                 * (Llama 3.1 "rope_freqs", Phi-3 LongRoPE) */
    /*
     * YaRN (ggml's rope_yarn): pair i's angle mixes the interpolated angle
     * (freq_scale * theta) with the extrapolated one (theta) by ramp(i) *
     * ext_factor, where ramp falls from 1 to 0 between the correction dims,
     * and cos and sin are further scaled by 1 + 0.1 ln(1 / freq_scale).
     * ext_factor 0: plain linear scaling (the fields below are unused).
     */
    float ext_factor;
    float corr_dims[2];         /* first and last pair of the ramp */
} kinfer_rope_params;

#ifdef __cplusplus
}
#endif

#endif /* KINFER_ROPE_H */
