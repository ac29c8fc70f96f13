/*
 * isa.h — the CPU kernel table: one per ISA level, every kernel that
 * differs by instruction set (internal to kernels/cpu).
 *
 * dispatch.c builds the tables once, level by level: each starts as a copy
 * of the level below and the fill functions of its files overwrite what
 * they have faster kernels for, so every table is complete.  The level this
 * CPU has is chosen then, and every getter (kinfer_cpu_kernels_get, the
 * gemm and attention getters, kinfer_silu_gate) reads that one table.
 *
 * Each SIMD file is compiled with its own -m flags and only ever called
 * after the CPU was checked for them; it knows this header, not dispatch.c.
 */
#ifndef KINFER_CPU_ISA_H
#define KINFER_CPU_ISA_H

#include "cpu/attn_kernels.h"
#include "cpu/flash_attn.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"

typedef struct kinfer_cpu_table {
    /* per tensor type: dequantize, quantize, dot products */
    kinfer_cpu_kernels types[KINFER_TYPE_COUNT];

    /* per weight type, the batched prompt-matmul kernels (gemm.h): the
     * default ones, llama.cpp's tiled one for many tokens, and those of a
     * matrix llama.cpp repacks (all NULL: none at this level) */
    kinfer_gemm_kernels gemm[KINFER_TYPE_COUNT];
    kinfer_gemm_fn gemm_tiled[KINFER_TYPE_COUNT];
    kinfer_gemm_decode_fn gemm_tiled_decode[KINFER_TYPE_COUNT]; /* or NULL: gemm_tiled takes the weight rows */
    kinfer_gemm_kernels gemm_repacked[KINFER_TYPE_COUNT];
    /* those of mul_mat_id where its order is not gemm's (gemm.h
     * kinfer_gemm_get_mmid) */
    kinfer_gemm_kernels gemm_mmid[KINFER_TYPE_COUNT];

    /* per KV cache type, attention over the cache (attn_kernels.h) */
    kinfer_attn_wsum_fn attn_wsum[KINFER_TYPE_COUNT];
    /* scores of a K type, for head sizes that are a multiple of 16 up to
     * attn_scores_max_n; NULL: use vec_dot */
    kinfer_attn_scores_fn attn_scores[KINFER_TYPE_COUNT];
    int64_t attn_scores_max_n;
    /* an F16 cache with a head size that is a multiple of 16, in
     * llama.cpp's summation orders, indexed by KINFER_F16_ORDER_*; NULL
     * where this level has no such kernels */
    kinfer_attn_wsum_fn attn_wsum_f16_ordered[2];
    kinfer_attn_scores_fn attn_scores_f16_ordered[2];
    void (*attn_softmax)(float *x, int64_t n);
    void (*attn_round_fp16)(float *x, int64_t n);
    /* flash attention's vector pieces (flash_attn.h) */
    kinfer_fa_kernels fa;

    /* elementwise kernels whose rounding follows ggml's code for the ISA */
    kinfer_gate_fn silu_gate;
    /* kinfer_moe_router (kernels.h) */
    void (*moe_router)(const float *w, int64_t n_expert, int64_t n_cols, const float *x,
                       int64_t n_tokens, float *probs);
} kinfer_cpu_table;

/* The scalar level (scalar.c): the reference kernels of ref.c and
 * ref_kquants.c, scalar attention and elementwise kernels. */
void kinfer_scalar_fill(kinfer_cpu_table *table);

#if defined(__x86_64__)
/* One per file of kernels/cpu/x86/, named for it. */
void kinfer_avx2_fill_types(kinfer_cpu_table *table);       /* kernels_avx2.c */
void kinfer_avx2_fill_attn(kinfer_cpu_table *table);        /* attn_avx2.c */
void kinfer_avx512_fill_types(kinfer_cpu_table *table);     /* kernels_avx512.c */
void kinfer_avx512_fill_gemm(kinfer_cpu_table *table);      /* gemm_avx512.c */
void kinfer_avx512_fill_attn(kinfer_cpu_table *table);      /* attn_avx512.c */
void kinfer_avx512_fill_attn_order(kinfer_cpu_table *table); /* attn_order_avx512.c */
void kinfer_avx512_fill_ops(kinfer_cpu_table *table);       /* ops_avx512.c */
void kinfer_avx512_fill_fa(kinfer_cpu_table *table);        /* flash_attn_avx512.c */
#endif

#endif /* KINFER_CPU_ISA_H */
