/*
 * chat.c — chat templates as a table of families.  A family is detected from
 * tokenizer.chat_template the way llama.cpp's llm_chat_detect_template does
 * (substring heuristics, not a Jinja engine) and rendered exactly as
 * llm_chat_apply_template renders it.  Each row of FAMILIES holds one
 * family's name, its detection rule and its rendering data (chat_style);
 * one renderer serves every family.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* ------------------------------------------------------- rendering data */

/* How one message is written: open, its content, close. */
typedef struct chat_turn {
    const char *open;  /* "{role}" stands for the message's role, "{Role}" for it
                        * capitalized; NULL: see chat_style */
    const char *close;
    bool trim;         /* the content with ASCII whitespace trimmed from both ends */
    bool takes_system; /* with hold_system: the held system text comes after open */
} chat_turn;

typedef struct chat_style {
    /* Messages of the roles system, user, assistant take their turn; one
     * without an open takes the turn of any other role.  Messages of a role
     * whose turn has no open are left out. */
    chat_turn system, user, assistant, other;
    const char *assistant_alias; /* the family's own name for the assistant role */
    bool hold_system;            /* no system role: system text (trimmed when
                                  * system.trim) is held back and written, with a
                                  * blank line after it, into the next turn that
                                  * takes_system */
    const char *later_turn_bos;  /* before every message but the first (the
                                  * tokenizer adds the first BOS) */
    /* [INST] blocks: a message outside one first writes block_open, and a
     * message of a role other than system and user ends the block.
     * block_first is written at the very start, even for no messages, and
     * opens the first block (Llama 2). */
    const char *block_first, *block_open;
    const char *generation;      /* the generation prompt; NULL: none */
} chat_style;

/* ------------------------------------------------------------ the families */

typedef struct chat_family {
    const char *name;       /* llama.cpp's name, also accepted as the template */
    bool name_unknown;      /* llama.cpp detects it but has no name for it: the
                             * template "dots1" is not this family */
    /* Detection, tried row by row after the names: the template holds every
     * substring of detect[0], or of detect[1]; and also() holds when given.
     * A row with neither is found by its name only. */
    bool (*also)(const char *tmpl);
    const char *detect[2][4];
    const chat_style *style; /* NULL: kinfer does not render it (yet) */
} chat_family;

/* The Mistral and Llama 2 templates: [INST] in them, or a name that starts
 * with "mistral". */
static bool inst_template(const char *tmpl)
{
    return strncmp(tmpl, "mistral", 7) == 0 || strstr(tmpl, "[INST]") != NULL;
}

/* Mistral v1 / v3 */
#define MISTRAL_SYSTEM_MESSAGE "' [INST] ' + system_message"
#define MISTRAL_TOOLS "[AVAILABLE_TOOLS]"

