/* embed.c — /v1/embeddings and /api/embed bodies (see embed.h). */
#include "embed.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../common/gen.h"

/* Append tokens to r's prompt as one more input. */
static bool add_input(request *r, const kinfer_token *tok, int32_t n)
{
    kinfer_token *p = realloc(r->prompt, (size_t)(r->n_prompt + n) * sizeof *p);
    int32_t *len = realloc(r->input_len, (size_t)(r->n_inputs + 1) * sizeof *len);
    if (p) r->prompt = p;
    if (len) r->input_len = len;
    if (!p || !len) return false;
    memcpy(r->prompt + r->n_prompt, tok, (size_t)n * sizeof *tok);
    r->n_prompt += n;
    r->input_len[r->n_inputs++] = n;
    return true;
}

/* One input's tokens, checked against the vocabulary and the context. */
static bool take_tokens(const served *sv, request *r, kinfer_token *tok, int32_t n, bool truncate,
                        int32_t index, api_error *err)
{
    const int32_t n_ctx = engine_n_ctx_slot(sv->engine);
    if (n == 0) {
        oai_set_error(err, 400, "invalid_request_error", "input %d is empty", index);
        return false;
    }
    if (n > n_ctx && !truncate) {
        oai_set_error(err, 400, "invalid_request_error",
                      "input %d has %d tokens, more than the context of %d", index, n, n_ctx);
        return false;
    }
    if (!add_input(r, tok, n > n_ctx ? n_ctx : n)) {
        oai_set_error(err, 500, "server_error", "out of memory");
        return false;
    }
    return true;
}

static bool text_input(const served *sv, request *r, const char *text, bool truncate, int32_t index,
                       api_error *err)
{
    const size_t len = strlen(text);
    kinfer_error kerr = {0};
    int64_t n = kinfer_tokenize(sv->model, text, len, NULL, 0, true, true, &kerr);
    if (n == 0 && kerr.status) {
        oai_set_error(err, 400, "invalid_request_error", "input %d: %s", index, kerr.message);
        return false;
    }
    if (n < 0) n = -n;
    if (n > INT32_MAX / 2) {
        oai_set_error(err, 400, "invalid_request_error", "input %d is too long", index);
        return false;
    }
    kinfer_token *tok = malloc((size_t)(n ? n : 1) * sizeof *tok);
    if (!tok) {
        oai_set_error(err, 500, "server_error", "out of memory");
        return false;
    }
    if (n) n = kinfer_tokenize(sv->model, text, len, tok, n, true, true, &kerr);
    bool ok = take_tokens(sv, r, tok, (int32_t)n, truncate, index, err);
    free(tok);
    return ok;
}

/* A JSON array of token ids as one input; false (err unset) when it is not one. */
static bool ids_input(const served *sv, request *r, const cJSON *arr, bool truncate, int32_t index,
                      api_error *err)
{
    const int n = cJSON_GetArraySize(arr);
    const int32_t n_vocab = kinfer_vocab_n_tokens(sv->model);
    kinfer_token *tok = malloc((size_t)(n ? n : 1) * sizeof *tok);
    if (!tok) {
        oai_set_error(err, 500, "server_error", "out of memory");
        return false;
    }
    int k = 0;
    for (const cJSON *it = arr->child; it; it = it->next, k++) {
        const double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || v != (double)(int64_t)v || v < 0 || v >= n_vocab) {
            oai_set_error(err, 400, "invalid_request_error",
                          "input %d: token %d is not an id in the vocabulary [0, %d)", index, k, n_vocab);
            free(tok);
            return false;
        }
        tok[k] = (kinfer_token)v;
    }
    bool ok = take_tokens(sv, r, tok, n, truncate, index, err);
    free(tok);
    return ok;
}

