/*
 * test_common.c — examples/common, the generate loop the programs share:
 * the stop matcher over pieces (a stop split across pieces, held-back text
 * released when it turns out not to be a stop, the earliest of several
 * stops, nothing after a stop), and on SmolLM2 the loop itself: prompt
 * chunks give the same greedy text as one decode, a stop string cuts that
 * text exactly before itself, n_predict counts tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "testutil.h"
#include "../examples/common/gen.h"

/* Feed pieces one by one; returns everything emitted (caller frees). */
static char *feed_all(const char *const *stops, int n_stops, const char *const *pieces,
                      int n_pieces, bool *stopped)
{
    stop_matcher m;
    ck_assert(stop_init(&m, stops, n_stops));
    textbuf out = {0};
    *stopped = false;
    for (int i = 0; i < n_pieces && !*stopped; i++)
        *stopped = stop_feed(&m, pieces[i], strlen(pieces[i]), &out);
    stop_flush(&m, &out);
    stop_free(&m);
    char *s = strdup(textbuf_str(&out));
    textbuf_free(&out);
    return s;
}

START_TEST(test_stop_split_across_pieces)
{
    const char *stops[] = {"</end>"};
    const char *pieces[] = {"Hello wor", "ld <", "/e", "nd> after", "more"};
    bool stopped;
    char *s = feed_all(stops, 1, pieces, 5, &stopped);
    ck_assert(stopped);
    ck_assert_str_eq(s, "Hello world ");
    free(s);
}
END_TEST

START_TEST(test_stop_held_text_released)
{
    /* "</e" looks like the start of the stop, then is not */
    const char *stops[] = {"</end>"};
    const char *pieces[] = {"a </e", "x b", " </en"};
    bool stopped;
    stop_matcher m;
    ck_assert(stop_init(&m, stops, 1));
    textbuf out = {0};
    ck_assert(!stop_feed(&m, pieces[0], strlen(pieces[0]), &out));
    ck_assert_str_eq(textbuf_str(&out), "a ");       /* "</e" held back */
    ck_assert(!stop_feed(&m, pieces[1], strlen(pieces[1]), &out));
    ck_assert_str_eq(textbuf_str(&out), "a </ex b");
    ck_assert(!stop_feed(&m, pieces[2], strlen(pieces[2]), &out));
    ck_assert_str_eq(textbuf_str(&out), "a </ex b ");
    stop_flush(&m, &out);                              /* the end releases the tail */
    ck_assert_str_eq(textbuf_str(&out), "a </ex b </en");
    stop_free(&m);
    textbuf_free(&out);
    char *s = feed_all(stops, 1, pieces, 3, &stopped);
    ck_assert(!stopped);
    free(s);
}
END_TEST

START_TEST(test_stop_earliest_of_several)
{
    const char *stops[] = {"world", "lo w", "", "zzz"};
    const char *pieces[] = {"hello world"};
    bool stopped;
    stop_matcher m;
    ck_assert(stop_init(&m, stops, 4));
    ck_assert_int_eq(m.n_stops, 3);                    /* the empty one is dropped */
    textbuf out = {0};
    ck_assert(stop_feed(&m, pieces[0], strlen(pieces[0]), &out));
    ck_assert_str_eq(textbuf_str(&out), "hel");
    ck_assert_int_eq(m.which, 1);
    ck_assert(stop_feed(&m, "more", 4, &out));         /* nothing after a stop */
    ck_assert_str_eq(textbuf_str(&out), "hel");
    stop_free(&m);
    textbuf_free(&out);
    char *s = feed_all(stops, 4, pieces, 1, &stopped);
    ck_assert(stopped);
    ck_assert_str_eq(s, "hel");
    free(s);
}
END_TEST

START_TEST(test_stop_none_passes_through)
{
    const char *pieces[] = {"a", "", "b</"};
    bool stopped;
    char *s = feed_all(NULL, 0, pieces, 3, &stopped);
    ck_assert(!stopped);
    ck_assert_str_eq(s, "ab</");
    free(s);
}
END_TEST

START_TEST(test_stop_at_start)
{
    const char *stops[] = {"\n\n"};
    const char *pieces[] = {"\n", "\nrest"};
    bool stopped;
    char *s = feed_all(stops, 1, pieces, 2, &stopped);
    ck_assert(stopped);
    ck_assert_str_eq(s, "");
    free(s);
}
END_TEST