/* Every family llama.cpp detects, in its order of detection. */
static const chat_family FAMILIES[] = {
    {"phi4", .detect = {{"<|im_start|>", "<|im_sep|>"}},
     .style = &(const chat_style){
         .other = {"<|im_start|>{role}<|im_sep|>", "<|im_end|>"},
         .generation = "<|im_start|>assistant<|im_sep|>"}},
    {"smolvlm", .detect = {{"<|im_start|>", "<end_of_utterance>"}}},
    {"chatml", .detect = {{"<|im_start|>"}},
     .style = &(const chat_style){
         .other = {"<|im_start|>{role}\n", "<|im_end|>\n"},
         .generation = "<|im_start|>assistant\n"}},

    {"mistral-v7", .also = inst_template, .detect = {{"[SYSTEM_PROMPT]"}},
     .style = &(const chat_style){
         .system = {"[SYSTEM_PROMPT] ", "[/SYSTEM_PROMPT]"},
         .user = {"[INST] ", "[/INST]"},
         .other = {" ", "</s>"}}},
    {"mistral-v7-tekken",
     .style = &(const chat_style){
         .system = {"[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"},
         .user = {"[INST]", "[/INST]"},
         .other = {"", "</s>"}}},
    {"mistral-v1", .also = inst_template,
     .detect = {{MISTRAL_SYSTEM_MESSAGE, " [INST]"}, {MISTRAL_TOOLS, " [INST]"}},
     .style = &(const chat_style){
         .system = {"", "\n\n"},
         .user = {"", " [/INST]"},
         .other = {" ", "</s>"},
         .block_open = " [INST] "}},
    {"mistral-v3-tekken", .also = inst_template,
     .detect = {{MISTRAL_SYSTEM_MESSAGE, "\"[INST]\""}, {MISTRAL_TOOLS, "\"[INST]\""}},
     .style = &(const chat_style){
         .system = {"", "\n\n"},
         .user = {"", "[/INST]"},
         .other = {"", "</s>"},
         .block_open = "[INST]"}},
    {"mistral-v3", .also = inst_template, .detect = {{MISTRAL_SYSTEM_MESSAGE}, {MISTRAL_TOOLS}},
     .style = &(const chat_style){
         .system = {"", "\n\n"},
         .user = {"", "[/INST]"},
         .other = {" ", "</s>", .trim = true},
         .block_open = "[INST] "}},
    {"llama2-sys-strip", .also = inst_template, .detect = {{"content.strip()"}},
     .style = &(const chat_style){
         .system = {"<<SYS>>\n", "\n<</SYS>>\n\n", .trim = true},
         .user = {"", " [/INST]", .trim = true},
         .other = {"", "</s>", .trim = true},
         .block_first = "[INST] ", .block_open = "[INST] "}},
    {"llama2-sys-bos", .also = inst_template, .detect = {{"bos_token + '[INST]"}},
     .style = &(const chat_style){
         .system = {"<<SYS>>\n", "\n<</SYS>>\n\n"},
         .user = {"", " [/INST]"},
         .other = {"", "</s>"},
         .block_first = "[INST] ", .block_open = "<s>[INST] "}},
    {"llama2-sys", .also = inst_template, .detect = {{"<<SYS>>"}},
     .style = &(const chat_style){
         .system = {"<<SYS>>\n", "\n<</SYS>>\n\n"},
         .user = {"", " [/INST]"},
         .other = {"", "</s>"},
         .block_first = "[INST] ", .block_open = "[INST] "}},
    {"llama2", .also = inst_template, /* any other [INST] template */
     .style = &(const chat_style){
         .system = {"", "\n"},
         .user = {"", " [/INST]"},
         .other = {"", "</s>"},
         .block_first = "[INST] ", .block_open = "[INST] "}},

    {"phi3", .detect = {{"<|assistant|>", "<|end|>"}},
     .style = &(const chat_style){
         .other = {"<|{role}|>\n", "<|end|>\n"},
         .generation = "<|assistant|>\n"}},
    {"chatglm4", .detect = {{"[gMASK]<sop>"}}},
    {"exaone-moe", .detect = {{"<|assistant|>", "<|user|>", "<|tool_declare|>"}}},
    {"falcon3", .detect = {{"<|assistant|>", "<|user|>", "</s>"}},
     .style = &(const chat_style){
         .other = {"<|{role}|>\n", "\n"},
         .generation = "<|assistant|>\n"}},
    {"glmedge",
     .detect = {{"<|assistant|>", "<|user|>"}, {"<|{{ item['role'] }}|>", "<|begin_of_image|>"}}},
    {"zephyr", .detect = {{"<|user|>", "<|endoftext|>"}},
     .style = &(const chat_style){
         .other = {"<|{role}|>\n", "<|endoftext|>\n"},
         .generation = "<|assistant|>\n"}},
    {"monarch", .detect = {{"bos_token + message['role']"}},
     .style = &(const chat_style){
         .other = {"{role}\n", "</s>\n"},
         .later_turn_bos = "<s>",
         .generation = "<s>assistant\n"}},
    {"gemma", .detect = {{"<start_of_turn>"}},
     .style = &(const chat_style){
         .system = {.trim = true},
         .assistant = {"<start_of_turn>model\n", "<end_of_turn>\n", .trim = true},
         .other = {"<start_of_turn>{role}\n", "<end_of_turn>\n", .trim = true,
                   .takes_system = true},
         .assistant_alias = "model",
         .hold_system = true,
         .generation = "<start_of_turn>model\n"}},
    {"orion", .detect = {{"'\\n\\nAssistant: ' + eos_token"}},
     .style = &(const chat_style){
         .user = {"Human: ", "\n\nAssistant: </s>", .takes_system = true},
         .other = {"", "</s>"},
         .hold_system = true}},
    {"openchat", .detect = {{"GPT4 Correct "}},
     .style = &(const chat_style){
         .system = {"", "<|end_of_turn|>"},
         .other = {"GPT4 Correct {Role}: ", "<|end_of_turn|>"},
         .generation = "GPT4 Correct Assistant:"}},
    {"vicuna-orca", .detect = {{"USER: ", "ASSISTANT: ", "SYSTEM: "}},
     .style = &(const chat_style){
         .system = {"SYSTEM: ", "\n"},
         .user = {"USER: ", "\n"},
         .assistant = {"ASSISTANT: ", "</s>\n"},
         .generation = "ASSISTANT:"}},
    {"vicuna", .detect = {{"USER: ", "ASSISTANT: "}},
     .style = &(const chat_style){
         .system = {"", "\n\n"},
         .user = {"USER: ", "\n"},
         .assistant = {"ASSISTANT: ", "</s>\n"},
         .generation = "ASSISTANT:"}},
    {"deepseek", .detect = {{"### Instruction:", "<|EOT|>"}},
     .style = &(const chat_style){
         .system = {"", ""},
         .user = {"### Instruction:\n", "\n"},
         .assistant = {"### Response:\n", "\n<|EOT|>\n"},
         .generation = "### Response:\n"}},
    {"command-r", .detect = {{"<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"}},
     .style = &(const chat_style){
         .system = {"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>", .trim = true},
         .user = {"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>", .trim = true},
         .assistant = {"<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>",
                       .trim = true},
         .generation = "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"}},
    {"llama3", .detect = {{"<|start_header_id|>", "<|end_header_id|>"}},
     .style = &(const chat_style){
         .other = {"<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>", .trim = true},
         .generation = "<|start_header_id|>assistant<|end_header_id|>\n\n"}},
    {"chatglm3", .detect = {{"[gMASK]sop"}}},
    {"minicpm", .detect = {{"<用户>"}}},
    {"deepseek2", .detect = {{"'Assistant: ' + message['content'] + eos_token"}},
     .style = &(const chat_style){
         .system = {"", "\n\n"},
         .user = {"User: ", "\n\n"},
         .assistant = {"Assistant: ", "<｜end▁of▁sentence｜>"},
         .generation = "Assistant:"}},
    {"deepseek3", .detect = {{"<｜Assistant｜>", "<｜User｜>", "<｜end▁of▁sentence｜>"}},
     .style = &(const chat_style){
         .system = {"", "\n\n"},
         .user = {"<｜User｜>", ""},
         .assistant = {"<｜Assistant｜>", "<｜end▁of▁sentence｜>"},
         .generation = "<｜Assistant｜>"}},
    {"exaone4", .detect = {{"[|system|]", "[|assistant|]", "[|endofturn|]", "[|tool|]"}}},
    {"exaone3", .detect = {{"[|system|]", "[|assistant|]", "[|endofturn|]"}}},
    {"rwkv-world",
     .detect = {{"rwkv-world"}, {"{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"}}},
    {"granite-4.0", .detect = {{"<|start_of_role|>", "<tool_call>", "g4_default_system_message"},
                               {"<|start_of_role|>", "<tools>", "g4_default_system_message"}}},
    {"granite-4.1", .detect = {{"<|start_of_role|>", "<tool_call>"}, {"<|start_of_role|>", "<tools>"}}},
    {"granite", .detect = {{"<|start_of_role|>"}}},
    {"gigachat", .detect = {{"message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"}}},
    {"megrez", .detect = {{"<|role_start|>"}}},
    {"yandex", .detect = {{" Ассистент:"}}},
    {"bailing", .detect = {{"<role>ASSISTANT</role>", "'HUMAN'"}}},
    {"bailing-think", .detect = {{"<role>ASSISTANT</role>", "\"HUMAN\"", "<think>"}}},
    {"bailing2", .detect = {{"<role>ASSISTANT</role>", "<role>HUMAN</role>", "<|role_end|>"}}},
    {"llama4", .detect = {{"<|header_start|>", "<|header_end|>"}}},
    {"dots1", .name_unknown = true, .detect = {{"<|endofuserprompt|>"}}},
    {"hunyuan-moe", .detect = {{"<|extra_0|>", "<|extra_4|>"}}},
    {"gpt-oss", .detect = {{"<|start|>", "<|channel|>"}}},
    {"hunyuan-vl", .detect = {{"<｜hy_Assistant｜>", "<｜hy_begin▁of▁sentence｜>"}}},
    {"hunyuan-dense", .detect = {{"<｜hy_Assistant｜>", "<｜hy_place▁holder▁no▁3｜>"}}},
    {"kimi-k2", .detect = {{"<|im_assistant|>assistant<|im_middle|>"}}},
    {"seed_oss", .detect = {{"<seed:bos>"}}},
    {"grok-2", .detect = {{"'Assistant: '  + message['content'] + '<|separator|>"}}},
    {"pangu-embedded", .detect = {{"[unused9]系统：[unused10]"}}},
    {"solar-open", .detect = {{"<|begin|>", "<|end|>", "<|content|>"}},
     .style = &(const chat_style){
         .other = {"<|begin|>{role}<|content|>", "<|end|>"},
         .generation = "<|begin|>assistant"}},
    {.name = "deepseek-ocr"},
};

