/*
 * ref.c — scalar reference kernels: float types, the 32-element block types
 * (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, IQ4_NL) and their dot products.
 *
 * Numerics follow ggml's reference code (ggml-quants.c) so that what we
 * quantize reads back the same in llama.cpp and vice versa.  The K-quants
 * live in ref_kquants.c.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "cpu/flash_attn.h"
#include "cpu/ref.h"

/* ------------------------------------------------------------ floats */

void kinfer_ref_to_float_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void kinfer_ref_from_float_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void kinfer_ref_to_float_f16(const void *src, float *dst, int64_t n)
{
    const kinfer_fp16 *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = kinfer_fp16_to_fp32(x[i]);
}

void kinfer_ref_from_float_f16(const float *src, void *dst, int64_t n)
{
    kinfer_fp16 *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = kinfer_fp32_to_fp16(src[i]);
}

void kinfer_ref_to_float_bf16(const void *src, float *dst, int64_t n)
{
    const kinfer_bf16 *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = kinfer_bf16_to_fp32(x[i]);
}

void kinfer_ref_from_float_bf16(const float *src, void *dst, int64_t n)
{
    kinfer_bf16 *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = kinfer_fp32_to_bf16(src[i]);
}

/* Float dots accumulate in double: the reference should not be the noisy
 * side of a comparison. */
float kinfer_ref_vec_dot_f32(int64_t n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i] * (double)y[i];
    return (float)sum;
}

float kinfer_ref_vec_dot_f16(int64_t n, const void *w, const void *a)
{
    const kinfer_fp16 *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)kinfer_fp16_to_fp32(x[i]) * (double)kinfer_fp16_to_fp32(y[i]);
    return (float)sum;
}

float kinfer_ref_vec_dot_bf16(int64_t n, const void *w, const void *a)
{
    const kinfer_bf16 *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)kinfer_bf16_to_fp32(x[i]) * (double)kinfer_bf16_to_fp32(y[i]);
    return (float)sum;
}

/* ------------------------------------------------- 32-element blocks */

/* Element of largest magnitude, sign kept (first one on ties). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *lo, float *hi)
{
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < mn)
            mn = x[j];
        if (x[j] > mx)
            mx = x[j];
    }
    *lo = mn;
    *hi = mx;
}

void kinfer_ref_from_float_q4_0(const float *src, void *dst, int64_t n)
{
    block_q4_0 *y = dst;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float *x = src + b * QK4_0;
        /* the extreme maps to -8 exactly, the full negative range */
        const float d = signed_absmax(x, QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = kinfer_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int lo = (int8_t)(x[j] * id + 8.5f);
            const int hi = (int8_t)(x[j + QK4_0 / 2] * id + 8.5f);
            y[b].qs[j] = (uint8_t)((lo < 15 ? lo : 15) | ((hi < 15 ? hi : 15) << 4));
        }
    }
}

void kinfer_ref_to_float_q4_0(const void *src, float *dst, int64_t n)
{
    const block_q4_0 *x = src;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        float *y = dst + b * QK4_0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j] = (float)((x[b].qs[j] & 0xF) - 8) * d;
            y[j + QK4_0 / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void kinfer_ref_from_float_q4_1(const float *src, void *dst, int64_t n)
{
    block_q4_1 *y = dst;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        const float *x = src + b * QK4_1;
        float mn, mx;
        min_max(x, QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = kinfer_fp32_to_fp16(d);
        y[b].m = kinfer_fp32_to_fp16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int lo = (int8_t)((x[j] - mn) * id + 0.5f);
            const int hi = (int8_t)((x[j + QK4_1 / 2] - mn) * id + 0.5f);
            y[b].qs[j] = (uint8_t)((lo < 15 ? lo : 15) | ((hi < 15 ? hi : 15) << 4));
        }
    }
}

void kinfer_ref_to_float_q4_1(const void *src, float *dst, int64_t n)
{
    const block_q4_1 *x = src;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        const float m = kinfer_fp16_to_fp32(x[b].m);
        float *y = dst + b * QK4_1;
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (float)(x[b].qs[j] & 0xF) * d + m;
            y[j + QK4_1 / 2] = (float)(x[b].qs[j] >> 4) * d + m;
        }
    }
}

/* Split 32 5-bit values into nibbles and the qh bit mask. */
static void pack_5bit(const uint8_t *q, uint8_t *qs, uint8_t *qh_bytes)
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
        qh |= (uint32_t)((q[j] >> 4) & 1) << j;
        qh |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    memcpy(qh_bytes, &qh, 4);
}

