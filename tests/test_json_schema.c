/*
 * test_json_schema.c — examples/common's JSON Schema to GBNF converter:
 * every schema of tests/fixtures/json_schema/ gives exactly the grammar
 * llama.cpp's converter writes (fixtures by gen_json_schema_fixtures.py),
 * a feature it does not cover is an error naming the keyword, and on
 * SmolLM2 (when present) every converted grammar parses in the library.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "testutil.h"
#include "../examples/common/json_schema.h"

typedef struct schema_case {
    char *schema, *grammar;
} schema_case;

/* The fixture's cases: "schema <json>\n" <grammar lines> "end\n". */
static schema_case *read_cases(int *n)
{
    size_t size;
    char *text = (char *)test_read_file("tests/fixtures/json_schema/grammars.txt", &size);
    ck_assert_msg(text, "tests/fixtures/json_schema/grammars.txt missing");
    schema_case *cases = calloc(256, sizeof *cases);
    *n = 0;
    char *p = text;
    while (p < text + size && *n < 256) {
        ck_assert(!strncmp(p, "schema ", 7));
        char *eol = strchr(p, '\n');
        cases[*n].schema = strndup(p + 7, (size_t)(eol - p - 7));
        char *end = strstr(eol + 1, "\nend\n");
        ck_assert(end);
        cases[*n].grammar = strndup(eol + 1, (size_t)(end + 1 - (eol + 1)));
        (*n)++;
        p = end + 5;
    }
    free(text);
    return cases;
}

static void free_cases(schema_case *cases, int n)
{
    for (int i = 0; i < n; i++) {
        free(cases[i].schema);
        free(cases[i].grammar);
    }
    free(cases);
}

START_TEST(test_grammars_equal_llama_cpp)
{
    int n;
    schema_case *cases = read_cases(&n);
    ck_assert_int_ge(n, 30);
    for (int i = 0; i < n; i++) {
        char err[256];
        char *g = json_schema_text_to_gbnf(cases[i].schema, strlen(cases[i].schema), err, sizeof err);
        ck_assert_msg(g, "%s: %s", cases[i].schema, err);
        ck_assert_msg(!strcmp(g, cases[i].grammar), "%s:\nkinfer:\n%sllama.cpp:\n%s", cases[i].schema, g,
                      cases[i].grammar);
        free(g);
    }
    free_cases(cases, n);
}
END_TEST

START_TEST(test_json_object_mode)
{
    char err[256];
    char *g = json_object_gbnf(err, sizeof err);
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_nonnull(strstr(g, "root ::= object\n"));
    ck_assert_ptr_nonnull(strstr(g, "object ::= \"{\" space ( string \":\" space value"));
    free(g);
}
END_TEST

