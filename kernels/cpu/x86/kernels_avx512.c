/*
 * kernels_avx512.c — AVX-512 (F/BW/VL/DQ) + VNNI dot products for the
 * weight types that carry most models: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * IQ4_NL, Q4_K, Q5_K, Q6_K, IQ4_XS and the float types.  Q2_K and Q3_K keep
 * their AVX2 kernels.
 *
 * Each type has one body, dot_<type>_n(), that dots a weight row with nt
 * activation rows (nt = 1 for decode, 4 for prompt batches).  The weight
 * row is decoded once per block and reused for every activation row, and
 * each activation row is accumulated in exactly the order the nt = 1 case
 * uses, so batched and single-token results are bit for bit the same --
 * except Q4_K, whose four-token kernel takes llama.cpp's order for a group
 * of four tokens, not its single-token one (quant_avx512.h).  Q4_0
 * matrices that llama.cpp repacks have kernels of their own in its
 * repacked order (kinfer_cpu_kernels.repacked).
 *
 * 32-element block types use vpdpbusd (u8 x s8 -> i32) in ggml's float
 * order (see dot_seq_n).  It needs the unsigned operand first, so weights
 * are decoded to unsigned bytes u with value u - off, and off * sum(a) is
 * taken off with a second vpdpbusd.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "cpu/ref.h"
#include "cpu/isa.h"
#include "cpu/x86/quant_avx512.h"

#define MAX_NT 4

static inline __m512i load2x32(const int8_t *p0, const int8_t *p1)
{
    return join256(_mm256_loadu_si256((const __m256i *)p0), _mm256_loadu_si256((const __m256i *)p1));
}

/* ------------------------------------------------- 32-element blocks */

/* Weight blocks starting with their fp16 scale, decoded to unsigned bytes
 * u with value u - off; or (min_layout) Q4_1/Q5_1 blocks: d at 0, m at 2,
 * quants at qs_off, high bits at qh_off (< 0: none), against Q8_1 rows. */
static ALWAYS_INLINE void dot_seq_n(int64_t n, const void *w, size_t bsize, decode_fn decode, int off_byte,
                                    int min_layout, size_t qs_off, int qh_off, const void *a, size_t stride,
                                    int nt, float *out)
{
    const uint8_t *x = w;
    const int64_t nb = n / 32;
    const size_t ybytes = min_layout ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const __m512i off = _mm512_set1_epi8((char)off_byte);
    __m512 acc[MAX_NT / 2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    __m256 acc1 = _mm256_setzero_ps();
    float summs[MAX_NT] = {0};
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *xb = x + (size_t)b * bsize;
        const __m256i xv = decode_block32(xb, decode, min_layout, qs_off, qh_off);
        kinfer_fp16 hd, hm;
        memcpy(&hd, xb, 2);
        const float dx = fp16(hd), mx = min_layout ? (memcpy(&hm, xb + 2, 2), fp16(hm)) : 0.0f;
        if (nt == 1) {
            const uint8_t *yb = (const uint8_t *)a + (size_t)b * ybytes;
            kinfer_fp16 yd;
            memcpy(&yd, yb, 2);
            const __m256i yv = _mm256_loadu_si256((const __m256i *)(yb + ybytes - 32));
            __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), xv, yv);
            if (!min_layout)
                s = _mm256_sub_epi32(s, _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm512_castsi512_si256(off), yv));
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(dx * fp16(yd)), _mm256_cvtepi32_ps(s), acc1);
            if (min_layout) {
                kinfer_fp16 ys;
                memcpy(&ys, yb + 2, 2);
                summs[0] += mx * fp16(ys);
            }
            continue;
        }
        const __m512i x2 = _mm512_broadcast_i64x4(xv);
        for (int p = 0; p < nt / 2; p++) {
            const uint8_t *y0 = (const uint8_t *)a + (size_t)(2 * p) * stride + (size_t)b * ybytes;
            const uint8_t *y1 = y0 + stride;
            kinfer_fp16 d0, d1;
            memcpy(&d0, y0, 2);
            memcpy(&d1, y1, 2);
            const __m512i yv = load2x32((const int8_t *)(y0 + ybytes - 32), (const int8_t *)(y1 + ybytes - 32));
            __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), x2, yv);
            if (!min_layout)
                s = _mm512_sub_epi32(s, _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, yv));
            const __m512 d = _mm512_insertf32x8(_mm512_set1_ps(dx * fp16(d0)), _mm256_set1_ps(dx * fp16(d1)), 1);
            acc[p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc[p]);
            if (min_layout) {
                kinfer_fp16 s0, s1;
                memcpy(&s0, y0 + 2, 2);
                memcpy(&s1, y1 + 2, 2);
                summs[2 * p] += mx * fp16(s0);
                summs[2 * p + 1] += mx * fp16(s1);
            }
        }
    }
    if (nt == 1) {
        out[0] = hsum8(acc1) + summs[0];
        return;
    }
    for (int p = 0; p < nt / 2; p++) {
        out[2 * p] = hsum8(_mm512_castps512_ps256(acc[p])) + summs[2 * p];
        out[2 * p + 1] = hsum8(_mm512_extractf32x8_ps(acc[p], 1)) + summs[2 * p + 1];
    }
}

