/*
 * quant.h — tensor type traits and quantized block layouts, shared by the
 * C and CUDA kernels (internal).  Data and inline conversions only: no
 * function pointers, nothing of the CPU kernels.
 *
 * The layouts are byte for byte those of ggml (ggml-common.h), so tensors in
 * GGUF files are used in place.  Every struct is packed by construction (only
 * byte and 16-bit members, or a leading float) and its size is asserted.
 */
#ifndef KINFER_QUANT_H
#define KINFER_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kinfer.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__cplusplus)
#define KINFER_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define KINFER_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

/* IEEE half and bfloat16 are carried as raw bits. */
typedef uint16_t kinfer_fp16;
typedef uint16_t kinfer_bf16;

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK4_NL 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* ---------------------------------------------------------- 32-blocks */

typedef struct {
    kinfer_fp16 d;          /* scale */
    uint8_t qs[QK4_0 / 2];  /* nibbles: low = elements 0..15, high = 16..31 */
} block_q4_0;

typedef struct {
    kinfer_fp16 d;          /* scale */
    kinfer_fp16 m;          /* min */
    uint8_t qs[QK4_1 / 2];
} block_q4_1;

typedef struct {
    kinfer_fp16 d;
    uint8_t qh[4];          /* 5th bit of element j at bit j */
    uint8_t qs[QK5_0 / 2];
} block_q5_0;

