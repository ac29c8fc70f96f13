/*
 * backend_cuda.c — the CUDA backend's host side: devices, the per-context
 * handle (stream, cuBLAS, scratch), device memory, and the checked entry
 * points of the kernels.  Built with KINFER_CUDA it talks to the CUDA
 * runtime and cuBLAS; without it, it reports that CUDA is absent, so
 * nothing else in the library needs to know how it was built.
 */
#include "backend/cuda.h"

#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------- pure helpers (both builds) */

kinfer_status kcuda_status_of(int cuda_err)
{
    switch (cuda_err) {
    case 0:
        return KINFER_OK;
    case KINFER_CUDA_ERR_INVALID_VALUE:
        return KINFER_E_INVALID_ARG;
    case KINFER_CUDA_ERR_NOT_SUPPORTED:
        return KINFER_E_UNSUPPORTED;
    default:
        return KINFER_E_DEVICE;
    }
}

/* cublasStatus_t values (cublas_api.h), spelled out so that this builds
 * without the header. */
enum {
    KC_CUBLAS_SUCCESS = 0,
    KC_CUBLAS_INVALID_VALUE = 7,
    KC_CUBLAS_NOT_SUPPORTED = 15
};

kinfer_status kcuda_cublas_status_of(int cublas_status)
{
    switch (cublas_status) {
    case KC_CUBLAS_SUCCESS:
        return KINFER_OK;
    case KC_CUBLAS_INVALID_VALUE:
        return KINFER_E_INVALID_ARG;
    case KC_CUBLAS_NOT_SUPPORTED:
        return KINFER_E_UNSUPPORTED;
    default:
        return KINFER_E_DEVICE;
    }
}

size_t kcuda_matmul_scratch_bytes(int type, int64_t n_rows, int64_t n_cols, int64_t n_tokens,
                                  size_t panel_bytes, kcuda_matmul_path path)
{
    if (n_rows <= 0 || n_cols <= 0 || n_tokens <= 0)
        return 0;
    if (path == KCUDA_MATMUL_GEMV || (path == KCUDA_MATMUL_AUTO && n_tokens <= KCUDA_GEMV_MAX_BATCH))
        return 0;
    if (panel_bytes == 0)
        panel_bytes = KCUDA_GEMM_PANEL_BYTES_DEFAULT;
    /* x as F16, rounded up to 256 bytes so the panel after it is aligned */
    size_t bytes = ((size_t)n_tokens * (size_t)n_cols * 2 + 255) & ~(size_t)255;
    if (type != KINFER_TYPE_F16)
        bytes += (size_t)kinfer_cuda_gemm_panel_rows(n_rows, n_cols, panel_bytes) *
                 (size_t)n_cols * 2;
    return bytes;
}

#ifdef KINFER_CUDA
#include <cuda_runtime_api.h>

#include "core/cublas_dl.h"

struct kcuda {
    int device;
    cudaStream_t stream;
    const kcublas_api *blas; /* loaded by kcuda_new */
    cublasHandle_t cublas;
    void *scratch;          /* device, scratch_bytes */
    size_t scratch_bytes;
    size_t gemm_panel_bytes;
    char errmsg[512];
};

void kcuda_format_error(char *buf, size_t size, const char *what, int cuda_err)
{
    (void)status_fail(buf, size, KINFER_E_DEVICE, "%s: %s (%s)", what, cudaGetErrorName((cudaError_t)cuda_err),
            cudaGetErrorString((cudaError_t)cuda_err));
}

/* Record a failure on the handle; returns the status. */
#define fail(cu, st, ...) status_fail((cu)->errmsg, sizeof (cu)->errmsg, (st), __VA_ARGS__)

/* A cudaError_t from `what` as a status (and message when it failed).
 * Sticky errors stay; others are cleared so later calls start clean. */
