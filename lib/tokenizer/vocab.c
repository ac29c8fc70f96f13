/*
 * vocab.c — the vocabulary: built from the GGUF metadata (token texts,
 * scores, types, BPE merges, special-token ids, the pre-tokenizer and its
 * flags) following llama.cpp's llama-vocab.cpp rule for rule, and its
 * per-token queries.  Tokenizing is in tokenize.c, detokenizing in
 * detokenize.c; the public calls on a model handle in model/tokens.c.
 */
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

static uint32_t table_size(uint64_t n)
{
    uint32_t size = 16;
    while (size < n * 2)
        size *= 2;
    return size;
}

/* ------------------------------------------------------------------ loading */

static const gguf_kv *find_kv(const gguf_file *gf, const char *key)
{
    int64_t i = gguf_find_key(gf, key);
    return i < 0 ? NULL : &gf->kv[i];
}

#define FAIL(status, ...)                          \
    do {                                           \
        snprintf(err, err_size, __VA_ARGS__);      \
        st = (status);                             \
        goto fail;                                 \
    } while (0)

static int is_text(const struct kinfer_vocab *v, int32_t id, const char *s)
{
    size_t n = strlen(s);
    return vocab_text_len(v, id) == n && memcmp(vocab_text(v, id), s, n) == 0;
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

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_special(const void *a, const void *b, void *vocab)
{
    const struct kinfer_vocab *v = vocab;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx = vocab_text_len(v, x), ly = vocab_text_len(v, y);
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

kinfer_status vocab_build(const gguf_file *gf, const char *pre_override,
                          struct kinfer_vocab **out, char *err, size_t err_size)
{
    kinfer_status st = KINFER_OK;
    struct kinfer_vocab *v = NULL;
    *out = NULL;
    if (err_size)
        err[0] = 0;

    const gguf_kv *kv_model = find_kv(gf, "tokenizer.ggml.model");
    if (!kv_model)
        return KINFER_OK; /* no tokenizer: not an error */
    if (kv_model->type != GGUF_STR)
        FAIL(KINFER_E_FORMAT, "tokenizer.ggml.model is not a string");
    const char *model_name = kv_model->str;
    if (strcmp(model_name, "none") == 0 || strcmp(model_name, "no_vocab") == 0)
        return KINFER_OK;

    v = calloc(1, sizeof *v);
    if (!v)
        FAIL(KINFER_E_NOMEM, "out of memory");
    v->pad = v->sep = v->mask = v->eot = v->eom = v->nl = TOKEN_NULL;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = TOKEN_NULL;

    const char *pre = NULL;
    const gguf_kv *kv_pre = find_kv(gf, "tokenizer.ggml.pre");
    if (kv_pre) {
        if (kv_pre->type != GGUF_STR)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.pre is not a string");
        pre = kv_pre->str;
    }
    if (pre_override)
        pre = pre_override;

    if (strcmp(model_name, "llama") == 0) {
        v->type = VOCAB_SPM;
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_space_prefix = true;
        v->add_bos = true;
        v->escape_whitespaces = true;
    } else if (strcmp(model_name, "gpt2") == 0) {
        v->type = VOCAB_BPE;
        v->bos = 11;
        v->eos = 11;
        v->unk = TOKEN_NULL;
        pretok_info info;
        char perr[200];
        st = pretok_new(pre, &v->pretok, &info, perr, sizeof perr);
        if (st != KINFER_OK)
            FAIL(st, "%s", perr);
        v->ignore_merges = info.ignore_merges;
        v->clean_spaces = info.clean_spaces;
        v->add_bos = info.add_bos;
        if (pre && (strcmp(pre, "chatglm-bpe") == 0 || strcmp(pre, "glm4") == 0 ||
                    strcmp(pre, "glm5") == 0))
            v->bos = TOKEN_NULL;
    } else {
        FAIL(KINFER_E_UNSUPPORTED, "unsupported tokenizer model '%s' (tokenizer.ggml.model)",
             model_name);
    }

    const gguf_kv *kv;
    int b;
    if ((kv = find_kv(gf, "tokenizer.ggml.add_space_prefix"))) {
        if (gguf_kv_bool(kv, &b) != KINFER_OK)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.add_space_prefix is not a bool");
        v->add_space_prefix = b != 0;
    }

    /* ---- tokens, scores, types */
    const gguf_kv *kv_tok = find_kv(gf, "tokenizer.ggml.tokens");
    if (!kv_tok)
        FAIL(KINFER_E_FORMAT, "tokenizer.ggml.tokens is missing");
    if (kv_tok->type != GGUF_ARR || kv_tok->elem_type != GGUF_STR)
        FAIL(KINFER_E_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (kv_tok->n_elems == 0 || kv_tok->n_elems > (uint64_t)INT32_MAX / 2)
        FAIL(KINFER_E_FORMAT, "tokenizer.ggml.tokens has %llu entries",
             (unsigned long long)kv_tok->n_elems);
    int32_t n = (int32_t)kv_tok->n_elems;
    v->n_tokens = n;

    const gguf_kv *kv_scores = find_kv(gf, "tokenizer.ggml.scores");
    if (kv_scores) {
        if (kv_scores->type != GGUF_ARR ||
            (kv_scores->elem_type != GGUF_F32 && kv_scores->elem_type != GGUF_I32))
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.scores is not an array of f32 or i32");
        if (kv_scores->n_elems != (uint64_t)n)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.scores has %llu entries for %d tokens",
                 (unsigned long long)kv_scores->n_elems, n);
    }
    const gguf_kv *kv_types = find_kv(gf, "tokenizer.ggml.token_type");
    if (kv_types) {
        if (kv_types->type != GGUF_ARR || kv_types->elem_type != GGUF_I32)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.token_type is not an array of i32");
        if (kv_types->n_elems != (uint64_t)n)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.token_type has %llu entries for %d tokens",
                 (unsigned long long)kv_types->n_elems, n);
    }

    v->text_off = malloc(((size_t)n + 1) * sizeof *v->text_off);
    v->score = malloc((size_t)n * sizeof *v->score);
    v->attr = malloc((size_t)n * sizeof *v->attr);
    if (!v->text_off || !v->score || !v->attr)
        FAIL(KINFER_E_NOMEM, "out of memory for %d tokens", n);

    /* text arena: sizes first (an empty token becomes "[EMPTY_<id>]") */
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        if (gguf_arr_str(kv_tok, (uint64_t)i, &s, &len) != KINFER_OK)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.tokens[%d] is unreadable", i);
        if (len > UINT32_MAX / 2)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.tokens[%d] is too long", i);
        total += (len ? len : 32) + 1;
    }
    if (total > UINT32_MAX)
        FAIL(KINFER_E_FORMAT, "token texts are too large (%llu bytes)", (unsigned long long)total);
    v->text = malloc(total);
    if (!v->text)
        FAIL(KINFER_E_NOMEM, "out of memory for token texts");
    uint32_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        gguf_arr_str(kv_tok, (uint64_t)i, &s, &len);
        v->text_off[i] = pos;
        if (len == 0) {
            len = (size_t)snprintf(v->text + pos, 33, "[EMPTY_%d]", i);
        } else {
            memcpy(v->text + pos, s, len);
        }
        v->text[pos + len] = 0;
        pos += (uint32_t)len + 1;
        v->text_off[i + 1] = pos;

        double sc = 0;
        if (kv_scores && gguf_arr_float(kv_scores, (uint64_t)i, &sc) != KINFER_OK) {
            int64_t isc;
            gguf_arr_int(kv_scores, (uint64_t)i, &isc);
            sc = (double)isc;
        }
        v->score[i] = (float)sc;

        uint16_t attr = TOK_ATTR_NORMAL;
        if (kv_types) {
            int64_t t = 0;
            gguf_arr_int(kv_types, (uint64_t)i, &t);
            switch (t) {
            case 1: attr = TOK_ATTR_NORMAL; break;
            case 2: attr = TOK_ATTR_UNKNOWN; break;
            case 3: attr = TOK_ATTR_CONTROL; break;
            case 4: attr = TOK_ATTR_USER_DEFINED; break;
            case 5: attr = TOK_ATTR_UNUSED; break;
            case 6: attr = TOK_ATTR_BYTE; break;
            default: attr = TOK_ATTR_UNDEFINED; break;
            }
        }
        v->attr[i] = attr;
    }

    /* text -> id; a repeated text would make ids ambiguous (llama.cpp
     * asserts on it) */
    v->hash_mask = table_size((uint64_t)n) - 1;
    v->hash = malloc(((size_t)v->hash_mask + 1) * sizeof *v->hash);
    if (!v->hash)
        FAIL(KINFER_E_NOMEM, "out of memory");
    memset(v->hash, 0xff, ((size_t)v->hash_mask + 1) * sizeof *v->hash);
    for (int32_t i = 0; i < n; i++) {
        const uint32_t h = vocab_slot(v, vocab_text(v, i), vocab_text_len(v, i));
        if (v->hash[h] != TOKEN_NULL)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.tokens[%d] repeats token %d", i, v->hash[h]);
        v->hash[h] = i;
    }

    /* ---- merges */
    if (v->type == VOCAB_BPE) {
        const gguf_kv *kv_m = find_kv(gf, "tokenizer.ggml.merges");
        if (!kv_m)
            FAIL(KINFER_E_FORMAT, "BPE tokenizer without tokenizer.ggml.merges");
        if (kv_m->type != GGUF_ARR || kv_m->elem_type != GGUF_STR)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.merges is not an array of strings");
        if (kv_m->n_elems > (uint64_t)INT32_MAX / 2)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.merges has too many entries");
        int32_t nm = (int32_t)kv_m->n_elems;
        uint64_t mtotal = 0;
        for (int32_t i = 0; i < nm; i++) {
            const char *s;
            size_t len;
            if (gguf_arr_str(kv_m, (uint64_t)i, &s, &len) != KINFER_OK)
                FAIL(KINFER_E_FORMAT, "tokenizer.ggml.merges[%d] is unreadable", i);
            mtotal += len;
        }
        if (mtotal > UINT32_MAX)
            FAIL(KINFER_E_FORMAT, "tokenizer.ggml.merges is too large");
        v->merge_text = malloc(mtotal + 1);
        v->merge_off = malloc(((size_t)nm + 1) * sizeof *v->merge_off);
        v->merge_llen = malloc(((size_t)nm + 1) * sizeof *v->merge_llen);
        v->mhash_mask = table_size((uint64_t)nm) - 1;
        v->mhash = malloc(((size_t)v->mhash_mask + 1) * sizeof *v->mhash);
        if (!v->merge_text || !v->merge_off || !v->merge_llen || !v->mhash)
            FAIL(KINFER_E_NOMEM, "out of memory for %d merges", nm);
        memset(v->mhash, 0xff, ((size_t)v->mhash_mask + 1) * sizeof *v->mhash);
        uint32_t mpos = 0;
        for (int32_t i = 0; i < nm; i++) {
            const char *s;
            size_t len;
            gguf_arr_str(kv_m, (uint64_t)i, &s, &len);
            /* "left right", split at the first space after the first byte */
            const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            v->merge_off[i] = v->merge_off[i + 1] = mpos;
            if (!sp) {
                /* llama.cpp files it as ("", ""), which never matches */
                v->merge_llen[i] = 0;
                continue;
            }
            size_t ll = (size_t)(sp - s), rl = len - ll - 1;
            memcpy(v->merge_text + mpos, s, ll);
            memcpy(v->merge_text + mpos + ll, sp + 1, rl);
            v->merge_llen[i] = (uint32_t)ll;
            mpos += (uint32_t)(ll + rl);
            v->merge_off[i + 1] = mpos;
            /* a repeated pair keeps its first (lowest) rank */
            const uint32_t h = vocab_merge_slot(v, s, ll, sp + 1, rl);
            if (v->mhash[h] < 0)
                v->mhash[h] = i;
        }
        v->n_merges = nm;
    }

    /* ---- special token ids: defaults out of range are dropped; a value in
     * the file must be a valid id */
    if (v->bos >= n) v->bos = TOKEN_NULL;
    if (v->eos >= n) v->eos = TOKEN_NULL;
    if (v->unk >= n) v->unk = TOKEN_NULL;
    struct {
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
        {"tokenizer.ggml.prefix_token_id", &v->fim_pre},
        {"tokenizer.ggml.suffix_token_id", &v->fim_suf},
        {"tokenizer.ggml.middle_token_id", &v->fim_mid},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (!(kv = find_kv(gf, ids[i].key)))
            continue;
        uint64_t id;
        if (gguf_kv_uint(kv, &id) != KINFER_OK)
            FAIL(KINFER_E_FORMAT, "%s is not an unsigned integer", ids[i].key);
        if (id >= (uint64_t)n)
            FAIL(KINFER_E_FORMAT, "%s = %llu is out of range (%d tokens)", ids[i].key,
                 (unsigned long long)id, n);
        *ids[i].id = (int32_t)id;
    }
    const char *flags[] = {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"};
    bool *flag_dst[] = {&v->add_bos, &v->add_eos};
    for (int i = 0; i < 2; i++) {
        if (!(kv = find_kv(gf, flags[i])))
            continue;
        if (gguf_kv_bool(kv, &b) != KINFER_OK)
            FAIL(KINFER_E_FORMAT, "%s is not a bool", flags[i]);
        *flag_dst[i] = b != 0;
    }
    if (v->add_bos && v->bos == TOKEN_NULL)
        FAIL(KINFER_E_FORMAT, "the vocabulary asks for a BOS token but has none");
    if (v->add_eos && v->eos == TOKEN_NULL)
        FAIL(KINFER_E_FORMAT, "the vocabulary asks for an EOS token but has none");

    /* ---- tokens found by their text, as llama.cpp does */
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
    struct {
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

    /* control tokens named "...unused..." are unused */
    for (int32_t i = 0; i < n; i++) {
        if ((v->attr[i] & TOK_ATTR_CONTROL) && strstr(vocab_text(v, i), "unused"))
            v->attr[i] |= TOK_ATTR_UNUSED;
    }

    /* end-of-generation set */
    static const char *const eog_names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
        "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>",
        "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>",
        "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[", NULL};
    if (eog_add(v, v->fim_pad) || eog_add(v, v->fim_rep) || eog_add(v, v->fim_sep))
        FAIL(KINFER_E_NOMEM, "out of memory");
    for (const char *const *nm = eog_names; *nm; nm++) {
        int32_t id = find_cstr(v, *nm);
        if (id == TOKEN_NULL)
            continue;
        if (eog_add(v, id))
            FAIL(KINFER_E_NOMEM, "out of memory");
        mark_control(v, id);
    }
    /* gpt-oss: always rendered */
    static const char *const user_names[] = {"<|channel|>", "<|message|>", "<|start|>",
                                             "<|constrain|>", NULL};
    for (const char *const *nm = user_names; *nm; nm++) {
        int32_t id = find_cstr(v, *nm);
        if (id != TOKEN_NULL)
            v->attr[id] = TOK_ATTR_USER_DEFINED;
    }
    if (eog_add(v, v->eos) || eog_add(v, v->eot) || eog_add(v, v->eom))
        FAIL(KINFER_E_NOMEM, "out of memory");
    {
        /* o200k_harmony / solar-open: <|end|> is not an end of generation */
        int has_return = 0, has_call = 0, has_flush = 0;
        int32_t end_id = TOKEN_NULL;
        for (int32_t i = 0; i < v->n_eog; i++) {
            int32_t id = v->eog[i];
            if (is_text(v, id, "<|return|>")) has_return = 1;
            else if (is_text(v, id, "<|call|>") || is_text(v, id, "<|calls|>")) has_call = 1;
            else if (is_text(v, id, "<|flush|>")) has_flush = 1;
            else if (is_text(v, id, "<|end|>")) end_id = id;
        }
        if (end_id != TOKEN_NULL && ((has_return && has_call) || (has_call && has_flush))) {
            eog_remove(v, end_id);
            v->attr[end_id] = TOK_ATTR_USER_DEFINED;
        }
        /* gemma4 / plamo: </s> is a normal token */
        int has_marker = 0;
        int32_t s_id = TOKEN_NULL;
        for (int32_t i = 0; i < v->n_eog; i++) {
            int32_t id = v->eog[i];
            if (is_text(v, id, "<|tool_response>") || is_text(v, id, "<|plamo:eos|>")) has_marker = 1;
            else if (is_text(v, id, "</s>")) s_id = id;
        }
        if (has_marker && s_id != TOKEN_NULL) {
            eog_remove(v, s_id);
            v->attr[s_id] = TOK_ATTR_NORMAL;
        }
    }
    if (v->n_eog > 1)
        qsort(v->eog, (size_t)v->n_eog, sizeof *v->eog, cmp_i32);

    /* ---- special tokens, longest first */
    const uint32_t special_attr = TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN;
    int32_t n_special = 0;
    for (int32_t i = 0; i < n; i++)
        n_special += (v->attr[i] & special_attr) != 0;
    v->special = malloc(((size_t)n_special + 1) * sizeof *v->special);
    if (!v->special)
        FAIL(KINFER_E_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        if (v->attr[i] & special_attr)
            v->special[v->n_special++] = i;
    }
    qsort_r(v->special, (size_t)v->n_special, sizeof *v->special, cmp_special, v);

    /* ---- per-model attributes (llama.cpp keys them on general.name) */
    if ((kv = find_kv(gf, "general.name")) && kv->type == GGUF_STR) {
        char lower[256];
        size_t i = 0;
        for (; kv->str[i] && i + 1 < sizeof lower; i++)
            lower[i] = (char)tolower((unsigned char)kv->str[i]);
        lower[i] = 0;
        if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
            for (int32_t k = 0; k < v->n_special; k++)
                v->attr[v->special[k]] |= TOK_ATTR_RSTRIP;
            int32_t id;
            if ((id = find_cstr(v, "</s>")) != TOKEN_NULL) v->attr[id] |= TOK_ATTR_RSTRIP;
            if ((id = find_cstr(v, "<unk>")) != TOKEN_NULL) v->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
            if ((id = find_cstr(v, "<s>")) != TOKEN_NULL) v->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
            if ((id = find_cstr(v, "<|endoftext|>")) != TOKEN_NULL) v->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
        }
    }

    /* ---- newline token */
    if (v->type == VOCAB_SPM) {
        v->nl = find_cstr(v, "<0x0A>");
        if (v->nl == TOKEN_NULL)
            v->nl = find_cstr(v, "\n");
        if (v->nl == TOKEN_NULL)
            v->nl = v->pad;
    } else {
        int32_t t[8];
        kinfer_status s2 = KINFER_OK;
        int64_t k = vocab_tokenize(v, "\n", 1, t, 8, 0, 0, &s2);
        if (s2 != KINFER_OK)
            FAIL(s2, "out of memory");
        v->nl = k > 0 ? t[0] : v->pad;
    }

    *out = v;
    return KINFER_OK;
fail:
    vocab_free(v);
    return st;
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
    free(v);
}

/* ------------------------------------------------------------- queries */

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
    return bsearch(&token, v->eog, (size_t)v->n_eog, sizeof *v->eog, cmp_i32) != NULL;
}
