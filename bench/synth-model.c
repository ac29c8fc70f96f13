/*
 * synth-model — write a GGUF model with the shapes and metadata of a real
 * architecture and seeded random weights, in any ftype kinfer can quantize.
 * For benchmarks and GPU tests where the real file is too big to carry:
 * kinfer and llama.cpp both load what it writes.
 *
 *   synth-model -s llama3-8b -f Q4_K_M -o /tmp/llama3-8b-q4km.gguf [--layers N] [--seed S]
 *
 * The *-tiny shapes (a 1024-token vocabulary, 2 layers of width 256) carry
 * each family's distinctive metadata and tensors at a size the tests
 * decode in milliseconds, against llama.cpp's logits on the same file.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/kernels.h"
#include "gguf/writer.h"
#include "quant.h"
#include "model/quantize.h"

typedef struct shape {
    const char *name, *arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx;
    float rope_base, eps;
    int tied;     /* output shares token_embd */
    int swa;      /* gemma3 sliding window (0 = none) */
    int qkv_bias; /* attn_q/k/v have biases (qwen2) */
    const char *tok_pre; /* tokenizer.ggml.pre (NULL: "default") */
    int fim;      /* the vocabulary has DeepSeek-Coder's fill-in-the-middle tokens */
    /* RoPE scaling metadata (NULL: none written) */
    const char *rope_scaling; /* rope.scaling.type */
    float rope_factor;        /* rope.scaling.factor */
    int orig_ctx;             /* rope.scaling.original_context_length (0: not written) */
    int rope_freqs;           /* Llama 3.1's rope_freqs tensor (factor 8, as its converter) */
    int longrope;             /* Phi-3's rope_factors_long/short and attn_factor */
    int head_dim_key;         /* write attention.key/value_length (head_dim != n_embd / n_head) */
    int fused;                /* Phi-3's fused attn_qkv and gate-up ffn_up */
    int qk_norm;              /* attn_q_norm / attn_k_norm (Qwen3) */
    int encoder;              /* ENC_BERT or ENC_NOMIC: an encoder with a WordPiece vocabulary */
    int pooling;              /* <arch>.pooling_type of an encoder */
    int cls_head;             /* a reranker's classification head (cls, cls.output: one score) */
    int spm;                  /* a SentencePiece vocabulary (Llama 2, Mistral) instead of byte-level BPE */
} shape;

enum { ENC_BERT = 1, ENC_NOMIC = 2 };

