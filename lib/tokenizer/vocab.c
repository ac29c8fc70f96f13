/*
 * vocab.c — the vocabulary, built from the GGUF metadata (token texts,
 * scores, types, BPE merges, special-token ids, the pre-tokenizer and its
 * flags) following llama.cpp's llama-vocab.cpp rule for rule.  vocab_build
 * runs the steps of BUILD_STEPS in order; each fills one part of the
 * kinfer_vocab.  The per-token queries are in vocab_query.c, tokenizing in
 * tokenize.c, detokenizing in detokenize.c; the public calls on a model
 * handle in model/tokens.c.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* What the build steps share: the file read, the vocabulary being filled,
 * where a failure's message goes, and the token arrays once checked. */
typedef struct vocab_builder {
    const gguf_file *gf;
    const char *model_name;   /* tokenizer.ggml.model */
    const char *pre_override; /* replaces tokenizer.ggml.pre when not NULL */
    struct kinfer_vocab *v;
    char *err;
    size_t err_size;

    const gguf_kv *kv_tokens; /* tokenizer.ggml.tokens */
    const gguf_kv *kv_scores; /* tokenizer.ggml.scores, or NULL */
    const gguf_kv *kv_types;  /* tokenizer.ggml.token_type, or NULL */
} vocab_builder;

__attribute__((format(printf, 3, 4)))
static kinfer_status fail(vocab_builder *b, kinfer_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->err_size, fmt, ap);
    va_end(ap);
    return st;
}

static const gguf_kv *find_kv(const gguf_file *gf, const char *key)
{
    int64_t i = gguf_find_key(gf, key);
    return i < 0 ? NULL : &gf->kv[i];
}

/* A bool key into *dst; left as it is when the key is absent. */
static kinfer_status read_bool(vocab_builder *b, const char *key, bool *dst)
{
    const gguf_kv *kv = find_kv(b->gf, key);
    if (!kv)
        return KINFER_OK;
    int value;
    if (gguf_kv_bool(kv, &value) != KINFER_OK)
        return fail(b, KINFER_E_FORMAT, "%s is not a bool", key);
    *dst = value != 0;
    return KINFER_OK;
}

/* Element i of a string array named key. */
static kinfer_status read_array_string(vocab_builder *b, const gguf_kv *kv, const char *key,
                                       int32_t i, const char **s, size_t *len)
{
    if (gguf_arr_str(kv, (uint64_t)i, s, len) != KINFER_OK)
        return fail(b, KINFER_E_FORMAT, "%s[%d] is unreadable", key, i);
    return KINFER_OK;
}

/* The smallest power of two holding n entries at most half full. */
static uint32_t table_size(uint64_t n)
{
    uint32_t size = 16;
    while (size < n * 2)
        size *= 2;
    return size;
}

static int32_t find_cstr(const struct kinfer_vocab *v, const char *s)
{
    return vocab_find(v, s, strlen(s));
}

/* The lowest id among the names that are tokens.  llama.cpp takes the first
 * it meets while iterating its hash map, an unspecified order; the lowest id
 * agrees with it on the test models (SmolLM2: <|endoftext|> before
 * <|im_end|>) and is at least deterministic. */
static int32_t find_first(const struct kinfer_vocab *v, const char *const *names)
{
    int32_t best = TOKEN_NULL;
    for (; *names; names++) {
        int32_t id = find_cstr(v, *names);
        if (id != TOKEN_NULL && (best == TOKEN_NULL || id < best))
            best = id;
    }
    return best;
}

static void mark_control(struct kinfer_vocab *v, int32_t id)
{
    if (id != TOKEN_NULL)
        v->attr[id] |= TOK_ATTR_CONTROL;
}

/* ------------------------------------------------- algorithm and its flags */

/* *name = tokenizer.ggml.model, or NULL when the file has no tokenizer. */
static kinfer_status read_model_name(vocab_builder *b, const char **name)
{
    *name = NULL;
    const gguf_kv *kv = find_kv(b->gf, "tokenizer.ggml.model");
    if (!kv)
        return KINFER_OK;
    if (kv->type != GGUF_STR)
        return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.model is not a string");
    if (strcmp(kv->str, "none") != 0 && strcmp(kv->str, "no_vocab") != 0)
        *name = kv->str;
    return KINFER_OK;
}

