/*
 * attn_order_avx512.c — attention with an F16 KV cache in the summation
 * order of llama.cpp's CPU backend (no flash attention), whose logits are
 * kinfer's oracle.  ggml computes K.q and V.p as F16 matrix products in one
 * of two orders, and rounding differences there are amplified by the layers
 * above (a 1-ulp change flips 8-bit activation roundings), so kinfer follows
 * whichever order llama.cpp would use:
 *
 *   GEMM (a micro-batch of 2+ tokens, llamafile's tinyBLAS): one 16-lane
 *     accumulator takes chunks of 16 products in sequence; then the 16
 *     lanes are summed as _mm512_reduce_add_ps does.
 *   VEC (a single token, ggml_vec_dot_f16): four 16-lane accumulators take
 *     the four chunks of each 64 elements; (a0 + a2) + (a1 + a3), the same
 *     16-lane sum, then any remainder past a multiple of 64 in double.
 *
 * Elements are indexed by KV cell; a token's visible cells are a prefix of
 * the cache in the usual single-sequence case, so the visible-row index
 * used here is the cell index llama.cpp uses.  The softmax between them is
 * ggml_vec_soft_max_f32: exp in chunks of 16, each chunk summed in float
 * (16-lane sum) and added in double.
 *
 * The kernels take the query heads that share a KV head together: each K
 * or V row slice is loaded and converted once and multiplied into every
 * head's accumulators (register tiles of keys x heads, chains x heads).
 * Per (head, key) and per (head, dim) the additions are exactly the ones
 * above, so a head's bits depend neither on the other heads nor on how the
 * keys or dims are split.
 */
#include <string.h>

#include "cpu/attn_order.h"
#include "cpu/isa.h"
#include "cpu/x86/vexp_avx512.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE __m512 load_f16(const void *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* lanes of the n elements left, up to 16 */
static ALWAYS_INLINE __mmask16 tail_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

/* The 16-lane sum of _mm512_reduce_add_ps, lane-wise over 16 vectors:
 * out = sum over l of a[l], paired (l, l+8), then (l, l+4), (0, 2), (0, 1). */
static ALWAYS_INLINE __m512 sum16_lanes(__m512 a[16])
{
    __m512 t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = _mm512_add_ps(a[i + 8], a[i]);
    for (int i = 0; i < 4; i++) t6[i] = _mm512_add_ps(t3[i + 4], t3[i]);
    return _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3]));
}

/* x . y over n f16 elements in the given order */
static ALWAYS_INLINE float dot_f16(int64_t n, const kinfer_fp16 *x, const kinfer_fp16 *y, int order)
{
    if (order == KINFER_F16_ORDER_GEMM && n % 16 == 0) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) acc = _mm512_fmadd_ps(load_f16(x + i), load_f16(y + i), acc);
        return _mm512_reduce_add_ps(acc);
    }
    const int64_t np = n & ~(int64_t)63;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < np; i += 64) {
        a0 = _mm512_fmadd_ps(load_f16(x + i), load_f16(y + i), a0);
        a1 = _mm512_fmadd_ps(load_f16(x + i + 16), load_f16(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(load_f16(x + i + 32), load_f16(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(load_f16(x + i + 48), load_f16(y + i + 48), a3);
    }
    double sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    for (int64_t i = np; i < n; i++)
        sum += (double)(kinfer_fp16_to_fp32(x[i]) * kinfer_fp16_to_fp32(y[i]));
    return (float)sum;
}

/* The 16-lane sums of 16 vectors at once: lane k of the result is
 * _mm512_reduce_add_ps(v[k]), the same additions in the same pairing,
 * done as a transposing tree (levels: lanes i + 8, i + 4, then within
 * 4-lane groups 0 + 2 and 1 + 3, then the two halves). */
static ALWAYS_INLINE __m512 sum16_each(const __m512 v[16])
{
    __m512 w[8], z[4], u[2];
    for (int j = 0; j < 8; j++)
        w[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v[j], v[j + 8], 0x44), _mm512_shuffle_f32x4(v[j], v[j + 8], 0xEE));
    for (int j = 0; j < 4; j++)
        z[j] = _mm512_add_ps(_mm512_shuffle_f32x4(w[j], w[j + 4], 0x88), _mm512_shuffle_f32x4(w[j], w[j + 4], 0xDD));
    for (int j = 0; j < 2; j++)
        u[j] = _mm512_add_ps(_mm512_shuffle_ps(z[j], z[j + 2], 0x44), _mm512_shuffle_ps(z[j], z[j + 2], 0xEE));
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x88), _mm512_shuffle_ps(u[0], u[1], 0xDD));
    /* the tree leaves key k in lane idx[k] (an involution) */
    const __m512i idx = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
    return _mm512_permutexvar_ps(idx, r);
}

