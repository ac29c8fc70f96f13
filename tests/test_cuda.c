/*
 * test_cuda.c — the CUDA backend against the CPU reference.
 *
 * Host-only checks (launch geometry, scratch sizes, argument checks, error
 * mapping, behaviour without a device) run everywhere.  With a GPU every
 * kernel runs on random data against kernels/cpu (ref.c, ops.c) or naive
 * double-precision math: every weight type, odd sizes (row lengths odd
 * multiples of the block size, row counts that are not multiples of the
 * warps per block), batches 1..512 on both matmul paths, attention with
 * GQA, free cells holding NaN, sliding window, soft-cap, several sequences.
 * Without a GPU (or built with KINFER_CUDA=0) the GPU tests print why and
 * pass.  Tolerances are stated at each comparison.  Tests run in one
 * process (CK_NOFORK): a CUDA context does not survive fork().
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda.h"
#ifdef KINFER_CUDA
#include "core/cublas_dl.h"
#endif
#include "cpu/kernels.h"
#include "quant.h"
#include "testutil.h"

static kcuda *g_cu; /* NULL: no usable GPU, the GPU tests return at once */

#define NEED_GPU()            \
    do {                      \
        if (g_cu == NULL)     \
            return;           \
    } while (0)

#define OK(call)                                                                               \
    do {                                                                                       \
        const kinfer_status st_ = (call);                                                      \
        ck_assert_msg(st_ == KINFER_OK, "%s: %s: %s", #call, kinfer_status_str(st_),           \
                      kcuda_errmsg(g_cu));                                                     \
    } while (0)

/* |got - want| <= rel * |want| + abs */
#define ASSERT_CLOSE(got, want, rel, abs_, fmt, ...)                                           \
    ck_assert_msg(fabs((double)(got) - (double)(want)) <= (rel) * fabs((double)(want)) + (abs_), \
                  "got %.9g, want %.9g: " fmt, (double)(got), (double)(want), __VA_ARGS__)

/* ------------------------------------------------------------ utilities */


static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void *dev_alloc(size_t bytes)
{
    void *d = NULL;
    OK(kcuda_alloc(g_cu, bytes, &d));
    return d;
}

static void *dev_upload(const void *src, size_t bytes)
{
    void *d = dev_alloc(bytes);
    OK(kcuda_upload(g_cu, d, src, bytes));
    return d;
}

static void dev_download(void *dst, const void *src, size_t bytes)
{
    OK(kcuda_download(g_cu, dst, src, bytes)); /* also reports kernel faults */
}

static const int all_types[] = {
    KINFER_TYPE_F32, KINFER_TYPE_F16, KINFER_TYPE_BF16, KINFER_TYPE_Q8_0, KINFER_TYPE_Q4_0,
    KINFER_TYPE_Q4_1, KINFER_TYPE_Q5_0, KINFER_TYPE_Q5_1, KINFER_TYPE_Q2_K, KINFER_TYPE_Q3_K,
    KINFER_TYPE_Q4_K, KINFER_TYPE_Q5_K, KINFER_TYPE_Q6_K, KINFER_TYPE_IQ4_NL, KINFER_TYPE_IQ4_XS,
};
#define N_TYPES ((int)(sizeof all_types / sizeof all_types[0]))

/* An odd multiple (mult, odd) of the type's block size; for the float types
 * (block 1) an odd count near the same length. */
static int64_t odd_cols(int type, int64_t mult)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    return tt->blck_size == 1 ? 32 * mult + 1 : tt->blck_size * mult;
}

/* Random weights (n_rows, n_cols) quantized by the reference; *ref gets
 * what the reference dequantizes them to (malloc'd). */
static void *make_weights(int type, int64_t n_rows, int64_t n_cols, float **ref, size_t *bytes)
{
    const kinfer_cpu_kernels *rk = kinfer_cpu_ref_kernels(type);
    const size_t row = kinfer_row_size(type, n_cols);
    uint8_t *w = xmalloc(row * (size_t)n_rows);
    float *src = xmalloc(sizeof(float) * (size_t)(n_rows * n_cols));
    *ref = xmalloc(sizeof(float) * (size_t)(n_rows * n_cols));
    for (int64_t r = 0; r < n_rows; r++) {
        /* rows of different magnitude, so per-block scales differ */
        const double mag = 0.05 + 2.0 * test_rng_uniform();
        test_fill(src + r * n_cols, n_cols, -mag, mag);
        rk->from_float(src + r * n_cols, w + (size_t)r * row, n_cols);
        rk->to_float(w + (size_t)r * row, *ref + r * n_cols, n_cols);
    }
    free(src);
    *bytes = row * (size_t)n_rows;
    return w;
}

/* ------------------------------------------------------- host-only tests */