/* An empty vocabulary: every optional special token absent. */
static struct kinfer_vocab *vocab_new(void)
{
    struct kinfer_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->pad = v->sep = v->mask = v->eot = v->eom = v->nl = TOKEN_NULL;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = TOKEN_NULL;
    return v;
}

/* *pre = the pre-tokenizer's name (NULL: the default one). */
static kinfer_status read_pre_name(vocab_builder *b, const char **pre)
{
    *pre = NULL;
    const gguf_kv *kv = find_kv(b->gf, "tokenizer.ggml.pre");
    if (kv) {
        if (kv->type != GGUF_STR)
            return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.pre is not a string");
        *pre = kv->str;
    }
    if (b->pre_override)
        *pre = b->pre_override;
    return KINFER_OK;
}

static void use_spm_defaults(struct kinfer_vocab *v)
{
    v->type = VOCAB_SPM;
    v->bos = 1;
    v->eos = 2;
    v->unk = 0;
    v->add_space_prefix = true;
    v->add_bos = true;
    v->escape_whitespaces = true;
}

static kinfer_status use_bpe_defaults(vocab_builder *b, const char *pre)
{
    struct kinfer_vocab *v = b->v;
    v->type = VOCAB_BPE;
    v->bos = 11;
    v->eos = 11;
    v->unk = TOKEN_NULL;
    pretok_info info;
    char perr[200];
    kinfer_status st = pretok_new(pre, &v->pretok, &info, perr, sizeof perr);
    if (st != KINFER_OK)
        return fail(b, st, "%s", perr);
    v->ignore_merges = info.ignore_merges;
    v->clean_spaces = info.clean_spaces;
    v->add_bos = info.add_bos;
    if (pre && (strcmp(pre, "chatglm-bpe") == 0 || strcmp(pre, "glm4") == 0 ||
                strcmp(pre, "glm5") == 0))
        v->bos = TOKEN_NULL;
    return KINFER_OK;
}

/* WordPiece: [CLS] text [SEP] (ids 101 and 102 unless the file says),
 * BertNormalizer's lowercasing and accent stripping by default. */
static void use_wpm_defaults(struct kinfer_vocab *v)
{
    v->type = VOCAB_WPM;
    v->bos = 101;
    v->eos = TOKEN_NULL;
    v->unk = 100;
    v->sep = 102;
    v->pad = 0;
    v->mask = 103;
    v->add_bos = true;
    v->clean_spaces = true;
    v->lowercase = true;
    v->strip_accents = true;
}

/* SPM, BPE or WPM, with that algorithm's default ids and flags (and for BPE the
 * pre-tokenizer); the metadata read later may override them. */
static kinfer_status read_algorithm(vocab_builder *b)
{
    const char *pre;
    kinfer_status st = read_pre_name(b, &pre);
    if (st != KINFER_OK)
        return st;
    if (strcmp(b->model_name, "llama") == 0) {
        use_spm_defaults(b->v);
        return KINFER_OK;
    }
    if (strcmp(b->model_name, "gpt2") == 0)
        return use_bpe_defaults(b, pre);
    if (strcmp(b->model_name, "bert") == 0) {
        use_wpm_defaults(b->v);
        return KINFER_OK;
    }
    return fail(b, KINFER_E_UNSUPPORTED, "unsupported tokenizer model '%s' (tokenizer.ggml.model)",
                b->model_name);
}

static kinfer_status read_add_space_prefix(vocab_builder *b)
{
    return read_bool(b, "tokenizer.ggml.add_space_prefix", &b->v->add_space_prefix);
}

/* BertNormalizer's options: strip_accents follows lowercase unless given. */
static kinfer_status read_normalizer(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    kinfer_status st = read_bool(b, "tokenizer.ggml.normalizer.lowercase", &v->lowercase);
    v->strip_accents = v->lowercase;
    if (st == KINFER_OK) st = read_bool(b, "tokenizer.ggml.normalizer.strip_accents", &v->strip_accents);
    return st;
}

/* ------------------------------------------------------------- token table */

/* The token texts, and the scores and types when present, checked for
 * their element types and lengths before anything is allocated. */
