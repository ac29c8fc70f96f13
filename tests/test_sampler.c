/*
 * test_sampler.c — the sampler chain on hand-made logits: greedy picks the
 * argmax, penalties move exactly the logits they should by exactly the
 * amounts they should, top-k/top-p/min-p keep exactly the expected
 * candidates, draws follow the softmax, seeds reproduce, bad arguments are
 * refused with a status.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "testutil.h"

#define N_DRAWS 20000

/* Parameters with every filter off: a plain draw from softmax(logits / T). */
static kinfer_sampler_params plain(float temperature, uint64_t seed)
{
    kinfer_sampler_params p = kinfer_sampler_default_params();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static kinfer_sampler *new_sampler(const kinfer_sampler_params *p)
{
    kinfer_sampler *s = NULL;
    ck_assert_int_eq(kinfer_sampler_new(p, &s), KINFER_OK);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Draw N_DRAWS tokens; counts[] gets how often each id came out. */
static void draw_counts(const kinfer_sampler_params *p, const float *logits, int32_t n,
                        int *counts)
{
    kinfer_sampler *s = new_sampler(p);
    memset(counts, 0, (size_t)n * sizeof *counts);
    for (int i = 0; i < N_DRAWS; i++) {
        kinfer_token t = kinfer_sampler_sample(s, logits, n);
        ck_assert_int_ge(t, 0);
        ck_assert_int_lt(t, n);
        counts[t]++;
    }
    kinfer_sampler_free(s);
}

/* Observed frequency of every id matches want[] (0 = must never appear)
 * within an absolute 0.02 (a 20000-draw binomial has sd <= 0.0036). */
static void check_freqs(const int *counts, const double *want, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        double f = (double)counts[i] / N_DRAWS;
        if (want[i] == 0.0)
            ck_assert_msg(counts[i] == 0, "token %d drawn %d times, should be filtered", i,
                          counts[i]);
        else
            ck_assert_msg(fabs(f - want[i]) < 0.02, "token %d: frequency %.4f, expected %.4f", i,
                          f, want[i]);
    }
}

/* Logits whose softmax is exactly probs (up to a constant). */
static void logits_of(const double *probs, int32_t n, float *logits)
{
    for (int32_t i = 0; i < n; i++) logits[i] = (float)log(probs[i]);
}

/* ------------------------------------------------------------- greedy */

START_TEST(test_defaults)
{
    kinfer_sampler_params p = kinfer_sampler_default_params();
    ck_assert_float_eq(p.temperature, 0.8f);
    ck_assert_int_eq(p.top_k, 40);
    ck_assert_float_eq(p.top_p, 0.95f);
    ck_assert_float_eq(p.min_p, 0.05f);
    ck_assert_float_eq(p.repeat_penalty, 1.0f);
    ck_assert_float_eq(p.frequency_penalty, 0.0f);
    ck_assert_float_eq(p.presence_penalty, 0.0f);
    ck_assert_int_eq(p.penalty_last_n, 64);
    /* NULL params = the defaults */
    kinfer_sampler *s = NULL;
    ck_assert_int_eq(kinfer_sampler_new(NULL, &s), KINFER_OK);
    float logits[3] = {0.0f, 5.0f, 0.0f};
    kinfer_token t = kinfer_sampler_sample(s, logits, 3);
    ck_assert_int_ge(t, 0);
    ck_assert_int_lt(t, 3);
    kinfer_sampler_free(s);
}
END_TEST

START_TEST(test_greedy_is_argmax)
{
    enum { N = 5000 };
    float *logits = malloc(N * sizeof *logits);
    ck_assert_ptr_nonnull(logits);
    srand(1234);
    kinfer_sampler_params p = kinfer_sampler_default_params();  /* filters on: no effect */
    p.temperature = 0.0f;
    kinfer_sampler *s = new_sampler(&p);
    for (int trial = 0; trial < 50; trial++) {
        int best = 0;
        for (int i = 0; i < N; i++) {
            logits[i] = (float)rand() / RAND_MAX * 20.0f - 10.0f;
            if (logits[i] > logits[best]) best = i;
        }
        ck_assert_int_eq(kinfer_sampler_sample(s, logits, N), best);
    }
    /* ties go to the lowest id; NaN never wins */
    float tie[4] = {1.0f, 3.0f, 3.0f, NAN};
    ck_assert_int_eq(kinfer_sampler_sample(s, tie, 4), 1);
    float nan_first[3] = {NAN, -1.0f, -2.0f};
    ck_assert_int_eq(kinfer_sampler_sample(s, nan_first, 3), 1);
    /* negative temperature is greedy too */
    kinfer_sampler_free(s);
    p.temperature = -1.0f;
    s = new_sampler(&p);
    float l2[3] = {0.1f, 0.2f, 0.15f};
    for (int i = 0; i < 100; i++) ck_assert_int_eq(kinfer_sampler_sample(s, l2, 3), 1);
    kinfer_sampler_free(s);
    free(logits);
}
END_TEST

START_TEST(test_top_k_1_is_argmax)
{
    float logits[8] = {0.5f, 1.9f, 2.0f, 1.99f, -3.0f, 0.0f, 1.0f, 1.5f};
    kinfer_sampler_params p = plain(1.5f, 7);
    p.top_k = 1;
    kinfer_sampler *s = new_sampler(&p);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(kinfer_sampler_sample(s, logits, 8), 2);
    kinfer_sampler_free(s);
}
END_TEST

/* --------------------------------------------------------- penalties */

/* Greedy choice after the given history. */
static kinfer_token greedy_after(kinfer_sampler_params p, const kinfer_token *hist, int n_hist,
                                 const float *logits, int32_t n)
{
    p.temperature = 0.0f;
    kinfer_sampler *s = new_sampler(&p);
    for (int i = 0; i < n_hist; i++) kinfer_sampler_accept(s, hist[i]);
    kinfer_token t = kinfer_sampler_sample(s, logits, n);
    kinfer_sampler_free(s);
    return t;
}

START_TEST(test_repeat_penalty_positive)
{
    /* token 0: 3.0 / 1.5 = 2.0.  Token 1 (not in history) sits just below or
     * just above that, so the argmax tells which side of 2.0 token 0 lands. */
    kinfer_sampler_params p = plain(0.0f, 0);
    p.repeat_penalty = 1.5f;
    kinfer_token hist[] = {0, 0, 0, 3};
    float below[4] = {3.0f, 1.99f, -5.0f, 1.0f};
    float above[4] = {3.0f, 2.01f, -5.0f, 1.0f};
    ck_assert_int_eq(greedy_after(p, hist, 4, below, 4), 0);
    ck_assert_int_eq(greedy_after(p, hist, 4, above, 4), 1);
    /* without history nothing changes */
    ck_assert_int_eq(greedy_after(p, NULL, 0, above, 4), 0);
    /* the count does not matter to the repeat penalty: one occurrence is enough */
    kinfer_token once[] = {0};
    ck_assert_int_eq(greedy_after(p, once, 1, below, 4), 0);
    ck_assert_int_eq(greedy_after(p, once, 1, above, 4), 1);
}
END_TEST

START_TEST(test_repeat_penalty_negative)
{
    /* a negative logit is multiplied: -1.0 * 2 = -2.0, so it loses to -1.99
     * and beats -2.01 */
    kinfer_sampler_params p = plain(0.0f, 0);
    p.repeat_penalty = 2.0f;
    kinfer_token hist[] = {2};
    float a[3] = {-1.99f, -5.0f, -1.0f};
    float b[3] = {-2.01f, -5.0f, -1.0f};
    ck_assert_int_eq(greedy_after(p, hist, 1, a, 3), 0);
    ck_assert_int_eq(greedy_after(p, hist, 1, b, 3), 2);
    /* a penalty below 1 favours the token: -1.0 * 0.5 = -0.5 */
    p.repeat_penalty = 0.5f;
    float c[3] = {-0.49f, -5.0f, -1.0f};
    float d[3] = {-0.51f, -5.0f, -1.0f};
    ck_assert_int_eq(greedy_after(p, hist, 1, c, 3), 0);
    ck_assert_int_eq(greedy_after(p, hist, 1, d, 3), 2);
}
END_TEST

START_TEST(test_frequency_presence)
{
    /* token 4 seen 3 times: 5.0 - 3 * 0.5 - 1.0 = 2.5 */
    kinfer_sampler_params p = plain(0.0f, 0);
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 1.0f;
    kinfer_token hist[] = {4, 1, 4, 4};
    /* token 1 seen once: 2.0 - 0.5 - 1.0 = 0.5; token 2 is the probe */
    float below[5] = {0.0f, 2.0f, 2.49f, 0.0f, 5.0f};
    float above[5] = {0.0f, 2.0f, 2.51f, 0.0f, 5.0f};
    ck_assert_int_eq(greedy_after(p, hist, 4, below, 5), 4);
    ck_assert_int_eq(greedy_after(p, hist, 4, above, 5), 2);
    /* token 1 really went down to 0.5: it loses to 0.51, beats 0.49 */
    float t1a[5] = {0.0f, 2.0f, 0.49f, 0.0f, -10.0f};
    float t1b[5] = {0.0f, 2.0f, 0.51f, 0.0f, -10.0f};
    ck_assert_int_eq(greedy_after(p, hist, 4, t1a, 5), 1);
    ck_assert_int_eq(greedy_after(p, hist, 4, t1b, 5), 2);

    /* repeat penalty first, then subtraction: 5.0 / 2 - 2.5 = 0.0 */
    p.repeat_penalty = 2.0f;
    float r1[5] = {-0.01f, -9.0f, -9.0f, -9.0f, 5.0f};
    float r2[5] = {0.01f, -9.0f, -9.0f, -9.0f, 5.0f};
    ck_assert_int_eq(greedy_after(p, hist, 4, r1, 5), 4);
    ck_assert_int_eq(greedy_after(p, hist, 4, r2, 5), 0);
}
END_TEST

START_TEST(test_penalty_window)
{
    /* penalty_last_n = 3: token 0 leaves the window after three more tokens */
    kinfer_sampler_params p = plain(0.0f, 0);
    p.repeat_penalty = 4.0f;
    p.penalty_last_n = 3;
    float logits[4] = {2.0f, 1.0f, 0.0f, 0.0f};
    kinfer_token in_window[] = {0, 2, 3};
    kinfer_token out_of_window[] = {0, 2, 3, 2};
    ck_assert_int_eq(greedy_after(p, in_window, 3, logits, 4), 1);   /* 2/4 = 0.5 < 1 */
    ck_assert_int_eq(greedy_after(p, out_of_window, 4, logits, 4), 0);

    /* penalty_last_n = 0 disables the penalties */
    p.penalty_last_n = 0;
    ck_assert_int_eq(greedy_after(p, in_window, 3, logits, 4), 0);

    /* tokens outside the vocabulary in the history are harmless */
    p.penalty_last_n = 8;
    kinfer_token big[] = {100000, 7, 0};
    ck_assert_int_eq(greedy_after(p, big, 3, logits, 4), 1);

    /* reset forgets the history */
    p.temperature = 0.0f;
    kinfer_sampler *s = new_sampler(&p);
    kinfer_sampler_accept(s, 0);
    ck_assert_int_eq(kinfer_sampler_sample(s, logits, 4), 1);
    kinfer_sampler_reset(s);
    ck_assert_int_eq(kinfer_sampler_sample(s, logits, 4), 0);
    kinfer_sampler_free(s);
}
END_TEST

START_TEST(test_penalties_in_distribution)
{
    /* with temperature 1 and no filters the draw follows the penalized
     * softmax: logits {log .5, log .5} with token 0 reduced by log 3 via a
     * presence penalty gives probabilities 1/4, 3/4 */
    double probs[2] = {0.5, 0.5};
    float logits[2];
    logits_of(probs, 2, logits);
    kinfer_sampler_params p = plain(1.0f, 42);
    p.presence_penalty = (float)log(3.0);
    kinfer_sampler *s = new_sampler(&p);
    kinfer_sampler_accept(s, 0);
    int counts[2] = {0, 0};
    for (int i = 0; i < N_DRAWS; i++) counts[kinfer_sampler_sample(s, logits, 2)]++;
    kinfer_sampler_free(s);
    double want[2] = {0.25, 0.75};
    check_freqs(counts, want, 2);
}
END_TEST

/* ------------------------------------------------------------ filters */

START_TEST(test_plain_softmax)
{
    double probs[5] = {0.4, 0.3, 0.15, 0.1, 0.05};
    float logits[5];
    logits_of(probs, 5, logits);
    int counts[5];
    kinfer_sampler_params p = plain(1.0f, 3);
    draw_counts(&p, logits, 5, counts);
    check_freqs(counts, probs, 5);

    /* temperature 2: probabilities proportional to sqrt(probs) */
    p.temperature = 2.0f;
    draw_counts(&p, logits, 5, counts);
    double want[5], sum = 0;
    for (int i = 0; i < 5; i++) sum += want[i] = sqrt(probs[i]);
    for (int i = 0; i < 5; i++) want[i] /= sum;
    check_freqs(counts, want, 5);
}
END_TEST

START_TEST(test_top_k)
{
    /* ids scrambled so the filter cannot rely on order */
    double probs[6] = {0.05, 0.3, 0.1, 0.4, 0.1, 0.05};
    float logits[6];
    logits_of(probs, 6, logits);
    int counts[6];
    kinfer_sampler_params p = plain(1.0f, 11);
    p.top_k = 2;   /* keeps 3 (0.4) and 1 (0.3), renormalized */
    draw_counts(&p, logits, 6, counts);
    double want[6] = {0, 0.3 / 0.7, 0, 0.4 / 0.7, 0, 0};
    check_freqs(counts, want, 6);
}
END_TEST

START_TEST(test_top_p)
{
    double probs[5] = {0.15, 0.5, 0.1, 0.25, 0.0001};
    float logits[5];
    logits_of(probs, 5, logits);
    int counts[5];
    kinfer_sampler_params p = plain(1.0f, 5);

    p.top_p = 0.7f;   /* 0.5 < 0.7 <= 0.5 + 0.25: keeps {1, 3} */
    draw_counts(&p, logits, 5, counts);
    double want2[5] = {0, 0.5 / 0.75, 0, 0.25 / 0.75, 0};
    check_freqs(counts, want2, 5);

    p.top_p = 0.8f;   /* needs the 0.15 too: {1, 3, 0} */
    draw_counts(&p, logits, 5, counts);
    double want3[5] = {0.15 / 0.9, 0.5 / 0.9, 0, 0.25 / 0.9, 0};
    check_freqs(counts, want3, 5);

    p.top_p = 0.4f;   /* the top token alone passes 0.4 */
    draw_counts(&p, logits, 5, counts);
    double want1[5] = {0, 1.0, 0, 0, 0};
    check_freqs(counts, want1, 5);
}
END_TEST

START_TEST(test_top_p_large_vocab)
{
    /* 3000 equal logits, top_p 0.5: about half the vocabulary must stay,
     * lowest ids first (ties are broken by id), which is more than the 256
     * candidates the fast path sorts first. */
    enum { N = 3000 };
    float *logits = calloc(N, sizeof *logits);
    int *counts = malloc(N * sizeof *counts);
    ck_assert_ptr_nonnull(logits);
    ck_assert_ptr_nonnull(counts);
    kinfer_sampler_params p = plain(1.0f, 99);
    p.top_p = 0.5f;
    draw_counts(&p, logits, N, counts);
    int max_id = 0, distinct = 0;
    for (int i = 0; i < N; i++)
        if (counts[i]) {
            max_id = i;
            distinct++;
        }
    ck_assert_int_le(max_id, 1502);
    ck_assert_int_ge(max_id, 1400);
    ck_assert_int_ge(distinct, 1300);

    /* a peaked large vocabulary: the top 300 tokens share 0.99 of the mass
     * and are scattered through the ids; top_p 0.98 must keep only them */
    for (int i = 0; i < N; i++) logits[i] = -30.0f;
    int32_t chosen[300];
    for (int i = 0; i < 300; i++) {
        chosen[i] = (i * 7919) % N;
        logits[chosen[i]] = 0.0f;
    }
    p.top_p = 0.98f;
    draw_counts(&p, logits, N, counts);
    int in = 0;
    for (int i = 0; i < 300; i++) in += counts[chosen[i]];
    ck_assert_int_eq(in, N_DRAWS);
    free(logits);
    free(counts);
}
END_TEST

START_TEST(test_min_p)
{
    double probs[5] = {0.1, 0.5, 0.15, 0.25, 0.0001};
    float logits[5];
    logits_of(probs, 5, logits);
    int counts[5];
    kinfer_sampler_params p = plain(1.0f, 8);

    p.min_p = 0.25f;   /* p >= 0.125: keeps {1, 2, 3} */
    draw_counts(&p, logits, 5, counts);
    double want[5] = {0, 0.5 / 0.9, 0.15 / 0.9, 0.25 / 0.9, 0};
    check_freqs(counts, want, 5);

    p.min_p = 0.6f;    /* p >= 0.3: only the top */
    draw_counts(&p, logits, 5, counts);
    double want1[5] = {0, 1.0, 0, 0, 0};
    check_freqs(counts, want1, 5);

    /* min-p after top-k: top_k 2 then min_p 0.25 keeps {1, 3} */
    p.top_k = 2;
    p.min_p = 0.25f;
    draw_counts(&p, logits, 5, counts);
    double want2[5] = {0, 0.5 / 0.75, 0, 0.25 / 0.75, 0};
    check_freqs(counts, want2, 5);
}
END_TEST

START_TEST(test_filters_before_temperature)
{
    /* top-p is judged on the untempered probabilities: with T = 10 the kept
     * set is still {1, 3}, drawn from a flattened softmax of those two */
    double probs[4] = {0.15, 0.5, 0.1, 0.25};
    float logits[4];
    logits_of(probs, 4, logits);
    int counts[4];
    kinfer_sampler_params p = plain(10.0f, 21);
    p.top_p = 0.7f;
    draw_counts(&p, logits, 4, counts);
    double a = pow(0.5, 0.1), b = pow(0.25, 0.1);
    double want[4] = {0, a / (a + b), 0, b / (a + b)};
    check_freqs(counts, want, 4);
}
END_TEST

/* --------------------------------------------------------------- seeds */

static void draw_seq(uint64_t seed, kinfer_token *out, int n)
{
    enum { V = 1000 };
    static float logits[V];
    for (int i = 0; i < V; i++) logits[i] = (float)((i * 37) % 101) / 25.0f;
    kinfer_sampler_params p = kinfer_sampler_default_params();
    p.seed = seed;
    p.top_k = 100;
    kinfer_sampler *s = new_sampler(&p);
    for (int i = 0; i < n; i++) out[i] = kinfer_sampler_sample(s, logits, V);
    kinfer_sampler_free(s);
}

START_TEST(test_seed_reproducible)
{
    kinfer_token a[200], b[200], c[200];
    draw_seq(1234, a, 200);
    draw_seq(1234, b, 200);
    draw_seq(1235, c, 200);
    ck_assert_mem_eq(a, b, sizeof a);
    int differ = 0;
    for (int i = 0; i < 200; i++) differ += a[i] != c[i];
    ck_assert_int_gt(differ, 50);

    /* reset reseeds: the sequence starts over */
    enum { V = 50 };
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = (float)(i % 7);
    kinfer_sampler_params p = plain(1.0f, 77);
    kinfer_sampler *s = new_sampler(&p);
    kinfer_token x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = kinfer_sampler_sample(s, logits, V);
    kinfer_sampler_reset(s);
    for (int i = 0; i < 64; i++) y[i] = kinfer_sampler_sample(s, logits, V);
    ck_assert_mem_eq(x, y, sizeof x);
    kinfer_sampler_free(s);
}
END_TEST

/* Greedy and top-k read the logits directly when no penalty or grammar
 * applies; a penalty on a token outside the vocabulary changes nothing but
 * takes the chain over the whole candidate array: both must give the same
 * tokens and draws (ties, NaN, -inf included). */
START_TEST(test_direct_paths_match_chain)
{
    enum { V = 3000, DRAWS = 300 };
    float *logits = malloc(V * sizeof *logits);
    ck_assert_ptr_nonnull(logits);
    srand(99);
    const int32_t ks[] = {1, 2, 7, 40, 1000, V - 1, V, 0};
    for (int trial = 0; trial < 8; trial++) {
        for (int i = 0; i < V; i++) logits[i] = (float)(rand() % 64) * 0.25f - 8.0f; /* many ties */
        for (int i = 0; i < 20; i++) logits[rand() % V] = (i & 1) ? NAN : -INFINITY;
        if (trial == 7) logits[0] = NAN;
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            kinfer_sampler_params p = kinfer_sampler_default_params();
            p.top_k = ks[ki];
            p.temperature = ki == 0 ? 0.0f : 0.9f;
            p.top_p = trial & 1 ? 1.0f : 0.9f;
            p.min_p = trial & 2 ? 0.0f : 0.05f;
            p.seed = 1000 + (uint64_t)trial;
            kinfer_sampler *direct = new_sampler(&p);
            p.repeat_penalty = 1.3f;
            kinfer_sampler *chain = new_sampler(&p);
            kinfer_sampler_accept(chain, V + 5);
            for (int d = 0; d < DRAWS; d++) {
                kinfer_token a = kinfer_sampler_sample(direct, logits, V);
                kinfer_token b = kinfer_sampler_sample(chain, logits, V);
                ck_assert_msg(a == b && a >= 0, "trial %d top_k %d draw %d: %d vs %d", trial, ks[ki], d, a, b);
            }
            kinfer_sampler_free(direct);
            kinfer_sampler_free(chain);
        }
    }
    free(logits);
}
END_TEST

