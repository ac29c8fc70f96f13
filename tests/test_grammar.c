/*
 * test_grammar.c — GBNF grammars: the parser (rule shapes as llama.cpp
 * writes them, errors at the right line and column), the token masks
 * against llama.cpp's grammar sampler on both test models (fixtures by
 * tests/fixtures/gen_grammar_fixtures.py), and sampling with a grammar
 * (the fast path equals masking everything; seeded outputs always parse).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "runtime/gbnf.h"
#include "testutil.h"

/* ---------------------------------------------------------------- parser */

/* The elements of grammar text as "rule: types..." lines, one per rule, in
 * a compact notation: c<cp> char, n<cp> not, u<cp> upper, a<cp> class alt,
 * . any, r<id> ref, | alt. */
static void shape(const char *text, char *out, size_t size)
{
    gbnf_grammar g;
    char err[256];
    kinfer_status st = gbnf_parse(text, "root", &g, err, sizeof err);
    ck_assert_msg(st == KINFER_OK, "parse failed: %s", err);
    size_t o = 0;
    out[0] = 0;
    for (uint32_t r = 0; r < g.n_rules; r++) {
        o += (size_t)snprintf(out + o, size - o, "%s%s:", r ? "; " : "", g.names[r]);
        for (const gbnf_elem *e = gbnf_rule(&g, r); e->type != GE_END; e++) {
            static const char tag[] = "E|rcnua.";
            if (e->type == GE_ALT || e->type == GE_CHAR_ANY)
                o += (size_t)snprintf(out + o, size - o, " %c", tag[e->type]);
            else
                o += (size_t)snprintf(out + o, size - o, " %c%u", tag[e->type], e->value);
        }
    }
    gbnf_free(&g);
}

START_TEST(test_parse_shapes)
{
    char s[2048];
    shape("root ::= \"ab\" | [a-c] x\nx ::= .", s, sizeof s);
    ck_assert_str_eq(s, "root: c97 c98 | c97 u99 r1; x: .");
    /* S* -> S' ::= S S' | ;  S+ -> S S' ;  S? -> S' ::= S |  */
    shape("root ::= \"a\"*", s, sizeof s);
    ck_assert_str_eq(s, "root: r1; root_1: c97 r1 |");
    shape("root ::= \"a\"+", s, sizeof s);
    ck_assert_str_eq(s, "root: c97 r1; root_1: c97 r1 |");
    shape("root ::= \"a\"?", s, sizeof s);
    ck_assert_str_eq(s, "root: r1; root_1: c97 |");
    /* {2,4}: a a then two nested optional rules */
    shape("root ::= \"a\"{2,4}", s, sizeof s);
    ck_assert_str_eq(s, "root: c97 c97 r2; root_1: c97 |; root_2: c97 r1 |");
    shape("root ::= \"a\"{2}", s, sizeof s);
    ck_assert_str_eq(s, "root: c97 c97");
    shape("root ::= \"a\"{1,}", s, sizeof s);
    ck_assert_str_eq(s, "root: c97 r1; root_1: c97 r1 |");
    /* classes: negation, ranges, escapes, UTF-8 and \u \U */
    shape("root ::= [^a-z\\]\\x41] \"\\u00e9\\U0001F600\\n\" [é-ü]", s, sizeof s);
    ck_assert_str_eq(s, "root: n97 u122 a93 a65 c233 c128512 c10 c233 u252");
    /* groups, comments, CRLF, rules defined after use */
    shape("# c\r\nroot ::= ( x | \"y\" # here\n )  z\r\nz ::= \"z\"\nx ::= \"x\"", s, sizeof s);
    ck_assert_str_eq(s, "root: r1 r3; root_1: r2 | c121; x: c120; z: c122");
}
END_TEST