static kinfer_status check_token_arrays(vocab_builder *b)
{
    const gguf_kv *kv = find_kv(b->gf, "tokenizer.ggml.tokens");
    if (!kv)
        return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.tokens is missing");
    if (kv->type != GGUF_ARR || kv->elem_type != GGUF_STR)
        return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (kv->n_elems == 0 || kv->n_elems > (uint64_t)INT32_MAX / 2)
        return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.tokens has %llu entries",
                    (unsigned long long)kv->n_elems);
    int32_t n = (int32_t)kv->n_elems;
    b->kv_tokens = kv;
    b->v->n_tokens = n;

    if ((kv = find_kv(b->gf, "tokenizer.ggml.scores"))) {
        if (kv->type != GGUF_ARR || (kv->elem_type != GGUF_F32 && kv->elem_type != GGUF_I32))
            return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.scores is not an array of f32 or i32");
        if (kv->n_elems != (uint64_t)n)
            return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.scores has %llu entries for %d tokens",
                        (unsigned long long)kv->n_elems, n);
        b->kv_scores = kv;
    }
    if ((kv = find_kv(b->gf, "tokenizer.ggml.token_type"))) {
        if (kv->type != GGUF_ARR || kv->elem_type != GGUF_I32)
            return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.token_type is not an array of i32");
        if (kv->n_elems != (uint64_t)n)
            return fail(b, KINFER_E_FORMAT,
                        "tokenizer.ggml.token_type has %llu entries for %d tokens",
                        (unsigned long long)kv->n_elems, n);
        b->kv_types = kv;
    }
    return KINFER_OK;
}

/* Every token's text into one NUL-separated arena (an empty token becomes
 * "[EMPTY_<id>]", as in llama.cpp): sizes first, then the copy. */
static kinfer_status read_token_texts(vocab_builder *b)
{
    static const char *const key = "tokenizer.ggml.tokens";
    struct kinfer_vocab *v = b->v;
    const int32_t n = v->n_tokens;
    v->text_off = malloc(((size_t)n + 1) * sizeof *v->text_off);
    if (!v->text_off)
        return fail(b, KINFER_E_NOMEM, "out of memory for %d tokens", n);

    uint64_t total = 0;
    const char *s;
    size_t len;
    for (int32_t i = 0; i < n; i++) {
        kinfer_status st = read_array_string(b, b->kv_tokens, key, i, &s, &len);
        if (st != KINFER_OK)
            return st;
        if (len > UINT32_MAX / 2)
            return fail(b, KINFER_E_FORMAT, "%s[%d] is too long", key, i);
        total += (len ? len : 32) + 1;
    }
    if (total > UINT32_MAX)
        return fail(b, KINFER_E_FORMAT, "token texts are too large (%llu bytes)",
                    (unsigned long long)total);
    v->text = malloc(total);
    if (!v->text)
        return fail(b, KINFER_E_NOMEM, "out of memory for token texts");

    uint32_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        gguf_arr_str(b->kv_tokens, (uint64_t)i, &s, &len);
        v->text_off[i] = pos;
        if (len == 0)
            len = (size_t)snprintf(v->text + pos, 33, "[EMPTY_%d]", i);
        else
            memcpy(v->text + pos, s, len);
        v->text[pos + len] = 0;
        pos += (uint32_t)len + 1;
        if (len > v->max_token_len) v->max_token_len = (uint32_t)len;
    }
    v->text_off[n] = pos;
    return KINFER_OK;
}

/* Scores as floats (some files store them as i32); 0 without the array. */
static kinfer_status read_token_scores(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    v->score = malloc((size_t)v->n_tokens * sizeof *v->score);
    if (!v->score)
        return fail(b, KINFER_E_NOMEM, "out of memory for %d tokens", v->n_tokens);
    for (int32_t i = 0; i < v->n_tokens; i++) {
        double score = 0;
        if (b->kv_scores && gguf_arr_float(b->kv_scores, (uint64_t)i, &score) != KINFER_OK) {
            int64_t int_score;
            gguf_arr_int(b->kv_scores, (uint64_t)i, &int_score);
            score = (double)int_score;
        }
        v->score[i] = (float)score;
    }
    return KINFER_OK;
}

