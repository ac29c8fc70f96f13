/*
 * test_arch_load.c — the model loader on each family's metadata and
 * tensors (lib/model/weights.c): a tiny valid file of every family loads
 * and decodes to finite logits, and hostile variants of it (RoPE scaling
 * out of range, factor tensors of the wrong length, a missing fused tensor)
 * fail with a KINFER error that names the key or tensor, never a crash.
 * The numbers of these families are checked against llama.cpp in
 * test_synth_arch.c.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/writer.h"
#include "kinfer.h"
#include "testutil.h"

/* the tiny shape: one layer, 2 query heads of 16 over 1 KV head */
enum { N_EMBD = 32, N_HEAD = 2, N_HEAD_KV = 1, HEAD_DIM = 16, N_FF = 64, N_VOCAB = 8 };
/* qwen3moe's experts: 4 of width 16, 2 per token */
enum { N_EXPERT = 4, N_EXPERT_USED = 2, N_FF_EXP = 16 };

/* One change to the valid file. */
typedef struct edit {
    const char *key;     /* metadata key after "<arch>." to add (NULL: none) */
    char kind;           /* 's' string, 'f' f32, 'u' u32 */
    const char *str;
    float f32;
    uint32_t u32;
    const char *tensor;  /* a tensor to change (NULL: none) ... */
    int64_t ne0;         /* ... to this first dimension (0: leave it out of the file) */
    float value;         /* ... or, when ne0 is its own, fill it with this */
    int f16;             /* ... or write it as F16 */
} edit;

typedef struct tensor_def {
    char name[64];
    int64_t ne[3];
    float value; /* every element (NAN: a small pattern) */
} tensor_def;

static int add_def3(tensor_def *t, int n, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                    float value)
{
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].ne[0] = ne0;
    t[n].ne[1] = ne1;
    t[n].ne[2] = ne2;
    t[n].value = value;
    return n + 1;
}

static int add_def(tensor_def *t, int n, const char *name, int64_t ne0, int64_t ne1, float value)
{
    return add_def3(t, n, name, ne0, ne1, 1, value);
}

static int is_encoder(const char *arch)
{
    return strcmp(arch, "bert") == 0 || strcmp(arch, "nomic-bert") == 0;
}

/* An encoder's (bert: biases, position table; nomic-bert: fused qkv, gated FFN). */
static int encoder_tensors(const char *arch, tensor_def *t)
{
    const int bert = strcmp(arch, "bert") == 0;
    int n = 0;
    n = add_def(t, n, "token_embd.weight", N_EMBD, N_VOCAB, NAN);
    n = add_def(t, n, "token_types.weight", N_EMBD, 2, NAN);
    n = add_def(t, n, "token_embd_norm.weight", N_EMBD, 1, 1.0f);
    n = add_def(t, n, "token_embd_norm.bias", N_EMBD, 1, 0.1f);
    n = add_def(t, n, "blk.0.attn_output.weight", N_EMBD, N_EMBD, NAN);
    n = add_def(t, n, "blk.0.attn_output_norm.weight", N_EMBD, 1, 1.0f);
    n = add_def(t, n, "blk.0.attn_output_norm.bias", N_EMBD, 1, 0.1f);
    n = add_def(t, n, "blk.0.ffn_up.weight", N_EMBD, N_FF, NAN);
    n = add_def(t, n, "blk.0.ffn_down.weight", N_FF, N_EMBD, NAN);
    n = add_def(t, n, "blk.0.layer_output_norm.weight", N_EMBD, 1, 1.0f);
    n = add_def(t, n, "blk.0.layer_output_norm.bias", N_EMBD, 1, 0.1f);
    if (!bert) {
        n = add_def(t, n, "blk.0.attn_qkv.weight", N_EMBD, 3 * N_EMBD, NAN);
        n = add_def(t, n, "blk.0.ffn_gate.weight", N_EMBD, N_FF, NAN);
        return n;
    }
    n = add_def(t, n, "position_embd.weight", N_EMBD, 4096, NAN);
    n = add_def(t, n, "blk.0.attn_q.weight", N_EMBD, N_EMBD, NAN);
    n = add_def(t, n, "blk.0.attn_k.weight", N_EMBD, N_EMBD, NAN);
    n = add_def(t, n, "blk.0.attn_v.weight", N_EMBD, N_EMBD, NAN);
    n = add_def(t, n, "blk.0.attn_q.bias", N_EMBD, 1, 0.1f);
    n = add_def(t, n, "blk.0.attn_k.bias", N_EMBD, 1, 0.1f);
    n = add_def(t, n, "blk.0.attn_v.bias", N_EMBD, 1, 0.1f);
    n = add_def(t, n, "blk.0.attn_output.bias", N_EMBD, 1, 0.1f);
    n = add_def(t, n, "blk.0.ffn_up.bias", N_FF, 1, 0.1f);
    n = add_def(t, n, "blk.0.ffn_down.bias", N_EMBD, 1, 0.1f);
    return n;
}

