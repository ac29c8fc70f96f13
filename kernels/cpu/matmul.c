/*
 * matmul.c — y = W x on the CPU for any weight type.
 *
 * Quantized path: each token's activation row is quantized once to the
 * weight type's vec_dot_type, then every thread takes a contiguous range of
 * weight rows.  With several tokens the loops are tiled so a few weight rows
 * stay in L1 while a block of activation rows (in L2) streams past them:
 * each weight byte is read from memory once per token block, not per token.
 * Where a type has batched kernels (gemm.h) a prompt goes through them
 * instead: the quantized rows are repacked once, each weight row is decoded
 * once per 8 tokens (32-element types: once per matmul), and the threads
 * claim row chunks from a counter.
 *
 * BLAS path: dequantize panels of weight rows to f32 and multiply them with
 * cblas_sgemm (OpenBLAS, with its own threads).  It wins once there are
 * enough tokens; the crossover is measured by bench/bench_kernels.
 * OpenBLAS is loaded on the first BLAS-path call (blas_dl.h); where it
 * cannot be, AUTO takes the quantized path and BLAS is refused.
 *
 * Gated pair (kinfer_matmul_gated): a gated FFN's gate and up projections
 * share one quantization of x, and each row chunk of both goes through the
 * kernels and the gate while it is in cache, so only the gated product is
 * ever stored (the forward pass then needs one n_ff-wide buffer, not two).
 *
 * Every output element is one vec_dot call whatever the thread count, so
 * results do not depend on how rows were split.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "cpu/blas_dl.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "core/threadpool.h"

/* Weight rows dequantized per sgemm call in the BLAS path: about 4 MiB of
 * f32, so OpenBLAS gets a wide enough problem to split over its threads. */
static int64_t blas_panel_rows(int64_t n_cols)
{
    int64_t r = ((int64_t)4 << 20) / ((n_cols > 0 ? n_cols : 1) * (int64_t)sizeof(float));
    r = r < 64 ? 64 : (r > 1024 ? 1024 : r);
    return r & ~(int64_t)15;
}
/* Tiles of the quantized path: weight rows kept in L1, tokens in L2. */
#define TILE_ROWS 4
#define TILE_TOKENS 32

/*
 * Token count from which AUTO uses OpenBLAS.  Measured with bench_kernels
 * on the development machine (2-core Zen 5, AVX-512): the batched
 * quantized kernels (vec_dot_x4) beat dequantize + sgemm at every batch
 * size tried (up to 512 tokens: integer math on 4-8x fewer bytes); float
 * weights and the types without a batched kernel lose to sgemm beyond a
 * handful of tokens.
 */
static int64_t blas_min_tokens(int type, const kinfer_cpu_kernels *k)
{
    switch (type) {
    case KINFER_TYPE_F32:
    case KINFER_TYPE_F16:
    case KINFER_TYPE_BF16:
        return 16;
    default:
        return k->vec_dot_x4 != NULL ? INT64_MAX : 32;
    }
}

static size_t align_up(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Weight rows per chunk of the batched path: about 16 KiB (as the kernel
 * reads them: decoded where the type has a decoder), at most 64 rows
 * (enough chunks to balance), a multiple of the kernel's row group (gemm.h:
 * a 4096-column Q4_K chunk of 16 KiB would fill 4 of its 16 lanes) or else
 * of 4 where it can be (the kernels take four rows at a time). */
static int64_t gemm_tile_rows(size_t row_bytes, int row_group)
{
    int64_t r = (int64_t)(16384 / (row_bytes ? row_bytes : 1));
    r = r < 1 ? 1 : (r > 64 ? 64 : r);
    if (row_group > 1)
        return r < row_group ? row_group : r - r % row_group;
    return r >= 4 ? r & ~(int64_t)3 : r;
}

/* A lane kernel (row_group > 1) with a decoder gets bigger chunks: its
 * decoded chunk, up to about LANE_PANEL_BYTES (in L2), is read once per
 * token group, and a token group's activations (in L1) then serve several
 * row groups before the next group comes in.  budget: that room (the gated
 * pair splits it between its two matrices). */
