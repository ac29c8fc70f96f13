/*
 * test_kv_regions.c — kinfer_context_params.kv_seq_regions: a sequence's
 * logits are bit for bit the same whatever else shares the batch and the
 * cache (other sequences, prefixes copied with kv_seq_cp, how its own tokens
 * were split into batches), and a sequence decoded one token at a time
 * alone gets the bits it gets without the option.  On both real models
 * (Gemma 3's sliding-window layers included: its prompt here is longer
 * than the window).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "testutil.h"

static kinfer_model *load(const char *file)
{
    const char *path = test_model_path(file);
    if (!path) return NULL;
    kinfer_model *m = NULL;
    kinfer_status st = kinfer_model_load(path, NULL, &m);
    ck_assert_msg(st == KINFER_OK, "%s", kinfer_model_errmsg(m));
    return m;
}

static kinfer_context *new_ctx(kinfer_model *m, uint32_t n_ctx, uint32_t n_batch, uint32_t n_seq,
                               bool regions)
{
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_seq_max = n_seq;
    cp.n_threads = 2;
    cp.kv_seq_regions = regions;
    kinfer_context *c = NULL;
    kinfer_status st = kinfer_context_new(m, &cp, &c);
    ck_assert_msg(st == KINFER_OK, "context: %s", kinfer_context_errmsg(c));
    return c;
}

/* A batch being built: tokens of any sequences, each asking for logits. */
typedef struct tbatch {
    int n;
    kinfer_token tok[1024];
    kinfer_pos pos[1024];
    kinfer_seq_id seq[1024];
    int8_t lg[1024];
} tbatch;

static void add(tbatch *b, kinfer_token t, kinfer_pos p, kinfer_seq_id s)
{
    ck_assert_int_lt(b->n, 1024);
    b->tok[b->n] = t;
    b->pos[b->n] = p;
    b->seq[b->n] = s;
    b->lg[b->n] = 1;
    b->n++;
}

static void run(kinfer_context *c, tbatch *b)
{
    kinfer_batch kb = {.n_tokens = b->n, .token = b->tok, .pos = b->pos, .seq_id = b->seq, .logits = b->lg};
    kinfer_status st = kinfer_decode(c, &kb);
    ck_assert_msg(st == KINFER_OK, "decode: %s: %s", kinfer_status_str(st), kinfer_context_errmsg(c));
    b->n = 0;
}

/* Token i of sequence "stream" k: fixed, in the vocabulary, not special. */
static kinfer_token tok_of(int k, int i)
{
    return (kinfer_token)(200 + (i * 37 + k * 101) % 2000);
}

static float max_diff(const float *a, const float *b, int n)
{
    float d = 0;
    for (int i = 0; i < n; i++) {
        float x = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        if (x > d || x != x) d = x != x ? 1e30f : x;
    }
    return d;
}

enum { N_GEN = 6, N_ALONE = 24 };

/*
 * Sequence 0: a prompt of n_prompt tokens, then N_GEN tokens one at a time.
 *   alone: the prompt in one kinfer_decode (micro-batches of n_batch), then
 *     the tokens; sequences 1, 2 empty.
 *   mixed: sequence 2 holds other tokens first; the prompt goes in uneven
 *     chunks, each in a batch with tokens of sequences 1 and 2; then
 *     sequence 1 is replaced by a copy of sequence 0's prompt
 *     (kv_seq_cp), and each of the N_GEN tokens goes in one batch with the
 *     same token for sequence 1 and another for sequence 2.
 * Every logit of sequence 0's last prompt token and of the N_GEN steps, and
 * of sequence 1 at those steps, must equal alone's.
 */
