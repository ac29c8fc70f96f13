/*
 * tokenizer.h — vocabulary and tokenizers (internal).
 *
 * A kinfer_vocab is built once from the GGUF metadata when the model loads and
 * is immutable afterwards: any number of threads may tokenize with it at once
 * (every call allocates its own scratch).
 *
 * Two algorithms, token-for-token compatible with llama.cpp:
 *  - SPM ("llama"): SentencePiece-style greedy merging of the highest-scoring
 *    adjacent pair, ' ' written as U+2581, byte-fallback tokens <0xXX>.
 *  - BPE ("gpt2"): a pre-tokenizer (PCRE2 regexes chosen by tokenizer.ggml.pre)
 *    splits the text into words, each word is mapped byte-to-unicode (GPT-2)
 *    and merged by merge rank.
 *  - WPM ("bert"): WordPiece, greedy longest pieces per normalized word
 *    (wpm.c), [CLS] ... [SEP] around the text.
 * Special tokens (control, user-defined, unknown) are cut out of the text first.
 *
 * Files: vocab.c builds the vocabulary, vocab_query.c answers the per-token
 * queries, tokenize.c turns text into tokens, detokenize.c tokens into text
 * (including the streaming decoder), pretok.c holds the BPE pre-tokenizer
 * regexes, wpm.c WordPiece (its Unicode tables in unicode_tables.c), chat.c
 * the chat templates.
 */
#ifndef KINFER_TOKENIZER_H
#define KINFER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "kinfer.h"

struct kinfer_vocab;

/* Token attributes, as llama.cpp's llama_token_attr bits. */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_NORMALIZED = 1 << 6,
    TOK_ATTR_LSTRIP = 1 << 7,
    TOK_ATTR_RSTRIP = 1 << 8,
};

/*
 * Build the vocabulary of a parsed GGUF file.  pre_override, when not NULL,
 * replaces tokenizer.ggml.pre (tests use it to exercise every pre-tokenizer
 * on one vocabulary).  *out is NULL when the file has no tokenizer
 * (no tokenizer.ggml.model, or "none"/"no_vocab"); that is not an error.
 * On failure writes a message into err.
 */
kinfer_status vocab_build(const gguf_file *gf, const char *pre_override,
                          struct kinfer_vocab **out, char *err, size_t err_size);

void vocab_free(struct kinfer_vocab *vocab);

/*
 * Tokenize with a vocabulary.  Returns the number of tokens, written to
 * tokens when it is <= n_max, or its negation when it is larger (nothing
 * useful written).  *status gets KINFER_E_NOMEM on allocation failure (and
 * the return value is then 0).
 */
int64_t vocab_tokenize(const struct kinfer_vocab *vocab, const char *text, size_t text_len,
                       int32_t *tokens, int64_t n_max, int add_special, int parse_special,
                       kinfer_status *status);

int32_t vocab_n_tokens(const struct kinfer_vocab *vocab);
uint32_t vocab_token_attr(const struct kinfer_vocab *vocab, int32_t id);

/* Piece of one token (see kinfer_token_to_piece). */
int32_t vocab_token_to_piece(const struct kinfer_vocab *vocab, int32_t token, char *buf,
                             int32_t size, int32_t lstrip, int special);

int64_t vocab_detokenize(const struct kinfer_vocab *vocab, const int32_t *tokens, int64_t n,
                         char *buf, int64_t size, int remove_special, int unparse_special);

/* Length of the longest prefix of s[0..n) that does not end inside an
 * incomplete (but so far valid) UTF-8 sequence. */
size_t utf8_complete_prefix(const char *s, size_t n);

/* A growable array's storage with twice the capacity (first_cap when it
 * has none): the new pointer, *cap updated; NULL when out of memory (the
 * array is left as it was).  Every list the tokenizers build grows so. */
static inline void *array_grow(void *items, size_t *cap, size_t elem_size, size_t first_cap)
{
    size_t new_cap = *cap ? *cap * 2 : first_cap;
    void *grown = realloc(items, new_cap * elem_size);
    if (grown)
        *cap = new_cap;
    return grown;
}

/* WordPiece (wpm.c): the tokens of text[0..len) appended to the growable
 * array *tokens (*n_tokens used of *cap).  -1 when out of memory. */
int wpm_tokenize(const struct kinfer_vocab *vocab, const char *text, size_t len, int32_t **tokens,
                 size_t *n_tokens, size_t *cap);

/* ------------------------------------------------------------- pre-tokenizer
 * (pretok.c)  Splits text into words as llama.cpp's unicode_regex_split:
 * each regex of the pre-type splits every piece produced by the previous one
 * into its matches and the gaps between them. */

typedef struct pretok pretok;

