/*
 * weights.c — bind a model's architecture: hyperparameters from metadata,
 * per-layer weight pointers into the GGUF image (one table of the layer
 * tensors), shape checks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "gguf/gguf.h"
#include "model/weights.h"
#include "quant.h"

/* What binding works on: the file's tables in, the weights out, and where
 * a failure's message goes. */
typedef struct binding {
    model_weights *w;
    const gguf_file *gf;
    char *err;
    size_t err_size;
} binding;

#define bind_fail(b, status, ...) status_fail((b)->err, (b)->err_size, (status), __VA_ARGS__)

/* ----------------------------------------------------------- metadata */

static kinfer_status meta_get_int(const binding *b, const char *key, int64_t *out)
{
    const gguf_kv *kv = gguf_get(b->gf, key);
    return kv ? gguf_kv_int(kv, out) : KINFER_E_NOT_FOUND;
}

static kinfer_status meta_get_float(const binding *b, const char *key, double *out)
{
    const gguf_kv *kv = gguf_get(b->gf, key);
    return kv ? gguf_kv_float(kv, out) : KINFER_E_NOT_FOUND;
}

static kinfer_status meta_get_str(const binding *b, const char *key, const char **out)
{
    const gguf_kv *kv = gguf_get(b->gf, key);
    return kv ? gguf_kv_str(kv, out) : KINFER_E_NOT_FOUND;
}

static kinfer_status meta_i32(binding *b, const char *arch, const char *suffix,
                              int required, int32_t def, int32_t *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    kinfer_status st = meta_get_int(b, key, &v);
    if (st == KINFER_E_NOT_FOUND && !required) {
        *out = def;
        return KINFER_OK;
    }
    if (st == KINFER_E_NOT_FOUND)
        return bind_fail(b, KINFER_E_FORMAT, "missing metadata key %s", key);
    if (st)
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s is not an integer", key);
    if (v < 0 || v > INT32_MAX)
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s = %lld is out of range", key,
                          (long long)v);
    *out = (int32_t)v;
    return KINFER_OK;
}

static kinfer_status meta_f32(binding *b, const char *arch, const char *suffix,
                              int required, float def, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    kinfer_status st = meta_get_float(b, key, &v);
    if (st == KINFER_E_NOT_FOUND && !required) {
        *out = def;
        return KINFER_OK;
    }
    if (st == KINFER_E_NOT_FOUND)
        return bind_fail(b, KINFER_E_FORMAT, "missing metadata key %s", key);
    if (st || !isfinite(v))
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s is not a finite number", key);
    *out = (float)v;
    return KINFER_OK;
}

/* ------------------------------------------------------------ tensors */

/*
 * Bind tensor `name` with shape (ne0), (ne0, ne1) or (ne0, ne1, ne2) (a
 * trailing 1 is an absent dimension).  Absent and not required: *out stays
 * zeroed.
 */
