/* oai.c — OpenAI / llama-server request and response mapping (see oai.h). */
#include "oai.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/fim.h"
#include "../common/json_schema.h"

void oai_set_error(api_error *err, int status, const char *type, const char *fmt, ...)
{
    err->status = status;
    err->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len = c >= 0x01 && c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    if (len > 1) {   /* the second byte's range excludes overlongs, surrogates, > U+10FFFF */
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        if (p[1] < lo || p[1] > hi) return 0;
        for (size_t i = 2; i < len; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
    }
    return len;
}

cJSON *oai_text(const char *text, size_t n)
{
    /* JSON needs valid UTF-8: each byte that starts no valid sequence (a
     * token can end inside a character) becomes U+FFFD, as llama-server does */
    textbuf clean = {0};
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_len(p + i, n - i);
        if (len) textbuf_append(&clean, text + i, len);
        else textbuf_append(&clean, "\xEF\xBF\xBD", 3);
        i += len ? len : 1;
    }
    cJSON *s = cJSON_CreateString(textbuf_str(&clean));
    textbuf_free(&clean);
    return s;
}

void oai_add_text(cJSON *obj, const char *name, const char *text, size_t n)
{
    cJSON_AddItemToObject(obj, name, oai_text(text, n));
}

char *oai_error_json(const api_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    oai_add_text(e, "message", err->message, strlen(err->message));
    cJSON_AddStringToObject(e, "type", err->type);
    cJSON_AddNumberToObject(e, "code", err->status);
    if (!strcmp(err->type, "exceed_context_size_error")) {
        cJSON_AddNumberToObject(e, "n_prompt_tokens", err->n_prompt_tokens);
        cJSON_AddNumberToObject(e, "n_ctx", err->n_ctx);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* ------------------------------------------------------------ field access */

/* A 400 invalid_request_error; returns false for `return bad_request(...)`. */
static bool bad_request(api_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool bad_request(api_error *err, const char *fmt, ...)
{
    err->status = 400;
    err->type = "invalid_request_error";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

/* An optional number field; false (with err) when present with another type. */
static bool get_number(const cJSON *obj, const char *name, double *out, bool *present, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (present) *present = false;
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad_request(err, "'%s' must be a number", name);
    *out = v->valuedouble;
    if (present) *present = true;
    return true;
}

static bool get_float(const cJSON *obj, const char *name, float *out, api_error *err)
{
    double d = *out;
    if (!get_number(obj, name, &d, NULL, err)) return false;
    *out = (float)d;
    return true;
}

static bool get_int(const cJSON *obj, const char *name, int64_t lo, int64_t hi, int64_t *out,
                    bool *present, api_error *err)
{
    double d = 0;
    bool here = false;
    if (!get_number(obj, name, &d, &here, err)) return false;
    if (present) *present = here;
    if (!here) return true;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return bad_request(err, "'%s' must be an integer in [%lld, %lld]", name, (long long)lo,
                           (long long)hi);
    *out = (int64_t)d;
    return true;
}

static bool get_bool(const cJSON *obj, const char *name, bool *out, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsBool(v)) return bad_request(err, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return true;
}

/* An optional string field: *out borrowed from the JSON, NULL when absent. */
static bool get_string(const cJSON *obj, const char *name, const char **out, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsString(v)) return bad_request(err, "'%s' must be a string", name);
    *out = v->valuestring;
    return true;
}

kinfer_token *oai_tokenize(const served *srv, const char *text, size_t len, bool add_special,
                           int32_t *n, api_error *err)
{
    kinfer_error ke = {0};
    kinfer_token *t = gen_tokenize(srv->model, text, len, add_special, true, n, &ke);
    if (!t) oai_set_error(err, 400, "invalid_request_error", "tokenize: %s", ke.message);
    return t;
}

/* Token ids from a JSON array, each checked against the vocabulary. */
static kinfer_token *tokens_from_array(const served *srv, const cJSON *arr, const char *name,
                                       int32_t *n, api_error *err)
{
    int32_t count = cJSON_GetArraySize(arr);
    kinfer_token *t = malloc((size_t)(count ? count : 1) * sizeof *t);
    if (!t) {
        oai_set_error(err, 500, "server_error", "out of memory");
        return NULL;
    }
    int32_t n_vocab = kinfer_vocab_n_tokens(srv->model), i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble >= n_vocab) {
            free(t);
            bad_request(err, "'%s' must hold token ids in [0, %d)", name, n_vocab);
            return NULL;
        }
        t[i++] = (kinfer_token)v->valuedouble;
    }
    *n = i;
    return t;
}

/* A text of one message's content: a string, or OpenAI's array of parts
 * ({"type": "text", "text": ...}) joined.  Appends to out. */
static bool message_content(const cJSON *content, int idx, textbuf *out, api_error *err)
{
    if (cJSON_IsString(content)) return textbuf_append_str(out, content->valuestring), true;
    if (!content || cJSON_IsNull(content)) return true;
    if (!cJSON_IsArray(content))
        return bad_request(err, "'messages[%d].content' must be a string or an array of parts", idx);
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text))
            return bad_request(err, "'messages[%d].content' parts must be {\"type\": \"text\", \"text\": ...}", idx);
        textbuf_append_str(out, text->valuestring);
    }
    return true;
}

