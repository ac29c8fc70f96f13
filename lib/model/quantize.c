/*
 * quantize.c — rewrite a GGUF model with its weights in another type.
 *
 * Which tensor gets which type follows llama.cpp's mixtures (Q4_K_M keeps
 * attn_v and ffn_down at Q6_K on some layers, the output matrix at Q6_K, and
 * a K-quant whose row length is not whole 256-blocks falls back to a
 * 32-block type), so a file we write is the file llama-quantize would write,
 * up to the rounding of the quantizers themselves.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"
#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "gguf/writer.h"
#include "model/ftype.h"
#include "model/model.h"
#include "quant.h"
#include "model/quantize.h"

kinfer_quantize_params kinfer_quantize_default_params(void)
{
    kinfer_quantize_params p = {0};
    p.ftype = "Q4_K_M";
    return p;
}

static int is_quantized(int type)
{
    return type != KINFER_TYPE_F32 && type != KINFER_TYPE_F16 && type != KINFER_TYPE_BF16;
}

static int name_has(const char *name, const char *part) { return strstr(name, part) != NULL; }

/* Tensors llama.cpp never quantizes: 1-D ones, norms, and non-weights. */
static int allows_quantization(const char *name, uint32_t n_dims)
{
    size_t n = strlen(name);
    if (n_dims < 2) return 0;
    if (n < 6 || strcmp(name + n - 6, "weight") != 0) return 0;
    return !name_has(name, "_norm.weight") && !name_has(name, "ffn_gate_inp.weight") &&
           strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
}

/* The first 2 layers in 8, the last in 8, and every third between get more
 * bits. */
static int use_more_bits(int i_layer, int n_layers)
{
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

/* A K-quant whose rows are not whole 256-blocks falls back to a 32-block
 * type; F16 when even that does not fit. */
static int fallback_type(int type, int64_t ncols)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    if (ncols % tt->blck_size == 0) return type;
    int ret = type;
    switch (type) {
    case KINFER_TYPE_IQ4_XS: ret = KINFER_TYPE_IQ4_NL; break;
    case KINFER_TYPE_Q2_K: case KINFER_TYPE_Q3_K: ret = KINFER_TYPE_Q4_0; break;
    case KINFER_TYPE_Q4_K: ret = KINFER_TYPE_Q5_0; break;
    case KINFER_TYPE_Q5_K: ret = KINFER_TYPE_Q5_1; break;
    case KINFER_TYPE_Q6_K: ret = KINFER_TYPE_Q8_0; break;
    default: break;
    }
    if (ncols % kinfer_type_traits_get(ret)->blck_size != 0) ret = KINFER_TYPE_F16;
    return ret;
}

kinfer_status quant_mix_init(quant_mix *mix, const char *ftype)
{
    memset(mix, 0, sizeof *mix);
    mix->n_gqa = 1;
    mix->ft = ftype_find(ftype);
    return mix->ft ? KINFER_OK : KINFER_E_UNSUPPORTED;
}

uint32_t quant_mix_file_type(const quant_mix *mix) { return mix->ft->file_type; }

