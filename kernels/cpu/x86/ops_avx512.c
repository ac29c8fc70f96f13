/*
 * ops_avx512.c — elementwise kernels whose rounding must follow ggml's
 * AVX-512 code (llama.cpp's logits are the oracle): SwiGLU, the
 * mixture-of-experts router.
 */
#include <math.h>

#include "cpu/isa.h"
#include "cpu/x86/vexp_avx512.h"

/* out = silu(g) * u: 16 lanes with ggml_v_silu, the tail with expf, as
 * ggml_vec_swiglu_f32 does. */
static void silu_gate(float *out, const float *g, const float *u, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(kinfer_v_silu(_mm512_loadu_ps(g + i)), _mm512_loadu_ps(u + i)));
    for (; i < n; i++)
        out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ggml_vec_dot_f32: four 16-lane accumulators over each 64 elements,
 * (a0 + a2) + (a1 + a3), the 16-lane sum, then the rest one by one (fused,
 * as the compiler contracts ggml's sumf += x * y) */
static float dot_f32_vec(int64_t n, const float *w, const float *x)
{
    const int64_t np = n & ~(int64_t)63;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < np; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    for (int64_t i = np; i < n; i++) sum = fmaf(w[i], x[i], sum);
    return sum;
}

/* tinyBLAS (n a multiple of 16): one 16-lane accumulator, the 16-lane sum */
static float dot_f32_gemm(int64_t n, const float *w, const float *x)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), acc);
    return _mm512_reduce_add_ps(acc);
}

/* ggml_soft_max of one row: the max, e^(x - max) 16 lanes at a time with
 * ggml_v_expf (each chunk's 16-lane sum added in double), the tail with
 * expf, then times (float)(1 / sum) */
static void softmax_ggml(float *x, int64_t n)
{
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = kinfer_v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(max)));
        _mm512_storeu_ps(x + i, e);
        sum += (double)_mm512_reduce_add_ps(e);
    }
    for (; i < n; i++) {
        const float e = expf(x[i] - max);
        sum += (double)e;
        x[i] = e;
    }
    const float inv = (float)(1.0 / sum);
    for (i = 0; i < n; i++) x[i] *= inv;
}

static void moe_router(const float *w, int64_t n_expert, int64_t n_cols, const float *x, int64_t n_tokens,
                       float *probs)
{
    const int gemm = n_tokens > 1 && n_cols % 16 == 0;
    for (int64_t t = 0; t < n_tokens; t++) {
        float *p = probs + t * n_expert;
        const float *xt = x + t * n_cols;
        for (int64_t e = 0; e < n_expert; e++)
            p[e] = gemm ? dot_f32_gemm(n_cols, w + e * n_cols, xt) : dot_f32_vec(n_cols, w + e * n_cols, xt);
        softmax_ggml(p, n_expert);
    }
}

void kinfer_avx512_fill_ops(kinfer_cpu_table *t)
{
    t->silu_gate = silu_gate;
    t->moe_router = moe_router;
}
