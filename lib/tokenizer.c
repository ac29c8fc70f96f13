/*
 * tokenizer.c — vocabulary loading, SPM and BPE tokenization, special-token
 * partitioning and detokenization, following llama.cpp's llama-vocab.cpp
 * rule for rule (so that token ids agree exactly).
 */
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "tokenizer.h"

enum { VOCAB_SPM = 1, VOCAB_BPE = 2 };

#define TOKEN_NULL (-1)

struct kinfer_vocab {
    int type;                 /* VOCAB_SPM or VOCAB_BPE */
    int32_t n_tokens;

    char *text;               /* every token's text, each NUL-terminated */
    uint32_t *text_off;       /* (n_tokens) */
    uint32_t *text_len;       /* (n_tokens) */
    float *score;             /* (n_tokens) */
    uint32_t *attr;           /* (n_tokens) TOK_ATTR_* */

    int32_t *hash;            /* open addressing, text -> id; TOKEN_NULL = empty */
    uint32_t hash_mask;

    /* BPE merges: rank r joins (left, right); their text lives in merge_text */
    int32_t n_merges;
    char *merge_text;
    uint32_t *merge_off;      /* (n_merges) offset of "left" */
    uint32_t *merge_llen;     /* (n_merges) */
    uint32_t *merge_rlen;     /* (n_merges) right follows left directly */
    int32_t *mhash;
    uint32_t mhash_mask;

    /* token_to_piece(special = true) of every token, as llama.cpp caches it */
    char *piece;
    uint32_t *piece_off;      /* (n_tokens) */
    uint32_t *piece_len;      /* (n_tokens) */

    int32_t *special;         /* control/user-defined/unknown ids, longest text first */
    int32_t n_special;
    int32_t *eog;             /* sorted ids that end generation */
    int32_t n_eog;

    int32_t bos, eos, eot, eom, unk, sep, pad, mask, nl;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;

    bool add_space_prefix, add_bos, add_eos, ignore_merges, clean_spaces, escape_whitespaces;
    pretok *pretok;           /* BPE only */
};

/* ------------------------------------------------------------------ hashing */

static uint64_t hash_bytes(const char *s, size_t n, uint64_t h)
{
    /* FNV-1a: token texts are short */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

static int32_t vocab_find(const struct kinfer_vocab *v, const char *s, size_t n)
{
    uint32_t i = (uint32_t)hash_bytes(s, n, HASH_SEED) & v->hash_mask;
    for (;;) {
        int32_t id = v->hash[i];
        if (id == TOKEN_NULL)
            return TOKEN_NULL;
        if (v->text_len[id] == n && memcmp(v->text + v->text_off[id], s, n) == 0)
            return id;
        i = (i + 1) & v->hash_mask;
    }
}

static uint64_t merge_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    uint64_t h = hash_bytes(l, ln, HASH_SEED);
    h ^= 0xff; /* a separator that cannot occur inside UTF-8 */
    h *= 0x100000001b3ull;
    return hash_bytes(r, rn, h);
}

/* Rank of the merge (left, right), or -1. */
static int32_t merge_rank(const struct kinfer_vocab *v, const char *l, size_t ln, const char *r,
                          size_t rn)
{
    uint32_t i = (uint32_t)merge_hash(l, ln, r, rn) & v->mhash_mask;
    for (;;) {
        int32_t m = v->mhash[i];
        if (m < 0)
            return -1;
        const char *t = v->merge_text + v->merge_off[m];
        if (v->merge_llen[m] == ln && v->merge_rlen[m] == rn && memcmp(t, l, ln) == 0 &&
            memcmp(t + ln, r, rn) == 0)
            return m;
        i = (i + 1) & v->mhash_mask;
    }
}

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
    return v->text_len[id] == n && memcmp(v->text + v->text_off[id], s, n) == 0;
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
    uint32_t lx = v->text_len[x], ly = v->text_len[y];
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

