/*
 * cublas_dl.c — cuBLAS loaded with dlopen on first use (cublas_dl.h says
 * why).  The library name is the soname of the toolkit kinfer was built
 * against (KINFER_CUBLAS_SONAME, set by the Makefile), so the ABI matches.
 */
#ifdef KINFER_CUDA
#include "core/cublas_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#ifndef KINFER_CUBLAS_SONAME
#define KINFER_CUBLAS_SONAME "libcublas.so"
#endif

static kcublas_api api;
static const kcublas_api *loaded;
static char load_error[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* the address of symbol name, or NULL with the reason in load_error */
static void *find(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (p == NULL)
        snprintf(load_error, sizeof load_error, "%s: symbol %s not found", KINFER_CUBLAS_SONAME, name);
    return p;
}

static void load(void)
{
    void *lib = dlopen(KINFER_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load cuBLAS (%s): %s", KINFER_CUBLAS_SONAME,
                 why ? why : "unknown error");
        return;
    }
    /* (a data pointer to a function pointer: POSIX guarantees dlsym's use) */
    if (!(*(void **)&api.create = find(lib, "cublasCreate_v2")) ||
        !(*(void **)&api.destroy = find(lib, "cublasDestroy_v2")) ||
        !(*(void **)&api.set_stream = find(lib, "cublasSetStream_v2")) ||
        !(*(void **)&api.gemm_ex = find(lib, "cublasGemmEx")) ||
        !(*(void **)&api.status_name = find(lib, "cublasGetStatusName")) ||
        !(*(void **)&api.status_string = find(lib, "cublasGetStatusString"))) {
        dlclose(lib);
        return;
    }
    loaded = &api; /* the library stays loaded for the life of the process */
}

const kcublas_api *kcublas_load(char *err, size_t err_size)
{
    pthread_once(&once, load);
    if (loaded == NULL && err != NULL && err_size > 0)
        snprintf(err, err_size, "%s", load_error);
    return loaded;
}
#else
/* ISO C wants something in every translation unit */
typedef int kinfer_cublas_dl_unused;
#endif
