/*
 * kernels_avx512.c — AVX-512 (F/BW/VL/DQ) + VNNI dot products for the
 * weight types that carry most models: Q4_0, Q4_1, Q5_0, Q8_0, IQ4_NL,
 * Q4_K, Q5_K, Q6_K.  Everything else keeps its AVX2 kernel.
 *
 * 32-element block types do two blocks per 512-bit register with vpdpbusd
 * (u8 x s8 -> i32).  It needs the unsigned operand first, so 4-bit weights
 * stay unsigned (0..15) and their offset is taken off with a second dpbusd
 * of the offset against the activations.
 */
#include <immintrin.h>

#include "cpu/ref.h"
#include "cpu/simd.h"

static inline float fp16(kinfer_fp16 h)
{
    return _cvtsh_ss(h);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles first, then high ones. */
static inline __m256i nibbles_32(const uint8_t *qs)
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

static inline __m512i join256(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

static inline __m512i load2x32(const int8_t *p0, const int8_t *p1)
{
    return join256(_mm256_loadu_si256((const __m256i *)p0), _mm256_loadu_si256((const __m256i *)p1));
}

/* per-lane block scales: lanes 0..7 get s0, 8..15 get s1 */
static inline __m512 scales2(float s0, float s1)
{
    return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}

/* 32 bits -> mask of 32 bytes */
static inline __mmask32 qh_mask(const uint8_t *p)
{
    uint32_t bits;
    memcpy(&bits, p, 4);
    return (__mmask32)bits;
}

static float dot_q8_0(int64_t n, const void *w, const void *a)
{
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    const int64_t nb = n / QK8_0;
    /* x is signed: add 128 to make it unsigned, then subtract 128 * sum(y) */
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m512i xv = _mm512_xor_si512(load2x32(x[b].qs, x[b + 1].qs), bias);
        const __m512i yv = load2x32(y[b].qs, y[b + 1].qs);
        const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xv, yv),
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, yv));
        acc = _mm512_fmadd_ps(scales2(fp16(x[b].d) * fp16(y[b].d), fp16(x[b + 1].d) * fp16(y[b + 1].d)),
                              _mm512_cvtepi32_ps(s), acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; b < nb; b++) {
        const __m256i xv = _mm256_loadu_si256((const __m256i *)x[b].qs);
        const __m256i yv = _mm256_loadu_si256((const __m256i *)y[b].qs);
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(yv, xv)),
                                            _mm256_set1_epi16(1));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
        sum += (float)_mm_cvtsi128_si32(s) * (fp16(x[b].d) * fp16(y[b].d));
    }
    return sum;
}

/* Shared loop of the types whose 32 weights decode to unsigned bytes u
 * with value (u - off) * d: sum = d dy (dpbusd(u, y) - dpbusd(off, y)). */
#define BLOCK32_OFFSET_LOOP(BLOCK_T, DECODE, OFF)                                               \
    const BLOCK_T *x = w;                                                                       \
    const block_q8_0 *y = a;                                                                    \
    const int64_t nb = n / 32;                                                                  \
    const __m512i off = _mm512_set1_epi8(OFF);                                                  \
    __m512 acc = _mm512_setzero_ps();                                                           \
    int64_t b = 0;                                                                              \
    for (; b + 2 <= nb; b += 2) {                                                               \
        const __m512i xv = join256(DECODE(x[b]), DECODE(x[b + 1]));                             \
        const __m512i yv = load2x32(y[b].qs, y[b + 1].qs);                                      \
        const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xv, yv), \
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, yv)); \
        acc = _mm512_fmadd_ps(scales2(fp16(x[b].d) * fp16(y[b].d),                              \
                                      fp16(x[b + 1].d) * fp16(y[b + 1].d)),                     \
                              _mm512_cvtepi32_ps(s), acc);                                      \
    }                                                                                           \
    float sum = _mm512_reduce_add_ps(acc);                                                      \
    for (; b < nb; b++) {                                                                       \
        const __m256i xv = DECODE(x[b]);                                                        \
        const __m256i yv = _mm256_loadu_si256((const __m256i *)y[b].qs);                        \
        const __m256i s = _mm256_sub_epi32(                                                     \
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), xv, yv),                                \
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm512_castsi512_si256(off), yv));      \
        const __m256 f = _mm256_cvtepi32_ps(s);                                                 \
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));          \
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));                                                 \
        h = _mm_add_ss(h, _mm_movehdup_ps(h));                                                  \
        sum += _mm_cvtss_f32(h) * (fp16(x[b].d) * fp16(y[b].d));                                \
    }                                                                                           \
    return sum;

