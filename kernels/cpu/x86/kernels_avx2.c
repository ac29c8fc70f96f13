/*
 * kernels_avx2.c — AVX2 + FMA + F16C kernels: dot products of every weight
 * type with its activation type, activation quantizers, and the float
 * conversions.  Compiled with -mavx2 -mfma -mf16c; only called after
 * dispatch.c has checked the CPU.
 *
 * Integer dots use maddubs (u8 x s8 -> pairs of i16) then madd (-> i32).
 * maddubs needs one unsigned operand: signed weights go through the
 * abs / sign trick, unsigned ones (K-quants, Q4_1, Q5_1) directly with the
 * offset folded into a correction term.
 */
#include <immintrin.h>
#include <math.h>

#include "cpu/ref.h"
#include "cpu/isa.h"

static inline float fp16(kinfer_fp16 h)
{
    return _cvtsh_ss(h);
}

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles first, then high ones. */
static inline __m256i nibbles_32(const uint8_t *qs)
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where the bit is set. */
static inline __m256i bits_to_bytes_32(const uint8_t *p)
{
    uint32_t bits;
    memcpy(&bits, p, 4);
    /* byte k of the result gets source byte k/8, then tests bit k%8 */
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                           0x0101010101010101LL, 0x0000000000000000LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    v = _mm256_and_si256(v, bit);
    return _mm256_cmpeq_epi8(v, bit);
}

/* signed x . signed y over 32 bytes -> 8 lanes of i32 partial sums.
 * Valid while neither side holds -128. */
static inline __m256i dot_s8(__m256i x, __m256i y)
{
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* unsigned x (< 64) . signed y -> 8 lanes of i32. */
static inline __m256i dot_u8(__m256i x, __m256i y)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* ------------------------------------------------------ float types */

static float dot_f32(int64_t n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

static float dot_f16(int64_t n, const void *w, const void *a)
{
    const kinfer_fp16 *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        const __m256 x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8)));
        const __m256 y0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        const __m256 y1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8)));
        acc0 = _mm256_fmadd_ps(x0, y0, acc0);
        acc1 = _mm256_fmadd_ps(x1, y1, acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        sum += fp16(x[i]) * fp16(y[i]);
    return sum;
}

static inline __m256 load_bf16(const kinfer_bf16 *p)
{
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static float dot_bf16(int64_t n, const void *w, const void *a)
{
    const kinfer_bf16 *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load_bf16(x + i), load_bf16(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16(x + i + 8), load_bf16(y + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        sum += kinfer_bf16_to_fp32(x[i]) * kinfer_bf16_to_fp32(y[i]);
    return sum;
}

static void f16_to_float(const void *src, float *dst, int64_t n)
{
    const kinfer_fp16 *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++)
        dst[i] = fp16(x[i]);
}

static void f16_from_float(const float *src, void *dst, int64_t n)
{
    kinfer_fp16 *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = kinfer_fp32_to_fp16(src[i]);
}

static void bf16_to_float(const void *src, float *dst, int64_t n)
{
    const kinfer_bf16 *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, load_bf16(x + i));
    for (; i < n; i++)
        dst[i] = kinfer_bf16_to_fp32(x[i]);
}

/* ----------------------------------------------- activation quantizers */

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* roundf(): half away from zero, exactly (the fraction v - trunc(v) is
 * exact in float, so the tie test is too). */
static inline __m256 round_half_away(__m256 v)
{
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
    const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(sign, _mm256_set1_ps(1.0f))));
}

/* four vectors of 8 i32 in -127..127 -> 32 int8 in order */
static inline __m256i pack_i32x32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b);
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd);
    /* the packs worked per 128-bit lane: restore element order */
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* One block of 32 floats quantized like kinfer_ref_from_float_q8_0 or, with
 * act, like kinfer_act_from_float_q8_0; returns the scale and the sum of
 * quants. */
