/*
 * json_schema.c — JSON Schema to GBNF (see json_schema.h).
 *
 * The rules and their names follow llama.cpp's converter (common/
 * json-schema-to-grammar.cpp, with its schema reading in json-schema.cpp):
 * a rule per named part ("root", "<prop>", "<prop>-kv", "ref-defs-<name>",
 * "<name>-item", ...), a name taken twice with a different body gets a
 * number, and the grammar lists its rules sorted by name.  All strings made
 * during a conversion live in one arena freed at its end; a conversion's
 * size, depth and rule count are bounded, so no input can exhaust memory.
 */
#include "json_schema.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "int_range.h"
#include "json_schema_conv.h"

void js_fail(conv *c, const char *path, const char *fmt, ...)
{
    if (c->failed) return;
    c->failed = true;
    if (!c->err || !c->err_size) return;
    int n = snprintf(c->err, c->err_size, "JSON schema error at %s: ", path);
    if (n < 0 || (size_t)n >= c->err_size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->err_size - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Keep s (malloc'd) until the conversion ends; "" after a failure. */
static char *keep(conv *c, char *s)
{
    if (!s) { js_fail(c, "#", "out of memory"); return ""; }
    size_t n = strlen(s) + 1;
    if (c->arena_bytes + n > MAX_ARENA) {
        free(s);
        js_fail(c, "#", "schema too large (its grammar passes %u bytes)", MAX_ARENA);
        return "";
    }
    if (c->n_arena == c->cap_arena) {
        size_t cap = c->cap_arena ? c->cap_arena * 2 : 64;
        char **a = realloc(c->arena, cap * sizeof *a);
        if (!a) { free(s); js_fail(c, "#", "out of memory"); return ""; }
        c->arena = a;
        c->cap_arena = cap;
    }
    c->arena_bytes += n;
    c->arena[c->n_arena++] = s;
    return s;
}

/* A formatted string kept in the arena. */
char *js_str(conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *js_str(conv *c, const char *fmt, ...)
{
    if (c->failed) return "";
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= MAX_ARENA) { js_fail(c, "#", "schema too large"); return ""; }
    char *s = malloc((size_t)n + 1);
    if (!s) return keep(c, NULL);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return keep(c, s);
}

char *js_from_buf(conv *c, textbuf *b)
{
    char *s = js_str(c, "%s", textbuf_str(b));
    textbuf_free(b);
    return s;
}

/* ------------------------------------------------------------------ rules */

static const char SPACE_RULE[] = "| \" \" | \"\\n\"{1,2} [ \\t]{0,20}";

typedef struct builtin {
    const char *name, *body;
    const char *deps[6];
} builtin;

static const builtin BUILTINS[] = {
    {"boolean", "(\"true\" | \"false\")", {0}},
    {"decimal-part", "[0-9]{1,16}", {0}},
    {"integral-part", "[0] | [1-9] [0-9]{0,15}", {0}},
    {"number", "(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)?",
     {"integral-part", "decimal-part"}},
    {"integer", "(\"-\"? integral-part)", {"integral-part"}},
    {"value", "object | array | string | number | boolean | null",
     {"object", "array", "string", "number", "boolean", "null"}},
    {"object", "\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? space \"}\"",
     {"string", "value"}},
    {"array", "\"[\" space ( value (\",\" space value)* )? space \"]\"", {"value"}},
    {"uuid", "\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} "
             "\"-\" [0-9a-fA-F]{12} \"\\\"\"", {0}},
    {"char", "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})", {0}},
    {"string", "\"\\\"\" char* \"\\\"\"", {"char"}},
    {"null", "\"null\"", {0}},
    /* string formats */
    {"date", "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )", {0}},
    {"time", "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? "
             "( \"Z\" | ( \"+\" | \"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )", {0}},
    {"date-time", "date \"T\" time", {"date", "time"}},
    {"date-string", "\"\\\"\" date \"\\\"\"", {"date"}},
    {"time-string", "\"\\\"\" time \"\\\"\"", {"time"}},
    {"date-time-string", "\"\\\"\" date-time \"\\\"\"", {"date-time"}},
};

static const builtin *builtin_of(const char *name)
{
    for (size_t i = 0; i < sizeof BUILTINS / sizeof BUILTINS[0]; i++)
        if (!strcmp(BUILTINS[i].name, name)) return &BUILTINS[i];
    return NULL;
}

static bool is_reserved(const char *name)
{
    return !strcmp(name, "root") || builtin_of(name);
}

static int find_rule(const conv *c, const char *name)
{
    for (int i = 0; i < c->n_rules; i++)
        if (!strcmp(c->rule_name[i], name)) return i;
    return -1;
}

static void set_rule(conv *c, const char *name, const char *body)
{
    if (c->failed) return;
    int i = find_rule(c, name);
    if (i >= 0) { c->rule_body[i] = (char *)body; return; }
    if (c->n_rules == MAX_RULES) { js_fail(c, "#", "schema too large (more than %d rules)", MAX_RULES); return; }
    if (c->n_rules == c->cap_rules) {
        int cap = c->cap_rules ? c->cap_rules * 2 : 32;
        char **n = realloc(c->rule_name, (size_t)cap * sizeof *n);
        if (n) c->rule_name = n;
        char **b = realloc(c->rule_body, (size_t)cap * sizeof *b);
        if (b) c->rule_body = b;
        if (!n || !b) { js_fail(c, "#", "out of memory"); return; }
        c->cap_rules = cap;
    }
    c->rule_name[c->n_rules] = (char *)name;
    c->rule_body[c->n_rules++] = (char *)body;
}

/* Runs of characters a rule name cannot hold become one '-'. */
static char *rule_name_of(conv *c, const char *name)
{
    textbuf b = {0};
    bool in_run = false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
        if (ok) textbuf_append(&b, p, 1);
        else if (!in_run) textbuf_append(&b, "-", 1);
        in_run = !ok;
    }
    return js_from_buf(c, &b);
}

/* Add a rule; a name already holding another body gets the first free number. */
char *js_add_rule(conv *c, const char *name, const char *body)
{
    char *esc = rule_name_of(c, name);
    int i = find_rule(c, esc);
    if (i < 0 || !strcmp(c->rule_body[i], body)) {
        set_rule(c, esc, body);
        return esc;
    }
    for (int k = 0; !c->failed; k++) {
        char *key = js_str(c, "%s%d", esc, k);
        int j = find_rule(c, key);
        if (j < 0 || !strcmp(c->rule_body[j], body)) {
            set_rule(c, key, body);
            return key;
        }
    }
    return "";
}

static char *add_builtin(conv *c, const char *name, const builtin *b)
{
    char *n = js_add_rule(c, name, b->body);
    for (int i = 0; i < 6 && b->deps[i]; i++)
        if (find_rule(c, b->deps[i]) < 0) add_builtin(c, b->deps[i], builtin_of(b->deps[i]));
    return n;
}

static char *add_builtin_named(conv *c, const char *type)
{
    return add_builtin(c, type, builtin_of(type));
}

/* A rule (or the root) that is one of the builtins. */
static char *visit_builtin(conv *c, const char *rule_name, const char *type)
{
    return add_builtin(c, strcmp(rule_name, "root") ? type : "root", builtin_of(type));
}

/* A GBNF literal of text: "..." with \r \n " \ escaped. */
static char *format_literal(conv *c, const char *text)
{
    textbuf b = {0};
    textbuf_append(&b, "\"", 1);
    for (const char *p = text; *p; p++) {
        const char *e = *p == '\r' ? "\\r" : *p == '\n' ? "\\n" : *p == '"' ? "\\\"" : *p == '\\' ? "\\\\" : NULL;
        if (e) textbuf_append_str(&b, e);
        else textbuf_append(&b, p, 1);
    }
    textbuf_append(&b, "\"", 1);
    return js_from_buf(c, &b);
}

/* The JSON text of a value, compact, as a literal. */
static char *constant_rule(conv *c, const cJSON *value)
{
    char *json = cJSON_PrintUnformatted(value);
    if (!json) { js_fail(c, "#", "out of memory"); return ""; }
    char *kept = js_str(c, "%s", json);
    cJSON_free(json);
    return format_literal(c, kept);
}

/* item repeated min..max times (max INT_MAX = unbounded), separated by sep (or ""). */
char *js_repetition(conv *c, const char *item, int min, int max, const char *sep)
{
    bool has_max = max != INT_MAX;
    if (max == 0) return "";
    if (min == 0 && max == 1) return js_str(c, "%s?", item);
    if (!*sep) {
        if (min == 1 && !has_max) return js_str(c, "%s+", item);
        if (min == 0 && !has_max) return js_str(c, "%s*", item);
        if (has_max) return js_str(c, "%s{%d,%d}", item, min, max);
        return js_str(c, "%s{%d,}", item, min);
    }
    char *group = js_str(c, "(%s %s)", sep, item);
    char *r = js_str(c, "%s %s", item, js_repetition(c, group, min == 0 ? 0 : min - 1, has_max ? max - 1 : max, ""));
    return min == 0 ? js_str(c, "(%s)?", r) : r;
}

/* ----------------------------------------------------------- the visitor */

typedef enum kind {
    K_FAIL, K_REF, K_ANY_OF, K_TYPE_LIST, K_CONST, K_ENUM, K_OBJECT, K_ALL_OF, K_ARRAY,
    K_STRING, K_INTEGER, K_NUMBER, K_BOOLEAN, K_NULL, K_ANY
} kind;

/* Keywords read here, and annotations that do not constrain the value. */
static const char *const KNOWN_KEYWORDS[] = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
    "maxItems", "enum", "const", "pattern", "minLength", "maxLength", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "strict", NULL
};

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static bool check_keywords(conv *c, const cJSON *s, const char *path)
{
    for (const cJSON *k = s->child; k; k = k->next) {
        const char *const *w = KNOWN_KEYWORDS;
        while (*w && strcmp(*w, k->string)) w++;
        if (!*w) { js_fail(c, path, "unsupported keyword \"%s\"", k->string); return false; }
    }
    return true;
}

static const char *format_of(conv *c, const cJSON *s, const char *path)
{
    const cJSON *f = get(s, "format");
    if (!f) return NULL;
    if (!cJSON_IsString(f)) { js_fail(c, path, "format must be a string"); return NULL; }
    const char *v = f->valuestring;
    if (!strcmp(v, "date") || !strcmp(v, "time") || !strcmp(v, "date-time")) return v;
    if (!strcmp(v, "uuid") || (strlen(v) == 5 && !strncmp(v, "uuid", 4) && v[4] >= '1' && v[4] <= '5')) return "uuid";
    js_fail(c, path, "unsupported keyword \"format\": \"%s\" (date, time, date-time and uuid are)", v);
    return NULL;
}

/* What a schema is, decided in llama.cpp's order. */
static kind classify(conv *c, const cJSON *s, const char *path)
{
    if (c->failed) return K_FAIL;
    if (!cJSON_IsObject(s)) { js_fail(c, path, "schema must be an object"); return K_FAIL; }
    if (get(s, "$ref")) return K_REF;
    if (get(s, "oneOf") || get(s, "anyOf")) return K_ANY_OF;
    const cJSON *type = get(s, "type");
    if (cJSON_IsArray(type)) return K_TYPE_LIST;
    if (get(s, "const")) return K_CONST;
    if (get(s, "enum")) return K_ENUM;
    if (type && !cJSON_IsString(type)) { js_fail(c, path, "type must be a string or an array of strings"); return K_FAIL; }
    const cJSON *ap = get(s, "additionalProperties");
    bool has_properties = get(s, "properties") || (ap && !cJSON_IsTrue(ap));
    const char *t = type ? type->valuestring : "";
    if (!*t) {
        if (has_properties) return K_OBJECT;
        if (get(s, "allOf")) return K_ALL_OF;
        if (get(s, "items") || get(s, "prefixItems")) return K_ARRAY;
        if (get(s, "pattern") || get(s, "minLength") || get(s, "maxLength") || get(s, "format")) return K_STRING;
        return K_ANY;
    }
    if (!strcmp(t, "object")) return !has_properties && get(s, "allOf") ? K_ALL_OF : K_OBJECT;
    if (!strcmp(t, "string")) return get(s, "allOf") ? K_ALL_OF : K_STRING;
    if (!strcmp(t, "array")) return K_ARRAY;
    if (!strcmp(t, "integer")) return K_INTEGER;
    if (!strcmp(t, "number")) return K_NUMBER;
    if (!strcmp(t, "boolean")) return K_BOOLEAN;
    if (!strcmp(t, "null")) return K_NULL;
    js_fail(c, path, "unrecognized type \"%s\"", t);
    return K_FAIL;
}

/* A non-negative integer keyword (def when absent). */
static int count_of(conv *c, const cJSON *s, const char *key, const char *path, int def)
{
    const cJSON *v = get(s, key);
    if (!v) return def;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INT_MAX || v->valuedouble != floor(v->valuedouble)) {
        js_fail(c, path, "%s must be a non-negative integer", key);
        return def;
    }
    return (int)v->valuedouble;
}