/* Greedy generation with the shared loop; returns the text (caller frees). */
static char *generate(kinfer_model *model, const char *prompt, int32_t n_chunk, int32_t n_predict,
                      const char *stop, gen_status *why, int32_t *n_generated)
{
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 2;
    kinfer_context *ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(model, &cp, &ctx), KINFER_OK);
    gen_params gp = gen_default_params();
    gp.sampling.temperature = 0;
    gp.n_predict = n_predict;
    const char *stops[] = {stop};
    gp.stop = stops;
    gp.n_stop = stop ? 1 : 0;
    gen_seq g;
    ck_assert_int_eq(gen_seq_init(&g, model, 0, &gp), KINFER_OK);
    kinfer_error err = {0};
    int32_t n = 0;
    kinfer_token *toks = gen_tokenize(model, prompt, strlen(prompt), true, false, &n, &err);
    ck_assert_ptr_nonnull(toks);
    gen_seq_accept_prompt(&g, toks, n);
    ck_assert_int_eq(gen_eval(ctx, &g, toks, n, n_chunk, 256, false, true), KINFER_OK);
    free(toks);
    ck_assert_int_eq(g.n_past, n);
    textbuf out = {0};
    for (;;) {
        kinfer_token t;
        *why = gen_seq_next(&g, kinfer_get_logits(ctx, g.logits_index), &t, &out);
        if (*why != GEN_CONTINUE) break;
        ck_assert_int_eq(gen_eval(ctx, &g, &t, 1, 0, 256, false, false), KINFER_OK);
    }
    gen_seq_finish(&g, &out);
    *n_generated = g.n_generated;
    gen_seq_free(&g);
    kinfer_context_free(ctx);
    char *s = strdup(textbuf_str(&out));
    textbuf_free(&out);
    return s;
}

START_TEST(test_loop_on_model)
{
    const char *path = test_model_path(TEST_MODEL_SMOLLM2);
    if (!path) return;
    kinfer_model *model = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &model), KINFER_OK);
    const char *prompt = "The three primary colors are red, yellow and";
    gen_status why;
    int32_t n_gen;
    char *whole = generate(model, prompt, 0, 24, NULL, &why, &n_gen);
    ck_assert_int_eq(why, GEN_LENGTH);
    ck_assert_int_eq(n_gen, 24);
    ck_assert_uint_gt(strlen(whole), 20);
    char *chunked = generate(model, prompt, 3, 24, NULL, &why, &n_gen);
    ck_assert_str_eq(whole, chunked);

    /* a stop string taken from the middle of the text cuts it just before */
    size_t cut = strlen(whole) / 2;
    char stop[5];
    memcpy(stop, whole + cut, 4);
    stop[4] = '\0';
    size_t first = (size_t)(strstr(whole, stop) - whole);
    char *stopped = generate(model, prompt, 0, 24, stop, &why, &n_gen);
    ck_assert_int_eq(why, GEN_STOP_STRING);
    ck_assert_uint_eq(strlen(stopped), first);
    ck_assert(!strncmp(stopped, whole, first));
    ck_assert_int_lt(n_gen, 24);
    free(whole);
    free(chunked);
    free(stopped);
    kinfer_model_free(model);
}
END_TEST

START_TEST(test_textbuf_printf_grows)
{
    textbuf b = {0};
    ck_assert(textbuf_printf(&b, "%s=%d", "a", 1));
    for (int i = 0; i < 200; i++) ck_assert(textbuf_printf(&b, ";%03d", i));
    ck_assert_uint_eq(b.n, 3 + 200 * 4);
    ck_assert_uint_eq(strlen(textbuf_str(&b)), b.n);
    ck_assert(!strncmp(textbuf_str(&b), "a=1;000;001", 11));
    ck_assert_str_eq(textbuf_str(&b) + b.n - 4, ";199");
    textbuf_free(&b);
}
END_TEST

static Suite *common_suite(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("stop");
    tcase_add_test(tc, test_stop_split_across_pieces);
    tcase_add_test(tc, test_stop_held_text_released);
    tcase_add_test(tc, test_stop_earliest_of_several);
    tcase_add_test(tc, test_stop_none_passes_through);
    tcase_add_test(tc, test_stop_at_start);
    tcase_add_test(tc, test_textbuf_printf_grows);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("model");
    tcase_set_timeout(tm, 120);
    tcase_add_test(tm, test_loop_on_model);
    suite_add_tcase(s, tm);
    return s;
}

int main(void) { return test_run_suite(common_suite()); }