/* The tensors of arch's tiny model. */
static int tiny_tensors(const char *arch, tensor_def *t)
{
    if (is_encoder(arch)) return encoder_tensors(arch, t);
    const int fused = strcmp(arch, "phi3") == 0, moe = strcmp(arch, "qwen3moe") == 0;
    const int64_t q = N_HEAD * HEAD_DIM, kv = N_HEAD_KV * HEAD_DIM;
    int n = 0;
    n = add_def(t, n, "token_embd.weight", N_EMBD, N_VOCAB, NAN);
    n = add_def(t, n, "output_norm.weight", N_EMBD, 1, 1.0f);
    n = add_def(t, n, "blk.0.attn_norm.weight", N_EMBD, 1, 1.0f);
    n = add_def(t, n, "blk.0.ffn_norm.weight", N_EMBD, 1, 1.0f);
    n = add_def(t, n, "blk.0.attn_output.weight", q, N_EMBD, NAN);
    if (moe) {
        n = add_def(t, n, "blk.0.attn_q.weight", N_EMBD, q, NAN);
        n = add_def(t, n, "blk.0.attn_k.weight", N_EMBD, kv, NAN);
        n = add_def(t, n, "blk.0.attn_v.weight", N_EMBD, kv, NAN);
        n = add_def(t, n, "blk.0.attn_q_norm.weight", HEAD_DIM, 1, 1.0f);
        n = add_def(t, n, "blk.0.attn_k_norm.weight", HEAD_DIM, 1, 1.0f);
        n = add_def(t, n, "blk.0.ffn_gate_inp.weight", N_EMBD, N_EXPERT, NAN);
        n = add_def3(t, n, "blk.0.ffn_gate_exps.weight", N_EMBD, N_FF_EXP, N_EXPERT, NAN);
        n = add_def3(t, n, "blk.0.ffn_up_exps.weight", N_EMBD, N_FF_EXP, N_EXPERT, NAN);
        n = add_def3(t, n, "blk.0.ffn_down_exps.weight", N_FF_EXP, N_EMBD, N_EXPERT, NAN);
        return n;
    }
    n = add_def(t, n, "blk.0.ffn_down.weight", N_FF, N_EMBD, NAN);
    if (fused) {
        n = add_def(t, n, "blk.0.attn_qkv.weight", N_EMBD, q + 2 * kv, NAN);
        n = add_def(t, n, "blk.0.ffn_up.weight", N_EMBD, 2 * N_FF, NAN);
        n = add_def(t, n, "rope_factors_long.weight", HEAD_DIM / 2, 1, 4.0f);
        n = add_def(t, n, "rope_factors_short.weight", HEAD_DIM / 2, 1, 1.0f);
    } else {
        n = add_def(t, n, "blk.0.attn_q.weight", N_EMBD, q, NAN);
        n = add_def(t, n, "blk.0.attn_k.weight", N_EMBD, kv, NAN);
        n = add_def(t, n, "blk.0.attn_v.weight", N_EMBD, kv, NAN);
        n = add_def(t, n, "blk.0.ffn_gate.weight", N_EMBD, N_FF, NAN);
        n = add_def(t, n, "blk.0.ffn_up.weight", N_EMBD, N_FF, NAN);
    }
    if (strcmp(arch, "llama") == 0) n = add_def(t, n, "rope_freqs.weight", HEAD_DIM / 2, 1, 2.0f);
    if (strcmp(arch, "qwen2") == 0) {
        n = add_def(t, n, "blk.0.attn_q.bias", q, 1, 0.1f);
        n = add_def(t, n, "blk.0.attn_k.bias", kv, 1, 0.1f);
        n = add_def(t, n, "blk.0.attn_v.bias", kv, 1, 0.1f);
    }
    if (strcmp(arch, "qwen3") == 0) {
        n = add_def(t, n, "blk.0.attn_q_norm.weight", HEAD_DIM, 1, 1.0f);
        n = add_def(t, n, "blk.0.attn_k_norm.weight", HEAD_DIM, 1, 1.0f);
    }
    return n;
}

