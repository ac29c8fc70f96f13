/*
 * tokens.c — the tokenizer's calls of the public API on a model handle:
 * they find the model's vocabulary (built at load, model.c) and hand over
 * to lib/tokenizer/, which knows nothing of model handles.
 */
#include <stdio.h>
#include <stdlib.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

static const struct kinfer_vocab *vocab_of(const kinfer_model *model)
{
    return model ? model->vocab : NULL;
}

/* ------------------------------------------------------------ vocabulary */

int32_t kinfer_vocab_n_tokens(const kinfer_model *model)
{
    return vocab_n_tokens(vocab_of(model));
}

const char *kinfer_vocab_type(const kinfer_model *model)
{
    const struct kinfer_vocab *v = vocab_of(model);
    if (!v)
        return "none";
    return v->type == VOCAB_SPM ? "spm" : v->type == VOCAB_WPM ? "wpm" : "bpe";
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
    return vocab_is_eog(vocab_of(model), token);
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

/* ----------------------------------------------------- text and tokens */

static void set_error(kinfer_error *e, kinfer_status st, const char *msg)
{
    if (!e)
        return;
    e->status = st;
    snprintf(e->message, sizeof e->message, "%s", msg);
}

int64_t kinfer_tokenize(const kinfer_model *model, const char *text, size_t text_len,
                        kinfer_token *tokens, int64_t n_tokens_max, bool add_special,
                        bool parse_special, kinfer_error *error)
{
    set_error(error, KINFER_OK, "");
    const struct kinfer_vocab *v = vocab_of(model);
    if (!model) {
        set_error(error, KINFER_E_INVALID_ARG, "model is NULL");
        return 0;
    }
    if (!v) {
        set_error(error, KINFER_E_UNSUPPORTED,
                  "the model has no tokenizer (no tokenizer.ggml.model in the file)");
        return 0;
    }
    if ((!text && text_len) || (!tokens && n_tokens_max > 0) || n_tokens_max < 0) {
        set_error(error, KINFER_E_INVALID_ARG, "NULL buffer with a non-zero size");
        return 0;
    }
    if (text_len > (size_t)UINT32_MAX / 3) {
        set_error(error, KINFER_E_INVALID_ARG, "text longer than 1.4 GB");
        return 0;
    }
    kinfer_status st;
    int64_t r = vocab_tokenize(v, text ? text : "", text_len, tokens, n_tokens_max, add_special,
                               parse_special, &st);
    if (st != KINFER_OK)
        set_error(error, st, "out of memory while tokenizing");
    return r;
}

int32_t kinfer_token_to_piece(const kinfer_model *model, kinfer_token token, char *buf,
                              int32_t size, bool special)
{
    if (!buf && size > 0)
        return 0;
    return vocab_token_to_piece(vocab_of(model), token, buf, size < 0 ? 0 : size, 0, special);
}

int64_t kinfer_detokenize(const kinfer_model *model, const kinfer_token *tokens, int64_t n_tokens,
                          char *buf, int64_t size, bool remove_special, bool unparse_special)
{
    if ((!tokens && n_tokens > 0) || (!buf && size > 0) || size < 0)
        return 0;
    return vocab_detokenize(vocab_of(model), tokens, n_tokens, buf, size, remove_special,
                            unparse_special);
}

kinfer_status kinfer_detok_new(const kinfer_model *model, bool special, kinfer_detok **out)
{
    if (!out)
        return KINFER_E_INVALID_ARG;
    *out = NULL;
    if (!model)
        return KINFER_E_INVALID_ARG;
    return vocab_detok_new(vocab_of(model), special, out);
}

/* ---------------------------------------------------------- chat templates */

const char *kinfer_model_chat_template(const kinfer_model *model)
{
    if (!model || !model->gguf)
        return NULL;
    const gguf_kv *kv = gguf_get(model->gguf, "tokenizer.chat_template");
    const char *tmpl = NULL;
    return kv && gguf_kv_str(kv, &tmpl) == KINFER_OK ? tmpl : NULL;
}

int64_t kinfer_chat_apply_template(const kinfer_model *model, const char *tmpl,
                                   const kinfer_chat_message *messages, size_t n_messages,
                                   bool add_generation_prompt, char *buf, int64_t size,
                                   kinfer_error *error)
{
    return chat_apply_template(tmpl ? tmpl : kinfer_model_chat_template(model), messages,
                               n_messages, add_generation_prompt, buf, size, error);
}
