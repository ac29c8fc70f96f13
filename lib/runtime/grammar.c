/*
 * grammar.c — the grammar stage of sampling: which tokens can continue a
 * GBNF grammar (gbnf.c) from its current state, and advancing the state on
 * the chosen token.
 *
 * The state is llama.cpp's: a set of pushdown stacks, each a path through
 * the rules ending at a character element (or empty: the grammar may end
 * here), plus the partial UTF-8 character the last token left unfinished.
 * A token is allowed when, for some stack, each of its code points matches
 * in turn and what remains is nothing or a partial character that may still
 * match (llama_grammar_reject_candidates's rules, UTF-8 quirks included).
 *
 * Stacks are linked frames {element, frame below}, so that advancing a
 * stack shares everything under its top; frames live in arenas that are
 * rewound rather than freed.  Masking walks the vocabulary's piece trie
 * (tokenizer/piece_trie.c) depth first, advancing the stack set once per
 * trie edge and dropping a subtree as soon as no stack survives, so the
 * work follows the tokens that can start here, not the vocabulary.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "model/model.h"
#include "runtime/gbnf.h"
#include "runtime/grammar.h"
#include "tokenizer/tokenizer.h"

/* A grammar whose state would need more stacks than this is refused as
 * too ambiguous (no input may make masking unbounded). */
#define MAX_STACKS 8192

typedef struct frame {
    const gbnf_elem *pos;
    const struct frame *up;   /* NULL: the bottom */
} frame;

/* A stack is its top frame; NULL is the empty stack (the grammar is done). */
typedef const frame *stack;

enum { CHUNK_FRAMES = 4096 };

typedef struct arena {
    frame **chunk;
    size_t n_chunk, cap_chunk;
    size_t cur, used;         /* allocating in chunk[cur], used frames of it */
} arena;

typedef struct arena_mark {
    size_t cur, used;
} arena_mark;

/* A growable array of stacks; sets inside it are [begin, end) ranges so that
 * nested sets survive its reallocation. */
typedef struct stack_vec {
    stack *v;
    size_t n, cap;
} stack_vec;

typedef struct utf8_state {
    uint32_t value;
    int32_t n_remain;         /* bytes the current character still needs; < 0: invalid */
    int resuming;             /* continuing the previous token's character (its bytes are checked) */
} utf8_state;

struct kinfer_grammar {
    gbnf_grammar g;
    const struct kinfer_vocab *vocab;
    const piece_trie *trie;
    int32_t n_vocab;          /* kinfer_model_n_vocab: ids past the vocabulary are never allowed */

    stack_vec stacks;         /* the current state's stacks */
    utf8_state partial;       /* llama.cpp's partial_utf8 */
    arena state_arena[2];     /* frames of the current stacks; the other one is filled by accept */
    int state_cur;

    arena scratch;            /* frames made while masking or checking */
    stack_vec sets;           /* stack sets made while masking or checking */
    stack_vec todo, seen;     /* advance's work lists */
    int overflow;             /* MAX_STACKS passed (the state is then refused) */
    uint8_t *allowed;         /* (n_vocab) mask being filled */
    char err[256];
};

/* ---------------------------------------------------------------- memory */

static frame *arena_alloc(arena *a)
{
    if (a->n_chunk == 0 || a->used == CHUNK_FRAMES) {
        size_t next = a->n_chunk == 0 ? 0 : a->cur + 1;
        if (next == a->n_chunk) {
            if (a->n_chunk == a->cap_chunk) {
                size_t cap = a->cap_chunk ? a->cap_chunk * 2 : 8;
                frame **c = realloc(a->chunk, cap * sizeof *c);
                if (!c) return NULL;
                a->chunk = c;
                a->cap_chunk = cap;
            }
            a->chunk[a->n_chunk] = malloc(CHUNK_FRAMES * sizeof(frame));
            if (!a->chunk[a->n_chunk]) return NULL;
            a->n_chunk++;
        }
        a->cur = next;
        a->used = 0;
    }
    return &a->chunk[a->cur][a->used++];
}

static arena_mark arena_get_mark(const arena *a) { return (arena_mark){a->cur, a->used}; }

static void arena_rewind(arena *a, arena_mark m)
{
    a->cur = m.cur;
    a->used = m.used;
}

static void arena_reset(arena *a)
{
    a->cur = 0;
    a->used = 0;
}

static void arena_free(arena *a)
{
    for (size_t i = 0; i < a->n_chunk; i++) free(a->chunk[i]);
    free(a->chunk);
    memset(a, 0, sizeof *a);
}

