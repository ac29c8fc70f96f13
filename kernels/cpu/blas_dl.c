/*
 * blas_dl.c — OpenBLAS loaded with dlopen on first use (blas_dl.h says
 * why), through the loader of core/dl.h.  The first name is the soname of
 * the OpenBLAS kinfer was built against (KINFER_OPENBLAS_SONAME, set by the
 * Makefile); CBLAS's ABI is stable, so the usual names follow it.
 */
#include "cpu/blas_dl.h"

#include "core/dl.h"

#ifndef KINFER_OPENBLAS_SONAME
#define KINFER_OPENBLAS_SONAME "libopenblas.so.0"
#endif

static kblas_api api;

static const char *const sonames[] = {KINFER_OPENBLAS_SONAME, "libopenblas.so.0", "libopenblas.so", NULL};
static const kinfer_dl_symbol symbols[] = {
    {"cblas_sgemm", (void **)&api.sgemm},
    {NULL, NULL},
};
static kinfer_dl_lib openblas = KINFER_DL_LIB("OpenBLAS", sonames, symbols);

const kblas_api *kblas_load(char *err, size_t err_size)
{
    return kinfer_dl_load(&openblas, err, err_size) ? &api : NULL;
}