static kinfer_status cuda_check(kcuda *cu, cudaError_t err, const char *what)
{
    if (err == cudaSuccess)
        return KINFER_OK;
    cudaGetLastError();
    kcuda_format_error(cu->errmsg, sizeof cu->errmsg, what, (int)err);
    return kcuda_status_of((int)err);
}

static kinfer_status cublas_check(kcuda *cu, cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS)
        return KINFER_OK;
    return fail(cu, kcuda_cublas_status_of((int)st), "%s: %s (%s)", what, cu->blas->status_name(st),
                cu->blas->status_string(st));
}

/* The same for calls without a handle: message into err. */
static kinfer_status cuda_check_err(cudaError_t e, const char *what, char *err, size_t err_size)
{
    if (e == cudaSuccess)
        return KINFER_OK;
    cudaGetLastError();
    kcuda_format_error(err, err_size, what, (int)e);
    return kcuda_status_of((int)e);
}

int kinfer_cuda_device_count(const char **why)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    const char *reason = "";
    if (err == cudaErrorNoDevice) reason = "no CUDA device found";
    else if (err == cudaErrorInsufficientDriver) reason = "the NVIDIA driver is missing or too old";
    else if (err != cudaSuccess) reason = cudaGetErrorString(err);
    if (err != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky error so later calls start clean */
        n = 0;
    }
    if (why) *why = reason;
    return n;
}

/* Check that device exists (and that there is a driver). */
static kinfer_status check_device(int device, char *err, size_t err_size)
{
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        int drv = 0, rt = 0;
        cudaDriverGetVersion(&drv);
        cudaRuntimeGetVersion(&rt);
        cudaGetLastError();
        (void)status_fail(err, err_size, KINFER_E_DEVICE, "cudaGetDeviceCount: %s (%s); driver supports CUDA %d.%d, "
                "runtime is %d.%d", cudaGetErrorName(e), cudaGetErrorString(e), drv / 1000,
                drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
        return KINFER_E_DEVICE;
    }
    if (device < 0 || device >= n) {
        (void)status_fail(err, err_size, KINFER_E_DEVICE, "CUDA device %d does not exist (%d found)", device, n);
        return KINFER_E_INVALID_ARG;
    }
    return KINFER_OK;
}

