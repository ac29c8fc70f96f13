/*
 * weights.h — a loaded model's hyperparameters and per-layer weights, bound
 * by architecture (internal).  Weights point into the GGUF image: never
 * copied.
 */
#ifndef KINFER_WEIGHTS_H
#define KINFER_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"
#include "model/arch.h"
#include "rope.h"

/* A weight vector (ne1 = ne2 = 1), matrix (ne1 rows of ne0 elements) or
 * stack of ne2 expert matrices, in place. */
typedef struct wtensor {
    const void *data;   /* NULL: the model has no such tensor */
    int type;           /* kinfer_type */
    int64_t ne0, ne1;   /* ne0 innermost (a row), ne1 rows */
    int64_t ne2;        /* matrices (experts of a 3-D tensor); 1 otherwise */
    size_t row_size;    /* bytes of one row */
} wtensor;

static inline uint64_t wtensor_bytes(const wtensor *t)
{
    return t->data ? (uint64_t)t->row_size * (uint64_t)t->ne1 * (uint64_t)t->ne2 : 0;
}

typedef struct layer_weights {
    wtensor attn_norm;       /* (n_embd) f32 */
    wtensor wq;              /* (n_head * head_dim_k rows, n_embd) */
    wtensor wk;              /* (n_head_kv * head_dim_k, n_embd) */
    wtensor wv;              /* (n_head_kv * head_dim_v, n_embd) */
    wtensor bq, bk, bv;      /* biases, f32 (Qwen2) or absent */
    wtensor q_norm, k_norm;  /* (head_dim_k) f32 (Gemma 3) or absent */
    wtensor wo;              /* (n_embd, n_head * head_dim_v) */
    wtensor attn_post_norm;  /* (n_embd) f32 (Gemma 3) or absent */
    wtensor ffn_norm;        /* (n_embd) f32 */
    wtensor ffn_gate;        /* (n_ff, n_embd) */
    wtensor ffn_up;          /* (n_ff, n_embd) */
    wtensor ffn_down;        /* (n_embd, n_ff) */
    wtensor ffn_post_norm;   /* (n_embd) f32 (Gemma 3) or absent */
    /* a mixture-of-experts layer has these instead of ffn_gate/up/down */
    wtensor ffn_gate_inp;    /* (n_expert, n_embd) f32 router */
    wtensor ffn_gate_exps;   /* (n_expert, n_ff_exp, n_embd) */
    wtensor ffn_up_exps;     /* (n_expert, n_ff_exp, n_embd) */
    wtensor ffn_down_exps;   /* (n_expert, n_embd, n_ff_exp) */
    /* encoders (BERT family): post-norm LayerNorms with biases, output biases */
    wtensor bo;              /* (n_embd) f32 attention output bias (BERT) or absent */
    wtensor attn_out_norm, attn_out_norm_b;   /* (n_embd) f32, after attention + residual */
    wtensor ffn_up_b;        /* (n_ff) f32 (BERT) or absent */
    wtensor ffn_down_b;      /* (n_embd) f32 (BERT) or absent */
    wtensor layer_out_norm, layer_out_norm_b; /* (n_embd) f32, after FFN + residual */
    /* (add a tensor here and a row to layer_tensors, weights.c) */
    int is_swa;              /* sliding-window (local) layer */
    float rope_base;         /* RoPE theta base of this layer */
    float rope_scale;        /* linear position scale of this layer (1 = none) */
} layer_weights;

typedef struct model_hparams {
    int32_t n_layer;
    int32_t n_embd;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim_k;      /* key_length, default n_embd / n_head */
    int32_t head_dim_v;      /* value_length, default n_embd / n_head */
    int32_t n_ff;
    int32_t n_vocab;         /* rows of the output matrix */
    int32_t n_ctx_train;
    int32_t n_rot;           /* leading dims of a head that RoPE rotates */
    int32_t n_swa;           /* sliding window in positions; 0 = none */
    float rms_eps;           /* RMSNorm's eps; an encoder's LayerNorm eps */
    float rope_base;         /* global layers */
    float rope_scale;        /* freq_scale: 1 / rope.scaling.factor (linear, YaRN, LongRoPE) */
    float attn_scale;        /* multiplies q.k */
    int attn_scale_on_q;     /* ... by multiplying q (arch_desc.attn_scale_on_q) */
    float embd_scale;        /* multiplies the token embeddings (1 = none) */
    float logit_softcap;     /* 0 = none; else logits = c * tanh(logits / c) */
    float rope_ext_factor;   /* YaRN's extrapolation mix: 1 for "yarn", else 0 */
    float rope_attn_factor;  /* multiplies RoPE's cos and sin (YaRN, LongRoPE's attn_factor) */
    int32_t n_ctx_orig;      /* rope.scaling.original_context_length (default n_ctx_train):
                              * YaRN's correction dims, LongRoPE's long/short choice */
    int32_t n_expert;        /* experts per layer; 0 = dense FFN */
    int32_t n_expert_used;   /* experts each token goes through (1 .. n_expert) */
    int32_t n_ff_exp;        /* an expert's FFN width */
    int32_t pooling_type;    /* <arch>.pooling_type: a kinfer_pooling, UNSPECIFIED when absent */
} model_hparams;

