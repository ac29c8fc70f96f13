/*
 * gemm_avx512.c — AVX-512 VNNI batched dot products for the 32-element
 * block types (Q4_0, Q5_0, Q8_0, IQ4_NL against Q8_0; Q4_1, Q5_1 against
 * Q8_1) and Q4_K, Q5_K, Q6_K (against Q8_K); see gemm.h.  Compiled with the
 * AVX-512 flags.
 *
 * Each kernel reproduces the arithmetic of the type's vec_dot in
 * kernels_avx512.c exactly: the same int32 lanes, the same float scale
 * products, the same fused multiply-adds in the same order, the same tail.
 * Only the way the integer lanes and the scale vectors are obtained
 * differs, and integer sums are exact.  The K-quants follow llama.cpp where
 * its batched order is not its vec_dot's (quant_avx512.h): Q4_K's groups of
 * four tokens, and the tiled Q5_K, Q6_K kernels for 8 tokens or more; and
 * the Q4_0 matrices it repacks take their repacked vec_dot's order.
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "cpu/isa.h"
#include "cpu/x86/quant_avx512.h"
#include "quant.h"

/* ------------------------------------------- 32-element block types
 * A packed group holds GROUP tokens (slots), block by block.  A block's
 * record: the slots' 32 quant bytes each (slot s at 32 s, so a token pair
 * is one 64-byte load); for the types with an offset (Q8_0 activations:
 * weights decoded to unsigned u with value u - off) each slot's 8 int32
 * lane corrections -off * (sum of the lane's 4 quants), which start the
 * integer sum of every weight row; then the slots' 8 scales d and (Q8_1
 * activations) the 8 sums s as floats.  Empty slots are all zero. */

#define GROUP KINFER_GEMM_MAX_NT
#define REC_OFF (GROUP * (32 + 32 + 4))   /* record of a type with an offset */
#define REC_MIN (GROUP * (32 + 4 + 4))    /* record of Q4_1, Q5_1 */

static ALWAYS_INLINE void pack_group_q8_0(int64_t n, const void *act, size_t act_stride, int nt,
                                          uint8_t *out, int off)
{
    const int64_t nb = n / 32;
    const __m256i ones = _mm256_set1_epi8(1), neg_off = _mm256_set1_epi32(-off);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *rec = out + b * REC_OFF;
        float *d = (float *)(rec + GROUP * 64);
        for (int s = 0; s < GROUP; s++) {
            __m256i q = _mm256_setzero_si256();
            d[s] = 0.0f;
            if (s < nt) {
                const block_q8_0 *y = (const block_q8_0 *)((const uint8_t *)act + (size_t)s * act_stride) + b;
                q = _mm256_loadu_si256((const __m256i *)y->qs);
                d[s] = fp16(y->d);
            }
            const __m256i lane_sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, q);
            _mm256_storeu_si256((__m256i *)(rec + 32 * s), q);
            _mm256_storeu_si256((__m256i *)(rec + GROUP * 32 + 32 * s), _mm256_mullo_epi32(lane_sums, neg_off));
        }
    }
}

static void pack_group_off8(int64_t n, const void *act, size_t act_stride, int nt, uint8_t *out)
{
    pack_group_q8_0(n, act, act_stride, nt, out, 8);
}

static void pack_group_off16(int64_t n, const void *act, size_t act_stride, int nt, uint8_t *out)
{
    pack_group_q8_0(n, act, act_stride, nt, out, 16);
}

static void pack_group_off128(int64_t n, const void *act, size_t act_stride, int nt, uint8_t *out)
{
    pack_group_q8_0(n, act, act_stride, nt, out, 128);
}

static void pack_group_q8_1(int64_t n, const void *act, size_t act_stride, int nt, uint8_t *out)
{
    const int64_t nb = n / 32;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *rec = out + b * REC_MIN;
        float *d = (float *)(rec + GROUP * 32), *sum = d + GROUP;
        for (int s = 0; s < GROUP; s++) {
            if (s < nt) {
                const block_q8_1 *y = (const block_q8_1 *)((const uint8_t *)act + (size_t)s * act_stride) + b;
                memcpy(rec + 32 * s, y->qs, 32);
                d[s] = fp16(y->d);
                sum[s] = fp16(y->s);
            } else {
                memset(rec + 32 * s, 0, 32);
                d[s] = sum[s] = 0.0f;
            }
        }
    }
}

/* Weight rows -> decoded rows (kinfer_gemm_decoded_row_size apart): the
 * blocks' quants as unsigned bytes (decode_block32, as vec_dot has them),
 * 32 per block, then the blocks' d and (min_layout) m as floats.  The gemm
 * visits a chunk of rows once per token group: decoded once, a block then
 * costs the kernel two broadcast loads. */
static ALWAYS_INLINE void decode_rows(int64_t n, const void *w, size_t wstride, int nr, size_t bsize,
                                      decode_fn decode, int min_layout, size_t qs_off, int qh_off, uint8_t *out)
{
    const int64_t nb = n / 32;
    const size_t dstride = kinfer_gemm_decoded_row_size(n);
    for (int r = 0; r < nr; r++) {
        const uint8_t *x = (const uint8_t *)w + (size_t)r * wstride;
        uint8_t *q = out + (size_t)r * dstride;
        float *d = (float *)(q + nb * 32), *m = d + nb;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *xb = x + (size_t)b * bsize;
            _mm256_storeu_si256((__m256i *)(q + b * 32), decode_block32(xb, decode, min_layout, qs_off, qh_off));
            kinfer_fp16 h[2];
            memcpy(h, xb, min_layout ? 4 : 2);
            d[b] = fp16(h[0]);
            if (min_layout)
                m[b] = fp16(h[1]);
        }
    }
}

