/* gen.c — the shared generate loop's pieces (see gen.h). */
#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

gen_params gen_default_params(void)
{
    gen_params p;
    memset(&p, 0, sizeof p);
    p.sampling = kinfer_sampler_default_params();
    p.n_predict = -1;
    return p;
}

uint64_t gen_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

kinfer_status gen_seq_init(gen_seq *g, const kinfer_model *model, kinfer_seq_id seq,
                           const gen_params *params)
{
    memset(g, 0, sizeof *g);
    g->model = model;
    g->seq = seq;
    g->n_predict = params->n_predict;
    g->ignore_eos = params->ignore_eos;
    g->n_vocab = kinfer_model_n_vocab(model);
    g->stop.which = -1;
    kinfer_status st = kinfer_sampler_new(&params->sampling, &g->sampler);
    if (st != KINFER_OK) return st;
    st = kinfer_detok_new(model, false, &g->detok);
    if (st != KINFER_OK) return st;
    if (!stop_init(&g->stop, params->stop, params->n_stop)) return KINFER_E_NOMEM;
    if (params->grammar) {
        kinfer_grammar *grammar = NULL;
        kinfer_error error = {0};
        st = kinfer_grammar_new(model, params->grammar, NULL, &grammar, &error);
        if (st != KINFER_OK) {
            snprintf(g->error, sizeof g->error, "grammar: %s", error.message);
            return st;
        }
        st = kinfer_sampler_set_grammar(g->sampler, grammar);   /* the sampler owns it now */
        if (st != KINFER_OK) return st;
        g->grammar = grammar;
    }
    return KINFER_OK;
}

void gen_seq_free(gen_seq *g)
{
    kinfer_sampler_free(g->sampler);
    kinfer_detok_free(g->detok);
    stop_free(&g->stop);
    memset(g, 0, sizeof *g);
}

kinfer_token *gen_tokenize(const kinfer_model *model, const char *text, size_t len,
                           bool add_special, bool parse_special, int32_t *n, kinfer_error *error)
{
    int64_t cap = (int64_t)len + 8;
    kinfer_token *toks = malloc((size_t)cap * sizeof *toks);
    if (!toks) goto nomem;
    int64_t got = kinfer_tokenize(model, text, len, toks, cap, add_special, parse_special, error);
    if (got < 0) {
        cap = -got;
        kinfer_token *bigger = realloc(toks, (size_t)cap * sizeof *toks);
        if (!bigger) goto nomem;
        toks = bigger;
        got = kinfer_tokenize(model, text, len, toks, cap, add_special, parse_special, error);
    }
    if (got == 0 && error && error->status != KINFER_OK) {
        free(toks);
        return NULL;
    }
    if (got < 0 || got > INT32_MAX) {
        free(toks);
        if (error) {
            error->status = KINFER_E_INVALID_ARG;
            strcpy(error->message, "text too long");
        }
        return NULL;
    }
    *n = (int32_t)got;
    return toks;
nomem:
    free(toks);
    if (error) {
        error->status = KINFER_E_NOMEM;
        strcpy(error->message, "out of memory");
    }
    return NULL;
}

void gen_seq_accept_prompt(gen_seq *g, const kinfer_token *tokens, int32_t n)
{
    for (int32_t i = 0; i < n; i++) kinfer_sampler_accept(g->sampler, tokens[i]);
}

bool gen_context_shift(kinfer_context *ctx, gen_seq *g, kinfer_status *st)
{
    int32_t n_left = g->n_past - g->n_keep;
    int32_t n_discard = n_left / 2;
    *st = KINFER_OK;
    if (n_discard <= 0) return false;
    *st = kinfer_kv_seq_rm(ctx, g->seq, g->n_keep, g->n_keep + n_discard);
    if (*st != KINFER_OK) return false;
    *st = kinfer_kv_seq_add(ctx, g->seq, g->n_keep + n_discard, g->n_past, -n_discard);
    if (*st != KINFER_OK) return false;
    g->n_past -= n_discard;
    g->n_shifts++;
    return true;
}

