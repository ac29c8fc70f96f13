/*
 * backend_cuda.c — the CUDA backend's host side.  Built with KINFER_CUDA it
 * talks to the CUDA runtime; without it, it reports that CUDA is absent, so
 * nothing else in the library needs to know how it was built.
 */
#include "kinfer.h"

#ifdef KINFER_CUDA
#include <cuda_runtime_api.h>

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
#else
int kinfer_cuda_device_count(const char **why)
{
    if (why) *why = "kinfer was built without CUDA";
    return 0;
}
#endif
