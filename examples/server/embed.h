/*
 * embed.h — the embeddings APIs' bodies: OpenAI's POST /v1/embeddings,
 * Ollama's POST /api/embed and its older POST /api/embeddings (one string
 * "prompt", cut to the context, answered {"embedding": [...]}; an empty
 * prompt answers an empty embedding, as Ollama's loads the model), parsed into a request of n_inputs inputs
 * (validated, every problem a 400 naming it) and answered from its
 * embeddings.
 */
#ifndef KINFER_SERVER_EMBED_H
#define KINFER_SERVER_EMBED_H

#include <stdbool.h>
#include <stdint.h>

#include "oai.h"
#include "request.h"
#include "server.h"

typedef struct embed_call {
    bool ollama;               /* /api/embed or /api/embeddings (else /v1/embeddings) */
    bool legacy;               /* Ollama's older /api/embeddings: {prompt} -> {embedding} */
    bool base64;               /* encoding_format "base64": float32 little-endian bytes */
    uint64_t t_start_ns, load_ns;
} embed_call;

struct cJSON;
/* Fill r (prompt, n_inputs, input_len, embd) from the body: input a string,
 * a list of strings, a list of token ids or a list of such lists (Ollama:
 * a string or a list of strings), each tokenized as llama-server does (BOS
 * as the model adds it, special tokens parsed).  An input longer than the
 * context is an error, or cut to the context where Ollama's truncate (default
 * true) asks.  False with a 400 in *err. */
bool embed_parse(const served *sv, const struct cJSON *root, embed_call *call, request *r,
                 api_error *err);

/* The answer to a request whose embeddings are done (malloc'd JSON). */
char *embed_answer(const served *sv, const embed_call *call, const request *r);

#endif