static kinfer_status bind3(binding *b, wtensor *out, const char *name, int64_t ne0,
                           int64_t ne1, int64_t ne2, int flags)
{
    memset(out, 0, sizeof *out);
    int64_t i = gguf_find_tensor(b->gf, name);
    char want[64];
    if (ne2 > 1)
        snprintf(want, sizeof want, "[%lld, %lld, %lld]", (long long)ne0, (long long)ne1, (long long)ne2);
    else if (ne1 > 1)
        snprintf(want, sizeof want, "[%lld, %lld]", (long long)ne0, (long long)ne1);
    else
        snprintf(want, sizeof want, "[%lld]", (long long)ne0);
    if (i < 0) {
        if (!(flags & WT_REQUIRED)) return KINFER_OK;
        return bind_fail(b, KINFER_E_FORMAT, "missing tensor %s (expected shape %s)", name,
                          want);
    }
    const gguf_tensor *t = &b->gf->tensors[i];
    const int64_t rows = ne1;
    int ok = t->ne[0] == ne0 && t->ne[1] == rows && t->ne[2] == ne2 && t->ne[3] == 1;
    if (!ok) {
        char got[96];
        snprintf(got, sizeof got, "[%lld, %lld, %lld, %lld]", (long long)t->ne[0],
                 (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
        return bind_fail(b, KINFER_E_FORMAT, "tensor %s has shape %s, expected %s", name, got,
                          want);
    }
    if ((flags & WT_F32) && t->type != KINFER_TYPE_F32)
        return bind_fail(b, KINFER_E_UNSUPPORTED, "tensor %s is %s; kinfer needs F32 here",
                          name, kinfer_type_name((int)t->type));
    size_t rs = kinfer_row_size((int)t->type, ne0);
    if (rs == 0 || (uint64_t)rs * (uint64_t)rows * (uint64_t)ne2 > t->size)
        return bind_fail(b, KINFER_E_UNSUPPORTED, "tensor %s: type %s with rows of %lld", name,
                          kinfer_type_name((int)t->type), (long long)ne0);
    b->w->bound[i] = 1;
    out->data = t->data;
    out->type = (int)t->type;
    out->ne0 = ne0;
    out->ne1 = rows;
    out->ne2 = ne2;
    out->row_size = rs;
    return KINFER_OK;
}

/* A vector (ne1 = 0) or matrix outside the layers. */
static kinfer_status bind(binding *b, wtensor *out, const char *name, int64_t ne0,
                          int64_t ne1, int flags)
{
    return bind3(b, out, name, ne0, ne1 ? ne1 : 1, 1, flags);
}

/* ------------------------------------------------------ the layer table */

#define LT(field, fmt, d0, d1, d2, fl, c) \
    {fmt, offsetof(layer_weights, field), d0, d1, d2, fl, c}

const layer_tensor layer_tensors[] = {
    LT(attn_norm, ARCH_T_ATTN_NORM, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_PRE_NORM),
    LT(wq, ARCH_T_ATTN_Q, WD_EMBD, WD_Q, WD_1, WT_REQUIRED | WT_MATRIX, WC_SPLIT_PROJ),
    LT(wk, ARCH_T_ATTN_K, WD_EMBD, WD_K, WD_1, WT_REQUIRED | WT_MATRIX, WC_SPLIT_PROJ),
    LT(wv, ARCH_T_ATTN_V, WD_EMBD, WD_V, WD_1, WT_REQUIRED | WT_MATRIX, WC_SPLIT_PROJ),
    LT(bq, ARCH_T_ATTN_Q_BIAS, WD_Q, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_QKV_BIAS),
    LT(bk, ARCH_T_ATTN_K_BIAS, WD_K, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_QKV_BIAS),
    LT(bv, ARCH_T_ATTN_V_BIAS, WD_V, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_QKV_BIAS),
    LT(q_norm, ARCH_T_ATTN_Q_NORM, WD_HEAD_K, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_QK_NORM),
    LT(k_norm, ARCH_T_ATTN_K_NORM, WD_HEAD_K, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_QK_NORM),
    LT(wo, ARCH_T_ATTN_OUT, WD_O, WD_EMBD, WD_1, WT_REQUIRED | WT_MATRIX, WC_ALWAYS),
    LT(attn_post_norm, ARCH_T_ATTN_POST_NORM, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_POST_NORMS),
    LT(ffn_norm, ARCH_T_FFN_NORM, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_PRE_NORM),
    LT(ffn_gate, ARCH_T_FFN_GATE, WD_EMBD, WD_FF, WD_1, WT_REQUIRED | WT_MATRIX, WC_FFN_GATE),
    LT(ffn_up, ARCH_T_FFN_UP, WD_EMBD, WD_FF, WD_1, WT_REQUIRED | WT_MATRIX, WC_SPLIT_FFN),
    LT(ffn_down, ARCH_T_FFN_DOWN, WD_FF, WD_EMBD, WD_1, WT_REQUIRED | WT_MATRIX, WC_DENSE_FFN),
    LT(ffn_post_norm, ARCH_T_FFN_POST_NORM, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_POST_NORMS),
    LT(ffn_gate_inp, ARCH_T_FFN_GATE_INP, WD_EMBD, WD_EXPERT, WD_1, WT_REQUIRED | WT_F32, WC_MOE),
    LT(ffn_gate_exps, ARCH_T_FFN_GATE_EXPS, WD_EMBD, WD_FF_EXP, WD_EXPERT, WT_REQUIRED | WT_MATRIX, WC_MOE),
    LT(ffn_up_exps, ARCH_T_FFN_UP_EXPS, WD_EMBD, WD_FF_EXP, WD_EXPERT, WT_REQUIRED | WT_MATRIX, WC_MOE),
    LT(ffn_down_exps, ARCH_T_FFN_DOWN_EXPS, WD_FF_EXP, WD_EMBD, WD_EXPERT, WT_REQUIRED | WT_MATRIX, WC_MOE),
    LT(bo, ARCH_T_ATTN_OUT_BIAS, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_BERT_BIAS),
    LT(attn_out_norm, ARCH_T_ATTN_OUT_NORM, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_ENCODER),
    LT(attn_out_norm_b, ARCH_T_ATTN_OUT_NORM_B, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_ENCODER),
    LT(ffn_up_b, ARCH_T_FFN_UP_BIAS, WD_FF, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_BERT_BIAS),
    LT(ffn_down_b, ARCH_T_FFN_DOWN_BIAS, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_BERT_BIAS),
    LT(layer_out_norm, ARCH_T_LAYER_OUT_NORM, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_ENCODER),
    LT(layer_out_norm_b, ARCH_T_LAYER_OUT_NORM_B, WD_EMBD, WD_1, WD_1, WT_REQUIRED | WT_F32, WC_ENCODER),
};
#undef LT
const int n_layer_tensors = (int)(sizeof layer_tensors / sizeof layer_tensors[0]);

/*
 * Fused projections (Phi-3): one tensor in the file whose consecutive row
 * ranges are the separate projections, bound as views of it: the same
 * bytes, and every output row is the same dot product, so the forward pass
 * and the table walkers see q/k/v and gate/up as ever.
 */
typedef struct fused_tensor {
    int bit;           /* ARCH_FUSED_* */
    const char *name;
    size_t first;      /* of the first part's wtensor; the others follow it */
    uint8_t parts[3];  /* wdim of each part's rows; WD_1 ends the list */
} fused_tensor;

static const fused_tensor fused_tensors[] = {
    {ARCH_FUSED_QKV, ARCH_T_ATTN_QKV, offsetof(layer_weights, wq), {WD_Q, WD_K, WD_V}},
    {ARCH_FUSED_GATE_UP, ARCH_T_FFN_UP, offsetof(layer_weights, ffn_gate), {WD_FF, WD_FF, WD_1}},
};
_Static_assert(offsetof(layer_weights, wk) == offsetof(layer_weights, wq) + sizeof(wtensor) &&
                   offsetof(layer_weights, wv) == offsetof(layer_weights, wk) + sizeof(wtensor) &&
                   offsetof(layer_weights, ffn_up) == offsetof(layer_weights, ffn_gate) + sizeof(wtensor),
               "fused parts are consecutive wtensors");

static int64_t dim_of(const model_hparams *hp, int d)
{
    switch ((wdim)d) {
    case WD_1: return 1;
    case WD_EMBD: return hp->n_embd;
    case WD_FF: return hp->n_ff;
    case WD_Q: return (int64_t)hp->n_head * hp->head_dim_k;
    case WD_K: return (int64_t)hp->n_head_kv * hp->head_dim_k;
    case WD_V: return (int64_t)hp->n_head_kv * hp->head_dim_v;
    case WD_O: return (int64_t)hp->n_head * hp->head_dim_v;
    case WD_HEAD_K: return hp->head_dim_k;
    case WD_FF_EXP: return hp->n_ff_exp;
    case WD_EXPERT: return hp->n_expert;
    }
    return 0;
}

/* whether a model of architecture a with hyperparameters hp has the tensor */
static int model_has(const arch_desc *a, const model_hparams *hp, int cond)
{
    switch ((wcond)cond) {
    case WC_ALWAYS: return 1;
    case WC_PRE_NORM: return !a->encoder;
    case WC_ENCODER: return a->encoder;
    case WC_BERT_BIAS: return a->bert_biases;
    case WC_FFN_GATE: return !(a->fused_proj & ARCH_FUSED_GATE_UP) && hp->n_expert == 0 && !a->ffn_ungated;
    case WC_QKV_BIAS: return a->attn_qkv_bias;
    case WC_QK_NORM: return a->attn_qk_norm;
    case WC_POST_NORMS: return a->post_norms;
    case WC_SPLIT_PROJ: return !(a->fused_proj & ARCH_FUSED_QKV);
    case WC_SPLIT_FFN: return !(a->fused_proj & ARCH_FUSED_GATE_UP) && hp->n_expert == 0;
    case WC_DENSE_FFN: return hp->n_expert == 0;
    case WC_MOE: return hp->n_expert > 0;
    }
    return 0;
}

uint64_t layer_weight_bytes(const layer_weights *L)
{
    uint64_t bytes = 0;
    for (int i = 0; i < n_layer_tensors; i++) bytes += wtensor_bytes(layer_tensor_of(L, i));
    return bytes;
}

/* ggml's YaRN correction dim: the pair whose wavelength fits n_rot_beta
 * turns into the original context */
static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot_beta, float base)
{
    const float pi = 3.14159265358979323846f;
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot_beta * 2.0f * pi)) /
           (2.0f * logf(base));
}

