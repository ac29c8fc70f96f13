/*
 * test_encoders.c — the BERT-family encoders (bert, nomic-bert) and their
 * WordPiece tokenizer against llama.cpp.
 *
 * bench/synth-model writes bert-tiny and nomic-bert-tiny (F32, F16, Q8_0)
 * at run time (../bin/synth-model from this program's directory, or
 * $KINFER_SYNTH_MODEL); the fixtures, tests/fixtures/encoders/, are
 * llama.cpp's tokens of a set of texts (accents, case, punctuation, CJK,
 * digits, unknown and long words, control characters, invalid UTF-8,
 * special tokens parsed or not) and its cls- and mean-pooled embeddings of
 * the first ones, and a reranker's (bert-rank-tiny: cls and cls.output)
 * rank scores (tests/fixtures/gen_encoder_fixtures.py).  kinfer must
 * give the same tokens and embeddings within tolerance_of(ftype) (max
 * |difference| over max |element|), each text alone and all in one batch
 * as separate sequences.  Also: an encoder refuses a context without embeddings, a
 * batch beyond n_batch, positions beyond its position table.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kinfer.h"
#include "testutil.h"

extern char **environ;

/*
 * Tolerances by weight type.  llama.cpp differs from itself by more than
 * these when its flash attention is switched off (tests/fixtures/
 * gen_encoder_fixtures.py's texts, max over cls and mean, measured once
 * with the oracle): F32 2.7e-4, F16 2.5e-4, Q8_0 2.5e-3.  The fixtures are
 * its flash-attention results; kinfer sums attention in its own order, and
 * a last-bit difference flips an F16 rounding (GELU's table, F16
 * activations) or a Q8_0 activation step now and then; measured:
 * F32 < 1e-5, F16 4.8e-5, Q8_0 7.2e-4.
 */
static double tolerance_of(const char *ftype)
{
    return !strcmp(ftype, "F32") ? 1e-5 : !strcmp(ftype, "F16") ? 1e-4 : 1e-3;
}
#define MAX_TEXTS 16
#define MAX_TOKENS 128
#define MAX_EMBD 256

typedef struct fix_text {
    char bytes[512];
    size_t len;
    int special;
    int n_tokens;
    kinfer_token tokens[MAX_TOKENS];
} fix_text;

typedef struct fix_pool {
    char name[8];
    int n;
    int dim;                 /* floats per text: n_embd, or the scores of rank */
    float embd[MAX_TEXTS][MAX_EMBD];
} fix_pool;

typedef struct fixture {
    long long file_size;
    unsigned long crc;
    int n_embd;
    int n_texts;
    fix_text texts[MAX_TEXTS];
    int n_pools;
    fix_pool pools[3];
} fixture;