/* An integer bound, a fractional one rounded towards the integers it admits. */
static int64_t bound_of(conv *c, const cJSON *v, const char *key, const char *path, bool round_up)
{
    if (!cJSON_IsNumber(v)) { js_fail(c, path, "%s must be a number", key); return 0; }
    double d = round_up ? ceil(v->valuedouble) : floor(v->valuedouble);
    if (!(fabs(d) <= 9007199254740992.0)) { js_fail(c, path, "%s is out of range (|x| <= 2^53)", key); return 0; }
    return (int64_t)d;
}

/* The schema a "#/a/b" reference points at. */
static const cJSON *resolve_ref(conv *c, const char *ref, const char *path)
{
    const cJSON *t = c->root;
    const char *p = ref + 1;
    while (*p == '/') {
        p++;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *sel = js_str(c, "%.*s", (int)n, p);
        const cJSON *next = NULL;
        if (cJSON_IsObject(t)) {
            next = get(t, sel);
        } else if (cJSON_IsArray(t)) {
            char *e;
            long idx = strtol(sel, &e, 10);
            if (*sel && !*e && idx >= 0) next = cJSON_GetArrayItem(t, (int)idx);
        }
        if (!next) { js_fail(c, path, "cannot resolve $ref %s, %s not found", ref, sel); return NULL; }
        t = next;
        p += n;
    }
    return t;
}

