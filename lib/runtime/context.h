/*
 * context.h — the context handle's insides (internal): a model, its KV
 * cache, a backend, the forward pass's buffers and the logits of the last
 * decode.
 */
#ifndef KINFER_CONTEXT_H
#define KINFER_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/status.h"
#include "forward/forward.h"
#include "kinfer.h"
#include "kvcache/kvcache.h"
#include "model/model.h"
#include "runtime/embed.h"
#include "runtime/plan.h"

struct kinfer_context {
    const kinfer_model *model;
    kinfer_context_params params;
    context_sizes sz;
    kv_cache kv;
    backend *be;
    forward fwd;

    /* logits of the last decode: n_out rows of n_vocab */
    float *logits;
    size_t logits_cap;               /* rows allocated */
    int32_t *logit_row;              /* (n_tokens of the last batch) row or -1 */
    int32_t n_batch_tokens;          /* tokens in the last decoded batch */
    size_t logit_row_cap;

    /* embeddings of the last decode (params.embeddings): every token's, then
     * each sequence's pooled one */
    float *embd;                     /* (n_tokens, n_embd) */
    size_t embd_cap;                 /* rows allocated */
    embd_pooled embd_seq;            /* n_seq_max rows, allocated with the context */

    uint32_t *cells_taken;           /* (n_ctx) cells written by the current decode */
    int32_t *seq_last;               /* (n_seq_max) last position per sequence (validation) */
    char errmsg[512];
};

/* Record a failure message on the context and return status. printf-style. */
#define ctx_fail(ctx, status, ...) \
    status_fail((ctx)->errmsg, sizeof (ctx)->errmsg, (status), __VA_ARGS__)

#endif /* KINFER_CONTEXT_H */