/*
 * R decoded weight rows (1 .. 4) x the token pairs p < NP (1 .. 4) of a
 * packed group, in ggml's order (dot_seq_n of kernels_avx512.c): per output
 * one 8-lane accumulator that takes the blocks in sequence, acc += (d_x
 * d_y) * lanes, then an 8-lane horizontal sum, plus (Q4_1, Q5_1) the min
 * terms summed in block order.  A token pair shares a 512-bit accumulator,
 * one per half.  Per block and row one multiply gives d_x d_y for all 8
 * tokens and a permute spreads a pair's two products over the halves: a
 * permute runs beside the multiply-adds, where a multiply per pair would
 * compete with them (and vpdpbusd) for the same two pipes.
 */
static ALWAYS_INLINE void gemm_tile(int64_t n, const uint8_t *w, size_t wstride, int R, int min_layout,
                                    const uint8_t *a, int NP, float *out, size_t ostride, int nt)
{
    const int64_t nb = n / 32;
    const size_t rec = min_layout ? REC_MIN : REC_OFF;
    const size_t dofs = min_layout ? GROUP * 32 : GROUP * 64;
    __m512i pair_idx[GROUP / 2];
    __m512 acc[4][GROUP / 2];
    __m256 summs[4];
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++)
        pair_idx[p] = _mm512_inserti64x4(_mm512_set1_epi32(2 * p), _mm256_set1_epi32(2 * p + 1), 1);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++)
            acc[r][p] = _mm512_setzero_ps();
        summs[r] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = a + (size_t)b * rec;
        const __m256 dy = _mm256_loadu_ps((const float *)(g + dofs));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *q = w + (size_t)r * wstride;
            const float *d = (const float *)(q + nb * 32);
            const __m512i x2 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(q + b * 32)));
            const __m512 dxy = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_broadcast_ss(d + b), dy));
#pragma GCC unroll 4
            for (int p = 0; p < NP; p++) {
                const __m512i y = _mm512_loadu_si512(g + 64 * p);
                const __m512i start = min_layout ? _mm512_setzero_si512()
                                                 : _mm512_loadu_si512(g + GROUP * 32 + 64 * p);
                const __m512i lanes = _mm512_dpbusd_epi32(start, x2, y);
                acc[r][p] = _mm512_fmadd_ps(_mm512_permutexvar_ps(pair_idx[p], dxy), _mm512_cvtepi32_ps(lanes),
                                            acc[r][p]);
            }
            if (min_layout) {
                const __m256 sy = _mm256_loadu_ps((const float *)(g + dofs) + GROUP);
                summs[r] = _mm256_add_ps(summs[r], _mm256_mul_ps(_mm256_broadcast_ss(d + nb + b), sy));
            }
        }
    }
    /* constant indices into acc only, or it would live in memory */
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float sm[GROUP], dot[GROUP];
        _mm256_storeu_ps(sm, summs[r]);
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) {
            dot[2 * p] = hsum8(_mm512_castps512_ps256(acc[r][p]));
            dot[2 * p + 1] = hsum8(_mm512_extractf32x8_ps(acc[r][p], 1));
        }
        for (int t = 0; t < nt; t++)
            out[r + (size_t)t * ostride] = dot[t] + sm[t];
    }
}

/* ------------------------------- Q4_0 in llama.cpp's repacked order
 * (quant_avx512.h): per block one exact integer per (row, token), then
 * acc = fma(integer, d_x d_y, acc).  The rows are in the lanes, 16 at a
 * time, so the integer needs no horizontal sum and one fma serves 16 rows.
 * A packed group's block record: the slots' 32 quant bytes each, then
 * their -8 sum(q) as int32 (the integer's start: weights are decoded to
 * u = q + 8), then their d as floats. */

#define REC_RP (GROUP * (32 + 4 + 4))
_Static_assert(KINFER_GEMM_REPACKED_ROWS == 16, "a row per lane of a 512-bit vector");

static void pack_group_q4_0_repacked(int64_t n, const void *act, size_t act_stride, int nt, uint8_t *out)
{
    for (int64_t b = 0; b < n / 32; b++) {
        uint8_t *rec = out + b * REC_RP;
        int32_t start[GROUP] = {0};
        float d[GROUP] = {0};
        memset(rec, 0, GROUP * 32);
        for (int s = 0; s < nt; s++) {
            const block_q8_0 *y = (const block_q8_0 *)((const uint8_t *)act + (size_t)s * act_stride) + b;
            memcpy(rec + 32 * s, y->qs, 32);
            for (int l = 0; l < 32; l++)
                start[s] -= 8 * y->qs[l];
            d[s] = fp16(y->d);
        }
        memcpy(rec + GROUP * 32, start, sizeof start);
        memcpy(rec + GROUP * 36, d, sizeof d);
    }
}

/* Weight rows -> groups of 16 rows (the last one R = nr % 16 rows) with
 * the rows in the lanes: per block 8 runs of R dwords (run k: each row's
 * unsigned quants 4k .. 4k + 3), then the R rows' d as floats; 36 R bytes
 * a block, within the room of R decoded rows. */
