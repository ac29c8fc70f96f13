/*
 * test_chat.c — chat templates against llama.cpp's llama_chat_apply_template
 * (fixture tests/fixtures/tokenizer/chat.txt from gen_tokenizer_fixtures.py).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"
#include "testutil.h"

#define CHAT_FIX "tests/fixtures/tokenizer/chat.txt"
#define MAX_SETS 16
#define MAX_MSGS 16

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* hex (or "-" for empty) to a NUL-terminated malloc'd string */
static char *unhex(const char *s, size_t len)
{
    char *out = malloc(len / 2 + 1);
    ck_assert_ptr_nonnull(out);
    size_t n = 0;
    if (!(len == 1 && s[0] == '-')) {
        for (size_t i = 0; i + 1 < len; i += 2)
            out[n++] = (char)(hexval(s[i]) * 16 + hexval(s[i + 1]));
    }
    out[n] = 0;
    return out;
}

static char *next_field(char **p)
{
    while (**p == ' ')
        (*p)++;
    char *start = *p;
    while (**p && **p != ' ')
        (*p)++;
    if (**p)
        *(*p)++ = 0;
    return start;
}

static kinfer_chat_message g_sets[MAX_SETS][MAX_MSGS];
static size_t g_n_msgs[MAX_SETS];

typedef struct render_case {
    char *tmpl;
    int set, add;
    char *expect;   /* NULL: llama.cpp refused */
} render_case;

static render_case *g_cases;
static size_t g_n_cases;

static void load_fixture(void)
{
    size_t size;
    char *data = (char *)test_read_file(CHAT_FIX, &size);
    ck_assert_msg(data != NULL, "cannot read " CHAT_FIX " (run from the repo root)");
    g_cases = calloc(size / 8 + 1, sizeof *g_cases);
    char *p = data, *end = data + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        *nl = 0;
        char *line = p;
        p = nl + 1;
        char *kind = next_field(&line);
        if (strcmp(kind, "M") == 0) {
            int set = atoi(next_field(&line));
            char *role = next_field(&line), *content = next_field(&line);
            ck_assert(set < MAX_SETS && g_n_msgs[set] < MAX_MSGS);
            g_sets[set][g_n_msgs[set]].role = unhex(role, strlen(role));
            g_sets[set][g_n_msgs[set]].content = unhex(content, strlen(content));
            g_n_msgs[set]++;
        } else if (strcmp(kind, "R") == 0) {
            render_case *c = &g_cases[g_n_cases++];
            char *t = next_field(&line);
            c->tmpl = unhex(t, strlen(t));
            c->set = atoi(next_field(&line));
            c->add = atoi(next_field(&line));
            char *out = next_field(&line);
            c->expect = strcmp(out, "E") == 0 ? NULL : unhex(out, strlen(out));
        }
    }
    free(data);
}

static void free_fixture(void)
{
    for (size_t i = 0; i < g_n_cases; i++) {
        free(g_cases[i].tmpl);
        free(g_cases[i].expect);
    }
    free(g_cases);
    for (int s = 0; s < MAX_SETS; s++) {
        for (size_t i = 0; i < g_n_msgs[s]; i++) {
            free((char *)g_sets[s][i].role);
            free((char *)g_sets[s][i].content);
        }
    }
}

START_TEST(renderings_match_llama_cpp)
{
    ck_assert_uint_gt(g_n_cases, 200);
    size_t ok = 0, refused = 0;
    char *buf = malloc(1 << 16);
    for (size_t i = 0; i < g_n_cases; i++) {
        const render_case *c = &g_cases[i];
        kinfer_error e;
        int64_t n = kinfer_chat_apply_template(NULL, c->tmpl, g_sets[c->set], g_n_msgs[c->set],
                                               c->add, buf, 1 << 16, &e);
        if (!c->expect) {
            /* llama.cpp does not know it: neither do we */
            ck_assert_msg(n == 0 && e.status == KINFER_E_NOT_FOUND,
                          "template '%.40s' should be unknown", c->tmpl);
            ck_assert_ptr_null(kinfer_chat_template_family(c->tmpl));
            refused++;
            continue;
        }
        ck_assert_msg(e.status == KINFER_OK, "template '%.40s': %s", c->tmpl, e.message);
        ck_assert_msg(n == (int64_t)strlen(c->expect) && memcmp(buf, c->expect, (size_t)n) == 0,
                      "template '%.60s' set %d add %d:\nexpected [%s]\ngot      [%.*s]", c->tmpl,
                      c->set, c->add, c->expect, (int)n, buf);
        ck_assert_int_eq(buf[n], 0);
        ok++;
    }
    printf("chat: %zu renderings identical to llama.cpp, %zu unknown templates refused by both\n",
           ok, refused);
    ck_assert_uint_gt(refused, 0);
    free(buf);
}
END_TEST

