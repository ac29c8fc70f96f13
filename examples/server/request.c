/* request.c — a completion request's lifetime (see request.h). */
#include "request.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

request *request_new(void)
{
    request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->gen = gen_default_params();
    r->cache_prompt = true;
    r->slot = -1;
    r->n_top_logprobs = -1;
    r->refs = 1;
    atomic_init(&r->cancelled, false);
    return r;
}

static void request_free(request *r)
{
    free(r->prompt);
    for (int32_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    free(r->bias_token);
    free(r->bias_value);
    free(r->logprobs);
    free(r->out_tokens);
    free(r->grammar);
    free(r->input_len);
    free(r->embd);
    textbuf_free(&r->text);
    textbuf_free(&r->all_text);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void request_release(request *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left == 0) request_free(r);
}

bool request_add_stop(request *r, const char *s)
{
    char **grown = realloc(r->stops, (size_t)(r->n_stops + 1) * sizeof *grown);
    if (!grown) return false;
    r->stops = grown;
    if (!(r->stops[r->n_stops] = strdup(s))) return false;
    r->n_stops++;
    r->gen.stop = (const char *const *)r->stops;
    r->gen.n_stop = r->n_stops;
    return true;
}

bool request_add_logprob(request *r, const float *logits, int32_t n_vocab, kinfer_token token)
{
    if (r->n_logprobs == r->cap_logprobs) {
        int32_t cap = r->cap_logprobs ? 2 * r->cap_logprobs : 64;
        token_logprob *grown = realloc(r->logprobs, (size_t)cap * sizeof *grown);
        if (!grown) return false;
        r->logprobs = grown;
        r->cap_logprobs = cap;
    }
    /* log-softmax: x - max - log(sum(exp(x - max))) */
    float max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)(logits[i] - max));
    const float log_z = max + (float)log(sum);
    token_logprob *e = &r->logprobs[r->n_logprobs++];
    e->token = token;
    e->logprob = logits[token] - log_z;
    /* the top alternatives by insertion into a short sorted list */
    int32_t k = r->n_top_logprobs < REQUEST_MAX_TOP_LOGPROBS ? r->n_top_logprobs : REQUEST_MAX_TOP_LOGPROBS;
    e->n_top = 0;
    for (int32_t i = 0; i < n_vocab && k > 0; i++) {
        if (e->n_top == k && logits[i] <= e->top_logprob[k - 1]) continue;
        int32_t j = e->n_top < k ? e->n_top++ : k - 1;
        while (j > 0 && e->top_logprob[j - 1] < logits[i]) {
            e->top[j] = e->top[j - 1];
            e->top_logprob[j] = e->top_logprob[j - 1];
            j--;
        }
        e->top[j] = i;
        e->top_logprob[j] = logits[i];
    }
    for (int32_t j = 0; j < e->n_top; j++) e->top_logprob[j] -= log_z;
    return true;
}

bool request_add_token(request *r, kinfer_token token)
{
    if (r->n_out_tokens == r->cap_out_tokens) {
        int32_t cap = r->cap_out_tokens ? 2 * r->cap_out_tokens : 64;
        kinfer_token *grown = realloc(r->out_tokens, (size_t)cap * sizeof *grown);
        if (!grown) return false;
        r->out_tokens = grown;
        r->cap_out_tokens = cap;
    }
    r->out_tokens[r->n_out_tokens++] = token;
    return true;
}
