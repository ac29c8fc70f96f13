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

/* Marks the symbols libkinfer exports; everything else in it is hidden
 * (built with -fvisibility=hidden). */
#if defined(__GNUC__) || defined(__clang__)
#define KINFER_API __attribute__((visibility("default")))
#else
#define KINFER_API
#endif

#define KINFER_VERSION_MAJOR 0
#define KINFER_VERSION_MINOR 1
#define KINFER_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually linked. Static storage. */
KINFER_API const char *kinfer_version(void);

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
KINFER_API const char *kinfer_status_str(kinfer_status status);

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
KINFER_API const char *kinfer_type_name(int type);

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

KINFER_API kinfer_model_params kinfer_model_default_params(void);

/*
 * Load a GGUF file.  params may be NULL for the defaults.
 *
 * On success *out is a new model.  On failure *out is, like sqlite3_open's
 * handle, still a model whose only uses are kinfer_model_errmsg() and
 * kinfer_model_free() (or NULL when even that could not be allocated); the
 * caller frees it either way.
 */
KINFER_API kinfer_status kinfer_model_load(const char *path, const kinfer_model_params *params,
                                kinfer_model **out);

/* Same, from a GGUF image in caller memory.  The buffer is not copied: it must
 * stay valid and unchanged until kinfer_model_free().  use_mmap is ignored. */
KINFER_API kinfer_status kinfer_model_load_from_buffer(const void *data, size_t size,
                                            const kinfer_model_params *params,
                                            kinfer_model **out);

KINFER_API void kinfer_model_free(kinfer_model *model);

/* Message of the last failure on this handle ("" if none).  Valid until the
 * next call on the handle. */
KINFER_API const char *kinfer_model_errmsg(const kinfer_model *model);

/* GGUF version of the file (2 or 3). */
KINFER_API uint32_t kinfer_model_gguf_version(const kinfer_model *model);

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
KINFER_API const char *kinfer_value_type_name(int type);

/* Number of metadata entries, in file order. */
KINFER_API int64_t kinfer_meta_count(const kinfer_model *model);

/* Key of entry i, or NULL when i is out of range.  Valid for the model's life. */
KINFER_API const char *kinfer_meta_key(const kinfer_model *model, int64_t i);

/* Index of a key, or -1 when absent. */
KINFER_API int64_t kinfer_meta_find(const kinfer_model *model, const char *key);

/* Type of entry i; for arrays also the element type and length (either
 * pointer may be NULL).  KINFER_E_NOT_FOUND when i is out of range. */
KINFER_API kinfer_status kinfer_meta_type(const kinfer_model *model, int64_t i, kinfer_value_type *type,
                               kinfer_value_type *elem_type, uint64_t *n_elems);

/*
 * Typed getters by key.  Integers of any width convert to the requested
 * signedness when the value fits; FLOAT32 and FLOAT64 both read as double.
 * KINFER_E_NOT_FOUND: no such key.  KINFER_E_TYPE_MISMATCH: another type, or
 * out of range for the requested one.  Strings are NUL-terminated and valid
 * for the model's life.
 */
KINFER_API kinfer_status kinfer_meta_get_int(const kinfer_model *model, const char *key, int64_t *out);
KINFER_API kinfer_status kinfer_meta_get_uint(const kinfer_model *model, const char *key, uint64_t *out);
KINFER_API kinfer_status kinfer_meta_get_float(const kinfer_model *model, const char *key, double *out);
KINFER_API kinfer_status kinfer_meta_get_bool(const kinfer_model *model, const char *key, bool *out);
KINFER_API kinfer_status kinfer_meta_get_str(const kinfer_model *model, const char *key, const char **out);

/* Element j of the array at entry i, with the same conversions.  A string
 * element is given as pointer and length (not NUL-terminated, inside the
 * file image, valid for the model's life). */
KINFER_API kinfer_status kinfer_meta_array_int(const kinfer_model *model, int64_t i, uint64_t j,
                                    int64_t *out);
KINFER_API kinfer_status kinfer_meta_array_float(const kinfer_model *model, int64_t i, uint64_t j,
                                      double *out);
