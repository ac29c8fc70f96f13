/*
 * attn_avx2.c — AVX2 + FMA + F16C attention kernels (see attn_kernels.h).
 * Compiled with -mavx2 -mfma -mf16c; only called after the CPU was checked
 * for them.
 *
 * Weighted sum: rows go in tiles small enough for L1; for each tile, 16
 * outputs of each of the g heads (8 registers) at a time take every row of
 * the tile, so a row is fetched from memory once for all heads.  Partial
 * sums go through out between tiles (exact), so the result is the plain
 * row-order sum whatever the tiling.
 */
#include <immintrin.h>

#include "cpu/isa.h"
#include "quant.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CHUNK 16          /* outputs per head per pass: 2 ymm */
#define TILE_BYTES 16384  /* row bytes per tile (of the head's slice) */

enum { K_F32, K_F16, K_Q8_0 };

/* Elements [e, e + 8) of a row. */
static ALWAYS_INLINE __m256 load8(int kind, const uint8_t *v, int64_t e)
{
    if (kind == K_F32) return _mm256_loadu_ps((const float *)v + e);
    if (kind == K_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const kinfer_fp16 *)v + e)));
    const block_q8_0 *b = (const block_q8_0 *)v + e / QK8_0;
    const __m128i q = _mm_loadl_epi64((const __m128i *)(b->qs + e % QK8_0));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)),
                         _mm256_set1_ps(kinfer_fp16_to_fp32(b->d)));
}

static ALWAYS_INLINE float load1(int kind, const uint8_t *v, int64_t e)
{
    if (kind == K_F32) return ((const float *)v)[e];
    return kinfer_fp16_to_fp32(((const kinfer_fp16 *)v)[e]); /* Q8_0 has no tail */
}

/* Rows [r0, r1) into G heads x NV vectors of outputs from element d0. */
static ALWAYS_INLINE void chunk_rows(int kind, int G, int NV, float *out, size_t ostride,
                                    int64_t d0, const uint8_t *base, size_t stride,
                                    const int32_t *rows, const float *w, size_t wstride,
                                    int32_t r0, int32_t r1)
{
    __m256 acc[KINFER_ATTN_MAX_G][2];
    for (int g = 0; g < G; g++)
        for (int j = 0; j < NV; j++)
            acc[g][j] = r0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(out + g * ostride + d0 + 8 * j);
    for (int32_t r = r0; r < r1; r++) {
        const uint8_t *v = base + (size_t)rows[r] * stride;
        __m256 x[2];
        for (int j = 0; j < NV; j++) x[j] = load8(kind, v, d0 + 8 * j);
        for (int g = 0; g < G; g++) {
            const __m256 wr = _mm256_set1_ps(w[g * wstride + r]);
            for (int j = 0; j < NV; j++) acc[g][j] = _mm256_fmadd_ps(wr, x[j], acc[g][j]);
        }
    }
    for (int g = 0; g < G; g++)
        for (int j = 0; j < NV; j++) _mm256_storeu_ps(out + g * ostride + d0 + 8 * j, acc[g][j]);
}

#define CASE_NV(kind, G)                                                                        \
    if (nv == 1)                                                                                \
        chunk_rows(kind, G, 1, out, ostride, d0, base, stride, rows, w, wstride, r0, r1);       \
    else                                                                                        \
        chunk_rows(kind, G, 2, out, ostride, d0, base, stride, rows, w, wstride, r0, r1);

static ALWAYS_INLINE void wsum(int kind, float *out, size_t ostride, int g, int64_t n,
                               const uint8_t *base, size_t stride, const int32_t *rows,
                               const float *w, size_t wstride, int32_t nr)
{
    const size_t head_bytes = kind == K_F32 ? (size_t)n * 4
                            : kind == K_F16 ? (size_t)n * 2
                                            : (size_t)(n / QK8_0) * sizeof(block_q8_0);
    const int64_t n8 = n & ~(int64_t)7;
    int32_t tile = (int32_t)(TILE_BYTES / (head_bytes ? head_bytes : 1));
    if (tile < 8) tile = 8;
    int32_t r0 = 0;
    do { /* at least once: nr = 0 writes zeros */
        const int32_t r1 = nr - r0 < tile ? nr : r0 + tile;
        for (int64_t d0 = 0; d0 < n8; d0 += CHUNK) {
            const int nv = n8 - d0 >= 16 ? 2 : 1;
            switch (g) { /* constant register counts, so acc stays in registers */
            case 1: CASE_NV(kind, 1); break;
            case 2: CASE_NV(kind, 2); break;
            case 3: CASE_NV(kind, 3); break;
            default: CASE_NV(kind, 4); break;
            }
        }
        r0 = r1;
    } while (r0 < nr);
    for (int k = 0; k < g; k++) /* the odd tail, element by element */
        for (int64_t d = n8; d < n; d++) {
            float acc = 0.0f;
            for (int32_t r = 0; r < nr; r++)
                acc = __builtin_fmaf(w[k * wstride + r], load1(kind, base + (size_t)rows[r] * stride, d), acc);
            out[k * ostride + d] = acc;
        }
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

void kinfer_avx2_fill_attn(kinfer_cpu_table *t)
{
    t->attn_wsum[KINFER_TYPE_F32] = wsum_f32;
    t->attn_wsum[KINFER_TYPE_F16] = wsum_f16;
    t->attn_wsum[KINFER_TYPE_Q8_0] = wsum_q8_0;
}