/* messages -> the chat template's text -> tokens */
static bool chat_prompt(const served *srv, const cJSON *root, request *r, api_error *err)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs) return bad_request(err, "'messages' is required");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return bad_request(err, "'messages' must be a non-empty array");
    int n = cJSON_GetArraySize(msgs);
    kinfer_chat_message *cm = calloc((size_t)n, sizeof *cm);
    textbuf *texts = calloc((size_t)n, sizeof *texts);
    bool ok = cm && texts;
    if (!ok) oai_set_error(err, 500, "server_error", "out of memory");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        if (!ok) break;
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            ok = bad_request(err, "'messages[%d].role' must be a string", i);
            break;
        }
        ok = message_content(cJSON_GetObjectItemCaseSensitive(m, "content"), i, &texts[i], err);
        cm[i].role = role->valuestring;
        cm[i].content = textbuf_str(&texts[i]);
        i++;
    }
    char *rendered = NULL;
    if (ok) {
        kinfer_error ke = {0};
        int64_t need = kinfer_chat_apply_template(srv->model, srv->template_used, cm, (size_t)n, true,
                                                  NULL, 0, &ke);
        if (need == 0 && ke.status != KINFER_OK) {
            ok = false;
            oai_set_error(err, 500, "server_error", "chat template: %s", ke.message);
        } else {
            if (need < 0) need = -need;
            rendered = malloc((size_t)need + 1);
            int64_t got = rendered ? kinfer_chat_apply_template(srv->model, srv->template_used, cm,
                                                                (size_t)n, true, rendered, need + 1, &ke)
                                   : -1;
            if (got < 0) {
                ok = false;
                oai_set_error(err, 500, "server_error", "chat template failed");
            } else {
                r->prompt = oai_tokenize(srv, rendered, (size_t)got, true, &r->n_prompt, err);
                ok = r->prompt != NULL;
            }
        }
    }
    free(rendered);
    for (int k = 0; texts && k < n; k++) textbuf_free(&texts[k]);
    free(texts);
    free(cm);
    return ok;
}

/* "prompt": a string, token ids, or a one-element array of either. */
static bool text_prompt(const served *srv, const cJSON *root, request *r, api_error *err)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p) return bad_request(err, "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && !cJSON_IsNumber(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsString(p)) {
        r->prompt = oai_tokenize(srv, p->valuestring, strlen(p->valuestring), true, &r->n_prompt, err);
        return r->prompt != NULL;
    }
    if (cJSON_IsArray(p)) {
        if (cJSON_GetArraySize(p) > 1 && !cJSON_IsNumber(cJSON_GetArrayItem(p, 0)))
            return bad_request(err, "'prompt': one prompt per request (got a list of %d)", cJSON_GetArraySize(p));
        r->prompt = tokens_from_array(srv, p, "prompt", &r->n_prompt, err);
        return r->prompt != NULL;
    }
    return bad_request(err, "'prompt' must be a string or an array of token ids");
}