/* The attribute that a tokenizer.ggml.token_type value stands for. */
static uint16_t attr_of_token_type(int64_t type)
{
    switch (type) {
    case 1: return TOK_ATTR_NORMAL;
    case 2: return TOK_ATTR_UNKNOWN;
    case 3: return TOK_ATTR_CONTROL;
    case 4: return TOK_ATTR_USER_DEFINED;
    case 5: return TOK_ATTR_UNUSED;
    case 6: return TOK_ATTR_BYTE;
    default: return TOK_ATTR_UNDEFINED;
    }
}

/* Attributes from the token types; every token is normal without them. */
static kinfer_status read_token_types(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    v->attr = malloc((size_t)v->n_tokens * sizeof *v->attr);
    if (!v->attr)
        return fail(b, KINFER_E_NOMEM, "out of memory for %d tokens", v->n_tokens);
    for (int32_t i = 0; i < v->n_tokens; i++) {
        int64_t type = 0;
        if (b->kv_types)
            gguf_arr_int(b->kv_types, (uint64_t)i, &type);
        v->attr[i] = b->kv_types ? attr_of_token_type(type) : TOK_ATTR_NORMAL;
    }
    return KINFER_OK;
}

/* text -> id; a repeated text would make ids ambiguous (llama.cpp asserts
 * on it), so it is an error, and every text names one token from here on. */
static kinfer_status index_token_texts(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    v->hash_mask = table_size((uint64_t)v->n_tokens) - 1;
    v->hash = malloc(((size_t)v->hash_mask + 1) * sizeof *v->hash);
    if (!v->hash)
        return fail(b, KINFER_E_NOMEM, "out of memory");
    memset(v->hash, 0xff, ((size_t)v->hash_mask + 1) * sizeof *v->hash);
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const uint32_t h = vocab_slot(v, vocab_text(v, i), vocab_text_len(v, i));
        if (v->hash[h] != TOKEN_NULL)
            return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.tokens[%d] repeats token %d", i,
                        v->hash[h]);
        v->hash[h] = i;
    }
    return KINFER_OK;
}

/* ------------------------------------------------------------------ merges */

/* Merge rank i from its "left right" text s: the pair's bytes appended to
 * merge_text at *pos, and its rank filed in mhash. */
static void store_merge(struct kinfer_vocab *v, int32_t i, const char *s, size_t len, uint32_t *pos)
{
    /* split at the first space after the first byte */
    const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    v->merge_off[i] = v->merge_off[i + 1] = *pos;
    if (!sp) {
        /* llama.cpp files it as ("", ""), which never matches */
        v->merge_llen[i] = 0;
        return;
    }
    size_t ll = (size_t)(sp - s), rl = len - ll - 1;
    memcpy(v->merge_text + *pos, s, ll);
    memcpy(v->merge_text + *pos + ll, sp + 1, rl);
    v->merge_llen[i] = (uint32_t)ll;
    *pos += (uint32_t)(ll + rl);
    v->merge_off[i + 1] = *pos;
    /* a repeated pair keeps its first (lowest) rank */
    const uint32_t h = vocab_merge_slot(v, s, ll, sp + 1, rl);
    if (v->mhash[h] < 0)
        v->mhash[h] = i;
}