static void decode_rows_q4_0_repacked(int64_t n, const void *w, size_t ws, int nr, uint8_t *out)
{
    const int64_t nb = n / 32;
    const size_t dstride = kinfer_gemm_decoded_row_size(n);
    for (int i = 0; i < nr; i += 16) {
        const int R = nr - i < 16 ? nr - i : 16;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *q = out + (size_t)i * dstride + (size_t)b * 36 * R;
            for (int r = 0; r < R; r++) {
                const block_q4_0 *x = (const block_q4_0 *)((const uint8_t *)w + (size_t)(i + r) * ws) + b;
                uint8_t u[32];
                _mm256_storeu_si256((__m256i *)u, decode_q4_0(x));
                for (int k = 0; k < 8; k++)
                    memcpy(q + 4 * (k * R + r), u + 4 * k, 4);
                const float d = fp16(x->d);
                memcpy(q + 32 * R + 4 * r, &d, 4);
            }
        }
    }
}

/* R (1 .. 16) decoded rows (one group) x NT tokens of a packed group */
static ALWAYS_INLINE void gemm_q4_0_repacked_rows16(int64_t n, const uint8_t *w, int R, const uint8_t *a, int NT,
                                                    float *out, size_t ostride)
{
    const __mmask16 rows = (__mmask16)((1u << R) - 1);
    __m512 acc[GROUP];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *q = w + (size_t)b * 36 * R, *g = a + (size_t)b * REC_RP;
        __m512i wq[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            wq[k] = _mm512_maskz_loadu_epi32(rows, q + 4 * k * R);
        const __m512 dw = _mm512_maskz_loadu_ps(rows, q + 32 * R);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            int32_t y4[8], start;
            float dy;
            memcpy(y4, g + 32 * t, 32);
            memcpy(&start, g + GROUP * 32 + 4 * t, 4);
            memcpy(&dy, g + GROUP * 36 + 4 * t, 4);
            /* two chains of dot products, half as long */
            __m512i s0 = _mm512_set1_epi32(start), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int k = 0; k < 8; k += 2) {
                s0 = _mm512_dpbusd_epi32(s0, wq[k], _mm512_set1_epi32(y4[k]));
                s1 = _mm512_dpbusd_epi32(s1, wq[k + 1], _mm512_set1_epi32(y4[k + 1]));
            }
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(dw, _mm512_set1_ps(dy)),
                                     acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        _mm512_mask_storeu_ps(out + (size_t)t * ostride, rows, acc[t]);
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

/* 16x16 transpose of dwords: lane k of m[r] -> lane r of m[k] */
static ALWAYS_INLINE void transpose16_epi32(__m512i m[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(m[i], m[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(m[i], m[i + 1]);
    }
    /* u[4i + e], 128-bit chunk L: element 4L + e of rows 4i .. 4i + 3 */
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; e++) {
        const __m512i p = _mm512_shuffle_i32x4(u[e], u[4 + e], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i q = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i r = _mm512_shuffle_i32x4(u[e], u[4 + e], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512i s = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], _MM_SHUFFLE(3, 2, 3, 2));
        m[e] = _mm512_shuffle_i32x4(p, q, _MM_SHUFFLE(2, 0, 2, 0));
        m[4 + e] = _mm512_shuffle_i32x4(p, q, _MM_SHUFFLE(3, 1, 3, 1));
        m[8 + e] = _mm512_shuffle_i32x4(r, s, _MM_SHUFFLE(2, 0, 2, 0));
        m[12 + e] = _mm512_shuffle_i32x4(r, s, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* One Q4_K super-block of up to 16 weight rows with the rows in the lanes:
 * q[g] lane r = row r's quants 4g .. 4g + 3 (unsigned), sc[j] its sub-block
 * scales, mn[c] its mins of sub-blocks 2c, 2c+1 as an i16 pair, d and dmin. */
typedef struct q4_K_lanes {
    __m512i q[64], sc[8], mn[4];
    __m512 d, dmin;
} q4_K_lanes;

static ALWAYS_INLINE void q4_K_to_lanes(const uint8_t *w, size_t ws, int nr, int64_t b, q4_K_lanes *L)
{
    int32_t sc[8][16], mn[4][16];
    float d[16], dmin[16];
    __m512i rows[4][16];
    const __m512i shifts = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    for (int r = 0; r < 16; r++) {
        if (r >= nr) {
            for (int c = 0; c < 4; c++) rows[c][r] = _mm512_setzero_si512();
            for (int j = 0; j < 8; j++) sc[j][r] = 0;
            for (int c = 0; c < 4; c++) mn[c][r] = 0;
            d[r] = dmin[r] = 0.0f;
            continue;
        }
        const block_q4_K *x = (const block_q4_K *)(w + (size_t)r * ws) + b;
        uint8_t sm[16];
        kinfer_k4_unpack_scales(x->scales, sm);
        for (int j = 0; j < 8; j++) sc[j][r] = sm[j];
        for (int c = 0; c < 4; c++) mn[c][r] = sm[8 + 2 * c] | (sm[9 + 2 * c] << 16);
        d[r] = fp16(x->d);
        dmin[r] = fp16(x->dmin);
        for (int c = 0; c < 4; c++) {
            const __m512i q4 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qs + 32 * c)));
            rows[c][r] = _mm512_and_si512(_mm512_srlv_epi64(q4, shifts), _mm512_set1_epi8(0x0F));
        }
    }
    for (int c = 0; c < 4; c++) {
        transpose16_epi32(rows[c]);
        for (int k = 0; k < 16; k++) L->q[16 * c + k] = rows[c][k];
    }
    for (int j = 0; j < 8; j++) L->sc[j] = _mm512_loadu_si512(sc[j]);
    for (int c = 0; c < 4; c++) L->mn[c] = _mm512_loadu_si512(mn[c]);
    L->d = _mm512_loadu_ps(d);
    L->dmin = _mm512_loadu_ps(dmin);
}

/* Q4_K rows decoded once per matmul into groups of 16 rows (the last one
 * R = nr % 16 rows) with the rows in the lanes, so a row chunk is
 * transposed once, not once per token group.  Per super-block a record of
 * Q4K_REC * R bytes: 64 runs of R dwords (run 8j + g: each row's unsigned
 * quants 4g .. 4g + 3 of sub-block j), the rows' 8 sub-block scales as
 * floats (run j), their mins of sub-blocks 2c, 2c + 1 as an i16 pair (run
 * c), then d and dmin; within the room of R decoded rows. */
#define Q4K_REC (64 * 4 + 8 * 4 + 4 * 4 + 4 + 4)
_Static_assert(Q4K_REC <= (32 + 8) * (QK_K / 32), "a Q4_K record fits in R decoded rows' room");

static void decode_rows_q4_K_lanes(int64_t n, const void *w, size_t ws, int nr, uint8_t *out)
{
    const int64_t nb = n / QK_K;
    const size_t dstride = kinfer_gemm_decoded_row_size(n);
    q4_K_lanes L;
    for (int i = 0; i < nr; i += 16) {
        const int R = nr - i < 16 ? nr - i : 16;
        const __mmask16 rows = (__mmask16)((1u << R) - 1);
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *q = out + (size_t)i * dstride + (size_t)b * Q4K_REC * R;
            q4_K_to_lanes((const uint8_t *)w + (size_t)i * ws, ws, R, b, &L);
            for (int k = 0; k < 64; k++)
                _mm512_mask_storeu_epi32(q + 4 * k * R, rows, L.q[k]);
            for (int j = 0; j < 8; j++)
                _mm512_mask_storeu_ps(q + 4 * (64 + j) * R, rows, _mm512_cvtepi32_ps(L.sc[j]));
            for (int c = 0; c < 4; c++)
                _mm512_mask_storeu_epi32(q + 4 * (72 + c) * R, rows, L.mn[c]);
            _mm512_mask_storeu_ps(q + 4 * 76 * R, rows, L.d);
            _mm512_mask_storeu_ps(q + 4 * 77 * R, rows, L.dmin);
        }
    }
}

/* Q4_K in llama.cpp's orders (quant_avx512.h), one group of R (1 .. 16)
 * decoded rows, the rows in the lanes (no horizontal sums: each lane's
 * integer is its row's own): tokens 0 .. NT - NT % 4 - 1 in groups of four
 * in the gemm order (dot_q4_K_x4), the last NT % 4 in the gemv order
 * (dot_q4_K); GEMV: every token in the gemv order (mul_mat_id's,
 * kinfer_gemm_get_mmid).  The gemm order's integer per 64 quants, sc_2c S_2c +
 * sc_2c+1 S_2c+1, is under 2^23 in magnitude (|S_j| <= 32 * 15 * 128, sc <
 * 64), so it is formed exactly in floats (one fma, off the port vpdpbusd
 * and vpmulld share). */
/* the matmul's token chunks must keep llama.cpp's groups of four (gemm.h) */
_Static_assert(KINFER_GEMM_MAX_NT % 4 == 0, "token chunks split Q4_K's groups of four");

static ALWAYS_INLINE void gemm_q4_K_rows16(int64_t n, const uint8_t *w, int R, const uint8_t *a, size_t astride,
                                           int NT, float *out, size_t ostride, int GEMV)
{
    const int64_t nb = n / QK_K;
    const size_t rofs = (size_t)nb * QK_K;
    const int NGRP = GEMV ? 0 : NT - NT % 4;
    const __mmask16 rows = (__mmask16)((1u << R) - 1);
    __m512 acc[KINFER_GEMM_MAX_NT], accm[KINFER_GEMM_MAX_NT];
    __m512i isum[KINFER_GEMM_MAX_NT], msum[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        acc[t] = accm[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q = w + (size_t)b * Q4K_REC * R;
        const __m512 d = _mm512_maskz_loadu_ps(rows, q + 4 * 76 * R);
        const __m512 dmin = _mm512_maskz_loadu_ps(rows, q + 4 * 77 * R);
        const uint8_t *yq[KINFER_GEMM_MAX_NT], *rec[KINFER_GEMM_MAX_NT];
        float yd[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            yq[t] = a + (size_t)t * astride + (size_t)b * QK_K;
            rec[t] = a + (size_t)t * astride + rofs + (size_t)b * KREC;
            memcpy(&yd[t], rec[t], 4);
            isum[t] = msum[t] = _mm512_setzero_si512();
        }
        for (int c = 0; c < 4; c++) {
            __m512i S[2][KINFER_GEMM_MAX_NT];
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const int j = 2 * c + h;
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++)
                    S[h][t] = _mm512_setzero_si512();
                /* one weight load for all tokens; the tokens' chains are
                 * independent */
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    const __m512i qv = _mm512_maskz_loadu_epi32(rows, q + 4 * (8 * j + g) * R);
#pragma GCC unroll 8
                    for (int t = 0; t < NT; t++) {
                        int32_t y4;
                        memcpy(&y4, yq[t] + 32 * j + 4 * g, 4);
                        S[h][t] = _mm512_dpbusd_epi32(S[h][t], qv, _mm512_set1_epi32(y4));
                    }
                }
            }
            const __m512 sc0 = _mm512_maskz_loadu_ps(rows, q + 4 * (64 + 2 * c) * R);
            const __m512 sc1 = _mm512_maskz_loadu_ps(rows, q + 4 * (65 + 2 * c) * R);
            const __m512i mn = _mm512_maskz_loadu_epi32(rows, q + 4 * (72 + c) * R);
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                int32_t s2;
                memcpy(&s2, rec[t] + 16 + 4 * c, 4);
                const __m512i M = _mm512_madd_epi16(mn, _mm512_set1_epi32(s2));
                if (t < NGRP) {
                    const __m512 vyd = _mm512_set1_ps(yd[t]);
                    const __m512 I = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S[0][t]), sc0,
                                                     _mm512_mul_ps(_mm512_cvtepi32_ps(S[1][t]), sc1));
                    acc[t] = _mm512_fmadd_ps(I, _mm512_mul_ps(d, vyd), acc[t]);
                    accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(M), _mm512_mul_ps(dmin, vyd), accm[t]);
                } else {
                    const __m512i I = _mm512_add_epi32(_mm512_mullo_epi32(S[0][t], _mm512_cvtps_epi32(sc0)),
                                                       _mm512_mullo_epi32(S[1][t], _mm512_cvtps_epi32(sc1)));
                    isum[t] = _mm512_add_epi32(isum[t], I);
                    msum[t] = _mm512_add_epi32(msum[t], M);
                }
            }
        }
