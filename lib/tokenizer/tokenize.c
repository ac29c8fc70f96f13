/*
 * tokenize.c — text to tokens, following llama.cpp's llama-vocab.cpp rule for
 * rule (so that token ids agree exactly): special tokens are cut out of the
 * text first, then each remaining fragment goes through SPM (greedy merging
 * of the highest-scoring pair) or BPE (pre-tokenizer words, merged by rank).
 * The vocabulary itself is built in vocab.c.
 */
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* -------------------------------------------------------------- token lists */

typedef struct tokvec {
    int32_t *v;
    size_t n, cap;
    int oom;
} tokvec;

static void tv_push(tokvec *t, int32_t id)
{
    if (t->n == t->cap) {
        int32_t *grown = array_grow(t->v, &t->cap, sizeof *grown, 256);
        if (!grown) {
            t->oom = 1;
            return;
        }
        t->v = grown;
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
        bigram *grown = array_grow(h->v, &h->cap, sizeof *grown, 64);
        if (!grown) {
            h->oom = 1;
            return;
        }
        h->v = grown;
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

/*
 * The merge loop SPM and BPE share: queue every adjacent pair that add()
 * accepts, then repeatedly merge the best one and queue the pairs it makes.
 * Returns -1 (and marks the session) when the queue ran out of memory.
 */
static int merge_all(session *s, void (*add)(session *, int32_t, int32_t))
{
    s->q.n = 0;
    for (size_t i = 1; i < s->n_sym; i++)
        add(s, (int32_t)i - 1, (int32_t)i);
    while (s->q.n > 0 && !s->q.oom) {
        bigram b = heap_pop(&s->q);
        const symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
        /* stale: one side already merged elsewhere */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        merge_pair(s, &b);
        add(s, s->sym[b.left].prev, b.left);
        add(s, b.left, s->sym[b.left].next);
    }
    if (s->q.oom) {
        s->oom = 1;
        return -1;
    }
    return 0;
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

    if (merge_all(s, spm_try_bigram) < 0)
        return;
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
    int32_t rank = vocab_merge_rank(s->v, s->buf + l->off, l->n, s->buf + r->off, r->n);
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
    if (merge_all(s, bpe_add_bigram) < 0)
        return;
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
        frag *grown = array_grow(f->v, &f->cap, sizeof *grown, 64);
        if (!grown)
            return -1;
        f->v = grown;
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

/* A bitmap of the 4-byte windows of text, or NULL when out of memory. */
static uint64_t *text_grams(const char *text, size_t len)
{
    uint64_t *grams = calloc(GRAM_BITS / 64, sizeof *grams);
    if (grams) {
        for (size_t i = 0; i + 4 <= len; i++) {
            uint32_t h = gram_hash(text + i);
            grams[h / 64] |= 1ull << (h % 64);
        }
    }
    return grams;
}

/* Cut every occurrence of special token id (text t, tl bytes) out of raw
 * fragment i: the text before it stays in i, the token and the text after
 * it become new fragments, and the search goes on in that text.  Returns
 * the last fragment made (the caller goes on after it), or -1 when out of
 * memory. */
static int32_t cut_special(fragments *f, int32_t i, const char *text, int32_t id, uint32_t attr,
                           const char *t, size_t tl)
{
    int32_t node = i;
    size_t off = f->v[node].off, flen = f->v[node].len;
    for (;;) {
        const char *m = memmem(text + off, flen, t, tl);
        if (!m) {
            f->v[node].off = off;
            f->v[node].len = flen;
            return i;
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
            if (tok_node < 0)
                return -1;
        } else {
            f->v[node].token = id;
            tok_node = node;
        }
        i = tok_node;
        if (right_len == 0)
            return i;
        node = frag_insert_after(f, tok_node, TOKEN_NULL, right_off, right_len);
        if (node < 0)
            return -1;
        i = node;
        off = right_off;
        flen = right_len;
    }
}

/* The text as a list of fragments: special tokens (longest first) and the
 * raw text between them.  0, or -1 when out of memory. */
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
    uint64_t *grams = len >= 4096 && v->n_special > 64 ? text_grams(text, len) : NULL;
    for (int32_t k = 0; k < v->n_special; k++) {
        int32_t id = v->special[k];
        uint32_t attr = v->attr[id];
        if (!parse_special && (attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
            continue;
        const char *t = vocab_text(v, id);
        size_t tl = vocab_text_len(v, id);
        if (grams && tl >= 4) {
            uint32_t h = gram_hash(t);
            if (!(grams[h / 64] >> (h % 64) & 1))
                continue;
        }
        for (int32_t i = 0; i != -1; i = f->v[i].next) {
            if (f->v[i].token != TOKEN_NULL || f->v[i].len < tl)
                continue;
            i = cut_special(f, i, text, id, attr, t, tl);
            if (i < 0) {
                free(grams);
                return -1;
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
    if (add_special && (v->add_bos || v->type == VOCAB_WPM) && v->bos != TOKEN_NULL)
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
        else if (v->type == VOCAB_WPM) {
            if (wpm_tokenize(v, text + f.v[i].off, f.v[i].len, &s.out.v, &s.out.n, &s.out.cap))
                s.out.oom = 1;
        } else
            bpe_tokenize(&s, text + f.v[i].off, f.v[i].len);
        prev_special = 0;
    }
    if (add_special && v->add_eos && v->eos != TOKEN_NULL)
        tv_push(&s.out, v->eos);
    if (add_special && v->type == VOCAB_WPM)
        tv_push(&s.out, v->sep); /* llama.cpp's WPM: [CLS] ... [SEP], whatever add_bos says */

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