/* BPE merges, ranked by their order in tokenizer.ggml.merges. */
static kinfer_status read_merges(vocab_builder *b)
{
    static const char *const key = "tokenizer.ggml.merges";
    struct kinfer_vocab *v = b->v;
    if (v->type != VOCAB_BPE)
        return KINFER_OK;
    const gguf_kv *kv = find_kv(b->gf, key);
    if (!kv)
        return fail(b, KINFER_E_FORMAT, "BPE tokenizer without tokenizer.ggml.merges");
    if (kv->type != GGUF_ARR || kv->elem_type != GGUF_STR)
        return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    if (kv->n_elems > (uint64_t)INT32_MAX / 2)
        return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.merges has too many entries");
    const int32_t nm = (int32_t)kv->n_elems;

    uint64_t total = 0;
    const char *s;
    size_t len;
    for (int32_t i = 0; i < nm; i++) {
        kinfer_status st = read_array_string(b, kv, key, i, &s, &len);
        if (st != KINFER_OK)
            return st;
        total += len;
    }
    if (total > UINT32_MAX)
        return fail(b, KINFER_E_FORMAT, "tokenizer.ggml.merges is too large");
    v->merge_text = malloc(total + 1);
    v->merge_off = malloc(((size_t)nm + 1) * sizeof *v->merge_off);
    v->merge_llen = malloc(((size_t)nm + 1) * sizeof *v->merge_llen);
    v->mhash_mask = table_size((uint64_t)nm) - 1;
    v->mhash = malloc(((size_t)v->mhash_mask + 1) * sizeof *v->mhash);
    if (!v->merge_text || !v->merge_off || !v->merge_llen || !v->mhash)
        return fail(b, KINFER_E_NOMEM, "out of memory for %d merges", nm);
    memset(v->mhash, 0xff, ((size_t)v->mhash_mask + 1) * sizeof *v->mhash);

    uint32_t pos = 0;
    for (int32_t i = 0; i < nm; i++) {
        gguf_arr_str(kv, (uint64_t)i, &s, &len);
        store_merge(v, i, s, len, &pos);
    }
    v->n_merges = nm;
    return KINFER_OK;
}

/* ---------------------------------------------------------- special tokens */

/* Special-token ids from the metadata.  The algorithm's defaults are
 * dropped when out of range; a value in the file must be a valid id. */
static kinfer_status read_special_ids(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    const int32_t n = v->n_tokens;
    if (v->bos >= n) v->bos = TOKEN_NULL;
    if (v->eos >= n) v->eos = TOKEN_NULL;
    if (v->unk >= n) v->unk = TOKEN_NULL;
    const struct {
        const char *key;
        int32_t *id;
    } ids[] = {
        {"tokenizer.ggml.bos_token_id", &v->bos},
        {"tokenizer.ggml.eos_token_id", &v->eos},
        {"tokenizer.ggml.eot_token_id", &v->eot},
        {"tokenizer.ggml.eom_token_id", &v->eom},
        {"tokenizer.ggml.unknown_token_id", &v->unk},
        {"tokenizer.ggml.seperator_token_id", &v->sep},
        {"tokenizer.ggml.padding_token_id", &v->pad},
        {"tokenizer.ggml.mask_token_id", &v->mask},
        {"tokenizer.ggml.fim_pre_token_id", &v->fim_pre},
        {"tokenizer.ggml.fim_suf_token_id", &v->fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &v->fim_mid},
        {"tokenizer.ggml.fim_pad_token_id", &v->fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &v->fim_rep},
        {"tokenizer.ggml.fim_sep_token_id", &v->fim_sep},
        /* older names of the first three FIM ids */
        {"tokenizer.ggml.prefix_token_id", &v->fim_pre},
        {"tokenizer.ggml.suffix_token_id", &v->fim_suf},
        {"tokenizer.ggml.middle_token_id", &v->fim_mid},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const gguf_kv *kv = find_kv(b->gf, ids[i].key);
        if (!kv)
            continue;
        uint64_t id;
        if (gguf_kv_uint(kv, &id) != KINFER_OK)
            return fail(b, KINFER_E_FORMAT, "%s is not an unsigned integer", ids[i].key);
        if (id >= (uint64_t)n)
            return fail(b, KINFER_E_FORMAT, "%s = %llu is out of range (%d tokens)", ids[i].key,
                        (unsigned long long)id, n);
        *ids[i].id = (int32_t)id;
    }
    return KINFER_OK;
}

/* Whether BOS / EOS are added by default, which needs the token. */
static kinfer_status read_add_bos_eos(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    kinfer_status st = read_bool(b, "tokenizer.ggml.add_bos_token", &v->add_bos);
    if (st == KINFER_OK)
        st = read_bool(b, "tokenizer.ggml.add_eos_token", &v->add_eos);
    if (st != KINFER_OK)
        return st;
    if (v->add_bos && v->bos == TOKEN_NULL)
        return fail(b, KINFER_E_FORMAT, "the vocabulary asks for a BOS token but has none");
    if (v->type == VOCAB_WPM && (v->unk == TOKEN_NULL || v->sep == TOKEN_NULL))
        return fail(b, KINFER_E_FORMAT, "the WordPiece vocabulary has no %s token "
                    "(tokenizer.ggml.%s_token_id)", v->unk == TOKEN_NULL ? "unknown" : "separator",
                    v->unk == TOKEN_NULL ? "unknown" : "seperator");
    if (v->add_eos && v->eos == TOKEN_NULL)
        return fail(b, KINFER_E_FORMAT, "the vocabulary asks for an EOS token but has none");
    return KINFER_OK;
}

