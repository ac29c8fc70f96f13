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
 * Special tokens (control, user-defined, unknown) are cut out of the text first.
 */
#ifndef KINFER_TOKENIZER_H
#define KINFER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
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

/* The model-load hook: vocab_build() on model->gguf, failures recorded with
 * model_fail(). */
kinfer_status vocab_load(kinfer_model *model, struct kinfer_vocab **out);

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

/* ------------------------------------------------------------- pre-tokenizer
 * (lib/pretok.c)  Splits text into words as llama.cpp's unicode_regex_split:
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

#endif /* KINFER_TOKENIZER_H */
