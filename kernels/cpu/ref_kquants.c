/*
 * ref_kquants.c — scalar reference kernels for the 256-element super-block
 * types: Q2_K..Q6_K, IQ4_XS, and the activation type Q8_K.
 *
 * The quantizers are ggml's reference ones (quantize_row_qX_K_ref, what
 * llama-quantize runs without an importance matrix): per sub-block a scale
 * (and min) fitted by a small search, then the sub-block scales quantized
 * against one fp16 super-scale, then every element requantized against the
 * scale it will actually be decoded with.
 */
#include <math.h>
#include <string.h>

#include "cpu/ref.h"

#define GROUP_MAX_EPS 1e-15f

kinfer_fp16 kinfer_ref_iq4_quantize_superblock(const float *x, int n_sub, uint8_t *L,
                                               uint8_t *scales_l, uint16_t *scales_h);

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/*
 * Symmetric scale for n values on levels -nmax..nmax-1 (stored +nmax in L),
 * weighted least squares (weights x^2 unless qw given), trying 18 nearby
 * grids.  ggml's make_qx_quants with rmse_type 1.
 */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = clampi(kinfer_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clampi(kinfer_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                const int l = clampi(kinfer_nearest_int(iscale * x[i]), -nmax, nmax - 1);
                L[i] = (int8_t)(l + nmax);
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/*
 * Q3_K's sub-block fit: start from the max-based grid, then move single
 * elements to another level while that improves the weighted fit (up to 5
 * rounds).  ggml's make_q3_quants with do_rmse.
 */
static float fit_q3(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = clampi(kinfer_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int new_l = clampi(kinfer_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/*
 * Asymmetric fit x ~ scale * L + min with L in 0..nmax and min <= 0:
 * weighted least squares over nstep+1 candidate grids, keeping the one with
 * the lowest weighted error (absolute if use_mad).  *neg_min gets -min.
 * ggml's make_qkx2_quants.
 */
static float fit_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                        float *neg_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                        int use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(kinfer_nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clampi(kinfer_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *neg_min = -min;
    return scale;
}

/* ----------------------------------------------------------------- Q2_K */

void kinfer_ref_from_float_q2_K(const float *src, void *dst, int64_t n)
{
    block_q2_K *y = dst;
    const float q4scale = 15.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        uint8_t L[QK_K], Laux[16];
        float weights[16], mins[16], scales[16];
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = fit_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                   -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] = (uint8_t)kinfer_nearest_int(iscale * scales[j]);
            y[b].d = kinfer_fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[b].scales, 0, 16);
            y[b].d = kinfer_fp32_to_fp16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] |= (uint8_t)(kinfer_nearest_int(iscale * mins[j]) << 4);
            y[b].dmin = kinfer_fp32_to_fp16(max_min / q4scale);
        } else {
            y[b].dmin = kinfer_fp32_to_fp16(0.0f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = kinfer_fp16_to_fp32(y[b].d) * (float)(y[b].scales[j] & 0xF);
            if (d == 0.0f)
                continue;
            const float dm = kinfer_fp16_to_fp32(y[b].dmin) * (float)(y[b].scales[j] >> 4);
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (uint8_t)clampi(kinfer_nearest_int((x[16 * j + i] + dm) / d), 0, 3);
        }
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                y[b].qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) |
                                               (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

/* Element e of a Q2_K block: 128-halves of 32 bytes, 4 shifts each. */
static inline int q2k_quant(const block_q2_K *x, int e)
{
    const int half = e / 128, r = e % 128;
    return (x->qs[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
}

void kinfer_ref_to_float_q2_K(const void *src, float *dst, int64_t n)
{
    const block_q2_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        const float dmin = kinfer_fp16_to_fp32(x[b].dmin);
        for (int e = 0; e < QK_K; e++) {
            const uint8_t sc = x[b].scales[e / 16];
            const float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
            dst[b * QK_K + e] = dl * (float)q2k_quant(&x[b], e) - ml;
        }
    }
}

float kinfer_ref_vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a)
{
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sumi = 0, summ = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += q2k_quant(&x[b], 16 * g + l) * y[b].qs[16 * g + l];
            sumi += (x[b].scales[g] & 0xF) * s;
            summ += (x[b].scales[g] >> 4) * y[b].bsums[g];
        }
        const float dy = y[b].d;
        sum += dy * kinfer_fp16_to_fp32(x[b].d) * (float)sumi -
               dy * kinfer_fp16_to_fp32(x[b].dmin) * (float)summ;
    }
    return sum;
}

/* ----------------------------------------------------------------- Q3_K */

void kinfer_ref_from_float_q3_K(const float *src, void *dst, int64_t n)
{
    block_q3_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[b].scales, 0, 12);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                const int l = clampi((int8_t)kinfer_nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    y[b].scales[j] = (uint8_t)(l & 0xF);
                else
                    y[b].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                y[b].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[b].d = kinfer_fp32_to_fp16(1 / iscale);
        } else {
            y[b].d = kinfer_fp32_to_fp16(0.0f);
        }
        int8_t sc[16];
        kinfer_q3k_scales(y[b].scales, sc);
        for (int j = 0; j < 16; j++) {
            const float d = kinfer_fp16_to_fp32(y[b].d) * (float)sc[j];
            if (d == 0.0f)
                continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(clampi(kinfer_nearest_int(x[16 * j + i] / d), -4, 3) + 4);
        }
        /* high bit of element e goes to hmask[e % 32], bit e / 32 */
        memset(y[b].hmask, 0, 32);
        for (int e = 0; e < QK_K; e++) {
            if (L[e] > 3) {
                y[b].hmask[e % 32] |= (uint8_t)(1 << (e / 32));
                L[e] -= 4;
            }
        }
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                y[b].qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) |
                                               (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

/* Element e of a Q3_K block in -4..3: low 2 bits like Q2_K; a clear high
 * bit means -4. */
static inline int q3k_quant(const block_q3_K *x, int e)
{
    const int half = e / 128, r = e % 128, l = r % 32;
    const int lo = (x->qs[half * 32 + l] >> (2 * (r / 32))) & 3;
    const int hbit = (x->hmask[l] >> (half * 4 + r / 32)) & 1;
    return lo - (hbit ? 0 : 4);
}

void kinfer_ref_to_float_q3_K(const void *src, float *dst, int64_t n)
{
    const block_q3_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        int8_t sc[16];
        kinfer_q3k_scales(x[b].scales, sc);
        for (int e = 0; e < QK_K; e++)
            dst[b * QK_K + e] = (d * (float)sc[e / 16]) * (float)q3k_quant(&x[b], e);
    }
}

float kinfer_ref_vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a)
{
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int8_t sc[16];
        kinfer_q3k_scales(x[b].scales, sc);
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += q3k_quant(&x[b], 16 * g + l) * y[b].qs[16 * g + l];
            sumi += sc[g] * s;
        }
        sum += y[b].d * kinfer_fp16_to_fp32(x[b].d) * (float)sumi;
    }
    return sum;
}