START_TEST(test_helpers)
{
    ck_assert_uint_eq(kinfer_cuda_blocks(0, 256, 100), 1);
    ck_assert_uint_eq(kinfer_cuda_blocks(1, 256, 100), 1);
    ck_assert_uint_eq(kinfer_cuda_blocks(256, 256, 100), 1);
    ck_assert_uint_eq(kinfer_cuda_blocks(257, 256, 100), 2);
    ck_assert_uint_eq(kinfer_cuda_blocks(1000000, 256, 100), 100);

    ck_assert_int_eq(kinfer_cuda_attn_n_splits(0), 0);
    ck_assert_int_eq(kinfer_cuda_attn_n_splits(1), 1);
    ck_assert_int_eq(kinfer_cuda_attn_n_splits(KINFER_CUDA_ATTN_SPLIT), 1);
    ck_assert_int_eq(kinfer_cuda_attn_n_splits(KINFER_CUDA_ATTN_SPLIT + 1), 2);
    /* per (query, head, split): m, l and head_dim_v outputs */
    ck_assert_uint_eq(kinfer_cuda_attn_decode_scratch_bytes(3, 8, 700, 64),
                      (size_t)3 * 8 * 3 * (64 + 2) * sizeof(float));
    ck_assert_uint_eq(kinfer_cuda_attn_decode_scratch_bytes(0, 8, 700, 64), 0);
    /* Q, K, V, O tiles, score tile, 3 per-row floats, 2 per-row ints */
    ck_assert_uint_eq(kinfer_cuda_attn_prompt_smem_bytes(128, 128),
                      (size_t)(16 * 128 * 4 + 16 * 16 + 3 * 16) * 4 + 2 * 16 * 4);
    ck_assert(kinfer_cuda_attn_prompt_smem_bytes(128, 128) <= 48 * 1024);
    /* head_dim 256 needs the opt-in, and fits every sm_80+ GPU (99 KiB) */
    ck_assert(kinfer_cuda_attn_prompt_smem_bytes(256, 256) > 48 * 1024);
    ck_assert(kinfer_cuda_attn_prompt_smem_bytes(256, 256) <= 99 * 1024);

    ck_assert_int_eq(kinfer_cuda_gemm_panel_rows(100, 1000, 20000), 10);
    ck_assert_int_eq(kinfer_cuda_gemm_panel_rows(100, 1000, 1), 1);
    ck_assert_int_eq(kinfer_cuda_gemm_panel_rows(100, 1000, (size_t)1 << 40), 100);
    ck_assert_int_eq(kinfer_cuda_gemm_panel_rows(0, 1000, 20000), 0);

    /* GEMV needs no scratch; GEMM needs x in F16 (rounded to 256) plus a
     * panel of W unless W is F16 */
    ck_assert_uint_eq(kcuda_matmul_scratch_bytes(KINFER_TYPE_Q4_K, 100, 512, 8, 0,
                                                 KCUDA_MATMUL_AUTO), 0);
    ck_assert_uint_eq(kcuda_matmul_scratch_bytes(KINFER_TYPE_Q4_K, 100, 512, 9, 0,
                                                 KCUDA_MATMUL_GEMV), 0);
    ck_assert_uint_eq(kcuda_matmul_scratch_bytes(KINFER_TYPE_Q4_K, 100, 512, 9, 0,
                                                 KCUDA_MATMUL_AUTO),
                      9 * 512 * 2 + 100 * 512 * 2 + 0 /* 9216 is a multiple of 256 */);
    ck_assert_uint_eq(kcuda_matmul_scratch_bytes(KINFER_TYPE_F16, 100, 512, 9, 0,
                                                 KCUDA_MATMUL_AUTO), 9 * 512 * 2);
    ck_assert_uint_eq(kcuda_matmul_scratch_bytes(KINFER_TYPE_Q8_0, 100, 32, 3, 64 * 10,
                                                 KCUDA_MATMUL_GEMM), 256 + 10 * 32 * 2);

    for (int i = 0; i < N_TYPES; i++)
        ck_assert(kinfer_cuda_type_supported(all_types[i]));
    ck_assert(!kinfer_cuda_type_supported(KINFER_TYPE_Q8_K));
    ck_assert(!kinfer_cuda_type_supported(KINFER_TYPE_IQ2_XXS));
    ck_assert(!kinfer_cuda_type_supported(-1));
    ck_assert(kinfer_cuda_set_rows_type_supported(KINFER_TYPE_Q8_0));
    ck_assert(!kinfer_cuda_set_rows_type_supported(KINFER_TYPE_Q4_0));
}
END_TEST

static kinfer_cuda_attn_params good_attn_params(void)
{
    static const float q[1];
    static const int32_t pos[1];
    static const uint16_t kv[1];
    kinfer_cuda_attn_params p = {
        .n_q = 1, .n_head = 8, .n_head_kv = 2, .head_dim_k = 64, .head_dim_v = 64,
        .q = q, .q_pos = pos, .n_kv = 10, .type_k = KINFER_TYPE_F16,
        .type_v = KINFER_TYPE_F16, .k = kv, .v = kv, .k_row_bytes = 2 * 64 * 2,
        .v_row_bytes = 2 * 64 * 2, .kv_pos = pos, .scale = 0.125f, .out = (float *)q,
    };
    return p;
}

START_TEST(test_attn_check)
{
    kinfer_cuda_attn_params p = good_attn_params();
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), 0);
    ck_assert_int_eq(kinfer_cuda_attn_check(NULL), KINFER_CUDA_ERR_INVALID_VALUE);
    p.n_head_kv = 3; /* does not divide n_head */
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), KINFER_CUDA_ERR_INVALID_VALUE);
    p = good_attn_params();
    p.head_dim_k = KINFER_CUDA_ATTN_MAX_HEAD_DIM + 32;
    p.k_row_bytes = 1 << 20;
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), KINFER_CUDA_ERR_INVALID_VALUE);
    p = good_attn_params();
    p.type_v = KINFER_TYPE_Q4_0;
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), KINFER_CUDA_ERR_NOT_SUPPORTED);
    p = good_attn_params();
    p.type_k = KINFER_TYPE_Q8_0; /* 48 is not whole Q8_0 blocks */
    p.head_dim_k = 48;
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), KINFER_CUDA_ERR_INVALID_VALUE);
    p = good_attn_params();
    p.k_row_bytes = 2 * 64 * 2 - 1; /* row too short for all kv heads */
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), KINFER_CUDA_ERR_INVALID_VALUE);
    p = good_attn_params();
    static const uint64_t seq[1];
    p.kv_seq = seq; /* needs words and q_seq */
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), KINFER_CUDA_ERR_INVALID_VALUE);
    p.kv_seq_words = 1;
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), KINFER_CUDA_ERR_INVALID_VALUE);
    p.q_seq = p.q_pos;
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), 0);
    p = good_attn_params();
    p.kv_pos = NULL;
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), KINFER_CUDA_ERR_INVALID_VALUE);
    p.n_kv = 0; /* nothing to read: fine */
    ck_assert_int_eq(kinfer_cuda_attn_check(&p), 0);
}
END_TEST

