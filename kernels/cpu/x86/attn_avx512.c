/*
 * attn_avx512.c — AVX-512 attention kernels (see attn_kernels.h).  Compiled
 * with the AVX-512 flags; only called after the CPU was checked for them.
 *
 * Weighted sum: rows go in tiles small enough for L1; for each tile, 64
 * outputs of each of the g heads (16 registers) at a time take every row of
 * the tile, so a row is fetched from memory once for all heads.  Partial
 * sums go through out between tiles (exact), so the result is the plain
 * row-order sum whatever the tiling.
 */
#include <immintrin.h>

#include "cpu/isa.h"
#include "cpu/x86/vexp_avx512.h"
#include "quant.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CHUNK 64          /* outputs per head per pass: 4 zmm */
#define TILE_BYTES 16384  /* row bytes per tile (of the head's slice) */
#define PF_AHEAD 12       /* rows prefetched ahead */

enum { K_F32, K_F16, K_Q8_0 };

/* Vector j (16 elements) of a chunk of a row (p: the chunk's first byte). */
static ALWAYS_INLINE __m512 load_vec(int kind, const uint8_t *p, int j, __mmask16 m)
{
    if (kind == K_F32) return _mm512_maskz_loadu_ps(m, (const float *)p + 16 * j);
    if (kind == K_F16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const kinfer_fp16 *)p + 16 * j));
    const block_q8_0 *b = (const block_q8_0 *)p + j / 2;
    const __m128i q = _mm_loadu_si128((const __m128i *)(b->qs + 16 * (j % 2)));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)),
                         _mm512_set1_ps(kinfer_fp16_to_fp32(b->d)));
}

/* Rows [r0, r1) into G heads x NV vectors of outputs (last vector masked). */
static ALWAYS_INLINE void chunk_rows(int kind, int G, int NV, __mmask16 mlast, float *out,
                                    size_t ostride, const uint8_t *base, size_t stride,
                                    const int32_t *rows, const float *w, size_t wstride,
                                    int32_t r0, int32_t r1, size_t pf)
{
    __m512 acc[KINFER_ATTN_MAX_G][4];
#pragma GCC unroll 16
    for (int g = 0; g < G; g++)
#pragma GCC unroll 16
        for (int j = 0; j < NV; j++)
            acc[g][j] = r0 == 0 ? _mm512_setzero_ps()
                                : _mm512_maskz_loadu_ps(j == NV - 1 ? mlast : 0xFFFF,
                                                        out + g * ostride + 16 * j);
    for (int32_t r = r0; r < r1; r++) {
        const uint8_t *v = base + (size_t)rows[r] * stride;
        if (pf && r + PF_AHEAD < r1) {
            const uint8_t *pv = base + (size_t)rows[r + PF_AHEAD] * stride;
            for (size_t o = 0; o < pf; o += 64) _mm_prefetch((const char *)pv + o, _MM_HINT_T0);
        }
        __m512 x[4];
#pragma GCC unroll 16
        for (int j = 0; j < NV; j++) x[j] = load_vec(kind, v, j, j == NV - 1 ? mlast : 0xFFFF);
#pragma GCC unroll 16
        for (int g = 0; g < G; g++) {
            const __m512 wr = _mm512_set1_ps(w[g * wstride + r]);
#pragma GCC unroll 16
            for (int j = 0; j < NV; j++) acc[g][j] = _mm512_fmadd_ps(wr, x[j], acc[g][j]);
        }
    }
#pragma GCC unroll 16
    for (int g = 0; g < G; g++)
#pragma GCC unroll 16
        for (int j = 0; j < NV; j++)
            _mm512_mask_storeu_ps(out + g * ostride + 16 * j, j == NV - 1 ? mlast : 0xFFFF, acc[g][j]);
}

#define CASE_NV(kind, G)                                                                     \
    switch (nv) {                                                                            \
    case 1: chunk_rows(kind, G, 1, m, o, ostride, b, stride, rows, w, wstride, r0, r1, pf); break; \
    case 2: chunk_rows(kind, G, 2, m, o, ostride, b, stride, rows, w, wstride, r0, r1, pf); break; \
    case 3: chunk_rows(kind, G, 3, m, o, ostride, b, stride, rows, w, wstride, r0, r1, pf); break; \
    default: chunk_rows(kind, G, 4, m, o, ostride, b, stride, rows, w, wstride, r0, r1, pf); break; \
    }