/* llama.cpp's fixed YaRN betas (it reads no key for these architectures) */
#define YARN_BETA_FAST 32.0f
#define YARN_BETA_SLOW 1.0f

kinfer_rope_params model_layer_rope(const model_weights *w, int il, uint32_t n_ctx_seq)
{
    const model_hparams *hp = &w->hp;
    const layer_weights *L = &w->layers[il];
    const wtensor *factors = &w->rope_freqs;
    if (!factors->data)
        factors = n_ctx_seq > (uint32_t)hp->n_ctx_orig ? &w->rope_long : &w->rope_short;
    kinfer_rope_params p = {
        .neox = w->arch->rope_neox != 0,
        .n_rot = hp->n_rot,
        .freq_base = L->rope_base,
        .freq_scale = L->rope_scale,
        .attn_factor = hp->rope_attn_factor,
        .freq_factors = factors->data,
        .ext_factor = hp->rope_ext_factor,
    };
    if (p.ext_factor != 0.0f) {
        const float lo = floorf(yarn_corr_dim(hp->n_rot, hp->n_ctx_orig, YARN_BETA_FAST, L->rope_base));
        const float hi = ceilf(yarn_corr_dim(hp->n_rot, hp->n_ctx_orig, YARN_BETA_SLOW, L->rope_base));
        p.corr_dims[0] = fmaxf(0.0f, lo);
        p.corr_dims[1] = fminf((float)(hp->n_rot - 1), hi);
    }
    return p;
}