static char *visit(conv *c, const cJSON *s, const char *name, const char *path);

static char *visit_ref(conv *c, const cJSON *s, const char *rule_name, const char *path)
{
    const cJSON *v = get(s, "$ref");
    if (!cJSON_IsString(v)) { js_fail(c, path, "$ref must be a string"); return ""; }
    const char *ref = v->valuestring;
    if (strncmp(ref, "#/", 2)) {
        js_fail(c, path, "unsupported $ref %s, only references into the same document are supported", ref);
        return "";
    }
    const cJSON *target = resolve_ref(c, ref, path);
    if (!target) return "";
    char *ref_name = js_str(c, "ref%s", rule_name_of(c, ref + 1));
    bool resolving = false;
    for (int i = 0; i < c->n_resolving; i++) resolving |= !strcmp(c->resolving[i], ref);
    if (find_rule(c, ref_name) < 0 && !resolving) {
        if (c->n_resolving == MAX_DEPTH) { js_fail(c, path, "$refs nested deeper than %d", MAX_DEPTH); return ""; }
        c->resolving[c->n_resolving++] = ref;
        ref_name = visit(c, target, ref_name, ref);
        c->n_resolving--;
    }
    return js_add_rule(c, rule_name, ref_name);
}

/* Alternatives: each visited as name-i (or alternative-i at the root). */
static char *union_of(conv *c, const cJSON *const *alts, int n, const char *name, const char *path)
{
    textbuf b = {0};
    for (int i = 0; i < n && !c->failed; i++) {
        char *alt_name = js_str(c, "%s%s%d", name, *name ? "-" : "alternative-", i);
        char *r = visit(c, alts[i], alt_name, js_str(c, "%s/%d", path, i));
        if (i) textbuf_append_str(&b, " | ");
        textbuf_append_str(&b, r);
    }
    return js_from_buf(c, &b);
}

