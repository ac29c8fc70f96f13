/*
 * arch.h — the architectures kinfer runs, as data (internal).
 *
 * One forward pass serves every family; a row of the table in arch.c says
 * what differs.  Tensor names are llama.cpp's GGUF names, shared by all
 * families; the flags say which of them a family has.
 */
#ifndef KINFER_ARCH_H
#define KINFER_ARCH_H

#include <stdint.h>

#include "kinfer.h"

typedef enum arch_act {
    ARCH_ACT_SILU = 0, /* out = silu(gate) * up   (Llama, Qwen2) */
    ARCH_ACT_GELU = 1  /* out = gelu_tanh(gate) * up   (Gemma) */
} arch_act;

typedef enum arch_moe {
    ARCH_MOE_NONE = 0,   /* dense feed-forward only */
    ARCH_MOE_FILE = 1,   /* experts when <arch>.expert_count > 0 (llama: Mixtral) */
    ARCH_MOE_ALWAYS = 2  /* every layer is a mixture of experts (qwen3moe) */
} arch_moe;

typedef struct arch_desc {
    const char *name;       /* general.architecture, also the metadata key prefix */
    int rope_neox;          /* RoPE rotates pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    arch_act act;           /* feed-forward gate activation */
    int attn_qkv_bias;      /* q/k/v projections have biases (Qwen2) */
    int attn_qk_norm;       /* RMSNorm over each head of q and k before RoPE (Qwen3, Gemma 3) */
    int post_norms;         /* RMSNorm on the attention and FFN outputs before the
                             * residual add (Gemma 2/3) */
    int embd_scale_sqrt;    /* embeddings are multiplied by sqrt(n_embd) (Gemma) */
    int rope_freqs;         /* may carry a rope_freqs tensor (Llama 3.1 frequency factors) */
    int rope_long_short;    /* may carry LongRoPE's rope_factors_long/short tensors (Phi-3) */
    int fused_proj;         /* ARCH_FUSED_QKV: q/k/v in one attn_qkv tensor;
                             * ARCH_FUSED_GATE_UP: gate/up in one ffn_up of 2 * n_ff
                             * rows, gate first (Phi-3: both; nomic-bert: qkv) */
    /*
     * Sliding-window attention (Gemma 3): when the file has
     * <arch>.attention.sliding_window, layer il is local (sees only the last
     * n_swa positions) unless il % swa_pattern == swa_pattern - 1, which is
     * global.  Local layers use RoPE base swa_rope_base (or
     * <arch>.rope.freq_base_swa when present) and no position scaling.
     */
    int swa_pattern;        /* 0: no sliding window */
    float swa_rope_base;
    /*
     * Gemma 3 scales q by 1/sqrt(head_dim), except the 62-layer 27B, whose
     * query_pre_attn_scalar is n_embd / n_head (as llama.cpp).  Everyone else:
     * 1/sqrt(head_dim).
     */
    int attn_scale_27b_rule;
    /* the scale multiplies q itself after RoPE, not q.k (Gemma, as llama.cpp
     * does it): the same value, but q rounds to F16 differently */
    int attn_scale_on_q;
    /*
     * Mixture of experts (arch_moe): a router (softmax over the experts,
     * the top <arch>.expert_used_count), the chosen experts' gated FFNs and
     * their sum weighted by router probability, renormalised to sum 1 where
     * moe_norm_weights (llama.cpp's norm_w).  moe_ff_key: the experts' width
     * is <arch>.expert_feed_forward_length (default feed_forward_length /
     * expert_used_count, as llama.cpp); otherwise feed_forward_length.
     */
    int moe;
    int moe_norm_weights;
    int moe_ff_key;
    /*
     * Encoder (BERT family): attention over the whole sequence, not only
     * the positions before; embeddings only (no output head, no KV cache:
     * each decode is on its own, as in llama.cpp).  Token embeddings plus
     * token type 0 (plus absolute positions where pos_embd) go through a
     * LayerNorm; each layer is post-norm: x = LN(x + attn(x)),
     * x = LN(x + ffn(x)), LayerNorms with biases, eps from
     * <arch>.attention.layer_norm_epsilon.  bert_biases: the attention
     * output and the FFN's up and down projections have biases (BERT);
     * ffn_ungated: the FFN is down(act(up x)) (BERT's GELU) rather than
     * gated.
     */
    int encoder;
    int pos_embd;
    int bert_biases;
    int ffn_ungated;
} arch_desc;

enum { ARCH_FUSED_QKV = 1, ARCH_FUSED_GATE_UP = 2 };

/* The row for general.architecture, or NULL when kinfer cannot run it. */
const arch_desc *arch_find(const char *name);

/* Comma-separated names of every supported architecture (static storage). */
const char *arch_supported_list(void);