/* Every tensor of layer il that architecture a has. */
static kinfer_status bind_layer(binding *b, const arch_desc *a, int il)
{
    const model_hparams *hp = &b->w->hp;
    layer_weights *L = &b->w->layers[il];
    for (int i = 0; i < n_layer_tensors; i++) {
        const layer_tensor *lt = &layer_tensors[i];
        if (!model_has(a, hp, lt->cond)) continue;
        char name[96];
        snprintf(name, sizeof name, lt->name, il);
        kinfer_status st = bind3(b, (wtensor *)((char *)L + lt->offset), name, dim_of(hp, lt->ne0),
                                 dim_of(hp, lt->ne1), dim_of(hp, lt->ne2), lt->flags);
        if (st) return st;
    }
    for (size_t i = 0; i < sizeof fused_tensors / sizeof fused_tensors[0]; i++) {
        const fused_tensor *ft = &fused_tensors[i];
        if (!(a->fused_proj & ft->bit)) continue;
        int64_t rows = 0;
        for (int k = 0; k < 3 && ft->parts[k] != WD_1; k++) rows += dim_of(hp, ft->parts[k]);
        char name[96];
        snprintf(name, sizeof name, ft->name, il);
        wtensor whole;
        kinfer_status st = bind3(b, &whole, name, hp->n_embd, rows, 1, WT_REQUIRED);
        if (st) return st;
        wtensor *part = (wtensor *)((char *)L + ft->first);
        int64_t row0 = 0;
        for (int k = 0; k < 3 && ft->parts[k] != WD_1; k++, part++) {
            *part = whole;
            part->data = (const uint8_t *)whole.data + (size_t)row0 * whole.row_size;
            part->ne1 = dim_of(hp, ft->parts[k]);
            row0 += part->ne1;
        }
    }
    return KINFER_OK;
}

/* ------------------------------------------------------------- binding */

/* Expert count, experts per token and their width (all 0 for a dense model). */
static kinfer_status read_experts(binding *b, const arch_desc *a, model_hparams *hp)
{
    const char *n = a->name;
    hp->n_expert = hp->n_expert_used = hp->n_ff_exp = 0;
    if (a->moe == ARCH_MOE_NONE) return KINFER_OK;
    kinfer_status st = meta_i32(b, n, ARCH_K_EXPERT_COUNT, a->moe == ARCH_MOE_ALWAYS, 0, &hp->n_expert);
    if (st) return st;
    if (hp->n_expert > ARCH_MAX_EXPERTS || (a->moe == ARCH_MOE_ALWAYS && hp->n_expert == 0))
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s.%s = %d is out of range (1 to %d)", n,
                          ARCH_K_EXPERT_COUNT, hp->n_expert, ARCH_MAX_EXPERTS);
    if ((st = meta_i32(b, n, ARCH_K_EXPERT_USED_COUNT, hp->n_expert > 0, 0, &hp->n_expert_used))) return st;
    if (hp->n_expert == 0) {
        if (hp->n_expert_used != 0)
            return bind_fail(b, KINFER_E_FORMAT, "metadata key %s.%s = %d but %s.%s is 0", n,
                              ARCH_K_EXPERT_USED_COUNT, hp->n_expert_used, n, ARCH_K_EXPERT_COUNT);
        return KINFER_OK;
    }
    if (hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s.%s = %d is out of range (1 to %s.%s = %d)", n,
                          ARCH_K_EXPERT_USED_COUNT, hp->n_expert_used, n, ARCH_K_EXPERT_COUNT, hp->n_expert);
    hp->n_ff_exp = hp->n_ff;
    if (a->moe_ff_key &&
        (st = meta_i32(b, n, ARCH_K_EXPERT_FF_LENGTH, 0, hp->n_ff / hp->n_expert_used, &hp->n_ff_exp)))
        return st;
    if (hp->n_ff_exp <= 0)
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s.%s = %d: experts need a width", n,
                          ARCH_K_EXPERT_FF_LENGTH, hp->n_ff_exp);
    return KINFER_OK;
}