/* A JSON string that is none of names: a trie of their characters. */
static void not_strings_node(conv *c, textbuf *o, const char *const *names, int n, size_t depth, const char *char_rule)
{
    /* the distinct next characters (UTF-8 sequences) in byte order = code point order */
    const char **seen = malloc(((size_t)n + 1) * sizeof *seen), **sub = malloc(((size_t)n + 1) * sizeof *sub);
    size_t *seen_len = malloc(((size_t)n + 1) * sizeof *seen_len);
    if (!seen || !sub || !seen_len) {
        free(seen); free(sub); free(seen_len);
        js_fail(c, "#", "out of memory");
        return;
    }
    int n_seen = 0;
    for (;;) {
        const char *best = NULL;
        size_t best_len = 0;
        for (int i = 0; i < n; i++) {
            if (strlen(names[i]) <= depth) continue;
            const char *ch = names[i] + depth;
            size_t len = 1;
            while (len < 4 && ((unsigned char)ch[len] & 0xC0) == 0x80) len++;
            if (n_seen) {  /* only after the last one taken */
                size_t last = seen_len[n_seen - 1];
                int cmp = memcmp(ch, seen[n_seen - 1], len < last ? len : last);
                if (cmp < 0 || (cmp == 0 && len <= last)) continue;
            }
            int cmp = best ? memcmp(ch, best, len < best_len ? len : best_len) : -1;
            if (!best || cmp < 0 || (cmp == 0 && len < best_len)) { best = ch; best_len = len; }
        }
        if (!best) break;
        seen[n_seen] = best;
        seen_len[n_seen++] = best_len;
    }
    for (int k = 0; k < n_seen; k++) {
        if (k) textbuf_append_str(o, " | ");
        textbuf_printf(o, "[%.*s]", (int)seen_len[k], seen[k]);
        /* the names going on after this character, and whether any does go on */
        int n_sub = 0;
        bool longer = false;
        for (int i = 0; i < n; i++) {
            if (strlen(names[i]) < depth + seen_len[k] || memcmp(names[i] + depth, seen[k], seen_len[k])) continue;
            sub[n_sub++] = names[i];
            longer |= strlen(names[i]) > depth + seen_len[k];
        }
        if (longer) {
            textbuf_append_str(o, " (");
            not_strings_node(c, o, sub, n_sub, depth + seen_len[k], char_rule);
            textbuf_append_str(o, ")");
        } else {
            textbuf_printf(o, " %s+", char_rule);
        }
    }
    if (n_seen) {
        textbuf_append_str(o, " | [^\"");
        for (int k = 0; k < n_seen; k++) textbuf_append(o, seen[k], seen_len[k]);
        textbuf_printf(o, "] %s*", char_rule);
    }
    free(seen);
    free(sub);
    free(seen_len);
}

#define MAX_EXCLUDED_NAME 256   /* bytes: the trie's depth, a recursion */

static char *not_strings(conv *c, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) > MAX_EXCLUDED_NAME) {
            js_fail(c, "#", "a property name longer than %d bytes beside additionalProperties is not supported",
                 MAX_EXCLUDED_NAME);
            return "";
        }
    char *char_rule = add_builtin_named(c, "char");
    textbuf o = {0};
    textbuf_append_str(&o, "[\"] ( ");
    not_strings_node(c, &o, names, n, 0, char_rule);
    textbuf_append_str(&o, " )");
    bool has_empty = false;
    for (int i = 0; i < n; i++) has_empty |= !*names[i];
    if (!has_empty) textbuf_append_str(&o, "?");
    textbuf_append_str(&o, " [\"]");
    return js_from_buf(c, &o);
}

typedef struct prop {
    const char *name;
    const cJSON *schema;
    bool required;
} prop;

