/* gguf_writer.c — write GGUF v3 files: metadata and tensor infos go into a
 * growing buffer; tensor data is streamed after it. */
#include "gguf/writer.h"

#include <stdlib.h>
#include <string.h>

#include "quant.h"

typedef struct tensor_entry {
    uint64_t size;
} tensor_entry;

struct gguf_writer {
    uint8_t *kv;            /* encoded metadata entries */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    uint8_t *ti;            /* encoded tensor infos */
    size_t ti_len, ti_cap;
    tensor_entry *tensors;
    uint64_t n_tensors, cap_tensors;
    uint64_t data_size;     /* sum of aligned tensor sizes so far */
    uint64_t next_write;    /* index of the next tensor to write */
    int oom;                /* an allocation failed; every later call fails */
};

static const uint32_t ALIGNMENT = GGUF_DEFAULT_ALIGNMENT;

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    free(w->kv);
    free(w->ti);
    free(w->tensors);
    free(w);
}

static void put(gguf_writer *w, uint8_t **buf, size_t *len, size_t *cap, const void *src, size_t n)
{
    if (w->oom) return;
    if (*len + n > *cap) {
        size_t ncap = (*len + n) * 2 + 256;
        uint8_t *p = realloc(*buf, ncap);
        if (!p) {
            w->oom = 1;
            return;
        }
        *buf = p, *cap = ncap;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
}

static void put_le(gguf_writer *w, uint8_t **buf, size_t *len, size_t *cap, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(w, buf, len, cap, b, (size_t)n);
}

#define KV_PUT(w, src, n) put(w, &(w)->kv, &(w)->kv_len, &(w)->kv_cap, src, n)
#define KV_LE(w, v, n) put_le(w, &(w)->kv, &(w)->kv_len, &(w)->kv_cap, v, n)
#define TI_PUT(w, src, n) put(w, &(w)->ti, &(w)->ti_len, &(w)->ti_cap, src, n)
#define TI_LE(w, v, n) put_le(w, &(w)->ti, &(w)->ti_len, &(w)->ti_cap, v, n)

static void kv_str(gguf_writer *w, const char *s, size_t n)
{
    KV_LE(w, n, 8);
    KV_PUT(w, s, n);
}

static kinfer_status kv_begin(gguf_writer *w, const char *key, enum gguf_vtype type)
{
    if (!w || !key || !*key) return KINFER_E_INVALID_ARG;
    kv_str(w, key, strlen(key));
    KV_LE(w, type, 4);
    w->n_kv++;
    return w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

kinfer_status gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv)
{
    kinfer_status st = kv_begin(w, kv->key, kv->type);
    if (st) return st;
    if (kv->type == GGUF_STR) {
        kv_str(w, kv->str, kv->str_len);
    } else if (kv->type == GGUF_ARR) {
        /* the elements are already in file encoding: copy them as they are */
        KV_LE(w, kv->elem_type, 4);
        KV_LE(w, kv->n_elems, 8);
        KV_PUT(w, kv->elems, kv->elems_size);
    } else {
        KV_PUT(w, kv->raw, gguf_vtype_size(kv->type));
    }
    return w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

static kinfer_status set_scalar(gguf_writer *w, const char *key, enum gguf_vtype t, uint64_t bits)
{
    kinfer_status st = kv_begin(w, key, t);
    if (st) return st;
    KV_LE(w, bits, (int)gguf_vtype_size(t));
    return w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

kinfer_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, GGUF_U32, v);
}

kinfer_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, GGUF_I32, (uint32_t)v);
}

kinfer_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return set_scalar(w, key, GGUF_F32, bits);
}

kinfer_status gguf_writer_set_bool(gguf_writer *w, const char *key, int v)
{
    return set_scalar(w, key, GGUF_BOOL, v != 0);
}