/* /infill: llama-server's fields into examples/common's FIM prompt. */
static bool infill_prompt(const served *srv, const cJSON *root, request *r, api_error *err)
{
    fim_input in = {0};
    if (!get_string(root, "input_prefix", &in.prefix, err) || !get_string(root, "input_suffix", &in.suffix, err) ||
        !get_string(root, "prompt", &in.prompt, err))
        return false;
    if (!in.prefix) return bad_request(err, "'input_prefix' is required");
    if (!in.suffix) return bad_request(err, "'input_suffix' is required");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "input_extra");
    if (extra && !cJSON_IsNull(extra) && !cJSON_IsArray(extra))
        return bad_request(err, "'input_extra' must be an array of {\"filename\": string, \"text\": string}");
    int n_extra = cJSON_GetArraySize(extra);
    fim_file *files = calloc((size_t)(n_extra ? n_extra : 1), sizeof *files);
    if (!files) return bad_request(err, "out of memory");
    const cJSON *chunk;
    cJSON_ArrayForEach(chunk, extra)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(chunk, "filename");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(chunk, "text");
        if (!cJSON_IsString(text) || (fn && !cJSON_IsString(fn))) {
            free(files);
            return bad_request(err, "'input_extra[%d]' must be {\"filename\": string, \"text\": string}", in.n_extra);
        }
        files[in.n_extra++] = (fim_file){.name = fn ? fn->valuestring : NULL, .text = text->valuestring};
    }
    in.extra = files;
    kinfer_error ke = {0};
    r->prompt = fim_prompt(srv->model, &in, srv->opt.engine.n_batch, engine_n_ctx_slot(srv->engine),
                           srv->opt.n_predict, &r->n_prompt, &ke);
    free(files);
    if (r->prompt) return true;
    if (ke.status == KINFER_E_UNSUPPORTED) return bad_request(err, "infill is not supported by this model: %s", ke.message);
    oai_set_error(err, 500, "server_error", "%s", ke.message);
    return false;
}

static bool parse_stop(const cJSON *root, request *r, api_error *err)
{
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!stop || cJSON_IsNull(stop)) return true;
    if (cJSON_IsString(stop)) return request_add_stop(r, stop->valuestring) || bad_request(err, "out of memory");
    if (!cJSON_IsArray(stop)) return bad_request(err, "'stop' must be a string or an array of strings");
    const cJSON *s;
    cJSON_ArrayForEach(s, stop)
    {
        if (!cJSON_IsString(s)) return bad_request(err, "'stop' must be a string or an array of strings");
        if (!request_add_stop(r, s->valuestring)) return bad_request(err, "out of memory");
    }
    return true;
}

static bool add_bias(request *r, kinfer_token t, float v)
{
    kinfer_token *tt = realloc(r->bias_token, (size_t)(r->n_bias + 1) * sizeof *tt);
    if (!tt) return false;
    r->bias_token = tt;
    float *vv = realloc(r->bias_value, (size_t)(r->n_bias + 1) * sizeof *vv);
    if (!vv) return false;
    r->bias_value = vv;
    r->bias_token[r->n_bias] = t;
    r->bias_value[r->n_bias] = v;
    r->n_bias++;
    return true;
}

/* logit_bias: OpenAI's {"token id": bias} or llama-server's [[id, bias]];
 * a bias of false bans the token. */
static bool parse_logit_bias(const served *srv, const cJSON *root, request *r, api_error *err)
{
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (!lb || cJSON_IsNull(lb)) return true;
    int32_t n_vocab = kinfer_vocab_n_tokens(srv->model);
    const cJSON *e;
    if (cJSON_IsObject(lb)) {
        cJSON_ArrayForEach(e, lb)
        {
            char *end;
            long id = strtol(e->string, &end, 10);
            if (*end || end == e->string || id < 0 || id >= n_vocab)
                return bad_request(err, "'logit_bias' keys must be token ids in [0, %d)", n_vocab);
            if (!cJSON_IsNumber(e) && !cJSON_IsFalse(e))
                return bad_request(err, "'logit_bias' values must be numbers");
            if (!add_bias(r, (kinfer_token)id, cJSON_IsFalse(e) ? -INFINITY : (float)e->valuedouble))
                return bad_request(err, "out of memory");
        }
        return true;
    }
    if (!cJSON_IsArray(lb)) return bad_request(err, "'logit_bias' must be an object {token id: bias}");
    cJSON_ArrayForEach(e, lb)
    {
        const cJSON *id = cJSON_GetArrayItem(e, 0), *v = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsNumber(id) ||
            id->valuedouble < 0 || id->valuedouble >= n_vocab || (!cJSON_IsNumber(v) && !cJSON_IsFalse(v)))
            return bad_request(err, "'logit_bias' pairs must be [token id, bias]");
        if (!add_bias(r, (kinfer_token)id->valuedouble, cJSON_IsFalse(v) ? -INFINITY : (float)v->valuedouble))
            return bad_request(err, "out of memory");
    }
    return true;
}