kinfer_status gen_eval(kinfer_context *ctx, gen_seq *g, const kinfer_token *tokens, int32_t n,
                       int32_t n_chunk, int32_t n_ctx, bool context_shift, bool is_prompt)
{
    /* like llama.cpp, shift when the cache would become full (>=), so
     * outputs with context shift match its */
    while (context_shift ? g->n_past + n >= n_ctx : g->n_past + n > n_ctx) {
        kinfer_status st;
        if (!context_shift || n > n_ctx - g->n_keep - 1 || !gen_context_shift(ctx, g, &st))
            return KINFER_E_CONTEXT_FULL;
    }
    if (n_chunk <= 0) n_chunk = n;
    kinfer_pos *pos = malloc((size_t)(n_chunk < n ? n_chunk : n) * sizeof *pos);
    kinfer_seq_id *seq = malloc((size_t)(n_chunk < n ? n_chunk : n) * sizeof *seq);
    if (!pos || !seq) {
        free(pos);
        free(seq);
        return KINFER_E_NOMEM;
    }
    kinfer_status st = KINFER_OK;
    for (int32_t done = 0; done < n && st == KINFER_OK;) {
        int32_t m = n - done < n_chunk ? n - done : n_chunk;
        for (int32_t i = 0; i < m; i++) {
            pos[i] = g->n_past + i;
            seq[i] = g->seq;
        }
        /* logits NULL: the chunk's last token only, which for the last
         * chunk is the one sampled from */
        kinfer_batch batch = {.n_tokens = m, .token = tokens + done, .pos = pos, .seq_id = seq};
        uint64_t t0 = gen_now_ns();
        st = kinfer_decode(ctx, &batch);
        uint64_t dt = gen_now_ns() - t0;
        if (st != KINFER_OK) break;
        g->n_past += m;
        done += m;
        g->logits_index = m - 1;
        if (is_prompt) {
            g->n_prompt_eval += m;
            g->t_prompt_ns += dt;
        } else {
            g->n_gen_eval += m;
            g->t_gen_ns += dt;
        }
    }
    free(pos);
    free(seq);
    return st;
}

/* Push one token (or flush, token < 0) through the detokenizer into the
 * stop matcher.  Returns true when a stop string was found. */
static bool detok_to_stop(gen_seq *g, kinfer_token token, textbuf *out)
{
    char small[256];
    char *buf = small;
    int32_t size = sizeof small;
    int32_t n;
    for (;;) {
        n = token < 0 ? kinfer_detok_flush(g->detok, buf, size)
                      : kinfer_detok_push(g->detok, token, buf, size);
        if (n >= 0) break;
        size = -n;
        if (buf != small) free(buf);
        buf = malloc((size_t)size);
        if (!buf) return false;   /* out of memory: the piece is lost, not the process */
    }
    bool stopped = stop_feed(&g->stop, buf, (size_t)n, out);
    if (buf != small) free(buf);
    return stopped;
}

gen_status gen_seq_next(gen_seq *g, const float *logits, kinfer_token *token, textbuf *out)
{
    if (g->n_predict >= 0 && g->n_generated >= g->n_predict) return GEN_LENGTH;
    uint64_t t0 = gen_now_ns();
    kinfer_token t = kinfer_sampler_sample(g->sampler, logits, g->n_vocab);
    g->t_sample_ns += gen_now_ns() - t0;
    if (t < 0) return GEN_ERROR;
    *token = t;
    kinfer_sampler_accept(g->sampler, t);
    if (!g->ignore_eos && kinfer_token_is_eog(g->model, t)) return GEN_EOG;
    g->n_generated++;
    if (detok_to_stop(g, t, out)) return GEN_STOP_STRING;
    if (g->n_predict >= 0 && g->n_generated >= g->n_predict) return GEN_LENGTH;
    return GEN_CONTINUE;
}

void gen_seq_finish(gen_seq *g, textbuf *out)
{
    if (!g->stop.stopped) detok_to_stop(g, -1, out);
    stop_flush(&g->stop, out);
}