typedef struct {
    kinfer_fp16 d;
    kinfer_fp16 m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;

typedef struct {
    kinfer_fp16 d;
    int8_t qs[QK8_0];
} block_q8_0;

/* Activation type for Q4_1/Q5_1: s = d * sum(qs) saves the min term. */
typedef struct {
    kinfer_fp16 d;
    kinfer_fp16 s;
    int8_t qs[QK8_1];
} block_q8_1;

typedef struct {
    kinfer_fp16 d;
    uint8_t qs[QK4_NL / 2]; /* indices into kinfer_iq4nl_values */
} block_iq4_nl;

/* ------------------------------------------------------ 256 super-blocks */

typedef struct {
    uint8_t scales[QK_K / 16]; /* low nibble scale, high nibble min, per 16 */
    uint8_t qs[QK_K / 4];      /* 2-bit quants */
    kinfer_fp16 d;             /* super-block scale for scales */
    kinfer_fp16 dmin;          /* super-block scale for mins */
} block_q2_K;

typedef struct {
    uint8_t hmask[QK_K / 8];   /* high bit (set = no -4 offset) */
    uint8_t qs[QK_K / 4];      /* low 2 bits */
    uint8_t scales[12];        /* 16 6-bit scales, offset by 32 */
    kinfer_fp16 d;
} block_q3_K;

typedef struct {
    kinfer_fp16 d;
    kinfer_fp16 dmin;
    uint8_t scales[K_SCALE_SIZE]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[QK_K / 2];
} block_q4_K;

typedef struct {
    kinfer_fp16 d;
    kinfer_fp16 dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;

/* Q4_K/Q5_K scales: the 12 packed bytes as 8 6-bit scales (out16[0..7])
 * and 8 6-bit mins (out16[8..15]). */
static inline void kinfer_k4_unpack_scales(const uint8_t *packed, uint8_t *out16)
{
    uint32_t u[4];
    memcpy(u, packed, K_SCALE_SIZE);
    const uint32_t m0_3 = u[1] & 0x3f3f3f3fu;
    u[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    u[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    u[2] = m0_3;
    u[0] &= 0x3f3f3f3fu;
    memcpy(out16, u, 16);
}

typedef struct {
    uint8_t ql[QK_K / 2];      /* low 4 bits */
    uint8_t qh[QK_K / 4];      /* high 2 bits */
    int8_t scales[QK_K / 16];  /* 8-bit scales per 16 */
    kinfer_fp16 d;
} block_q6_K;

/* Activation type for the K-quants and IQ4_XS. */
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];  /* sum of each 16 quants */
} block_q8_K;

typedef struct {
    kinfer_fp16 d;
    uint16_t scales_h;         /* high 2 bits of the 8 scales */
    uint8_t scales_l[QK_K / 64]; /* low 4 bits of the 8 scales */
    uint8_t qs[QK_K / 2];
} block_iq4_xs;

KINFER_STATIC_ASSERT(sizeof(block_q4_0) == 18, "block_q4_0 size");
KINFER_STATIC_ASSERT(sizeof(block_q4_1) == 20, "block_q4_1 size");
KINFER_STATIC_ASSERT(sizeof(block_q5_0) == 22, "block_q5_0 size");
KINFER_STATIC_ASSERT(sizeof(block_q5_1) == 24, "block_q5_1 size");
KINFER_STATIC_ASSERT(sizeof(block_q8_0) == 34, "block_q8_0 size");
KINFER_STATIC_ASSERT(sizeof(block_q8_1) == 36, "block_q8_1 size");
KINFER_STATIC_ASSERT(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");
KINFER_STATIC_ASSERT(sizeof(block_q2_K) == 84, "block_q2_K size");
KINFER_STATIC_ASSERT(sizeof(block_q3_K) == 110, "block_q3_K size");
KINFER_STATIC_ASSERT(sizeof(block_q4_K) == 144, "block_q4_K size");
KINFER_STATIC_ASSERT(sizeof(block_q5_K) == 176, "block_q5_K size");
KINFER_STATIC_ASSERT(sizeof(block_q6_K) == 210, "block_q6_K size");
KINFER_STATIC_ASSERT(sizeof(block_q8_K) == 292, "block_q8_K size");
KINFER_STATIC_ASSERT(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");

/* The 16 levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl). */
extern const int8_t kinfer_iq4nl_values[16];

/* ------------------------------------------------- half / bfloat16 */

static inline uint32_t kinfer_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float kinfer_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Exact: every half is a float. */
static inline float kinfer_fp16_to_fp32(kinfer_fp16 h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        const float v = (float)mant * 5.9604644775390625e-8f;
        return kinfer_bits_f32(kinfer_f32_bits(v) | sign);
    }
    if (exp == 31)
        return kinfer_bits_f32(sign | 0x7f800000u | (mant << 13));
    return kinfer_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* Round to nearest even, as F16C and numpy do; overflow goes to inf,
 * NaN stays NaN (quiet). */
static inline kinfer_fp16 kinfer_fp32_to_fp16(float f)
{
    const uint32_t x = kinfer_f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        /* result is subnormal or zero: adding 0.5f lines the half's
         * 2^-24 step up with the float's last mantissa bit, so the FPU's
         * own round-to-nearest-even does the rounding */
        const float t = kinfer_bits_f32(ax) + 0.5f;
        return (uint16_t)(sign | (uint16_t)(kinfer_f32_bits(t) - 0x3f000000u));
    }
    /* normal: rebias exponent (127 -> 15) and round the 13 dropped bits */
    ax += 0xc8000fffu + ((ax >> 13) & 1u);
    return (uint16_t)(sign | (uint16_t)(ax >> 13));
}

static inline float kinfer_bf16_to_fp32(kinfer_bf16 b)
{
    return kinfer_bits_f32((uint32_t)b << 16);
}

/* Round to nearest even; NaN is kept quiet (as ggml does). */
static inline kinfer_bf16 kinfer_fp32_to_bf16(float f)
{
    const uint32_t x = kinfer_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (kinfer_bf16)((x >> 16) | 64u);
    return (kinfer_bf16)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

/* ------------------------------------------------------- type traits */

/* What a tensor type is, as data only: the CPU kernels of a type are
 * chosen in kernels/cpu/dispatch.c, the CUDA ones in kernels/cuda/. */
typedef struct kinfer_type_traits {
    const char *name;   /* "Q4_K" */
    int64_t blck_size;  /* elements per block */
    size_t type_size;   /* bytes per block */
    int vec_dot_type;   /* kinfer_type the activation must be in for a dot
                         * product with a row of this type; -1: none */
} kinfer_type_traits;

/* Traits of a GGUF type number, or NULL when the number names no type whose
 * layout we know (removed or future types). */
const kinfer_type_traits *kinfer_type_traits_get(int type);

/* Bytes of a row of n elements of type, or 0 when the type is unknown or n
 * is not a multiple of its block size. */
size_t kinfer_row_size(int type, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* KINFER_QUANT_H */