/* Four weight rows against one activation row, each exactly as dot_seq_n
 * with nt = 1 (one 8-lane chain per row; four chains side by side). */
static ALWAYS_INLINE void dot_seq_r4(int64_t n, const void *w, size_t w_stride, size_t bsize,
                                     decode_fn decode, int off_byte, int min_layout, size_t qs_off,
                                     int qh_off, const void *a, float *out)
{
    const int64_t nb = n / 32;
    const size_t ybytes = min_layout ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const __m256i off = _mm256_set1_epi8((char)off_byte);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float summs[4] = {0};
    /* four short streams are too short for the hardware prefetcher: fetch
     * the rows two calls ahead (matmul walks rows in order), a block of
     * each per step, spread over the loop.  A burst of all their lines
     * before the loop (as this did before) left the speed to where the
     * linker happened to put the loop: Q5_0 from DRAM ran at 11.5 to 14.5
     * GB/s by the function's address mod 64, 15 to 16 GB/s this way. */
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *yb = (const uint8_t *)a + (size_t)b * ybytes;
        for (int i = 0; i < 4; i++)
            _mm_prefetch((const char *)w + (size_t)(8 + i) * w_stride + (size_t)b * bsize, _MM_HINT_T0);
        kinfer_fp16 yd, ys;
        memcpy(&yd, yb, 2);
        memcpy(&ys, yb + 2, 2);
        const float dy = fp16(yd), sy = min_layout ? fp16(ys) : 0.0f;
        const __m256i yv = _mm256_loadu_si256((const __m256i *)(yb + ybytes - 32));
        const __m256i oy = min_layout ? _mm256_setzero_si256()
                                      : _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, yv);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const uint8_t *xb = (const uint8_t *)w + (size_t)i * w_stride + (size_t)b * bsize;
            const __m256i xv = decode_block32(xb, decode, min_layout, qs_off, qh_off);
            kinfer_fp16 hd, hm;
            memcpy(&hd, xb, 2);
            const __m256i s = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), xv, yv), oy);
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(fp16(hd) * dy), _mm256_cvtepi32_ps(s), acc[i]);
            if (min_layout) {
                memcpy(&hm, xb + 2, 2);
                summs[i] += fp16(hm) * sy;
            }
        }
    }
    for (int i = 0; i < 4; i++) out[i] = hsum8(acc[i]) + summs[i];
}