#define N_FAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

/* ---------------------------------------------------------------- detection */

static bool holds_all(const char *tmpl, const char *const substrings[4])
{
    for (int i = 0; i < 4 && substrings[i]; i++) {
        if (!strstr(tmpl, substrings[i]))
            return false;
    }
    return true;
}

static bool detects(const chat_family *f, const char *tmpl)
{
    if (!f->also && !f->detect[0][0])
        return false; /* found by its name only */
    if (f->also && !f->also(tmpl))
        return false;
    return !f->detect[0][0] || holds_all(tmpl, f->detect[0]) ||
           (f->detect[1][0] && holds_all(tmpl, f->detect[1]));
}

/* The family of a template (or of a family's name), or NULL. */
static const chat_family *detect(const char *tmpl)
{
    for (size_t i = 0; i < N_FAMILIES; i++) {
        if (!FAMILIES[i].name_unknown && strcmp(tmpl, FAMILIES[i].name) == 0)
            return &FAMILIES[i];
    }
    for (size_t i = 0; i < N_FAMILIES; i++) {
        if (detects(&FAMILIES[i], tmpl))
            return &FAMILIES[i];
    }
    return NULL;
}

const char *kinfer_chat_template_family(const char *tmpl)
{
    const chat_family *f = tmpl ? detect(tmpl) : NULL;
    return f ? f->name : NULL;
}