KINFER_API kinfer_status kinfer_meta_array_str(const kinfer_model *model, int64_t i, uint64_t j,
                                    const char **out, size_t *len);

/*
 * Any value of entry i as text: numbers in decimal, strings as JSON string
 * literals, arrays as "[a, b, ...]".  max_elems > 0 abbreviates arrays longer
 * than that to their first max_elems elements followed by ", ... (N total)";
 * 0 prints them whole.  Writes at most size bytes including the NUL; returns
 * the length of the full text (without NUL), negated when it did not fit, or
 * 0 when i is out of range (any value formats to at least one character).
 */
KINFER_API int64_t kinfer_meta_format(const kinfer_model *model, int64_t i, uint64_t max_elems, char *buf,
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

KINFER_API int64_t kinfer_tensor_count(const kinfer_model *model);

/* Index of a tensor by name, or -1 when absent. */
KINFER_API int64_t kinfer_tensor_find(const kinfer_model *model, const char *name);

/* KINFER_E_NOT_FOUND when i is out of range. */
KINFER_API kinfer_status kinfer_tensor_get_info(const kinfer_model *model, int64_t i, kinfer_tensor_info *out);

/* ------------------------------------------------------------- model info */

/* Hyperparameters of a model whose architecture kinfer runs; 0 otherwise. */
KINFER_API int32_t kinfer_model_n_layer(const kinfer_model *model);
KINFER_API int32_t kinfer_model_n_embd(const kinfer_model *model);
KINFER_API int32_t kinfer_model_n_vocab(const kinfer_model *model);   /* rows of the output matrix */
KINFER_API int32_t kinfer_model_n_ctx_train(const kinfer_model *model);
/* True for an encoder-only model (the BERT family: bert, nomic-bert): it
 * gives embeddings, not text; a context on it needs embeddings = true. */
KINFER_API bool kinfer_model_encoder_only(const kinfer_model *model);
/* Scores of a reranker's classification head (pooling rank); 0 without one. */
KINFER_API int32_t kinfer_model_n_cls_out(const kinfer_model *model);

/* One line describing the model ("llama 135M Q4_1, 30 layers"), into buf;
 * returns the length, negated when it did not fit. */
KINFER_API int64_t kinfer_model_desc(const kinfer_model *model, char *buf, size_t size);

/* --------------------------------------------------------------- contexts */

typedef int32_t kinfer_token;
typedef int32_t kinfer_pos;
typedef int32_t kinfer_seq_id;

#define KINFER_MAX_SEQ 256 /* sequence ids are 0 .. n_seq_max-1 <= this */

typedef struct kinfer_context kinfer_context;

/* Checked between layers while decoding; return true to stop, which makes
 * kinfer_decode fail with KINFER_E_ABORTED and leave the KV cache as it was
 * before the call. */
typedef bool (*kinfer_abort_fn)(void *user_data);

/* Flash attention, as llama.cpp's flash_attn_type (-fa on|off|auto). */
typedef enum kinfer_flash_attn {
    KINFER_FLASH_ATTN_AUTO = -1, /* on where it can run: on the CPU always, as llama.cpp decides */
    KINFER_FLASH_ATTN_OFF = 0,
    KINFER_FLASH_ATTN_ON = 1
} kinfer_flash_attn;

/* Pooling of embeddings, as llama.cpp's llama_pooling_type (same values). */
typedef enum kinfer_pooling {
    KINFER_POOLING_UNSPECIFIED = -1, /* the model's <arch>.pooling_type; none when it has none */
    KINFER_POOLING_NONE = 0,         /* one embedding per token */
    KINFER_POOLING_MEAN = 1,         /* per sequence: the mean of its tokens' */
    KINFER_POOLING_CLS = 2,          /* per sequence: its first token's (lowest position) */
    KINFER_POOLING_LAST = 3,         /* per sequence: its last token's (highest position) */
    KINFER_POOLING_RANK = 4          /* a reranker's classification head over CLS (needs one) */
} kinfer_pooling;

typedef struct kinfer_context_params {
    uint32_t n_ctx;        /* KV cache cells; 0 = the model's training context */
    uint32_t n_batch;      /* tokens per micro-batch, llama.cpp's n_ubatch (default 512): a
                              kinfer_decode of more is split into micro-batches */
    uint32_t n_seq_max;    /* distinct sequence ids (default 1) */
    int32_t n_threads;     /* 0 = one per online core */
    kinfer_type type_k;    /* KV cache types: F16 (default), Q8_0 or F32 */
    kinfer_type type_v;
    int32_t n_gpu_layers;  /* llama.cpp's meaning: the last N layers on the GPU (N over the
                              layer count: the output layer too); -1 = as many as fit; 0 = CPU only */
    uint64_t gpu_budget_bytes; /* GPU memory the context may use; 0 = what the device has free.
                                  Without a GPU, kinfer_model_estimate plans for a simulated
                                  device of this size. */
    uint64_t gpu_margin_bytes; /* left free by n_gpu_layers = -1 (default 512 MiB) */
    kinfer_abort_fn abort_callback;
    void *abort_user_data;
    /* Batch-invariant KV placement (default false).  The cache is split into
     * n_seq_max regions of region = n_ctx / n_seq_max cells rounded down to a
     * multiple of 64 (at least 64); position p of sequence s goes to cell
     * s * region + p, so a position of region or more is KINFER_E_CONTEXT_FULL.
     * Attention sums each token in one order whatever the micro-batch (the
     * one-token order llama.cpp uses for a batch of 1), and every row is
     * summed in the lane its position gives.  A sequence's logits then depend
     * only on its own tokens and positions, never on the other sequences in
     * the batch or the cache: what a server that batches requests needs for
     * reproducible output.  A single sequence decoded one token at a time
     * gets the same bits as without the option; batches of 2+ tokens of one
     * sequence (a prompt) differ from llama.cpp's by float rounding.
     * kinfer_kv_seq_cp copies the K/V rows into dst's region instead of
     * sharing cells; kinfer_kv_seq_add moves cells within the region
     * (KINFER_E_CONTEXT_FULL when a position would leave it,
     * KINFER_E_UNSUPPORTED when one would land on a cell of the sequence
     * that does not move).  Sliding-window layers keep a row for every cell
     * (as full layers do) instead of a smaller store of slots. */
    bool kv_seq_regions;
    /* Attention as llama.cpp's flash attention (default KINFER_FLASH_ATTN_AUTO,
     * which on the CPU means on, as in llama.cpp): each query row reads its
     * keys with an online softmax, so no row of scores over the context is
     * kept, and the logits are llama.cpp's with flash attention (OFF: its
     * -fa off).  A quantized V cache (Q8_0) needs it: with OFF
     * kinfer_context_new fails with KINFER_E_INVALID_ARG, with AUTO it is
     * on.  An F32 cache is read as F16 with it, as llama.cpp casts it.  With
     * kv_seq_regions every batch takes the one-key-at-a-time path (llama.cpp's
     * for micro-batches of fewer than 64 tokens), so a token's logits still
     * do not depend on its batch. */
    kinfer_flash_attn flash_attn;
    /* With the model on the GPU (n_gpu_layers), kinfer_context_new uploads
     * its weights: called per tensor with progress in [0, 1]; false cancels
     * (KINFER_E_ABORTED).  Optional. */
    kinfer_progress_fn progress;
    void *progress_user_data;
    /* Embeddings instead of logits (default false), as llama.cpp's
     * embeddings = true: every token of a decoded batch is an output (the
     * batch's logits flags are ignored), its embedding is the final-normed
     * hidden state (what the LM head would read), and the LM head is
     * skipped, so kinfer_get_logits returns NULL.  Attention stays the
     * model's own (causal for decoder models, as llama.cpp). */
    bool embeddings;
    /* How kinfer_get_embeddings_seq pools (default KINFER_POOLING_UNSPECIFIED:
     * the model's metadata, as llama.cpp).  Each sequence of a batch is
     * pooled on its own, over its tokens in that kinfer_decode call. */
    kinfer_pooling pooling;
} kinfer_context_params;

KINFER_API kinfer_context_params kinfer_context_default_params(void);

/* A context holds the KV cache, scratch and threads for one decoding stream
 * on a model; it belongs to one thread at a time.  Different contexts on one
 * model may run in parallel.  The model must outlive its contexts.  On
 * failure *out follows kinfer_model_load's rule (free it either way). */
KINFER_API kinfer_status kinfer_context_new(const kinfer_model *model, const kinfer_context_params *params,
                                 kinfer_context **out);
KINFER_API void kinfer_context_free(kinfer_context *ctx);
KINFER_API const char *kinfer_context_errmsg(const kinfer_context *ctx);
KINFER_API uint32_t kinfer_context_n_ctx(const kinfer_context *ctx);

/* What a model would need with these context params, before anything is
 * allocated, and where its layers would go (n_gpu_layers as llama.cpp counts
 * them).  params NULL = defaults.  Layers demanded that cannot fit are
 * KINFER_E_DEVICE, with the sizes in out->errmsg; a KV cache and scratch
 * bigger than the host's available memory (MemAvailable) are KINFER_E_NOMEM,
 * here and in kinfer_context_new, before anything is allocated. */
typedef struct kinfer_estimate {
    uint64_t weights_host_bytes;   /* weights read from host memory (mmapped file pages) */
    uint64_t weights_device_bytes; /* weights copied to the GPU */
    uint64_t kv_host_bytes, kv_device_bytes;
    uint64_t compute_host_bytes, compute_device_bytes; /* scratch */
    uint64_t host_bytes, device_bytes; /* totals */
    int32_t n_gpu_layers;          /* layers that would go to the GPU */
    char errmsg[256];              /* why, when the estimate failed */
} kinfer_estimate;

KINFER_API kinfer_status kinfer_model_estimate(const kinfer_model *model, const kinfer_context_params *params,
                                    kinfer_estimate *out);

/* ----------------------------------------------------------------- decode */

/*
 * A batch of tokens to add to the KV cache.  All arrays have n_tokens
 * entries and are only read during kinfer_decode.  Token i sits at position
 * pos[i] of sequence seq_id[i] (seq_id NULL = all sequence 0).  logits[i]
 * nonzero asks for that token's logits; logits NULL = the last token only.
 */
typedef struct kinfer_batch {
    int32_t n_tokens;
    const kinfer_token *token;
    const kinfer_pos *pos;
    const kinfer_seq_id *seq_id;
    const int8_t *logits;
} kinfer_batch;

/* Run the model over a batch.  n_tokens may exceed n_batch (split inside).
 * KINFER_E_CONTEXT_FULL when the cache has no room (nothing is written);
 * KINFER_E_INVALID_ARG for a token outside the vocabulary, a position that
 * is negative or not after the sequence's last one, a bad sequence id, or an
 * empty batch. */
KINFER_API kinfer_status kinfer_decode(kinfer_context *ctx, const kinfer_batch *batch);

/* Logits (n_vocab floats) of token i of the last decoded batch, NULL when
 * that token did not ask for them (or the context computes embeddings).  Valid until the next decode on ctx. */
KINFER_API const float *kinfer_get_logits(kinfer_context *ctx, int32_t i);

/* The pooling a context with embeddings uses (the model's default
 * resolved); KINFER_POOLING_NONE for NULL or a context without embeddings. */
KINFER_API kinfer_pooling kinfer_context_pooling(const kinfer_context *ctx);

/* Embedding (kinfer_model_n_embd floats) of token i of the last decoded
 * batch, for a context with embeddings and pooling none; NULL otherwise, or
 * when i is out of range.  Valid until the next decode on ctx. */
KINFER_API const float *kinfer_get_embeddings_ith(kinfer_context *ctx, int32_t i);

/* Pooled embedding of sequence seq in the last decoded batch
 * (kinfer_model_n_embd floats), for a context with embeddings and pooling
 * mean, cls or last; with pooling rank (a reranker's classification head,
 * BERT's cls and cls.output tensors, on the first token), its
 * kinfer_model_n_cls_out scores.  NULL otherwise, or when the batch had no
 * token of seq.  Valid until the next decode on ctx. */
KINFER_API const float *kinfer_get_embeddings_seq(kinfer_context *ctx, kinfer_seq_id seq);

/*
 * Normalise n floats of in into out (may be the same), as llama-embedding's
 * --embd-normalize: -1 none (copied), 0 max-abs scaled to the int16 range
 * (the largest magnitude becomes 32760), 1 taxicab, 2 euclidean (L2),
 * p > 2 the p-norm.  The norm is summed in double; a zero vector stays zero.
 * KINFER_E_INVALID_ARG for norm < -1, n < 0 or NULL pointers.
 */
KINFER_API kinfer_status kinfer_embd_normalize(const float *in, float *out, int32_t n, int32_t norm);

/* ------------------------------------------------------------- KV cache */

/* Positions are half-open ranges [p0, p1); p1 < 0 means "to the end". */
KINFER_API kinfer_status kinfer_kv_clear(kinfer_context *ctx);
KINFER_API kinfer_status kinfer_kv_seq_rm(kinfer_context *ctx, kinfer_seq_id seq, kinfer_pos p0, kinfer_pos p1);
/* Make dst share src's cells in [p0, p1) (a common prompt prefix); with
 * kv_seq_regions, copy them into dst's region. */
KINFER_API kinfer_status kinfer_kv_seq_cp(kinfer_context *ctx, kinfer_seq_id src, kinfer_seq_id dst,
                               kinfer_pos p0, kinfer_pos p1);
/* Drop every sequence but seq. */
KINFER_API kinfer_status kinfer_kv_seq_keep(kinfer_context *ctx, kinfer_seq_id seq);
/* Add delta to the positions in [p0, p1) of seq (context shift); the keys
 * are re-rotated.  Cells moved below position 0 are removed. */
KINFER_API kinfer_status kinfer_kv_seq_add(kinfer_context *ctx, kinfer_seq_id seq, kinfer_pos p0,
                                kinfer_pos p1, kinfer_pos delta);
/* Smallest and largest position held for seq; KINFER_E_NOT_FOUND if none. */
KINFER_API kinfer_status kinfer_kv_seq_pos_range(const kinfer_context *ctx, kinfer_seq_id seq,
                                      kinfer_pos *min, kinfer_pos *max);

/* Cells holding a token (a cell that sequences share counts once); 0 for NULL. */
KINFER_API uint32_t kinfer_kv_n_used(const kinfer_context *ctx);

/* --------------------------------------------------------------- sampling */

typedef struct kinfer_sampler kinfer_sampler;

/* The chain, in order: penalties -> top-k -> top-p -> min-p -> temperature
 * -> seeded draw.  temperature <= 0 is greedy (argmax after penalties). */
typedef struct kinfer_sampler_params {
    float temperature;       /* default 0.8 */
    int32_t top_k;           /* 0 = off; default 40 */
    float top_p;             /* 1 = off; default 0.95 */
    float min_p;             /* 0 = off; default 0.05 */
    float repeat_penalty;    /* 1 = off (default) */
    float frequency_penalty; /* 0 = off (default) */
    float presence_penalty;  /* 0 = off (default) */
    int32_t penalty_last_n;  /* tokens of history the penalties see; default 64 */
    uint64_t seed;           /* the same seed gives the same draws; default 0 */
} kinfer_sampler_params;

KINFER_API kinfer_sampler_params kinfer_sampler_default_params(void);
KINFER_API kinfer_status kinfer_sampler_new(const kinfer_sampler_params *params, kinfer_sampler **out);
KINFER_API void kinfer_sampler_free(kinfer_sampler *sampler);

/* Pick a token from n_vocab logits (not modified).  Returns the token id, or
 * a negative kinfer_status (KINFER_E_INVALID_ARG for n_vocab <= 0). */
KINFER_API kinfer_token kinfer_sampler_sample(kinfer_sampler *sampler, const float *logits, int32_t n_vocab);
/* Record a token in the penalty history (prompt tokens and sampled ones). */
KINFER_API void kinfer_sampler_accept(kinfer_sampler *sampler, kinfer_token token);
/* Forget the history and reseed (and restart an attached grammar). */
KINFER_API void kinfer_sampler_reset(kinfer_sampler *sampler);

/*
 * Constrained output: a GBNF grammar (llama.cpp's language: rules, | ( )
 * * + ? {m,n}, "literals" with escapes, [classes] with ranges and ^, `.`,
 * # comments; token references <...> are not supported) over a model's
 * vocabulary.  Its state says which tokens may come next: those whose text
 * continues the grammar (a token may span several elements, and a UTF-8
 * character may be split across tokens), and end-of-generation tokens only
 * where the grammar may end, as llama.cpp's grammar sampler decides.
 *
 * A grammar belongs to one thread at a time; it reads the model (which must
 * outlive it).  The first grammar on a model builds a trie of the
 * vocabulary's pieces, kept with the model (thread-safe, built once).
 */
typedef struct kinfer_grammar kinfer_grammar;
struct kinfer_error;   /* (the tokenizer section defines it) */

/* Parse gbnf (NUL-terminated) starting at rule root (NULL = "root").
 * KINFER_E_FORMAT for a grammar that does not parse ("line L, column C:
 * ..."), names an undefined rule, or has a left-recursive one; the message
 * is in *error (may be NULL). */
KINFER_API kinfer_status kinfer_grammar_new(const kinfer_model *model, const char *gbnf, const char *root,
                                            kinfer_grammar **out, struct kinfer_error *error);
KINFER_API void kinfer_grammar_free(kinfer_grammar *grammar);
/* Back to the start of the root rule. */
KINFER_API kinfer_status kinfer_grammar_reset(kinfer_grammar *grammar);
/* Set the logits (n_vocab of them) of every token that may not come next
 * to -INFINITY. */
KINFER_API kinfer_status kinfer_grammar_apply(kinfer_grammar *grammar, float *logits, int32_t n_vocab);
/* Whether token may come next. */
KINFER_API bool kinfer_grammar_allows(kinfer_grammar *grammar, kinfer_token token);
/* Advance on a token; KINFER_E_INVALID_ARG (state unchanged) when it may
 * not come next.  An end-of-generation token leaves the state as it is. */
KINFER_API kinfer_status kinfer_grammar_accept(kinfer_grammar *grammar, kinfer_token token);
/* Whether the text so far is a complete sentence of the grammar. */
KINFER_API bool kinfer_grammar_can_end(const kinfer_grammar *grammar);
/* Message of the grammar's last failure; valid until its next call. */
KINFER_API const char *kinfer_grammar_errmsg(const kinfer_grammar *grammar);

/*
 * Put a grammar at the front of the sampler's chain (NULL removes it); the
 * sampler owns it from then on and frees it.  kinfer_sampler_sample then
 * picks among the tokens the grammar allows, exactly as if every other
 * token's logit were -inf, and advances the grammar on the token it returns
 * (kinfer_sampler_accept does not touch the grammar, so prompt tokens can
 * go to the penalty history).  When no token fits, sample returns
 * KINFER_E_UNSUPPORTED.
 */
KINFER_API kinfer_status kinfer_sampler_set_grammar(kinfer_sampler *sampler, kinfer_grammar *grammar);

/* -log p(target) under the softmax of n_vocab logits, summed in double as
 * llama-perplexity does (perplexity = exp of its mean); NAN for a target
 * outside [0, n_vocab). */
KINFER_API double kinfer_token_nll(const float *logits, int32_t n_vocab, kinfer_token target);

/* --------------------------------------------------------------- tokenizer */

/*
 * The vocabulary is built when the model loads (from tokenizer.ggml.*) and is
 * immutable: every function here may be called from any number of threads.
 * Tokenization matches llama.cpp token for token.  A model whose file has no
 * tokenizer.ggml.model has no vocabulary: kinfer_vocab_n_tokens() is 0, the
 * token getters return KINFER_TOKEN_NULL and kinfer_tokenize() fails with
 * KINFER_E_UNSUPPORTED.
 */

#define KINFER_TOKEN_NULL (-1)

/* Status and message of a call that has no handle of its own to keep them
 * (the model is shared between threads).  Owned by the caller. */
typedef struct kinfer_error {
    kinfer_status status;
    char message[256];
} kinfer_error;

/*
 * Text (text_len bytes, any bytes including NUL and invalid UTF-8) to tokens.
 * add_special adds BOS/EOS as the vocabulary asks (tokenizer.ggml.add_bos_token
 * ...).  parse_special turns the text of control tokens ("<|im_start|>") into
 * their ids: on for templates you wrote, off for untrusted text (user-defined
 * tokens are always recognized, as in llama.cpp).
 * Returns the number of tokens, written to tokens when it is <= n_tokens_max;
 * when it is larger nothing useful is written and the count is returned
 * negated.  On failure returns 0 and fills *error (may be NULL):
 * KINFER_E_UNSUPPORTED (no vocabulary), KINFER_E_INVALID_ARG, KINFER_E_NOMEM.
 */
KINFER_API int64_t kinfer_tokenize(const kinfer_model *model, const char *text, size_t text_len,
                        kinfer_token *tokens, int64_t n_tokens_max, bool add_special,
                        bool parse_special, kinfer_error *error);

/*
 * The text of one token, as llama.cpp's llama_token_to_piece with lstrip 0:
 * SPM "▁" becomes a space, byte tokens <0xXX> their byte, BPE tokens are
 * byte-decoded.  Control and unknown tokens give "" unless special is true.
 * Not NUL-terminated; may be a fragment of a UTF-8 character.  Returns the
 * length, negated when size is too small; 0 for an id outside the vocabulary.
 */
KINFER_API int32_t kinfer_token_to_piece(const kinfer_model *model, kinfer_token token, char *buf,
                              int32_t size, bool special);

/*
 * Tokens back to text, as llama.cpp's llama_detokenize: remove_special drops
 * a leading BOS / trailing EOS the vocabulary adds; unparse_special renders
 * control tokens.  Ids outside the vocabulary render as nothing.  Returns the
 * length (a NUL follows when there is room), negated when size is too small.
 */
KINFER_API int64_t kinfer_detokenize(const kinfer_model *model, const kinfer_token *tokens, int64_t n_tokens,
                          char *buf, int64_t size, bool remove_special, bool unparse_special);

KINFER_API int32_t kinfer_vocab_n_tokens(const kinfer_model *model);
/* "spm", "bpe", "wpm" (WordPiece), or "none".  Static storage. */
KINFER_API const char *kinfer_vocab_type(const kinfer_model *model);
/* Whether tokenizing with add_special adds BOS / EOS. */
KINFER_API bool kinfer_vocab_add_bos(const kinfer_model *model);
KINFER_API bool kinfer_vocab_add_eos(const kinfer_model *model);

/* Special token ids; KINFER_TOKEN_NULL when the vocabulary has none. */
KINFER_API kinfer_token kinfer_token_bos(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_eos(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_eot(const kinfer_model *model);  /* end of turn */
KINFER_API kinfer_token kinfer_token_eom(const kinfer_model *model);  /* end of message */
KINFER_API kinfer_token kinfer_token_unk(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_sep(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_pad(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_nl(const kinfer_model *model);   /* newline */
KINFER_API kinfer_token kinfer_token_fim_pre(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_fim_suf(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_fim_mid(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_fim_pad(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_fim_rep(const kinfer_model *model);
KINFER_API kinfer_token kinfer_token_fim_sep(const kinfer_model *model);

/* Whether the token ends generation (EOS, EOT, <|im_end|>, ...). */
KINFER_API bool kinfer_token_is_eog(const kinfer_model *model, kinfer_token token);
/* Whether it is a control token (rendered only on request). */
KINFER_API bool kinfer_token_is_control(const kinfer_model *model, kinfer_token token);
/* Raw vocabulary entry: NUL-terminated text (valid for the model's life, NULL
 * for a bad id), score, and attribute bits (llama.cpp's llama_token_attr). */
KINFER_API const char *kinfer_token_text(const kinfer_model *model, kinfer_token token);
KINFER_API float kinfer_token_score(const kinfer_model *model, kinfer_token token);
KINFER_API uint32_t kinfer_token_attr(const kinfer_model *model, kinfer_token token);

/*
 * Streaming detokenizer: push tokens one at a time as they are generated and
 * get text that never ends inside a UTF-8 character (an incomplete character
 * is held back until the rest arrives).  The concatenated output equals
 * kinfer_detokenize(tokens, remove_special = false, unparse_special = special),
 * llama.cpp's clean_spaces rule included (" ," -> ",", on for some BPE
 * pre-tokenizers such as gpt-2 and llama3): with it, trailing spaces and
 * apostrophes are also held back until the next text shows how the rule
 * treats them.  Belongs to one thread at a time; the model must outlive it.
 */
typedef struct kinfer_detok kinfer_detok;

KINFER_API kinfer_status kinfer_detok_new(const kinfer_model *model, bool special, kinfer_detok **out);
/* Appends the text completed by this token to buf; returns its length, or its
 * length negated when size is too small (then the token is not consumed:
 * push it again with a larger buffer). */
KINFER_API int32_t kinfer_detok_push(kinfer_detok *detok, kinfer_token token, char *buf, int32_t size);
/* Emits any held-back bytes (an unfinished character) and resets; same
 * return convention. */
KINFER_API int32_t kinfer_detok_flush(kinfer_detok *detok, char *buf, int32_t size);
KINFER_API void kinfer_detok_free(kinfer_detok *detok);

/* ------------------------------------------------------------ chat template */

typedef struct kinfer_chat_message {
    const char *role;     /* "system", "user", "assistant", ... */
    const char *content;
} kinfer_chat_message;

/*
 * Family name ("chatml", "llama3", "gemma", "mistral-v7", ...) of a Jinja chat
 * template or family name, detected as llama.cpp's llm_chat_detect_template
 * does; NULL when unknown.  Static storage.
 */
KINFER_API const char *kinfer_chat_template_family(const char *tmpl);

/* The model's tokenizer.chat_template, or NULL.  Valid for the model's life. */
KINFER_API const char *kinfer_model_chat_template(const kinfer_model *model);

/*
 * Render messages with a chat template, as llama.cpp's
 * llama_chat_apply_template: tmpl is a family name or template text; NULL uses
 * the model's tokenizer.chat_template (and "chatml" when the model has none
 * or model is NULL).  add_generation_prompt appends the assistant header.
 * Returns the length of the text (a NUL follows when there is room), negated
 * when size is too small.  On failure returns 0 and fills *error (may be
 * NULL): KINFER_E_NOT_FOUND for a template no family matches,
 * KINFER_E_UNSUPPORTED for a family kinfer does not render (both name it),
 * KINFER_E_INVALID_ARG, KINFER_E_NOMEM.
 */
KINFER_API int64_t kinfer_chat_apply_template(const kinfer_model *model, const char *tmpl,
                                   const kinfer_chat_message *messages, size_t n_messages,
                                   bool add_generation_prompt, char *buf, int64_t size,
                                   kinfer_error *error);

/* --------------------------------------------------------------- quantize */

typedef struct kinfer_quantize_params {
    const char *ftype;          /* "Q4_K_M" (default), "Q8_0", ... see below */
    int32_t n_threads;          /* 0 = one per online core */
    kinfer_progress_fn progress; /* optional, per tensor written; false cancels */
    void *progress_user_data;
} kinfer_quantize_params;

KINFER_API kinfer_quantize_params kinfer_quantize_default_params(void);

/* The i-th supported ftype name ("F16", "Q8_0", "Q4_K_M", ...), NULL past the end. */
KINFER_API const char *kinfer_quantize_ftype_name(int i);

/*
 * Write in_path's model to out_path with its weights converted to an ftype,
 * choosing per-tensor types as llama-quantize does for that ftype.  Quantized
 * inputs are dequantized first (requantizing loses some quality).  On failure
 * nothing is left at out_path and err (may be NULL) receives the message.
 */
KINFER_API kinfer_status kinfer_quantize(const char *in_path, const char *out_path,
                              const kinfer_quantize_params *params, char *err, size_t err_size);

/* ------------------------------------------------------------------ devices */

/* Number of usable CUDA devices: 0 when the library was built without CUDA,
 * when there is no GPU or no usable driver.  why (may be NULL) receives a
 * static string saying which, or "" when devices were found. */
KINFER_API int kinfer_cuda_device_count(const char **why);

#ifdef __cplusplus
}
#endif

#endif /* KINFER_H */
