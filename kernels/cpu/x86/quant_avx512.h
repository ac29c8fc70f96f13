/*
 * quant_avx512.h — block decoding shared by the AVX-512 dot product files
 * (kernels_avx512.c for one token or four, gemm_avx512.c for batches), which
 * must give the same bits.  Include only from files compiled with the
 * AVX-512 flags.
 */
#ifndef KINFER_QUANT_AVX512_H
#define KINFER_QUANT_AVX512_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

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

/* Decoders: one block to 32 unsigned bytes. */
static ALWAYS_INLINE __m256i decode_q4_0(const void *blk)
{
    return nibbles_32(((const block_q4_0 *)blk)->qs);
}

static ALWAYS_INLINE __m256i decode_q5_0(const void *blk)
{
    const block_q5_0 *b = blk;
    uint32_t bits;
    memcpy(&bits, b->qh, 4);
    const __m256i hi = _mm256_maskz_mov_epi8((__mmask32)bits, _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles_32(b->qs), hi);
}

static ALWAYS_INLINE __m256i decode_q8_0(const void *blk)
{
    /* signed -> unsigned by adding 128 */
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)((const block_q8_0 *)blk)->qs),
                            _mm256_set1_epi8((char)0x80));
}

static ALWAYS_INLINE __m256i decode_iq4_nl(const void *blk)
{
    /* table values + 128 are unsigned */
    const __m128i t = _mm_xor_si128(_mm_loadu_si128((const __m128i *)kinfer_iq4nl_values),
                                    _mm_set1_epi8((char)0x80));
    return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), nibbles_32(((const block_iq4_nl *)blk)->qs));
}

typedef __m256i (*decode_fn)(const void *blk);

/*
 * 32-element block types in ggml's summation order (llama.cpp's logits are
 * the oracle, and a 1-ulp difference here flips activation roundings later):
 * per block, 8 lanes of 4 products each; each activation row has one 8-lane
 * accumulator that takes the blocks in sequence (acc += d_x d_y * lanes);
 * then ggml's 8-lane horizontal sum, plus for Q4_1/Q5_1 the min terms
 * summed in block order.  Four activation rows go two per 512-bit register,
 * one per half.
 */
static inline float hsum8(__m256 v)
{
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* i16 lanes 0..15 get scale 2c, 16..31 get 2c+1, from 8 i16 scales */
static inline __m512i k4_scale_pair(__m512i scales16, int c)
{
    const __m512i idx = _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16((short)(2 * c))), scales16);
}

/* a * b + c rounded once (ggml's contracted scalar a * b + c) */
static inline float fma_ss(float a, float b, float c)
{
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

/* Lane k = sum of the 16 i32 lanes of xk (exact). */
static inline __m128i hsum4_epi32(__m512i x0, __m512i x1, __m512i x2, __m512i x3)
{
    const __m512i s01 = _mm512_add_epi32(_mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512i s23 = _mm512_add_epi32(_mm512_shuffle_i64x2(x2, x3, _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_i64x2(x2, x3, _MM_SHUFFLE(3, 2, 3, 2)));
    /* 128-bit lane k: four partial sums of xk */
    __m512i s = _mm512_add_epi32(_mm512_shuffle_i64x2(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_i64x2(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
    s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, (_MM_PERM_ENUM)0x4E));
    s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, (_MM_PERM_ENUM)0xB1));
    return _mm512_castsi512_si128(_mm512_permutexvar_epi32(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                                            12, 8, 4, 0), s));
}

/* Columns of the 4x4 i32 matrix with rows r0..r3. */
static inline void transpose4_epi32(__m128i r0, __m128i r1, __m128i r2, __m128i r3, __m128i col[4])
{
    const __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpacklo_epi32(r2, r3);
    const __m128i t2 = _mm_unpackhi_epi32(r0, r1), t3 = _mm_unpackhi_epi32(r2, r3);
    col[0] = _mm_unpacklo_epi64(t0, t1);
    col[1] = _mm_unpackhi_epi64(t0, t1);
    col[2] = _mm_unpacklo_epi64(t2, t3);
    col[3] = _mm_unpackhi_epi64(t2, t3);
}

/*
 * Q4_K and Q5_K super-blocks (block_q5_K starts like block_q4_K: d, dmin,
 * scales[12]) decoded for maddubs: v[c] holds sub-blocks 2c (low 256 bits)
 * and 2c+1 (high) as unsigned bytes, sc[c] their 6-bit scales for madd,
 * *mins16 the 8 mins as i16.  madd(maddubs(v[c], y), sc[c]) has lanes 0..7
 * over sub-block 2c and 8..15 over 2c+1, lane i covering elements 4i..4i+3.
 */
static ALWAYS_INLINE void k4_decode(const void *blk, int has_qh, __m512i v[4], __m512i sc[4], __m128i *mins16)
{
    const block_q4_K *x = blk;
    uint8_t sm[16];
    kinfer_k4_unpack_scales(x->scales, sm);
    *mins16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
    const __m512i scales16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sm)));
    const uint8_t *qs = has_qh ? ((const block_q5_K *)blk)->qs : x->qs;
    __m256i qh = _mm256_setzero_si256();
    if (has_qh)
        qh = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)blk)->qh);
    /* the 64-bit lanes of the upper half shift right by 4 to expose the
     * high nibbles */
    const __m512i shifts = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m512i q4 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * c)));
        v[c] = _mm512_and_si512(_mm512_srlv_epi64(q4, shifts), _mm512_set1_epi8(0x0F));
        if (has_qh) {
            /* the 5th bit of sub-block j is bit j of qh[l] */
            const __mmask32 h0 = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << (2 * c))));
            const __mmask32 h1 = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(2 << (2 * c))));
            const __mmask64 hm = (__mmask64)h0 | ((__mmask64)h1 << 32);
            v[c] = _mm512_mask_add_epi8(v[c], hm, v[c], _mm512_set1_epi8(0x10));
        }
        sc[c] = k4_scale_pair(scales16, c);
    }
}

