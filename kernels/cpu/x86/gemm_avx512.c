/*
 * gemm_avx512.c — AVX-512 VNNI batched dot products for the 32-element
 * block types (Q4_0, Q5_0, Q8_0, IQ4_NL against Q8_0; Q4_1, Q5_1 against
 * Q8_1) and Q4_K, Q5_K, Q6_K (against Q8_K); see gemm.h.  Compiled with the
 * AVX-512 flags.
 *
 * Each kernel reproduces the arithmetic of the type's vec_dot in
 * kernels_avx512.c exactly: the same int32 lanes, the same float scale
 * products, the same fused multiply-adds in the same order, the same tail.  Only the way the integer lanes are obtained differs, and
 * integer sums are exact: vec_dot takes sum(x_u * y) - off * sum(y) with
 * the weight decoded to unsigned x_u; here the weight is made signed once
 * (xs = x_u - off), the activation unsigned (y + 128, in the packed row), and
 * sum((y + 128) * xs) - 128 * sum(xs) = sum(y * xs) is the same integer,
 * with the 128 * sum(xs) term computed once per weight block for all tokens.
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/x86/quant_avx512.h"
#include "quant.h"

/* ------------------------------------------------------ decoders (u8) */

/* ------------------------------------------------------ packed activations
 * (n / 32 blocks): quant bytes, 32 per block, then the floats (Q8_0: d per
 * block; Q8_1: d, s per block). */

static void pack_q8_0(int64_t n, const void *act, uint8_t *out)
{
    const block_q8_0 *y = act;
    const int64_t nb = n / 32;
    float *d = (float *)(out + nb * 32);
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b++) {
        _mm256_storeu_si256((__m256i *)(out + b * 32),
                            _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)y[b].qs), bias));
        d[b] = fp16(y[b].d);
    }
}

static void pack_q8_1(int64_t n, const void *act, uint8_t *out)
{
    const block_q8_1 *y = act;
    const int64_t nb = n / 32;
    float *d = (float *)(out + nb * 32);
    for (int64_t b = 0; b < nb; b++) {
        memcpy(out + b * 32, y[b].qs, 32);
        d[2 * b] = fp16(y[b].d);
        d[2 * b + 1] = fp16(y[b].s);
    }
}

/* ------------------------------------------------------------- K-quants
 * Packed Q8_K row (n / 256 blocks): the quant bytes (256 per block), then a
 * 64-byte record per block: d (float) at 0, the 8 pair sums of bsums
 * (sub-block sums, as _mm_hadd_epi16 gives them) at 16, bsums at 32. */

#define KREC 64

static void pack_q8_K(int64_t n, const void *act, uint8_t *out)
{
    const block_q8_K *y = act;
    const int64_t nb = n / QK_K;
    uint8_t *rec = out + nb * QK_K;
    for (int64_t b = 0; b < nb; b++) {
        memcpy(out + b * QK_K, y[b].qs, QK_K);
        uint8_t *r = rec + b * KREC;
        memset(r, 0, KREC);
        memcpy(r, &y[b].d, 4);
        const __m128i lo = _mm_loadu_si128((const __m128i *)y[b].bsums);
        const __m128i hi = _mm_loadu_si128((const __m128i *)(y[b].bsums + 8));
        _mm_storeu_si128((__m128i *)(r + 16), _mm_hadd_epi16(lo, hi));
        memcpy(r + 32, y[b].bsums, 32);
    }
}