/* ------------------------------------------------------- Q4_K and Q5_K */

/* Fit the 8 sub-blocks of 32 with an affine grid on levels 0..nmax and
 * pack their 6-bit scales and mins.  L gets the final levels. */
static void fit_k_affine(const float *x, int nmax, float rmin, float rdelta, int nstep,
                         uint8_t *L, kinfer_fp16 *d_out, kinfer_fp16 *dmin_out, uint8_t *packed)
{
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = fit_affine(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin,
                               rdelta, nstep, 0);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)kinfer_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)kinfer_nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = kinfer_fp32_to_fp16(max_scale / 63.0f);
    *dmin_out = kinfer_fp32_to_fp16(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        kinfer_k4_scale_min(j, packed, &sc, &m);
        const float d = kinfer_fp16_to_fp32(*d_out) * (float)sc;
        if (d == 0.0f)
            continue;
        const float dm = kinfer_fp16_to_fp32(*dmin_out) * (float)m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)clampi(kinfer_nearest_int((x[32 * j + i] + dm) / d), 0, nmax);
    }
}

void kinfer_ref_from_float_q4_K(const float *src, void *dst, int64_t n)
{
    block_q4_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t L[QK_K];
        fit_k_affine(src + b * QK_K, 15, -1.0f, 0.1f, 20, L, &y[b].d, &y[b].dmin, y[b].scales);
        /* 64-element chunks: first 32 in low nibbles, next 32 in high */
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[b].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void kinfer_ref_to_float_q4_K(const void *src, float *dst, int64_t n)
{
    const block_q4_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        const float dmin = kinfer_fp16_to_fp32(x[b].dmin);
        float *y = dst + b * QK_K;
        for (int c = 0; c < 4; c++) {
            uint8_t sc, m;
            kinfer_k4_scale_min(2 * c, x[b].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            kinfer_k4_scale_min(2 * c + 1, x[b].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                y[64 * c + l] = d1 * (float)(x[b].qs[32 * c + l] & 0xF) - m1;
                y[64 * c + 32 + l] = d2 * (float)(x[b].qs[32 * c + l] >> 4) - m2;
            }
        }
    }
}

float kinfer_ref_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a)
{
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            kinfer_k4_scale_min(j, x[b].scales, &sc, &m);
            const uint8_t *q = x[b].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int s = 0;
            for (int l = 0; l < 32; l++)
                s += ((q[l] >> shift) & 0xF) * y[b].qs[32 * j + l];
            sumi += sc * s;
            summ += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
        }
        sum += y[b].d * kinfer_fp16_to_fp32(x[b].d) * (float)sumi -
               y[b].d * kinfer_fp16_to_fp32(x[b].dmin) * (float)summ;
    }
    return sum;
}