typedef struct model_weights {
    const arch_desc *arch;   /* NULL: kinfer cannot run this model */
    char unsupported[256];   /* why arch is NULL (for kinfer_context_new) */
    model_hparams hp;
    wtensor tok_embd;        /* (n_vocab, n_embd) */
    wtensor output_norm;     /* (n_embd) f32 */
    wtensor output;          /* (n_vocab, n_embd); token_embd when tied */
    wtensor rope_freqs;      /* (n_rot / 2) f32 frequency divisors, or absent */
    wtensor rope_long;       /* (n_rot / 2) f32 LongRoPE divisors beyond n_ctx_orig (Phi-3), or absent */
    wtensor rope_short;      /* (n_rot / 2) f32 LongRoPE divisors within n_ctx_orig, or absent */
    /* encoders */
    wtensor type_embd;       /* (n_embd) row 0 of token_types (the type every token has), or absent */
    wtensor pos_embd;        /* (n_ctx_train, n_embd) absolute position embeddings (BERT), or absent */
    wtensor tok_norm, tok_norm_b; /* (n_embd) f32 LayerNorm of the embeddings */
    wtensor cls, cls_b;      /* (n_embd, n_embd), (n_embd) f32: a reranker's dense layer, or absent */
    wtensor cls_out, cls_out_b; /* (n_cls_out, n_embd), (n_cls_out) f32: its scores, or absent */
    layer_weights *layers;   /* n_layer */
    uint64_t tensor_bytes;   /* all tensor data in the file */
    int output_tied;
    uint8_t *bound;          /* (n_tensors) 1: used by the forward pass; only while binding */
} model_weights;

/*
 * The per-layer tensors as one table (weights.c): name, where it sits in
 * layer_weights, its shape in terms of the hyperparameters, and when the
 * architecture has it.  Binding, byte counts and scratch sizing all walk
 * this table, so a new tensor kind is one row.
 */
typedef enum wdim {
    WD_1 = 0,   /* absent dimension */
    WD_EMBD,    /* n_embd */
    WD_FF,      /* n_ff */
    WD_Q,       /* n_head * head_dim_k */
    WD_K,       /* n_head_kv * head_dim_k */
    WD_V,       /* n_head_kv * head_dim_v */
    WD_O,       /* n_head * head_dim_v */
    WD_HEAD_K,  /* head_dim_k */
    WD_FF_EXP,  /* n_ff_exp */
    WD_EXPERT,  /* n_expert */
} wdim;

enum {
    WT_REQUIRED = 1, /* a missing one is an error (when the arch has it) */
    WT_F32 = 2,      /* must be F32 (norm weights, biases) */
    WT_MATRIX = 4,   /* a projection: goes through matmul */
};

typedef enum wcond {
    WC_ALWAYS = 0,
    WC_PRE_NORM,     /* !arch_desc.encoder: RMSNorm before attention and FFN */
    WC_ENCODER,      /* arch_desc.encoder: post-norm LayerNorms */
    WC_BERT_BIAS,    /* arch_desc.bert_biases */
    WC_FFN_GATE,     /* a separate ffn_gate: WC_SPLIT_FFN and a gated FFN */
    WC_QKV_BIAS,     /* arch_desc.attn_qkv_bias */
    WC_QK_NORM,      /* arch_desc.attn_qk_norm */
    WC_POST_NORMS,   /* arch_desc.post_norms */
    WC_SPLIT_PROJ,   /* q/k/v are separate tensors (no ARCH_FUSED_QKV) */
    WC_SPLIT_FFN,    /* a separate ffn_up: no ARCH_FUSED_GATE_UP, no experts */
    WC_DENSE_FFN,    /* the model has no experts */
    WC_MOE,          /* the model has experts (n_expert > 0) */
} wcond;

typedef struct layer_tensor {
    const char *name;        /* printf format taking the layer number */
    size_t offset;           /* of its wtensor in layer_weights */
    uint8_t ne0, ne1, ne2;   /* wdim of each dimension */
    uint8_t flags;           /* WT_* */
    uint8_t cond;            /* wcond */
} layer_tensor;

extern const layer_tensor layer_tensors[];
extern const int n_layer_tensors;

static inline const wtensor *layer_tensor_of(const layer_weights *L, int i)
{
    return (const wtensor *)((const char *)L + layer_tensors[i].offset);
}

/* Bytes of every tensor of a layer. */
uint64_t layer_weight_bytes(const layer_weights *L);

/* RoPE of layer il (its base and scale: sliding-window layers differ) in a
 * context whose sequences hold n_ctx_seq positions (LongRoPE picks its
 * long factors when that exceeds the original context, as llama.cpp). */
kinfer_rope_params model_layer_rope(const model_weights *w, int il, uint32_t n_ctx_seq);

struct gguf_file;

/* Bind the architecture after the GGUF tables are parsed.  An unknown
 * architecture is not an error here (w->arch stays NULL with a reason in
 * w->unsupported); a known one with a missing tensor, a wrong shape or bad
 * metadata is, with a message in err. */
kinfer_status weights_bind(model_weights *w, const struct gguf_file *gf, char *err, size_t err_size);
void weights_unbind(model_weights *w);

#endif /* KINFER_WEIGHTS_H */