static bool parse_sampling(const served *srv, const cJSON *root, request *r, api_error *err)
{
    kinfer_sampler_params *sp = &r->gen.sampling;
    sp->temperature = srv->opt.temperature;
    int64_t top_k = sp->top_k, seed = srv->opt.seed, last_n = sp->penalty_last_n;
    if (!get_float(root, "temperature", &sp->temperature, err) || !get_float(root, "top_p", &sp->top_p, err) ||
        !get_float(root, "min_p", &sp->min_p, err) ||
        !get_float(root, "presence_penalty", &sp->presence_penalty, err) ||
        !get_float(root, "frequency_penalty", &sp->frequency_penalty, err) ||
        !get_float(root, "repeat_penalty", &sp->repeat_penalty, err) ||
        !get_int(root, "top_k", 0, INT32_MAX, &top_k, NULL, err) ||
        !get_int(root, "repeat_last_n", -1, INT32_MAX, &last_n, NULL, err) ||
        !get_int(root, "seed", -1, INT64_MAX, &seed, NULL, err))
        return false;
    if (sp->temperature < 0) sp->temperature = 0;
    if (sp->top_p <= 0 || sp->top_p > 1) return bad_request(err, "'top_p' must be in (0, 1]");
    sp->top_k = (int32_t)top_k;
    sp->penalty_last_n = last_n < 0 ? engine_n_ctx_slot(srv->engine) : (int32_t)last_n;
    if (seed < 0) seed = (int64_t)(((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)(uintptr_t)r);
    sp->seed = (uint64_t)seed;
    return true;
}

/* Chat: logprobs (bool) + top_logprobs; completions: logprobs (count);
 * llama-server's native: n_probs. */
static bool parse_logprobs(const cJSON *root, api_kind kind, request *r, api_error *err)
{
    int64_t top = -1;
    bool here = false;
    if (kind == API_CHAT) {
        bool on = false;
        if (!get_bool(root, "logprobs", &on, err) ||
            !get_int(root, "top_logprobs", 0, REQUEST_MAX_TOP_LOGPROBS, &top, &here, err))
            return false;
        if (here && !on) return bad_request(err, "'top_logprobs' needs 'logprobs': true");
        r->n_top_logprobs = on ? (here ? (int32_t)top : 0) : -1;
        return true;
    }
    const char *name = kind == API_COMPLETIONS ? "logprobs" : "n_probs";
    if (!get_int(root, name, 0, REQUEST_MAX_TOP_LOGPROBS, &top, &here, err)) return false;
    r->n_top_logprobs = here && (kind == API_COMPLETIONS || top > 0) ? (int32_t)top : -1;
    return true;
}

/* -------------------------------------------------------------- grammars */

bool oai_set_grammar(const served *srv, request *r, char *gbnf, api_error *err)
{
    if (!gbnf) {
        oai_set_error(err, 500, "server_error", "out of memory");
        return false;
    }
    /* parsed here too, so a bad grammar is this request's 400, not a failed admission */
    kinfer_grammar *g = NULL;
    kinfer_error e = {0};
    if (kinfer_grammar_new(srv->model, gbnf, NULL, &g, &e) != KINFER_OK) {
        free(gbnf);
        return bad_request(err, "grammar: %s", e.message);
    }
    kinfer_grammar_free(g);
    free(r->grammar);
    r->grammar = gbnf;
    r->gen.grammar = gbnf;
    return true;
}

bool oai_set_json_schema(const served *srv, request *r, const cJSON *schema, api_error *err)
{
    char msg[300];
    char *gbnf = !schema || !schema->child ? json_object_gbnf(msg, sizeof msg)
                                           : json_schema_to_gbnf(schema, msg, sizeof msg);
    if (!gbnf) return bad_request(err, "%s", msg);
    return oai_set_grammar(srv, r, gbnf, err);
}

/* llama-server's grammar and json_schema fields, and OpenAI's response_format
 * (json_object: any object, or its "schema"; json_schema: json_schema.schema;
 * "strict" is accepted: the schema is always enforced). */
static bool parse_grammar(const served *srv, const cJSON *root, request *r, api_error *err)
{
    const char *grammar = NULL;
    if (!get_string(root, "grammar", &grammar, err)) return false;
    if (grammar && !*grammar) grammar = NULL;
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "json_schema");
    if (cJSON_IsNull(schema)) schema = NULL;
    if (schema && !cJSON_IsObject(schema)) return bad_request(err, "'json_schema' must be an object");
    bool any_object = false;   /* a JSON-mode request without a schema */
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (rf && !cJSON_IsNull(rf)) {
        if (!cJSON_IsObject(rf)) return bad_request(err, "'response_format' must be an object");
        const char *type = NULL;
        if (!get_string(rf, "type", &type, err)) return false;
        const cJSON *s = NULL;
        if (type && !strcmp(type, "json_object")) {
            s = cJSON_GetObjectItemCaseSensitive(rf, "schema");
            if (s && !cJSON_IsObject(s)) return bad_request(err, "'response_format.schema' must be an object");
            any_object = !s && !schema;
        } else if (type && !strcmp(type, "json_schema")) {
            const cJSON *wrap = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
            if (!cJSON_IsObject(wrap)) return bad_request(err, "'response_format.json_schema' must be an object");
            bool strict = false;
            if (!get_bool(wrap, "strict", &strict, err)) return false;
            s = cJSON_GetObjectItemCaseSensitive(wrap, "schema");
            if (s && !cJSON_IsObject(s)) return bad_request(err, "'response_format.json_schema.schema' must be an object");
            any_object = !s;
        } else if (type && strcmp(type, "text")) {
            return bad_request(err, "response_format type must be one of \"text\", \"json_object\" or "
                                    "\"json_schema\", but got: %s", type);
        }
        if (s) schema = s;
    }
    if ((schema || any_object) && grammar) return bad_request(err, "Cannot use both json_schema and grammar");
    if (schema || any_object) return oai_set_json_schema(srv, r, schema, err);
    if (grammar) return oai_set_grammar(srv, r, strdup(grammar), err);
    return true;
}

