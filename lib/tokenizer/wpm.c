/*
 * wpm.c — WordPiece (tokenizer.ggml.model = "bert"), as llama.cpp's WPM
 * tokenizer (src/llama-vocab.cpp, llm_tokenizer_wpm_session) does it.
 *
 * Words: the text's code points, each invalid UTF-8 byte read as U+FFFD;
 * with strip_accents each mapped to the first code point of its
 * decomposition and combining marks dropped; NUL, U+FFFD and control
 * characters dropped; whitespace ends a word; punctuation, ASCII symbols
 * and CJK ideographs are words of their own; lowercased when asked.
 * Pieces: the converter stored a word-initial piece "w" as "\u2581w" and a
 * continuation "##w" as "w", so a word is "\u2581" + word cut greedily
 * into the longest vocabulary texts from the left, byte by byte; a word
 * with a byte no piece covers becomes the one unknown token.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_tables.h"

#define PHANTOM_SPACE "\xe2\x96\x81" /* U+2581 */

static uint8_t cpt_class(uint32_t cpt)
{
    uint32_t lo = 0, hi = ucd_n_class; /* the last start <= cpt */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (ucd_class_start[mid] <= cpt) lo = mid;
        else hi = mid;
    }
    return ucd_class_value[lo];
}

static uint32_t cpt_nfd_first(uint32_t cpt)
{
    uint32_t lo = 0, hi = ucd_n_nfd;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (ucd_nfd[mid][1] < cpt) lo = mid + 1;
        else hi = mid;
    }
    return lo < ucd_n_nfd && ucd_nfd[lo][0] <= cpt ? ucd_nfd[lo][2] : cpt;
}

static uint32_t cpt_lower(uint32_t cpt)
{
    uint32_t lo = 0, hi = ucd_n_lower;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (ucd_lower[mid][0] < cpt) lo = mid + 1;
        else hi = mid;
    }
    return lo < ucd_n_lower && ucd_lower[lo][0] == cpt ? ucd_lower[lo][1] : cpt;
}

/* llama.cpp's set (as BERT's, but for 0x2B820..0x2B91F, as the Rust code) */
static int is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static size_t utf8_put(uint32_t c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xc0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

typedef struct wpm_out {
    int32_t **v;
    size_t *n, *cap;
    int oom;
} wpm_out;

static void push(wpm_out *o, int32_t id)
{
    if (*o->n == *o->cap) {
        int32_t *grown = array_grow(*o->v, o->cap, sizeof *grown, 256);
        if (!grown) {
            o->oom = 1;
            return;
        }
        *o->v = grown;
    }
    (*o->v)[(*o->n)++] = id;
}

/* word[0..n): PHANTOM_SPACE then the word's bytes (n > 3) */
static void tokenize_word(const struct kinfer_vocab *v, const char *word, size_t n, wpm_out *o)
{
    const size_t start = *o->n;
    for (size_t i = 0; i < n && !o->oom; i++) {
        size_t j = i + v->max_token_len + 1 < n ? i + v->max_token_len + 1 : n;
        int32_t id = TOKEN_NULL;
        for (; j > i; j--)
            if ((id = vocab_find(v, word + i, j - i)) != TOKEN_NULL) break;
        if (id == TOKEN_NULL) { /* the whole word is unknown */
            *o->n = start;
            break;
        }
        push(o, id);
        i = j - 1;
    }
    if (*o->n == start) push(o, v->unk);
}

int wpm_tokenize(const struct kinfer_vocab *v, const char *text, size_t len, int32_t **tokens,
                 size_t *n_tokens, size_t *cap)
{
    wpm_out o = {tokens, n_tokens, cap, 0};
    /* the word being built, after its phantom space: at most 4 bytes per input byte */
    char *word = malloc(3 + 4 * len + 1);
    if (!word) return -1;
    memcpy(word, PHANTOM_SPACE, 3);
    size_t wn = 3;
    for (size_t i = 0; i < len && !o.oom;) {
        uint32_t c;
        size_t k = utf8_decode_llama((const uint8_t *)text + i, len - i, &c);
        if (k == 0) {
            c = 0xfffd;
            k = 1;
        }
        i += k;
        if (c > 0x10ffff) continue; /* llama.cpp cannot write it back (it throws) */
        if (v->strip_accents) c = cpt_nfd_first(c);
        const uint8_t cls = cpt_class(c);
        if (cls & UCD_WHITESPACE) {
            if (wn > 3) tokenize_word(v, word, wn, &o);
            wn = 3;
            continue;
        }
        if (c == 0 || c == 0xfffd || (cls & UCD_CONTROL)) continue;
        if (v->strip_accents && (cls & UCD_MARK)) continue;
        const uint32_t out = v->lowercase ? cpt_lower(c) : c;
        if ((cls & UCD_PUNCT) || (c < 0x7f && (cls & UCD_SYMBOL)) || is_cjk(c)) {
            if (wn > 3) tokenize_word(v, word, wn, &o);
            wn = 3 + utf8_put(out, word + 3);
            tokenize_word(v, word, wn, &o);
            wn = 3;
            continue;
        }
        wn += utf8_put(out, word + wn);
    }
    if (wn > 3 && !o.oom) tokenize_word(v, word, wn, &o);
    free(word);
    return o.oom ? -1 : 0;
}
