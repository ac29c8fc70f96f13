/*
 * json_schema_conv.h — the converter's state and the helpers its parts
 * share (json_schema.c the schema walk, json_schema_pattern.c string
 * patterns).  Internal to examples/common's JSON Schema converter.
 */
#ifndef KINFER_EXAMPLES_JSON_SCHEMA_CONV_H
#define KINFER_EXAMPLES_JSON_SCHEMA_CONV_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "textbuf.h"

#define MAX_DEPTH 64             /* nested schemas (and $ref hops) */
#define MAX_RULES 4096
#define MAX_ARENA (16u << 20)    /* bytes of strings one conversion may make */
#define MAX_PATTERN_DEPTH 100
#define MAX_PATTERN_COUNT 100000 /* a {m,n} count in a pattern */

typedef struct conv {
    const cJSON *root;
    char **rule_name, **rule_body;
    int n_rules, cap_rules;
    char **arena;
    size_t n_arena, cap_arena, arena_bytes;
    const char *resolving[MAX_DEPTH];   /* $refs being converted (a cycle stops here) */
    int n_resolving;
    int depth;
    bool failed;
    char *err;
    size_t err_size;
} conv;

/* The first failure's message (later ones are dropped). */
void js_fail(conv *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A formatted string kept until the conversion ends; "" after a failure. */
char *js_str(conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* b's text kept (b freed). */
char *js_from_buf(conv *c, textbuf *b);
/* Add a rule; returns its name (a taken name with another body gets a number). */
char *js_add_rule(conv *c, const char *name, const char *body);
/* item min..max times (max INT_MAX: unbounded), separated by sep ("" = none). */
char *js_repetition(conv *c, const char *item, int min, int max, const char *sep);
/* The rule for a string matching pattern (anchored ^...$), named name. */
char *js_pattern(conv *c, const char *pattern, const char *name, const char *path);

#endif
