/*
 * gguf.c — GGUF v2/v3 reader over a byte buffer.
 *
 * The file is untrusted.  Every read goes through a cursor that checks the
 * bytes are there; every count, length, product and offset is checked for
 * overflow and against the file before it is used.  Errors name what is wrong
 * and the byte offset where it was found.
 */
#include "gguf/gguf.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* ----------------------------------------------------------------- cursor */

typedef struct cursor {
    const uint8_t *buf;
    uint64_t size;
    uint64_t pos;
    char *err;
    size_t err_size;
} cursor;

static kinfer_status fail(cursor *c, kinfer_status st, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static kinfer_status fail(cursor *c, kinfer_status st, uint64_t at, const char *fmt, ...)
{
    if (c->err && c->err_size) {
        int n = snprintf(c->err, c->err_size, "gguf: at byte %llu: ", (unsigned long long)at);
        if (n >= 0 && (size_t)n < c->err_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return st;
}

static uint64_t remaining(const cursor *c) { return c->size - c->pos; }

static kinfer_status need(cursor *c, uint64_t n, const char *what)
{
    if (n > remaining(c))
        return fail(c, KINFER_E_TRUNCATED, c->pos,
                    "file ends while reading %s (%llu bytes needed, %llu left)", what,
                    (unsigned long long)n, (unsigned long long)remaining(c));
    return KINFER_OK;
}

/* Little-endian loads that do not care about alignment. */
static uint64_t load_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static kinfer_status read_u32(cursor *c, uint32_t *out, const char *what)
{
    kinfer_status st = need(c, 4, what);
    if (st) return st;
    *out = (uint32_t)load_le(c->buf + c->pos, 4);
    c->pos += 4;
    return KINFER_OK;
}

static kinfer_status read_u64(cursor *c, uint64_t *out, const char *what)
{
    kinfer_status st = need(c, 8, what);
    if (st) return st;
    *out = load_le(c->buf + c->pos, 8);
    c->pos += 8;
    return KINFER_OK;
}

/* A GGUF string: u64 length then bytes.  Returns a view into the buffer. */
static kinfer_status read_str(cursor *c, const uint8_t **ptr, uint64_t *len, const char *what)
{
    uint64_t at = c->pos;
    kinfer_status st = read_u64(c, len, what);
    if (st) return st;
    if (*len > remaining(c))
        return fail(c, KINFER_E_TRUNCATED, at,
                    "%s claims %llu bytes but only %llu remain in the file", what,
                    (unsigned long long)*len, (unsigned long long)remaining(c));
    *ptr = c->buf + c->pos;
    c->pos += *len;
    return KINFER_OK;
}

/* ------------------------------------------------------------ value types */

size_t gguf_vtype_size(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

static int is_signed(enum gguf_vtype t)
{
    return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64;
}

static int is_integer(enum gguf_vtype t)
{
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 ||
           t == GGUF_I32 || t == GGUF_U64 || t == GGUF_I64;
}

/* Decode one fixed-size scalar at p into the three widened forms. */
static void decode_scalar(enum gguf_vtype t, const uint8_t *p, uint64_t *u, int64_t *i, double *f)
{
    size_t n = gguf_vtype_size(t);
    uint64_t raw = load_le(p, (int)n);
    *u = 0, *i = 0, *f = 0;
    switch (t) {
    case GGUF_I8: *i = (int8_t)raw; break;
    case GGUF_I16: *i = (int16_t)raw; break;
    case GGUF_I32: *i = (int32_t)raw; break;
    case GGUF_I64: memcpy(i, &raw, 8); break;
    case GGUF_F32: {
        uint32_t r32 = (uint32_t)raw;
        float fl;
        memcpy(&fl, &r32, 4);
        *f = fl;
        break;
    }
    case GGUF_F64: memcpy(f, &raw, 8); break;
    default: *u = raw; break; /* unsigned and bool */
    }
}

/*
 * Validate the elements of an array starting at the cursor and move past
 * them.  index, when not NULL, receives the offset from the first element of
 * every GGUF_STR_INDEX_STEP-th string element.  depth bounds recursion on
 * nested arrays.
 */
static kinfer_status skip_array(cursor *c, enum gguf_vtype type, uint64_t n, uint64_t *index,
                                int depth, const char *key)
{
    uint64_t start = c->pos;
    size_t esz = gguf_vtype_size(type);
    if (esz) {
        if (n > remaining(c) / esz)
            return fail(c, KINFER_E_TRUNCATED, c->pos,
                        "array '%s' of %llu elements of %zu bytes does not fit in the file", key,
                        (unsigned long long)n, esz);
        if (type == GGUF_BOOL)
            for (uint64_t j = 0; j < n; j++)
                if (c->buf[c->pos + j] > 1)
                    return fail(c, KINFER_E_FORMAT, c->pos + j,
                                "array '%s': element %llu is not a bool (%u)", key,
                                (unsigned long long)j, c->buf[c->pos + j]);
        c->pos += n * esz;
        return KINFER_OK;
    }
    if (type == GGUF_STR) {
        /* each string is at least its 8-byte length */
        if (n > remaining(c) / 8)
            return fail(c, KINFER_E_TRUNCATED, c->pos,
                        "array '%s' of %llu strings does not fit in the file", key,
                        (unsigned long long)n);
        for (uint64_t j = 0; j < n; j++) {
            const uint8_t *p;
            uint64_t len;
            if (index && j % GGUF_STR_INDEX_STEP == 0)
                index[j / GGUF_STR_INDEX_STEP] = c->pos - start;
            kinfer_status st = read_str(c, &p, &len, "a string array element");
            if (st) return st;
        }
        return KINFER_OK;
    }
    if (type == GGUF_ARR) {
        if (depth >= GGUF_MAX_ARRAY_DEPTH)
            return fail(c, KINFER_E_FORMAT, c->pos,
                        "array '%s' nests deeper than %d levels", key, GGUF_MAX_ARRAY_DEPTH);
        /* each nested array is at least its 4-byte type and 8-byte count */
        if (n > remaining(c) / 12)
            return fail(c, KINFER_E_TRUNCATED, c->pos,
                        "array '%s' of %llu arrays does not fit in the file", key,
                        (unsigned long long)n);
        for (uint64_t j = 0; j < n; j++) {
            uint32_t sub_type;
            uint64_t sub_n;
            uint64_t at = c->pos;
            kinfer_status st = read_u32(c, &sub_type, "a nested array's type");
            if (!st) st = read_u64(c, &sub_n, "a nested array's length");
            if (st) return st;
            if (sub_type >= GGUF_NTYPES)
                return fail(c, KINFER_E_FORMAT, at, "array '%s': nested array has unknown type %u",
                            key, sub_type);
            st = skip_array(c, (enum gguf_vtype)sub_type, sub_n, NULL, depth + 1, key);
            if (st) return st;
        }
        return KINFER_OK;
    }
    return fail(c, KINFER_E_FORMAT, c->pos, "array '%s' has unknown element type %d", key, type);
}

/* --------------------------------------------------------------- parsing */

/* Storage for the NUL-terminated copies, carved from one allocation. */
typedef struct pool {
    char *mem;
    uint64_t used, cap;
} pool;

static const char *pool_copy(pool *p, const uint8_t *s, uint64_t len)
{
    char *dst = p->mem + p->used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    p->used += len + 1;
    return dst;
}

struct gguf_owned {
    gguf_file pub;
    char *pool_mem;
};

void gguf_free(gguf_file *gf)
{
    if (!gf) return;
    for (uint64_t i = 0; gf->kv && i < gf->n_kv; i++) free(gf->kv[i].str_index);
    free(gf->kv);
    free(gf->tensors);
    free(((struct gguf_owned *)gf)->pool_mem);
    free(gf);
}

static int key_is_sane(const uint8_t *s, uint64_t len)
{
    if (len == 0) return 0;
    for (uint64_t i = 0; i < len; i++)
        if (s[i] == 0) return 0;
    return 1;
}

static kinfer_status parse_kv(cursor *c, gguf_kv *kv, pool *strings)
{
    const uint8_t *key;
    uint64_t key_len;
    uint32_t type;
    kv->file_offset = c->pos;
    kinfer_status st = read_str(c, &key, &key_len, "a metadata key");
    if (st) return st;
    if (!key_is_sane(key, key_len))
        return fail(c, KINFER_E_FORMAT, kv->file_offset,
                    "metadata key is empty or contains a NUL byte");
    kv->key = pool_copy(strings, key, key_len);

    uint64_t type_at = c->pos;
    st = read_u32(c, &type, "a metadata value type");
    if (st) return st;
    if (type >= GGUF_NTYPES)
        return fail(c, KINFER_E_FORMAT, type_at, "key '%s' has unknown value type %u", kv->key,
                    type);
    kv->type = (enum gguf_vtype)type;

    if (kv->type == GGUF_STR) {
        const uint8_t *s;
        st = read_str(c, &s, &kv->str_len, "a string value");
        if (st) return fail(c, st, type_at + 4, "string value of key '%s' is truncated", kv->key);
        kv->str = pool_copy(strings, s, kv->str_len);
        return KINFER_OK;
    }
    if (kv->type == GGUF_ARR) {
        uint32_t et;
        uint64_t at = c->pos;
        st = read_u32(c, &et, "an array element type");
        if (!st) st = read_u64(c, &kv->n_elems, "an array length");
        if (st) return st;
        if (et >= GGUF_NTYPES)
            return fail(c, KINFER_E_FORMAT, at, "key '%s': array has unknown element type %u",
                        kv->key, et);
        kv->elem_type = (enum gguf_vtype)et;
        kv->elems = c->buf + c->pos;
        if (kv->elem_type == GGUF_STR && kv->n_elems <= remaining(c) / 8) {
            uint64_t n_index = kv->n_elems / GGUF_STR_INDEX_STEP + 1;
            kv->str_index = malloc(n_index * sizeof(uint64_t));
            if (!kv->str_index)
                return fail(c, KINFER_E_NOMEM, at, "out of memory indexing array '%s'", kv->key);
        }
        uint64_t start = c->pos;
        st = skip_array(c, kv->elem_type, kv->n_elems, kv->str_index, 0, kv->key);
        if (st) return st;
        kv->elems_size = c->pos - start;
        return KINFER_OK;
    }
    size_t n = gguf_vtype_size(kv->type);
    st = need(c, n, "a metadata value");
    if (st) return fail(c, st, c->pos, "value of key '%s' is truncated", kv->key);
    kv->raw = c->buf + c->pos;
    decode_scalar(kv->type, kv->raw, &kv->u64, &kv->i64, &kv->f64);
    if (kv->type == GGUF_BOOL && kv->u64 > 1)
        return fail(c, KINFER_E_FORMAT, c->pos, "key '%s': bool value is %llu", kv->key,
                    (unsigned long long)kv->u64);
    c->pos += n;
    return KINFER_OK;
}

static kinfer_status parse_tensor_info(cursor *c, gguf_tensor *t, pool *strings)
{
    const uint8_t *name;
    uint64_t name_len;
    uint64_t at = c->pos;
    kinfer_status st = read_str(c, &name, &name_len, "a tensor name");
    if (st) return st;
    if (!key_is_sane(name, name_len))
        return fail(c, KINFER_E_FORMAT, at, "tensor name is empty or contains a NUL byte");
    t->name = pool_copy(strings, name, name_len);

    at = c->pos;
    st = read_u32(c, &t->n_dims, "a tensor's dimension count");
    if (st) return st;
    if (t->n_dims == 0 || t->n_dims > KINFER_MAX_DIMS)
        return fail(c, KINFER_E_FORMAT, at, "tensor '%s' has %u dimensions (1 to %d allowed)",
                    t->name, t->n_dims, KINFER_MAX_DIMS);
    uint64_t n_elements = 1;
    for (int d = 0; d < KINFER_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        at = c->pos;
        st = read_u64(c, &ne, "a tensor dimension");
        if (st) return st;
        if (ne > INT64_MAX)
            return fail(c, KINFER_E_FORMAT, at, "tensor '%s': dimension %u is %llu, too large",
                        t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (ne != 0 && n_elements > INT64_MAX / ne)
            return fail(c, KINFER_E_FORMAT, at,
                        "tensor '%s': the product of its dimensions overflows", t->name);
        n_elements *= ne;
    }
    t->n_elements = n_elements;

    at = c->pos;
    st = read_u32(c, &t->type, "a tensor type");
    if (st) return st;
    const kinfer_type_traits *tt = kinfer_type_traits_get((int)t->type);
    if (!tt)
        return fail(c, KINFER_E_UNSUPPORTED, at, "tensor '%s' has unknown type %u", t->name,
                    t->type);
    if (t->ne[0] % tt->blck_size != 0)
        return fail(c, KINFER_E_FORMAT, at,
                    "tensor '%s': row length %lld is not a multiple of the %s block size %lld",
                    t->name, (long long)t->ne[0], tt->name, (long long)tt->blck_size);
    uint64_t n_blocks = n_elements / (uint64_t)tt->blck_size;
    if (n_blocks > UINT64_MAX / tt->type_size)
        return fail(c, KINFER_E_FORMAT, at, "tensor '%s': byte size overflows", t->name);
    t->size = n_blocks * tt->type_size;

    return read_u64(c, &t->offset, "a tensor offset");
}

kinfer_status gguf_parse(const void *buf, size_t size, gguf_file **out, char *err,
                         size_t err_size)
{
    cursor cur = {.buf = buf, .size = size, .err = err, .err_size = err_size};
    cursor *c = &cur;
    kinfer_status st;
    *out = NULL;
    if (err && err_size) err[0] = '\0';
    if (!buf && size)
        return fail(c, KINFER_E_INVALID_ARG, 0, "NULL buffer of %zu bytes", size);

    st = need(c, 4, "the magic");
    if (st) return st;
    if (memcmp(c->buf, "GGUF", 4) != 0)
        return fail(c, KINFER_E_FORMAT, 0, "not a GGUF file (magic is not \"GGUF\")");
    c->pos = 4;

    uint32_t version;
    st = read_u32(c, &version, "the version");
    if (st) return st;
    if (version != 2 && version != 3) {
        /* A byte-swapped small number means the file was written big-endian. */
        uint32_t swapped = __builtin_bswap32(version);
        if (version & 0xffff0000u && swapped >= 1 && swapped <= 3)
            return fail(c, KINFER_E_UNSUPPORTED, 4,
                        "big-endian GGUF files are not supported (version reads as %u swapped)",
                        swapped);
        return fail(c, KINFER_E_UNSUPPORTED, 4,
                    "GGUF version %u is not supported (only versions 2 and 3)", version);
    }

    uint64_t n_tensors, n_kv;
    uint64_t counts_at = c->pos;
    st = read_u64(c, &n_tensors, "the tensor count");
    if (!st) st = read_u64(c, &n_kv, "the metadata count");
    if (st) return st;
    /* The smallest possible entry bounds what the rest of the file can hold:
     * a kv is >= 8 (key length) + 4 (type) + 1 (value) bytes; a tensor info
     * >= 8 (name length) + 4 (dims) + 8 (one dim) + 4 (type) + 8 (offset). */
    if (n_kv > remaining(c) / 13)
        return fail(c, KINFER_E_TRUNCATED, counts_at + 8,
                    "metadata count %llu is more than the file could hold",
                    (unsigned long long)n_kv);
    if (n_tensors > remaining(c) / 32)
        return fail(c, KINFER_E_TRUNCATED, counts_at,
                    "tensor count %llu is more than the file could hold",
                    (unsigned long long)n_tensors);

    struct gguf_owned *owned = calloc(1, sizeof(*owned));
    if (!owned) return fail(c, KINFER_E_NOMEM, 0, "out of memory");
    gguf_file *gf = &owned->pub;
    gf->version = version;
    gf->buf = buf;
    gf->size = size;
    gf->alignment = GGUF_DEFAULT_ALIGNMENT;
    /* The copied strings are disjoint pieces of the file, each with one NUL
     * added (a key and maybe a string value per kv, a name per tensor). */
    pool strings = {0};
    strings.cap = (uint64_t)size + 2 * n_kv + n_tensors + 1;
    owned->pool_mem = strings.mem = malloc(strings.cap);
    gf->kv = calloc(n_kv ? n_kv : 1, sizeof(gguf_kv));
    gf->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(gguf_tensor));
    if (!strings.mem || !gf->kv || !gf->tensors) {
        gguf_free(gf);
        return fail(c, KINFER_E_NOMEM, 0, "out of memory for %llu keys and %llu tensors",
                    (unsigned long long)n_kv, (unsigned long long)n_tensors);
    }

    for (uint64_t i = 0; i < n_kv; i++) {
        gf->n_kv = i + 1; /* so gguf_free releases what this entry allocated */
        st = parse_kv(c, &gf->kv[i], &strings);
        if (st) goto failed;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(gf->kv[j].key, gf->kv[i].key) == 0) {
                st = fail(c, KINFER_E_FORMAT, gf->kv[i].file_offset,
                          "duplicate metadata key '%s'", gf->kv[i].key);
                goto failed;
            }
    }

    int64_t ai = gguf_find_key(gf, "general.alignment");
    if (ai >= 0) {
        const gguf_kv *kv = &gf->kv[ai];
        if (kv->type != GGUF_U32 || kv->u64 == 0 || (kv->u64 & (kv->u64 - 1)) != 0) {
            st = fail(c, KINFER_E_FORMAT, kv->file_offset,
                      "general.alignment must be a u32 power of two");
            goto failed;
        }
        gf->alignment = (uint32_t)kv->u64;
    }

    gf->tensor_info_offset = c->pos;
    for (uint64_t i = 0; i < n_tensors; i++) {
        st = parse_tensor_info(c, &gf->tensors[i], &strings);
        if (st) goto failed;
        gf->n_tensors = i + 1;
    }

    /* The data section starts at the next multiple of the alignment. */
    uint64_t data_offset = c->pos + (gf->alignment - c->pos % gf->alignment) % gf->alignment;
    if (n_tensors > 0 && data_offset > size) {
        st = fail(c, KINFER_E_TRUNCATED, c->pos,
                  "file ends before its data section (at %llu)", (unsigned long long)data_offset);
        goto failed;
    }
    gf->data_offset = data_offset;
    uint64_t data_size = data_offset <= size ? size - data_offset : 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &gf->tensors[i];
        if (t->offset % gf->alignment != 0) {
            st = fail(c, KINFER_E_FORMAT, data_offset,
                      "tensor '%s': data offset %llu is not a multiple of the alignment %u",
                      t->name, (unsigned long long)t->offset, gf->alignment);
            goto failed;
        }
        if (t->offset > data_size || t->size > data_size - t->offset) {
            st = fail(c, KINFER_E_TRUNCATED, data_offset,
                      "tensor '%s': data [%llu, +%llu) lies past the end of the file "
                      "(data section is %llu bytes)",
                      t->name, (unsigned long long)t->offset, (unsigned long long)t->size,
                      (unsigned long long)data_size);
            goto failed;
        }
        t->data = gf->buf + data_offset + t->offset;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(gf->tensors[j].name, t->name) == 0) {
                st = fail(c, KINFER_E_FORMAT, data_offset, "duplicate tensor name '%s'",
                          t->name);
                goto failed;
            }
    }
    *out = gf;
    return KINFER_OK;

failed:
    gguf_free(gf);
    return st;
}

/* ----------------------------------------------------------------- access */

int64_t gguf_find_key(const gguf_file *gf, const char *key)
{
    for (uint64_t i = 0; i < gf->n_kv; i++)
        if (strcmp(gf->kv[i].key, key) == 0) return (int64_t)i;
    return -1;
}

const gguf_kv *gguf_get(const gguf_file *gf, const char *key)
{
    const int64_t i = gguf_find_key(gf, key);
    return i >= 0 ? &gf->kv[i] : NULL;
}

kinfer_status gguf_kv_str(const gguf_kv *kv, const char **out)
{
    if (kv->type != GGUF_STR) return KINFER_E_TYPE_MISMATCH;
    *out = kv->str;
    return KINFER_OK;
}

int64_t gguf_find_tensor(const gguf_file *gf, const char *name)
{
    for (uint64_t i = 0; i < gf->n_tensors; i++)
        if (strcmp(gf->tensors[i].name, name) == 0) return (int64_t)i;
    return -1;
}

/* Integer conversion shared by scalars and array elements. */
static kinfer_status to_int(enum gguf_vtype t, uint64_t u, int64_t i, int64_t *out)
{
    if (!is_integer(t) && t != GGUF_BOOL) return KINFER_E_TYPE_MISMATCH;
    if (is_signed(t)) {
        *out = i;
        return KINFER_OK;
    }
    if (u > INT64_MAX) return KINFER_E_TYPE_MISMATCH;
    *out = (int64_t)u;
    return KINFER_OK;
}

kinfer_status gguf_kv_int(const gguf_kv *kv, int64_t *out)
{
    return to_int(kv->type, kv->u64, kv->i64, out);
}

kinfer_status gguf_kv_uint(const gguf_kv *kv, uint64_t *out)
{
    if (!is_integer(kv->type) && kv->type != GGUF_BOOL) return KINFER_E_TYPE_MISMATCH;
    if (is_signed(kv->type)) {
        if (kv->i64 < 0) return KINFER_E_TYPE_MISMATCH;
        *out = (uint64_t)kv->i64;
    } else {
        *out = kv->u64;
    }
    return KINFER_OK;
}

kinfer_status gguf_kv_float(const gguf_kv *kv, double *out)
{
    if (kv->type != GGUF_F32 && kv->type != GGUF_F64) return KINFER_E_TYPE_MISMATCH;
    *out = kv->f64;
    return KINFER_OK;
}

kinfer_status gguf_kv_bool(const gguf_kv *kv, int *out)
{
    if (kv->type != GGUF_BOOL) return KINFER_E_TYPE_MISMATCH;
    *out = kv->u64 != 0;
    return KINFER_OK;
}

static kinfer_status arr_elem(const gguf_kv *kv, uint64_t j, uint64_t *u, int64_t *i, double *f)
{
    if (kv->type != GGUF_ARR) return KINFER_E_TYPE_MISMATCH;
    if (j >= kv->n_elems) return KINFER_E_NOT_FOUND;
    size_t esz = gguf_vtype_size(kv->elem_type);
    if (!esz) return KINFER_E_TYPE_MISMATCH;
    decode_scalar(kv->elem_type, kv->elems + j * esz, u, i, f);
    return KINFER_OK;
}

kinfer_status gguf_arr_int(const gguf_kv *kv, uint64_t j, int64_t *out)
{
    uint64_t u;
    int64_t i;
    double f;
    kinfer_status st = arr_elem(kv, j, &u, &i, &f);
    return st ? st : to_int(kv->elem_type, u, i, out);
}

kinfer_status gguf_arr_float(const gguf_kv *kv, uint64_t j, double *out)
{
    uint64_t u;
    int64_t i;
    double f;
    kinfer_status st = arr_elem(kv, j, &u, &i, &f);
    if (st) return st;
    if (kv->elem_type != GGUF_F32 && kv->elem_type != GGUF_F64) return KINFER_E_TYPE_MISMATCH;
    *out = f;
    return KINFER_OK;
}

kinfer_status gguf_arr_str(const gguf_kv *kv, uint64_t j, const char **out, size_t *len)
{
    if (kv->type != GGUF_ARR || kv->elem_type != GGUF_STR) return KINFER_E_TYPE_MISMATCH;
    if (j >= kv->n_elems) return KINFER_E_NOT_FOUND;
    /* the indexed string before j, then skip (validated by the parser) */
    const uint8_t *p = kv->elems + kv->str_index[j / GGUF_STR_INDEX_STEP];
    for (uint64_t k = j % GGUF_STR_INDEX_STEP; k > 0; k--) p += 8 + load_le(p, 8);
    *len = (size_t)load_le(p, 8);
    *out = (const char *)p + 8;
    return KINFER_OK;
}

/* ------------------------------------------------------------- formatting */

/* An output that counts what it would write and writes what fits. */
typedef struct sink {
    char *buf;
    size_t size;
    uint64_t len;
} sink;

static void sink_putn(sink *s, const char *p, size_t n)
{
    for (size_t k = 0; k < n; k++, s->len++)
        if (s->len + 1 < s->size) s->buf[s->len] = p[k];
}

static void sink_printf(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sink_printf(sink *s, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sink_putn(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void format_string(sink *s, const uint8_t *p, uint64_t len)
{
    sink_putn(s, "\"", 1);
    for (uint64_t k = 0; k < len; k++) {
        uint8_t ch = p[k];
        switch (ch) {
        case '"': sink_putn(s, "\\\"", 2); break;
        case '\\': sink_putn(s, "\\\\", 2); break;
        case '\n': sink_putn(s, "\\n", 2); break;
        case '\r': sink_putn(s, "\\r", 2); break;
        case '\t': sink_putn(s, "\\t", 2); break;
        default:
            if (ch < 0x20 || ch == 0x7f) sink_printf(s, "\\u%04x", ch);
            else sink_putn(s, (const char *)&ch, 1);
        }
    }
    sink_putn(s, "\"", 1);
}

static void format_scalar(sink *s, enum gguf_vtype t, const uint8_t *p)
{
    uint64_t u;
    int64_t i;
    double f;
    decode_scalar(t, p, &u, &i, &f);
    if (t == GGUF_BOOL) sink_printf(s, "%s", u ? "true" : "false");
    else if (t == GGUF_F32) sink_printf(s, "%.9g", f);
    else if (t == GGUF_F64) sink_printf(s, "%.17g", f);
    else if (is_signed(t)) sink_printf(s, "%lld", (long long)i);
    else sink_printf(s, "%llu", (unsigned long long)u);
}

/* Format an array whose elements start at p (already validated); returns the
 * bytes the elements span so nested arrays can be walked. */
static uint64_t format_array(sink *s, enum gguf_vtype t, uint64_t n, const uint8_t *p,
                             uint64_t max_elems)
{
    const uint8_t *start = p;
    size_t esz = gguf_vtype_size(t);
    sink_putn(s, "[", 1);
    for (uint64_t j = 0; j < n; j++) {
        int shown = max_elems == 0 || j < max_elems;
        if (shown && j) sink_putn(s, ", ", 2);
        if (esz) {
            if (shown) format_scalar(s, t, p);
            p += esz;
            if (!shown) { p += (n - j - 1) * esz; break; }
        } else if (t == GGUF_STR) {
            uint64_t len = load_le(p, 8);
            if (shown) format_string(s, p + 8, len);
            p += 8 + len;
        } else { /* nested array */
            enum gguf_vtype sub_t = (enum gguf_vtype)load_le(p, 4);
            uint64_t sub_n = load_le(p + 4, 8);
            sink dummy = {0};
            p += 12;
            p += format_array(shown ? s : &dummy, sub_t, sub_n, p, max_elems);
        }
    }
    if (max_elems && n > max_elems) sink_printf(s, ", ... (%llu total)", (unsigned long long)n);
    sink_putn(s, "]", 1);
    return (uint64_t)(p - start);
}

int64_t gguf_kv_format(const gguf_kv *kv, uint64_t max_elems, char *buf, size_t size)
{
    sink s = {.buf = buf, .size = size};
    if (kv->type == GGUF_STR) format_string(&s, (const uint8_t *)kv->str, kv->str_len);
    else if (kv->type == GGUF_ARR) format_array(&s, kv->elem_type, kv->n_elems, kv->elems, max_elems);
    else format_scalar(&s, kv->type, kv->raw);
    if (size) buf[s.len < size ? s.len : size - 1] = '\0';
    if (s.len > INT64_MAX) return INT64_MIN;
    return s.len < size ? (int64_t)s.len : -(int64_t)s.len;
}
