/*
 * chat.c — chat-template rendering for the common families, detected from
 * tokenizer.chat_template the way llama.cpp's llm_chat_detect_template does
 * (substring heuristics, not a Jinja engine), rendered exactly as
 * llm_chat_apply_template renders them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* Every family llama.cpp detects, by its name there.  render = 0 marks the
 * ones kinfer does not render (yet). */
enum family {
    F_UNKNOWN = 0,
    F_CHATML, F_LLAMA2, F_LLAMA2_SYS, F_LLAMA2_SYS_BOS, F_LLAMA2_SYS_STRIP,
    F_MISTRAL_V1, F_MISTRAL_V3, F_MISTRAL_V3_TEKKEN, F_MISTRAL_V7, F_MISTRAL_V7_TEKKEN,
    F_PHI3, F_PHI4, F_FALCON3, F_ZEPHYR, F_MONARCH, F_GEMMA, F_ORION, F_OPENCHAT, F_VICUNA,
    F_VICUNA_ORCA, F_DEEPSEEK, F_DEEPSEEK2, F_DEEPSEEK3, F_DEEPSEEK_OCR, F_COMMAND_R, F_LLAMA3,
    F_CHATGLM3, F_CHATGLM4, F_GLMEDGE, F_MINICPM, F_EXAONE3, F_EXAONE4, F_EXAONE_MOE,
    F_RWKV_WORLD, F_GRANITE, F_GRANITE_40, F_GRANITE_41, F_GIGACHAT, F_MEGREZ, F_YANDEX,
    F_BAILING, F_BAILING_THINK, F_BAILING2, F_LLAMA4, F_SMOLVLM, F_HUNYUAN_MOE, F_GPT_OSS,
    F_HUNYUAN_DENSE, F_HUNYUAN_VL, F_KIMI_K2, F_SEED_OSS, F_GROK2, F_PANGU_EMBED, F_SOLAR_OPEN,
    F_DOTS1,
    F_COUNT
};

static const struct {
    const char *name;
    int render;
} FAMILIES[F_COUNT] = {
    [F_UNKNOWN] = {NULL, 0},
    [F_CHATML] = {"chatml", 1},
    [F_LLAMA2] = {"llama2", 1},
    [F_LLAMA2_SYS] = {"llama2-sys", 1},
    [F_LLAMA2_SYS_BOS] = {"llama2-sys-bos", 1},
    [F_LLAMA2_SYS_STRIP] = {"llama2-sys-strip", 1},
    [F_MISTRAL_V1] = {"mistral-v1", 1},
    [F_MISTRAL_V3] = {"mistral-v3", 1},
    [F_MISTRAL_V3_TEKKEN] = {"mistral-v3-tekken", 1},
    [F_MISTRAL_V7] = {"mistral-v7", 1},
    [F_MISTRAL_V7_TEKKEN] = {"mistral-v7-tekken", 1},
    [F_PHI3] = {"phi3", 1},
    [F_PHI4] = {"phi4", 1},
    [F_FALCON3] = {"falcon3", 1},
    [F_ZEPHYR] = {"zephyr", 1},
    [F_MONARCH] = {"monarch", 1},
    [F_GEMMA] = {"gemma", 1},
    [F_ORION] = {"orion", 1},
    [F_OPENCHAT] = {"openchat", 1},
    [F_VICUNA] = {"vicuna", 1},
    [F_VICUNA_ORCA] = {"vicuna-orca", 1},
    [F_DEEPSEEK] = {"deepseek", 1},
    [F_DEEPSEEK2] = {"deepseek2", 1},
    [F_DEEPSEEK3] = {"deepseek3", 1},
    [F_DEEPSEEK_OCR] = {"deepseek-ocr", 0},
    [F_COMMAND_R] = {"command-r", 1},
    [F_LLAMA3] = {"llama3", 1},
    [F_CHATGLM3] = {"chatglm3", 0},
    [F_CHATGLM4] = {"chatglm4", 0},
    [F_GLMEDGE] = {"glmedge", 0},
    [F_MINICPM] = {"minicpm", 0},
    [F_EXAONE3] = {"exaone3", 0},
    [F_EXAONE4] = {"exaone4", 0},
    [F_EXAONE_MOE] = {"exaone-moe", 0},
    [F_RWKV_WORLD] = {"rwkv-world", 0},
    [F_GRANITE] = {"granite", 0},
    [F_GRANITE_40] = {"granite-4.0", 0},
    [F_GRANITE_41] = {"granite-4.1", 0},
    [F_GIGACHAT] = {"gigachat", 0},
    [F_MEGREZ] = {"megrez", 0},
    [F_YANDEX] = {"yandex", 0},
    [F_BAILING] = {"bailing", 0},
    [F_BAILING_THINK] = {"bailing-think", 0},
    [F_BAILING2] = {"bailing2", 0},
    [F_LLAMA4] = {"llama4", 0},
    [F_SMOLVLM] = {"smolvlm", 0},
    [F_HUNYUAN_MOE] = {"hunyuan-moe", 0},
    [F_GPT_OSS] = {"gpt-oss", 0},
    [F_HUNYUAN_DENSE] = {"hunyuan-dense", 0},
    [F_HUNYUAN_VL] = {"hunyuan-vl", 0},
    [F_KIMI_K2] = {"kimi-k2", 0},
    [F_SEED_OSS] = {"seed_oss", 0},
    [F_GROK2] = {"grok-2", 0},
    [F_PANGU_EMBED] = {"pangu-embedded", 0},
    [F_SOLAR_OPEN] = {"solar-open", 1},
    [F_DOTS1] = {"dots1", 0}, /* detected by llama.cpp, but it has no name there */
};

