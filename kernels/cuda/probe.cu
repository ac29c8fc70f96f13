/*
 * probe.cu — whether this build has code the current GPU can run: asks the
 * runtime for a trivial kernel's attributes, which fails with
 * cudaErrorInvalidDeviceFunction / NoKernelImageForDevice when the GPU's
 * architecture was not compiled for (and no PTX can be JIT-compiled).
 */
#include "common.cuh"

static __global__ void kcu_probe_kernel(int *x)
{
    if (x != NULL)
        *x = 1;
}

extern "C" kinfer_cuda_err kinfer_cuda_probe(void)
{
    cudaFuncAttributes attr;
    const cudaError_t err = cudaFuncGetAttributes(&attr, kcu_probe_kernel);
    if (err != cudaSuccess)
        cudaGetLastError(); /* not sticky: clear it */
    return (kinfer_cuda_err)err;
}
