/*
 * ref.h — scalar reference kernels for every tensor type (internal).
 *
 * These are the ground truth the SIMD and CUDA kernels are tested against,
 * and the fallback on CPUs without a SIMD variant.  They assume n is a
 * multiple of the type's block size: callers check (see kernels.h).
 */
#ifndef KINFER_CPU_REF_H
#define KINFER_CPU_REF_H

#include <stdint.h>

#include "quant.h"

/* Round to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int). */
static inline int kinfer_nearest_int(float x)
{
    const float v = x + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

#define KINFER_REF_TYPE_FNS(t)                                                   \
    void kinfer_ref_to_float_##t(const void *src, float *dst, int64_t n);       \
    void kinfer_ref_from_float_##t(const float *src, void *dst, int64_t n);

KINFER_REF_TYPE_FNS(f32)
KINFER_REF_TYPE_FNS(f16)
KINFER_REF_TYPE_FNS(bf16)
KINFER_REF_TYPE_FNS(q4_0)
KINFER_REF_TYPE_FNS(q4_1)
KINFER_REF_TYPE_FNS(q5_0)
KINFER_REF_TYPE_FNS(q5_1)
KINFER_REF_TYPE_FNS(q8_0)
KINFER_REF_TYPE_FNS(q8_1)
/* Q8_0 / Q8_1 activation quantizers as ggml's CPU backend runs them before
 * a dot product (scale by 127/amax, ties to even), which the reference
 * quantizers above (1/d, ties away from zero) are not. */
void kinfer_act_from_float_q8_0(const float *src, void *dst, int64_t n);
void kinfer_act_from_float_q8_1(const float *src, void *dst, int64_t n);
KINFER_REF_TYPE_FNS(iq4_nl)
KINFER_REF_TYPE_FNS(q2_K)
KINFER_REF_TYPE_FNS(q3_K)
KINFER_REF_TYPE_FNS(q4_K)
KINFER_REF_TYPE_FNS(q5_K)
KINFER_REF_TYPE_FNS(q6_K)
KINFER_REF_TYPE_FNS(q8_K)
KINFER_REF_TYPE_FNS(iq4_xs)

#undef KINFER_REF_TYPE_FNS

/* Dot of a weight row (first type) with an activation row (second type). */
float kinfer_ref_vec_dot_f32(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_f16(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_bf16(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_iq4_nl_q8_0(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a);
float kinfer_ref_vec_dot_iq4_xs_q8_K(int64_t n, const void *w, const void *a);

/* Unpack helpers shared by the reference and SIMD K-quant code. */

/* Scale and min of sub-block j (0..7) of a Q4_K/Q5_K block. */
static inline void kinfer_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* The 16 signed scales (already minus 32) of a Q3_K block. */
static inline void kinfer_q3k_scales(const uint8_t *packed, int8_t *out)
{
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
        const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* Scale (minus 32) of sub-block ib (0..7) of an IQ4_XS block. */
static inline int kinfer_iq4xs_scale(const block_iq4_xs *b, int ib)
{
    const int lo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
    const int hi = (b->scales_h >> (2 * ib)) & 3;
    return (lo | (hi << 4)) - 32;
}

#endif /* KINFER_CPU_REF_H */