static int has(const char *t, const char *s)
{
    return strstr(t, s) != NULL;
}

static enum family detect(const char *t)
{
    for (int f = 1; f < F_COUNT; f++) {
        if (f != F_DOTS1 && strcmp(t, FAMILIES[f].name) == 0)
            return (enum family)f;
    }
    if (has(t, "<|im_start|>")) {
        return has(t, "<|im_sep|>")           ? F_PHI4
               : has(t, "<end_of_utterance>") ? F_SMOLVLM
                                              : F_CHATML;
    }
    if (strncmp(t, "mistral", 7) == 0 || has(t, "[INST]")) {
        if (has(t, "[SYSTEM_PROMPT]"))
            return F_MISTRAL_V7;
        if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
            if (has(t, " [INST]"))
                return F_MISTRAL_V1;
            if (has(t, "\"[INST]\""))
                return F_MISTRAL_V3_TEKKEN;
            return F_MISTRAL_V3;
        }
        if (has(t, "content.strip()"))
            return F_LLAMA2_SYS_STRIP;
        if (has(t, "bos_token + '[INST]"))
            return F_LLAMA2_SYS_BOS;
        if (has(t, "<<SYS>>"))
            return F_LLAMA2_SYS;
        return F_LLAMA2;
    }
    if (has(t, "<|assistant|>") && has(t, "<|end|>"))
        return F_PHI3;
    if (has(t, "[gMASK]<sop>"))
        return F_CHATGLM4;
    if (has(t, "<|assistant|>") && has(t, "<|user|>")) {
        if (has(t, "<|tool_declare|>"))
            return F_EXAONE_MOE;
        return has(t, "</s>") ? F_FALCON3 : F_GLMEDGE;
    }
    if (has(t, "<|{{ item['role'] }}|>") && has(t, "<|begin_of_image|>"))
        return F_GLMEDGE;
    if (has(t, "<|user|>") && has(t, "<|endoftext|>"))
        return F_ZEPHYR;
    if (has(t, "bos_token + message['role']"))
        return F_MONARCH;
    if (has(t, "<start_of_turn>"))
        return F_GEMMA;
    if (has(t, "'\\n\\nAssistant: ' + eos_token"))
        return F_ORION;
    if (has(t, "GPT4 Correct "))
        return F_OPENCHAT;
    if (has(t, "USER: ") && has(t, "ASSISTANT: "))
        return has(t, "SYSTEM: ") ? F_VICUNA_ORCA : F_VICUNA;
    if (has(t, "### Instruction:") && has(t, "<|EOT|>"))
        return F_DEEPSEEK;
    if (has(t, "<|START_OF_TURN_TOKEN|>") && has(t, "<|USER_TOKEN|>"))
        return F_COMMAND_R;
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>"))
        return F_LLAMA3;
    if (has(t, "[gMASK]sop"))
        return F_CHATGLM3;
    if (has(t, "<用户>"))
        return F_MINICPM;
    if (has(t, "'Assistant: ' + message['content'] + eos_token"))
        return F_DEEPSEEK2;
    if (has(t, "<｜Assistant｜>") && has(t, "<｜User｜>") && has(t, "<｜end▁of▁sentence｜>"))
        return F_DEEPSEEK3;
    if (has(t, "[|system|]") && has(t, "[|assistant|]") && has(t, "[|endofturn|]"))
        return has(t, "[|tool|]") ? F_EXAONE4 : F_EXAONE3;
    if (has(t, "rwkv-world") || has(t, "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"))
        return F_RWKV_WORLD;
    if (has(t, "<|start_of_role|>")) {
        if (has(t, "<tool_call>") || has(t, "<tools>"))
            return has(t, "g4_default_system_message") ? F_GRANITE_40 : F_GRANITE_41;
        return F_GRANITE;
    }
    if (has(t, "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"))
        return F_GIGACHAT;
    if (has(t, "<|role_start|>"))
        return F_MEGREZ;
    if (has(t, " Ассистент:"))
        return F_YANDEX;
    if (has(t, "<role>ASSISTANT</role>") && has(t, "'HUMAN'"))
        return F_BAILING;
    if (has(t, "<role>ASSISTANT</role>") && has(t, "\"HUMAN\"") && has(t, "<think>"))
        return F_BAILING_THINK;
    if (has(t, "<role>ASSISTANT</role>") && has(t, "<role>HUMAN</role>") && has(t, "<|role_end|>"))
        return F_BAILING2;
    if (has(t, "<|header_start|>") && has(t, "<|header_end|>"))
        return F_LLAMA4;
    if (has(t, "<|endofuserprompt|>"))
        return F_DOTS1;
    if (has(t, "<|extra_0|>") && has(t, "<|extra_4|>"))
        return F_HUNYUAN_MOE;
    if (has(t, "<|start|>") && has(t, "<|channel|>"))
        return F_GPT_OSS;
    if (has(t, "<｜hy_Assistant｜>") && has(t, "<｜hy_begin▁of▁sentence｜>"))
        return F_HUNYUAN_VL;
    if (has(t, "<｜hy_Assistant｜>") && has(t, "<｜hy_place▁holder▁no▁3｜>"))
        return F_HUNYUAN_DENSE;
    if (has(t, "<|im_assistant|>assistant<|im_middle|>"))
        return F_KIMI_K2;
    if (has(t, "<seed:bos>"))
        return F_SEED_OSS;
    if (has(t, "'Assistant: '  + message['content'] + '<|separator|>"))
        return F_GROK2;
    if (has(t, "[unused9]系统：[unused10]"))
        return F_PANGU_EMBED;
    if (has(t, "<|begin|>") && has(t, "<|end|>") && has(t, "<|content|>"))
        return F_SOLAR_OPEN;
    return F_UNKNOWN;
}

