/*
 * test_fa_kernels.c — flash attention's vector pieces (cpu/flash_attn.h) at
 * every level this CPU has against the scalar references of ref.c, on
 * random data with odd sizes: bit for bit, except the exp of exp_sum
 * (ggml_v_expf on AVX-512), which is held to 2 ulp-ish bounds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/flash_attn.h"
#include "cpu/kernels.h"
#include "quant.h"
#include "testutil.h"

static uint64_t rng_state = 12345;

static float rnd(float lo, float hi)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 11) * (1.0 / 9007199254740992.0));
}

static const int64_t sizes[] = {1, 7, 16, 31, 64, 100, 256, 257};

START_TEST(test_mad_scale_f16)
{
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_fa_kernels *fk = kinfer_fa_kernels_at(level);
        if (!fk) continue;
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            const int64_t n = sizes[si];
            kinfer_fp16 *acc = malloc(2 * n), *ref = malloc(2 * n), *v = malloc(2 * n);
            for (int64_t i = 0; i < n; i++) {
                acc[i] = ref[i] = kinfer_fp32_to_fp16(rnd(-4, 4));
                v[i] = kinfer_fp32_to_fp16(rnd(-2, 2));
            }
            /* a run of steps as an online softmax makes them */
            for (int step = 0; step < 20; step++) {
                const float w = rnd(0, 1);
                if (step % 5 == 4) {
                    fk->scale_f16(n, acc, w);
                    kinfer_ref_fa_scale_f16(n, ref, w);
                } else {
                    fk->mad_f16(n, acc, v, w);
                    kinfer_ref_fa_mad_f16(n, ref, v, w);
                }
                ck_assert_msg(memcmp(acc, ref, 2 * n) == 0, "level %d n %lld step %d: F16 accumulator differs",
                              level, (long long)n, step);
            }
            free(acc), free(ref), free(v);
        }
    }
}
END_TEST

START_TEST(test_mad_f32)
{
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_fa_kernels *fk = kinfer_fa_kernels_at(level);
        if (!fk) continue;
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            const int64_t n = sizes[si];
            float *acc = malloc(4 * n), *ref = malloc(4 * n), *v = malloc(4 * n);
            for (int64_t i = 0; i < n; i++) acc[i] = ref[i] = rnd(-4, 4), v[i] = rnd(-2, 2);
            for (int step = 0; step < 10; step++) {
                const float w = rnd(0, 1);
                fk->mad_f32(n, acc, v, w);
                kinfer_ref_fa_mad_f32(n, ref, v, w);
            }
            ck_assert_msg(memcmp(acc, ref, 4 * n) == 0, "level %d n %lld: mad_f32 differs", level, (long long)n);
            free(acc), free(ref), free(v);
        }
    }
}
END_TEST

START_TEST(test_gemm_f32)
{
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {4, 64, 64}, {192, 64, 64}, {13, 64, 128}, {6, 3, 64}, {7, 256, 64}, {64, 64, 256}, {5, 64, 80}, {9, 17, 33}};
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_fa_kernels *fk = kinfer_fa_kernels_at(level);
        if (!fk) continue;
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            const int m = shapes[si][0], k = shapes[si][1], n = shapes[si][2];
            float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
            float *c = malloc(sizeof(float) * m * n), *ref = malloc(sizeof(float) * m * n);
            for (int i = 0; i < m * k; i++) a[i] = rnd(-1, 1);
            for (int i = 0; i < k * n; i++) b[i] = rnd(-1, 1);
            for (int i = 0; i < m * n; i++) c[i] = ref[i] = rnd(-1, 1);
            fk->gemm_f32(c, a, b, m, k, n);
            kinfer_ref_fa_gemm_f32(ref, a, b, m, k, n);
            ck_assert_msg(memcmp(c, ref, sizeof(float) * m * n) == 0, "level %d gemm %dx%dx%d differs", level, m, k, n);
            free(a), free(b), free(c), free(ref);
        }
    }
}
END_TEST

