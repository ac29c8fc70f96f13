/*
 * piece_trie.c — the vocabulary's token pieces as a byte trie, for grammar
 * masking: a grammar state is advanced once per shared prefix instead of
 * once per token.  Built lazily (a model that never meets a grammar pays
 * nothing) and published with a compare-and-swap, since the vocabulary is
 * shared by threads.
 */
#include "tokenizer/tokenizer.h"

typedef struct builder {
    piece_trie *t;
    int32_t *order;           /* ids sorted by piece */
    uint32_t n_tok_out;
} builder;

static int cmp_piece(const void *a, const void *b, void *arg)
{
    const piece_trie *t = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->piece_off[x + 1] - t->piece_off[x], ly = t->piece_off[y + 1] - t->piece_off[y];
    int c = memcmp(t->piece + t->piece_off[x], t->piece + t->piece_off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return (x > y) - (x < y);
}

static uint32_t piece_len(const piece_trie *t, int32_t id) { return t->piece_off[id + 1] - t->piece_off[id]; }

/* Fill node n from the sorted ids order[lo, hi), which share their first
 * depth bytes. */
static void build(builder *b, uint32_t n, uint32_t lo, uint32_t hi, uint32_t depth)
{
    piece_trie *t = b->t;
    uint32_t i = lo;
    t->node[n].tok = b->n_tok_out;
    while (i < hi && piece_len(t, b->order[i]) == depth) t->tok[b->n_tok_out++] = b->order[i++];
    t->node[n].n_tok = b->n_tok_out - t->node[n].tok;
    /* children: one per distinct next byte, allocated together */
    uint32_t first = t->n_node, n_child = 0;
    for (uint32_t j = i; j < hi;) {
        uint8_t c = (uint8_t)t->piece[t->piece_off[b->order[j]] + depth];
        while (j < hi && (uint8_t)t->piece[t->piece_off[b->order[j]] + depth] == c) j++;
        n_child++;
    }
    t->node[n].child = first;
    t->node[n].n_child = (uint16_t)n_child;
    t->n_node += n_child;
    uint32_t k = first;
    for (uint32_t j = i; j < hi; k++) {
        uint8_t c = (uint8_t)t->piece[t->piece_off[b->order[j]] + depth];
        uint32_t start = j;
        while (j < hi && (uint8_t)t->piece[t->piece_off[b->order[j]] + depth] == c) j++;
        memset(&t->node[k], 0, sizeof t->node[k]);
        t->node[k].byte = c;
        build(b, k, start, j, depth + 1);
    }
}

static piece_trie *trie_build(const struct kinfer_vocab *v)
{
    int32_t n = v->n_tokens;
    piece_trie *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n_tokens = n;
    t->piece_off = malloc(((size_t)n + 1) * sizeof *t->piece_off);
    size_t cap = 1 << 16, used = 0;
    t->piece = malloc(cap);
    if (!t->piece_off || !t->piece) goto fail;
    for (int32_t id = 0; id < n; id++) {
        t->piece_off[id] = (uint32_t)used;
        size_t len = vocab_render_piece(v, id, NULL, 0);
        while (used + len + 1 > cap) {
            char *p = realloc(t->piece, cap * 2);
            if (!p) goto fail;
            t->piece = p;
            cap *= 2;
        }
        vocab_render_piece(v, id, t->piece + used, len + 1);
        const char *nul = memchr(t->piece + used, 0, len);
        used += nul ? (size_t)(nul - (t->piece + used)) : len;   /* the grammar stops at a NUL */
    }
    t->piece_off[n] = (uint32_t)used;

    builder b = {t, malloc(((size_t)n + 1) * sizeof *b.order), 0};
    t->tok = malloc(((size_t)n + 1) * sizeof *t->tok);
    t->node = malloc((used + 1) * sizeof *t->node);
    if (!b.order || !t->tok || !t->node) {
        free(b.order);
        goto fail;
    }
    uint32_t m = 0;
    for (int32_t id = 0; id < n; id++)
        if (piece_len(t, id) > 0 && !vocab_is_eog(v, id)) b.order[m++] = id;
    qsort_r(b.order, m, sizeof *b.order, cmp_piece, t);
    memset(&t->node[0], 0, sizeof t->node[0]);
    t->n_node = 1;
    build(&b, 0, 0, m, 0);
    free(b.order);
    piece_trie_node *shrunk = realloc(t->node, t->n_node * sizeof *t->node);
    if (shrunk) t->node = shrunk;
    return t;
fail:
    piece_trie_free(t);
    return NULL;
}

const piece_trie *vocab_piece_trie(const struct kinfer_vocab *vocab)
{
    struct kinfer_vocab *v = (struct kinfer_vocab *)vocab;   /* the cache is the one mutable part */
    piece_trie *t = __atomic_load_n(&v->piece_trie, __ATOMIC_ACQUIRE);
    if (t) return t;
    piece_trie *mine = trie_build(vocab);
    if (!mine) return NULL;
    piece_trie *expected = NULL;
    if (__atomic_compare_exchange_n(&v->piece_trie, &expected, mine, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return mine;
    piece_trie_free(mine);   /* another thread published first */
    return expected;
}

void piece_trie_free(piece_trie *t)
{
    if (!t) return;
    free(t->node);
    free(t->tok);
    free(t->piece);
    free(t->piece_off);
    free(t);
}
