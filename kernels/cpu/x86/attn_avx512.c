/*
 * attn_avx512.c — AVX-512 attention kernels (see attn_kernels.h).  Compiled
 * with the AVX-512 flags; only called after the CPU was checked for them.
 *
 * The weighted sum keeps up to 128 outputs in 8 registers while it streams
 * the rows, so each row is read once per head and out is written once.
 */
#include <immintrin.h>

#include "cpu/attn_kernels.h"
#include "cpu/kernels.h"
#include "quant.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CHUNK 128 /* outputs per pass: 8 zmm */

/* kind 0 = F32, 1 = F16 */
static ALWAYS_INLINE __m512 load16(int kind, const uint8_t *p, int j, __mmask16 m)
{
    if (kind == 0) return _mm512_maskz_loadu_ps(m, (const float *)p + 16 * j);
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const kinfer_fp16 *)p + 16 * j));
}

/* out[0, 16 * nv) (the last vector masked by mlast) for rows at base. */
static ALWAYS_INLINE void float_chunk(int kind, int nv, __mmask16 mlast, float *out,
                                      const uint8_t *base, size_t stride, const int32_t *rows,
                                      const float *w, int32_t nr)
{
    __m512 acc[8];
    for (int j = 0; j < nv; j++) acc[j] = _mm512_setzero_ps();
    for (int32_t r = 0; r < nr; r++) {
        const uint8_t *v = base + (size_t)rows[r] * stride;
        const __m512 wr = _mm512_set1_ps(w[r]);
        for (int j = 0; j < nv; j++)
            acc[j] = _mm512_fmadd_ps(wr, load16(kind, v, j, j == nv - 1 ? mlast : 0xFFFF), acc[j]);
    }
    for (int j = 0; j < nv; j++) _mm512_mask_storeu_ps(out + 16 * j, j == nv - 1 ? mlast : 0xFFFF, acc[j]);
}

static ALWAYS_INLINE void wsum_float(int kind, float *out, int64_t n, const uint8_t *base,
                                     size_t stride, const int32_t *rows, const float *w, int32_t nr)
{
    const size_t esz = kind == 0 ? 4 : 2;
    for (int64_t d0 = 0; d0 < n; d0 += CHUNK) {
        const int64_t len = n - d0 < CHUNK ? n - d0 : CHUNK;
        const int nv = (int)((len + 15) / 16);
        const __mmask16 m = len % 16 ? (__mmask16)((1u << (len % 16)) - 1) : (__mmask16)0xFFFF;
        const uint8_t *b = base + (size_t)d0 * esz;
        float *o = out + d0;
        switch (nv) { /* constant register counts, so acc stays in registers */
        case 1: float_chunk(kind, 1, m, o, b, stride, rows, w, nr); break;
        case 2: float_chunk(kind, 2, m, o, b, stride, rows, w, nr); break;
        case 3: float_chunk(kind, 3, m, o, b, stride, rows, w, nr); break;
        case 4: float_chunk(kind, 4, m, o, b, stride, rows, w, nr); break;
        case 5: float_chunk(kind, 5, m, o, b, stride, rows, w, nr); break;
        case 6: float_chunk(kind, 6, m, o, b, stride, rows, w, nr); break;
        case 7: float_chunk(kind, 7, m, o, b, stride, rows, w, nr); break;
        default: float_chunk(kind, 8, m, o, b, stride, rows, w, nr); break;
        }
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

/* Q8_0: nb blocks of 32 from block b0 of each row; v = q * d (as the
 * dequantizer rounds it), then out += w * v. */
static ALWAYS_INLINE void q8_chunk(int nb, float *out, const uint8_t *base, size_t stride,
                                   const int32_t *rows, const float *w, int32_t nr)
{
    __m512 acc[8];
    for (int j = 0; j < 2 * nb; j++) acc[j] = _mm512_setzero_ps();
    for (int32_t r = 0; r < nr; r++) {
        const block_q8_0 *blk = (const block_q8_0 *)(base + (size_t)rows[r] * stride);
        const __m512 wr = _mm512_set1_ps(w[r]);
        for (int i = 0; i < nb; i++) {
            const __m512 d = _mm512_set1_ps(kinfer_fp16_to_fp32(blk[i].d));
            const __m128i q0 = _mm_loadu_si128((const __m128i *)blk[i].qs);
            const __m128i q1 = _mm_loadu_si128((const __m128i *)(blk[i].qs + 16));
            const __m512 v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d);
            const __m512 v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d);
            acc[2 * i] = _mm512_fmadd_ps(wr, v0, acc[2 * i]);
            acc[2 * i + 1] = _mm512_fmadd_ps(wr, v1, acc[2 * i + 1]);
        }
    }
    for (int j = 0; j < 2 * nb; j++) _mm512_storeu_ps(out + 16 * j, acc[j]);
}

static void wsum_q8_0(float *out, int64_t n, const uint8_t *base, size_t stride,
                      const int32_t *rows, const float *w, int32_t nr)
{
    const int64_t nblk = n / QK8_0;
    for (int64_t b0 = 0; b0 < nblk; b0 += 4) {
        const int nb = nblk - b0 < 4 ? (int)(nblk - b0) : 4;
        const uint8_t *b = base + (size_t)b0 * sizeof(block_q8_0);
        float *o = out + b0 * QK8_0;
        switch (nb) {
        case 1: q8_chunk(1, o, b, stride, rows, w, nr); break;
        case 2: q8_chunk(2, o, b, stride, rows, w, nr); break;
        case 3: q8_chunk(3, o, b, stride, rows, w, nr); break;
        default: q8_chunk(4, o, b, stride, rows, w, nr); break;
        }
    }
}

kinfer_attn_wsum_fn kinfer_attn_wsum_avx512(int type)
{
    switch (type) {
    case KINFER_TYPE_F32: return wsum_f32;
    case KINFER_TYPE_F16: return wsum_f16;
    case KINFER_TYPE_Q8_0: return wsum_q8_0;
    default: return NULL;
    }
}