kinfer_status kcuda_device_info_get(int device, kcuda_device_info *out, char *err,
                                    size_t err_size)
{
    if (out == NULL) {
        (void)status_fail(err, err_size, KINFER_E_DEVICE, "kcuda_device_info_get: out is NULL");
        return KINFER_E_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    kinfer_status st = check_device(device, err, err_size);
    if (st != KINFER_OK)
        return st;
    struct cudaDeviceProp prop;
    st = cuda_check_err(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties", err,
                        err_size);
    if (st == KINFER_OK)
        st = cuda_check_err(cudaSetDevice(device), "cudaSetDevice", err, err_size);
    if (st == KINFER_OK)
        st = cuda_check_err(cudaMemGetInfo(&out->free_bytes, &out->total_bytes), "cudaMemGetInfo",
                            err, err_size);
    if (st != KINFER_OK)
        return st;
    out->device = device;
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    out->cc_major = prop.major;
    out->cc_minor = prop.minor;
    out->sm_count = prop.multiProcessorCount;
    cudaDriverGetVersion(&out->driver_version);
    cudaRuntimeGetVersion(&out->runtime_version);
    return KINFER_OK;
}

kinfer_status kcuda_new(int device, kcuda **out, char *err, size_t err_size)
{
    if (out == NULL) {
        (void)status_fail(err, err_size, KINFER_E_DEVICE, "kcuda_new: out is NULL");
        return KINFER_E_INVALID_ARG;
    }
    *out = NULL;
    kinfer_status st = check_device(device, err, err_size);
    if (st != KINFER_OK)
        return st;
    st = cuda_check_err(cudaSetDevice(device), "cudaSetDevice", err, err_size);
    if (st != KINFER_OK)
        return st;
    const int probe = kinfer_cuda_probe();
    if (probe != 0) {
        struct cudaDeviceProp prop;
        int major = 0, minor = 0;
        if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
            major = prop.major;
            minor = prop.minor;
        }
        cudaGetLastError();
        (void)status_fail(err, err_size, KINFER_E_DEVICE, "kinfer_cuda_probe: %s: this build has no kernels for the GPU's "
                "architecture (sm_%d%d); rebuild with CUDA_ARCHS=%d%d",
                cudaGetErrorName((cudaError_t)probe), major, minor, major, minor);
        return KINFER_E_DEVICE;
    }
    kcuda *cu = calloc(1, sizeof *cu);
    if (cu == NULL) {
        (void)status_fail(err, err_size, KINFER_E_DEVICE, "kcuda_new: out of host memory");
        return KINFER_E_NOMEM;
    }
    cu->device = device;
    cu->gemm_panel_bytes = KCUDA_GEMM_PANEL_BYTES_DEFAULT;
    st = cuda_check(cu, cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking),
                    "cudaStreamCreateWithFlags");
    if (st == KINFER_OK && (cu->blas = kcublas_load(cu->errmsg, sizeof cu->errmsg)) == NULL)
        st = KINFER_E_DEVICE;
    if (st == KINFER_OK)
        st = cublas_check(cu, cu->blas->create(&cu->cublas), "cublasCreate");
    if (st == KINFER_OK)
        st = cublas_check(cu, cu->blas->set_stream(cu->cublas, cu->stream), "cublasSetStream");
    if (st != KINFER_OK) {
        (void)status_fail(err, err_size, KINFER_E_DEVICE, "%s", cu->errmsg);
        kcuda_free(cu); /* releases what was made */
        return st;
    }
    *out = cu;
    return KINFER_OK;
}

void kcuda_free(kcuda *cu)
{
    if (cu == NULL)
        return;
    cudaSetDevice(cu->device);
    if (cu->stream)
        cudaStreamSynchronize(cu->stream);
    if (cu->cublas)
        cu->blas->destroy(cu->cublas);
    if (cu->scratch)
        cudaFree(cu->scratch);
    if (cu->stream)
        cudaStreamDestroy(cu->stream);
    cudaGetLastError();
    free(cu);
}

const char *kcuda_errmsg(const kcuda *cu)
{
    return cu ? cu->errmsg : "";
}

int kcuda_device(const kcuda *cu)
{
    return cu ? cu->device : -1;
}

void *kcuda_stream(const kcuda *cu)
{
    return cu ? (void *)cu->stream : NULL;
}

kinfer_status kcuda_activate(kcuda *cu)
{
    if (cu == NULL)
        return KINFER_E_INVALID_ARG;
    return cuda_check(cu, cudaSetDevice(cu->device), "cudaSetDevice");
}

/* ---------------------------------------------------------------- memory */

static const char *human_bytes(size_t bytes, char *buf, size_t size)
{
    if (bytes >= ((size_t)1 << 30))
        snprintf(buf, size, "%.2f GiB", (double)bytes / (double)((size_t)1 << 30));
    else if (bytes >= ((size_t)1 << 20))
        snprintf(buf, size, "%.2f MiB", (double)bytes / (double)((size_t)1 << 20));
    else
        snprintf(buf, size, "%zu bytes", bytes);
    return buf;
}

kinfer_status kcuda_alloc(kcuda *cu, size_t bytes, void **out)
{
    if (cu == NULL || out == NULL)
        return KINFER_E_INVALID_ARG;
    *out = NULL;
    kinfer_status st = kcuda_activate(cu);
    if (st != KINFER_OK)
        return st;
    void *p = NULL;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        char what[96], hb[32];
        snprintf(what, sizeof what, "cudaMalloc(%s)", human_bytes(bytes, hb, sizeof hb));
        return cuda_check(cu, e, what);
    }
    *out = p;
    return KINFER_OK;
}

