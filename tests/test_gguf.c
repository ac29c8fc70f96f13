/*
 * test_gguf.c — the GGUF reader: real models read correctly, every value
 * type round-trips, and hostile files get the expected status, never a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "model/model.h"
#include "kinfer.h"
#include "testutil.h"

/* ------------------------------------------------ a little GGUF writer */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_le(bytes *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t x = (uint8_t)(v >> (8 * i));
        put(b, &x, 1);
    }
}
static void put_u32(bytes *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(bytes *b, uint64_t v) { put_le(b, v, 8); }
static void put_str(bytes *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void put_kv_u32(bytes *b, const char *key, uint32_t v)
{
    put_str(b, key);
    put_u32(b, GGUF_U32);
    put_u32(b, v);
}
/* A tensor info for a 1-D or 2-D tensor. */
static void put_tensor(bytes *b, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1,
                       uint64_t offset)
{
    put_str(b, name);
    put_u32(b, ne1 ? 2 : 1);
    put_u64(b, ne0);
    if (ne1) put_u64(b, ne1);
    put_u32(b, type);
    put_u64(b, offset);
}
static void pad_to(bytes *b, size_t align)
{
    while (b->n % align) put_le(b, 0, 1);
}

/* Parse b, check the status, and return the message for further checks. */
static char errbuf[512];
static kinfer_status parse(const bytes *b)
{
    gguf_file *gf = NULL;
    kinfer_status st = gguf_parse(b->p, b->n, &gf, errbuf, sizeof errbuf);
    if (st == KINFER_OK) {
        ck_assert_ptr_nonnull(gf);
        gguf_free(gf);
    } else {
        ck_assert_ptr_null(gf);
        ck_assert_msg(errbuf[0] != '\0', "a failure must come with a message");
    }
    return st;
}

#define ck_assert_status(b, expected)                                                      \
    do {                                                                                   \
        kinfer_status st_ = parse(b);                                                      \
        ck_assert_msg(st_ == (expected), "got %s (%s), expected %s", kinfer_status_str(st_), \
                      errbuf, kinfer_status_str(expected));                               \
    } while (0)

/* A valid file with one tensor, used as the base of several cases. */
static void valid_file(bytes *b)
{
    put_header(b, 3, 1, 1);
    put_kv_u32(b, "general.alignment", 32);
    put_tensor(b, "w", KINFER_TYPE_F32, 4, 2, 0);
    pad_to(b, 32);
    for (int i = 0; i < 8; i++) put_u32(b, 0x3f800000); /* 1.0f */
}

/* -------------------------------------------------------------- valid */

START_TEST(test_every_value_type)
{
    bytes b = {0};
    put_header(&b, 3, 0, 15);
    put_str(&b, "u8"), put_u32(&b, GGUF_U8), put_le(&b, 200, 1);
    put_str(&b, "i8"), put_u32(&b, GGUF_I8), put_le(&b, (uint8_t)-5, 1);
    put_str(&b, "u16"), put_u32(&b, GGUF_U16), put_le(&b, 65000, 2);
    put_str(&b, "i16"), put_u32(&b, GGUF_I16), put_le(&b, (uint16_t)-300, 2);
    put_str(&b, "u32"), put_u32(&b, GGUF_U32), put_u32(&b, 4000000000u);
    put_str(&b, "i32"), put_u32(&b, GGUF_I32), put_u32(&b, (uint32_t)-70000);
    put_str(&b, "f32"), put_u32(&b, GGUF_F32), put_u32(&b, 0x3fc00000); /* 1.5 */
    put_str(&b, "bool"), put_u32(&b, GGUF_BOOL), put_le(&b, 1, 1);
    put_str(&b, "str"), put_u32(&b, GGUF_STR), put_str(&b, "h\"i\n");
    put_str(&b, "u64"), put_u32(&b, GGUF_U64), put_u64(&b, UINT64_MAX);
    put_str(&b, "i64"), put_u32(&b, GGUF_I64), put_u64(&b, (uint64_t)INT64_MIN);
    put_str(&b, "f64"), put_u32(&b, GGUF_F64), put_u64(&b, 0x4009000000000000ull); /* 3.125 */
    put_str(&b, "arr_i32"), put_u32(&b, GGUF_ARR), put_u32(&b, GGUF_I32), put_u64(&b, 3);
    put_u32(&b, 1), put_u32(&b, (uint32_t)-2), put_u32(&b, 3);
    put_str(&b, "arr_str"), put_u32(&b, GGUF_ARR), put_u32(&b, GGUF_STR), put_u64(&b, 2);
    put_str(&b, "ab"), put_str(&b, "");
    /* [[1, 2], [], [3]] of u8 */
    put_str(&b, "nested"), put_u32(&b, GGUF_ARR), put_u32(&b, GGUF_ARR), put_u64(&b, 3);
    put_u32(&b, GGUF_U8), put_u64(&b, 2), put_le(&b, 1, 1), put_le(&b, 2, 1);
    put_u32(&b, GGUF_U8), put_u64(&b, 0);
    put_u32(&b, GGUF_U8), put_u64(&b, 1), put_le(&b, 3, 1);

    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load_from_buffer(b.p, b.n, NULL, &m), KINFER_OK);
    ck_assert_int_eq(kinfer_meta_count(m), 15);
    int64_t i64;
    uint64_t u64;
    double f;
    bool bo;
    const char *s;
    ck_assert_int_eq(kinfer_meta_get_int(m, "u8", &i64), KINFER_OK); ck_assert_int_eq(i64, 200);
    ck_assert_int_eq(kinfer_meta_get_int(m, "i8", &i64), KINFER_OK); ck_assert_int_eq(i64, -5);
    ck_assert_int_eq(kinfer_meta_get_int(m, "u16", &i64), KINFER_OK); ck_assert_int_eq(i64, 65000);
    ck_assert_int_eq(kinfer_meta_get_int(m, "i16", &i64), KINFER_OK); ck_assert_int_eq(i64, -300);
    ck_assert_int_eq(kinfer_meta_get_uint(m, "u32", &u64), KINFER_OK);
    ck_assert_uint_eq(u64, 4000000000u);
    ck_assert_int_eq(kinfer_meta_get_int(m, "i32", &i64), KINFER_OK); ck_assert_int_eq(i64, -70000);
    ck_assert_int_eq(kinfer_meta_get_float(m, "f32", &f), KINFER_OK); ck_assert(f == 1.5);
    ck_assert_int_eq(kinfer_meta_get_bool(m, "bool", &bo), KINFER_OK); ck_assert(bo);
    ck_assert_int_eq(kinfer_meta_get_str(m, "str", &s), KINFER_OK); ck_assert_str_eq(s, "h\"i\n");
    ck_assert_int_eq(kinfer_meta_get_uint(m, "u64", &u64), KINFER_OK);
    ck_assert(u64 == UINT64_MAX);
    ck_assert_int_eq(kinfer_meta_get_int(m, "u64", &i64), KINFER_E_TYPE_MISMATCH);
    ck_assert_int_eq(kinfer_meta_get_int(m, "i64", &i64), KINFER_OK); ck_assert(i64 == INT64_MIN);
    ck_assert_int_eq(kinfer_meta_get_uint(m, "i64", &u64), KINFER_E_TYPE_MISMATCH);
    ck_assert_int_eq(kinfer_meta_get_float(m, "f64", &f), KINFER_OK); ck_assert(f == 3.125);
    ck_assert_int_eq(kinfer_meta_get_str(m, "u8", &s), KINFER_E_TYPE_MISMATCH);
    ck_assert_int_eq(kinfer_meta_get_int(m, "missing", &i64), KINFER_E_NOT_FOUND);

    int64_t ai = kinfer_meta_find(m, "arr_i32");
    kinfer_value_type t, et;
    uint64_t n;
    ck_assert_int_eq(kinfer_meta_type(m, ai, &t, &et, &n), KINFER_OK);
    ck_assert_int_eq(t, KINFER_VALUE_ARRAY); ck_assert_int_eq(et, KINFER_VALUE_INT32);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(kinfer_meta_array_int(m, ai, 1, &i64), KINFER_OK); ck_assert_int_eq(i64, -2);
    ck_assert_int_eq(kinfer_meta_array_int(m, ai, 3, &i64), KINFER_E_NOT_FOUND);
    int64_t si = kinfer_meta_find(m, "arr_str");
    size_t len;
    ck_assert_int_eq(kinfer_meta_array_str(m, si, 0, &s, &len), KINFER_OK);
    ck_assert_uint_eq(len, 2); ck_assert(memcmp(s, "ab", 2) == 0);
    ck_assert_int_eq(kinfer_meta_array_str(m, si, 1, &s, &len), KINFER_OK); ck_assert_uint_eq(len, 0);

    char buf[128];
    int64_t fl = kinfer_meta_format(m, kinfer_meta_find(m, "nested"), 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "[[1, 2], [], [3]]");
    ck_assert_int_eq(fl, (int64_t)strlen(buf));
    kinfer_meta_format(m, kinfer_meta_find(m, "str"), 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "\"h\\\"i\\n\"");
    kinfer_meta_format(m, ai, 2, buf, sizeof buf);
    ck_assert_str_eq(buf, "[1, -2, ... (3 total)]");
    kinfer_meta_format(m, kinfer_meta_find(m, "i64"), 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "-9223372036854775808");
    kinfer_meta_format(m, kinfer_meta_find(m, "f32"), 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "1.5");
    /* too small: the needed length, negated, and a NUL-terminated prefix */
    ck_assert_int_eq(kinfer_meta_format(m, ai, 0, buf, 4), -(int64_t)strlen("[1, -2, 3]"));
    ck_assert_str_eq(buf, "[1,");
    ck_assert_int_eq(kinfer_meta_format(m, 99, 0, buf, sizeof buf), 0);
    kinfer_model_free(m);
    free(b.p);
}
END_TEST

START_TEST(test_valid_tensor_and_alignment)
{
    bytes b = {0};
    put_header(&b, 2, 2, 1);
    put_kv_u32(&b, "general.alignment", 64);
    put_tensor(&b, "a", KINFER_TYPE_Q4_0, 64, 3, 0);   /* 2 blocks x 3 rows x 18 B = 108 */
    put_tensor(&b, "b", KINFER_TYPE_F16, 5, 0, 128);
    pad_to(&b, 64);
    size_t data_at = b.n;
    for (int i = 0; i < 128 + 10; i++) put_le(&b, (uint64_t)i, 1);
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load_from_buffer(b.p, b.n, NULL, &m), KINFER_OK);
    ck_assert_uint_eq(kinfer_model_gguf_version(m), 2);
    ck_assert_int_eq(kinfer_tensor_count(m), 2);
    kinfer_tensor_info ti;
    ck_assert_int_eq(kinfer_tensor_get_info(m, kinfer_tensor_find(m, "a"), &ti), KINFER_OK);
    ck_assert_int_eq(ti.type, KINFER_TYPE_Q4_0);
    ck_assert_uint_eq(ti.size, 108); ck_assert_uint_eq(ti.n_elements, 192);
    ck_assert_uint_eq(ti.offset, data_at);
    ck_assert_int_eq(kinfer_tensor_get_info(m, 1, &ti), KINFER_OK);
    ck_assert_uint_eq(ti.offset, data_at + 128); ck_assert_uint_eq(ti.size, 10);
    ck_assert_int_eq(kinfer_tensor_get_info(m, 2, &ti), KINFER_E_NOT_FOUND);
    ck_assert_int_eq(kinfer_tensor_find(m, "zz"), -1);
    kinfer_model_free(m);
    free(b.p);
}
END_TEST

