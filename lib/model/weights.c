/*
 * weights.c — bind a model's architecture: hyperparameters from metadata,
 * per-layer weight pointers into the GGUF image, shape checks; the model-info
 * calls and the memory estimate of the public API.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/context.h"
#include "model/model.h"
#include "quant.h"
#include "model/quantize.h"

/* ----------------------------------------------------------- metadata */

static kinfer_status meta_i32(kinfer_model *model, const char *arch, const char *suffix,
                              int required, int32_t def, int32_t *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    kinfer_status st = kinfer_meta_get_int(model, key, &v);
    if (st == KINFER_E_NOT_FOUND && !required) {
        *out = def;
        return KINFER_OK;
    }
    if (st == KINFER_E_NOT_FOUND)
        return model_fail(model, KINFER_E_FORMAT, "missing metadata key %s", key);
    if (st)
        return model_fail(model, KINFER_E_FORMAT, "metadata key %s is not an integer", key);
    if (v < 0 || v > INT32_MAX)
        return model_fail(model, KINFER_E_FORMAT, "metadata key %s = %lld is out of range", key,
                          (long long)v);
    *out = (int32_t)v;
    return KINFER_OK;
}

static kinfer_status meta_f32(kinfer_model *model, const char *arch, const char *suffix,
                              int required, float def, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    kinfer_status st = kinfer_meta_get_float(model, key, &v);
    if (st == KINFER_E_NOT_FOUND && !required) {
        *out = def;
        return KINFER_OK;
    }
    if (st == KINFER_E_NOT_FOUND)
        return model_fail(model, KINFER_E_FORMAT, "missing metadata key %s", key);
    if (st || !isfinite(v))
        return model_fail(model, KINFER_E_FORMAT, "metadata key %s is not a finite number", key);
    *out = (float)v;
    return KINFER_OK;
}

/* ------------------------------------------------------------ tensors */

enum { T_REQUIRED = 1, T_F32 = 2 };

/*
 * Bind tensor `name` with shape (ne0) or (ne0, ne1) (ne1 = 0: a vector).
 * Absent and not required: *out stays zeroed.
 */