static void fixture_load(const char *shape, const char *ftype, fixture *fx)
{
    char path[256], kw[32];
    snprintf(path, sizeof path, "tests/fixtures/encoders/%s.%s.txt", shape, ftype);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open fixture %s", path);
    memset(fx, 0, sizeof *fx);
    while (fscanf(f, "%31s", kw) == 1 && strcmp(kw, "end") != 0) {
        if (!strcmp(kw, "synth")) {
            char a[64], b[64];
            ck_assert(fscanf(f, "%63s %63s", a, b) == 2);
        } else if (!strcmp(kw, "file")) {
            ck_assert(fscanf(f, "%lld %lx", &fx->file_size, &fx->crc) == 2);
        } else if (!strcmp(kw, "n_embd")) {
            ck_assert(fscanf(f, "%d", &fx->n_embd) == 1 && fx->n_embd <= MAX_EMBD);
        } else if (!strcmp(kw, "text")) {
            ck_assert(fx->n_texts < MAX_TEXTS);
            fix_text *t = &fx->texts[fx->n_texts++];
            char hex[1100];
            ck_assert(fscanf(f, "%1099s %d", hex, &t->special) == 2);
            if (strcmp(hex, "-") != 0)
                for (size_t i = 0; hex[2 * i]; i++) {
                    unsigned v;
                    ck_assert(sscanf(hex + 2 * i, "%2x", &v) == 1);
                    t->bytes[t->len++] = (char)v;
                }
            ck_assert(fscanf(f, "%31s", kw) == 1 && !strcmp(kw, "tokens"));
            int c;
            while ((c = fgetc(f)) != '\n' && c != EOF) {
                ungetc(c, f);
                ck_assert(t->n_tokens < MAX_TOKENS);
                ck_assert(fscanf(f, "%d", &t->tokens[t->n_tokens++]) == 1);
            }
        } else if (!strcmp(kw, "pooling")) {
            ck_assert(fx->n_pools < 3);
            fix_pool *p = &fx->pools[fx->n_pools++];
            ck_assert(fscanf(f, "%7s %d", p->name, &p->n) == 2 && p->n <= fx->n_texts);
            p->dim = strcmp(p->name, "rank") ? fx->n_embd : 1; /* rank: one score */
            for (int i = 0; i < p->n; i++) {
                ck_assert(fscanf(f, "%31s", kw) == 1 && !strcmp(kw, "embd"));
                for (int e = 0; e < p->dim; e++) ck_assert(fscanf(f, "%f", &p->embd[i][e]) == 1);
            }
        } else {
            ck_abort_msg("fixture %s: unknown line '%s'", path, kw);
        }
    }
    fclose(f);
}

/* ------------------------------------------------- the synthetic model */

static const char *synth_program(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("KINFER_SYNTH_MODEL");
    if (env && *env) return env;
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    ck_assert(n > 0);
    path[n] = '\0';
    for (int up = 0; up < 2; up++) *strrchr(path, '/') = '\0';
    strcat(path, "/bin/synth-model");
    return path;
}

/* zlib's CRC-32 (as Python's zlib.crc32) */
static unsigned long crc32_of(const unsigned char *p, size_t n)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* Write shape/ftype to path; its bytes must be the fixture's. */
static void synth_write(const char *shape, const char *ftype, const fixture *fx, const char *path)
{
    const char *prog = synth_program();
    ck_assert_msg(access(prog, X_OK) == 0, "%s not found: `make test` builds it", prog);
    char *argv[] = {(char *)prog, "-s", (char *)shape, "-f", (char *)ftype, "--layers", "2",
                    "--seed", "42", "-t", "2", "-o", (char *)path, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1 /* O_WRONLY */, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ck_assert_msg(rc == 0, "cannot run %s: %s", prog, strerror(rc));
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t size;
    unsigned char *data = test_read_file(path, &size);
    ck_assert(data != NULL);
    const unsigned long crc = crc32_of(data, size);
    free(data);
    ck_assert_msg((long long)size == fx->file_size && crc == fx->crc,
                  "synthetic %s %s changed (%zu bytes, crc %08lx; fixture %lld, %08lx): regenerate "
                  "with tests/fixtures/gen_encoder_fixtures.py", shape, ftype, size, crc,
                  fx->file_size, fx->crc);
}

/* ------------------------------------------------------------- checks */

static double rel_err(const float *got, const float *want, int n)
{
    double d = 0.0, m = 0.0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)got[i] - want[i]));
        m = fmax(m, fabs((double)want[i]));
    }
    return m > 0.0 ? d / m : d;
}

static void check_tokens(const kinfer_model *m, const fixture *fx, const char *what)
{
    for (int i = 0; i < fx->n_texts; i++) {
        const fix_text *t = &fx->texts[i];
        kinfer_token got[MAX_TOKENS];
        const int64_t n = kinfer_tokenize(m, t->bytes, t->len, got, MAX_TOKENS, true,
                                          t->special != 0, NULL);
        ck_assert_msg(n == t->n_tokens, "%s text %d: %lld tokens, llama.cpp %d", what, i,
                      (long long)n, t->n_tokens);
        for (int k = 0; k < t->n_tokens; k++)
            ck_assert_msg(got[k] == t->tokens[k], "%s text %d token %d: %d, llama.cpp %d", what, i,
                          k, got[k], t->tokens[k]);
    }
}