#pragma GCC unroll 8
        for (int t = NGRP; t < NT; t++) {
            const __m512 vyd = _mm512_set1_ps(yd[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, vyd), acc[t]);
            accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum[t]), _mm512_mul_ps(dmin, vyd), accm[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        _mm512_mask_storeu_ps(out + (size_t)t * ostride, rows, _mm512_sub_ps(acc[t], accm[t]));
}


/* dot_q5_K_n; the int sums are exact, so madd + add may be one vpdpwssd */
static ALWAYS_INLINE void gemm_q5_K_n(int64_t n, const void *w, const uint8_t *a, size_t astride, int NT,
                                      float *out, size_t ostride)
{
    const block_q5_K *x = w;
    const int64_t nb = n / QK_K;
    const size_t rofs = (size_t)nb * QK_K;
    __m256 acc[KINFER_GEMM_MAX_NT];
    float summs[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++) {
        acc[t] = _mm256_setzero_ps();
        summs[t] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        __m512i v[4], sc[4];
        __m128i mins16;
        k4_decode(&x[b], 1, v, sc, &mins16);
        const float dx = fp16(x[b].d), mx = fp16(x[b].dmin);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            const uint8_t *y = a + (size_t)t * astride;
            const uint8_t *yq = y + (size_t)b * QK_K, *rec = y + rofs + (size_t)b * KREC;
            __m512i sumi = _mm512_setzero_si512();
            for (int c = 0; c < 4; c++)
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(v[c], _mm512_loadu_si512(yq + 64 * c)), sc[c]);
            float yd;
            memcpy(&yd, rec, 4);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(yd * dx), _mm256_cvtepi32_ps(fold512_epi32(sumi)), acc[t]);
            summs[t] = fma_ss(-yd * mx, (float)k4_min_term_hb(rec + 16, mins16), summs[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        out[(size_t)t * ostride] = hsum8(acc[t]) + summs[t];
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
    __m256 acc[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        acc[t] = _mm256_setzero_ps();
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
            const __m256i s8 = _mm256_sub_epi32(fold512_epi32(sumi), _mm256_slli_epi32(off, 5));
            float yd;
            memcpy(&yd, rec, 4);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(yd * d), _mm256_cvtepi32_ps(s8), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        out[(size_t)t * ostride] = hsum8(acc[t]);
}

/* ---------------------------------------- llama.cpp's tiled K-quant order
 * For a matmul of KINFER_GEMM_TILED_MIN_TOKENS tokens or more, llama.cpp
 * runs Q5_K and Q6_K weights (not repacked) through its tiled kernel
 * (ggml-cpu/tiled): per super-block b one exact integer per (row, token),
 * S_b = sum of scale * (q . y) over the block (Q6_K: with the -32 offset,
 * sc * 32 * bsum, taken off), and for Q5_K M_b = sum of min * bsum; then
 *   r = float(S_b) * d_x;  Q5_K: r = r - dmin_x * float(M_b) (fused);
 *   acc = fma(r, d_y, acc) (the compiler contracts ggml's mul + add),
 * acc from 0, blocks in order. */

/* The block integers of tokens t0 .. t0 + 3 (lanes) of one weight block in
 * these float steps. */
static ALWAYS_INLINE __m128 tiled_step4(__m128 acc, __m128i s4, __m128i m4, float dx, float mx, __m128 yd4)
{
    __m128 r = _mm_mul_ps(_mm_cvtepi32_ps(s4), _mm_set1_ps(dx));
    r = _mm_fnmadd_ps(_mm_set1_ps(mx), _mm_cvtepi32_ps(m4), r);
    return _mm_fmadd_ps(r, yd4, acc);
}

/* Q6_K rows decoded for the tiled kernel once per row chunk (the kernel
 * visits a chunk once per token group), in groups of 16 rows (the last one
 * R = nr % 16 rows) with the rows in the lanes.  Per super-block a record
 * of Q6K_REC * R bytes: 64 runs of R dwords (run g: each row's unsigned
 * quants 4g .. 4g + 3, as q6_K_half gives them), the rows' scales of
 * sub-blocks 2c, 2c + 1 as an i16 pair (run 64 + c), then d (run 72);
 * within the room of R decoded rows. */
#define Q6K_REC (64 * 4 + 8 * 4 + 4)
_Static_assert(Q6K_REC <= (32 + 8) * (QK_K / 32), "a Q6_K record fits in R decoded rows' room");

static void decode_rows_q6_K_tiled(int64_t n, const void *w, size_t ws, int nr, uint8_t *out)
{
    const int64_t nb = n / QK_K;
    const size_t dstride = kinfer_gemm_decoded_row_size(n);
    for (int i = 0; i < nr; i += 16) {
        const int R = nr - i < 16 ? nr - i : 16;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *q = out + (size_t)i * dstride + (size_t)b * Q6K_REC * R;
            for (int r = 0; r < R; r++) {
                const block_q6_K *x = (const block_q6_K *)((const uint8_t *)w + (size_t)(i + r) * ws) + b;
                uint8_t v[QK_K];
                for (int h = 0; h < 2; h++) {
                    __m256i h4[4];
                    q6_K_half(x, h, h4);
                    for (int k = 0; k < 4; k++)
                        _mm256_storeu_si256((__m256i *)(v + 128 * h + 32 * k), h4[k]);
                }
                for (int g = 0; g < 64; g++)
                    memcpy(q + 4 * ((size_t)g * R + r), v + 4 * g, 4);
                for (int c = 0; c < 8; c++) {
                    const int16_t pair[2] = {x->scales[2 * c], x->scales[2 * c + 1]};
                    memcpy(q + 4 * ((size_t)(64 + c) * R + r), pair, 4);
                }
                const float d = fp16(x->d);
                memcpy(q + 4 * ((size_t)72 * R + r), &d, 4);
            }
        }
    }
}

/* Q6_K in the tiled order, one group of R (1 .. 16) decoded rows
 * (decode_rows_q6_K_tiled), the rows in the lanes, NT tokens: per block
 * each lane's integer is its (row, token)'s s = sum_j sc_j S_j - 32 sum_j
 * sc_j bsum_j, exact in int32 (|S_j| <= 16 * 63 * 128, |sc| <= 128), the
 * offset by vpdpwssd of -32 sc (under 2^15) with the bsum pairs. */
static ALWAYS_INLINE void gemm_q6_K_rows16(int64_t n, const uint8_t *w, int R, const uint8_t *a, size_t astride,
                                           int NT, float *out, size_t ostride)
{
    const int64_t nb = n / QK_K;
    const size_t rofs = (size_t)nb * QK_K;
    const __mmask16 rows = (__mmask16)((1u << R) - 1);
    __m512 acc[KINFER_GEMM_MAX_NT];
    __m512i isum[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q = w + (size_t)b * Q6K_REC * R;
        const uint8_t *yq[KINFER_GEMM_MAX_NT], *rec[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            yq[t] = a + (size_t)t * astride + (size_t)b * QK_K;
            rec[t] = a + (size_t)t * astride + rofs + (size_t)b * KREC;
            isum[t] = _mm512_setzero_si512();
        }
        for (int c = 0; c < 8; c++) {
            const __m512i pair = _mm512_maskz_loadu_epi32(rows, q + 4 * (64 + c) * R);
            /* -32 sc_2c, -32 sc_2c+1 against the tokens' bsum pairs */
            const __m512i off = _mm512_sub_epi16(_mm512_setzero_si512(), _mm512_slli_epi16(pair, 5));
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                int32_t b2;
                memcpy(&b2, rec[t] + 32 + 4 * c, 4);
                isum[t] = _mm512_dpwssd_epi32(isum[t], off, _mm512_set1_epi32(b2));
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const int j = 2 * c + h;
                const __m512i sc = h ? _mm512_srai_epi32(pair, 16) : _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16);
                __m512i S[KINFER_GEMM_MAX_NT];
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++)
                    S[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int g = 0; g < 4; g++) {
                    const __m512i qv = _mm512_maskz_loadu_epi32(rows, q + 4 * (4 * j + g) * R);
#pragma GCC unroll 8
                    for (int t = 0; t < NT; t++) {
                        int32_t y4;
                        memcpy(&y4, yq[t] + 16 * j + 4 * g, 4);
                        S[t] = _mm512_dpbusd_epi32(S[t], qv, _mm512_set1_epi32(y4));
                    }
                }
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++)
                    isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(S[t], sc));
            }
        }
        const __m512 d = _mm512_maskz_loadu_ps(rows, q + 4 * 72 * R);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            float yd;
            memcpy(&yd, rec[t], 4);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum[t]), d), _mm512_set1_ps(yd), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        _mm512_mask_storeu_ps(out + (size_t)t * ostride, rows, acc[t]);
}