/* Query heads converted once to f32 for the multi-head tiles (exact); a
 * larger head takes the per-key path */
#define QF_MAX_HD 512

/* Scores of G heads against keys r .. r+15: K rows in tiles of KT keys, each
 * converted once and multiplied into all G heads' accumulators; per (head,
 * key) the accumulation is dot_f16's, then sum16_each does its 16-lane sum. */
static ALWAYS_INLINE void scores_block16(float *s, size_t s_stride, const int G, const int gemm, int hd,
                                         const uint8_t *k0, size_t row_k, const int32_t *rows,
                                         const float *qf, __m512 vscale)
{
    enum { KT_MAX = 8 };
    const int KT = gemm ? (G <= 2 ? 8 : 4) : (G == 1 ? 4 : G == 2 ? 2 : 1);
    __m512 lanes[KINFER_ATTN_MAX_G][16];
    for (int u = 0; u < 16; u += KT) {
        const kinfer_fp16 *k[KT_MAX];
#pragma GCC unroll 8
        for (int t = 0; t < KT; t++) k[t] = (const kinfer_fp16 *)(k0 + (size_t)rows[u + t] * row_k);
        if (gemm) {
            __m512 acc[KT_MAX][KINFER_ATTN_MAX_G];
#pragma GCC unroll 8
            for (int t = 0; t < KT; t++)
#pragma GCC unroll 4
                for (int h = 0; h < G; h++) acc[t][h] = _mm512_setzero_ps();
            for (int i = 0; i < hd; i += 16) {
#pragma GCC unroll 8
                for (int t = 0; t < KT; t++) {
                    const __m512 kv = load_f16(k[t] + i);
#pragma GCC unroll 4
                    for (int h = 0; h < G; h++)
                        acc[t][h] = _mm512_fmadd_ps(kv, _mm512_loadu_ps(qf + h * hd + i), acc[t][h]);
                }
            }
#pragma GCC unroll 8
            for (int t = 0; t < KT; t++)
#pragma GCC unroll 4
                for (int h = 0; h < G; h++) lanes[h][u + t] = acc[t][h];
        } else {
            __m512 a[KT_MAX][KINFER_ATTN_MAX_G][4];
#pragma GCC unroll 8
            for (int t = 0; t < KT; t++)
#pragma GCC unroll 4
                for (int h = 0; h < G; h++)
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) a[t][h][j] = _mm512_setzero_ps();
            for (int i = 0; i < hd; i += 64) {
#pragma GCC unroll 8
                for (int t = 0; t < KT; t++)
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) {
                        const __m512 kv = load_f16(k[t] + i + 16 * j);
#pragma GCC unroll 4
                        for (int h = 0; h < G; h++)
                            a[t][h][j] = _mm512_fmadd_ps(kv, _mm512_loadu_ps(qf + h * hd + i + 16 * j), a[t][h][j]);
                    }
            }
#pragma GCC unroll 8
            for (int t = 0; t < KT; t++)
#pragma GCC unroll 4
                for (int h = 0; h < G; h++)
                    lanes[h][u + t] = _mm512_add_ps(_mm512_add_ps(a[t][h][0], a[t][h][2]),
                                                    _mm512_add_ps(a[t][h][1], a[t][h][3]));
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < G; h++) _mm512_storeu_ps(s + h * s_stride, _mm512_mul_ps(sum16_each(lanes[h]), vscale));
}

