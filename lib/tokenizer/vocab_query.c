/*
 * vocab_query.c — the per-token queries of a built vocabulary, and the
 * public API over them (kinfer_vocab_*, kinfer_token_*).  Building is in
 * vocab.c.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"


const struct kinfer_vocab *vocab_of(const kinfer_model *model)
{
    return model ? model->vocab : NULL;
}

int32_t vocab_n_tokens(const struct kinfer_vocab *v)
{
    return v ? v->n_tokens : 0;
}

uint32_t vocab_token_attr(const struct kinfer_vocab *v, int32_t id)
{
    return v && id >= 0 && id < v->n_tokens ? v->attr[id] : TOK_ATTR_UNDEFINED;
}

int32_t kinfer_vocab_n_tokens(const kinfer_model *model)
{
    return vocab_n_tokens(vocab_of(model));
}

const char *kinfer_vocab_type(const kinfer_model *model)
{
    const struct kinfer_vocab *v = vocab_of(model);
    if (!v)
        return "none";
    return v->type == VOCAB_SPM ? "spm" : "bpe";
}

bool kinfer_vocab_add_bos(const kinfer_model *model)
{
    const struct kinfer_vocab *v = vocab_of(model);
    return v && v->add_bos;
}

bool kinfer_vocab_add_eos(const kinfer_model *model)
{
    const struct kinfer_vocab *v = vocab_of(model);
    return v && v->add_eos;
}

#define TOKEN_GETTER(name, field)                                  \
    kinfer_token kinfer_token_##name(const kinfer_model *model)    \
    {                                                              \
        const struct kinfer_vocab *v = vocab_of(model);         \
        return v ? v->field : KINFER_TOKEN_NULL;                   \
    }

TOKEN_GETTER(bos, bos)
TOKEN_GETTER(eos, eos)
TOKEN_GETTER(eot, eot)
TOKEN_GETTER(eom, eom)
TOKEN_GETTER(unk, unk)
TOKEN_GETTER(sep, sep)
TOKEN_GETTER(pad, pad)
TOKEN_GETTER(nl, nl)
TOKEN_GETTER(fim_pre, fim_pre)
TOKEN_GETTER(fim_suf, fim_suf)
TOKEN_GETTER(fim_mid, fim_mid)
TOKEN_GETTER(fim_pad, fim_pad)
TOKEN_GETTER(fim_rep, fim_rep)
TOKEN_GETTER(fim_sep, fim_sep)

bool kinfer_token_is_eog(const kinfer_model *model, kinfer_token token)
{
    const struct kinfer_vocab *v = vocab_of(model);
    if (!v || token < 0)
        return false;
    return bsearch(&token, v->eog, (size_t)v->n_eog, sizeof *v->eog, vocab_cmp_id) != NULL;
}

bool kinfer_token_is_control(const kinfer_model *model, kinfer_token token)
{
    return (vocab_token_attr(vocab_of(model), token) & TOK_ATTR_CONTROL) != 0;
}

const char *kinfer_token_text(const kinfer_model *model, kinfer_token token)
{
    const struct kinfer_vocab *v = vocab_of(model);
    if (!v || token < 0 || token >= v->n_tokens)
        return NULL;
    return vocab_text(v, token);
}

float kinfer_token_score(const kinfer_model *model, kinfer_token token)
{
    const struct kinfer_vocab *v = vocab_of(model);
    if (!v || token < 0 || token >= v->n_tokens)
        return 0.0f;
    return v->score[token];
}

uint32_t kinfer_token_attr(const kinfer_model *model, kinfer_token token)
{
    return vocab_token_attr(vocab_of(model), token);
}