/* A factor of RoPE scaling from 1/1024 to 1024: anything else is no model. */
#define ROPE_FACTOR_MAX 1024.0f

/*
 * RoPE scaling as llama.cpp reads it: rope.scaling.type (default "linear"),
 * rope.scaling.factor (or the older rope.scale_linear; 0 or absent: none)
 * giving freq_scale = 1 / factor, rope.scaling.attn_factor (LongRoPE's, as
 * Phi-3's converter writes it), rope.scaling.original_context_length
 * (default the training context).  "yarn" mixes interpolation and
 * extrapolation (ext_factor 1) and sets the magnitude as llama.cpp's
 * context does: get_mscale(factor) cancelled by the kernel's own
 * 1 + 0.1 ln(factor), times attn_factor.  "longrope" scales like "linear"
 * (its factors are tensors).
 */
static kinfer_status read_rope_scaling(binding *b, const char *n, model_hparams *hp)
{
    kinfer_status st;
    char key[128];
    const char *type = "linear";
    snprintf(key, sizeof key, "%s.%s", n, ARCH_K_ROPE_SCALING_TYPE);
    if (gguf_get(b->gf, key) && meta_get_str(b, key, &type) != KINFER_OK)
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s is not a string", key);
    const int none = strcmp(type, "none") == 0, yarn = strcmp(type, "yarn") == 0;
    if (!none && !yarn && strcmp(type, "linear") != 0 && strcmp(type, "longrope") != 0)
        return bind_fail(b, KINFER_E_UNSUPPORTED,
                          "metadata key %s = \"%.40s\" is not a RoPE scaling type kinfer knows "
                          "(none, linear, yarn, longrope)",
                          key, type);
    const char *fkey = ARCH_K_ROPE_SCALING_FACTOR;
    snprintf(key, sizeof key, "%s.%s", n, fkey);
    if (!gguf_get(b->gf, key)) fkey = ARCH_K_ROPE_SCALE_LINEAR;
    float factor;
    if ((st = meta_f32(b, n, fkey, 0, 0.0f, &factor))) return st;
    /* 0 is llama.cpp's "no factor"; YaRN needs one */
    if (factor < 0.0f || (factor == 0.0f && yarn) ||
        (factor != 0.0f && (factor > ROPE_FACTOR_MAX || factor < 1.0f / ROPE_FACTOR_MAX)))
        return bind_fail(b, KINFER_E_FORMAT,
                          "metadata key %s.%s = %g is out of range (1/%g .. %g)", n, fkey, factor,
                          ROPE_FACTOR_MAX, ROPE_FACTOR_MAX);
    hp->rope_scale = none || factor == 0.0f ? 1.0f : 1.0f / factor;

    snprintf(key, sizeof key, "%s.%s", n, ARCH_K_ROPE_SCALING_ORIG_CTX);
    if ((st = meta_i32(b, n, ARCH_K_ROPE_SCALING_ORIG_CTX, 0, hp->n_ctx_train, &hp->n_ctx_orig)))
        return st;
    if (hp->n_ctx_orig <= 0)
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s = %d is out of range (> 0)", key,
                          hp->n_ctx_orig);
    float attn_factor;
    if ((st = meta_f32(b, n, ARCH_K_ROPE_SCALING_ATTN_FACTOR, 0, 1.0f, &attn_factor))) return st;
    if (!(attn_factor > 0.0f && attn_factor <= 16.0f))
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s.%s = %g is out of range (0 .. 16]",
                          n, ARCH_K_ROPE_SCALING_ATTN_FACTOR, attn_factor);
    hp->rope_ext_factor = yarn ? 1.0f : 0.0f;
    hp->rope_attn_factor = 1.0f;
    if (yarn) {
        const float f = 1.0f / hp->rope_scale;
        const float mscale = f <= 1.0f ? 1.0f : 0.1f * logf(f) + 1.0f;
        hp->rope_attn_factor = mscale * (1.0f / (1.0f + 0.1f * logf(f)));
    }
    hp->rope_attn_factor *= attn_factor;
    return KINFER_OK;
}