static int render_piece(const struct kinfer_vocab *v, int32_t id, char **buf, size_t *len,
                        size_t *cap);

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

    v->text_off = malloc((size_t)n * sizeof *v->text_off);
    v->text_len = malloc((size_t)n * sizeof *v->text_len);
    v->score = malloc((size_t)n * sizeof *v->score);
    v->attr = malloc((size_t)n * sizeof *v->attr);
    if (!v->text_off || !v->text_len || !v->score || !v->attr)
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
        v->text_len[i] = (uint32_t)len;
        pos += (uint32_t)len + 1;

        double sc = 0;
        if (kv_scores && gguf_arr_float(kv_scores, (uint64_t)i, &sc) != KINFER_OK) {
            int64_t isc;
            gguf_arr_int(kv_scores, (uint64_t)i, &isc);
            sc = (double)isc;
        }
        v->score[i] = (float)sc;

        uint32_t attr = TOK_ATTR_NORMAL;
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
        const char *s = v->text + v->text_off[i];
        uint32_t h = (uint32_t)hash_bytes(s, v->text_len[i], HASH_SEED) & v->hash_mask;
        while (v->hash[h] != TOKEN_NULL) {
            int32_t o = v->hash[h];
            if (v->text_len[o] == v->text_len[i] && memcmp(v->text + v->text_off[o], s, v->text_len[i]) == 0)
                FAIL(KINFER_E_FORMAT, "tokenizer.ggml.tokens[%d] repeats token %d", i, o);
            h = (h + 1) & v->hash_mask;
        }
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
        v->merge_rlen = malloc(((size_t)nm + 1) * sizeof *v->merge_rlen);
        v->mhash_mask = table_size((uint64_t)nm) - 1;
        v->mhash = malloc(((size_t)v->mhash_mask + 1) * sizeof *v->mhash);
        if (!v->merge_text || !v->merge_off || !v->merge_llen || !v->merge_rlen || !v->mhash)
            FAIL(KINFER_E_NOMEM, "out of memory for %d merges", nm);
        memset(v->mhash, 0xff, ((size_t)v->mhash_mask + 1) * sizeof *v->mhash);
        uint32_t mpos = 0;
        for (int32_t i = 0; i < nm; i++) {
            const char *s;
            size_t len;
            gguf_arr_str(kv_m, (uint64_t)i, &s, &len);
            /* "left right", split at the first space after the first byte */
            const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            v->merge_off[i] = mpos;
            if (!sp) {
                /* llama.cpp files it as ("", ""), which never matches */
                v->merge_llen[i] = v->merge_rlen[i] = 0;
                continue;
            }
            size_t ll = (size_t)(sp - s), rl = len - ll - 1;
            memcpy(v->merge_text + mpos, s, ll);
            memcpy(v->merge_text + mpos + ll, sp + 1, rl);
            v->merge_llen[i] = (uint32_t)ll;
            v->merge_rlen[i] = (uint32_t)rl;
            mpos += (uint32_t)(ll + rl);
            /* a repeated pair keeps its first (lowest) rank */
            uint32_t h = (uint32_t)merge_hash(s, ll, sp + 1, rl) & v->mhash_mask;
            int dup = 0;
            while (v->mhash[h] >= 0) {
                int32_t o = v->mhash[h];
                const char *t = v->merge_text + v->merge_off[o];
                if (v->merge_llen[o] == ll && v->merge_rlen[o] == rl && memcmp(t, s, ll) == 0 &&
                    memcmp(t + ll, sp + 1, rl) == 0) {
                    dup = 1;
                    break;
                }
                h = (h + 1) & v->mhash_mask;
            }
            if (!dup)
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
        if ((v->attr[i] & TOK_ATTR_CONTROL) && strstr(v->text + v->text_off[i], "unused"))
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
    v->special = malloc((size_t)n * sizeof *v->special);
    if (!v->special)
        FAIL(KINFER_E_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        if (v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            v->special[v->n_special++] = i;
    }
    qsort_r(v->special, (size_t)v->n_special, sizeof *v->special, cmp_special, v);

    /* ---- piece cache */
    {
        size_t cap = (size_t)total + 64, len = 0;
        char *buf = malloc(cap);
        v->piece_off = malloc((size_t)n * sizeof *v->piece_off);
        v->piece_len = malloc((size_t)n * sizeof *v->piece_len);
        if (!buf || !v->piece_off || !v->piece_len) {
            free(buf);
            FAIL(KINFER_E_NOMEM, "out of memory");
        }
        for (int32_t i = 0; i < n; i++) {
            size_t start = len;
            if (render_piece(v, i, &buf, &len, &cap) < 0 || len > UINT32_MAX) {
                free(buf);
                FAIL(KINFER_E_NOMEM, "out of memory");
            }
            v->piece_off[i] = (uint32_t)start;
            v->piece_len[i] = (uint32_t)(len - start);
        }
        v->piece = buf;
    }

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

kinfer_status vocab_load(kinfer_model *model, struct kinfer_vocab **out)
{
    char err[256];
    *out = NULL;
    if (!model->gguf)
        return model_fail(model, KINFER_E_INVALID_ARG, "vocab: no parsed GGUF");
    kinfer_status st = vocab_build(model->gguf, NULL, out, err, sizeof err);
    if (st != KINFER_OK)
        return model_fail(model, st, "vocab: %s", err);
    return KINFER_OK;
}

void vocab_free(struct kinfer_vocab *v)
{
    if (!v)
        return;
    free(v->text);
    free(v->text_off);
    free(v->text_len);
    free(v->score);
    free(v->attr);
    free(v->hash);
    free(v->merge_text);
    free(v->merge_off);
    free(v->merge_llen);
    free(v->merge_rlen);
    free(v->mhash);
    free(v->piece);
    free(v->piece_off);
    free(v->piece_len);
    free(v->special);
    free(v->eog);
    pretok_free(v->pretok);
    free(v);
}

/* -------------------------------------------------------------- token lists */

typedef struct tokvec {
    int32_t *v;
    size_t n, cap;
    int oom;
} tokvec;

static void tv_push(tokvec *t, int32_t id)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        int32_t *nv = realloc(t->v, cap * sizeof *nv);
        if (!nv) {
            t->oom = 1;
            return;
        }
        t->v = nv;
        t->cap = cap;
    }
    t->v[t->n++] = id;
}

