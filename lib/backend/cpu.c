/*
 * cpu.c — the CPU backend: the operations of backend.h on kernels/cpu/.
 *
 * Projections always take the quantized path: activations are quantized to
 * the weight's dot type as llama.cpp does (its logits are our reference),
 * and every token's row comes out the same whatever the batch size (the
 * BLAS path would make logits depend on how a prompt was split).  The
 * elementwise steps run on the pool in row ranges when there is enough
 * work, else on the caller (a decode step: waking the workers would cost
 * more than the work); either way each row goes through the same calls.
 * Attention is in cpu_attn.c.
 */
#include "backend/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/threadpool.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"

_Static_assert(BACKEND_TOKEN_GROUP == KINFER_GEMM_MAX_NT &&
                   BACKEND_TOKEN_GROUP == KINFER_GEMM_TILED_MIN_TOKENS,
               "the token group of backend.h is the CPU kernels'");

/* Elements below which an elementwise step runs on the calling thread. */
#define CPU_INLINE_WORK 16384

static cpu_backend *cpu_of(backend *be)
{
    return (cpu_backend *)be;
}

/* ------------------------------------------------------- row ranges */

typedef void (*range_fn)(const void *arg, int64_t i0, int64_t i1);

typedef struct range_job {
    range_fn fn;
    const void *arg;
    int64_t n;
} range_job;

static void range_task(void *p, int ith, int nth)
{
    const range_job *j = p;
    const int64_t i0 = j->n * ith / nth, i1 = j->n * (ith + 1) / nth;
    if (i1 > i0) j->fn(j->arg, i0, i1);
}

/* fn over [0, n) in one range per thread, or inline for less than
 * CPU_INLINE_WORK elements of work. */
static void run_ranges(cpu_backend *cb, int64_t n, int64_t work, range_fn fn, const void *arg)
{
    if (!cb->pool || work < CPU_INLINE_WORK) {
        fn(arg, 0, n);
        return;
    }
    range_job j = {.fn = fn, .arg = arg, .n = n};
    kinfer_threadpool_run(cb->pool, range_task, &j);
}

/* ------------------------------------------------------- projections */

static kinfer_status matmul_failed(backend *be, kinfer_status st, const wtensor *w, const char *what)
{
    return status_fail(be->errmsg, sizeof be->errmsg, st, "%s of a %s weight (%lld x %lld) failed: %s",
                       what, kinfer_type_name(w->type), (long long)w->ne1, (long long)w->ne0,
                       kinfer_status_str(st));
}

/* The K-quants follow llama.cpp's orders, which change with the token count
 * (gemm.h: Q4_K's groups of four, Q5_K's and Q6_K's tiled kernels): under
 * batch_invariant their matmuls take every token in the one-token order
 * (QUANT_ONE_TOKEN: one call, the weights read once, the one-token bits). */
static kinfer_matmul_path matmul_path(const cpu_backend *cb, int type)
{
    const int batch_order = type == KINFER_TYPE_Q4_K || type == KINFER_TYPE_Q5_K || type == KINFER_TYPE_Q6_K;
    return cb->batch_invariant && batch_order ? KINFER_MATMUL_QUANT_ONE_TOKEN : KINFER_MATMUL_QUANT;
}

static kinfer_status cpu_matmul(backend *be, const wtensor *w, const float *x, int32_t n, float *y)
{
    cpu_backend *cb = cpu_of(be);
    kinfer_status st = kinfer_matmul_ex(cb->pool, cb->mm, cb->mm_size, w->type, w->data, w->ne1, w->ne0, x, n, y,
                                        matmul_path(cb, w->type));
    return st ? matmul_failed(be, st, w, "matmul") : KINFER_OK;
}

static kinfer_gate_fn gate_fn(arch_act act)
{
    return act == ARCH_ACT_GELU ? kinfer_gelu_gate : kinfer_silu_gate;
}

typedef struct gate_args {
    kinfer_gate_fn gate;
    float *h;
    const float *u;
    int64_t f;
} gate_args;

static void gate_rows(const void *p, int64_t t0, int64_t t1)
{
    const gate_args *g = p;
    for (int64_t t = t0; t < t1; t++)
        g->gate(g->h + (size_t)t * g->f, g->h + (size_t)t * g->f, g->u + (size_t)t * g->f, g->f);
}

/* One pass over both matrices when they share a type (kinfer_matmul_gated:
 * x quantized once, each row chunk gated while in cache), else two products
 * and the gate. */