/* An object of these properties (in their order: the required ones first,
 * then the optional ones each allowed to start the rest), and others of
 * schema additional (NULL: none; K_ANY: any value). */
static char *object_rule(conv *c, const prop *props, int n, const char *name, const cJSON *additional,
                         bool additional_any, const char *path)
{
    const char *sep = *name ? "-" : "";
    const char **kv = calloc((size_t)n + 1, sizeof *kv), **keys = calloc((size_t)n + 1, sizeof *keys);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    if (!kv || !keys || !names) { free(kv); free(keys); free(names); js_fail(c, path, "out of memory"); return ""; }
    int n_req = 0, n_opt = 0;
    int *order = calloc((size_t)n + 1, sizeof *order);   /* required then optional indexes */
    if (!order) { free(kv); free(keys); free(names); js_fail(c, path, "out of memory"); return ""; }
    for (int i = 0; i < n && !c->failed; i++) {
        char *prop_name = js_str(c, "%s%s%s", name, sep, props[i].name);
        char *prop_rule = visit(c, props[i].schema, prop_name, js_str(c, "%s/properties/%s", path, props[i].name));
        cJSON *js = cJSON_CreateString(props[i].name);
        char *key = js ? constant_rule(c, js) : "";
        cJSON_Delete(js);
        kv[i] = js_add_rule(c, js_str(c, "%s-kv", prop_name), js_str(c, "%s space \":\" space %s", key, prop_rule));
        keys[i] = props[i].name;
        names[i] = props[i].name;
        if (props[i].required) n_req++;
        else n_opt++;
    }
    if (c->failed) {   /* (names and kv are not all set) */
        free(kv); free(keys); free(names); free(order);
        return "";
    }
    int k = 0;
    for (int i = 0; i < n; i++) if (props[i].required) order[k++] = i;
    for (int i = 0; i < n; i++) if (!props[i].required) order[k++] = i;
    if (additional || additional_any) {
        char *sub_name = js_str(c, "%s%sadditional", name, sep);
        char *value_rule = additional_any ? add_builtin_named(c, "value")
                                          : visit(c, additional, js_str(c, "%s-value", sub_name),
                                                  js_str(c, "%s/additionalProperties", path));
        char *key_rule = n == 0 ? add_builtin_named(c, "string")
                                : js_add_rule(c, js_str(c, "%s-k", sub_name), not_strings(c, names, n));
        kv[n] = js_add_rule(c, js_str(c, "%s-kv", sub_name), js_str(c, "%s \":\" space %s", key_rule, value_rule));
        keys[n] = "*";
        order[k++] = n;
        n_opt++;
    }
    char *rule;
    if (n_req + n_opt == 0) {
        rule = "\"{\" space \"}\"";
    } else {
        textbuf b = {0};
        textbuf_append_str(&b, "\"{\" space ");
        for (int i = 0; i < n_req; i++) {
            if (i) textbuf_append_str(&b, " \",\" space ");
            textbuf_append_str(&b, kv[order[i]]);
        }
        if (n_opt) {
            const int *opt = order + n_req;
            /* rest[j]: optional property j and, optionally, each later one
             * (as llama.cpp, a rule "<name>-<prop>-rest" holds what may follow prop) */
            char **rest = calloc((size_t)n_opt, sizeof *rest);
            if (!rest) js_fail(c, path, "out of memory");
            for (int j = n_opt - 1; j >= 0 && rest; j--) {
                int p = opt[j];
                char *comma = js_str(c, "( \",\" space %s )%s", kv[p], p == n ? "*" : "?");
                rest[j] = j + 1 < n_opt
                    ? js_str(c, "%s %s", comma, js_add_rule(c, js_str(c, "%s%s%s-rest", name, sep, keys[p]), rest[j + 1]))
                    : comma;
            }
            textbuf_append_str(&b, " (");
            if (n_req) textbuf_append_str(&b, " \",\" space ( ");
            for (int i = 0; i < n_opt && rest; i++) {
                int p = opt[i];
                if (i) textbuf_append_str(&b, " | ");
                textbuf_append_str(&b, kv[p]);
                if (p == n) textbuf_printf(&b, " ( \",\" space %s )*", kv[p]);
                if (i + 1 < n_opt)
                    textbuf_printf(&b, " %s", js_add_rule(c, js_str(c, "%s%s%s-rest", name, sep, keys[p]), rest[i + 1]));
            }
            if (n_req) textbuf_append_str(&b, " )");
            textbuf_append_str(&b, " )?");
            free(rest);
        }
        textbuf_append_str(&b, " space \"}\"");
        rule = js_from_buf(c, &b);
    }
    free(kv); free(keys); free(names); free(order);
    return rule;
}