/* A tiny model of arch with edit e applied, as GGUF bytes (malloc'd). */
static unsigned char *tiny_model(const char *arch, const edit *e, size_t *size)
{
    gguf_writer *w = gguf_writer_new();
    ck_assert_ptr_nonnull(w);
    char key[128];
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    int bad = gguf_writer_set_str(w, "general.architecture", arch) ||
              gguf_writer_set_u32(w, KEY("context_length"), 4096) ||
              gguf_writer_set_u32(w, KEY("embedding_length"), N_EMBD) ||
              gguf_writer_set_u32(w, KEY("block_count"), 1) ||
              gguf_writer_set_u32(w, KEY("feed_forward_length"), N_FF) ||
              gguf_writer_set_u32(w, KEY("attention.head_count"), N_HEAD) ||
              gguf_writer_set_u32(w, KEY("attention.head_count_kv"), is_encoder(arch) ? N_HEAD : N_HEAD_KV) ||
              gguf_writer_set_f32(w, is_encoder(arch) ? KEY("attention.layer_norm_epsilon")
                                                      : KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    /* qwen3moe's expert keys, unless the edit writes that key */
    static const char *const moe_keys[] = {"expert_count", "expert_used_count", "expert_feed_forward_length"};
    const uint32_t moe_vals[] = {N_EXPERT, N_EXPERT_USED, N_FF_EXP};
    for (int i = 0; i < 3 && strcmp(arch, "qwen3moe") == 0; i++)
        if (!(e && e->key && strcmp(e->key, moe_keys[i]) == 0))
            bad = bad || gguf_writer_set_u32(w, KEY(moe_keys[i]), moe_vals[i]);
    if (e && e->key) {
        KEY(e->key);
        bad = bad || (e->kind == 's'   ? gguf_writer_set_str(w, key, e->str)
                      : e->kind == 'f' ? gguf_writer_set_f32(w, key, e->f32)
                                       : gguf_writer_set_u32(w, key, e->u32));
    }
#undef KEY
    ck_assert(!bad);
    tensor_def t[32];
    const int n = tiny_tensors(arch, t);
    int keep[32], type[32];
    for (int i = 0; i < n; i++) {
        keep[i] = 1;
        type[i] = KINFER_TYPE_F32;
        if (e && e->tensor && strcmp(e->tensor, t[i].name) == 0) {
            if (e->f16) type[i] = KINFER_TYPE_F16;
            else if (e->ne0 == 0) keep[i] = 0;
            else if (e->ne0 == t[i].ne[0]) t[i].value = e->value;
            else t[i].ne[0] = e->ne0;
        }
        if (!keep[i]) continue;
        uint64_t bytes;
        ck_assert_int_eq(gguf_writer_add_tensor(w, t[i].name, type[i],
                                                t[i].ne[2] > 1 ? 3 : t[i].ne[1] > 1 ? 2 : 1, t[i].ne, &bytes),
                         KINFER_OK);
    }
    char *buf = NULL;
    FILE *f = open_memstream(&buf, size);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gguf_writer_write_header(w, f), KINFER_OK);
    for (int i = 0; i < n; i++) {
        if (!keep[i]) continue;
        const int64_t count = t[i].ne[0] * t[i].ne[1] * t[i].ne[2];
        float *data = malloc(sizeof(float) * (size_t)count);
        ck_assert_ptr_nonnull(data);
        for (int64_t j = 0; j < count; j++)
            data[j] = isnan(t[i].value) ? 0.05f * (float)((j * 7 + i) % 11 - 5) : t[i].value;
        /* an F16 tensor: the first half of the bytes (only its type is under test) */
        const uint64_t bytes = (type[i] == KINFER_TYPE_F16 ? 2 : 4) * (uint64_t)count;
        ck_assert_int_eq(gguf_writer_write_tensor_data(w, f, data, bytes), KINFER_OK);
        free(data);
    }
    ck_assert_int_eq(fclose(f), 0);
    gguf_writer_free(w);
    return (unsigned char *)buf;
}