static kinfer_status cpu_matmul_gated(backend *be, const wtensor *gate, const wtensor *up, arch_act act,
                                      const float *x, int32_t n, float *y)
{
    cpu_backend *cb = cpu_of(be);
    kinfer_status st;
    if (gate->type != up->type) {
        if ((st = cpu_matmul(be, gate, x, n, y))) return st;
        if ((st = cpu_matmul(be, up, x, n, cb->up))) return st;
        const gate_args g = {.gate = gate_fn(act), .h = y, .u = cb->up, .f = gate->ne1};
        run_ranges(cb, n, (int64_t)n * gate->ne1, gate_rows, &g);
        return KINFER_OK;
    }
    st = kinfer_matmul_gated_ex(cb->pool, cb->mm, cb->mm_size, gate->type, gate->data, up->data, gate->ne1,
                                gate->ne0, x, n, y, gate_fn(act), matmul_path(cb, gate->type));
    return st ? matmul_failed(be, st, gate, "gated matmul") : KINFER_OK;
}

static kinfer_status cpu_get_rows(backend *be, const wtensor *table, const int32_t *ids, int32_t n,
                                  float *out)
{
    kinfer_status st = kinfer_get_rows(table->type, table->data, table->ne1, table->ne0, ids, n, out);
    if (st)
        return status_fail(be->errmsg, sizeof be->errmsg, st, "embedding lookup failed: %s",
                           kinfer_status_str(st));
    return KINFER_OK;
}

/* ------------------------------------------------------- elementwise */

typedef struct norm_args {
    float *out;
    const float *x, *w;
    int64_t dim;
    float eps;
} norm_args;

static void norm_rows(const void *p, int64_t r0, int64_t r1)
{
    const norm_args *a = p;
    for (int64_t r = r0; r < r1; r++)
        kinfer_rmsnorm(a->out + (size_t)r * a->dim, a->x + (size_t)r * a->dim, a->w, a->dim, a->eps);
}

static void cpu_rmsnorm(backend *be, float *out, const float *x, const wtensor *w, int64_t n_rows,
                        int64_t dim, float eps)
{
    const norm_args a = {.out = out, .x = x, .w = w->data, .dim = dim, .eps = eps};
    run_ranges(cpu_of(be), n_rows, n_rows * dim, norm_rows, &a);
}

typedef struct layernorm_args {
    float *out;
    const float *x, *w, *b;
    int64_t dim;
    float eps;
} layernorm_args;

static void layernorm_rows(const void *p, int64_t r0, int64_t r1)
{
    const layernorm_args *a = p;
    for (int64_t r = r0; r < r1; r++)
        kinfer_layernorm(a->out + (size_t)r * a->dim, a->x + (size_t)r * a->dim, a->w, a->b, a->dim, a->eps);
}

static void cpu_layernorm(backend *be, float *out, const float *x, const wtensor *w, const wtensor *b,
                          int64_t n_rows, int64_t dim, float eps)
{
    const layernorm_args a = {.out = out, .x = x, .w = w->data, .b = b->data, .dim = dim, .eps = eps};
    run_ranges(cpu_of(be), n_rows, n_rows * dim, layernorm_rows, &a);
}

typedef struct bias_args {
    float *x;
    const float *b;
    int64_t dim;
} bias_args;

static void bias_rows(const void *p, int64_t r0, int64_t r1)
{
    const bias_args *a = p;
    for (int64_t r = r0; r < r1; r++)
        kinfer_add(a->x + (size_t)r * a->dim, a->x + (size_t)r * a->dim, a->b, a->dim);
}

static void cpu_add_bias(backend *be, float *x, const wtensor *b, int64_t n_rows)
{
    const bias_args a = {.x = x, .b = b->data, .dim = b->ne0};
    run_ranges(cpu_of(be), n_rows, n_rows * b->ne0, bias_rows, &a);
}

/* x and y of the flat elementwise steps, with their one scalar */
typedef struct flat_args {
    float *x;
    const float *y;
    float s;
} flat_args;

static void add_range(const void *p, int64_t i0, int64_t i1)
{
    const flat_args *a = p;
    kinfer_add(a->x + i0, a->x + i0, a->y + i0, i1 - i0);
}

static void cpu_add(backend *be, float *x, const float *y, int64_t n)
{
    const flat_args a = {.x = x, .y = y};
    run_ranges(cpu_of(be), n, n, add_range, &a);
}

static void scale_range(const void *p, int64_t i0, int64_t i1)
{
    const flat_args *a = p;
    kinfer_scale(a->x + i0, a->s, i1 - i0);
}

static void cpu_scale(backend *be, float *x, float s, int64_t n)
{
    const flat_args a = {.x = x, .s = s};
    run_ranges(cpu_of(be), n, n, scale_range, &a);
}

static void gelu_range(const void *p, int64_t i0, int64_t i1)
{
    const flat_args *a = p;
    kinfer_gelu(a->x + i0, a->x + i0, i1 - i0);
}