static ALWAYS_INLINE void wsum(int kind, float *out, size_t ostride, int g, int64_t n,
                               const uint8_t *base, size_t stride, const int32_t *rows,
                               const float *w, size_t wstride, int32_t nr)
{
    const size_t head_bytes = kind == K_F32 ? (size_t)n * 4
                            : kind == K_F16 ? (size_t)n * 2
                                            : (size_t)(n / QK8_0) * sizeof(block_q8_0);
    int32_t tile = (int32_t)(TILE_BYTES / (head_bytes ? head_bytes : 1));
    if (tile < 8) tile = 8;
    int32_t r0 = 0;
    do { /* at least once: nr = 0 writes zeros */
        const int32_t r1 = nr - r0 < tile ? nr : r0 + tile;
        for (int64_t d0 = 0; d0 < n; d0 += CHUNK) {
            const int64_t len = n - d0 < CHUNK ? n - d0 : CHUNK;
            const int nv = (int)((len + 15) / 16);
            const __mmask16 m = len % 16 ? (__mmask16)((1u << (len % 16)) - 1) : (__mmask16)0xFFFF;
            const uint8_t *b = base + (kind == K_F32 ? (size_t)d0 * 4
                                     : kind == K_F16 ? (size_t)d0 * 2
                                                     : (size_t)(d0 / QK8_0) * sizeof(block_q8_0));
            float *o = out + d0;
            const size_t pf = d0 == 0 ? head_bytes : 0; /* prefetch on the first pass */
            switch (g) { /* constant register counts, so acc stays in registers */
            case 1: CASE_NV(kind, 1); break;
            case 2: CASE_NV(kind, 2); break;
            case 3: CASE_NV(kind, 3); break;
            default: CASE_NV(kind, 4); break;
            }
        }
        r0 = r1;
    } while (r0 < nr);
}

static void wsum_f32(float *out, size_t ostride, int g, int64_t n, const uint8_t *base,
                     size_t stride, const int32_t *rows, const float *w, size_t wstride, int32_t nr)
{
    wsum(K_F32, out, ostride, g, n, base, stride, rows, w, wstride, nr);
}

static void wsum_f16(float *out, size_t ostride, int g, int64_t n, const uint8_t *base,
                     size_t stride, const int32_t *rows, const float *w, size_t wstride, int32_t nr)
{
    wsum(K_F16, out, ostride, g, n, base, stride, rows, w, wstride, nr);
}

static void wsum_q8_0(float *out, size_t ostride, int g, int64_t n, const uint8_t *base,
                      size_t stride, const int32_t *rows, const float *w, size_t wstride, int32_t nr)
{
    wsum(K_Q8_0, out, ostride, g, n, base, stride, rows, w, wstride, nr);
}

/* ------------------------------------------------------------- scores */

#define SCORES_MAX_N 512 /* head sizes up to this (multiples of 16) */

/* v[r] = horizontal sum of a[r] for 16 vectors: a tree of lane shuffles,
 * the same for every r. */
static ALWAYS_INLINE __m512 hsum16(const __m512 *a)
{
    __m512 w[8], u[4];
    for (int i = 0; i < 8; i++) /* 128-bit lanes: [a0+a2, a1+a3, b0+b2, b1+b3] */
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++) /* lane l: row 4i + l, 4 partials */
        u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xDD));
    const __m512 pq = _mm512_add_ps(_mm512_unpacklo_ps(u[0], u[1]), _mm512_unpackhi_ps(u[0], u[1]));
    const __m512 rs = _mm512_add_ps(_mm512_unpacklo_ps(u[2], u[3]), _mm512_unpackhi_ps(u[2], u[3]));
    const __m512 t = _mm512_add_ps(_mm512_shuffle_ps(pq, rs, 0x44), _mm512_shuffle_ps(pq, rs, 0xEE));
    /* element 4l + k holds row 4k + l */
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(idx, t);
}