static void expect_error(const char *text, const char *message)
{
    gbnf_grammar g;
    char err[256] = "";
    kinfer_status st = gbnf_parse(text, "root", &g, err, sizeof err);
    ck_assert_msg(st == KINFER_E_FORMAT, "%s: parsed (status %d)", text, st);
    ck_assert_msg(strcmp(err, message) == 0, "%s:\n got      '%s'\n expected '%s'", text, err, message);
}

START_TEST(test_parse_errors)
{
    expect_error("root := \"a\"", "line 1, column 6: expecting '::='");
    expect_error("root ::= \"a\"\nbad", "line 2, column 4: expecting '::='");
    expect_error("root ::= \"a", "line 1, column 12: unexpected end of input in a literal");
    expect_error("root ::= [a-", "line 1, column 13: unexpected end of input in a character class");
    expect_error("root ::= \"\\q\"", "line 1, column 11: unknown escape '\\q'");
    expect_error("root ::= \"\\x4g\"", "line 1, column 14: expecting 2 hex digits");
    expect_error("root ::= (\"a\" \"b\"\n", "line 2, column 1: expecting ')'");
    expect_error("root ::= *", "line 1, column 10: expecting an item before */+/?/{");
    expect_error("root ::= \"a\"{3,1}", "line 1, column 13: repetition {3,1}: the maximum is below the minimum");
    expect_error("root ::= \"a\"{2001}", "line 1, column 13: repetition count 2001 exceeds 2000");
    expect_error("root ::= \"a\"{x}", "line 1, column 14: expecting an integer");
    expect_error("root ::= \"a\"{1;}", "line 1, column 15: expecting ',' or '}'");
    expect_error("root ::= <[12]>", "line 1, column 10: token references (<...>) are not supported");
    expect_error("root ::= \"a\" )", "line 1, column 14: expecting a newline or the end after a rule");
    expect_error("root ::= \"a\"\n  x ::= y\n", "line 2, column 9: undefined rule 'y'");
    expect_error("root ::= a\na ::= a \"x\" | \"y\"", "rule 'a' is left-recursive (unsupported)");
    expect_error("root ::= a\na ::= b? a \"x\"\nb ::= \"b\"", "rule 'a' is left-recursive (unsupported)");
    expect_error("main ::= \"a\"", "the grammar has no rule 'root' to start from");
    expect_error("   \n# only a comment\n", "line 3, column 1: empty grammar");
}
END_TEST

/* ------------------------------------------------------- masks vs llama */

static char *read_text(const char *path)
{
    size_t n;
    unsigned char *b = test_read_file(path, &n);
    if (!b) return NULL;
    char *s = realloc(b, n + 1);
    s[n] = 0;
    return s;
}

