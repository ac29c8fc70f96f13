/*
 * meta.c — a loaded model's metadata and tensor table as the public API
 * reads them (kinfer_meta_*, kinfer_tensor_*).
 */
#include <string.h>

#include "model/model.h"

/* ---------------------------------------------------------------- metadata */

static const gguf_kv *kv_at(const kinfer_model *model, int64_t i)
{
    if (!model || !model->gguf || i < 0 || (uint64_t)i >= model->gguf->n_kv) return NULL;
    return &model->gguf->kv[i];
}

int64_t kinfer_meta_count(const kinfer_model *model)
{
    return model && model->gguf ? (int64_t)model->gguf->n_kv : 0;
}

const char *kinfer_meta_key(const kinfer_model *model, int64_t i)
{
    const gguf_kv *kv = kv_at(model, i);
    return kv ? kv->key : NULL;
}

int64_t kinfer_meta_find(const kinfer_model *model, const char *key)
{
    if (!model || !model->gguf || !key) return -1;
    return gguf_find_key(model->gguf, key);
}

kinfer_status kinfer_meta_type(const kinfer_model *model, int64_t i, kinfer_value_type *type,
                               kinfer_value_type *elem_type, uint64_t *n_elems)
{
    const gguf_kv *kv = kv_at(model, i);
    if (!kv) return KINFER_E_NOT_FOUND;
    if (type) *type = (kinfer_value_type)kv->type;
    if (elem_type) *elem_type = (kinfer_value_type)(kv->type == GGUF_ARR ? kv->elem_type : kv->type);
    if (n_elems) *n_elems = kv->type == GGUF_ARR ? kv->n_elems : 1;
    return KINFER_OK;
}

static const gguf_kv *kv_by_key(const kinfer_model *model, const char *key)
{
    return kv_at(model, kinfer_meta_find(model, key));
}

kinfer_status kinfer_meta_get_int(const kinfer_model *model, const char *key, int64_t *out)
{
    const gguf_kv *kv = kv_by_key(model, key);
    return kv ? gguf_kv_int(kv, out) : KINFER_E_NOT_FOUND;
}

kinfer_status kinfer_meta_get_uint(const kinfer_model *model, const char *key, uint64_t *out)
{
    const gguf_kv *kv = kv_by_key(model, key);
    return kv ? gguf_kv_uint(kv, out) : KINFER_E_NOT_FOUND;
}

kinfer_status kinfer_meta_get_float(const kinfer_model *model, const char *key, double *out)
{
    const gguf_kv *kv = kv_by_key(model, key);
    return kv ? gguf_kv_float(kv, out) : KINFER_E_NOT_FOUND;
}

kinfer_status kinfer_meta_get_bool(const kinfer_model *model, const char *key, bool *out)
{
    const gguf_kv *kv = kv_by_key(model, key);
    if (!kv) return KINFER_E_NOT_FOUND;
    int b;
    kinfer_status st = gguf_kv_bool(kv, &b);
    if (!st) *out = b != 0;
    return st;
}

kinfer_status kinfer_meta_get_str(const kinfer_model *model, const char *key, const char **out)
{
    const gguf_kv *kv = kv_by_key(model, key);
    return kv ? gguf_kv_str(kv, out) : KINFER_E_NOT_FOUND;
}

kinfer_status kinfer_meta_array_int(const kinfer_model *model, int64_t i, uint64_t j,
                                    int64_t *out)
{
    const gguf_kv *kv = kv_at(model, i);
    return kv ? gguf_arr_int(kv, j, out) : KINFER_E_NOT_FOUND;
}

kinfer_status kinfer_meta_array_float(const kinfer_model *model, int64_t i, uint64_t j,
                                      double *out)
{
    const gguf_kv *kv = kv_at(model, i);
    return kv ? gguf_arr_float(kv, j, out) : KINFER_E_NOT_FOUND;
}

kinfer_status kinfer_meta_array_str(const kinfer_model *model, int64_t i, uint64_t j,
                                    const char **out, size_t *len)
{
    const gguf_kv *kv = kv_at(model, i);
    return kv ? gguf_arr_str(kv, j, out, len) : KINFER_E_NOT_FOUND;
}

int64_t kinfer_meta_format(const kinfer_model *model, int64_t i, uint64_t max_elems, char *buf,
                           size_t size)
{
    const gguf_kv *kv = kv_at(model, i);
    if (!kv) {
        if (buf && size) buf[0] = '\0';
        return 0;
    }
    if (!buf) size = 0;
    return gguf_kv_format(kv, max_elems, buf, size);
}

/* ------------------------------------------------------------------ tensors */

int64_t kinfer_tensor_count(const kinfer_model *model)
{
    return model && model->gguf ? (int64_t)model->gguf->n_tensors : 0;
}

int64_t kinfer_tensor_find(const kinfer_model *model, const char *name)
{
    if (!model || !model->gguf || !name) return -1;
    return gguf_find_tensor(model->gguf, name);
}

kinfer_status kinfer_tensor_get_info(const kinfer_model *model, int64_t i, kinfer_tensor_info *out)
{
    if (!model || !model->gguf || i < 0 || (uint64_t)i >= model->gguf->n_tensors)
        return KINFER_E_NOT_FOUND;
    if (!out) return KINFER_E_INVALID_ARG;
    const gguf_tensor *t = &model->gguf->tensors[i];
    out->name = t->name;
    out->type = (kinfer_type)t->type;
    out->n_dims = t->n_dims;
    memcpy(out->ne, t->ne, sizeof out->ne);
    out->n_elements = t->n_elements;
    out->offset = model->gguf->data_offset + t->offset;
    out->size = t->size;
    return KINFER_OK;
}