static const shape shapes[] = {
    {"llama2-7b", "llama", 32000, 4096, 32, 32, 32, 128, 11008, 4096, 10000.0f, 1e-5f, 0, 0, 0, NULL, .spm = 1},
    /* Mistral 7B v0.2+: Llama 2's vocabulary, GQA 8 (32 / 8 heads), RoPE base 1e6, no sliding window */
    {"mistral-7b", "llama", 32000, 4096, 32, 32, 8, 128, 14336, 32768, 1000000.0f, 1e-5f, 0, 0, 0, NULL,
     .spm = 1},
    {"llama3-8b", "llama", 128256, 4096, 32, 32, 8, 128, 14336, 8192, 500000.0f, 1e-5f, 0, 0, 0, NULL, .fim = 0},
    {"smollm2-135m", "llama", 49152, 576, 30, 9, 3, 64, 1536, 8192, 100000.0f, 1e-5f, 1, 0, 0, NULL, .fim = 0},
    {"gemma3-270m", "gemma3", 262144, 640, 18, 4, 1, 256, 2048, 32768, 1000000.0f, 1e-6f, 1, 512, 0, NULL, .fim = 0},
    {"qwen2.5-0.5b", "qwen2", 151936, 896, 24, 14, 2, 64, 4864, 32768, 1000000.0f, 1e-6f, 1, 0, 1,
     "qwen2", .fim = 0},
    /* Qwen2.5 7B: the padded 152064-token vocabulary, q/k/v biases, untied output */
    {"qwen2.5-7b", "qwen2", 152064, 3584, 28, 28, 4, 128, 18944, 32768, 1000000.0f, 1e-6f, 0, 0, 1,
     "qwen2", .fim = 0},
    /* DeepSeek-Coder 1.3B's shape and FIM tokens (its linear RoPE scaling is not written) */
    {"deepseek-coder-1.3b", "llama", 32256, 2048, 24, 16, 16, 128, 5504, 16384, 100000.0f, 1e-6f, 0, 0, 0,
     NULL, .fim = 1},
    /* the families of issue 19, full size */
    {"qwen3-8b", "qwen3", 151936, 4096, 36, 32, 8, 128, 12288, 40960, 1000000.0f, 1e-6f, 0, 0, 0,
     "qwen2", 0, .qk_norm = 1},
    {"llama31-8b", "llama", 128256, 4096, 32, 32, 8, 128, 14336, 131072, 500000.0f, 1e-5f, 0, 0, 0,
     NULL, 0, .rope_freqs = 1},
    {"phi3-mini", "phi3", 32064, 3072, 32, 32, 32, 96, 8192, 131072, 10000.0f, 1e-5f, 0, 0, 0, NULL, 0,
     .orig_ctx = 4096, .longrope = 1, .fused = 1},
    /* and tiny: 2 layers of width 256 (head_dim 128 on qwen3, as Qwen3 0.6B's 2x) */
    {"qwen3-tiny", "qwen3", 1024, 256, 2, 4, 2, 128, 512, 40960, 1000000.0f, 1e-6f, 1, 0, 0, "qwen2", 0,
     .head_dim_key = 1, .qk_norm = 1},
    {"llama31-tiny", "llama", 1024, 256, 2, 4, 2, 64, 512, 131072, 500000.0f, 1e-5f, 0, 0, 0, NULL, 0,
     .rope_freqs = 1},
    {"deepseek-coder-tiny", "llama", 1024, 256, 2, 4, 4, 64, 512, 16384, 100000.0f, 1e-6f, 0, 0, 0, NULL,
     1, .rope_scaling = "linear", .rope_factor = 4.0f},
    {"qwen2-yarn-tiny", "qwen2", 1024, 256, 2, 4, 2, 64, 512, 131072, 1000000.0f, 1e-6f, 1, 0, 1, "qwen2",
     0, .rope_scaling = "yarn", .rope_factor = 4.0f, .orig_ctx = 32768},
    {"phi3-tiny", "phi3", 1024, 256, 2, 4, 4, 64, 512, 131072, 10000.0f, 1e-5f, 0, 0, 0, NULL, 0,
     .orig_ctx = 4096, .longrope = 1, .fused = 1},
    /* mixtures of experts: Mixtral is a llama file with experts of n_ff */
    {"mixtral-8x7b", "llama", 32000, 4096, 32, 32, 8, 128, 14336, 32768, 1000000.0f, 1e-5f, 0, 0, 0, NULL, .fim = 0},
    {"mixtral-tiny", "llama", 8192, 512, 2, 8, 4, 64, 768, 4096, 1000000.0f, 1e-5f, 0, 0, 0, NULL, .fim = 0},
    {"qwen3-30b-a3b", "qwen3moe", 151936, 2048, 48, 32, 4, 128, 6144, 40960, 1000000.0f, 1e-6f, 0, 0, 0,
     "qwen2", 0, .head_dim_key = 1, .qk_norm = 1},
    {"qwen3moe-tiny", "qwen3moe", 8192, 512, 2, 8, 4, 128, 1536, 4096, 1000000.0f, 1e-6f, 0, 0, 0, "qwen2", 0,
     .head_dim_key = 1, .qk_norm = 1},
    /* encoders (embeddings): bge-small's shape, and tiny ones with the
     * WordPiece vocabulary of wpm_vocab (n_vocab comes from it); pooling 2
     * cls, 1 mean */
    {"bge-small", "bert", 30522, 384, 12, 12, 12, 32, 1536, 512, 10000.0f, 1e-12f, 0, 0, 0, NULL, 0,
     .encoder = ENC_BERT, .pooling = 2},
    {"bert-tiny", "bert", 0, 128, 2, 4, 4, 32, 512, 512, 10000.0f, 1e-12f, 0, 0, 0, NULL, 0,
     .encoder = ENC_BERT, .pooling = 2},
    {"bert-rank-tiny", "bert", 0, 128, 2, 4, 4, 32, 512, 512, 10000.0f, 1e-12f, 0, 0, 0, NULL, 0,
     .encoder = ENC_BERT, .pooling = 4, .cls_head = 1},
    {"nomic-bert-tiny", "nomic-bert", 0, 128, 2, 4, 4, 32, 384, 2048, 1000.0f, 1e-12f, 0, 0, 0, NULL, 0,
     .encoder = ENC_NOMIC, .pooling = 1},
};

/* The shapes whose layers are mixtures of experts (Mixtral's experts are
 * n_ff wide; Qwen3-MoE's expert_feed_forward_length). */
