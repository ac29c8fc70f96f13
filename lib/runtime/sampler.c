/*
 * sampler.c — the sampler chain: penalties -> top-k -> top-p -> min-p ->
 * temperature -> seeded draw, or greedy (argmax after penalties) when the
 * temperature is <= 0.
 *
 * The filters follow llama.cpp's semantics (src/llama-sampling.cpp):
 *  - repeat penalty: a token seen in the last penalty_last_n accepted tokens
 *    has a positive logit divided by the penalty, a non-positive one
 *    multiplied by it; then count*frequency + (count > 0)*presence is
 *    subtracted.
 *  - top-k keeps the k largest logits.
 *  - top-p keeps the shortest prefix of the sorted candidates whose
 *    probabilities (softmax of the current logits, before temperature) sum
 *    to at least p.
 *  - min-p keeps the candidates whose probability is at least p times the
 *    largest one, i.e. logit >= max_logit + log(p).
 *  - temperature divides the logits, then one draw from their softmax.
 *
 * A grammar (grammar.c), when attached, filters first.  When top-k (or the
 * greedy argmax) will keep only k candidates, only the best candidates are
 * checked one by one until k fit, which gives the same result as masking
 * the whole vocabulary at a fraction of the cost; otherwise, or when the
 * best ones do not fit, the whole vocabulary is masked.
 *
 * Without penalties or a grammar, greedy is an argmax over the logits and
 * top-k one pass over them with a heap of k: neither builds the candidate
 * array of the whole vocabulary (the same token, the same draws).
 *
 * The random numbers come from xoshiro256** seeded through splitmix64, kept
 * in the sampler, so a seed gives the same tokens on every platform.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "runtime/grammar.h"

typedef struct candidate {
    kinfer_token id;
    float logit;
    float p;
} candidate;

struct kinfer_sampler {
    kinfer_sampler_params params;
    uint64_t rng[4];          /* xoshiro256** state */

    kinfer_token *history;    /* ring of the last penalty_last_n accepted tokens */
    int32_t history_len;      /* tokens in the ring, <= penalty_last_n */
    int32_t history_head;     /* slot the next accepted token goes to */
    kinfer_token *history_sorted; /* (penalty_last_n) scratch for counting */

    candidate *cand;          /* (cand_cap) scratch, one per vocabulary entry */
    int32_t cand_cap;

    kinfer_grammar *grammar;  /* owned; NULL = unconstrained */
    uint8_t *grammar_mask;    /* (grammar_mask_cap) scratch for grammar_mask */
    int32_t grammar_mask_cap;
};

/* ------------------------------------------------------------------ RNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void rng_seed(kinfer_sampler *s, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(kinfer_sampler *s)
{
    return (double)(xoshiro_next(s->rng) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------ lifecycle */

kinfer_sampler_params kinfer_sampler_default_params(void)
{
    kinfer_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = 0,
    };
    return p;
}

static int params_valid(const kinfer_sampler_params *p)
{
    if (isnan(p->temperature) || p->top_k < 0) return 0;
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f)) return 0;  /* also rejects NaN */
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return 0;
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty)) return 0;
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty)) return 0;
    if (p->penalty_last_n < 0) return 0;
    return 1;
}

kinfer_status kinfer_sampler_new(const kinfer_sampler_params *params, kinfer_sampler **out)
{
    if (!out) return KINFER_E_INVALID_ARG;
    *out = NULL;
    kinfer_sampler_params p = params ? *params : kinfer_sampler_default_params();
    if (!params_valid(&p)) return KINFER_E_INVALID_ARG;

    kinfer_sampler *s = calloc(1, sizeof *s);
    if (!s) return KINFER_E_NOMEM;
    s->params = p;
    if (p.penalty_last_n > 0) {
        s->history = malloc((size_t)p.penalty_last_n * sizeof *s->history);
        s->history_sorted = malloc((size_t)p.penalty_last_n * sizeof *s->history_sorted);
        if (!s->history || !s->history_sorted) {
            kinfer_sampler_free(s);
            return KINFER_E_NOMEM;
        }
    }
    rng_seed(s, p.seed);
    *out = s;
    return KINFER_OK;
}

void kinfer_sampler_free(kinfer_sampler *sampler)
{
    if (!sampler) return;
    free(sampler->history);
    free(sampler->history_sorted);
    free(sampler->cand);
    kinfer_grammar_free(sampler->grammar);
    free(sampler->grammar_mask);
    free(sampler);
}