const char *kinfer_chat_template_family(const char *tmpl)
{
    if (!tmpl)
        return NULL;
    return FAMILIES[detect(tmpl)].name;
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

/* text with ASCII whitespace (C isspace) trimmed from both ends */
static void sb_add_trim(sb *b, const char *s)
{
    size_t a = 0, e = strlen(s);
    while (a < e && isspace((unsigned char)s[a]))
        a++;
    while (e > a && isspace((unsigned char)s[e - 1]))
        e--;
    sb_addn(b, s + a, e - a);
}

static int eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* ---------------------------------------------------------------- rendering */

static void render(enum family f, const kinfer_chat_message *m, size_t n, int add_ass, sb *b)
{
    switch (f) {
    case F_CHATML:
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "<|im_start|>");
            sb_add(b, m[i].role);
            sb_add(b, "\n");
            sb_add(b, m[i].content);
            sb_add(b, "<|im_end|>\n");
        }
        if (add_ass)
            sb_add(b, "<|im_start|>assistant\n");
        break;
    case F_MISTRAL_V7:
    case F_MISTRAL_V7_TEKKEN: {
        const char *sp = f == F_MISTRAL_V7 ? " " : "";
        for (size_t i = 0; i < n; i++) {
            if (eq(m[i].role, "system")) {
                sb_add(b, "[SYSTEM_PROMPT]");
                sb_add(b, sp);
                sb_add(b, m[i].content);
                sb_add(b, "[/SYSTEM_PROMPT]");
            } else if (eq(m[i].role, "user")) {
                sb_add(b, "[INST]");
                sb_add(b, sp);
                sb_add(b, m[i].content);
                sb_add(b, "[/INST]");
            } else {
                sb_add(b, sp);
                sb_add(b, m[i].content);
                sb_add(b, "</s>");
            }
        }
        break;
    }
    case F_MISTRAL_V1:
    case F_MISTRAL_V3:
    case F_MISTRAL_V3_TEKKEN: {
        const char *lead = f == F_MISTRAL_V1 ? " " : "";
        const char *trail = f == F_MISTRAL_V3_TEKKEN ? "" : " ";
        int inside = 0;
        for (size_t i = 0; i < n; i++) {
            if (!inside) {
                sb_add(b, lead);
                sb_add(b, "[INST]");
                sb_add(b, trail);
                inside = 1;
            }
            if (eq(m[i].role, "system")) {
                sb_add(b, m[i].content);
                sb_add(b, "\n\n");
            } else if (eq(m[i].role, "user")) {
                sb_add(b, m[i].content);
                sb_add(b, lead);
                sb_add(b, "[/INST]");
            } else {
                sb_add(b, trail);
                if (f == F_MISTRAL_V3)
                    sb_add_trim(b, m[i].content);
                else
                    sb_add(b, m[i].content);
                sb_add(b, "</s>");
                inside = 0;
            }
        }
        break;
    }
    case F_LLAMA2:
    case F_LLAMA2_SYS:
    case F_LLAMA2_SYS_BOS:
    case F_LLAMA2_SYS_STRIP: {
        int inside = 1; /* no BOS before the first turn */
        sb_add(b, "[INST] ");
        for (size_t i = 0; i < n; i++) {
            if (!inside) {
                inside = 1;
                sb_add(b, f == F_LLAMA2_SYS_BOS ? "<s>[INST] " : "[INST] ");
            }
            void (*put)(sb *, const char *) = f == F_LLAMA2_SYS_STRIP ? sb_add_trim : sb_add;
            if (eq(m[i].role, "system")) {
                if (f != F_LLAMA2) {
                    sb_add(b, "<<SYS>>\n");
                    put(b, m[i].content);
                    sb_add(b, "\n<</SYS>>\n\n");
                } else {
                    put(b, m[i].content);
                    sb_add(b, "\n");
                }
            } else if (eq(m[i].role, "user")) {
                put(b, m[i].content);
                sb_add(b, " [/INST]");
            } else {
                put(b, m[i].content);
                sb_add(b, "</s>");
                inside = 0;
            }
        }
        break;
    }
    case F_PHI3:
    case F_FALCON3:
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "<|");
            sb_add(b, m[i].role);
            sb_add(b, "|>\n");
            sb_add(b, m[i].content);
            sb_add(b, f == F_PHI3 ? "<|end|>\n" : "\n");
        }
        if (add_ass)
            sb_add(b, "<|assistant|>\n");
        break;
    case F_PHI4:
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "<|im_start|>");
            sb_add(b, m[i].role);
            sb_add(b, "<|im_sep|>");
            sb_add(b, m[i].content);
            sb_add(b, "<|im_end|>");
        }
        if (add_ass)
            sb_add(b, "<|im_start|>assistant<|im_sep|>");
        break;
    case F_ZEPHYR:
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "<|");
            sb_add(b, m[i].role);
            sb_add(b, "|>\n");
            sb_add(b, m[i].content);
            sb_add(b, "<|endoftext|>\n");
        }
        if (add_ass)
            sb_add(b, "<|assistant|>\n");
        break;
    case F_MONARCH:
        for (size_t i = 0; i < n; i++) {
            sb_add(b, i == 0 ? "" : "<s>");
            sb_add(b, m[i].role);
            sb_add(b, "\n");
            sb_add(b, m[i].content);
            sb_add(b, "</s>\n");
        }
        if (add_ass)
            sb_add(b, "<s>assistant\n");
        break;
    case F_GEMMA: {
        sb sys = {0};
        for (size_t i = 0; i < n; i++) {
            if (eq(m[i].role, "system")) {
                /* no system role: merged into the next user turn */
                sb_add_trim(&sys, m[i].content);
                continue;
            }
            const char *role = eq(m[i].role, "assistant") ? "model" : m[i].role;
            sb_add(b, "<start_of_turn>");
            sb_add(b, role);
            sb_add(b, "\n");
            if (sys.n && !eq(role, "model")) {
                sb_addn(b, sys.s, sys.n);
                sb_add(b, "\n\n");
                sys.n = 0;
            }
            sb_add_trim(b, m[i].content);
            sb_add(b, "<end_of_turn>\n");
        }
        if (sys.oom)
            b->oom = 1;
        free(sys.s);
        if (add_ass)
            sb_add(b, "<start_of_turn>model\n");
        break;
    }
    case F_ORION: {
        sb sys = {0};
        for (size_t i = 0; i < n; i++) {
            if (eq(m[i].role, "system")) {
                sb_add(&sys, m[i].content);
            } else if (eq(m[i].role, "user")) {
                sb_add(b, "Human: ");
                if (sys.n) {
                    sb_addn(b, sys.s, sys.n);
                    sb_add(b, "\n\n");
                    sys.n = 0;
                }
                sb_add(b, m[i].content);
                sb_add(b, "\n\nAssistant: </s>");
            } else {
                sb_add(b, m[i].content);
                sb_add(b, "</s>");
            }
        }
        if (sys.oom)
            b->oom = 1;
        free(sys.s);
        break;
    }
    case F_OPENCHAT:
        for (size_t i = 0; i < n; i++) {
            if (eq(m[i].role, "system")) {
                sb_add(b, m[i].content);
                sb_add(b, "<|end_of_turn|>");
            } else {
                sb_add(b, "GPT4 Correct ");
                if (m[i].role[0]) {
                    char c = (char)toupper((unsigned char)m[i].role[0]);
                    sb_addn(b, &c, 1);
                    sb_add(b, m[i].role + 1);
                }
                sb_add(b, ": ");
                sb_add(b, m[i].content);
                sb_add(b, "<|end_of_turn|>");
            }
        }
        if (add_ass)
            sb_add(b, "GPT4 Correct Assistant:");
        break;
    case F_VICUNA:
    case F_VICUNA_ORCA:
        for (size_t i = 0; i < n; i++) {
            if (eq(m[i].role, "system")) {
                if (f == F_VICUNA_ORCA) {
                    sb_add(b, "SYSTEM: ");
                    sb_add(b, m[i].content);
                    sb_add(b, "\n");
                } else {
                    sb_add(b, m[i].content);
                    sb_add(b, "\n\n");
                }
            } else if (eq(m[i].role, "user")) {
                sb_add(b, "USER: ");
                sb_add(b, m[i].content);
                sb_add(b, "\n");
            } else if (eq(m[i].role, "assistant")) {
                sb_add(b, "ASSISTANT: ");
                sb_add(b, m[i].content);
                sb_add(b, "</s>\n");
            }
        }
        if (add_ass)
            sb_add(b, "ASSISTANT:");
        break;
    case F_DEEPSEEK:
        for (size_t i = 0; i < n; i++) {
            if (eq(m[i].role, "system")) {
                sb_add(b, m[i].content);
            } else if (eq(m[i].role, "user")) {
                sb_add(b, "### Instruction:\n");
                sb_add(b, m[i].content);
                sb_add(b, "\n");
            } else if (eq(m[i].role, "assistant")) {
                sb_add(b, "### Response:\n");
                sb_add(b, m[i].content);
                sb_add(b, "\n<|EOT|>\n");
            }
        }
        if (add_ass)
            sb_add(b, "### Response:\n");
        break;
    case F_COMMAND_R:
        for (size_t i = 0; i < n; i++) {
            const char *tag = eq(m[i].role, "system")      ? "<|SYSTEM_TOKEN|>"
                              : eq(m[i].role, "user")      ? "<|USER_TOKEN|>"
                              : eq(m[i].role, "assistant") ? "<|CHATBOT_TOKEN|>"
                                                           : NULL;
            if (!tag)
                continue;
            sb_add(b, "<|START_OF_TURN_TOKEN|>");
            sb_add(b, tag);
            sb_add_trim(b, m[i].content);
            sb_add(b, "<|END_OF_TURN_TOKEN|>");
        }
        if (add_ass)
            sb_add(b, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
        break;
    case F_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "<|start_header_id|>");
            sb_add(b, m[i].role);
            sb_add(b, "<|end_header_id|>\n\n");
            sb_add_trim(b, m[i].content);
            sb_add(b, "<|eot_id|>");
        }
        if (add_ass)
            sb_add(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case F_DEEPSEEK2:
        for (size_t i = 0; i < n; i++) {
            if (eq(m[i].role, "system")) {
                sb_add(b, m[i].content);
                sb_add(b, "\n\n");
            } else if (eq(m[i].role, "user")) {
                sb_add(b, "User: ");
                sb_add(b, m[i].content);
                sb_add(b, "\n\n");
            } else if (eq(m[i].role, "assistant")) {
                sb_add(b, "Assistant: ");
                sb_add(b, m[i].content);
                sb_add(b, "<｜end▁of▁sentence｜>");
            }
        }
        if (add_ass)
            sb_add(b, "Assistant:");
        break;
    case F_DEEPSEEK3:
        for (size_t i = 0; i < n; i++) {
            if (eq(m[i].role, "system")) {
                sb_add(b, m[i].content);
                sb_add(b, "\n\n");
            } else if (eq(m[i].role, "user")) {
                sb_add(b, "<｜User｜>");
                sb_add(b, m[i].content);
            } else if (eq(m[i].role, "assistant")) {
                sb_add(b, "<｜Assistant｜>");
                sb_add(b, m[i].content);
                sb_add(b, "<｜end▁of▁sentence｜>");
            }
        }
        if (add_ass)
            sb_add(b, "<｜Assistant｜>");
        break;
    case F_SOLAR_OPEN:
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "<|begin|>");
            sb_add(b, m[i].role);
            sb_add(b, "<|content|>");
            sb_add(b, m[i].content);
            sb_add(b, "<|end|>");
        }
        if (add_ass)
            sb_add(b, "<|begin|>assistant");
        break;
    default:
        break;
    }
}