typedef struct moe_spec {
    const char *name;
    int n_expert, n_expert_used, n_ff_exp;
} moe_spec;

static const moe_spec moe_specs[] = {
    {"mixtral-8x7b", 8, 2, 14336},
    {"mixtral-tiny", 8, 2, 768},
    {"qwen3-30b-a3b", 128, 8, 768},
    {"qwen3moe-tiny", 64, 8, 256},
};

static moe_spec moe_of(const char *name)
{
    for (size_t i = 0; i < sizeof moe_specs / sizeof *moe_specs; i++)
        if (!strcmp(moe_specs[i].name, name)) return moe_specs[i];
    return (moe_spec){name, 0, 0, 0};
}

/* ------------------------------------------------------- random numbers */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-scale, scale): weights need only be plausible, not trained. */
static void fill_row(float *row, int64_t n, uint64_t seed, float scale, float offset)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++)
        row[i] = offset + scale * ((float)(splitmix64(&s) >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

/* --------------------------------------------------------------- tensors */

typedef struct tensor_spec {
    char name[96];
    uint32_t n_dims;
    int64_t ne[3];      /* ne[2]: experts of a 3-D tensor */
    int is_norm;
    int is_bias;
    int type;
    const float *values; /* (ne[0]) F32 written as is (RoPE factors), or NULL: random */
} tensor_spec;

static int add3(tensor_spec *t, int n, const char *name, int64_t ne0, int64_t ne1, int64_t ne2)
{
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].n_dims = ne2 ? 3 : ne1 ? 2 : 1;
    t[n].ne[0] = ne0;
    t[n].ne[1] = ne1 ? ne1 : 1;
    t[n].ne[2] = ne2 ? ne2 : 1;
    /* 1-D tensors are norm weights (around 1) or biases (around 0) */
    t[n].is_bias = strstr(name, ".bias") != NULL;
    t[n].is_norm = ne1 == 0 && !t[n].is_bias;
    return n + 1;
}

static int add(tensor_spec *t, int n, const char *name, int64_t ne0, int64_t ne1)
{
    return add3(t, n, name, ne0, ne1, 0);
}

/* A post-norm encoder layer: BERT's (q/k/v/o and up/down with biases,
 * GELU) or nomic-bert's (fused qkv, gated FFN, no biases). */
static int encoder_layer_tensors(const shape *s, int il, tensor_spec *t, int n)
{
    char name[96];
    const int64_t E = s->n_embd, F = s->n_ff;
#define T(suffix, ne0, ne1) (snprintf(name, sizeof name, "blk.%d." suffix, il), n = add(t, n, name, ne0, ne1))
    if (s->encoder == ENC_BERT) {
        T("attn_q.weight", E, E), T("attn_q.bias", E, 0);
        T("attn_k.weight", E, E), T("attn_k.bias", E, 0);
        T("attn_v.weight", E, E), T("attn_v.bias", E, 0);
        T("attn_output.weight", E, E), T("attn_output.bias", E, 0);
        T("ffn_up.weight", E, F), T("ffn_up.bias", F, 0);
        T("ffn_down.weight", F, E), T("ffn_down.bias", E, 0);
    } else {
        T("attn_qkv.weight", E, 3 * E);
        T("attn_output.weight", E, E);
        T("ffn_up.weight", E, F), T("ffn_gate.weight", E, F);
        T("ffn_down.weight", F, E);
    }
    T("attn_output_norm.weight", E, 0), T("attn_output_norm.bias", E, 0);
    T("layer_output_norm.weight", E, 0), T("layer_output_norm.bias", E, 0);
#undef T
    return n;
}

static int layer_tensors(const shape *s, int il, tensor_spec *t, int n)
{
    if (s->encoder) return encoder_layer_tensors(s, il, t, n);
    const moe_spec moe = moe_of(s->name);
    char name[96];
    const int64_t q = (int64_t)s->n_head * s->head_dim, kv = (int64_t)s->n_head_kv * s->head_dim;
#define T(suffix, ne0, ne1) (snprintf(name, sizeof name, "blk.%d." suffix, il), n = add(t, n, name, ne0, ne1))
    T("attn_norm.weight", s->n_embd, 0);
    if (s->fused) {
        T("attn_qkv.weight", s->n_embd, q + 2 * kv);
    } else {
        T("attn_q.weight", s->n_embd, q);
        T("attn_k.weight", s->n_embd, kv);
        T("attn_v.weight", s->n_embd, kv);
    }
    if (s->qkv_bias) {
        T("attn_q.bias", q, 0);
        T("attn_k.bias", kv, 0);
        T("attn_v.bias", kv, 0);
    }
    T("attn_output.weight", q, s->n_embd);
    T("ffn_norm.weight", s->n_embd, 0);
    if (moe.n_expert) {
        const int64_t x = moe.n_expert, f = moe.n_ff_exp;
#define T3(suffix, ne0, ne1) (snprintf(name, sizeof name, "blk.%d." suffix, il), n = add3(t, n, name, ne0, ne1, x))
        T("ffn_gate_inp.weight", s->n_embd, x);
        T3("ffn_gate_exps.weight", s->n_embd, f);
        T3("ffn_up_exps.weight", s->n_embd, f);
        T3("ffn_down_exps.weight", f, s->n_embd);
#undef T3
    } else {
        if (s->fused) {
            T("ffn_up.weight", s->n_embd, 2 * (int64_t)s->n_ff); /* gate rows, then up rows */
        } else {
            T("ffn_gate.weight", s->n_embd, s->n_ff);
            T("ffn_up.weight", s->n_embd, s->n_ff);
        }
        T("ffn_down.weight", s->n_ff, s->n_embd);
    }
    if (s->qk_norm) {
        T("attn_q_norm.weight", s->head_dim, 0);
        T("attn_k_norm.weight", s->head_dim, 0);
    }
    if (!strcmp(s->arch, "gemma3")) {
        T("attn_q_norm.weight", s->head_dim, 0);
        T("attn_k_norm.weight", s->head_dim, 0);
        T("post_attention_norm.weight", s->n_embd, 0);
        T("post_ffw_norm.weight", s->n_embd, 0);
    }
#undef T
    return n;
}

/*
 * Llama 3.1's frequency factors as its converter computes them (factor 8,
 * low/high frequency factors 1 and 4, original context 8192): 1 for short
 * wavelengths, 8 for long ones, smoothly between.
 */
static void llama31_rope_freqs(const shape *s, float *out)
{
    const double factor = 8.0, lo = 1.0, hi = 4.0, old_ctx = 8192.0;
    const double lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
    for (int i = 0; i < s->head_dim / 2; i++) {
        const float freq = 1.0f / powf(s->rope_base, (float)(2 * i) / (float)s->head_dim);
        const double wavelen = 2.0 * M_PI / freq;
        if (wavelen < hi_wavelen) out[i] = 1.0f;
        else if (wavelen > lo_wavelen) out[i] = (float)factor;
        else {
            const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
            out[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
}

/* LongRoPE factors shaped like Phi-3 mini 128k's: long ones rising from 1
 * to about 50 over the pairs, short ones from 1 to 1.5. */
static void phi3_rope_factors(const shape *s, float *lng, float *shrt)
{
    const int n = s->head_dim / 2;
    for (int i = 0; i < n; i++) {
        const double t = (double)i / (double)(n - 1);
        lng[i] = (float)(1.0 + 49.0 * t * t);
        shrt[i] = (float)(1.0 + 0.5 * t);
    }
}

static int by_layer_then_name(const void *a, const void *b)
{
    const tensor_spec *x = a, *y = b;
    int lx = -1, ly = -1;
    sscanf(x->name, "blk.%d.", &lx);
    sscanf(y->name, "blk.%d.", &ly);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->name, y->name);
}

/* ------------------------------------------------------------- tokenizer */

/* A byte-level BPE vocabulary: the 256 byte symbols, tokens merged from
 * them, and control tokens at the end (FIM's three when fim, Phi-3's four
 * for phi3, then BOS and EOS).  Loadable, not meaningful. */
static int write_vocab(gguf_writer *w, int n_vocab, const char *pre, int fim, int phi3)
{
    char **tokens = calloc((size_t)n_vocab, sizeof *tokens);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    int n_merges_max = n_vocab;
    char **merges = calloc((size_t)n_merges_max, sizeof *merges);
    if (!tokens || !types || !merges) return -1;
    /* GPT-2's byte-to-symbol map: printable bytes stand for themselves, the
     * rest map to U+0100 and up. */
    int n = 0, next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        int cp = printable ? b : next++;
        char *s = malloc(4);
        if (cp < 0x80) s[0] = (char)cp, s[1] = 0;
        else s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F)), s[2] = 0;
        tokens[n] = s, types[n++] = 1;
    }
    /* Phi-3's: llama.cpp looks them up when general.name says phi3 */
    static const char *const phi3_tokens[] = {"<unk>", "<s>", "</s>", "<|endoftext|>"};
    const int n_phi3 = phi3 ? 4 : 0;
    int n_merges = 0, n_plain = n_vocab - 2 - (fim ? 3 : 0) - n_phi3;
    for (int i = 0; n < n_plain; i++) {
        /* merge token a with byte symbol b: every pair is new */
        int a = i / 256, b = i % 256;
        size_t la = strlen(tokens[a]), lb = strlen(tokens[b]);
        char *s = malloc(la + lb + 1), *m = malloc(la + lb + 2);
        memcpy(s, tokens[a], la), memcpy(s + la, tokens[b], lb + 1);
        memcpy(m, tokens[a], la), m[la] = ' ', memcpy(m + la + 1, tokens[b], lb + 1);
        tokens[n] = s, types[n++] = 1;
        merges[n_merges++] = m;
    }
    if (fim) {   /* found by their text, as llama.cpp and kinfer both look them up */
        tokens[n] = strdup("<｜fim▁begin｜>"), types[n++] = 3;
        tokens[n] = strdup("<｜fim▁hole｜>"), types[n++] = 3;
        tokens[n] = strdup("<｜fim▁end｜>"), types[n++] = 3;
    }
    for (int i = 0; i < n_phi3; i++) tokens[n] = strdup(phi3_tokens[i]), types[n++] = 3;
    tokens[n] = strdup("<|begin_of_text|>"), types[n++] = 3;
    tokens[n] = strdup("<|end_of_text|>"), types[n++] = 3;
    int st = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2") ||
             gguf_writer_set_str(w, "tokenizer.ggml.pre", pre ? pre : "default") ||
             gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, (uint64_t)n) ||
             gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n) ||
             gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, (uint64_t)n_merges) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)n - 2) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)n - 1);
    for (int i = 0; i < n; i++) free(tokens[i]);
    for (int i = 0; i < n_merges; i++) free(merges[i]);
    free(tokens), free(types), free(merges);
    return st ? -1 : 0;
}