START_TEST(test_error_mapping)
{
    ck_assert_int_eq(kcuda_status_of(0), KINFER_OK);
    ck_assert_int_eq(kcuda_status_of(KINFER_CUDA_ERR_INVALID_VALUE), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kcuda_status_of(KINFER_CUDA_ERR_NOT_SUPPORTED), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kcuda_status_of(2), KINFER_E_DEVICE);   /* cudaErrorMemoryAllocation */
    ck_assert_int_eq(kcuda_status_of(35), KINFER_E_DEVICE);  /* cudaErrorInsufficientDriver */
    ck_assert_int_eq(kcuda_status_of(100), KINFER_E_DEVICE); /* cudaErrorNoDevice */
    ck_assert_int_eq(kcuda_status_of(700), KINFER_E_DEVICE); /* cudaErrorIllegalAddress */
    ck_assert_int_eq(kcuda_cublas_status_of(0), KINFER_OK);
    ck_assert_int_eq(kcuda_cublas_status_of(3), KINFER_E_DEVICE); /* ALLOC_FAILED */
    ck_assert_int_eq(kcuda_cublas_status_of(7), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kcuda_cublas_status_of(15), KINFER_E_UNSUPPORTED);

    char buf[256];
    kcuda_format_error(buf, sizeof buf, "cudaMalloc(1.00 GiB)", 2);
    ck_assert_msg(strstr(buf, "cudaMalloc(1.00 GiB): ") == buf, "%s", buf);
#ifdef KINFER_CUDA
    ck_assert_msg(strstr(buf, "cudaErrorMemoryAllocation") != NULL, "%s", buf);
#else
    ck_assert_msg(strstr(buf, "built without CUDA") != NULL, "%s", buf);
#endif
    kcuda_format_error(buf, 8, "a long call name", 2); /* truncated, terminated */
    ck_assert_uint_eq(strlen(buf), 7);

    kcuda_free(NULL);
    ck_assert_str_eq(kcuda_errmsg(NULL), "");
}
END_TEST

#ifdef KINFER_CUDA
/* cuBLAS is loaded on demand, not linked: it must load (the toolkit is
 * installed wherever this builds) and give cuBLAS's own answers. */
START_TEST(test_cublas_loads)
{
    char err[256] = "";
    const kcublas_api *blas = kcublas_load(err, sizeof err);
    ck_assert_msg(blas != NULL, "%s", err);
    ck_assert_str_eq(blas->status_name(CUBLAS_STATUS_SUCCESS), "CUBLAS_STATUS_SUCCESS");
    ck_assert_str_eq(blas->status_name(CUBLAS_STATUS_ALLOC_FAILED), "CUBLAS_STATUS_ALLOC_FAILED");
    ck_assert_ptr_eq(kcublas_load(NULL, 0), blas); /* once per process */
}
END_TEST
#endif

/* What kcuda_new says when it cannot open a device. */
START_TEST(test_open_errors)
{
    const char *why = NULL;
    const int n = kinfer_cuda_device_count(&why);
    ck_assert_ptr_nonnull(why);
    char err[512] = "";
    kcuda *cu = (kcuda *)&err; /* must be reset to NULL on failure */
    kcuda_device_info info;
    if (n == 0) {
        ck_assert_msg(why[0] != '\0', "no device and no reason");
        const kinfer_status st = kcuda_new(0, &cu, err, sizeof err);
        ck_assert_ptr_null(cu);
        ck_assert_msg(err[0] != '\0', "no message");
#ifdef KINFER_CUDA
        ck_assert_int_eq(st, KINFER_E_DEVICE);
        ck_assert_msg(strstr(err, "cudaGetDeviceCount") != NULL, "message names no call: %s", err);
        ck_assert_int_eq(kcuda_device_info_get(0, &info, err, sizeof err), KINFER_E_DEVICE);
#else
        ck_assert_int_eq(st, KINFER_E_UNSUPPORTED);
        ck_assert_msg(strstr(err, "without CUDA") != NULL, "%s", err);
        ck_assert_str_eq(why, "kinfer was built without CUDA");
        ck_assert_int_eq(kcuda_device_info_get(0, &info, err, sizeof err), KINFER_E_UNSUPPORTED);
#endif
    } else {
        ck_assert_str_eq(why, "");
        ck_assert_int_eq(kcuda_new(-1, &cu, err, sizeof err), KINFER_E_INVALID_ARG);
        ck_assert_ptr_null(cu);
        ck_assert_int_eq(kcuda_new(n, &cu, err, sizeof err), KINFER_E_INVALID_ARG);
        ck_assert_msg(strstr(err, "does not exist") != NULL, "%s", err);
        OK(kcuda_device_info_get(0, &info, err, sizeof err));
        ck_assert(info.total_bytes > 0 && info.name[0] != '\0');
    }
    ck_assert_int_ne(kcuda_new(0, NULL, err, sizeof err), KINFER_OK);
}
END_TEST

/* ------------------------------------------------------------- GPU tests */

START_TEST(test_memory_errors)
{
    NEED_GPU();
    void *p = (void *)1;
    /* 1 PiB: out of memory, reported with the call and the size */
    ck_assert_int_eq(kcuda_alloc(g_cu, (size_t)1 << 50, &p), KINFER_E_DEVICE);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(kcuda_errmsg(g_cu), "cudaMalloc(1048576.00 GiB)") != NULL, "%s",
                  kcuda_errmsg(g_cu));
    /* all or nothing */
    const size_t sizes[3] = {1024, (size_t)1 << 50, 1024};
    void *bufs[3] = {(void *)1, (void *)1, (void *)1};
    ck_assert_int_eq(kcuda_alloc_many(g_cu, 3, sizes, bufs), KINFER_E_DEVICE);
    ck_assert(bufs[0] == NULL && bufs[1] == NULL && bufs[2] == NULL);
    const size_t ok_sizes[2] = {100, 0};
    OK(kcuda_alloc_many(g_cu, 2, ok_sizes, bufs));
    kcuda_dealloc(g_cu, bufs[0]);
    kcuda_dealloc(g_cu, bufs[1]);
    /* the handle still works after the failures */
    const float x[3] = {1, 2, 3};
    float y[3];
    float *d = dev_upload(x, sizeof x);
    OK(kcuda_scale(g_cu, d, 2.0f, 3));
    dev_download(y, d, sizeof y);
    ck_assert(y[0] == 2 && y[1] == 4 && y[2] == 6);
    /* launcher argument errors become statuses with the op's name */
    ck_assert_int_eq(kcuda_matmul(g_cu, KINFER_TYPE_Q8_K, d, 1, 256, d, 1, d), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kcuda_matmul(g_cu, KINFER_TYPE_Q4_0, d, 1, 33, d, 1, d), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kcuda_dequantize(g_cu, KINFER_TYPE_Q4_0, d, 33, KINFER_TYPE_F32, d),
                     KINFER_E_INVALID_ARG);
    ck_assert_msg(strstr(kcuda_errmsg(g_cu), "kinfer_cuda_dequantize(Q4_0)") != NULL, "%s",
                  kcuda_errmsg(g_cu));
    kcuda_dealloc(g_cu, d);
    OK(kcuda_sync(g_cu));
}
END_TEST