bool embed_parse(const served *sv, const cJSON *root, embed_call *call, request *r, api_error *err)
{
    if (!engine_embeddings(sv->engine)) {
        oai_set_error(err, 400, "invalid_request_error",
                      "this server does not serve embeddings: start kinfer-server with --embeddings");
        return false;
    }
    if (engine_pooling(sv->engine) == KINFER_POOLING_NONE) {
        oai_set_error(err, 400, "invalid_request_error",
                      "pooling 'none' gives one embedding per token, which these APIs cannot answer: "
                      "start kinfer-server with --pooling mean, cls or last");
        return false;
    }
    if (call->legacy) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (!cJSON_IsString(pr)) {
            oai_set_error(err, 400, "invalid_request_error", "'prompt' must be a string");
            return false;
        }
        if (pr->valuestring[0] && !text_input(sv, r, pr->valuestring, true, 0, err)) return false;
        r->embd = malloc(((size_t)r->n_inputs * (size_t)kinfer_model_n_embd(sv->model) + 1) * sizeof *r->embd);
        if (!r->embd) {
            oai_set_error(err, 500, "server_error", "out of memory");
            return false;
        }
        return true;
    }
    bool truncate = call->ollama;   /* Ollama's default; OpenAI's: an input over the context is an error */
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "truncate");
    if (call->ollama && t) {
        if (!cJSON_IsBool(t)) {
            oai_set_error(err, 400, "invalid_request_error", "'truncate' must be a boolean");
            return false;
        }
        truncate = cJSON_IsTrue(t);
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    if (!call->ollama && fmt && !cJSON_IsNull(fmt)) {
        if (!cJSON_IsString(fmt) || (strcmp(fmt->valuestring, "float") && strcmp(fmt->valuestring, "base64"))) {
            oai_set_error(err, 400, "invalid_request_error", "'encoding_format' must be \"float\" or \"base64\"");
            return false;
        }
        call->base64 = !strcmp(fmt->valuestring, "base64");
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!in || cJSON_IsNull(in)) {
        oai_set_error(err, 400, "invalid_request_error", "'input' is required");
        return false;
    }
    bool ok = true;
    if (cJSON_IsString(in)) {
        ok = text_input(sv, r, in->valuestring, truncate, 0, err);
    } else if (cJSON_IsArray(in) && cJSON_GetArraySize(in) == 0) {
        oai_set_error(err, 400, "invalid_request_error", "'input' is an empty list");
        return false;
    } else if (cJSON_IsArray(in) && !call->ollama && cJSON_IsNumber(in->child)) {
        ok = ids_input(sv, r, in, truncate, 0, err);       /* one input of token ids */
    } else if (cJSON_IsArray(in)) {
        int32_t i = 0;
        for (const cJSON *it = in->child; ok && it; it = it->next, i++) {
            if (cJSON_IsString(it)) ok = text_input(sv, r, it->valuestring, truncate, i, err);
            else if (!call->ollama && cJSON_IsArray(it)) ok = ids_input(sv, r, it, truncate, i, err);
            else {
                oai_set_error(err, 400, "invalid_request_error", call->ollama
                              ? "'input' must be a string or a list of strings"
                              : "'input' must be a string, a list of strings, a list of token ids or "
                                "a list of such lists");
                ok = false;
            }
        }
    } else {
        oai_set_error(err, 400, "invalid_request_error", call->ollama
                      ? "'input' must be a string or a list of strings"
                      : "'input' must be a string, a list of strings, a list of token ids or a list "
                        "of such lists");
        return false;
    }
    if (!ok) return false;
    r->embd = malloc((size_t)r->n_inputs * (size_t)kinfer_model_n_embd(sv->model) * sizeof *r->embd);
    if (!r->embd) {
        oai_set_error(err, 500, "server_error", "out of memory");
        return false;
    }
    return true;
}

/* n floats as base64 of their little-endian bytes (malloc'd). */
static char *base64_floats(const float *v, int32_t n)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const size_t len = (size_t)n * 4;
    const unsigned char *b = (const unsigned char *)v; /* (x86 and arm64 are little-endian) */
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i += 3) {
        const uint32_t w = (uint32_t)b[i] << 16 | (i + 1 < len ? (uint32_t)b[i + 1] << 8 : 0) |
                           (i + 2 < len ? b[i + 2] : 0);
        *o++ = digits[w >> 18 & 63];
        *o++ = digits[w >> 12 & 63];
        *o++ = i + 1 < len ? digits[w >> 6 & 63] : '=';
        *o++ = i + 2 < len ? digits[w & 63] : '=';
    }
    *o = '\0';
    return out;
}

char *embed_answer(const served *sv, const embed_call *call, const request *r)
{
    const int32_t n_embd = kinfer_model_n_embd(sv->model);
    cJSON *root = cJSON_CreateObject();
    if (call->legacy) {
        cJSON *v = cJSON_AddArrayToObject(root, "embedding");
        for (int32_t d = 0; r->n_inputs > 0 && d < n_embd; d++) cJSON_AddItemToArray(v, cJSON_CreateNumber(r->embd[d]));
        char *json = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        return json;
    }
    cJSON_AddStringToObject(root, call->ollama ? "model" : "object", call->ollama ? sv->alias : "list");
    cJSON *list = cJSON_AddArrayToObject(root, call->ollama ? "embeddings" : "data");
    for (int32_t i = 0; i < r->n_inputs; i++) {
        const float *v = r->embd + (size_t)i * (size_t)n_embd;
        cJSON *item;
        if (call->base64) {
            char *s = base64_floats(v, n_embd);
            item = s ? cJSON_CreateString(s) : cJSON_CreateNull();
            free(s);
        } else {
            item = cJSON_CreateArray();
            for (int32_t d = 0; d < n_embd; d++) cJSON_AddItemToArray(item, cJSON_CreateNumber(v[d]));
        }
        if (call->ollama) {
            cJSON_AddItemToArray(list, item);
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "embedding");
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddItemToObject(o, "embedding", item);
        cJSON_AddItemToArray(list, o);
    }
    if (call->ollama) {
        const uint64_t end = r->t_end_ns ? r->t_end_ns : gen_now_ns();
        cJSON_AddNumberToObject(root, "total_duration", (double)(end - call->t_start_ns));
        cJSON_AddNumberToObject(root, "load_duration", (double)call->load_ns);
        cJSON_AddNumberToObject(root, "prompt_eval_count", r->n_prompt);
    } else {
        cJSON_AddStringToObject(root, "model", sv->alias);
        cJSON *u = cJSON_AddObjectToObject(root, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", r->n_prompt);
        cJSON_AddNumberToObject(u, "total_tokens", r->n_prompt);
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}
