/*
 * act.cu — gated activations of the FFN: out = silu(g) * u and
 * out = gelu(g) * u, the same formulas as kernels/cpu/ops.c.
 */
#include "common.cuh"

static __global__ void kcu_silu_gate_kernel(float *out, const float *g, const float *u, int64_t n)
{
    for (int64_t i = kcu_gid(); i < n; i += kcu_gstride())
        out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static __global__ void kcu_gelu_gate_kernel(float *out, const float *g, const float *u, int64_t n)
{
    const float sqrt_2_over_pi = 0.79788456080286535588f;
    for (int64_t i = kcu_gid(); i < n; i += kcu_gstride()) {
        const float v = g[i];
        out[i] = 0.5f * v * (1.0f + tanhf(sqrt_2_over_pi * v * (1.0f + 0.044715f * v * v))) * u[i];
    }
}

static kinfer_cuda_err act_check(const float *out, const float *g, const float *u, int64_t n)
{
    if (n < 0 || (n > 0 && (out == NULL || g == NULL || u == NULL)))
        return KINFER_CUDA_ERR_INVALID_VALUE;
    return 0;
}

extern "C" kinfer_cuda_err kinfer_cuda_silu_gate(float *out, const float *g, const float *u,
                                                 int64_t n, void *stream)
{
    const kinfer_cuda_err err = act_check(out, g, u, n);
    if (err != 0 || n == 0)
        return err;
    kcu_silu_gate_kernel<<<kinfer_cuda_blocks(n, 256, 1u << 20), 256, 0, kcu_stream(stream)>>>(
        out, g, u, n);
    return kcu_launch_result();
}

extern "C" kinfer_cuda_err kinfer_cuda_gelu_gate(float *out, const float *g, const float *u,
                                                 int64_t n, void *stream)
{
    const kinfer_cuda_err err = act_check(out, g, u, n);
    if (err != 0 || n == 0)
        return err;
    kcu_gelu_gate_kernel<<<kinfer_cuda_blocks(n, 256, 1u << 20), 256, 0, kcu_stream(stream)>>>(
        out, g, u, n);
    return kcu_launch_result();
}
