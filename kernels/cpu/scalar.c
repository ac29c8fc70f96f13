/*
 * scalar.c — the scalar level of the CPU kernel table (isa.h): the
 * reference kernels of ref.c and ref_kquants.c for every type we compute
 * with, and the scalar attention and elementwise kernels.  Any CPU runs
 * them; the SIMD levels start from this table and overwrite it.
 */
#include <math.h>

#include "cpu/isa.h"
#include "cpu/ref.h"
#include "quant.h"

/* ------------------------------------------------------ per-type kernels */

/* The reference kernels of a type; vec_dot NULL for the types that only
 * ever are activations (Q8_1, Q8_K); vec_dot_type from the type traits. */
#define REF_KERNELS(to, from, dot) {.to_float = (to), .from_float = (from), .vec_dot = (dot)}

static const kinfer_cpu_kernels ref_kernels[KINFER_TYPE_COUNT] = {
    [KINFER_TYPE_F32] = REF_KERNELS(kinfer_ref_to_float_f32, kinfer_ref_from_float_f32, kinfer_ref_vec_dot_f32),
    [KINFER_TYPE_F16] = REF_KERNELS(kinfer_ref_to_float_f16, kinfer_ref_from_float_f16, kinfer_ref_vec_dot_f16),
    [KINFER_TYPE_BF16] =
        REF_KERNELS(kinfer_ref_to_float_bf16, kinfer_ref_from_float_bf16, kinfer_ref_vec_dot_bf16),
    [KINFER_TYPE_Q4_0] =
        REF_KERNELS(kinfer_ref_to_float_q4_0, kinfer_ref_from_float_q4_0, kinfer_ref_vec_dot_q4_0_q8_0),
    [KINFER_TYPE_Q4_1] =
        REF_KERNELS(kinfer_ref_to_float_q4_1, kinfer_ref_from_float_q4_1, kinfer_ref_vec_dot_q4_1_q8_1),
    [KINFER_TYPE_Q5_0] =
        REF_KERNELS(kinfer_ref_to_float_q5_0, kinfer_ref_from_float_q5_0, kinfer_ref_vec_dot_q5_0_q8_0),
    [KINFER_TYPE_Q5_1] =
        REF_KERNELS(kinfer_ref_to_float_q5_1, kinfer_ref_from_float_q5_1, kinfer_ref_vec_dot_q5_1_q8_1),
    [KINFER_TYPE_Q8_0] =
        REF_KERNELS(kinfer_ref_to_float_q8_0, kinfer_ref_from_float_q8_0, kinfer_ref_vec_dot_q8_0_q8_0),
    [KINFER_TYPE_Q8_1] = REF_KERNELS(kinfer_ref_to_float_q8_1, kinfer_ref_from_float_q8_1, NULL),
    [KINFER_TYPE_Q2_K] =
        REF_KERNELS(kinfer_ref_to_float_q2_K, kinfer_ref_from_float_q2_K, kinfer_ref_vec_dot_q2_K_q8_K),
    [KINFER_TYPE_Q3_K] =
        REF_KERNELS(kinfer_ref_to_float_q3_K, kinfer_ref_from_float_q3_K, kinfer_ref_vec_dot_q3_K_q8_K),
    [KINFER_TYPE_Q4_K] =
        REF_KERNELS(kinfer_ref_to_float_q4_K, kinfer_ref_from_float_q4_K, kinfer_ref_vec_dot_q4_K_q8_K),
    [KINFER_TYPE_Q5_K] =
        REF_KERNELS(kinfer_ref_to_float_q5_K, kinfer_ref_from_float_q5_K, kinfer_ref_vec_dot_q5_K_q8_K),
    [KINFER_TYPE_Q6_K] =
        REF_KERNELS(kinfer_ref_to_float_q6_K, kinfer_ref_from_float_q6_K, kinfer_ref_vec_dot_q6_K_q8_K),
    [KINFER_TYPE_Q8_K] = REF_KERNELS(kinfer_ref_to_float_q8_K, kinfer_ref_from_float_q8_K, NULL),
    [KINFER_TYPE_IQ4_NL] =
        REF_KERNELS(kinfer_ref_to_float_iq4_nl, kinfer_ref_from_float_iq4_nl, kinfer_ref_vec_dot_iq4_nl_q8_0),
    [KINFER_TYPE_IQ4_XS] =
        REF_KERNELS(kinfer_ref_to_float_iq4_xs, kinfer_ref_from_float_iq4_xs, kinfer_ref_vec_dot_iq4_xs_q8_K),
};

/* ------------------------------------------------------------ attention */

/* Weighted sums, one head at a time: out[d] += w * v[d], a multiply then
 * an add, rows in order. */
