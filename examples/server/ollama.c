/* ollama.c — Ollama's API mapping (see ollama.h). */
#include "ollama.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/fim.h"

static bool fail(api_error *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(api_error *err, int status, const char *fmt, ...)
{
    err->status = status;
    err->type = status == 404 ? "not_found_error" : status == 501 ? "not_supported_error" : "invalid_request_error";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

char *ollama_error_json(const api_error *err)
{
    cJSON *root = cJSON_CreateObject();
    oai_add_text(root, "error", err->message, strlen(err->message));
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* RFC 3339 in UTC with nanoseconds, as Go's time.Time marshals. */
static void add_time(cJSON *obj, const char *name, int64_t sec, long nsec)
{
    struct tm tm;
    time_t t = (time_t)sec;
    gmtime_r(&t, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%09ldZ", nsec);
    cJSON_AddStringToObject(obj, name, buf);
}

static void add_now(cJSON *obj, const char *name)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    add_time(obj, name, (int64_t)ts.tv_sec, ts.tv_nsec);
}

/* "name:latest" for a name without a tag, as Ollama lists models. */
static void add_tagged(cJSON *obj, const char *key, const char *name)
{
    char buf[160];
    snprintf(buf, sizeof buf, "%s%s", name, strchr(name, ':') ? "" : ":latest");
    cJSON_AddStringToObject(obj, key, buf);
}

/* ------------------------------------------------------------ requests */

bool ollama_keep_alive(const cJSON *root, int64_t *ms, api_error *err)
{
    *ms = KEEP_ALIVE_UNSET;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "keep_alive");
    if (!v || cJSON_IsNull(v)) return true;
    if (cJSON_IsNumber(v)) {
        *ms = router_seconds_ms(v->valuedouble);
        return true;
    }
    if (cJSON_IsString(v) && router_parse_duration(v->valuestring, ms)) return true;
    return fail(err, 400, "'keep_alive' must be a duration (\"5m\", \"1h30m\", \"-1\") or a number of seconds");
}

char *ollama_render_template(const char *tmpl, const char *system, const char *prompt, api_error *err)
{
    textbuf out = {0};
    bool on[32] = {true}, seen_else[32] = {false};
    int depth = 0;
    const char *p = tmpl;
    while (*p) {
        const char *open = strstr(p, "{{");
        const char *text_end = open ? open : p + strlen(p);
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (open && !close) {
            textbuf_free(&out);
            fail(err, 400, "'template': a '{{' without '}}'");
            return NULL;
        }
        bool trim_left = open && open[2] == '-', trim_right = close && close > open + 2 && close[-1] == '-';
        const char *te = text_end;
        if (trim_left)
            while (te > p && strchr(" \t\r\n", te[-1])) te--;
        if (on[depth]) textbuf_append(&out, p, (size_t)(te - p));
        if (!open) break;
        /* the action, without its {{- -}} marks and spaces */
        const char *a = open + 2 + trim_left, *ae = close - trim_right;
        while (a < ae && *a == ' ') a++;
        while (ae > a && ae[-1] == ' ') ae--;
        char act[64];
        snprintf(act, sizeof act, "%.*s", (int)(ae - a), a);
        const char *value = !strcmp(act, ".System") || !strcmp(act, "if .System") ? (system ? system : "")
                          : !strcmp(act, ".Prompt") || !strcmp(act, "if .Prompt") ? (prompt ? prompt : "")
                          : !strcmp(act, ".Response") || !strcmp(act, "if .Response") ? "" : NULL;
        if (!strncmp(act, "if ", 3) && value) {
            if (depth == 31) break;
            depth++;
            on[depth] = on[depth - 1] && *value;
            seen_else[depth] = false;
        } else if (!strcmp(act, "else") && depth > 0 && !seen_else[depth]) {
            seen_else[depth] = true;
            on[depth] = on[depth - 1] && !on[depth];
        } else if (!strcmp(act, "end") && depth > 0) {
            depth--;
        } else if (value) {
            if (on[depth]) textbuf_append_str(&out, value);
        } else {
            textbuf_free(&out);
            fail(err, 400, "'template': kinfer runs {{ .System }}, {{ .Prompt }}, {{ .Response }} and "
                 "{{ if }}/{{ else }}/{{ end }} on them, not '{{ %s }}'", act);
            return NULL;
        }
        p = close + 2;
        if (trim_right)
            while (*p && strchr(" \t\r\n", *p)) p++;
    }
    if (depth != 0) {
        textbuf_free(&out);
        fail(err, 400, "'template': an {{ if }} without {{ end }}");
        return NULL;
    }
    char *s = strdup(textbuf_str(&out));
    textbuf_free(&out);
    if (!s) fail(err, 500, "out of memory");
    return s;
}

/* Prepend the token ids of "context" (the previous turn's answer). */
static bool prepend_context(const served *sv, const cJSON *ctx, request *r, api_error *err)
{
    int n = cJSON_GetArraySize(ctx);
    if (n == 0) return true;
    int32_t n_vocab = kinfer_vocab_n_tokens(sv->model);
    /* the new text continues the conversation: no second BOS */
    int skip = r->n_prompt > 0 && kinfer_vocab_add_bos(sv->model) && r->prompt[0] == kinfer_token_bos(sv->model);
    kinfer_token *t = malloc((size_t)(n + r->n_prompt) * sizeof *t);
    if (!t) return fail(err, 500, "out of memory");
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, ctx)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= n_vocab ||
            v->valuedouble != (int32_t)v->valuedouble) {
            free(t);
            return fail(err, 400, "'context' must hold token ids of this model's vocabulary [0, %d)", n_vocab);
        }
        t[i++] = (kinfer_token)v->valuedouble;
    }
    memcpy(t + i, r->prompt + skip, (size_t)(r->n_prompt - skip) * sizeof *t);
    free(r->prompt);
    r->prompt = t;
    r->n_prompt = i + r->n_prompt - skip;
    return true;
}

