/*
 * attn_order_avx512.c — attention with an F16 KV cache in the summation
 * order of llama.cpp's CPU backend (no flash attention), whose logits are
 * kinfer's oracle.  ggml computes K.q and V.p as F16 matrix products in one
 * of two orders, and rounding differences there are amplified by the layers
 * above (a 1-ulp change flips 8-bit activation roundings), so kinfer follows
 * whichever order llama.cpp would use:
 *
 *   GEMM (a micro-batch of 2+ tokens, llamafile's tinyBLAS): one 16-lane
 *     accumulator takes chunks of 16 products in sequence; then the 16
 *     lanes are summed as _mm512_reduce_add_ps does.
 *   VEC (a single token, ggml_vec_dot_f16): four 16-lane accumulators take
 *     the four chunks of each 64 elements; (a0 + a2) + (a1 + a3), the same
 *     16-lane sum, then any remainder past a multiple of 64 in double.
 *
 * Elements are indexed by KV cell; a token's visible cells are a prefix of
 * the cache in the usual single-sequence case, so the visible-row index
 * used here is the cell index llama.cpp uses.  The softmax between them is
 * ggml_vec_soft_max_f32: exp in chunks of 16, each chunk summed in float
 * (16-lane sum) and added in double.
 */
#include <string.h>

#include "cpu/attn_order.h"
#include "cpu/x86/vexp_avx512.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE __m512 load_f16(const void *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* The 16-lane sum of _mm512_reduce_add_ps, lane-wise over 16 vectors:
 * out = sum over l of a[l], paired (l, l+8), then (l, l+4), (0, 2), (0, 1). */
static ALWAYS_INLINE __m512 sum16_lanes(__m512 a[16])
{
    __m512 t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = _mm512_add_ps(a[i + 8], a[i]);
    for (int i = 0; i < 4; i++) t6[i] = _mm512_add_ps(t3[i + 4], t3[i]);
    return _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3]));
}

/* x . y over n f16 elements in the given order */
static ALWAYS_INLINE float dot_f16(int64_t n, const kinfer_fp16 *x, const kinfer_fp16 *y, int order)
{
    if (order == KINFER_F16_ORDER_GEMM && n % 16 == 0) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) acc = _mm512_fmadd_ps(load_f16(x + i), load_f16(y + i), acc);
        return _mm512_reduce_add_ps(acc);
    }
    const int64_t np = n & ~(int64_t)63;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < np; i += 64) {
        a0 = _mm512_fmadd_ps(load_f16(x + i), load_f16(y + i), a0);
        a1 = _mm512_fmadd_ps(load_f16(x + i + 16), load_f16(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(load_f16(x + i + 32), load_f16(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(load_f16(x + i + 48), load_f16(y + i + 48), a3);
    }
    double sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    for (int64_t i = np; i < n; i++)
        sum += (double)(kinfer_fp16_to_fp32(x[i]) * kinfer_fp16_to_fp32(y[i]));
    return (float)sum;
}

/* The 16-lane sums of 16 vectors at once: lane k of the result is
 * _mm512_reduce_add_ps(v[k]), the same additions in the same pairing,
 * done as a transposing tree (levels: lanes i + 8, i + 4, then within
 * 4-lane groups 0 + 2 and 1 + 3, then the two halves). */
static ALWAYS_INLINE __m512 sum16_each(const __m512 v[16])
{
    __m512 w[8], z[4], u[2];
    for (int j = 0; j < 8; j++)
        w[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v[j], v[j + 8], 0x44), _mm512_shuffle_f32x4(v[j], v[j + 8], 0xEE));
    for (int j = 0; j < 4; j++)
        z[j] = _mm512_add_ps(_mm512_shuffle_f32x4(w[j], w[j + 4], 0x88), _mm512_shuffle_f32x4(w[j], w[j + 4], 0xDD));
    for (int j = 0; j < 2; j++)
        u[j] = _mm512_add_ps(_mm512_shuffle_ps(z[j], z[j + 2], 0x44), _mm512_shuffle_ps(z[j], z[j + 2], 0xEE));
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x88), _mm512_shuffle_ps(u[0], u[1], 0xDD));
    /* the tree leaves key k in lane idx[k] (an involution) */
    const __m512i idx = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
    return _mm512_permutexvar_ps(idx, r);
}

void kinfer_attn_scores_f16_ordered_avx512(float *s, int hd, const uint8_t *k0, size_t row_k,
                                           const int32_t *rows, int32_t nv, const kinfer_fp16 *q,
                                           float scale, int order)
{
    int32_t r = 0;
    const int gemm = order == KINFER_F16_ORDER_GEMM && hd % 16 == 0;
    if (gemm || hd % 64 == 0) {
        /* sixteen keys at a time, their lane vectors summed together */
        for (; r + 16 <= nv; r += 16) {
            __m512 lanes[16];
            for (int u = 0; u < 16; u++) {
                const kinfer_fp16 *k = (const kinfer_fp16 *)(k0 + (size_t)rows[r + u] * row_k);
                if (gemm) {
                    __m512 acc = _mm512_setzero_ps();
                    for (int i = 0; i < hd; i += 16) acc = _mm512_fmadd_ps(load_f16(k + i), load_f16(q + i), acc);
                    lanes[u] = acc;
                } else {
                    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                    for (int i = 0; i < hd; i += 64) {
                        a0 = _mm512_fmadd_ps(load_f16(k + i), load_f16(q + i), a0);
                        a1 = _mm512_fmadd_ps(load_f16(k + i + 16), load_f16(q + i + 16), a1);
                        a2 = _mm512_fmadd_ps(load_f16(k + i + 32), load_f16(q + i + 32), a2);
                        a3 = _mm512_fmadd_ps(load_f16(k + i + 48), load_f16(q + i + 48), a3);
                    }
                    lanes[u] = _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
                }
            }
            _mm512_storeu_ps(s + r, _mm512_mul_ps(sum16_each(lanes), _mm512_set1_ps(scale)));
        }
    }
    for (; r < nv; r++)
        s[r] = dot_f16(hd, (const kinfer_fp16 *)(k0 + (size_t)rows[r] * row_k), q, order) * scale;
}