static inline float quantize_block32(const float *x, int8_t *qs, int *sum, bool act)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, _mm256_and_ps(v[k], abs_mask));
    }
    const float mx = hmax_ps(amax), d = mx / 127;
    const float id = act ? (mx != 0.0f ? 127.0f / mx : 0.0f) : (d != 0.0f ? 1.0f / d : 0.0f);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
        const __m256 s = _mm256_mul_ps(v[k], vid);
        q[k] = _mm256_cvtps_epi32(act ? _mm256_round_ps(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                                      : round_half_away(s));
    }
    if (sum)
        *sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
    return d;
}

static inline void q8_0_row(const float *src, void *dst, int64_t n, bool act)
{
    block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++)
        y[b].d = kinfer_fp32_to_fp16(quantize_block32(src + b * QK8_0, y[b].qs, NULL, act));
}

static inline void q8_1_row(const float *src, void *dst, int64_t n, bool act)
{
    block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        int sum;
        const float d = quantize_block32(src + b * QK8_1, y[b].qs, &sum, act);
        y[b].d = kinfer_fp32_to_fp16(d);
        y[b].s = kinfer_fp32_to_fp16((float)sum * d);
    }
}

static void quantize_q8_0(const float *src, void *dst, int64_t n) { q8_0_row(src, dst, n, false); }
static void quantize_q8_1(const float *src, void *dst, int64_t n) { q8_1_row(src, dst, n, false); }
static void quantize_q8_0_act(const float *src, void *dst, int64_t n) { q8_0_row(src, dst, n, true); }
static void quantize_q8_1_act(const float *src, void *dst, int64_t n) { q8_1_row(src, dst, n, true); }

static void quantize_q8_K(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        __m256 amax_v = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            amax_v = _mm256_max_ps(amax_v, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
        const float amax = hmax_ps(amax_v);
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the reference keeps the sign of the first element reaching amax */
        float max = amax;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        for (int g = 0; g < QK_K; g += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) /* cvtps rounds to nearest even, like nearest_int */
                q[k] = _mm256_min_epi32(top, _mm256_cvtps_epi32(
                                                 _mm256_mul_ps(vis, _mm256_loadu_ps(x + g + 8 * k))));
            y[b].bsums[g / 16] = (int16_t)hsum_epi32(_mm256_add_epi32(q[0], q[1]));
            y[b].bsums[g / 16 + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(y[b].qs + g), pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
        }
        y[b].d = 1 / iscale;
    }
}

/* ------------------------------------------------- 32-element blocks */

static float dot_q4_0(int64_t n, const void *w, const void *a)
{
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    const int64_t nb = n / QK4_0;
    const __m256i off = _mm256_set1_epi8(8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i q0 = _mm256_sub_epi8(nibbles_32(x[b].qs), off);
        const __m256i q1 = _mm256_sub_epi8(nibbles_32(x[b + 1].qs), off);
        const __m256i s0 = dot_s8(q0, _mm256_loadu_si256((const __m256i *)y[b].qs));
        const __m256i s1 = dot_s8(q1, _mm256_loadu_si256((const __m256i *)y[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b].d) * fp16(y[b].d)), _mm256_cvtepi32_ps(s0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b + 1].d) * fp16(y[b + 1].d)),
                               _mm256_cvtepi32_ps(s1), acc1);
    }
    for (; b < nb; b++) {
        const __m256i q0 = _mm256_sub_epi8(nibbles_32(x[b].qs), off);
        const __m256i s0 = dot_s8(q0, _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b].d) * fp16(y[b].d)), _mm256_cvtepi32_ps(s0), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

static float dot_q4_1(int64_t n, const void *w, const void *a)
{
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    const int64_t nb = n / QK4_1;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const __m256i s = dot_u8(nibbles_32(x[b].qs), _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b].d) * fp16(y[b].d)), _mm256_cvtepi32_ps(s), acc);
        summs += fp16(x[b].m) * fp16(y[b].s);
    }
    return hsum_ps(acc) + summs;
}