/* A SentencePiece vocabulary laid out as Llama 2's: <unk> 0, <s> 1, </s> 2,
 * the 256 byte-fallback tokens <0x00>..<0xFF>, then pieces ("\u2581" marks a
 * word start) over letters and digits, shortest first, with falling scores
 * (SPM merges by score).  Loadable, not meaningful. */
static int write_spm_vocab(gguf_writer *w, int n_vocab)
{
    static const char alpha[] = "etaoinshrdlucmfwypvbgkqjxzETAOINSHRDLUCMFWYPVBGKQJXZ0123456789";
    const int n_alpha = (int)sizeof alpha - 1;
    char **tokens = calloc((size_t)n_vocab, sizeof *tokens);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    if (!tokens || !scores || !types || n_vocab < 259 + 1) return -1;
    int n = 0;
    tokens[n] = strdup("<unk>"), types[n++] = 2; /* UNKNOWN */
    tokens[n] = strdup("<s>"), types[n++] = 3;   /* CONTROL */
    tokens[n] = strdup("</s>"), types[n++] = 3;
    for (int b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens[n] = strdup(buf), types[n++] = 6; /* BYTE */
    }
    tokens[n] = strdup("\xe2\x96\x81"), scores[n] = -(float)n, types[n++] = 1;
    /* every string of len symbols, as a word start and inside a word */
    for (int len = 1; n < n_vocab && len <= 4; len++) {
        int64_t count = 1;
        for (int i = 0; i < len; i++) count *= n_alpha;
        for (int64_t k = 0; k < count && n < n_vocab; k++) {
            char piece[8];
            int64_t x = k;
            for (int i = len - 1; i >= 0; i--) piece[i] = alpha[x % n_alpha], x /= n_alpha;
            piece[len] = 0;
            char buf[16];
            snprintf(buf, sizeof buf, "\xe2\x96\x81%s", piece);
            tokens[n] = strdup(buf), scores[n] = -(float)n, types[n++] = 1;
            if (n < n_vocab) tokens[n] = strdup(piece), scores[n] = -(float)n, types[n++] = 1;
        }
    }
    int st = n != n_vocab ||
             gguf_writer_set_str(w, "tokenizer.ggml.model", "llama") ||
             gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, (uint64_t)n) ||
             gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)n) ||
             gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    for (int i = 0; i < n; i++) free(tokens[i]);
    free(tokens), free(scores), free(types);
    return st ? -1 : 0;
}