/* NULL name = "default". KINFER_E_UNSUPPORTED for an unknown name. On success
 * also tells whether the pre-type sets ignore_merges / clean_spaces /
 * add_bos (llama.cpp's defaults for that type; metadata can override add_bos). */
typedef struct pretok_info {
    int ignore_merges;
    int clean_spaces;
    int add_bos;
} pretok_info;

kinfer_status pretok_new(const char *name, pretok **out, pretok_info *info, char *err,
                         size_t err_size);
void pretok_free(pretok *pt);

/* A word: byte range of the normalized text. */
typedef struct pretok_word {
    uint32_t off;
    uint32_t len;
} pretok_word;

/*
 * Split text.  *norm receives a malloc'd copy of the text as llama.cpp sees
 * it (each invalid UTF-8 byte replaced by U+FFFD), *words a malloc'd array of
 * *n_words byte ranges into it, in order and covering it.  The caller frees
 * both.  KINFER_E_NOMEM on allocation failure.
 */
kinfer_status pretok_split(const pretok *pt, const char *text, size_t len, char **norm,
                           size_t *norm_len, pretok_word **words, size_t *n_words);

/* GPT-2 byte-to-unicode map: UTF-8 of the code point standing for byte b
 * (1 or 2 bytes) into out; returns its length. */
int bpe_byte_to_utf8(uint8_t b, char out[2]);
/* Inverse: the byte a code point stands for, or -1. */
int bpe_cpt_to_byte(uint32_t cpt);

/* Decode one code point as llama.cpp does (no overlong/surrogate checks);
 * returns the number of bytes consumed, or 0 when s[0] starts no valid
 * sequence (the caller substitutes U+FFFD and skips one byte). */
size_t utf8_decode_llama(const uint8_t *s, size_t n, uint32_t *cpt);

/* ------------------------------------------------------ vocabulary internals
 * Shared by the files of lib/tokenizer/; nothing else looks inside a
 * kinfer_vocab. */

enum { VOCAB_SPM = 1, VOCAB_BPE = 2, VOCAB_WPM = 3 };

#define TOKEN_NULL (-1)

/* Tables are sized per token, so their element sizes matter: a 262k-token
 * vocabulary (Gemma 3) costs about 7 MiB.  Lengths follow from consecutive
 * offsets, and a token's piece (its text as output) is rendered when asked
 * for rather than cached: it is a cheap function of the text. */
struct kinfer_vocab {
    int type;                 /* VOCAB_SPM, VOCAB_BPE or VOCAB_WPM */
    int32_t n_tokens;

    char *text;               /* every token's text, each NUL-terminated, in id order */
    uint32_t *text_off;       /* (n_tokens + 1) token i is text[text_off[i] .. text_off[i+1] - 1) */
    float *score;             /* (n_tokens) */
    uint16_t *attr;           /* (n_tokens) TOK_ATTR_* */

    int32_t *hash;            /* open addressing, text -> id; TOKEN_NULL = empty */
    uint32_t hash_mask;

    /* BPE merges: rank r joins (left, right); their text lives in merge_text */
    int32_t n_merges;
    char *merge_text;
    uint32_t *merge_off;      /* (n_merges + 1) merge r is "left" "right" at
                               * merge_text[merge_off[r] .. merge_off[r+1]) */
    uint32_t *merge_llen;     /* (n_merges) bytes of "left" */
    int32_t *mhash;
    uint32_t mhash_mask;

    int32_t *special;         /* control/user-defined/unknown ids, longest text first */
    int32_t n_special;
    int32_t *eog;             /* sorted ids that end generation */
    int32_t n_eog;

    int32_t bos, eos, eot, eom, unk, sep, pad, mask, nl;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;

    bool add_space_prefix, add_bos, add_eos, ignore_merges, clean_spaces, escape_whitespaces;
    bool lowercase, strip_accents; /* WPM: BertNormalizer's options */
    uint32_t max_token_len;   /* WPM: bytes of the longest token text */
    struct pretok *pretok;    /* BPE only */
    struct piece_trie *piece_trie; /* built on first use (vocab_piece_trie), atomically published */
};

static inline const char *vocab_text(const struct kinfer_vocab *v, int32_t id)
{
    return v->text + v->text_off[id];
}

static inline size_t vocab_text_len(const struct kinfer_vocab *v, int32_t id)
{
    return v->text_off[id + 1] - v->text_off[id] - 1;
}

/* Text -> id and merge -> rank tables: open addressing, FNV-1a.  Inline
 * because the tokenizers call them once per candidate pair. */

