/*
 * gguf.h — GGUF v2/v3 reader over a byte buffer (internal).
 *
 * gguf_parse() validates everything it indexes: after it succeeds, every
 * string, array and tensor it hands out lies inside the buffer.  It never
 * copies tensor data; keys, tensor names and scalar strings are copied into
 * NUL-terminated storage owned by the gguf_file.
 */
#ifndef KINFER_GGUF_H
#define KINFER_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 8 /* nesting limit: arrays of arrays of ... */
/* A sparse index keeps string arrays cheap: 8 bytes per 16 strings instead
 * of per string (a 262k-token vocabulary: 128 KiB, not 2 MiB), for at most
 * 15 length prefixes skipped per lookup. */
#define GGUF_STR_INDEX_STEP 16

enum gguf_vtype {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STR = 8,
    GGUF_ARR = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
    GGUF_NTYPES
};

typedef struct gguf_kv {
    const char *key;        /* NUL-terminated copy */
    enum gguf_vtype type;
    uint64_t file_offset;   /* where the entry starts, for messages */

    /* scalars: the value's bytes in the buffer, and the value widened (u64 holds U8..U64 and BOOL, i64 holds
     * I8..I64, f64 holds F32/F64) */
    const uint8_t *raw;
    uint64_t u64;
    int64_t i64;
    double f64;

    /* GGUF_STR: NUL-terminated copy and its length (may contain NULs) */
    const char *str;
    uint64_t str_len;

    /* GGUF_ARR */
    enum gguf_vtype elem_type;
    uint64_t n_elems;
    const uint8_t *elems;   /* first element's bytes, inside the buffer */
    uint64_t elems_size;    /* bytes spanned by all elements */
    uint64_t *str_index;    /* GGUF_STR elements: offset from elems of every
                             * GGUF_STR_INDEX_STEP-th one (its length prefix);
                             * the ones between are reached by skipping */
} gguf_kv;

typedef struct gguf_tensor {
    const char *name;       /* NUL-terminated copy */
    uint32_t type;          /* a kinfer_type with a known size */
    uint32_t n_dims;
    int64_t ne[KINFER_MAX_DIMS];
    uint64_t n_elements;
    uint64_t offset;        /* from the start of the data section */
    uint64_t size;          /* bytes */
    const void *data;       /* inside the buffer */
} gguf_tensor;

typedef struct gguf_file {
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t tensor_info_offset; /* where the tensor table starts */
    uint64_t data_offset;   /* start of the aligned data section in the file */
    const uint8_t *buf;
    size_t size;
} gguf_file;

/*
 * Parse and validate a GGUF image.  The buffer must outlive the result.  On
 * failure returns KINFER_E_FORMAT / _TRUNCATED / _UNSUPPORTED / _NOMEM and
 * writes a message naming the problem and its byte offset into err.
 */
kinfer_status gguf_parse(const void *buf, size_t size, gguf_file **out, char *err,
                         size_t err_size);
void gguf_free(gguf_file *gf);

int64_t gguf_find_key(const gguf_file *gf, const char *key);
/* The value of key, or NULL when the file has none. */
const gguf_kv *gguf_get(const gguf_file *gf, const char *key);
int64_t gguf_find_tensor(const gguf_file *gf, const char *name);

/* Bytes of one element of a fixed-size value type; 0 for STR and ARR. */
size_t gguf_vtype_size(enum gguf_vtype t);

/* Typed access to scalars and array elements, with the conversions described
 * for kinfer_meta_get_*() in kinfer.h. */
kinfer_status gguf_kv_int(const gguf_kv *kv, int64_t *out);
kinfer_status gguf_kv_uint(const gguf_kv *kv, uint64_t *out);
kinfer_status gguf_kv_float(const gguf_kv *kv, double *out);
kinfer_status gguf_kv_bool(const gguf_kv *kv, int *out);
/* KINFER_E_TYPE_MISMATCH unless kv is a string. */
kinfer_status gguf_kv_str(const gguf_kv *kv, const char **out);
kinfer_status gguf_arr_int(const gguf_kv *kv, uint64_t j, int64_t *out);
kinfer_status gguf_arr_float(const gguf_kv *kv, uint64_t j, double *out);
kinfer_status gguf_arr_str(const gguf_kv *kv, uint64_t j, const char **out, size_t *len);

/* Format a value as text (see kinfer_meta_format). */
int64_t gguf_kv_format(const gguf_kv *kv, uint64_t max_elems, char *buf, size_t size);

#endif /* KINFER_GGUF_H */