/* The keys in whole blocks of 16 for G heads; returns how many were done. */
static ALWAYS_INLINE int32_t scores_blocks(float *s, size_t s_stride, const int G, int gemm, int hd,
                                           const uint8_t *k0, size_t row_k, const int32_t *rows,
                                           int32_t nv, const float *qf, float scale)
{
    const __m512 vscale = _mm512_set1_ps(scale);
    int32_t r = 0;
    /* (no software prefetch: the keys stream in row order, which the
     * hardware follows; prefetching 128 keys ahead made the scores of a
     * 4096-cell decode 1.4x slower in place) */
    for (; r + 16 <= nv; r += 16) {
        if (gemm)
            scores_block16(s + r, s_stride, G, 1, hd, k0, row_k, rows + r, qf, vscale);
        else
            scores_block16(s + r, s_stride, G, 0, hd, k0, row_k, rows + r, qf, vscale);
    }
    return r;
}

void kinfer_attn_scores_f16_ordered_avx512(float *s, size_t s_stride, int g, int hd, const uint8_t *k0,
                                           size_t row_k, const int32_t *rows, int32_t nv,
                                           const kinfer_fp16 *q, size_t q_stride, float scale, int order)
{
    const int gemm = order == KINFER_F16_ORDER_GEMM && hd % 16 == 0;
    int32_t r = 0;
    if ((gemm || hd % 64 == 0) && hd <= QF_MAX_HD) {
        float qf[KINFER_ATTN_MAX_G * QF_MAX_HD];
        for (int h = 0; h < g; h++)
            for (int i = 0; i < hd; i += 16)
                _mm512_storeu_ps(qf + h * hd + i, load_f16((const uint8_t *)q + h * q_stride + 2 * (size_t)i));
        switch (g) {
        case 1: r = scores_blocks(s, s_stride, 1, gemm, hd, k0, row_k, rows, nv, qf, scale); break;
        case 2: r = scores_blocks(s, s_stride, 2, gemm, hd, k0, row_k, rows, nv, qf, scale); break;
        case 3: r = scores_blocks(s, s_stride, 3, gemm, hd, k0, row_k, rows, nv, qf, scale); break;
        default: r = scores_blocks(s, s_stride, 4, gemm, hd, k0, row_k, rows, nv, qf, scale); break;
        }
    }
    /* the rest key by key */
    for (; r < nv; r++)
        for (int h = 0; h < g; h++)
            s[h * s_stride + r] = dot_f16(hd, (const kinfer_fp16 *)(k0 + (size_t)rows[r] * row_k),
                                          (const kinfer_fp16 *)((const uint8_t *)q + h * q_stride), order) *
                                  scale;
}

static void softmax_ordered(float *x, int64_t n)
{
    if (n <= 0) return;
    /* the max lane-wise from x[0] (a NaN past x[0] is skipped, as by
     * x[i] > max ? x[i] : max), then across the lanes */
    __m512 vmax = _mm512_set1_ps(x[0]);
    for (int64_t i = 0; i < n; i += 16)
        vmax = _mm512_max_ps(_mm512_mask_loadu_ps(vmax, tail_mask(n - i), x + i), vmax);
    vmax = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    double sum = 0.0;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        /* the lanes past n are the masked cells of llama.cpp's row: 0 */
        const __m512 e = _mm512_maskz_mov_ps(m, kinfer_v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax)));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum += (double)_mm512_reduce_add_ps(e);
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

/* acc[h][s][t] += p[h * p_stride] * slice s of V row `row`, for the G heads */
static ALWAYS_INLINE void chain_step(__m512 acc[][2][16], int t, const int G, const int NS, const uint8_t *v0,
                                     size_t row_v, int32_t row, const float *p, size_t p_stride)
{
#pragma GCC unroll 2
    for (int s = 0; s < NS; s++) {
        const __m512 v = load_f16((const kinfer_fp16 *)(v0 + (size_t)row * row_v) + 16 * s);
#pragma GCC unroll 4
        for (int h = 0; h < G; h++) acc[h][s][t] = _mm512_fmadd_ps(v, _mm512_set1_ps(p[h * p_stride]), acc[h][s][t]);
    }
}

/* Chain accumulators of NS (1 or 2) 16-dim slices at v0 for G heads: chain
 * c of a slice sums p[r] * V row r over the rows r = c, c + step, ... < nv,
 * in row order, for the chains c < step.  Each pass takes CT chains of all
 * G heads and both slices (a whole cache line of a row when aligned), so
 * each V row slice is read and converted once for all heads. */