void kinfer_sampler_accept(kinfer_sampler *sampler, kinfer_token token)
{
    if (!sampler || sampler->params.penalty_last_n == 0 || token < 0) return;
    int32_t cap = sampler->params.penalty_last_n;
    sampler->history[sampler->history_head] = token;
    sampler->history_head = (sampler->history_head + 1) % cap;
    if (sampler->history_len < cap) sampler->history_len++;
}

void kinfer_sampler_reset(kinfer_sampler *sampler)
{
    if (!sampler) return;
    sampler->history_len = 0;
    sampler->history_head = 0;
    rng_seed(sampler, sampler->params.seed);
    if (sampler->grammar) kinfer_grammar_reset(sampler->grammar);
}

kinfer_status kinfer_sampler_set_grammar(kinfer_sampler *sampler, kinfer_grammar *grammar)
{
    if (!sampler) return KINFER_E_INVALID_ARG;
    if (sampler->grammar != grammar) kinfer_grammar_free(sampler->grammar);
    sampler->grammar = grammar;
    return KINFER_OK;
}

/* ------------------------------------------------------------- the chain */

static int cmp_token(const void *a, const void *b)
{
    kinfer_token x = *(const kinfer_token *)a, y = *(const kinfer_token *)b;
    return (x > y) - (x < y);
}

/* Penalties over the vocabulary-ordered candidates (cand[i].id == i). */
static void apply_penalties(kinfer_sampler *s, candidate *cand, int32_t n)
{
    const kinfer_sampler_params *p = &s->params;
    if (s->history_len == 0) return;
    if (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f)
        return;
    /* Count each distinct token of the history: sort a copy, walk the runs. */
    int32_t m = s->history_len;
    memcpy(s->history_sorted, s->history, (size_t)m * sizeof *s->history);
    qsort(s->history_sorted, (size_t)m, sizeof *s->history_sorted, cmp_token);
    for (int32_t i = 0; i < m;) {
        kinfer_token t = s->history_sorted[i];
        int32_t j = i;
        while (j < m && s->history_sorted[j] == t) j++;
        int32_t count = j - i;
        i = j;
        if (t >= n) continue;   /* a token outside this vocabulary */
        float *l = &cand[t].logit;
        if (*l <= 0.0f)
            *l *= p->repeat_penalty;
        else
            *l /= p->repeat_penalty;
        *l -= (float)count * p->frequency_penalty + p->presence_penalty;
    }
}

/* Descending logit, ties by ascending id: a total order, so the result does
 * not depend on the sort's stability. */
static int cand_before(const candidate *a, const candidate *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (cand_before(x, y)) return -1;
    if (cand_before(y, x)) return 1;
    return 0;
}

static void cand_swap(candidate *a, candidate *b)
{
    candidate t = *a;
    *a = *b;
    *b = t;
}

/* Move the k best candidates to the front (in no particular order):
 * quickselect with a median-of-three pivot. */
static void select_top(candidate *c, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (cand_before(&c[mid], &c[lo])) cand_swap(&c[mid], &c[lo]);
        if (cand_before(&c[hi], &c[lo])) cand_swap(&c[hi], &c[lo]);
        if (cand_before(&c[hi], &c[mid])) cand_swap(&c[hi], &c[mid]);
        candidate pivot = c[mid];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (cand_before(&c[i], &pivot)) i++;
            while (cand_before(&pivot, &c[j])) j--;
            if (i <= j) {
                cand_swap(&c[i], &c[j]);
                i++;
                j--;
            }
        }
        /* now c[lo..j] are before-or-equal pivot, c[i..hi] after-or-equal */
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

/* Sort the k best candidates to the front, best first. */
static void sort_top(candidate *c, int32_t n, int32_t k)
{
    if (k < n) select_top(c, n, k);
    qsort(c, (size_t)k, sizeof *c, cmp_cand);
}

/* p = softmax of the logits of c[0..n); returns false when every logit is
 * -inf (nothing to normalize). */