/* ---------------------------------------------------- merge queue (a heap) */

typedef struct bigram {
    int32_t left, right;
    float score;      /* SPM: higher first */
    int32_t rank;     /* BPE: lower first */
    uint32_t size;    /* bytes of left + right when queued */
} bigram;

typedef struct heap {
    bigram *v;
    size_t n, cap;
    int spm;
    int oom;
} heap;

/* a should pop before b */
static int bigram_before(const heap *h, const bigram *a, const bigram *b)
{
    if (h->spm) {
        if (a->score != b->score)
            return a->score > b->score;
    } else if (a->rank != b->rank) {
        return a->rank < b->rank;
    }
    return a->left < b->left;
}

static void heap_push(heap *h, bigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bigram *nv = realloc(h->v, cap * sizeof *nv);
        if (!nv) {
            h->oom = 1;
            return;
        }
        h->v = nv;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(h, &b, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
}

static bigram heap_pop(heap *h)
{
    bigram top = h->v[0];
    bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && bigram_before(h, &h->v[c + 1], &h->v[c]))
            c++;
        if (!bigram_before(h, &h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

/* A symbol: a byte range of the text being merged, in a linked list. */
typedef struct symbol {
    int32_t prev, next;
    uint32_t off, n;
} symbol;

typedef struct session {
    const struct kinfer_vocab *v;
    symbol *sym;
    size_t n_sym, cap_sym;
    heap q;
    char *buf;            /* the text being merged */
    size_t buf_len, buf_cap;
    tokvec out;
    int oom;
} session;

static int buf_reserve(session *s, size_t n)
{
    if (n <= s->buf_cap)
        return 0;
    size_t cap = s->buf_cap ? s->buf_cap : 256;
    while (cap < n)
        cap *= 2;
    char *nb = realloc(s->buf, cap);
    if (!nb) {
        s->oom = 1;
        return -1;
    }
    s->buf = nb;
    s->buf_cap = cap;
    return 0;
}

static size_t utf8_len_lead(uint8_t c)
{
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

/* Split s->buf into one symbol per UTF-8 character (by lead byte). */
static int make_symbols(session *s)
{
    s->n_sym = 0;
    if (s->cap_sym < s->buf_len) {
        symbol *ns = realloc(s->sym, s->buf_len * sizeof *ns);
        if (!ns) {
            s->oom = 1;
            return -1;
        }
        s->sym = ns;
        s->cap_sym = s->buf_len;
    }
    size_t off = 0;
    int32_t idx = 0;
    while (off < s->buf_len) {
        size_t len = utf8_len_lead((uint8_t)s->buf[off]);
        if (len > s->buf_len - off)
            len = s->buf_len - off;
        symbol *y = &s->sym[s->n_sym++];
        y->off = (uint32_t)off;
        y->n = (uint32_t)len;
        off += len;
        y->prev = idx - 1;
        y->next = off == s->buf_len ? -1 : idx + 1;
        idx++;
    }
    return 0;
}

static void merge_pair(session *s, const bigram *b)
{
    symbol *l = &s->sym[b->left], *r = &s->sym[b->right];
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0)
        s->sym[r->next].prev = b->left;
}

/* ---------------------------------------------------------------------- SPM */

static void spm_try_bigram(session *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    const symbol *l = &s->sym[left], *r = &s->sym[right];
    int32_t id = vocab_find(s->v, s->buf + l->off, l->n + r->n);
    if (id == TOKEN_NULL)
        return;
    bigram b = {left, right, s->v->score[id], 0, l->n + r->n};
    heap_push(&s->q, b);
}

static void spm_byte_token(session *s, uint8_t c)
{
    static const char hex[] = "0123456789ABCDEF";
    char t[7] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>', 0};
    int32_t id = vocab_find(s->v, t, 6);
    if (id == TOKEN_NULL)
        id = vocab_find(s->v, (const char *)&c, 1);
    /* llama.cpp throws (and aborts) when neither exists; we drop the byte */
    if (id != TOKEN_NULL)
        tv_push(&s->out, id);
}

static void spm_tokenize(session *s, const char *text, size_t len, int space_prefix)
{
    /* ' ' -> U+2581 */
    size_t n_space = space_prefix ? 1 : 0;
    for (size_t i = 0; i < len; i++)
        n_space += text[i] == ' ';
    if (buf_reserve(s, len + 3 + n_space * 2) < 0)
        return;
    size_t o = 0;
    if (space_prefix) {
        memcpy(s->buf, "\xe2\x96\x81", 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s->buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            s->buf[o++] = text[i];
        }
    }
    s->buf_len = o;
    if (o == 0 || make_symbols(s) < 0)
        return;

    s->q.n = 0;
    for (size_t i = 1; i < s->n_sym; i++)
        spm_try_bigram(s, (int32_t)i - 1, (int32_t)i);
    while (s->q.n > 0 && !s->q.oom) {
        bigram b = heap_pop(&s->q);
        const symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        merge_pair(s, &b);
        spm_try_bigram(s, s->sym[b.left].prev, b.left);
        spm_try_bigram(s, b.left, s->sym[b.left].next);
    }
    if (s->q.oom) {
        s->oom = 1;
        return;
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const symbol *y = &s->sym[i];
        int32_t id = vocab_find(s->v, s->buf + y->off, y->n);
        if (id != TOKEN_NULL) {
            tv_push(&s->out, id);
        } else {
            for (uint32_t j = 0; j < y->n; j++)
                spm_byte_token(s, (uint8_t)s->buf[y->off + j]);
        }
    }
}

/* ---------------------------------------------------------------------- BPE */

static void bpe_add_bigram(session *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    const symbol *l = &s->sym[left], *r = &s->sym[right];
    int32_t rank = merge_rank(s->v, s->buf + l->off, l->n, s->buf + r->off, r->n);
    if (rank < 0)
        return;
    bigram b = {left, right, 0, rank, l->n + r->n};
    heap_push(&s->q, b);
}

/* Merge one byte-encoded word (in s->buf) and emit its tokens. */
static void bpe_word(session *s)
{
    const struct kinfer_vocab *v = s->v;
    if (v->ignore_merges) {
        int32_t id = vocab_find(v, s->buf, s->buf_len);
        if (id != TOKEN_NULL) {
            tv_push(&s->out, id);
            return;
        }
    }
    if (make_symbols(s) < 0)
        return;
    s->q.n = 0;
    for (size_t i = 1; i < s->n_sym; i++)
        bpe_add_bigram(s, (int32_t)i - 1, (int32_t)i);
    while (s->q.n > 0 && !s->q.oom) {
        bigram b = heap_pop(&s->q);
        const symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
        /* stale: one side already merged elsewhere */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        merge_pair(s, &b);
        bpe_add_bigram(s, s->sym[b.left].prev, b.left);
        bpe_add_bigram(s, b.left, s->sym[b.left].next);
    }
    if (s->q.oom) {
        s->oom = 1;
        return;
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const symbol *y = &s->sym[i];
        if (y->n == 0)
            continue;
        int32_t id = vocab_find(v, s->buf + y->off, y->n);
        if (id != TOKEN_NULL) {
            tv_push(&s->out, id);
            continue;
        }
        /* no token: each byte of the encoded text that is a token by itself */
        for (uint32_t j = 0; j < y->n; j++) {
            id = vocab_find(v, s->buf + y->off + j, 1);
            if (id != TOKEN_NULL)
                tv_push(&s->out, id);
        }
    }
}

static void bpe_tokenize(session *s, const char *text, size_t len)
{
    char *norm = NULL;
    size_t norm_len = 0, n_words = 0;
    pretok_word *words = NULL;
    kinfer_status st = pretok_split(s->v->pretok, text, len, &norm, &norm_len, &words, &n_words);
    if (st != KINFER_OK) {
        s->oom = 1;
        return;
    }
    for (size_t w = 0; w < n_words && !s->oom; w++) {
        const uint8_t *p = (const uint8_t *)norm + words[w].off;
        size_t wl = words[w].len;
        if (buf_reserve(s, wl * 2) < 0)
            break;
        size_t o = 0;
        for (size_t i = 0; i < wl; i++)
            o += (size_t)bpe_byte_to_utf8(p[i], s->buf + o);
        s->buf_len = o;
        bpe_word(s);
    }
    free(norm);
    free(words);
}

/* ------------------------------------------------------ special partitioning */

typedef struct frag {
    int32_t token;        /* TOKEN_NULL: raw text [off, off + len) */
    int32_t next;
    size_t off, len;
} frag;

typedef struct fragments {
    frag *v;
    size_t n, cap;
} fragments;

static int32_t frag_insert_after(fragments *f, int32_t at, int32_t token, size_t off, size_t len)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        frag *nv = realloc(f->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        f->v = nv;
        f->cap = cap;
    }
    int32_t i = (int32_t)f->n++;
    f->v[i].token = token;
    f->v[i].off = off;
    f->v[i].len = len;
    f->v[i].next = f->v[at].next;
    f->v[at].next = i;
    return i;
}

#define GRAM_BITS (1u << 20)

static uint32_t gram_hash(const char *s)
{
    uint32_t x;
    memcpy(&x, s, 4);
    return (x * 2654435761u) >> 12; /* 20 bits */
}

static int partition(const struct kinfer_vocab *v, const char *text, size_t len, int parse_special,
                     fragments *f)
{
    f->n = 0;
    if (len == 0)
        return 0;
    if (!f->cap) {
        f->v = malloc(64 * sizeof *f->v);
        if (!f->v)
            return -1;
        f->cap = 64;
    }
    f->v[0] = (frag){TOKEN_NULL, -1, 0, len};
    f->n = 1;
    /* Searching the text once per special token costs n_special passes (6000+
     * for Gemma).  A bitmap of the text's 4-byte windows lets us skip tokens
     * whose first 4 bytes occur nowhere: the result is the same. */
    uint64_t *grams = NULL;
    if (len >= 4096 && v->n_special > 64) {
        grams = calloc(GRAM_BITS / 64, sizeof *grams);
        if (grams) {
            for (size_t i = 0; i + 4 <= len; i++) {
                uint32_t h = gram_hash(text + i);
                grams[h / 64] |= 1ull << (h % 64);
            }
        }
    }
    for (int32_t k = 0; k < v->n_special; k++) {
        int32_t id = v->special[k];
        uint32_t attr = v->attr[id];
        if (!parse_special && (attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
            continue;
        const char *t = v->text + v->text_off[id];
        size_t tl = v->text_len[id];
        if (grams && tl >= 4) {
            uint32_t h = gram_hash(t);
            if (!(grams[h / 64] >> (h % 64) & 1))
                continue;
        }
        for (int32_t i = 0; i != -1; i = f->v[i].next) {
            if (f->v[i].token != TOKEN_NULL || f->v[i].len < tl)
                continue;
            int32_t node = i;
            size_t off = f->v[node].off, flen = f->v[node].len;
            for (;;) {
                const char *m = memmem(text + off, flen, t, tl);
                if (!m) {
                    f->v[node].off = off;
                    f->v[node].len = flen;
                    break;
                }
                size_t match = (size_t)(m - text);
                size_t left_len = match - off;
                if (attr & TOK_ATTR_LSTRIP) {
                    while (left_len > 0 && isspace((unsigned char)text[off + left_len - 1]))
                        left_len--;
                }
                size_t right_off = match + tl, right_len = off + flen - right_off;
                if (attr & TOK_ATTR_RSTRIP) {
                    while (right_len > 0 && isspace((unsigned char)text[right_off])) {
                        right_off++;
                        right_len--;
                    }
                }
                int32_t tok_node;
                if (left_len > 0) {
                    f->v[node].off = off;
                    f->v[node].len = left_len;
                    tok_node = frag_insert_after(f, node, id, 0, 0);
                    if (tok_node < 0) {
                        free(grams);
                        return -1;
                    }
                } else {
                    f->v[node].token = id;
                    tok_node = node;
                }
                i = tok_node;
                if (right_len == 0)
                    break;
                node = frag_insert_after(f, tok_node, TOKEN_NULL, right_off, right_len);
                if (node < 0) {
                    free(grams);
                    return -1;
                }
                i = node;
                off = right_off;
                flen = right_len;
            }
        }
    }
    free(grams);
    return 0;
}

int64_t vocab_tokenize(const struct kinfer_vocab *v, const char *text, size_t text_len,
                       int32_t *tokens, int64_t n_max, int add_special, int parse_special,
                       kinfer_status *status)
{
    *status = KINFER_OK;
    session s = {0};
    s.v = v;
    s.q.spm = v->type == VOCAB_SPM;
    fragments f = {0};
    if (partition(v, text, text_len, parse_special, &f) < 0) {
        free(f.v);
        *status = KINFER_E_NOMEM;
        return 0;
    }
    if (add_special && v->add_bos && v->bos != TOKEN_NULL)
        tv_push(&s.out, v->bos);
    int prev_special = 1;
    for (int32_t i = f.n ? 0 : -1; i != -1 && !s.oom && !s.out.oom; i = f.v[i].next) {
        if (f.v[i].token != TOKEN_NULL) {
            tv_push(&s.out, f.v[i].token);
            prev_special = 1;
            continue;
        }
        if (v->type == VOCAB_SPM)
            spm_tokenize(&s, text + f.v[i].off, f.v[i].len, v->add_space_prefix && prev_special);
        else
            bpe_tokenize(&s, text + f.v[i].off, f.v[i].len);
        prev_special = 0;
    }
    if (add_special && v->add_eos && v->eos != TOKEN_NULL)
        tv_push(&s.out, v->eos);

    int64_t result;
    if (s.oom || s.out.oom || s.q.oom) {
        *status = KINFER_E_NOMEM;
        result = 0;
    } else if ((int64_t)s.out.n > n_max) {
        result = -(int64_t)s.out.n;
    } else {
        if (s.out.n)
            memcpy(tokens, s.out.v, s.out.n * sizeof *tokens);
        result = (int64_t)s.out.n;
    }
    free(f.v);
    free(s.sym);
    free(s.q.v);
    free(s.buf);
    free(s.out.v);
    return result;
}

/* ---------------------------------------------------------- detokenization */

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *len + n)
            c *= 2;
        char *nb = realloc(*buf, c);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    return 0;
}

/* token_to_piece(special = true) as llama.cpp computes it */
static int render_piece(const struct kinfer_vocab *v, int32_t id, char **buf, size_t *len,
                        size_t *cap)
{
    const char *t = v->text + v->text_off[id];
    size_t tl = v->text_len[id];
    uint32_t attr = v->attr[id];
    if (attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED))
        return append(buf, len, cap, t, tl);
    if (attr & TOK_ATTR_NORMAL) {
        if (v->type == VOCAB_SPM || v->escape_whitespaces) {
            for (size_t i = 0; i < tl; i++) {
                if (i + 2 < tl && memcmp(t + i, "\xe2\x96\x81", 3) == 0) {
                    if (append(buf, len, cap, " ", 1) < 0)
                        return -1;
                    i += 2;
                } else if (append(buf, len, cap, t + i, 1) < 0) {
                    return -1;
                }
            }
            return 0;
        }
        /* GPT-2 byte decoding */
        for (size_t i = 0; i < tl;) {
            uint32_t cpt;
            size_t k = utf8_decode_llama((const uint8_t *)t + i, tl - i, &cpt);
            const char *src = t + i;
            char fffd[3] = {(char)0xef, (char)0xbf, (char)0xbd};
            if (k == 0) {
                cpt = 0xfffd;
                src = fffd;
                k = 1;
            }
            int byte = bpe_cpt_to_byte(cpt);
            if (byte >= 0) {
                char c = (char)byte;
                if (append(buf, len, cap, &c, 1) < 0)
                    return -1;
            } else {
                size_t ul = cpt == 0xfffd && src == fffd ? 3 : k;
                char tmp[32];
                if (append(buf, len, cap, "[UNK_BYTE_0x", 12) < 0)
                    return -1;
                for (size_t j = 0; j < ul; j++) {
                    snprintf(tmp, sizeof tmp, "%02x", (uint8_t)src[j]);
                    if (append(buf, len, cap, tmp, 2) < 0)
                        return -1;
                }
                if (append(buf, len, cap, t, tl) < 0 || append(buf, len, cap, "]", 1) < 0)
                    return -1;
            }
            i += k;
        }
        return 0;
    }
    if (attr & TOK_ATTR_BYTE) {
        /* strtol of the two characters after "<0x" */
        char hex[3] = {0};
        for (int j = 0; j < 2 && 3 + (size_t)j < tl; j++)
            hex[j] = t[3 + j];
        char c = (char)strtol(hex, NULL, 16);
        return append(buf, len, cap, &c, 1);
    }
    return 0;
}

int32_t vocab_n_tokens(const struct kinfer_vocab *v)
{
    return v ? v->n_tokens : 0;
}

uint32_t vocab_token_attr(const struct kinfer_vocab *v, int32_t id)
{
    return v && id >= 0 && id < v->n_tokens ? v->attr[id] : TOK_ATTR_UNDEFINED;
}

int32_t vocab_token_to_piece(const struct kinfer_vocab *v, int32_t token, char *buf, int32_t size,
                             int32_t lstrip, int special)
{
    if (!v || token < 0 || token >= v->n_tokens)
        return 0;
    uint32_t attr = v->attr[token];
    if (!special && (attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL)))
        return 0;
    const char *p = v->piece + v->piece_off[token];
    size_t n = v->piece_len[token];
    for (int32_t i = 0; i < lstrip && n && *p == ' '; i++) {
        p++;
        n--;
    }
    if (n > (size_t)INT32_MAX)
        return 0;
    if (size < (int32_t)n)
        return -(int32_t)n;
    if (n)
        memcpy(buf, p, n);
    return (int32_t)n;
}