static const char *const archs[] = {"llama", "qwen2", "qwen3", "phi3", "qwen3moe"};
#define N_ARCHS ((int)(sizeof archs / sizeof archs[0]))

/* Every family's tiny file loads and one decode of 4 tokens gives finite
 * logits (ASan: the fused views read inside their tensor). */
START_TEST(test_valid_tiny)
{
    const char *arch = archs[_i];
    size_t size;
    unsigned char *img = tiny_model(arch, NULL, &size);
    kinfer_model *m = NULL;
    kinfer_status st = kinfer_model_load_from_buffer(img, size, NULL, &m);
    ck_assert_msg(st == KINFER_OK, "%s: %s", arch, kinfer_model_errmsg(m));
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    kinfer_context *c = NULL;
    st = kinfer_context_new(m, &cp, &c);
    ck_assert_msg(st == KINFER_OK, "%s: %s", arch, kinfer_context_errmsg(c));
    const kinfer_token tok[4] = {1, 5, 2, 7};
    const kinfer_pos pos[4] = {0, 1, 2, 3};
    const kinfer_seq_id sid[4] = {0, 0, 0, 0};
    const int8_t lg[4] = {1, 1, 1, 1};
    const kinfer_batch b = {.n_tokens = 4, .token = tok, .pos = pos, .seq_id = sid, .logits = lg};
    ck_assert_int_eq(kinfer_decode(c, &b), KINFER_OK);
    for (int t = 0; t < 4; t++) {
        const float *l = kinfer_get_logits(c, t);
        ck_assert_ptr_nonnull(l);
        for (int v = 0; v < N_VOCAB; v++) ck_assert_msg(isfinite(l[v]), "%s: logit %d of %d", arch, v, t);
    }
    kinfer_context_free(c);
    kinfer_model_free(m);
    free(img);
}
END_TEST

typedef struct hostile {
    const char *arch;
    edit e;
    kinfer_status want;
    const char *named; /* the message must contain this */
} hostile;

