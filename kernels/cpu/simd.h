/*
 * simd.h — hooks of the SIMD kernel files (internal to kernels/cpu).
 *
 * Each x86 file is compiled with its own -m flags and only ever called after
 * the CPU was checked for them.  A fill function overwrites the entries of a
 * per-type table (indexed by kinfer_type) that it has faster kernels for.
 */
#ifndef KINFER_CPU_SIMD_H
#define KINFER_CPU_SIMD_H

#include "cpu/kernels.h"

#if defined(__x86_64__)
void kinfer_avx2_fill(kinfer_cpu_kernels *table);
void kinfer_avx512_fill(kinfer_cpu_kernels *table);
void kinfer_silu_gate_avx512(float *out, const float *g, const float *u, int64_t n);
#endif

#endif /* KINFER_CPU_SIMD_H */
