/*
 * flash_attn.h — the vector pieces of flash attention (internal).
 *
 * lib/backend/cpu_attn.c runs llama.cpp's flash-attention recipe
 * (ggml_compute_forward_flash_attn_ext) out of these: an online softmax
 * whose value accumulator is F16 (one key at a time) or F32 (tiles of 64
 * keys).  Each kernel rounds exactly as ggml's CPU code does, element by
 * element, so the getters' SIMD variants give the reference's bits, except
 * exp_sum, whose AVX-512 exp is ggml_v_expf (the scalar one is expf).
 */
#ifndef KINFER_CPU_FLASH_ATTN_H
#define KINFER_CPU_FLASH_ATTN_H

#include <stdint.h>

#include "quant.h"

typedef struct kinfer_fa_kernels {
    /* acc[i] = fp16(fma(v[i], w, acc[i])), as ggml_vec_mad_f16 */
    void (*mad_f16)(int64_t n, kinfer_fp16 *acc, const kinfer_fp16 *v, float w);
    /* acc[i] = fp16(acc[i] * s), as ggml_vec_scale_f16 */
    void (*scale_f16)(int64_t n, kinfer_fp16 *acc, float s);
    /* acc[i] = fma(v[i], w, acc[i]), as ggml_vec_mad_f32 */
    void (*mad_f32)(int64_t n, float *acc, const float *v, float w);
    /* c (m, n) += a (m, k) times b (k, n), rows contiguous: every element
     * a chain of fused multiply-adds over k in order, as ggml's simd_gemm */
    void (*gemm_f32)(float *c, const float *a, const float *b, int m, int k, int n);
    /* x[i] = e^(x[i] - max); returns their sum, in chunks of 16 summed in
     * float and added in double, as ggml_vec_soft_max_f32 */
    double (*exp_sum)(float *x, int64_t n, float max);
    /* x[i] *= s, as ggml_vec_scale_f32 */
    void (*scale_f32)(int64_t n, float *x, float s);
    /* x[i] = x[i] * s where bit i of seen is set, else -inf (n <= 64);
     * returns the max: a tile row of scores scaled and masked */
    float (*mask_max)(float *x, int n, uint64_t seen, float s);
    /* kt[d * 64 + r] = rows[r][d] (r < 64, d < hd): a tile of F16 keys as
     * F32, transposed so that the keys are the columns */
    void (*pack_kt)(float *kt, const kinfer_fp16 *const *rows, int hd);
} kinfer_fa_kernels;

/* The kernels at the best level this CPU has. */
const kinfer_fa_kernels *kinfer_fa_kernels_get(void);

/* At a given kinfer_cpu_level, or NULL when the CPU lacks it.  For tests. */
const kinfer_fa_kernels *kinfer_fa_kernels_at(int level);

/* The scalar references (ref.c). */
void kinfer_ref_fa_mad_f16(int64_t n, kinfer_fp16 *acc, const kinfer_fp16 *v, float w);
void kinfer_ref_fa_scale_f16(int64_t n, kinfer_fp16 *acc, float s);
void kinfer_ref_fa_mad_f32(int64_t n, float *acc, const float *v, float w);
void kinfer_ref_fa_gemm_f32(float *c, const float *a, const float *b, int m, int k, int n);
double kinfer_ref_fa_exp_sum(float *x, int64_t n, float max);
void kinfer_ref_fa_scale_f32(int64_t n, float *x, float s);
float kinfer_ref_fa_mask_max(float *x, int n, uint64_t seen, float s);
void kinfer_ref_fa_pack_kt(float *kt, const kinfer_fp16 *const *rows, int hd);

#endif /* KINFER_CPU_FLASH_ATTN_H */
