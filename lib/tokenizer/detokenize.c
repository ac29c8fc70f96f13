/*
 * detokenize.c — tokens to text, as llama.cpp's token_to_piece and
 * detokenize compute it (byte-fallback and GPT-2 byte decoding, the leading
 * space of SPM, clean_spaces), and the streaming decoder kinfer_detok_* that
 * produces the same text a token at a time.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* ------------------------------------------------------------ token pieces */

/* Output of vocab_render_piece: counts every byte, keeps those that fit. */
typedef struct piece_out {
    char *buf;
    size_t size, len;
} piece_out;

static void put(piece_out *o, const char *s, size_t n)
{
    if (o->len < o->size) {
        size_t k = o->size - o->len < n ? o->size - o->len : n;
        memcpy(o->buf + o->len, s, k);
    }
    o->len += n;
}

size_t vocab_render_piece(const struct kinfer_vocab *v, int32_t id, char *buf, size_t size)
{
    piece_out o = {buf, size, 0};
    const char *t = vocab_text(v, id);
    size_t tl = vocab_text_len(v, id);
    uint32_t attr = v->attr[id];
    if (attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        put(&o, t, tl);
        return o.len;
    }
    if (attr & TOK_ATTR_NORMAL) {
        if (v->type == VOCAB_SPM || v->type == VOCAB_WPM || v->escape_whitespaces) {
            for (size_t i = 0; i < tl; i++) {
                if (i + 2 < tl && memcmp(t + i, "\xe2\x96\x81", 3) == 0) {
                    put(&o, " ", 1);
                    i += 2;
                } else {
                    put(&o, t + i, 1);
                }
            }
            return o.len;
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
                put(&o, &c, 1);
            } else {
                size_t ul = cpt == 0xfffd && src == fffd ? 3 : k;
                char tmp[32];
                put(&o, "[UNK_BYTE_0x", 12);
                for (size_t j = 0; j < ul; j++) {
                    snprintf(tmp, sizeof tmp, "%02x", (uint8_t)src[j]);
                    put(&o, tmp, 2);
                }
                put(&o, t, tl);
                put(&o, "]", 1);
            }
            i += k;
        }
        return o.len;
    }
    if (attr & TOK_ATTR_BYTE) {
        /* strtol of the two characters after "<0x" */
        char hex[3] = {0};
        for (int j = 0; j < 2 && 3 + (size_t)j < tl; j++)
            hex[j] = t[3 + j];
        char c = (char)strtol(hex, NULL, 16);
        put(&o, &c, 1);
    }
    return o.len;
}

int32_t vocab_token_to_piece(const struct kinfer_vocab *v, int32_t token, char *buf, int32_t size,
                             int32_t lstrip, int special)
{
    if (!v || token < 0 || token >= v->n_tokens)
        return 0;
    uint32_t attr = v->attr[token];
    if (!special && (attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL)))
        return 0;
    /* almost every piece fits the stack; a longer one is rendered twice */
    char small[256];
    char *p = small;
    size_t n = vocab_render_piece(v, token, small, sizeof small);
    char *heap = NULL;
    if (n > sizeof small) {
        if (!(heap = malloc(n)))
            return 0;
        vocab_render_piece(v, token, heap, n);
        p = heap;
    }
    int32_t ret;
    for (int32_t i = 0; i < lstrip && n && *p == ' '; i++) {
        p++;
        n--;
    }
    if (n > (size_t)INT32_MAX)
        ret = 0;
    else if (size < (int32_t)n)
        ret = -(int32_t)n;
    else {
        if (n)
            memcpy(buf, p, n);
        ret = (int32_t)n;
    }
    free(heap);
    return ret;
}

/* ------------------------------------------------------------ clean spaces */

/*
 * llama.cpp's clean_up_tokenization_spaces, on for some BPE pre-types: three
 * passes over text[0..n) in place, each reading the previous one's output;
 * returns the new length.  Only ' ' bytes are ever removed.
 */
static int64_t clean_spaces(char *text, int64_t n)
{
    if (n <= 0)
        return n;
    /* " ?", " !", " .", " ," lose their space */
    int64_t t1 = n, w = 1;
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
    return w;
}

/* ---------------------------------------------------------- detokenization */

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
    if (v->clean_spaces)
        total = clean_spaces(buf, total);
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

/* --------------------------------------------------- streaming detokenizer */

