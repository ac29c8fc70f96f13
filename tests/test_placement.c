/*
 * test_placement.c — where layers go (n_gpu_layers) and what the estimate
 * says, on simulated devices: the placement rules on made-up sizes, then
 * kinfer_model_estimate and kinfer_context_new on the real test models with
 * params.gpu_budget_bytes standing in for a GPU's free memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/writer.h"
#include "kinfer.h"
#include "model/model.h"
#include "runtime/placement.h"
#include "runtime/plan.h"
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

/* The host check on made-up sizes: the allocations (KV + scratch) against
 * what is available; the weights are mapped already and only reported. */
START_TEST(test_host_check)
{
    const host_need need = {.n_ctx = 4096, .weights_bytes = 1000 * MiB, .kv_bytes = 300 * MiB,
                            .compute_bytes = 20 * MiB};
    char err[256] = "";
    ck_assert_int_eq(placement_host_check(&need, 320 * MiB, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(placement_host_check(&need, 0, err, sizeof err), KINFER_OK); /* unknown */
    ck_assert_int_eq(placement_host_check(&need, 320 * MiB - 1, err, sizeof err), KINFER_E_NOMEM);
    ck_assert_msg(strstr(err, "n_ctx 4096 needs 1320.0 MiB of host memory (weights 1000.0 MiB") &&
                      strstr(err, "KV cache 300.0 MiB + scratch 20.0 MiB") &&
                      strstr(err, "320.0 MiB available (MemAvailable)"), "%s", err);
    ck_assert_int_eq(placement_host_check(&need, 1, NULL, 0), KINFER_E_NOMEM);
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

/*
 * A context too big for the machine: KINFER_E_NOMEM from the plan, before
 * kv_init allocates anything, with the estimate and MemAvailable in the
 * message (a calloc of the cache would have failed with "cannot allocate
 * the KV cache", or, under overcommit, succeeded).  Sizes: n_ctx at the
 * limit, and one whose cache is 1.25x what is available now (which
 * overcommit would let through).
 */
static void check_too_big(kinfer_model *m, uint32_t n_ctx, uint64_t kv_per_cell)
{
    kinfer_context_params p = kinfer_context_default_params();
    p.n_ctx = n_ctx;
    p.n_threads = 1;
    kinfer_estimate e;
    ck_assert_int_eq(kinfer_model_estimate(m, &p, &e), KINFER_E_NOMEM);
    kinfer_context *ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_E_NOMEM);
    const char *msg = kinfer_context_errmsg(ctx);
    ck_assert_str_eq(msg, e.errmsg);
    char head[64];
    snprintf(head, sizeof head, "n_ctx %u needs ", n_ctx);
    ck_assert_msg(strstr(msg, head) == msg && strstr(msg, "already mapped") &&
                      strstr(msg, "(MemAvailable)"), "%s", msg);
    /* the KV figure is the cache's real size */
    const char *kv = strstr(msg, "KV cache ");
    ck_assert_ptr_nonnull(kv);
    const double kv_mib = strtod(kv + strlen("KV cache "), NULL);
    const double want = (double)kv_per_cell * n_ctx / (double)MiB;
    ck_assert_msg(kv_mib > want - 0.1 && kv_mib < want + 0.1, "KV %.1f MiB, want %.1f: %s", kv_mib,
                  want, msg);
    kinfer_context_free(ctx);
}

START_TEST(test_too_big_context)
{
    const char *path = test_model_path(TEST_MODEL_SMOLLM2);
    if (!path) return;
    const uint64_t avail = plan_host_available_bytes();
    if (!avail) {
        printf("SKIP: no MemAvailable in /proc/meminfo\n");
        return;
    }
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    kinfer_context_params p = kinfer_context_default_params();
    p.n_ctx = 256;
    kinfer_estimate small;
    ck_assert_int_eq(kinfer_model_estimate(m, &p, &small), KINFER_OK);
    const uint64_t per_cell = small.kv_host_bytes / 256; /* the cache is linear in n_ctx */
    const uint32_t n_max = 1u << 24;
    const uint64_t target = avail + avail / 4;
    if ((uint64_t)n_max * per_cell <= target) {
        printf("SKIP: %llu MiB available: SmolLM2's largest cache fits\n",
               (unsigned long long)(avail / MiB));
    } else {
        check_too_big(m, n_max, per_cell);
        check_too_big(m, (uint32_t)(target / per_cell), per_cell);
    }
    kinfer_model_free(m);
}
END_TEST

/* A one-layer llama whose heads (16 elements) are not whole Q8_0 blocks,
 * as GGUF bytes (malloc'd; F32 tensors, no vocabulary). */
static unsigned char *small_head_model(size_t *size)
{
    enum { E = 32, HD = 16, NH = 2, FF = 64, NV = 8 };
    gguf_writer *w = gguf_writer_new();
    ck_assert_ptr_nonnull(w);
    ck_assert(!(gguf_writer_set_str(w, "general.architecture", "llama") ||
                gguf_writer_set_u32(w, "llama.context_length", 4096) ||
                gguf_writer_set_u32(w, "llama.embedding_length", E) ||
                gguf_writer_set_u32(w, "llama.block_count", 1) ||
                gguf_writer_set_u32(w, "llama.feed_forward_length", FF) ||
                gguf_writer_set_u32(w, "llama.attention.head_count", NH) ||
                gguf_writer_set_u32(w, "llama.attention.head_count_kv", NH) ||
                gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f)));
    static const struct { const char *name; int64_t ne0, ne1; } t[] = {
        {"token_embd.weight", E, NV},        {"output_norm.weight", E, 1},
        {"blk.0.attn_norm.weight", E, 1},    {"blk.0.attn_q.weight", E, NH * HD},
        {"blk.0.attn_k.weight", E, NH * HD}, {"blk.0.attn_v.weight", E, NH * HD},
        {"blk.0.attn_output.weight", NH * HD, E}, {"blk.0.ffn_norm.weight", E, 1},
        {"blk.0.ffn_gate.weight", E, FF},    {"blk.0.ffn_up.weight", E, FF},
        {"blk.0.ffn_down.weight", FF, E},
    };
    const int n = (int)(sizeof t / sizeof t[0]);
    for (int i = 0; i < n; i++) {
        const int64_t ne[3] = {t[i].ne0, t[i].ne1, 1};
        uint64_t bytes;
        ck_assert_int_eq(gguf_writer_add_tensor(w, t[i].name, KINFER_TYPE_F32, t[i].ne1 > 1 ? 2 : 1, ne,
                                                &bytes), KINFER_OK);
    }
    char *buf = NULL;
    FILE *f = open_memstream(&buf, size);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gguf_writer_write_header(w, f), KINFER_OK);
    for (int i = 0; i < n; i++) {
        const size_t count = (size_t)(t[i].ne0 * t[i].ne1);
        float *data = malloc(count * sizeof *data);
        ck_assert_ptr_nonnull(data);
        for (size_t j = 0; j < count; j++) data[j] = t[i].ne1 == 1 ? 1.0f : 0.01f * (float)(j % 7);
        ck_assert_int_eq(gguf_writer_write_tensor_data(w, f, data, count * sizeof *data), KINFER_OK);
        free(data);
    }
    ck_assert_int_eq(fclose(f), 0);
    gguf_writer_free(w);
    return (unsigned char *)buf;
}

