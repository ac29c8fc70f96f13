/*
 * json_schema_pattern.c — a JSON Schema string "pattern" as GBNF, in
 * llama.cpp's regular subset (anchored ^...$; literals with escapes, `.`,
 * [classes], (groups) and (?:groups), `|`, * + ? {m} {m,} {m,n}); a repeated
 * group becomes a rule "<name>-<n>".  Anything else is an error saying why.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "json_schema_conv.h"

/* A piece of a pattern: a literal's text (unquoted) or a grammar expression. */
typedef struct piece {
    char *s;
    bool literal;
} piece;

typedef struct pattern_state {
    conv *c;
    const char *p;                 /* the pattern without its anchors */
    size_t i, n;
    int paren_depth;
    const char *name;
    char **sub_body, **sub_rule;   /* (n_sub) a repeated group's rule, one per distinct body */
    int n_sub;
    const char *why;               /* set when the pattern is not supported or not valid */
    bool invalid;
} pattern_state;

static bool is_non_literal(char ch)
{
    return ch && strchr("|.()[]{}*+?^$", ch);
}

/* Length of a GBNF escape (\x.. \u.... \U........ \t \r \n \\ \" \[ \] \-) at p[i], 0 if none. */
static size_t gbnf_escape_length(const char *p, size_t n, size_t i)
{
    if (i + 1 >= n || p[i] != '\\') return 0;
    size_t n_hex = 0;
    switch (p[i + 1]) {
    case 'x': n_hex = 2; break;
    case 'u': n_hex = 4; break;
    case 'U': n_hex = 8; break;
    case 't': case 'r': case 'n': case '\\': case '"': case '[': case ']': case '-': return 2;
    default: return 0;
    }
    if (i + 2 + n_hex > n) return 0;
    for (size_t k = i + 2; k < i + 2 + n_hex; k++) {
        char h = p[k];
        if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) return 0;
    }
    return 2 + n_hex;
}

static char *piece_rule(conv *c, const piece *x)
{
    return x->literal ? js_str(c, "\"%s\"", x->s) : x->s;
}

static bool pattern_fail(pattern_state *st, bool invalid, const char *why)
{
    if (!st->why) { st->why = why; st->invalid = invalid; }
    return false;
}

/* Consecutive literals merged, everything joined by spaces. */
static piece join_seq(conv *c, const piece *seq, int n)
{
    textbuf b = {0}, lit = {0};
    bool first = true;
    for (int k = 0; k <= n; k++) {
        if (k < n && seq[k].literal) { textbuf_append_str(&lit, seq[k].s); continue; }
        if (lit.n) {
            textbuf_printf(&b, "%s\"%s\"", first ? "" : " ", lit.p);
            first = false;
            textbuf_clear(&lit);
        }
        if (k < n) {
            textbuf_printf(&b, "%s%s", first ? "" : " ", seq[k].s);
            first = false;
        }
    }
    textbuf_free(&lit);
    return (piece){js_from_buf(c, &b), false};
}

static bool pattern_seq(pattern_state *st, piece *out);

static bool pattern_curly(pattern_state *st, piece *last)
{
    conv *c = st->c;
    size_t start = ++st->i;
    while (st->i < st->n && st->p[st->i] != '}') st->i++;
    if (st->i >= st->n) return pattern_fail(st, false, "unterminated curly brackets");
    const char *body = st->p + start;
    size_t len = st->i - start;
    st->i++;
    const char *comma = memchr(body, ',', len);
    if (comma && memchr(comma + 1, ',', len - (size_t)(comma + 1 - body)))
        return pattern_fail(st, false, "wrong number of values in curly brackets");
    long v[2] = {0, INT_MAX};
    const char *part[2] = {body, comma ? comma + 1 : NULL};
    size_t part_len[2] = {comma ? (size_t)(comma - body) : len, comma ? len - (size_t)(comma + 1 - body) : 0};
    for (int k = 0; k < (comma ? 2 : 1); k++) {
        if (!part_len[k]) {
            if (!comma) return pattern_fail(st, false, "invalid number in curly brackets");
            continue;
        }
        long x = 0;
        for (size_t q = 0; q < part_len[k]; q++) {
            char d = part[k][q];
            if (d < '0' || d > '9' || x > MAX_PATTERN_COUNT) return pattern_fail(st, false, "invalid number in curly brackets");
            x = x * 10 + (d - '0');
        }
        v[k] = x;
    }
    if (!comma) v[1] = v[0];
    if (!last) return pattern_fail(st, true, "nothing to repeat");
    char *sub = last->s;
    if (!last->literal) {
        int k = 0;
        while (k < st->n_sub && strcmp(st->sub_body[k], sub)) k++;
        if (k == st->n_sub) {
            char **b = realloc(st->sub_body, (size_t)(k + 1) * sizeof *b);
            if (b) st->sub_body = b;
            char **r = realloc(st->sub_rule, (size_t)(k + 1) * sizeof *r);
            if (r) st->sub_rule = r;
            if (!b || !r) { js_fail(c, "#", "out of memory"); return false; }
            st->sub_body[k] = sub;
            st->n_sub++;
            st->sub_rule[k] = js_add_rule(c, js_str(c, "%s-%d", st->name, st->n_sub), sub);
        }
        sub = st->sub_rule[k];
    }
    last->s = js_repetition(c, last->literal ? js_str(c, "\"%s\"", sub) : sub, (int)v[0], (int)v[1], "");
    last->literal = false;
    return true;
}