static void check_mixed(const char *file, int n_prompt)
{
    kinfer_model *m = load(file);
    if (!m) return;
    const int n_vocab = kinfer_model_n_vocab(m);
    float *ref = malloc(sizeof(float) * (size_t)n_vocab * (N_GEN + 1));
    tbatch *b = calloc(1, sizeof *b);

    kinfer_context *c = new_ctx(m, 2048, 64, 3, true); /* regions of 640 cells */
    for (int i = 0; i < n_prompt; i++) add(b, tok_of(0, i), i, 0);
    for (int i = 0; i < n_prompt - 1; i++) b->lg[i] = 0; /* (Gemma 3: 1 MiB a row) */
    run(c, b);
    memcpy(ref, kinfer_get_logits(c, n_prompt - 1), sizeof(float) * (size_t)n_vocab);
    for (int j = 0; j < N_GEN; j++) {
        add(b, tok_of(0, n_prompt + j), n_prompt + j, 0);
        run(c, b);
        memcpy(ref + (size_t)(j + 1) * n_vocab, kinfer_get_logits(c, 0), sizeof(float) * (size_t)n_vocab);
    }

    ck_assert_int_eq(kinfer_kv_clear(c), KINFER_OK);
    int p1 = 0, p2 = 0; /* next positions of sequences 1 and 2 */
    for (int i = 0; i < 29; i++) add(b, tok_of(2, p2), p2, 2), p2++;
    run(c, b);
    int idx0 = -1;
    for (int i = 0, chunk = 1; i < n_prompt; chunk = chunk % 13 + 4) {
        const int n = chunk < n_prompt - i ? chunk : n_prompt - i;
        for (int k = 0; k < 3; k++) add(b, tok_of(1, p1), p1, 1), p1++;
        for (int k = 0; k < n; k++, i++) {
            if (i == n_prompt - 1) idx0 = b->n;
            add(b, tok_of(0, i), i, 0);
        }
        if (chunk % 2) add(b, tok_of(2, p2), p2, 2), p2++;
        if (i < n_prompt) run(c, b);
    }
    run(c, b);
    float d = max_diff(ref, kinfer_get_logits(c, idx0), n_vocab);
    ck_assert_msg(d == 0, "%s: last prompt token, mixed vs alone: max diff %g", file, d);

    /* sequence 1 becomes a copy of sequence 0's prompt */
    ck_assert_int_eq(kinfer_kv_seq_rm(c, 1, 0, -1), KINFER_OK);
    const uint32_t used = kinfer_kv_n_used(c);
    ck_assert_int_eq(kinfer_kv_seq_cp(c, 0, 1, 0, -1), KINFER_OK);
    ck_assert_uint_eq(kinfer_kv_n_used(c), used + (uint32_t)n_prompt); /* copied, not shared */
    for (int j = 0; j < N_GEN; j++) {
        const kinfer_token t = tok_of(0, n_prompt + j);
        if (j % 2) add(b, tok_of(2, p2), p2, 2), p2++;
        const int i0 = b->n;
        add(b, t, n_prompt + j, 0);
        add(b, t, n_prompt + j, 1);
        if (j % 2 == 0) add(b, tok_of(2, p2), p2, 2), p2++;
        run(c, b);
        d = max_diff(ref + (size_t)(j + 1) * n_vocab, kinfer_get_logits(c, i0), n_vocab);
        ck_assert_msg(d == 0, "%s: step %d, sequence 0 mixed vs alone: max diff %g", file, j, d);
        d = max_diff(ref + (size_t)(j + 1) * n_vocab, kinfer_get_logits(c, i0 + 1), n_vocab);
        ck_assert_msg(d == 0, "%s: step %d, copied sequence 1 vs sequence 0 alone: max diff %g", file,
                      j, d);
    }
    kinfer_context_free(c);
    free(b);
    free(ref);
    kinfer_model_free(m);
}

/* One token at a time alone, with and without the option: the same bits
 * (each row in the lane of its position, the one-token order either way). */
static void check_alone_same(const char *file)
{
    kinfer_model *m = load(file);
    if (!m) return;
    const int n_vocab = kinfer_model_n_vocab(m);
    kinfer_context *plain = new_ctx(m, 512, 64, 2, false), *reg = new_ctx(m, 512, 64, 2, true);
    tbatch *b = calloc(1, sizeof *b);
    for (int i = 0; i < N_ALONE; i++) {
        add(b, tok_of(0, i), i, 0);
        run(plain, b);
        add(b, tok_of(0, i), i, 0);
        run(reg, b);
        const float d = max_diff(kinfer_get_logits(plain, 0), kinfer_get_logits(reg, 0), n_vocab);
        ck_assert_msg(d == 0, "%s: position %d, with vs without kv_seq_regions: max diff %g", file, i, d);
    }
    kinfer_context_free(plain);
    kinfer_context_free(reg);
    free(b);
    kinfer_model_free(m);
}

START_TEST(test_mixed_smollm2) { check_mixed(TEST_MODEL_SMOLLM2, 90); }
END_TEST

/* past the 512-position sliding window */
START_TEST(test_mixed_gemma3) { check_mixed(TEST_MODEL_GEMMA3, test_quick() ? 90 : 530); }
END_TEST

START_TEST(test_alone_smollm2) { check_alone_same(TEST_MODEL_SMOLLM2); }
END_TEST

START_TEST(test_alone_gemma3) { check_alone_same(TEST_MODEL_GEMMA3); }
END_TEST