/* ------------------------------------------------------------- hostile */

START_TEST(test_header_errors)
{
    bytes b = {0};
    ck_assert_status(&b, KINFER_E_TRUNCATED); /* empty */
    put(&b, "GGML", 4), put_u32(&b, 3), put_u64(&b, 0), put_u64(&b, 0);
    ck_assert_status(&b, KINFER_E_FORMAT);
    ck_assert(strstr(errbuf, "magic"));
    b.n = 0;
    put_header(&b, 1, 0, 0);
    ck_assert_status(&b, KINFER_E_UNSUPPORTED);
    ck_assert(strstr(errbuf, "version 1"));
    b.n = 0;
    put_header(&b, 4, 0, 0);
    ck_assert_status(&b, KINFER_E_UNSUPPORTED);
    b.n = 0;
    put(&b, "GGUF", 4), put_le(&b, 0x03000000, 4), put_u64(&b, 0), put_u64(&b, 0);
    ck_assert_status(&b, KINFER_E_UNSUPPORTED);
    ck_assert(strstr(errbuf, "big-endian"));
    b.n = 0;
    put_header(&b, 3, 0, 0);
    ck_assert_status(&b, KINFER_OK); /* an empty file is valid */
    free(b.p);
}
END_TEST

START_TEST(test_absurd_counts)
{
    bytes b = {0};
    put_header(&b, 3, 0, 1ull << 63);
    ck_assert_status(&b, KINFER_E_TRUNCATED);
    ck_assert(strstr(errbuf, "metadata count 9223372036854775808"));
    b.n = 0;
    put_header(&b, 3, UINT64_MAX, 0);
    ck_assert_status(&b, KINFER_E_TRUNCATED);
    /* 2^40-element arrays: fixed-size, strings, nested */
    const uint32_t elem_types[] = {GGUF_U32, GGUF_STR, GGUF_ARR, GGUF_F64};
    for (size_t k = 0; k < sizeof elem_types / sizeof *elem_types; k++) {
        b.n = 0;
        put_header(&b, 3, 0, 1);
        put_str(&b, "big"), put_u32(&b, GGUF_ARR), put_u32(&b, elem_types[k]);
        put_u64(&b, 1ull << 40);
        put_u64(&b, 0), put_u64(&b, 0);
        ck_assert_status(&b, KINFER_E_TRUNCATED);
        ck_assert(strstr(errbuf, "'big'"));
    }
    free(b.p);
}
END_TEST