START_TEST(test_exp_sum)
{
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_fa_kernels *fk = kinfer_fa_kernels_at(level);
        if (!fk) continue;
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            const int64_t n = sizes[si];
            float *x = malloc(4 * n), *ref = malloc(4 * n);
            float max = -INFINITY;
            for (int64_t i = 0; i < n; i++) {
                x[i] = ref[i] = i % 9 == 4 ? -INFINITY : rnd(-30, 5); /* masked keys too */
                if (x[i] > max) max = x[i];
            }
            if (max == -INFINITY) max = 0;
            const double s = fk->exp_sum(x, n, max), want = kinfer_ref_fa_exp_sum(ref, n, max);
            for (int64_t i = 0; i < n; i++)
                ck_assert_msg(fabsf(x[i] - ref[i]) <= 3e-7f * ref[i] && (ref[i] != 0 || x[i] == 0),
                              "level %d n %lld: e^x[%lld] %.9g, want %.9g", level, (long long)n, (long long)i, x[i],
                              ref[i]);
            ck_assert_msg(fabs(s - want) <= 1e-6 * want, "level %d n %lld: sum %.9g, want %.9g", level, (long long)n, s, want);
            free(x), free(ref);
        }
    }
}
END_TEST

START_TEST(test_scale_mask_f32)
{
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_fa_kernels *fk = kinfer_fa_kernels_at(level);
        if (!fk) continue;
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            const int64_t n = sizes[si];
            float *x = malloc(4 * n), *ref = malloc(4 * n);
            for (int64_t i = 0; i < n; i++) x[i] = ref[i] = rnd(-4, 4);
            fk->scale_f32(n, x, 0.37f);
            kinfer_ref_fa_scale_f32(n, ref, 0.37f);
            ck_assert_msg(memcmp(x, ref, 4 * n) == 0, "level %d n %lld: scale_f32 differs", level, (long long)n);
            free(x), free(ref);
        }
        /* masks: none seen, all, a causal edge, scattered; rows of 64 and shorter */
        const uint64_t masks[] = {0, ~0ull, (1ull << 37) - 1, 0x8000000000000001ull, 0x0123456789abcdefull};
        const int ns[] = {64, 63, 17, 1};
        for (size_t mi = 0; mi < sizeof masks / sizeof *masks; mi++)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                float x[64], ref[64];
                for (int i = 0; i < 64; i++) x[i] = ref[i] = rnd(-8, 8);
                const float got = fk->mask_max(x, ns[ni], masks[mi], 0.125f);
                const float want = kinfer_ref_fa_mask_max(ref, ns[ni], masks[mi], 0.125f);
                ck_assert_msg(memcmp(x, ref, sizeof x) == 0 && memcmp(&got, &want, sizeof got) == 0,
                              "level %d mask %zu n %d: mask_max differs (max %g, want %g)", level, mi, ns[ni], got,
                              want);
            }
    }
}
END_TEST

START_TEST(test_pack_kt)
{
    const int hds[] = {16, 64, 80, 128, 256, 40};
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_fa_kernels *fk = kinfer_fa_kernels_at(level);
        if (!fk) continue;
        for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++) {
            const int hd = hds[hi];
            kinfer_fp16 *k = malloc(sizeof *k * 64 * hd);
            float *kt = malloc(sizeof(float) * 64 * hd), *ref = malloc(sizeof(float) * 64 * hd);
            const kinfer_fp16 *rows[64];
            for (int i = 0; i < 64 * hd; i++) k[i] = kinfer_fp32_to_fp16(rnd(-3, 3));
            for (int r = 0; r < 64; r++) rows[r] = k + (size_t)((r * 37) % 64) * hd; /* rows in any order */
            fk->pack_kt(kt, rows, hd);
            kinfer_ref_fa_pack_kt(ref, rows, hd);
            ck_assert_msg(memcmp(kt, ref, sizeof(float) * 64 * hd) == 0, "level %d hd %d: pack_kt differs", level, hd);
            free(k), free(kt), free(ref);
        }
    }
}
END_TEST

static Suite *fa_kernels_suite(void)
{
    Suite *s = suite_create("fa_kernels");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, test_mad_scale_f16);
    tcase_add_test(tc, test_mad_f32);
    tcase_add_test(tc, test_gemm_f32);
    tcase_add_test(tc, test_exp_sum);
    tcase_add_test(tc, test_scale_mask_f32);
    tcase_add_test(tc, test_pack_kt);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(fa_kernels_suite());
}