int64_t vocab_detokenize(const struct kinfer_vocab *v, const int32_t *tokens, int64_t n,
                         char *buf, int64_t size, int remove_special, int unparse_special)
{
    if (!v || n <= 0)
        return 0;
    int remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && tokens[0] == v->bos) {
        remove_space = 0;
        n--;
        tokens++;
    }
    if (remove_special && v->add_eos && n > 0 && tokens[n - 1] == v->eos)
        n--;
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = tokens[i];
        if (id < 0 || id >= v->n_tokens) {
            remove_space = 0;
            continue;
        }
        int64_t avail = size - total;
        if (avail < 0)
            avail = 0;
        int32_t k = vocab_token_to_piece(v, id, buf && total <= size ? buf + total : NULL,
                                         avail > INT32_MAX ? INT32_MAX : (int32_t)avail,
                                         remove_space, unparse_special);
        remove_space = 0;
        total += k < 0 ? -(int64_t)k : k;
    }
    if (total > size)
        return -total;
    if (v->clean_spaces && total > 0) {
        char *text = buf;
        /* " ?", " !", " .", " ," lose their space */
        int64_t t1 = total, w = 1;
        for (int64_t i = 1; i < t1; i++) {
            char x = text[i];
            if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
                w--;
            text[w++] = x;
        }
        /* " ' " loses both spaces */
        int64_t t2 = w;
        w = 1;
        for (int64_t i = 1; i < t2; i++) {
            char x = text[i];
            if (x == '\'' && i + 1 < t2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
                w--;
                text[++i] = 0;
            }
            text[w++] = x;
        }
        /* " 's", " 'm", " 're", " 've" lose their space */
        int64_t t3 = w;
        w = 1;
        for (int64_t i = 1; i < t3; i++) {
            char x = text[i];
            if (text[i - 1] == ' ' && x == '\'' && i + 1 < t3) {
                char x1 = text[i + 1];
                if (x1 == 's' || x1 == 'm')
                    w--;
                else if (i + 2 < t3 && ((x1 == 'r' && text[i + 2] == 'e') ||
                                        (x1 == 'v' && text[i + 2] == 'e')))
                    w--;
            }
            text[w++] = x;
        }
        total = w;
    }
    if (total < size)
        buf[total] = 0;
    return total;
}

