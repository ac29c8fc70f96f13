/*
 * oai.h — the OpenAI (and llama-server native) request/response mapping:
 * JSON bodies to a filled request (validated: every wrong type names its
 * field), and a finished or streaming request back to JSON.  cJSON does the
 * parsing and printing.
 */
#ifndef KINFER_SERVER_OAI_H
#define KINFER_SERVER_OAI_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"
#include "server.h"

typedef enum api_kind {
    API_CHAT,         /* /v1/chat/completions */
    API_COMPLETIONS,  /* /v1/completions */
    API_NATIVE,       /* /completion (llama-server's own) */
    API_INFILL,       /* /infill */
    API_OLLAMA_GENERATE, /* Ollama's /api/generate (ollama.c) */
    API_OLLAMA_CHAT      /* Ollama's /api/chat */
} api_kind;

/* An error answer: HTTP status and OpenAI's error object. */
typedef struct api_error {
    int status;
    const char *type;          /* "invalid_request_error", ... */
    char message[320];
    int32_t n_prompt_tokens, n_ctx;  /* exceed_context_size_error only */
} api_error;

/* What the answer needs besides the request's output. */
typedef struct api_call {
    api_kind kind;
    bool stream;
    bool include_usage;        /* stream_options.include_usage */
    char id[48];               /* "chatcmpl-..." shared by every chunk */
    int64_t created;
    bool sent_role;            /* stream: the first chunk carried the role */
    /* Ollama's answers */
    uint64_t t_start_ns;       /* the request arrived */
    uint64_t load_ns;          /* of it waiting for its model's load */
    bool load_only;            /* /api/generate without a prompt: load (or unload) the model */
    bool want_context;         /* /api/generate: answer the conversation's tokens */
} api_call;

/* A JSON string of text that may be invalid UTF-8 (a token's piece can end
 * inside a character): each byte outside a valid sequence becomes U+FFFD. */
struct cJSON;
struct cJSON *oai_text(const char *text, size_t n);
void oai_add_text(struct cJSON *obj, const char *name, const char *text, size_t n);

/* A request body as a JSON object (the caller deletes it), or NULL with a
 * 400 in *err naming what is wrong. */
struct cJSON *oai_parse_object(const char *body, size_t len, api_error *err);

/* Parse a completion body into r; false with *err filled. */
bool oai_parse_completion(const served *srv, api_kind kind, const char *body, size_t len,
                          request *r, api_call *call, api_error *err);
/* The same from the parsed body (root stays the caller's). */
bool oai_parse_completion_json(const served *srv, api_kind kind, const struct cJSON *root,
                               request *r, api_call *call, api_error *err);

/* Pieces the Ollama mapping shares.  Each is false with a 400 in *err
 * naming the field. */
bool oai_field_string(const struct cJSON *obj, const char *name, const char **out, api_error *err);
bool oai_field_bool(const struct cJSON *obj, const char *name, bool *out, api_error *err);
bool oai_field_int(const struct cJSON *obj, const char *name, int64_t lo, int64_t hi, int64_t *out,
                   bool *present, api_error *err);
/* Sampling fields (temperature, top_k, top_p, min_p, seed, penalties,
 * repeat_last_n) and stop of obj into r, over the model's defaults. */
bool oai_parse_sampling(const served *srv, const struct cJSON *obj, request *r, api_error *err);
/* Constrain r's output: to gbnf (taken over, freed on failure too), or to
 * schema's JSON (an empty schema: any object, as llama-server).  A 400
 * naming the problem (line and column, or the schema keyword) when it does
 * not parse or convert. */
bool oai_set_grammar(const served *srv, request *r, char *gbnf, api_error *err);
bool oai_set_json_schema(const served *srv, request *r, const struct cJSON *schema, api_error *err);
/* root's "messages" through the chat template into r->prompt. */
bool oai_chat_prompt(const served *srv, const struct cJSON *root, request *r, api_error *err);
/* A 400 (exceed_context_size_error) when r's prompt does not fit a slot
 * with room for one token. */
bool oai_check_fits(const served *srv, const request *r, api_error *err);

/* The error object as JSON text (malloc'd). */
char *oai_error_json(const api_error *err);
void oai_set_error(api_error *err, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The whole answer of a finished request (malloc'd JSON). */
char *oai_final_json(const served *srv, const api_call *call, request *r);

/* Stream: the SSE events for new text and, when finished, the end (final
 * chunk, usage chunk, [DONE]) appended to out.  Called with r->mu held. */
void oai_stream_events(const served *srv, api_call *call, request *r, const char *text, size_t n,
                       bool finished, textbuf *out);

/* Tokenize a prompt string with the server's rules (special text parsed,
 * BOS as the vocabulary asks); NULL with *err on failure. */
kinfer_token *oai_tokenize(const served *srv, const char *text, size_t len, bool add_special,
                           int32_t *n, api_error *err);

#endif