/* k4_min_term of kernels_avx512.c from the pair sums: the same integer */
static inline int k4_min_term_hb(const uint8_t *hb, __m128i mins16)
{
    __m128i s = _mm_madd_epi16(_mm_loadu_si128((const __m128i *)hb), mins16);
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* dot_k4_n (Q4_K, Q5_K); the int sums are exact, so madd + add may be one
 * vpdpwssd */
static ALWAYS_INLINE void gemm_k4(int64_t n, const void *w, size_t bsize, int has_qh, const uint8_t *a,
                                  size_t astride, int NT, float *out, size_t ostride)
{
    const uint8_t *xb = w;
    const int64_t nb = n / QK_K;
    const size_t rofs = (size_t)nb * QK_K;
    const __m512i mask = _mm512_set1_epi8(0x0F);
    const __m512i shifts = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    __m512 acc[KINFER_GEMM_MAX_NT];
    float acc_m[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++) {
        acc[t] = _mm512_setzero_ps();
        acc_m[t] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        const block_q4_K *x = (const block_q4_K *)(xb + (size_t)b * bsize);
        uint8_t sm[16];
        k4_unpack_scales(x->scales, sm);
        const __m128i mins16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
        const __m512i scales16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sm)));
        const float d = fp16(x->d), dmin = fp16(x->dmin);
        const uint8_t *qs = has_qh ? ((const block_q5_K *)x)->qs : x->qs;
        __m256i qh = _mm256_setzero_si256();
        if (has_qh)
            qh = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)x)->qh);
        __m512i v[4], sc[4];
        for (int c = 0; c < 4; c++) {
            const __m512i q4 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * c)));
            v[c] = _mm512_and_si512(_mm512_srlv_epi64(q4, shifts), mask);
            if (has_qh) {
                const __mmask32 h0 = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << (2 * c))));
                const __mmask32 h1 = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(2 << (2 * c))));
                const __mmask64 hm = (__mmask64)h0 | ((__mmask64)h1 << 32);
                v[c] = _mm512_mask_add_epi8(v[c], hm, v[c], _mm512_set1_epi8(0x10));
            }
            sc[c] = k4_scale_pair(scales16, c);
        }
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            const uint8_t *y = a + (size_t)t * astride;
            const uint8_t *yq = y + (size_t)b * QK_K, *rec = y + rofs + (size_t)b * KREC;
            __m512i sumi = _mm512_setzero_si512();
            for (int c = 0; c < 4; c++)
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(v[c], _mm512_loadu_si512(yq + 64 * c)), sc[c]);
            float yd;
            memcpy(&yd, rec, 4);
            acc_m[t] += yd * dmin * (float)k4_min_term_hb(rec + 16, mins16);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(yd * d), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        out[(size_t)t * ostride] = _mm512_reduce_add_ps(acc[t]) - acc_m[t];
}

/* dot_q6_K_n */
static ALWAYS_INLINE void gemm_q6_K_n(int64_t n, const void *w, const uint8_t *a, size_t astride, int NT,
                                    float *out, size_t ostride)
{
    const block_q6_K *x = w;
    const int64_t nb = n / QK_K;
    const size_t rofs = (size_t)nb * QK_K;
    const __m512i idx0 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2,
                                          1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        __m512i v[4], s[4];
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_K_half(&x[b], h, q);
            const __m256i v0 = q[0], v1 = q[1], v2 = q[2], v3 = q[3];
            v[2 * h] = join256(v0, v1);
            v[2 * h + 1] = join256(v2, v3);
            s[2 * h] = _mm512_permutexvar_epi16(_mm512_add_epi16(idx0, _mm512_set1_epi16((short)(8 * h))), sc);
            s[2 * h + 1] = _mm512_permutexvar_epi16(_mm512_add_epi16(idx0, _mm512_set1_epi16((short)(8 * h + 4))), sc);
        }
        const float d = fp16(x[b].d);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            const uint8_t *y = a + (size_t)t * astride;
            const uint8_t *yq = y + (size_t)b * QK_K, *rec = y + rofs + (size_t)b * KREC;
            __m512i sumi = _mm512_setzero_si512();
            for (int k = 0; k < 4; k++)
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(v[k], _mm512_loadu_si512(yq + 64 * k)), s[k]);
            const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(rec + 32)), sc16);
            sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
            float yd;
            memcpy(&yd, rec, 4);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(yd * d), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        out[(size_t)t * ostride] = _mm512_reduce_add_ps(acc[t]);
}

/* ------------------------------------- the same types in ggml's order
 * (dot_seq_n of kernels_avx512.c, the vec_dot where that order is chosen):
 * per token one 8-lane accumulator that takes the blocks in sequence,
 * acc += (d_x d_y) * lanes, then an 8-lane horizontal sum, plus (Q4_1,
 * Q5_1) the min terms summed in block order.  Two tokens share a 512-bit
 * register, one per half; an odd last token is paired with itself. */