static inline uint64_t vocab_hash_bytes(const char *s, size_t n, uint64_t h)
{
    /* FNV-1a: token texts are short */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define VOCAB_HASH_SEED 0xcbf29ce484222325ull

/* The hash slot of text s: the one holding its id, or the empty one
 * (TOKEN_NULL) where it would go. */
static inline uint32_t vocab_slot(const struct kinfer_vocab *v, const char *s, size_t n)
{
    uint32_t i = (uint32_t)vocab_hash_bytes(s, n, VOCAB_HASH_SEED) & v->hash_mask;
    for (;;) {
        int32_t id = v->hash[i];
        if (id == TOKEN_NULL || (vocab_text_len(v, id) == n && memcmp(vocab_text(v, id), s, n) == 0))
            return i;
        i = (i + 1) & v->hash_mask;
    }
}

/* Id of the token with text s, or TOKEN_NULL. */
static inline int32_t vocab_find(const struct kinfer_vocab *v, const char *s, size_t n)
{
    return v->hash[vocab_slot(v, s, n)];
}

static inline uint64_t vocab_merge_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    uint64_t h = vocab_hash_bytes(l, ln, VOCAB_HASH_SEED);
    h ^= 0xff; /* a separator that cannot occur inside UTF-8 */
    h *= 0x100000001b3ull;
    return vocab_hash_bytes(r, rn, h);
}

/* The mhash slot of the BPE merge (left, right): the one holding its rank,
 * or the empty one (-1) where it would go. */
static inline uint32_t vocab_merge_slot(const struct kinfer_vocab *v, const char *l, size_t ln, const char *r,
                                        size_t rn)
{
    uint32_t i = (uint32_t)vocab_merge_hash(l, ln, r, rn) & v->mhash_mask;
    for (;;) {
        int32_t m = v->mhash[i];
        if (m < 0)
            return i;
        const char *t = v->merge_text + v->merge_off[m];
        if (v->merge_llen[m] == ln && v->merge_off[m + 1] - v->merge_off[m] == ln + rn &&
            memcmp(t, l, ln) == 0 && memcmp(t + ln, r, rn) == 0)
            return i;
        i = (i + 1) & v->mhash_mask;
    }
}

/* Rank of the BPE merge (left, right), or -1. */
static inline int32_t vocab_merge_rank(const struct kinfer_vocab *v, const char *l, size_t ln,
                                       const char *r, size_t rn)
{
    return v->mhash[vocab_merge_slot(v, l, ln, r, rn)];
}

/* qsort / bsearch order of token ids (the sorted end-of-generation set). */
static inline int vocab_cmp_id(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}


/* Whether token ends generation (false for a NULL vocabulary). */
bool vocab_is_eog(const struct kinfer_vocab *vocab, int32_t token);

/* kinfer_chat_apply_template with the template given (NULL: chatml). */
int64_t chat_apply_template(const char *tmpl, const kinfer_chat_message *messages,
                            size_t n_messages, bool add_generation_prompt, char *buf, int64_t size,
                            kinfer_error *error);

/* Token id's piece as token_to_piece(special = true) computes it: writes
 * its first min(length, size) bytes to buf and returns its length (as
 * snprintf, without the NUL). */
size_t vocab_render_piece(const struct kinfer_vocab *vocab, int32_t id, char *buf, size_t size);

/* kinfer_detok_new on a bare vocabulary (tests use it with pre_override). */
kinfer_status vocab_detok_new(const struct kinfer_vocab *vocab, bool special, kinfer_detok **out);

/* ------------------------------------------------------------ piece trie
 * (piece_trie.c)  Every token's piece (special = true, up to its first NUL
 * byte, as llama.cpp's grammar sees it) in a byte trie, so that a grammar
 * walks each shared prefix once.  End-of-generation tokens and empty pieces
 * are left out. */
typedef struct piece_trie_node {
    uint32_t child;           /* first child's index; children are contiguous */
    uint32_t tok;             /* first id in piece_trie.tok of the tokens ending here */
    uint16_t n_child;
    uint8_t byte;             /* the byte on the edge into this node */
    uint8_t pad;
    uint32_t n_tok;
} piece_trie_node;

typedef struct piece_trie {
    piece_trie_node *node;    /* (n_node) node 0 is the root (the empty prefix) */
    uint32_t n_node;
    int32_t *tok;             /* token ids grouped by node */
    char *piece;              /* every token's piece, in id order */
    uint32_t *piece_off;      /* (n_tokens + 1) piece of id i is piece[off[i] .. off[i+1]) */
    int32_t n_tokens;
} piece_trie;

/* The vocabulary's trie, built on the first call (thread-safe: a racing
 * builder's copy is dropped); NULL when out of memory. */
const piece_trie *vocab_piece_trie(const struct kinfer_vocab *vocab);
void piece_trie_free(piece_trie *t);

#endif /* KINFER_TOKENIZER_H */