START_TEST(test_bad_values)
{
    bytes b = {0};
    /* string longer than the file */
    put_header(&b, 3, 0, 1);
    put_str(&b, "s"), put_u32(&b, GGUF_STR), put_u64(&b, 1ull << 62), put(&b, "abc", 3);
    ck_assert_status(&b, KINFER_E_TRUNCATED);
    /* key longer than the file */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_u64(&b, UINT64_MAX), put(&b, "key", 3);
    ck_assert_status(&b, KINFER_E_TRUNCATED);
    /* unknown value type */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "k"), put_u32(&b, 13), put_u64(&b, 0);
    ck_assert_status(&b, KINFER_E_FORMAT);
    ck_assert(strstr(errbuf, "unknown value type 13"));
    /* unknown array element type */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "k"), put_u32(&b, GGUF_ARR), put_u32(&b, 99), put_u64(&b, 1), put_u64(&b, 0);
    ck_assert_status(&b, KINFER_E_FORMAT);
    /* bool that is neither 0 nor 1 */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "k"), put_u32(&b, GGUF_BOOL), put_le(&b, 7, 1);
    ck_assert_status(&b, KINFER_E_FORMAT);
    /* empty key, key with NUL, duplicate key */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, ""), put_u32(&b, GGUF_U8), put_le(&b, 1, 1);
    ck_assert_status(&b, KINFER_E_FORMAT);
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_u64(&b, 3), put(&b, "a\0b", 3), put_u32(&b, GGUF_U8), put_le(&b, 1, 1);
    ck_assert_status(&b, KINFER_E_FORMAT);
    b.n = 0;
    put_header(&b, 3, 0, 2);
    put_kv_u32(&b, "k", 1), put_kv_u32(&b, "k", 2);
    ck_assert_status(&b, KINFER_E_FORMAT);
    ck_assert(strstr(errbuf, "duplicate metadata key 'k'"));
    /* arrays nested deeper than the limit */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "deep"), put_u32(&b, GGUF_ARR);
    for (int d = 0; d < 100; d++) put_u32(&b, GGUF_ARR), put_u64(&b, 1);
    put_u32(&b, GGUF_U8), put_u64(&b, 0);
    ck_assert_status(&b, KINFER_E_FORMAT);
    ck_assert(strstr(errbuf, "nests deeper"));
    /* alignment: zero, not a power of two, wrong type */
    const uint32_t bad_align[] = {0, 48};
    for (int k = 0; k < 2; k++) {
        b.n = 0;
        put_header(&b, 3, 0, 1);
        put_kv_u32(&b, "general.alignment", bad_align[k]);
        ck_assert_status(&b, KINFER_E_FORMAT);
    }
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "general.alignment"), put_u32(&b, GGUF_U64), put_u64(&b, 32);
    ck_assert_status(&b, KINFER_E_FORMAT);
    free(b.p);
}
END_TEST