kinfer_status kcuda_alloc_many(kcuda *cu, int n, const size_t *bytes, void **out)
{
    if (cu == NULL || n < 0 || (n > 0 && (bytes == NULL || out == NULL)))
        return KINFER_E_INVALID_ARG;
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    for (int i = 0; i < n; i++) {
        const kinfer_status st = kcuda_alloc(cu, bytes[i], &out[i]);
        if (st != KINFER_OK) {
            for (int j = 0; j < i; j++) {
                cudaFree(out[j]);
                out[j] = NULL;
            }
            return st;
        }
    }
    return KINFER_OK;
}

void kcuda_dealloc(kcuda *cu, void *p)
{
    if (p == NULL)
        return;
    if (cu)
        cudaSetDevice(cu->device);
    cudaFree(p);
}

kinfer_status kcuda_upload(kcuda *cu, void *dst, const void *src, size_t bytes)
{
    if (cu == NULL || (bytes > 0 && (dst == NULL || src == NULL)))
        return KINFER_E_INVALID_ARG;
    kinfer_status st = kcuda_activate(cu);
    if (st != KINFER_OK || bytes == 0)
        return st;
    st = cuda_check(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream),
                    "cudaMemcpyAsync(host to device)");
    return st != KINFER_OK ? st : kcuda_sync(cu);
}

kinfer_status kcuda_download(kcuda *cu, void *dst, const void *src, size_t bytes)
{
    if (cu == NULL || (bytes > 0 && (dst == NULL || src == NULL)))
        return KINFER_E_INVALID_ARG;
    kinfer_status st = kcuda_activate(cu);
    if (st != KINFER_OK || bytes == 0)
        return st;
    st = cuda_check(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream),
                    "cudaMemcpyAsync(device to host)");
    return st != KINFER_OK ? st : kcuda_sync(cu);
}

kinfer_status kcuda_memset(kcuda *cu, void *dst, int value, size_t bytes)
{
    if (cu == NULL || (bytes > 0 && dst == NULL))
        return KINFER_E_INVALID_ARG;
    kinfer_status st = kcuda_activate(cu);
    if (st != KINFER_OK || bytes == 0)
        return st;
    return cuda_check(cu, cudaMemsetAsync(dst, value, bytes, cu->stream), "cudaMemsetAsync");
}

kinfer_status kcuda_sync(kcuda *cu)
{
    if (cu == NULL)
        return KINFER_E_INVALID_ARG;
    return cuda_check(cu, cudaStreamSynchronize(cu->stream), "cudaStreamSynchronize");
}

kinfer_status kcuda_scratch(kcuda *cu, size_t bytes, void **out)
{
    if (cu == NULL || out == NULL)
        return KINFER_E_INVALID_ARG;
    *out = NULL;
    if (bytes <= cu->scratch_bytes && cu->scratch != NULL) {
        *out = cu->scratch;
        return KINFER_OK;
    }
    kinfer_status st = kcuda_activate(cu);
    if (st != KINFER_OK)
        return st;
    /* the old scratch may still be in use by queued work */
    st = kcuda_sync(cu);
    if (st != KINFER_OK)
        return st;
    if (cu->scratch) {
        cudaFree(cu->scratch);
        cu->scratch = NULL;
        cu->scratch_bytes = 0;
    }
    st = kcuda_alloc(cu, bytes, &cu->scratch);
    if (st != KINFER_OK)
        return st;
    cu->scratch_bytes = bytes;
    *out = cu->scratch;
    return KINFER_OK;
}

/* ---------------------------------------------------------------- matmul */

void kcuda_set_gemm_panel_bytes(kcuda *cu, size_t bytes)
{
    if (cu)
        cu->gemm_panel_bytes = bytes ? bytes : KCUDA_GEMM_PANEL_BYTES_DEFAULT;
}

