/*
 * blas_dl.c — OpenBLAS loaded with dlopen on first use (blas_dl.h says
 * why).  The library name is the soname of the OpenBLAS kinfer was built
 * against (KINFER_OPENBLAS_SONAME, set by the Makefile), so the ABI matches.
 */
#include "cpu/blas_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#ifndef KINFER_OPENBLAS_SONAME
#define KINFER_OPENBLAS_SONAME "libopenblas.so.0"
#endif

static kblas_api api;
static const kblas_api *loaded;
static char load_error[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *lib = dlopen(KINFER_OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load OpenBLAS (%s): %s", KINFER_OPENBLAS_SONAME,
                 why ? why : "unknown error");
        return;
    }
    /* (a data pointer to a function pointer: POSIX guarantees dlsym's use) */
    if (!(*(void **)&api.sgemm = dlsym(lib, "cblas_sgemm"))) {
        snprintf(load_error, sizeof load_error, "%s: symbol cblas_sgemm not found", KINFER_OPENBLAS_SONAME);
        dlclose(lib);
        return;
    }
    loaded = &api; /* the library stays loaded for the life of the process */
}

const kblas_api *kblas_load(char *err, size_t err_size)
{
    pthread_once(&once, load);
    if (loaded == NULL && err != NULL && err_size > 0)
        snprintf(err, err_size, "%s", load_error);
    return loaded;
}