static ALWAYS_INLINE void wsum_chains(__m512 ch[][2][64], const int G, const int NS, const int step,
                                      const uint8_t *v0, size_t row_v, const int32_t *rows, const float *p,
                                      size_t p_stride, int32_t nv)
{
    enum { CT_MAX = 16 };
    const int CT = NS == 1 ? (G == 1 ? 16 : G == 2 ? 8 : 4) : (G == 1 ? 8 : G == 2 ? 4 : G == 3 ? 4 : 2);
    for (int c0 = 0; c0 < step; c0 += CT) {
        __m512 acc[KINFER_ATTN_MAX_G][2][CT_MAX];
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
#pragma GCC unroll 2
            for (int s = 0; s < NS; s++)
#pragma GCC unroll 16
                for (int t = 0; t < CT; t++) acc[h][s][t] = _mm512_setzero_ps();
        int32_t c = c0;
        for (; c + CT <= nv; c += step) {
#pragma GCC unroll 16
            for (int t = 0; t < CT; t++) chain_step(acc, t, G, NS, v0, row_v, rows[c + t], p + c + t, p_stride);
        }
        /* the last rows, fewer than CT */
#pragma GCC unroll 16
        for (int t = 0; t < CT; t++)
            if (c + t < nv) chain_step(acc, t, G, NS, v0, row_v, rows[c + t], p + c + t, p_stride);
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
#pragma GCC unroll 2
            for (int s = 0; s < NS; s++)
#pragma GCC unroll 16
                for (int t = 0; t < CT; t++) ch[h][s][c0 + t] = acc[h][s][t];
    }
}

/* The one-token (VEC) sum of a 16-dim slice's 64 chains: lane l of
 * accumulator j sums cells 16 j + l, 16 j + l + 64, ...; then
 * (a0 + a2) + (a1 + a3) and the 16-lane sum. */
static ALWAYS_INLINE __m512 vec_chains_sum(const __m512 ch[64])
{
    __m512 lane[16];
    for (int l = 0; l < 16; l++)
        lane[l] = _mm512_add_ps(_mm512_add_ps(ch[l], ch[32 + l]), _mm512_add_ps(ch[16 + l], ch[48 + l]));
    return sum16_lanes(lane);
}

/* out (NS slices of 16 dims) from the chains of step cells */
static ALWAYS_INLINE void wsum_slices(float *out, size_t out_stride, const int G, const int NS, const int step,
                                      const uint8_t *v0, size_t row_v, const int32_t *rows, const float *p,
                                      size_t p_stride, int32_t nv)
{
    __m512 ch[KINFER_ATTN_MAX_G][2][64];
    wsum_chains(ch, G, NS, step, v0, row_v, rows, p, p_stride, nv);
    for (int h = 0; h < G; h++)
        for (int s = 0; s < NS; s++)
            /* GEMM: lane l sums cells l, l + 16, ...; VEC: vec_chains_sum */
            _mm512_storeu_ps(out + h * out_stride + 16 * s,
                             step == 16 ? sum16_lanes(ch[h][s]) : vec_chains_sum(ch[h][s]));
}

/*
 * The one-token order over a long run of rows (decode at depth).  The
 * passes of wsum_chains each visit one row in 64, 32 KiB apart for a head
 * of 256: a pattern the hardware prefetchers cannot follow, so the rows
 * come from memory a line at a time.  Here the rows go in ranges instead:
 * every chain of a range is run, its sums kept in memory (64 chains x G
 * heads x 2 slices) for the next range, while the lines to come next (the
 * next range, or the next 64 dims' first range) are prefetched in row
 * order, so that loading always overlaps arithmetic.  Each chain still
 * adds its rows in order, so the bits are wsum_slices'.
 */
#define WS_RANGE 512           /* rows per range: a multiple of 64 */
#define WS_RANGE_MIN_ROWS 128  /* below this, the rows are too few to matter */

/* lines [0, bytes) of rows r0 .. r1-1 (from v0) towards the cache */
static inline void prefetch_rows(const uint8_t *v0, size_t row_v, const int32_t *rows, int32_t r0, int32_t r1,
                                 size_t bytes)
{
    for (int32_t r = r0; r < r1; r++)
        for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)v0 + (size_t)rows[r] * row_v + o, _MM_HINT_T0);
}

/* chains of the rows r0 .. r1-1 (r0 a multiple of 64) of one 32-dim slice
 * at v0, continuing the sums in st (zero when r0 is 0); meanwhile rows
 * pf0 .. pf1-1 are prefetched (pf bytes of each from pf_v), spread over the
 * passes so that the loads in flight never stall the arithmetic */