void kinfer_ref_from_float_q5_K(const float *src, void *dst, int64_t n)
{
    block_q5_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t L[QK_K];
        fit_k_affine(src + b * QK_K, 31, -0.5f, 0.1f, 15, L, &y[b].d, &y[b].dmin, y[b].scales);
        memset(y[b].qh, 0, 32);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                y[b].qs[32 * c + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
                y[b].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
        }
    }
}

/* Element l of sub-block j (0..7) of a Q5_K block, 0..31. */
static inline int q5k_quant(const block_q5_K *x, int j, int l)
{
    const int lo = (x->qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
    return lo | (((x->qh[l] >> j) & 1) << 4);
}

void kinfer_ref_to_float_q5_K(const void *src, float *dst, int64_t n)
{
    const block_q5_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        const float dmin = kinfer_fp16_to_fp32(x[b].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            kinfer_k4_scale_min(j, x[b].scales, &sc, &m);
            const float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                dst[b * QK_K + 32 * j + l] = dl * (float)q5k_quant(&x[b], j, l) - ml;
        }
    }
}

float kinfer_ref_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a)
{
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            kinfer_k4_scale_min(j, x[b].scales, &sc, &m);
            int s = 0;
            for (int l = 0; l < 32; l++)
                s += q5k_quant(&x[b], j, l) * y[b].qs[32 * j + l];
            sumi += sc * s;
            summ += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
        }
        sum += y[b].d * kinfer_fp16_to_fp32(x[b].d) * (float)sumi -
               y[b].d * kinfer_fp16_to_fp32(x[b].dmin) * (float)summ;
    }
    return sum;
}

/* ----------------------------------------------------------------- Q6_K */