static void unpack_5bit(const uint8_t *qs, const uint8_t *qh_bytes, uint8_t *q)
{
    uint32_t qh;
    memcpy(&qh, qh_bytes, 4);
    for (int j = 0; j < 16; j++) {
        q[j] = (uint8_t)((qs[j] & 0xF) | (((qh >> j) & 1) << 4));
        q[j + 16] = (uint8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    }
}

void kinfer_ref_from_float_q5_0(const float *src, void *dst, int64_t n)
{
    block_q5_0 *y = dst;
    for (int64_t b = 0; b < n / QK5_0; b++) {
        const float *x = src + b * QK5_0;
        const float d = signed_absmax(x, QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK5_0];
        for (int j = 0; j < QK5_0; j++) {
            const int v = (int8_t)(x[j] * id + 16.5f);
            q[j] = (uint8_t)(v < 31 ? v : 31);
        }
        y[b].d = kinfer_fp32_to_fp16(d);
        pack_5bit(q, y[b].qs, y[b].qh);
    }
}

void kinfer_ref_to_float_q5_0(const void *src, float *dst, int64_t n)
{
    const block_q5_0 *x = src;
    for (int64_t b = 0; b < n / QK5_0; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        uint8_t q[QK5_0];
        unpack_5bit(x[b].qs, x[b].qh, q);
        for (int j = 0; j < QK5_0; j++)
            dst[b * QK5_0 + j] = (float)(q[j] - 16) * d;
    }
}

void kinfer_ref_from_float_q5_1(const float *src, void *dst, int64_t n)
{
    block_q5_1 *y = dst;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        const float *x = src + b * QK5_1;
        float mn, mx;
        min_max(x, QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK5_1];
        for (int j = 0; j < QK5_1; j++)
            q[j] = (uint8_t)((x[j] - mn) * id + 0.5f);
        y[b].d = kinfer_fp32_to_fp16(d);
        y[b].m = kinfer_fp32_to_fp16(mn);
        pack_5bit(q, y[b].qs, y[b].qh);
    }
}

void kinfer_ref_to_float_q5_1(const void *src, float *dst, int64_t n)
{
    const block_q5_1 *x = src;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        const float m = kinfer_fp16_to_fp32(x[b].m);
        uint8_t q[QK5_1];
        unpack_5bit(x[b].qs, x[b].qh, q);
        for (int j = 0; j < QK5_1; j++)
            dst[b * QK5_1 + j] = (float)q[j] * d + m;
    }
}

void kinfer_ref_from_float_q8_0(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float *x = src + b * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = kinfer_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void kinfer_ref_to_float_q8_0(const void *src, float *dst, int64_t n)
{
    const block_q8_0 *x = src;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK8_0; j++)
            dst[b * QK8_0 + j] = (float)x[b].qs[j] * d;
    }
}

void kinfer_ref_from_float_q8_1(const float *src, void *dst, int64_t n)
{
    block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        const float *x = src + b * QK8_1;
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[b].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[b].qs[j];
        }
        y[b].d = kinfer_fp32_to_fp16(d);
        y[b].s = kinfer_fp32_to_fp16((float)sum * d);
    }
}

void kinfer_ref_to_float_q8_1(const void *src, float *dst, int64_t n)
{
    const block_q8_1 *x = src;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK8_1; j++)
            dst[b * QK8_1 + j] = (float)x[b].qs[j] * d;
    }
}

/* ------------------------------------------------------------- IQ4_NL */

/* Index of the level nearest x in a sorted table of n (a power of 2)
 * levels; ties go up, as in ggml's best_index_int8. */
static int nearest_level(int n, const int8_t *levels, float x)
{
    const float x2 = x + x;
    int idx = 0;
    for (int step = n >> 1; step > 0; step >>= 1) {
        const int j = idx + step;
        if (x2 >= (float)(levels[j - 1] + levels[j]))
            idx = j;
    }
    return idx;
}

/*
 * Shared by IQ4_NL (one 32-block) and IQ4_XS (eight 32-blocks under one
 * fp16 scale): per 32-block, a weighted least-squares scale searched over
 * 15 candidate grids (ggml's quantize_row_iq4_nl_impl with ntry = 7, what
 * llama-quantize uses without an importance matrix).
 * L gets the level indices; for IQ4_XS the 6-bit sub-scales are written to
 * scales_l / scales_h.  Returns the fp16 super-scale.
 */
kinfer_fp16 kinfer_ref_iq4_quantize_superblock(const float *x, int n_sub, uint8_t *L,
                                               uint8_t *scales_l, uint16_t *scales_h);