static void chat_error(kinfer_error *e, kinfer_status st, const char *what, const char *tmpl)
{
    if (!e)
        return;
    e->status = st;
    /* name the template: its first line, shortened */
    char head[96];
    size_t n = 0;
    for (; tmpl && tmpl[n] && tmpl[n] != '\n' && n + 1 < sizeof head; n++)
        head[n] = tmpl[n];
    head[n] = 0;
    snprintf(e->message, sizeof e->message, "%s: '%s%s'", what, head,
             tmpl && tmpl[n] ? "..." : "");
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
        if (error) {
            error->status = KINFER_E_INVALID_ARG;
            snprintf(error->message, sizeof error->message, "NULL buffer with a non-zero size");
        }
        return 0;
    }
    for (size_t i = 0; i < n_messages; i++) {
        if (!messages[i].role || !messages[i].content) {
            if (error) {
                error->status = KINFER_E_INVALID_ARG;
                snprintf(error->message, sizeof error->message, "message %zu has a NULL field", i);
            }
            return 0;
        }
    }
    if (!tmpl)
        tmpl = "chatml"; /* llama.cpp's default */
    enum family f = detect(tmpl);
    if (f == F_UNKNOWN) {
        chat_error(error, KINFER_E_NOT_FOUND, "unknown chat template", tmpl);
        return 0;
    }
    if (!FAMILIES[f].render) {
        if (error) {
            error->status = KINFER_E_UNSUPPORTED;
            snprintf(error->message, sizeof error->message,
                     "chat template family '%s' is not supported", FAMILIES[f].name);
        }
        return 0;
    }
    sb b = {0};
    render(f, messages, n_messages, add_generation_prompt, &b);
    if (b.oom) {
        free(b.s);
        if (error) {
            error->status = KINFER_E_NOMEM;
            snprintf(error->message, sizeof error->message, "out of memory");
        }
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