/* One-tensor file with the given tensor info fields. */
static void tensor_file(bytes *b, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                        uint64_t offset, size_t data_bytes)
{
    b->n = 0;
    put_header(b, 3, 1, 0);
    put_str(b, "t");
    put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) put_u64(b, ne[d]);
    put_u32(b, type);
    put_u64(b, offset);
    pad_to(b, 32);
    for (size_t i = 0; i < data_bytes; i++) put_le(b, 0, 1);
}

START_TEST(test_bad_tensors)
{
    bytes b = {0};
    const uint64_t ne_ok[] = {32, 2};
    tensor_file(&b, 2, ne_ok, KINFER_TYPE_F32, 0, 256);
    ck_assert_status(&b, KINFER_OK);
    /* dimensions whose product overflows, or one beyond int64 */
    const uint64_t ne_over[] = {1ull << 32, 1ull << 32, 1ull << 32};
    tensor_file(&b, 3, ne_over, KINFER_TYPE_F32, 0, 0);
    ck_assert_status(&b, KINFER_E_FORMAT);
    ck_assert(strstr(errbuf, "overflows"));
    const uint64_t ne_huge[] = {UINT64_MAX};
    tensor_file(&b, 1, ne_huge, KINFER_TYPE_F32, 0, 0);
    ck_assert_status(&b, KINFER_E_FORMAT);
    /* byte size that overflows although the element count does not */
    const uint64_t ne_bytes[] = {1ull << 62, 1};
    tensor_file(&b, 2, ne_bytes, KINFER_TYPE_F64, 0, 0);
    ck_assert_status(&b, KINFER_E_FORMAT);
    /* no dimensions, too many */
    tensor_file(&b, 0, ne_ok, KINFER_TYPE_F32, 0, 256);
    ck_assert_status(&b, KINFER_E_FORMAT);
    const uint64_t ne5[] = {1, 1, 1, 1, 1};
    tensor_file(&b, 5, ne5, KINFER_TYPE_F32, 0, 256);
    ck_assert_status(&b, KINFER_E_FORMAT);
    /* unknown and removed type ids */
    tensor_file(&b, 2, ne_ok, 4, 0, 256);
    ck_assert_status(&b, KINFER_E_UNSUPPORTED);
    ck_assert(strstr(errbuf, "tensor 't' has unknown type 4"));
    tensor_file(&b, 2, ne_ok, 1000, 0, 256);
    ck_assert_status(&b, KINFER_E_UNSUPPORTED);
    /* a row that is not whole blocks */
    const uint64_t ne_row[] = {33, 2};
    tensor_file(&b, 2, ne_row, KINFER_TYPE_Q4_0, 0, 256);
    ck_assert_status(&b, KINFER_E_FORMAT);
    ck_assert(strstr(errbuf, "block size"));
    /* misaligned offset, offset past the end, offset + size wrapping */
    tensor_file(&b, 2, ne_ok, KINFER_TYPE_F32, 4, 512);
    ck_assert_status(&b, KINFER_E_FORMAT);
    ck_assert(strstr(errbuf, "alignment"));
    tensor_file(&b, 2, ne_ok, KINFER_TYPE_F32, 1 << 20, 256);
    ck_assert_status(&b, KINFER_E_TRUNCATED);
    ck_assert(strstr(errbuf, "tensor 't'"));
    tensor_file(&b, 2, ne_ok, KINFER_TYPE_F32, UINT64_MAX - 31, 256);
    ck_assert_status(&b, KINFER_E_TRUNCATED);
    tensor_file(&b, 2, ne_ok, KINFER_TYPE_F32, 0, 255); /* data one byte short */
    ck_assert_status(&b, KINFER_E_TRUNCATED);
    /* duplicate tensor names */
    b.n = 0;
    put_header(&b, 3, 2, 0);
    put_tensor(&b, "t", KINFER_TYPE_F32, 8, 0, 0);
    put_tensor(&b, "t", KINFER_TYPE_F32, 8, 0, 32);
    pad_to(&b, 32);
    for (int i = 0; i < 64; i++) put_le(&b, 0, 1);
    ck_assert_status(&b, KINFER_E_FORMAT);
    ck_assert(strstr(errbuf, "duplicate tensor name 't'"));
    free(b.p);
}
END_TEST