kinfer_fp16 kinfer_ref_iq4_quantize_superblock(const float *x, int n_sub, uint8_t *L,
                                               uint8_t *scales_l, uint16_t *scales_h)
{
    const int8_t *values = kinfer_iq4nl_values;
    const int ntry = 7;
    float scales[8];
    float weight[32];
    float max_scale = 0.0f, amax_scale = 0.0f;

    for (int ib = 0; ib < n_sub; ib++) {
        const float *xb = x + 32 * ib;
        uint8_t *Lb = L + 32 * ib;
        for (int j = 0; j < 32; j++)
            weight[j] = xb[j] * xb[j];
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++) {
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        if (amax < 1e-15f) {
            scales[ib] = 0.0f;
            memset(Lb, 0, 32);
            continue;
        }
        float d = -max / values[0];
        float id = 1.0f / d;
        float sumqx = 0.0f, sumq2 = 0.0f;
        for (int j = 0; j < 32; j++) {
            const int l = nearest_level(16, values, id * xb[j]);
            Lb[j] = (uint8_t)l;
            const float q = values[l];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; itry++) {
            id = (float)(itry + values[0]) / max;
            sumqx = sumq2 = 0.0f;
            for (int j = 0; j < 32; j++) {
                const int l = nearest_level(16, values, id * xb[j]);
                const float q = values[l];
                sumqx += weight[j] * q * xb[j];
                sumq2 += weight[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (fabsf(d) > amax_scale) {
            amax_scale = fabsf(d);
            max_scale = d;
        }
    }

    if (n_sub == 1) {
        /* requantize against the chosen scale */
        const float id = scales[0] != 0.0f ? 1.0f / scales[0] : 0.0f;
        for (int j = 0; j < 32; j++)
            L[j] = (uint8_t)nearest_level(16, values, id * x[j]);
        return kinfer_fp32_to_fp16(scales[0]);
    }

    *scales_h = 0;
    const float d = -max_scale / 32;
    const kinfer_fp16 dh = kinfer_fp32_to_fp16(d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int ib = 0; ib < n_sub; ib++) {
        int l = kinfer_nearest_int(id * scales[ib]);
        l = l < -32 ? -32 : (l > 31 ? 31 : l);
        const float dl = d * (float)l;
        const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
        for (int j = 0; j < 32; j++)
            L[32 * ib + j] = (uint8_t)nearest_level(16, values, idl * x[32 * ib + j]);
        l += 32;
        if (ib % 2 == 0)
            scales_l[ib / 2] = (uint8_t)(l & 0xF);
        else
            scales_l[ib / 2] |= (uint8_t)((l & 0xF) << 4);
        *scales_h |= (uint16_t)((l >> 4) << (2 * ib));
    }
    return dh;
}

void kinfer_ref_from_float_iq4_nl(const float *src, void *dst, int64_t n)
{
    block_iq4_nl *y = dst;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        uint8_t L[32];
        y[b].d = kinfer_ref_iq4_quantize_superblock(src + b * QK4_NL, 1, L, NULL, NULL);
        for (int j = 0; j < 16; j++)
            y[b].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

void kinfer_ref_to_float_iq4_nl(const void *src, float *dst, int64_t n)
{
    const block_iq4_nl *x = src;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        float *y = dst + b * QK4_NL;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)kinfer_iq4nl_values[x[b].qs[j] & 0xF];
            y[j + 16] = d * (float)kinfer_iq4nl_values[x[b].qs[j] >> 4];
        }
    }
}

/* --------------------------------------------------------- dot products */

float kinfer_ref_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a)
{
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++)
            sumi += x[b].qs[j] * y[b].qs[j];
        sum += (float)sumi * (kinfer_fp16_to_fp32(x[b].d) * kinfer_fp16_to_fp32(y[b].d));
    }
    return sum;
}

float kinfer_ref_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a)
{
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j];
            sumi += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
        }
        sum += (float)sumi * (kinfer_fp16_to_fp32(x[b].d) * kinfer_fp16_to_fp32(y[b].d));
    }
    return sum;
}

/* With unsigned quants q and min m: sum (q d + m) a = d da sum(q qa) + m s. */
float kinfer_ref_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a)
{
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (x[b].qs[j] & 0xF) * y[b].qs[j];
            sumi += (x[b].qs[j] >> 4) * y[b].qs[j + 16];
        }
        sum += (float)sumi * (kinfer_fp16_to_fp32(x[b].d) * kinfer_fp16_to_fp32(y[b].d)) +
               kinfer_fp16_to_fp32(x[b].m) * kinfer_fp16_to_fp32(y[b].s);
    }
    return sum;
}