/* The regions' limits and the KV calls under the option. */
START_TEST(test_region_ops)
{
    kinfer_model *m = load(TEST_MODEL_SMOLLM2);
    if (!m) return;
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 100;
    cp.n_seq_max = 2;
    cp.kv_seq_regions = true;
    kinfer_context *c = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &c), KINFER_E_INVALID_ARG); /* 50 < 64 cells each */
    ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(c), "kv_seq_regions"));
    kinfer_context_free(c);

    c = new_ctx(m, 200, 64, 3, true); /* 64 cells each */
    tbatch *b = calloc(1, sizeof *b);
    for (int i = 0; i < 10; i++) add(b, tok_of(0, i), i, 0);
    run(c, b);
    /* position 64 is past the region: refused, nothing written */
    add(b, tok_of(1, 0), 0, 1);
    add(b, tok_of(1, 1), 64, 1);
    kinfer_batch kb = {.n_tokens = b->n, .token = b->tok, .pos = b->pos, .seq_id = b->seq, .logits = b->lg};
    ck_assert_int_eq(kinfer_decode(c, &kb), KINFER_E_CONTEXT_FULL);
    ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(c), "region"));
    ck_assert_uint_eq(kinfer_kv_n_used(c), 10);
    b->n = 0;
    for (int i = 0; i < 64; i++) add(b, tok_of(1, i), i, 1);
    run(c, b);
    ck_assert_uint_eq(kinfer_kv_n_used(c), 74);

    /* context shift: drop [2, 5), move [5, 10) back by 3 */
    kinfer_pos lo, hi;
    ck_assert_int_eq(kinfer_kv_seq_rm(c, 0, 2, 5), KINFER_OK);
    ck_assert_int_eq(kinfer_kv_seq_add(c, 0, 5, -1, -3), KINFER_OK);
    ck_assert_int_eq(kinfer_kv_seq_pos_range(c, 0, &lo, &hi), KINFER_OK);
    ck_assert_int_eq(lo, 0);
    ck_assert_int_eq(hi, 6);
    ck_assert_uint_eq(kinfer_kv_n_used(c), 71);
    /* onto positions that stay, past the region: refused, nothing moved */
    ck_assert_int_eq(kinfer_kv_seq_add(c, 0, 5, -1, -3), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kinfer_kv_seq_add(c, 0, 0, -1, 60), KINFER_E_CONTEXT_FULL);
    ck_assert_int_eq(kinfer_kv_seq_pos_range(c, 0, &lo, &hi), KINFER_OK);
    ck_assert_int_eq(hi, 6);
    ck_assert_uint_eq(kinfer_kv_n_used(c), 71);
    /* the whole sequence forward and back: same cells, decodable after */
    ck_assert_int_eq(kinfer_kv_seq_add(c, 0, 0, -1, 20), KINFER_OK);
    ck_assert_int_eq(kinfer_kv_seq_pos_range(c, 0, &lo, &hi), KINFER_OK);
    ck_assert_int_eq(lo, 20);
    ck_assert_int_eq(kinfer_kv_seq_add(c, 0, 0, -1, -22), KINFER_OK); /* 20, 21 fall off */
    ck_assert_int_eq(kinfer_kv_seq_pos_range(c, 0, &lo, &hi), KINFER_OK);
    ck_assert_int_eq(lo, 0);
    ck_assert_int_eq(hi, 4);
    add(b, tok_of(0, 5), 5, 0);
    run(c, b);

    /* a copy replaces what dst held at those positions */
    ck_assert_int_eq(kinfer_kv_seq_cp(c, 0, 1, 0, 3), KINFER_OK);
    ck_assert_uint_eq(kinfer_kv_n_used(c), 70);
    ck_assert_int_eq(kinfer_kv_seq_cp(c, 0, 2, 0, -1), KINFER_OK);
    ck_assert_uint_eq(kinfer_kv_n_used(c), 76);
    ck_assert_int_eq(kinfer_kv_seq_keep(c, 2), KINFER_OK);
    ck_assert_uint_eq(kinfer_kv_n_used(c), 6);
    ck_assert_int_eq(kinfer_kv_seq_pos_range(c, 2, &lo, &hi), KINFER_OK);
    ck_assert_int_eq(hi, 5);
    add(b, tok_of(2, 6), 6, 2);
    run(c, b);
    free(b);
    kinfer_context_free(c);
    kinfer_model_free(m);
}
END_TEST

Suite *kv_regions_suite(void);
Suite *kv_regions_suite(void)
{
    Suite *s = suite_create("kv_regions");
    TCase *tc = tcase_create("invariance");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_alone_smollm2);
    tcase_add_test(tc, test_alone_gemma3);
    tcase_add_test(tc, test_mixed_smollm2);
    tcase_add_test(tc, test_mixed_gemma3);
    tcase_add_test(tc, test_region_ops);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(kv_regions_suite());
}