START_TEST(test_truncated_synthetic)
{
    bytes b = {0};
    valid_file(&b);
    ck_assert_status(&b, KINFER_OK);
    /* Each prefix in its own allocation of exactly that size, so ASan sees
     * any read past the end. */
    for (size_t k = 0; k < b.n; k++) {
        bytes t = {malloc(k ? k : 1), k, k};
        memcpy(t.p, b.p, k);
        ck_assert_status(&t, KINFER_E_TRUNCATED);
        free(t.p);
    }
    free(b.p);
}
END_TEST

/* -------------------------------------------------------- real models */

/* Truncate a real file at every offset of its header and tensor table (long
 * arrays' bodies sampled, since each behaves alike): always TRUNCATED. */
static void truncate_real(const char *file)
{
    const char *path = test_model_path(file);
    if (!path) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    const gguf_file *gf = m->gguf;
    size_t end = (size_t)gf->data_offset;
    uint8_t *copy = malloc(end);
    memcpy(copy, gf->buf, end);
    size_t n_cases = 0, n_exact = 0;
    for (size_t k = 0; k < end; k++) {
        /* inside the body of a long array: test one offset in 4099 */
        int in_body = 0;
        for (uint64_t i = 0; i < gf->n_kv; i++) {
            const gguf_kv *kv = &gf->kv[i];
            if (kv->type != GGUF_ARR) continue;
            size_t lo = (size_t)(kv->elems - gf->buf) + 256;
            size_t hi = lo - 256 + (size_t)kv->elems_size;
            if (hi > lo + 256 && k >= lo && k < hi - 256) in_body = 1;
        }
        if (in_body && k % 4099 != 0) continue;
        bytes t = {copy, k, k};
        /* every 97th case also in an exact-size allocation for ASan */
        if (n_cases % 97 == 0) {
            t.p = malloc(k ? k : 1);
            memcpy(t.p, copy, k);
            n_exact++;
        }
        ck_assert_status(&t, KINFER_E_TRUNCATED);
        if (t.p != copy) free(t.p);
        n_cases++;
    }
    fprintf(stderr, "%s: %zu truncations of its %zu-byte header checked (%zu in exact-size buffers)\n",
            file, n_cases, end, n_exact);
    free(copy);
    kinfer_model_free(m);
}

