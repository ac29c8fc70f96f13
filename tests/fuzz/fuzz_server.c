/*
 * fuzz_server.c — libFuzzer target for what kinfer-server does with a
 * request body before and after the engine: parsing and validation of every
 * completion route (oai_parse_completion: JSON, field types, messages
 * through the chat template, prompts and FIM parts through the tokenizer),
 * then the answers built from the parsed request (final JSON, stream
 * events, errors) with the input's bytes as generated text, so invalid
 * UTF-8 reaches the JSON writer.
 *
 * Ollama's routes (ollama_parse: options, system, template through
 * the Go-template subset, raw, context, suffix; keep_alive durations) go the
 * same way into their NDJSON answers.
 *
 * The first byte picks the route (% 6) and the finish reason (/ 6); the
 * rest is the body.  A real model
 * (SmolLM2; KINFER_FUZZ_MODEL overrides) supplies vocabulary and template.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../examples/server/oai.h"
#include "../../examples/server/ollama.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static served srv;
static metrics srv_metrics;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *path = getenv("KINFER_FUZZ_MODEL");
    if (!path) path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (kinfer_model_load(path, NULL, &srv.model) != KINFER_OK) {
        fprintf(stderr, "fuzz_server: cannot load %s (set KINFER_FUZZ_MODEL)\n", path);
        exit(1);
    }
    srv.alias = "fuzz";
    srv.opt.n_predict = -1;
    srv.opt.temperature = 0.8f;
    srv.opt.seed = 1;
    srv.opt.engine.cparams = kinfer_context_default_params();
    srv.opt.engine.cparams.n_ctx = 512;
    srv.opt.engine.cparams.n_threads = 1;
    srv.opt.engine.n_slots = 1;
    srv.opt.engine.n_batch = 64;
    srv.opt.engine.queue_cap = 1;
    metrics_init(&srv_metrics);
    char err[256];
    srv.engine = engine_start(srv.model, &srv.opt.engine, &srv_metrics, err, sizeof err);
    if (!srv.engine) {
        fprintf(stderr, "fuzz_server: %s\n", err);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const api_kind kinds[] = {API_CHAT, API_COMPLETIONS, API_NATIVE, API_INFILL, API_OLLAMA_GENERATE,
                                     API_OLLAMA_CHAT};
    const api_kind kind = kinds[data[0] % 6];
    const bool ollama = kind >= API_OLLAMA_GENERATE;
    const char *body = (const char *)data + 1;
    const size_t n = size - 1;

    request *r = request_new();
    if (!r) return 0;
    api_call call = {0};
    api_error err;
    bool ok;
    if (ollama) {
        /* the body as a template and as durations and sizes too */
        char *text = strndup(body, n);
        if (text) {
            free(ollama_render_template(text, "sys", "prompt", &err));
            int64_t ms;
            uint64_t bytes;
            router_parse_duration(text, &ms);
            router_parse_size(text, &bytes);
        }
        free(text);
        cJSON *root = oai_parse_object(body, n, &err);
        int64_t keep_alive;
        ok = root && ollama_keep_alive(root, &keep_alive, &err) && ollama_parse(&srv, kind, root, r, &call, &err);
        cJSON_Delete(root);
        if (ok && call.load_only) {
            free(ollama_final_json(&srv, &call, NULL, keep_alive == 0));
            request_release(r);
            return 0;
        }
    } else {
        ok = oai_parse_completion(&srv, kind, body, n, r, &call, &err);
    }
    if (!ok) {
        free(ollama ? ollama_error_json(&err) : oai_error_json(&err));
        request_release(r);
        return 0;
    }
    /* pretend the engine ran it: the body's bytes are the generated text */
    textbuf_append(&r->all_text, body, n);
    r->n_generated = 1;
    r->finish = (finish_reason)(data[0] / 6 % 5 + 1);
    snprintf(r->error, sizeof r->error, "%.*s", (int)(n < 64 ? n : 64), body);
    if (r->n_top_logprobs >= 0) {
        float logits[8] = {0, 1, 2, 3, 4, 5, 6, 7};
        request_add_logprob(r, logits, 8, (kinfer_token)(data[0] % 8));
    }
    if (r->keep_tokens) request_add_token(r, (kinfer_token)(data[0] % 8));
    if (ollama) {
        free(ollama_final_json(&srv, &call, r, false));
        textbuf lines = {0};
        ollama_stream_lines(&srv, &call, r, body, n, false, &lines);
        ollama_stream_lines(&srv, &call, r, "", 0, true, &lines);
        textbuf_free(&lines);
        request_release(r);
        return 0;
    }
    free(oai_final_json(&srv, &call, r));
    textbuf events = {0};
    oai_stream_events(&srv, &call, r, body, n, false, &events);
    oai_stream_events(&srv, &call, r, "", 0, true, &events);
    textbuf_free(&events);
    request_release(r);
    return 0;
}