/* EOT, EOM and the FIM ids the metadata left unset, found by their text as
 * llama.cpp does; a token found so is a control token. */
static kinfer_status find_special_by_text(vocab_builder *b)
{
    static const char *const eot_names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
        "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
        "<end_of_utterance>", NULL};
    static const char *const eom_names[] = {"<|eom_id|>", NULL};
    static const char *const fim_pre_names[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
        "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
    static const char *const fim_suf_names[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
        "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
    static const char *const fim_mid_names[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
        "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>", NULL};
    static const char *const fim_pad_names[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
        "[PAD]", NULL};
    static const char *const fim_rep_names[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
        "<REPO>", "<reponame>", NULL};
    static const char *const fim_sep_names[] = {"<|file_sep|>", NULL};
    struct kinfer_vocab *v = b->v;
    const struct {
        int32_t *id;
        const char *const *names;
    } by_text[] = {
        {&v->eot, eot_names}, {&v->eom, eom_names}, {&v->fim_pre, fim_pre_names},
        {&v->fim_suf, fim_suf_names}, {&v->fim_mid, fim_mid_names},
        {&v->fim_pad, fim_pad_names}, {&v->fim_rep, fim_rep_names},
        {&v->fim_sep, fim_sep_names},
    };
    for (size_t i = 0; i < sizeof by_text / sizeof by_text[0]; i++) {
        if (*by_text[i].id != TOKEN_NULL)
            continue;
        *by_text[i].id = find_first(v, by_text[i].names);
        mark_control(v, *by_text[i].id);
    }
    return KINFER_OK;
}

/* Control tokens named "...unused..." are unused. */
static kinfer_status mark_unused_controls(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if ((v->attr[i] & TOK_ATTR_CONTROL) && strstr(vocab_text(v, i), "unused"))
            v->attr[i] |= TOK_ATTR_UNUSED;
    }
    return KINFER_OK;
}

/* ------------------------------------------------- end-of-generation set */

static int eog_add(struct kinfer_vocab *v, int32_t id)
{
    if (id == TOKEN_NULL)
        return 0;
    for (int32_t i = 0; i < v->n_eog; i++) {
        if (v->eog[i] == id)
            return 0;
    }
    int32_t *e = realloc(v->eog, (size_t)(v->n_eog + 1) * sizeof *e);
    if (!e)
        return -1;
    v->eog = e;
    v->eog[v->n_eog++] = id;
    return 0;
}

static void eog_remove(struct kinfer_vocab *v, int32_t id)
{
    for (int32_t i = 0; i < v->n_eog; i++) {
        if (v->eog[i] == id) {
            v->eog[i] = v->eog[--v->n_eog];
            return;
        }
    }
}

/* The id of the token with this text when it ends generation, else
 * TOKEN_NULL (texts are unique, so the text names at most one token). */
static int32_t eog_with_text(const struct kinfer_vocab *v, const char *text)
{
    int32_t id = find_cstr(v, text);
    for (int32_t i = 0; id != TOKEN_NULL && i < v->n_eog; i++) {
        if (v->eog[i] == id)
            return id;
    }
    return TOKEN_NULL;
}

/* The ids llama.cpp ends generation on: the FIM pad/repo/separator tokens,
 * the tokens with one of these texts (control tokens from here on), EOS,
 * EOT and EOM. */
static int eog_add_known(struct kinfer_vocab *v)
{
    static const char *const eog_names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
        "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>",
        "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>",
        "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[", NULL};
    if (eog_add(v, v->fim_pad) || eog_add(v, v->fim_rep) || eog_add(v, v->fim_sep))
        return -1;
    for (const char *const *name = eog_names; *name; name++) {
        int32_t id = find_cstr(v, *name);
        if (id == TOKEN_NULL)
            continue;
        if (eog_add(v, id))
            return -1;
        mark_control(v, id);
    }
    return eog_add(v, v->eos) || eog_add(v, v->eot) || eog_add(v, v->eom) ? -1 : 0;
}