START_TEST(test_truncated_smollm2) { truncate_real(TEST_MODEL_SMOLLM2); }
END_TEST

START_TEST(test_smollm2)
{
    const char *path = test_model_path(TEST_MODEL_SMOLLM2);
    if (!path) return;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, NULL, &m), KINFER_OK);
    ck_assert_uint_eq(kinfer_model_gguf_version(m), 3);
    ck_assert_int_eq(kinfer_meta_count(m), 33);
    ck_assert_int_eq(kinfer_tensor_count(m), 272);
    const char *s;
    int64_t v;
    double f;
    ck_assert_int_eq(kinfer_meta_get_str(m, "general.architecture", &s), KINFER_OK);
    ck_assert_str_eq(s, "llama");
    ck_assert_int_eq(kinfer_meta_get_int(m, "llama.block_count", &v), KINFER_OK);
    ck_assert_int_eq(v, 30);
    ck_assert_int_eq(kinfer_meta_get_int(m, "llama.attention.head_count", &v), KINFER_OK);
    ck_assert_int_eq(v, 9);
    ck_assert_int_eq(kinfer_meta_get_int(m, "llama.attention.head_count_kv", &v), KINFER_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(kinfer_meta_get_int(m, "llama.embedding_length", &v), KINFER_OK);
    ck_assert_int_eq(v, 576);
    ck_assert_int_eq(kinfer_meta_get_float(m, "llama.rope.freq_base", &f), KINFER_OK);
    ck_assert(f == 100000.0);
    int64_t ti = kinfer_meta_find(m, "tokenizer.ggml.tokens");
    kinfer_value_type t, et;
    uint64_t n;
    ck_assert_int_eq(kinfer_meta_type(m, ti, &t, &et, &n), KINFER_OK);
    ck_assert_int_eq(et, KINFER_VALUE_STRING); ck_assert_uint_eq(n, 49152);
    size_t len;
    ck_assert_int_eq(kinfer_meta_array_str(m, ti, 1, &s, &len), KINFER_OK);
    ck_assert_uint_eq(len, 12); ck_assert(memcmp(s, "<|im_start|>", 12) == 0);

    kinfer_tensor_info info;
    ck_assert_int_eq(kinfer_tensor_get_info(m, kinfer_tensor_find(m, "token_embd.weight"), &info),
                     KINFER_OK);
    ck_assert_int_eq(info.type, KINFER_TYPE_Q8_0);
    ck_assert_int_eq(info.n_dims, 2);
    ck_assert_int_eq(info.ne[0], 576); ck_assert_int_eq(info.ne[1], 49152);
    ck_assert_uint_eq(info.size, 576 / 32 * 34 * 49152);
    ck_assert_int_eq(kinfer_tensor_get_info(m, kinfer_tensor_find(m, "blk.29.ffn_down.weight"), &info),
                     KINFER_OK);
    ck_assert_int_eq(info.type, KINFER_TYPE_Q4_1);
    ck_assert_int_eq(info.ne[0], 1536); ck_assert_int_eq(info.ne[1], 576);
    /* every tensor lies inside the file, and the counts per type are right */
    int n_q4_1 = 0, n_f32 = 0;
    for (int64_t i = 0; i < kinfer_tensor_count(m); i++) {
        kinfer_tensor_get_info(m, i, &info);
        n_q4_1 += info.type == KINFER_TYPE_Q4_1;
        n_f32 += info.type == KINFER_TYPE_F32;
    }
    ck_assert_int_eq(n_q4_1, 210); ck_assert_int_eq(n_f32, 61);
    kinfer_model_free(m);
}
END_TEST