/* A WordPiece vocabulary as llama.cpp's BERT converter writes one:
 * [PAD] 0, [unused*] up to [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103
 * (control tokens, texts as they are), then word-initial pieces as
 * "\u2581w" and continuations ("##w") as "w": ASCII letters, digits and
 * punctuation both ways, some words and suffixes, a few accented-free
 * Latin, Greek and CJK characters.  Returns the count; tokens/types NULL:
 * count only. */
static int wpm_vocab(char **tokens, int32_t *types)
{
    static const char *const words[] = {
        "the", "capital", "of", "france", "is", "paris", "hello", "world", "embed", "text",
        "vectors", "similar", "meaning", "land", "close", "together", "which", "what",
        "retrieval", "before", "generation", "relies", "on", "token", "un", "cafe", "naive",
        "resume", "uber", "strasse", "σ", "λογος", "中", "国", "人", "日", "本", "語", "an",
        "and", "to", "in", "it", "for", "def", "return", "add", "print", "2024", "42", NULL};
    static const char *const suffixes[] = {
        "ding", "dings", "s", "ed", "ing", "izer", "ization", "believ", "able", "ly", "er",
        "est", "ness", "ss", "ος", NULL};
    int n = 0;
#define PUT(text, type) (tokens ? (tokens[n] = strdup(text), types[n] = (type)) : 0, n++)
    PUT("[PAD]", 3);
    char buf[64];
    for (int i = 1; i < 100; i++) snprintf(buf, sizeof buf, "[unused%d]", i - 1), PUT(buf, 3);
    PUT("[UNK]", 3), PUT("[CLS]", 3), PUT("[SEP]", 3), PUT("[MASK]", 3);
    for (int c = 33; c < 127; c++) {
        if (c >= 'A' && c <= 'Z') continue; /* lowercased away */
        snprintf(buf, sizeof buf, "\xe2\x96\x81%c", c), PUT(buf, 1);
        snprintf(buf, sizeof buf, "%c", c), PUT(buf, 1);
    }
    for (int i = 0; words[i]; i++) snprintf(buf, sizeof buf, "\xe2\x96\x81%s", words[i]), PUT(buf, 1);
    for (int i = 0; suffixes[i]; i++) {
        if (strlen(suffixes[i]) == 1) continue; /* single ASCII ones are there */
        PUT(suffixes[i], 1);
    }
#undef PUT
    return n;
}

