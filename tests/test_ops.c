/*
 * test_ops.c — the elementwise kernels against naive double-precision math:
 * rmsnorm, rope (normal, NeoX, partial, frequency factors), softmax,
 * SiLU and GELU gates, add, scale, get_rows.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "quant.h"
#include "testutil.h"


/* |got - want| <= rel * |want| + abs */
#define ASSERT_CLOSE(got, want, rel, abs_)                                                         \
    ck_assert_msg(fabs((double)(got) - (double)(want)) <= (rel) * fabs((double)(want)) + (abs_), \
                  "%s = %.9g, want %.9g", #got, (double)(got), (double)(want))

START_TEST(test_rmsnorm)
{
    test_rng_seed(1);
    const int64_t n = 1000;
    float x[1000], w[1000], out[1000], out_w[1000];
    test_fill(x, n, -3, 3);
    test_fill(w, n, 0.5, 1.5);
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    const double eps = 1e-6;
    const double scale = 1.0 / sqrt(ss / n + eps);
    kinfer_rmsnorm(out_w, x, w, n, (float)eps);
    for (int64_t i = 0; i < n; i++)
        ASSERT_CLOSE(out_w[i], x[i] * scale * w[i], 1e-6, 1e-7);
    kinfer_rmsnorm(out, x, NULL, n, (float)eps);
    for (int64_t i = 0; i < n; i++)
        ASSERT_CLOSE(out[i], x[i] * scale, 1e-6, 1e-7);
    /* in place, and eps dominating a zero vector gives zeros, not NaN */
    kinfer_rmsnorm(x, x, w, n, (float)eps);
    ck_assert(memcmp(x, out_w, sizeof x) == 0);
    memset(x, 0, sizeof x);
    kinfer_rmsnorm(out, x, w, n, 1e-5f);
    for (int64_t i = 0; i < n; i++)
        ck_assert_float_eq(out[i], 0.0f);
}
END_TEST

static void naive_rope(double *v, int64_t head_dim, int n_rot, bool neox, int pos, double base,
                       double fscale, double mscale, const float *ff)
{
    (void)head_dim;
    for (int i = 0; i < n_rot / 2; i++) {
        double theta = pos * fscale * pow(base, -2.0 * i / n_rot);
        if (ff)
            theta /= ff[i];
        const int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = (x0 * cos(theta) - x1 * sin(theta)) * mscale;
        v[b] = (x0 * sin(theta) + x1 * cos(theta)) * mscale;
    }
}

START_TEST(test_rope)
{
    test_rng_seed(2);
    enum { T = 3, H = 4, D = 64 };
    const int32_t pos[T] = {0, 7, 4097};
    static const struct {
        bool neox;
        int n_rot;
        float fscale, mscale;
        bool ff;
    } cases[] = {
        {false, 64, 1.0f, 1.0f, false}, {true, 64, 1.0f, 1.0f, false}, {true, 32, 0.25f, 1.0f, false},
        {false, 48, 1.0f, 1.2f, false}, {false, 64, 1.0f, 1.0f, true}, {true, 64, 0.5f, 1.0f, true},
    };
    float ff[32];
    for (int i = 0; i < 32; i++)
        ff[i] = i < 8 ? 1.0f : (i < 20 ? 1.0f + (float)(i - 8) * 0.5f : 8.0f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float x[T * H * D];
        double want[T * H * D];
        test_fill(x, T * H * D, -1, 1);
        for (int i = 0; i < T * H * D; i++)
            want[i] = x[i];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                naive_rope(want + (t * H + h) * D, D, cases[c].n_rot, cases[c].neox, pos[t], 10000.0,
                           cases[c].fscale, cases[c].mscale, cases[c].ff ? ff : NULL);
        const kinfer_rope_params p = {
            .neox = cases[c].neox, .n_rot = cases[c].n_rot, .freq_base = 10000.0f,
            .freq_scale = cases[c].fscale, .attn_factor = cases[c].mscale,
            .freq_factors = cases[c].ff ? ff : NULL,
        };
        kinfer_rope(x, T, H, D, pos, &p);
        /* float angles (ggml's recurrence) drift with the position: about
         * pos * 2^-24 per multiplication step */
        for (int i = 0; i < T * H * D; i++) {
            const int t = i / (H * D);
            ck_assert_msg(fabs(x[i] - want[i]) <= 2e-6 + 3e-7 * pos[t], "case %zu element %d: %.9g vs %.9g",
                          c, i, x[i], want[i]);
        }
    }
}
END_TEST

START_TEST(test_softmax)
{
    test_rng_seed(3);
    float x[777];
    double want[777];
    test_fill(x, 777, -30, 30);
    x[5] = 1000.0f; /* large values must not overflow */
    double max = -INFINITY, sum = 0;
    for (int i = 0; i < 777; i++)
        max = fmax(max, x[i]);
    for (int i = 0; i < 777; i++)
        sum += (want[i] = exp((double)x[i] - max));
    kinfer_softmax(x, 777);
    double total = 0;
    for (int i = 0; i < 777; i++) {
        ASSERT_CLOSE(x[i], want[i] / sum, 1e-5, 1e-12);
        total += x[i];
    }
    ASSERT_CLOSE(total, 1.0, 1e-5, 0);
}
END_TEST

START_TEST(test_gates)
{
    test_rng_seed(4);
    enum { N = 1003 };
    float g[N], u[N], out[N];
    test_fill(g, N, -12, 12);
    test_fill(u, N, -2, 2);
    kinfer_silu_gate(out, g, u, N);
    for (int i = 0; i < N; i++)
        ASSERT_CLOSE(out[i], g[i] / (1.0 + exp(-(double)g[i])) * u[i], 2e-6, 1e-7);
    kinfer_gelu_gate(out, g, u, N);
    for (int i = 0; i < N; i++) {
        const double v = g[i];
        double gelu = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        if (v <= -10)
            gelu = 0;
        else if (v >= 10)
            gelu = v;
        /* input and output pass through fp16 (2^-11 relative each) */
        const double tol = (6e-4 * fabs(v) + 5e-4 * fabs(gelu)) * fabs(u[i]) + 1e-7;
        ck_assert_msg(fabs(out[i] - gelu * u[i]) <= tol, "gelu(%g) * %g = %.9g, want %.9g", v, u[i],
                      out[i], gelu * u[i]);
    }
    /* ggml's cut-offs are exact */
    const float ge[4] = {-10.5f, 10.0f, 12.25f, 0.0f}, ue[4] = {3.0f, 1.5f, -2.0f, 5.0f};
    float oe[4];
    kinfer_gelu_gate(oe, ge, ue, 4);
    ck_assert_float_eq(oe[0], 0.0f);
    ck_assert_float_eq(oe[1], 15.0f);
    ck_assert_float_eq(oe[2], -24.5f);
    ck_assert_float_eq(oe[3], 0.0f);
    /* aliasing the output with an input */
    float g2[N];
    memcpy(g2, g, sizeof g);
    kinfer_silu_gate(g2, g2, u, N);
    kinfer_silu_gate(out, g, u, N);
    ck_assert(memcmp(g2, out, sizeof out) == 0);
}
END_TEST

START_TEST(test_add_scale)
{
    test_rng_seed(5);
    float a[515], b[515], out[515];
    test_fill(a, 515, -5, 5);
    test_fill(b, 515, -5, 5);
    kinfer_add(out, a, b, 515);
    for (int i = 0; i < 515; i++)
        ck_assert_float_eq(out[i], a[i] + b[i]);
    kinfer_scale(out, 0.125f, 515);
    for (int i = 0; i < 515; i++)
        ck_assert_float_eq(out[i], (a[i] + b[i]) * 0.125f);
}
END_TEST

/* get_rows of every type with kernels equals dequantizing that row. */
START_TEST(test_get_rows)
{
    test_rng_seed(6);
    const int types[] = {KINFER_TYPE_F32, KINFER_TYPE_F16, KINFER_TYPE_BF16, KINFER_TYPE_Q4_0,
                         KINFER_TYPE_Q4_1, KINFER_TYPE_Q5_0, KINFER_TYPE_Q5_1, KINFER_TYPE_Q8_0,
                         KINFER_TYPE_IQ4_NL, KINFER_TYPE_Q2_K, KINFER_TYPE_Q3_K, KINFER_TYPE_Q4_K,
                         KINFER_TYPE_Q5_K, KINFER_TYPE_Q6_K, KINFER_TYPE_IQ4_XS};
    enum { ROWS = 5, COLS = 512 };
    float src[ROWS * COLS], out[3 * COLS], want[COLS];
    test_fill(src, ROWS * COLS, -1, 1);
    const int32_t ids[3] = {4, 0, 4};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const size_t row = kinfer_row_size(types[t], COLS);
        ck_assert_uint_gt(row, 0);
        uint8_t *table = malloc(row * ROWS);
        ck_assert_ptr_nonnull(table);
        ck_assert_int_eq(kinfer_quantize_row(types[t], src, table, ROWS * COLS), KINFER_OK);
        ck_assert_int_eq(kinfer_get_rows(types[t], table, ROWS, COLS, ids, 3, out), KINFER_OK);
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(kinfer_dequantize_row(types[t], table + row * (size_t)ids[i], want, COLS),
                             KINFER_OK);
            ck_assert(memcmp(out + i * COLS, want, sizeof want) == 0);
        }
        /* F32 and the 8-bit types are close to the source */
        if (types[t] == KINFER_TYPE_F32)
            ck_assert(memcmp(out, src + 4 * COLS, COLS * sizeof(float)) == 0);
        const int32_t bad[2] = {1, ROWS};
        ck_assert_int_eq(kinfer_get_rows(types[t], table, ROWS, COLS, bad, 2, out), KINFER_E_INVALID_ARG);
        const int32_t neg[1] = {-1};
        ck_assert_int_eq(kinfer_get_rows(types[t], table, ROWS, COLS, neg, 1, out), KINFER_E_INVALID_ARG);
        free(table);
    }
    ck_assert_int_eq(kinfer_get_rows(KINFER_TYPE_Q4_0, src, ROWS, 48, ids, 1, out), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_get_rows(KINFER_TYPE_IQ2_XS, src, ROWS, 256, ids, 1, out), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kinfer_get_rows(99, src, ROWS, 256, ids, 1, out), KINFER_E_UNSUPPORTED);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_gates);
    tcase_add_test(tc, test_add_scale);
    tcase_add_test(tc, test_get_rows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(ops_suite());
}
