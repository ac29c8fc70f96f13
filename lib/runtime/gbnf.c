/*
 * gbnf.c — the GBNF parser: text to rules of elements, then the checks
 * llama.cpp makes before it samples with a grammar (every rule defined, no
 * left recursion).  The grammar and its rewriting of repetitions follow
 * llama.cpp's llama_grammar_parser so that rule ids and shapes agree; errors
 * name the line and column instead of quoting the rest of the text.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "runtime/gbnf.h"

/* llama.cpp's MAX_REPETITION_THRESHOLD: repetition counts and the rules a
 * repetition multiplies are bounded by it. */
#define MAX_REPETITION 2000
#define MAX_NESTING 256

typedef struct elem_vec {
    gbnf_elem *v;
    size_t n, cap;
} elem_vec;

typedef struct symbol {
    char *name;
    elem_vec rule;
    int defined;
    const char *first_ref;   /* where it was first referenced (for "undefined") */
} symbol;

typedef struct parser {
    const char *src;
    symbol *sym;
    size_t n_sym, cap_sym;
    size_t n_elems;          /* all rules together, against GBNF_MAX_ELEMS */
    int depth;
    kinfer_status status;    /* KINFER_OK until the first failure */
    char *err;
    size_t err_size;
} parser;

/* Record the first failure, at position at (NULL: no position). */
__attribute__((format(printf, 3, 4)))
static void fail_at(parser *p, const char *at, const char *fmt, ...)
{
    if (p->status != KINFER_OK) return;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!at) {
        p->status = status_fail(p->err, p->err_size, KINFER_E_FORMAT, "%s", msg);
        return;
    }
    int line = 1, col = 1;
    for (const char *c = p->src; c < at; c++) {
        if (*c == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    p->status = status_fail(p->err, p->err_size, KINFER_E_FORMAT, "line %d, column %d: %s", line, col, msg);
}

static void fail_nomem(parser *p)
{
    if (p->status == KINFER_OK)
        p->status = status_fail(p->err, p->err_size, KINFER_E_NOMEM, "out of memory parsing a grammar");
}

static int push(parser *p, elem_vec *r, uint32_t type, uint32_t value)
{
    if (p->status != KINFER_OK) return 0;
    if (++p->n_elems > GBNF_MAX_ELEMS) {
        fail_at(p, NULL, "grammar too large (more than %u elements after expanding repetitions)",
                GBNF_MAX_ELEMS);
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        gbnf_elem *v = realloc(r->v, cap * sizeof *v);
        if (!v) {
            fail_nomem(p);
            return 0;
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (gbnf_elem){type, value};
    return 1;
}

/* Id of a symbol, added when new (name of len bytes). */
static uint32_t symbol_add(parser *p, const char *name, size_t len, int find_existing)
{
    if (find_existing)
        for (size_t i = 0; i < p->n_sym; i++)
            if (strlen(p->sym[i].name) == len && memcmp(p->sym[i].name, name, len) == 0) return (uint32_t)i;
    if (p->n_sym == p->cap_sym) {
        size_t cap = p->cap_sym ? p->cap_sym * 2 : 32;
        symbol *s = realloc(p->sym, cap * sizeof *s);
        if (!s) {
            fail_nomem(p);
            return 0;
        }
        p->sym = s;
        p->cap_sym = cap;
    }
    symbol *s = &p->sym[p->n_sym];
    memset(s, 0, sizeof *s);
    s->name = malloc(len + 1);
    if (!s->name) {
        fail_nomem(p);
        return 0;
    }
    memcpy(s->name, name, len);
    s->name[len] = 0;
    return (uint32_t)p->n_sym++;
}

/* A generated rule's id: "base_N", N the id itself (as llama.cpp names them). */
static uint32_t symbol_generate(parser *p, uint32_t base)
{
    char name[128];
    snprintf(name, sizeof name, "%.100s_%zu", p->sym[base].name, p->n_sym);
    return symbol_add(p, name, strlen(name), 0);
}

/* Install a rule under id, taking its elements. */
static void rule_set(parser *p, uint32_t id, elem_vec *r)
{
    symbol *s = &p->sym[id];
    free(s->rule.v);
    s->rule = *r;
    s->defined = 1;
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- lexing */

static int is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || (c >= '0' && c <= '9');
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static const char *skip_space(const char *s, int newline_ok)
{
    while (*s == ' ' || *s == '\t' || *s == '#' || (newline_ok && (*s == '\r' || *s == '\n'))) {
        if (*s == '#')
            while (*s && *s != '\r' && *s != '\n') s++;
        else
            s++;
    }
    return s;
}

/* One UTF-8 character of the grammar text, as llama.cpp reads it (no
 * validation, stopping at the end of the text). */
static const char *decode_char(const char *s, uint32_t *cp)
{
    static const int len_of[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    uint8_t b = (uint8_t)*s;
    int len = len_of[b >> 4];
    uint32_t v = b & ((1u << (8 - len)) - 1);
    const char *c = s + 1;
    for (; c < s + len && *c; c++) v = (v << 6) + ((uint8_t)*c & 0x3F);
    *cp = v;
    return c;
}

static const char *parse_hex(parser *p, const char *s, int n, uint32_t *cp)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) {
            fail_at(p, s + i, "expecting %d hex digits", n);
            return NULL;
        }
        v = (v << 4) | (uint32_t)d;
    }
    *cp = v;
    return s + n;
}

/* A character of a literal or class, with its escapes. */
static const char *parse_char(parser *p, const char *s, uint32_t *cp)
{
    if (*s == '\\') {
        switch (s[1]) {
        case 'x': return parse_hex(p, s + 2, 2, cp);
        case 'u': return parse_hex(p, s + 2, 4, cp);
        case 'U': return parse_hex(p, s + 2, 8, cp);
        case 't': *cp = '\t'; return s + 2;
        case 'r': *cp = '\r'; return s + 2;
        case 'n': *cp = '\n'; return s + 2;
        case '\\': case '"': case '[': case ']': case '-':
            *cp = (uint8_t)s[1];
            return s + 2;
        default:
            fail_at(p, s, "unknown escape '\\%c'", s[1] ? s[1] : ' ');
            return NULL;
        }
    }
    if (!*s) {
        fail_at(p, s, "unexpected end of input");
        return NULL;
    }
    return decode_char(s, cp);
}

/* A decimal count (at most 19 digits; larger ones are clamped, which the
 * callers treat as "more than the limit"). */
static const char *parse_count(parser *p, const char *s, uint64_t *n)
{
    if (!is_digit(*s)) {
        fail_at(p, s, "expecting an integer");
        return NULL;
    }
    uint64_t v = 0;
    for (; is_digit(*s); s++)
        if (v < 1000000000000000000ull) v = v * 10 + (uint64_t)(*s - '0');
    *n = v;
    return s;
}

/* --------------------------------------------------------------- parsing */

static const char *parse_alternates(parser *p, const char *s, uint32_t rule_name, uint32_t rule_id,
                                    int nested);

typedef struct seq_state {
    elem_vec *rule;
    size_t last_sym_start;   /* where the last symbol's elements begin */
    uint64_t n_prev_rules;   /* rules the last symbol stands for */
    uint32_t rule_name;      /* the enclosing named rule (generated names derive from it) */
} seq_state;

/*
 * S{m,n}: S repeated m times, then n-m nested optional rules
 * S'(k) ::= S S'(k-1) | ; S{m,} ends in S' ::= S S' | .  llama.cpp's rewrite.
 */
static void repeat_last(parser *p, seq_state *q, const char *at, uint64_t min, uint64_t max, int no_max)
{
    elem_vec *rule = q->rule;
    if (q->last_sym_start == rule->n) {
        fail_at(p, at, "expecting an item before */+/?/{");
        return;
    }
    uint64_t total = 1;
    if (!no_max && max > 0)
        total = max;
    else if (min > 0)
        total = min;
    if (q->n_prev_rules * total > MAX_REPETITION) {
        fail_at(p, at, "repetition too large (the rules it repeats times its count exceed %d)", MAX_REPETITION);
        return;
    }
    size_t prev_n = rule->n - q->last_sym_start;
    gbnf_elem *prev = malloc(prev_n * sizeof *prev);
    if (!prev) {
        fail_nomem(p);
        return;
    }
    memcpy(prev, rule->v + q->last_sym_start, prev_n * sizeof *prev);
    if (min == 0)
        rule->n = q->last_sym_start;
    else
        for (uint64_t i = 1; i < min && p->status == KINFER_OK; i++)
            for (size_t j = 0; j < prev_n; j++) push(p, rule, prev[j].type, prev[j].value);

    uint64_t n_opt = no_max ? 1 : max - min;
    uint32_t last_rec = 0;
    for (uint64_t i = 0; i < n_opt && p->status == KINFER_OK; i++) {
        elem_vec rec = {0};
        for (size_t j = 0; j < prev_n; j++) push(p, &rec, prev[j].type, prev[j].value);
        uint32_t rec_id = symbol_generate(p, q->rule_name);
        if (i > 0 || no_max) push(p, &rec, GE_RULE_REF, no_max ? rec_id : last_rec);
        push(p, &rec, GE_ALT, 0);
        push(p, &rec, GE_END, 0);
        if (p->status == KINFER_OK)
            rule_set(p, rec_id, &rec);
        else
            free(rec.v);
        last_rec = rec_id;
    }
    if (n_opt > 0) push(p, rule, GE_RULE_REF, last_rec);
    q->n_prev_rules *= total;
    free(prev);
}

static const char *parse_sequence(parser *p, const char *s, uint32_t rule_name, elem_vec *rule, int nested)
{
    seq_state q = {rule, rule->n, 1, rule_name};
    while (*s && p->status == KINFER_OK) {
        const char *at = s;
        if (*s == '"') {                                   /* literal */
            s++;
            q.last_sym_start = rule->n;
            q.n_prev_rules = 1;
            while (*s != '"') {
                uint32_t cp;
                if (!*s) {
                    fail_at(p, s, "unexpected end of input in a literal");
                    return NULL;
                }
                if (!(s = parse_char(p, s, &cp))) return NULL;
                push(p, rule, GE_CHAR, cp);
            }
            s = skip_space(s + 1, nested);
        } else if (*s == '[') {                            /* class */
            s++;
            uint32_t start = GE_CHAR;
            if (*s == '^') {
                s++;
                start = GE_CHAR_NOT;
            }
            q.last_sym_start = rule->n;
            q.n_prev_rules = 1;
            while (*s != ']') {
                uint32_t cp;
                if (!*s) {
                    fail_at(p, s, "unexpected end of input in a character class");
                    return NULL;
                }
                if (!(s = parse_char(p, s, &cp))) return NULL;
                push(p, rule, q.last_sym_start < rule->n ? GE_CHAR_ALT : start, cp);
                if (s[0] == '-' && s[1] != ']') {
                    if (!s[1]) {
                        fail_at(p, s + 1, "unexpected end of input in a character class");
                        return NULL;
                    }
                    if (!(s = parse_char(p, s + 1, &cp))) return NULL;
                    push(p, rule, GE_CHAR_RNG_UPPER, cp);
                }
            }
            s = skip_space(s + 1, nested);
        } else if (*s == '<' || *s == '!') {
            fail_at(p, s, "token references (<...>) are not supported");
            return NULL;
        } else if (is_word_char(*s)) {                     /* rule reference */
            const char *end = s;
            while (is_word_char(*end)) end++;
            uint32_t id = symbol_add(p, s, (size_t)(end - s), 1);
            if (p->status != KINFER_OK) return NULL;
            if (!p->sym[id].first_ref) p->sym[id].first_ref = s;
            s = skip_space(end, nested);
            q.last_sym_start = rule->n;
            q.n_prev_rules = 1;
            push(p, rule, GE_RULE_REF, id);
        } else if (*s == '(') {                            /* group */
            if (++p->depth > MAX_NESTING) {
                fail_at(p, s, "groups nested deeper than %d", MAX_NESTING);
                return NULL;
            }
            s = skip_space(s + 1, 1);
            size_t n_before = p->n_sym;
            uint32_t sub = symbol_generate(p, rule_name);
            if (p->status != KINFER_OK) return NULL;
            if (!(s = parse_alternates(p, s, rule_name, sub, 1))) return NULL;
            p->depth--;
            q.n_prev_rules = p->n_sym - n_before > 1 ? p->n_sym - n_before : 1;
            q.last_sym_start = rule->n;
            push(p, rule, GE_RULE_REF, sub);
            if (*s != ')') {
                fail_at(p, s, "expecting ')'");
                return NULL;
            }
            s = skip_space(s + 1, nested);
        } else if (*s == '.') {                            /* any character */
            q.last_sym_start = rule->n;
            q.n_prev_rules = 1;
            push(p, rule, GE_CHAR_ANY, 0);
            s = skip_space(s + 1, nested);
        } else if (*s == '*' || *s == '+' || *s == '?') {
            s = skip_space(s + 1, nested);
            if (*at == '*') repeat_last(p, &q, at, 0, 0, 1);
            if (*at == '+') repeat_last(p, &q, at, 1, 0, 1);
            if (*at == '?') repeat_last(p, &q, at, 0, 1, 0);
        } else if (*s == '{') {
            uint64_t min, max = 0;
            int no_max = 0;
            s = skip_space(s + 1, nested);
            if (!(s = parse_count(p, s, &min))) return NULL;
            s = skip_space(s, nested);
            if (*s == '}') {
                max = min;
            } else if (*s == ',') {
                s = skip_space(s + 1, nested);
                no_max = 1;
                if (is_digit(*s)) {
                    if (!(s = parse_count(p, s, &max))) return NULL;
                    no_max = 0;
                    s = skip_space(s, nested);
                }
                if (*s != '}') {
                    fail_at(p, s, "expecting '}'");
                    return NULL;
                }
            } else {
                fail_at(p, s, "expecting ',' or '}'");
                return NULL;
            }
            s = skip_space(s + 1, nested);
            if (min > MAX_REPETITION) {
                fail_at(p, at, "repetition count %llu exceeds %d", (unsigned long long)min, MAX_REPETITION);
                return NULL;
            }
            if (!no_max && max > MAX_REPETITION) no_max = 1;   /* as llama.cpp: no upper bound */
            if (!no_max && max < min) {
                fail_at(p, at, "repetition {%llu,%llu}: the maximum is below the minimum",
                        (unsigned long long)min, (unsigned long long)max);
                return NULL;
            }
            repeat_last(p, &q, at, min, max, no_max);
        } else {
            break;
        }
    }
    return p->status == KINFER_OK ? s : NULL;
}

static const char *parse_alternates(parser *p, const char *s, uint32_t rule_name, uint32_t rule_id,
                                    int nested)
{
    elem_vec rule = {0};
    s = parse_sequence(p, s, rule_name, &rule, nested);
    while (s && *s == '|') {
        push(p, &rule, GE_ALT, 0);
        s = skip_space(s + 1, 1);
        s = parse_sequence(p, s, rule_name, &rule, nested);
    }
    if (s && push(p, &rule, GE_END, 0)) {
        rule_set(p, rule_id, &rule);
        return s;
    }
    free(rule.v);
    return NULL;
}

static const char *parse_rule(parser *p, const char *s)
{
    const char *end = s;
    while (is_word_char(*end)) end++;
    if (end == s) {
        fail_at(p, s, "expecting a rule name");
        return NULL;
    }
    uint32_t id = symbol_add(p, s, (size_t)(end - s), 1);
    if (p->status != KINFER_OK) return NULL;
    s = skip_space(end, 0);
    if (!(s[0] == ':' && s[1] == ':' && s[2] == '=')) {
        fail_at(p, s, "expecting '::='");
        return NULL;
    }
    s = skip_space(s + 3, 1);
    if (!(s = parse_alternates(p, s, id, id, 0))) return NULL;
    if (*s == '\r')
        s += s[1] == '\n' ? 2 : 1;
    else if (*s == '\n')
        s++;
    else if (*s) {
        fail_at(p, s, "expecting a newline or the end after a rule");
        return NULL;
    }
    return skip_space(s, 1);
}

/* ---------------------------------------------------------------- checks */

/* llama.cpp's llama_grammar_detect_left_recursion: a rule whose leftmost
 * (past nullable rules) nonterminal leads back to itself. */
static int left_recursive(const parser *p, uint32_t i, uint8_t *visited, uint8_t *in_progress,
                          uint8_t *may_be_empty, int depth, uint32_t *culprit)
{
    if (in_progress[i]) {
        *culprit = i;   /* the rule reached again before any input */
        return 1;
    }
    if (depth > 10000) return -1;   /* rules nested too deep to check without a deep C stack */
    in_progress[i] = 1;
    const elem_vec *r = &p->sym[i].rule;
    int at_start = 1;
    for (size_t k = 0; k < r->n; k++) {
        if (gbnf_is_end_of_seq(&r->v[k])) {
            if (at_start) {
                may_be_empty[i] = 1;
                break;
            }
            at_start = 1;
        } else {
            at_start = 0;
        }
    }
    int recurse = 1;
    for (size_t k = 0; k < r->n; k++) {
        const gbnf_elem *e = &r->v[k];
        if (e->type == GE_RULE_REF && recurse) {
            int lr = left_recursive(p, e->value, visited, in_progress, may_be_empty, depth + 1, culprit);
            if (lr) return lr;
            if (!may_be_empty[e->value]) recurse = 0;
        } else if (gbnf_is_end_of_seq(e)) {
            recurse = 1;
        } else {
            recurse = 0;
        }
    }
    in_progress[i] = 0;
    visited[i] = 1;
    return 0;
}

static void check(parser *p, const char *root)
{
    for (size_t i = 0; i < p->n_sym; i++)
        if (!p->sym[i].defined) {
            fail_at(p, p->sym[i].first_ref, "undefined rule '%s'", p->sym[i].name);
            return;
        }
    uint32_t r = 0;
    for (; r < p->n_sym; r++)
        if (strcmp(p->sym[r].name, root) == 0) break;
    if (r == p->n_sym) {
        fail_at(p, NULL, "the grammar has no rule '%s' to start from", root);
        return;
    }
    uint8_t *flags = calloc(p->n_sym * 3 + 1, 1);
    if (!flags) {
        fail_nomem(p);
        return;
    }
    for (size_t i = 0; i < p->n_sym; i++) {
        if (flags[i]) continue;
        uint32_t culprit = (uint32_t)i;
        int lr = left_recursive(p, (uint32_t)i, flags, flags + p->n_sym, flags + 2 * p->n_sym, 0, &culprit);
        if (lr > 0) fail_at(p, NULL, "rule '%s' is left-recursive (unsupported)", p->sym[culprit].name);
        if (lr < 0) fail_at(p, NULL, "rules nested too deeply (more than 10000 levels)");
        if (lr) break;
    }
    free(flags);
}

kinfer_status gbnf_parse(const char *text, const char *root, gbnf_grammar *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    if (!text || !root) return status_fail(err, err_size, KINFER_E_INVALID_ARG, "grammar: NULL text or root");
    parser p = {.src = text, .status = KINFER_OK, .err = err, .err_size = err_size};
    const char *s = skip_space(text, 1);
    if (!*s) fail_at(&p, s, "empty grammar");
    while (s && *s && p.status == KINFER_OK) s = parse_rule(&p, s);
    if (p.status == KINFER_OK) check(&p, root);

    if (p.status == KINFER_OK) {
        out->n_rules = (uint32_t)p.n_sym;
        out->elems = malloc((p.n_elems ? p.n_elems : 1) * sizeof *out->elems);
        out->rule_off = malloc(p.n_sym * sizeof *out->rule_off);
        out->names = calloc(p.n_sym, sizeof *out->names);
        if (!out->elems || !out->rule_off || !out->names) {
            fail_nomem(&p);
        } else {
            size_t off = 0;
            for (size_t i = 0; i < p.n_sym; i++) {
                out->rule_off[i] = (uint32_t)off;
                memcpy(out->elems + off, p.sym[i].rule.v, p.sym[i].rule.n * sizeof *out->elems);
                off += p.sym[i].rule.n;
                out->names[i] = p.sym[i].name;
                p.sym[i].name = NULL;
                if (strcmp(out->names[i], root) == 0) out->root = (uint32_t)i;
            }
        }
    }
    for (size_t i = 0; i < p.n_sym; i++) {
        free(p.sym[i].name);
        free(p.sym[i].rule.v);
    }
    free(p.sym);
    if (p.status != KINFER_OK) gbnf_free(out);
    return p.status;
}

void gbnf_free(gbnf_grammar *g)
{
    if (!g) return;
    if (g->names)
        for (uint32_t i = 0; i < g->n_rules; i++) free(g->names[i]);
    free(g->names);
    free(g->elems);
    free(g->rule_off);
    memset(g, 0, sizeof *g);
}
