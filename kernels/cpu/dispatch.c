/*
 * dispatch.c — the CPU kernel tables (isa.h), one per ISA level, built
 * once; the level this CPU has is chosen then, and every getter of a kernel
 * and every checked entry point reads that one table.  This is the only
 * file that knows the ISA files (through their fill functions).
 */
#include <pthread.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "cpu/isa.h"

#if defined(__x86_64__)
/* clang's __builtin_cpu_supports does not know "f16c": ask CPUID
 * (leaf 1, ECX bit 29). */
static bool cpu_has_f16c(void)
{
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return false;
    return (ecx >> 29) & 1u;
}

static bool cpu_has_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
}

static bool cpu_has_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
}
#endif

/* Fill the table of a level (already a copy of the level below) with the
 * kernels of its files; false when this CPU (or build) lacks the level. */
static bool fill_level(int level, kinfer_cpu_table *t)
{
    switch (level) {
    case KINFER_CPU_SCALAR:
        kinfer_scalar_fill(t);
        return true;
#if defined(__x86_64__)
    case KINFER_CPU_AVX2:
        if (!cpu_has_avx2())
            return false;
        kinfer_avx2_fill_types(t);
        kinfer_avx2_fill_attn(t);
        return true;
    case KINFER_CPU_AVX512:
        if (!cpu_has_avx512())
            return false;
        kinfer_avx512_fill_types(t);
        kinfer_avx512_fill_gemm(t);
        kinfer_avx512_fill_attn(t);
        kinfer_avx512_fill_attn_order(t);
        kinfer_avx512_fill_ops(t);
        kinfer_avx512_fill_fa(t);
        return true;
#endif
    default:
        return false;
    }
}

static kinfer_cpu_table tables[KINFER_CPU_LEVEL_COUNT];
static bool level_ok[KINFER_CPU_LEVEL_COUNT];
static kinfer_cpu_level best_level = KINFER_CPU_SCALAR;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* Tables are written here, once, before any reader can see them
 * (pthread_once orders it); afterwards they are read-only.  A level is
 * only tried when the one below it is supported. */
static void build_tables(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
#endif
    for (int l = 0; l < KINFER_CPU_LEVEL_COUNT; l++) {
        if (l > 0)
            tables[l] = tables[l - 1];
        if (!fill_level(l, &tables[l]))
            break;
        level_ok[l] = true;
        best_level = (kinfer_cpu_level)l;
    }
}

/* Chosen once at start (as the library loads), so no kernel call pays for
 * the choice; the getters' pthread_once covers a caller that runs before
 * this (another library's constructor). */
__attribute__((constructor)) static void choose_at_start(void)
{
    pthread_once(&tables_once, build_tables);
}

/* The table of the level this CPU has. */
static const kinfer_cpu_table *best_table(void)
{
    pthread_once(&tables_once, build_tables);
    return &tables[best_level];
}

/* The table of a level, or NULL when the CPU (or build) lacks it. */
static const kinfer_cpu_table *table_at(int level)
{
    pthread_once(&tables_once, build_tables);
    if (level < 0 || level >= KINFER_CPU_LEVEL_COUNT || !level_ok[level])
        return NULL;
    return &tables[level];
}

static bool type_ok(int type)
{
    return type >= 0 && type < KINFER_TYPE_COUNT;
}

kinfer_cpu_level kinfer_cpu_best_level(void)
{
    pthread_once(&tables_once, build_tables);
    return best_level;
}

const char *kinfer_cpu_level_name(kinfer_cpu_level level)
{
    switch (level) {
    case KINFER_CPU_SCALAR: return "scalar";
    case KINFER_CPU_AVX2: return "avx2";
    case KINFER_CPU_AVX512: return "avx512";
    default: return "unknown";
    }
}

/* ------------------------------------------------------ per-type kernels */

