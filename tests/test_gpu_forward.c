/*
 * test_gpu_forward.c — the CUDA backend (lib/backend/cuda_backend.c).
 *
 * Host cases run everywhere: the cell table the attention kernels read, the
 * device bytes the backend allocates against the estimate's, the models it
 * refuses, and what n_gpu_layers does on a machine without a GPU.
 *
 * GPU cases run when a GPU is found (else SKIP with the reason): each test
 * model fully offloaded against the CPU — the logits of a prompt's last
 * tokens (the GEMM path) and of 64 greedy steps (the GEMV path) within
 * GPU_LOGIT_TOL of the CPU's largest logit, and the 64 greedy tokens
 * identical; the same with a Q8_0 cache (logits only).  KINFER_GPU_EXTRA_MODEL
 * names one more model (the check script's synthetic 8B): logits only, on
 * a prompt of token ids.  KINFER_GPU_GREEDY_LOOSE=1 counts greedy tokens
 * that differ instead of failing (synthetic weights in the test models'
 * shapes, whose near-ties a float difference may flip).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda_backend.h"
#include "kinfer.h"
#include "kvcache/kvcache.h"
#include "model/model.h"
#include "testutil.h"

/* CPU and GPU differ in summation order and in the activations' precision
 * (the CPU quantizes them to Q8 as llama.cpp does, the GEMV reads f32, the
 * GEMM F16): max |gpu - cpu| over a row <= this times max |cpu| of the row.
 * A first bound written without a GPU; the values are printed to tune it. */
#define GPU_LOGIT_TOL 0.02
#define GPU_GREEDY_STEPS 64

/* ------------------------------------------------------ host: cell table */

START_TEST(test_cell_table)
{
    kv_cell cells[6] = {0};
    int32_t slot[6] = {2, -1, 0, 1, -1, -1};
    const int32_t pos[6] = {5, 7, -1, 3, 9, 2};
    for (int c = 0; c < 6; c++) {
        cells[c].pos = pos[c];
        if (pos[c] >= 0) cells[c].seq[0] = (uint64_t)1 << (c % 2);
    }
    cells[3].seq[KV_SEQ_WORDS - 1] = (uint64_t)1 << 63; /* a high sequence too */
    kv_cache kv = {.n_ctx = 6, .cells = cells, .slot = slot, .hi = 5}; /* cell 5 past hi: ignored */

    int32_t tpos[6];
    uint64_t tseq[6 * KV_SEQ_WORDS];
    cuda_cell_table(&kv, 0, 6, tpos, tseq);
    const int32_t want_full[6] = {5, 7, -1, 3, 9, -1};
    for (int r = 0; r < 6; r++) ck_assert_int_eq(tpos[r], want_full[r]);
    ck_assert_uint_eq(tseq[0 * KV_SEQ_WORDS], 1);
    ck_assert_uint_eq(tseq[1 * KV_SEQ_WORDS], 2);
    ck_assert_uint_eq(tseq[2 * KV_SEQ_WORDS], 0); /* free */
    ck_assert_uint_eq(tseq[3 * KV_SEQ_WORDS + KV_SEQ_WORDS - 1], (uint64_t)1 << 63);

    /* sliding-window rows are slots: cell 0 in slot 2, cell 3 in slot 1;
     * cell 1 lost its slot, cell 2 is free (its stale slot 0 is not used) */
    cuda_cell_table(&kv, 1, 3, tpos, NULL);
    ck_assert_int_eq(tpos[0], -1);
    ck_assert_int_eq(tpos[1], 3);
    ck_assert_int_eq(tpos[2], 5);
}
END_TEST

/* ------------------------------------------------- host: sizes, refusals */