static int vec_push(stack_vec *s, stack x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        stack *v = realloc(s->v, cap * sizeof *v);
        if (!v) return 0;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 1;
}

static stack push_frame(kinfer_grammar *gr, arena *a, stack up, const gbnf_elem *pos)
{
    frame *f = arena_alloc(a);
    if (!f) {
        gr->overflow = 1;
        return up;
    }
    f->pos = pos;
    f->up = up;
    return f;
}

static int stack_equal(stack a, stack b)
{
    while (a && b) {
        if (a == b) return 1;
        if (a->pos != b->pos) return 0;
        a = a->up;
        b = b->up;
    }
    return a == b;
}

static int set_contains(const stack_vec *v, size_t begin, stack s)
{
    for (size_t i = begin; i < v->n; i++)
        if (stack_equal(v->v[i], s)) return 1;
    return 0;
}

/* ------------------------------------------------------------ matching */

/* Whether code point c satisfies the character element at pos; *next gets
 * the element after its class. */
static int match_char(const gbnf_elem *pos, uint32_t c, const gbnf_elem **next)
{
    int positive = pos->type == GE_CHAR || pos->type == GE_CHAR_ANY;
    int found = 0;
    do {
        if (pos[1].type == GE_CHAR_RNG_UPPER) {
            found = found || (pos->value <= c && c <= pos[1].value);
            pos += 2;
        } else if (pos->type == GE_CHAR_ANY) {
            found = 1;
            pos += 1;
        } else {
            found = found || pos->value == c;
            pos += 1;
        }
    } while (pos->type == GE_CHAR_ALT);
    *next = pos;
    return found == positive;
}

/* Whether some completion of the partial character u could satisfy pos
 * (llama_grammar_match_partial_char). */
static int match_partial(const gbnf_elem *pos, utf8_state u)
{
    int positive = pos->type == GE_CHAR || pos->type == GE_CHAR_ANY;
    if (u.n_remain < 0 || (u.n_remain == 1 && u.value < 2)) return 0;
    uint32_t low = u.value << (u.n_remain * 6);
    uint32_t high = low | ((1u << (u.n_remain * 6)) - 1);
    if (low == 0) {
        if (u.n_remain == 2) low = 1u << 11;
        if (u.n_remain == 3) low = 1u << 16;
    }
    do {
        if (pos[1].type == GE_CHAR_RNG_UPPER) {
            if (pos->value <= high && low <= pos[1].value) return positive;
            pos += 2;
        } else if (pos->type == GE_CHAR_ANY) {
            return 1;
        } else {
            if (low <= pos->value && pos->value <= high) return positive;
            pos += 1;
        }
    } while (pos->type == GE_CHAR_ALT);
    return !positive;
}

/* One byte into the UTF-8 decoder as llama.cpp's decode_utf8 reads a token:
 * returns 1 and *cp when a code point is complete, 0 when one is pending,
 * -1 when the bytes are invalid (the whole token is then rejected). */
static int utf8_step(utf8_state *u, uint8_t b, uint32_t *cp)
{
    static const int len_of[16] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4};
    if (u->n_remain > 0) {
        if (u->resuming && (b >> 6) != 2) return -1;
        u->value = (u->value << 6) + (b & 0x3F);
        if (--u->n_remain > 0) return 0;
        u->resuming = 0;
        *cp = u->value;
        return 1;
    }
    int n = len_of[b >> 4] - 1;
    if (n < 0) return -1;
    u->value = b & ((1u << (7 - n)) - 1);
    u->n_remain = n;
    if (n > 0) return 0;
    *cp = u->value;
    return 1;
}

/* ------------------------------------------------------------- advancing */

/* Expand the rule references on top of s until every resulting stack has
 * a character element on top (or is empty); add the new ones to out from
 * out_begin (llama_grammar_advance_stack). */
