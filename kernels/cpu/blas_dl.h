/*
 * blas_dl.h — OpenBLAS, loaded the first time a matmul takes the BLAS path.
 * Linking it maps OpenBLAS, libgfortran and libquadmath (~2 MiB resident)
 * into every process, though the forward pass never uses it; loading it
 * with dlopen leaves a quantized model's run without them.
 */
#ifndef KINFER_BLAS_DL_H
#define KINFER_BLAS_DL_H

#include <stddef.h>

#include <cblas.h>

/* The BLAS entry points kinfer uses, with their own signatures. */
typedef struct kblas_api {
    __typeof__(cblas_sgemm) *sgemm;
} kblas_api;

/* The API, loaded on the first call (thread-safe); NULL, with the reason
 * in err, when the library or one of its symbols cannot be found. */
const kblas_api *kblas_load(char *err, size_t err_size);

#endif /* KINFER_BLAS_DL_H */