/* Tensor names (printf formats taking the layer number where per layer). */
#define ARCH_T_TOKEN_EMBD "token_embd.weight"
#define ARCH_T_OUTPUT_NORM "output_norm.weight"
#define ARCH_T_OUTPUT "output.weight"
#define ARCH_T_ROPE_FREQS "rope_freqs.weight"
#define ARCH_T_ROPE_LONG "rope_factors_long.weight"
#define ARCH_T_ROPE_SHORT "rope_factors_short.weight"
#define ARCH_T_ATTN_QKV "blk.%d.attn_qkv.weight"
#define ARCH_T_ATTN_NORM "blk.%d.attn_norm.weight"
#define ARCH_T_ATTN_Q "blk.%d.attn_q.weight"
#define ARCH_T_ATTN_K "blk.%d.attn_k.weight"
#define ARCH_T_ATTN_V "blk.%d.attn_v.weight"
#define ARCH_T_ATTN_Q_BIAS "blk.%d.attn_q.bias"
#define ARCH_T_ATTN_K_BIAS "blk.%d.attn_k.bias"
#define ARCH_T_ATTN_V_BIAS "blk.%d.attn_v.bias"
#define ARCH_T_ATTN_Q_NORM "blk.%d.attn_q_norm.weight"
#define ARCH_T_ATTN_K_NORM "blk.%d.attn_k_norm.weight"
#define ARCH_T_ATTN_OUT "blk.%d.attn_output.weight"
#define ARCH_T_ATTN_POST_NORM "blk.%d.post_attention_norm.weight"
#define ARCH_T_FFN_NORM "blk.%d.ffn_norm.weight"
#define ARCH_T_FFN_GATE "blk.%d.ffn_gate.weight"
#define ARCH_T_FFN_UP "blk.%d.ffn_up.weight"
#define ARCH_T_FFN_DOWN "blk.%d.ffn_down.weight"
#define ARCH_T_FFN_POST_NORM "blk.%d.post_ffw_norm.weight"
#define ARCH_T_FFN_GATE_INP "blk.%d.ffn_gate_inp.weight"
#define ARCH_T_FFN_GATE_EXPS "blk.%d.ffn_gate_exps.weight"
#define ARCH_T_FFN_UP_EXPS "blk.%d.ffn_up_exps.weight"
#define ARCH_T_FFN_DOWN_EXPS "blk.%d.ffn_down_exps.weight"
/* encoders (BERT family) */
#define ARCH_T_TOKEN_TYPES "token_types.weight"
#define ARCH_T_POS_EMBD "position_embd.weight"
#define ARCH_T_TOKEN_EMBD_NORM "token_embd_norm.weight"
#define ARCH_T_TOKEN_EMBD_NORM_B "token_embd_norm.bias"
#define ARCH_T_ATTN_OUT_BIAS "blk.%d.attn_output.bias"
#define ARCH_T_ATTN_OUT_NORM "blk.%d.attn_output_norm.weight"
#define ARCH_T_ATTN_OUT_NORM_B "blk.%d.attn_output_norm.bias"
#define ARCH_T_FFN_UP_BIAS "blk.%d.ffn_up.bias"
#define ARCH_T_FFN_DOWN_BIAS "blk.%d.ffn_down.bias"
#define ARCH_T_LAYER_OUT_NORM "blk.%d.layer_output_norm.weight"
#define ARCH_T_LAYER_OUT_NORM_B "blk.%d.layer_output_norm.bias"
#define ARCH_T_CLS "cls.weight"              /* a reranker's head: dense, tanh ... */
#define ARCH_T_CLS_B "cls.bias"
#define ARCH_T_CLS_OUT "cls.output.weight"   /* ... then the scores */
#define ARCH_T_CLS_OUT_B "cls.output.bias"

/* Metadata key suffixes, after "<arch>." */
#define ARCH_K_CONTEXT_LENGTH "context_length"
#define ARCH_K_EMBEDDING_LENGTH "embedding_length"
#define ARCH_K_BLOCK_COUNT "block_count"
#define ARCH_K_FEED_FORWARD_LENGTH "feed_forward_length"
#define ARCH_K_HEAD_COUNT "attention.head_count"
#define ARCH_K_HEAD_COUNT_KV "attention.head_count_kv"
#define ARCH_K_KEY_LENGTH "attention.key_length"
#define ARCH_K_VALUE_LENGTH "attention.value_length"
#define ARCH_K_RMS_EPS "attention.layer_norm_rms_epsilon"
#define ARCH_K_LN_EPS "attention.layer_norm_epsilon"
#define ARCH_K_SLIDING_WINDOW "attention.sliding_window"
#define ARCH_K_SLIDING_WINDOW_PATTERN "attention.sliding_window_pattern"
#define ARCH_K_ROPE_DIMS "rope.dimension_count"
#define ARCH_K_ROPE_FREQ_BASE "rope.freq_base"
#define ARCH_K_ROPE_FREQ_BASE_SWA "rope.freq_base_swa"
#define ARCH_K_ROPE_SCALING_TYPE "rope.scaling.type"
#define ARCH_K_ROPE_SCALING_FACTOR "rope.scaling.factor"
#define ARCH_K_ROPE_SCALE_LINEAR "rope.scale_linear" /* older files */
#define ARCH_K_ROPE_SCALING_ATTN_FACTOR "rope.scaling.attn_factor"
#define ARCH_K_ROPE_SCALING_ORIG_CTX "rope.scaling.original_context_length"
#define ARCH_K_FINAL_LOGIT_SOFTCAP "final_logit_softcapping"
#define ARCH_K_EXPERT_COUNT "expert_count"
#define ARCH_K_EXPERT_USED_COUNT "expert_used_count"
#define ARCH_K_EXPERT_FF_LENGTH "expert_feed_forward_length"
#define ARCH_K_POOLING_TYPE "pooling_type"

/* The most experts a layer may have (llama.cpp's LLAMA_MAX_EXPERTS). */
#define ARCH_MAX_EXPERTS 1024

#endif /* KINFER_ARCH_H */