#define DEFINE_BLOCK32(name, block_t, off)                                                          \
    static float dot_##name(int64_t n, const void *w, const void *a)                      \
    {                                                                                           \
        float r;                                                                                \
        dot_seq_n(n, w, sizeof(block_t), decode_##name, off, 0, 0, -1, a, 0, 1, &r);            \
        return r;                                                                               \
    }                                                                                           \
    static void dot_##name##_x4(int64_t n, const void *w, const void *a, size_t stride, float *out) \
    {                                                                                           \
        dot_seq_n(n, w, sizeof(block_t), decode_##name, off, 0, 0, -1, a, stride, 4, out);      \
    }                                                                                           \
    static void dot_##name##_r4(int64_t n, const void *w, size_t ws, const void *a, float *out) \
    {                                                                                           \
        dot_seq_r4(n, w, ws, sizeof(block_t), decode_##name, off, 0, 0, -1, a, out);            \
    }
DEFINE_BLOCK32(q4_0, block_q4_0, 8)
DEFINE_BLOCK32(q5_0, block_q5_0, 16)
DEFINE_BLOCK32(q8_0, block_q8_0, 0x80)
DEFINE_BLOCK32(iq4_nl, block_iq4_nl, 0x80)

static float dot_q4_1(int64_t n, const void *w, const void *a)
{
    float r;
    dot_seq_n(n, w, sizeof(block_q4_1), NULL, 0, 1, offsetof(block_q4_1, qs), -1, a, 0, 1, &r);
    return r;
}
static void dot_q4_1_x4(int64_t n, const void *w, const void *a, size_t stride, float *out)
{
    dot_seq_n(n, w, sizeof(block_q4_1), NULL, 0, 1, offsetof(block_q4_1, qs), -1, a, stride, 4, out);
}
static void dot_q4_1_r4(int64_t n, const void *w, size_t ws, const void *a, float *out)
{
    dot_seq_r4(n, w, ws, sizeof(block_q4_1), NULL, 0, 1, offsetof(block_q4_1, qs), -1, a, out);
}
static void dot_q5_1_r4(int64_t n, const void *w, size_t ws, const void *a, float *out)
{
    dot_seq_r4(n, w, ws, sizeof(block_q5_1), NULL, 0, 1, offsetof(block_q5_1, qs), (int)offsetof(block_q5_1, qh),
               a, out);
}
static float dot_q5_1(int64_t n, const void *w, const void *a)
{
    float r;
    dot_seq_n(n, w, sizeof(block_q5_1), NULL, 0, 1, offsetof(block_q5_1, qs), (int)offsetof(block_q5_1, qh),
              a, 0, 1, &r);
    return r;
}
static void dot_q5_1_x4(int64_t n, const void *w, const void *a, size_t stride, float *out)
{
    dot_seq_n(n, w, sizeof(block_q5_1), NULL, 0, 1, offsetof(block_q5_1, qs), (int)offsetof(block_q5_1, qh),
              a, stride, 4, out);
}

/* Q4_0 weight matrices of a multiple of 8 rows, in llama.cpp's repacked
 * order (quant_avx512.h): each block's exact integer, then one fma. */
static float dot_q4_0_repacked(int64_t n, const void *w, const void *a)
{
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    const __m256i zero = _mm256_setzero_si256(), off = _mm256_set1_epi8(8);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        const __m256i yv = _mm256_loadu_si256((const __m256i *)y[b].qs);
        const __m256i s = _mm256_sub_epi32(_mm256_dpbusd_epi32(zero, decode_q4_0(&x[b]), yv),
                                           _mm256_dpbusd_epi32(zero, off, yv));
        acc = fma_ss((float)_mm512_reduce_add_epi32(_mm512_zextsi256_si512(s)), fp16(x[b].d) * fp16(y[b].d), acc);
    }
    return acc;
}

/* s[i]: weight row i's 8 i32 lanes of one block (low half) and of the next
 * (high half) -> lane i of sums[0]: row i's integer of the first block,
 * of sums[1]: of the second (exact). */
static inline void block_sums_r4(const __m512i s[4], __m128i sums[2])
{
    /* per 128-bit chunk of lanes a..d: rows 0, 1 (a + c), rows 0, 1 (b + d) */
    const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(s[0], s[1]), _mm512_unpackhi_epi32(s[0], s[1]));
    const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(s[2], s[3]), _mm512_unpackhi_epi32(s[2], s[3]));
    /* per chunk: rows 0..3, then chunks 0 + 1 and 2 + 3 */
    __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
    t = _mm512_add_epi32(t, _mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
    sums[0] = _mm512_castsi512_si128(t);
    sums[1] = _mm512_extracti32x4_epi32(t, 2);
}

/* Blocks b and (two) b + 1 of four rows against one token, each row's
 * fma chain in a lane of acc (dot_q4_0_repacked_r4). */
static ALWAYS_INLINE __m128 q4_0_repacked_step_r4(__m128 acc, const uint8_t *w, size_t ws, const block_q8_0 *y,
                                                  int64_t b, bool two)
{
    const __m512i zero = _mm512_setzero_si512();
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)y[b].qs);
    const __m512i yv = two ? join256(y0, _mm256_loadu_si256((const __m256i *)y[b + 1].qs)) : _mm512_zextsi256_si512(y0);
    const __m512i oy = _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(8), yv);
    __m512i s[4];
    kinfer_fp16 hd[8] = {0};
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const block_q4_0 *x = (const block_q4_0 *)(w + (size_t)i * ws) + b;
        const __m256i x0 = decode_q4_0(x);
        const __m512i xv = two ? join256(x0, decode_q4_0(x + 1)) : _mm512_zextsi256_si512(x0);
        s[i] = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, xv, yv), oy);
        hd[i] = x->d;
        if (two)
            hd[4 + i] = x[1].d;
    }
    /* the rows' d of block b (low half) and b + 1 (high half) */
    const __m256 xd = _mm256_cvtph_ps(_mm_setr_epi16((short)hd[0], (short)hd[1], (short)hd[2], (short)hd[3],
                                                     (short)hd[4], (short)hd[5], (short)hd[6], (short)hd[7]));
    __m128i I[2];
    block_sums_r4(s, I);
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(I[0]), _mm_mul_ps(_mm256_castps256_ps128(xd), _mm_set1_ps(fp16(y[b].d))), acc);
    if (two)
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(I[1]), _mm_mul_ps(_mm256_extractf128_ps(xd, 1), _mm_set1_ps(fp16(y[b + 1].d))),
                           acc);
    return acc;
}