static kinfer_context *encoder_context(const kinfer_model *m, kinfer_pooling pooling)
{
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_seq_max = MAX_TEXTS;
    cp.n_threads = 2;
    cp.embeddings = true;
    cp.pooling = pooling;
    kinfer_context *ctx = NULL;
    ck_assert_msg(kinfer_context_new(m, &cp, &ctx) == KINFER_OK, "%s", kinfer_context_errmsg(ctx));
    return ctx;
}

/* texts [t0, t1) as sequences 0.. of one batch, each checked against p */
static void check_batch(kinfer_context *ctx, const fixture *fx, const fix_pool *p, int t0, int t1,
                        double tol, const char *what)
{
    kinfer_token tok[MAX_TEXTS * MAX_TOKENS];
    kinfer_pos pos[MAX_TEXTS * MAX_TOKENS];
    kinfer_seq_id seq[MAX_TEXTS * MAX_TOKENS];
    int n = 0;
    for (int i = t0; i < t1; i++)
        for (int k = 0; k < fx->texts[i].n_tokens; k++, n++)
            tok[n] = fx->texts[i].tokens[k], pos[n] = k, seq[n] = i - t0;
    const kinfer_batch batch = {.n_tokens = n, .token = tok, .pos = pos, .seq_id = seq};
    /* twice: an encoder keeps nothing from one decode to the next */
    for (int round = 0; round < 2; round++) {
        ck_assert_msg(kinfer_decode(ctx, &batch) == KINFER_OK, "%s", kinfer_context_errmsg(ctx));
        for (int i = t0; i < t1; i++) {
            const float *got = kinfer_get_embeddings_seq(ctx, i - t0);
            ck_assert_ptr_nonnull(got);
            const double err = rel_err(got, p->embd[i], p->dim);
            ck_assert_msg(err <= tol, "%s, pooling %s, text %d: relative error %g (bound %g)", what,
                          p->name, i, err, tol);
        }
    }
    ck_assert_ptr_null(kinfer_get_logits(ctx, n - 1));
}

static void check_config(const char *shape, const char *ftype)
{
    fixture *fx = malloc(sizeof *fx);
    ck_assert_ptr_nonnull(fx);
    fixture_load(shape, ftype, fx);
    char path[PATH_MAX];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/kinfer-enc-%d-%s.%s.gguf", dir && *dir ? dir : "/tmp",
             (int)getpid(), shape, ftype);
    synth_write(shape, ftype, fx, path);
    kinfer_model *m = NULL;
    ck_assert_msg(kinfer_model_load(path, NULL, &m) == KINFER_OK, "%s", kinfer_model_errmsg(m));
    unlink(path);
    ck_assert_int_eq(kinfer_model_n_embd(m), fx->n_embd);
    ck_assert_str_eq(kinfer_vocab_type(m), "wpm");
    check_tokens(m, fx, shape);
    for (int pi = 0; pi < fx->n_pools; pi++) {
        const fix_pool *p = &fx->pools[pi];
        const kinfer_pooling pooling = !strcmp(p->name, "cls")    ? KINFER_POOLING_CLS
                                       : !strcmp(p->name, "rank") ? KINFER_POOLING_RANK
                                                                  : KINFER_POOLING_MEAN;
        if (pooling == KINFER_POOLING_RANK) ck_assert_int_eq(kinfer_model_n_cls_out(m), p->dim);
        kinfer_context *ctx = encoder_context(m, pooling);
        const double tol = tolerance_of(ftype);
        for (int i = 0; i < p->n; i++) check_batch(ctx, fx, p, i, i + 1, tol, "alone");
        check_batch(ctx, fx, p, 0, p->n, tol, "one batch");
        kinfer_context_free(ctx);
    }
    kinfer_model_free(m);
    free(fx);
}