/* kinfer_context_new and kinfer_model_estimate agree on params: st, and a
 * message holding named when it fails. */
static void check_fa(const kinfer_model *m, kinfer_flash_attn fa, kinfer_type tk, kinfer_type tv,
                     kinfer_status want, const char *named)
{
    kinfer_context_params p = kinfer_context_default_params();
    p.n_ctx = 256;
    p.n_threads = 1;
    p.flash_attn = fa;
    p.type_k = tk;
    p.type_v = tv;
    kinfer_estimate e;
    const kinfer_status est = kinfer_model_estimate(m, &p, &e);
    kinfer_context *ctx = NULL;
    const kinfer_status st = kinfer_context_new(m, &p, &ctx);
    ck_assert_msg(st == want && est == want, "fa %d K %s V %s: %s / %s (%s)", (int)fa, kinfer_type_name(tk),
                  kinfer_type_name(tv), kinfer_status_str(st), kinfer_status_str(est),
                  kinfer_context_errmsg(ctx));
    if (named)
        ck_assert_msg(strstr(kinfer_context_errmsg(ctx), named) && strstr(e.errmsg, named), "%s",
                      kinfer_context_errmsg(ctx));
    kinfer_context_free(ctx);
}

/*
 * llama.cpp's flash-attention rules (llama_init_from_model), each one:
 * a quantized V cache needs flash attention (off: an error; auto turns it
 * on); a quantized K cache runs either way; with flash attention, K and V
 * heads must be whole blocks of a quantized cache type (kinfer refuses
 * that with it off too: it reads K heads in place).  A flash_attn that is
 * none of auto, off, on is an invalid argument.  (llama.cpp's other rules
 * are about what kinfer does not run: Grok forces it off, SPLIT_MODE_TENSOR
 * needs it on, MLA models need K and V of one type.)
 */
