/*
 * cuda_backend.c — the operations of backend.h on one GPU (cuda_backend.h),
 * through the checked kcuda_* wrappers of cuda.c only.
 *
 * Projections: the quantized GEMV for up to KCUDA_GEMV_MAX_BATCH tokens
 * (decode), dequantize to F16 + cuBLAS above (prompts), kcuda_matmul's
 * choice.  Attention: flash-decoding for a few queries, the tiled kernel for
 * prompts, over the layer's device rows, masked by the cell table this
 * slice uploaded; no score row over the context is kept.
 *
 * The void operations of the table cannot return a status: the first
 * failure is kept (cb->err, be->errmsg) and every later operation is
 * skipped until sync, matmul or logits report it.
 */
#include "backend/cuda_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda.h"
#include "core/status.h"
#include "cpu/kernels.h"
#include "quant.h"

/* A weight's device copy, found by its host data pointer. */
typedef struct wmap {
    const void *host;
    const void *dev;
} wmap;

typedef struct cuda_backend {
    backend base;
    kcuda *cu;
    const model_weights *w;
    int32_t n_tokens;
    uint32_t n_ctx, n_slots;        /* rows of a full / sliding-window layer's store */
    int multi_seq;                  /* n_seq_max > 1: attention checks sequence bits */
    /* weights */
    void *weights;                  /* every tensor but tok_embd, CUDA_BACKEND_ALIGN apart */
    wmap *map;                      /* (n_map) sorted by host */
    int32_t n_map;
    /* KV rows, per layer (rows, n_head_kv * head_dim) in type_k / type_v */
    void *kv_mem;
    void **k, **v;                  /* (n_layer) into kv_mem */
    size_t k_row, v_row;            /* bytes of a row */
    int type_k, type_v;
    /* this slice, uploaded by begin: device copies and the host pointers they copy */
    void *tables;                   /* one allocation, cut into the arrays below */
    int32_t *d_pos, *d_seq;         /* (n_tokens) */
    int32_t *d_row[2];              /* (n_tokens) store row of each token: full, sliding-window */
    int32_t *d_kv_pos[2];           /* (n_ctx) / (n_slots) cell table */
    uint64_t *d_kv_seq[2];          /* the same rows' sequence bits, multi_seq only */
    int32_t *h_row[2], *h_kv_pos[2];/* host staging of the same */
    uint64_t *h_kv_seq[2];
    const int32_t *slice_pos, *slice_seq;
    const uint32_t *slice_cells;
    int32_t slice_n;
    uint32_t n_kv_full;             /* rows of full layers attention visits (kv->hi) */
    /* scratch */
    float *up;                      /* (n_tokens, n_ff) device: the gated FFN's up product */
    float *h_rows;                  /* (n_tokens, n_embd) host: embeddings before upload */
    float *d_logits;                /* (logits_rows, n_vocab) device */
    int32_t logits_rows;
    kinfer_status err;              /* first failure since the last report */
} cuda_backend;

static cuda_backend *cb_of(backend *be)
{
    return (cuda_backend *)be;
}

/* Record a kcuda failure (the first one wins) and return it. */
static kinfer_status record(cuda_backend *cb, kinfer_status st, const char *what)
{
    if (st && !cb->err) {
        cb->err = st;
        snprintf(cb->base.errmsg, sizeof cb->base.errmsg, "CUDA %s failed: %s", what,
                 kcuda_errmsg(cb->cu));
    }
    return st;
}

/* The kept failure, once: the next decode starts clean. */
static kinfer_status take_err(cuda_backend *cb)
{
    const kinfer_status st = cb->err;
    cb->err = KINFER_OK;
    return st;
}

static size_t align_up(size_t n)
{
    return (n + CUDA_BACKEND_ALIGN - 1) / CUDA_BACKEND_ALIGN * CUDA_BACKEND_ALIGN;
}

/* ------------------------------------------------------------ weights */