struct cJSON *oai_parse_object(const char *body, size_t len, api_error *err)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (cJSON_IsObject(root)) return root;
    bad_request(err, root ? "the body must be a JSON object" : "the body is not valid JSON");
    cJSON_Delete(root);
    return NULL;
}

bool oai_parse_completion(const served *srv, api_kind kind, const char *body, size_t len,
                          request *r, api_call *call, api_error *err)
{
    memset(err, 0, sizeof *err);
    cJSON *root = oai_parse_object(body, len, err);
    if (!root) return false;
    bool ok = oai_parse_completion_json(srv, kind, root, r, call, err);
    cJSON_Delete(root);
    return ok;
}

bool oai_check_fits(const served *srv, const request *r, api_error *err)
{
    if (r->n_prompt == 0) return bad_request(err, "the prompt is empty");
    int32_t n_ctx = engine_n_ctx_slot(srv->engine);
    if (r->n_prompt < n_ctx) return true;
    oai_set_error(err, 400, "exceed_context_size_error",
                  "the request exceeds the available context size: the prompt has %d tokens, a slot's context holds %d",
                  r->n_prompt, n_ctx);
    err->n_prompt_tokens = r->n_prompt;
    err->n_ctx = n_ctx;
    return false;
}

bool oai_field_string(const cJSON *obj, const char *name, const char **out, api_error *err)
{
    return get_string(obj, name, out, err);
}

bool oai_field_bool(const cJSON *obj, const char *name, bool *out, api_error *err)
{
    return get_bool(obj, name, out, err);
}

bool oai_field_int(const cJSON *obj, const char *name, int64_t lo, int64_t hi, int64_t *out, bool *present,
                   api_error *err)
{
    return get_int(obj, name, lo, hi, out, present, err);
}

bool oai_parse_sampling(const served *srv, const cJSON *obj, request *r, api_error *err)
{
    return parse_sampling(srv, obj, r, err) && parse_stop(obj, r, err);
}

bool oai_chat_prompt(const served *srv, const cJSON *root, request *r, api_error *err)
{
    return chat_prompt(srv, root, r, err);
}