#define LANE_PANEL_BYTES ((size_t)320 << 10)
static int64_t gemm_chunk_rows(const kinfer_gemm_kernels *gk, int64_t n_cols, size_t w_row_bytes, size_t budget)
{
    const size_t drow = kinfer_gemm_decoded_row_size(n_cols);
    if (gk->decode != NULL && gk->row_group > 1 && drow > 0) {
        const size_t group = drow * (size_t)gk->row_group, groups = budget / group;
        return (int64_t)(groups < 1 ? 1 : (groups > 4 ? 4 : groups)) * gk->row_group;
    }
    return gemm_tile_rows(gk->decode != NULL ? drow : w_row_bytes, gk->row_group);
}

/* Bytes of the packed activations: whole token groups (pack_group writes
 * all the slots of the last one). */
static size_t packed_bytes(int64_t n_cols, int64_t n_tokens)
{
    const int64_t G = KINFER_GEMM_MAX_NT;
    return align_up(kinfer_gemm_packed_size(n_cols) * (size_t)((n_tokens + G - 1) / G * G));
}

/* Bytes of the row chunk a thread decodes for the batched kernels gk (0:
 * they have no decoder). */
static size_t gemm_panel_bytes(const kinfer_gemm_kernels *gk, int64_t n_cols)
{
    if (gk->decode == NULL)
        return 0;
    const size_t row = kinfer_gemm_decoded_row_size(n_cols);
    return align_up((size_t)gemm_chunk_rows(gk, n_cols, 0, LANE_PANEL_BYTES) * row);
}

size_t kinfer_matmul_scratch_size(int type, int64_t n_cols, int64_t n_tokens, int n_threads)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    if (tt == NULL || tt->vec_dot_type < 0 || n_cols < 0 || n_tokens < 0)
        return 0;
    const size_t act = kinfer_row_size(tt->vec_dot_type, n_cols);
    const size_t quant = align_up(act * (size_t)n_tokens);
    const size_t blas = align_up((size_t)blas_panel_rows(n_cols) * (size_t)n_cols * sizeof(float));
    /* the batched kernels' packed activations and decoded row chunks (one
     * per thread) share the BLAS panel's room; a chunk of the repacked
     * order's or of mul_mat_id's kernels may be the biggest (the matrix's
     * rows and the path decide) */
    const kinfer_gemm_kernels gk = kinfer_gemm_get(type), gkr = kinfer_gemm_get_repacked(type),
                              gkm = kinfer_gemm_get_mmid(type);
    /* the tiled order's kernels decode their chunks too (batched_kernels) */
    const kinfer_gemm_kernels gkt = {.gemm = gk.gemm, .decode = kinfer_gemm_get_tiled_decode(type),
                                     .row_group = gk.row_group};
    size_t panel = gemm_panel_bytes(&gk, n_cols);
    if (gemm_panel_bytes(&gkt, n_cols) > panel) panel = gemm_panel_bytes(&gkt, n_cols);
    if (gemm_panel_bytes(&gkr, n_cols) > panel) panel = gemm_panel_bytes(&gkr, n_cols);
    if (gemm_panel_bytes(&gkm, n_cols) > panel) panel = gemm_panel_bytes(&gkm, n_cols);
    const size_t packed = n_tokens > 1 && (gk.gemm != NULL || gkm.gemm != NULL)
                              ? packed_bytes(n_cols, n_tokens) + panel * (size_t)(n_threads > 0 ? n_threads : 1)
                              : 0;
    return 64 + quant + (blas > packed ? blas : packed);
}

typedef struct matmul_job {
    const kinfer_cpu_kernels *k;   /* weight type */
    const kinfer_cpu_kernels *ka;  /* activation type */
    const uint8_t *w;
    size_t w_row_bytes;
    int64_t n_rows, n_cols, n_tokens;
    const float *x;
    float *y;
    uint8_t *xq;                   /* (n_tokens, act_row_bytes) */
    size_t act_row_bytes;
    kinfer_gemm_kernels gk;        /* batched kernels, or NULLs */
    uint8_t *xp;                   /* (n_tokens, xp_row_bytes) packed activations */
    size_t xp_row_bytes;
    uint8_t *panels;               /* gk.decode: a decoded row chunk per thread */
    size_t panel_bytes;
    int64_t chunk_rows;            /* batched path: weight rows per chunk */
    atomic_int next_chunk;         /* batched path: next row chunk to claim */
    bool token_by_token;           /* each token as a one-token matmul (mul_mat_id's gemv of
                                    * a repacked matrix, QUANT_ONE_TOKEN) */
} matmul_job;