static const void *dev_of(const cuda_backend *cb, const void *host)
{
    if (!host) return NULL;
    int32_t lo = 0, hi = cb->n_map - 1;
    while (lo <= hi) {
        const int32_t mid = (lo + hi) / 2;
        const char *h = cb->map[mid].host;
        if (h == (const char *)host) return cb->map[mid].dev;
        if (h < (const char *)host) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* Calls fn on every tensor that goes to the device (a tied output matrix is
 * the token embedding's data: it goes, as the output). */
typedef void (*tensor_fn)(void *arg, const wtensor *t);

static void each_tensor(const model_weights *w, tensor_fn fn, void *arg)
{
    for (int il = 0; il < w->hp.n_layer; il++)
        for (int i = 0; i < n_layer_tensors; i++) {
            const wtensor *t = layer_tensor_of(&w->layers[il], i);
            if (t->data) fn(arg, t);
        }
    const wtensor *rest[] = {&w->output_norm, &w->output, &w->rope_freqs, &w->rope_long, &w->rope_short};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
        if (rest[i]->data) fn(arg, rest[i]);
}

typedef struct tally {
    uint64_t bytes;
    int32_t n;
} tally;

static void tally_tensor(void *arg, const wtensor *t)
{
    tally *ta = arg;
    ta->bytes += align_up(wtensor_bytes(t));
    ta->n++;
}

void backend_cuda_bytes(const cuda_backend_shape *sh, cuda_backend_bytes *out)
{
    const model_weights *w = sh->w;
    const model_hparams *hp = &w->hp;
    const kv_cache *kv = sh->kv;
    memset(out, 0, sizeof *out);
    tally ta = {0};
    each_tensor(w, tally_tensor, &ta);
    out->weights = ta.bytes;
    out->n_weights = ta.n;
    const int64_t kd = (int64_t)kv->n_head_kv * kv->head_dim_k, vd = (int64_t)kv->n_head_kv * kv->head_dim_v;
    for (int il = 0; il < kv->n_layer; il++)
        out->kv += align_up(kv_layer_rows(kv, il) * kinfer_row_size(kv->type_k, kd)) +
                   align_up(kv_layer_rows(kv, il) * kinfer_row_size(kv->type_v, vd));
    const uint64_t nt = (uint64_t)sh->n_tokens, rows = (uint64_t)kv->n_ctx + kv->n_swa_slots;
    out->compute = align_up(4 * nt * sizeof(int32_t) + rows * sizeof(int32_t) +
                            (kv->n_seq_max > 1 ? rows * KV_SEQ_WORDS * sizeof(uint64_t) : 0)) +
                   align_up(nt * (uint64_t)hp->n_ff * sizeof(float)) +
                   align_up((uint64_t)hp->n_vocab * sizeof(float));
}

kinfer_status backend_cuda_check(const model_weights *w, int type_k, int type_v, char *err,
                                 size_t err_size)
{
    const model_hparams *hp = &w->hp;
    for (int il = 0; il < hp->n_layer; il++)
        for (int i = 0; i < n_layer_tensors; i++) {
            const wtensor *t = layer_tensor_of(&w->layers[il], i);
            if (!t->data) continue;
            if (t->ne2 > 1)
                return status_fail(err, err_size, KINFER_E_UNSUPPORTED,
                                   "layer %d: mixture-of-experts layers do not run on the GPU yet "
                                   "(use n_gpu_layers = 0)", il);
            if (!kinfer_cuda_type_supported(t->type))
                return status_fail(err, err_size, KINFER_E_UNSUPPORTED,
                                   "layer %d: a %s weight has no CUDA kernels (use n_gpu_layers = 0)",
                                   il, kinfer_type_name(t->type));
        }
    if (!kinfer_cuda_type_supported(w->output.type))
        return status_fail(err, err_size, KINFER_E_UNSUPPORTED,
                           "the %s output matrix has no CUDA kernels (use n_gpu_layers = 0)",
                           kinfer_type_name(w->output.type));
    if (hp->head_dim_k > KINFER_CUDA_ATTN_MAX_HEAD_DIM || hp->head_dim_v > KINFER_CUDA_ATTN_MAX_HEAD_DIM)
        return status_fail(err, err_size, KINFER_E_UNSUPPORTED,
                           "heads of %d / %d elements are wider than the CUDA attention takes (%d)",
                           hp->head_dim_k, hp->head_dim_v, KINFER_CUDA_ATTN_MAX_HEAD_DIM);
    if (!kinfer_cuda_attn_type_supported(type_k) || !kinfer_cuda_attn_type_supported(type_v) ||
        !kinfer_cuda_set_rows_type_supported(type_k) || !kinfer_cuda_set_rows_type_supported(type_v))
        return status_fail(err, err_size, KINFER_E_UNSUPPORTED,
                           "a %s / %s KV cache is not one the CUDA attention reads",
                           kinfer_type_name(type_k), kinfer_type_name(type_v));
    return KINFER_OK;
}

/* The upload of every weight, with progress. */
typedef struct uploader {
    cuda_backend *cb;
    const cuda_backend_shape *sh;
    size_t offset;
    int32_t done, total;
    kinfer_status st;
} uploader;

static void upload_tensor(void *arg, const wtensor *t)
{
    uploader *u = arg;
    cuda_backend *cb = u->cb;
    if (u->st || dev_of(cb, t->data)) return; /* failed before, or uploaded (a shared tensor) */
    void *dst = (char *)cb->weights + u->offset;
    const size_t bytes = (size_t)wtensor_bytes(t);
    kinfer_status st = kcuda_upload(cb->cu, dst, t->data, bytes);
    if (st) {
        u->st = status_fail(cb->base.errmsg, sizeof cb->base.errmsg, st,
                            "uploading a weight of %zu bytes to the GPU failed: %s", bytes,
                            kcuda_errmsg(cb->cu));
        return;
    }
    u->offset += align_up(bytes);
    /* insertion keeps the map sorted for dev_of */
    int32_t i = cb->n_map++;
    while (i > 0 && (const char *)cb->map[i - 1].host > (const char *)t->data) {
        cb->map[i] = cb->map[i - 1];
        i--;
    }
    cb->map[i] = (wmap){.host = t->data, .dev = dst};
    u->done++;
    if (u->sh->progress && !u->sh->progress((float)u->done / (float)u->total, u->sh->progress_user_data))
        u->st = status_fail(cb->base.errmsg, sizeof cb->base.errmsg, KINFER_E_ABORTED,
                            "the weight upload was cancelled by the progress callback");
}

/* ------------------------------------------------------ cell tables */

void cuda_cell_table(const kv_cache *kv, int swa, uint32_t n_rows, int32_t *pos, uint64_t *seq)
{
    for (uint32_t r = 0; r < n_rows; r++) pos[r] = -1;
    if (seq) memset(seq, 0, (size_t)n_rows * KV_SEQ_WORDS * sizeof *seq);
    for (uint32_t c = 0; c < kv->hi; c++) {
        const kv_cell *cell = &kv->cells[c];
        if (cell->pos < 0) continue;
        const int64_t r = swa ? (int64_t)kv->slot[c] : (int64_t)c;
        if (r < 0 || r >= (int64_t)n_rows) continue; /* lost its sliding-window row */
        pos[r] = cell->pos;
        if (seq) memcpy(seq + (size_t)r * KV_SEQ_WORDS, cell->seq, sizeof cell->seq);
    }
}

/* ------------------------------------------------------- operations */

static kinfer_status matmul_dev(cuda_backend *cb, const wtensor *w, const float *x, int32_t n, float *y)
{
    if (cb->err) return cb->err;
    const void *dw = dev_of(cb, w->data);
    if (!dw)
        return status_fail(cb->base.errmsg, sizeof cb->base.errmsg, cb->err = KINFER_E_INVALID_ARG,
                           "a %s weight (%lld x %lld) is not on the GPU", kinfer_type_name(w->type),
                           (long long)w->ne1, (long long)w->ne0);
    return record(cb, kcuda_matmul(cb->cu, w->type, dw, w->ne1, w->ne0, x, n, y), "matmul");
}

static kinfer_status cuda_matmul(backend *be, const wtensor *w, const float *x, int32_t n, float *y)
{
    cuda_backend *cb = cb_of(be);
    const kinfer_status st = matmul_dev(cb, w, x, n, y);
    return st ? take_err(cb) : KINFER_OK;
}

static kinfer_status cuda_matmul_gated(backend *be, const wtensor *gate, const wtensor *up, arch_act act,
                                       const float *x, int32_t n, float *y)
{
    cuda_backend *cb = cb_of(be);
    kinfer_status st = matmul_dev(cb, gate, x, n, y);
    if (!st) st = matmul_dev(cb, up, x, n, cb->up);
    const int64_t m = (int64_t)n * gate->ne1;
    if (!st)
        st = record(cb, act == ARCH_ACT_GELU ? kcuda_gelu_gate(cb->cu, y, y, cb->up, m)
                                             : kcuda_silu_gate(cb->cu, y, y, cb->up, m), "gate");
    return st ? take_err(cb) : KINFER_OK;
}

/* The embedding table stays on the host: rows looked up there, uploaded. */
static kinfer_status cuda_get_rows(backend *be, const wtensor *table, const int32_t *ids, int32_t n,
                                   float *out)
{
    cuda_backend *cb = cb_of(be);
    if (cb->err) return take_err(cb);
    if (n > cb->n_tokens)
        return status_fail(be->errmsg, sizeof be->errmsg, KINFER_E_INVALID_ARG,
                           "embedding lookup of %d tokens, over the %d of a slice", n, cb->n_tokens);
    kinfer_status st = kinfer_get_rows(table->type, table->data, table->ne1, table->ne0, ids, n, cb->h_rows);
    if (st)
        return status_fail(be->errmsg, sizeof be->errmsg, st, "embedding lookup failed: %s",
                           kinfer_status_str(st));
    st = record(cb, kcuda_upload(cb->cu, out, cb->h_rows, (size_t)n * (size_t)table->ne0 * sizeof(float)),
                "embedding upload");
    return st ? take_err(cb) : KINFER_OK;
}

static void cuda_rmsnorm(backend *be, float *out, const float *x, const wtensor *w, int64_t n_rows,
                         int64_t dim, float eps)
{
    cuda_backend *cb = cb_of(be);
    if (cb->err) return;
    record(cb, kcuda_rmsnorm(cb->cu, out, x, dev_of(cb, w->data), n_rows, dim, eps), "rmsnorm");
}

static void cuda_add_bias(backend *be, float *x, const wtensor *b, int64_t n_rows)
{
    cuda_backend *cb = cb_of(be);
    const float *db = dev_of(cb, b->data);
    for (int64_t r = 0; r < n_rows && !cb->err; r++)
        record(cb, kcuda_add(cb->cu, x + r * b->ne0, x + r * b->ne0, db, b->ne0), "add_bias");
}

static void cuda_add(backend *be, float *x, const float *y, int64_t n)
{
    cuda_backend *cb = cb_of(be);
    if (!cb->err) record(cb, kcuda_add(cb->cu, x, x, y, n), "add");
}

static void cuda_scale(backend *be, float *x, float s, int64_t n)
{
    cuda_backend *cb = cb_of(be);
    if (!cb->err) record(cb, kcuda_scale(cb->cu, x, s, n), "scale");
}

/* A host array of this slice, as begin copied it; NULL (and a kept error)
 * for anything else. */
static const int32_t *slice_copy(cuda_backend *cb, const void *host, const void *slice, const int32_t *dev,
                                 const char *what)
{
    if (host == slice && dev) return dev;
    if (!cb->err) {
        cb->err = KINFER_E_INVALID_ARG;
        snprintf(cb->base.errmsg, sizeof cb->base.errmsg,
                 "CUDA backend: %s are not the ones of the slice begun", what);
    }
    return NULL;
}

static void cuda_rope(backend *be, float *x, int32_t n, int n_heads, int head_dim, const int32_t *pos,
                      const kinfer_rope_params *p)
{
    cuda_backend *cb = cb_of(be);
    const int32_t *dpos = slice_copy(cb, pos, cb->slice_pos, cb->d_pos, "positions");
    if (cb->err) return;
    kinfer_rope_params dp = *p;
    dp.freq_factors = dev_of(cb, p->freq_factors);
    record(cb, kcuda_rope(cb->cu, x, n, n_heads, head_dim, dpos, &dp), "rope");
}

static void cuda_kv_store(backend *be, kv_cache *kv, int il, const uint32_t *cells, int32_t n,
                          const float *k, const float *v)
{
    cuda_backend *cb = cb_of(be);
    const int swa = kv->layer_swa && kv->layer_swa[il];
    const int32_t *rows = slice_copy(cb, cells, cb->slice_cells, cb->d_row[swa], "cache cells");
    if (cb->err) return;
    const size_t n_rows = kv_layer_rows(kv, il);
    const int64_t kd = (int64_t)kv->n_head_kv * kv->head_dim_k, vd = (int64_t)kv->n_head_kv * kv->head_dim_v;
    if (!record(cb, kcuda_set_rows(cb->cu, cb->type_k, cb->k[il], n_rows, kd, rows, n, k), "KV write"))
        record(cb, kcuda_set_rows(cb->cu, cb->type_v, cb->v[il], n_rows, vd, rows, n, v), "KV write");
}

static void cuda_attention(backend *be, const backend_attn *a)
{
    cuda_backend *cb = cb_of(be);
    const kv_cache *kv = a->kv;
    const int swa = a->swa != 0;
    const int32_t *dpos = slice_copy(cb, a->pos, cb->slice_pos, cb->d_pos, "positions");
    const int32_t *dseq = slice_copy(cb, a->seq, cb->slice_seq, cb->d_seq, "sequences");
    if (cb->err) return;
    const kinfer_cuda_attn_params p = {
        .n_q = a->n,
        .n_head = a->n_head,
        .n_head_kv = kv->n_head_kv,
        .head_dim_k = (int32_t)kv->head_dim_k,
        .head_dim_v = (int32_t)kv->head_dim_v,
        .q = a->q,
        .q_pos = dpos,
        .q_seq = dseq,
        .n_kv = (int32_t)(swa ? cb->n_slots : cb->n_kv_full),
        .type_k = cb->type_k,
        .type_v = cb->type_v,
        .k = cb->k[a->il],
        .v = cb->v[a->il],
        .k_row_bytes = cb->k_row,
        .v_row_bytes = cb->v_row,
        .kv_pos = cb->d_kv_pos[swa],
        .kv_seq = cb->multi_seq ? cb->d_kv_seq[swa] : NULL,
        .kv_seq_words = KV_SEQ_WORDS,
        .scale = a->scale,
        .softcap = 0.0f,
        .n_swa = swa ? kv->n_swa : 0,
        .out = a->out,
    };
    record(cb, kcuda_attention(cb->cu, &p), "attention");
}

static kinfer_status cuda_logits(backend *be, const wtensor *w, const float *x, int32_t n, float cap,
                                 float *logits)
{
    cuda_backend *cb = cb_of(be);
    if (cb->err) return take_err(cb);
    if (n > cb->logits_rows) { /* more rows of logits than any step before */
        kcuda_dealloc(cb->cu, cb->d_logits);
        cb->d_logits = NULL;
        cb->logits_rows = 0;
        void *p;
        if (record(cb, kcuda_alloc(cb->cu, (size_t)n * (size_t)w->ne1 * sizeof(float), &p), "logits buffer"))
            return take_err(cb);
        cb->d_logits = p;
        cb->logits_rows = n;
    }
    kinfer_status st = matmul_dev(cb, w, x, n, cb->d_logits);
    const size_t m = (size_t)n * (size_t)w->ne1;
    if (!st) st = record(cb, kcuda_download(cb->cu, logits, cb->d_logits, m * sizeof(float)), "logits download");
    if (st) return take_err(cb);
    if (cap > 0.0f) /* on the host, as the CPU does it: the values are here now */
        for (size_t i = 0; i < m; i++) logits[i] = cap * tanhf(logits[i] / cap);
    return KINFER_OK;
}

static kinfer_status cuda_begin(backend *be, const kv_cache *kv, int32_t n, const int32_t *pos,
                                const int32_t *seq, const uint32_t *cells)
{
    cuda_backend *cb = cb_of(be);
    cb->err = KINFER_OK; /* a failed slice before does not poison this one */
    if (n > cb->n_tokens)
        return status_fail(be->errmsg, sizeof be->errmsg, KINFER_E_INVALID_ARG,
                           "a slice of %d tokens, over the %d the CUDA backend was made for", n, cb->n_tokens);
    for (int32_t t = 0; t < n; t++) {
        cb->h_row[0][t] = (int32_t)cells[t];
        cb->h_row[1][t] = kv->slot ? kv->slot[cells[t]] : (int32_t)cells[t];
    }
    cb->n_kv_full = kv->hi;
    cuda_cell_table(kv, 0, kv->hi, cb->h_kv_pos[0], cb->multi_seq ? cb->h_kv_seq[0] : NULL);
    if (cb->n_slots) cuda_cell_table(kv, 1, cb->n_slots, cb->h_kv_pos[1], cb->multi_seq ? cb->h_kv_seq[1] : NULL);
    const size_t nb = (size_t)n * sizeof(int32_t);
    struct { void *dst; const void *src; size_t bytes; } up[] = {
        {cb->d_pos, pos, nb},
        {cb->d_seq, seq, nb},
        {cb->d_row[0], cb->h_row[0], nb},
        {cb->d_row[1], cb->h_row[1], cb->n_slots ? nb : 0},
        {cb->d_kv_pos[0], cb->h_kv_pos[0], kv->hi * sizeof(int32_t)},
        {cb->d_kv_pos[1], cb->h_kv_pos[1], cb->n_slots * sizeof(int32_t)},
        {cb->d_kv_seq[0], cb->h_kv_seq[0], cb->multi_seq ? kv->hi * KV_SEQ_WORDS * sizeof(uint64_t) : 0},
        {cb->d_kv_seq[1], cb->h_kv_seq[1],
         cb->multi_seq ? cb->n_slots * KV_SEQ_WORDS * sizeof(uint64_t) : 0},
    };
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++)
        if (up[i].bytes && record(cb, kcuda_upload(cb->cu, up[i].dst, up[i].src, up[i].bytes), "slice upload"))
            return take_err(cb);
    cb->slice_pos = pos;
    cb->slice_seq = seq;
    cb->slice_cells = cells;
    cb->slice_n = n;
    return KINFER_OK;
}

static kinfer_status cuda_alloc(backend *be, size_t bytes, void **out)
{
    cuda_backend *cb = cb_of(be);
    kinfer_status st = kcuda_alloc(cb->cu, bytes, out);
    if (!st) st = kcuda_memset(cb->cu, *out, 0, bytes);
    if (st)
        return status_fail(be->errmsg, sizeof be->errmsg, st,
                           "cannot allocate %zu bytes of activations on the GPU: %s", bytes,
                           kcuda_errmsg(cb->cu));
    return KINFER_OK;
}

static void cuda_dealloc(backend *be, void *p)
{
    kcuda_dealloc(cb_of(be)->cu, p);
}

static kinfer_status cuda_sync(backend *be)
{
    cuda_backend *cb = cb_of(be);
    if (!cb->err) record(cb, kcuda_sync(cb->cu), "sync");
    return take_err(cb);
}

static void cuda_free(backend *be)
{
    cuda_backend *cb = cb_of(be);
    if (cb->cu) kcuda_sync(cb->cu);
    kcuda_dealloc(cb->cu, cb->weights);
    kcuda_dealloc(cb->cu, cb->kv_mem);
    kcuda_dealloc(cb->cu, cb->tables);
    kcuda_dealloc(cb->cu, cb->up);
    kcuda_dealloc(cb->cu, cb->d_logits);
    kcuda_free(cb->cu);
    free(cb->map);
    free(cb->k);
    free(cb->v);
    free(cb->h_row[0]);
    free(cb->h_kv_pos[0]);
    free(cb->h_kv_seq[0]);
    free(cb->h_rows);
    free(cb);
}

static const backend_ops cuda_ops = {
    .name = "CUDA",
    .matmul = cuda_matmul,
    .matmul_gated = cuda_matmul_gated,
    .get_rows = cuda_get_rows,
    .rmsnorm = cuda_rmsnorm,
    .add_bias = cuda_add_bias,
    .add = cuda_add,
    .scale = cuda_scale,
    .rope = cuda_rope,
    .kv_store = cuda_kv_store,
    .attention = cuda_attention,
    .logits = cuda_logits,
    .begin = cuda_begin,
    .alloc = cuda_alloc,
    .dealloc = cuda_dealloc,
    .sync = cuda_sync,
    .free = cuda_free,
};

/* ------------------------------------------------------------ creation */

static const char *gib(uint64_t b, char *buf, size_t size)
{
    snprintf(buf, size, "%.2f GiB", (double)b / (double)(1ull << 30));
    return buf;
}

/* Host staging: rows for the tokens, the cell tables. */
static int host_buffers(cuda_backend *cb, const model_hparams *hp)
{
    const size_t nt = (size_t)cb->n_tokens, rows = (size_t)cb->n_ctx + cb->n_slots;
    cb->h_row[0] = malloc(2 * nt * sizeof(int32_t));
    cb->h_kv_pos[0] = malloc(rows * sizeof(int32_t));
    cb->h_kv_seq[0] = cb->multi_seq ? malloc(rows * KV_SEQ_WORDS * sizeof(uint64_t)) : NULL;
    cb->h_rows = malloc(nt * (size_t)hp->n_embd * sizeof(float));
    if (!cb->h_row[0] || !cb->h_kv_pos[0] || (cb->multi_seq && !cb->h_kv_seq[0]) || !cb->h_rows) return 0;
    cb->h_row[1] = cb->h_row[0] + nt;
    cb->h_kv_pos[1] = cb->h_kv_pos[0] + cb->n_ctx;
    if (cb->multi_seq) cb->h_kv_seq[1] = cb->h_kv_seq[0] + (size_t)cb->n_ctx * KV_SEQ_WORDS;
    return 1;
}

/* Cut the one tables allocation as backend_cuda_bytes counted it. */
static void cut_tables(cuda_backend *cb)
{
    const size_t nt = (size_t)cb->n_tokens;
    int32_t *i32 = cb->tables;
    cb->d_pos = i32;
    cb->d_seq = i32 + nt;
    cb->d_row[0] = i32 + 2 * nt;
    cb->d_row[1] = i32 + 3 * nt;
    cb->d_kv_pos[0] = i32 + 4 * nt;
    cb->d_kv_pos[1] = cb->d_kv_pos[0] + cb->n_ctx;
    if (cb->multi_seq) {
        /* after the int32 arrays, 8-byte aligned */
        size_t off = (4 * nt + cb->n_ctx + cb->n_slots) * sizeof(int32_t);
        off = (off + 7) & ~(size_t)7;
        cb->d_kv_seq[0] = (uint64_t *)((char *)cb->tables + off);
        cb->d_kv_seq[1] = cb->d_kv_seq[0] + (size_t)cb->n_ctx * KV_SEQ_WORDS;
    }
}

kinfer_status backend_cuda_new(const cuda_backend_shape *sh, backend **out, char *err, size_t err_size)
{
    *out = NULL;
    const model_weights *w = sh->w;
    const model_hparams *hp = &w->hp;
    const kv_cache *kv = sh->kv;
    kinfer_status st = backend_cuda_check(w, kv->type_k, kv->type_v, err, err_size);
    if (st) return st;
    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return status_fail(err, err_size, KINFER_E_NOMEM, "out of memory");
    cb->base.ops = &cuda_ops;
    *out = &cb->base; /* the caller frees it whatever happens next */
    cb->w = w;
    cb->n_tokens = sh->n_tokens;
    cb->n_ctx = kv->n_ctx;
    cb->n_slots = kv->n_swa ? kv->n_swa_slots : 0;
    cb->multi_seq = kv->n_seq_max > 1;
    cb->type_k = kv->type_k;
    cb->type_v = kv->type_v;
    const int64_t kd = (int64_t)kv->n_head_kv * kv->head_dim_k, vd = (int64_t)kv->n_head_kv * kv->head_dim_v;
    cb->k_row = kinfer_row_size(kv->type_k, kd);
    cb->v_row = kinfer_row_size(kv->type_v, vd);
    if ((st = kcuda_new(sh->device, &cb->cu, err, err_size))) return st;

    cuda_backend_bytes need;
    backend_cuda_bytes(sh, &need);
    kcuda_device_info info;
    char why[256], b1[32], b2[32], b3[32];
    const uint64_t free_bytes = kcuda_device_info_get(sh->device, &info, why, sizeof why) ? 0 : info.free_bytes;
    /* one allocation each: weights, KV rows, per-slice tables, the up product */
    const size_t bytes[4] = {
        need.weights,
        need.kv,
        (4 * (size_t)sh->n_tokens + kv->n_ctx + cb->n_slots) * sizeof(int32_t) + 8 +
            (cb->multi_seq ? ((size_t)kv->n_ctx + cb->n_slots) * KV_SEQ_WORDS * sizeof(uint64_t) : 0),
        (size_t)sh->n_tokens * (size_t)hp->n_ff * sizeof(float),
    };
    void *mem[4];
    if ((st = kcuda_alloc_many(cb->cu, 4, bytes, mem)))
        return status_fail(err, err_size, st,
                           "the model does not fit on the GPU: %s of weights + %s of KV cache + "
                           "%s of buffers, %s free (%s)", gib(need.weights, b1, sizeof b1),
                           gib(need.kv, b2, sizeof b2), gib(need.compute, b3, sizeof b3),
                           gib(free_bytes, why, sizeof why), kcuda_errmsg(cb->cu));
    cb->weights = mem[0];
    cb->kv_mem = mem[1];
    cb->tables = mem[2];
    cb->up = mem[3];
    cut_tables(cb);
    cb->k = calloc((size_t)hp->n_layer, sizeof *cb->k);
    cb->v = calloc((size_t)hp->n_layer, sizeof *cb->v);
    cb->map = calloc((size_t)need.n_weights + 1, sizeof *cb->map);
    if (!cb->k || !cb->v || !cb->map || !host_buffers(cb, hp))
        return status_fail(err, err_size, KINFER_E_NOMEM, "out of memory for the CUDA backend's tables");
    size_t off = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        cb->k[il] = (char *)cb->kv_mem + off;
        off += align_up(kv_layer_rows(kv, il) * cb->k_row);
        cb->v[il] = (char *)cb->kv_mem + off;
        off += align_up(kv_layer_rows(kv, il) * cb->v_row);
    }
    uploader u = {.cb = cb, .sh = sh, .total = need.n_weights};
    each_tensor(w, upload_tensor, &u);
    if (u.st) return status_fail(err, err_size, u.st, "%s", cb->base.errmsg);
    return KINFER_OK;
}
