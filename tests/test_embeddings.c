/*
 * test_embeddings.c — embeddings out of a context (params.embeddings,
 * pooling none / mean / last) against llama.cpp, and llama-embedding's
 * normalisations.
 *
 * The fixtures, tests/fixtures/embeddings/<model>.txt, are llama.cpp's
 * embeddings of a few prompts on the two real test models
 * (tests/fixtures/gen_embedding_fixtures.py: llama-cpp-python with
 * embedding=True, flash attention on as on the CPU by default, causal
 * attention as for every decoder model, each prompt in a batch of its own).
 * kinfer must give them within EMBD_REL_TOL: the largest difference of an
 * element over the largest magnitude of the reference vector, for each
 * prompt decoded alone, for all prompts in one batch as separate sequences
 * (under 64 tokens), for the prompts twice over in one batch (the "batch"
 * blocks: over 64 tokens, where llama.cpp's flash attention, and kinfer's
 * with it, takes its tiled path, whose rounding differs from the short
 * batches' by up to ~1e-2 of the vector on these models, on both sides),
 * and (SmolLM2) for a batch cut into small micro-batches (a sequence
 * pooled across them).  Skips a model that is absent.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "testutil.h"

#define EMBD_REL_TOL 1e-5
#define FIX_MAX_PROMPTS 6
#define FIX_MAX_TOKENS 64
#define FIX_MAX_EMBD 1024

typedef struct fix_prompt {
    int n_tokens;
    kinfer_token tokens[FIX_MAX_TOKENS];
    int n_rows;                          /* 1 pooled, or n_tokens (none) */
    float *embd;                         /* (n_rows, n_embd) */
} fix_prompt;

typedef struct fix_block {
    int batched;                         /* "batch": the prompts together in one batch */
    char pooling[16];
    int n_prompts;
    fix_prompt prompts[FIX_MAX_PROMPTS];
} fix_block;

typedef struct fixture {
    int n_embd;
    int n_blocks;
    fix_block blocks[5];
} fixture;

/* Read the rest of a "tokens ..." line. */
static int read_ints(FILE *f, kinfer_token *out, int max)
{
    int n = 0, c;
    for (;;) {
        while ((c = fgetc(f)) == ' ') {}
        if (c == '\n' || c == EOF) return n;
        ungetc(c, f);
        ck_assert(n < max && fscanf(f, "%d", &out[n]) == 1);
        n++;
    }
}

static void fixture_load(const char *model_file, fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    char path[512], base[256];
    snprintf(base, sizeof base, "%s", model_file);
    char *dot = strstr(base, ".gguf");
    if (dot) *dot = '\0';
    snprintf(path, sizeof path, "tests/fixtures/embeddings/%s.txt", base);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open fixture %s", path);
    char kw[32], name[256];
    ck_assert(fscanf(f, "%31s %255s", kw, name) == 2 && strcmp(kw, "model") == 0);
    ck_assert_str_eq(name, model_file);
    ck_assert(fscanf(f, "%31s %d", kw, &fx->n_embd) == 2 && strcmp(kw, "n_embd") == 0);
    ck_assert(fx->n_embd > 0 && fx->n_embd <= FIX_MAX_EMBD);
    for (;;) {
        ck_assert_msg(fscanf(f, "%31s", kw) == 1, "fixture %s: truncated", path);
        if (strcmp(kw, "end") == 0) break;
        const int batched = strcmp(kw, "batch") == 0;
        ck_assert_msg((batched || strcmp(kw, "pooling") == 0) && fx->n_blocks < 5, "fixture %s: '%s'",
                      path, kw);
        fix_block *b = &fx->blocks[fx->n_blocks++];
        b->batched = batched;
        ck_assert(fscanf(f, "%15s %d", b->pooling, &b->n_prompts) == 2);
        ck_assert(b->n_prompts > 0 && b->n_prompts <= FIX_MAX_PROMPTS);
        const int none = strcmp(b->pooling, "none") == 0;
        for (int p = 0; p < b->n_prompts; p++) {
            fix_prompt *fp = &b->prompts[p];
            ck_assert(fscanf(f, "%31s", kw) == 1 && strcmp(kw, "tokens") == 0);
            fp->n_tokens = read_ints(f, fp->tokens, FIX_MAX_TOKENS);
            ck_assert(fp->n_tokens > 0);
            fp->n_rows = none ? fp->n_tokens : 1;
            fp->embd = malloc((size_t)fp->n_rows * fx->n_embd * sizeof(float));
            ck_assert(fp->embd != NULL);
            for (int r = 0; r < fp->n_rows; r++) {
                ck_assert(fscanf(f, "%31s", kw) == 1 && strcmp(kw, "embd") == 0);
                for (int e = 0; e < fx->n_embd; e++)
                    ck_assert(fscanf(f, "%f", &fp->embd[(size_t)r * fx->n_embd + e]) == 1);
            }
        }
    }
    fclose(f);
}

