/*
 * test_placement.c — where layers go (n_gpu_layers) and what the estimate
 * says, on simulated devices: the placement rules on made-up sizes, then
 * kinfer_model_estimate and kinfer_context_new on the real test models with
 * params.gpu_budget_bytes standing in for a GPU's free memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "model/model.h"
#include "runtime/placement.h"
#include "testutil.h"

#define MiB ((uint64_t)1 << 20)

/* four layers: 100, 10, 100, 10 MiB (as if alternating sliding-window
 * layers had small caches), output 50 MiB, scratch 30 MiB */
static const uint64_t layer_mib[4] = {100, 10, 100, 10};

static placement_need need_of(uint64_t *bytes)
{
    for (int i = 0; i < 4; i++) bytes[i] = layer_mib[i] * MiB;
    return (placement_need){.n_layer = 4, .layer_bytes = bytes, .output_bytes = 50 * MiB,
                            .compute_bytes = 30 * MiB};
}

START_TEST(test_bytes_count_the_last_layers)
{
    uint64_t b[4];
    const placement_need need = need_of(b);
    ck_assert_uint_eq(placement_bytes(&need, 0), 0);
    ck_assert_uint_eq(placement_bytes(&need, 1), (30 + 10) * MiB);
    ck_assert_uint_eq(placement_bytes(&need, 2), (30 + 10 + 100) * MiB);
    ck_assert_uint_eq(placement_bytes(&need, 4), (30 + 220) * MiB);
    ck_assert_uint_eq(placement_bytes(&need, 5), (30 + 220 + 50) * MiB); /* and the output */
    ck_assert_uint_eq(placement_bytes(&need, 99), (30 + 220 + 50) * MiB);
}
END_TEST

