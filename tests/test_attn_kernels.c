/*
 * test_attn_kernels.c — the attention kernels (attn_kernels.h) at every
 * level this CPU has, against double-precision math on random rows of every
 * KV cache type, with odd head sizes, scattered rows and zero rows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/attn_kernels.h"
#include "cpu/attn_order.h"
#include "cpu/kernels.h"
#include "quant.h"
#include "testutil.h"


/* One type at one level: a store of n_store rows of `stride` bytes (head at
 * byte offset off), nr rows picked at random, g heads of random weights.
 * Each head must match double-precision math, and be bit for bit what the
 * kernel gives that head alone. */
static void check_wsum(int type, int level, int64_t n, int32_t nr, int g)
{
    kinfer_attn_wsum_fn f = kinfer_attn_wsum_at(type, level);
    if (!f) return; /* this CPU lacks the level */
    const int32_t n_store = 3 * nr + 5;
    const size_t head = kinfer_row_size(type, n);
    const size_t off = head, stride = 3 * head; /* the second of three heads */
    const size_t ws = (size_t)nr + 3, os = (size_t)n + 5; /* strides of w and out */
    uint8_t *store = calloc((size_t)n_store, stride);
    float *row = malloc((size_t)n * sizeof *row), *deq = malloc((size_t)n * sizeof *deq);
    double *want = calloc((size_t)n * g, sizeof *want);
    float *out = malloc(os * g * sizeof *out), *one = malloc((size_t)n * sizeof *one);
    int32_t *rows = malloc((size_t)(nr ? nr : 1) * sizeof *rows);
    float *w = malloc(ws * g * sizeof *w);
    ck_assert(store && row && deq && want && out && one && rows && w);
    for (int32_t r = 0; r < n_store; r++) {
        for (int64_t d = 0; d < n; d++) row[d] = (float)(4 * test_rng_uniform() - 2);
        if (r % 7 == 3) memset(row, 0, (size_t)n * sizeof *row); /* a zero row */
        ck_assert_int_eq(kinfer_quantize_row(type, row, store + (size_t)r * stride + off, n), KINFER_OK);
    }
    for (int32_t r = 0; r < nr; r++) rows[r] = (int32_t)(test_rng_uniform() * n_store);
    for (int k = 0; k < g; k++)
        for (int32_t r = 0; r < nr; r++) w[k * ws + r] = (float)test_rng_uniform();
    for (int32_t r = 0; r < nr; r++) {
        ck_assert_int_eq(kinfer_dequantize_row(type, store + (size_t)rows[r] * stride + off, deq, n),
                         KINFER_OK);
        for (int k = 0; k < g; k++)
            for (int64_t d = 0; d < n; d++) want[k * n + d] += (double)w[k * ws + r] * deq[d];
    }
    for (size_t i = 0; i < os * g; i++) out[i] = 12345.0f;
    for (int k = 0; k < g; k++)
        for (int64_t d = 0; d < n; d++) out[k * os + d] = NAN; /* every output is written */
    f(out, os, g, n, store + off, stride, rows, w, ws, nr);
    for (int k = 0; k < g; k++) {
        double wsum_abs = 0;
        for (int32_t r = 0; r < nr; r++) wsum_abs += w[k * ws + r];
        for (int64_t d = 0; d < n; d++)
            ck_assert_msg(fabs(out[k * os + d] - want[k * n + d]) <= 1e-6 * (2 * wsum_abs + 1) * (nr + 1),
                          "%s level %d n %lld nr %d g %d: out[%d][%lld] = %.9g, want %.9g",
                          kinfer_type_name(type), level, (long long)n, nr, g, k, (long long)d,
                          out[k * os + d], want[k * n + d]);
        for (size_t d = (size_t)n; d < os; d++) ck_assert_float_eq(out[k * os + d], 12345.0f);
        f(one, 0, 1, n, store + off, stride, rows, w + k * ws, 0, nr);
        ck_assert_msg(memcmp(one, out + k * os, (size_t)n * sizeof *one) == 0,
                      "%s level %d n %lld nr %d: head %d of %d differs from alone",
                      kinfer_type_name(type), level, (long long)n, nr, k, g);
    }
    free(store), free(row), free(deq), free(want), free(out), free(one), free(rows), free(w);
}