bool oai_parse_completion_json(const served *srv, api_kind kind, const cJSON *root,
                               request *r, api_call *call, api_error *err)
{
    memset(err, 0, sizeof *err);
    bool ok = false;
    call->kind = kind;
    call->created = (int64_t)time(NULL);
    static atomic_uint_fast64_t n_calls;   /* ids: unique in this run, distinct across runs */
    snprintf(call->id, sizeof call->id, "%s-%llx%06llx", kind == API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)srv->created, (unsigned long long)atomic_fetch_add(&n_calls, 1));
    if (!get_bool(root, "stream", &call->stream, err)) goto done;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            bad_request(err, "'stream_options' must be an object");
            goto done;
        }
        if (!get_bool(so, "include_usage", &call->include_usage, err)) goto done;
    }
    int64_t n_choices = 1;
    bool here;
    if (!get_int(root, "n", 1, 128, &n_choices, &here, err)) goto done;
    if (n_choices != 1) {
        bad_request(err, "'n' > 1 is not supported: one choice per request");
        goto done;
    }
    const char *model;
    if (!get_string(root, "model", &model, err)) goto done;
    if (!parse_logprobs(root, kind, r, err)) goto done;

    /* max_tokens, its newer name, and llama-server's n_predict */
    int64_t n_predict = srv->opt.n_predict;
    if (!get_int(root, "n_predict", -1, INT32_MAX, &n_predict, NULL, err) ||
        !get_int(root, "max_tokens", -1, INT32_MAX, &n_predict, NULL, err) ||
        !get_int(root, "max_completion_tokens", -1, INT32_MAX, &n_predict, NULL, err))
        goto done;
    r->gen.n_predict = (int32_t)n_predict;
    if (!get_bool(root, "cache_prompt", &r->cache_prompt, err) || !get_bool(root, "ignore_eos", &r->gen.ignore_eos, err) ||
        !parse_sampling(srv, root, r, err) || !parse_stop(root, r, err) || !parse_logit_bias(srv, root, r, err) ||
        !parse_grammar(srv, root, r, err))
        goto done;

    bool have_prompt = kind == API_CHAT ? chat_prompt(srv, root, r, err)
                     : kind == API_INFILL ? infill_prompt(srv, root, r, err)
                                          : text_prompt(srv, root, r, err);
    if (!have_prompt || !oai_check_fits(srv, r, err)) goto done;
    ok = true;
done:
    return ok;
}

/* ------------------------------------------------------------- responses */

static const char *finish_name(finish_reason f)
{
    return f == FINISH_LENGTH ? "length" : "stop";
}

static void add_timings(cJSON *obj, const request *r)
{
    cJSON *t = cJSON_AddObjectToObject(obj, "timings");
    uint64_t first = r->t_first_ns ? r->t_first_ns : r->t_end_ns;
    double prompt_ms = r->t_admit_ns && first > r->t_admit_ns ? (double)(first - r->t_admit_ns) / 1e6 : 0;
    double gen_ms = r->t_end_ns > first ? (double)(r->t_end_ns - first) / 1e6 : 0;
    int32_t prompt_n = r->n_prompt - r->n_cached;
    cJSON_AddNumberToObject(t, "cache_n", r->n_cached);
    cJSON_AddNumberToObject(t, "prompt_n", prompt_n);
    cJSON_AddNumberToObject(t, "prompt_ms", prompt_ms);
    cJSON_AddNumberToObject(t, "prompt_per_token_ms", prompt_n ? prompt_ms / prompt_n : 0);
    cJSON_AddNumberToObject(t, "prompt_per_second", prompt_ms > 0 ? prompt_n * 1000.0 / prompt_ms : 0);
    cJSON_AddNumberToObject(t, "predicted_n", r->n_generated);
    cJSON_AddNumberToObject(t, "predicted_ms", gen_ms);
    cJSON_AddNumberToObject(t, "predicted_per_token_ms", r->n_generated ? gen_ms / r->n_generated : 0);
    cJSON_AddNumberToObject(t, "predicted_per_second", gen_ms > 0 ? r->n_generated * 1000.0 / gen_ms : 0);
}