void kinfer_attn_softmax_ordered_avx512(float *x, int64_t n)
{
    if (n <= 0) return;
    float max = x[0];
    for (int64_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    const __m512 vmax = _mm512_set1_ps(max);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        /* the lanes past n are the masked cells of llama.cpp's row: 0 */
        const __m512 e = _mm512_maskz_mov_ps(m, kinfer_v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax)));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum += (double)_mm512_reduce_add_ps(e);
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

/* Lane l of the result (16 dims at d) sums p[r] * V row r over the rows
 * r = r0 + l, r0 + l + step, ... < nv, in row order: 16 independent chains. */
static ALWAYS_INLINE void lane_chains(__m512 acc[16], const uint8_t *v0, size_t row_v, const int32_t *rows,
                                      const float *p, int32_t nv, int32_t r0, int32_t step, int d)
{
    for (int l = 0; l < 16; l++) acc[l] = _mm512_setzero_ps();
    int32_t c = r0;
    for (; c + 16 <= nv; c += step) {
#pragma GCC unroll 16
        for (int l = 0; l < 16; l++)
            acc[l] = _mm512_fmadd_ps(load_f16((const kinfer_fp16 *)(v0 + (size_t)rows[c + l] * row_v) + d),
                                     _mm512_set1_ps(p[c + l]), acc[l]);
    }
    if (c < nv) {
#pragma GCC unroll 16
        for (int l = 0; l < 16; l++)
            if (c + l < nv)
                acc[l] = _mm512_fmadd_ps(load_f16((const kinfer_fp16 *)(v0 + (size_t)rows[c + l] * row_v) + d),
                                         _mm512_set1_ps(p[c + l]), acc[l]);
    }
}

void kinfer_attn_wsum_f16_ordered_avx512(float *out, int hd, const uint8_t *v0, size_t row_v,
                                         const int32_t *rows, const float *p, int32_t nv, int order)
{
    for (int d = 0; d < hd; d += 16) {
        __m512 lane[16];
        if (order == KINFER_F16_ORDER_GEMM) {
            /* lane l sums cells l, l + 16, ... */
            lane_chains(lane, v0, row_v, rows, p, nv, 0, 16, d);
        } else {
            /* lane l of accumulator j sums cells 16 j + l, 16 j + l + 64, ...;
             * then (a0 + a2) + (a1 + a3) */
            __m512 a[4][16];
            for (int j = 0; j < 4; j++) lane_chains(a[j], v0, row_v, rows, p, nv, 16 * j, 64, d);
            for (int l = 0; l < 16; l++)
                lane[l] = _mm512_add_ps(_mm512_add_ps(a[0][l], a[2][l]), _mm512_add_ps(a[1][l], a[3][l]));
        }
        _mm512_storeu_ps(out + d, sum16_lanes(lane));
    }
}

/* The shapes of attn_kernels.h: g heads, one after the other. */
#define ORDERED_ADAPTERS(suffix, order)                                                          \
    static void scores_##suffix(float *s, size_t s_stride, int g, int64_t n, const uint8_t *base, \
                                size_t stride, const int32_t *rows, int32_t nr, const void *q,   \
                                size_t q_stride, float scale)                                    \
    {                                                                                            \
        for (int k = 0; k < g; k++)                                                              \
            kinfer_attn_scores_f16_ordered_avx512(s + (size_t)k * s_stride, (int)n, base, stride, \
                                                  rows, nr,                                      \
                                                  (const kinfer_fp16 *)((const uint8_t *)q +     \
                                                                        (size_t)k * q_stride),   \
                                                  scale, order);                                 \
    }                                                                                            \
    static void wsum_##suffix(float *out, size_t out_stride, int g, int64_t n, const uint8_t *base, \
                              size_t stride, const int32_t *rows, const float *w, size_t w_stride, \
                              int32_t nr)                                                        \
    {                                                                                            \
        for (int k = 0; k < g; k++)                                                              \
            kinfer_attn_wsum_f16_ordered_avx512(out + (size_t)k * out_stride, (int)n, base, stride, \
                                                rows, w + (size_t)k * w_stride, nr, order);      \
    }
ORDERED_ADAPTERS(gemm, KINFER_F16_ORDER_GEMM)
ORDERED_ADAPTERS(vec, KINFER_F16_ORDER_VEC)

kinfer_attn_scores_fn kinfer_attn_scores_f16_ordered(int order)
{
    return order == KINFER_F16_ORDER_GEMM ? scores_gemm : scores_vec;
}

kinfer_attn_wsum_fn kinfer_attn_wsum_f16_ordered(int order)
{
    return order == KINFER_F16_ORDER_GEMM ? wsum_gemm : wsum_vec;
}