START_TEST(test_demanded_layers)
{
    uint64_t b[4];
    const placement_need need = need_of(b);
    placement pl;
    char err[256];
    ck_assert_int_eq(placement_plan(&need, 0, 0, 0, &pl, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(pl.n_gpu_layers, 0);
    ck_assert_int_eq(pl.first_gpu_layer, 4);
    ck_assert_uint_eq(pl.device_bytes, 0);

    /* exactly enough; the margin only limits automatic placement */
    ck_assert_int_eq(placement_plan(&need, 2, 140 * MiB, 512 * MiB, &pl, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(pl.n_gpu_layers, 2);
    ck_assert_int_eq(pl.first_gpu_layer, 2);
    ck_assert(!pl.output_on_gpu);
    ck_assert_uint_eq(pl.device_bytes, 140 * MiB);

    /* one byte short: an error that says what was needed and what was free */
    ck_assert_int_eq(placement_plan(&need, 2, 140 * MiB - 1, 0, &pl, err, sizeof err), KINFER_E_DEVICE);
    ck_assert_msg(strstr(err, "n_gpu_layers = 2 needs 140.0 MiB") && strstr(err, "are free"), "%s", err);
    ck_assert_int_eq(pl.n_gpu_layers, 0);

    /* llama.cpp's -ngl 99: every layer and the output */
    ck_assert_int_eq(placement_plan(&need, 99, 1024 * MiB, 0, &pl, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(pl.n_gpu_layers, 5);
    ck_assert_int_eq(pl.first_gpu_layer, 0);
    ck_assert(pl.output_on_gpu);
    ck_assert_uint_eq(pl.device_bytes, 300 * MiB);
    ck_assert_int_eq(placement_plan(&need, 99, 299 * MiB, 0, &pl, err, sizeof err), KINFER_E_DEVICE);
    ck_assert_msg(strstr(err, "4 layers, the output") != NULL, "%s", err);

    /* a budget smaller than one layer is an error when layers are demanded */
    ck_assert_int_eq(placement_plan(&need, 1, 39 * MiB, 0, &pl, err, sizeof err), KINFER_E_DEVICE);
}
END_TEST

START_TEST(test_automatic_layers)
{
    uint64_t b[4];
    const placement_need need = need_of(b);
    placement pl;
    char err[256] = "";
    /* everything fits */
    ck_assert_int_eq(placement_plan(&need, -1, 1024 * MiB, 0, &pl, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(pl.n_gpu_layers, 5);
    /* the output no longer fits: the four layers */
    ck_assert_int_eq(placement_plan(&need, -1, 299 * MiB, 0, &pl, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(pl.n_gpu_layers, 4);
    ck_assert(!pl.output_on_gpu);
    /* the margin comes off the free memory: 400 - 250 = 150 -> three layers (30+10+100+10) */
    ck_assert_int_eq(placement_plan(&need, -1, 400 * MiB, 250 * MiB, &pl, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(pl.n_gpu_layers, 3);
    ck_assert_int_eq(pl.first_gpu_layer, 1);
    ck_assert_uint_eq(pl.device_bytes, 150 * MiB);
    /* smaller than one layer: everything stays on the CPU, no error */
    ck_assert_int_eq(placement_plan(&need, -1, 39 * MiB, 0, &pl, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(pl.n_gpu_layers, 0);
    ck_assert_uint_eq(pl.device_bytes, 0);
    ck_assert_int_eq(placement_plan(&need, -1, 100 * MiB, 200 * MiB, &pl, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(pl.n_gpu_layers, 0);
}
END_TEST

/* ------------------------------------------------- real models, estimate */

static kinfer_estimate estimate_of(const kinfer_model *m, int32_t ngl, uint64_t budget, kinfer_status want)
{
    kinfer_context_params p = kinfer_context_default_params();
    p.n_ctx = 2048;
    p.n_gpu_layers = ngl;
    p.gpu_budget_bytes = budget;
    p.gpu_margin_bytes = 0;
    kinfer_estimate e;
    const kinfer_status st = kinfer_model_estimate(m, &p, &e);
    ck_assert_msg(st == want, "ngl %d budget %llu: %s (%s)", ngl, (unsigned long long)budget,
                  kinfer_status_str(st), e.errmsg);
    return e;
}

static void check_model(const char *file)
{
    const char *path = test_model_path(file);
    if (!path) return;
    if (kinfer_cuda_device_count(NULL) > 0) {
        /* a real GPU's free memory would cap the simulated budgets */
        printf("SKIP: %s: simulated-device checks need a machine without a GPU\n", file);
        return;
    }
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    const int32_t n_layer = m->w.hp.n_layer;

    /* CPU only: everything on the host */
    const kinfer_estimate cpu = estimate_of(m, 0, 0, KINFER_OK);
    ck_assert_int_eq(cpu.n_gpu_layers, 0);
    ck_assert_uint_eq(cpu.device_bytes, 0);
    ck_assert_uint_eq(cpu.weights_host_bytes, m->w.tensor_bytes);

    /* all of it on a big simulated GPU: the token embedding stays on the host */
    const kinfer_estimate all = estimate_of(m, -1, (uint64_t)64 << 30, KINFER_OK);
    ck_assert_int_eq(all.n_gpu_layers, n_layer + 1);
    const uint64_t embd = m->w.tok_embd.row_size * (uint64_t)m->w.tok_embd.ne1;
    ck_assert_uint_eq(all.weights_host_bytes, embd);
    ck_assert_uint_eq(all.kv_device_bytes, cpu.kv_host_bytes);
    ck_assert_uint_eq(all.kv_host_bytes, 0);
    ck_assert_uint_gt(all.compute_device_bytes, 0);
    ck_assert_uint_eq(all.device_bytes,
                      all.weights_device_bytes + all.kv_device_bytes + all.compute_device_bytes);

    /* demanded layers: each one more needs more, and exactly its size fits */
    uint64_t prev = 0;
    for (int32_t n = 1; n <= n_layer + 1; n++) {
        const kinfer_estimate e = estimate_of(m, n, (uint64_t)64 << 30, KINFER_OK);
        ck_assert_int_eq(e.n_gpu_layers, n);
        ck_assert_uint_gt(e.device_bytes, prev);
        prev = e.device_bytes;
        estimate_of(m, n, e.device_bytes, KINFER_OK);
        const kinfer_estimate short1 = estimate_of(m, n, e.device_bytes - 1, KINFER_E_DEVICE);
        ck_assert_msg(strstr(short1.errmsg, "needs") && strstr(short1.errmsg, "are free"), "%s",
                      short1.errmsg);
    }
    ck_assert_uint_eq(prev, all.device_bytes);

    /* automatic placement under a tight budget: as many as fit, no more */
    const int32_t half = n_layer / 2;
    const kinfer_estimate h = estimate_of(m, half, (uint64_t)64 << 30, KINFER_OK);
    ck_assert_int_eq(estimate_of(m, -1, h.device_bytes, KINFER_OK).n_gpu_layers, half);
    ck_assert_int_eq(estimate_of(m, -1, h.device_bytes - 1, KINFER_OK).n_gpu_layers, half - 1);
    const kinfer_estimate one = estimate_of(m, 1, (uint64_t)64 << 30, KINFER_OK);
    ck_assert_int_eq(estimate_of(m, -1, one.device_bytes - 1, KINFER_OK).n_gpu_layers, 0);

    /* contexts: automatic with no room runs on the CPU; layers demanded of a
     * machine without a GPU are a clear error, never a silent CPU run */
    kinfer_context_params p = kinfer_context_default_params();
    p.n_ctx = 256;
    p.n_threads = 1;
    p.n_gpu_layers = -1;
    kinfer_context *ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_OK);
    kinfer_context_free(ctx);
    p.n_gpu_layers = 4;
    ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_E_DEVICE);
    ck_assert_msg(strstr(kinfer_context_errmsg(ctx), "no usable GPU") != NULL, "%s",
                  kinfer_context_errmsg(ctx));
    kinfer_context_free(ctx);
    p.gpu_budget_bytes = (uint64_t)64 << 30; /* a simulated device cannot run anything */
    ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_E_UNSUPPORTED); /* a split, first */
    ck_assert_msg(strstr(kinfer_context_errmsg(ctx), "issue 24") != NULL, "%s",
                  kinfer_context_errmsg(ctx));
    kinfer_context_free(ctx);
    p.n_gpu_layers = 99;
    ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_E_DEVICE);
    ck_assert_msg(strstr(kinfer_context_errmsg(ctx), "no usable GPU") != NULL, "%s",
                  kinfer_context_errmsg(ctx));
    kinfer_context_free(ctx);
    kinfer_model_free(m);
}

START_TEST(test_estimate_smollm2)
{
    check_model(TEST_MODEL_SMOLLM2);
}
END_TEST

/* Gemma 3's sliding-window layers have smaller caches than its global ones */
START_TEST(test_estimate_gemma3)
{
    check_model(TEST_MODEL_GEMMA3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("placement");
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, test_bytes_count_the_last_layers);
    tcase_add_test(rules, test_demanded_layers);
    tcase_add_test(rules, test_automatic_layers);
    suite_add_tcase(s, rules);
    TCase *models = tcase_create("models");
    tcase_set_timeout(models, 120);
    tcase_add_test(models, test_estimate_smollm2);
    tcase_add_test(models, test_estimate_gemma3);
    suite_add_tcase(s, models);
    return test_run_suite(s);
}