START_TEST(test_wsum)
{
    test_rng_seed(7);
    const int types[] = {KINFER_TYPE_F32, KINFER_TYPE_F16, KINFER_TYPE_Q8_0};
    const int64_t sizes[] = {32, 64, 96, 128, 160, 256, 288, 512};
    const int64_t odd[] = {1, 7, 8, 15, 17, 40, 63, 72, 136, 257};
    const int32_t nrs[] = {0, 1, 2, 5, 33, 300, 1100};
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++)
        for (size_t ti = 0; ti < 3; ti++)
            for (size_t ri = 0; ri < sizeof nrs / sizeof nrs[0]; ri++) {
                for (int g = 1; g <= KINFER_ATTN_MAX_G; g++) {
                    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
                        check_wsum(types[ti], level, sizes[si], nrs[ri], g);
                    if (types[ti] != KINFER_TYPE_Q8_0) /* any length but Q8_0's blocks */
                        for (size_t si = 0; si < sizeof odd / sizeof odd[0]; si++)
                            check_wsum(types[ti], level, odd[si], nrs[ri], g);
                }
            }
    ck_assert_ptr_null(kinfer_attn_wsum_get(KINFER_TYPE_Q4_0, 64, KINFER_F16_ORDER_GEMM));
    ck_assert_ptr_nonnull(kinfer_attn_wsum_get(KINFER_TYPE_F16, 64, KINFER_F16_ORDER_GEMM));
    /* the getters read the chosen level's table: a head size off the 16
     * lanes gets the level's plain kernel; on AVX-512 a whole-vector F16
     * head gets llama.cpp's orders, one kernel per order */
    const int best = (int)kinfer_cpu_best_level();
    ck_assert_ptr_eq(kinfer_attn_wsum_get(KINFER_TYPE_F16, 40, KINFER_F16_ORDER_VEC),
                     kinfer_attn_wsum_at(KINFER_TYPE_F16, best));
    ck_assert_ptr_eq(kinfer_attn_wsum_get(KINFER_TYPE_Q8_0, 64, KINFER_F16_ORDER_VEC),
                     kinfer_attn_wsum_at(KINFER_TYPE_Q8_0, best));
    ck_assert_ptr_null(kinfer_attn_wsum_at(KINFER_TYPE_F16, KINFER_CPU_LEVEL_COUNT));
    ck_assert_ptr_null(kinfer_attn_scores_get(KINFER_TYPE_Q8_0, 64, KINFER_F16_ORDER_VEC));
    if (best >= KINFER_CPU_AVX512) {
        ck_assert_ptr_ne(kinfer_attn_wsum_get(KINFER_TYPE_F16, 64, KINFER_F16_ORDER_GEMM),
                         kinfer_attn_wsum_get(KINFER_TYPE_F16, 64, KINFER_F16_ORDER_VEC));
        ck_assert_ptr_ne(kinfer_attn_wsum_get(KINFER_TYPE_F16, 64, KINFER_F16_ORDER_VEC),
                         kinfer_attn_wsum_at(KINFER_TYPE_F16, best));
        ck_assert_ptr_nonnull(kinfer_attn_scores_get(KINFER_TYPE_F32, 64, KINFER_F16_ORDER_VEC));
        ck_assert_ptr_null(kinfer_attn_scores_get(KINFER_TYPE_F32, 40, KINFER_F16_ORDER_VEC));
    } else {
        ck_assert_ptr_null(kinfer_attn_scores_get(KINFER_TYPE_F16, 64, KINFER_F16_ORDER_VEC));
    }
}
END_TEST

/* Two calls on the same rows give the same bits. */
START_TEST(test_wsum_invariant)
{
    test_rng_seed(11);
    const int64_t n = 64;
    const int32_t n_store = 50;
    const size_t stride = kinfer_row_size(KINFER_TYPE_F16, n);
    uint8_t *store = malloc((size_t)n_store * stride);
    float row[64], a[64], b[64], wts[50];
    int32_t rows[50];
    for (int32_t r = 0; r < n_store; r++) {
        for (int64_t d = 0; d < n; d++) row[d] = (float)(2 * test_rng_uniform() - 1);
        kinfer_quantize_row(KINFER_TYPE_F16, row, store + (size_t)r * stride, n);
        rows[r] = n_store - 1 - r;
        wts[r] = (float)test_rng_uniform();
    }
    kinfer_attn_wsum_fn f = kinfer_attn_wsum_get(KINFER_TYPE_F16, n, KINFER_F16_ORDER_VEC);
    f(a, 0, 1, n, store, stride, rows, wts, 0, n_store);
    f(b, 0, 1, n, store, stride, rows, wts, 0, n_store);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    free(store);
}
END_TEST