static const hostile cases[] = {
    /* RoPE scaling metadata */
    {"llama", {.key = "rope.scaling.type", .kind = 's', .str = "dynamic"}, KINFER_E_UNSUPPORTED,
     "llama.rope.scaling.type"},
    {"qwen3", {.key = "rope.scaling.type", .kind = 'u', .u32 = 1}, KINFER_E_FORMAT,
     "qwen3.rope.scaling.type"},
    {"llama", {.key = "rope.scaling.factor", .kind = 'f', .f32 = -4.0f}, KINFER_E_FORMAT,
     "llama.rope.scaling.factor"},
    {"llama", {.key = "rope.scaling.factor", .kind = 'f', .f32 = NAN}, KINFER_E_FORMAT,
     "llama.rope.scaling.factor"},
    {"llama", {.key = "rope.scaling.factor", .kind = 'f', .f32 = INFINITY}, KINFER_E_FORMAT,
     "llama.rope.scaling.factor"},
    {"qwen2", {.key = "rope.scaling.factor", .kind = 'f', .f32 = 1e9f}, KINFER_E_FORMAT,
     "qwen2.rope.scaling.factor"},
    {"qwen2", {.key = "rope.scaling.factor", .kind = 'f', .f32 = 1e-9f}, KINFER_E_FORMAT,
     "qwen2.rope.scaling.factor"},
    {"llama", {.key = "rope.scale_linear", .kind = 'f', .f32 = -1.0f}, KINFER_E_FORMAT,
     "llama.rope.scale_linear"},
    {"qwen2", {.key = "rope.scaling.original_context_length", .kind = 'u', .u32 = 0},
     KINFER_E_FORMAT, "qwen2.rope.scaling.original_context_length"},
    {"phi3", {.key = "rope.scaling.attn_factor", .kind = 'f', .f32 = 0.0f}, KINFER_E_FORMAT,
     "phi3.rope.scaling.attn_factor"},
    {"phi3", {.key = "rope.scaling.attn_factor", .kind = 'f', .f32 = NAN}, KINFER_E_FORMAT,
     "phi3.rope.scaling.attn_factor"},
    {"qwen3", {.key = "rope.freq_base", .kind = 'f', .f32 = 0.0f}, KINFER_E_FORMAT,
     "qwen3.rope.freq_base"},
    /* factor tensors of the wrong length or with a factor that is no divisor */
    {"llama", {.tensor = "rope_freqs.weight", .ne0 = HEAD_DIM}, KINFER_E_FORMAT, "rope_freqs.weight"},
    {"llama", {.tensor = "rope_freqs.weight", .ne0 = HEAD_DIM / 2, .value = 0.0f}, KINFER_E_FORMAT,
     "rope_freqs.weight"},
    {"phi3", {.tensor = "rope_factors_long.weight", .ne0 = 3}, KINFER_E_FORMAT,
     "rope_factors_long.weight"},
    {"phi3", {.tensor = "rope_factors_short.weight", .ne0 = HEAD_DIM / 2, .value = NAN},
     KINFER_E_FORMAT, "rope_factors_short.weight"},
    /* fused tensors: missing, or of unfused shape */
    {"phi3", {.tensor = "blk.0.attn_qkv.weight", .ne0 = 0}, KINFER_E_FORMAT, "blk.0.attn_qkv.weight"},
    {"phi3", {.tensor = "blk.0.ffn_up.weight", .ne0 = 0}, KINFER_E_FORMAT, "blk.0.ffn_up.weight"},
    {"phi3", {.tensor = "blk.0.attn_qkv.weight", .ne0 = 2 * N_EMBD}, KINFER_E_FORMAT,
     "blk.0.attn_qkv.weight"},
    /* the pooling type embeddings default to */
    {"llama", {.key = "pooling_type", .kind = 'u', .u32 = 9}, KINFER_E_FORMAT, "llama.pooling_type"},
    {"qwen2", {.key = "pooling_type", .kind = 's', .str = "mean"}, KINFER_E_FORMAT,
     "qwen2.pooling_type"},
    /* Qwen3's per-head norms */
    {"qwen3", {.tensor = "blk.0.attn_q_norm.weight", .ne0 = 0}, KINFER_E_FORMAT,
     "blk.0.attn_q_norm.weight"},
    /* mixtures of experts: counts out of range, absurd or missing */
    {"qwen3moe", {.key = "expert_count", .kind = 'u', .u32 = 0}, KINFER_E_FORMAT, "qwen3moe.expert_count"},
    {"qwen3moe", {.key = "expert_count", .kind = 'u', .u32 = 100000}, KINFER_E_FORMAT,
     "qwen3moe.expert_count"},
    {"qwen3moe", {.key = "expert_count", .kind = 'u', .u32 = 0xFFFFFFFFu}, KINFER_E_FORMAT,
     "qwen3moe.expert_count"},
    {"qwen3moe", {.key = "expert_used_count", .kind = 'u', .u32 = 0}, KINFER_E_FORMAT,
     "qwen3moe.expert_used_count"},
    {"qwen3moe", {.key = "expert_used_count", .kind = 'u', .u32 = N_EXPERT + 1}, KINFER_E_FORMAT,
     "qwen3moe.expert_used_count"},
    {"qwen3moe", {.key = "expert_used_count", .kind = 'u', .u32 = 0x80000000u}, KINFER_E_FORMAT,
     "qwen3moe.expert_used_count"},
    {"qwen3moe", {.key = "expert_feed_forward_length", .kind = 'u', .u32 = 0}, KINFER_E_FORMAT,
     "qwen3moe.expert_feed_forward_length"},
    {"qwen3moe", {.key = "expert_count", .kind = 's', .str = "four"}, KINFER_E_FORMAT,
     "qwen3moe.expert_count"},
    {"llama", {.key = "expert_count", .kind = 'u', .u32 = 4}, KINFER_E_FORMAT, "llama.expert_used_count"},
    {"llama", {.key = "expert_used_count", .kind = 'u', .u32 = 2}, KINFER_E_FORMAT,
     "llama.expert_used_count"},
    /* the counts do not match the tensors */
    {"qwen3moe", {.key = "expert_count", .kind = 'u', .u32 = 8}, KINFER_E_FORMAT,
     "blk.0.ffn_gate_inp.weight"},
    {"qwen3moe", {.key = "expert_feed_forward_length", .kind = 'u', .u32 = 32}, KINFER_E_FORMAT,
     "blk.0.ffn_gate_exps.weight"},
    /* expert tensors missing or of the wrong shape; the router of wrong shape or type */
    {"qwen3moe", {.tensor = "blk.0.ffn_down_exps.weight", .ne0 = 0}, KINFER_E_FORMAT,
     "blk.0.ffn_down_exps.weight"},
    {"qwen3moe", {.tensor = "blk.0.ffn_gate_inp.weight", .ne0 = 0}, KINFER_E_FORMAT,
     "blk.0.ffn_gate_inp.weight"},
    {"qwen3moe", {.tensor = "blk.0.ffn_up_exps.weight", .ne0 = 2 * N_EMBD}, KINFER_E_FORMAT,
     "blk.0.ffn_up_exps.weight"},
    {"qwen3moe", {.tensor = "blk.0.ffn_down_exps.weight", .ne0 = N_FF_EXP / 2}, KINFER_E_FORMAT,
     "blk.0.ffn_down_exps.weight"},
    {"qwen3moe", {.tensor = "blk.0.ffn_gate_inp.weight", .ne0 = N_EMBD / 2}, KINFER_E_FORMAT,
     "blk.0.ffn_gate_inp.weight"},
    {"qwen3moe", {.tensor = "blk.0.ffn_gate_inp.weight", .ne0 = N_EMBD, .f16 = 1}, KINFER_E_UNSUPPORTED,
     "blk.0.ffn_gate_inp.weight"},
    /* encoders: the embedding norm, position and type tables, post-norms, biases, fused qkv */
    {"bert", {.tensor = "token_embd_norm.bias", .ne0 = 0}, KINFER_E_FORMAT, "token_embd_norm.bias"},
    {"bert", {.tensor = "token_embd_norm.weight", .ne0 = N_EMBD / 2}, KINFER_E_FORMAT,
     "token_embd_norm.weight"},
    {"bert", {.tensor = "position_embd.weight", .ne0 = 0}, KINFER_E_FORMAT, "position_embd.weight"},
    {"bert", {.tensor = "position_embd.weight", .ne0 = N_EMBD / 2}, KINFER_E_FORMAT, "position_embd.weight"},
    {"bert", {.tensor = "token_types.weight", .ne0 = N_EMBD + 1}, KINFER_E_FORMAT, "token_types.weight"},
    {"bert", {.tensor = "token_types.weight", .ne0 = N_EMBD, .f16 = 1}, KINFER_E_UNSUPPORTED,
     "token_types.weight"},
    {"bert", {.tensor = "blk.0.attn_output_norm.bias", .ne0 = 0}, KINFER_E_FORMAT,
     "blk.0.attn_output_norm.bias"},
    {"bert", {.tensor = "blk.0.layer_output_norm.weight", .ne0 = 0}, KINFER_E_FORMAT,
     "blk.0.layer_output_norm.weight"},
    {"bert", {.tensor = "blk.0.ffn_up.bias", .ne0 = N_FF / 2}, KINFER_E_FORMAT, "blk.0.ffn_up.bias"},
    {"bert", {.tensor = "blk.0.attn_output.bias", .ne0 = 0}, KINFER_E_FORMAT, "blk.0.attn_output.bias"},
    {"bert", {.tensor = "blk.0.attn_q.bias", .ne0 = N_EMBD, .f16 = 1}, KINFER_E_UNSUPPORTED,
     "blk.0.attn_q.bias"},
    {"bert", {.key = "pooling_type", .kind = 'u', .u32 = 7}, KINFER_E_FORMAT, "bert.pooling_type"},
    {"nomic-bert", {.tensor = "blk.0.attn_qkv.weight", .ne0 = 0}, KINFER_E_FORMAT, "blk.0.attn_qkv.weight"},
    {"nomic-bert", {.tensor = "blk.0.ffn_gate.weight", .ne0 = 0}, KINFER_E_FORMAT, "blk.0.ffn_gate.weight"},
    {"nomic-bert", {.tensor = "token_embd_norm.weight", .ne0 = 0}, KINFER_E_FORMAT, "token_embd_norm.weight"},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

START_TEST(test_hostile)
{
    const hostile *h = &cases[_i];
    size_t size;
    unsigned char *img = tiny_model(h->arch, &h->e, &size);
    kinfer_model *m = NULL;
    kinfer_status st = kinfer_model_load_from_buffer(img, size, NULL, &m);
    const char *msg = kinfer_model_errmsg(m);
    ck_assert_msg(st == h->want, "case %d (%s): got %s (%s), expected %s", _i, h->arch,
                  kinfer_status_str(st), msg, kinfer_status_str(h->want));
    ck_assert_msg(strstr(msg, h->named) != NULL, "case %d: \"%s\" does not name %s", _i, msg, h->named);
    fprintf(stderr, "%s: %s (%s)\n", h->arch, kinfer_status_str(st), msg);
    kinfer_model_free(m);
    free(img);
}
END_TEST

/* A file's pooling_type (mean) is what a context with embeddings pools by
 * unless asked otherwise; the pooled vector of each sequence is the mean of
 * its tokens' embeddings (pooling none), and last is its last token's. */
START_TEST(test_pooling_default)
{
    const edit e = {.key = "pooling_type", .kind = 'u', .u32 = KINFER_POOLING_MEAN};
    size_t size;
    unsigned char *img = tiny_model("llama", &e, &size);
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load_from_buffer(img, size, NULL, &m), KINFER_OK);
    const int E = kinfer_model_n_embd(m);
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    cp.n_seq_max = 2;
    cp.embeddings = true;
    kinfer_context *pooled = NULL, *tokens = NULL, *last = NULL;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &pooled), KINFER_OK);
    ck_assert_int_eq(kinfer_context_pooling(pooled), KINFER_POOLING_MEAN);
    cp.pooling = KINFER_POOLING_NONE;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &tokens), KINFER_OK);
    cp.pooling = KINFER_POOLING_LAST;
    ck_assert_int_eq(kinfer_context_new(m, &cp, &last), KINFER_OK);
    /* sequence 1's tokens interleaved with sequence 0's */
    const kinfer_token tok[5] = {1, 5, 2, 7, 3};
    const kinfer_pos pos[5] = {0, 0, 1, 1, 2};
    const kinfer_seq_id sid[5] = {0, 1, 0, 1, 0};
    const kinfer_batch b = {.n_tokens = 5, .token = tok, .pos = pos, .seq_id = sid};
    ck_assert_int_eq(kinfer_decode(pooled, &b), KINFER_OK);
    ck_assert_int_eq(kinfer_decode(tokens, &b), KINFER_OK);
    ck_assert_int_eq(kinfer_decode(last, &b), KINFER_OK);
    for (int s = 0; s < 2; s++) {
        const float *mean = kinfer_get_embeddings_seq(pooled, s);
        const float *lastv = kinfer_get_embeddings_seq(last, s);
        ck_assert_ptr_nonnull(mean);
        ck_assert_ptr_nonnull(lastv);
        const int last_tok = s == 0 ? 4 : 3, count = s == 0 ? 3 : 2;
        for (int d = 0; d < E; d++) {
            double sum = 0.0;
            for (int t = 0; t < 5; t++)
                if (sid[t] == s) sum += kinfer_get_embeddings_ith(tokens, t)[d];
            ck_assert_double_eq_tol(mean[d], sum / count, 1e-5);
            ck_assert_float_eq(lastv[d], kinfer_get_embeddings_ith(tokens, last_tok)[d]);
        }
    }
    kinfer_context_free(pooled);
    kinfer_context_free(tokens);
    kinfer_context_free(last);
    kinfer_model_free(m);
    free(img);
}
END_TEST

