/*
 * request.h — one completion request, shared by the HTTP thread that made it
 * and the scheduler thread that runs it.
 *
 * The HTTP side fills the input part, then submits it (engine_submit); after
 * that the input is read-only.  The output part is written by the scheduler
 * under mu and read by the HTTP side under mu.  Two references: whoever
 * releases last frees it.
 */
#ifndef KINFER_SERVER_REQUEST_H
#define KINFER_SERVER_REQUEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/gen.h"

typedef enum finish_reason {
    FINISH_NONE = 0,
    FINISH_EOG,        /* the model ended its text */
    FINISH_STOP_WORD,  /* a stop string */
    FINISH_LENGTH,     /* max_tokens, or the slot's context is full */
    FINISH_CANCELLED,  /* the client went away, or the server is stopping */
    FINISH_ERROR
} finish_reason;

#define REQUEST_MAX_TOP_LOGPROBS 20

/* A generated token's log-probability (log-softmax of the logits it was
 * sampled from) and the most likely alternatives. */
typedef struct token_logprob {
    kinfer_token token;
    float logprob;
    int32_t n_top;
    kinfer_token top[REQUEST_MAX_TOP_LOGPROBS];
    float top_logprob[REQUEST_MAX_TOP_LOGPROBS];
} token_logprob;

typedef struct request {
    /* input */
    kinfer_token *prompt;          /* (n_prompt) owned */
    int32_t n_prompt;
    gen_params gen;                /* gen.stop points into stops */
    char **stops;                  /* (n_stops) owned */
    int32_t n_stops;
    bool cache_prompt;
    int32_t n_bias;                /* logit_bias: added to a copy of the logits */
    kinfer_token *bias_token;      /* (n_bias) owned */
    float *bias_value;             /* (n_bias) owned */
    int32_t n_top_logprobs;        /* alternatives per token; -1 = no logprobs at all */
    bool keep_tokens;              /* record the generated ids (Ollama's context) */
    char *grammar;                 /* GBNF the output follows (owned; gen.grammar points here) */
    /* embeddings (a server with --embeddings): prompt holds n_inputs inputs
     * end to end, input i of input_len[i] tokens; 0 for a completion */
    int32_t n_inputs;
    int32_t *input_len;            /* (n_inputs) owned */

    /* output, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    textbuf text;                  /* produced and not yet taken by the HTTP side */
    textbuf all_text;              /* everything produced (non-stream answers) */
    bool done;
    finish_reason finish;
    int32_t slot;                  /* -1 until admitted */
    int32_t n_cached;              /* prompt tokens reused from the cache */
    int32_t n_generated;
    token_logprob *logprobs;       /* (n_logprobs) one per generated token, when asked */
    int32_t n_logprobs, cap_logprobs;
    int32_t n_logprobs_sent;       /* stream: entries already in an event */
    kinfer_token *out_tokens;      /* (n_out_tokens) generated ids, when keep_tokens */
    int32_t n_out_tokens, cap_out_tokens;
    float *embd;                   /* (n_inputs, n_embd) L2-normalised embeddings, owned;
                                    * complete when done with FINISH_EOG */
    int32_t n_embd_done;           /* inputs embedded so far (the scheduler's) */
    uint64_t t_submit_ns, t_admit_ns, t_first_ns, t_end_ns;
    char error[160];

    atomic_bool cancelled;         /* set by the HTTP side: the client is gone */
    int refs;                      /* under mu */
} request;

/* A new request with one reference, or NULL.  gen = gen_default_params(). */
request *request_new(void);
/* Drop a reference; the last one frees the request. */
void request_release(request *r);
/* Add a stop string (copied); false when out of memory. */
bool request_add_stop(request *r, const char *s);
/* Append a generated id (keep_tokens); mu held.  False when out of memory. */
bool request_add_token(request *r, kinfer_token token);
/* Record the sampled token's log-probability under logits (and the
 * n_top_logprobs best); call with mu held.  False when out of memory. */
bool request_add_logprob(request *r, const float *logits, int32_t n_vocab, kinfer_token token);

#endif