static kinfer_status bind(kinfer_model *model, wtensor *out, const char *name, int64_t ne0,
                          int64_t ne1, int flags)
{
    memset(out, 0, sizeof *out);
    int64_t i = gguf_find_tensor(model->gguf, name);
    const char *shape_fmt = ne1 ? "[%lld, %lld]" : "[%lld]";
    char want[64];
    snprintf(want, sizeof want, shape_fmt, (long long)ne0, (long long)ne1);
    if (i < 0) {
        if (!(flags & T_REQUIRED)) return KINFER_OK;
        return model_fail(model, KINFER_E_FORMAT, "missing tensor %s (expected shape %s)", name,
                          want);
    }
    const gguf_tensor *t = &model->gguf->tensors[i];
    int64_t rows = ne1 ? ne1 : 1;
    int ok = t->ne[0] == ne0 && t->ne[1] == rows && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
        char got[96];
        snprintf(got, sizeof got, "[%lld, %lld, %lld, %lld]", (long long)t->ne[0],
                 (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
        return model_fail(model, KINFER_E_FORMAT, "tensor %s has shape %s, expected %s", name, got,
                          want);
    }
    if ((flags & T_F32) && t->type != KINFER_TYPE_F32)
        return model_fail(model, KINFER_E_UNSUPPORTED, "tensor %s is %s; kinfer needs F32 here",
                          name, kinfer_type_name((int)t->type));
    size_t rs = kinfer_row_size((int)t->type, ne0);
    if (rs == 0 || (uint64_t)rs * (uint64_t)rows > t->size)
        return model_fail(model, KINFER_E_UNSUPPORTED, "tensor %s: type %s with rows of %lld", name,
                          kinfer_type_name((int)t->type), (long long)ne0);
    model->w.bound[i] = 1;
    out->data = t->data;
    out->type = (int)t->type;
    out->ne0 = ne0;
    out->ne1 = rows;
    out->row_size = rs;
    return KINFER_OK;
}

static kinfer_status bind_l(kinfer_model *model, wtensor *out, const char *fmt, int il,
                            int64_t ne0, int64_t ne1, int flags)
{
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    return bind(model, out, name, ne0, ne1, flags);
}

/* ------------------------------------------------------------- binding */

static kinfer_status read_hparams(kinfer_model *model, const arch_desc *a, model_hparams *hp)
{
    const char *n = a->name;
    kinfer_status st;
#define TRY(x) \
    do { \
        if ((st = (x)) != KINFER_OK) return st; \
    } while (0)
    TRY(meta_i32(model, n, ARCH_K_BLOCK_COUNT, 1, 0, &hp->n_layer));
    TRY(meta_i32(model, n, ARCH_K_EMBEDDING_LENGTH, 1, 0, &hp->n_embd));
    TRY(meta_i32(model, n, ARCH_K_FEED_FORWARD_LENGTH, 1, 0, &hp->n_ff));
    TRY(meta_i32(model, n, ARCH_K_CONTEXT_LENGTH, 1, 0, &hp->n_ctx_train));
    TRY(meta_i32(model, n, ARCH_K_HEAD_COUNT, 1, 0, &hp->n_head));
    if (hp->n_layer <= 0 || hp->n_layer > 1024 || hp->n_embd <= 0 || hp->n_ff <= 0 ||
        hp->n_head <= 0 || hp->n_ctx_train <= 0)
        return model_fail(model, KINFER_E_FORMAT,
                          "bad hyperparameters: %d layers, n_embd %d, n_ff %d, %d heads, "
                          "context %d",
                          hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head, hp->n_ctx_train);
    TRY(meta_i32(model, n, ARCH_K_HEAD_COUNT_KV, 0, hp->n_head, &hp->n_head_kv));
    if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0)
        return model_fail(model, KINFER_E_FORMAT, "%d heads is not a multiple of %d kv heads",
                          hp->n_head, hp->n_head_kv);
    TRY(meta_i32(model, n, ARCH_K_KEY_LENGTH, 0, hp->n_embd / hp->n_head, &hp->head_dim_k));
    TRY(meta_i32(model, n, ARCH_K_VALUE_LENGTH, 0, hp->n_embd / hp->n_head, &hp->head_dim_v));
    TRY(meta_i32(model, n, ARCH_K_ROPE_DIMS, 0, hp->head_dim_k, &hp->n_rot));
    if (hp->head_dim_k <= 0 || hp->head_dim_v <= 0 || hp->head_dim_k % 2 || hp->n_rot <= 0 ||
        hp->n_rot > hp->head_dim_k || hp->n_rot % 2)
        return model_fail(model, KINFER_E_FORMAT, "bad head sizes: key %d, value %d, rope %d",
                          hp->head_dim_k, hp->head_dim_v, hp->n_rot);
    TRY(meta_f32(model, n, ARCH_K_RMS_EPS, 1, 0, &hp->rms_eps));
    TRY(meta_f32(model, n, ARCH_K_ROPE_FREQ_BASE, 0, 10000.0f, &hp->rope_base));

    /* RoPE scaling: only "linear" (or none) is supported. */
    char key[128];
    const char *scaling = NULL;
    snprintf(key, sizeof key, "%s.%s", n, ARCH_K_ROPE_SCALING_TYPE);
    if (kinfer_meta_get_str(model, key, &scaling) != KINFER_OK) scaling = "linear";
    float factor;
    TRY(meta_f32(model, n, ARCH_K_ROPE_SCALING_FACTOR, 0, 0.0f, &factor));
    if (factor == 0.0f) TRY(meta_f32(model, n, ARCH_K_ROPE_SCALE_LINEAR, 0, 0.0f, &factor));
    /* llama.cpp: freq_scale = 1 / factor for "linear" (the default type);
     * "none" means no scaling.  YaRN, LongRoPE, ... are not implemented. */
    hp->rope_scale = 1.0f;
    if (strcmp(scaling, "linear") == 0) {
        if (factor > 0.0f) hp->rope_scale = 1.0f / factor;
    } else if (strcmp(scaling, "none") != 0) {
        snprintf(model->w.unsupported, sizeof model->w.unsupported,
                 "RoPE scaling \"%.40s\" is not supported (only linear)", scaling);
    }
    hp->n_swa = 0;
    if (a->swa_pattern) TRY(meta_i32(model, n, ARCH_K_SLIDING_WINDOW, 0, 0, &hp->n_swa));
    TRY(meta_f32(model, n, ARCH_K_FINAL_LOGIT_SOFTCAP, 0, 0.0f, &hp->logit_softcap));

    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim_k);
    hp->attn_scale_on_q = a->attn_scale_on_q;
    if (a->attn_scale_27b_rule && hp->n_layer == 62)
        hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    hp->embd_scale = a->embd_scale_sqrt ? sqrtf((float)hp->n_embd) : 1.0f;