static kinfer_status read_hparams(binding *b, const arch_desc *a, model_hparams *hp)
{
    const char *n = a->name;
    kinfer_status st;
#define TRY(x) \
    do { \
        if ((st = (x)) != KINFER_OK) return st; \
    } while (0)
    TRY(meta_i32(b, n, ARCH_K_BLOCK_COUNT, 1, 0, &hp->n_layer));
    TRY(meta_i32(b, n, ARCH_K_EMBEDDING_LENGTH, 1, 0, &hp->n_embd));
    TRY(meta_i32(b, n, ARCH_K_FEED_FORWARD_LENGTH, 1, 0, &hp->n_ff));
    TRY(meta_i32(b, n, ARCH_K_CONTEXT_LENGTH, 1, 0, &hp->n_ctx_train));
    TRY(meta_i32(b, n, ARCH_K_HEAD_COUNT, 1, 0, &hp->n_head));
    if (hp->n_layer <= 0 || hp->n_layer > 1024 || hp->n_embd <= 0 || hp->n_ff <= 0 ||
        hp->n_head <= 0 || hp->n_ctx_train <= 0)
        return bind_fail(b, KINFER_E_FORMAT,
                          "bad hyperparameters: %d layers, n_embd %d, n_ff %d, %d heads, "
                          "context %d",
                          hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head, hp->n_ctx_train);
    TRY(meta_i32(b, n, ARCH_K_HEAD_COUNT_KV, 0, hp->n_head, &hp->n_head_kv));
    if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0)
        return bind_fail(b, KINFER_E_FORMAT, "%d heads is not a multiple of %d kv heads",
                          hp->n_head, hp->n_head_kv);
    TRY(meta_i32(b, n, ARCH_K_KEY_LENGTH, 0, hp->n_embd / hp->n_head, &hp->head_dim_k));
    TRY(meta_i32(b, n, ARCH_K_VALUE_LENGTH, 0, hp->n_embd / hp->n_head, &hp->head_dim_v));
    TRY(meta_i32(b, n, ARCH_K_ROPE_DIMS, 0, hp->head_dim_k, &hp->n_rot));
    if (hp->head_dim_k <= 0 || hp->head_dim_v <= 0 || hp->head_dim_k % 2 || hp->n_rot <= 0 ||
        hp->n_rot > hp->head_dim_k || hp->n_rot % 2)
        return bind_fail(b, KINFER_E_FORMAT, "bad head sizes: key %d, value %d, rope %d",
                          hp->head_dim_k, hp->head_dim_v, hp->n_rot);
    TRY(meta_f32(b, n, a->encoder ? ARCH_K_LN_EPS : ARCH_K_RMS_EPS, 1, 0, &hp->rms_eps));
    TRY(meta_f32(b, n, ARCH_K_ROPE_FREQ_BASE, 0, 10000.0f, &hp->rope_base));
    if (!(hp->rope_base > 1.0f))
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s.%s = %g is out of range (> 1)", n,
                          ARCH_K_ROPE_FREQ_BASE, hp->rope_base);
    TRY(read_rope_scaling(b, n, hp));
    hp->n_swa = 0;
    if (a->swa_pattern) TRY(meta_i32(b, n, ARCH_K_SLIDING_WINDOW, 0, 0, &hp->n_swa));
    TRY(meta_f32(b, n, ARCH_K_FINAL_LOGIT_SOFTCAP, 0, 0.0f, &hp->logit_softcap));
    TRY(meta_i32(b, n, ARCH_K_POOLING_TYPE, 0, KINFER_POOLING_UNSPECIFIED, &hp->pooling_type));
    if (hp->pooling_type < KINFER_POOLING_UNSPECIFIED || hp->pooling_type > KINFER_POOLING_RANK)
        return bind_fail(b, KINFER_E_FORMAT, "metadata key %s.%s = %d is not a pooling type "
                         "(0 none, 1 mean, 2 cls, 3 last, 4 rank)", n, ARCH_K_POOLING_TYPE,
                         hp->pooling_type);

    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim_k);
    hp->attn_scale_on_q = a->attn_scale_on_q;
    if (a->attn_scale_27b_rule && hp->n_layer == 62)
        hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    hp->embd_scale = a->embd_scale_sqrt ? sqrtf((float)hp->n_embd) : 1.0f;
#undef TRY
    return read_experts(b, a, hp);
}

/* Which layers are local (sliding window), from the pattern key or the
 * arch's default pattern. */
static kinfer_status read_swa_layers(binding *b, const arch_desc *a)
{
    model_weights *w = b->w;
    const model_hparams *hp = &w->hp;
    float base_swa;
    kinfer_status st = meta_f32(b, a->name, ARCH_K_ROPE_FREQ_BASE_SWA, 0, a->swa_rope_base,
                                &base_swa);
    if (st) return st;
    int32_t pattern = a->swa_pattern;
    char key[128];
    snprintf(key, sizeof key, "%s.%s", a->name, ARCH_K_SLIDING_WINDOW_PATTERN);
    const gguf_kv *pk = gguf_get(b->gf, key);
    const int is_array = pk && pk->type == GGUF_ARR;
    const uint64_t n_el = is_array ? pk->n_elems : 0;
    if (pk && !is_array) {
        st = meta_i32(b, a->name, ARCH_K_SLIDING_WINDOW_PATTERN, 0, pattern, &pattern);
        if (st) return st;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        layer_weights *L = &w->layers[il];
        int swa = 0;
        if (hp->n_swa > 0) {
            if (is_array) {
                int64_t v = 0;
                if ((uint64_t)il >= n_el || gguf_arr_int(pk, (uint64_t)il, &v))
                    return bind_fail(b, KINFER_E_FORMAT, "%s has no entry for layer %d",
                                      key, il);
                swa = v != 0;
            } else {
                swa = pattern == 0 || il % pattern < pattern - 1;
            }
        }
        L->is_swa = swa;
        L->rope_base = swa ? base_swa : hp->rope_base;
        L->rope_scale = swa ? 1.0f : hp->rope_scale;
    }
    return KINFER_OK;
}

