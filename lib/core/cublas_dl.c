/*
 * cublas_dl.c — cuBLAS loaded with dlopen on first use (cublas_dl.h says
 * why), through the loader of core/dl.h.  The library name is the soname
 * of the toolkit kinfer was built against (KINFER_CUBLAS_SONAME, set by the
 * Makefile), so the ABI matches: no other name is tried.
 */
#ifdef KINFER_CUDA
#include "core/cublas_dl.h"

#include "core/dl.h"

#ifndef KINFER_CUBLAS_SONAME
#define KINFER_CUBLAS_SONAME "libcublas.so"
#endif

static kcublas_api api;

static const char *const sonames[] = {KINFER_CUBLAS_SONAME, NULL};
static const kinfer_dl_symbol symbols[] = {
    {"cublasCreate_v2", (void **)&api.create},
    {"cublasDestroy_v2", (void **)&api.destroy},
    {"cublasSetStream_v2", (void **)&api.set_stream},
    {"cublasGemmEx", (void **)&api.gemm_ex},
    {"cublasGetStatusName", (void **)&api.status_name},
    {"cublasGetStatusString", (void **)&api.status_string},
    {NULL, NULL},
};
static kinfer_dl_lib cublas = KINFER_DL_LIB("cuBLAS", sonames, symbols);

const kcublas_api *kcublas_load(char *err, size_t err_size)
{
    return kinfer_dl_load(&cublas, err, err_size) ? &api : NULL;
}
#else
/* ISO C wants something in every translation unit */
typedef int kinfer_cublas_dl_unused;
#endif