START_TEST(test_gemma3)
{
    const char *path = test_model_path(TEST_MODEL_GEMMA3);
    if (!path) return;
    /* read into memory instead of mapping: the same tables either way */
    kinfer_model_params p = kinfer_model_default_params();
    p.use_mmap = false;
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(path, &p, &m), KINFER_OK);
    ck_assert_int_eq(kinfer_meta_count(m), 33);
    ck_assert_int_eq(kinfer_tensor_count(m), 236);
    const char *s;
    int64_t v;
    ck_assert_int_eq(kinfer_meta_get_str(m, "general.architecture", &s), KINFER_OK);
    ck_assert_str_eq(s, "gemma3");
    ck_assert_int_eq(kinfer_meta_get_int(m, "gemma3.block_count", &v), KINFER_OK);
    ck_assert_int_eq(v, 18);
    ck_assert_int_eq(kinfer_meta_get_int(m, "gemma3.attention.head_count", &v), KINFER_OK);
    ck_assert_int_eq(v, 4);
    ck_assert_int_eq(kinfer_meta_get_int(m, "gemma3.attention.head_count_kv", &v), KINFER_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(kinfer_meta_get_int(m, "gemma3.attention.sliding_window", &v), KINFER_OK);
    ck_assert_int_eq(v, 512);
    ck_assert_int_eq(kinfer_meta_get_str(m, "tokenizer.ggml.model", &s), KINFER_OK);
    ck_assert_str_eq(s, "llama");
    int64_t si = kinfer_meta_find(m, "tokenizer.ggml.scores");
    double score;
    ck_assert_int_eq(kinfer_meta_array_float(m, si, 0, &score), KINFER_OK);
    ck_assert(score == -1000.0);
    int counts[KINFER_TYPE_COUNT] = {0};
    kinfer_tensor_info info;
    for (int64_t i = 0; i < kinfer_tensor_count(m); i++) {
        kinfer_tensor_get_info(m, i, &info);
        counts[info.type]++;
    }
    ck_assert_int_eq(counts[KINFER_TYPE_F32], 109);
    ck_assert_int_eq(counts[KINFER_TYPE_Q5_0], 81);
    ck_assert_int_eq(counts[KINFER_TYPE_Q8_0], 10);
    ck_assert_int_eq(counts[KINFER_TYPE_Q4_K], 27);
    ck_assert_int_eq(counts[KINFER_TYPE_Q6_K], 9);
    ck_assert_int_eq(kinfer_tensor_get_info(m, kinfer_tensor_find(m, "blk.0.attn_q.weight"), &info),
                     KINFER_OK);
    ck_assert_int_eq(info.ne[0], 640); ck_assert_int_eq(info.ne[1], 1024);
    kinfer_model_free(m);
}
END_TEST