void kinfer_ref_from_float_q6_K(const float *src, void *dst, int64_t n)
{
    block_q6_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j, NULL);
            if (fabsf(scales[j]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        y[b].d = kinfer_fp32_to_fp16(1 / iscale);
        for (int j = 0; j < 16; j++) {
            const int v = kinfer_nearest_int(iscale * scales[j]);
            y[b].scales[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            const float d = kinfer_fp16_to_fp32(y[b].d) * (float)y[b].scales[j];
            if (d == 0.0f)
                continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(clampi(kinfer_nearest_int(x[16 * j + i] / d), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = y[b].ql + 64 * h;
            uint8_t *qh = y[b].qh + 32 * h;
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                  ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

/* Element e of a Q6_K block in -32..31. */
static inline int q6k_quant(const block_q6_K *x, int e)
{
    const int half = e / 128, r = e % 128, j = r / 32, l = r % 32;
    const uint8_t lbyte = x->ql[64 * half + 32 * (j & 1) + l];
    const int lo = (j < 2) ? (lbyte & 0xF) : (lbyte >> 4);
    const int hi = (x->qh[32 * half + l] >> (2 * j)) & 3;
    return (lo | (hi << 4)) - 32;
}

void kinfer_ref_to_float_q6_K(const void *src, float *dst, int64_t n)
{
    const block_q6_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        for (int e = 0; e < QK_K; e++)
            dst[b * QK_K + e] = d * (float)x[b].scales[e / 16] * (float)q6k_quant(&x[b], e);
    }
}

float kinfer_ref_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a)
{
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += q6k_quant(&x[b], 16 * g + l) * y[b].qs[16 * g + l];
            sumi += x[b].scales[g] * s;
        }
        sum += y[b].d * kinfer_fp16_to_fp32(x[b].d) * (float)sumi;
    }
    return sum;
}

/* --------------------------------------------------------------- IQ4_XS */

void kinfer_ref_from_float_iq4_xs(const float *src, void *dst, int64_t n)
{
    block_iq4_xs *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t L[QK_K];
        y[b].d = kinfer_ref_iq4_quantize_superblock(src + b * QK_K, 8, L, y[b].scales_l,
                                                    &y[b].scales_h);
        for (int ib = 0; ib < 8; ib++)
            for (int j = 0; j < 16; j++)
                y[b].qs[16 * ib + j] = (uint8_t)(L[32 * ib + j] | (L[32 * ib + 16 + j] << 4));
    }
}

void kinfer_ref_to_float_iq4_xs(const void *src, float *dst, int64_t n)
{
    const block_iq4_xs *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = kinfer_fp16_to_fp32(x[b].d);
        for (int ib = 0; ib < 8; ib++) {
            const float dl = d * (float)kinfer_iq4xs_scale(&x[b], ib);
            const uint8_t *qs = x[b].qs + 16 * ib;
            float *y = dst + b * QK_K + 32 * ib;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)kinfer_iq4nl_values[qs[j] & 0xF];
                y[j + 16] = dl * (float)kinfer_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}

float kinfer_ref_vec_dot_iq4_xs_q8_K(int64_t n, const void *w, const void *a)
{
    const block_iq4_xs *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sumi = 0;
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *qs = x[b].qs + 16 * ib;
            const int8_t *q8 = y[b].qs + 32 * ib;
            int s = 0;
            for (int j = 0; j < 16; j++) {
                s += kinfer_iq4nl_values[qs[j] & 0xF] * q8[j];
                s += kinfer_iq4nl_values[qs[j] >> 4] * q8[j + 16];
            }
            sumi += kinfer_iq4xs_scale(&x[b], ib) * s;
        }
        sum += y[b].d * kinfer_fp16_to_fp32(x[b].d) * (float)sumi;
    }
    return sum;
}

/* ----------------------------------------------------------------- Q8_K */

void kinfer_ref_from_float_q8_K(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* -127 (not -128) keeps every quant in -127..127, so SIMD code may
         * negate them */
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = kinfer_nearest_int(iscale * x[j]);
            y[b].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += y[b].qs[16 * g + l];
            y[b].bsums[g] = (int16_t)s;
        }
        y[b].d = 1 / iscale;
    }
}

void kinfer_ref_to_float_q8_K(const void *src, float *dst, int64_t n)
{
    const block_q8_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++)
        for (int j = 0; j < QK_K; j++)
            dst[b * QK_K + j] = x[b].d * (float)x[b].qs[j];
}