/* A launcher's result as a status, the message naming the op and type. */
static kinfer_status launch_check(kcuda *cu, kinfer_cuda_err err, const char *op, int type)
{
    if (err == 0)
        return KINFER_OK;
    char what[96];
    const char *tn = kinfer_type_name(type);
    if (type >= 0)
        snprintf(what, sizeof what, "%s(%s)", op, tn ? tn : "unknown type");
    else
        snprintf(what, sizeof what, "%s", op);
    return cuda_check(cu, (cudaError_t)err, what);
}

static kinfer_status matmul_gemm(kcuda *cu, int type, const void *w, int64_t n_rows,
                                 int64_t n_cols, const float *x, int64_t n_tokens, float *y)
{
    if (n_rows > INT32_MAX || n_cols > INT32_MAX || n_tokens > INT32_MAX)
        return fail(cu, KINFER_E_INVALID_ARG, "kcuda_matmul: %lld x %lld x %lld exceeds cuBLAS's "
                    "int dimensions", (long long)n_rows, (long long)n_cols, (long long)n_tokens);
    const size_t need = kcuda_matmul_scratch_bytes(type, n_rows, n_cols, n_tokens,
                                                   cu->gemm_panel_bytes, KCUDA_MATMUL_GEMM);
    void *scratch = NULL;
    kinfer_status st = kcuda_scratch(cu, need, &scratch);
    if (st != KINFER_OK)
        return st;
    uint16_t *x16 = scratch;
    uint16_t *w16 = (uint16_t *)((uint8_t *)scratch +
                                 (((size_t)n_tokens * (size_t)n_cols * 2 + 255) & ~(size_t)255));
    st = launch_check(cu, kinfer_cuda_set_rows(KINFER_TYPE_F16, x16, n_tokens, n_cols, NULL,
                                               n_tokens, x, cu->stream),
                      "kinfer_cuda_set_rows", KINFER_TYPE_F16);
    if (st != KINFER_OK)
        return st;
    const float alpha = 1.0f, beta = 0.0f;
    const size_t row_bytes = kinfer_row_size(type, n_cols);
    const int64_t panel = type == KINFER_TYPE_F16 ? n_rows
                          : kinfer_cuda_gemm_panel_rows(n_rows, n_cols, cu->gemm_panel_bytes);
    for (int64_t r0 = 0; r0 < n_rows; r0 += panel) {
        const int64_t pr = n_rows - r0 < panel ? n_rows - r0 : panel;
        const void *a = w;
        if (type != KINFER_TYPE_F16) {
            st = launch_check(cu, kinfer_cuda_dequantize(type, (const uint8_t *)w + (size_t)r0 * row_bytes,
                                                         pr * n_cols, KINFER_TYPE_F16, w16, cu->stream),
                              "kinfer_cuda_dequantize", type);
            if (st != KINFER_OK)
                return st;
            a = w16;
        }
        /* column-major view: W is (n_cols x pr) with ld n_cols, x is
         * (n_cols x n_tokens), y is (n_rows x n_tokens) with ld n_rows:
         * y[r0:r0+pr, :] = W^T x */
        st = cublas_check(cu, cu->blas->gemm_ex(cu->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)pr,
                                                (int)n_tokens, (int)n_cols, &alpha, a, CUDA_R_16F,
                                                (int)n_cols, x16, CUDA_R_16F, (int)n_cols, &beta,
                                                y + r0, CUDA_R_32F, (int)n_rows, CUBLAS_COMPUTE_32F,
                                                CUBLAS_GEMM_DEFAULT),
                          "cublasGemmEx");
        if (st != KINFER_OK)
            return st;
    }
    return KINFER_OK;
}