/* The properties of an object schema, in their order, required or not. */
static prop *props_of(conv *c, const cJSON *s, const char *path, int *n, bool all_required)
{
    *n = 0;
    const cJSON *properties = get(s, "properties"), *required = get(s, "required");
    if (!properties) return NULL;
    if (!cJSON_IsObject(properties)) { js_fail(c, path, "properties must be an object"); return NULL; }
    int count = cJSON_GetArraySize(properties);
    prop *props = calloc((size_t)count + 1, sizeof *props);
    if (!props) { js_fail(c, path, "out of memory"); return NULL; }
    for (const cJSON *p = properties->child; p; p = p->next) {
        bool req = all_required;
        if (cJSON_IsArray(required))
            for (const cJSON *r = required->child; r && !req; r = r->next)
                req = cJSON_IsString(r) && !strcmp(r->valuestring, p->string);
        props[(*n)++] = (prop){p->string, p, req};
    }
    return props;
}

/* allOf: the union of its object parts' properties (a part inside an
 * anyOf contributes optional ones). */
static char *visit_all_of(conv *c, const cJSON *s, const char *name, const char *rule_name, const char *path)
{
    const cJSON *all = get(s, "allOf");
    if (!cJSON_IsArray(all) || !all->child) { js_fail(c, path, "allOf must be a non-empty array of schemas"); return ""; }
    prop *props = NULL;
    int n = 0;
    /* (part, required) pairs still to read; anyOf parts push their alternatives */
    const cJSON *todo[64];
    bool todo_req[64];
    int n_todo = 0;
    for (const cJSON *a = all->child; a; a = a->next) {
        const cJSON *alts = cJSON_IsObject(a) ? get(a, "anyOf") : NULL;
        for (const cJSON *x = alts ? alts->child : a; x && n_todo < 64; x = alts ? x->next : NULL) {
            todo[n_todo] = x;
            todo_req[n_todo++] = !alts;
        }
    }
    for (int t = 0; t < n_todo && !c->failed; t++) {
        const cJSON *part = todo[t];
        for (int hops = 0; cJSON_IsObject(part) && get(part, "$ref") && hops < MAX_DEPTH && !c->failed; hops++) {
            const cJSON *r = get(part, "$ref");
            part = cJSON_IsString(r) && !strncmp(r->valuestring, "#/", 2) ? resolve_ref(c, r->valuestring, path) : NULL;
            if (!part) js_fail(c, path, "allOf: unsupported $ref");
        }
        if (c->failed) break;
        if (classify(c, part, path) != K_OBJECT) {
            js_fail(c, path, "allOf with a part that is not an object schema is not supported");
            break;
        }
        if (!check_keywords(c, part, path)) break;
        int m;
        prop *more = props_of(c, part, path, &m, false);
        prop *all_props = realloc(props, (size_t)(n + m + 1) * sizeof *all_props);
        if (!all_props) { free(more); js_fail(c, path, "out of memory"); break; }
        props = all_props;
        for (int i = 0; i < m; i++) props[n++] = (prop){more[i].name, more[i].schema, todo_req[t]};
        free(more);
    }
    char *rule = c->failed ? "" : object_rule(c, props, n, name, NULL, false, path);
    free(props);
    return js_add_rule(c, rule_name, rule);
}

static char *visit_object(conv *c, const cJSON *s, const char *name, const char *rule_name, const char *path)
{
    const cJSON *ap = get(s, "additionalProperties");
    const cJSON *additional = NULL;
    bool additional_any = false;
    if (ap) {
        if (cJSON_IsBool(ap)) additional_any = cJSON_IsTrue(ap);
        else if (cJSON_IsObject(ap)) additional = ap;
        else { js_fail(c, path, "additionalProperties must be a boolean or a schema"); return ""; }
    } else if (!get(s, "properties")) {
        additional_any = true;   /* {"type": "object"} alone accepts any object */
    }
    if (additional && classify(c, additional, path) == K_ANY) {
        check_keywords(c, additional, path);
        additional = NULL;
        additional_any = true;
    }
    int n;
    prop *props = props_of(c, s, path, &n, false);
    if (c->failed) { free(props); return ""; }
    if (n == 0 && additional_any && !additional) {
        free(props);
        return js_add_rule(c, rule_name, add_builtin_named(c, "object"));
    }
    char *rule = object_rule(c, props, n, name, additional, additional_any, path);
    free(props);
    return js_add_rule(c, rule_name, rule);
}

static char *visit_array(conv *c, const cJSON *s, const char *name, const char *rule_name, const char *path)
{
    const char *sub = js_str(c, "%s%s", name, *name ? "-" : "");
    const char *key = get(s, "items") ? "items" : "prefixItems";
    const cJSON *items = get(s, key);
    if (cJSON_IsArray(items)) {   /* a tuple */
        textbuf b = {0};
        textbuf_append_str(&b, "\"[\" space ");
        int i = 0;
        for (const cJSON *it = items->child; it && !c->failed; it = it->next, i++) {
            if (i) textbuf_append_str(&b, " \",\" space ");
            textbuf_append_str(&b, visit(c, it, js_str(c, "%stuple-%d", sub, i), js_str(c, "%s/%s/%d", path, key, i)));
        }
        textbuf_append_str(&b, " space \"]\"");
        return js_add_rule(c, rule_name, js_from_buf(c, &b));
    }
    int min = count_of(c, s, "minItems", path, 0), max = count_of(c, s, "maxItems", path, -1);
    if (max >= 0 && max < min) { js_fail(c, path, "maxItems is below minItems"); return ""; }
    bool any = !items || (classify(c, items, path) == K_ANY && check_keywords(c, items, path));
    if (c->failed) return "";
    if (any && min == 0 && max < 0) return visit_builtin(c, rule_name, "array");
    char *item = items ? visit(c, items, js_str(c, "%sitem", sub), js_str(c, "%s/%s", path, key))
                       : js_add_rule(c, js_str(c, "%sitem", sub), add_builtin_named(c, "value"));
    return js_add_rule(c, rule_name, js_str(c, "\"[\" space %s space \"]\"",
                                      js_repetition(c, item, min, max < 0 ? INT_MAX : max, "\",\" space")));
}