/*
 * The decoder holds back raw text (pieces before clean_spaces) that it cannot
 * emit yet: an unfinished UTF-8 character, and, when the vocabulary cleans
 * spaces, a tail the rule may still change.  clean_spaces only removes ' '
 * bytes, and only next to ' ', '\'' and the two bytes after an apostrophe, so
 * clean(a + b) == clean(a) + clean(b) whenever a ends in two bytes that are
 * neither ' ' nor '\'' (no pass can look across that boundary, and those two
 * bytes stay the last two of a through every pass).  The decoder cuts only
 * there, so the concatenated output equals vocab_detokenize's.
 */
struct kinfer_detok {
    const struct kinfer_vocab *vocab;
    bool special;
    bool first;      /* nothing pushed yet: the space prefix is stripped */
    char *held;      /* (n_held) raw text not emitted yet */
    size_t n_held, cap_held;
    char *scratch;   /* clean_spaces of a prefix too long for the caller's buffer */
    size_t cap_scratch;
};

static int reserve(char **p, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < n)
        c *= 2;
    char *np = realloc(*p, c);
    if (!np)
        return -1;
    *p = np;
    *cap = c;
    return 0;
}

static int clean_safe(char c)
{
    return c != ' ' && c != '\'';
}

/* The longest prefix of s[0..n) after which clean_spaces may cut (see above).
 * Text before s ended at such a cut, or is a different stream. */
static size_t clean_cut(const char *s, size_t n)
{
    size_t c = n;
    while (c > 0 && !(clean_safe(s[c - 1]) && (c == 1 || clean_safe(s[c - 2]))))
        c--;
    return c;
}

/* Write the output for held[0..n) to buf: its length, or the length negated
 * when size is too small (nothing written, nothing changed); INT32_MIN when
 * out of memory. */
static int32_t emit_held(kinfer_detok *d, size_t n, char *buf, int32_t size)
{
    if (n > (size_t)INT32_MAX)
        return INT32_MIN;
    if (!d->vocab->clean_spaces || n == 0) {
        if (n > (size_t)size)
            return -(int32_t)n;
        if (n)
            memcpy(buf, d->held, n);
        return (int32_t)n;
    }
    if (n <= (size_t)size) {
        memcpy(buf, d->held, n);
        return (int32_t)clean_spaces(buf, (int64_t)n);
    }
    if (reserve(&d->scratch, &d->cap_scratch, n) < 0)
        return INT32_MIN;
    memcpy(d->scratch, d->held, n);
    int32_t e = (int32_t)clean_spaces(d->scratch, (int64_t)n);
    if (e > size)
        return -e;
    memcpy(buf, d->scratch, (size_t)e);
    return e;
}

kinfer_status vocab_detok_new(const struct kinfer_vocab *vocab, bool special, kinfer_detok **out)
{
    if (!out)
        return KINFER_E_INVALID_ARG;
    *out = NULL;
    if (!vocab)
        return KINFER_E_UNSUPPORTED;
    kinfer_detok *d = calloc(1, sizeof *d);
    if (!d || reserve(&d->held, &d->cap_held, 64) < 0) {
        free(d);
        return KINFER_E_NOMEM;
    }
    d->vocab = vocab;
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
    size_t plen = (size_t)(k < 0 ? -(int64_t)k : k);
    /* held + piece; n_held grows only once the output is taken */
    if (reserve(&d->held, &d->cap_held, d->n_held + plen) < 0)
        return 0;
    vocab_token_to_piece(v, token, d->held + d->n_held, (int32_t)plen, lstrip, d->special);
    size_t total = d->n_held + plen;
    size_t cut = utf8_complete_prefix(d->held, total);
    if (v->clean_spaces)
        cut = clean_cut(d->held, cut);
    int32_t e = emit_held(d, cut, buf, size);
    if (e == INT32_MIN)
        return 0;
    if (e < 0)
        return e;
    memmove(d->held, d->held + cut, total - cut);
    d->n_held = total - cut;
    d->first = false;
    return e;
}

int32_t kinfer_detok_flush(kinfer_detok *d, char *buf, int32_t size)
{
    if (!d || (!buf && size > 0) || size < 0)
        return 0;
    int32_t e = emit_held(d, d->n_held, buf, size);
    if (e == INT32_MIN)
        return 0;
    if (e < 0)
        return e;
    d->n_held = 0;
    return e;
}

void kinfer_detok_free(kinfer_detok *d)
{
    if (!d)
        return;
    free(d->held);
    free(d->scratch);
    free(d);
}