static int write_wpm_vocab(gguf_writer *w)
{
    const int n = wpm_vocab(NULL, NULL);
    char **tokens = calloc((size_t)n, sizeof *tokens);
    int32_t *types = calloc((size_t)n, sizeof *types);
    if (!tokens || !types) return -1;
    wpm_vocab(tokens, types);
    /* the ids the converter writes; [CLS] is 101 by llama.cpp's default */
    int st = gguf_writer_set_str(w, "tokenizer.ggml.model", "bert") ||
             gguf_writer_set_str(w, "tokenizer.ggml.pre", "default") ||
             gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, (uint64_t)n) ||
             gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", 2) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 100) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 102) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 0) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", 101) ||
             gguf_writer_set_u32(w, "tokenizer.ggml.mask_token_id", 103);
    for (int i = 0; i < n; i++) free(tokens[i]);
    free(tokens), free(types);
    return st ? -1 : 0;
}

/* ---------------------------------------------------------------- main */

typedef struct fill_job {
    const tensor_spec *t;
    uint64_t seed;
    uint8_t *dst;
    int ith, nth;
    kinfer_status st;
} fill_job;

static void *fill_rows(void *arg)
{
    fill_job *j = arg;
    int64_t n_rows = j->t->ne[1] * j->t->ne[2], ncols = j->t->ne[0];
    size_t row_size = kinfer_row_size(j->t->type, ncols);
    float *row = malloc((size_t)ncols * sizeof(float));
    /* biases as large as the projections' outputs (about 0.6 rms), so a
     * forward pass that ignored them would give other logits */
    float scale = j->t->is_norm ? 0.1f : j->t->is_bias ? 1.0f : 1.0f / sqrtf((float)ncols);
    if (j->t->values) { /* fixed values, one row */
        if (j->ith == 0) memcpy(j->dst, j->t->values, (size_t)ncols * sizeof(float));
        free(row);
        return NULL;
    }
    for (int64_t r = j->ith; row && r < n_rows && !j->st; r += j->nth) {
        fill_row(row, ncols, j->seed * 0x100000001b3ull + (uint64_t)r, scale, j->t->is_norm ? 1.0f : 0.0f);
        j->st = kinfer_quantize_row(j->t->type, row, j->dst + (size_t)r * row_size, ncols);
    }
    if (!row) j->st = KINFER_E_NOMEM;
    free(row);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: synth-model -s SHAPE -f FTYPE -o out.gguf [--layers N] [--seed S] [-t threads]\n  SHAPE:");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) fprintf(stderr, " %s", shapes[i].name);
    fprintf(stderr, "\n  FTYPE:");
    for (int i = 0; kinfer_quantize_ftype_name(i); i++) fprintf(stderr, " %s", kinfer_quantize_ftype_name(i));
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    const char *shape_name = NULL, *ftype = NULL, *out_path = NULL;
    int n_layers = -1, n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t seed = 42;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-s")) shape_name = argv[i + 1];
        else if (!strcmp(argv[i], "-f")) ftype = argv[i + 1];
        else if (!strcmp(argv[i], "-o")) out_path = argv[i + 1];
        else if (!strcmp(argv[i], "--layers")) n_layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "-t")) n_threads = atoi(argv[i + 1]);
        else return usage(), 2;
    }
    const shape *sh = NULL;
    for (size_t i = 0; shape_name && i < sizeof shapes / sizeof *shapes; i++)
        if (!strcmp(shapes[i].name, shape_name)) sh = &shapes[i];
    quant_mix mix;
    if (!sh || !out_path || quant_mix_init(&mix, ftype)) return usage(), 2;
    shape s = *sh;
    if (n_layers > 0) s.n_layer = n_layers;
    if (s.encoder && !s.n_vocab) s.n_vocab = wpm_vocab(NULL, NULL);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;

    /* the tensor list, in the order llama.cpp's loader would sort it */
    int cap = 10 + 16 * s.n_layer, n = 0;
    tensor_spec *t = calloc((size_t)cap, sizeof *t);
    n = add(t, n, "token_embd.weight", s.n_embd, s.n_vocab);
    if (s.encoder) {
        n = add(t, n, "token_types.weight", s.n_embd, 2);
        if (s.encoder == ENC_BERT) n = add(t, n, "position_embd.weight", s.n_embd, s.n_ctx);
        n = add(t, n, "token_embd_norm.weight", s.n_embd, 0);
        n = add(t, n, "token_embd_norm.bias", s.n_embd, 0);
        if (s.cls_head) {
            n = add(t, n, "cls.weight", s.n_embd, s.n_embd);
            n = add(t, n, "cls.bias", s.n_embd, 0);
            n = add(t, n, "cls.output.weight", s.n_embd, 1);
            n = add(t, n, "cls.output.bias", 1, 0);
        }
    } else {
        n = add(t, n, "output_norm.weight", s.n_embd, 0);
        if (!s.tied) n = add(t, n, "output.weight", s.n_embd, s.n_vocab);
    }
    float freqs[256], longf[256], shortf[256];
    if (s.head_dim / 2 > 256) return usage(), 2;
    if (s.rope_freqs) {
        llama31_rope_freqs(&s, freqs);
        n = add(t, n, "rope_freqs.weight", s.head_dim / 2, 0);
        t[n - 1].values = freqs;
    }
    if (s.longrope) {
        phi3_rope_factors(&s, longf, shortf);
        n = add(t, n, "rope_factors_long.weight", s.head_dim / 2, 0);
        t[n - 1].values = longf;
        n = add(t, n, "rope_factors_short.weight", s.head_dim / 2, 0);
        t[n - 1].values = shortf;
    }
    for (int il = 0; il < s.n_layer; il++) n = layer_tensors(&s, il, t, n);
    qsort(t, (size_t)n, sizeof *t, by_layer_then_name);
    mix.tied = s.tied;
    mix.n_gqa = s.n_head / s.n_head_kv;
    mix.n_attn_v = mix.n_ffn_down = s.n_layer;
    const moe_spec moe = moe_of(s.name);
    mix.n_expert = moe.n_expert;

    gguf_writer *w = gguf_writer_new();
    const char *a = s.arch;
    char key[128];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, a), key)
    int bad = gguf_writer_set_str(w, "general.architecture", a) ||
              gguf_writer_set_str(w, "general.name", s.name) ||
              gguf_writer_set_u32(w, "general.file_type", quant_mix_file_type(&mix)) ||
              gguf_writer_set_u32(w, "general.quantization_version", 2) ||
              gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)s.n_ctx) ||
              gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)s.n_embd) ||
              gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)s.n_layer) ||
              gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)s.n_ff) ||
              gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)s.n_head) ||
              gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)s.n_head_kv) ||
              gguf_writer_set_f32(w, KEY("rope.freq_base"), s.rope_base) ||
              gguf_writer_set_f32(w, s.encoder ? KEY("attention.layer_norm_epsilon")
                                               : KEY("attention.layer_norm_rms_epsilon"), s.eps) ||
              gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)s.n_vocab);
    if (s.encoder)
        bad = bad || gguf_writer_set_bool(w, KEY("attention.causal"), 0) ||
              gguf_writer_set_u32(w, KEY("pooling_type"), (uint32_t)s.pooling);
    if (moe.n_expert)
        bad = bad || gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)moe.n_expert) ||
              gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)moe.n_expert_used);
    if (!strcmp(a, "qwen3moe"))
        bad = bad || gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)moe.n_ff_exp);
    if (s.rope_scaling)
        bad = bad || gguf_writer_set_str(w, KEY("rope.scaling.type"), s.rope_scaling) ||
              gguf_writer_set_f32(w, KEY("rope.scaling.factor"), s.rope_factor);
    if (s.orig_ctx)
        bad = bad || gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)s.orig_ctx);
    if (s.longrope) { /* Phi-3's converter: sqrt(1 + ln(scale) / ln(original context)) */
        const double scale = (double)s.n_ctx / s.orig_ctx;
        bad = bad || gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"),
                                         (float)sqrt(1.0 + log(scale) / log((double)s.orig_ctx))) ||
              gguf_writer_set_u32(w, KEY("attention.sliding_window"), 262144); /* ignored, as by llama.cpp */
    }
    if (s.head_dim_key)
        bad = bad || gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)s.head_dim) ||
              gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)s.head_dim);
    if (!strcmp(a, "gemma3"))
        bad = bad || gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)s.head_dim) ||
              gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)s.head_dim) ||
              gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)s.swa);
    else
        bad = bad || gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)s.head_dim);