static void range_of(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

static void quantize_task(void *p, int ith, int nth)
{
    const matmul_job *job = p;
    int64_t t0, t1;
    range_of(job->n_tokens, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        job->ka->from_float_act(job->x + t * job->n_cols, job->xq + (size_t)t * job->act_row_bytes,
                            job->n_cols);
}

/* Quantize, then repack for the batched kernels, a range of token groups
 * each (groups of KINFER_GEMM_MAX_NT tokens: pack_group's unit). */
static void quantize_pack_task(void *p, int ith, int nth)
{
    const matmul_job *job = p;
    const int64_t G = KINFER_GEMM_MAX_NT;
    int64_t g0, g1;
    range_of((job->n_tokens + G - 1) / G, ith, nth, &g0, &g1);
    for (int64_t g = g0; g < g1; g++) {
        const int64_t t0 = g * G, t1 = t0 + G < job->n_tokens ? t0 + G : job->n_tokens;
        for (int64_t t = t0; t < t1; t++) {
            uint8_t *q = job->xq + (size_t)t * job->act_row_bytes;
            job->ka->from_float_act(job->x + t * job->n_cols, q, job->n_cols);
            if (job->gk.pack != NULL)
                job->gk.pack(job->n_cols, q, job->xp + (size_t)t * job->xp_row_bytes);
        }
        if (job->gk.pack_group != NULL)
            job->gk.pack_group(job->n_cols, job->xq + (size_t)t0 * job->act_row_bytes, job->act_row_bytes,
                               (int)(t1 - t0), job->xp + (size_t)t0 * job->xp_row_bytes);
    }
}

/*
 * Row chunks of about 16 KiB of weights are claimed from a shared counter
 * (so a thread slowed by another process on its core does less of the
 * work, instead of the others waiting for it); a chunk (decoded once, into
 * the thread's panel, where the type has a decoder) stays in L1 while
 * every token group of the batch goes past it.  Which thread computes an
 * output changes nothing in it.
 */
static void gemm_task(void *p, int ith, int nth)
{
    matmul_job *job = p;
    (void)nth;
    const kinfer_gemm_fn gemm = job->gk.gemm;
    const kinfer_gemm_decode_fn decode = job->gk.decode;
    uint8_t *panel = job->panels + (size_t)ith * job->panel_bytes;
    const size_t row_bytes = decode != NULL ? kinfer_gemm_decoded_row_size(job->n_cols) : job->w_row_bytes;
    const int64_t chunk = job->chunk_rows;
    for (;;) {
        const int64_t rb = (int64_t)atomic_fetch_add_explicit(&job->next_chunk, 1, memory_order_relaxed) * chunk;
        if (rb >= job->n_rows) break;
        const int64_t re = rb + chunk < job->n_rows ? rb + chunk : job->n_rows;
        const uint8_t *w = job->w + (size_t)rb * job->w_row_bytes;
        if (decode != NULL) {
            decode(job->n_cols, w, job->w_row_bytes, (int)(re - rb), panel);
            w = panel;
        }
        for (int64_t t = 0; t < job->n_tokens; t += KINFER_GEMM_MAX_NT) {
            const int64_t nt = job->n_tokens - t < KINFER_GEMM_MAX_NT ? job->n_tokens - t : KINFER_GEMM_MAX_NT;
            const uint8_t *a = job->xp + (size_t)t * job->xp_row_bytes;
            gemm(job->n_cols, w, row_bytes, (int)(re - rb), a, job->xp_row_bytes, (int)nt,
                 job->y + t * job->n_rows + rb, (size_t)job->n_rows);
        }
    }
}

/* rows [r0, r1) of one token: in the order of a one-token matmul */
static void dot_one_token(const matmul_job *job, int64_t r0, int64_t r1, const uint8_t *xq, float *y)
{
    const int64_t n = job->n_cols;
    int64_t r = r0;
    if (job->k->vec_dot_r4 != NULL)
        for (; r + 4 <= r1; r += 4)
            job->k->vec_dot_r4(n, job->w + (size_t)r * job->w_row_bytes, job->w_row_bytes, xq, y + r);
    for (; r < r1; r++)
        y[r] = job->k->vec_dot(n, job->w + (size_t)r * job->w_row_bytes, xq);
}

static void dot_task(void *p, int ith, int nth)
{
    const matmul_job *job = p;
    int64_t r0, r1;
    range_of(job->n_rows, ith, nth, &r0, &r1);
    const kinfer_vec_dot_fn dot = job->k->vec_dot;
    const int64_t n = job->n_cols;
    if (job->n_tokens == 1 || job->token_by_token) {
        /* a tile of rows (in L1) through every token: the weights are read
         * once, each output still the one-token call's (vec_dot_r4 and
         * vec_dot agree bit for bit, so where a tile starts changes nothing) */
        const int64_t tile = job->n_tokens == 1 ? r1 - r0 : gemm_tile_rows(job->w_row_bytes, 0);
        for (int64_t rb = r0; rb < r1; rb += tile) {
            const int64_t re = rb + tile < r1 ? rb + tile : r1;
            for (int64_t t = 0; t < job->n_tokens; t++)
                dot_one_token(job, rb, re, job->xq + (size_t)t * job->act_row_bytes, job->y + t * job->n_rows);
        }
        return;
    }
    const kinfer_vec_dot_x4_fn dot4 = job->k->vec_dot_x4;
    for (int64_t tb = 0; tb < job->n_tokens; tb += TILE_TOKENS) {
        const int64_t te = tb + TILE_TOKENS < job->n_tokens ? tb + TILE_TOKENS : job->n_tokens;
        for (int64_t rb = r0; rb < r1; rb += TILE_ROWS) {
            const int64_t re = rb + TILE_ROWS < r1 ? rb + TILE_ROWS : r1;
            int64_t t = tb;
            /* four tokens at a time share the decoding of each weight block */
            for (; dot4 != NULL && t + 4 <= te; t += 4) {
                const uint8_t *a = job->xq + (size_t)t * job->act_row_bytes;
                for (int64_t r = rb; r < re; r++) {
                    float out[4];
                    dot4(n, job->w + (size_t)r * job->w_row_bytes, a, job->act_row_bytes, out);
                    for (int j = 0; j < 4; j++)
                        job->y[(t + j) * job->n_rows + r] = out[j];
                }
            }
            for (; t < te; t++) {
                const uint8_t *a = job->xq + (size_t)t * job->act_row_bytes;
                float *yt = job->y + t * job->n_rows;
                for (int64_t r = rb; r < re; r++)
                    yt[r] = dot(n, job->w + (size_t)r * job->w_row_bytes, a);
            }
        }
    }
}

static void matmul_quant(kinfer_threadpool *pool, matmul_job *job)
{
    if (job->n_tokens > 1 && job->gk.gemm != NULL) {
        atomic_init(&job->next_chunk, 0);
        kinfer_threadpool_run(pool, quantize_pack_task, job);
        kinfer_threadpool_run(pool, gemm_task, job);
        return;
    }
    if (job->n_tokens == 1)
        quantize_task(job, 0, 1); /* a few microseconds: not worth a barrier */
    else
        kinfer_threadpool_run(pool, quantize_task, job);
    kinfer_threadpool_run(pool, dot_task, job);
}

typedef struct dequant_job {
    const kinfer_cpu_kernels *k;
    const uint8_t *w;
    size_t w_row_bytes;
    int64_t r0, n, n_cols;
    float *panel;
} dequant_job;

static void dequant_task(void *p, int ith, int nth)
{
    const dequant_job *job = p;
    int64_t i0, i1;
    range_of(job->n, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++)
        job->k->to_float(job->w + (size_t)(job->r0 + i) * job->w_row_bytes,
                         job->panel + i * job->n_cols, job->n_cols);
}

static void matmul_blas(kinfer_threadpool *pool, const kblas_api *blas, const matmul_job *job,
                        float *panel)
{
    const int64_t panel_rows = blas_panel_rows(job->n_cols);
    for (int64_t r0 = 0; r0 < job->n_rows; r0 += panel_rows) {
        const int64_t nr = job->n_rows - r0 < panel_rows ? job->n_rows - r0 : panel_rows;
        dequant_job dj = {job->k, job->w, job->w_row_bytes, r0, nr, job->n_cols, panel};
        /* our workers must not spin while OpenBLAS's threads want the CPUs */
        kinfer_threadpool_run_then_sleep(pool, dequant_task, &dj);
        /* y[:, r0:r0+nr] = x (n_tokens, n_cols) . panel^T (n_cols, nr) */
        blas->sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)job->n_tokens, (int)nr,
                    (int)job->n_cols, 1.0f, job->x, (int)job->n_cols, panel, (int)job->n_cols, 0.0f,
                    job->y + r0, (int)job->n_rows);
    }
}

