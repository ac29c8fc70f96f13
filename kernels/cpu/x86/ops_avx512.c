/*
 * ops_avx512.c — elementwise kernels whose rounding must follow ggml's
 * AVX-512 code (llama.cpp's logits are the oracle): SwiGLU.
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

void kinfer_avx512_fill_ops(kinfer_cpu_table *t)
{
    t->silu_gate = silu_gate;
}
