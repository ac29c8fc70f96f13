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

/* i16 lanes 0..15 get scale 2c, 16..31 get 2c+1, from 8 i16 scales */
static inline __m512i k4_scale_pair(__m512i scales16, int c)
{
    const __m512i idx = _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16((short)(2 * c))), scales16);
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
