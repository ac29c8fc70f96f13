/*
 * flash_attn_avx512.c — flash attention's vector pieces (flash_attn.h) on
 * AVX-512: the same element-wise roundings as the references, 16 lanes at
 * a time, and ggml_vec_soft_max_f32's exp and sums.
 */
#include <immintrin.h>
#include <math.h>

#include "cpu/isa.h"
#include "cpu/x86/vexp_avx512.h"

static inline __mmask16 lanes_left(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

static inline __m512 load_f16(const kinfer_fp16 *p, __mmask16 m)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static inline void store_f16(kinfer_fp16 *p, __m512 x, __mmask16 m)
{
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

static void mad_f16(int64_t n, kinfer_fp16 *acc, const kinfer_fp16 *v, float w)
{
    const __m512 vw = _mm512_set1_ps(w);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes_left(n - i);
        store_f16(acc + i, _mm512_fmadd_ps(load_f16(v + i, m), vw, load_f16(acc + i, m)), m);
    }
}

static void scale_f16(int64_t n, kinfer_fp16 *acc, float s)
{
    const __m512 vs = _mm512_set1_ps(s);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes_left(n - i);
        store_f16(acc + i, _mm512_mul_ps(load_f16(acc + i, m), vs), m);
    }
}

static void mad_f32(int64_t n, float *acc, const float *v, float w)
{
    const __m512 vw = _mm512_set1_ps(w);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes_left(n - i);
        _mm512_mask_storeu_ps(acc + i, m,
                              _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, v + i), vw, _mm512_maskz_loadu_ps(m, acc + i)));
    }
}

/* rows i0 .. i0+R-1 of c, columns j .. j+16*V-1 (the last vector masked by
 * m): R*V accumulators held in registers (the unroll pragmas let the
 * compiler keep the arrays out of memory) over the whole k chain */
#define GEMM_TILE(R, V)                                                                          \
    static void gemm_tile_##R##x##V(float *c, const float *a, const float *b, int k, int n, int j, \
                                    __mmask16 m)                                                 \
    {                                                                                            \
        __m512 acc[R][V];                                                                        \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                                  \
                acc[r][v] = _mm512_maskz_loadu_ps(v == V - 1 ? m : 0xFFFF, c + (size_t)r * n + j + 16 * v); \
        for (int p = 0; p < k; p++) {                                                            \
            __m512 bv[V];                                                                        \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                                  \
                bv[v] = _mm512_maskz_loadu_ps(v == V - 1 ? m : 0xFFFF, b + (size_t)p * n + j + 16 * v); \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                \
                const __m512 av = _mm512_set1_ps(a[(size_t)r * k + p]);                          \
                _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                              \
                    acc[r][v] = _mm512_fmadd_ps(bv[v], av, acc[r][v]);                           \
            }                                                                                    \
        }                                                                                        \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                                  \
                _mm512_mask_storeu_ps(c + (size_t)r * n + j + 16 * v, v == V - 1 ? m : 0xFFFF, acc[r][v]); \
    }
GEMM_TILE(6, 4)
GEMM_TILE(6, 1)
GEMM_TILE(1, 4)
GEMM_TILE(1, 1)

static void gemm_f32(float *c, const float *a, const float *b, int m, int k, int n)
{
    int i = 0;
    for (; i + 6 <= m; i += 6) {
        int j = 0;
        for (; j + 64 <= n; j += 64) gemm_tile_6x4(c + (size_t)i * n, a + (size_t)i * k, b, k, n, j, 0xFFFF);
        for (; j < n; j += 16) gemm_tile_6x1(c + (size_t)i * n, a + (size_t)i * k, b, k, n, j, lanes_left(n - j));
    }
    for (; i < m; i++) {
        int j = 0;
        for (; j + 64 <= n; j += 64) gemm_tile_1x4(c + (size_t)i * n, a + (size_t)i * k, b, k, n, j, 0xFFFF);
        for (; j < n; j += 16) gemm_tile_1x1(c + (size_t)i * n, a + (size_t)i * k, b, k, n, j, lanes_left(n - j));
    }
}

static double exp_sum(float *x, int64_t n, float max)
{
    const __m512 vmax = _mm512_set1_ps(max);
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = kinfer_v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmax));
        _mm512_storeu_ps(x + i, e);
        sum += (double)_mm512_reduce_add_ps(e);
    }
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    return sum;
}

static void scale_f32(int64_t n, float *x, float s)
{
    const __m512 vs = _mm512_set1_ps(s);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes_left(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs));
    }
}

static float mask_max(float *x, int n, uint64_t seen, float s)
{
    const __m512 vs = _mm512_set1_ps(s), ninf = _mm512_set1_ps(-INFINITY);
    __m512 vmax = ninf;
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = lanes_left(n - i), keep = (__mmask16)(seen >> i) & m;
        /* unseen lanes -inf; lanes past n stay as they are and out of the max */
        const __m512 y = _mm512_mask_mul_ps(ninf, keep, _mm512_maskz_loadu_ps(m, x + i), vs);
        _mm512_mask_storeu_ps(x + i, m, y);
        vmax = _mm512_max_ps(vmax, y);
    }
    return _mm512_reduce_max_ps(vmax);
}

/* r[0..15] (rows) become their columns */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* 128-bit lane l of r[4i+c] now holds column 4l+c of rows 4i .. 4i+3 */
    for (int c = 0; c < 4; c++) {
        const __m512 x0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), x1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
        const __m512 y0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        const __m512 y1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
        t[c] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        t[8 + c] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
        t[4 + c] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

static void pack_kt(float *kt, const kinfer_fp16 *const *rows, int hd)
{
    for (int r0 = 0; r0 < 64; r0 += 16)
        for (int d0 = 0; d0 < hd; d0 += 16) {
            const __mmask16 m = lanes_left(hd - d0);
            __m512 x[16];
            for (int i = 0; i < 16; i++) x[i] = load_f16(rows[r0 + i] + d0, m);
            transpose16(x);
            for (int i = 0; i < 16 && d0 + i < hd; i++) _mm512_storeu_ps(kt + (size_t)(d0 + i) * 64 + r0, x[i]);
        }
}

void kinfer_avx512_fill_fa(kinfer_cpu_table *t)
{
    t->fa = (kinfer_fa_kernels){.mad_f16 = mad_f16, .scale_f16 = scale_f16, .mad_f32 = mad_f32,
                                .gemm_f32 = gemm_f32, .exp_sum = exp_sum, .scale_f32 = scale_f32,
                                .mask_max = mask_max, .pack_kt = pack_kt};
}