size_t utf8_complete_prefix(const char *s, size_t n)
{
    /* look back at most 3 bytes for a lead byte whose sequence is cut short */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t c = (uint8_t)s[n - back];
        if ((c & 0xc0) == 0x80)
            continue; /* continuation: keep looking for the lead */
        size_t need = c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc0 && c < 0xe0 ? 2 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

/* ---------------------------------------------------------------- public API */

static const struct kinfer_vocab *model_vocab(const kinfer_model *model)
{
    return model ? model->vocab : NULL;
}

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
    const struct kinfer_vocab *v = model_vocab(model);
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
    return vocab_token_to_piece(model_vocab(model), token, buf, size < 0 ? 0 : size, 0, special);
}

int64_t kinfer_detokenize(const kinfer_model *model, const kinfer_token *tokens, int64_t n_tokens,
                          char *buf, int64_t size, bool remove_special, bool unparse_special)
{
    if ((!tokens && n_tokens > 0) || (!buf && size > 0) || size < 0)
        return 0;
    return vocab_detokenize(model_vocab(model), tokens, n_tokens, buf, size, remove_special,
                            unparse_special);
}

int32_t kinfer_vocab_n_tokens(const kinfer_model *model)
{
    return vocab_n_tokens(model_vocab(model));
}

const char *kinfer_vocab_type(const kinfer_model *model)
{
    const struct kinfer_vocab *v = model_vocab(model);
    if (!v)
        return "none";
    return v->type == VOCAB_SPM ? "spm" : "bpe";
}

