/*
 * attn_avx2.c — AVX2 + FMA + F16C attention kernels (see attn_kernels.h).
 * Compiled with -mavx2 -mfma -mf16c; only called after the CPU was checked
 * for them.
 *
 * The weighted sum keeps up to 64 outputs in 8 registers while it streams
 * the rows, so each row is read once per head and out is written once.
 */
#include <immintrin.h>

#include "cpu/attn_kernels.h"
#include "cpu/kernels.h"
#include "quant.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CHUNK 64 /* outputs per pass: 8 ymm */

/* kind 0 = F32, 1 = F16 */
static ALWAYS_INLINE __m256 load8(int kind, const uint8_t *p, int j)
{
    if (kind == 0) return _mm256_loadu_ps((const float *)p + 8 * j);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const kinfer_fp16 *)p + 8 * j)));
}

static ALWAYS_INLINE void float_chunk(int kind, int nv, float *out, const uint8_t *base,
                                      size_t stride, const int32_t *rows, const float *w,
                                      int32_t nr)
{
    __m256 acc[8];
    for (int j = 0; j < nv; j++) acc[j] = _mm256_setzero_ps();
    for (int32_t r = 0; r < nr; r++) {
        const uint8_t *v = base + (size_t)rows[r] * stride;
        const __m256 wr = _mm256_set1_ps(w[r]);
        for (int j = 0; j < nv; j++) acc[j] = _mm256_fmadd_ps(wr, load8(kind, v, j), acc[j]);
    }
    for (int j = 0; j < nv; j++) _mm256_storeu_ps(out + 8 * j, acc[j]);
}

static ALWAYS_INLINE void wsum_float(int kind, float *out, int64_t n, const uint8_t *base,
                                     size_t stride, const int32_t *rows, const float *w, int32_t nr)
{
    const size_t esz = kind == 0 ? 4 : 2;
    const int64_t n8 = n & ~(int64_t)7;
    for (int64_t d0 = 0; d0 < n8; d0 += CHUNK) {
        const int nv = (int)((n8 - d0 < CHUNK ? n8 - d0 : CHUNK) / 8);
        const uint8_t *b = base + (size_t)d0 * esz;
        float *o = out + d0;
        switch (nv) { /* constant register counts, so acc stays in registers */
        case 1: float_chunk(kind, 1, o, b, stride, rows, w, nr); break;
        case 2: float_chunk(kind, 2, o, b, stride, rows, w, nr); break;
        case 3: float_chunk(kind, 3, o, b, stride, rows, w, nr); break;
        case 4: float_chunk(kind, 4, o, b, stride, rows, w, nr); break;
        case 5: float_chunk(kind, 5, o, b, stride, rows, w, nr); break;
        case 6: float_chunk(kind, 6, o, b, stride, rows, w, nr); break;
        case 7: float_chunk(kind, 7, o, b, stride, rows, w, nr); break;
        default: float_chunk(kind, 8, o, b, stride, rows, w, nr); break;
        }
    }
    for (int64_t d = n8; d < n; d++) { /* the odd tail, element by element */
        float acc = 0.0f;
        for (int32_t r = 0; r < nr; r++) {
            const uint8_t *v = base + (size_t)rows[r] * stride;
            const float x = kind == 0 ? ((const float *)v)[d]
                                      : kinfer_fp16_to_fp32(((const kinfer_fp16 *)v)[d]);
            acc = __builtin_fmaf(w[r], x, acc);
        }
        out[d] = acc;
    }
}

static void wsum_f32(float *out, int64_t n, const uint8_t *base, size_t stride,
                     const int32_t *rows, const float *w, int32_t nr)
{
    wsum_float(0, out, n, base, stride, rows, w, nr);
}

static void wsum_f16(float *out, int64_t n, const uint8_t *base, size_t stride,
                     const int32_t *rows, const float *w, int32_t nr)
{
    wsum_float(1, out, n, base, stride, rows, w, nr);
}

/* Q8_0: nb blocks of 32 of each row; v = q * d (as the dequantizer rounds
 * it), then out += w * v. */
static ALWAYS_INLINE void q8_chunk(int nb, float *out, const uint8_t *base, size_t stride,
                                   const int32_t *rows, const float *w, int32_t nr)
{
    __m256 acc[8];
    for (int j = 0; j < 4 * nb; j++) acc[j] = _mm256_setzero_ps();
    for (int32_t r = 0; r < nr; r++) {
        const block_q8_0 *blk = (const block_q8_0 *)(base + (size_t)rows[r] * stride);
        const __m256 wr = _mm256_set1_ps(w[r]);
        for (int i = 0; i < nb; i++) {
            const __m256 d = _mm256_set1_ps(kinfer_fp16_to_fp32(blk[i].d));
            for (int k = 0; k < 4; k++) {
                const __m128i q = _mm_loadl_epi64((const __m128i *)(blk[i].qs + 8 * k));
                const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
                acc[4 * i + k] = _mm256_fmadd_ps(wr, v, acc[4 * i + k]);
            }
        }
    }
    for (int j = 0; j < 4 * nb; j++) _mm256_storeu_ps(out + 8 * j, acc[j]);
}

static void wsum_q8_0(float *out, int64_t n, const uint8_t *base, size_t stride,
                      const int32_t *rows, const float *w, int32_t nr)
{
    const int64_t nblk = n / QK8_0;
    for (int64_t b0 = 0; b0 < nblk; b0 += 2) {
        const uint8_t *b = base + (size_t)b0 * sizeof(block_q8_0);
        if (nblk - b0 >= 2)
            q8_chunk(2, out + b0 * QK8_0, b, stride, rows, w, nr);
        else
            q8_chunk(1, out + b0 * QK8_0, b, stride, rows, w, nr);
    }
}

kinfer_attn_wsum_fn kinfer_attn_wsum_avx2(int type)
{
    switch (type) {
    case KINFER_TYPE_F32: return wsum_f32;
    case KINFER_TYPE_F16: return wsum_f16;
    case KINFER_TYPE_Q8_0: return wsum_q8_0;
    default: return NULL;
    }
}