const kinfer_cpu_kernels *kinfer_cpu_kernels_at(int type, kinfer_cpu_level level)
{
    const kinfer_cpu_table *t = table_at((int)level);
    if (t == NULL || !type_ok(type) || t->types[type].to_float == NULL)
        return NULL;
    return &t->types[type];
}

const kinfer_cpu_kernels *kinfer_cpu_kernels_get(int type)
{
    return kinfer_cpu_kernels_at(type, kinfer_cpu_best_level());
}

const kinfer_cpu_kernels *kinfer_cpu_ref_kernels(int type)
{
    return kinfer_cpu_kernels_at(type, KINFER_CPU_SCALAR);
}

/* --------------------------------------------------------------- gemm */

kinfer_gemm_kernels kinfer_gemm_get(int type)
{
    return type_ok(type) ? best_table()->gemm[type] : (kinfer_gemm_kernels){0};
}

kinfer_gemm_fn kinfer_gemm_get_tiled(int type)
{
    return type_ok(type) ? best_table()->gemm_tiled[type] : NULL;
}

kinfer_gemm_decode_fn kinfer_gemm_get_tiled_decode(int type)
{
    return type_ok(type) ? best_table()->gemm_tiled_decode[type] : NULL;
}

int kinfer_gemm_groups_tokens(int type)
{
    return type == KINFER_TYPE_Q4_K;
}

kinfer_gemm_kernels kinfer_gemm_get_mmid(int type)
{
    return type_ok(type) && kinfer_gemm_groups_tokens(type) ? best_table()->gemm_mmid[type]
                                                            : (kinfer_gemm_kernels){0};
}

kinfer_gemm_kernels kinfer_gemm_get_repacked(int type)
{
    return type_ok(type) ? best_table()->gemm_repacked[type] : (kinfer_gemm_kernels){0};
}

/* ---------------------------------------------------------- attention */

/* Index of a KINFER_F16_ORDER_* value (anything else reads as VEC). */
static int order_index(int order)
{
    return order == KINFER_F16_ORDER_GEMM ? KINFER_F16_ORDER_GEMM : KINFER_F16_ORDER_VEC;
}

/* llama.cpp's summation orders apply to an F16 cache whose heads are whole
 * 16-lane vectors, where the level has kernels for them */
static bool f16_ordered(int type, int64_t n)
{
    return type == KINFER_TYPE_F16 && n % 16 == 0;
}

kinfer_attn_wsum_fn kinfer_attn_wsum_at(int type, int level)
{
    const kinfer_cpu_table *t = table_at(level);
    return t != NULL && type_ok(type) ? t->attn_wsum[type] : NULL;
}

kinfer_attn_wsum_fn kinfer_attn_wsum_get(int type, int64_t n, int order)
{
    const kinfer_cpu_table *t = best_table();
    if (f16_ordered(type, n) && t->attn_wsum_f16_ordered[order_index(order)] != NULL)
        return t->attn_wsum_f16_ordered[order_index(order)];
    return type_ok(type) ? t->attn_wsum[type] : NULL;
}

kinfer_attn_scores_fn kinfer_attn_scores_get(int type, int64_t n, int order)
{
    const kinfer_cpu_table *t = best_table();
    if (f16_ordered(type, n) && t->attn_scores_f16_ordered[order_index(order)] != NULL)
        return t->attn_scores_f16_ordered[order_index(order)];
    if (!type_ok(type) || n <= 0 || n % 16 != 0 || n > t->attn_scores_max_n)
        return NULL;
    return t->attn_scores[type];
}

void kinfer_attn_softmax(float *x, int64_t n)
{
    best_table()->attn_softmax(x, n);
}

void kinfer_attn_round_fp16(float *x, int64_t n)
{
    best_table()->attn_round_fp16(x, n);
}

const kinfer_fa_kernels *kinfer_fa_kernels_get(void)
{
    return &best_table()->fa;
}