static int softmax(candidate *c, int32_t n)
{
    float max_l = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit > max_l) max_l = c[i].logit;
    if (max_l == -INFINITY) return 0;
    if (max_l == INFINITY) {
        /* the +inf logits share all the mass */
        int32_t n_inf = 0;
        for (int32_t i = 0; i < n; i++) n_inf += c[i].logit == INFINITY;
        for (int32_t i = 0; i < n; i++) c[i].p = c[i].logit == INFINITY ? 1.0f / (float)n_inf : 0.0f;
        return 1;
    }
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = expf(c[i].logit - max_l);
        sum += c[i].p;
    }
    for (int32_t i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
    return 1;
}

/* Top-p over c[0..n), sorted or not; returns the new size, c sorted. */
static int32_t apply_top_p(candidate *c, int32_t n, int sorted, float top_p)
{
    if (!softmax(c, n)) return n;
    /* Most of the mass is usually in a few hundred candidates: sort those
     * first and the rest only when they are not enough. */
    int32_t k = sorted ? n : (n > 1024 ? 256 : n);
    if (!sorted) sort_top(c, n, k);
    double cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        if (i == k) {
            /* the front k are the k best, sorted; order the rest */
            qsort(c + k, (size_t)(n - k), sizeof *c, cmp_cand);
            k = n;
        }
        cum += c[i].p;
        if (cum >= top_p) return i + 1;
    }
    return n;
}

/* Min-p: keep logit >= max + log(p), preserving order.  Returns the new size. */
static int32_t apply_min_p(candidate *c, int32_t n, float min_p)
{
    float max_l = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit > max_l) max_l = c[i].logit;
    if (!isfinite(max_l)) return n;
    float min_l = max_l + logf(min_p);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit >= min_l) c[m++] = c[i];
    return m;   /* >= 1: the maximum always passes */
}

static kinfer_token sample_filtered(kinfer_sampler *sampler, candidate *c, int32_t n, int sorted);

/* Keep only the candidates the grammar allows.  need > 0: the chain keeps
 * only the need best anyway (top-k, or 1 for greedy), so check the best
 * ones in order first.  Returns the new count (*sorted set when the front
 * is sorted), or a negative status. */
static int32_t grammar_filter(kinfer_sampler *s, candidate *c, int32_t n, int32_t need, int *sorted)
{
    kinfer_grammar *g = s->grammar;
    int32_t kept = 0, scanned = 0;
    if (need > 0 && need < n) {
        int32_t m = need * 4 < 256 ? 256 : need * 4;
        if (m > n) m = n;
        sort_top(c, n, m);
        for (; scanned < m && kept < need; scanned++)
            if (grammar_allows(g, c[scanned].id)) c[kept++] = c[scanned];
        if (kept == need) {
            *sorted = 1;
            return need;
        }
    }
    /* The whole vocabulary: c[0, kept) are allowed, c[scanned, n) unchecked. */
    int32_t n_mask = n;
    for (int32_t i = 0; i < n; i++)
        if (c[i].id >= n_mask) n_mask = c[i].id + 1;
    if (s->grammar_mask_cap < n_mask) {
        uint8_t *m = realloc(s->grammar_mask, (size_t)n_mask);
        if (!m) return KINFER_E_NOMEM;
        s->grammar_mask = m;
        s->grammar_mask_cap = n_mask;
    }
    memset(s->grammar_mask, 0, (size_t)n_mask);
    kinfer_status st = grammar_mask(g, s->grammar_mask);
    if (st != KINFER_OK) return st;
    for (int32_t i = scanned; i < n; i++)
        if (s->grammar_mask[c[i].id]) c[kept++] = c[i];
    *sorted = 0;
    return kept;
}

/* The penalties change no logit: no history, or every penalty neutral. */
static int penalties_off(const kinfer_sampler *s)
{
    const kinfer_sampler_params *p = &s->params;
    return s->history_len == 0 ||
           (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f);
}

static float logit_at(const float *logits, int32_t i)
{
    return isnan(logits[i]) ? -INFINITY : logits[i];
}

/* Greedy straight from the logits: the first largest (NaN as -inf), the
 * candidate the full chain's argmax picks. */
static kinfer_token argmax_logits(const float *logits, int32_t n)
{
    int32_t best = 0;
    float bl = logit_at(logits, 0);
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > bl) {   /* false for NaN */
            bl = logits[i];
            best = i;
        }
    return best;
}

/* Restore the heap below i (the root is the worst kept candidate). */
static void heap_down(candidate *h, int32_t k, int32_t i)
{
    for (;;) {
        int32_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < k && cand_before(&h[w], &h[l])) w = l;
        if (r < k && cand_before(&h[w], &h[r])) w = r;
        if (w == i) return;
        cand_swap(&h[i], &h[w]);
        i = w;
    }
}