/* The attention softmax against kinfer_softmax (expf, double sum). */
START_TEST(test_softmax)
{
    test_rng_seed(5);
    const int64_t sizes[] = {1, 2, 15, 16, 17, 100, 4097};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)(n + 1) * sizeof *b);
        for (int64_t i = 0; i < n; i++) a[i] = (float)(60 * test_rng_uniform() - 30);
        if (n > 3) a[3] = -1e30f, a[1] = -200.0f; /* underflow to zero */
        memcpy(b, a, (size_t)n * sizeof *a);
        b[n] = 7.0f;
        kinfer_softmax(a, n);
        kinfer_attn_softmax(b, n);
        for (int64_t i = 0; i < n; i++)
            ck_assert_msg(fabsf(a[i] - b[i]) <= 4e-7f * a[i] + 1e-38f, "n %lld: [%lld] %.9g vs %.9g",
                          (long long)n, (long long)i, a[i], b[i]);
        ck_assert_float_eq(b[n], 7.0f);
        free(a), free(b);
    }
}
END_TEST

/* The attention's fp16 rounding against kinfer_round_fp16, bit for bit,
 * on weights in [0, 1] (ties included) and odd lengths. */
START_TEST(test_round_fp16)
{
    test_rng_seed(6);
    const int64_t sizes[] = {1, 15, 16, 17, 1000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)(n + 1) * sizeof *b);
        for (int64_t i = 0; i < n; i++) {
            a[i] = (float)test_rng_uniform();
            if (i % 3 == 0) a[i] = (float)ldexp(1.0 + (2 * (int)(i % 7) + 1) * 0x1p-11, -(int)(i % 20));
        }
        memcpy(b, a, (size_t)n * sizeof *a);
        b[n] = 7.25f;
        kinfer_round_fp16(a, n);
        kinfer_attn_round_fp16(b, n);
        ck_assert(memcmp(a, b, (size_t)n * sizeof *a) == 0);
        ck_assert_float_eq(b[n], 7.25f);
        free(a), free(b);
    }
}
END_TEST

/* ------------------------------------------------ llama.cpp's orders */