static void cpu_gelu(backend *be, float *x, int64_t n)
{
    const flat_args a = {.x = x};
    run_ranges(cpu_of(be), n, n, gelu_range, &a);
}

static void softcap_range(const void *p, int64_t i0, int64_t i1)
{
    const flat_args *a = p;
    for (int64_t i = i0; i < i1; i++) a->x[i] = a->s * tanhf(a->x[i] / a->s);
}

static kinfer_status cpu_logits(backend *be, const wtensor *w, const float *x, int32_t n, float cap,
                                float *logits)
{
    kinfer_status st = cpu_matmul(be, w, x, n, logits);
    if (st || cap <= 0.0f) return st;
    const flat_args a = {.x = logits, .s = cap};
    const int64_t m = (int64_t)n * w->ne1;
    run_ranges(cpu_of(be), m, m, softcap_range, &a);
    return KINFER_OK;
}

typedef struct rope_args {
    float *x;
    int n_heads, head_dim;
    const int32_t *pos;
    const kinfer_rope_params *p;
} rope_args;

static void rope_tokens(const void *p, int64_t t0, int64_t t1)
{
    const rope_args *a = p;
    kinfer_rope(a->x + (size_t)t0 * a->n_heads * a->head_dim, t1 - t0, a->n_heads, a->head_dim,
                a->pos + t0, a->p);
}

static void cpu_rope(backend *be, float *x, int32_t n, int n_heads, int head_dim, const int32_t *pos,
                     const kinfer_rope_params *p)
{
    const rope_args a = {.x = x, .n_heads = n_heads, .head_dim = head_dim, .pos = pos, .p = p};
    run_ranges(cpu_of(be), n, (int64_t)n * n_heads * head_dim, rope_tokens, &a);
}

typedef struct store_args {
    kv_cache *kv;
    int il;
    const uint32_t *cells;
    const float *k, *v;
} store_args;

static void store_tokens(const void *p, int64_t t0, int64_t t1)
{
    const store_args *a = p;
    const size_t kd = (size_t)a->kv->n_head_kv * (size_t)a->kv->head_dim_k;
    const size_t vd = (size_t)a->kv->n_head_kv * (size_t)a->kv->head_dim_v;
    for (int64_t t = t0; t < t1; t++)
        kv_write(a->kv, a->il, a->cells[t], a->k + (size_t)t * kd, a->v + (size_t)t * vd);
}

static void cpu_kv_store(backend *be, kv_cache *kv, int il, const uint32_t *cells, int32_t n,
                         const float *k, const float *v)
{
    const store_args a = {.kv = kv, .il = il, .cells = cells, .k = k, .v = v};
    const int64_t work = (int64_t)n * kv->n_head_kv * (kv->head_dim_k + kv->head_dim_v);
    run_ranges(cpu_of(be), n, work, store_tokens, &a);
}

static kinfer_status cpu_begin(backend *be, const kv_cache *kv, int32_t n, const int32_t *pos,
                               const int32_t *seq, const uint32_t *cells)
{
    (void)be, (void)kv, (void)n, (void)pos, (void)seq, (void)cells; /* host arrays serve as they are */
    return KINFER_OK;
}

static kinfer_status cpu_alloc(backend *be, size_t bytes, void **out)
{
    *out = calloc(1, bytes ? bytes : 1);
    if (!*out)
        return status_fail(be->errmsg, sizeof be->errmsg, KINFER_E_NOMEM,
                           "out of memory for %zu bytes of activations", bytes);
    return KINFER_OK;
}

static void cpu_dealloc(backend *be, void *p)
{
    (void)be;
    free(p);
}

static kinfer_status cpu_sync(backend *be)
{
    (void)be; /* every operation has finished when it returns */
    return KINFER_OK;
}

static void cpu_free(backend *be)
{
    cpu_backend *cb = cpu_of(be);
    kinfer_threadpool_free(cb->pool);
    free(cb->mm);
    free(cb->up);
    free(cb->att_tmp);
    free(cb->dec_rows);
    free(cb->moe_mem);
    free(cb);
}

static const backend_ops cpu_ops = {
    .name = "CPU",
    .matmul = cpu_matmul,
    .matmul_gated = cpu_matmul_gated,
    .moe_ffn = cpu_moe_ffn,
    .get_rows = cpu_get_rows,
    .rmsnorm = cpu_rmsnorm,
    .add_bias = cpu_add_bias,
    .add = cpu_add,
    .scale = cpu_scale,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .logits = cpu_logits,
    .layernorm = cpu_layernorm,
    .gelu = cpu_gelu,
    .self_attention = cpu_self_attention,
    .begin = cpu_begin,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .sync = cpu_sync,
    .free = cpu_free,
};