static void check_sizes(const char *file)
{
    const char *path = test_model_path(file);
    if (!path) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    const model_weights *w = &m->w;
    char err[256];
    ck_assert_msg(backend_cuda_check(w, KINFER_TYPE_F16, KINFER_TYPE_F16, err, sizeof err) == KINFER_OK,
                  "%s", err);
    ck_assert_int_eq(backend_cuda_check(w, KINFER_TYPE_Q8_0, KINFER_TYPE_Q8_0, err, sizeof err), KINFER_OK);
    ck_assert_int_eq(backend_cuda_check(w, KINFER_TYPE_BF16, KINFER_TYPE_F16, err, sizeof err),
                     KINFER_E_UNSUPPORTED);

    const uint32_t n_ctx = 512;
    kv_cache kv;
    ck_assert_int_eq(kv_init(&kv, w, n_ctx, 1, 512, 0, KINFER_TYPE_F16, KINFER_TYPE_F16), KINFER_OK);
    const cuda_backend_shape sh = {.w = w, .kv = &kv, .n_tokens = 256};
    cuda_backend_bytes b;
    backend_cuda_bytes(&sh, &b);

    /* weights: every tensor but the token embedding, the output matrix
     * even when it is the (tied) embedding; each aligned */
    uint64_t want = wtensor_bytes(&w->output_norm) + wtensor_bytes(&w->output) +
                    wtensor_bytes(&w->rope_freqs);
    int32_t n = 2 + (w->rope_freqs.data != NULL);
    for (int il = 0; il < w->hp.n_layer; il++) {
        want += layer_weight_bytes(&w->layers[il]);
        for (int i = 0; i < n_layer_tensors; i++) n += layer_tensor_of(&w->layers[il], i)->data != NULL;
    }
    ck_assert_int_eq(b.n_weights, n);
    ck_assert_uint_ge(b.weights, want);
    ck_assert_uint_lt(b.weights, want + (uint64_t)n * CUDA_BACKEND_ALIGN);

    /* the KV rows: what the host cache would hold, each layer's K and V aligned */
    const uint64_t kv_want = kv_cache_bytes(w, n_ctx, 1, 512, 0, KINFER_TYPE_F16, KINFER_TYPE_F16);
    ck_assert_uint_ge(b.kv, kv_want);
    ck_assert_uint_lt(b.kv, kv_want + 2 * (uint64_t)w->hp.n_layer * CUDA_BACKEND_ALIGN);
    /* the up product of a slice and a row of logits are the largest buffers */
    ck_assert_uint_ge(b.compute, 256ull * w->hp.n_ff * 4 + (uint64_t)w->hp.n_vocab * 4);

    /* a mixture-of-experts layer is refused, naming why */
    layer_weights *layers = malloc((size_t)w->hp.n_layer * sizeof *layers);
    memcpy(layers, w->layers, (size_t)w->hp.n_layer * sizeof *layers);
    model_weights moe = *w;
    moe.layers = layers;
    layers[1].ffn_up.ne2 = 8;
    ck_assert_int_eq(backend_cuda_check(&moe, KINFER_TYPE_F16, KINFER_TYPE_F16, err, sizeof err),
                     KINFER_E_UNSUPPORTED);
    ck_assert_msg(strstr(err, "layer 1") && strstr(err, "mixture-of-experts"), "%s", err);
    layers[1].ffn_up.ne2 = 1;
    layers[2].wq.type = KINFER_TYPE_IQ2_XXS; /* a type without CUDA kernels */
    ck_assert_int_eq(backend_cuda_check(&moe, KINFER_TYPE_F16, KINFER_TYPE_F16, err, sizeof err),
                     KINFER_E_UNSUPPORTED);
    ck_assert_msg(strstr(err, "layer 2") && strstr(err, "no CUDA kernels"), "%s", err);
    free(layers);

    /* without a GPU the backend cannot be made, and fails cleanly */
    if (kinfer_cuda_device_count(NULL) == 0) {
        backend *be = NULL;
        const kinfer_status st = backend_cuda_new(&sh, &be, err, sizeof err);
        ck_assert_msg(st == KINFER_E_UNSUPPORTED || st == KINFER_E_DEVICE, "%s: %s", kinfer_status_str(st), err);
        ck_assert(err[0] != '\0');
        backend_free(be);

        /* and a context asked for the GPU says so (plan.c: "no usable GPU") */
        kinfer_context_params p = kinfer_context_default_params();
        p.n_ctx = 256;
        p.n_gpu_layers = 99;
        kinfer_context *ctx = NULL;
        ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_E_DEVICE);
        ck_assert_msg(strstr(kinfer_context_errmsg(ctx), "no usable GPU"), "%s", kinfer_context_errmsg(ctx));
        kinfer_context_free(ctx);
    }
    kv_free(&kv);
    kinfer_model_free(m);
}

START_TEST(test_sizes_smollm2)
{
    check_sizes(TEST_MODEL_SMOLLM2);
}
END_TEST

START_TEST(test_sizes_gemma3)
{
    check_sizes(TEST_MODEL_GEMMA3);
}
END_TEST

/* ------------------------------------------------------ GPU vs CPU */