/* Four rows against one token, each exactly as dot_q4_0_repacked: two
 * blocks per 512-bit vector, the rows' fma chains in the lanes. */
static void dot_q4_0_repacked_r4(int64_t n, const void *w, size_t ws, const void *a, float *out)
{
    const int64_t nb = n / 32;
    __m128 acc = _mm_setzero_ps();
    /* as dot_seq_r4: fetch the rows two calls ahead */
    for (size_t o = 0; o < 4 * ws; o += 64)
        _mm_prefetch((const char *)w + 8 * ws + o, _MM_HINT_T0);
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2)
        acc = q4_0_repacked_step_r4(acc, w, ws, a, b, true);
    if (b < nb)
        acc = q4_0_repacked_step_r4(acc, w, ws, a, b, false);
    _mm_storeu_ps(out, acc);
}

/* sum over 8 sub-blocks of mins[j] * (bsums[2j] + bsums[2j+1]) */
static inline int k4_min_term(const int16_t *bsums, __m128i mins16)
{
    const __m128i lo = _mm_loadu_si128((const __m128i *)bsums);
    const __m128i hi = _mm_loadu_si128((const __m128i *)(bsums + 8));
    __m128i s = _mm_madd_epi16(_mm_hadd_epi16(lo, hi), mins16);
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* acc + madd(maddubs(v[c], y), sc[c]) of a decoded K4 block (k4_decode)
 * against the activation bytes q8, in one vpdpwssd (int sums are exact) */
static ALWAYS_INLINE __m512i k4_pair_lanes(__m512i acc, const __m512i *v, const __m512i *sc, const int8_t *q8, int c)
{
    return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v[c], _mm512_loadu_si512((const void *)(q8 + 64 * c))),
                               sc[c]);
}

/* Q4_K for one token, in llama.cpp's gemv order (quant_avx512.h). */
static float dot_q4_K(int64_t n, const void *w, const void *a)
{
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m512i v[4], sc[4];
        __m128i mins16;
        k4_decode(&x[b], 0, v, sc, &mins16);
        __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            sumi = k4_pair_lanes(sumi, v, sc, y[b].qs, c);
        acc = fma_ss((float)_mm512_reduce_add_epi32(sumi), fp16(x[b].d) * y[b].d, acc);
        accm = fma_ss((float)k4_min_term(y[b].bsums, mins16), fp16(x[b].dmin) * y[b].d, accm);
    }
    return acc - accm;
}

/* Four Q4_K rows against one token, each exactly as dot_q4_K: the rows'
 * block integers reduced together, their fma chains in the lanes. */