static float dot_q5_0(int64_t n, const void *w, const void *a)
{
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK5_0; b++) {
        /* a clear 5th bit means value - 16: set the high nibble to 0xF */
        const __m256i hi = _mm256_andnot_si256(bits_to_bytes_32(x[b].qh), _mm256_set1_epi8((char)0xF0));
        const __m256i q = _mm256_or_si256(nibbles_32(x[b].qs), hi);
        const __m256i s = dot_s8(q, _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b].d) * fp16(y[b].d)), _mm256_cvtepi32_ps(s), acc);
    }
    return hsum_ps(acc);
}

static float dot_q5_1(int64_t n, const void *w, const void *a)
{
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        const __m256i hi = _mm256_and_si256(bits_to_bytes_32(x[b].qh), _mm256_set1_epi8(0x10));
        const __m256i q = _mm256_or_si256(nibbles_32(x[b].qs), hi);
        const __m256i s = dot_u8(q, _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b].d) * fp16(y[b].d)), _mm256_cvtepi32_ps(s), acc);
        summs += fp16(x[b].m) * fp16(y[b].s);
    }
    return hsum_ps(acc) + summs;
}

static float dot_q8_0(int64_t n, const void *w, const void *a)
{
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    const int64_t nb = n / QK8_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i s0 = dot_s8(_mm256_loadu_si256((const __m256i *)x[b].qs),
                                  _mm256_loadu_si256((const __m256i *)y[b].qs));
        const __m256i s1 = dot_s8(_mm256_loadu_si256((const __m256i *)x[b + 1].qs),
                                  _mm256_loadu_si256((const __m256i *)y[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b].d) * fp16(y[b].d)), _mm256_cvtepi32_ps(s0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b + 1].d) * fp16(y[b + 1].d)),
                               _mm256_cvtepi32_ps(s1), acc1);
    }
    for (; b < nb; b++) {
        const __m256i s0 = dot_s8(_mm256_loadu_si256((const __m256i *)x[b].qs),
                                  _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b].d) * fp16(y[b].d)), _mm256_cvtepi32_ps(s0), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

static inline __m256i iq4_lut(void)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)kinfer_iq4nl_values);
    return _mm256_set_m128i(t, t);
}

static float dot_iq4_nl(int64_t n, const void *w, const void *a)
{
    const block_iq4_nl *x = w;
    const block_q8_0 *y = a;
    const __m256i lut = iq4_lut();
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        const __m256i q = _mm256_shuffle_epi8(lut, nibbles_32(x[b].qs));
        const __m256i s = dot_s8(q, _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[b].d) * fp16(y[b].d)), _mm256_cvtepi32_ps(s), acc);
    }
    return hsum_ps(acc);
}

/* ---------------------------------------------------------- K-quants */

/* Shuffle controls: i16 lanes 0..7 <- element 2j, 8..15 <- element 2j+1 of
 * 8 i16 scales held in both 128-bit lanes. */
static const uint8_t scale_pair_ctrl[4][32] = {
#define P(a) a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1
    {P(0), P(2)}, {P(4), P(6)}, {P(8), P(10)}, {P(12), P(14)},
#undef P
};

/* 16 i8 scales -> for half h, the 8 scales 8h..8h+7 as i16 in both lanes */
static inline __m256i scales_half(const int8_t *sc, int h)
{
    return _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8 * h))));
}

static inline __m256i scale_pair(__m256i s8x2, int j)
{
    return _mm256_shuffle_epi8(s8x2, _mm256_loadu_si256((const __m256i *)scale_pair_ctrl[j]));
}

/* sum_g scales[g] * bsums[g] over the 16 groups of a Q8_K block. */
static inline int scaled_bsums16(const int16_t *bsums, const int8_t *scales)
{
    const __m256i bs = _mm256_loadu_si256((const __m256i *)bsums);
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)scales));
    return hsum_epi32(_mm256_madd_epi16(bs, sc));
}