static void wsum_f32(float *out, size_t out_stride, int g, int64_t n, const uint8_t *base,
                     size_t stride, const int32_t *rows, const float *w, size_t w_stride, int32_t nr)
{
    for (int k = 0; k < g; k++) {
        float *o = out + (size_t)k * out_stride;
        const float *wk = w + (size_t)k * w_stride;
        for (int64_t d = 0; d < n; d++) o[d] = 0.0f;
        for (int32_t r = 0; r < nr; r++) {
            const float *v = (const float *)(base + (size_t)rows[r] * stride);
            for (int64_t d = 0; d < n; d++) o[d] += wk[r] * v[d];
        }
    }
}

static void wsum_f16(float *out, size_t out_stride, int g, int64_t n, const uint8_t *base,
                     size_t stride, const int32_t *rows, const float *w, size_t w_stride, int32_t nr)
{
    for (int k = 0; k < g; k++) {
        float *o = out + (size_t)k * out_stride;
        const float *wk = w + (size_t)k * w_stride;
        for (int64_t d = 0; d < n; d++) o[d] = 0.0f;
        for (int32_t r = 0; r < nr; r++) {
            const kinfer_fp16 *v = (const kinfer_fp16 *)(base + (size_t)rows[r] * stride);
            for (int64_t d = 0; d < n; d++) o[d] += wk[r] * kinfer_fp16_to_fp32(v[d]);
        }
    }
}

static void wsum_q8_0(float *out, size_t out_stride, int g, int64_t n, const uint8_t *base,
                      size_t stride, const int32_t *rows, const float *w, size_t w_stride, int32_t nr)
{
    for (int k = 0; k < g; k++) {
        float *o = out + (size_t)k * out_stride;
        const float *wk = w + (size_t)k * w_stride;
        for (int64_t d = 0; d < n; d++) o[d] = 0.0f;
        for (int32_t r = 0; r < nr; r++) {
            const block_q8_0 *b = (const block_q8_0 *)(base + (size_t)rows[r] * stride);
            for (int64_t i = 0; i < n / QK8_0; i++) {
                const float d = kinfer_fp16_to_fp32(b[i].d);
                float *oi = o + i * QK8_0;
                for (int j = 0; j < QK8_0; j++) oi[j] += wk[r] * ((float)b[i].qs[j] * d);
            }
        }
    }
}

/* ----------------------------------------------------------- elementwise */

/* out = silu(g) * u, silu(g) = g / (1 + e^-g) */
static void silu_gate(float *out, const float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* the router's dot products as plain float sums, then kinfer_softmax */
static void moe_router(const float *w, int64_t n_expert, int64_t n_cols, const float *x, int64_t n_tokens,
                       float *probs)
{
    for (int64_t t = 0; t < n_tokens; t++) {
        float *p = probs + t * n_expert;
        for (int64_t e = 0; e < n_expert; e++) {
            float sum = 0.0f;
            for (int64_t i = 0; i < n_cols; i++) sum += w[e * n_cols + i] * x[t * n_cols + i];
            p[e] = sum;
        }
        kinfer_softmax(p, n_expert);
    }
}

void kinfer_scalar_fill(kinfer_cpu_table *t)
{
    for (int type = 0; type < KINFER_TYPE_COUNT; type++) {
        const kinfer_type_traits *tt = kinfer_type_traits_get(type);
        if (tt == NULL || ref_kernels[type].to_float == NULL)
            continue;
        t->types[type] = ref_kernels[type];
        t->types[type].vec_dot_type = tt->vec_dot_type;
        t->types[type].from_float_act = ref_kernels[type].from_float;
    }
    /* the activation quantizers of ggml's CPU backend, not the reference
     * quantizers model files are made with (ref.h) */
    t->types[KINFER_TYPE_Q8_0].from_float_act = kinfer_act_from_float_q8_0;
    t->types[KINFER_TYPE_Q8_1].from_float_act = kinfer_act_from_float_q8_1;

    t->attn_wsum[KINFER_TYPE_F32] = wsum_f32;
    t->attn_wsum[KINFER_TYPE_F16] = wsum_f16;
    t->attn_wsum[KINFER_TYPE_Q8_0] = wsum_q8_0;
    t->attn_softmax = kinfer_softmax;
    t->attn_round_fp16 = kinfer_round_fp16;
    t->fa = (kinfer_fa_kernels){.mad_f16 = kinfer_ref_fa_mad_f16, .scale_f16 = kinfer_ref_fa_scale_f16,
                                .mad_f32 = kinfer_ref_fa_mad_f32, .gemm_f32 = kinfer_ref_fa_gemm_f32,
                                .exp_sum = kinfer_ref_fa_exp_sum, .scale_f32 = kinfer_ref_fa_scale_f32,
                                .mask_max = kinfer_ref_fa_mask_max, .pack_kt = kinfer_ref_fa_pack_kt};

    t->silu_gate = silu_gate;
    t->moe_router = moe_router;
}