int quant_mix_type(quant_mix *s, const char *name, uint32_t n_dims, const int64_t *ne, int src_type)
{
    if (!allows_quantization(name, n_dims)) return src_type;
    const char *ftn = s->ft->name;
    int type = s->ft->base;
    if (!is_quantized(type)) return type;

    if (strcmp(name, "output.weight") == 0 ||
        (s->tied && strcmp(name, "token_embd.weight") == 0)) {
        if (ne[0] % kinfer_type_traits_get(type)->blck_size != 0) type = KINFER_TYPE_Q8_0;
        else if (type != KINFER_TYPE_Q8_0) type = KINFER_TYPE_Q6_K;
    } else if (strcmp(name, "token_embd.weight") == 0) {
        /* the base type */
    } else if (name_has(name, "attn_v.weight")) {
        int i = s->i_attn_v++;
        if (!strcmp(ftn, "Q2_K")) type = s->n_gqa >= 4 ? KINFER_TYPE_Q4_K : KINFER_TYPE_Q3_K;
        else if (!strcmp(ftn, "Q3_K_M")) type = i < 2 ? KINFER_TYPE_Q5_K : KINFER_TYPE_Q4_K;
        else if ((!strcmp(ftn, "IQ4_NL") || !strcmp(ftn, "IQ4_XS")) && s->n_gqa >= 4)
            type = KINFER_TYPE_Q5_K;
        else if ((!strcmp(ftn, "Q4_K_M") || !strcmp(ftn, "Q5_K_M")) && use_more_bits(i, s->n_attn_v))
            type = KINFER_TYPE_Q6_K;
        else if (!strcmp(ftn, "Q4_K_S") && i < 4) type = KINFER_TYPE_Q5_K;
        if (s->n_expert == 8) type = KINFER_TYPE_Q8_0; /* Mixtral: "trades just ~128MB" */
    } else if (name_has(name, "attn_k.weight") && s->n_expert == 8) {
        type = KINFER_TYPE_Q8_0;
    } else if (name_has(name, "ffn_down")) {
        int i = s->i_ffn_down++, n = s->n_ffn_down;
        if (!strcmp(ftn, "Q2_K")) type = KINFER_TYPE_Q3_K;
        else if (!strcmp(ftn, "Q3_K_M")) type = i < n / 16 ? KINFER_TYPE_Q5_K : KINFER_TYPE_Q4_K;
        else if (!strcmp(ftn, "Q4_K_M")) {
            if (use_more_bits(i, n)) type = KINFER_TYPE_Q6_K;
        } else if (i < n / 8 && (!strcmp(ftn, "IQ4_NL") || !strcmp(ftn, "IQ4_XS")))
            type = KINFER_TYPE_Q5_K;
        else if (!strcmp(ftn, "Q5_K_M") && use_more_bits(i, n)) type = KINFER_TYPE_Q6_K;
        else if (!strcmp(ftn, "Q4_K_S") && i < n / 8) type = KINFER_TYPE_Q5_K;
    } else if (name_has(name, "attn_output.weight") && s->n_expert == 8) {
        if (!strcmp(ftn, "Q2_K") || !strcmp(ftn, "Q3_K_M") || !strcmp(ftn, "IQ4_NL") ||
            !strcmp(ftn, "Q4_K_S") || !strcmp(ftn, "Q4_K_M") || !strcmp(ftn, "IQ4_XS"))
            type = KINFER_TYPE_Q5_K;
    } else if (name_has(name, "attn_output.weight")) {
        if (!strcmp(ftn, "Q2_K")) type = KINFER_TYPE_Q3_K;
        else if (!strcmp(ftn, "Q3_K_M")) type = KINFER_TYPE_Q4_K;
    } else if (name_has(name, "attn_qkv.weight")) {
        if (!strcmp(ftn, "Q3_K_M")) type = KINFER_TYPE_Q4_K;
        else if (!strcmp(ftn, "Q4_K_M")) type = KINFER_TYPE_Q5_K;
        else if (!strcmp(ftn, "Q5_K_M")) type = KINFER_TYPE_Q6_K;
    }
    return fallback_type(type, ne[0]);
}

/* ------------------------------------------------------ row conversion */

typedef struct convert_job {
    const gguf_tensor *src;
    int dst_type;
    uint8_t *dst;
    int64_t n_rows;
    kinfer_status status[64];  /* per slice (a pool of at most 64 threads) */
} convert_job;