static void dot_q4_K_r4(int64_t n, const void *w, size_t ws, const void *a, float *out)
{
    const block_q8_K *y = a;
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    /* as dot_seq_r4: fetch the rows two calls ahead */
    for (size_t o = 0; o < 4 * ws; o += 64)
        _mm_prefetch((const char *)w + 8 * ws + o, _MM_HINT_T0);
    for (int64_t b = 0; b < n / QK_K; b++) {
        const __m128i pair = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y[b].bsums),
                                            _mm_loadu_si128((const __m128i *)(y[b].bsums + 8)));
        __m512i s[4];
        __m128i m[4];
        float xd[4], xm[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const block_q4_K *x = (const block_q4_K *)((const uint8_t *)w + (size_t)i * ws) + b;
            __m512i v[4], sc[4];
            __m128i mins16;
            k4_decode(x, 0, v, sc, &mins16);
            s[i] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                s[i] = k4_pair_lanes(s[i], v, sc, y[b].qs, c);
            m[i] = _mm_madd_epi16(pair, mins16);
            xd[i] = fp16(x->d);
            xm[i] = fp16(x->dmin);
        }
        const __m128i M = _mm_hadd_epi32(_mm_hadd_epi32(m[0], m[1]), _mm_hadd_epi32(m[2], m[3]));
        const __m128 vyd = _mm_set1_ps(y[b].d);
        const __m128i I = hsum4_epi32(s[0], s[1], s[2], s[3]);
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(I), _mm_mul_ps(_mm_loadu_ps(xd), vyd), acc);
        accm = _mm_fmadd_ps(_mm_cvtepi32_ps(M), _mm_mul_ps(_mm_loadu_ps(xm), vyd), accm);
    }
    _mm_storeu_ps(out, _mm_sub_ps(acc, accm));
}

/* Q4_K for a group of four tokens, in llama.cpp's gemm order: one fma per
 * pair of sub-blocks, the four tokens in the lanes of a vector. */
static void dot_q4_K_x4(int64_t n, const void *w, const void *a, size_t stride, float *out)
{
    const block_q4_K *x = w;
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m512i v[4], sc[4];
        __m128i mins16;
        k4_decode(&x[b], 0, v, sc, &mins16);
        __m512i p[4][4];
        __m128i m[4];
        float yd[4];
        for (int t = 0; t < 4; t++) {
            const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)t * stride) + b;
            for (int c = 0; c < 4; c++)
                p[c][t] = k4_pair_lanes(_mm512_setzero_si512(), v, sc, y->qs, c);
            const __m128i pair = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y->bsums),
                                                _mm_loadu_si128((const __m128i *)(y->bsums + 8)));
            m[t] = _mm_madd_epi16(pair, mins16); /* lane c: M_bc */
            yd[t] = y->d;
        }
        __m128i mc[4];
        transpose4_epi32(m[0], m[1], m[2], m[3], mc);
        const __m128 vyd = _mm_loadu_ps(yd);
        const __m128 dd = _mm_mul_ps(_mm_set1_ps(fp16(x[b].d)), vyd);
        const __m128 dm = _mm_mul_ps(_mm_set1_ps(fp16(x[b].dmin)), vyd);
        for (int c = 0; c < 4; c++) {
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum4_epi32(p[c][0], p[c][1], p[c][2], p[c][3])), dd, acc);
            accm = _mm_fmadd_ps(_mm_cvtepi32_ps(mc[c]), dm, accm);
        }
    }
    _mm_storeu_ps(out, _mm_sub_ps(acc, accm));
}