/* ------------------------------------------------------- load and files */

static bool cancel_at_once(float progress, void *user)
{
    (*(int *)user)++;
    return false;
}

START_TEST(test_load_errors)
{
    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load("/nonexistent/x.gguf", NULL, &m), KINFER_E_IO);
    ck_assert(strstr(kinfer_model_errmsg(m), "/nonexistent/x.gguf"));
    kinfer_model_free(m);
    ck_assert_int_eq(kinfer_model_load("/", NULL, &m), KINFER_E_IO);
    kinfer_model_free(m);
    ck_assert_int_eq(kinfer_model_load(NULL, NULL, &m), KINFER_E_INVALID_ARG);
    kinfer_model_free(m);
    ck_assert_int_eq(kinfer_model_load("x", NULL, NULL), KINFER_E_INVALID_ARG);
    kinfer_model_free(NULL);

    bytes b = {0};
    valid_file(&b);
    int calls = 0;
    kinfer_model_params p = kinfer_model_default_params();
    p.progress = cancel_at_once;
    p.progress_user_data = &calls;
    ck_assert_int_eq(kinfer_model_load_from_buffer(b.p, b.n, &p, &m), KINFER_E_ABORTED);
    ck_assert_int_eq(calls, 1);
    ck_assert(strstr(kinfer_model_errmsg(m), "cancel"));
    kinfer_model_free(m);

    /* a broken file through the path API names the file and the problem */
    char path[] = "/tmp/kinfer_test_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, b.p, 20), 20);
    close(fd);
    for (int use_mmap = 0; use_mmap < 2; use_mmap++) {
        kinfer_model_params q = kinfer_model_default_params();
        q.use_mmap = use_mmap;
        ck_assert_int_eq(kinfer_model_load(path, &q, &m), KINFER_E_TRUNCATED);
        ck_assert(strstr(kinfer_model_errmsg(m), path));
        ck_assert(strstr(kinfer_model_errmsg(m), "at byte"));
        kinfer_model_free(m);
    }
    unlink(path);
    free(b.p);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(kinfer_status_str(KINFER_E_FORMAT), "KINFER_E_FORMAT");
    ck_assert_str_eq(kinfer_status_str((kinfer_status)-999), "KINFER_E_UNKNOWN");
    ck_assert_str_eq(kinfer_type_name(KINFER_TYPE_Q4_K), "Q4_K");
    ck_assert_ptr_null(kinfer_type_name(4));
    ck_assert_ptr_null(kinfer_type_name(-1));
    ck_assert_str_eq(kinfer_value_type_name(KINFER_VALUE_STRING), "string");
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", KINFER_VERSION_MAJOR, KINFER_VERSION_MINOR,
             KINFER_VERSION_PATCH);
    ck_assert_str_eq(kinfer_version(), v);
}
END_TEST

static Suite *gguf_suite(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_every_value_type);
    tcase_add_test(tc, test_valid_tensor_and_alignment);
    tcase_add_test(tc, test_header_errors);
    tcase_add_test(tc, test_absurd_counts);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_bad_tensors);
    tcase_add_test(tc, test_truncated_synthetic);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_smollm2);
    tcase_add_test(tc, test_gemma3);
    tcase_add_test(tc, test_truncated_smollm2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(gguf_suite()); }