/* The batched kernels for n_tokens of type on path (gemm NULL: none), as
 * kinfer_matmul_ex picks them. */
static kinfer_gemm_kernels batched_kernels(int type, bool repacked, int64_t n_tokens, kinfer_matmul_path path)
{
    /* mul_mat_id's kernels sum every token in the one-token order */
    if (path == KINFER_MATMUL_QUANT_ONE_TOKEN || (path == KINFER_MATMUL_QUANT_MMID && kinfer_gemm_groups_tokens(type)))
        return kinfer_gemm_get_mmid(type); /* gemm NULL: token by token */
    kinfer_gemm_kernels gk = repacked ? kinfer_gemm_get_repacked(type) : kinfer_gemm_get(type);
    /* llama.cpp's order for many tokens (gemm.h) */
    const kinfer_gemm_fn tiled = n_tokens >= KINFER_GEMM_TILED_MIN_TOKENS ? kinfer_gemm_get_tiled(type) : NULL;
    if (tiled != NULL && gk.gemm != NULL) {
        gk.gemm = tiled;
        gk.decode = kinfer_gemm_get_tiled_decode(type);
    }
    return gk;
}

/* The kernels a matmul of type uses for n_rows rows, after its checks: the
 * weight's (its repacked order where llama.cpp repacks the matrix: a
 * multiple of 8 rows, kernels.h) and its activations'.  n_cols 0 passes
 * (kinfer_matmul_ex writes zeros). */
