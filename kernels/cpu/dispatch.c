/*
 * dispatch.c — pick kernel variants by CPU features, once, and the checked
 * entry points over them.
 */
#include <pthread.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "cpu/kernels.h"
#include "cpu/ref.h"
#include "cpu/simd.h"

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
#endif

static kinfer_cpu_kernels tables[KINFER_CPU_LEVEL_COUNT][KINFER_TYPE_COUNT];
static bool level_ok[KINFER_CPU_LEVEL_COUNT];
static kinfer_cpu_level best_level = KINFER_CPU_SCALAR;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* Tables are written here, once, before any reader can see them
 * (pthread_once orders it); afterwards they are read-only. */
static void build_tables(void)
{
    for (int t = 0; t < KINFER_TYPE_COUNT; t++) {
        const kinfer_type_traits *tt = kinfer_type_traits_get(t);
        if (tt == NULL || tt->to_float == NULL)
            continue;
        tables[KINFER_CPU_SCALAR][t] = (kinfer_cpu_kernels){
            tt->to_float, tt->from_float, tt->vec_dot, tt->vec_dot_type, NULL, tt->from_float, NULL, NULL};
    }
    tables[KINFER_CPU_SCALAR][KINFER_TYPE_Q8_0].from_float_act = kinfer_act_from_float_q8_0;
    tables[KINFER_CPU_SCALAR][KINFER_TYPE_Q8_1].from_float_act = kinfer_act_from_float_q8_1;
    level_ok[KINFER_CPU_SCALAR] = true;
    for (int l = 1; l < KINFER_CPU_LEVEL_COUNT; l++)
        for (int t = 0; t < KINFER_TYPE_COUNT; t++)
            tables[l][t] = tables[l - 1][t];
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        cpu_has_f16c()) {
        kinfer_avx2_fill(tables[KINFER_CPU_AVX2]);
        level_ok[KINFER_CPU_AVX2] = true;
        best_level = KINFER_CPU_AVX2;
        for (int t = 0; t < KINFER_TYPE_COUNT; t++)
            tables[KINFER_CPU_AVX512][t] = tables[KINFER_CPU_AVX2][t];
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vnni")) {
            kinfer_avx512_fill(tables[KINFER_CPU_AVX512]);
            level_ok[KINFER_CPU_AVX512] = true;
            best_level = KINFER_CPU_AVX512;
        }
    }
#endif
}

static void init_tables(void)
{
    pthread_once(&tables_once, build_tables);
}

const kinfer_cpu_kernels *kinfer_cpu_kernels_at(int type, kinfer_cpu_level level)
{
    if (type < 0 || type >= KINFER_TYPE_COUNT || (int)level < 0 || level >= KINFER_CPU_LEVEL_COUNT)
        return NULL;
    init_tables();
    if (!level_ok[level] || tables[level][type].to_float == NULL)
        return NULL;
    return &tables[level][type];
}

const kinfer_cpu_kernels *kinfer_cpu_kernels_get(int type)
{
    init_tables();
    return kinfer_cpu_kernels_at(type, best_level);
}

kinfer_cpu_level kinfer_cpu_best_level(void)
{
    init_tables();
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