/* Dequantization is bit for bit the reference's (F16: then rounded). */
START_TEST(test_dequantize)
{
    NEED_GPU();
    test_rng_seed(11);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = all_types[ti];
        const int64_t n_rows = 3, n_cols = odd_cols(type, 7), n = n_rows * n_cols;
        float *ref;
        size_t bytes;
        void *w = make_weights(type, n_rows, n_cols, &ref, &bytes);
        void *dw = dev_upload(w, bytes);
        float *d32 = dev_alloc(sizeof(float) * (size_t)n);
        uint16_t *d16 = dev_alloc(2 * (size_t)n);
        OK(kcuda_dequantize(g_cu, type, dw, n, KINFER_TYPE_F32, d32));
        OK(kcuda_dequantize(g_cu, type, dw, n, KINFER_TYPE_F16, d16));
        float *got = xmalloc(sizeof(float) * (size_t)n);
        uint16_t *got16 = xmalloc(2 * (size_t)n);
        dev_download(got, d32, sizeof(float) * (size_t)n);
        dev_download(got16, d16, 2 * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            ck_assert_msg(memcmp(&got[i], &ref[i], 4) == 0, "%s element %lld: %.9g, want %.9g",
                          kinfer_type_name(type), (long long)i, got[i], ref[i]);
            ck_assert_msg(got16[i] == kinfer_fp32_to_fp16(ref[i]), "%s F16 element %lld",
                          kinfer_type_name(type), (long long)i);
        }
        kcuda_dealloc(g_cu, dw);
        kcuda_dealloc(g_cu, d32);
        kcuda_dealloc(g_cu, d16);
        free(w);
        free(ref);
        free(got);
        free(got16);
    }
}
END_TEST

/* y = W x on both paths, every type, batches 1..512, against a double dot
 * of the reference's dequantized W with x.  Tolerances, relative to
 * sum |w x| of each output:
 *   GEMV: float accumulation of n_cols / 32 terms per lane, then 5 shuffle
 *         adds: well under 2e-5 for these lengths;
 *   GEMM: W and x rounded to F16 (2^-11 each) before the product: 3e-3. */
static void check_matmul(int type, int64_t n_rows, int64_t n_cols, int64_t n_tokens,
                         kcuda_matmul_path path, size_t panel_bytes)
{
    float *ref;
    size_t bytes;
    void *w = make_weights(type, n_rows, n_cols, &ref, &bytes);
    float *x = xmalloc(sizeof(float) * (size_t)(n_tokens * n_cols));
    test_fill(x, n_tokens * n_cols, -1, 1);
    void *dw = dev_upload(w, bytes);
    float *dx = dev_upload(x, sizeof(float) * (size_t)(n_tokens * n_cols));
    float *dy = dev_alloc(sizeof(float) * (size_t)(n_tokens * n_rows));
    kcuda_set_gemm_panel_bytes(g_cu, panel_bytes);
    OK(kcuda_matmul_ex(g_cu, type, dw, n_rows, n_cols, dx, n_tokens, dy, path));
    float *y = xmalloc(sizeof(float) * (size_t)(n_tokens * n_rows));
    dev_download(y, dy, sizeof(float) * (size_t)(n_tokens * n_rows));
    kcuda_set_gemm_panel_bytes(g_cu, 0);
    const double rel = path == KCUDA_MATMUL_GEMV ? 2e-5 : 3e-3;
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int64_t r = 0; r < n_rows; r++) {
            double want = 0.0, mag = 0.0;
            for (int64_t i = 0; i < n_cols; i++) {
                const double p = (double)ref[r * n_cols + i] * x[t * n_cols + i];
                want += p;
                mag += fabs(p);
            }
            ck_assert_msg(fabs(y[t * n_rows + r] - want) <= rel * mag + 1e-6,
                          "%s path %d, %lld x %lld, batch %lld: y[%lld][%lld] = %.9g, want %.9g",
                          kinfer_type_name(type), (int)path, (long long)n_rows,
                          (long long)n_cols, (long long)n_tokens, (long long)t, (long long)r,
                          y[t * n_rows + r], want);
        }
    }
    kcuda_dealloc(g_cu, dw);
    kcuda_dealloc(g_cu, dx);
    kcuda_dealloc(g_cu, dy);
    free(w);
    free(ref);
    free(x);
    free(y);
}

START_TEST(test_matmul)
{
    NEED_GPU();
    test_rng_seed(12);
    static const int64_t batches[] = {1, 2, 3, 7, 8, 9, 16, 31, 64, 100, 256, 512};
    const int n_batches = test_quick() ? 6 : (int)(sizeof batches / sizeof batches[0]);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = all_types[ti];
        /* 37 rows: not a multiple of the 4 rows per GEMV block */
        const int64_t n_rows = 37, n_cols = odd_cols(type, 3);
        for (int b = 0; b < n_batches; b++) {
            check_matmul(type, n_rows, n_cols, batches[b], KCUDA_MATMUL_GEMV, 0);
            check_matmul(type, n_rows, n_cols, batches[b], KCUDA_MATMUL_GEMM, 0);
            check_matmul(type, n_rows, n_cols, batches[b], KCUDA_MATMUL_AUTO, 0);
        }
        /* several W panels of 16 rows (the last one short) */
        check_matmul(type, n_rows, n_cols, 33, KCUDA_MATMUL_GEMM, (size_t)(16 * n_cols * 2 + 7));
        /* a longer row, one token (decode) */
        check_matmul(type, 5, odd_cols(type, 11), 1, KCUDA_MATMUL_AUTO, 0);
    }
}
END_TEST

