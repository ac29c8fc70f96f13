/*
 * arch.c — the table of supported architectures.
 *
 * Facts checked against llama.cpp (src/models/NAME.cpp, llama-model.cpp,
 * conversion/gemma.py):
 *  - llama: Llama 2/3/3.1/3.2, CodeLlama (base 1e6, 16k context: plain
 *    metadata), TinyLlama, SmolLM2, DeepSeek-Coder (linear scaling, factor
 *    4), and Mistral 7B, whose GGUF files say "llama" (llama.cpp has no
 *    "mistral" architecture; it ignores Mistral v0.1's sliding window too).
 *    Normal RoPE, SiLU gate, optional rope_freqs (Llama 3.1 frequency
 *    factors).  Mixtral is a llama file with experts (expert_count,
 *    ffn_gate_inp and 3-D ffn_*_exps; the per-expert split names are no
 *    longer loaded by llama.cpp, nor here): softmax router, top-k weights
 *    renormalised.
 *  - qwen2: NeoX RoPE, biases on q/k/v.
 *  - qwen3: NeoX RoPE, RMSNorm over each head of q and k, no biases.
 *  - phi3: NeoX RoPE, fused attn_qkv and gate-up ffn_up (2 * n_ff rows, gate
 *    first), q scaled by 1/sqrt(head_dim) before attention, LongRoPE factors
 *    (rope_factors_long beyond rope.scaling.original_context_length, else
 *    rope_factors_short, with rope.scaling.attn_factor); its sliding window
 *    is ignored, as llama.cpp does.
 *  RoPE scaling of every family (weights.c, read_rope_scaling): none,
 *  linear, yarn (ext_factor, mscale and the correction dims as llama.cpp
 *  computes them), longrope.
 *  - gemma3: NeoX RoPE, GELU(tanh) gate, QK-norm, post-attention and post-FFN
 *    norms, embeddings times sqrt(n_embd), sliding window on 5 of every 6
 *    layers with RoPE base 10000 on those.  The converter already adds 1 to
 *    every Gemma 3 norm weight, so norms here are plain RMSNorm * w.
 *  - qwen3moe: NeoX RoPE, QK-norm, every layer a mixture of experts of
 *    expert_feed_forward_length, softmax router, top-k weights renormalised
 *    (src/models/qwen3moe.cpp: build_moe_ffn with norm_w).
 *  - bert (src/models/bert.cpp): an encoder; token + type-0 + absolute
 *    position embeddings, LayerNorm; per layer q/k/v/o with biases,
 *    post-attention LayerNorm, up -> GELU -> down with biases, post-FFN
 *    LayerNorm.  Pooling from bert.pooling_type.
 *  - nomic-bert (the same graph): fused attn_qkv, NeoX RoPE, no position
 *    embeddings, no biases, SiLU-gated FFN (gate and up), post-norm.
 */
#include "model/arch.h"

#include <string.h>

static const arch_desc arch_table[] = {
    {
        .name = "llama",
        .rope_neox = 0,
        .act = ARCH_ACT_SILU,
        .rope_freqs = 1,
        .moe = ARCH_MOE_FILE,
        .moe_norm_weights = 1,
    },
    {
        .name = "qwen2",
        .rope_neox = 1,
        .act = ARCH_ACT_SILU,
        .attn_qkv_bias = 1,
    },
    {
        .name = "qwen3",
        .rope_neox = 1,
        .act = ARCH_ACT_SILU,
        .attn_qk_norm = 1,
    },
    {
        .name = "phi3",
        .rope_neox = 1,
        .act = ARCH_ACT_SILU,
        .rope_long_short = 1,
        .fused_proj = ARCH_FUSED_QKV | ARCH_FUSED_GATE_UP,
        .attn_scale_on_q = 1,
    },
    {
        .name = "gemma3",
        .rope_neox = 1,
        .act = ARCH_ACT_GELU,
        .attn_qk_norm = 1,
        .post_norms = 1,
        .embd_scale_sqrt = 1,
        .swa_pattern = 6,
        .swa_rope_base = 10000.0f,
        .attn_scale_27b_rule = 1,
        .attn_scale_on_q = 1,
    },
    {
        .name = "qwen3moe",
        .rope_neox = 1,
        .act = ARCH_ACT_SILU,
        .attn_qk_norm = 1,
        .moe = ARCH_MOE_ALWAYS,
        .moe_norm_weights = 1,
        .moe_ff_key = 1,
    },
    {
        .name = "bert",
        .act = ARCH_ACT_GELU,
        .attn_qkv_bias = 1,
        .encoder = 1,
        .pos_embd = 1,
        .bert_biases = 1,
        .ffn_ungated = 1,
    },
    {
        .name = "nomic-bert",
        .rope_neox = 1,
        .act = ARCH_ACT_SILU,
        .fused_proj = ARCH_FUSED_QKV,
        .encoder = 1,
    },
};

const arch_desc *arch_find(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (strcmp(arch_table[i].name, name) == 0) return &arch_table[i];
    return NULL;
}

const char *arch_supported_list(void)
{
    return "llama, qwen2, qwen3, phi3, gemma3, qwen3moe, bert, nomic-bert";
}
