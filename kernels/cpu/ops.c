/*
 * ops.c — elementwise kernels of the forward pass: rmsnorm, rope, softmax,
 * GELU gate, add, scale.  Plain C written so the compiler vectorizes the
 * inner loops; they are a small share of a step.  The ones that differ by
 * ISA (SwiGLU) are in the kernel table (isa.h), and kinfer_silu_gate and
 * kinfer_get_rows, which go through it, in dispatch.c.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "cpu/kernels.h"

/*
 * The numerics of these kernels follow ggml's CPU backend step for step
 * (float vs double at the same places, the same recurrences), because
 * llama.cpp's logits are the oracle the forward pass is tested against and
 * small systematic differences add up over layers and positions.
 */

void kinfer_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    /* squares in float, summed in double, mean and scale in float */
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)(x[i] * x[i]);
    const float mean = (float)(ss / (double)(n > 0 ? n : 1));
    const float scale = 1.0f / sqrtf(mean + eps);
    if (w != NULL) {
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * scale * w[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * scale;
    }
}

/* YaRN's ramp over pair i: 1 below the first correction dim, 0 past the
 * last, linear between (ggml's rope_yarn_ramp) */
static float rope_yarn_ramp(const float corr[2], int i)
{
    const float y = ((float)i - corr[0]) / fmaxf(0.001f, corr[1] - corr[0]);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

void kinfer_rope(float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                 const int32_t *pos, const kinfer_rope_params *p)
{
    /* never rotate past the head (a bad n_rot must not write out of bounds) */
    const int n_rot = p->n_rot < head_dim ? p->n_rot : (int)head_dim;
    const int half = n_rot > 0 ? n_rot / 2 : 0;
    const float mscale = p->attn_factor != 0.0f ? p->attn_factor : 1.0f;
    const float fscale = p->freq_scale != 0.0f ? p->freq_scale : 1.0f;
    /* ggml's recurrence: theta_i = pos * base^(-2i/n_rot) built by repeated
     * float multiplication, not pow per pair */
    const float theta_scale = powf(p->freq_base, -2.0f / (float)n_rot);
    /* YaRN's magnitude correction for the interpolation */
    const float yarn_mscale = fmaf(0.1f, logf(1.0f / fscale), 1.0f);
    /* cos/sin per pair are shared by all heads of a token */
    float cs[512], sn[512];
    for (int64_t t = 0; t < n_tokens; t++) {
        float theta = (float)pos[t];
        for (int i0 = 0; i0 < half; i0 += 512) {
            const int i1 = i0 + 512 < half ? i0 + 512 : half;
            for (int i = i0; i < i1; i++) {
                const float ff = p->freq_factors != NULL ? p->freq_factors[i] : 1.0f;
                const float extrap = theta / ff;
                float th = fscale * extrap, ms = mscale;
                if (p->ext_factor != 0.0f) {
                    const float mix = rope_yarn_ramp(p->corr_dims, i) * p->ext_factor;
                    th = fmaf(th, 1.0f - mix, extrap * mix);
                    ms *= yarn_mscale;
                }
                cs[i - i0] = cosf(th) * ms;
                sn[i - i0] = sinf(th) * ms;
                theta *= theta_scale;
            }
            for (int64_t h = 0; h < n_heads; h++) {
                float *v = x + (t * n_heads + h) * head_dim;
                for (int i = i0; i < i1; i++) {
                    /* pair (2i, 2i+1) normally; NeoX rotates halves */
                    const int a = p->neox ? i : 2 * i;
                    const int b = p->neox ? i + half : 2 * i + 1;
                    const float x0 = v[a], x1 = v[b];
                    /* ggml's C++ is built with FMA contraction: the
                     * first product of each line is fused */
                    v[a] = fmaf(x0, cs[i - i0], -(x1 * sn[i - i0]));
                    v[b] = fmaf(x0, sn[i - i0], x1 * cs[i - i0]);
                }
            }
        }
    }
}

void kinfer_softmax(float *x, int64_t n)
{
    if (n <= 0)
        return;
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

/* ggml's CPU GELU reads a table indexed by the input rounded to fp16 and
 * stores fp16: the same table, built once on first use (every entry is
 * computed by the formula below, so a lookup equals computing it). */
static float gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_table_init(void)
{
    const float sqrt_2_over_pi = 0.79788456080286535588f;
    for (uint32_t i = 0; i < (1u << 16); i++) {
        const float h = kinfer_fp16_to_fp32((kinfer_fp16)i);
        /* ggml builds its table with 1 + a h h contracted to one fma */
        const float e = 0.5f * h * (1.0f + tanhf(sqrt_2_over_pi * h * fmaf(0.044715f * h, h, 1.0f)));
        gelu_table[i] = kinfer_fp16_to_fp32(kinfer_fp32_to_fp16(e));
    }
}

void kinfer_gelu_gate(float *out, const float *g, const float *u, int64_t n)
{
    pthread_once(&gelu_once, gelu_table_init);
    for (int64_t i = 0; i < n; i++) {
        const float v = g[i];
        float gv;
        if (v <= -10.0f)
            gv = 0.0f;
        else if (v >= 10.0f)
            gv = v;
        else
            gv = gelu_table[kinfer_fp32_to_fp16(v)];
        out[i] = gv * u[i];
    }
}

void kinfer_gelu(float *out, const float *x, int64_t n)
{
    pthread_once(&gelu_once, gelu_table_init);
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        out[i] = v <= -10.0f ? 0.0f : v >= 10.0f ? v : gelu_table[kinfer_fp32_to_fp16(v)];
    }
}

void kinfer_layernorm(float *out, const float *x, const float *w, const float *b, int64_t n, float eps)
{
    /* ggml_norm: the mean of a double sum; the variance of (x - mean)^2 summed
     * as its AVX-512 build does (each 16 squares reduced in float, halves
     * first, into a double; the rest one by one); then ggml_mul by w and
     * ggml_add of b as separate steps */
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i];
    const float mean = (float)sum / (float)n;
    double var = 0.0;
    int64_t i = 0;
    for (; i + 15 < n; i += 16) {
        float sq[16];
        for (int k = 0; k < 16; k++) {
            out[i + k] = x[i + k] - mean;
            sq[k] = out[i + k] * out[i + k];
        }
        for (int h = 8; h >= 1; h /= 2)
            for (int k = 0; k < h; k++) sq[k] = sq[k + h] + sq[k];
        var += (double)sq[0];
    }
    for (; i < n; i++) {
        const float d = x[i] - mean;
        out[i] = d;
        var += (double)(d * d);
    }
    const float scale = 1.0f / sqrtf((float)(var / (double)n) + eps);
    for (i = 0; i < n; i++) {
        float y = out[i] * scale;
        if (w) y = y * w[i];
        if (b) y = y + b[i];
        out[i] = y;
    }
}

void kinfer_round_fp16(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = kinfer_fp16_to_fp32(kinfer_fp32_to_fp16(x[i]));
}

void kinfer_add(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void kinfer_scale(float *x, float s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= s;
}