static kinfer_context *new_ctx(const kinfer_model *m, int32_t ngl, kinfer_type type_kv)
{
    kinfer_context_params p = kinfer_context_default_params();
    p.n_ctx = 512;
    p.n_gpu_layers = ngl;
    p.type_k = p.type_v = type_kv;
    kinfer_context *ctx = NULL;
    const kinfer_status st = kinfer_context_new(m, &p, &ctx);
    ck_assert_msg(st == KINFER_OK, "context (ngl %d): %s: %s", ngl, kinfer_status_str(st),
                  kinfer_context_errmsg(ctx));
    return ctx;
}

/* tokens from pos on, logits for the last n_out */
static void decode(kinfer_context *ctx, const kinfer_token *tok, int32_t n, int32_t pos, int32_t n_out)
{
    kinfer_pos *p = malloc((size_t)n * sizeof *p);
    int8_t *want = malloc((size_t)n);
    for (int32_t i = 0; i < n; i++) p[i] = pos + i, want[i] = i >= n - n_out;
    const kinfer_batch b = {.n_tokens = n, .token = tok, .pos = p, .logits = want};
    const kinfer_status st = kinfer_decode(ctx, &b);
    ck_assert_msg(st == KINFER_OK, "decode: %s: %s", kinfer_status_str(st), kinfer_context_errmsg(ctx));
    free(p);
    free(want);
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* max |gpu - cpu| / max |cpu| of one row; fails over the tolerance */
static double compare_row(const char *what, int32_t i, const float *cpu, const float *gpu, int32_t n)
{
    double diff = 0, scale = 0;
    for (int32_t j = 0; j < n; j++) {
        ck_assert_msg(isfinite(gpu[j]), "%s row %d: logit %d is %f on the GPU", what, i, j, (double)gpu[j]);
        diff = fmax(diff, fabs((double)gpu[j] - cpu[j]));
        scale = fmax(scale, fabs((double)cpu[j]));
    }
    const double rel = diff / (scale > 0 ? scale : 1);
    ck_assert_msg(rel <= GPU_LOGIT_TOL, "%s row %d: max |gpu - cpu| = %g, %g of max |cpu| %g (tolerance %g)",
                  what, i, diff, rel, scale, GPU_LOGIT_TOL);
    return rel;
}

/* A prompt on both, the last rows compared; then greedy steps. */
static void compare_model(const char *label, const kinfer_model *m, const kinfer_token *prompt, int32_t n,
                          kinfer_type type_kv, int greedy_steps, int must_match)
{
    const int32_t n_vocab = kinfer_model_n_vocab(m), n_out = n < 4 ? n : 4;
    kinfer_context *cpu = new_ctx(m, 0, type_kv), *gpu = new_ctx(m, 99, type_kv);
    decode(cpu, prompt, n, 0, n_out);
    decode(gpu, prompt, n, 0, n_out);
    double worst = 0;
    for (int32_t i = n - n_out; i < n; i++)
        worst = fmax(worst, compare_row(label, i, kinfer_get_logits(cpu, i), kinfer_get_logits(gpu, i), n_vocab));
    printf("%s: prompt of %d tokens, last %d rows: max |gpu - cpu| / max |cpu| = %.3g\n", label, n, n_out, worst);

    kinfer_token tc = argmax(kinfer_get_logits(cpu, n - 1), n_vocab);
    kinfer_token tg = argmax(kinfer_get_logits(gpu, n - 1), n_vocab);
    int32_t same = 0;
    worst = 0;
    for (int s = 0; s < greedy_steps; s++) {
        if (must_match)
            ck_assert_msg(tc == tg, "%s: greedy step %d: CPU picks %d, GPU %d", label, s, tc, tg);
        same += tc == tg;
        decode(cpu, &tc, 1, n + s, 1);
        decode(gpu, &tc, 1, n + s, 1); /* the CPU's token: both see the same text */
        const float *lc = kinfer_get_logits(cpu, 0), *lg = kinfer_get_logits(gpu, 0);
        worst = fmax(worst, compare_row(label, n + s, lc, lg, n_vocab));
        tc = argmax(lc, n_vocab);
        tg = argmax(lg, n_vocab);
    }
    if (greedy_steps)
        printf("%s: %d greedy steps, %d tokens the same, max |gpu - cpu| / max |cpu| = %.3g\n", label,
               greedy_steps, same, worst);
    kinfer_context_free(cpu);
    kinfer_context_free(gpu);
}

static const char prompt_text[] =
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined movable metal type, oil-based ink and a wooden screw press. Within fifty years "
    "printing shops had spread to more than two hundred cities across Europe, and the price of "
    "books fell so far that";

static void gpu_model(const char *file)
{
    const char *path = test_model_path(file);
    if (!path) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    kinfer_token tok[256];
    const int64_t n = kinfer_tokenize(m, prompt_text, strlen(prompt_text), tok, 256, true, false, NULL);
    ck_assert_int_gt(n, 16);
    const char *loose = getenv("KINFER_GPU_GREEDY_LOOSE");
    compare_model(file, m, tok, (int32_t)n, KINFER_TYPE_F16, GPU_GREEDY_STEPS, !(loose && *loose == '1'));
    char label[256];
    snprintf(label, sizeof label, "%s, Q8_0 cache", file);
    compare_model(label, m, tok, (int32_t)n, KINFER_TYPE_Q8_0, 8, 0);
    kinfer_model_free(m);
}

static const char *gpu_missing(void)
{
    const char *why = "";
    if (kinfer_cuda_device_count(&why) > 0) return NULL;
    printf("SKIP: GPU forward pass: %s\n", why && *why ? why : "no GPU");
    return why;
}

START_TEST(test_gpu_smollm2)
{
    if (!gpu_missing()) gpu_model(TEST_MODEL_SMOLLM2);
}
END_TEST

START_TEST(test_gpu_gemma3)
{
    if (!gpu_missing()) gpu_model(TEST_MODEL_GEMMA3);
}
END_TEST

static bool cancel_at_half(float progress, void *user_data)
{
    ++*(int *)user_data;
    return progress < 0.5f;
}

/* The upload cancelled half way frees what it made; a shift is refused;
 * a split is refused naming issue 24. */
START_TEST(test_gpu_refusals)
{
    if (gpu_missing()) return;
    const char *path = test_model_path(TEST_MODEL_SMOLLM2);
    if (!path) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    kinfer_context_params p = kinfer_context_default_params();
    p.n_ctx = 256;
    p.n_gpu_layers = 99;
    int calls = 0;
    p.progress = cancel_at_half;
    p.progress_user_data = &calls;
    kinfer_context *ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_E_ABORTED);
    ck_assert_int_gt(calls, 1);
    kinfer_context_free(ctx);

    p.progress = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_OK);
    kinfer_token t = 1;
    decode(ctx, &t, 1, 0, 1);
    ck_assert_int_eq(kinfer_kv_seq_add(ctx, 0, 0, 1, 4), KINFER_E_UNSUPPORTED);
    kinfer_context_free(ctx);

    p.n_gpu_layers = kinfer_model_n_layer(m) - 1;
    ck_assert_int_eq(kinfer_context_new(m, &p, &ctx), KINFER_E_UNSUPPORTED);
    ck_assert_msg(strstr(kinfer_context_errmsg(ctx), "issue 24"), "%s", kinfer_context_errmsg(ctx));
    kinfer_context_free(ctx);
    kinfer_model_free(m);
}
END_TEST