static kinfer_grammar *grammar_from_file(const kinfer_model *m, const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/grammar/%s", file);
    char *text = read_text(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    kinfer_grammar *g = NULL;
    kinfer_error err;
    kinfer_status st = kinfer_grammar_new(m, text, "root", &g, &err);
    ck_assert_msg(st == KINFER_OK, "%s: %s", file, err.message);
    free(text);
    return g;
}

static void check_masks(const char *model_file, int stride)
{
    const char *mpath = test_model_path(model_file);
    if (!mpath) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(mpath, NULL, &m), KINFER_OK);
    char fpath[512], base[256];
    snprintf(base, sizeof base, "%s", model_file);
    *strrchr(base, '.') = 0;
    snprintf(fpath, sizeof fpath, "tests/fixtures/grammar/%s.txt", base);
    FILE *f = fopen(fpath, "r");
    ck_assert_msg(f != NULL, "cannot open %s", fpath);
    char word[64], gfile[128];
    int32_t n_vocab = 0;
    ck_assert_int_eq(fscanf(f, "model %*s n_vocab %d", &n_vocab), 1);
    int32_t nv = kinfer_model_n_vocab(m);
    ck_assert_int_ge(nv, n_vocab);
    float *logits = malloc((size_t)nv * sizeof *logits);
    uint8_t *want = malloc((size_t)nv);
    int n_cases = 0;
    while (fscanf(f, "%63s", word) == 1 && strcmp(word, "end") != 0) {
        ck_assert_str_eq(word, "case");
        int n_prefix;
        ck_assert_int_eq(fscanf(f, "%127s %d", gfile, &n_prefix), 2);
        kinfer_grammar *g = grammar_from_file(m, gfile);
        for (int i = 0; i < n_prefix; i++) {
            int t;
            ck_assert_int_eq(fscanf(f, "%d", &t), 1);
            ck_assert_msg(kinfer_grammar_accept(g, t) == KINFER_OK, "%s case %d: prefix token %d: %s", gfile,
                          n_cases, t, kinfer_grammar_errmsg(g));
        }
        int n_allowed, n_runs;
        ck_assert_int_eq(fscanf(f, " allowed %d %d", &n_allowed, &n_runs), 2);
        memset(want, 0, (size_t)nv);
        /* runs as "<gap>" or "<gap>+<extra>" after the previous run's end */
        for (int r = 0, end = 0; r < n_runs; r++) {
            char run[32];
            int gap, extra = 0;
            ck_assert_int_eq(fscanf(f, "%31s", run), 1);
            ck_assert_int_ge(sscanf(run, "%d+%d", &gap, &extra), 1);
            const int a = end + gap, b = a + extra;
            ck_assert(gap >= 0 && extra >= 0 && b < nv);
            for (int i = a; i <= b; i++) want[i] = 1;
            end = b + 1;
        }
        for (int32_t i = 0; i < nv; i++) logits[i] = 0.0f;
        ck_assert_int_eq(kinfer_grammar_apply(g, logits, nv), KINFER_OK);
        int n_diff = 0, n_got = 0;
        for (int32_t i = 0; i < nv; i++) {
            int got = logits[i] == 0.0f;
            n_got += got;
            if (got != want[i] && n_diff++ < 5) {
                char piece[64];
                int32_t len = kinfer_token_to_piece(m, i, piece, sizeof piece - 1, true);
                piece[len > 0 ? len : 0] = 0;
                fprintf(stderr, "%s %s case %d: token %d '%s': kinfer %d, llama.cpp %d\n", model_file, gfile,
                        n_cases, i, piece, got, want[i]);
            }
            /* the one-token check agrees with the mask */
            if (i % stride == 0)
                ck_assert_msg(kinfer_grammar_allows(g, i) == got, "%s case %d: allows(%d) != mask", gfile,
                              n_cases, i);
        }
        ck_assert_msg(n_diff == 0, "%s %s case %d: %d tokens differ (%d allowed, llama.cpp %d)", model_file,
                      gfile, n_cases, n_diff, n_got, n_allowed);
        kinfer_grammar_free(g);
        n_cases++;
    }
    ck_assert_int_gt(n_cases, 10);
    fclose(f);
    free(logits);
    free(want);
    kinfer_model_free(m);
}

START_TEST(test_masks_smollm2) { check_masks(TEST_MODEL_SMOLLM2, test_quick() ? 97 : 1); }
END_TEST

START_TEST(test_masks_gemma3) { check_masks(TEST_MODEL_GEMMA3, test_quick() ? 997 : 13); }
END_TEST

/* ------------------------------------------------------------- sampling */

/* Random logits, sampled with the grammar in the sampler and, beside it,
 * with the grammar's mask applied by hand: the same token every time (the
 * sampler's shortcut for top-k and greedy changes nothing). */