/* Q5_K in ggml_vec_dot_q5_K_q8_K's order (quant_avx512.h), nt tokens. */
static ALWAYS_INLINE void dot_q5_K_n(int64_t n, const void *w, const void *a, size_t stride, int nt, float *out)
{
    const block_q5_K *x = w;
    __m256 acc[MAX_NT];
    float summs[MAX_NT];
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        summs[t] = 0.0f;
    }
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m512i v[4], sc[4];
        __m128i mins16;
        k4_decode(&x[b], 1, v, sc, &mins16);
        const float dx = fp16(x[b].d), mx = fp16(x[b].dmin);
        for (int t = 0; t < nt; t++) {
            const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)t * stride) + b;
            __m512i sumi = _mm512_setzero_si512();
            for (int c = 0; c < 4; c++)
                sumi = k4_pair_lanes(sumi, v, sc, y->qs, c);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * dx), _mm256_cvtepi32_ps(fold512_epi32(sumi)), acc[t]);
            summs[t] = fma_ss(-y->d * mx, (float)k4_min_term(y->bsums, mins16), summs[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        out[t] = hsum8(acc[t]) + summs[t];
}

static float dot_q5_K(int64_t n, const void *w, const void *a)
{
    float r;
    dot_q5_K_n(n, w, a, 0, 1, &r);
    return r;
}

static void dot_q5_K_x4(int64_t n, const void *w, const void *a, size_t stride, float *out)
{
    dot_q5_K_n(n, w, a, stride, 4, out);
}

/* Q6_K: v in 0..63 unsigned, quant = v - 32; the -32 sum(a) comes from
 * the activation's bsums.  ggml_vec_dot_q6_K_q8_K's order
 * (quant_avx512.h). */
static ALWAYS_INLINE void dot_q6_K_n(int64_t n, const void *w, const void *a, size_t stride, int nt,
                                     float *out)
{
    const block_q6_K *x = w;
    /* i16 lane l of a maddubs result covers elements 2l, 2l+1: group l/8 */
    const __m512i idx0 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2,
                                          1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256 acc[MAX_NT];
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        __m512i sumi[MAX_NT];
        for (int t = 0; t < nt; t++)
            sumi[t] = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_K_half(&x[b], h, q);
            const __m256i v0 = q[0], v1 = q[1], v2 = q[2], v3 = q[3];
            const __m512i v01 = join256(v0, v1), v23 = join256(v2, v3);
            const __m512i s01 = _mm512_permutexvar_epi16(_mm512_add_epi16(idx0, _mm512_set1_epi16((short)(8 * h))), sc);
            const __m512i s23 = _mm512_permutexvar_epi16(_mm512_add_epi16(idx0, _mm512_set1_epi16((short)(8 * h + 4))), sc);
            for (int t = 0; t < nt; t++) {
                const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)t * stride);
                const __m512i y01 = _mm512_loadu_si512((const void *)(y[b].qs + 128 * h));
                const __m512i y23 = _mm512_loadu_si512((const void *)(y[b].qs + 128 * h + 64));
                sumi[t] = _mm512_add_epi32(sumi[t], _mm512_madd_epi16(_mm512_maddubs_epi16(v01, y01), s01));
                sumi[t] = _mm512_add_epi32(sumi[t], _mm512_madd_epi16(_mm512_maddubs_epi16(v23, y23), s23));
            }
        }
        const float d = fp16(x[b].d);
        for (int t = 0; t < nt; t++) {
            const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)t * stride);
            const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums), sc16);
            const __m256i s8 = _mm256_sub_epi32(fold512_epi32(sumi[t]), _mm256_slli_epi32(off, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * d), _mm256_cvtepi32_ps(s8), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        out[t] = hsum8(acc[t]);
}

static float dot_q6_K(int64_t n, const void *w, const void *a)
{
    float r;
    dot_q6_K_n(n, w, a, 0, 1, &r);
    return r;
}

static void dot_q6_K_x4(int64_t n, const void *w, const void *a, size_t stride, float *out)
{
    dot_q6_K_n(n, w, a, stride, 4, out);
}

/* IQ4_XS: table values + 128 as unsigned bytes against Q8_K; the +128
 * comes back out through the activation's bsums. */