/* Q5_K weights, NT tokens, one row (4 tokens a step). */
static ALWAYS_INLINE void gemm_q5_K_tiled_n(int64_t n, const void *w, const uint8_t *a, size_t astride, int NT,
                                            float *out, size_t ostride)
{
    const int64_t nb = n / QK_K;
    const size_t rofs = (size_t)nb * QK_K;
    const int NG = (NT + 3) / 4;
    __m128 acc[KINFER_GEMM_MAX_NT / 4];
#pragma GCC unroll 2
    for (int g = 0; g < NG; g++)
        acc[g] = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m512i v[4], sc[4];
        __m128i mins16;
        const block_q5_K *x = (const block_q5_K *)w + b;
        k4_decode(x, 1, v, sc, &mins16);
        const float dx = fp16(x->d), mx = fp16(x->dmin);
#pragma GCC unroll 2
        for (int g = 0; g < NG; g++) {
            /* a short last group repeats its last token */
            __m512i sumi[4];
            int mi[4] = {0, 0, 0, 0};
            float yd[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const int t = 4 * g + k < NT ? 4 * g + k : NT - 1;
                const uint8_t *y = a + (size_t)t * astride;
                const uint8_t *yq = y + (size_t)b * QK_K, *rec = y + rofs + (size_t)b * KREC;
                __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(v[c], _mm512_loadu_si512(yq + 64 * c)), sc[c]);
                mi[k] = k4_min_term_hb(rec + 16, mins16);
                sumi[k] = s;
                memcpy(&yd[k], rec, 4);
            }
            acc[g] = tiled_step4(acc[g], hsum4_epi32(sumi[0], sumi[1], sumi[2], sumi[3]),
                                 _mm_loadu_si128((const __m128i *)mi), dx, mx, _mm_loadu_ps(yd));
        }
    }