/* The k best candidates (0 < k < n) in c[0, k), best first, in one pass
 * over the logits with a heap of k: the same set and order as building
 * all n candidates and sort_top, without writing n of them. */
static void top_k_logits(candidate *c, const float *logits, int32_t n, int32_t k)
{
    for (int32_t i = 0; i < k; i++) c[i] = (candidate){.id = i, .logit = logit_at(logits, i)};
    for (int32_t i = k / 2 - 1; i >= 0; i--) heap_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        /* ids grow: a later token beats the worst kept one only by a larger logit */
        const float l = logit_at(logits, i);
        if (l > c[0].logit) {
            c[0] = (candidate){.id = i, .logit = l};
            heap_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cmp_cand);
}

kinfer_token kinfer_sampler_sample(kinfer_sampler *sampler, const float *logits, int32_t n_vocab)
{
    if (!sampler || !logits || n_vocab <= 0) return KINFER_E_INVALID_ARG;
    const kinfer_sampler_params *p = &sampler->params;
    /* Without penalties or a grammar the chain's first steps read the
     * logits only: greedy and top-k skip the candidate array. */
    const int plain_logits = !sampler->grammar && penalties_off(sampler);
    if (plain_logits && p->temperature <= 0.0f) return argmax_logits(logits, n_vocab);

    if (n_vocab > sampler->cand_cap) {
        candidate *c = realloc(sampler->cand, (size_t)n_vocab * sizeof *c);
        if (!c) return KINFER_E_NOMEM;
        sampler->cand = c;
        sampler->cand_cap = n_vocab;
    }
    candidate *c = sampler->cand;
    if (plain_logits && p->top_k > 0 && p->top_k < n_vocab) {
        top_k_logits(c, logits, n_vocab, p->top_k);
        return sample_filtered(sampler, c, p->top_k, 1);
    }
    for (int32_t i = 0; i < n_vocab; i++) {
        c[i].id = i;
        c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
        c[i].p = 0.0f;
    }
    int32_t n = n_vocab;

    apply_penalties(sampler, c, n);

    int sorted = 0;
    if (sampler->grammar) {
        int32_t need = p->temperature <= 0.0f ? 1 : p->top_k;
        n = grammar_filter(sampler, c, n, need, &sorted);
        if (n < 0) return n;
        if (n == 0) return KINFER_E_UNSUPPORTED;   /* no token fits the grammar */
    }
    kinfer_token t = sample_filtered(sampler, c, n, sorted);
    if (sampler->grammar && t >= 0 && kinfer_grammar_accept(sampler->grammar, t) != KINFER_OK)
        return KINFER_E_UNSUPPORTED;
    return t;
}

/* The chain after penalties (and the grammar) over c[0, n). */
static kinfer_token sample_filtered(kinfer_sampler *sampler, candidate *c, int32_t n, int sorted)
{
    const kinfer_sampler_params *p = &sampler->params;
    if (p->temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (cand_before(&c[i], &c[best])) best = i;
        return c[best].id;
    }

    if (p->top_k > 0 && p->top_k < n) {
        sort_top(c, n, p->top_k);
        n = p->top_k;
        sorted = 1;
    }
    if (p->top_p < 1.0f) {
        n = apply_top_p(c, n, sorted, p->top_p);
        sorted = 1;
    }
    if (p->min_p > 0.0f) n = apply_min_p(c, n, p->min_p);

    for (int32_t i = 0; i < n; i++) c[i].logit /= p->temperature;
    if (!softmax(c, n)) return c[0].id;   /* every logit -inf: any is as good */

    /* One draw: the first candidate whose cumulative probability passes u.
     * Rounding can leave the total a hair under 1; the last candidate with
     * a nonzero probability takes that remainder. */
    double u = rng_uniform(sampler), cum = 0.0;
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++) {
        if (c[i].p <= 0.0f) continue;
        last = i;
        cum += c[i].p;
        if (u < cum) return c[i].id;
    }
    return c[last].id;
}

double kinfer_token_nll(const float *logits, int32_t n_vocab, kinfer_token target)
{
    if (!logits || target < 0 || target >= n_vocab) return NAN;
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)(logits[i] - max));
    return -((double)(logits[target] - max) - log(sum));
}