static ALWAYS_INLINE void dot_iq4_xs_n(int64_t n, const void *w, const void *a, size_t stride, int nt,
                                       float *out)
{
    const block_iq4_xs *x = w;
    const __m128i t128 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)kinfer_iq4nl_values),
                                       _mm_set1_epi8((char)0x80));
    const __m512i lut = _mm512_broadcast_i32x4(t128);
    __m512 acc[MAX_NT];
    float acc_off[MAX_NT];
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm512_setzero_ps();
        acc_off[t] = 0.0f;
    }
    for (int64_t b = 0; b < n / QK_K; b++) {
        /* the 8 6-bit scales: low nibbles from scales_l, 2 high bits each
         * from scales_h, minus 32 */
        uint32_t sl;
        memcpy(&sl, x[b].scales_l, 4);
        const __m256i lo4 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)sl),
                                                               _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                             _mm256_set1_epi32(0xF));
        const __m256i hi2 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(x[b].scales_h),
                                                               _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                                             _mm256_set1_epi32(3));
        const __m256i ls8 = _mm256_sub_epi32(_mm256_or_si256(lo4, _mm256_slli_epi32(hi2, 4)),
                                             _mm256_set1_epi32(32));
        const __m128i ls16 = _mm256_cvtepi32_epi16(ls8);
        const __m512i ls32 = _mm512_zextsi256_si512(ls8);
        __m512i v[4], sc[4];
        for (int h = 0; h < 2; h++) {
            /* 64 bytes = sub-blocks 4h..4h+3, 16 bytes each; interleave the
             * low and high nibbles of each 16-byte lane into 32 bytes */
            const __m512i q = _mm512_loadu_si512((const void *)(x[b].qs + 64 * h));
            const __m512i lo = _mm512_and_si512(q, _mm512_set1_epi8(0x0F));
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), _mm512_set1_epi8(0x0F));
            const __m512i i01 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
            const __m512i i23 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
            v[2 * h] = _mm512_shuffle_epi8(lut, _mm512_permutex2var_epi64(lo, i01, hi));
            v[2 * h + 1] = _mm512_shuffle_epi8(lut, _mm512_permutex2var_epi64(lo, i23, hi));
        }
        for (int j = 0; j < 4; j++) {
            const __m512i idx = _mm512_set_epi32(2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1,
                                                 2 * j + 1, 2 * j + 1, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j,
                                                 2 * j, 2 * j);
            sc[j] = _mm512_permutexvar_epi32(idx, ls32);
        }
        const float d = fp16(x[b].d);
        for (int t = 0; t < nt; t++) {
            const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)t * stride);
            __m512i sumi = _mm512_setzero_si512();
            for (int j = 0; j < 4; j++) {
                const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[j],
                                                      _mm512_loadu_si512((const void *)(y[b].qs + 64 * j)));
                sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(p, sc[j]));
            }
            const float dd = y[b].d * d;
            acc_off[t] += dd * (float)(128 * k4_min_term(y[b].bsums, ls16));
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(dd), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        out[t] = _mm512_reduce_add_ps(acc[t]) - acc_off[t];
}

static float dot_iq4_xs(int64_t n, const void *w, const void *a)
{
    float r;
    dot_iq4_xs_n(n, w, a, 0, 1, &r);
    return r;
}

static void dot_iq4_xs_x4(int64_t n, const void *w, const void *a, size_t stride, float *out)
{
    dot_iq4_xs_n(n, w, a, stride, 4, out);
}

/* ------------------------------------------------------ float types */

/* 16 elements of a float-type row from element i (masked at the end). */
static ALWAYS_INLINE __m512 load16(int kind, const void *row, int64_t i, __mmask16 m)
{
    switch (kind) {
    case 0:
        return _mm512_maskz_loadu_ps(m, (const float *)row + i);
    case 1:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const kinfer_fp16 *)row + i));
    default: {
        const __m256i h = _mm256_maskz_loadu_epi16(m, (const kinfer_bf16 *)row + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    }
}

/* kind 0 = F32, 1 = F16, 2 = BF16; activation rows of the same type. */
static ALWAYS_INLINE void dot_float_n(int kind, int64_t n, const void *w, const void *a, size_t stride,
                                      int nt, float *out)
{
    __m512 acc[MAX_NT][2];
    for (int t = 0; t < nt; t++)
        acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 w0 = load16(kind, w, i, 0xFFFF), w1 = load16(kind, w, i + 16, 0xFFFF);
        for (int t = 0; t < nt; t++) {
            const void *y = (const uint8_t *)a + (size_t)t * stride;
            acc[t][0] = _mm512_fmadd_ps(w0, load16(kind, y, i, 0xFFFF), acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(w1, load16(kind, y, i + 16, 0xFFFF), acc[t][1]);
        }
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 w0 = load16(kind, w, i, m);
        for (int t = 0; t < nt; t++) {
            const void *y = (const uint8_t *)a + (size_t)t * stride;
            acc[t][0] = _mm512_fmadd_ps(w0, load16(kind, y, i, m), acc[t][0]);
        }
    }
    for (int t = 0; t < nt; t++)
        out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
}

