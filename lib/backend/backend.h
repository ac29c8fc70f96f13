/*
 * backend.h — what the forward pass asks of a device (internal).
 *
 * The layer recipe (lib/forward/) is straight-line code over this table of
 * operations; a backend (cpu.c; the CUDA one fills the same table) decides
 * how each runs: which kernels, how many threads, which stream.  Buffers
 * are the backend's memory (host memory for the CPU).  Shapes are written
 * (rows, cols), rows contiguous; n counts tokens.
 *
 * Every operation gives each token's row the same bits whatever the batch
 * size and thread count, so logits do not depend on how a prompt was split.
 */
#ifndef KINFER_BACKEND_H
#define KINFER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"
#include "kvcache/kvcache.h"
#include "model/weights.h"
#include "rope.h"

typedef struct backend backend;

/* A batch split into calls of fewer tokens keeps its bits when every call
 * starts on a multiple of this many tokens and none but the whole batch is
 * shorter: the CPU kernels choose llama.cpp's summation order by token
 * count (tiled from 8) and group tokens by 8 from the start of a call. */
#define BACKEND_TOKEN_GROUP 8

/* Grouped-query attention of n tokens over layer il's cache: query head h
 * reads kv head h / (n_head / n_head_kv). */
typedef struct backend_attn {
    const kv_cache *kv;
    const kv_view *view;     /* the cells this micro-batch may see */
    int il;
    int swa;                 /* a sliding-window layer */
    int32_t n;
    const int32_t *pos;      /* (n) */
    const int32_t *seq;      /* (n) */
    const float *q;          /* (n, n_head * head_dim_k) normed, rotated */
    float *out;              /* (n, n_head * head_dim_v) */
    int n_head;
    float scale;             /* multiplies q . k */
    int32_t n_ubatch;        /* tokens of the micro-batch these n are a slice of (llama.cpp
                              * picks its flash-attention kernel by it); 0: n */
} backend_attn;

/* One layer's mixture-of-experts FFN: per token, the router's n_used most
 * probable experts (softmax over gate_inp's logits), their gated FFNs, and
 * the outputs weighted by the router probabilities (renormalised to sum 1
 * when norm_weights) added in order of decreasing probability, each step
 * as llama.cpp's build_moe_ffn takes it. */
typedef struct backend_moe {
    const wtensor *gate_inp;        /* (n_expert, n_embd) f32 */
    const wtensor *gate_exps;       /* (n_expert, n_ff_exp, n_embd) */
    const wtensor *up_exps;         /* (n_expert, n_ff_exp, n_embd) */
    const wtensor *down_exps;       /* (n_expert, n_embd, n_ff_exp) */
    int n_used;
    int norm_weights;
    arch_act act;
} backend_moe;

/* An encoder's attention (BERT family): each of the n tokens attends to
 * every token of its own sequence in the batch, whatever the positions;
 * keys and values in f32 from this batch (no cache).  Query head h reads
 * kv head h / (n_head / n_head_kv). */
typedef struct backend_self_attn {
    int32_t n;
    const int32_t *seq;      /* (n) */
    const float *q;          /* (n, n_head * head_dim_k) */
    const float *k;          /* (n, n_head_kv * head_dim_k) */
    const float *v;          /* (n, n_head_kv * head_dim_v) */
    float *out;              /* (n, n_head * head_dim_v) */
    int n_head, n_head_kv, head_dim_k, head_dim_v;
    float scale;             /* multiplies q . k */
} backend_self_attn;

typedef struct backend_ops {
    const char *name;
    /* y (n, w->ne1) = x (n, w->ne0) times w transposed */
    kinfer_status (*matmul)(backend *be, const wtensor *w, const float *x, int32_t n, float *y);
    /* y (n, gate->ne1) = act(x gate) * (x up): the gated FFN's two projections */
    kinfer_status (*matmul_gated)(backend *be, const wtensor *gate, const wtensor *up, arch_act act,
                                  const float *x, int32_t n, float *y);
    /* y (n, n_embd) = the mixture-of-experts FFN of x (n, n_embd); y may be
     * x.  NULL: this backend cannot run one */
    kinfer_status (*moe_ffn)(backend *be, const backend_moe *m, const float *x, int32_t n, float *y);
    /* out (n, table->ne0) = rows ids[0..n) of table, as f32 */
    kinfer_status (*get_rows)(backend *be, const wtensor *table, const int32_t *ids, int32_t n,
                              float *out);
    /* out (n_rows, dim) = rmsnorm of each row of x times w (out may be x) */
    void (*rmsnorm)(backend *be, float *out, const float *x, const wtensor *w, int64_t n_rows,
                    int64_t dim, float eps);
    /* x (n_rows, b->ne0) += b per row */
    void (*add_bias)(backend *be, float *x, const wtensor *b, int64_t n_rows);
    /* x += y, n elements */
    void (*add)(backend *be, float *x, const float *y, int64_t n);
    /* x *= s */
    void (*scale)(backend *be, float *x, float s, int64_t n);
    /* rotate x (n, n_heads, head_dim) in place, token t at pos[t] */
    void (*rope)(backend *be, float *x, int32_t n, int n_heads, int head_dim, const int32_t *pos,
                 const kinfer_rope_params *p);
    /* keys k (n, n_head_kv * head_dim_k) and values v into cells[0..n) of layer il */
    void (*kv_store)(backend *be, kv_cache *kv, int il, const uint32_t *cells, int32_t n,
                     const float *k, const float *v);
    void (*attention)(backend *be, const backend_attn *a);
    /* logits (n, w->ne1), in HOST memory = x (n, w->ne0) times w transposed,
     * then cap * tanh(logits / cap) when cap > 0: the one copy back of a step */
    kinfer_status (*logits)(backend *be, const wtensor *w, const float *x, int32_t n, float cap,
                            float *logits);
    /* A slice's host arrays (n tokens' positions, sequences and cache cells;
     * kv's cell table as the slice sees it), before its first op: later ops
     * get these same pointers, so a device backend copies them over once. */
    kinfer_status (*begin)(backend *be, const kv_cache *kv, int32_t n, const int32_t *pos,
                           const int32_t *seq, const uint32_t *cells);
    /* Zeroed memory of the backend for activations (*out NULL on failure);
     * dealloc accepts NULL. */
    kinfer_status (*alloc)(backend *be, size_t bytes, void **out);
    void (*dealloc)(backend *be, void *p);
    /* Encoders (NULL where a backend runs none): out (n_rows, dim) = the
     * LayerNorm of each row of x times w plus b (out may be x); x = gelu(x)
     * over n elements; attention of a batch over itself */
    void (*layernorm)(backend *be, float *out, const float *x, const wtensor *w, const wtensor *b,
                      int64_t n_rows, int64_t dim, float eps);
    void (*gelu)(backend *be, float *x, int64_t n);
    kinfer_status (*self_attention)(backend *be, const backend_self_attn *a);
    /* wait for the work queued so far */
    kinfer_status (*sync)(backend *be);
    void (*free)(backend *be);
} backend_ops;

struct backend {
    const backend_ops *ops;
    char errmsg[256];       /* why the last failing operation failed */
};

static inline void backend_free(backend *be)
{
    if (be) be->ops->free(be);
}

#endif /* KINFER_BACKEND_H */
