/*
 * common.cuh — device helpers shared by the kernels (internal, C++).
 *
 * kcu_elem<T>(base, i) reads element i of a run of `T` blocks starting at
 * base, with exactly the arithmetic of the reference to_float in
 * kernels/cpu/ref.c and ref_kquants.c.  Products that feed an addition go
 * through __fmul_rn so that nvcc cannot fuse them into an FMA: the
 * dequantized values are then bit for bit the CPU's.
 *
 * The kernels built on it are plain (one element per thread, warp-per-row
 * reductions); see README.md for what later sessions may speed up.
 */
#ifndef KINFER_CUDA_COMMON_CUH
#define KINFER_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "cuda/cuda_kernels.h"
#include "quant.h"

static_assert(KINFER_CUDA_ERR_INVALID_VALUE == (int)cudaErrorInvalidValue, "error code");
static_assert(KINFER_CUDA_ERR_NOT_SUPPORTED == (int)cudaErrorNotSupported, "error code");

#define KCU_FULL_MASK 0xffffffffu

/* ggml's kvalues_iq4nl (the host copy is kinfer_iq4nl_values). */
static __constant__ int8_t kcu_iq4nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

static __device__ __forceinline__ float kcu_h2f(uint16_t h)
{
    return __half2float(__ushort_as_half(h)); /* exact */
}

static __device__ __forceinline__ uint16_t kcu_f2h(float f)
{
    return __half_as_ushort(__float2half_rn(f)); /* round to nearest even */
}

static __device__ __forceinline__ float kcu_bf2f(uint16_t b)
{
    return __uint_as_float((uint32_t)b << 16);
}

/* kinfer_fp32_to_bf16, integer for integer. */
static __device__ __forceinline__ uint16_t kcu_f2bf(float f)
{
    const uint32_t x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 64u);
    return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

/* Scale and min of sub-block j (0..7) of a Q4_K / Q5_K block
 * (kinfer_k4_scale_min). */
static __device__ __forceinline__ void kcu_k4_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Element i of a run of blocks of type T.  i is an element index; blocks
 * are consecutive, so a whole tensor of whole-block rows is one run. */