START_TEST(family_detection)
{
    ck_assert_str_eq(kinfer_chat_template_family("chatml"), "chatml");
    ck_assert_str_eq(kinfer_chat_template_family("{{'<|im_start|>' + role}}"), "chatml");
    ck_assert_str_eq(kinfer_chat_template_family("<|start_header_id|>x<|end_header_id|>"), "llama3");
    ck_assert_str_eq(kinfer_chat_template_family("<start_of_turn>"), "gemma");
    ck_assert_str_eq(kinfer_chat_template_family("[INST] [SYSTEM_PROMPT]"), "mistral-v7");
    ck_assert_str_eq(kinfer_chat_template_family("### Instruction: <|EOT|>"), "deepseek");
    ck_assert_ptr_null(kinfer_chat_template_family("nothing we know"));
    ck_assert_ptr_null(kinfer_chat_template_family(NULL));
    /* a known family kinfer does not render is a named error */
    kinfer_chat_message m = {"user", "hi"};
    char buf[64];
    kinfer_error e;
    ck_assert_int_eq(kinfer_chat_apply_template(NULL, "[gMASK]sop", &m, 1, true, buf, 64, &e), 0);
    ck_assert_int_eq(e.status, KINFER_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.message, "chatglm3"));
    /* an unknown one names the template */
    ck_assert_int_eq(kinfer_chat_apply_template(NULL, "{{ weird }}\nmore", &m, 1, true, buf, 64, &e), 0);
    ck_assert_int_eq(e.status, KINFER_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(e.message, "{{ weird }}"));
}
END_TEST

START_TEST(buffer_rules)
{
    kinfer_chat_message m[2] = {{"system", "S"}, {"user", "hello"}};
    kinfer_error e;
    int64_t need = kinfer_chat_apply_template(NULL, "chatml", m, 2, true, NULL, 0, &e);
    const char *want = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
                       "<|im_start|>assistant\n";
    ck_assert_int_eq(need, -(int64_t)strlen(want));
    char small[8] = "xxxxxxx";
    ck_assert_int_eq(kinfer_chat_apply_template(NULL, "chatml", m, 2, true, small, 8, &e), need);
    char *buf = malloc((size_t)-need);
    /* exactly the length: fits, no room for the NUL */
    ck_assert_int_eq(kinfer_chat_apply_template(NULL, "chatml", m, 2, true, buf, -need, &e), -need);
    ck_assert_int_eq(memcmp(buf, want, (size_t)-need), 0);
    free(buf);
    /* bad arguments */
    ck_assert_int_eq(kinfer_chat_apply_template(NULL, "chatml", NULL, 2, true, small, 8, &e), 0);
    ck_assert_int_eq(e.status, KINFER_E_INVALID_ARG);
    kinfer_chat_message bad = {NULL, "x"};
    ck_assert_int_eq(kinfer_chat_apply_template(NULL, "chatml", &bad, 1, true, small, 8, &e), 0);
    ck_assert_int_eq(e.status, KINFER_E_INVALID_ARG);
    /* no messages */
    ck_assert_int_eq(kinfer_chat_apply_template(NULL, "llama3", NULL, 0, true, small, 8, &e),
                     -(int64_t)strlen("<|start_header_id|>assistant<|end_header_id|>\n\n"));
}
END_TEST

START_TEST(model_templates)
{
    kinfer_chat_message m[2] = {{"system", "Be brief."}, {"user", "Hi"}};
    char buf[1024];
    kinfer_error e;
    const char *p;
    if ((p = test_model_path(TEST_MODEL_SMOLLM2))) {
        kinfer_model *model;
        ck_assert_int_eq(kinfer_model_load(p, NULL, &model), KINFER_OK);
        const char *t = kinfer_model_chat_template(model);
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(kinfer_chat_template_family(t), "chatml");
        int64_t n = kinfer_chat_apply_template(model, NULL, m, 2, true, buf, sizeof buf, &e);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(buf, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi"
                              "<|im_end|>\n<|im_start|>assistant\n");
        /* the rendering tokenizes with its control tokens as single ids */
        kinfer_token toks[64];
        int64_t nt = kinfer_tokenize(model, buf, (size_t)n, toks, 64, true, true, &e);
        ck_assert_int_gt(nt, 0);
        ck_assert_int_eq(toks[0], 1); /* <|im_start|> */
        kinfer_model_free(model);
    }
    if ((p = test_model_path(TEST_MODEL_GEMMA3))) {
        kinfer_model *model;
        ck_assert_int_eq(kinfer_model_load(p, NULL, &model), KINFER_OK);
        /* no template in the file: chatml, as llama.cpp; "gemma" by name */
        ck_assert_ptr_null(kinfer_model_chat_template(model));
        ck_assert_int_gt(kinfer_chat_apply_template(model, NULL, m, 2, true, buf, sizeof buf, &e), 0);
        ck_assert_ptr_nonnull(strstr(buf, "<|im_start|>"));
        ck_assert_int_gt(kinfer_chat_apply_template(model, "gemma", m, 2, true, buf, sizeof buf, &e), 0);
        ck_assert_str_eq(buf, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
        kinfer_model_free(model);
    }
}
END_TEST

static Suite *chat_suite(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("templates");
    tcase_add_unchecked_fixture(tc, load_fixture, free_fixture);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, renderings_match_llama_cpp);
    tcase_add_test(tc, family_detection);
    tcase_add_test(tc, buffer_rules);
    tcase_add_test(tc, model_templates);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(chat_suite());
}
