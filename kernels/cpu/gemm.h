/*
 * gemm.h — batched quantized dot products for prompt matmuls (internal).
 *
 * vec_dot_x4 decodes a weight row once per 4 tokens but gathers every
 * activation block's scale and bytes from the Q8 blocks again for every
 * weight row.  Here the activation rows of a matmul are first repacked once
 * (quant bytes contiguous, scales as floats), and each weight block is
 * decoded once for up to KINFER_GEMM_MAX_NT tokens.  The 32-element block
 * types go further: the tokens are packed in groups of KINFER_GEMM_MAX_NT,
 * interleaved block by block (pack_group), so that one load gives a token
 * pair's quants and one the scales of the whole group, and the weight rows
 * are decoded once per matmul (decode, a row chunk at a time); the K-quants
 * pack row by row (pack) and decode inside the gemm.
 *
 * Every result is bit for bit the type's vec_dot at the same CPU level (the
 * same integer lane sums, float products and summation order), so a token's
 * output does not depend on the batch it came in.  tests/test_quant.c holds
 * each kernel to that.
 */
#ifndef KINFER_CPU_GEMM_H
#define KINFER_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

#define KINFER_GEMM_MAX_NT 8

/* One activation row (n elements in the weight type's vec_dot_type, as
 * from_float_act wrote it) -> the packed layout, kinfer_gemm_packed_size(n)
 * bytes at out. */
typedef void (*kinfer_gemm_pack_fn)(int64_t n, const void *act, uint8_t *out);

/* Activation rows act + t * act_stride, t < nt (1 .. MAX_NT) -> one packed
 * group of MAX_NT tokens (the slots from nt on zeroed) at out, MAX_NT *
 * kinfer_gemm_packed_size(n) bytes at most. */
typedef void (*kinfer_gemm_pack_group_fn)(int64_t n, const void *act, size_t act_stride, int nt,
                                          uint8_t *out);

/* out[i + t * out_stride] = vec_dot(n, weight row i, token t), for weight
 * rows w + i * w_stride, i < nr, and tokens t < nt (1 .. MAX_NT): with
 * pack, token t's packed row at a + t * a_stride; with pack_group, a is
 * one packed group (a_stride unused). */
typedef void (*kinfer_gemm_fn)(int64_t n, const void *w, size_t w_stride, int nr, const uint8_t *a,
                               size_t a_stride, int nt, float *out, size_t out_stride);

/* Weight rows w + i * w_stride, i < nr -> decoded rows at out,
 * kinfer_gemm_decoded_row_size(n) bytes apart (quants as unsigned bytes,
 * scales as floats), which the gemm then takes instead of the weight rows:
 * a row chunk is decoded once for all the token groups that visit it. */
typedef void (*kinfer_gemm_decode_fn)(int64_t n, const void *w, size_t w_stride, int nr, uint8_t *out);

/* gemm and one of pack, pack_group; decode (or NULL: the gemm takes the
 * weight rows); row_group: the rows the gemm takes in one pass, one per
 * vector lane (0: four at a time), so row chunks should be multiples of it
 * (a short group leaves lanes idle) */
typedef struct kinfer_gemm_kernels {
    kinfer_gemm_pack_fn pack;
    kinfer_gemm_fn gemm;
    kinfer_gemm_pack_group_fn pack_group;
    kinfer_gemm_decode_fn decode;
    int row_group;
} kinfer_gemm_kernels;

/* Kernels for a weight type at the best level this CPU has, or all NULL
 * when there are none (then use vec_dot / vec_dot_x4).  The getters here
 * read the CPU's kernel table (isa.h, dispatch.c). */
kinfer_gemm_kernels kinfer_gemm_get(int type);

/* Bytes of one packed activation row of n elements (a multiple of 64); a
 * packed group of MAX_NT tokens takes at most MAX_NT times as many. */
static inline size_t kinfer_gemm_packed_size(int64_t n)
{
    /* per token and 32-element block: 32 quant bytes, 8 int32 lane
     * corrections and a float (the 32-element types' groups), or 32 quant
     * bytes and two floats (Q8_1); K-quants: 256 bytes and a 64-byte record
     * per 256 elements */
    const size_t nb = (size_t)(n > 0 ? n : 0) / 32;
    return (nb * (32 + 32 + 4) + 63) & ~(size_t)63;
}

/* Bytes of one decoded weight row of n elements (a multiple of 64). */
static inline size_t kinfer_gemm_decoded_row_size(int64_t n)
{
    /* per 32-element block 32 quant bytes, d and m */
    const size_t nb = (size_t)(n > 0 ? n : 0) / 32;
    return (nb * (32 + 8) + 63) & ~(size_t)63;
}

/*
 * llama.cpp sums some types differently for a matmul of many tokens, so
 * kinfer does too (the batch size then matters, as in llama.cpp):
 * - a matmul of KINFER_GEMM_TILED_MIN_TOKENS tokens or more uses
 *   kinfer_gemm_get_tiled(type) instead of gemm when it is not NULL (Q5_K,
 *   Q6_K: llama.cpp's tiled kernel);
 * - Q4_K's gemm sums tokens 0 .. nt - nt % 4 - 1 of a call in groups of four
 *   in llama.cpp's repacked-gemm order, the rest in its gemv order (= the
 *   vec_dot): the matmul must call it with token groups starting at
 *   multiples of 4 and a partial group only at the end of the batch.
 */
#define KINFER_GEMM_TILED_MIN_TOKENS 8
kinfer_gemm_fn kinfer_gemm_get_tiled(int type);
/* The decoder of the tiled kernel's rows (Q6_K: decoded once per row
 * chunk, not per token group), or NULL where it takes the weight rows. */
kinfer_gemm_decode_fn kinfer_gemm_get_tiled_decode(int type);

/* Nonzero for Q4_K, whose gemm sums groups of four tokens in the order of
 * llama.cpp's repacked gemm; its mul_mat_id takes every token alone (the
 * repacked gemv, = vec_dot), while the tiled kernels serve both ops. */
int kinfer_gemm_groups_tokens(int type);

/* For a type that groups tokens: kernels in its mul_mat_id order (every
 * token in the gemv order, = vec_dot, however many share the call), so an
 * expert's weights are still decoded once per token group; all NULL where
 * this CPU level has none (then one token at a time). */
kinfer_gemm_kernels kinfer_gemm_get_mmid(int type);

/*
 * Kernels for a weight matrix that llama.cpp repacks (x86 Q4_0 of a
 * multiple of 8 rows: the type's kinfer_cpu_kernels.repacked is set), or
 * all NULL.  Their decoded rows go in groups of KINFER_GEMM_REPACKED_ROWS
 * (the last one shorter, row_group): decode and gemm must be given the same
 * rows.
 */
#define KINFER_GEMM_REPACKED_ROWS 16
kinfer_gemm_kernels kinfer_gemm_get_repacked(int type);

#endif /* KINFER_CPU_GEMM_H */