#define DECODE_Q4_0(blk) nibbles_32((blk).qs)
static float dot_q4_0(int64_t n, const void *w, const void *a)
{
    BLOCK32_OFFSET_LOOP(block_q4_0, DECODE_Q4_0, 8)
}

/* Q5_0: nibble | 5th bit << 4, offset 16 */
static inline __m256i decode_q5_0(const block_q5_0 *blk)
{
    const __m256i hi = _mm256_maskz_mov_epi8(qh_mask(blk->qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles_32(blk->qs), hi);
}
#define DECODE_Q5_0(blk) decode_q5_0(&(blk))
static float dot_q5_0(int64_t n, const void *w, const void *a)
{
    BLOCK32_OFFSET_LOOP(block_q5_0, DECODE_Q5_0, 16)
}

/* IQ4_NL: table values + 128 are unsigned; offset 128 */
static inline __m256i decode_iq4nl(const uint8_t *qs)
{
    const __m128i t = _mm_xor_si128(_mm_loadu_si128((const __m128i *)kinfer_iq4nl_values),
                                    _mm_set1_epi8((char)0x80));
    return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), nibbles_32(qs));
}
#define DECODE_IQ4_NL(blk) decode_iq4nl((blk).qs)
static float dot_iq4_nl(int64_t n, const void *w, const void *a)
{
    BLOCK32_OFFSET_LOOP(block_iq4_nl, DECODE_IQ4_NL, (char)0x80)
}

static float dot_q4_1(int64_t n, const void *w, const void *a)
{
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    const int64_t nb = n / QK4_1;
    __m512 acc = _mm512_setzero_ps();
    float summs = 0.0f;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m512i xv = join256(nibbles_32(x[b].qs), nibbles_32(x[b + 1].qs));
        const __m512i yv = load2x32(y[b].qs, y[b + 1].qs);
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), xv, yv);
        acc = _mm512_fmadd_ps(scales2(fp16(x[b].d) * fp16(y[b].d), fp16(x[b + 1].d) * fp16(y[b + 1].d)),
                              _mm512_cvtepi32_ps(s), acc);
        summs += fp16(x[b].m) * fp16(y[b].s) + fp16(x[b + 1].m) * fp16(y[b + 1].s);
    }
    float sum = _mm512_reduce_add_ps(acc) + summs;
    for (; b < nb; b++) {
        const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_32(x[b].qs),
                                              _mm256_loadu_si256((const __m256i *)y[b].qs));
        int lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, s);
        int si = 0;
        for (int k = 0; k < 8; k++)
            si += lanes[k];
        sum += (float)si * (fp16(x[b].d) * fp16(y[b].d)) + fp16(x[b].m) * fp16(y[b].s);
    }
    return sum;
}

/* ---------------------------------------------------------- K-quants */

static inline void k4_unpack_scales(const uint8_t *packed, uint8_t *out16)
{
    uint32_t u[4];
    memcpy(u, packed, 12);
    const uint32_t m0_3 = u[1] & 0x3f3f3f3fu;
    u[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    u[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    u[2] = m0_3;
    u[0] &= 0x3f3f3f3fu;
    memcpy(out16, u, 16);
}

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

/* i16 lanes 0..15 = s0, 16..31 = s1 */
static inline __m512i scales16x2(int s0, int s1)
{
    return join256(_mm256_set1_epi16((short)s0), _mm256_set1_epi16((short)s1));
}

static float dot_q4_K(int64_t n, const void *w, const void *a)
{
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask = _mm256_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float acc_m = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sm[16];
        k4_unpack_scales(x[b].scales, sm);
        acc_m += y[b].d * fp16(x[b].dmin) * (float)k4_min_term(y[b].bsums, sm + 8);
        __m512i sumi = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * c));
            const __m512i v = join256(_mm256_and_si256(q4, mask),
                                      _mm256_and_si256(_mm256_srli_epi16(q4, 4), mask));
            const __m512i yv = _mm512_loadu_si512((const void *)(y[b].qs + 64 * c));
            const __m512i p = _mm512_maddubs_epi16(v, yv);
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p, scales16x2(sm[2 * c], sm[2 * c + 1])));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[b].d * fp16(x[b].d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc) - acc_m;
}