START_TEST(test_get_rows)
{
    NEED_GPU();
    test_rng_seed(13);
    const int32_t ids[] = {0, 10, 3, 3, 7, 1};
    const int64_t n_ids = 6, n_rows = 11;
    int32_t *dids = dev_upload(ids, sizeof ids);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = all_types[ti];
        const int64_t n_cols = odd_cols(type, 5);
        float *ref;
        size_t bytes;
        void *w = make_weights(type, n_rows, n_cols, &ref, &bytes);
        void *dw = dev_upload(w, bytes);
        float *dout = dev_alloc(sizeof(float) * (size_t)(n_ids * n_cols));
        OK(kcuda_get_rows(g_cu, type, dw, n_rows, n_cols, dids, n_ids, dout));
        float *got = xmalloc(sizeof(float) * (size_t)(n_ids * n_cols));
        dev_download(got, dout, sizeof(float) * (size_t)(n_ids * n_cols));
        for (int64_t i = 0; i < n_ids; i++)
            ck_assert_msg(memcmp(got + i * n_cols, ref + ids[i] * n_cols,
                                 sizeof(float) * (size_t)n_cols) == 0,
                          "%s row %lld", kinfer_type_name(type), (long long)i);
        kcuda_dealloc(g_cu, dw);
        kcuda_dealloc(g_cu, dout);
        free(w);
        free(ref);
        free(got);
    }
    kcuda_dealloc(g_cu, dids);
}
END_TEST

/* The KV write: rows converted exactly as the reference from_float, only
 * the named rows touched. */
START_TEST(test_set_rows)
{
    NEED_GPU();
    test_rng_seed(14);
    static const int types[] = {KINFER_TYPE_F32, KINFER_TYPE_F16, KINFER_TYPE_BF16,
                                KINFER_TYPE_Q8_0};
    const int32_t ids[] = {7, 0, 4, 8};
    const int64_t n_ids = 4, n_rows = 9, n_cols = 160;
    float src[4 * 160];
    test_fill(src, n_ids * n_cols, -3, 3);
    src[5] = 0.0f; /* a few exact zeros, and an all-zero Q8_0 block */
    memset(src + n_cols, 0, 32 * sizeof(float));
    int32_t *dids = dev_upload(ids, sizeof ids);
    float *dsrc = dev_upload(src, sizeof src);
    for (int ti = 0; ti < 4; ti++) {
        const int type = types[ti];
        const kinfer_cpu_kernels *rk = kinfer_cpu_ref_kernels(type);
        const size_t row = kinfer_row_size(type, n_cols);
        for (int scatter = 0; scatter < 2; scatter++) {
            uint8_t *want = xmalloc(row * (size_t)n_rows), *got = xmalloc(row * (size_t)n_rows);
            memset(want, 0xA5, row * (size_t)n_rows);
            void *dt = dev_upload(want, row * (size_t)n_rows);
            for (int64_t i = 0; i < n_ids; i++)
                rk->from_float(src + i * n_cols, want + (size_t)(scatter ? ids[i] : i) * row,
                               n_cols);
            OK(kcuda_set_rows(g_cu, type, dt, n_rows, n_cols, scatter ? dids : NULL, n_ids, dsrc));
            dev_download(got, dt, row * (size_t)n_rows);
            for (int64_t r = 0; r < n_rows; r++)
                ck_assert_msg(memcmp(got + r * row, want + r * row, row) == 0,
                              "%s row %lld (scatter %d)", kinfer_type_name(type), (long long)r, scatter);
            kcuda_dealloc(g_cu, dt);
            free(want);
            free(got);
        }
    }
    kcuda_dealloc(g_cu, dids);
    kcuda_dealloc(g_cu, dsrc);
}
END_TEST

/* rmsnorm: both sides sum squares in double, so the scales agree; 2e-6. */
START_TEST(test_rmsnorm)
{
    NEED_GPU();
    test_rng_seed(15);
    static const int64_t lens[] = {1, 1000, 4097};
    for (int li = 0; li < 3; li++) {
        const int64_t n = lens[li], n_rows = 5;
        float *x = xmalloc(sizeof(float) * (size_t)(n * n_rows));
        float *w = xmalloc(sizeof(float) * (size_t)n);
        float *want = xmalloc(sizeof(float) * (size_t)(n * n_rows));
        float *got = xmalloc(sizeof(float) * (size_t)(n * n_rows));
        test_fill(x, n * n_rows, -4, 4);
        test_fill(w, n, 0.5, 1.5);
        float *dx = dev_upload(x, sizeof(float) * (size_t)(n * n_rows));
        float *dw = dev_upload(w, sizeof(float) * (size_t)n);
        float *dout = dev_alloc(sizeof(float) * (size_t)(n * n_rows));
        for (int with_w = 0; with_w < 2; with_w++) {
            for (int64_t r = 0; r < n_rows; r++)
                kinfer_rmsnorm(want + r * n, x + r * n, with_w ? w : NULL, n, 1e-6f);
            OK(kcuda_rmsnorm(g_cu, dout, dx, with_w ? dw : NULL, n_rows, n, 1e-6f));
            dev_download(got, dout, sizeof(float) * (size_t)(n * n_rows));
            for (int64_t i = 0; i < n * n_rows; i++)
                ASSERT_CLOSE(got[i], want[i], 2e-6, 1e-7, "n %lld, w %d, i %lld", (long long)n,
                             with_w, (long long)i);
        }
        /* in place */
        OK(kcuda_rmsnorm(g_cu, dx, dx, dw, n_rows, n, 1e-6f));
        dev_download(got, dx, sizeof(float) * (size_t)(n * n_rows));
        for (int64_t i = 0; i < n * n_rows; i++)
            ASSERT_CLOSE(got[i], want[i], 2e-6, 1e-7, "in place, i %lld", (long long)i);
        kcuda_dealloc(g_cu, dx);
        kcuda_dealloc(g_cu, dw);
        kcuda_dealloc(g_cu, dout);
        free(x);
        free(w);
        free(want);
        free(got);
    }
}
END_TEST

/* rope: angles, cos and sin in double on both sides; the rotation may be
 * fused on the GPU: 1e-5. */