START_TEST(test_bert_f32) { check_config("bert-tiny", "F32"); }
END_TEST
START_TEST(test_bert_f16) { check_config("bert-tiny", "F16"); }
END_TEST
START_TEST(test_bert_q8_0) { check_config("bert-tiny", "Q8_0"); }
END_TEST
START_TEST(test_rank_f32) { check_config("bert-rank-tiny", "F32"); }
END_TEST
START_TEST(test_rank_q8_0) { check_config("bert-rank-tiny", "Q8_0"); }
END_TEST
START_TEST(test_nomic_f32) { check_config("nomic-bert-tiny", "F32"); }
END_TEST
START_TEST(test_nomic_f16) { check_config("nomic-bert-tiny", "F16"); }
END_TEST
START_TEST(test_nomic_q8_0) { check_config("nomic-bert-tiny", "Q8_0"); }
END_TEST

/* What an encoder refuses, each with a message naming the problem. */
START_TEST(test_refusals)
{
    fixture *fx = malloc(sizeof *fx);
    ck_assert_ptr_nonnull(fx);
    fixture_load("bert-tiny", "Q8_0", fx);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "/tmp/kinfer-enc-%d-refusals.gguf", (int)getpid());
    synth_write("bert-tiny", "Q8_0", fx, path);
    free(fx);
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    unlink(path);

    /* generation: no embeddings asked for */
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_threads = 1;
    kinfer_context *ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(ctx), "encoder-only"));
    kinfer_context_free(ctx);

    /* the model's pooling (cls) by default */
    cp.embeddings = true;
    cp.n_batch = 16;
    ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_OK);
    ck_assert_int_eq(kinfer_context_pooling(ctx), KINFER_POOLING_CLS);
    kinfer_token tok[32];
    kinfer_pos pos[32];
    for (int i = 0; i < 32; i++) tok[i] = 101 + (i % 3), pos[i] = i;
    kinfer_batch batch = {.n_tokens = 32, .token = tok, .pos = pos};
    ck_assert_int_eq(kinfer_decode(ctx, &batch), KINFER_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(ctx), "n_batch 16"));
    ck_assert_ptr_null(kinfer_get_embeddings_seq(ctx, 0));
    kinfer_context_free(ctx);
    /* positions past the 512 of the position table */
    cp.n_ctx = 1024;
    ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_OK);
    batch.n_tokens = 2;
    pos[0] = 511, pos[1] = 512;
    ck_assert_int_eq(kinfer_decode(ctx, &batch), KINFER_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(ctx), "position embeddings"));
    kinfer_context_free(ctx);
    /* rank needs a classification head, which bert-tiny has not */
    cp.pooling = KINFER_POOLING_RANK;
    ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(ctx), "cls.output.weight"));
    ck_assert_int_eq(kinfer_model_n_cls_out(m), 0);
    /* none pooling: one row per token */
    kinfer_context_free(ctx);
    cp.pooling = KINFER_POOLING_NONE;
    cp.n_ctx = 0;
    ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_OK);
    pos[0] = 0, pos[1] = 1;
    ck_assert_int_eq(kinfer_decode(ctx, &batch), KINFER_OK);
    ck_assert_ptr_nonnull(kinfer_get_embeddings_ith(ctx, 1));
    ck_assert_ptr_null(kinfer_get_embeddings_ith(ctx, 2));
    kinfer_context_free(ctx);
    kinfer_model_free(m);
}
END_TEST

static Suite *encoders_suite(void)
{
    Suite *s = suite_create("encoders");
    TCase *tc = tcase_create("synthetic");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bert_f32);
    tcase_add_test(tc, test_bert_f16);
    tcase_add_test(tc, test_bert_q8_0);
    tcase_add_test(tc, test_rank_f32);
    tcase_add_test(tc, test_rank_q8_0);
    tcase_add_test(tc, test_nomic_f32);
    tcase_add_test(tc, test_nomic_f16);
    tcase_add_test(tc, test_nomic_q8_0);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(encoders_suite());
}