/* KINFER_GPU_EXTRA_MODEL: a model without a meaningful text (synthetic weights) */
START_TEST(test_gpu_extra_model)
{
    const char *path = getenv("KINFER_GPU_EXTRA_MODEL");
    if (!path || !*path) {
        printf("SKIP: no KINFER_GPU_EXTRA_MODEL\n");
        return;
    }
    if (gpu_missing()) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    const int32_t n_vocab = kinfer_model_n_vocab(m);
    kinfer_token tok[32];
    for (int i = 0; i < 32; i++) tok[i] = (kinfer_token)((i * 7919 + 13) % n_vocab);
    compare_model(path, m, tok, 32, KINFER_TYPE_F16, 4, 0);
    kinfer_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gpu_forward");
    TCase *host = tcase_create("host");
    tcase_set_timeout(host, 120);
    tcase_add_test(host, test_cell_table);
    tcase_add_test(host, test_sizes_smollm2);
    tcase_add_test(host, test_sizes_gemma3);
    suite_add_tcase(s, host);
    TCase *gpu = tcase_create("gpu");
    tcase_set_timeout(gpu, 600);
    tcase_add_test(gpu, test_gpu_smollm2);
    tcase_add_test(gpu, test_gpu_gemma3);
    tcase_add_test(gpu, test_gpu_refusals);
    tcase_add_test(gpu, test_gpu_extra_model);
    suite_add_tcase(s, gpu);
    return test_run_suite(s);
}