kinfer_status kcuda_matmul_ex(kcuda *cu, int type, const void *w, int64_t n_rows, int64_t n_cols,
                              const float *x, int64_t n_tokens, float *y, kcuda_matmul_path path)
{
    if (cu == NULL)
        return KINFER_E_INVALID_ARG;
    if (!kinfer_cuda_type_supported(type))
        return fail(cu, KINFER_E_UNSUPPORTED, "kcuda_matmul: no CUDA kernels for type %s",
                    kinfer_type_name(type) ? kinfer_type_name(type) : "unknown");
    if (n_rows < 0 || n_cols <= 0 || n_tokens < 0 || kinfer_row_size(type, n_cols) == 0)
        return fail(cu, KINFER_E_INVALID_ARG, "kcuda_matmul: bad shape %lld x %lld (%s) x %lld "
                    "tokens", (long long)n_rows, (long long)n_cols, kinfer_type_name(type),
                    (long long)n_tokens);
    if (n_rows == 0 || n_tokens == 0)
        return KINFER_OK;
    if (w == NULL || x == NULL || y == NULL)
        return fail(cu, KINFER_E_INVALID_ARG, "kcuda_matmul: NULL pointer");
    kinfer_status st = kcuda_activate(cu);
    if (st != KINFER_OK)
        return st;
    if (path == KCUDA_MATMUL_GEMV || (path == KCUDA_MATMUL_AUTO && n_tokens <= KCUDA_GEMV_MAX_BATCH))
        return launch_check(cu, kinfer_cuda_gemv(type, w, n_rows, n_cols, x, n_tokens, y, cu->stream),
                            "kinfer_cuda_gemv", type);
    return matmul_gemm(cu, type, w, n_rows, n_cols, x, n_tokens, y);
}

kinfer_status kcuda_matmul(kcuda *cu, int type, const void *w, int64_t n_rows, int64_t n_cols,
                           const float *x, int64_t n_tokens, float *y)
{
    return kcuda_matmul_ex(cu, type, w, n_rows, n_cols, x, n_tokens, y, KCUDA_MATMUL_AUTO);
}

/* ------------------------------------------------------------ other ops */

#define KCUDA_OP(cu, call, name, type)                          \
    do {                                                        \
        if ((cu) == NULL)                                       \
            return KINFER_E_INVALID_ARG;                        \
        const kinfer_status st_ = kcuda_activate(cu);           \
        if (st_ != KINFER_OK)                                   \
            return st_;                                         \
        return launch_check((cu), (call), (name), (type));      \
    } while (0)

kinfer_status kcuda_dequantize(kcuda *cu, int type, const void *src, int64_t n, int dst_type,
                               void *dst)
{
    KCUDA_OP(cu, kinfer_cuda_dequantize(type, src, n, dst_type, dst, cu->stream),
             "kinfer_cuda_dequantize", type);
}

kinfer_status kcuda_get_rows(kcuda *cu, int type, const void *table, int64_t n_rows_table,
                             int64_t n_cols, const int32_t *ids, int64_t n_ids, float *out)
{
    KCUDA_OP(cu, kinfer_cuda_get_rows(type, table, n_rows_table, n_cols, ids, n_ids, out, cu->stream),
             "kinfer_cuda_get_rows", type);
}

kinfer_status kcuda_set_rows(kcuda *cu, int type, void *table, int64_t n_rows_table,
                             int64_t n_cols, const int32_t *ids, int64_t n_ids, const float *src)
{
    KCUDA_OP(cu, kinfer_cuda_set_rows(type, table, n_rows_table, n_cols, ids, n_ids, src, cu->stream),
             "kinfer_cuda_set_rows", type);
}

kinfer_status kcuda_rmsnorm(kcuda *cu, float *out, const float *x, const float *w, int64_t n_rows,
                            int64_t n, float eps)
{
    KCUDA_OP(cu, kinfer_cuda_rmsnorm(out, x, w, n_rows, n, eps, cu->stream), "kinfer_cuda_rmsnorm",
             -1);
}

kinfer_status kcuda_rope(kcuda *cu, float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                         const int32_t *pos, const kinfer_rope_params *p)
{
    KCUDA_OP(cu, kinfer_cuda_rope(x, n_tokens, n_heads, head_dim, pos, p, cu->stream),
             "kinfer_cuda_rope", -1);
}

