/*
 * attn_kernels.c — scalar attention kernels and the choice of variant.
 */
#include "cpu/attn_kernels.h"

#include "cpu/kernels.h"
#include "quant.h"

/* Scalar variants, one head at a time: out[d] += w * v[d], a multiply then
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

/* llama.cpp's summation orders: AVX-512, an F16 cache, whole 16-lane
 * vectors per head */
static int ordered(int type, int64_t n)
{
#if defined(__x86_64__)
    return kinfer_cpu_best_level() >= KINFER_CPU_AVX512 && type == KINFER_TYPE_F16 && n % 16 == 0;
#else
    (void)type, (void)n;
    return 0;
#endif
}

kinfer_attn_wsum_fn kinfer_attn_wsum_get(int type, int64_t n, int order)
{
#if defined(__x86_64__)
    if (ordered(type, n)) return kinfer_attn_wsum_f16_ordered(order);
#endif
    (void)order;
    return kinfer_attn_wsum_at(type, (int)kinfer_cpu_best_level());
}

kinfer_attn_scores_fn kinfer_attn_scores_get(int type, int64_t n, int order)
{
#if defined(__x86_64__)
    if (ordered(type, n)) return kinfer_attn_scores_f16_ordered(order);
    if (kinfer_cpu_best_level() >= KINFER_CPU_AVX512) return kinfer_attn_scores_avx512(type, n);
#endif
    (void)type, (void)n, (void)order;
    return NULL;
}

void kinfer_attn_softmax(float *x, int64_t n)
{
#if defined(__x86_64__)
    if (kinfer_cpu_best_level() >= KINFER_CPU_AVX512) {
        kinfer_attn_softmax_ordered_avx512(x, n);
        return;
    }
#endif
    kinfer_softmax(x, n);
}

void kinfer_attn_round_fp16(float *x, int64_t n)
{
#if defined(__x86_64__)
    if (kinfer_cpu_best_level() >= KINFER_CPU_AVX512) {
        kinfer_attn_round_fp16_avx512(x, n);
        return;
    }
#endif
    kinfer_round_fp16(x, n);
}