/* ------------------------------------------------------------- sizes */

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* The matmul scratch: the largest any projection needs, whether it goes
 * alone or gated. */
static size_t matmul_scratch(const cpu_backend_shape *sh)
{
    const model_weights *w = sh->w;
    const int64_t nb = sh->n_tokens;
    const int nt = sh->n_threads;
    size_t mm = kinfer_matmul_scratch_size(w->output.type, w->output.ne0, nb, nt);
    for (int il = 0; il < w->hp.n_layer; il++) {
        const layer_weights *L = &w->layers[il];
        for (int i = 0; i < n_layer_tensors; i++) {
            const wtensor *t = layer_tensor_of(L, i);
            if (!(layer_tensors[i].flags & WT_MATRIX) || !t->data) continue;
            mm = max_sz(mm, kinfer_matmul_scratch_size(t->type, t->ne0, nb, nt));
        }
        mm = max_sz(mm, kinfer_matmul_gated_scratch_size(L->ffn_gate.type, L->ffn_gate.ne0, nb, nt));
        mm = max_sz(mm, kinfer_matmul_gated_scratch_size(L->ffn_gate_exps.type, L->ffn_gate_exps.ne0, nb, nt));
    }
    return mm;
}

/* some layer's FFN gate and up differ in type: cpu_matmul_gated then needs
 * a buffer for the up product */
static int gate_up_split(const model_weights *w)
{
    for (int il = 0; il < w->hp.n_layer; il++)
        if (w->layers[il].ffn_gate.type != w->layers[il].ffn_up.type) return 1;
    return 0;
}

static size_t line_align(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

uint64_t backend_cpu_scratch_bytes(const cpu_backend_shape *sh)
{
    const model_hparams *hp = &sh->w->hp;
    uint64_t bytes = line_align(matmul_scratch(sh));
    if (gate_up_split(sh->w)) bytes += (uint64_t)sh->n_tokens * hp->n_ff * sizeof(float);
    bytes += sh->flash_attn ? (uint64_t)cpu_fa_stride(sh->n_ctx, hp, sh->type_k) * (uint64_t)sh->n_threads
                            : (uint64_t)cpu_attn_stride(sh->n_ctx, hp->head_dim_k, sh->type_k) *
                                  (uint64_t)cpu_attn_slices(hp, sh->n_threads);
    bytes += 2 * (uint64_t)sh->n_ctx * sizeof(int32_t);
    bytes += cpu_moe_scratch_bytes(hp, sh->n_tokens);
    return bytes;
}

kinfer_status backend_cpu_new(const cpu_backend_shape *sh, backend **out, char *err, size_t err_size)
{
    *out = NULL;
    const model_hparams *hp = &sh->w->hp;
    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return status_fail(err, err_size, KINFER_E_NOMEM, "out of memory");
    cb->base.ops = &cpu_ops;
    cb->n_ctx = sh->n_ctx;
    cb->batch_invariant = sh->batch_invariant;
    cb->n_ff = hp->n_ff;
    cb->mm_size = matmul_scratch(sh);
    cb->mm = cb->mm_size ? aligned_alloc(64, line_align(cb->mm_size)) : NULL;
    if (gate_up_split(sh->w)) cb->up = calloc((size_t)sh->n_tokens * (size_t)hp->n_ff, sizeof(float));
    cb->flash_attn = sh->flash_attn;
    cb->hp = hp;
    cb->att_stride = sh->flash_attn ? cpu_fa_stride(sh->n_ctx, hp, sh->type_k)
                                    : cpu_attn_stride(sh->n_ctx, hp->head_dim_k, sh->type_k);
    cb->att_slices = sh->flash_attn ? sh->n_threads : cpu_attn_slices(hp, sh->n_threads);
    cb->att_tmp = aligned_alloc(64, cb->att_stride * (size_t)cb->att_slices);
    cb->dec_rows = malloc(2 * (size_t)sh->n_ctx * sizeof *cb->dec_rows);
    *out = &cb->base;
    if ((cb->mm_size && !cb->mm) || (gate_up_split(sh->w) && !cb->up) || !cb->att_tmp || !cb->dec_rows ||
        cpu_moe_init(cb, hp, sh->n_tokens))
        return status_fail(err, err_size, KINFER_E_NOMEM, "out of memory for %llu bytes of scratch",
                           (unsigned long long)backend_cpu_scratch_bytes(sh));
    if (sh->n_threads > 1) {
        cb->pool = kinfer_threadpool_new(sh->n_threads);
        if (!cb->pool) return status_fail(err, err_size, KINFER_E_NOMEM, "cannot start %d threads", sh->n_threads);
    }
    return KINFER_OK;
}