/* ------------------------------------------------------------ string builder */

typedef struct sb {
    char *s;
    size_t n, cap;
    int oom;
} sb;

static void sb_addn(sb *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
}

static void sb_add(sb *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* s, or with trim s with ASCII whitespace (C isspace) trimmed from both ends */
static void sb_add_content(sb *b, const char *s, bool trim)
{
    size_t a = 0, e = strlen(s);
    while (trim && a < e && isspace((unsigned char)s[a]))
        a++;
    while (trim && e > a && isspace((unsigned char)s[e - 1]))
        e--;
    sb_addn(b, s + a, e - a);
}

/* ---------------------------------------------------------------- rendering */

static bool eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* The turn a message of this role takes. */
static const chat_turn *turn_of(const chat_style *s, const char *role)
{
    if (eq(role, "system") && s->system.open)
        return &s->system;
    if (eq(role, "user") && s->user.open)
        return &s->user;
    if ((eq(role, "assistant") || (s->assistant_alias && eq(role, s->assistant_alias))) &&
        s->assistant.open)
        return &s->assistant;
    return &s->other;
}

/* A turn's open with "{role}" / "{Role}" filled in. */
static void add_open(sb *b, const char *open, const char *role)
{
    const char *at = strstr(open, "{role}");
    bool capital = false;
    if (!at && (at = strstr(open, "{Role}")))
        capital = true;
    if (!at) {
        sb_add(b, open);
        return;
    }
    sb_addn(b, open, (size_t)(at - open));
    if (capital && role[0]) {
        char c = (char)toupper((unsigned char)role[0]);
        sb_addn(b, &c, 1);
        role++;
    }
    sb_add(b, role);
    sb_add(b, at + strlen("{role}"));
}

static void render(const chat_style *s, const kinfer_chat_message *m, size_t n,
                   bool add_generation_prompt, sb *b)
{
    sb held_system = {0};
    bool in_block = false;
    if (s->block_first) {
        sb_add(b, s->block_first);
        in_block = true;
    }
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i].role;
        if (s->block_open && !in_block) {
            sb_add(b, s->block_open);
            in_block = true;
        }
        if (s->later_turn_bos && i > 0)
            sb_add(b, s->later_turn_bos);
        if (s->hold_system && eq(role, "system")) {
            sb_add_content(&held_system, m[i].content, s->system.trim);
            continue;
        }
        const chat_turn *t = turn_of(s, role);
        if (!t->open)
            continue;
        add_open(b, t->open, role);
        if (t->takes_system && held_system.n) {
            sb_addn(b, held_system.s, held_system.n);
            sb_add(b, "\n\n");
            held_system.n = 0;
        }
        sb_add_content(b, m[i].content, t->trim);
        sb_add(b, t->close);
        if (!eq(role, "system") && !eq(role, "user"))
            in_block = false;
    }
    if (held_system.oom)
        b->oom = 1;
    free(held_system.s);
    if (add_generation_prompt && s->generation)
        sb_add(b, s->generation);
}