static kinfer_status matmul_kernels(int type, int64_t n_rows, int64_t n_cols, int64_t n_tokens,
                                    const kinfer_cpu_kernels **k, const kinfer_cpu_kernels **ka, bool *repacked)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    *k = kinfer_cpu_kernels_get(type);
    if (tt == NULL || *k == NULL || (*k)->vec_dot == NULL)
        return KINFER_E_UNSUPPORTED;
    *repacked = (*k)->repacked != NULL && n_rows % 8 == 0;
    if (*repacked)
        *k = (*k)->repacked;
    *ka = kinfer_cpu_kernels_get((*k)->vec_dot_type);
    if (*ka == NULL || (*ka)->from_float_act == NULL)
        return KINFER_E_UNSUPPORTED;
    const bool shape_ok = n_rows >= 0 && n_cols >= 0 && n_tokens >= 0 && n_cols % tt->blck_size == 0 &&
                          (n_cols == 0 || kinfer_row_size((*k)->vec_dot_type, n_cols) != 0) &&
                          n_rows <= INT32_MAX && n_cols <= INT32_MAX && n_tokens <= INT32_MAX;
    return shape_ok ? KINFER_OK : KINFER_E_INVALID_ARG;
}

kinfer_status kinfer_matmul_ex(kinfer_threadpool *pool, void *scratch, size_t scratch_size,
                               int type, const void *w, int64_t n_rows, int64_t n_cols,
                               const float *x, int64_t n_tokens, float *y, kinfer_matmul_path path)
{
    const kinfer_cpu_kernels *k, *ka;
    bool repacked;
    const kinfer_status st = matmul_kernels(type, n_rows, n_cols, n_tokens, &k, &ka, &repacked);
    if (st)
        return st;
    const int64_t blas_from = blas_min_tokens(type, kinfer_cpu_kernels_get(type)); /* whichever order */
    if (n_rows == 0 || n_tokens == 0)
        return KINFER_OK;
    if (n_cols == 0) {
        memset(y, 0, (size_t)n_rows * (size_t)n_tokens * sizeof(float));
        return KINFER_OK;
    }
    if (w == NULL || x == NULL || y == NULL || scratch == NULL ||
        scratch_size < kinfer_matmul_scratch_size(type, n_cols, n_tokens, kinfer_threadpool_size(pool)))
        return KINFER_E_INVALID_ARG;

    uint8_t *base = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    matmul_job job = {
        .k = k, .ka = ka, .w = w, .w_row_bytes = kinfer_row_size(type, n_cols),
        .n_rows = n_rows, .n_cols = n_cols, .n_tokens = n_tokens, .x = x, .y = y,
        .xq = base, .act_row_bytes = kinfer_row_size(k->vec_dot_type, n_cols),
    };
    /* OpenBLAS is loaded only when a call wants it: without it AUTO
     * quantizes (correct, slower for float weights), BLAS is refused */
    const kblas_api *blas = NULL;
    if (path == KINFER_MATMUL_AUTO)
        path = n_tokens >= blas_from && (blas = kblas_load(NULL, 0)) != NULL ? KINFER_MATMUL_BLAS
                                                                             : KINFER_MATMUL_QUANT;
    else if (path == KINFER_MATMUL_BLAS && (blas = kblas_load(NULL, 0)) == NULL)
        return KINFER_E_UNSUPPORTED;
    if (path == KINFER_MATMUL_BLAS) {
        float *panel = (float *)(base + align_up(job.act_row_bytes * (size_t)n_tokens));
        matmul_blas(pool, blas, &job, panel);
    } else {
        job.token_by_token = path == KINFER_MATMUL_QUANT_ONE_TOKEN ||
                             (path == KINFER_MATMUL_QUANT_MMID && kinfer_gemm_groups_tokens(type));
        if (n_tokens > 1 && n_cols % 32 == 0) {
            job.gk = batched_kernels(type, repacked, n_tokens, path);
            job.xp_row_bytes = kinfer_gemm_packed_size(n_cols);
            job.xp = base + align_up(job.act_row_bytes * (size_t)n_tokens);
            job.panel_bytes = gemm_panel_bytes(&job.gk, n_cols);
            job.chunk_rows = gemm_chunk_rows(&job.gk, n_cols, job.w_row_bytes, LANE_PANEL_BYTES);
            job.panels = job.xp + packed_bytes(n_cols, n_tokens);
        }
        matmul_quant(pool, &job);
    }
    return KINFER_OK;
}