const kinfer_fa_kernels *kinfer_fa_kernels_at(int level)
{
    const kinfer_cpu_table *t = table_at(level);
    return t != NULL ? &t->fa : NULL;
}

/* -------------------------------------------------------- elementwise */

void kinfer_silu_gate(float *out, const float *g, const float *u, int64_t n)
{
    best_table()->silu_gate(out, g, u, n);
}

void kinfer_moe_router(const float *w, int64_t n_expert, int64_t n_cols, const float *x,
                       int64_t n_tokens, float *probs)
{
    best_table()->moe_router(w, n_expert, n_cols, x, n_tokens, probs);
}

/* ------------------------------------------------- checked entry points */

static kinfer_status check_row(int type, int64_t n, const void *p1, const void *p2)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    if (tt == NULL)
        return KINFER_E_UNSUPPORTED;
    if (n < 0 || n % tt->blck_size != 0)
        return KINFER_E_INVALID_ARG;
    if (n > 0 && (p1 == NULL || p2 == NULL))
        return KINFER_E_INVALID_ARG;
    return KINFER_OK;
}

kinfer_status kinfer_dequantize_row(int type, const void *src, float *dst, int64_t n)
{
    const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
    if (k == NULL || k->to_float == NULL)
        return KINFER_E_UNSUPPORTED;
    kinfer_status st = check_row(type, n, src, dst);
    if (st != KINFER_OK)
        return st;
    k->to_float(src, dst, n);
    return KINFER_OK;
}

kinfer_status kinfer_quantize_row(int type, const float *src, void *dst, int64_t n)
{
    const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
    if (k == NULL || k->from_float == NULL)
        return KINFER_E_UNSUPPORTED;
    kinfer_status st = check_row(type, n, src, dst);
    if (st != KINFER_OK)
        return st;
    k->from_float(src, dst, n);
    return KINFER_OK;
}

kinfer_status kinfer_quantize_act_row(int type, const float *src, void *dst, int64_t n)
{
    const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
    if (k == NULL || k->from_float_act == NULL)
        return KINFER_E_UNSUPPORTED;
    kinfer_status st = check_row(type, n, src, dst);
    if (st != KINFER_OK)
        return st;
    k->from_float_act(src, dst, n);
    return KINFER_OK;
}

kinfer_status kinfer_vec_dot(int type, int64_t n, const void *w, const void *a, float *out)
{
    const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
    if (k == NULL || k->vec_dot == NULL)
        return KINFER_E_UNSUPPORTED;
    kinfer_status st = check_row(type, n, w, a);
    if (st != KINFER_OK)
        return st;
    /* the activation type must share the weight's block size */
    const kinfer_type_traits *at = kinfer_type_traits_get(k->vec_dot_type);
    if (at == NULL || n % at->blck_size != 0 || out == NULL)
        return KINFER_E_INVALID_ARG;
    *out = k->vec_dot(n, w, a);
    return KINFER_OK;
}

kinfer_status kinfer_get_rows(int type, const void *table, int64_t n_rows_table, int64_t n_cols,
                              const int32_t *ids, int64_t n_ids, float *out)
{
    const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
    if (k == NULL || k->to_float == NULL)
        return KINFER_E_UNSUPPORTED;
    const size_t row_bytes = kinfer_row_size(type, n_cols);
    if (n_cols < 0 || n_ids < 0 || n_rows_table < 0 || (row_bytes == 0 && n_cols > 0))
        return KINFER_E_INVALID_ARG;
    if (n_ids > 0 && n_cols > 0 && (table == NULL || ids == NULL || out == NULL))
        return KINFER_E_INVALID_ARG;
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= n_rows_table)
            return KINFER_E_INVALID_ARG;
    for (int64_t i = 0; i < n_ids; i++)
        k->to_float((const uint8_t *)table + (size_t)ids[i] * row_bytes, out + i * n_cols, n_cols);
    return KINFER_OK;
}
