/*
 * forward.h — the transformer forward pass over one micro-batch (internal).
 *
 * The layer recipe, driven by the architecture descriptor (model/arch.h),
 * as straight-line calls on a backend (backend/backend.h).  The caller (a
 * context, runtime/context.c) owns the KV cache and the backend and has
 * already taken the cache cells the tokens go to.
 */
#ifndef KINFER_FORWARD_H
#define KINFER_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "kinfer.h"
#include "kvcache/kvcache.h"
#include "model/weights.h"

/* Tokens of a micro-batch the forward pass takes through the layers at
 * once: a micro-batch of more goes through in slices of this many (the
 * same bits: every token's row is computed the same whatever its company).
 * The activation buffers are sized by it.  On the 2-core development
 * machine prompts ran as fast in slices of 256 as of 512 (SmolLM2 +-0.5%,
 * Gemma 3 2% faster: the slice's activations stay in L2), with half the
 * buffers. */
#define FWD_SLICE_TOKENS 256 /* a multiple of BACKEND_TOKEN_GROUP */

/* Activations, sized for n_slice tokens (shapes as (rows, cols)). */
typedef struct fwd_buffers {
    float *x;       /* (n_slice, n_embd) residual stream */
    float *xb;      /* (n_slice, n_embd) normed input of a sublayer; sublayer output */
    float *q;       /* (n_slice, n_head * head_dim_k) */
    float *k;       /* (n_slice, n_head_kv * head_dim_k) this batch's keys */
    float *v;       /* (n_slice, n_head_kv * head_dim_v) this batch's values */
    float *att;     /* (n_slice, n_head * head_dim_v) attention output per head */
    float *ffn_h;   /* (n_slice, n_ff) act(gate) * up, in the memory of q, k, v and att */
} fwd_buffers;

typedef struct forward {
    const model_weights *w;
    kv_cache *kv;
    backend *be;
    fwd_buffers buf;
    int32_t n_slice;
    kinfer_abort_fn abort_callback;  /* asked before every layer; NULL: none */
    void *abort_user_data;
    char *errmsg;                    /* where failures are written */
    size_t errmsg_size;
} forward;

/* Slice of a micro-batch of n_batch tokens. */
static inline int32_t forward_slice_tokens(uint32_t n_batch)
{
    return n_batch < FWD_SLICE_TOKENS ? (int32_t)n_batch : FWD_SLICE_TOKENS;
}

/* Bytes of the activation buffers for slices of n_slice tokens. */
uint64_t forward_buffer_bytes(const model_hparams *hp, int32_t n_slice);

/* f->w, kv, be, errmsg and the abort fields are the caller's to set;
 * this allocates the buffers.  forward_free accepts a zeroed struct. */
kinfer_status forward_init(forward *f, int32_t n_slice);
void forward_free(forward *f);

/* One micro-batch as the forward pass sees it. */
typedef struct fwd_ubatch {
    int32_t n;
    const kinfer_token *token;   /* (n) */
    const kinfer_pos *pos;       /* (n) */
    const kinfer_seq_id *seq;    /* (n) */
    const uint32_t *cell;        /* (n) KV cell each token is written to */
    const int32_t *out_row;      /* (n) row of logits to fill, or -1; a
                                  * micro-batch's rows are consecutive */
    float *logits;               /* rows of n_vocab */
    int32_t n_ubatch;            /* a slice's: tokens of its micro-batch (0: n) */
    float *embd;                 /* NULL, or rows of n_embd: the out_row tokens' final-normed
                                  * hidden states go here and the LM head is skipped */
} fwd_ubatch;

/* Run one micro-batch: fills the KV cells ub->cell and the logits (or
 * embedding) rows ub->out_row.  KINFER_E_ABORTED when the abort callback asked to stop. */
kinfer_status forward_ubatch(forward *f, const fwd_ubatch *ub);

#endif /* KINFER_FORWARD_H */