kinfer_status kinfer_matmul(kinfer_threadpool *pool, void *scratch, size_t scratch_size, int type,
                            const void *w, int64_t n_rows, int64_t n_cols, const float *x,
                            int64_t n_tokens, float *y)
{
    return kinfer_matmul_ex(pool, scratch, scratch_size, type, w, n_rows, n_cols, x, n_tokens, y,
                            KINFER_MATMUL_AUTO);
}

/* ------------------------------------------------------------ gated pair */

/* Rows per chunk of the gated product: the plain chunk rounded to whole
 * 16-row groups, so each token's act(g) * u runs over the 16-lane groups
 * a whole-row call would (the SIMD gates round their tail differently). */
static int64_t gated_chunk_rows(const kinfer_gemm_kernels *gk, int64_t n_cols, size_t w_row_bytes)
{
    const int64_t r = gemm_chunk_rows(gk, n_cols, w_row_bytes, LANE_PANEL_BYTES / 2);
    return r < 16 ? 16 : r & ~(int64_t)15;
}

/* Per thread: a decoded chunk of each matrix and both outputs of one
 * token group. */
static size_t gated_thread_bytes(const kinfer_gemm_kernels *gk, int64_t n_cols, size_t w_row_bytes)
{
    const int64_t rows = gated_chunk_rows(gk, n_cols, w_row_bytes);
    const size_t panel = gk->decode != NULL ? align_up((size_t)rows * kinfer_gemm_decoded_row_size(n_cols)) : 0;
    return 2 * panel + align_up(2 * (size_t)rows * KINFER_GEMM_MAX_NT * sizeof(float));
}

typedef struct gated_job {
    matmul_job g, u;          /* the two products: same type, shape, activations */
    kinfer_gate_fn gate;
    uint8_t *thread_mem;      /* gated_thread_bytes each */
    size_t thread_bytes;
} gated_job;

/* y[t][r] = gate(g[t][r], u[t][r]) for rows r0 .. r1-1 of one token */
static void gated_rows_one_token(const gated_job *gj, const uint8_t *xq, int64_t r0, int64_t r1, float *y)
{
    const matmul_job *jg = &gj->g, *ju = &gj->u;
    float g[64], u[64];
    for (int64_t rb = r0; rb < r1; rb += 64) {
        const int64_t nr = r1 - rb < 64 ? r1 - rb : 64;
        int64_t i = 0;
        if (jg->k->vec_dot_r4 != NULL)
            for (; i + 4 <= nr; i += 4) {
                jg->k->vec_dot_r4(jg->n_cols, jg->w + (size_t)(rb + i) * jg->w_row_bytes, jg->w_row_bytes, xq, g + i);
                jg->k->vec_dot_r4(ju->n_cols, ju->w + (size_t)(rb + i) * ju->w_row_bytes, ju->w_row_bytes, xq, u + i);
            }
        for (; i < nr; i++) {
            g[i] = jg->k->vec_dot(jg->n_cols, jg->w + (size_t)(rb + i) * jg->w_row_bytes, xq);
            u[i] = ju->k->vec_dot(ju->n_cols, ju->w + (size_t)(rb + i) * ju->w_row_bytes, xq);
        }
        gj->gate(y + rb, g, u, nr);
    }
}