static char *visit_string(conv *c, const cJSON *s, const char *rule_name, const char *path)
{
    const cJSON *pattern = get(s, "pattern");
    const char *format = format_of(c, s, path);
    int min = count_of(c, s, "minLength", path, 0), max = count_of(c, s, "maxLength", path, -1);
    if (c->failed) return "";
    if (pattern) {
        if (!cJSON_IsString(pattern)) { js_fail(c, path, "pattern must be a string"); return ""; }
        if (format || get(s, "minLength") || get(s, "maxLength")) {
            js_fail(c, path, "pattern together with %s is not supported", format ? "format" : "minLength/maxLength");
            return "";
        }
        return js_pattern(c, pattern->valuestring, rule_name, path);
    }
    if (format) {
        if (get(s, "minLength") || get(s, "maxLength")) {
            js_fail(c, path, "format together with minLength/maxLength is not supported");
            return "";
        }
        if (!strcmp(format, "uuid")) return visit_builtin(c, rule_name, "uuid");
        return js_add_rule(c, rule_name, add_builtin_named(c, js_str(c, "%s-string", format)));
    }
    if (max >= 0 && max < min) { js_fail(c, path, "maxLength is below minLength"); return ""; }
    if (min > 0 || max >= 0) {
        char *char_rule = add_builtin_named(c, "char");
        return js_add_rule(c, rule_name, js_str(c, "\"\\\"\" %s \"\\\"\"",
                                          js_repetition(c, char_rule, min, max < 0 ? INT_MAX : max, "")));
    }
    return visit_builtin(c, rule_name, "string");
}

static char *visit_integer(conv *c, const cJSON *s, const char *rule_name, const char *path)
{
    int64_t min = INT64_MIN, max = INT64_MAX;
    const cJSON *v;
    if ((v = get(s, "minimum"))) min = bound_of(c, v, "minimum", path, true);
    else if ((v = get(s, "exclusiveMinimum"))) min = bound_of(c, v, "exclusiveMinimum", path, false) + 1;
    if ((v = get(s, "maximum"))) max = bound_of(c, v, "maximum", path, false);
    else if ((v = get(s, "exclusiveMaximum"))) max = bound_of(c, v, "exclusiveMaximum", path, true) - 1;
    if (c->failed) return "";
    if (min == INT64_MIN && max == INT64_MAX) return visit_builtin(c, rule_name, "integer");
    if (min != INT64_MIN && max != INT64_MAX && min > max) { js_fail(c, path, "maximum is below minimum"); return ""; }
    textbuf o = {0};
    textbuf_append_str(&o, "(");
    gbnf_int_range(&o, min, max);
    textbuf_append_str(&o, ")");
    return js_add_rule(c, rule_name, js_from_buf(c, &o));
}