static bool generate_prompt(const served *sv, const cJSON *root, request *r, api_call *call, api_error *err)
{
    const char *prompt, *suffix, *system, *tmpl;
    bool raw = false;
    if (!oai_field_string(root, "prompt", &prompt, err) || !oai_field_string(root, "suffix", &suffix, err) ||
        !oai_field_string(root, "system", &system, err) || !oai_field_string(root, "template", &tmpl, err) ||
        !oai_field_bool(root, "raw", &raw, err))
        return false;
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(root, "context");
    if (ctx && !cJSON_IsNull(ctx) && !cJSON_IsArray(ctx)) return fail(err, 400, "'context' must be an array of token ids");
    if ((!prompt || !*prompt) && (!suffix || !*suffix)) {
        call->load_only = true;
        return true;
    }
    call->want_context = true;
    r->keep_tokens = true;
    kinfer_error ke = {0};
    if (suffix && *suffix) {
        fim_input in = {.prefix = prompt ? prompt : "", .suffix = suffix};
        r->prompt = fim_prompt(sv->model, &in, sv->opt.engine.n_batch, engine_n_ctx_slot(sv->engine),
                               r->gen.n_predict, &r->n_prompt, &ke);
        if (!r->prompt && ke.status == KINFER_E_UNSUPPORTED)
            return fail(err, 400, "%s does not support insert (no fill-in-the-middle tokens): %s", sv->alias, ke.message);
        if (!r->prompt) return fail(err, 500, "%s", ke.message);
    } else if (raw || tmpl) {
        char *text = raw ? strdup(prompt) : ollama_render_template(tmpl, system, prompt, err);
        if (!text) return raw ? fail(err, 500, "out of memory") : false;
        r->prompt = oai_tokenize(sv, text, strlen(text), true, &r->n_prompt, err);
        free(text);
        if (!r->prompt) return false;
    } else {
        /* the model's chat template over [system], user */
        cJSON *fake = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(fake, "messages");
        if (system) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "system");
            cJSON_AddStringToObject(m, "content", system);
            cJSON_AddItemToArray(msgs, m);
        }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", prompt);
        cJSON_AddItemToArray(msgs, m);
        bool ok = oai_chat_prompt(sv, fake, r, err);
        cJSON_Delete(fake);
        if (!ok) return false;
    }
    return !ctx || cJSON_IsNull(ctx) || prepend_context(sv, ctx, r, err);
}