/* Without batched kernels (a token or two, or types without them): each
 * thread a range of whole 16-row groups, token by token. */
static void gated_dot_task(void *p, int ith, int nth)
{
    const gated_job *gj = p;
    const int64_t n16 = (gj->g.n_rows + 15) / 16;
    int64_t r0 = 16 * (n16 * ith / nth), r1 = 16 * (n16 * (ith + 1) / nth);
    if (r1 > gj->g.n_rows) r1 = gj->g.n_rows;
    /* 64 rows (gated_rows_one_token's block) through every token at a time */
    for (int64_t rb = r0; rb < r1; rb += 64)
        for (int64_t t = 0; t < gj->g.n_tokens; t++)
            gated_rows_one_token(gj, gj->g.xq + (size_t)t * gj->g.act_row_bytes, rb, rb + 64 < r1 ? rb + 64 : r1,
                                 gj->g.y + t * gj->g.n_rows);
}

/* gemm_task over both matrices: a row chunk of each decoded, then every
 * token group through both and the gate, so neither product is stored
 * whole. */
static void gated_gemm_task(void *p, int ith, int nth)
{
    gated_job *gj = p;
    (void)nth;
    matmul_job *jg = &gj->g;
    const matmul_job *ju = &gj->u;
    const kinfer_gemm_fn gemm = jg->gk.gemm;
    const kinfer_gemm_decode_fn decode = jg->gk.decode;
    uint8_t *mem = gj->thread_mem + (size_t)ith * gj->thread_bytes;
    const int64_t chunk = jg->chunk_rows;
    const size_t row_bytes = decode != NULL ? kinfer_gemm_decoded_row_size(jg->n_cols) : jg->w_row_bytes;
    uint8_t *panel_g = mem, *panel_u = mem + jg->panel_bytes;
    float *out_g = (float *)(mem + 2 * jg->panel_bytes), *out_u = out_g + chunk * KINFER_GEMM_MAX_NT;
    for (;;) {
        const int64_t rb = (int64_t)atomic_fetch_add_explicit(&jg->next_chunk, 1, memory_order_relaxed) * chunk;
        if (rb >= jg->n_rows) break;
        const int nr = (int)(rb + chunk < jg->n_rows ? chunk : jg->n_rows - rb);
        const uint8_t *wg = jg->w + (size_t)rb * jg->w_row_bytes, *wu = ju->w + (size_t)rb * ju->w_row_bytes;
        if (decode != NULL) {
            decode(jg->n_cols, wg, jg->w_row_bytes, nr, panel_g);
            decode(ju->n_cols, wu, ju->w_row_bytes, nr, panel_u);
            wg = panel_g, wu = panel_u;
        }
        for (int64_t t = 0; t < jg->n_tokens; t += KINFER_GEMM_MAX_NT) {
            const int nt = (int)(jg->n_tokens - t < KINFER_GEMM_MAX_NT ? jg->n_tokens - t : KINFER_GEMM_MAX_NT);
            const uint8_t *a = jg->xp + (size_t)t * jg->xp_row_bytes;
            gemm(jg->n_cols, wg, row_bytes, nr, a, jg->xp_row_bytes, nt, out_g, (size_t)nr);
            gemm(ju->n_cols, wu, row_bytes, nr, a, ju->xp_row_bytes, nt, out_u, (size_t)nr);
            for (int i = 0; i < nt; i++)
                gj->gate(jg->y + (t + i) * jg->n_rows + rb, out_g + (size_t)i * nr, out_u + (size_t)i * nr, nr);
        }
    }
}