static ALWAYS_INLINE void gemm_seq(int64_t n, const void *w, size_t wstride, int R, size_t bsize,
                                   decode_fn decode, int off_byte, int min_layout, size_t qs_off,
                                   int qh_off, const uint8_t *a, size_t astride, int NT, float *out,
                                   size_t ostride)
{
    const int64_t nb = n / 32;
    const size_t dofs = (size_t)nb * 32;
    const int NP = (NT + 1) / 2;
    const __m512i off = _mm512_set1_epi8((char)off_byte);
    const __m512i b80 = _mm512_set1_epi8((char)0x80);
    __m512 acc[2][KINFER_GEMM_MAX_NT / 2];
    float summs[2][KINFER_GEMM_MAX_NT];
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
        for (int p = 0; p < NP; p++)
            acc[r][p] = _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
            summs[r][t] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        /* the R weight rows' block b: signed bytes (or unsigned, Q4_1/Q5_1)
         * in both halves, its scale, min and the -128 * sum correction */
        __m512 vdx[2];
        __m512i x2[2], c[2];
        float mx[2] = {0.0f, 0.0f};
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const uint8_t *xb = (const uint8_t *)w + (size_t)r * wstride + (size_t)b * bsize;
            const __m256i xv = decode_block32(xb, decode, min_layout, qs_off, qh_off);
            kinfer_fp16 hd, hm;
            memcpy(&hd, xb, 2);
            vdx[r] = _mm512_set1_ps(fp16(hd));
            if (min_layout) {
                memcpy(&hm, xb + 2, 2);
                mx[r] = fp16(hm);
            }
            x2[r] = _mm512_broadcast_i64x4(xv);
            c[r] = _mm512_setzero_si512();
            if (!min_layout) {
                x2[r] = _mm512_sub_epi8(x2[r], off);
                c[r] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), b80, x2[r]));
            }
        }
#pragma GCC unroll 8
        for (int p = 0; p < NP; p++) {
            const int t0 = 2 * p, t1 = 2 * p + 1 < NT ? 2 * p + 1 : 2 * p;
            const uint8_t *y0 = a + (size_t)t0 * astride, *y1 = a + (size_t)t1 * astride;
            const __m512i yv = join256(_mm256_loadu_si256((const __m256i *)(y0 + b * 32)),
                                       _mm256_loadu_si256((const __m256i *)(y1 + b * 32)));
            const float *f0 = (const float *)(y0 + dofs), *f1 = (const float *)(y1 + dofs);
            const int fi = min_layout ? 2 * (int)b : (int)b;
            const __m512 dy = _mm512_insertf32x8(_mm512_set1_ps(f0[fi]), _mm256_set1_ps(f1[fi]), 1);
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) {
                const __m512i sv = min_layout ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), x2[r], yv)
                                              : _mm512_dpbusd_epi32(c[r], yv, x2[r]);
                acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(vdx[r], dy), _mm512_cvtepi32_ps(sv), acc[r][p]);
                if (min_layout) {
                    summs[r][t0] += mx[r] * f0[2 * b + 1];
                    if (t1 != t0) summs[r][t1] += mx[r] * f1[2 * b + 1];
                }
            }
        }
    }
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
        for (int p = 0; p < NP; p++) {
            out[r + (size_t)(2 * p) * ostride] = hsum8(_mm512_castps512_ps256(acc[r][p])) + summs[r][2 * p];
            if (2 * p + 1 < NT)
                out[r + (size_t)(2 * p + 1) * ostride] =
                    hsum8(_mm512_extractf32x8_ps(acc[r][p], 1)) + summs[r][2 * p + 1];
        }
    }
}

/* ----------------------------------------------------------- entry points */

#define NT_SWITCH(call)                                                                        \
    switch (nt) {                                                                              \
    case 1: call(1); break;                                                                    \
    case 2: call(2); break;                                                                    \
    case 3: call(3); break;                                                                    \
    case 4: call(4); break;                                                                    \
    case 5: call(5); break;                                                                    \
    case 6: call(6); break;                                                                    \
    case 7: call(7); break;                                                                    \
    default: call(8); break;                                                                   \
    }

/* rows w + i * ws, i < nr: the K-quant kernels one row at a time, the
 * 32-element block kernels two rows at a time (one activation load for
 * both) */