static void advance(kinfer_grammar *gr, arena *a, stack s, stack_vec *out, size_t out_begin)
{
    stack_vec *todo = &gr->todo, *seen = &gr->seen;
    todo->n = 0;
    seen->n = 0;
    if (!vec_push(todo, s)) {
        gr->overflow = 1;
        return;
    }
    while (todo->n > 0 && !gr->overflow) {
        stack cur = todo->v[--todo->n];
        if (set_contains(seen, 0, cur)) continue;
        if (!vec_push(seen, cur)) {
            gr->overflow = 1;
            return;
        }
        if (cur && cur->pos->type == GE_RULE_REF) {
            const gbnf_elem *pos = cur->pos;
            const gbnf_elem *sub = gbnf_rule(&gr->g, pos->value);
            for (;;) {
                stack next = cur->up;
                if (!gbnf_is_end_of_seq(pos + 1)) next = push_frame(gr, a, next, pos + 1);
                if (!gbnf_is_end_of_seq(sub)) next = push_frame(gr, a, next, sub);
                if (!vec_push(todo, next)) {
                    gr->overflow = 1;
                    return;
                }
                while (!gbnf_is_end_of_seq(sub)) sub++;
                if (sub->type != GE_ALT) break;
                sub++;
            }
            continue;
        }
        if (!set_contains(out, out_begin, cur)) {
            if (out->n - out_begin >= MAX_STACKS || !vec_push(out, cur)) {
                gr->overflow = 1;
                return;
            }
        }
    }
}

/* The stacks after code point c from the stacks in[begin, end): appended
 * to gr->sets; returns the new set's begin (its end is gr->sets.n). */
static size_t accept_char(kinfer_grammar *gr, arena *a, const stack_vec *in, size_t begin, size_t end,
                          uint32_t c, stack_vec *out)
{
    size_t out_begin = out->n;
    for (size_t i = begin; i < end && !gr->overflow; i++) {
        stack s = in->v[i];
        if (!s) continue;
        const gbnf_elem *next;
        if (!match_char(s->pos, c, &next)) continue;
        stack t = s->up;
        if (!gbnf_is_end_of_seq(next)) t = push_frame(gr, a, t, next);
        advance(gr, a, t, out, out_begin);
    }
    return out_begin;
}

/* Whether a token that leaves decoder state u ends acceptably on the stacks
 * v[begin, end) (after its complete code points). */
static int ends_ok(const stack_vec *v, size_t begin, size_t end, utf8_state u)
{
    if (end == begin) return 0;
    if (u.n_remain == 0) return 1;
    for (size_t i = begin; i < end; i++)
        if (v->v[i] && match_partial(v->v[i]->pos, u)) return 1;
    return 0;
}

static utf8_state token_start(const kinfer_grammar *gr)
{
    utf8_state u = gr->partial;
    u.resuming = u.n_remain > 0;
    return u;
}

/* Run a piece from the current state; the surviving stacks are appended to
 * gr->sets from *begin (frames in arena a).  Returns whether the token is
 * allowed (the end state in *u_out). */
static int run_piece(kinfer_grammar *gr, arena *a, const char *piece, uint32_t len, size_t *begin,
                     utf8_state *u_out)
{
    stack_vec *sets = &gr->sets;
    sets->n = 0;
    for (size_t i = 0; i < gr->stacks.n; i++)
        if (!vec_push(sets, gr->stacks.v[i])) return 0;
    size_t b = 0, e = sets->n;
    utf8_state u = token_start(gr);
    for (uint32_t k = 0; k < len; k++) {
        uint32_t cp;
        int r = utf8_step(&u, (uint8_t)piece[k], &cp);
        if (r < 0) return 0;
        if (r == 0) continue;
        b = accept_char(gr, a, sets, b, e, cp, sets);
        e = sets->n;
        if (b == e || gr->overflow) return 0;
    }
    *begin = b;
    *u_out = u;
    return ends_ok(sets, b, e, u);
}

static int can_end(const kinfer_grammar *gr)
{
    for (size_t i = 0; i < gr->stacks.n; i++)
        if (!gr->stacks.v[i]) return 1;
    return 0;
}

/* ------------------------------------------------------------- masking */

static void mask_node(kinfer_grammar *gr, uint32_t node, size_t b, size_t e, utf8_state u)
{
    const piece_trie *t = gr->trie;
    const piece_trie_node *nd = &t->node[node];
    if (nd->n_tok && ends_ok(&gr->sets, b, e, u))
        for (uint32_t i = 0; i < nd->n_tok; i++) gr->allowed[t->tok[nd->tok + i]] = 1;
    for (uint32_t k = 0; k < nd->n_child && !gr->overflow; k++) {
        uint32_t child = nd->child + k;
        utf8_state v = u;
        uint32_t cp;
        int r = utf8_step(&v, t->node[child].byte, &cp);
        if (r < 0) continue;
        if (r == 0) {
            mask_node(gr, child, b, e, v);
            continue;
        }
        arena_mark m = arena_get_mark(&gr->scratch);
        size_t nb = accept_char(gr, &gr->scratch, &gr->sets, b, e, cp, &gr->sets);
        size_t ne = gr->sets.n;
        if (nb < ne) mask_node(gr, child, nb, ne, v);
        gr->sets.n = nb;
        arena_rewind(&gr->scratch, m);
    }
}