template <int T>
static __device__ __forceinline__ float kcu_elem(const uint8_t *base, int64_t i)
{
    if constexpr (T == KINFER_TYPE_F32) {
        return ((const float *)base)[i];
    } else if constexpr (T == KINFER_TYPE_F16) {
        return kcu_h2f(((const uint16_t *)base)[i]);
    } else if constexpr (T == KINFER_TYPE_BF16) {
        return kcu_bf2f(((const uint16_t *)base)[i]);
    } else if constexpr (T == KINFER_TYPE_Q8_0) {
        const block_q8_0 *b = (const block_q8_0 *)base + i / QK8_0;
        return (float)b->qs[i % QK8_0] * kcu_h2f(b->d);
    } else if constexpr (T == KINFER_TYPE_Q4_0) {
        const block_q4_0 *b = (const block_q4_0 *)base + i / QK4_0;
        const int j = (int)(i % QK4_0);
        const int q = j < 16 ? (b->qs[j] & 0xF) : (b->qs[j - 16] >> 4);
        return (float)(q - 8) * kcu_h2f(b->d);
    } else if constexpr (T == KINFER_TYPE_Q4_1) {
        const block_q4_1 *b = (const block_q4_1 *)base + i / QK4_1;
        const int j = (int)(i % QK4_1);
        const int q = j < 16 ? (b->qs[j] & 0xF) : (b->qs[j - 16] >> 4);
        return __fmul_rn((float)q, kcu_h2f(b->d)) + kcu_h2f(b->m);
    } else if constexpr (T == KINFER_TYPE_Q5_0 || T == KINFER_TYPE_Q5_1) {
        /* element j: nibble as in Q4_0, 5th bit = bit j of qh */
        using B = typename std::conditional<T == KINFER_TYPE_Q5_0, block_q5_0, block_q5_1>::type;
        const B *b = (const B *)base + i / 32;
        const int j = (int)(i % 32);
        const int lo = j < 16 ? (b->qs[j] & 0xF) : (b->qs[j - 16] >> 4);
        const int hi = (b->qh[j / 8] >> (j % 8)) & 1;
        const int q = lo | (hi << 4);
        if constexpr (T == KINFER_TYPE_Q5_0)
            return (float)(q - 16) * kcu_h2f(b->d);
        else
            return __fmul_rn((float)q, kcu_h2f(b->d)) + kcu_h2f(b->m);
    } else if constexpr (T == KINFER_TYPE_IQ4_NL) {
        const block_iq4_nl *b = (const block_iq4_nl *)base + i / QK4_NL;
        const int j = (int)(i % QK4_NL);
        const int q = j < 16 ? (b->qs[j] & 0xF) : (b->qs[j - 16] >> 4);
        return kcu_h2f(b->d) * (float)kcu_iq4nl_values[q];
    } else if constexpr (T == KINFER_TYPE_Q2_K) {
        const block_q2_K *b = (const block_q2_K *)base + i / QK_K;
        const int e = (int)(i % QK_K), half = e / 128, r = e % 128;
        const int q = (b->qs[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
        const int sc = b->scales[e / 16];
        const float dl = kcu_h2f(b->d) * (float)(sc & 0xF);
        const float ml = __fmul_rn(kcu_h2f(b->dmin), (float)(sc >> 4));
        return __fmul_rn(dl, (float)q) - ml;
    } else if constexpr (T == KINFER_TYPE_Q3_K) {
        const block_q3_K *b = (const block_q3_K *)base + i / QK_K;
        const int e = (int)(i % QK_K), half = e / 128, r = e % 128, l = r % 32;
        const int lo = (b->qs[half * 32 + l] >> (2 * (r / 32))) & 3;
        const int hbit = (b->hmask[l] >> (half * 4 + r / 32)) & 1;
        const int q = lo - (hbit ? 0 : 4);
        const int j = e / 16; /* 6-bit scale j: low nibble and 2 high bits */
        const int slo = j < 8 ? (b->scales[j] & 0xF) : (b->scales[j - 8] >> 4);
        const int shi = (b->scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        const int sc = (slo | (shi << 4)) - 32;
        return (kcu_h2f(b->d) * (float)sc) * (float)q;
    } else if constexpr (T == KINFER_TYPE_Q4_K) {
        const block_q4_K *b = (const block_q4_K *)base + i / QK_K;
        const int e = (int)(i % QK_K), c = e / 64, w = e % 64, l = w % 32;
        const int j = 2 * c + (w >= 32);
        const uint8_t byte = b->qs[32 * c + l];
        const int q = w < 32 ? (byte & 0xF) : (byte >> 4);
        int sc, m;
        kcu_k4_scale_min(j, b->scales, &sc, &m);
        const float dl = kcu_h2f(b->d) * (float)sc;
        const float ml = __fmul_rn(kcu_h2f(b->dmin), (float)m);
        return __fmul_rn(dl, (float)q) - ml;
    } else if constexpr (T == KINFER_TYPE_Q5_K) {
        const block_q5_K *b = (const block_q5_K *)base + i / QK_K;
        const int e = (int)(i % QK_K), j = e / 32, l = e % 32;
        const int lo = (b->qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
        const int q = lo | (((b->qh[l] >> j) & 1) << 4);
        int sc, m;
        kcu_k4_scale_min(j, b->scales, &sc, &m);
        const float dl = kcu_h2f(b->d) * (float)sc;
        const float ml = __fmul_rn(kcu_h2f(b->dmin), (float)m);
        return __fmul_rn(dl, (float)q) - ml;
    } else if constexpr (T == KINFER_TYPE_Q6_K) {
        const block_q6_K *b = (const block_q6_K *)base + i / QK_K;
        const int e = (int)(i % QK_K), half = e / 128, r = e % 128, j = r / 32, l = r % 32;
        const uint8_t lbyte = b->ql[64 * half + 32 * (j & 1) + l];
        const int lo = j < 2 ? (lbyte & 0xF) : (lbyte >> 4);
        const int hi = (b->qh[32 * half + l] >> (2 * j)) & 3;
        const int q = (lo | (hi << 4)) - 32;
        return kcu_h2f(b->d) * (float)b->scales[e / 16] * (float)q;
    } else if constexpr (T == KINFER_TYPE_IQ4_XS) {
        const block_iq4_xs *b = (const block_iq4_xs *)base + i / QK_K;
        const int e = (int)(i % QK_K), ib = e / 32, j = e % 32;
        const int slo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
        const int shi = (b->scales_h >> (2 * ib)) & 3;
        const float dl = kcu_h2f(b->d) * (float)((slo | (shi << 4)) - 32);
        const uint8_t *qs = b->qs + 16 * ib;
        const int q = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
        return dl * (float)kcu_iq4nl_values[q];
    } else {
        static_assert(T < 0, "kcu_elem: type without a device reader");
        return 0.0f;
    }
}

/* Call f(std::integral_constant<int, T>{}) for the runtime type; false when
 * the type has no device reader. */
template <typename F>
static bool kcu_dispatch_type(int type, F &&f)
{
#define KCU_CASE(t)                                     \
    case t:                                             \
        f(std::integral_constant<int, t>{});            \
        return true;
    switch (type) {
        KCU_CASE(KINFER_TYPE_F32)
        KCU_CASE(KINFER_TYPE_F16)
        KCU_CASE(KINFER_TYPE_BF16)
        KCU_CASE(KINFER_TYPE_Q4_0)
        KCU_CASE(KINFER_TYPE_Q4_1)
        KCU_CASE(KINFER_TYPE_Q5_0)
        KCU_CASE(KINFER_TYPE_Q5_1)
        KCU_CASE(KINFER_TYPE_Q8_0)
        KCU_CASE(KINFER_TYPE_Q2_K)
        KCU_CASE(KINFER_TYPE_Q3_K)
        KCU_CASE(KINFER_TYPE_Q4_K)
        KCU_CASE(KINFER_TYPE_Q5_K)
        KCU_CASE(KINFER_TYPE_Q6_K)
        KCU_CASE(KINFER_TYPE_IQ4_NL)
        KCU_CASE(KINFER_TYPE_IQ4_XS)
    default:
        return false;
    }
}

/* The same over the KV cache types attention reads. */
template <typename F>
static bool kcu_dispatch_cache_type(int type, F &&f)
{
    switch (type) {
        KCU_CASE(KINFER_TYPE_F32)
        KCU_CASE(KINFER_TYPE_F16)
        KCU_CASE(KINFER_TYPE_Q8_0)
    default:
        return false;
    }
#undef KCU_CASE
}

/* ------------------------------------------------------------ reductions */

static __device__ __forceinline__ float kcu_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(KCU_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ double kcu_warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(KCU_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float kcu_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(KCU_FULL_MASK, v, o));
    return v;
}

/* Block-wide sum / max; every thread gets the result.  blockDim.x must be a
 * multiple of 32; tmp is 32 elements of shared memory.  Every thread of the
 * block must call it (it synchronizes). */
static __device__ __forceinline__ float kcu_block_sum(float v, float *tmp)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = kcu_warp_sum(v);
    __syncthreads(); /* tmp may still be read by a previous call */
    if (lane == 0)
        tmp[warp] = v;
    __syncthreads();
    return kcu_warp_sum(lane < nw ? tmp[lane] : 0.0f);
}

static __device__ __forceinline__ double kcu_block_sum_d(double v, double *tmp)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = kcu_warp_sum_d(v);
    __syncthreads();
    if (lane == 0)
        tmp[warp] = v;
    __syncthreads();
    return kcu_warp_sum_d(lane < nw ? tmp[lane] : 0.0);
}

static __device__ __forceinline__ float kcu_block_max(float v, float *tmp)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = kcu_warp_max(v);
    __syncthreads();
    if (lane == 0)
        tmp[warp] = v;
    __syncthreads();
    return kcu_warp_max(lane < nw ? tmp[lane] : -INFINITY);
}

/* ------------------------------------------------------------- launching */

static inline cudaStream_t kcu_stream(void *stream)
{
    return (cudaStream_t)stream;
}

/* The launch error of what was just queued (and clears it). */
static inline kinfer_cuda_err kcu_launch_result(void)
{
    return (kinfer_cuda_err)cudaGetLastError();
}

/* Grid-stride index helpers. */
static __device__ __forceinline__ int64_t kcu_gid(void)
{
    return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}

static __device__ __forceinline__ int64_t kcu_gstride(void)
{
    return (int64_t)gridDim.x * blockDim.x;
}

#endif /* KINFER_CUDA_COMMON_CUH */