/* Each encoder's tiny file loads; it refuses a context without embeddings,
 * and with them gives finite pooled vectors (ASan: the views and the
 * self-attention stay inside their buffers). */
START_TEST(test_valid_encoders)
{
    static const char *const enc[] = {"bert", "nomic-bert"};
    for (int i = 0; i < 2; i++) {
        size_t size;
        unsigned char *img = tiny_model(enc[i], NULL, &size);
        kinfer_model *m = NULL;
        ck_assert_msg(kinfer_model_load_from_buffer(img, size, NULL, &m) == KINFER_OK, "%s: %s", enc[i],
                      kinfer_model_errmsg(m));
        kinfer_context_params cp = kinfer_context_default_params();
        cp.n_ctx = 64;
        cp.n_threads = 2;
        cp.n_seq_max = 2;
        kinfer_context *ctx = NULL;
        ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_E_UNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(kinfer_context_errmsg(ctx), "embeddings"));
        kinfer_context_free(ctx);
        cp.embeddings = true;
        cp.pooling = KINFER_POOLING_MEAN;
        ctx = NULL;
        ck_assert_int_eq(kinfer_context_new(m, &cp, &ctx), KINFER_OK);
        const kinfer_token tok[5] = {1, 5, 2, 7, 3};
        const kinfer_pos pos[5] = {0, 0, 1, 1, 2};
        const kinfer_seq_id sid[5] = {0, 1, 0, 1, 0};
        const kinfer_batch b = {.n_tokens = 5, .token = tok, .pos = pos, .seq_id = sid};
        ck_assert_int_eq(kinfer_decode(ctx, &b), KINFER_OK);
        for (int s = 0; s < 2; s++) {
            const float *v = kinfer_get_embeddings_seq(ctx, s);
            ck_assert_ptr_nonnull(v);
            for (int d = 0; d < N_EMBD; d++) ck_assert(isfinite(v[d]));
        }
        kinfer_context_free(ctx);
        kinfer_model_free(m);
        free(img);
    }
}
END_TEST