/* Each schema must fail with a message holding the expected words. */
START_TEST(test_errors_name_the_problem)
{
    static const char *const cases[][2] = {
        {"{\"type\":\"array\",\"uniqueItems\":true}", "#: unsupported keyword \"uniqueItems\""},
        {"{\"properties\":{\"a\":{\"not\":{}}}}", "#/properties/a: unsupported keyword \"not\""},
        {"{\"type\":\"string\",\"format\":\"email\"}", "\"format\": \"email\""},
        {"{\"type\":\"number\",\"maximum\":3}", "\"maximum\" on a number"},
        {"{\"type\":\"string\",\"pattern\":\"^\\\\d+$\"}", "unsupported pattern ^\\d+$"},
        {"{\"type\":\"string\",\"pattern\":\"abc\"}", "not anchored"},
        {"{\"type\":\"string\",\"pattern\":\"^(a$\"}", "invalid pattern ^(a$: unbalanced parentheses"},
        {"{\"type\":\"string\",\"pattern\":\"^[ab$\"}", "unterminated character class"},
        {"{\"type\":\"string\",\"pattern\":\"^*a$\"}", "nothing to repeat"},
        {"{\"$ref\":\"#/$defs/missing\",\"$defs\":{}}", "cannot resolve $ref #/$defs/missing"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "only references into the same document"},
        {"{\"type\":\"widget\"}", "unrecognized type \"widget\""},
        {"{\"type\":\"array\",\"minItems\":1.5}", "minItems must be a non-negative integer"},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "maxItems is below minItems"},
        {"{\"type\":\"string\",\"minLength\":-1}", "minLength must be a non-negative integer"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "maximum is below minimum"},
        {"{\"type\":\"integer\",\"minimum\":1e300}", "minimum is out of range"},
        {"{\"enum\":[]}", "enum must be a non-empty array"},
        {"{\"anyOf\":[]}", "anyOf must be a non-empty array"},
        {"{\"type\":[]}", "type must not be empty"},
        {"{\"properties\":[1]}", "properties must be an object"},
        {"{\"type\":\"object\",\"additionalProperties\":3}", "additionalProperties must be a boolean or a schema"},
        {"{\"properties\":{\"a\":true}}", "#/properties/a: schema must be an object"},
        {"{\"allOf\":[{\"type\":\"string\"}]}", "allOf with a part that is not an object"},
        {"[\"not a schema\"", "does not parse"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256];
        char *g = json_schema_text_to_gbnf(cases[i][0], strlen(cases[i][0]), err, sizeof err);
        ck_assert_msg(!g, "%s converted", cases[i][0]);
        ck_assert_msg(strstr(err, cases[i][1]), "%s: message \"%s\" lacks \"%s\"", cases[i][0], err, cases[i][1]);
    }
}
END_TEST

/* A recursive $ref converts (the cycle stops at the reference), and deep
 * nesting is an error, not a stack overflow. */
START_TEST(test_recursion_and_depth)
{
    char err[1024];
    const char *rec = "{\"$ref\":\"#/$defs/t\",\"$defs\":{\"t\":{\"type\":\"object\",\"properties\":"
                      "{\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"}}}}}}";
    char *g = json_schema_text_to_gbnf(rec, strlen(rec), err, sizeof err);
    ck_assert_msg(g, "%s", err);
    ck_assert_ptr_nonnull(strstr(g, "ref-defs-t ::= "));
    free(g);
    char deep[8192] = "";
    for (int i = 0; i < 200; i++) strcat(deep, "{\"type\":\"array\",\"items\":");
    strcat(deep, "{}");
    for (int i = 0; i < 200; i++) strcat(deep, "}");
    g = json_schema_text_to_gbnf(deep, strlen(deep), err, sizeof err);
    ck_assert_ptr_null(g);
    ck_assert_ptr_nonnull(strstr(err, "nested deeper"));
}
END_TEST

/* Every converted grammar parses in the library, on SmolLM2's vocabulary. */
START_TEST(test_grammars_parse_in_library)
{
    const char *path = test_model_path("SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!path) return;
    kinfer_model *model = NULL;
    kinfer_model_params mp = kinfer_model_default_params();
    ck_assert_int_eq(kinfer_model_load(path, &mp, &model), KINFER_OK);
    int n;
    schema_case *cases = read_cases(&n);
    for (int i = 0; i < n; i++) {
        kinfer_grammar *g = NULL;
        kinfer_error e = {0};
        ck_assert_msg(kinfer_grammar_new(model, cases[i].grammar, NULL, &g, &e) == KINFER_OK, "%s: %s",
                      cases[i].schema, e.message);
        kinfer_grammar_free(g);
    }
    free_cases(cases, n);
    kinfer_model_free(model);
}
END_TEST

static Suite *json_schema_suite(void)
{
    Suite *s = suite_create("json_schema");
    TCase *tc = tcase_create("convert");
    tcase_add_test(tc, test_grammars_equal_llama_cpp);
    tcase_add_test(tc, test_json_object_mode);
    tcase_add_test(tc, test_errors_name_the_problem);
    tcase_add_test(tc, test_recursion_and_depth);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("model");
    tcase_set_timeout(tm, 120);
    tcase_add_test(tm, test_grammars_parse_in_library);
    suite_add_tcase(s, tm);
    return s;
}

int main(void) { return test_run_suite(json_schema_suite()); }