static kinfer_status bind_all(binding *b, const arch_desc *a);

/* A reranker's classification head (pooling rank), when the file has one:
 * cls (a dense layer, then tanh) optional, cls.output (the scores, one row
 * each) and their biases. */
static kinfer_status bind_classifier(binding *b)
{
    model_weights *w = b->w;
    const int64_t E = w->hp.n_embd;
    kinfer_status st = bind(b, &w->cls, ARCH_T_CLS, E, E, 0);
    if (!st && w->cls.data) st = bind(b, &w->cls_b, ARCH_T_CLS_B, E, 0, WT_F32);
    if (st) return st;
    const int64_t ti = gguf_find_tensor(b->gf, ARCH_T_CLS_OUT);
    if (ti < 0) return KINFER_OK;
    const int64_t n_out = b->gf->tensors[ti].ne[1];
    if (n_out < 1 || n_out > E)
        return bind_fail(b, KINFER_E_FORMAT, "tensor %s: %lld scores (expected 1 to n_embd %lld)",
                          ARCH_T_CLS_OUT, (long long)n_out, (long long)E);
    st = bind(b, &w->cls_out, ARCH_T_CLS_OUT, E, n_out, WT_REQUIRED);
    if (!st) st = bind(b, &w->cls_out_b, ARCH_T_CLS_OUT_B, n_out, 0, WT_F32);
    return st;
}

/* An encoder's input side: the embedding LayerNorm, BERT's position
 * table, and row 0 of the token-type table when there is one (every token
 * is type 0, as in llama.cpp). */
static kinfer_status bind_encoder_inputs(binding *b, const arch_desc *a)
{
    model_weights *w = b->w;
    const model_hparams *hp = &w->hp;
    const int64_t E = hp->n_embd;
    kinfer_status st = bind(b, &w->tok_norm, ARCH_T_TOKEN_EMBD_NORM, E, 0, WT_REQUIRED | WT_F32);
    if (!st) st = bind(b, &w->tok_norm_b, ARCH_T_TOKEN_EMBD_NORM_B, E, 0, WT_REQUIRED | WT_F32);
    if (!st && a->pos_embd)
        st = bind(b, &w->pos_embd, ARCH_T_POS_EMBD, E, hp->n_ctx_train, WT_REQUIRED);
    if (st) return st;
    const int64_t ti = gguf_find_tensor(b->gf, ARCH_T_TOKEN_TYPES);
    if (ti < 0) return bind_classifier(b);
    const int64_t n_types = b->gf->tensors[ti].ne[1];
    if (n_types < 1 || n_types > 1024)
        return bind_fail(b, KINFER_E_FORMAT, "tensor %s: %lld token types (expected 1 to 1024)",
                          ARCH_T_TOKEN_TYPES, (long long)n_types);
    if ((st = bind(b, &w->type_embd, ARCH_T_TOKEN_TYPES, E, n_types, WT_REQUIRED | WT_F32))) return st;
    w->type_embd.ne1 = 1; /* row 0 */
    return bind_classifier(b);
}

/* Frequency divisors must be positive and finite: a 0 or NaN would turn
 * every angle of that pair into NaN. */
static kinfer_status check_rope_factors(binding *b, const wtensor *t, const char *name)
{
    for (int64_t i = 0; t->data && i < t->ne0; i++) {
        float f; /* memcpy: a file's alignment may be 1 */
        memcpy(&f, (const float *)t->data + i, sizeof f);
        if (!(f > 0.0f && f <= 1e6f))
            return bind_fail(b, KINFER_E_FORMAT, "tensor %s: factor %lld is %g (expected > 0, finite)",
                              name, (long long)i, f);
    }
    return KINFER_OK;
}