/* What is valid: llama.cpp's "no factor" (0) with linear scaling, "none"
 * and "longrope" types, YaRN with its keys. */
START_TEST(test_valid_scaling)
{
    static const struct {
        const char *arch;
        edit e;
    } ok[] = {
        {"llama", {.key = "rope.scaling.factor", .kind = 'f', .f32 = 0.0f}},
        {"llama", {.key = "rope.scaling.type", .kind = 's', .str = "none"}},
        {"phi3", {.key = "rope.scaling.type", .kind = 's', .str = "longrope"}},
        {"qwen2", {.key = "rope.scaling.original_context_length", .kind = 'u', .u32 = 1024}},
        {"llama", {.key = "rope.scale_linear", .kind = 'f', .f32 = 4.0f}},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t size;
        unsigned char *img = tiny_model(ok[i].arch, &ok[i].e, &size);
        kinfer_model *m = NULL;
        kinfer_status st = kinfer_model_load_from_buffer(img, size, NULL, &m);
        ck_assert_msg(st == KINFER_OK, "valid case %zu: %s", i, kinfer_model_errmsg(m));
        kinfer_model_free(m);
        free(img);
    }
}
END_TEST

static Suite *arch_load_suite(void)
{
    Suite *s = suite_create("arch_load");
    TCase *tc = tcase_create("load");
    tcase_add_loop_test(tc, test_valid_tiny, 0, N_ARCHS);
    tcase_add_loop_test(tc, test_hostile, 0, N_CASES);
    tcase_add_test(tc, test_valid_scaling);
    tcase_add_test(tc, test_pooling_default);
    tcase_add_test(tc, test_valid_encoders);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(arch_load_suite());
}