bool kinfer_vocab_add_bos(const kinfer_model *model)
{
    const struct kinfer_vocab *v = model_vocab(model);
    return v && v->add_bos;
}

bool kinfer_vocab_add_eos(const kinfer_model *model)
{
    const struct kinfer_vocab *v = model_vocab(model);
    return v && v->add_eos;
}

#define TOKEN_GETTER(name, field)                                  \
    kinfer_token kinfer_token_##name(const kinfer_model *model)    \
    {                                                              \
        const struct kinfer_vocab *v = model_vocab(model);         \
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
    const struct kinfer_vocab *v = model_vocab(model);
    if (!v || token < 0)
        return false;
    return bsearch(&token, v->eog, (size_t)v->n_eog, sizeof *v->eog, cmp_i32) != NULL;
}

bool kinfer_token_is_control(const kinfer_model *model, kinfer_token token)
{
    return (vocab_token_attr(model_vocab(model), token) & TOK_ATTR_CONTROL) != 0;
}

const char *kinfer_token_text(const kinfer_model *model, kinfer_token token)
{
    const struct kinfer_vocab *v = model_vocab(model);
    if (!v || token < 0 || token >= v->n_tokens)
        return NULL;
    return v->text + v->text_off[token];
}

float kinfer_token_score(const kinfer_model *model, kinfer_token token)
{
    const struct kinfer_vocab *v = model_vocab(model);
    if (!v || token < 0 || token >= v->n_tokens)
        return 0.0f;
    return v->score[token];
}