static void fixture_free(fixture *fx)
{
    for (int b = 0; b < fx->n_blocks; b++)
        for (int p = 0; p < fx->blocks[b].n_prompts; p++) free(fx->blocks[b].prompts[p].embd);
}

static kinfer_pooling pooling_of(const char *name)
{
    if (strcmp(name, "mean") == 0) return KINFER_POOLING_MEAN;
    if (strcmp(name, "last") == 0) return KINFER_POOLING_LAST;
    ck_assert_str_eq(name, "none");
    return KINFER_POOLING_NONE;
}

/* max |got - want| / max |want| */
static double rel_err(const float *got, const float *want, int n)
{
    double d = 0.0, m = 0.0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)got[i] - want[i]));
        m = fmax(m, fabs((double)want[i]));
    }
    return m > 0.0 ? d / m : d;
}

static kinfer_context *embd_context(const kinfer_model *m, kinfer_pooling pooling, uint32_t n_seq,
                                    uint32_t n_batch)
{
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = n_batch;
    cp.n_seq_max = n_seq;
    cp.n_threads = 2;
    cp.embeddings = true;
    cp.pooling = pooling;
    kinfer_context *ctx = NULL;
    kinfer_status st = kinfer_context_new(m, &cp, &ctx);
    ck_assert_msg(st == KINFER_OK, "context: %s", kinfer_context_errmsg(ctx));
    ck_assert_int_eq(kinfer_context_pooling(ctx), pooling);
    return ctx;
}

/* Decode prompts [p0, p1) of a block as sequences 0.. of one batch and
 * check each sequence's embeddings against the fixture. */
static void check_batch(kinfer_context *ctx, const fixture *fx, const fix_block *b, int p0, int p1,
                        const char *what)
{
    kinfer_token tok[FIX_MAX_PROMPTS * FIX_MAX_TOKENS];
    kinfer_pos pos[FIX_MAX_PROMPTS * FIX_MAX_TOKENS];
    kinfer_seq_id seq[FIX_MAX_PROMPTS * FIX_MAX_TOKENS];
    int first[FIX_MAX_PROMPTS + 1];
    int n = 0;
    for (int p = p0; p < p1; p++) {
        const fix_prompt *fp = &b->prompts[p];
        first[p - p0] = n;
        for (int t = 0; t < fp->n_tokens; t++, n++) {
            tok[n] = fp->tokens[t];
            pos[n] = t;
            seq[n] = p - p0;
        }
    }
    ck_assert_int_eq(kinfer_kv_clear(ctx), KINFER_OK);
    const kinfer_batch batch = {.n_tokens = n, .token = tok, .pos = pos, .seq_id = seq};
    ck_assert_msg(kinfer_decode(ctx, &batch) == KINFER_OK, "%s", kinfer_context_errmsg(ctx));
    ck_assert_ptr_null(kinfer_get_logits(ctx, n - 1)); /* no LM head */
    const kinfer_pooling pooling = pooling_of(b->pooling);
    for (int p = p0; p < p1; p++) {
        const fix_prompt *fp = &b->prompts[p];
        for (int r = 0; r < fp->n_rows; r++) {
            const float *got = pooling == KINFER_POOLING_NONE
                                   ? kinfer_get_embeddings_ith(ctx, first[p - p0] + r)
                                   : kinfer_get_embeddings_seq(ctx, p - p0);
            ck_assert_ptr_nonnull(got);
            const double err = rel_err(got, fp->embd + (size_t)r * fx->n_embd, fx->n_embd);
            ck_assert_msg(err <= EMBD_REL_TOL, "%s pooling %s, prompt %d row %d: relative error %g",
                          what, b->pooling, p, r, err);
        }
    }
    if (pooling == KINFER_POOLING_NONE) {
        ck_assert_ptr_null(kinfer_get_embeddings_seq(ctx, 0));
        ck_assert_ptr_null(kinfer_get_embeddings_ith(ctx, n));
    } else {
        ck_assert_ptr_null(kinfer_get_embeddings_ith(ctx, 0));
        ck_assert_ptr_null(kinfer_get_embeddings_seq(ctx, p1 - p0)); /* not in the batch */
    }
}