kinfer_status kcuda_softmax(kcuda *cu, float *x, int64_t n_rows, int64_t n)
{
    KCUDA_OP(cu, kinfer_cuda_softmax(x, n_rows, n, cu->stream), "kinfer_cuda_softmax", -1);
}

kinfer_status kcuda_silu_gate(kcuda *cu, float *out, const float *g, const float *u, int64_t n)
{
    KCUDA_OP(cu, kinfer_cuda_silu_gate(out, g, u, n, cu->stream), "kinfer_cuda_silu_gate", -1);
}

kinfer_status kcuda_gelu_gate(kcuda *cu, float *out, const float *g, const float *u, int64_t n)
{
    KCUDA_OP(cu, kinfer_cuda_gelu_gate(out, g, u, n, cu->stream), "kinfer_cuda_gelu_gate", -1);
}

kinfer_status kcuda_add(kcuda *cu, float *out, const float *a, const float *b, int64_t n)
{
    KCUDA_OP(cu, kinfer_cuda_add(out, a, b, n, cu->stream), "kinfer_cuda_add", -1);
}

kinfer_status kcuda_scale(kcuda *cu, float *x, float s, int64_t n)
{
    KCUDA_OP(cu, kinfer_cuda_scale(x, s, n, cu->stream), "kinfer_cuda_scale", -1);
}

kinfer_status kcuda_attention_ex(kcuda *cu, const kinfer_cuda_attn_params *p,
                                 kcuda_attn_path path)
{
    if (cu == NULL)
        return KINFER_E_INVALID_ARG;
    const kinfer_cuda_err chk = kinfer_cuda_attn_check(p);
    if (chk != 0)
        return launch_check(cu, chk, "kinfer_cuda_attn_check", -1);
    kinfer_status st = kcuda_activate(cu);
    if (st != KINFER_OK)
        return st;
    if (path == KCUDA_ATTN_PROMPT || (path == KCUDA_ATTN_AUTO && p->n_q > KCUDA_ATTN_DECODE_MAX_Q))
        return launch_check(cu, kinfer_cuda_attn_prompt(p, cu->stream), "kinfer_cuda_attn_prompt",
                            -1);
    const size_t need = kinfer_cuda_attn_decode_scratch_bytes(p->n_q, p->n_head, p->n_kv,
                                                              p->head_dim_v);
    void *scratch = NULL;
    if (need > 0) {
        st = kcuda_scratch(cu, need, &scratch);
        if (st != KINFER_OK)
            return st;
    }
    return launch_check(cu, kinfer_cuda_attn_decode(p, scratch, need, cu->stream),
                        "kinfer_cuda_attn_decode", -1);
}

kinfer_status kcuda_attention(kcuda *cu, const kinfer_cuda_attn_params *p)
{
    return kcuda_attention_ex(cu, p, KCUDA_ATTN_AUTO);
}

#else /* ------------------------------------------------ built without CUDA */

#define NO_CUDA "kinfer was built without CUDA"

struct kcuda {
    int unused;
};

int kinfer_cuda_device_count(const char **why)
{
    if (why) *why = NO_CUDA;
    return 0;
}

void kcuda_format_error(char *buf, size_t size, const char *what, int cuda_err)
{
    (void)status_fail(buf, size, KINFER_E_DEVICE, "%s: CUDA error %d (" NO_CUDA ")", what, cuda_err);
}

kinfer_status kcuda_device_info_get(int device, kcuda_device_info *out, char *err,
                                    size_t err_size)
{
    if (out)
        memset(out, 0, sizeof *out);
    (void)status_fail(err, err_size, KINFER_E_DEVICE, NO_CUDA);
    return KINFER_E_UNSUPPORTED;
}