/* ------------------------------------------------------------------ the API */

__attribute__((format(printf, 3, 4)))
static void set_error(kinfer_error *e, kinfer_status st, const char *fmt, ...)
{
    if (!e)
        return;
    e->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* what, naming the template by its first line, shortened */
static void template_error(kinfer_error *e, kinfer_status st, const char *what, const char *tmpl)
{
    char head[96];
    size_t n = 0;
    for (; tmpl && tmpl[n] && tmpl[n] != '\n' && n + 1 < sizeof head; n++)
        head[n] = tmpl[n];
    head[n] = 0;
    set_error(e, st, "%s: '%s%s'", what, head, tmpl && tmpl[n] ? "..." : "");
}

int64_t chat_apply_template(const char *tmpl, const kinfer_chat_message *messages,
                            size_t n_messages, bool add_generation_prompt, char *buf, int64_t size,
                            kinfer_error *error)
{
    if (error) {
        error->status = KINFER_OK;
        error->message[0] = 0;
    }
    if ((!messages && n_messages) || (!buf && size > 0) || size < 0) {
        set_error(error, KINFER_E_INVALID_ARG, "NULL buffer with a non-zero size");
        return 0;
    }
    for (size_t i = 0; i < n_messages; i++) {
        if (!messages[i].role || !messages[i].content) {
            set_error(error, KINFER_E_INVALID_ARG, "message %zu has a NULL field", i);
            return 0;
        }
    }
    if (!tmpl)
        tmpl = "chatml"; /* llama.cpp's default */
    const chat_family *f = detect(tmpl);
    if (!f) {
        template_error(error, KINFER_E_NOT_FOUND, "unknown chat template", tmpl);
        return 0;
    }
    if (!f->style) {
        set_error(error, KINFER_E_UNSUPPORTED, "chat template family '%s' is not supported",
                  f->name);
        return 0;
    }
    sb b = {0};
    render(f->style, messages, n_messages, add_generation_prompt, &b);
    if (b.oom) {
        free(b.s);
        set_error(error, KINFER_E_NOMEM, "out of memory");
        return 0;
    }
    int64_t len = (int64_t)b.n;
    if (len > size) {
        free(b.s);
        return -len;
    }
    if (len)
        memcpy(buf, b.s, (size_t)len);
    if (len < size)
        buf[len] = 0;
    free(b.s);
    return len;
}