/* Dequantize this slice's rows to F32 and quantize them to the new type. */
static void convert_rows(void *arg, int ith, int nth)
{
    convert_job *j = arg;
    int64_t ncols = j->src->ne[0];
    size_t src_row = kinfer_row_size((int)j->src->type, ncols);
    size_t dst_row = kinfer_row_size(j->dst_type, ncols);
    const int64_t per = (j->n_rows + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < j->n_rows ? r0 + per : j->n_rows;
    kinfer_status *st = &j->status[ith];
    if (r0 >= r1) return;
    float *row = malloc((size_t)ncols * sizeof(float));
    if (!row) {
        *st = KINFER_E_NOMEM;
        return;
    }
    for (int64_t r = r0; r < r1 && !*st; r++) {
        const uint8_t *in = (const uint8_t *)j->src->data + (size_t)r * src_row;
        *st = kinfer_dequantize_row((int)j->src->type, in, row, ncols);
        if (!*st) *st = kinfer_quantize_row(j->dst_type, row, j->dst + (size_t)r * dst_row, ncols);
    }
    free(row);
}

static kinfer_status convert_tensor(kinfer_threadpool *pool, const gguf_tensor *t, int dst_type,
                                    uint8_t *dst)
{
    convert_job job = {.src = t, .dst_type = dst_type, .dst = dst,
                       .n_rows = (int64_t)(t->n_elements / (uint64_t)t->ne[0])};
    kinfer_threadpool_run(pool, convert_rows, &job);
    for (int i = 0; i < kinfer_threadpool_size(pool); i++)
        if (job.status[i]) return job.status[i];
    return KINFER_OK;
}

/* --------------------------------------------------------------- driver */

/* Tensors are written by layer (non-layer tensors first), then by name, as
 * llama.cpp's loader orders them; the per-layer mixture counts on it. */
static int tensor_layer(const char *name)
{
    int layer = -1;
    return sscanf(name, "blk.%d.", &layer) == 1 ? layer : -1;
}

static int by_layer_then_name(const void *a, const void *b)
{
    const gguf_tensor *ta = *(const gguf_tensor *const *)a, *tb = *(const gguf_tensor *const *)b;
    int la = tensor_layer(ta->name), lb = tensor_layer(tb->name);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(ta->name, tb->name);
}

static int meta_int(const gguf_file *gf, const char *arch, const char *suffix, int fallback)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t i = gguf_find_key(gf, key), v;
    if (i < 0) return fallback;
    if (gf->kv[i].type == GGUF_ARR) return gguf_arr_int(&gf->kv[i], 0, &v) ? fallback : (int)v;
    return gguf_kv_int(&gf->kv[i], &v) ? fallback : (int)v;
}

