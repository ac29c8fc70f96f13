/* fim.c — the fill-in-the-middle prompt (see fim.h). */
#include "fim.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

/* A growing token array; ok turns false, and stays so, when memory runs out. */
typedef struct tokvec {
    kinfer_token *t;
    int32_t n, cap;
    bool ok;
} tokvec;

static void tv_insert(tokvec *v, int32_t at, const kinfer_token *t, int32_t n)
{
    if (!v->ok || n <= 0) return;
    if (v->n + n > v->cap) {
        int32_t cap = v->cap ? v->cap : 64;
        while (cap < v->n + n) cap *= 2;
        kinfer_token *grown = realloc(v->t, (size_t)cap * sizeof *grown);
        if (!grown) {
            v->ok = false;
            return;
        }
        v->t = grown;
        v->cap = cap;
    }
    memmove(v->t + at + n, v->t + at, (size_t)(v->n - at) * sizeof *v->t);
    memcpy(v->t + at, t, (size_t)n * sizeof *t);
    v->n += n;
}

static void tv_push(tokvec *v, kinfer_token t) { tv_insert(v, v->n, &t, 1); }

/* Append the tokens of text, no special tokens added; parse_special only
 * for the prompt, as llama-server does. */
static void tv_text(const kinfer_model *m, tokvec *v, const char *text, bool parse_special)
{
    int32_t k = 0;
    kinfer_token *t = gen_tokenize(m, text, strlen(text), false, parse_special, &k, NULL);
    if (!t) v->ok = false;
    tv_insert(v, v->n, t, k);
    free(t);
}

static int32_t clamp(int64_t v, int32_t hi) { return v < 0 ? 0 : v > hi ? hi : (int32_t)v; }

kinfer_token *fim_prompt(const kinfer_model *m, const fim_input *in, int32_t n_batch, int32_t n_ctx,
                         int32_t n_predict, int32_t *n, kinfer_error *error)
{
    kinfer_token pre = kinfer_token_fim_pre(m), suf = kinfer_token_fim_suf(m), mid = kinfer_token_fim_mid(m);
    if (pre == KINFER_TOKEN_NULL || suf == KINFER_TOKEN_NULL || mid == KINFER_TOKEN_NULL) {
        error->status = KINFER_E_UNSUPPORTED;
        snprintf(error->message, sizeof error->message,
                 "this model has no fill-in-the-middle tokens (FIM prefix/suffix/middle)");
        return NULL;
    }
    kinfer_token rep = kinfer_token_fim_rep(m), sep = kinfer_token_fim_sep(m);
    tokvec extra = {.ok = true}, head = {.ok = true}, tail = {.ok = true}, prompt = {.ok = true};
    if (rep != KINFER_TOKEN_NULL) {
        tv_push(&extra, rep);
        tv_text(m, &extra, "myproject\n", false);
    }
    for (int i = 0; i < in->n_extra; i++) {
        if (sep != KINFER_TOKEN_NULL) {
            char name[512];
            snprintf(name, sizeof name, "%s\n", in->extra[i].name ? in->extra[i].name : "tmp");
            tv_push(&extra, sep);
            tv_text(m, &extra, name, false);
        } else {
            tv_text(m, &extra, "\n\n--- snippet ---\n\n", false);
        }
        tv_text(m, &extra, in->extra[i].text, false);
    }
    if (sep != KINFER_TOKEN_NULL) {
        tv_push(&extra, sep);
        tv_text(m, &extra, "filename\n", false);
    }
    if (in->prompt) tv_text(m, &prompt, in->prompt, true);
    tv_text(m, &head, in->prefix ? in->prefix : "", false);
    tv_text(m, &tail, in->suffix ? in->suffix : "", false);

    int32_t n_head = clamp(3 * (n_batch / 4), head.n);
    int32_t n_tail = clamp(n_batch / 4 - (2 + (int64_t)prompt.n), tail.n);
    int32_t n_extra = clamp((int64_t)n_ctx - n_batch - 2 * (int64_t)n_predict, extra.n);

    tokvec out = {.ok = head.ok && tail.ok && extra.ok && prompt.ok};
    tv_insert(&out, 0, extra.t + extra.n - n_extra, n_extra);
    if (kinfer_vocab_add_bos(m)) tv_push(&out, kinfer_token_bos(m));
    tv_push(&out, pre);
    tv_insert(&out, out.n, head.t + head.n - n_head, n_head);
    tv_insert(&out, out.n, prompt.t, prompt.n);
    tv_push(&out, suf);
    tv_insert(&out, out.n, tail.t, n_tail);
    tv_push(&out, mid);
    free(extra.t), free(head.t), free(tail.t), free(prompt.t);
    if (!out.ok) {
        free(out.t);
        error->status = KINFER_E_NOMEM;
        snprintf(error->message, sizeof error->message, "out of memory building the FIM prompt");
        return NULL;
    }
    *n = out.n;
    return out.t;
}