static float dot_q5_K(int64_t n, const void *w, const void *a)
{
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m512 acc = _mm512_setzero_ps();
    float acc_m = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sm[16];
        k4_unpack_scales(x[b].scales, sm);
        acc_m += y[b].d * fp16(x[b].dmin) * (float)k4_min_term(y[b].bsums, sm + 8);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)x[b].qh);
        __m512i sumi = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * c));
            const __mmask32 h0 = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << (2 * c))));
            const __mmask32 h1 = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(2 << (2 * c))));
            const __m256i lq = _mm256_and_si256(q4, mask);
            const __m256i hq = _mm256_and_si256(_mm256_srli_epi16(q4, 4), mask);
            /* adding 16 to a nibble sets its bit 4 */
            const __m256i lo = _mm256_mask_add_epi8(lq, h0, lq, bit4);
            const __m256i hi = _mm256_mask_add_epi8(hq, h1, hq, bit4);
            const __m512i yv = _mm512_loadu_si512((const void *)(y[b].qs + 64 * c));
            const __m512i p = _mm512_maddubs_epi16(join256(lo, hi), yv);
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p, scales16x2(sm[2 * c], sm[2 * c + 1])));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[b].d * fp16(x[b].d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc) - acc_m;
}

/* Q6_K: v in 0..63 unsigned, quant = v - 32; the -32 sum a comes from
 * the activation's bsums. */
static float dot_q6_K(int64_t n, const void *w, const void *a)
{
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(3);
    /* i16 lane l of the maddubs result covers elements 2l, 2l+1: group l/8 */
    const __m512i idx0 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2,
                                          1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[b].bsums);
        const __m256i off = _mm256_madd_epi16(bs, sc16);
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * h));
            const __m256i v0 = _mm256_or_si256(_mm256_and_si256(l0, mask),
                                               _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            const __m256i v1 = _mm256_or_si256(_mm256_and_si256(l1, mask),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            const __m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), mask),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            const __m256i v3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), mask),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            const __m512i y01 = _mm512_loadu_si512((const void *)(y[b].qs + 128 * h));
            const __m512i y23 = _mm512_loadu_si512((const void *)(y[b].qs + 128 * h + 64));
            const __m512i s01 = _mm512_permutexvar_epi16(_mm512_add_epi16(idx0, _mm512_set1_epi16((short)(8 * h))), sc);
            const __m512i s23 = _mm512_permutexvar_epi16(_mm512_add_epi16(idx0, _mm512_set1_epi16((short)(8 * h + 4))), sc);
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(join256(v0, v1), y01), s01));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(join256(v2, v3), y23), s23));
        }
        sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[b].d * fp16(x[b].d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

void kinfer_avx512_fill(kinfer_cpu_kernels *t)
{
    t[KINFER_TYPE_Q4_0].vec_dot = dot_q4_0;
    t[KINFER_TYPE_Q4_1].vec_dot = dot_q4_1;
    t[KINFER_TYPE_Q5_0].vec_dot = dot_q5_0;
    t[KINFER_TYPE_Q8_0].vec_dot = dot_q8_0;
    t[KINFER_TYPE_IQ4_NL].vec_dot = dot_iq4_nl;
    t[KINFER_TYPE_Q4_K].vec_dot = dot_q4_K;
    t[KINFER_TYPE_Q5_K].vec_dot = dot_q5_K;
    t[KINFER_TYPE_Q6_K].vec_dot = dot_q6_K;
}