/* --------------------------------------------------------- bad arguments */

START_TEST(test_bad_args)
{
    kinfer_sampler *s = (kinfer_sampler *)1;
    kinfer_sampler_params p;

    ck_assert_int_eq(kinfer_sampler_new(NULL, NULL), KINFER_E_INVALID_ARG);

    p = kinfer_sampler_default_params();
    p.top_k = -1;
    ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_E_INVALID_ARG);
    ck_assert_ptr_null(s);

    p = kinfer_sampler_default_params();
    p.top_p = 1.5f;
    ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_E_INVALID_ARG);
    p.top_p = NAN;
    ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_E_INVALID_ARG);

    p = kinfer_sampler_default_params();
    p.min_p = -0.1f;
    ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_E_INVALID_ARG);

    p = kinfer_sampler_default_params();
    p.temperature = NAN;
    ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_E_INVALID_ARG);

    p = kinfer_sampler_default_params();
    p.repeat_penalty = 0.0f;
    ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_E_INVALID_ARG);

    p = kinfer_sampler_default_params();
    p.penalty_last_n = -1;
    ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_E_INVALID_ARG);

    p = kinfer_sampler_default_params();
    p.frequency_penalty = INFINITY;
    ck_assert_int_eq(kinfer_sampler_new(&p, &s), KINFER_E_INVALID_ARG);

    s = new_sampler(NULL);
    float logits[2] = {0.0f, 1.0f};
    ck_assert_int_eq(kinfer_sampler_sample(s, logits, 0), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_sampler_sample(s, logits, -5), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_sampler_sample(s, NULL, 2), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_sampler_sample(NULL, logits, 2), KINFER_E_INVALID_ARG);
    kinfer_sampler_accept(s, -3);   /* ignored */
    kinfer_sampler_free(s);

    /* NULL handles are accepted where the API says so */
    kinfer_sampler_free(NULL);
    kinfer_sampler_accept(NULL, 1);
    kinfer_sampler_reset(NULL);
}
END_TEST