#undef KEY
    bad = bad || (s.encoder ? write_wpm_vocab(w)
                  : s.spm   ? write_spm_vocab(w, s.n_vocab)
                            : write_vocab(w, s.n_vocab, s.tok_pre, s.fim, !strcmp(a, "phi3")));
    uint64_t max_size = 0;
    for (int i = 0; i < n && !bad; i++) {
        t[i].type = quant_mix_type(&mix, t[i].name, t[i].n_dims, t[i].ne, KINFER_TYPE_F32);
        uint64_t size;
        bad = gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne, &size) != KINFER_OK;
        if (size > max_size) max_size = size;
    }
    FILE *f = bad ? NULL : fopen(out_path, "wb");
    uint8_t *buf = malloc(max_size ? max_size : 1);
    if (!f || !buf || gguf_writer_write_header(w, f)) {
        fprintf(stderr, "synth-model: cannot write %s\n", out_path);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        fill_job jobs[64];
        pthread_t th[64];
        for (int k = 0; k < n_threads; k++) {
            jobs[k] = (fill_job){&t[i], seed + (uint64_t)i * 7919, buf, k, n_threads, KINFER_OK};
            if (k) pthread_create(&th[k], NULL, fill_rows, &jobs[k]);
        }
        fill_rows(&jobs[0]);
        for (int k = 1; k < n_threads; k++) pthread_join(th[k], NULL);
        for (int k = 0; k < n_threads; k++)
            if (jobs[k].st) {
                fprintf(stderr, "synth-model: %s: %s\n", t[i].name, kinfer_status_str(jobs[k].st));
                return 1;
            }
        uint64_t size = kinfer_row_size(t[i].type, t[i].ne[0]) * (uint64_t)t[i].ne[1] * (uint64_t)t[i].ne[2];
        if (gguf_writer_write_tensor_data(w, f, buf, size)) {
            fprintf(stderr, "synth-model: write failed\n");
            return 1;
        }
        fprintf(stderr, "\rsynth-model: %d/%d tensors", i + 1, n);
    }
    fprintf(stderr, "\nsynth-model: wrote %s (%s, %d layers, %s)\n", out_path, s.name, s.n_layer, ftype);
    fclose(f);
    free(buf);
    free(t);
    gguf_writer_free(w);
    return 0;
}