START_TEST(test_sampler_equals_mask)
{
    const char *mpath = test_model_path(TEST_MODEL_SMOLLM2);
    if (!mpath) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(mpath, NULL, &m), KINFER_OK);
    int32_t nv = kinfer_model_n_vocab(m);
    float *logits = malloc((size_t)nv * sizeof *logits), *masked = malloc((size_t)nv * sizeof *masked);
    uint64_t x = 12345;
    struct { float temp; int32_t top_k; float top_p; } cfg[] = {{0.0f, 0, 1.0f}, {1.0f, 40, 0.95f},
                                                                {0.8f, 0, 0.9f}, {1.5f, 3, 1.0f}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        kinfer_sampler_params p = kinfer_sampler_default_params();
        p.temperature = cfg[c].temp;
        p.top_k = cfg[c].top_k;
        p.top_p = cfg[c].top_p;
        p.seed = 7 + c;
        kinfer_sampler *with = NULL, *plain = NULL;
        ck_assert_int_eq(kinfer_sampler_new(&p, &with), KINFER_OK);
        ck_assert_int_eq(kinfer_sampler_new(&p, &plain), KINFER_OK);
        ck_assert_int_eq(kinfer_sampler_set_grammar(with, grammar_from_file(m, "json.gbnf")), KINFER_OK);
        kinfer_grammar *shadow = grammar_from_file(m, "json.gbnf");
        for (int step = 0; step < 60; step++) {
            for (int32_t i = 0; i < nv; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                logits[i] = (float)(x % 10000) / 1000.0f;
            }
            memcpy(masked, logits, (size_t)nv * sizeof *masked);
            ck_assert_int_eq(kinfer_grammar_apply(shadow, masked, nv), KINFER_OK);
            kinfer_token a = kinfer_sampler_sample(with, logits, nv);
            kinfer_token b = kinfer_sampler_sample(plain, masked, nv);
            ck_assert_msg(a == b, "config %zu step %d: %d vs %d", c, step, a, b);
            ck_assert_int_eq(kinfer_grammar_accept(shadow, a), KINFER_OK);
            if (kinfer_token_is_eog(m, a)) break;
        }
        kinfer_grammar_free(shadow);
        kinfer_sampler_free(with);
        kinfer_sampler_free(plain);
    }
    free(logits);
    free(masked);
    kinfer_model_free(m);
}
END_TEST

/* Real generation at temperature 1 with many seeds: the text always
 * completes the grammar (checked by feeding it to a fresh grammar). */
static void generate_valid(const char *model_file, const char *gfile, int n_seeds, int max_tokens)
{
    const char *mpath = test_model_path(model_file);
    if (!mpath) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(mpath, NULL, &m), KINFER_OK);
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 2;
    kinfer_context *ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_OK);
    const char *prompt = "Answer with JSON describing a person: ";
    kinfer_token toks[256];
    int64_t n = kinfer_tokenize(m, prompt, strlen(prompt), toks, 64, true, false, NULL);
    ck_assert_int_gt(n, 0);
    int32_t nv = kinfer_model_n_vocab(m);
    int n_complete = 0;
    for (int seed = 0; seed < n_seeds; seed++) {
        ck_assert_int_eq(kinfer_kv_clear(ctx), KINFER_OK);
        kinfer_pos pos[256];
        for (int i = 0; i < n; i++) pos[i] = i;
        kinfer_batch b = {.n_tokens = (int32_t)n, .token = toks, .pos = pos};
        ck_assert_int_eq(kinfer_decode(ctx, &b), KINFER_OK);
        const float *logits = kinfer_get_logits(ctx, (int32_t)n - 1);
        kinfer_sampler_params p = kinfer_sampler_default_params();
        p.temperature = 1.0f;
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0.0f;
        p.seed = (uint64_t)seed;
        kinfer_sampler *s = NULL;
        ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_OK);
        ck_assert_int_eq(kinfer_sampler_set_grammar(s, grammar_from_file(m, gfile)), KINFER_OK);
        kinfer_grammar *check = grammar_from_file(m, gfile);
        int ended = 0;
        for (int t = 0; t < max_tokens; t++) {
            kinfer_token tok = kinfer_sampler_sample(s, logits, nv);
            ck_assert_int_ge(tok, 0);
            if (kinfer_token_is_eog(m, tok)) {
                ended = 1;
                break;
            }
            ck_assert_msg(kinfer_grammar_accept(check, tok) == KINFER_OK, "seed %d: %s", seed,
                          kinfer_grammar_errmsg(check));
            kinfer_pos ps = (kinfer_pos)(n + t);
            kinfer_batch one = {.n_tokens = 1, .token = &tok, .pos = &ps};
            ck_assert_int_eq(kinfer_decode(ctx, &one), KINFER_OK);
            logits = kinfer_get_logits(ctx, 0);
        }
        if (ended) {
            ck_assert_msg(kinfer_grammar_can_end(check), "seed %d: ended before the grammar did", seed);
            n_complete++;
        }
        kinfer_grammar_free(check);
        kinfer_sampler_free(s);
    }
    /* grammars here are short: most draws finish within max_tokens (the same
     * seeds under the sanitizers: two seeds alone may all run out of tokens) */
    ck_assert_int_gt(n_complete, 0);
    kinfer_context_free(ctx);
    kinfer_model_free(m);
}

