/*
 * context.h — the context handle's insides and the forward pass's entry
 * point (internal).
 */
#ifndef KINFER_CONTEXT_H
#define KINFER_CONTEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"
#include "kvcache/kvcache.h"
#include "model/model.h"
#include "runtime/plan.h"

struct kinfer_threadpool;

/* Tokens of a micro-batch the forward pass takes through the layers at
 * once: a micro-batch of more goes through in slices of this many (the
 * same bits: every token's row is computed the same whatever its company).
 * The compute buffers are sized by it.  On the 2-core development machine
 * prompts ran as fast in slices of 256 as of 512 (SmolLM2 +-0.5%, Gemma 3
 * 2% faster: the slice's activations stay in L2), with half the buffers. */
#define FWD_SLICE_TOKENS 256 /* a multiple of KINFER_GEMM_MAX_NT (forward.c) */

/* What a context with given params needs; shared by kinfer_context_new and
 * kinfer_model_estimate so the two always agree. */
typedef struct context_sizes {
    uint32_t n_ctx, n_batch, n_seq_max;
    uint32_t n_slice;          /* min(n_batch, FWD_SLICE_TOKENS) */
    int32_t n_threads;
    int type_k, type_v;
    uint64_t kv_bytes;         /* K and V rows of every layer */
    uint64_t compute_bytes;    /* forward scratch + one row of logits */
    size_t matmul_scratch;     /* bytes kinfer_matmul(_gated) needs at most */
    int ffn_split;             /* some layer's FFN gate and up differ in type */
    size_t att_stride;         /* bytes of one attention scratch slice */
    int32_t att_slices;        /* slices: one per thread, and at least one per
                                * unit of a split decode (forward.c) */
    placement gpu;             /* the layers on the GPU */
    int gpu_simulated;         /* no GPU: planned for params.gpu_budget_bytes */
    uint64_t weights_device_bytes, kv_device_bytes, compute_device_bytes;
} context_sizes;

/* Resolve defaults and check params; err (may be NULL) gets a message. */
kinfer_status context_plan(const kinfer_model *model, const kinfer_context_params *params,
                           context_sizes *out, char *err, size_t err_size);

/* Forward-pass scratch, sized for n_slice tokens (shapes as (rows, cols)). */
typedef struct fwd_buffers {
    float *x;       /* (n_batch, n_embd) residual stream */
    float *xb;      /* (n_batch, n_embd) normed input of a sublayer; sublayer output */
    float *q;       /* (n_batch, n_head * head_dim_k) */
    float *k;       /* (n_batch, n_head_kv * head_dim_k) this batch's keys */
    float *v;       /* (n_batch, n_head_kv * head_dim_v) this batch's values */
    float *att;     /* (n_batch, n_head * head_dim_v) attention output per head */
    float *ffn_h;   /* (n_batch, n_ff) act(gate) * up, in the memory of q, k, v and att */
    float *ffn_u;   /* (n_batch, n_ff) up, only for a model whose gate and up
                     * types differ (else kinfer_matmul_gated needs none): NULL */
    int32_t *att_cell; /* (n_ctx) cells a micro-batch may attend to */
    int32_t *att_pos;  /* (n_ctx) their positions */
    int32_t *dec_rows; /* (2, n_ctx) the rows a lone token sees (forward.c's att_cells) */
    void *att_tmp;  /* (n_threads, att_stride) per-thread attention scratch */
    size_t att_stride;
    void *mm;       /* kinfer_matmul scratch */
    size_t mm_size;
} fwd_buffers;

/* One micro-batch as the forward pass sees it (at most n_batch tokens). */
typedef struct fwd_ubatch {
    int32_t n;
    const kinfer_token *token;   /* (n) */
    const kinfer_pos *pos;       /* (n) */
    const kinfer_seq_id *seq;    /* (n) */
    const uint32_t *cell;        /* (n) KV cell each token is written to */
    const int32_t *out_row;      /* (n) row of logits to fill, or -1 */
} fwd_ubatch;

struct kinfer_context {
    const kinfer_model *model;
    kinfer_context_params params;
    context_sizes sz;
    kv_cache kv;
    fwd_buffers buf;
    struct kinfer_threadpool *pool;  /* NULL: the calling thread does everything */

    /* logits of the last decode: n_out rows of n_vocab */
    float *logits;
    size_t logits_cap;               /* rows allocated */
    int32_t *logit_row;              /* (n_tokens of the last batch) row or -1 */
    int32_t n_batch_tokens;          /* tokens in the last decoded batch */
    size_t logit_row_cap;

    uint32_t *cells_taken;           /* (n_ctx) cells written by the current decode */
    int32_t *seq_last;               /* (n_seq_max) last position per sequence (validation) */
    int32_t *horizon;                /* (2, n_seq_max) sliding-window horizons (kv_swa_assign) */
    uint8_t *cell_mine;              /* (n_ctx) 1: cell taken by the current decode */
    char errmsg[512];
};

kinfer_status ctx_fail(kinfer_context *ctx, kinfer_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Run one micro-batch: fills the KV cells ub->cell and the logits rows
 * ub->out_row.  KINFER_E_ABORTED when the abort callback asked to stop. */
kinfer_status forward_ubatch(kinfer_context *ctx, const fwd_ubatch *ub);

#endif /* KINFER_CONTEXT_H */
