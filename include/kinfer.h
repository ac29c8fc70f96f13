/*
 * kinfer.h — the whole public API of libkinfer.  What is not here is not API.
 *
 * Conventions
 *  - Every call that can fail returns a kinfer_status: KINFER_OK (0) or a
 *    negative code.  kinfer_status_str() names a code; the handle's *_errmsg()
 *    gives the message of its last failure.
 *  - Handles are opaque, created and freed in pairs; every *_free accepts NULL.
 *  - Caller buffers: functions that fill one return the length they need; when
 *    the buffer is too small they write nothing useful and return that length
 *    negated.
 *  - Threads: a model is immutable after load and may be shared by any number
 *    of threads.  Nothing here keeps global mutable state.
 *  - The library never aborts, exits, or prints on its own.
 */
#ifndef KINFER_H
#define KINFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KINFER_VERSION_MAJOR 0
#define KINFER_VERSION_MINOR 1
#define KINFER_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually linked. Static storage. */
const char *kinfer_version(void);

/* ------------------------------------------------------------------ status */

typedef enum kinfer_status {
    KINFER_OK = 0,
    KINFER_E_IO = -1,            /* open/read/mmap failed */
    KINFER_E_FORMAT = -2,        /* the bytes are not a valid file of that kind */
    KINFER_E_TRUNCATED = -3,     /* the file ends before its contents do */
    KINFER_E_UNSUPPORTED = -4,   /* valid, but a version/type/feature we lack */
    KINFER_E_NOMEM = -5,         /* host allocation failed */
    KINFER_E_DEVICE = -6,        /* GPU error, including device out-of-memory */
    KINFER_E_CONTEXT_FULL = -7,  /* no room left in the KV cache */
    KINFER_E_ABORTED = -8,       /* a caller's callback asked to stop */
    KINFER_E_INVALID_ARG = -9,   /* a bad argument from the caller */
    KINFER_E_NOT_FOUND = -10,    /* no such key, tensor or index */
    KINFER_E_TYPE_MISMATCH = -11 /* the value exists but has another type */
} kinfer_status;

/* Short constant name of a status ("KINFER_E_FORMAT"); never NULL. */
const char *kinfer_status_str(kinfer_status status);

/* ------------------------------------------------------------ tensor types */

/* Tensor element types, numbered as in GGUF files. */
typedef enum kinfer_type {
    KINFER_TYPE_F32 = 0,
    KINFER_TYPE_F16 = 1,
    KINFER_TYPE_Q4_0 = 2,
    KINFER_TYPE_Q4_1 = 3,
    KINFER_TYPE_Q5_0 = 6,
    KINFER_TYPE_Q5_1 = 7,
    KINFER_TYPE_Q8_0 = 8,
    KINFER_TYPE_Q8_1 = 9,
    KINFER_TYPE_Q2_K = 10,
    KINFER_TYPE_Q3_K = 11,
    KINFER_TYPE_Q4_K = 12,
    KINFER_TYPE_Q5_K = 13,
    KINFER_TYPE_Q6_K = 14,
    KINFER_TYPE_Q8_K = 15,
    KINFER_TYPE_IQ2_XXS = 16,
    KINFER_TYPE_IQ2_XS = 17,
    KINFER_TYPE_IQ3_XXS = 18,
    KINFER_TYPE_IQ1_S = 19,
    KINFER_TYPE_IQ4_NL = 20,
    KINFER_TYPE_IQ3_S = 21,
    KINFER_TYPE_IQ2_S = 22,
    KINFER_TYPE_IQ4_XS = 23,
    KINFER_TYPE_I8 = 24,
    KINFER_TYPE_I16 = 25,
    KINFER_TYPE_I32 = 26,
    KINFER_TYPE_I64 = 27,
    KINFER_TYPE_F64 = 28,
    KINFER_TYPE_IQ1_M = 29,
    KINFER_TYPE_BF16 = 30,
    KINFER_TYPE_TQ1_0 = 34,
    KINFER_TYPE_TQ2_0 = 35,
    KINFER_TYPE_MXFP4 = 39,
    KINFER_TYPE_COUNT = 40
} kinfer_type;

/* "Q4_K" etc.; NULL for a number that names no known type. */
const char *kinfer_type_name(int type);

/* ------------------------------------------------------------------ model */

typedef struct kinfer_model kinfer_model;

/* Called while loading with progress in [0, 1]; return false to cancel,
 * which makes the load fail with KINFER_E_ABORTED. */
typedef bool (*kinfer_progress_fn)(float progress, void *user_data);

typedef struct kinfer_model_params {
    bool use_mmap;                 /* map the file instead of reading it (default true) */
    kinfer_progress_fn progress;   /* optional */
    void *progress_user_data;
} kinfer_model_params;

kinfer_model_params kinfer_model_default_params(void);

/*
 * Load a GGUF file.  params may be NULL for the defaults.
 *
 * On success *out is a new model.  On failure *out is, like sqlite3_open's
 * handle, still a model whose only uses are kinfer_model_errmsg() and
 * kinfer_model_free() (or NULL when even that could not be allocated); the
 * caller frees it either way.
 */
kinfer_status kinfer_model_load(const char *path, const kinfer_model_params *params,
                                kinfer_model **out);

/* Same, from a GGUF image in caller memory.  The buffer is not copied: it must
 * stay valid and unchanged until kinfer_model_free().  use_mmap is ignored. */
