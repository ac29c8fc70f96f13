/*
 * vocab_query.c — the per-token queries of a built vocabulary.  Building is
 * in vocab.c; the public calls on a model handle over these are in
 * model/tokens.c.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "tokenizer/tokenizer.h"

int32_t vocab_n_tokens(const struct kinfer_vocab *v)
{
    return v ? v->n_tokens : 0;
}

uint32_t vocab_token_attr(const struct kinfer_vocab *v, int32_t id)
{
    return v && id >= 0 && id < v->n_tokens ? v->attr[id] : TOK_ATTR_UNDEFINED;
}

bool vocab_is_eog(const struct kinfer_vocab *v, int32_t token)
{
    if (!v || token < 0)
        return false;
    return bsearch(&token, v->eog, (size_t)v->n_eog, sizeof *v->eog, vocab_cmp_id) != NULL;
}