uint32_t kinfer_token_attr(const kinfer_model *model, kinfer_token token)
{
    return vocab_token_attr(model_vocab(model), token);
}

/* --------------------------------------------------- streaming detokenizer */

struct kinfer_detok {
    const struct kinfer_vocab *vocab;
    bool special;
    bool first;
    char pending[4];   /* start of a UTF-8 character whose end has not come yet */
    int n_pending;
};

kinfer_status kinfer_detok_new(const kinfer_model *model, bool special, kinfer_detok **out)
{
    if (!out)
        return KINFER_E_INVALID_ARG;
    *out = NULL;
    if (!model)
        return KINFER_E_INVALID_ARG;
    if (!model->vocab)
        return KINFER_E_UNSUPPORTED;
    kinfer_detok *d = calloc(1, sizeof *d);
    if (!d)
        return KINFER_E_NOMEM;
    d->vocab = model->vocab;
    d->special = special;
    d->first = true;
    *out = d;
    return KINFER_OK;
}

int32_t kinfer_detok_push(kinfer_detok *d, kinfer_token token, char *buf, int32_t size)
{
    if (!d || (!buf && size > 0) || size < 0)
        return 0;
    const struct kinfer_vocab *v = d->vocab;
    int32_t lstrip = d->first && v->add_space_prefix ? 1 : 0;
    int32_t k = vocab_token_to_piece(v, token, NULL, 0, lstrip, d->special);
    int32_t plen = k < 0 ? -k : k;
    /* pending + piece, then hold back an unfinished character */
    char *tmp = malloc((size_t)plen + 4);
    if (!tmp)
        return 0;
    memcpy(tmp, d->pending, (size_t)d->n_pending);
    vocab_token_to_piece(v, token, tmp + d->n_pending, plen, lstrip, d->special);
    size_t total = (size_t)d->n_pending + (size_t)plen;
    size_t emit = utf8_complete_prefix(tmp, total);
    if (emit > (size_t)size) {
        free(tmp);
        return -(int32_t)emit;
    }
    if (emit)
        memcpy(buf, tmp, emit);
    d->n_pending = (int)(total - emit);
    memcpy(d->pending, tmp + emit, (size_t)d->n_pending);
    d->first = false;
    free(tmp);
    return (int32_t)emit;
}

int32_t kinfer_detok_flush(kinfer_detok *d, char *buf, int32_t size)
{
    if (!d || (!buf && size > 0) || size < 0)
        return 0;
    if (d->n_pending > size)
        return -d->n_pending;
    int32_t n = d->n_pending;
    if (n)
        memcpy(buf, d->pending, (size_t)n);
    d->n_pending = 0;
    return n;
}

void kinfer_detok_free(kinfer_detok *d)
{
    free(d);
}
