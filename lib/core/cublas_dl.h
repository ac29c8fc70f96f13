/*
 * cublas_dl.h — cuBLAS, loaded the first time a CUDA context needs it.
 * Linking libcublas maps and relocates ~150 MiB of it (cublasLt) into
 * every process at start-up, GPU or not; loading it with dlopen keeps a
 * CPU-only run of a CUDA build as small as a CPU-only build.
 * Only for KINFER_CUDA builds (needs cublas_v2.h).
 */
#ifndef KINFER_CUBLAS_DL_H
#define KINFER_CUBLAS_DL_H

#include <stddef.h>

#include <cublas_v2.h>

/* The cuBLAS entry points kinfer uses, with their own signatures. */
typedef struct kcublas_api {
    __typeof__(cublasCreate_v2) *create;
    __typeof__(cublasDestroy_v2) *destroy;
    __typeof__(cublasSetStream_v2) *set_stream;
    __typeof__(cublasGemmEx) *gemm_ex;
    __typeof__(cublasGetStatusName) *status_name;
    __typeof__(cublasGetStatusString) *status_string;
} kcublas_api;

/* The API, loaded on the first call (thread-safe); NULL, with the reason
 * in err, when the library or one of its symbols cannot be found. */
const kcublas_api *kcublas_load(char *err, size_t err_size);

#endif /* KINFER_CUBLAS_DL_H */