#pragma GCC unroll 2
    for (int g = 0; g < NG; g++) {
        float r[4];
        _mm_storeu_ps(r, acc[g]);
        for (int k = 0; k < 4 && 4 * g + k < NT; k++)
            out[(size_t)(4 * g + k) * ostride] = r[k];
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

#define CALL2_q5_K(k) CALL_q5_K(k)
#define CALL_q5_K(k) gemm_q5_K_n(n, w, a, astride, k, out, ostride)
#define CALL2_q6_K(k) CALL_q6_K(k)
#define CALL_q6_K(k) gemm_q6_K_n(n, w, a, astride, k, out, ostride)

/* decoded rows w + i * ws, i < nr, four at a time (the last 1 .. 3
 * together), each against the token pairs of the packed group a */
static ALWAYS_INLINE void gemm_rows(int64_t n, const uint8_t *w, size_t ws, int nr, int min_layout, const uint8_t *a,
                                    int nt, float *out, size_t ostride)
{
#define TILE(R, NP) gemm_tile(n, w + (size_t)i * ws, ws, R, min_layout, a, NP, out + i, ostride, nt)
#define TILE_NP(R)                                                                             \
    switch ((nt + 1) / 2) {                                                                    \
    case 1: TILE(R, 1); break;                                                                 \
    case 2: TILE(R, 2); break;                                                                 \
    case 3: TILE(R, 3); break;                                                                 \
    default: TILE(R, 4); break;                                                                \
    }
    for (int i = 0; i < nr; i += 4) {
        switch (nr - i < 4 ? nr - i : 4) {
        case 1: TILE_NP(1) break;
        case 2: TILE_NP(2) break;
        case 3: TILE_NP(3) break;
        default: TILE_NP(4) break;
        }
    }
#undef TILE_NP
#undef TILE
}

/* against Q8_0 activations (an offset) and against Q8_1 ones (a min) */
static void gemm_decoded_off(int64_t n, const void *w, size_t ws, int nr, const uint8_t *a, size_t astride, int nt,
                             float *out, size_t ostride)
{
    (void)astride;
    gemm_rows(n, w, ws, nr, 0, a, nt, out, ostride);
}

static void gemm_decoded_min(int64_t n, const void *w, size_t ws, int nr, const uint8_t *a, size_t astride, int nt,
                             float *out, size_t ostride)
{
    (void)astride;
    gemm_rows(n, w, ws, nr, 1, a, nt, out, ostride);
}

#define DEFINE_DECODE(name, block, decode, min_layout, qh_off)                                   \
    static void decode_rows_##name(int64_t n, const void *w, size_t ws, int nr, uint8_t *out)       \
    {                                                                                            \
        decode_rows(n, w, ws, nr, sizeof(block), decode, min_layout, offsetof(block, qs), qh_off, out); \
    }
DEFINE_DECODE(q4_0, block_q4_0, decode_q4_0, 0, -1)
DEFINE_DECODE(q5_0, block_q5_0, decode_q5_0, 0, -1)
DEFINE_DECODE(q8_0, block_q8_0, decode_q8_0, 0, -1)
DEFINE_DECODE(iq4_nl, block_iq4_nl, decode_iq4_nl, 0, -1)
DEFINE_DECODE(q4_1, block_q4_1, NULL, 1, -1)
DEFINE_DECODE(q5_1, block_q5_1, NULL, 1, (int)offsetof(block_q5_1, qh))
DEFINE_GEMM(q5_K, 1)
DEFINE_GEMM(q6_K, 1)

/* decoded rows w + i * ws, i < nr, in groups of 16 (decode_rows_q4_K_lanes) */
#define DEFINE_Q4_K_LANES(name, GEMV)                                                                            \
    static void name(int64_t n, const void *w0, size_t ws, int nr, const uint8_t *a, size_t astride, int nt,    \
                     float *out0, size_t ostride)                                                                \
    {                                                                                                            \
        for (int i = 0; i < nr; i += 16) {                                                                       \
            const uint8_t *w = (const uint8_t *)w0 + (size_t)i * ws;                                             \
            const int r = nr - i < 16 ? nr - i : 16;                                                             \
            float *out = out0 + i;                                                                               \
            NT_SWITCH(CALL_Q4_K_ROWS16_##GEMV)                                                                   \
        }                                                                                                        \
    }
#define CALL_Q4_K_ROWS16_0(k) gemm_q4_K_rows16(n, w, r, a, astride, k, out, ostride, 0)
#define CALL_Q4_K_ROWS16_1(k) gemm_q4_K_rows16(n, w, r, a, astride, k, out, ostride, 1)
DEFINE_Q4_K_LANES(gemm_q4_K_lanes, 0)
DEFINE_Q4_K_LANES(gemm_q4_K_lanes_gemv, 1) /* mul_mat_id's: every token in the gemv order (= vec_dot) */

#define CALL_q5_K_tiled(k) gemm_q5_K_tiled_n(n, w, a, astride, k, out, ostride)
#define CALL2_q5_K_tiled(k) CALL_q5_K_tiled(k)
DEFINE_GEMM(q5_K_tiled, 1)

/* decoded rows w + i * ws, i < nr, in groups of 16 (decode_rows_q6_K_tiled) */
static void gemm_q6_K_tiled(int64_t n, const void *w0, size_t ws, int nr, const uint8_t *a, size_t astride, int nt,
                            float *out0, size_t ostride)
{
    for (int i = 0; i < nr; i += 16) {
        const uint8_t *w = (const uint8_t *)w0 + (size_t)i * ws;
        const int r = nr - i < 16 ? nr - i : 16;
        float *out = out0 + i;
#define CALL_Q6_K_ROWS16(k) gemm_q6_K_rows16(n, w, r, a, astride, k, out, ostride)
        NT_SWITCH(CALL_Q6_K_ROWS16)
#undef CALL_Q6_K_ROWS16
    }
}

/* decoded rows w + i * ws, i < nr, in groups of 16 (decode_rows_q4_0_repacked) */
static void gemm_q4_0_repacked(int64_t n, const void *w0, size_t ws, int nr, const uint8_t *a, size_t astride, int nt,
                               float *out0, size_t ostride)
{
    (void)astride;
    for (int i = 0; i < nr; i += 16) {
        const uint8_t *w = (const uint8_t *)w0 + (size_t)i * ws;
        const int R = nr - i < 16 ? nr - i : 16;
        float *out = out0 + i;
#define CALL_ROWS16(k) gemm_q4_0_repacked_rows16(n, w, R, a, k, out, ostride)
        NT_SWITCH(CALL_ROWS16)
#undef CALL_ROWS16
    }
}

void kinfer_avx512_fill_gemm(kinfer_cpu_table *t)
{
    t->gemm[KINFER_TYPE_Q4_0] = (kinfer_gemm_kernels){
        .gemm = gemm_decoded_off, .pack_group = pack_group_off8, .decode = decode_rows_q4_0};
    t->gemm[KINFER_TYPE_Q5_0] = (kinfer_gemm_kernels){
        .gemm = gemm_decoded_off, .pack_group = pack_group_off16, .decode = decode_rows_q5_0};
    t->gemm[KINFER_TYPE_Q8_0] = (kinfer_gemm_kernels){
        .gemm = gemm_decoded_off, .pack_group = pack_group_off128, .decode = decode_rows_q8_0};
    t->gemm[KINFER_TYPE_IQ4_NL] = (kinfer_gemm_kernels){
        .gemm = gemm_decoded_off, .pack_group = pack_group_off128, .decode = decode_rows_iq4_nl};
    t->gemm[KINFER_TYPE_Q4_1] = (kinfer_gemm_kernels){
        .gemm = gemm_decoded_min, .pack_group = pack_group_q8_1, .decode = decode_rows_q4_1};
    t->gemm[KINFER_TYPE_Q5_1] = (kinfer_gemm_kernels){
        .gemm = gemm_decoded_min, .pack_group = pack_group_q8_1, .decode = decode_rows_q5_1};
    t->gemm[KINFER_TYPE_Q4_K] = (kinfer_gemm_kernels){
        .pack = pack_q8_K, .gemm = gemm_q4_K_lanes, .decode = decode_rows_q4_K_lanes, .row_group = 16};
    t->gemm[KINFER_TYPE_Q5_K] = (kinfer_gemm_kernels){.pack = pack_q8_K, .gemm = gemm_q5_K};
    /* row_group: the tiled kernel's (gemm_q6_K_tiled: 16 rows in the lanes) */
    t->gemm[KINFER_TYPE_Q6_K] = (kinfer_gemm_kernels){.pack = pack_q8_K, .gemm = gemm_q6_K, .row_group = 16};

    t->gemm_mmid[KINFER_TYPE_Q4_K] = (kinfer_gemm_kernels){
        .pack = pack_q8_K, .gemm = gemm_q4_K_lanes_gemv, .decode = decode_rows_q4_K_lanes, .row_group = 16};

    t->gemm_tiled[KINFER_TYPE_Q5_K] = gemm_q5_K_tiled;
    t->gemm_tiled[KINFER_TYPE_Q6_K] = gemm_q6_K_tiled;
    t->gemm_tiled_decode[KINFER_TYPE_Q6_K] = decode_rows_q6_K_tiled;

    t->gemm_repacked[KINFER_TYPE_Q4_0] = (kinfer_gemm_kernels){
        .gemm = gemm_q4_0_repacked, .pack_group = pack_group_q4_0_repacked, .decode = decode_rows_q4_0_repacked,
        .row_group = KINFER_GEMM_REPACKED_ROWS};
}