static kinfer_status bind_model(binding *b)
{
    model_weights *w = b->w;
    memset(w, 0, sizeof *w);
    for (uint64_t i = 0; i < b->gf->n_tensors; i++)
        w->tensor_bytes += b->gf->tensors[i].size;

    const char *arch_name = NULL;
    if (meta_get_str(b, "general.architecture", &arch_name) != KINFER_OK) {
        snprintf(w->unsupported, sizeof w->unsupported,
                 "the file has no general.architecture string");
        return KINFER_OK;
    }
    if (b->gf->n_tensors == 0) {
        snprintf(w->unsupported, sizeof w->unsupported,
                 "the file has no tensors (a vocabulary-only GGUF?)");
        return KINFER_OK;
    }
    const arch_desc *a = arch_find(arch_name);
    if (!a) {
        snprintf(w->unsupported, sizeof w->unsupported,
                 "architecture \"%.80s\" is not supported (kinfer runs: %s)", arch_name,
                 arch_supported_list());
        return KINFER_OK;
    }
    model_hparams *hp = &w->hp;
    kinfer_status st = read_hparams(b, a, hp);
    if (st) return st;
    w->bound = calloc(b->gf->n_tensors, 1);
    if (!w->bound) return bind_fail(b, KINFER_E_NOMEM, "out of memory for the tensor table");
    st = bind_all(b, a);
    free(w->bound);
    w->bound = NULL;
    return st;
}

/* Bind every tensor of architecture a; a tensor the forward pass would
 * not use makes the model unsupported (llama.cpp refuses such files too:
 * running without it would give other logits). */
static kinfer_status bind_all(binding *b, const arch_desc *a)
{
    model_weights *w = b->w;
    model_hparams *hp = &w->hp;
    kinfer_status st;

    const int64_t E = hp->n_embd;

    /* token_embd: its rows give n_vocab */
    int64_t ti = gguf_find_tensor(b->gf, ARCH_T_TOKEN_EMBD);
    if (ti < 0)
        return bind_fail(b, KINFER_E_FORMAT, "missing tensor %s (expected shape [%lld, n_vocab])",
                          ARCH_T_TOKEN_EMBD, (long long)E);
    int64_t n_vocab = b->gf->tensors[ti].ne[1];
    if (n_vocab <= 0 || n_vocab > INT32_MAX)
        return bind_fail(b, KINFER_E_FORMAT, "tensor %s: bad vocabulary size %lld",
                          ARCH_T_TOKEN_EMBD, (long long)n_vocab);
    hp->n_vocab = (int32_t)n_vocab;
#define TRY(x) \
    do { \
        if ((st = (x)) != KINFER_OK) return st; \
    } while (0)
    TRY(bind(b, &w->tok_embd, ARCH_T_TOKEN_EMBD, E, n_vocab, WT_REQUIRED));
    if (a->encoder) {
        TRY(bind_encoder_inputs(b, a));
    } else {
        TRY(bind(b, &w->output_norm, ARCH_T_OUTPUT_NORM, E, 0, WT_REQUIRED | WT_F32));
        TRY(bind(b, &w->output, ARCH_T_OUTPUT, E, n_vocab, 0));
    }
    if (!w->output.data) {
        w->output = w->tok_embd;
        w->output_tied = 1;
    }
    if (a->rope_freqs) TRY(bind(b, &w->rope_freqs, ARCH_T_ROPE_FREQS, hp->n_rot / 2, 0, WT_F32));
    if (a->rope_long_short) {
        TRY(bind(b, &w->rope_long, ARCH_T_ROPE_LONG, hp->n_rot / 2, 0, WT_F32));
        TRY(bind(b, &w->rope_short, ARCH_T_ROPE_SHORT, hp->n_rot / 2, 0, WT_F32));
    }
    TRY(check_rope_factors(b, &w->rope_freqs, ARCH_T_ROPE_FREQS));
    TRY(check_rope_factors(b, &w->rope_long, ARCH_T_ROPE_LONG));
    TRY(check_rope_factors(b, &w->rope_short, ARCH_T_ROPE_SHORT));

    w->layers = calloc((size_t)hp->n_layer, sizeof *w->layers);
    if (!w->layers) return bind_fail(b, KINFER_E_NOMEM, "out of memory for layer table");
    for (int il = 0; il < hp->n_layer; il++) TRY(bind_layer(b, a, il));
    TRY(read_swa_layers(b, a));
#undef TRY
    for (uint64_t i = 0; i < b->gf->n_tensors && !w->unsupported[0]; i++)
        if (!w->bound[i])
            snprintf(w->unsupported, sizeof w->unsupported,
                     "tensor %.96s is not part of kinfer's %s forward pass", b->gf->tensors[i].name,
                     a->name);
    /* Everything checks out: the model can run (unless unsupported was set
     * by a feature above). */
    if (!w->unsupported[0]) w->arch = a;
    return KINFER_OK;
}

kinfer_status weights_bind(model_weights *w, const gguf_file *gf, char *err, size_t err_size)
{
    binding b = {.w = w, .gf = gf, .err = err, .err_size = err_size};
    return bind_model(&b);
}

void weights_unbind(model_weights *w)
{
    free(w->layers);
    w->layers = NULL;
}