static bool chat_messages(const served *sv, const cJSON *root, request *r, api_call *call, api_error *err)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (msgs && !cJSON_IsNull(msgs) && !cJSON_IsArray(msgs)) return fail(err, 400, "'messages' must be an array");
    if (cJSON_GetArraySize(msgs) == 0) {
        call->load_only = true;
        return true;
    }
    const cJSON *m;
    int i = 0;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *images = cJSON_GetObjectItemCaseSensitive(m, "images");
        if (cJSON_GetArraySize(images) > 0) return fail(err, 400, "messages[%d]: images: %s runs text only", i, sv->alias);
        i++;
    }
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    if (cJSON_GetArraySize(tools) > 0) return fail(err, 400, "%s does not support tools", sv->alias);
    return oai_chat_prompt(sv, root, r, err);
}

bool ollama_parse(const served *sv, api_kind kind, const cJSON *root, request *r, api_call *call, api_error *err)
{
    memset(err, 0, sizeof *err);
    call->kind = kind;
    call->created = (int64_t)time(NULL);
    call->stream = true;   /* Ollama streams unless told not to */
    if (!oai_field_bool(root, "stream", &call->stream, err)) return false;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (format && !cJSON_IsNull(format) && !(cJSON_IsString(format) && !*format->valuestring)) {
        if (!(cJSON_IsString(format) && !strcmp(format->valuestring, "json")) && !cJSON_IsObject(format))
            return fail(err, 400, "'format' must be \"json\" or a JSON schema object");
        /* "json": any object (Ollama's JSON mode) */
        if (!oai_set_json_schema(sv, r, cJSON_IsObject(format) ? format : NULL, err)) return false;
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "images")) > 0)
        return fail(err, 400, "images: %s runs text only", sv->alias);
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(root, "options");
    if (opts && !cJSON_IsNull(opts) && !cJSON_IsObject(opts)) return fail(err, 400, "'options' must be an object");
    cJSON *none = cJSON_CreateObject();
    if (!cJSON_IsObject(opts)) opts = none;
    int64_t n_predict = sv->opt.n_predict, num_ctx = 0;
    bool ok = oai_parse_sampling(sv, opts, r, err) &&
              oai_field_int(opts, "num_predict", -2, INT32_MAX, &n_predict, NULL, err) &&
              oai_field_int(opts, "num_ctx", 1, INT32_MAX, &num_ctx, NULL, err);
    cJSON_Delete(none);
    if (!ok) return false;
    r->gen.n_predict = n_predict < 0 ? -1 : (int32_t)n_predict;   /* -2 (fill the context) is -1 here */
    r->cache_prompt = true;
    if (!(kind == API_OLLAMA_GENERATE ? generate_prompt(sv, root, r, call, err) : chat_messages(sv, root, r, call, err)))
        return false;
    if (call->load_only) return true;
    /* num_ctx below a slot's context bounds this request; above it, the
     * slot's context is what there is (models.json's ctx_size sets it) */
    if (num_ctx > 0 && num_ctx < engine_n_ctx_slot(sv->engine)) {
        if (r->n_prompt >= num_ctx) {
            oai_set_error(err, 400, "exceed_context_size_error",
                          "the prompt has %d tokens, options.num_ctx is %lld", r->n_prompt, (long long)num_ctx);
            err->n_prompt_tokens = r->n_prompt;
            err->n_ctx = (int32_t)num_ctx;
            return false;
        }
        int32_t room = (int32_t)num_ctx - r->n_prompt;
        if (r->gen.n_predict < 0 || r->gen.n_predict > room) r->gen.n_predict = room;
    }
    return oai_check_fits(sv, r, err);
}