/* o200k_harmony / solar-open: <|end|> ends a message, not the generation,
 * and is rendered. */
static void harmony_end_continues(struct kinfer_vocab *v)
{
    const bool has_return = eog_with_text(v, "<|return|>") != TOKEN_NULL;
    const bool has_call = eog_with_text(v, "<|call|>") != TOKEN_NULL ||
                          eog_with_text(v, "<|calls|>") != TOKEN_NULL;
    const bool has_flush = eog_with_text(v, "<|flush|>") != TOKEN_NULL;
    const int32_t end_id = eog_with_text(v, "<|end|>");
    if (end_id != TOKEN_NULL && ((has_return && has_call) || (has_call && has_flush))) {
        eog_remove(v, end_id);
        v->attr[end_id] = TOK_ATTR_USER_DEFINED;
    }
}

/* gemma4 / plamo: </s> is a normal token. */
static void closing_s_is_normal(struct kinfer_vocab *v)
{
    const bool has_marker = eog_with_text(v, "<|tool_response>") != TOKEN_NULL ||
                            eog_with_text(v, "<|plamo:eos|>") != TOKEN_NULL;
    const int32_t s_id = eog_with_text(v, "</s>");
    if (has_marker && s_id != TOKEN_NULL) {
        eog_remove(v, s_id);
        v->attr[s_id] = TOK_ATTR_NORMAL;
    }
}

/* The end-of-generation set, sorted for kinfer_token_is_eog's bsearch. */
static kinfer_status build_eog_set(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    if (eog_add_known(v))
        return fail(b, KINFER_E_NOMEM, "out of memory");
    harmony_end_continues(v);
    closing_s_is_normal(v);
    if (v->n_eog > 1)
        qsort(v->eog, (size_t)v->n_eog, sizeof *v->eog, vocab_cmp_id);
    return KINFER_OK;
}

/* gpt-oss: these control tokens are always rendered. */
static kinfer_status mark_gpt_oss_user_tokens(vocab_builder *b)
{
    static const char *const names[] = {"<|channel|>", "<|message|>", "<|start|>",
                                        "<|constrain|>", NULL};
    for (const char *const *name = names; *name; name++) {
        int32_t id = find_cstr(b->v, *name);
        if (id != TOKEN_NULL)
            b->v->attr[id] = TOK_ATTR_USER_DEFINED;
    }
    return KINFER_OK;
}

/* --------------------------------------------- special list and the rest */

/* Longest text first, then lowest id: the order the text is cut in. */
static int cmp_special(const void *a, const void *b, void *vocab)
{
    const struct kinfer_vocab *v = vocab;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx = vocab_text_len(v, x), ly = vocab_text_len(v, y);
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

/* The tokens the tokenizer cuts out of the text before merging: control,
 * user-defined and unknown ones. */
static kinfer_status list_special_tokens(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    const uint32_t special_attr = TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN;
    int32_t n_special = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        n_special += (v->attr[i] & special_attr) != 0;
    v->special = malloc(((size_t)n_special + 1) * sizeof *v->special);
    if (!v->special)
        return fail(b, KINFER_E_NOMEM, "out of memory");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->attr[i] & special_attr)
            v->special[v->n_special++] = i;
    }
    qsort_r(v->special, (size_t)v->n_special, sizeof *v->special, cmp_special, v);
    return KINFER_OK;
}

/* Phi-3: every special token but <unk>, <s> and <|endoftext|> eats the
 * spaces after it, and so does </s>. */
static void phi3_rstrip(struct kinfer_vocab *v)
{
    for (int32_t k = 0; k < v->n_special; k++)
        v->attr[v->special[k]] |= TOK_ATTR_RSTRIP;
    int32_t id;
    if ((id = find_cstr(v, "</s>")) != TOKEN_NULL) v->attr[id] |= TOK_ATTR_RSTRIP;
    if ((id = find_cstr(v, "<unk>")) != TOKEN_NULL) v->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
    if ((id = find_cstr(v, "<s>")) != TOKEN_NULL) v->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
    if ((id = find_cstr(v, "<|endoftext|>")) != TOKEN_NULL) v->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
}