static ALWAYS_INLINE void chains_range(__m512 st[][2][64], const int G, const uint8_t *v0, size_t row_v,
                                       const int32_t *rows, const float *p, size_t p_stride, int32_t r0,
                                       int32_t r1, const uint8_t *pf_v, size_t pf, int32_t pf0, int32_t pf1)
{
    enum { CT = 4 };
    const int ct = G <= 2 ? CT : 2; /* chains per pass: G x 2 x ct accumulators */
    const int n_pass = 64 / ct;
    for (int c0 = 0; c0 < 64; c0 += ct) {
        const int q = c0 / ct;
        prefetch_rows(pf_v, row_v, rows, pf0 + (pf1 - pf0) * q / n_pass, pf0 + (pf1 - pf0) * (q + 1) / n_pass, pf);
        __m512 acc[KINFER_ATTN_MAX_G][2][16]; /* chain_step's shape; ct used */
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
#pragma GCC unroll 2
            for (int sl = 0; sl < 2; sl++)
#pragma GCC unroll 4
                for (int t = 0; t < ct; t++)
                    acc[h][sl][t] = r0 ? st[h][sl][c0 + t] : _mm512_setzero_ps();
        int32_t c = r0 + c0;
        for (; c + ct <= r1; c += 64) {
#pragma GCC unroll 4
            for (int t = 0; t < ct; t++) chain_step(acc, t, G, 2, v0, row_v, rows[c + t], p + c + t, p_stride);
        }
#pragma GCC unroll 4
        for (int t = 0; t < ct; t++)
            if (c + t < r1) chain_step(acc, t, G, 2, v0, row_v, rows[c + t], p + c + t, p_stride);
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
#pragma GCC unroll 2
            for (int sl = 0; sl < 2; sl++)
#pragma GCC unroll 4
                for (int t = 0; t < ct; t++) st[h][sl][c0 + t] = acc[h][sl][t];
    }
}

/* dims 0 .. nd-1 (a multiple of 32) in groups of two 32-dim slices */
static ALWAYS_INLINE void wsum_vec_ranges(float *out, size_t out_stride, const int G, int nd, const uint8_t *v0,
                                          size_t row_v, const int32_t *rows, const float *p, size_t p_stride,
                                          int32_t nv)
{
    __m512 st[2][KINFER_ATTN_MAX_G][2][64];
    const int32_t first = nv < WS_RANGE ? nv : WS_RANGE;
    prefetch_rows(v0, row_v, rows, 0, first, 64 * (size_t)(nd >= 64 ? 2 : 1));
    for (int d0 = 0; d0 < nd; d0 += 64) {
        const int n32 = nd - d0 >= 64 ? 2 : 1;
        const uint8_t *vg = v0 + 2 * (size_t)d0;
        for (int32_t r0 = 0; r0 < nv; r0 += WS_RANGE) {
            const int32_t r1 = nv - r0 < WS_RANGE ? nv : r0 + WS_RANGE;
            /* meanwhile the rows to come: this group's next range, or
             * after its last the next group's first, half during each
             * slice's passes */
            const uint8_t *pv = vg;
            size_t pb = 64 * (size_t)n32;
            int32_t p0 = r1, p1 = nv - r1 < WS_RANGE ? nv : r1 + WS_RANGE;
            if (r1 == nv) {
                pv = vg + 128, p0 = 0, p1 = d0 + 64 < nd ? first : 0;
                pb = 64 * (size_t)(nd - d0 - 64 >= 64 ? 2 : 1);
            }
            const int32_t pm = n32 == 2 ? p0 + (p1 - p0) / 2 : p1;
            for (int k = 0; k < n32; k++)
                chains_range(st[k], G, vg + 64 * (size_t)k, row_v, rows, p, p_stride, r0, r1, pv, pb,
                             k ? pm : p0, k ? p1 : pm);
        }
        for (int k = 0; k < n32; k++)
            for (int h = 0; h < G; h++)
                for (int sl = 0; sl < 2; sl++)
                    _mm512_storeu_ps(out + h * out_stride + d0 + 32 * k + 16 * sl, vec_chains_sum(st[k][h][sl]));
    }
}