/* ------------------------------------------------------------ answers */

static cJSON *head(const served *sv)
{
    cJSON *o = cJSON_CreateObject();
    add_tagged(o, "model", sv->alias);
    add_now(o, "created_at");
    return o;
}

static void add_text(cJSON *o, api_kind kind, const char *text, size_t n)
{
    if (kind == API_OLLAMA_GENERATE) {
        oai_add_text(o, "response", text, n);
        return;
    }
    cJSON *m = cJSON_AddObjectToObject(o, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    oai_add_text(m, "content", text, n);
}

static void add_done(cJSON *o, const api_call *call, const request *r)
{
    cJSON_AddBoolToObject(o, "done", true);
    cJSON_AddStringToObject(o, "done_reason", r->finish == FINISH_LENGTH ? "length" : "stop");
    if (call->want_context) {
        cJSON *ctx = cJSON_AddArrayToObject(o, "context");
        for (int32_t i = 0; i < r->n_prompt; i++) cJSON_AddItemToArray(ctx, cJSON_CreateNumber(r->prompt[i]));
        for (int32_t i = 0; i < r->n_out_tokens; i++) cJSON_AddItemToArray(ctx, cJSON_CreateNumber(r->out_tokens[i]));
    }
    uint64_t end = r->t_end_ns ? r->t_end_ns : gen_now_ns();
    uint64_t first = r->t_first_ns ? r->t_first_ns : end;
    cJSON_AddNumberToObject(o, "total_duration", (double)(end - call->t_start_ns));
    cJSON_AddNumberToObject(o, "load_duration", (double)call->load_ns);
    cJSON_AddNumberToObject(o, "prompt_eval_count", r->n_prompt - r->n_cached);
    cJSON_AddNumberToObject(o, "prompt_eval_duration", (double)(r->t_admit_ns && first > r->t_admit_ns ? first - r->t_admit_ns : 0));
    cJSON_AddNumberToObject(o, "eval_count", r->n_generated);
    cJSON_AddNumberToObject(o, "eval_duration", (double)(end > first ? end - first : 0));
}

static char *print(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *ollama_final_json(const served *sv, const api_call *call, request *r, bool unload)
{
    cJSON *o = head(sv);
    if (!r) {
        add_text(o, call->kind, "", 0);
        cJSON_AddBoolToObject(o, "done", true);
        cJSON_AddStringToObject(o, "done_reason", unload ? "unload" : "load");
        if (call->kind == API_OLLAMA_GENERATE) cJSON_AddNumberToObject(o, "load_duration", (double)call->load_ns);
        return print(o);
    }
    add_text(o, call->kind, textbuf_str(&r->all_text), r->all_text.n);
    add_done(o, call, r);
    return print(o);
}

static void line(textbuf *out, char *json)
{
    if (json) textbuf_append_str(out, json);
    textbuf_append_str(out, "\n");
    free(json);
}

void ollama_stream_lines(const served *sv, api_call *call, request *r, const char *text, size_t n,
                         bool finished, textbuf *out)
{
    if (finished && (r->finish == FINISH_ERROR || r->finish == FINISH_CANCELLED)) {
        api_error err = {0};
        snprintf(err.message, sizeof err.message, "%s", r->finish == FINISH_ERROR ? r->error : "the server is shutting down");
        line(out, ollama_error_json(&err));
        return;
    }
    if (n) {
        cJSON *o = head(sv);
        add_text(o, call->kind, text, n);
        cJSON_AddBoolToObject(o, "done", false);
        line(out, print(o));
    }
    if (!finished) return;
    cJSON *o = head(sv);
    add_text(o, call->kind, "", 0);
    add_done(o, call, r);
    line(out, print(o));
}

/* ------------------------------------------------------------ listings */

/* A stable stand-in for Ollama's manifest digest: FNV-1a of the file's
 * path, size and time, 64 hex digits (kinfer has no manifests). */
static void add_digest(cJSON *o, const router_entry *e)
{
    char key[600], hex[65];
    snprintf(key, sizeof key, "%s|%llu|%lld", e->path, (unsigned long long)e->file_bytes, (long long)e->mtime);
    for (int k = 0; k < 4; k++) {
        uint64_t h = 1469598103934665603ull ^ (uint64_t)k;
        for (const char *c = key; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
        snprintf(hex + 16 * k, 17, "%016llx", (unsigned long long)h);
    }
    cJSON_AddStringToObject(o, "digest", hex);
}

/* details: family, parameter size and quantization from the file's
 * metadata (kinfer_model_desc: "llama 135M Q4_1, 30 layers"). */
static void add_details(cJSON *o, const kinfer_model *model)
{
    cJSON *d = cJSON_AddObjectToObject(o, "details");
    char desc[160] = "", arch[48] = "", size[32] = "", quant[32] = "";
    if (model && kinfer_model_desc(model, desc, sizeof desc) > 0) sscanf(desc, "%47s %31s %31[^,]", arch, size, quant);
    cJSON_AddStringToObject(d, "parent_model", "");
    cJSON_AddStringToObject(d, "format", "gguf");
    cJSON_AddStringToObject(d, "family", arch);
    cJSON *fams = cJSON_AddArrayToObject(d, "families");
    if (*arch) cJSON_AddItemToArray(fams, cJSON_CreateString(arch));
    cJSON_AddStringToObject(d, "parameter_size", size);
    cJSON_AddStringToObject(d, "quantization_level", quant);
}

/* The model of a listing: the loaded one, or the file opened for its
 * metadata (mapped, not read; NULL when it does not open). */
static const kinfer_model *open_model(router *rt, const router_entry *e, served **held, kinfer_model **opened)
{
    *held = NULL;
    *opened = NULL;
    if (e->loaded && (*held = router_acquire_loaded(rt, e->name))) return (*held)->model;
    if (kinfer_model_load(e->path, NULL, opened) != KINFER_OK) {
        kinfer_model_free(*opened);
        *opened = NULL;
    }
    return *opened;
}

static void close_model(router *rt, served *held, kinfer_model *opened)
{
    if (held) router_unhold(rt, held);
    kinfer_model_free(opened);
}

static cJSON *listing(router *rt, bool loaded_only)
{
    router_entry *e = NULL;
    int n = router_list(rt, &e);
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "models");
    for (int i = 0; i < n; i++) {
        if (loaded_only && !e[i].loaded) continue;
        cJSON *m = cJSON_CreateObject();
        add_tagged(m, "name", e[i].name);
        add_tagged(m, "model", e[i].name);
        if (!loaded_only) add_time(m, "modified_at", e[i].mtime, 0);
        cJSON_AddNumberToObject(m, "size", (double)(loaded_only ? e[i].mem_bytes : e[i].file_bytes));
        add_digest(m, &e[i]);
        served *held;
        kinfer_model *opened;
        const kinfer_model *model = open_model(rt, &e[i], &held, &opened);
        add_details(m, model);
        close_model(rt, held, opened);
        if (loaded_only) {
            /* Ollama writes a far future for "never" (keep_alive < 0) */
            int64_t ms = e[i].expires_ms;
            if (ms == 0) ms = (int64_t)time(NULL) * 1000;   /* busy: not before now */
            if (ms < 0) add_time(m, "expires_at", 10999999999, 0);
            else add_time(m, "expires_at", ms / 1000, (long)(ms % 1000) * 1000000);
            cJSON_AddNumberToObject(m, "size_vram", (double)e[i].device_bytes);
            cJSON_AddNumberToObject(m, "context_length", e[i].n_ctx);
        }
        cJSON_AddItemToArray(arr, m);
    }
    free(e);
    return root;
}

cJSON *ollama_tags(router *rt) { return listing(rt, false); }
cJSON *ollama_ps(router *rt) { return listing(rt, true); }

cJSON *ollama_show(router *rt, const cJSON *root, api_error *err)
{
    const char *name = NULL;
    if (!oai_field_string(root, "model", &name, err)) return NULL;
    if (!name && !oai_field_string(root, "name", &name, err)) return NULL;
    if (!name || !*name) return fail(err, 400, "'model' is required"), NULL;
    router_entry *e = NULL;
    int n = router_list(rt, &e);
    char path[512], canonical[128];
    if (!router_path(rt, name, path, sizeof path, canonical, sizeof canonical)) {
        free(e);
        return fail(err, 404, "model '%s' not found", name), NULL;
    }
    const router_entry *entry = NULL;
    for (int i = 0; i < n && !entry; i++)
        if (!strcmp(e[i].name, canonical)) entry = &e[i];
    router_entry one = {0};
    if (!entry) {   /* (the -m model: listed under its alias) */
        snprintf(one.name, sizeof one.name, "%s", canonical);
        snprintf(one.path, sizeof one.path, "%s", path);
        entry = &one;
    }
    served *held;
    kinfer_model *opened;
    const kinfer_model *model = open_model(rt, entry, &held, &opened);
    if (!model) {
        free(e);
        return fail(err, 500, "model '%s': cannot read %s", canonical, path), NULL;
    }
    cJSON *o = cJSON_CreateObject();
    textbuf mf = {0};
    textbuf_printf(&mf, "# Modelfile generated by kinfer-server\nFROM %s\n", path);
    oai_add_text(o, "modelfile", textbuf_str(&mf), mf.n);
    textbuf_free(&mf);
    cJSON_AddStringToObject(o, "parameters", "");
    const char *tmpl = NULL;
    kinfer_meta_get_str(model, "tokenizer.chat_template", &tmpl);   /* Jinja, as the GGUF holds it */
    oai_add_text(o, "template", tmpl ? tmpl : "", tmpl ? strlen(tmpl) : 0);
    add_details(o, model);
    cJSON *info = cJSON_AddObjectToObject(o, "model_info");
    int64_t count = kinfer_meta_count(model);
    for (int64_t i = 0; i < count; i++) {
        kinfer_value_type type;
        if (kinfer_meta_type(model, i, &type, NULL, NULL) != KINFER_OK) continue;
        const char *key = kinfer_meta_key(model, i);
        if (type == KINFER_VALUE_ARRAY) {   /* as Ollama without verbose: arrays left out */
            cJSON_AddNullToObject(info, key);
            continue;
        }
        char buf[1024];
        int64_t k = kinfer_meta_format(model, i, 0, buf, sizeof buf);
        cJSON *v = k > 0 ? cJSON_Parse(buf) : NULL;   /* numbers, bools, JSON string literals */
        if (v) cJSON_AddItemToObject(info, key, v);
        else cJSON_AddNullToObject(info, key);
    }
    cJSON *caps = cJSON_AddArrayToObject(o, "capabilities");
    cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
    fim_input probe = {.prefix = "", .suffix = ""};
    int32_t n_probe = 0;
    kinfer_error ke = {0};
    kinfer_token *t = fim_prompt(model, &probe, 64, 256, 16, &n_probe, &ke);
    if (t) cJSON_AddItemToArray(caps, cJSON_CreateString("insert"));
    free(t);
    add_time(o, "modified_at", entry->mtime, 0);
    close_model(rt, held, opened);
    free(e);
    return o;
}