kinfer_status grammar_mask(kinfer_grammar *gr, uint8_t *allowed)
{
    memset(allowed, 0, (size_t)gr->n_vocab);
    arena_reset(&gr->scratch);
    gr->sets.n = 0;
    for (size_t i = 0; i < gr->stacks.n; i++)
        if (!vec_push(&gr->sets, gr->stacks.v[i])) return KINFER_E_NOMEM;
    gr->allowed = allowed;
    gr->overflow = 0;
    mask_node(gr, 0, 0, gr->sets.n, token_start(gr));
    gr->allowed = NULL;
    if (gr->overflow)
        return status_fail(gr->err, sizeof gr->err, KINFER_E_UNSUPPORTED,
                           "grammar too ambiguous (more than %d parse stacks) or out of memory", MAX_STACKS);
    if (can_end(gr))
        for (int32_t i = 0; i < gr->vocab->n_eog; i++)
            if (gr->vocab->eog[i] < gr->n_vocab) allowed[gr->vocab->eog[i]] = 1;
    return KINFER_OK;
}

int grammar_allows(kinfer_grammar *gr, kinfer_token tok)
{
    if (tok < 0 || tok >= gr->n_vocab) return 0;
    if (vocab_is_eog(gr->vocab, tok)) return can_end(gr);
    if (tok >= gr->trie->n_tokens) return 0;
    uint32_t off = gr->trie->piece_off[tok], len = gr->trie->piece_off[tok + 1] - off;
    if (len == 0) return 0;
    arena_reset(&gr->scratch);
    gr->overflow = 0;
    size_t b;
    utf8_state u;
    return run_piece(gr, &gr->scratch, gr->trie->piece + off, len, &b, &u);
}

/* ---------------------------------------------------------- public API */

static stack copy_stack(kinfer_grammar *gr, arena *a, stack s)
{
    if (!s) return NULL;
    stack below = copy_stack(gr, a, s->up);
    return push_frame(gr, a, below, s->pos);
}

/* Replace the state by the stacks in gr->sets[b, sets.n), copied into the
 * other state arena. */
static kinfer_status commit(kinfer_grammar *gr, size_t b, utf8_state u)
{
    int next = !gr->state_cur;
    arena *a = &gr->state_arena[next];
    arena_reset(a);
    stack_vec fresh = {0};
    for (size_t i = b; i < gr->sets.n; i++)
        if (!vec_push(&fresh, copy_stack(gr, a, gr->sets.v[i]))) gr->overflow = 1;
    if (gr->overflow) {
        free(fresh.v);
        return status_fail(gr->err, sizeof gr->err, KINFER_E_NOMEM, "out of memory advancing a grammar");
    }
    free(gr->stacks.v);
    gr->stacks = fresh;
    gr->state_cur = next;
    u.resuming = 0;
    gr->partial = u;
    return KINFER_OK;
}

static kinfer_status start_state(kinfer_grammar *gr)
{
    arena_reset(&gr->scratch);
    gr->sets.n = 0;
    gr->overflow = 0;
    const gbnf_elem *pos = gbnf_rule(&gr->g, gr->g.root);
    for (;;) {
        stack s = NULL;
        if (!gbnf_is_end_of_seq(pos)) s = push_frame(gr, &gr->scratch, NULL, pos);
        advance(gr, &gr->scratch, s, &gr->sets, 0);
        while (!gbnf_is_end_of_seq(pos)) pos++;
        if (pos->type != GE_ALT) break;
        pos++;
    }
    if (gr->overflow)
        return status_fail(gr->err, sizeof gr->err, KINFER_E_UNSUPPORTED,
                           "grammar too ambiguous (more than %d parse stacks)", MAX_STACKS);
    return commit(gr, 0, (utf8_state){0, 0, 0});
}