/*
 * The float orders of llama.cpp's x86 K-quant kernels, which kinfer
 * mirrors bit for bit (integer sums are exact in any order; these are the
 * float operations that are not):
 *
 * Q4_K (repacked to 8 interleaved rows, ggml-cpu/arch/x86/repack.cpp).
 *   Per super-block b, I_bc = sum over sub-blocks 2c, 2c+1 of scale *
 *   (q . y) and M_bc = the same pair's min * (sum of y), c = 0..3.
 *   gemv order (one token; the last n % 4 tokens of a batch):
 *     acc = fma(I_b0 + .. + I_b3, d_x d_y, acc), accm likewise with the M
 *     and dmin_x d_y, once per block; result acc - accm.
 *   gemm order (the batch's tokens in groups of 4, counted from the first):
 *     the same with one fma per c, four per block.
 * Q5_K and Q6_K (ggml_vec_dot_q5_K_q8_K, ggml_vec_dot_q6_K_q8_K: one token
 *   and matmuls of fewer than 8): 8 i32 lanes per block, lane i covering
 *   elements 4i..4i+3 of every 32-element run (= lanes i + 8 + i of
 *   madd(maddubs) above, folded); acc8 = fma(d_y d_x, lanes, acc8); then
 *   hsum8.  Q6_K's -32 offset is lane i's -32 (sc[2i] bsum[2i] +
 *   sc[2i+1] bsum[2i+1]).  Q5_K adds summs = fma(-d_y dmin_x, M_b, summs)
 *   (ggml's a * b + c, contracted by the compiler) after the hsum8.
 *   Matmuls of 8 tokens or more take llama.cpp's tiled kernel instead
 *   (gemm_avx512.c).
 * Q4_0 (repacked to 8 interleaved rows when the matrix has a multiple of 8
 *   rows; gemv and gemm alike, so no token groups): per block the exact
 *   integer I_b = (q - 8) . y, acc = fma(I_b, d_x d_y, acc), from 0.  Its
 *   activations come from ggml_quantize_mat_q8_0_4x8 for groups of four
 *   tokens, which rounds as quantize_row_q8_0 (from_float_act).  Other
 *   Q4_0 matrices and the KV cache keep ggml's vec_dot order (above).
 * Q8_K activations are quantize_row_q8_K_ref's.  (For Q4_K's groups of
 * four llama.cpp quantizes with ggml_quantize_mat_q8_K_4x8, which can negate
 * a block's d and quants where its largest |x| occurs as both +m and -m:
 * every product, and so every result, is the same.)
 */
static inline __m256i fold512_epi32(__m512i x)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64(x, 1));
}

/* One 32-element block's quants as unsigned bytes: decode (value u - off)
 * or, for the Q4_1/Q5_1 layout (min_layout), the nibbles at qs_off plus
 * the fifth bits at qh_off (< 0: none). */
static ALWAYS_INLINE __m256i decode_block32(const uint8_t *xb, decode_fn decode, int min_layout,
                                            size_t qs_off, int qh_off)
{
    if (!min_layout) return decode(xb);
    __m256i xv = nibbles_32(xb + qs_off);
    if (qh_off >= 0) {
        uint32_t h;
        memcpy(&h, xb + qh_off, 4);
        xv = _mm256_mask_add_epi8(xv, (__mmask32)h, xv, _mm256_set1_epi8(0x10));
    }
    return xv;
}

/* Half h (0 or 1) of a Q6_K block's 6-bit quants as unsigned bytes (value
 * u - 32), in four runs of 32: v[0] = elements 128 h + 0..31, v[1] = +32..,
 * v[2] = +64.., v[3] = +96.. */
static ALWAYS_INLINE void q6_K_half(const block_q6_K *x, int h, __m256i v[4])
{
    const __m256i mask = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
    v[0] = _mm256_or_si256(_mm256_and_si256(l0, mask), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
    v[1] = _mm256_or_si256(_mm256_and_si256(l1, mask),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
    v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), mask),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
    v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), mask),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
}

#endif /* KINFER_QUANT_AVX512_H */