static char *visit(conv *c, const cJSON *s, const char *name, const char *path)
{
    if (c->failed) return "";
    if (c->depth >= MAX_DEPTH) { js_fail(c, path, "schema nested deeper than %d", MAX_DEPTH); return ""; }
    kind k = classify(c, s, path);
    if (k == K_FAIL || !check_keywords(c, s, path)) return "";
    const char *rule_name = is_reserved(name) ? js_str(c, "%s-", name) : *name ? name : "root";
    char *r = "";
    c->depth++;
    switch (k) {
    case K_REF:
        r = visit_ref(c, s, rule_name, path);
        break;
    case K_ANY_OF: {
        const char *key = get(s, "oneOf") ? "oneOf" : "anyOf";
        const cJSON *alts = get(s, key);
        int n = cJSON_IsArray(alts) ? cJSON_GetArraySize(alts) : 0;
        if (n == 0) { js_fail(c, path, "%s must be a non-empty array of schemas", key); break; }
        const cJSON **a = calloc((size_t)n, sizeof *a);
        if (!a) { js_fail(c, path, "out of memory"); break; }
        int i = 0;
        for (const cJSON *x = alts->child; x; x = x->next) a[i++] = x;
        r = js_add_rule(c, rule_name, union_of(c, a, n, name, js_str(c, "%s/%s", path, key)));
        free(a);
        break;
    }
    case K_TYPE_LIST: {   /* {"type": ["a", "b"], ...} is {"anyOf": [{"type": "a", ...}, ...]} */
        const cJSON *types = get(s, "type");
        int n = cJSON_GetArraySize(types);
        if (n == 0) { js_fail(c, path, "type must not be empty"); break; }
        cJSON **alts = calloc((size_t)n, sizeof *alts);
        if (!alts) { js_fail(c, path, "out of memory"); break; }
        int i = 0;
        for (const cJSON *t = types->child; t; t = t->next, i++) {
            alts[i] = cJSON_Duplicate(s, true);
            cJSON *t_copy = cJSON_Duplicate(t, true);
            if (!alts[i] || !t_copy || !cJSON_ReplaceItemInObjectCaseSensitive(alts[i], "type", t_copy)) {
                cJSON_Delete(t_copy);
                js_fail(c, path, "out of memory");
            }
        }
        if (!c->failed) r = js_add_rule(c, rule_name, union_of(c, (const cJSON *const *)alts, n, name, js_str(c, "%s/type", path)));
        for (i = 0; i < n; i++) cJSON_Delete(alts[i]);
        free(alts);
        break;
    }
    case K_CONST:
        r = js_add_rule(c, rule_name, constant_rule(c, get(s, "const")));
        break;
    case K_ENUM: {
        const cJSON *values = get(s, "enum");
        if (!cJSON_IsArray(values) || !values->child) { js_fail(c, path, "enum must be a non-empty array"); break; }
        textbuf b = {0};
        textbuf_append_str(&b, "(");
        for (const cJSON *v = values->child; v && !c->failed; v = v->next)
            textbuf_printf(&b, "%s%s", v == values->child ? "" : " | ", constant_rule(c, v));
        textbuf_append_str(&b, ")");
        r = js_add_rule(c, rule_name, js_from_buf(c, &b));
        break;
    }
    case K_OBJECT: r = visit_object(c, s, name, rule_name, path); break;
    case K_ALL_OF: r = visit_all_of(c, s, name, rule_name, path); break;
    case K_ARRAY: r = visit_array(c, s, name, rule_name, path); break;
    case K_STRING: r = visit_string(c, s, rule_name, path); break;
    case K_INTEGER: r = visit_integer(c, s, rule_name, path); break;
    case K_NUMBER: {
        static const char *const bounds[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
        for (int i = 0; i < 4; i++)
            if (get(s, bounds[i])) js_fail(c, path, "unsupported keyword \"%s\" on a number (integer bounds are supported)", bounds[i]);
        r = visit_builtin(c, rule_name, "number");
        break;
    }
    case K_BOOLEAN: r = visit_builtin(c, rule_name, "boolean"); break;
    case K_NULL: r = visit_builtin(c, rule_name, "null"); break;
    case K_ANY: r = js_add_rule(c, rule_name, add_builtin_named(c, "value")); break;
    case K_FAIL: break;
    }
    c->depth--;
    return r;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

char *json_schema_to_gbnf(const cJSON *schema, char *err, size_t err_size)
{
    conv c = {.root = schema, .err = err, .err_size = err_size};
    if (err && err_size) err[0] = '\0';
    set_rule(&c, "space", SPACE_RULE);
    visit(&c, schema, "", "#");
    char *out = NULL;
    if (!c.failed) {
        /* rules sorted by name: sort (name, body) pairs by their names */
        char ***pairs = malloc((size_t)c.n_rules * sizeof *pairs);
        textbuf b = {0};
        bool ok = pairs != NULL;
        for (int i = 0; ok && i < c.n_rules; i++) {
            pairs[i] = malloc(2 * sizeof **pairs);
            if (!pairs[i]) { ok = false; c.n_rules = i; break; }
            pairs[i][0] = c.rule_name[i];
            pairs[i][1] = c.rule_body[i];
        }
        if (ok) qsort(pairs, (size_t)c.n_rules, sizeof *pairs, by_name);
        for (int i = 0; ok && i < c.n_rules; i++) ok = textbuf_printf(&b, "%s ::= %s\n", pairs[i][0], pairs[i][1]);
        for (int i = 0; pairs && i < c.n_rules; i++) free(pairs[i]);
        free(pairs);
        if (ok) out = b.p ? b.p : strdup("");
        else { textbuf_free(&b); js_fail(&c, "#", "out of memory"); }
    }
    for (size_t i = 0; i < c.n_arena; i++) free(c.arena[i]);
    free(c.arena);
    free(c.rule_name);
    free(c.rule_body);
    return out;
}

char *json_schema_text_to_gbnf(const char *text, size_t len, char *err, size_t err_size)
{
    const char *end = NULL;
    cJSON *schema = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!schema) {
        if (err && err_size)
            snprintf(err, err_size, "JSON schema does not parse (at byte %zu)", end ? (size_t)(end - text) : (size_t)0);
        return NULL;
    }
    char *g = json_schema_to_gbnf(schema, err, err_size);
    cJSON_Delete(schema);
    return g;
}

char *json_object_gbnf(char *err, size_t err_size)
{
    static const char object_schema[] = "{\"type\":\"object\"}";
    return json_schema_text_to_gbnf(object_schema, sizeof object_schema - 1, err, err_size);
}