kinfer_status kinfer_grammar_new(const kinfer_model *model, const char *gbnf, const char *root,
                                 kinfer_grammar **out, struct kinfer_error *error)
{
    kinfer_error scratch_err;
    if (!error) error = &scratch_err;
    error->status = KINFER_OK;
    error->message[0] = 0;
    if (!out) return error->status = status_fail(error->message, sizeof error->message, KINFER_E_INVALID_ARG,
                                                 "grammar: NULL output");
    *out = NULL;
    if (!model || !gbnf)
        return error->status = status_fail(error->message, sizeof error->message, KINFER_E_INVALID_ARG,
                                           "grammar: NULL model or text");
    if (!model->vocab)
        return error->status = status_fail(error->message, sizeof error->message, KINFER_E_UNSUPPORTED,
                                           "grammar: the model has no vocabulary");
    kinfer_grammar *gr = calloc(1, sizeof *gr);
    if (!gr) return error->status = status_fail(error->message, sizeof error->message, KINFER_E_NOMEM, "out of memory");
    kinfer_status st = gbnf_parse(gbnf, root ? root : "root", &gr->g, error->message, sizeof error->message);
    if (st == KINFER_OK) {
        gr->vocab = model->vocab;
        gr->n_vocab = kinfer_model_n_vocab(model);
        if (gr->n_vocab < gr->vocab->n_tokens) gr->n_vocab = gr->vocab->n_tokens;
        gr->trie = vocab_piece_trie(model->vocab);
        if (!gr->trie) st = status_fail(error->message, sizeof error->message, KINFER_E_NOMEM, "out of memory");
    }
    if (st == KINFER_OK && (st = start_state(gr)) != KINFER_OK)
        snprintf(error->message, sizeof error->message, "%s", gr->err);
    if (st != KINFER_OK) {
        kinfer_grammar_free(gr);
        return error->status = st;
    }
    *out = gr;
    return KINFER_OK;
}

void kinfer_grammar_free(kinfer_grammar *gr)
{
    if (!gr) return;
    gbnf_free(&gr->g);
    arena_free(&gr->state_arena[0]);
    arena_free(&gr->state_arena[1]);
    arena_free(&gr->scratch);
    free(gr->stacks.v);
    free(gr->sets.v);
    free(gr->todo.v);
    free(gr->seen.v);
    free(gr);
}

kinfer_status kinfer_grammar_reset(kinfer_grammar *gr)
{
    if (!gr) return KINFER_E_INVALID_ARG;
    return start_state(gr);
}

kinfer_status kinfer_grammar_apply(kinfer_grammar *gr, float *logits, int32_t n_vocab)
{
    if (!gr || !logits || n_vocab <= 0) return KINFER_E_INVALID_ARG;
    uint8_t *allowed = malloc((size_t)gr->n_vocab);
    if (!allowed) return KINFER_E_NOMEM;
    kinfer_status st = grammar_mask(gr, allowed);
    if (st == KINFER_OK)
        for (int32_t i = 0; i < n_vocab; i++)
            if (i >= gr->n_vocab || !allowed[i]) logits[i] = -INFINITY;
    free(allowed);
    return st;
}

bool kinfer_grammar_allows(kinfer_grammar *gr, kinfer_token token)
{
    return gr && grammar_allows(gr, token);
}

bool kinfer_grammar_can_end(const kinfer_grammar *gr)
{
    return gr && can_end(gr);
}

kinfer_status kinfer_grammar_accept(kinfer_grammar *gr, kinfer_token token)
{
    if (!gr) return KINFER_E_INVALID_ARG;
    if (token < 0 || token >= gr->n_vocab)
        return status_fail(gr->err, sizeof gr->err, KINFER_E_INVALID_ARG, "token %d is outside the vocabulary",
                           (int)token);
    if (vocab_is_eog(gr->vocab, token)) {
        if (can_end(gr)) return KINFER_OK;   /* the state stays: only the end fits after it */
        return status_fail(gr->err, sizeof gr->err, KINFER_E_INVALID_ARG,
                           "end-of-generation token %d before the grammar is complete", (int)token);
    }
    uint32_t off = token < gr->trie->n_tokens ? gr->trie->piece_off[token] : 0;
    uint32_t len = token < gr->trie->n_tokens ? gr->trie->piece_off[token + 1] - off : 0;
    arena_reset(&gr->scratch);
    gr->overflow = 0;
    size_t b = 0;
    utf8_state u;
    if (len == 0 || !run_piece(gr, &gr->scratch, gr->trie->piece + off, len, &b, &u))
        return status_fail(gr->err, sizeof gr->err, KINFER_E_INVALID_ARG, "token %d does not fit the grammar",
                           (int)token);
    return commit(gr, b, u);
}

const char *kinfer_grammar_errmsg(const kinfer_grammar *gr)
{
    return gr ? gr->err : "";
}