kinfer_status kinfer_model_load_from_buffer(const void *data, size_t size,
                                            const kinfer_model_params *params,
                                            kinfer_model **out);

void kinfer_model_free(kinfer_model *model);

/* Message of the last failure on this handle ("" if none).  Valid until the
 * next call on the handle. */
const char *kinfer_model_errmsg(const kinfer_model *model);

/* GGUF version of the file (2 or 3). */
uint32_t kinfer_model_gguf_version(const kinfer_model *model);

/* ---------------------------------------------------------- GGUF metadata */

/* Metadata value types, numbered as in GGUF files. */
typedef enum kinfer_value_type {
    KINFER_VALUE_UINT8 = 0,
    KINFER_VALUE_INT8 = 1,
    KINFER_VALUE_UINT16 = 2,
    KINFER_VALUE_INT16 = 3,
    KINFER_VALUE_UINT32 = 4,
    KINFER_VALUE_INT32 = 5,
    KINFER_VALUE_FLOAT32 = 6,
    KINFER_VALUE_BOOL = 7,
    KINFER_VALUE_STRING = 8,
    KINFER_VALUE_ARRAY = 9,
    KINFER_VALUE_UINT64 = 10,
    KINFER_VALUE_INT64 = 11,
    KINFER_VALUE_FLOAT64 = 12
} kinfer_value_type;

/* "u32", "string", "array", ...; NULL for an unknown number. */
const char *kinfer_value_type_name(int type);

/* Number of metadata entries, in file order. */
int64_t kinfer_meta_count(const kinfer_model *model);

/* Key of entry i, or NULL when i is out of range.  Valid for the model's life. */
const char *kinfer_meta_key(const kinfer_model *model, int64_t i);

/* Index of a key, or -1 when absent. */
int64_t kinfer_meta_find(const kinfer_model *model, const char *key);

/* Type of entry i; for arrays also the element type and length (either
 * pointer may be NULL).  KINFER_E_NOT_FOUND when i is out of range. */
kinfer_status kinfer_meta_type(const kinfer_model *model, int64_t i, kinfer_value_type *type,
                               kinfer_value_type *elem_type, uint64_t *n_elems);

/*
 * Typed getters by key.  Integers of any width convert to the requested
 * signedness when the value fits; FLOAT32 and FLOAT64 both read as double.
 * KINFER_E_NOT_FOUND: no such key.  KINFER_E_TYPE_MISMATCH: another type, or
 * out of range for the requested one.  Strings are NUL-terminated and valid
 * for the model's life.
 */
kinfer_status kinfer_meta_get_int(const kinfer_model *model, const char *key, int64_t *out);
kinfer_status kinfer_meta_get_uint(const kinfer_model *model, const char *key, uint64_t *out);
kinfer_status kinfer_meta_get_float(const kinfer_model *model, const char *key, double *out);
kinfer_status kinfer_meta_get_bool(const kinfer_model *model, const char *key, bool *out);
kinfer_status kinfer_meta_get_str(const kinfer_model *model, const char *key, const char **out);

/* Element j of the array at entry i, with the same conversions.  A string
 * element is given as pointer and length (not NUL-terminated, inside the
 * file image, valid for the model's life). */
kinfer_status kinfer_meta_array_int(const kinfer_model *model, int64_t i, uint64_t j,
                                    int64_t *out);
kinfer_status kinfer_meta_array_float(const kinfer_model *model, int64_t i, uint64_t j,
                                      double *out);
kinfer_status kinfer_meta_array_str(const kinfer_model *model, int64_t i, uint64_t j,
                                    const char **out, size_t *len);

/*
 * Any value of entry i as text: numbers in decimal, strings as JSON string
 * literals, arrays as "[a, b, ...]".  max_elems > 0 abbreviates arrays longer
 * than that to their first max_elems elements followed by ", ... (N total)";
 * 0 prints them whole.  Writes at most size bytes including the NUL; returns
 * the length of the full text (without NUL), negated when it did not fit, or
 * 0 when i is out of range (any value formats to at least one character).
 */
int64_t kinfer_meta_format(const kinfer_model *model, int64_t i, uint64_t max_elems, char *buf,
                           size_t size);

/* ----------------------------------------------------------- tensor table */

#define KINFER_MAX_DIMS 4

typedef struct kinfer_tensor_info {
    const char *name;        /* NUL-terminated, valid for the model's life */
    kinfer_type type;
    uint32_t n_dims;
    int64_t ne[KINFER_MAX_DIMS]; /* elements per dimension, ne[0] innermost; unused = 1 */
    uint64_t n_elements;
    uint64_t offset;         /* byte offset of the data from the start of the file */
    uint64_t size;           /* bytes of data */
} kinfer_tensor_info;

int64_t kinfer_tensor_count(const kinfer_model *model);

/* Index of a tensor by name, or -1 when absent. */
int64_t kinfer_tensor_find(const kinfer_model *model, const char *name);

/* KINFER_E_NOT_FOUND when i is out of range. */
kinfer_status kinfer_tensor_get_info(const kinfer_model *model, int64_t i, kinfer_tensor_info *out);

/* ------------------------------------------------------------------ devices */

/* Number of usable CUDA devices: 0 when the library was built without CUDA,
 * when there is no GPU or no usable driver.  why (may be NULL) receives a
 * static string saying which, or "" when devices were found. */
int kinfer_cuda_device_count(const char **why);

#ifdef __cplusplus
}
#endif

#endif /* KINFER_H */
