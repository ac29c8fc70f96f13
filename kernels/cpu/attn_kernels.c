/*
 * attn_kernels.c — scalar attention kernels and the choice of variant.
 */
#include "cpu/attn_kernels.h"

#include "cpu/kernels.h"
#include "quant.h"

/* Scalar variants: out[d] += w * v[d], a multiply then an add (as the f32
 * path always did), rows in order. */
static void wsum_f32(float *out, int64_t n, const uint8_t *base, size_t stride,
                     const int32_t *rows, const float *w, int32_t nr)
{
    for (int64_t d = 0; d < n; d++) out[d] = 0.0f;
    for (int32_t r = 0; r < nr; r++) {
        const float *v = (const float *)(base + (size_t)rows[r] * stride);
        const float wr = w[r];
        for (int64_t d = 0; d < n; d++) out[d] += wr * v[d];
    }
}

static void wsum_f16(float *out, int64_t n, const uint8_t *base, size_t stride,
                     const int32_t *rows, const float *w, int32_t nr)
{
    for (int64_t d = 0; d < n; d++) out[d] = 0.0f;
    for (int32_t r = 0; r < nr; r++) {
        const kinfer_fp16 *v = (const kinfer_fp16 *)(base + (size_t)rows[r] * stride);
        const float wr = w[r];
        for (int64_t d = 0; d < n; d++) out[d] += wr * kinfer_fp16_to_fp32(v[d]);
    }
}

static void wsum_q8_0(float *out, int64_t n, const uint8_t *base, size_t stride,
                      const int32_t *rows, const float *w, int32_t nr)
{
    for (int64_t d = 0; d < n; d++) out[d] = 0.0f;
    for (int32_t r = 0; r < nr; r++) {
        const block_q8_0 *b = (const block_q8_0 *)(base + (size_t)rows[r] * stride);
        const float wr = w[r];
        for (int64_t i = 0; i < n / QK8_0; i++) {
            const float d = kinfer_fp16_to_fp32(b[i].d);
            float *o = out + i * QK8_0;
            for (int j = 0; j < QK8_0; j++) o[j] += wr * ((float)b[i].qs[j] * d);
        }
    }
}

static kinfer_attn_wsum_fn wsum_scalar(int type)
{
    switch (type) {
    case KINFER_TYPE_F32: return wsum_f32;
    case KINFER_TYPE_F16: return wsum_f16;
    case KINFER_TYPE_Q8_0: return wsum_q8_0;
    default: return NULL;
    }
}

kinfer_attn_wsum_fn kinfer_attn_wsum_at(int type, int level)
{
    if (level < KINFER_CPU_SCALAR || level > (int)kinfer_cpu_best_level()) return NULL;
    kinfer_attn_wsum_fn f = NULL;
#if defined(__x86_64__)
    if (level >= KINFER_CPU_AVX512 && !f) f = kinfer_attn_wsum_avx512(type);
    if (level >= KINFER_CPU_AVX2 && !f) f = kinfer_attn_wsum_avx2(type);
#endif
    return f ? f : wsum_scalar(type);
}

kinfer_attn_wsum_fn kinfer_attn_wsum_get(int type)
{
    return kinfer_attn_wsum_at(type, (int)kinfer_cpu_best_level());
}