/* -log p: logits {0, log 3, -inf}: p = 1/4, 3/4, 0 */
START_TEST(test_token_nll)
{
    const float lg[3] = {0.0f, logf(3.0f), -INFINITY};
    ck_assert_double_eq_tol(kinfer_token_nll(lg, 3, 0), log(4.0), 1e-6);
    ck_assert_double_eq_tol(kinfer_token_nll(lg, 3, 1), -log(0.75), 1e-6);
    ck_assert(isinf(kinfer_token_nll(lg, 3, 2)));
    ck_assert(isnan(kinfer_token_nll(lg, 3, 3)));
    ck_assert(isnan(kinfer_token_nll(lg, 3, -1)));
}
END_TEST

START_TEST(test_all_minus_infinity)
{
    float logits[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    kinfer_sampler *s = new_sampler(NULL);
    kinfer_token t = kinfer_sampler_sample(s, logits, 4);
    ck_assert_int_ge(t, 0);
    ck_assert_int_lt(t, 4);
    /* one finite logit among -inf ones is the only possible draw */
    logits[2] = -100.0f;
    for (int i = 0; i < 100; i++) ck_assert_int_eq(kinfer_sampler_sample(s, logits, 4), 2);
    kinfer_sampler_free(s);

    /* a +inf logit takes all the mass, with or without the filters */
    float inf[5] = {1.0f, 2.0f, 0.0f, INFINITY, 3.0f};
    kinfer_sampler_params p = plain(1.0f, 1);
    s = new_sampler(&p);
    for (int i = 0; i < 100; i++) ck_assert_int_eq(kinfer_sampler_sample(s, inf, 5), 3);
    kinfer_sampler_free(s);
    s = new_sampler(NULL);
    for (int i = 0; i < 100; i++) ck_assert_int_eq(kinfer_sampler_sample(s, inf, 5), 3);
    kinfer_sampler_free(s);
}
END_TEST

/* ----------------------------------------------------- on a real model */

START_TEST(test_model_greedy_paris)
{
    /* SmolLM2 continues "The capital of France is" with " Paris" (id 7042,
     * llama.cpp's argmax); a seeded draw with top-k 5 stays in the top 5. */
    const char *path = test_model_path(TEST_MODEL_SMOLLM2);
    if (!path) return;
    kinfer_model *model = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &model), KINFER_OK);
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    kinfer_context *ctx = NULL;
    ck_assert_int_eq(kinfer_context_new(model, &cp, &ctx), KINFER_OK);
    const char *prompt = "The capital of France is";
    kinfer_token toks[16];
    int64_t n = kinfer_tokenize(model, prompt, strlen(prompt), toks, 16, true, false, NULL);
    ck_assert_int_gt(n, 0);
    kinfer_pos pos[16];
    for (int i = 0; i < n; i++) pos[i] = i;
    kinfer_batch b = {.n_tokens = (int32_t)n, .token = toks, .pos = pos};
    ck_assert_int_eq(kinfer_decode(ctx, &b), KINFER_OK);
    const float *logits = kinfer_get_logits(ctx, (int32_t)n - 1);
    ck_assert_ptr_nonnull(logits);
    int32_t n_vocab = kinfer_model_n_vocab(model);

    kinfer_sampler_params p = plain(0.0f, 0);
    kinfer_sampler *s = new_sampler(&p);
    ck_assert_int_eq(kinfer_sampler_sample(s, logits, n_vocab), 7042);
    kinfer_sampler_free(s);

    /* the 5 best ids, by brute force */
    int32_t top[5];
    for (int k = 0; k < 5; k++) {
        int32_t best = -1;
        for (int32_t i = 0; i < n_vocab; i++) {
            int taken = 0;
            for (int j = 0; j < k; j++) taken |= top[j] == i;
            if (!taken && (best < 0 || logits[i] > logits[best])) best = i;
        }
        top[k] = best;
    }
    ck_assert_int_eq(top[0], 7042);
    p = plain(1.0f, 3);
    p.top_k = 5;
    s = new_sampler(&p);
    for (int d = 0; d < 500; d++) {
        kinfer_token t = kinfer_sampler_sample(s, logits, n_vocab);
        int ok = 0;
        for (int j = 0; j < 5; j++) ok |= t == top[j];
        ck_assert_msg(ok, "token %d is not among the 5 best", t);
    }
    kinfer_sampler_free(s);
    kinfer_context_free(ctx);
    kinfer_model_free(model);
}
END_TEST

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_greedy_is_argmax);
    tcase_add_test(tc, test_top_k_1_is_argmax);
    tcase_add_test(tc, test_repeat_penalty_positive);
    tcase_add_test(tc, test_repeat_penalty_negative);
    tcase_add_test(tc, test_frequency_presence);
    tcase_add_test(tc, test_penalty_window);
    tcase_add_test(tc, test_penalties_in_distribution);
    tcase_add_test(tc, test_plain_softmax);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p);
    tcase_add_test(tc, test_top_p_large_vocab);
    tcase_add_test(tc, test_min_p);
    tcase_add_test(tc, test_filters_before_temperature);
    tcase_add_test(tc, test_seed_reproducible);
    tcase_add_test(tc, test_direct_paths_match_chain);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_all_minus_infinity);
    tcase_add_test(tc, test_token_nll);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("model");
    tcase_set_timeout(tm, 120);
    tcase_add_test(tm, test_model_greedy_paris);
    suite_add_tcase(s, tm);
    return s;
}

int main(void) { return test_run_suite(sampler_suite()); }