START_TEST(test_rope)
{
    NEED_GPU();
    test_rng_seed(16);
    const int64_t n_tokens = 5, n_heads = 3;
    const int32_t pos[5] = {0, 1, 17, 4095, 131000};
    int32_t *dpos = dev_upload(pos, sizeof pos);
    float ff[64];
    for (int i = 0; i < 64; i++)
        ff[i] = 1.0f + (float)i / 8.0f; /* Llama 3.1 style divisors */
    float *dff = dev_upload(ff, sizeof ff);
    for (int cfg = 0; cfg < 16; cfg++) {
        const int64_t head_dim = (cfg & 1) ? 80 : 64;
        kinfer_rope_params p = {
            .neox = (cfg & 2) != 0,
            .n_rot = (cfg & 4) ? 32 : 64,
            .freq_base = (cfg & 8) ? 500000.0f : 10000.0f,
            .freq_scale = (cfg & 8) ? 0.25f : 1.0f,
            .attn_factor = (cfg & 4) ? 1.2f : 1.0f,
            .freq_factors = NULL,
        };
        const int64_t n = n_tokens * n_heads * head_dim;
        float *x = xmalloc(sizeof(float) * (size_t)n), *got = xmalloc(sizeof(float) * (size_t)n);
        test_fill(x, n, -2, 2);
        float *dx = dev_upload(x, sizeof(float) * (size_t)n);
        kinfer_rope_params pd = p;
        if (cfg & 8) {
            p.freq_factors = ff; /* host for the CPU, device for the GPU */
            pd.freq_factors = dff;
        }
        kinfer_rope(x, n_tokens, n_heads, head_dim, pos, &p);
        OK(kcuda_rope(g_cu, dx, n_tokens, n_heads, head_dim, dpos, &pd));
        dev_download(got, dx, sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            ASSERT_CLOSE(got[i], x[i], 1e-5, 1e-5, "config %d, i %lld", cfg, (long long)i);
        kcuda_dealloc(g_cu, dx);
        free(x);
        free(got);
    }
    kcuda_dealloc(g_cu, dpos);
    kcuda_dealloc(g_cu, dff);
}
END_TEST

/* softmax: expf may differ by 2 ulp between libm and CUDA: 1e-5 relative. */
START_TEST(test_softmax)
{
    NEED_GPU();
    test_rng_seed(17);
    static const int64_t lens[] = {1, 33, 1000, 5003};
    for (int li = 0; li < 4; li++) {
        const int64_t n = lens[li], n_rows = 3;
        float *x = xmalloc(sizeof(float) * (size_t)(n * n_rows));
        float *got = xmalloc(sizeof(float) * (size_t)(n * n_rows));
        test_fill(x, n * n_rows, -30, 30);
        float *dx = dev_upload(x, sizeof(float) * (size_t)(n * n_rows));
        for (int64_t r = 0; r < n_rows; r++)
            kinfer_softmax(x + r * n, n);
        OK(kcuda_softmax(g_cu, dx, n_rows, n));
        dev_download(got, dx, sizeof(float) * (size_t)(n * n_rows));
        for (int64_t i = 0; i < n * n_rows; i++)
            ASSERT_CLOSE(got[i], x[i], 1e-5, 1e-12, "n %lld, i %lld", (long long)n, (long long)i);
        kcuda_dealloc(g_cu, dx);
        free(x);
        free(got);
    }
}
END_TEST

/* Gates: expf / tanhf differ by a few ulp: 1e-5.  add and scale: exact. */
START_TEST(test_elementwise)
{
    NEED_GPU();
    test_rng_seed(18);
    const int64_t n = 100003;
    const size_t bytes = sizeof(float) * (size_t)n;
    float *g = xmalloc(bytes), *u = xmalloc(bytes), *want = xmalloc(bytes), *got = xmalloc(bytes);
    test_fill(g, n, -8, 8);
    test_fill(u, n, -2, 2);
    float *dg = dev_upload(g, bytes), *du = dev_upload(u, bytes), *dout = dev_alloc(bytes);

    kinfer_silu_gate(want, g, u, n);
    OK(kcuda_silu_gate(g_cu, dout, dg, du, n));
    dev_download(got, dout, bytes);
    for (int64_t i = 0; i < n; i++)
        ASSERT_CLOSE(got[i], want[i], 1e-5, 1e-7, "silu %lld", (long long)i);

    kinfer_gelu_gate(want, g, u, n);
    OK(kcuda_gelu_gate(g_cu, dout, dg, du, n));
    dev_download(got, dout, bytes);
    for (int64_t i = 0; i < n; i++)
        ASSERT_CLOSE(got[i], want[i], 1e-5, 1e-7, "gelu %lld", (long long)i);

    kinfer_add(want, g, u, n);
    OK(kcuda_add(g_cu, dout, dg, du, n));
    dev_download(got, dout, bytes);
    ck_assert(memcmp(got, want, bytes) == 0);

    kinfer_scale(want, 0.37f, n);
    OK(kcuda_scale(g_cu, dout, 0.37f, n));
    dev_download(got, dout, bytes);
    ck_assert(memcmp(got, want, bytes) == 0);

    /* aliasing: out = g */
    kinfer_silu_gate(want, g, u, n);
    OK(kcuda_silu_gate(g_cu, dg, dg, du, n));
    dev_download(got, dg, bytes);
    for (int64_t i = 0; i < n; i++)
        ASSERT_CLOSE(got[i], want[i], 1e-5, 1e-7, "silu in place %lld", (long long)i);

    kcuda_dealloc(g_cu, dg);
    kcuda_dealloc(g_cu, du);
    kcuda_dealloc(g_cu, dout);
    free(g);
    free(u);
    free(want);
    free(got);
}
END_TEST

/* ------------------------------------------------------------- attention */

typedef struct attn_case {
    int n_q, n_head, n_head_kv, hd_k, hd_v;
    int n_kv, n_prefix;  /* cells; how many hold earlier positions */
    int type_k, type_v;
    int n_swa;
    float softcap;
    int multi_seq;       /* queries alternate between sequences 0 and 130 */
    int own_cells;       /* the queries' own cells are in the cache */
} attn_case;

/* Naive double attention of query t, head h, with the same visibility
 * rule (cuda_kernels.h). */
static void attn_ref(const attn_case *c, const float *q, const float *kf, const float *vf,
                     const int32_t *kv_pos, const uint64_t *kv_seq, const int32_t *q_pos,
                     const int32_t *q_seq, float scale, double *out)
{
    const int gqa = c->n_head / c->n_head_kv;
    double *s = xmalloc(sizeof(double) * (size_t)(c->n_kv ? c->n_kv : 1));
    for (int t = 0; t < c->n_q; t++) {
        for (int h = 0; h < c->n_head; h++) {
            const int kvh = h / gqa;
            double mx = -INFINITY;
            for (int j = 0; j < c->n_kv; j++) {
                int see = kv_pos[j] >= 0 && kv_pos[j] <= q_pos[t];
                if (see && c->n_swa > 0 && q_pos[t] - kv_pos[j] >= c->n_swa)
                    see = 0;
                if (see && c->multi_seq)
                    see = (int)((kv_seq[j * 4 + q_seq[t] / 64] >> (q_seq[t] % 64)) & 1u);
                s[j] = -INFINITY;
                if (!see)
                    continue;
                double dot = 0.0;
                for (int d = 0; d < c->hd_k; d++)
                    dot += (double)q[((size_t)t * c->n_head + h) * c->hd_k + d] *
                           kf[((size_t)j * c->n_head_kv + kvh) * c->hd_k + d];
                dot *= scale;
                if (c->softcap > 0)
                    dot = c->softcap * tanh(dot / c->softcap);
                s[j] = dot;
                if (dot > mx)
                    mx = dot;
            }
            double *o = out + ((size_t)t * c->n_head + h) * c->hd_v;
            for (int d = 0; d < c->hd_v; d++)
                o[d] = 0.0;
            if (mx == -INFINITY)
                continue;
            double l = 0.0;
            for (int j = 0; j < c->n_kv; j++) {
                if (s[j] == -INFINITY)
                    continue;
                const double w = exp(s[j] - mx);
                l += w;
                for (int d = 0; d < c->hd_v; d++)
                    o[d] += w * vf[((size_t)j * c->n_head_kv + kvh) * c->hd_v + d];
            }
            for (int d = 0; d < c->hd_v; d++)
                o[d] /= l;
        }
    }
    free(s);
}

static void run_attn_case(const attn_case *c)
{
    const int64_t kd = (int64_t)c->n_head_kv * c->hd_k, vd = (int64_t)c->n_head_kv * c->hd_v;
    const kinfer_cpu_kernels *tk = kinfer_cpu_ref_kernels(c->type_k);
    const kinfer_cpu_kernels *tv = kinfer_cpu_ref_kernels(c->type_v);
    const size_t row_k = kinfer_row_size(c->type_k, kd), row_v = kinfer_row_size(c->type_v, vd);
    const int n_kv = c->n_kv;

    /* cells in shuffled order: prefix positions, the queries' own, free */
    int32_t *kv_pos = xmalloc(sizeof(int32_t) * (size_t)n_kv);
    uint64_t *kv_seq = xmalloc(sizeof(uint64_t) * 4 * (size_t)n_kv);
    int *perm = xmalloc(sizeof(int) * (size_t)n_kv);
    for (int j = 0; j < n_kv; j++)
        perm[j] = j;
    for (int j = n_kv - 1; j > 0; j--) {
        const int k = (int)(test_rng_uniform() * (j + 1)), tmp = perm[j];
        perm[j] = perm[k];
        perm[k] = tmp;
    }
    memset(kv_seq, 0, sizeof(uint64_t) * 4 * (size_t)n_kv);
    int32_t *q_pos = xmalloc(sizeof(int32_t) * (size_t)c->n_q);
    int32_t *q_seq = xmalloc(sizeof(int32_t) * (size_t)c->n_q);
    for (int t = 0; t < c->n_q; t++) {
        q_pos[t] = c->n_prefix + t;
        q_seq[t] = c->multi_seq && (t % 2) ? 130 : 0;
    }
    for (int j = 0; j < n_kv; j++) {
        const int cell = perm[j];
        kv_pos[cell] = -1;
        if (j < c->n_prefix) { /* shared by both sequences (as after seq_cp) */
            kv_pos[cell] = j;
            kv_seq[cell * 4 + 0] |= 1u;
            kv_seq[cell * 4 + 130 / 64] |= 1ull << (130 % 64);
        } else if (c->own_cells && j < c->n_prefix + c->n_q) {
            const int t = j - c->n_prefix;
            kv_pos[cell] = q_pos[t];
            kv_seq[cell * 4 + q_seq[t] / 64] |= 1ull << (q_seq[t] % 64);
        }
    }

    /* K and V through the cache types; free cells hold NaN bytes */
    uint8_t *k = xmalloc(row_k * (size_t)n_kv), *v = xmalloc(row_v * (size_t)n_kv);
    float *kf = xmalloc(sizeof(float) * (size_t)(kd * n_kv));
    float *vf = xmalloc(sizeof(float) * (size_t)(vd * n_kv));
    float *tmp = xmalloc(sizeof(float) * (size_t)(kd > vd ? kd : vd));
    for (int j = 0; j < n_kv; j++) {
        if (kv_pos[j] < 0) {
            memset(k + (size_t)j * row_k, 0xFF, row_k);
            memset(v + (size_t)j * row_v, 0xFF, row_v);
            continue;
        }
        test_fill(tmp, kd, -1, 1);
        tk->from_float(tmp, k + (size_t)j * row_k, kd);
        tk->to_float(k + (size_t)j * row_k, kf + (size_t)j * kd, kd);
        test_fill(tmp, vd, -1, 1);
        tv->from_float(tmp, v + (size_t)j * row_v, vd);
        tv->to_float(v + (size_t)j * row_v, vf + (size_t)j * vd, vd);
    }
    const int64_t qn = (int64_t)c->n_q * c->n_head * c->hd_k;
    const int64_t on = (int64_t)c->n_q * c->n_head * c->hd_v;
    float *q = xmalloc(sizeof(float) * (size_t)qn);
    test_fill(q, qn, -1, 1);
    const float scale = 1.0f / sqrtf((float)c->hd_k);
    double *want = xmalloc(sizeof(double) * (size_t)on);
    attn_ref(c, q, kf, vf, kv_pos, kv_seq, q_pos, q_seq, scale, want);

    kinfer_cuda_attn_params p = {
        .n_q = c->n_q, .n_head = c->n_head, .n_head_kv = c->n_head_kv,
        .head_dim_k = c->hd_k, .head_dim_v = c->hd_v,
        .q = dev_upload(q, sizeof(float) * (size_t)qn),
        .q_pos = dev_upload(q_pos, sizeof(int32_t) * (size_t)c->n_q),
        .q_seq = c->multi_seq ? dev_upload(q_seq, sizeof(int32_t) * (size_t)c->n_q) : NULL,
        .n_kv = n_kv, .type_k = c->type_k, .type_v = c->type_v,
        .k = dev_upload(k, row_k * (size_t)n_kv), .v = dev_upload(v, row_v * (size_t)n_kv),
        .k_row_bytes = row_k, .v_row_bytes = row_v,
        .kv_pos = dev_upload(kv_pos, sizeof(int32_t) * (size_t)n_kv),
        .kv_seq = c->multi_seq ? dev_upload(kv_seq, sizeof(uint64_t) * 4 * (size_t)n_kv) : NULL,
        .kv_seq_words = c->multi_seq ? 4 : 0,
        .scale = scale, .softcap = c->softcap, .n_swa = c->n_swa,
        .out = dev_alloc(sizeof(float) * (size_t)on),
    };
    float *got = xmalloc(sizeof(float) * (size_t)on);
    static const kcuda_attn_path paths[2] = {KCUDA_ATTN_DECODE, KCUDA_ATTN_PROMPT};
    for (int pi = 0; pi < 2; pi++) {
        OK(kcuda_memset(g_cu, p.out, 0x7F, sizeof(float) * (size_t)on)); /* poison */
        OK(kcuda_attention_ex(g_cu, &p, paths[pi]));
        dev_download(got, p.out, sizeof(float) * (size_t)on);
        /* float dots over head_dim, expf, float sums: 1e-4 on values ~1 */
        for (int64_t i = 0; i < on; i++)
            ASSERT_CLOSE(got[i], want[i], 1e-4, 1e-4,
                         "path %d, n_q %d, heads %d/%d, hd %d/%d, n_kv %d, %s/%s, swa %d, "
                         "softcap %g, seqs %d, element %lld",
                         (int)paths[pi], c->n_q, c->n_head, c->n_head_kv, c->hd_k, c->hd_v,
                         c->n_kv, kinfer_type_name(c->type_k), kinfer_type_name(c->type_v), c->n_swa,
                         (double)c->softcap, c->multi_seq, (long long)i);
    }
    kcuda_dealloc(g_cu, (void *)p.q);
    kcuda_dealloc(g_cu, (void *)p.q_pos);
    kcuda_dealloc(g_cu, (void *)p.q_seq);
    kcuda_dealloc(g_cu, (void *)p.k);
    kcuda_dealloc(g_cu, (void *)p.v);
    kcuda_dealloc(g_cu, (void *)p.kv_pos);
    kcuda_dealloc(g_cu, (void *)p.kv_seq);
    kcuda_dealloc(g_cu, p.out);
    free(kv_pos);
    free(kv_seq);
    free(perm);
    free(q_pos);
    free(q_seq);
    free(k);
    free(v);
    free(kf);
    free(vf);
    free(tmp);
    free(q);
    free(want);
    free(got);
}

START_TEST(test_attention)
{
    NEED_GPU();
    test_rng_seed(19);
    const int F16 = KINFER_TYPE_F16, Q8 = KINFER_TYPE_Q8_0, F32 = KINFER_TYPE_F32;
    const attn_case cases[] = {
        /* n_q heads    hd_k hd_v n_kv pre  K    V    swa cap  seqs own */
        {1, 8, 2, 64, 64, 700, 500, F16, F16, 0, 0, 0, 1},     /* decode, 3 splits */
        {1, 8, 8, 128, 128, 1, 0, F16, F16, 0, 0, 0, 1},       /* first token */
        {3, 8, 2, 128, 128, 257, 200, Q8, Q8, 0, 0, 1, 1},     /* two sequences */
        {33, 6, 3, 64, 32, 100, 40, F16, F16, 0, 0, 0, 1},     /* hd_k != hd_v */
        {100, 4, 1, 128, 128, 150, 30, Q8, F16, 16, 30, 0, 1}, /* window, soft-cap */
        {17, 2, 2, 256, 256, 64, 20, F32, F32, 0, 0, 0, 1},    /* > 48 KiB tiles */
        {40, 4, 2, 64, 64, 300, 100, F16, Q8, 50, 0, 1, 1},    /* everything */
        {5, 4, 2, 64, 64, 20, 0, F16, F16, 0, 0, 0, 0},        /* nothing visible */
        {16, 4, 4, 96, 96, 16, 0, F16, F32, 0, 0, 0, 1},       /* one full tile */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_attn_case(&cases[i]);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *cuda_suite(void)
{
    Suite *s = suite_create("cuda");
    TCase *host = tcase_create("host");
    tcase_add_test(host, test_helpers);
    tcase_add_test(host, test_attn_check);
    tcase_add_test(host, test_error_mapping);
#ifdef KINFER_CUDA
    tcase_add_test(host, test_cublas_loads);
#endif
    tcase_add_test(host, test_open_errors);
    suite_add_tcase(s, host);
    TCase *gpu = tcase_create("gpu");
    tcase_add_test(gpu, test_memory_errors);
    tcase_add_test(gpu, test_dequantize);
    tcase_add_test(gpu, test_matmul);
    tcase_add_test(gpu, test_get_rows);
    tcase_add_test(gpu, test_set_rows);
    tcase_add_test(gpu, test_rmsnorm);
    tcase_add_test(gpu, test_rope);
    tcase_add_test(gpu, test_softmax);
    tcase_add_test(gpu, test_elementwise);
    tcase_add_test(gpu, test_attention);
    suite_add_tcase(s, gpu);
    return s;
}

int main(void)
{
    const char *why = "";
    if (kinfer_cuda_device_count(&why) == 0) {
        printf("SKIP: CUDA kernel tests: %s (host-side tests still run)\n", why);
    } else {
        char err[512] = "";
        const kinfer_status st = kcuda_new(0, &g_cu, err, sizeof err);
        if (st != KINFER_OK) {
            fprintf(stderr, "FAIL: a GPU is present but kcuda_new failed: %s: %s\n",
                    kinfer_status_str(st), err);
            return EXIT_FAILURE;
        }
        kcuda_device_info info;
        if (kcuda_device_info_get(0, &info, err, sizeof err) == KINFER_OK)
            printf("CUDA device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name, info.cc_major,
                   info.cc_minor, info.sm_count, (double)info.total_bytes / (1 << 30));
    }
    SRunner *sr = srunner_create(cuda_suite());
    srunner_set_fork_status(sr, CK_NOFORK); /* a CUDA context does not survive fork() */
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    kcuda_free(g_cu);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