START_TEST(test_flash_attn_rules)
{
    const kinfer_type F16 = KINFER_TYPE_F16, Q8 = KINFER_TYPE_Q8_0;
    const char *path = test_model_path(TEST_MODEL_SMOLLM2);
    if (path) {
        kinfer_model *m = NULL;
        ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
        check_fa(m, KINFER_FLASH_ATTN_OFF, F16, Q8, KINFER_E_INVALID_ARG,
                 "quantized V cache (Q8_0) needs flash attention");
        check_fa(m, KINFER_FLASH_ATTN_OFF, Q8, Q8, KINFER_E_INVALID_ARG, "needs flash attention");
        check_fa(m, KINFER_FLASH_ATTN_AUTO, F16, Q8, KINFER_OK, NULL);
        check_fa(m, KINFER_FLASH_ATTN_ON, Q8, Q8, KINFER_OK, NULL);
        check_fa(m, KINFER_FLASH_ATTN_OFF, Q8, F16, KINFER_OK, NULL);
        check_fa(m, KINFER_FLASH_ATTN_OFF, F16, KINFER_TYPE_F32, KINFER_OK, NULL);
        check_fa(m, (kinfer_flash_attn)2, F16, F16, KINFER_E_INVALID_ARG, "is not one of auto");
        check_fa(m, (kinfer_flash_attn)-2, F16, F16, KINFER_E_INVALID_ARG, "is not one of auto");
        kinfer_model_free(m);
    }
    size_t size;
    unsigned char *img = small_head_model(&size);
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load_from_buffer(img, size, NULL, &m), KINFER_OK);
    check_fa(m, KINFER_FLASH_ATTN_ON, F16, F16, KINFER_OK, NULL);
    check_fa(m, KINFER_FLASH_ATTN_ON, Q8, F16, KINFER_E_UNSUPPORTED, "heads of 16 / 16 elements do not fit");
    check_fa(m, KINFER_FLASH_ATTN_ON, F16, Q8, KINFER_E_UNSUPPORTED, "do not fit F16 / Q8_0");
    check_fa(m, KINFER_FLASH_ATTN_AUTO, F16, Q8, KINFER_E_UNSUPPORTED, "do not fit");
    check_fa(m, KINFER_FLASH_ATTN_OFF, Q8, F16, KINFER_E_UNSUPPORTED, "do not fit Q8_0 / F16");
    kinfer_model_free(m);
    free(img);
}
END_TEST

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
    tcase_add_test(rules, test_host_check);
    suite_add_tcase(s, rules);
    TCase *models = tcase_create("models");
    tcase_set_timeout(models, 120);
    tcase_add_test(models, test_estimate_smollm2);
    tcase_add_test(models, test_estimate_gemma3);
    tcase_add_test(models, test_too_big_context);
    tcase_add_test(models, test_flash_attn_rules);
    suite_add_tcase(s, models);
    return test_run_suite(s);
}