kinfer_status kcuda_new(int device, kcuda **out, char *err, size_t err_size)
{
    if (out)
        *out = NULL;
    (void)status_fail(err, err_size, KINFER_E_DEVICE, NO_CUDA);
    return KINFER_E_UNSUPPORTED;
}

/* No handle can exist in this build: everything below fails the same way. */
void kcuda_free(kcuda *cu) { (void)cu; }
const char *kcuda_errmsg(const kcuda *cu) { return cu ? NO_CUDA : ""; }
int kcuda_device(const kcuda *cu) { (void)cu; return -1; }
void *kcuda_stream(const kcuda *cu) { (void)cu; return NULL; }
kinfer_status kcuda_activate(kcuda *cu) { return KINFER_E_UNSUPPORTED; }

kinfer_status kcuda_alloc(kcuda *cu, size_t bytes, void **out)
{
    if (out)
        *out = NULL;
    return KINFER_E_UNSUPPORTED;
}

kinfer_status kcuda_alloc_many(kcuda *cu, int n, const size_t *bytes, void **out)
{
    for (int i = 0; out && i < n; i++)
        out[i] = NULL;
    return KINFER_E_UNSUPPORTED;
}

void kcuda_dealloc(kcuda *cu, void *p) { (void)p; }
kinfer_status kcuda_upload(kcuda *cu, void *dst, const void *src, size_t bytes) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_download(kcuda *cu, void *dst, const void *src, size_t bytes) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_memset(kcuda *cu, void *dst, int value, size_t bytes) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_sync(kcuda *cu) { return KINFER_E_UNSUPPORTED; }

kinfer_status kcuda_scratch(kcuda *cu, size_t bytes, void **out)
{
    if (out)
        *out = NULL;
    return KINFER_E_UNSUPPORTED;
}

void kcuda_set_gemm_panel_bytes(kcuda *cu, size_t bytes) { (void)bytes; }

kinfer_status kcuda_matmul(kcuda *cu, int type, const void *w, int64_t n_rows, int64_t n_cols,
                           const float *x, int64_t n_tokens, float *y) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_matmul_ex(kcuda *cu, int type, const void *w, int64_t n_rows, int64_t n_cols,
                              const float *x, int64_t n_tokens, float *y, kcuda_matmul_path path)
{
    return KINFER_E_UNSUPPORTED;
}
kinfer_status kcuda_dequantize(kcuda *cu, int type, const void *src, int64_t n, int dst_type,
                               void *dst) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_get_rows(kcuda *cu, int type, const void *table, int64_t n_rows_table,
                             int64_t n_cols, const int32_t *ids, int64_t n_ids, float *out)
{
    return KINFER_E_UNSUPPORTED;
}
kinfer_status kcuda_set_rows(kcuda *cu, int type, void *table, int64_t n_rows_table,
                             int64_t n_cols, const int32_t *ids, int64_t n_ids, const float *src)
{
    return KINFER_E_UNSUPPORTED;
}
kinfer_status kcuda_rmsnorm(kcuda *cu, float *out, const float *x, const float *w, int64_t n_rows,
                            int64_t n, float eps) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_rope(kcuda *cu, float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                         const int32_t *pos, const kinfer_rope_params *p) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_softmax(kcuda *cu, float *x, int64_t n_rows, int64_t n) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_silu_gate(kcuda *cu, float *out, const float *g, const float *u, int64_t n) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_gelu_gate(kcuda *cu, float *out, const float *g, const float *u, int64_t n) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_add(kcuda *cu, float *out, const float *a, const float *b, int64_t n) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_scale(kcuda *cu, float *x, float s, int64_t n) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_attention(kcuda *cu, const kinfer_cuda_attn_params *p) { return KINFER_E_UNSUPPORTED; }
kinfer_status kcuda_attention_ex(kcuda *cu, const kinfer_cuda_attn_params *p,
                                 kcuda_attn_path path) { return KINFER_E_UNSUPPORTED; }

#endif /* KINFER_CUDA */