START_TEST(test_generate_choice) { generate_valid(TEST_MODEL_SMOLLM2, "choice.gbnf", 20, 8); }
END_TEST

START_TEST(test_generate_json_smollm2) { generate_valid(TEST_MODEL_SMOLLM2, "json.gbnf", 6, 48); }
END_TEST

START_TEST(test_generate_mixed_gemma3) { generate_valid(TEST_MODEL_GEMMA3, "mixed.gbnf", 6, 32); }
END_TEST

START_TEST(test_api_errors)
{
    const char *mpath = test_model_path(TEST_MODEL_SMOLLM2);
    if (!mpath) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(mpath, NULL, &m), KINFER_OK);
    kinfer_grammar *g = NULL;
    kinfer_error err;
    ck_assert_int_eq(kinfer_grammar_new(m, "root ::= x", NULL, &g, &err), KINFER_E_FORMAT);
    ck_assert_ptr_null(g);
    ck_assert_str_eq(err.message, "line 1, column 10: undefined rule 'x'");
    ck_assert_int_eq(kinfer_grammar_new(m, "root ::= \"ab\"", NULL, &g, &err), KINFER_OK);
    kinfer_token t[8];
    int64_t n = kinfer_tokenize(m, "b", 1, t, 8, false, false, NULL);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(kinfer_grammar_accept(g, t[0]), KINFER_E_INVALID_ARG);   /* "b" cannot start */
    ck_assert_int_eq(kinfer_grammar_accept(g, -1), KINFER_E_INVALID_ARG);
    ck_assert(!kinfer_grammar_can_end(g));
    n = kinfer_tokenize(m, "ab", 2, t, 8, false, false, NULL);
    for (int i = 0; i < n; i++) ck_assert_int_eq(kinfer_grammar_accept(g, t[i]), KINFER_OK);
    ck_assert(kinfer_grammar_can_end(g));
    ck_assert_int_eq(kinfer_grammar_reset(g), KINFER_OK);
    ck_assert(!kinfer_grammar_can_end(g));
    kinfer_grammar_free(g);
    kinfer_grammar_free(NULL);
    kinfer_model_free(m);
}
END_TEST

static Suite *grammar_suite(void)
{
    Suite *s = suite_create("grammar");
    TCase *tc = tcase_create("parser");
    tcase_add_test(tc, test_parse_shapes);
    tcase_add_test(tc, test_parse_errors);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("model");
    tcase_set_timeout(tm, 600);
    tcase_add_test(tm, test_api_errors);
    tcase_add_test(tm, test_masks_smollm2);
    tcase_add_test(tm, test_masks_gemma3);
    tcase_add_test(tm, test_sampler_equals_mask);
    tcase_add_test(tm, test_generate_choice);
    tcase_add_test(tm, test_generate_json_smollm2);
    tcase_add_test(tm, test_generate_mixed_gemma3);
    suite_add_tcase(s, tm);
    return s;
}

int main(void) { return test_run_suite(grammar_suite()); }