/* Per-model attributes: llama.cpp keys them on general.name. */
static kinfer_status apply_model_quirks(vocab_builder *b)
{
    const gguf_kv *kv = find_kv(b->gf, "general.name");
    if (!kv || kv->type != GGUF_STR)
        return KINFER_OK;
    char lower[256];
    size_t i = 0;
    for (; kv->str[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)tolower((unsigned char)kv->str[i]);
    lower[i] = 0;
    if (strstr(lower, "phi-3") || strstr(lower, "phi3"))
        phi3_rstrip(b->v);
    return KINFER_OK;
}

/* The newline token: SPM looks for the byte token, BPE tokenizes "\n" with
 * the vocabulary as built so far (as llama.cpp does); PAD when neither has one. */
static kinfer_status find_newline_token(vocab_builder *b)
{
    struct kinfer_vocab *v = b->v;
    if (v->type == VOCAB_WPM) {
        v->nl = v->pad;
        return KINFER_OK;
    }
    if (v->type == VOCAB_SPM) {
        v->nl = find_cstr(v, "<0x0A>");
        if (v->nl == TOKEN_NULL)
            v->nl = find_cstr(v, "\n");
        if (v->nl == TOKEN_NULL)
            v->nl = v->pad;
        return KINFER_OK;
    }
    int32_t t[8];
    kinfer_status st = KINFER_OK;
    int64_t k = vocab_tokenize(v, "\n", 1, t, 8, 0, 0, &st);
    if (st != KINFER_OK)
        return fail(b, st, "out of memory");
    v->nl = k > 0 ? t[0] : v->pad;
    return KINFER_OK;
}

/* ------------------------------------------------------------------- build */

/* The steps of vocab_build, in order: a later one may read what an earlier
 * one filled in. */
static kinfer_status (*const BUILD_STEPS[])(vocab_builder *) = {
    read_algorithm,           /* SPM or BPE, their default ids and flags, the pre-tokenizer */
    read_add_space_prefix,
    read_normalizer,          /* WPM's lowercasing and accent stripping */
    check_token_arrays,       /* texts, scores, types: element types and lengths */
    read_token_texts,
    read_token_scores,
    read_token_types,         /* -> attributes */
    index_token_texts,        /* text -> id */
    read_merges,              /* BPE only */
    read_special_ids,         /* BOS, EOS, ..., FIM ids from the metadata */
    read_add_bos_eos,
    find_special_by_text,     /* EOT, EOM, FIM ids the metadata left unset */
    mark_unused_controls,
    build_eog_set,
    mark_gpt_oss_user_tokens,
    list_special_tokens,      /* what the tokenizer cuts out first, longest first */
    apply_model_quirks,       /* keyed on general.name */
    find_newline_token,       /* tokenizes, so it comes last */
};

kinfer_status vocab_build(const gguf_file *gf, const char *pre_override,
                          struct kinfer_vocab **out, char *err, size_t err_size)
{
    *out = NULL;
    if (err_size)
        err[0] = 0;
    vocab_builder b = {.gf = gf, .pre_override = pre_override, .err = err, .err_size = err_size};
    kinfer_status st = read_model_name(&b, &b.model_name);
    if (st != KINFER_OK || !b.model_name)
        return st; /* no tokenizer is not an error */
    b.v = vocab_new();
    if (!b.v)
        return fail(&b, KINFER_E_NOMEM, "out of memory");
    for (size_t i = 0; i < sizeof BUILD_STEPS / sizeof BUILD_STEPS[0]; i++) {
        st = BUILD_STEPS[i](&b);
        if (st != KINFER_OK) {
            vocab_free(b.v);
            return st;
        }
    }
    *out = b.v;
    return KINFER_OK;
}

void vocab_free(struct kinfer_vocab *v)
{
    if (!v)
        return;
    free(v->text);
    free(v->text_off);
    free(v->score);
    free(v->attr);
    free(v->hash);
    free(v->merge_text);
    free(v->merge_off);
    free(v->merge_llen);
    free(v->mhash);
    free(v->special);
    free(v->eog);
    pretok_free(v->pretok);
    piece_trie_free(v->piece_trie);
    free(v);
}