#define DEFINE_FLOAT(name, kind)                                                                \
    static float dot_##name(int64_t n, const void *w, const void *a)                            \
    {                                                                                           \
        float r;                                                                                \
        dot_float_n(kind, n, w, a, 0, 1, &r);                                                   \
        return r;                                                                               \
    }                                                                                           \
    static void dot_##name##_x4(int64_t n, const void *w, const void *a, size_t stride, float *out) \
    {                                                                                           \
        dot_float_n(kind, n, w, a, stride, 4, out);                                             \
    }

DEFINE_FLOAT(f32, 0)
DEFINE_FLOAT(f16, 1)
DEFINE_FLOAT(bf16, 2)

void kinfer_avx512_fill_types(kinfer_cpu_table *table)
{
    kinfer_cpu_kernels *t = table->types;
    t[KINFER_TYPE_F32].vec_dot = dot_f32;
    t[KINFER_TYPE_F32].vec_dot_x4 = dot_f32_x4;
    t[KINFER_TYPE_F16].vec_dot = dot_f16;
    t[KINFER_TYPE_F16].vec_dot_x4 = dot_f16_x4;
    t[KINFER_TYPE_BF16].vec_dot = dot_bf16;
    t[KINFER_TYPE_BF16].vec_dot_x4 = dot_bf16_x4;
    t[KINFER_TYPE_IQ4_XS].vec_dot = dot_iq4_xs;
    t[KINFER_TYPE_IQ4_XS].vec_dot_x4 = dot_iq4_xs_x4;
    t[KINFER_TYPE_Q4_0].vec_dot = dot_q4_0;
    t[KINFER_TYPE_Q4_0].vec_dot_x4 = dot_q4_0_x4;
    t[KINFER_TYPE_Q4_0].vec_dot_r4 = dot_q4_0_r4;
    /* written once, before any reader (dispatch.c builds the tables once) */
    static kinfer_cpu_kernels q4_0_repacked;
    q4_0_repacked = t[KINFER_TYPE_Q4_0];
    q4_0_repacked.vec_dot = dot_q4_0_repacked;
    q4_0_repacked.vec_dot_x4 = NULL; /* prompts take the gemm (gemm_avx512.c) */
    q4_0_repacked.vec_dot_r4 = dot_q4_0_repacked_r4;
    t[KINFER_TYPE_Q4_0].repacked = &q4_0_repacked;
    t[KINFER_TYPE_Q4_1].vec_dot = dot_q4_1;
    t[KINFER_TYPE_Q4_1].vec_dot_x4 = dot_q4_1_x4;
    t[KINFER_TYPE_Q4_1].vec_dot_r4 = dot_q4_1_r4;
    t[KINFER_TYPE_Q5_1].vec_dot = dot_q5_1;
    t[KINFER_TYPE_Q5_1].vec_dot_x4 = dot_q5_1_x4;
    t[KINFER_TYPE_Q5_1].vec_dot_r4 = dot_q5_1_r4;
    t[KINFER_TYPE_Q5_0].vec_dot = dot_q5_0;
    t[KINFER_TYPE_Q5_0].vec_dot_x4 = dot_q5_0_x4;
    t[KINFER_TYPE_Q5_0].vec_dot_r4 = dot_q5_0_r4;
    t[KINFER_TYPE_Q8_0].vec_dot = dot_q8_0;
    t[KINFER_TYPE_Q8_0].vec_dot_x4 = dot_q8_0_x4;
    t[KINFER_TYPE_Q8_0].vec_dot_r4 = dot_q8_0_r4;
    t[KINFER_TYPE_IQ4_NL].vec_dot = dot_iq4_nl;
    t[KINFER_TYPE_IQ4_NL].vec_dot_x4 = dot_iq4_nl_x4;
    t[KINFER_TYPE_IQ4_NL].vec_dot_r4 = dot_iq4_nl_r4;
    t[KINFER_TYPE_Q4_K].vec_dot = dot_q4_K;
    t[KINFER_TYPE_Q4_K].vec_dot_x4 = dot_q4_K_x4;
    t[KINFER_TYPE_Q4_K].vec_dot_r4 = dot_q4_K_r4;
    t[KINFER_TYPE_Q5_K].vec_dot = dot_q5_K;
    t[KINFER_TYPE_Q5_K].vec_dot_x4 = dot_q5_K_x4;
    t[KINFER_TYPE_Q6_K].vec_dot = dot_q6_K;
    t[KINFER_TYPE_Q6_K].vec_dot_x4 = dot_q6_K_x4;
}
