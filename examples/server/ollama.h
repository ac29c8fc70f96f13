/*
 * ollama.h — Ollama's API (docs/api.md of ollama/ollama) over the same
 * engines: /api/generate and /api/chat bodies into a request (options,
 * system, template, raw, context, suffix), the answers as NDJSON lines or
 * one object (durations in nanoseconds), the listings /api/tags, /api/ps,
 * /api/show, and Ollama's error object {"error": "..."}.  cJSON does the
 * parsing and printing.
 */
#ifndef KINFER_SERVER_OLLAMA_H
#define KINFER_SERVER_OLLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "oai.h"
#include "router.h"

struct cJSON;

/* keep_alive of a body: a duration string ("5m", "-1m", "0") or seconds;
 * KEEP_ALIVE_UNSET when absent.  False with a 400 in *err. */
bool ollama_keep_alive(const struct cJSON *root, int64_t *ms, api_error *err);

/* /api/generate (kind API_OLLAMA_GENERATE) or /api/chat's body into r;
 * false with *err.  call->load_only: there is nothing to generate. */
bool ollama_parse(const served *sv, api_kind kind, const struct cJSON *root, request *r, api_call *call,
                  api_error *err);

/* {"error": message} (malloc'd). */
char *ollama_error_json(const api_error *err);

/* The whole answer of a finished request (malloc'd JSON); r NULL for a
 * load_only call (done_reason "load", or "unload" when unloading). */
char *ollama_final_json(const served *sv, const api_call *call, request *r, bool unload);

/* Stream: one NDJSON line per new text, and the final object when
 * finished, appended to out.  Called with r->mu held. */
void ollama_stream_lines(const served *sv, api_call *call, request *r, const char *text, size_t n,
                         bool finished, textbuf *out);

/* GET /api/tags, GET /api/ps, POST /api/show (NULL with *err). */
struct cJSON *ollama_tags(router *rt);
struct cJSON *ollama_ps(router *rt);
struct cJSON *ollama_show(router *rt, const struct cJSON *root, api_error *err);

/* Ollama's Go prompt template, the subset kinfer runs: {{ .System }},
 * {{ .Prompt }}, {{ .Response }} (empty), {{ if .X }} ... {{ else }} ...
 * {{ end }}, and {{- -}} trimming.  malloc'd text, or NULL with *err. */
char *ollama_render_template(const char *tmpl, const char *system, const char *prompt, api_error *err);

#endif