/* sum over 8 sub-blocks of mins[j] * (bsums[2j] + bsums[2j+1]) */
static inline int k4_min_term(const int16_t *bsums, const uint8_t *mins)
{
    const __m128i lo = _mm_loadu_si128((const __m128i *)bsums);
    const __m128i hi = _mm_loadu_si128((const __m128i *)(bsums + 8));
    const __m128i pairs = _mm_hadd_epi16(lo, hi);
    const __m128i m = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mins));
    __m128i s = _mm_madd_epi16(pairs, m);
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static float dot_q4_K(int64_t n, const void *w, const void *a)
{
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float acc_m = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sm[16];
        kinfer_k4_unpack_scales(x[b].scales, sm);
        const float d = y[b].d * fp16(x[b].d);
        acc_m += y[b].d * fp16(x[b].dmin) * (float)k4_min_term(y[b].bsums, sm + 8);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * c));
            const __m256i lo = _mm256_and_si256(q4, mask);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), mask);
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y[b].qs + 64 * c));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y[b].qs + 64 * c + 32));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16(sm[2 * c]));
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16(sm[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc) - acc_m;
}

static float dot_q5_K(int64_t n, const void *w, const void *a)
{
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float acc_m = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sm[16];
        kinfer_k4_unpack_scales(x[b].scales, sm);
        const float d = y[b].d * fp16(x[b].d);
        acc_m += y[b].d * fp16(x[b].dmin) * (float)k4_min_term(y[b].bsums, sm + 8);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)x[b].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * c));
            /* 5th bit of sub-block j sits at bit j of qh[l]: move it to bit 4 */
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, mask), h0);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), mask), h1);
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y[b].qs + 64 * c));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y[b].qs + 64 * c + 32));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16(sm[2 * c]));
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16(sm[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc) - acc_m;
}

/*
 * Q6_K: quants are v - 32 with v in 0..63 unsigned, so
 * sum (v - 32) a = sum v a - 32 sum a, and the second sum is in bsums.
 */
static float dot_q6_K(int64_t n, const void *w, const void *a)
{
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t *sc = x[b].scales;
        const int offset = 32 * scaled_bsums16(y[b].bsums, sc);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * h));
            const __m256i v[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, mask), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4)),
                _mm256_or_si256(_mm256_and_si256(l1, mask),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), mask),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), mask),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4)),
            };
            const __m256i s8 = scales_half(sc, h);
            for (int j = 0; j < 4; j++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[b].qs + 128 * h + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(v[j], yv), scale_pair(s8, j)));
            }
        }
        const float d = y[b].d * fp16(x[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d),
                              _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, _mm256_setr_epi32(offset, 0, 0, 0, 0, 0, 0, 0))),
                              acc);
    }
    return hsum_ps(acc);
}

/* The 16 signed 6-bit scales of a Q3_K block, four at a time in 32-bit
 * words (same result as kinfer_q3k_scales). */
static inline void q3k_scales_fast(const uint8_t *packed, int8_t *out)
{
    uint32_t a0, a1, hb, w[4];
    memcpy(&a0, packed, 4);
    memcpy(&a1, packed + 4, 4);
    memcpy(&hb, packed + 8, 4);
    const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    w[0] = (a0 & m4) | ((hb & m2) << 4);
    w[1] = (a1 & m4) | (((hb >> 2) & m2) << 4);
    w[2] = ((a0 >> 4) & m4) | (((hb >> 4) & m2) << 4);
    w[3] = ((a1 >> 4) & m4) | (((hb >> 6) & m2) << 4);
    const __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)w), _mm_set1_epi8(32));
    _mm_storeu_si128((__m128i *)out, v);
}

