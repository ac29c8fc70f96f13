/*
 * gbnf.h — GBNF grammars parsed into rules of elements (internal).
 *
 * The language and the rule shapes are llama.cpp's (grammars/README.md and
 * src/llama-grammar.cpp): rules `name ::= alternatives`, literals "..."
 * with escapes (\x.. \u.... \U........ \t \r \n \\ \" \[ \] \-), classes
 * [a-z] and [^...], `.`, groups ( ), repetitions * + ? {m} {m,} {m,n}
 * (rewritten into generated rules the way llama.cpp rewrites them), and
 * # comments.  Token references (<...>, !<...>) are not supported.
 *
 * A rule is a run of elements: alternatives separated by GE_ALT, the rule
 * ended by GE_END.  A character element (GE_CHAR, GE_CHAR_NOT, GE_CHAR_ANY)
 * is followed by GE_CHAR_RNG_UPPER (its range's upper end) and further
 * GE_CHAR_ALT (+ upper) entries of the same class.
 */
#ifndef KINFER_RUNTIME_GBNF_H
#define KINFER_RUNTIME_GBNF_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"

enum gbnf_type {
    GE_END = 0,          /* end of the rule */
    GE_ALT,              /* start of another alternative */
    GE_RULE_REF,         /* value: rule id */
    GE_CHAR,             /* value: code point (a class's first entry) */
    GE_CHAR_NOT,         /* value: code point, the class is negated */
    GE_CHAR_RNG_UPPER,   /* value: upper end of the range begun before it */
    GE_CHAR_ALT,         /* value: another code point of the class */
    GE_CHAR_ANY,         /* `.`: any code point */
};

typedef struct gbnf_elem {
    uint32_t type;
    uint32_t value;
} gbnf_elem;

typedef struct gbnf_grammar {
    gbnf_elem *elems;        /* every rule's elements, each run ended by GE_END */
    uint32_t *rule_off;      /* (n_rules) rule i starts at elems[rule_off[i]] */
    uint32_t n_rules;
    uint32_t root;           /* the start rule's id */
    char **names;            /* (n_rules) "name" or "name_7" for generated rules */
} gbnf_grammar;

/* The most elements a grammar may expand to (repetitions included), so that
 * no text of bounded size asks for unbounded memory. */
#define GBNF_MAX_ELEMS (1u << 22)

/*
 * Parse NUL-terminated GBNF text and check it: every referenced rule
 * defined, no left recursion, root defined.  On failure returns
 * KINFER_E_FORMAT (with "line L, column C: ..." for a syntax error),
 * KINFER_E_NOMEM, and writes a message into err.
 */
kinfer_status gbnf_parse(const char *text, const char *root, gbnf_grammar *out, char *err,
                         size_t err_size);
void gbnf_free(gbnf_grammar *g);

static inline const gbnf_elem *gbnf_rule(const gbnf_grammar *g, uint32_t id)
{
    return g->elems + g->rule_off[id];
}

static inline int gbnf_is_end_of_seq(const gbnf_elem *e)
{
    return e->type == GE_END || e->type == GE_ALT;
}

#endif /* KINFER_RUNTIME_GBNF_H */