static void check_model(const char *file, int small_ubatches)
{
    const char *path = test_model_path(file);
    if (!path) return;
    kinfer_model *m = NULL;
    ck_assert_msg(kinfer_model_load(path, NULL, &m) == KINFER_OK, "%s", kinfer_model_errmsg(m));
    fixture fx;
    fixture_load(file, &fx);
    ck_assert_int_eq(kinfer_model_n_embd(m), fx.n_embd);
    for (int bi = 0; bi < fx.n_blocks; bi++) {
        const fix_block *b = &fx.blocks[bi];
        const kinfer_pooling pooling = pooling_of(b->pooling);
        kinfer_context *ctx = embd_context(m, pooling, FIX_MAX_PROMPTS, 512);
        if (b->batched) {
            /* over 64 tokens: both take the tiled attention path */
            check_batch(ctx, &fx, b, 0, b->n_prompts, "the batch of all");
            kinfer_context_free(ctx);
            continue;
        }
        for (int p = 0; p < b->n_prompts; p++) check_batch(ctx, &fx, b, p, p + 1, "alone");
        check_batch(ctx, &fx, b, 0, b->n_prompts, "one batch");
        kinfer_context_free(ctx);
        if (test_quick() || !small_ubatches) continue;
        /* micro-batches of 8 tokens: a sequence's tokens span several */
        ctx = embd_context(m, pooling, FIX_MAX_PROMPTS, 8);
        check_batch(ctx, &fx, b, 0, b->n_prompts, "micro-batches of 8");
        kinfer_context_free(ctx);
    }
    fixture_free(&fx);
    kinfer_model_free(m);
}

START_TEST(test_smollm2) { check_model(TEST_MODEL_SMOLLM2, 1); }
END_TEST

/* Gemma 3 not in micro-batches of 8: a micro-batch of fewer than 64 tokens
 * takes the one-key-at-a-time attention path, whose rounding Gemma 3
 * amplifies to ~2e-3 of llama.cpp's tiled path (as its logits do, see
 * test_forward); that is the attention's, not the pooling's. */
START_TEST(test_gemma3) { check_model(TEST_MODEL_GEMMA3, 0); }
END_TEST

/* The model's default pooling, and what a context says when embeddings are
 * off, the pooling is bad, or rank has no head to run. */