#undef TRY
    return KINFER_OK;
}

/* Which layers are local (sliding window), from the pattern key or the
 * arch's default pattern. */
static kinfer_status read_swa_layers(kinfer_model *model, const arch_desc *a)
{
    model_weights *w = &model->w;
    const model_hparams *hp = &w->hp;
    float base_swa;
    kinfer_status st = meta_f32(model, a->name, ARCH_K_ROPE_FREQ_BASE_SWA, 0, a->swa_rope_base,
                                &base_swa);
    if (st) return st;
    int32_t pattern = a->swa_pattern;
    char key[128];
    snprintf(key, sizeof key, "%s.%s", a->name, ARCH_K_SLIDING_WINDOW_PATTERN);
    int64_t ki = kinfer_meta_find(model, key);
    kinfer_value_type vt = KINFER_VALUE_UINT32;
    uint64_t n_el = 0;
    if (ki >= 0) kinfer_meta_type(model, ki, &vt, NULL, &n_el);
    if (ki >= 0 && vt != KINFER_VALUE_ARRAY) {
        st = meta_i32(model, a->name, ARCH_K_SLIDING_WINDOW_PATTERN, 0, pattern, &pattern);
        if (st) return st;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        layer_weights *L = &w->layers[il];
        int swa = 0;
        if (hp->n_swa > 0) {
            if (ki >= 0 && vt == KINFER_VALUE_ARRAY) {
                int64_t v = 0;
                if ((uint64_t)il >= n_el || kinfer_meta_array_int(model, ki, (uint64_t)il, &v))
                    return model_fail(model, KINFER_E_FORMAT, "%s has no entry for layer %d",
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

static kinfer_status bind_all(kinfer_model *model, const arch_desc *a);

kinfer_status model_bind(kinfer_model *model)
{
    model_weights *w = &model->w;
    memset(w, 0, sizeof *w);
    for (uint64_t i = 0; i < model->gguf->n_tensors; i++)
        w->tensor_bytes += model->gguf->tensors[i].size;

    const char *arch_name = NULL;
    if (kinfer_meta_get_str(model, "general.architecture", &arch_name) != KINFER_OK) {
        snprintf(w->unsupported, sizeof w->unsupported,
                 "the file has no general.architecture string");
        return KINFER_OK;
    }
    if (model->gguf->n_tensors == 0) {
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
    kinfer_status st = read_hparams(model, a, hp);
    if (st) return st;
    w->bound = calloc(model->gguf->n_tensors, 1);
    if (!w->bound) return model_fail(model, KINFER_E_NOMEM, "out of memory for the tensor table");
    st = bind_all(model, a);
    free(w->bound);
    w->bound = NULL;
    return st;
}

/* Bind every tensor of architecture a; a tensor the forward pass would
 * not use makes the model unsupported (llama.cpp refuses such files too:
 * running without it would give other logits). */
static kinfer_status bind_all(kinfer_model *model, const arch_desc *a)
{
    model_weights *w = &model->w;
    model_hparams *hp = &w->hp;
    kinfer_status st;

    const int64_t E = hp->n_embd, F = hp->n_ff;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k;
    const int64_t KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int64_t OD = (int64_t)hp->n_head * hp->head_dim_v;

    /* token_embd: its rows give n_vocab */
    int64_t ti = gguf_find_tensor(model->gguf, ARCH_T_TOKEN_EMBD);
    if (ti < 0)
        return model_fail(model, KINFER_E_FORMAT, "missing tensor %s (expected shape [%lld, n_vocab])",
                          ARCH_T_TOKEN_EMBD, (long long)E);
    int64_t n_vocab = model->gguf->tensors[ti].ne[1];
    if (n_vocab <= 0 || n_vocab > INT32_MAX)
        return model_fail(model, KINFER_E_FORMAT, "tensor %s: bad vocabulary size %lld",
                          ARCH_T_TOKEN_EMBD, (long long)n_vocab);
    hp->n_vocab = (int32_t)n_vocab;
#define TRY(x) \
    do { \
        if ((st = (x)) != KINFER_OK) return st; \
    } while (0)
    TRY(bind(model, &w->tok_embd, ARCH_T_TOKEN_EMBD, E, n_vocab, T_REQUIRED));
    TRY(bind(model, &w->output_norm, ARCH_T_OUTPUT_NORM, E, 0, T_REQUIRED | T_F32));
    TRY(bind(model, &w->output, ARCH_T_OUTPUT, E, n_vocab, 0));
    if (!w->output.data) {
        w->output = w->tok_embd;
        w->output_tied = 1;
    }
    if (a->rope_freqs) TRY(bind(model, &w->rope_freqs, ARCH_T_ROPE_FREQS, hp->n_rot / 2, 0, T_F32));

    w->layers = calloc((size_t)hp->n_layer, sizeof *w->layers);
    if (!w->layers) return model_fail(model, KINFER_E_NOMEM, "out of memory for layer table");
    const int R = T_REQUIRED, RF = T_REQUIRED | T_F32;
    for (int il = 0; il < hp->n_layer; il++) {
        layer_weights *L = &w->layers[il];
        TRY(bind_l(model, &L->attn_norm, ARCH_T_ATTN_NORM, il, E, 0, RF));
        TRY(bind_l(model, &L->wq, ARCH_T_ATTN_Q, il, E, QD, R));
        TRY(bind_l(model, &L->wk, ARCH_T_ATTN_K, il, E, KD, R));
        TRY(bind_l(model, &L->wv, ARCH_T_ATTN_V, il, E, VD, R));
        if (a->attn_qkv_bias) {
            TRY(bind_l(model, &L->bq, ARCH_T_ATTN_Q_BIAS, il, QD, 0, RF));
            TRY(bind_l(model, &L->bk, ARCH_T_ATTN_K_BIAS, il, KD, 0, RF));
            TRY(bind_l(model, &L->bv, ARCH_T_ATTN_V_BIAS, il, VD, 0, RF));
        }
        if (a->attn_qk_norm) {
            TRY(bind_l(model, &L->q_norm, ARCH_T_ATTN_Q_NORM, il, hp->head_dim_k, 0, RF));
            TRY(bind_l(model, &L->k_norm, ARCH_T_ATTN_K_NORM, il, hp->head_dim_k, 0, RF));
        }
        TRY(bind_l(model, &L->wo, ARCH_T_ATTN_OUT, il, OD, E, R));
        TRY(bind_l(model, &L->ffn_norm, ARCH_T_FFN_NORM, il, E, 0, RF));
        TRY(bind_l(model, &L->ffn_gate, ARCH_T_FFN_GATE, il, E, F, R));
        TRY(bind_l(model, &L->ffn_up, ARCH_T_FFN_UP, il, E, F, R));
        TRY(bind_l(model, &L->ffn_down, ARCH_T_FFN_DOWN, il, F, E, R));
        if (a->post_norms) {
            TRY(bind_l(model, &L->attn_post_norm, ARCH_T_ATTN_POST_NORM, il, E, 0, RF));
            TRY(bind_l(model, &L->ffn_post_norm, ARCH_T_FFN_POST_NORM, il, E, 0, RF));
        }
    }
    TRY(read_swa_layers(model, a));
#undef TRY
    for (uint64_t i = 0; i < model->gguf->n_tensors && !w->unsupported[0]; i++)
        if (!w->bound[i])
            snprintf(w->unsupported, sizeof w->unsupported,
                     "tensor %.96s is not part of kinfer's %s forward pass", model->gguf->tensors[i].name,
                     a->name);
    /* Everything checks out: the model can run (unless unsupported was set
     * by a feature above). */
    if (!w->unsupported[0]) w->arch = a;
    return KINFER_OK;
}

void model_unbind(kinfer_model *model)
{
    free(model->w.layers);
    model->w.layers = NULL;
}

/* --------------------------------------------------------------- info */

static const model_hparams *runnable(const kinfer_model *model)
{
    return model && model->gguf && model->w.arch ? &model->w.hp : NULL;
}

int32_t kinfer_model_n_layer(const kinfer_model *model)
{
    const model_hparams *hp = runnable(model);
    return hp ? hp->n_layer : 0;
}

int32_t kinfer_model_n_embd(const kinfer_model *model)
{
    const model_hparams *hp = runnable(model);
    return hp ? hp->n_embd : 0;
}

int32_t kinfer_model_n_vocab(const kinfer_model *model)
{
    const model_hparams *hp = runnable(model);
    return hp ? hp->n_vocab : 0;
}

int32_t kinfer_model_n_ctx_train(const kinfer_model *model)
{
    const model_hparams *hp = runnable(model);
    return hp ? hp->n_ctx_train : 0;
}

int64_t kinfer_model_desc(const kinfer_model *model, char *buf, size_t size)
{
    char tmp[256];
    if (!model || !model->gguf) {
        snprintf(tmp, sizeof tmp, "(no model)");
    } else {
        const char *arch = "unknown";
        kinfer_meta_get_str(model, "general.architecture", &arch);
        /* parameter count and the most common weight type */
        uint64_t n_params = 0, bytes_by_type[KINFER_TYPE_COUNT] = {0};
        for (uint64_t i = 0; i < model->gguf->n_tensors; i++) {
            const gguf_tensor *t = &model->gguf->tensors[i];
            n_params += t->n_elements;
            if (t->type < KINFER_TYPE_COUNT) bytes_by_type[t->type] += t->size;
        }
        int best = 0;
        for (int t = 1; t < KINFER_TYPE_COUNT; t++)
            if (bytes_by_type[t] > bytes_by_type[best]) best = t;
        /* the file type the file declares, else the type holding most bytes */
        uint64_t file_type;
        const char *tname = kinfer_meta_get_uint(model, "general.file_type", &file_type) == KINFER_OK
                                ? quant_file_type_name((uint32_t)file_type)
                                : NULL;
        if (!tname) tname = kinfer_type_name(best);
        char size_str[32];
        if (n_params >= 1000000000ull)
            snprintf(size_str, sizeof size_str, "%.1fB", (double)n_params / 1e9);
        else
            snprintf(size_str, sizeof size_str, "%.0fM", (double)n_params / 1e6);
        if (model->w.arch)
            snprintf(tmp, sizeof tmp, "%s %s %s, %d layers", arch, size_str, tname ? tname : "?",
                     model->w.hp.n_layer);
        else
            snprintf(tmp, sizeof tmp, "%s %s %s (not runnable: %s)", arch, size_str,
                     tname ? tname : "?", model->w.unsupported);
    }
    size_t len = strlen(tmp);
    if (!buf || size <= len) {
        if (buf && size) buf[0] = '\0';
        return -(int64_t)len;
    }
    memcpy(buf, tmp, len + 1);
    return (int64_t)len;
}

kinfer_status kinfer_model_estimate(const kinfer_model *model, const kinfer_context_params *params,
                                    kinfer_estimate *out)
{
    if (!model || !out) return KINFER_E_INVALID_ARG;
    if (!runnable(model)) return KINFER_E_UNSUPPORTED;
    kinfer_context_params defaults = kinfer_context_default_params();
    if (!params) params = &defaults;
    memset(out, 0, sizeof *out);
    context_sizes sz;
    kinfer_status st = context_plan(model, params, &sz, out->errmsg, sizeof out->errmsg);
    if (st) return st;
    /* a tied output matrix is the token embedding: it stays on the host too */
    const uint64_t output_bytes = (uint64_t)model->w.output.row_size * (uint64_t)model->w.output.ne1;
    const uint64_t left_on_host =
        sz.gpu.output_on_gpu && model->w.output_tied ? output_bytes : 0;
    out->weights_device_bytes = sz.weights_device_bytes;
    out->weights_host_bytes = model->w.tensor_bytes - sz.weights_device_bytes + left_on_host;
    out->kv_device_bytes = sz.kv_device_bytes;
    out->kv_host_bytes = sz.kv_bytes - sz.kv_device_bytes;
    out->compute_device_bytes = sz.compute_device_bytes;
    out->compute_host_bytes = sz.compute_bytes;
    out->host_bytes = out->weights_host_bytes + out->kv_host_bytes + out->compute_host_bytes;
    out->device_bytes = out->weights_device_bytes + out->kv_device_bytes + out->compute_device_bytes;
    out->n_gpu_layers = sz.gpu.n_gpu_layers;
    return KINFER_OK;
}