/* Q3_K: v = low 2 bits | high bit << 2 in 0..7, quant = v - 4. */
static float dot_q3_K(int64_t n, const void *w, const void *a)
{
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        int8_t sc[16];
        q3k_scales_fast(x[b].scales, sc);
        const int offset = 4 * scaled_bsums16(y[b].bsums, sc);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[b].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qs = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * h));
            const __m256i s8 = scales_half(sc, h);
            for (int j = 0; j < 4; j++) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
                const __m256i v = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[b].qs + 128 * h + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(v, yv), scale_pair(s8, j)));
            }
        }
        const float d = y[b].d * fp16(x[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_sub_ps(acc, _mm256_setr_ps(d * (float)offset, 0, 0, 0, 0, 0, 0, 0));
    }
    return hsum_ps(acc);
}

static float dot_q2_K(int64_t n, const void *w, const void *a)
{
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float acc_m = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int8_t sc[16], mn[16];
        const __m128i raw = _mm_loadu_si128((const __m128i *)x[b].scales);
        _mm_storeu_si128((__m128i *)sc, _mm_and_si128(raw, _mm_set1_epi8(0x0F)));
        _mm_storeu_si128((__m128i *)mn, _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
        acc_m += y[b].d * fp16(x[b].dmin) * (float)scaled_bsums16(y[b].bsums, mn);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qs = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * h));
            const __m256i s8 = scales_half(sc, h);
            for (int j = 0; j < 4; j++) {
                const __m256i v = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[b].qs + 128 * h + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(v, yv), scale_pair(s8, j)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * fp16(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc) - acc_m;
}

static float dot_iq4_xs(int64_t n, const void *w, const void *a)
{
    const block_iq4_xs *x = w;
    const block_q8_K *y = a;
    const __m256i lut = iq4_lut();
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const __m256i q = _mm256_shuffle_epi8(lut, nibbles_32(x[b].qs + 16 * ib));
            const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[b].qs + 32 * ib));
            const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(yv, q));
            const int ls = kinfer_iq4xs_scale(&x[b], ib);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16((short)ls)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * fp16(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

void kinfer_avx2_fill_types(kinfer_cpu_table *table)
{
    kinfer_cpu_kernels *t = table->types;
    t[KINFER_TYPE_F32].vec_dot = dot_f32;
    t[KINFER_TYPE_F16].vec_dot = dot_f16;
    t[KINFER_TYPE_F16].to_float = f16_to_float;
    t[KINFER_TYPE_F16].from_float = f16_from_float;
    t[KINFER_TYPE_F16].from_float_act = f16_from_float;
    t[KINFER_TYPE_BF16].vec_dot = dot_bf16;
    t[KINFER_TYPE_BF16].to_float = bf16_to_float;
    t[KINFER_TYPE_Q8_0].from_float = quantize_q8_0;
    t[KINFER_TYPE_Q8_1].from_float = quantize_q8_1;
    t[KINFER_TYPE_Q8_0].from_float_act = quantize_q8_0_act;
    t[KINFER_TYPE_Q8_1].from_float_act = quantize_q8_1_act;
    t[KINFER_TYPE_Q8_K].from_float = quantize_q8_K;
    t[KINFER_TYPE_Q8_K].from_float_act = quantize_q8_K;
    t[KINFER_TYPE_Q4_0].vec_dot = dot_q4_0;
    t[KINFER_TYPE_Q4_1].vec_dot = dot_q4_1;
    t[KINFER_TYPE_Q5_0].vec_dot = dot_q5_0;
    t[KINFER_TYPE_Q5_1].vec_dot = dot_q5_1;
    t[KINFER_TYPE_Q8_0].vec_dot = dot_q8_0;
    t[KINFER_TYPE_IQ4_NL].vec_dot = dot_iq4_nl;
    t[KINFER_TYPE_Q2_K].vec_dot = dot_q2_K;
    t[KINFER_TYPE_Q3_K].vec_dot = dot_q3_K;
    t[KINFER_TYPE_Q4_K].vec_dot = dot_q4_K;
    t[KINFER_TYPE_Q5_K].vec_dot = dot_q5_K;
    t[KINFER_TYPE_Q6_K].vec_dot = dot_q6_K;
    t[KINFER_TYPE_IQ4_XS].vec_dot = dot_iq4_xs;
}