kinfer_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v)
{
    kinfer_status st = kv_begin(w, key, GGUF_STR);
    if (st) return st;
    kv_str(w, v, strlen(v));
    return w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

static kinfer_status arr_begin(gguf_writer *w, const char *key, enum gguf_vtype et, uint64_t n)
{
    kinfer_status st = kv_begin(w, key, GGUF_ARR);
    if (st) return st;
    KV_LE(w, et, 4);
    KV_LE(w, n, 8);
    return w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

kinfer_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v,
                                      uint64_t n)
{
    kinfer_status st = arr_begin(w, key, GGUF_STR, n);
    for (uint64_t i = 0; !st && i < n; i++) kv_str(w, v[i], strlen(v[i]));
    return st ? st : w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

kinfer_status gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    kinfer_status st = arr_begin(w, key, GGUF_F32, n);
    for (uint64_t i = 0; !st && i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        KV_LE(w, bits, 4);
    }
    return st ? st : w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

kinfer_status gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    kinfer_status st = arr_begin(w, key, GGUF_I32, n);
    for (uint64_t i = 0; !st && i < n; i++) KV_LE(w, (uint32_t)v[i], 4);
    return st ? st : w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

static uint64_t align_up(uint64_t x) { return (x + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT; }

kinfer_status gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                     const int64_t *ne, uint64_t *size)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    if (!w || !name || !*name || !tt || n_dims == 0 || n_dims > KINFER_MAX_DIMS)
        return KINFER_E_INVALID_ARG;
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0) return KINFER_E_INVALID_ARG;
        n *= (uint64_t)ne[d];
    }
    if (ne[0] % tt->blck_size != 0) return KINFER_E_INVALID_ARG;
    if (w->n_tensors == w->cap_tensors) {
        uint64_t ncap = w->cap_tensors * 2 + 16;
        tensor_entry *p = realloc(w->tensors, ncap * sizeof *p);
        if (!p) return KINFER_E_NOMEM;
        w->tensors = p, w->cap_tensors = ncap;
    }
    uint64_t bytes = n / (uint64_t)tt->blck_size * tt->type_size;
    w->tensors[w->n_tensors++].size = bytes;
    size_t len = strlen(name);
    TI_LE(w, len, 8);
    TI_PUT(w, name, len);
    TI_LE(w, n_dims, 4);
    for (uint32_t d = 0; d < n_dims; d++) TI_LE(w, (uint64_t)ne[d], 8);
    TI_LE(w, (uint32_t)type, 4);
    TI_LE(w, w->data_size, 8);
    w->data_size += align_up(bytes);
    if (size) *size = bytes;
    return w->oom ? KINFER_E_NOMEM : KINFER_OK;
}

static kinfer_status write_all(FILE *f, const void *p, size_t n)
{
    if (n == 0) return KINFER_OK; /* p may be NULL (no tensors): fwrite must not see it */
    return fwrite(p, 1, n, f) == n ? KINFER_OK : KINFER_E_IO;
}

static kinfer_status write_padding(FILE *f, uint64_t written)
{
    static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT];
    return write_all(f, zeros, (size_t)(align_up(written) - written));
}

kinfer_status gguf_writer_write_header(gguf_writer *w, FILE *f)
{
    if (w->oom) return KINFER_E_NOMEM;
    uint8_t head[24];
    memcpy(head, "GGUF", 4);
    uint64_t fields[3] = {3, w->n_tensors, w->n_kv};
    for (int i = 0; i < 4; i++) head[4 + i] = (uint8_t)(fields[0] >> (8 * i));
    for (int i = 0; i < 8; i++) head[8 + i] = (uint8_t)(fields[1] >> (8 * i));
    for (int i = 0; i < 8; i++) head[16 + i] = (uint8_t)(fields[2] >> (8 * i));
    kinfer_status st = write_all(f, head, sizeof head);
    if (!st) st = write_all(f, w->kv, w->kv_len);
    if (!st) st = write_all(f, w->ti, w->ti_len);
    if (!st) st = write_padding(f, sizeof head + w->kv_len + w->ti_len);
    return st;
}

kinfer_status gguf_writer_write_tensor_data(gguf_writer *w, FILE *f, const void *data,
                                            uint64_t size)
{
    if (w->next_write >= w->n_tensors || w->tensors[w->next_write].size != size)
        return KINFER_E_INVALID_ARG;
    w->next_write++;
    kinfer_status st = write_all(f, data, (size_t)size);
    return st ? st : write_padding(f, size);
}