float kinfer_ref_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a)
{
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK5_0; b++) {
        uint8_t q[32];
        unpack_5bit(x[b].qs, x[b].qh, q);
        int sumi = 0;
        for (int j = 0; j < 32; j++)
            sumi += (q[j] - 16) * y[b].qs[j];
        sum += (float)sumi * (kinfer_fp16_to_fp32(x[b].d) * kinfer_fp16_to_fp32(y[b].d));
    }
    return sum;
}

float kinfer_ref_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a)
{
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        uint8_t q[32];
        unpack_5bit(x[b].qs, x[b].qh, q);
        int sumi = 0;
        for (int j = 0; j < 32; j++)
            sumi += q[j] * y[b].qs[j];
        sum += (float)sumi * (kinfer_fp16_to_fp32(x[b].d) * kinfer_fp16_to_fp32(y[b].d)) +
               kinfer_fp16_to_fp32(x[b].m) * kinfer_fp16_to_fp32(y[b].s);
    }
    return sum;
}

float kinfer_ref_vec_dot_iq4_nl_q8_0(int64_t n, const void *w, const void *a)
{
    const block_iq4_nl *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += kinfer_iq4nl_values[x[b].qs[j] & 0xF] * y[b].qs[j];
            sumi += kinfer_iq4nl_values[x[b].qs[j] >> 4] * y[b].qs[j + 16];
        }
        sum += (float)sumi * (kinfer_fp16_to_fp32(x[b].d) * kinfer_fp16_to_fp32(y[b].d));
    }
    return sum;
}

/* ------------------------------------------------ activation quantizers */

/* One block of 32 as ggml's x86 quantize_row_q8_0/q8_1 does it: multiply
 * by 127/amax and round ties to even (rintf in the default rounding mode).
 * Returns d; *sum gets the sum of the quants. */
static float act_block32(const float *x, int8_t *qs, int *sum)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int j = 0; j < 32; j++) {
        qs[j] = (int8_t)rintf(x[j] * id);
        s += qs[j];
    }
    *sum = s;
    return amax / 127;
}

void kinfer_act_from_float_q8_0(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    int sum;
    for (int64_t b = 0; b < n / QK8_0; b++)
        y[b].d = kinfer_fp32_to_fp16(act_block32(src + b * QK8_0, y[b].qs, &sum));
}

void kinfer_act_from_float_q8_1(const float *src, void *dst, int64_t n)
{
    block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        int sum;
        const float d = act_block32(src + b * QK8_1, y[b].qs, &sum);
        y[b].d = kinfer_fp32_to_fp16(d);
        y[b].s = kinfer_fp32_to_fp16(d * (float)sum);
    }
}

/* ------------------------------------------------- flash attention */

void kinfer_ref_fa_mad_f16(int64_t n, kinfer_fp16 *acc, const kinfer_fp16 *v, float w)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = kinfer_fp32_to_fp16(fmaf(kinfer_fp16_to_fp32(v[i]), w, kinfer_fp16_to_fp32(acc[i])));
}

void kinfer_ref_fa_scale_f16(int64_t n, kinfer_fp16 *acc, float s)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = kinfer_fp32_to_fp16(kinfer_fp16_to_fp32(acc[i]) * s);
}

void kinfer_ref_fa_mad_f32(int64_t n, float *acc, const float *v, float w)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = fmaf(v[i], w, acc[i]);
}

void kinfer_ref_fa_gemm_f32(float *c, const float *a, const float *b, int m, int k, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = c[(size_t)i * n + j];
            for (int p = 0; p < k; p++)
                s = fmaf(a[(size_t)i * k + p], b[(size_t)p * n + j], s);
            c[(size_t)i * n + j] = s;
        }
}

double kinfer_ref_fa_exp_sum(float *x, int64_t n, float max)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    return sum;
}

void kinfer_ref_fa_scale_f32(int64_t n, float *x, float s)
{
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

float kinfer_ref_fa_mask_max(float *x, int n, uint64_t seen, float s)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] = (seen >> i) & 1u ? x[i] * s : -INFINITY;
        max = max > x[i] ? max : x[i];
    }
    return max;
}

void kinfer_ref_fa_pack_kt(float *kt, const kinfer_fp16 *const *rows, int hd)
{
    for (int r = 0; r < 64; r++)
        for (int d = 0; d < hd; d++) kt[(size_t)d * 64 + r] = kinfer_fp16_to_fp32(rows[r][d]);
}