static bool pattern_literal(pattern_state *st, piece *out)
{
    conv *c = st->c;
    const char *p = st->p;
    textbuf lit = {0};
    while (st->i < st->n) {
        size_t i = st->i;
        if (p[i] == '\\') {
            if (i == st->n - 1) { textbuf_free(&lit); return pattern_fail(st, true, "trailing backslash"); }
            if (strchr("^$.[]()|{}*+?", p[i + 1])) {
                textbuf_append(&lit, p + i + 1, 1);
                st->i += 2;
            } else {
                size_t el = gbnf_escape_length(p, st->n, i);
                if (!el) { textbuf_free(&lit); return pattern_fail(st, false, "unsupported escape (\\d, \\w, \\s and such are not)"); }
                textbuf_append(&lit, p + i, el);
                st->i += el;
            }
        } else if (p[i] == '"') {
            textbuf_append_str(&lit, "\\\"");
            st->i++;
        } else if (!is_non_literal(p[i]) &&
                   (i == st->n - 1 || lit.n == 0 || p[i + 1] == '.' || !is_non_literal(p[i + 1]))) {
            textbuf_append(&lit, p + i, 1);
            st->i++;
        } else {
            break;
        }
    }
    if (!lit.n) return pattern_fail(st, false, "unsupported character");
    *out = (piece){js_from_buf(c, &lit), true};
    return true;
}

/* A sequence up to the end or the ')' closing the current group. */
static bool pattern_seq(pattern_state *st, piece *out)
{
    conv *c = st->c;
    piece *seq = NULL;
    int n = 0, cap = 0;
    bool ok = true;
    while (ok && st->i < st->n && !c->failed) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            piece *q = realloc(seq, (size_t)cap * sizeof *q);
            if (!q) { js_fail(c, "#", "out of memory"); ok = false; break; }
            seq = q;
        }
        char ch = st->p[st->i];
        if (ch == '.') {
            seq[n++] = (piece){js_add_rule(c, "dot", "[^\\x0A\\x0D]"), false};
            st->i++;
        } else if (ch == '(') {
            st->i++;
            if (st->i < st->n && st->p[st->i] == '?') {
                if (st->i + 1 < st->n && st->p[st->i + 1] == ':') st->i += 2;
                else { ok = pattern_fail(st, false, "unsupported group syntax"); break; }
            }
            if (++st->paren_depth > MAX_PATTERN_DEPTH) { ok = pattern_fail(st, false, "pattern nesting too deep"); break; }
            piece inner;
            if (!(ok = pattern_seq(st, &inner))) break;
            seq[n++] = (piece){js_str(c, "(%s)", piece_rule(c, &inner)), false};
        } else if (ch == ')') {
            st->i++;
            if (st->paren_depth == 0) { ok = pattern_fail(st, true, "unbalanced parentheses"); break; }
            st->paren_depth--;
            break;
        } else if (ch == '^' || ch == '$') {
            ok = pattern_fail(st, false, "anchor inside the pattern");
        } else if (ch == '[') {
            size_t start = st->i++;
            while (ok && st->i < st->n && st->p[st->i] != ']') {
                if (st->p[st->i] == '\\') {
                    size_t el = gbnf_escape_length(st->p, st->n, st->i);
                    if (!el) ok = pattern_fail(st, false, "unsupported escape in character class");
                    st->i += el;
                } else {
                    st->i++;
                }
            }
            if (!ok) break;
            if (st->i >= st->n) { ok = pattern_fail(st, true, "unterminated character class"); break; }
            st->i++;
            seq[n++] = (piece){js_str(c, "%.*s", (int)(st->i - start), st->p + start), false};
        } else if (ch == '|') {
            seq[n++] = (piece){"|", false};
            st->i++;
        } else if (ch == '*' || ch == '+' || ch == '?') {
            if (!n) { ok = pattern_fail(st, true, "nothing to repeat"); break; }
            seq[n - 1] = (piece){js_str(c, "%s%c", piece_rule(c, &seq[n - 1]), ch), false};
            st->i++;
        } else if (ch == '{') {
            ok = pattern_curly(st, n ? &seq[n - 1] : NULL);
        } else {
            if ((ok = pattern_literal(st, &seq[n]))) n++;
        }
    }
    if (ok) *out = join_seq(c, seq, n);
    free(seq);
    return ok && !c->failed;
}

/* A string matching pattern (anchored ^...$, llama.cpp's regular subset). */
char *js_pattern(conv *c, const char *pattern, const char *name, const char *path)
{
    size_t len = strlen(pattern);
    if (len < 2 || pattern[0] != '^' || pattern[len - 1] != '$') {
        js_fail(c, path, "pattern %s is not supported (not anchored with '^' and '$')", pattern);
        return "";
    }
    pattern_state st = {.c = c, .p = pattern + 1, .n = len - 2, .name = name};
    piece whole;
    bool ok = pattern_seq(&st, &whole);
    if (ok && st.paren_depth != 0) ok = pattern_fail(&st, true, "unbalanced parentheses");
    if (ok && st.i < st.n) ok = pattern_fail(&st, true, "unbalanced parentheses");
    free(st.sub_body);
    free(st.sub_rule);
    if (!ok) {
        if (st.why) js_fail(c, path, "%s pattern %s: %s", st.invalid ? "invalid" : "unsupported", pattern, st.why);
        return "";
    }
    return js_add_rule(c, name, js_str(c, "\"\\\"\" (%s) \"\\\"\"", piece_rule(c, &whole)));
}