/* _mm512_reduce_add_ps's pairing of 16 lanes */
static float sum16(const float a[16])
{
    float t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = a[i + 8] + a[i];
    for (int i = 0; i < 4; i++) t6[i] = t3[i + 4] + t3[i];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

/* sum of x[i] * y[i] in ggml's sgemm (GEMM) or ggml_vec_dot_f16 (VEC) order,
 * written out one element at a time */
static float ordered_dot(int n, const float *x, const float *y, int order)
{
    if (order == KINFER_F16_ORDER_GEMM && n % 16 == 0) {
        float a[16] = {0};
        for (int i = 0; i < n; i++) a[i % 16] = fmaf(x[i], y[i], a[i % 16]);
        return sum16(a);
    }
    const int np = n & ~63;
    float a[4][16] = {{0}}, lane[16];
    for (int i = 0; i < np; i++) a[i % 64 / 16][i % 16] = fmaf(x[i], y[i], a[i % 64 / 16][i % 16]);
    for (int l = 0; l < 16; l++) lane[l] = (a[0][l] + a[2][l]) + (a[1][l] + a[3][l]);
    double sum = sum16(lane);
    for (int i = np; i < n; i++) sum += (double)(x[i] * y[i]);
    return (float)sum;
}

/* Scores and weighted sums over an F16 cache for g heads of one KV head:
 * each head bit for bit the orders above, on scattered rows of a cache with
 * two KV heads per cell (rows in the given order, as the cells llama.cpp
 * sums over); a weighted sum over some of the dims gives those dims' bits. */
static void check_ordered(int hd, int32_t nv, int g)
{
    const int32_t n_store = nv + 5;
    const size_t row = (size_t)hd * 2 * 2, off = (size_t)hd * 2; /* the second KV head */
    const size_t q_stride = (size_t)hd * 2 + 32, ss = (size_t)nv + 3, os = (size_t)hd + 5;
    uint8_t *cache = malloc(row * (size_t)n_store), *q = malloc(q_stride * (size_t)g);
    float *kf = malloc(sizeof(float) * (size_t)hd * n_store), *qf = malloc(sizeof(float) * (size_t)hd * g);
    float *s = malloc(sizeof(float) * ss * g), *p = malloc(sizeof(float) * ss * g);
    float *out = malloc(sizeof(float) * os * g), *part = malloc(sizeof(float) * os * g);
    float *col = malloc(sizeof(float) * (nv + 63)), *pp = malloc(sizeof(float) * (nv + 63));
    int32_t *rows = malloc(sizeof(int32_t) * nv);
    ck_assert(cache && q && kf && qf && s && p && out && part && col && pp && rows);
    for (int32_t c = 0; c < n_store; c++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < hd; i++) {
                const kinfer_fp16 x = kinfer_fp32_to_fp16((float)(test_rng_uniform() * 2 - 1));
                memcpy(cache + (size_t)c * row + (size_t)h * off + 2 * (size_t)i, &x, 2);
                if (h == 1) kf[(size_t)c * hd + i] = kinfer_fp16_to_fp32(x);
            }
    for (int k = 0; k < g; k++)
        for (int i = 0; i < hd; i++) {
            const kinfer_fp16 x = kinfer_fp32_to_fp16((float)(test_rng_uniform() * 2 - 1));
            memcpy(q + k * q_stride + 2 * (size_t)i, &x, 2);
            qf[(size_t)k * hd + i] = kinfer_fp16_to_fp32(x);
        }
    for (int32_t r = 0; r < nv; r++) rows[r] = (int32_t)(test_rng_uniform() * n_store);
    for (int k = 0; k < g; k++)
        for (int32_t r = 0; r < nv; r++)
            p[k * ss + r] = kinfer_fp16_to_fp32(kinfer_fp32_to_fp16((float)test_rng_uniform()));
    for (int order = 0; order < 2; order++) {
        kinfer_attn_scores_f16_ordered_avx512(s, ss, g, hd, cache + off, row, rows, nv, (const kinfer_fp16 *)q,
                                              q_stride, 0.125f, order);
        for (int k = 0; k < g; k++)
            for (int32_t r = 0; r < nv; r++) {
                const float want = ordered_dot(hd, kf + (size_t)rows[r] * hd, qf + (size_t)k * hd, order) * 0.125f;
                ck_assert_msg(memcmp(&want, &s[k * ss + r], sizeof want) == 0,
                              "score hd %d nv %d g %d order %d head %d row %d: %a vs %a", hd, nv, g, order, k, r,
                              s[k * ss + r], want);
            }
        if (hd % 16) continue;
        kinfer_attn_wsum_f16_ordered_avx512(out, os, g, hd, cache + off, row, rows, p, ss, nv, order);
        /* the cells past nv up to a multiple of 64 are llama.cpp's
         * masked ones: weight 0 */
        const int32_t np = (nv + 63) & ~63;
        for (int k = 0; k < g; k++)
            for (int d = 0; d < hd; d++) {
                for (int32_t r = 0; r < np; r++) {
                    col[r] = r < nv ? kf[(size_t)rows[r] * hd + d] : 0.0f;
                    pp[r] = r < nv ? p[k * ss + r] : 0.0f;
                }
                const float want = ordered_dot(np, col, pp, order);
                ck_assert_msg(memcmp(&want, &out[k * os + d], sizeof want) == 0,
                              "wsum hd %d nv %d g %d order %d head %d dim %d: %a vs %a", hd, nv, g, order, k, d,
                              out[k * os + d], want);
            }
        if (hd < 32) continue;
        kinfer_attn_wsum_f16_ordered_avx512(part + 16, os, g, hd - 16, cache + off + 32, row, rows, p, ss, nv,
                                            order);
        for (int k = 0; k < g; k++)
            ck_assert_msg(memcmp(part + k * os + 16, out + k * os + 16, sizeof(float) * (hd - 16)) == 0,
                          "wsum hd %d nv %d g %d order %d head %d: dims 16.. alone differ", hd, nv, g, order, k);
    }
    free(cache), free(q), free(kf), free(qf), free(s), free(p), free(out), free(part), free(col), free(pp);
    free(rows);
}

START_TEST(test_ordered)
{
    if (kinfer_cpu_best_level() < KINFER_CPU_AVX512) {
        fprintf(stderr, "SKIP: ordered attention kernels need AVX-512\n");
        return;
    }
    /* 576: past the tiles' head size, key by key; 300 and 1100: the
     * one-token weighted sum in ranges of rows (one, then three, the last
     * partial) */
    const int hds[] = {16, 48, 64, 80, 128, 256, 576};
    const int32_t nvs[] = {1, 15, 16, 17, 64, 77, 300, 1100};
    test_rng_seed(7);
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
        for (size_t ni = 0; ni < sizeof nvs / sizeof nvs[0]; ni++)
            for (int g = 1; g <= KINFER_ATTN_MAX_G; g++) check_ordered(hds[hi], nvs[ni], g);
}
END_TEST

static Suite *attn_suite(void)
{
    Suite *s = suite_create("attn_kernels");
    TCase *tc = tcase_create("attn_kernels");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wsum);
    tcase_add_test(tc, test_wsum_invariant);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_round_fp16);
    tcase_add_test(tc, test_ordered);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(attn_suite());
}