static ALWAYS_INLINE void scores(int kind, float *s, size_t s_stride, int g, int64_t n,
                                 const uint8_t *base, size_t stride, const int32_t *rows,
                                 int32_t nr, const void *q, size_t q_stride, float scale)
{
    float qf[KINFER_ATTN_MAX_G][SCORES_MAX_N] __attribute__((aligned(64)));
    for (int k = 0; k < g; k++) {
        const uint8_t *qk = (const uint8_t *)q + (size_t)k * q_stride;
        for (int64_t d = 0; d < n; d += 16)
            _mm512_store_ps(qf[k] + d, load_vec(kind, qk, (int)(d / 16), 0xFFFF));
    }
    const int nv = (int)(n / 16);
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 acc[KINFER_ATTN_MAX_G][16];
    for (int32_t r0 = 0; r0 < nr; r0 += 16) {
        const int m = nr - r0 < 16 ? nr - r0 : 16;
        for (int i = 0; i < 16; i++) {
            if (i >= m) {
#pragma GCC unroll 16
                for (int k = 0; k < g; k++) acc[k][i] = _mm512_setzero_ps();
                continue;
            }
            const uint8_t *v = base + (size_t)rows[r0 + i] * stride;
            if (r0 + i + PF_AHEAD < nr) {
                const uint8_t *pv = base + (size_t)rows[r0 + i + PF_AHEAD] * stride;
                for (int64_t o = 0; o < nv * 16 * (kind == K_F32 ? 4 : 2); o += 64)
                    _mm_prefetch((const char *)pv + o, _MM_HINT_T0);
            }
            __m512 a[KINFER_ATTN_MAX_G];
#pragma GCC unroll 16
            for (int k = 0; k < g; k++) a[k] = _mm512_setzero_ps();
            for (int j = 0; j < nv; j++) {
                const __m512 x = load_vec(kind, v, j, 0xFFFF);
#pragma GCC unroll 16
                for (int k = 0; k < g; k++) a[k] = _mm512_fmadd_ps(x, _mm512_load_ps(qf[k] + 16 * j), a[k]);
            }
#pragma GCC unroll 16
            for (int k = 0; k < g; k++) acc[k][i] = a[k];
        }
        const __mmask16 mk = m == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << m) - 1);
        for (int k = 0; k < g; k++)
            _mm512_mask_storeu_ps(s + (size_t)k * s_stride + r0, mk, _mm512_mul_ps(hsum16(acc[k]), vs));
    }
}

#define DEFINE_SCORES(name, kind)                                                               \
    static void scores_##name(float *s, size_t s_stride, int g, int64_t n, const uint8_t *base, \
                              size_t stride, const int32_t *rows, int32_t nr, const void *q,    \
                              size_t q_stride, float scale)                                     \
    {                                                                                           \
        switch (g) {                                                                            \
        case 1: scores(kind, s, s_stride, 1, n, base, stride, rows, nr, q, q_stride, scale); break; \
        case 2: scores(kind, s, s_stride, 2, n, base, stride, rows, nr, q, q_stride, scale); break; \
        case 3: scores(kind, s, s_stride, 3, n, base, stride, rows, nr, q, q_stride, scale); break; \
        default: scores(kind, s, s_stride, 4, n, base, stride, rows, nr, q, q_stride, scale); break; \
        }                                                                                       \
    }

DEFINE_SCORES(f32, K_F32)
DEFINE_SCORES(f16, K_F16)


/* ------------------------------------------------------------ softmax */

static ALWAYS_INLINE __mmask16 tail_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* x rounded to fp16 and back, ties to even: the F16C instructions, which
 * kinfer_fp32_to_fp16 matches bit for bit (test_quant checks every half). */
static void round_fp16(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_storeu_ps(x + i, m, _mm512_cvtph_ps(h));
    }
}

void kinfer_avx512_fill_attn(kinfer_cpu_table *t)
{
    t->attn_wsum[KINFER_TYPE_F32] = wsum_f32;
    t->attn_wsum[KINFER_TYPE_F16] = wsum_f16;
    t->attn_wsum[KINFER_TYPE_Q8_0] = wsum_q8_0;
    t->attn_scores[KINFER_TYPE_F32] = scores_f32;
    t->attn_scores[KINFER_TYPE_F16] = scores_f16;
    t->attn_scores_max_n = SCORES_MAX_N;
    t->attn_round_fp16 = round_fp16;
}