size_t kinfer_matmul_gated_scratch_size(int type, int64_t n_cols, int64_t n_tokens, int n_threads)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
    if (tt == NULL || k == NULL || tt->vec_dot_type < 0 || n_cols < 0 || n_tokens < 0)
        return 0;
    const size_t w_row = kinfer_row_size(type, n_cols);
    size_t per_thread = 0;
    if (n_tokens > 1) {
        /* any order: the row count and the path decide which one a call
         * takes (rp 2: mul_mat_id's) */
        for (int rp = 0; rp < 3; rp++) {
            if (rp == 1 && k->repacked == NULL) continue;
            const kinfer_gemm_kernels gk =
                batched_kernels(type, rp == 1, n_tokens, rp == 2 ? KINFER_MATMUL_QUANT_MMID : KINFER_MATMUL_QUANT);
            const size_t b = gk.gemm != NULL ? gated_thread_bytes(&gk, n_cols, w_row) : 0;
            if (b > per_thread) per_thread = b;
        }
    }
    const size_t act = kinfer_row_size(tt->vec_dot_type, n_cols);
    return 64 + align_up(act * (size_t)n_tokens) +
           (per_thread ? packed_bytes(n_cols, n_tokens) + per_thread * (size_t)(n_threads > 0 ? n_threads : 1) : 0);
}

kinfer_status kinfer_matmul_gated(kinfer_threadpool *pool, void *scratch, size_t scratch_size, int type,
                                  const void *w_gate, const void *w_up, int64_t n_rows, int64_t n_cols,
                                  const float *x, int64_t n_tokens, float *y, kinfer_gate_fn gate)
{
    return kinfer_matmul_gated_ex(pool, scratch, scratch_size, type, w_gate, w_up, n_rows, n_cols, x, n_tokens,
                                  y, gate, KINFER_MATMUL_QUANT);
}

kinfer_status kinfer_matmul_gated_ex(kinfer_threadpool *pool, void *scratch, size_t scratch_size, int type,
                                     const void *w_gate, const void *w_up, int64_t n_rows, int64_t n_cols,
                                     const float *x, int64_t n_tokens, float *y, kinfer_gate_fn gate,
                                     kinfer_matmul_path path)
{
    if (path == KINFER_MATMUL_BLAS)
        return KINFER_E_INVALID_ARG;
    const kinfer_cpu_kernels *k, *ka;
    bool repacked;
    const kinfer_status st = matmul_kernels(type, n_rows, n_cols, n_tokens, &k, &ka, &repacked);
    if (st)
        return st;
    if (n_cols == 0 || gate == NULL)
        return KINFER_E_INVALID_ARG;
    if (n_rows == 0 || n_tokens == 0)
        return KINFER_OK;
    if (w_gate == NULL || w_up == NULL || x == NULL || y == NULL || scratch == NULL ||
        scratch_size < kinfer_matmul_gated_scratch_size(type, n_cols, n_tokens, kinfer_threadpool_size(pool)))
        return KINFER_E_INVALID_ARG;

    uint8_t *base = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    gated_job gj = {.gate = gate};
    matmul_job *jg = &gj.g;
    *jg = (matmul_job){
        .k = k, .ka = ka, .w = w_gate, .w_row_bytes = kinfer_row_size(type, n_cols),
        .n_rows = n_rows, .n_cols = n_cols, .n_tokens = n_tokens, .x = x, .y = y,
        .xq = base, .act_row_bytes = kinfer_row_size(k->vec_dot_type, n_cols),
    };
    if (n_tokens > 1 && n_cols % 32 == 0)
        jg->gk = batched_kernels(type, repacked, n_tokens, path);
    if (jg->gk.gemm != NULL) {
        jg->xp_row_bytes = kinfer_gemm_packed_size(n_cols);
        jg->xp = base + align_up(jg->act_row_bytes * (size_t)n_tokens);
        jg->chunk_rows = gated_chunk_rows(&jg->gk, n_cols, jg->w_row_bytes);
        jg->panel_bytes = jg->gk.decode != NULL
                              ? align_up((size_t)jg->chunk_rows * kinfer_gemm_decoded_row_size(n_cols)) : 0;
        gj.thread_mem = jg->xp + packed_bytes(n_cols, n_tokens);
        gj.thread_bytes = gated_thread_bytes(&jg->gk, n_cols, jg->w_row_bytes);
        atomic_init(&jg->next_chunk, 0);
    }
    gj.u = *jg;
    gj.u.w = w_up;
    if (jg->gk.gemm != NULL) {
        kinfer_threadpool_run(pool, quantize_pack_task, jg);
        kinfer_threadpool_run(pool, gated_gemm_task, &gj);
        return KINFER_OK;
    }
    if (n_tokens == 1)
        quantize_task(jg, 0, 1);
    else
        kinfer_threadpool_run(pool, quantize_task, jg);
    kinfer_threadpool_run(pool, gated_dot_task, &gj);
    return KINFER_OK;
}