START_TEST(test_params)
{
    const char *path = test_model_path(TEST_MODEL_SMOLLM2);
    if (!path) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    kinfer_context_params cp = kinfer_context_default_params();
    ck_assert(!cp.embeddings);
    ck_assert_int_eq(cp.pooling, KINFER_POOLING_UNSPECIFIED);
    cp.n_ctx = 64;
    cp.n_threads = 1;

    /* without embeddings: logits, and no embeddings */
    kinfer_context *ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_OK);
    ck_assert_int_eq(kinfer_context_pooling(ctx), KINFER_POOLING_NONE);
    const kinfer_token tok[2] = {1, 2};
    const kinfer_pos pos[2] = {0, 1};
    const kinfer_batch batch = {.n_tokens = 2, .token = tok, .pos = pos};
    ck_assert_int_eq(kinfer_decode(ctx, &batch), KINFER_OK);
    ck_assert_ptr_nonnull(kinfer_get_logits(ctx, 1));
    ck_assert_ptr_null(kinfer_get_embeddings_ith(ctx, 1));
    ck_assert_ptr_null(kinfer_get_embeddings_seq(ctx, 0));
    kinfer_context_free(ctx);

    /* SmolLM2 has no pooling_type: unspecified is none, as llama.cpp */
    cp.embeddings = true;
    ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_OK);
    ck_assert_int_eq(kinfer_context_pooling(ctx), KINFER_POOLING_NONE);
    ck_assert_int_eq(kinfer_decode(ctx, &batch), KINFER_OK);
    ck_assert_ptr_null(kinfer_get_logits(ctx, 1));
    ck_assert_ptr_nonnull(kinfer_get_embeddings_ith(ctx, 0)); /* every token is an output */
    ck_assert_ptr_nonnull(kinfer_get_embeddings_ith(ctx, 1));
    ck_assert_ptr_null(kinfer_get_embeddings_ith(ctx, 2));
    ck_assert_ptr_null(kinfer_get_embeddings_ith(ctx, -1));
    /* a failed decode leaves no embeddings behind */
    const kinfer_token bad = 1 << 30;
    const kinfer_batch bad_batch = {.n_tokens = 1, .token = &bad, .pos = pos};
    ck_assert_int_eq(kinfer_decode(ctx, &bad_batch), KINFER_E_INVALID_ARG);
    ck_assert_ptr_null(kinfer_get_embeddings_ith(ctx, 0));
    kinfer_context_free(ctx);

    cp.pooling = (kinfer_pooling)7;
    ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(ctx), "pooling 7"));
    kinfer_context_free(ctx);

    cp.pooling = KINFER_POOLING_RANK;
    ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(ctx), "rank"));
    kinfer_context_free(ctx);

    ck_assert_ptr_null(kinfer_get_embeddings_seq(NULL, 0));
    ck_assert_ptr_null(kinfer_get_embeddings_ith(NULL, 0));
    ck_assert_int_eq(kinfer_context_pooling(NULL), KINFER_POOLING_NONE);
    kinfer_model_free(m);
}
END_TEST

/* llama-embedding's --embd-normalize, on numbers worked by hand. */
START_TEST(test_normalize)
{
    const float in[4] = {3.0f, -4.0f, 0.0f, 12.0f};
    float out[4];
    ck_assert_int_eq(kinfer_embd_normalize(in, out, 4, -1), KINFER_OK);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(out[i], in[i]);
    ck_assert_int_eq(kinfer_embd_normalize(in, out, 4, 2), KINFER_OK); /* |in| = 13 */
    ck_assert_float_eq_tol(out[0], 3.0f / 13, 1e-7);
    ck_assert_float_eq_tol(out[1], -4.0f / 13, 1e-7);
    ck_assert_float_eq_tol(out[3], 12.0f / 13, 1e-7);
    ck_assert_int_eq(kinfer_embd_normalize(in, out, 4, 1), KINFER_OK); /* taxicab 19 */
    ck_assert_float_eq_tol(out[3], 12.0f / 19, 1e-7);
    ck_assert_int_eq(kinfer_embd_normalize(in, out, 4, 0), KINFER_OK); /* int16 range */
    ck_assert_float_eq_tol(out[3], 32760.0f, 1e-2);
    ck_assert_float_eq_tol(out[1], -4.0f * 32760.0f / 12, 1e-2);
    ck_assert_int_eq(kinfer_embd_normalize(in, out, 4, 3), KINFER_OK); /* 3-norm */
    const double p3 = cbrt(27.0 + 64.0 + 1728.0);
    ck_assert_float_eq_tol(out[0], (float)(3.0 / p3), 1e-6);
    /* in place, and a zero vector stays zero */
    float v[3] = {0.0f, 0.0f, 0.0f};
    ck_assert_int_eq(kinfer_embd_normalize(v, v, 3, 2), KINFER_OK);
    ck_assert_float_eq(v[0], 0.0f);
    ck_assert_int_eq(kinfer_embd_normalize(in, out, 4, -2), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_embd_normalize(NULL, out, 4, 2), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_embd_normalize(in, out, -1, 2), KINFER_E_INVALID_ARG);
}
END_TEST

static Suite *embeddings_suite(void)
{
    Suite *s = suite_create("embeddings");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, test_normalize);
    tcase_add_test(tc, test_params);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("models");
    tcase_set_timeout(tm, 600);
    tcase_add_test(tm, test_smollm2);
    tcase_add_test(tm, test_gemma3);
    suite_add_tcase(s, tm);
    return s;
}

int main(void)
{
    return test_run_suite(embeddings_suite());
}