static ALWAYS_INLINE void wsum_heads(float *out, size_t out_stride, const int G, int order, int hd,
                                     const uint8_t *v0, size_t row_v, const int32_t *rows, const float *p,
                                     size_t p_stride, int32_t nv)
{
    const int step = order == KINFER_F16_ORDER_GEMM ? 16 : 64;
    if (step == 64 && hd % 32 == 0 && nv >= WS_RANGE_MIN_ROWS) {
        wsum_vec_ranges(out, out_stride, G, hd, v0, row_v, rows, p, p_stride, nv);
        return;
    }
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
        if (step == 16)
            wsum_slices(out + d, out_stride, G, 2, 16, v0 + 2 * (size_t)d, row_v, rows, p, p_stride, nv);
        else
            wsum_slices(out + d, out_stride, G, 2, 64, v0 + 2 * (size_t)d, row_v, rows, p, p_stride, nv);
    }
    if (d < hd) {
        if (step == 16)
            wsum_slices(out + d, out_stride, G, 1, 16, v0 + 2 * (size_t)d, row_v, rows, p, p_stride, nv);
        else
            wsum_slices(out + d, out_stride, G, 1, 64, v0 + 2 * (size_t)d, row_v, rows, p, p_stride, nv);
    }
}

void kinfer_attn_wsum_f16_ordered_avx512(float *out, size_t out_stride, int g, int hd, const uint8_t *v0,
                                         size_t row_v, const int32_t *rows, const float *p, size_t p_stride,
                                         int32_t nv, int order)
{
    switch (g) {
    case 1: wsum_heads(out, out_stride, 1, order, hd, v0, row_v, rows, p, p_stride, nv); break;
    case 2: wsum_heads(out, out_stride, 2, order, hd, v0, row_v, rows, p, p_stride, nv); break;
    case 3: wsum_heads(out, out_stride, 3, order, hd, v0, row_v, rows, p, p_stride, nv); break;
    default: wsum_heads(out, out_stride, 4, order, hd, v0, row_v, rows, p, p_stride, nv); break;
    }
}

/* The shapes of attn_kernels.h */
static void scores_gemm(float *s, size_t s_stride, int g, int64_t n, const uint8_t *base, size_t stride,
                        const int32_t *rows, int32_t nr, const void *q, size_t q_stride, float scale)
{
    kinfer_attn_scores_f16_ordered_avx512(s, s_stride, g, (int)n, base, stride, rows, nr, q, q_stride, scale,
                                          KINFER_F16_ORDER_GEMM);
}

static void scores_vec(float *s, size_t s_stride, int g, int64_t n, const uint8_t *base, size_t stride,
                       const int32_t *rows, int32_t nr, const void *q, size_t q_stride, float scale)
{
    kinfer_attn_scores_f16_ordered_avx512(s, s_stride, g, (int)n, base, stride, rows, nr, q, q_stride, scale,
                                          KINFER_F16_ORDER_VEC);
}

static void wsum_gemm(float *out, size_t out_stride, int g, int64_t n, const uint8_t *base, size_t stride,
                      const int32_t *rows, const float *w, size_t w_stride, int32_t nr)
{
    kinfer_attn_wsum_f16_ordered_avx512(out, out_stride, g, (int)n, base, stride, rows, w, w_stride, nr,
                                        KINFER_F16_ORDER_GEMM);
}

static void wsum_vec(float *out, size_t out_stride, int g, int64_t n, const uint8_t *base, size_t stride,
                     const int32_t *rows, const float *w, size_t w_stride, int32_t nr)
{
    kinfer_attn_wsum_f16_ordered_avx512(out, out_stride, g, (int)n, base, stride, rows, w, w_stride, nr,
                                        KINFER_F16_ORDER_VEC);
}

void kinfer_avx512_fill_attn_order(kinfer_cpu_table *t)
{
    t->attn_scores_f16_ordered[KINFER_F16_ORDER_GEMM] = scores_gemm;
    t->attn_scores_f16_ordered[KINFER_F16_ORDER_VEC] = scores_vec;
    t->attn_wsum_f16_ordered[KINFER_F16_ORDER_GEMM] = wsum_gemm;
    t->attn_wsum_f16_ordered[KINFER_F16_ORDER_VEC] = wsum_vec;
    t->attn_softmax = softmax_ordered;
}