kinfer_status kinfer_quantize(const char *in_path, const char *out_path,
                              const kinfer_quantize_params *params, char *err, size_t err_size)
{
    kinfer_quantize_params defaults = kinfer_quantize_default_params();
    if (!params) params = &defaults;
    if (err && err_size) err[0] = '\0';
    if (!in_path || !out_path || !params->ftype)
        return status_fail(err, err_size, KINFER_E_INVALID_ARG, "input, output and ftype are required");
    quant_mix mix;
    if (quant_mix_init(&mix, params->ftype))
        return status_fail(err, err_size, KINFER_E_UNSUPPORTED, "unknown ftype '%s'", params->ftype);

    kinfer_model *model = NULL;
    kinfer_status st = kinfer_model_load(in_path, NULL, &model);
    if (st) {
        status_fail(err, err_size, st, "%s", kinfer_model_errmsg(model));
        kinfer_model_free(model);
        return st;
    }
    const gguf_file *gf = model->gguf;
    const char *arch = "";
    int64_t ai = gguf_find_key(gf, "general.architecture");
    if (ai >= 0 && gf->kv[ai].type == GGUF_STR) arch = gf->kv[ai].str;

    mix.tied = gguf_find_tensor(gf, "output.weight") < 0;
    int n_head = meta_int(gf, arch, "attention.head_count", 1);
    int n_head_kv = meta_int(gf, arch, "attention.head_count_kv", n_head);
    mix.n_gqa = n_head_kv > 0 ? n_head / n_head_kv : 1;
    mix.n_expert = meta_int(gf, arch, "expert_count", 0);
    for (uint64_t i = 0; i < gf->n_tensors; i++) {
        mix.n_attn_v += name_has(gf->tensors[i].name, "attn_v.weight");
        mix.n_ffn_down += name_has(gf->tensors[i].name, "ffn_down");
    }

    gguf_writer *w = gguf_writer_new();
    int *types = calloc(gf->n_tensors ? gf->n_tensors : 1, sizeof(int));
    const gguf_tensor **order = calloc(gf->n_tensors ? gf->n_tensors : 1, sizeof *order);
    FILE *out = NULL;
    uint8_t *buf = NULL;
    kinfer_threadpool *pool = NULL;
    if (!w || !types || !order) {
        st = status_fail(err, err_size, KINFER_E_NOMEM, "out of memory");
        goto done;
    }
    /* Metadata as it was, but for the file type and the alignment we write. */
    for (uint64_t i = 0; i < gf->n_kv && !st; i++) {
        const char *key = gf->kv[i].key;
        if (!strcmp(key, "general.file_type") || !strcmp(key, "general.alignment") ||
            !strcmp(key, "general.quantization_version"))
            continue;
        st = gguf_writer_copy_kv(w, &gf->kv[i]);
    }
    if (!st) st = gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (!st) st = gguf_writer_set_u32(w, "general.file_type", quant_mix_file_type(&mix));
    for (uint64_t i = 0; i < gf->n_tensors; i++) order[i] = &gf->tensors[i];
    qsort(order, gf->n_tensors, sizeof *order, by_layer_then_name);
    uint64_t max_size = 0;
    for (uint64_t i = 0; i < gf->n_tensors && !st; i++) {
        const gguf_tensor *t = order[i];
        types[i] = quant_mix_type(&mix, t->name, t->n_dims, t->ne, (int)t->type);
        if (!kinfer_cpu_kernels_get((int)t->type) && types[i] != (int)t->type) {
            st = status_fail(err, err_size, KINFER_E_UNSUPPORTED, "tensor '%s': cannot convert from %s",
                       t->name, kinfer_type_name((int)t->type));
            break;
        }
        uint64_t size;
        st = gguf_writer_add_tensor(w, t->name, types[i], t->n_dims, t->ne, &size);
        if (size > max_size) max_size = size;
    }
    if (st) {
        if (!err || !err[0]) status_fail(err, err_size, st, "cannot build the output header");
        goto done;
    }
    out = fopen(out_path, "wb");
    if (!out) {
        st = status_fail(err, err_size, KINFER_E_IO, "%s: cannot create", out_path);
        goto done;
    }
    buf = malloc(max_size ? max_size : 1);
    if (!buf) {
        st = status_fail(err, err_size, KINFER_E_NOMEM, "out of memory for a %llu-byte tensor",
                   (unsigned long long)max_size);
        goto done;
    }
    st = gguf_writer_write_header(w, out);
    int n_threads = params->n_threads > 0 ? params->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads > 64) n_threads = 64; /* convert_job's status slots */
    pool = n_threads > 1 ? kinfer_threadpool_new(n_threads) : NULL; /* NULL: this thread alone */
    for (uint64_t i = 0; i < gf->n_tensors && !st; i++) {
        const gguf_tensor *t = order[i];
        const void *data = t->data;
        uint64_t size = t->size;
        if (types[i] != (int)t->type) {
            size = kinfer_row_size(types[i], t->ne[0]) * (t->n_elements / (uint64_t)t->ne[0]);
            st = convert_tensor(pool, t, types[i], buf);
            if (st) {
                status_fail(err, err_size, st, "tensor '%s': conversion %s -> %s failed", t->name,
                      kinfer_type_name((int)t->type), kinfer_type_name(types[i]));
                break;
            }
            data = buf;
        }
        st = gguf_writer_write_tensor_data(w, out, data, size);
        if (st) status_fail(err, err_size, st, "%s: write failed", out_path);
        if (!st && params->progress &&
            !params->progress((float)(i + 1) / (float)gf->n_tensors, params->progress_user_data))
            st = status_fail(err, err_size, KINFER_E_ABORTED, "cancelled by the progress callback");
    }

done:
    if (out && fclose(out) != 0 && !st) st = status_fail(err, err_size, KINFER_E_IO, "%s: close failed", out_path);
    if (st && out) unlink(out_path);
    kinfer_threadpool_free(pool);
    free(buf);
    free(order);
    free(types);
    gguf_writer_free(w);
    kinfer_model_free(model);
    return st;
}
