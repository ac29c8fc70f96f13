/*
 * gen.h — the generate loop every example program shares, as pieces:
 * tokenize, evaluate tokens of one sequence in chunks (with llama.cpp's
 * context shift), and turn sampled tokens into text (sampler, end of
 * generation, streaming UTF-8-safe detokenize, stop strings).
 *
 * kinfer-cli drives one gen_seq on sequence 0 with gen_eval.  kinfer-server
 * keeps one gen_seq per slot and builds its own mixed batches, then calls
 * gen_seq_next for each slot's logits.
 */
#ifndef KINFER_EXAMPLES_GEN_H
#define KINFER_EXAMPLES_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "kinfer.h"
#include "stop.h"
#include "textbuf.h"

/* Why generation of a sequence ended (or did not yet). */
typedef enum gen_status {
    GEN_CONTINUE = 0, /* go on: decode the token and sample again */
    GEN_EOG,          /* the model ended its text (EOS, EOT, ...) */
    GEN_STOP_STRING,  /* a stop string was produced (it is not emitted) */
    GEN_LENGTH,       /* n_predict tokens were generated */
    GEN_ERROR         /* sampling failed (bad logits or parameters) */
} gen_status;

typedef struct gen_params {
    kinfer_sampler_params sampling;
    int32_t n_predict;         /* tokens to generate; -1 = no limit */
    bool ignore_eos;           /* do not stop at end-of-generation tokens */
    const char *const *stop;   /* stop strings, copied by gen_seq_init */
    int n_stop;
    const char *grammar;       /* GBNF text (root rule "root") the output must follow; NULL = none */
} gen_params;

gen_params gen_default_params(void);

/* One sequence being generated.  Owns its sampler, detokenizer and stop
 * matcher; the model (shared) and the context are the caller's. */
typedef struct gen_seq {
    const kinfer_model *model;
    kinfer_seq_id seq;
    kinfer_pos n_past;         /* positions 0 .. n_past-1 of seq are in the cache */
    int32_t n_keep;            /* tokens a context shift keeps at the start */
    int32_t n_predict;
    bool ignore_eos;
    int32_t n_vocab;
    kinfer_sampler *sampler;
    kinfer_grammar *grammar;   /* params' grammar, owned by sampler (NULL: none) */
    kinfer_detok *detok;
    stop_matcher stop;
    int32_t n_generated;       /* tokens sampled so far (an EOG token not counted) */
    int64_t n_shifts;          /* context shifts done */
    int32_t logits_index;      /* after gen_eval: batch index of the sampled-from token */
    /* timing of gen_eval, split by is_prompt */
    int64_t n_prompt_eval, n_gen_eval;
    uint64_t t_prompt_ns, t_gen_ns, t_sample_ns;
    char error[256];           /* why gen_seq_init failed, when it says (a grammar that does not parse) */
} gen_seq;

/* KINFER_OK, or the status of the failed sampler/detok creation, or
 * KINFER_E_NOMEM, or KINFER_E_FORMAT for a grammar that does not parse
 * (g->error says where).  gen_seq_free is safe after any result. */
kinfer_status gen_seq_init(gen_seq *g, const kinfer_model *model, kinfer_seq_id seq,
                           const gen_params *params);
void gen_seq_free(gen_seq *g);

/* Monotonic clock in nanoseconds. */
uint64_t gen_now_ns(void);

/*
 * Text to tokens (parse_special: control-token text becomes ids).  Returns a
 * malloc'd array (the caller frees) with *n tokens, or NULL with *error set.
 * An empty result is a valid non-NULL array with *n = 0.
 */
kinfer_token *gen_tokenize(const kinfer_model *model, const char *text, size_t len,
                           bool add_special, bool parse_special, int32_t *n, kinfer_error *error);

/* Record prompt tokens in the sampler's penalty history. */
void gen_seq_accept_prompt(gen_seq *g, const kinfer_token *tokens, int32_t n);

/* llama.cpp's context shift: keep n_keep, drop the older half of the rest,
 * slide the newer half down.  False when there is nothing to drop. */
bool gen_context_shift(kinfer_context *ctx, gen_seq *g, kinfer_status *st);

/*
 * Decode n tokens of g's sequence after what it holds, in chunks of at most
 * n_chunk tokens (0 = one call); the logits of the last token are asked for.
 * With context_shift, shifts while the cache would become full (as
 * llama.cpp's programs do); without, a sequence that would pass n_ctx is
 * KINFER_E_CONTEXT_FULL.  Other statuses are kinfer_decode's (ABORTED ...).
 */
kinfer_status gen_eval(kinfer_context *ctx, gen_seq *g, const kinfer_token *tokens, int32_t n,
                       int32_t n_chunk, int32_t n_ctx, bool context_shift, bool is_prompt);

/*
 * Sample the next token from logits (n_vocab floats, not modified), record
 * it, and append the text it completes (held back around stop strings) to
 * out.  *token gets the token (to be decoded next when GEN_CONTINUE).
 * Anything but GEN_CONTINUE ends the sequence: call gen_seq_finish.
 */
gen_status gen_seq_next(gen_seq *g, const float *logits, kinfer_token *token, textbuf *out);

/* End of generation: emits what the detokenizer and the stop matcher still
 * hold (nothing after a stop string). */
void gen_seq_finish(gen_seq *g, textbuf *out);

#endif