#define DEFINE_GEMM(name, rows_at_once)                                                        \
    static void gemm_##name(int64_t n, const void *w0, size_t ws, int nr, const uint8_t *a,     \
                            size_t astride, int nt, float *out0, size_t ostride)               \
    {                                                                                          \
        for (int i = 0; i < nr;) {                                                             \
            const void *w = (const uint8_t *)w0 + (size_t)i * ws;                              \
            float *out = out0 + i;                                                             \
            const int R = rows_at_once == 2 && nr - i >= 2 ? 2 : 1;                            \
            if (R == 2) {                                                                      \
                NT_SWITCH(CALL2_##name)                                                        \
            } else {                                                                           \
                NT_SWITCH(CALL_##name)                                                         \
            }                                                                                  \
            i += R;                                                                            \
        }                                                                                      \
    }

#define CALL2_q4_K(k) CALL_q4_K(k)
#define CALL_q4_K(k) gemm_k4(n, w, sizeof(block_q4_K), 0, a, astride, k, out, ostride)
#define CALL2_q5_K(k) CALL_q5_K(k)
#define CALL_q5_K(k) gemm_k4(n, w, sizeof(block_q5_K), 1, a, astride, k, out, ostride)
#define CALL2_q6_K(k) CALL_q6_K(k)
#define CALL_q6_K(k) gemm_q6_K_n(n, w, a, astride, k, out, ostride)

#define CALL_q4_0(k) gemm_seq(n, w, ws, 1, sizeof(block_q4_0), decode_q4_0, 8, 0, 0, -1, a, astride, k, out, ostride)
#define CALL2_q4_0(k) gemm_seq(n, w, ws, 2, sizeof(block_q4_0), decode_q4_0, 8, 0, 0, -1, a, astride, k, out, ostride)
#define CALL_q5_0(k) gemm_seq(n, w, ws, 1, sizeof(block_q5_0), decode_q5_0, 16, 0, 0, -1, a, astride, k, out, ostride)
#define CALL2_q5_0(k) gemm_seq(n, w, ws, 2, sizeof(block_q5_0), decode_q5_0, 16, 0, 0, -1, a, astride, k, out, ostride)
#define CALL_q8_0(k) gemm_seq(n, w, ws, 1, sizeof(block_q8_0), decode_q8_0, 0x80, 0, 0, -1, a, astride, k, out, ostride)
#define CALL2_q8_0(k) gemm_seq(n, w, ws, 2, sizeof(block_q8_0), decode_q8_0, 0x80, 0, 0, -1, a, astride, k, out, ostride)
#define CALL_iq4_nl(k) gemm_seq(n, w, ws, 1, sizeof(block_iq4_nl), decode_iq4_nl, 0x80, 0, 0, -1, a, astride, k, out, ostride)
#define CALL2_iq4_nl(k) gemm_seq(n, w, ws, 2, sizeof(block_iq4_nl), decode_iq4_nl, 0x80, 0, 0, -1, a, astride, k, out, ostride)
#define CALL_q4_1(k) gemm_seq(n, w, ws, 1, sizeof(block_q4_1), NULL, 0, 1, offsetof(block_q4_1, qs), -1, a, astride, k, out, ostride)
#define CALL2_q4_1(k) gemm_seq(n, w, ws, 2, sizeof(block_q4_1), NULL, 0, 1, offsetof(block_q4_1, qs), -1, a, astride, k, out, ostride)
#define CALL_q5_1(k) gemm_seq(n, w, ws, 1, sizeof(block_q5_1), NULL, 0, 1, offsetof(block_q5_1, qs), (int)offsetof(block_q5_1, qh), a, astride, k, out, ostride)
#define CALL2_q5_1(k) gemm_seq(n, w, ws, 2, sizeof(block_q5_1), NULL, 0, 1, offsetof(block_q5_1, qs), (int)offsetof(block_q5_1, qh), a, astride, k, out, ostride)
DEFINE_GEMM(q4_0, 2)
DEFINE_GEMM(q5_0, 2)
DEFINE_GEMM(q8_0, 2)
DEFINE_GEMM(iq4_nl, 2)
DEFINE_GEMM(q4_1, 2)
DEFINE_GEMM(q5_1, 2)
DEFINE_GEMM(q4_K, 1)
DEFINE_GEMM(q5_K, 1)
DEFINE_GEMM(q6_K, 1)

kinfer_gemm_kernels kinfer_gemm_avx512(int type)
{
    switch (type) {
    case KINFER_TYPE_Q4_0: return (kinfer_gemm_kernels){pack_q8_0, gemm_q4_0};
    case KINFER_TYPE_Q5_0: return (kinfer_gemm_kernels){pack_q8_0, gemm_q5_0};
    case KINFER_TYPE_Q8_0: return (kinfer_gemm_kernels){pack_q8_0, gemm_q8_0};
    case KINFER_TYPE_IQ4_NL: return (kinfer_gemm_kernels){pack_q8_0, gemm_iq4_nl};
    case KINFER_TYPE_Q4_1: return (kinfer_gemm_kernels){pack_q8_1, gemm_q4_1};
    case KINFER_TYPE_Q5_1: return (kinfer_gemm_kernels){pack_q8_1, gemm_q5_1};
    case KINFER_TYPE_Q4_K: return (kinfer_gemm_kernels){pack_q8_K, gemm_q4_K};
    case KINFER_TYPE_Q5_K: return (kinfer_gemm_kernels){pack_q8_K, gemm_q5_K};
    case KINFER_TYPE_Q6_K: return (kinfer_gemm_kernels){pack_q8_K, gemm_q6_K};
    default: return (kinfer_gemm_kernels){NULL, NULL};
    }
}