static void add_usage(cJSON *obj, const request *r)
{
    cJSON *u = cJSON_AddObjectToObject(obj, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", r->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_generated);
    cJSON_AddNumberToObject(u, "total_tokens", r->n_prompt + r->n_generated);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", r->n_cached);
}

/* A token's text (special tokens rendered) as a JSON string, and its bytes. */
static void add_piece(const served *srv, cJSON *obj, const char *name, kinfer_token t, bool with_bytes)
{
    char piece[256];
    int32_t n = kinfer_token_to_piece(srv->model, t, piece, sizeof piece - 1, true);
    if (n < 0) n = 0;
    piece[n] = '\0';
    oai_add_text(obj, name, piece, (size_t)n);
    if (!with_bytes) return;
    cJSON *bytes = cJSON_AddArrayToObject(obj, "bytes");
    for (int32_t i = 0; i < n; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
}

/* The logprobs of generated tokens [from, to) in the shape of the API. */
static cJSON *logprobs_json(const served *srv, const api_call *call, const request *r, int32_t from, int32_t to)
{
    if (call->kind == API_COMPLETIONS) {
        cJSON *lp = cJSON_CreateObject();
        cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens"), *values = cJSON_AddArrayToObject(lp, "token_logprobs");
        cJSON *tops = cJSON_AddArrayToObject(lp, "top_logprobs"), *offsets = cJSON_AddArrayToObject(lp, "text_offset");
        int64_t offset = 0;
        for (int32_t i = from; i < to; i++) {
            const token_logprob *e = &r->logprobs[i];
            cJSON *holder = cJSON_CreateObject();
            add_piece(srv, holder, "t", e->token, false);
            const char *text = cJSON_GetObjectItem(holder, "t")->valuestring;
            cJSON_AddItemToArray(tokens, cJSON_CreateString(text));   /* already clean */
            cJSON_AddItemToArray(values, cJSON_CreateNumber(e->logprob));
            cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
            offset += (int64_t)strlen(text);
            cJSON *top = cJSON_CreateObject();
            for (int32_t j = 0; j < e->n_top; j++) {
                cJSON *alt = cJSON_CreateObject();
                add_piece(srv, alt, "t", e->top[j], false);
                cJSON_AddNumberToObject(top, cJSON_GetObjectItem(alt, "t")->valuestring, e->top_logprob[j]);
                cJSON_Delete(alt);
            }
            cJSON_AddItemToArray(tops, top);
            cJSON_Delete(holder);
        }
        return lp;
    }
    bool native = call->kind != API_CHAT;
    cJSON *content = cJSON_CreateArray();
    for (int32_t i = from; i < to; i++) {
        const token_logprob *e = &r->logprobs[i];
        cJSON *entry = cJSON_CreateObject();
        if (native) cJSON_AddNumberToObject(entry, "id", e->token);
        add_piece(srv, entry, "token", e->token, true);
        cJSON_AddNumberToObject(entry, "logprob", e->logprob);
        cJSON *top = cJSON_AddArrayToObject(entry, "top_logprobs");
        for (int32_t j = 0; j < e->n_top; j++) {
            cJSON *alt = cJSON_CreateObject();
            if (native) cJSON_AddNumberToObject(alt, "id", e->top[j]);
            add_piece(srv, alt, "token", e->top[j], true);
            cJSON_AddNumberToObject(alt, "logprob", e->top_logprob[j]);
            cJSON_AddItemToArray(top, alt);
        }
        cJSON_AddItemToArray(content, entry);
    }
    if (native) return content;
    cJSON *lp = cJSON_CreateObject();
    cJSON_AddItemToObject(lp, "content", content);
    cJSON_AddNullToObject(lp, "refusal");
    return lp;
}

/* choice.logprobs (or the native completion_probabilities) for [from, to). */
static void add_logprobs(const served *srv, const api_call *call, cJSON *obj, const request *r, int32_t from, int32_t to)
{
    bool native = call->kind == API_NATIVE || call->kind == API_INFILL;
    if (r->n_top_logprobs < 0) {
        if (!native) cJSON_AddNullToObject(obj, "logprobs");
        return;
    }
    cJSON_AddItemToObject(obj, native ? "completion_probabilities" : "logprobs", logprobs_json(srv, call, r, from, to));
}

static cJSON *envelope(const served *srv, const api_call *call, const char *object)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", call->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)call->created);
    cJSON_AddStringToObject(root, "model", srv->alias);
    cJSON_AddStringToObject(root, "system_fingerprint", "kinfer-" KINFER_SERVER_VERSION);
    return root;
}

/* llama-server's native answer: content, counts, stop_type, timings */
static cJSON *native_object(const served *srv, const request *r, const char *content, bool stop)
{
    cJSON *root = cJSON_CreateObject();
    oai_add_text(root, "content", content, strlen(content));
    cJSON_AddNumberToObject(root, "id_slot", r->slot);
    cJSON_AddBoolToObject(root, "stop", stop);
    if (!stop) return root;
    cJSON_AddStringToObject(root, "model", srv->alias);
    cJSON_AddNumberToObject(root, "tokens_predicted", r->n_generated);
    cJSON_AddNumberToObject(root, "tokens_evaluated", r->n_prompt);
    cJSON_AddNumberToObject(root, "tokens_cached", r->n_cached);
    cJSON_AddStringToObject(root, "stop_type", r->finish == FINISH_EOG ? "eos"
                                              : r->finish == FINISH_STOP_WORD ? "word"
                                              : r->finish == FINISH_LENGTH ? "limit" : "none");
    cJSON_AddBoolToObject(root, "stopped_eos", r->finish == FINISH_EOG);
    cJSON_AddBoolToObject(root, "stopped_word", r->finish == FINISH_STOP_WORD);
    cJSON_AddBoolToObject(root, "stopped_limit", r->finish == FINISH_LENGTH);
    cJSON_AddBoolToObject(root, "truncated", false);
    add_timings(root, r);
    return root;
}

char *oai_final_json(const served *srv, const api_call *call, request *r)
{
    cJSON *root;
    const char *text = textbuf_str(&r->all_text);
    if (call->kind == API_NATIVE || call->kind == API_INFILL) {
        root = native_object(srv, r, text, true);
        add_logprobs(srv, call, root, r, 0, r->n_logprobs);
    } else {
        bool chat = call->kind == API_CHAT;
        root = envelope(srv, call, chat ? "chat.completion" : "text_completion");
        cJSON *choice = cJSON_CreateObject();
        cJSON_AddNumberToObject(choice, "index", 0);
        if (chat) {
            cJSON *msg = cJSON_AddObjectToObject(choice, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            oai_add_text(msg, "content", text, r->all_text.n);
        } else {
            oai_add_text(choice, "text", text, r->all_text.n);
        }
        add_logprobs(srv, call, choice, r, 0, r->n_logprobs);
        cJSON_AddStringToObject(choice, "finish_reason", finish_name(r->finish));
        cJSON *choices = cJSON_AddArrayToObject(root, "choices");
        cJSON_AddItemToArray(choices, choice);
        add_usage(root, r);
        add_timings(root, r);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static void sse(textbuf *out, cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    textbuf_append_str(out, "data: ");
    if (s) textbuf_append_str(out, s);
    textbuf_append_str(out, "\n\n");
    free(s);
    cJSON_Delete(obj);
}

/* One OpenAI chunk: delta text (or none) and finish_reason (or null). */
static cJSON *chunk(const served *srv, api_call *call, request *r, const char *text, size_t n, const char *finish)
{
    bool chat = call->kind == API_CHAT;
    cJSON *root = envelope(srv, call, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    if (chat) {
        cJSON *delta = cJSON_AddObjectToObject(choice, "delta");
        if (!call->sent_role) {
            cJSON_AddStringToObject(delta, "role", "assistant");
            call->sent_role = true;
        }
        if (!finish || n) oai_add_text(delta, "content", text, n);
    } else {
        oai_add_text(choice, "text", text, n);
    }
    add_logprobs(srv, call, choice, r, r->n_logprobs_sent, r->n_logprobs);
    r->n_logprobs_sent = r->n_logprobs;
    if (finish) cJSON_AddStringToObject(choice, "finish_reason", finish);
    else cJSON_AddNullToObject(choice, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice);
    return root;
}

void oai_stream_events(const served *srv, api_call *call, request *r, const char *text, size_t n,
                       bool finished, textbuf *out)
{
    if (finished && (r->finish == FINISH_ERROR || r->finish == FINISH_CANCELLED)) {
        /* what OpenAI's clients raise from: an error object as the last event */
        api_error err;
        if (r->finish == FINISH_ERROR) oai_set_error(&err, 500, "server_error", "%s", r->error);
        else oai_set_error(&err, 503, "unavailable_error", "the server is shutting down");
        char *json = oai_error_json(&err);
        textbuf_append_str(out, "data: ");
        if (json) textbuf_append_str(out, json);
        textbuf_append_str(out, "\n\n");
        free(json);
        return;
    }
    if (call->kind == API_NATIVE || call->kind == API_INFILL) {
        if (n) {
            char *copy = strndup(text, n);
            cJSON *obj = native_object(srv, r, copy ? copy : "", false);
            add_logprobs(srv, call, obj, r, r->n_logprobs_sent, r->n_logprobs);
            r->n_logprobs_sent = r->n_logprobs;
            sse(out, obj);
            free(copy);
        }
        if (finished) sse(out, native_object(srv, r, "", true));
        return;
    }
    if (n || (!finished && !call->sent_role && call->kind == API_CHAT)) sse(out, chunk(srv, call, r, text, n, NULL));
    if (!finished) return;
    cJSON *last = chunk(srv, call, r, "", 0, finish_name(r->finish));
    add_timings(last, r);
    sse(out, last);
    if (call->include_usage) {
        cJSON *u = envelope(srv, call, call->kind == API_CHAT ? "chat.completion.chunk" : "text_completion");
        cJSON_AddArrayToObject(u, "choices");
        add_usage(u, r);
        add_timings(u, r);
        sse(out, u);
    }
    textbuf_append_str(out, "data: [DONE]\n\n");
}
