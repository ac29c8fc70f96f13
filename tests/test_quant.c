/*
 * test_quant.c — quantized types and matmul: our reference kernels against
 * fixtures from the gguf package's numpy code (bit for bit where the
 * algorithm is the same), round-trip error bounds, dot products against
 * dequantize-then-dot, every SIMD level against the reference, multithreaded
 * matmul against single-threaded, and errors for bad arguments.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/blas_dl.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/ref.h"
#include "quant.h"
#include "testutil.h"
#include "core/threadpool.h"

#undef I /* OpenBLAS's cblas.h includes complex.h; the llama.cpp ports name sums I */

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64: fixed seed per test, same numbers on every machine */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float rng_uniform(void)
{
    return (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}

static float rng_gauss(void)
{
    const double u1 = ((rng_next() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    const double u2 = (rng_next() >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void fill_gauss(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_gauss() * scale;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Weight types with kernels, and the activation types. */
static const int weight_types[] = {
    KINFER_TYPE_F32, KINFER_TYPE_F16, KINFER_TYPE_BF16, KINFER_TYPE_Q4_0, KINFER_TYPE_Q4_1,
    KINFER_TYPE_Q5_0, KINFER_TYPE_Q5_1, KINFER_TYPE_Q8_0, KINFER_TYPE_IQ4_NL, KINFER_TYPE_Q2_K,
    KINFER_TYPE_Q3_K, KINFER_TYPE_Q4_K, KINFER_TYPE_Q5_K, KINFER_TYPE_Q6_K, KINFER_TYPE_IQ4_XS,
};
#define N_WEIGHT_TYPES (int)(sizeof weight_types / sizeof weight_types[0])

static int64_t blck(int type)
{
    return kinfer_type_traits_get(type)->blck_size;
}

/* Offsets of the fp16 scale fields in a block, -1 terminated; used to make
 * random blocks with sane scales. */
static const int *scale_fields(int type)
{
    static const int none[] = {-1};
    static const int at0[] = {0, -1};
    static const int at0_2[] = {0, 2, -1};
    static const int q2k[] = {80, 82, -1};
    static const int q3k[] = {108, -1};
    static const int q6k[] = {208, -1};
    switch (type) {
    case KINFER_TYPE_Q4_0: case KINFER_TYPE_Q5_0: case KINFER_TYPE_Q8_0: case KINFER_TYPE_IQ4_NL:
    case KINFER_TYPE_IQ4_XS:
        return at0;
    case KINFER_TYPE_Q4_1: case KINFER_TYPE_Q5_1: case KINFER_TYPE_Q4_K: case KINFER_TYPE_Q5_K:
        return at0_2;
    case KINFER_TYPE_Q2_K: return q2k;
    case KINFER_TYPE_Q3_K: return q3k;
    case KINFER_TYPE_Q6_K: return q6k;
    default: return none;
    }
}

/* A row of n elements of type made of random bytes (every bit pattern a
 * kernel may meet), scales kept finite and small. */
static void random_row(int type, void *dst, int64_t n)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    const int64_t nb = n / tt->blck_size;
    if (tt->blck_size == 1) {
        float *tmp = xmalloc((size_t)n * sizeof(float));
        fill_gauss(tmp, n, 1.0f);
        kinfer_cpu_ref_kernels(type)->from_float(tmp, dst, n);
        free(tmp);
        return;
    }
    uint8_t *p = dst;
    for (size_t i = 0; i < (size_t)nb * tt->type_size; i++)
        p[i] = (uint8_t)rng_next();
    for (int64_t b = 0; b < nb; b++) {
        for (const int *f = scale_fields(type); *f >= 0; f++) {
            const kinfer_fp16 h = kinfer_fp32_to_fp16((rng_uniform() - 0.3f) * 0.02f);
            memcpy(p + b * tt->type_size + *f, &h, 2);
        }
    }
}

static bool same_float_bits(float a, float b)
{
    if (isnan(a) && isnan(b))
        return true;
    return kinfer_f32_bits(a) == kinfer_f32_bits(b);
}

/* ------------------------------------------------------------ fixtures */

typedef struct fixture {
    uint32_t type, n, has_input, nbytes;
    float *input, *deq;
    uint8_t *q;
    unsigned char *raw;
} fixture;

static bool load_fixture(const char *name, fixture *fx)
{
    char path[512];
    const char *dir = getenv("KINFER_FIXTURES_DIR");
    snprintf(path, sizeof path, "%s/quant/%s.bin", dir && *dir ? dir : "tests/fixtures", name);
    size_t size = 0;
    unsigned char *raw = test_read_file(path, &size);
    ck_assert_msg(raw != NULL, "cannot read fixture %s (run from the repository root)", path);
    ck_assert_uint_ge(size, 24);
    ck_assert(memcmp(raw, "KQFX", 4) == 0);
    uint32_t hdr[5];
    memcpy(hdr, raw + 4, sizeof hdr);
    ck_assert_uint_eq(hdr[0], 1);
    fx->type = hdr[1];
    fx->n = hdr[2];
    fx->has_input = hdr[3];
    fx->nbytes = hdr[4];
    ck_assert_uint_eq(size, 24 + 8 * (size_t)fx->n + fx->nbytes);
    fx->raw = raw;
    fx->input = xmalloc((size_t)fx->n * sizeof(float));
    fx->deq = xmalloc((size_t)fx->n * sizeof(float));
    fx->q = raw + 24 + 4 * (size_t)fx->n;
    memcpy(fx->input, raw + 24, 4 * (size_t)fx->n);
    memcpy(fx->deq, raw + 24 + 4 * (size_t)fx->n + fx->nbytes, 4 * (size_t)fx->n);
    return true;
}

static void free_fixture(fixture *fx)
{
    free(fx->raw);
    free(fx->input);
    free(fx->deq);
}

static const char *fixture_names[] = {
    "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS",
};
#define N_FIXTURES (int)(sizeof fixture_names / sizeof fixture_names[0])

/* Dequantization is the same arithmetic as the package's: bit for bit, at
 * every SIMD level. */
START_TEST(test_fixture_dequantize)
{
    fixture fx;
    load_fixture(fixture_names[_i], &fx);
    const kinfer_type_traits *tt = kinfer_type_traits_get((int)fx.type);
    ck_assert_ptr_nonnull(tt);
    ck_assert_uint_eq(kinfer_row_size((int)fx.type, fx.n), fx.nbytes);
    float *out = xmalloc(fx.n * sizeof(float));
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_cpu_kernels *k = kinfer_cpu_kernels_at((int)fx.type, (kinfer_cpu_level)level);
        if (k == NULL)
            continue;
        memset(out, 0xAB, fx.n * sizeof(float));
        k->to_float(fx.q, out, fx.n);
        for (uint32_t i = 0; i < fx.n; i++)
            ck_assert_msg(same_float_bits(out[i], fx.deq[i]), "%s level %d element %u: %.9g vs %.9g",
                          tt->name, level, i, out[i], fx.deq[i]);
    }
    free(out);
    free_fixture(&fx);
}
END_TEST

/* Quantization where the package implements ggml's reference algorithm:
 * the same bytes. */
START_TEST(test_fixture_quantize)
{
    fixture fx;
    load_fixture(fixture_names[_i], &fx);
    if (!fx.has_input) {
        free_fixture(&fx);
        return;
    }
    const kinfer_type_traits *tt = kinfer_type_traits_get((int)fx.type);
    uint8_t *q = xmalloc(fx.nbytes);
    for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_cpu_kernels *k = kinfer_cpu_kernels_at((int)fx.type, (kinfer_cpu_level)level);
        if (k == NULL)
            continue;
        memset(q, 0xCD, fx.nbytes);
        k->from_float(fx.input, q, fx.n);
        for (uint32_t i = 0; i < fx.nbytes; i++)
            ck_assert_msg(q[i] == fx.q[i], "%s level %d byte %u: %02x vs %02x", tt->name, level, i,
                          q[i], fx.q[i]);
    }
    free(q);
    free_fixture(&fx);
}
END_TEST

/* ---------------------------------------------------------- round trip */

/* Relative RMS error bound of quantize -> dequantize on gaussian data,
 * about 1.5x what the type achieves (ggml's own test uses similar). */
static double roundtrip_bound(int type)
{
    switch (type) {
    case KINFER_TYPE_F32: return 0.0;
    case KINFER_TYPE_F16: return 4e-4;
    case KINFER_TYPE_BF16: return 3e-3;
    case KINFER_TYPE_Q8_0: return 6e-3;
    case KINFER_TYPE_Q5_0: case KINFER_TYPE_Q5_1: return 0.06;
    case KINFER_TYPE_Q4_0: case KINFER_TYPE_Q4_1: case KINFER_TYPE_IQ4_NL: return 0.13;
    case KINFER_TYPE_IQ4_XS: return 0.13;
    case KINFER_TYPE_Q2_K: return 0.45;
    case KINFER_TYPE_Q3_K: return 0.25;
    case KINFER_TYPE_Q4_K: return 0.12;
    case KINFER_TYPE_Q5_K: return 0.06;
    case KINFER_TYPE_Q6_K: return 0.03;
    default: return -1.0;
    }
}

START_TEST(test_roundtrip)
{
    const int type = weight_types[_i];
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    rng_state = 1000 + (uint64_t)type;
    const int64_t n = tt->blck_size == 1 ? 1000 : tt->blck_size * 33;
    float *x = xmalloc((size_t)n * sizeof(float));
    float *y = xmalloc((size_t)n * sizeof(float));
    void *q = xmalloc(kinfer_row_size(type, n));
    fill_gauss(x, n, 0.02f);
    ck_assert_int_eq(kinfer_quantize_row(type, x, q, n), KINFER_OK);
    ck_assert_int_eq(kinfer_dequantize_row(type, q, y, n), KINFER_OK);
    double err = 0.0, ref = 0.0;
    for (int64_t i = 0; i < n; i++) {
        err += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        ref += (double)x[i] * x[i];
    }
    const double rel = sqrt(err / ref);
    ck_assert_msg(rel <= roundtrip_bound(type), "%s: relative rms error %.4g > %.4g", tt->name, rel,
                  roundtrip_bound(type));
    /* the error must not be trivially zero for lossy types (catches a
     * quantizer that writes nothing and a test that compares a buffer
     * with itself) */
    if (type != KINFER_TYPE_F32)
        ck_assert_msg(rel > 0.0, "%s: no quantization error at all", tt->name);

    /* all-zero input stays exactly zero */
    memset(x, 0, (size_t)n * sizeof(float));
    ck_assert_int_eq(kinfer_quantize_row(type, x, q, n), KINFER_OK);
    ck_assert_int_eq(kinfer_dequantize_row(type, q, y, n), KINFER_OK);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(y[i] == 0.0f, "%s zero row: element %ld = %g", tt->name, (long)i, y[i]);
    free(x);
    free(y);
    free(q);
}
END_TEST

/* ---------------------------------------------------------- dot products */

/* Dequantize both sides and dot in double: what every vec_dot must match
 * up to float rounding of its scale products and partial sums. */
static double dequant_dot(int wtype, const void *w, int atype, const void *a, int64_t n, double *mag)
{
    float *fw = xmalloc((size_t)n * sizeof(float));
    float *fa = xmalloc((size_t)n * sizeof(float));
    kinfer_cpu_ref_kernels(wtype)->to_float(w, fw, n);
    kinfer_cpu_ref_kernels(atype)->to_float(a, fa, n);
    double s = 0.0, m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)fw[i] * fa[i];
        m += fabs((double)fw[i] * fa[i]);
    }
    free(fw);
    free(fa);
    *mag = m;
    return s;
}

/* ------------------------------- llama.cpp's K-quant float orders
 * Scalar models of the float operations of llama.cpp's x86 kernels for
 * Q4_K (repacked: gemv order for one token, gemm order for groups of four),
 * Q5_K and Q6_K (vec_dot, 8 int lanes), which the AVX-512 kernels must
 * match bit for bit; kernels/cpu/x86/quant_avx512.h describes them. */

/* hsum_float_8: ((a4 + a0) + (a6 + a2)) + ((a5 + a1) + (a7 + a3)) */
static float llama_hsum8(const float *a)
{
    float r[4];
    for (int i = 0; i < 4; i++)
        r[i] = a[4 + i] + a[i];
    return (r[0] + r[2]) + (r[1] + r[3]);
}

static float llama_dot_q4_K(const void *w, const void *a, int64_t n, bool gemm_order)
{
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float dd = kinfer_fp16_to_fp32(x[b].d) * y[b].d, dm = kinfer_fp16_to_fp32(x[b].dmin) * y[b].d;
        int isum = 0, msum = 0;
        for (int c = 0; c < 4; c++) {
            int I = 0, M = 0;
            for (int h = 0; h < 2; h++) {
                const int j = 2 * c + h;
                uint8_t sc, m;
                kinfer_k4_scale_min(j, x[b].scales, &sc, &m);
                int dot = 0;
                for (int l = 0; l < 32; l++)
                    dot += ((x[b].qs[32 * c + l] >> (4 * h)) & 0xF) * y[b].qs[32 * j + l];
                I += sc * dot;
                M += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
            }
            if (gemm_order) {
                acc = fmaf((float)I, dd, acc);
                accm = fmaf((float)M, dm, accm);
            }
            isum += I;
            msum += M;
        }
        if (!gemm_order) {
            acc = fmaf((float)isum, dd, acc);
            accm = fmaf((float)msum, dm, accm);
        }
    }
    return acc - accm;
}

static float llama_dot_q5_K(const void *w, const void *a, int64_t n)
{
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    float acc[8] = {0}, summs = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int lane[8] = {0}, M = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            kinfer_k4_scale_min(j, x[b].scales, &sc, &m);
            for (int l = 0; l < 32; l++) {
                const int q = ((x[b].qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF) + 16 * ((x[b].qh[l] >> j) & 1);
                lane[l / 4] += sc * q * y[b].qs[32 * j + l];
            }
            M += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
        }
        for (int i = 0; i < 8; i++)
            acc[i] = fmaf(y[b].d * kinfer_fp16_to_fp32(x[b].d), (float)lane[i], acc[i]);
        summs = fmaf(-y[b].d * kinfer_fp16_to_fp32(x[b].dmin), (float)M, summs);
    }
    return llama_hsum8(acc) + summs;
}

static float llama_dot_q6_K(const void *w, const void *a, int64_t n)
{
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float acc[8] = {0};
    for (int64_t b = 0; b < n / QK_K; b++) {
        int lane[8] = {0};
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, r = e % 128, l = r % 32, k = r / 32;
            const uint8_t ql = x[b].ql[64 * h + l + 32 * (k % 2)];
            const int q = ((k < 2 ? ql : ql >> 4) & 0xF) | (((x[b].qh[32 * h + l] >> (2 * k)) & 3) << 4);
            lane[(e % 32) / 4] += x[b].scales[e / 16] * q * y[b].qs[e];
        }
        for (int i = 0; i < 8; i++) {
            lane[i] -= 32 * (x[b].scales[2 * i] * y[b].bsums[2 * i] +
                             x[b].scales[2 * i + 1] * y[b].bsums[2 * i + 1]);
            acc[i] = fmaf(y[b].d * kinfer_fp16_to_fp32(x[b].d), (float)lane[i], acc[i]);
        }
    }
    return llama_hsum8(acc);
}

/* llama.cpp's tiled kernel (matmuls of 8 tokens or more) for Q5_K and
 * Q6_K: one exact integer per block, r = S d_x (Q5_K: r -= dmin_x M, fused),
 * acc = fma(r, d_y, acc). */
static float llama_tiled_k(int type, const void *w, const void *a, int64_t n)
{
    const block_q8_K *y = a;
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int S = 0, M = 0;
        float dx, mx = 0.0f;
        if (type == KINFER_TYPE_Q6_K) {
            const block_q6_K *x = (const block_q6_K *)w + b;
            for (int e = 0; e < QK_K; e++) {
                const int h = e / 128, r = e % 128, l = r % 32, k = r / 32;
                const uint8_t ql = x->ql[64 * h + l + 32 * (k % 2)];
                const int q = ((k < 2 ? ql : ql >> 4) & 0xF) | (((x->qh[32 * h + l] >> (2 * k)) & 3) << 4);
                S += x->scales[e / 16] * q * y[b].qs[e];
            }
            for (int g = 0; g < 16; g++)
                S -= 32 * x->scales[g] * y[b].bsums[g];
            dx = kinfer_fp16_to_fp32(x->d);
        } else {
            const block_q5_K *x = (const block_q5_K *)w + b;
            for (int j = 0; j < 8; j++) {
                uint8_t sc, m;
                kinfer_k4_scale_min(j, x->scales, &sc, &m);
                for (int l = 0; l < 32; l++) {
                    const int q = ((x->qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF) + 16 * ((x->qh[l] >> j) & 1);
                    S += sc * q * y[b].qs[32 * j + l];
                }
                M += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
            }
            dx = kinfer_fp16_to_fp32(x->d);
            mx = kinfer_fp16_to_fp32(x->dmin);
        }
        float r = (float)S * dx;
        if (type == KINFER_TYPE_Q5_K)
            r = fmaf(-mx, (float)M, r);
        acc = fmaf(r, y[b].d, acc);
    }
    return acc;
}

/* llama.cpp's repacked Q4_0 (x86, a matrix of a multiple of 8 rows; its
 * gemv and gemm alike): per block the exact integer (q - 8) . y, then
 * acc = fma(integer, d_x d_y, acc). */
static float llama_dot_q4_0_repacked(const void *w, const void *a, int64_t n)
{
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    float acc = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int I = 0;
        for (int l = 0; l < 16; l++)
            I += ((x[b].qs[l] & 0xF) - 8) * y[b].qs[l] + ((x[b].qs[l] >> 4) - 8) * y[b].qs[l + 16];
        acc = fmaf((float)I, kinfer_fp16_to_fp32(x[b].d) * kinfer_fp16_to_fp32(y[b].d), acc);
    }
    return acc;
}

/* The repacked kernels (kinfer_cpu_kernels.repacked and the gemm) against
 * llama_dot_q4_0_repacked, bit for bit: vec_dot, vec_dot_r4, and the gemm
 * for every row count up to two groups and a remainder, 1 .. MAX_NT
 * tokens. */
static void check_repacked(int type, const kinfer_cpu_kernels *k, int64_t n)
{
    const size_t wrow = kinfer_row_size(type, n), ab = kinfer_row_size(KINFER_TYPE_Q8_0, n);
    enum { MAX_ROWS = 2 * KINFER_GEMM_REPACKED_ROWS + 3, NT = KINFER_GEMM_MAX_NT };
    uint8_t *w = xmalloc(MAX_ROWS * wrow), *aq = xmalloc(NT * ab);
    float *x = xmalloc((size_t)n * sizeof(float));
    for (int i = 0; i < MAX_ROWS; i++)
        random_row(type, w + i * wrow, n);
    for (int t = 0; t < NT; t++) {
        fill_gauss(x, n, 0.5f + (float)t);
        kinfer_cpu_kernels_get(KINFER_TYPE_Q8_0)->from_float_act(x, aq + t * ab, n);
    }
    float want[MAX_ROWS][NT];
    for (int i = 0; i < MAX_ROWS; i++)
        for (int t = 0; t < NT; t++)
            want[i][t] = llama_dot_q4_0_repacked(w + i * wrow, aq + t * ab, n);
    for (int i = 0; i < 4; i++) {
        const float one = k->vec_dot(n, w + i * wrow, aq);
        ck_assert_msg(kinfer_f32_bits(one) == kinfer_f32_bits(want[i][0]),
                      "repacked n=%ld vec_dot row %d: %.9g vs llama.cpp order %.9g", (long)n, i, one, want[i][0]);
    }
    float out4[4];
    k->vec_dot_r4(n, w, wrow, aq, out4);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(kinfer_f32_bits(out4[i]) == kinfer_f32_bits(want[i][0]),
                      "repacked n=%ld r4 row %d: %.9g vs llama.cpp order %.9g", (long)n, i, out4[i], want[i][0]);

    const kinfer_gemm_kernels gk = kinfer_gemm_get_repacked(type);
    ck_assert_ptr_nonnull(gk.gemm);
    const size_t pb = kinfer_gemm_packed_size(n), grow = kinfer_gemm_decoded_row_size(n);
    uint8_t *ap = xmalloc(NT * pb), *wg = xmalloc(MAX_ROWS * grow);
    for (int nr = 1; nr <= MAX_ROWS; nr++) {
        /* the row groups depend on the row count: decode what the gemm takes */
        gk.decode(n, w, wrow, nr, wg);
        for (int nt = 1; nt <= NT; nt++) {
            gk.pack_group(n, aq, ab, nt, ap);
            float out[MAX_ROWS * NT];
            gk.gemm(n, wg, grow, nr, ap, pb, nt, out, MAX_ROWS);
            for (int i = 0; i < nr; i++)
                for (int t = 0; t < nt; t++)
                    ck_assert_msg(kinfer_f32_bits(out[i + MAX_ROWS * t]) == kinfer_f32_bits(want[i][t]),
                                  "repacked n=%ld gemm rows=%d nt=%d row %d token %d: %.9g vs llama.cpp order %.9g",
                                  (long)n, nr, nt, i, t, out[i + MAX_ROWS * t], want[i][t]);
        }
    }
    free(ap);
    free(wg);
    free(w);
    free(aq);
    free(x);
}

/* llama.cpp's order for a K-quant dot at the AVX-512 level; *has_model =
 * false for other types.  in_group: the token is in one of the batch's
 * groups of four (Q4_K's gemm order). */
static float llama_k_dot(int type, const void *w, const void *a, int64_t n, bool in_group, bool *has_model)
{
    *has_model = true;
    switch (type) {
    case KINFER_TYPE_Q4_K: return llama_dot_q4_K(w, a, n, in_group);
    case KINFER_TYPE_Q5_K: return llama_dot_q5_K(w, a, n);
    case KINFER_TYPE_Q6_K: return llama_dot_q6_K(w, a, n);
    default: *has_model = false; return 0.0f;
    }
}

/* Types whose batched result at this level depends on the token's group of
 * four, as llama.cpp's does (the Q4_K repack on x86). */
static bool groups_of_4(int type, kinfer_cpu_level level)
{
    return type == KINFER_TYPE_Q4_K && level == KINFER_CPU_AVX512;
}

static void check_dots(int type, int64_t n, bool random_bytes)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    const int atype = tt->vec_dot_type;
    void *w = xmalloc(kinfer_row_size(type, n));
    void *a = xmalloc(kinfer_row_size(atype, n));
    void *a_simd = xmalloc(kinfer_row_size(atype, n));
    float *x = xmalloc((size_t)n * sizeof(float));
    if (random_bytes) {
        random_row(type, w, n);
    } else {
        fill_gauss(x, n, 0.05f);
        kinfer_cpu_ref_kernels(type)->from_float(x, w, n);
    }
    fill_gauss(x, n, 1.0f);
    kinfer_cpu_ref_kernels(atype)->from_float(x, a, n);

    double mag;
    const double exact = dequant_dot(type, w, atype, a, n, &mag);
    double tol = 2e-5 * mag + 1e-30;
    if (atype == KINFER_TYPE_Q8_1) {
        /* Q8_1 stores d * sum(qs) rounded to fp16 for the min term: allow
         * that rounding (2^-11 relative) on each block's m * s */
        const block_q8_1 *ab = a;
        for (int64_t b = 0; b < n / QK8_1; b++) {
            kinfer_fp16 m;
            memcpy(&m, (const uint8_t *)w + b * tt->type_size + 2, 2);
            tol += fabs(kinfer_fp16_to_fp32(m) * kinfer_fp16_to_fp32(ab[b].s)) * 1e-3;
        }
    }
    const float r = kinfer_cpu_ref_kernels(type)->vec_dot(n, w, a);
    ck_assert_msg(fabs(r - exact) <= tol, "%s n=%ld ref dot %.9g vs dequantized %.9g (tol %.3g)",
                  tt->name, (long)n, r, exact, tol);

    for (int level = 1; level < KINFER_CPU_LEVEL_COUNT; level++) {
        const kinfer_cpu_kernels *k = kinfer_cpu_kernels_at(type, (kinfer_cpu_level)level);
        const kinfer_cpu_kernels *ka = kinfer_cpu_kernels_at(atype, (kinfer_cpu_level)level);
        if (k == NULL)
            continue;
        /* activation quantizers are bit-exact with the reference */
        ka->from_float(x, a_simd, n);
        ck_assert_msg(memcmp(a, a_simd, kinfer_row_size(atype, n)) == 0,
                      "%s activation quantizer differs at level %s",
                      kinfer_type_traits_get(atype)->name, kinfer_cpu_level_name((kinfer_cpu_level)level));
        const float s = k->vec_dot(n, w, a);
        ck_assert_msg(fabs(s - exact) <= tol, "%s n=%ld %s dot %.9g vs %.9g (ref %.9g, tol %.3g)",
                      tt->name, (long)n, kinfer_cpu_level_name((kinfer_cpu_level)level), s, exact, r, tol);
        bool has_model = false;
        if (level == KINFER_CPU_AVX512) {
            /* llama.cpp's float order, bit for bit */
            const float lm = llama_k_dot(type, w, a, n, false, &has_model);
            ck_assert_msg(!has_model || kinfer_f32_bits(s) == kinfer_f32_bits(lm),
                          "%s n=%ld avx512 dot %.9g vs llama.cpp order %.9g", tt->name, (long)n, s, lm);
        }
        if (k->repacked != NULL) {
            ck_assert_int_eq(level, KINFER_CPU_AVX512);
            check_repacked(type, k->repacked, n);
        }
        const bool grouped = groups_of_4(type, (kinfer_cpu_level)level);
        if (k->vec_dot_x4 != NULL) {
            /* batched: each of 4 activation rows exactly as vec_dot (or, a
             * group of four, as llama.cpp's gemm order) */
            const size_t ab = kinfer_row_size(atype, n);
            uint8_t *a4 = xmalloc(4 * ab);
            for (int t = 0; t < 4; t++) {
                fill_gauss(x, n, 1.0f + (float)t);
                ka->from_float(x, a4 + t * ab, n);
            }
            float out[4];
            k->vec_dot_x4(n, w, a4, ab, out);
            for (int t = 0; t < 4; t++) {
                bool m4;
                const float one = grouped ? llama_k_dot(type, w, a4 + t * ab, n, true, &m4)
                                          : k->vec_dot(n, w, a4 + t * ab);
                ck_assert_msg(kinfer_f32_bits(out[t]) == kinfer_f32_bits(one),
                              "%s %s x4 row %d: %.9g vs %.9g", tt->name,
                              kinfer_cpu_level_name((kinfer_cpu_level)level), t, out[t], one);
            }
            free(a4);
        }
        if (k->vec_dot_r4 != NULL) {
            /* four weight rows at once: each exactly as vec_dot */
            const size_t wrow = kinfer_row_size(type, n);
            uint8_t *w4 = xmalloc(4 * wrow);
            for (int i = 0; i < 4; i++) random_row(type, w4 + i * wrow, n);
            float out[4];
            k->vec_dot_r4(n, w4, wrow, a, out);
            for (int i = 0; i < 4; i++) {
                const float one = k->vec_dot(n, w4 + i * wrow, a);
                ck_assert_msg(kinfer_f32_bits(out[i]) == kinfer_f32_bits(one),
                              "%s %s r4 row %d: %.9g vs %.9g", tt->name,
                              kinfer_cpu_level_name((kinfer_cpu_level)level), i, out[i], one);
            }
            free(w4);
        }
    }
    const kinfer_gemm_kernels gk = kinfer_gemm_get(type);
    if (gk.gemm != NULL) {
        /* batched prompt kernels: each token exactly as vec_dot, whatever
         * the number of tokens in the call (Q4_K: the first nt - nt % 4 as
         * vec_dot_x4 of their group of four) */
        const bool grouped = groups_of_4(type, kinfer_cpu_best_level());
        const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
        const size_t ab = kinfer_row_size(atype, n), pb = kinfer_gemm_packed_size(n);
        enum { NT = KINFER_GEMM_MAX_NT };
        uint8_t *aq = xmalloc(NT * ab), *ap = xmalloc(NT * pb);
        for (int t = 0; t < NT; t++) {
            fill_gauss(x, n, 0.5f + (float)t);
            kinfer_cpu_kernels_get(atype)->from_float_act(x, aq + t * ab, n);
            if (gk.pack != NULL)
                gk.pack(n, aq + t * ab, ap + t * pb);
        }
        /* up to 19 weight rows (every remainder of the kernels' row tiles, a
         * whole 16-row lane group and a short one after it):
         * w, then random rows of the type */
        enum { MAX_ROWS = 19, OSTRIDE = MAX_ROWS + 1 };
        const size_t wrow = kinfer_row_size(type, n);
        uint8_t *w2 = xmalloc(MAX_ROWS * wrow);
        memcpy(w2, w, wrow);
        for (int i = 1; i < MAX_ROWS; i++)
            random_row(type, w2 + i * wrow, n);
        /* the rows as the gemm takes them: decoded, for a type with a
         * decoder (the same rows as the gemm is given: a lane kernel's
         * layout depends on the row count) */
        const size_t grow = gk.decode != NULL ? kinfer_gemm_decoded_row_size(n) : wrow;
        uint8_t *wg = w2;
        if (gk.decode != NULL)
            wg = xmalloc(MAX_ROWS * grow);
        for (int nt = 1; nt <= NT; nt++) {
            /* a packed group holds just the call's tokens, the rest zero */
            if (gk.pack_group != NULL)
                gk.pack_group(n, aq, ab, nt, ap);
            for (int nr = 1; nr <= MAX_ROWS; nr++) {
                float out[OSTRIDE * NT];
                if (gk.decode != NULL)
                    gk.decode(n, w2, wrow, nr, wg);
                gk.gemm(n, wg, grow, nr, ap, pb, nt, out, OSTRIDE);
                for (int i = 0; i < nr; i++)
                    for (int t = 0; t < nt; t++) {
                        float one = k->vec_dot(n, w2 + i * wrow, aq + t * ab);
                        if (grouped && t < nt - nt % 4) {
                            float g4[4];
                            k->vec_dot_x4(n, w2 + i * wrow, aq + (t & ~3) * ab, ab, g4);
                            one = g4[t & 3];
                        }
                        ck_assert_msg(kinfer_f32_bits(out[i + OSTRIDE * t]) == kinfer_f32_bits(one),
                                      "%s n=%ld gemm rows=%d nt=%d row %d token %d: %.9g vs vec_dot %.9g",
                                      tt->name, (long)n, nr, nt, i, t, out[i + OSTRIDE * t], one);
                    }
            }
        }
        /* mul_mat_id's kernels: every token exactly as vec_dot, whatever
         * the number of tokens in the call */
        const kinfer_gemm_kernels gm = kinfer_gemm_get_mmid(type);
        if (gm.gemm != NULL) {
            ck_assert_msg(gm.pack != NULL, "%s mmid kernels pack row by row", tt->name);
            const size_t mrow = gm.decode != NULL ? kinfer_gemm_decoded_row_size(n) : wrow;
            uint8_t *wm = gm.decode != NULL ? xmalloc(MAX_ROWS * mrow) : w2;
            for (int t = 0; t < NT; t++)
                gm.pack(n, aq + t * ab, ap + t * pb);
            for (int nt = 1; nt <= NT; nt++)
                for (int nr = 1; nr <= MAX_ROWS; nr++) {
                    float out[OSTRIDE * NT];
                    if (gm.decode != NULL) /* the rows the gemm is given (their layout depends on the count) */
                        gm.decode(n, w2, wrow, nr, wm);
                    gm.gemm(n, wm, mrow, nr, ap, pb, nt, out, OSTRIDE);
                    for (int i = 0; i < nr; i++)
                        for (int t = 0; t < nt; t++) {
                            const float one = k->vec_dot(n, w2 + i * wrow, aq + t * ab);
                            ck_assert_msg(kinfer_f32_bits(out[i + OSTRIDE * t]) == kinfer_f32_bits(one),
                                          "%s n=%ld mmid gemm rows=%d nt=%d row %d token %d: %.9g vs vec_dot %.9g",
                                          tt->name, (long)n, nr, nt, i, t, out[i + OSTRIDE * t], one);
                        }
                }
            if (wm != w2)
                free(wm);
        }
        /* many-token kernels in llama.cpp's tiled order, for every row
         * count (a lane kernel's groups of 16 and its short last group) */
        const kinfer_gemm_fn tiled = kinfer_gemm_get_tiled(type);
        const kinfer_gemm_decode_fn tiled_decode = kinfer_gemm_get_tiled_decode(type);
        uint8_t *wt = w2;
        size_t wtrow = wrow;
        if (tiled != NULL && tiled_decode != NULL) {
            wtrow = kinfer_gemm_decoded_row_size(n);
            wt = xmalloc(MAX_ROWS * wtrow);
        }
        for (int nr = 1; tiled != NULL && nr <= MAX_ROWS; nr++) {
            if (tiled_decode != NULL)
                tiled_decode(n, w2, wrow, nr, wt);
            for (int nt = 1; nt <= NT; nt++) {
                float out[OSTRIDE * NT];
                tiled(n, wt, wtrow, nr, ap, pb, nt, out, OSTRIDE);
                for (int i = 0; i < nr; i++)
                    for (int t = 0; t < nt; t++) {
                        const float want = llama_tiled_k(type, w2 + i * wrow, aq + t * ab, n);
                        ck_assert_msg(kinfer_f32_bits(out[i + OSTRIDE * t]) == kinfer_f32_bits(want),
                                      "%s n=%ld tiled rows=%d nt=%d row %d token %d: %.9g vs llama.cpp order %.9g",
                                      tt->name, (long)n, nr, nt, i, t, out[i + OSTRIDE * t], want);
                    }
            }
        }
        if (wg != w2)
            free(wg);
        if (wt != w2)
            free(wt);
        free(w2);
        free(aq);
        free(ap);
    }
    free(w);
    free(a);
    free(a_simd);
    free(x);
}

START_TEST(test_vec_dot)
{
    const int type = weight_types[_i];
    rng_state = 2000 + (uint64_t)type;
    const int64_t b = blck(type) == 1 ? 32 : blck(type);
    /* odd multiples of the block size, including ones that leave SIMD
     * remainders (1, 3, 7 blocks) */
    const int64_t mults[] = {1, 3, 7, 33};
    for (size_t m = 0; m < sizeof mults / sizeof mults[0]; m++) {
        check_dots(type, b * mults[m], false);
        if (blck(type) > 1)
            check_dots(type, b * mults[m], true);
    }
    if (blck(type) == 1) /* float types: lengths that are not SIMD multiples */
        check_dots(type, 37, false);
}
END_TEST

/* ------------------------------------------------------- half precision */

START_TEST(test_fp16_exhaustive)
{
    /* every half converts to float and back unchanged (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = kinfer_fp16_to_fp32((kinfer_fp16)h);
        const kinfer_fp16 back = kinfer_fp32_to_fp16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            ck_assert(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff));
        else
            ck_assert_msg(back == h, "half %04x -> %g -> %04x", h, f, back);
    }
    /* float -> half rounds to nearest even, checked against the F16C
     * instruction where the CPU has it */
    const kinfer_cpu_kernels *hw = kinfer_cpu_kernels_at(KINFER_TYPE_F16, KINFER_CPU_AVX2);
    if (hw != NULL) {
        rng_state = 77;
        enum { N = 1 << 16 };
        static float f[N];
        static kinfer_fp16 a[N], b[N];
        for (int round = 0; round < 8; round++) {
            for (int i = 0; i < N; i++) {
                uint32_t bits = (uint32_t)rng_next();
                /* concentrate on the half range, subnormals included */
                bits = (bits & 0x807fffffu) | ((uint32_t)(96 + (rng_next() % 48)) << 23);
                f[i] = kinfer_bits_f32(bits);
            }
            hw->from_float(f, a, N);
            for (int i = 0; i < N; i++)
                b[i] = kinfer_fp32_to_fp16(f[i]);
            for (int i = 0; i < N; i++)
                ck_assert_msg(a[i] == b[i], "%.9g: F16C %04x, ours %04x", f[i], a[i], b[i]);
        }
    }
    /* bfloat16: round to nearest even, NaN stays NaN */
    ck_assert_uint_eq(kinfer_fp32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(kinfer_fp32_to_bf16(kinfer_bits_f32(0x3f808000u)), 0x3f80); /* tie -> even */
    ck_assert_uint_eq(kinfer_fp32_to_bf16(kinfer_bits_f32(0x3f818000u)), 0x3f82); /* tie -> even */
    ck_assert_uint_eq(kinfer_fp32_to_bf16(kinfer_bits_f32(0x3f808001u)), 0x3f81);
    ck_assert(isnan(kinfer_bf16_to_fp32(kinfer_fp32_to_bf16(NAN))));
}
END_TEST

/* --------------------------------------------------------------- errors */

START_TEST(test_errors)
{
    float f[64] = {0};
    uint8_t q[256] = {0};
    float out;
    ck_assert_int_eq(kinfer_dequantize_row(KINFER_TYPE_Q4_0, q, f, 33), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_dequantize_row(KINFER_TYPE_Q4_K, q, f, 32), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_dequantize_row(KINFER_TYPE_Q4_0, q, f, -32), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_dequantize_row(KINFER_TYPE_Q4_0, NULL, f, 32), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_dequantize_row(KINFER_TYPE_Q4_0, q, NULL, 32), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_dequantize_row(KINFER_TYPE_Q4_0, NULL, NULL, 0), KINFER_OK);
    ck_assert_int_eq(kinfer_dequantize_row(4, q, f, 32), KINFER_E_UNSUPPORTED); /* removed Q4_2 */
    ck_assert_int_eq(kinfer_dequantize_row(-1, q, f, 32), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kinfer_dequantize_row(1000, q, f, 32), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kinfer_dequantize_row(KINFER_TYPE_IQ2_XXS, q, f, 256), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kinfer_quantize_row(KINFER_TYPE_Q8_0, f, q, 48), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_quantize_row(KINFER_TYPE_Q8_0, f, q, 32), KINFER_OK);
    ck_assert_int_eq(kinfer_quantize_row(KINFER_TYPE_TQ1_0, f, q, 256), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kinfer_vec_dot(KINFER_TYPE_Q4_0, 40, q, q, &out), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_vec_dot(KINFER_TYPE_Q8_K, 256, q, q, &out), KINFER_E_UNSUPPORTED);
    ck_assert_int_eq(kinfer_vec_dot(KINFER_TYPE_Q4_0, 32, q, q, NULL), KINFER_E_INVALID_ARG);
    ck_assert_int_eq(kinfer_vec_dot(77, 32, q, q, &out), KINFER_E_UNSUPPORTED);
    ck_assert_uint_eq(kinfer_row_size(KINFER_TYPE_Q4_K, 512), 288);
    ck_assert_uint_eq(kinfer_row_size(KINFER_TYPE_Q4_K, 100), 0);
    ck_assert_uint_eq(kinfer_row_size(4, 32), 0);
}
END_TEST

/* Every type with kernels has a consistent traits entry. */
START_TEST(test_traits)
{
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        const kinfer_type_traits *tt = kinfer_type_traits_get(weight_types[i]);
        ck_assert_ptr_nonnull(tt);
        const kinfer_cpu_kernels *rk = kinfer_cpu_ref_kernels(weight_types[i]);
        ck_assert_ptr_nonnull(rk);
        ck_assert_ptr_nonnull(rk->to_float);
        ck_assert_ptr_nonnull(rk->from_float);
        ck_assert_ptr_nonnull(rk->vec_dot);
        ck_assert_int_eq(rk->vec_dot_type, tt->vec_dot_type);
        const kinfer_type_traits *at = kinfer_type_traits_get(tt->vec_dot_type);
        ck_assert_ptr_nonnull(at);
        ck_assert_ptr_nonnull(kinfer_cpu_ref_kernels(tt->vec_dot_type)->from_float);
        ck_assert_int_eq(at->blck_size == tt->blck_size || tt->blck_size == 1, 1);
        /* every level's table is complete and agrees on the activation type */
        for (int level = 0; level < KINFER_CPU_LEVEL_COUNT; level++) {
            const kinfer_cpu_kernels *k = kinfer_cpu_kernels_at(weight_types[i], (kinfer_cpu_level)level);
            if (level > (int)kinfer_cpu_best_level()) {
                ck_assert_ptr_null(k);
                continue;
            }
            ck_assert_ptr_nonnull(k);
            ck_assert_ptr_nonnull(k->to_float);
            ck_assert_ptr_nonnull(k->from_float);
            ck_assert_ptr_nonnull(k->from_float_act);
            ck_assert_ptr_nonnull(k->vec_dot);
            ck_assert_int_eq(k->vec_dot_type, tt->vec_dot_type);
        }
        ck_assert_ptr_eq(kinfer_cpu_kernels_get(weight_types[i]),
                         kinfer_cpu_kernels_at(weight_types[i], kinfer_cpu_best_level()));
    }
    ck_assert_ptr_null(kinfer_cpu_kernels_get(KINFER_TYPE_IQ2_XXS));
    ck_assert_ptr_nonnull(kinfer_cpu_kernels_at(KINFER_TYPE_Q4_0, KINFER_CPU_SCALAR));
    ck_assert_int_eq(kinfer_type_traits_get(KINFER_TYPE_Q4_1)->vec_dot_type, KINFER_TYPE_Q8_1);
    ck_assert_int_eq(kinfer_type_traits_get(KINFER_TYPE_Q6_K)->vec_dot_type, KINFER_TYPE_Q8_K);
    ck_assert_int_eq(kinfer_type_traits_get(KINFER_TYPE_IQ4_NL)->vec_dot_type, KINFER_TYPE_Q8_0);
}
END_TEST

/* --------------------------------------------------------------- matmul */

/* Pools of 1 (NULL: the calling thread), 2 and 3 threads: a matmul's bits
 * must not depend on the split. */
#define N_POOLS 3
static void pools_new(kinfer_threadpool *pools[N_POOLS])
{
    pools[0] = NULL;
    for (int p = 1; p < N_POOLS; p++) {
        pools[p] = kinfer_threadpool_new(p + 1);
        ck_assert_ptr_nonnull(pools[p]);
    }
}

static void pools_free(kinfer_threadpool *pools[N_POOLS])
{
    for (int p = 1; p < N_POOLS; p++) kinfer_threadpool_free(pools[p]);
}

/* Naive y = W x through the reference kernels, for comparison. */
static void naive_matmul(int type, const void *w, int64_t n_rows, int64_t n_cols, const float *x,
                         int64_t n_tokens, float *y)
{
    const kinfer_cpu_kernels *rk = kinfer_cpu_ref_kernels(type);
    const kinfer_cpu_kernels *ra = kinfer_cpu_ref_kernels(rk->vec_dot_type);
    void *a = xmalloc(kinfer_row_size(rk->vec_dot_type, n_cols));
    for (int64_t t = 0; t < n_tokens; t++) {
        ra->from_float(x + t * n_cols, a, n_cols);
        for (int64_t r = 0; r < n_rows; r++)
            y[t * n_rows + r] = rk->vec_dot(n_cols, (const uint8_t *)w + r * kinfer_row_size(type, n_cols), a);
    }
    free(a);
}

static const int matmul_types[] = {
    KINFER_TYPE_Q4_0, KINFER_TYPE_Q4_1, KINFER_TYPE_Q8_0, KINFER_TYPE_Q4_K, KINFER_TYPE_Q6_K,
    KINFER_TYPE_F16, KINFER_TYPE_F32, KINFER_TYPE_IQ4_XS,
};
#define N_MATMUL_TYPES (int)(sizeof matmul_types / sizeof matmul_types[0])

START_TEST(test_matmul)
{
    const int type = matmul_types[_i];
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    rng_state = 3000 + (uint64_t)type;
    /* rows not divisible by the thread counts; columns an odd number of
     * blocks */
    const int64_t n_rows = 37, n_cols = (tt->blck_size == 1 ? 32 : tt->blck_size) * 3;
    const int64_t token_counts[] = {1, 5, 40};
    const size_t w_bytes = kinfer_row_size(type, n_cols) * (size_t)n_rows;
    void *w = xmalloc(w_bytes);
    float *wf = xmalloc((size_t)(n_rows * n_cols) * sizeof(float));
    fill_gauss(wf, n_rows * n_cols, 0.1f);
    ck_assert_int_eq(kinfer_quantize_row(type, wf, w, n_rows * n_cols), KINFER_OK);

    kinfer_threadpool *pools[N_POOLS];
    pools_new(pools);
    for (size_t tc = 0; tc < sizeof token_counts / sizeof token_counts[0]; tc++) {
        const int64_t nt = token_counts[tc];
        float *x = xmalloc((size_t)(nt * n_cols) * sizeof(float));
        float *y_ref = xmalloc((size_t)(nt * n_rows) * sizeof(float));
        float *y0 = xmalloc((size_t)(nt * n_rows) * sizeof(float));
        float *y1 = xmalloc((size_t)(nt * n_rows) * sizeof(float));
        fill_gauss(x, nt * n_cols, 1.0f);
        naive_matmul(type, w, n_rows, n_cols, x, nt, y_ref);
        const size_t ss = kinfer_matmul_scratch_size(type, n_cols, nt, 3);
        void *scratch = xmalloc(ss);
        /* quantized path: the same bits on 1, 2 and 3 threads, and a batch
         * gives each token what it gets alone (Q4_K at AVX-512: what its
         * group of four gets, tokens 4g .. 4g + 3, as in llama.cpp) */
        const int64_t n_grouped = groups_of_4(type, kinfer_cpu_best_level()) ? nt - nt % 4 : 0;
        for (int64_t t = 0; t < n_grouped; t += 4)
            ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, w, n_rows, n_cols, x + t * n_cols,
                                              4, y1 + t * n_rows, KINFER_MATMUL_QUANT), KINFER_OK);
        if (n_grouped > 0) {
            /* and each group of four as vec_dot_x4 (llama.cpp's gemm order) */
            const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
            const size_t ab = kinfer_row_size(KINFER_TYPE_Q8_K, n_cols), wrow = kinfer_row_size(type, n_cols);
            uint8_t *a4 = xmalloc(4 * ab);
            float *yg = xmalloc((size_t)(nt * n_rows) * sizeof(float));
            ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, w, n_rows, n_cols, x, nt, yg,
                                              KINFER_MATMUL_QUANT), KINFER_OK);
            for (int64_t t = 0; t < n_grouped; t += 4) {
                for (int j = 0; j < 4; j++)
                    ck_assert_int_eq(kinfer_quantize_act_row(KINFER_TYPE_Q8_K, x + (t + j) * n_cols, a4 + j * ab,
                                                             n_cols), KINFER_OK);
                for (int64_t r = 0; r < n_rows; r++) {
                    float o4[4];
                    k->vec_dot_x4(n_cols, (const uint8_t *)w + r * wrow, a4, ab, o4);
                    for (int j = 0; j < 4; j++)
                        ck_assert_msg(kinfer_f32_bits(o4[j]) == kinfer_f32_bits(yg[(t + j) * n_rows + r]),
                                      "%s: token %ld row %ld: batch %.9g vs vec_dot_x4 %.9g", tt->name,
                                      (long)(t + j), (long)r, yg[(t + j) * n_rows + r], o4[j]);
                }
            }
            free(a4);
            free(yg);
        }
        for (int64_t t = n_grouped; t < nt; t++) {
            ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, w, n_rows, n_cols, x + t * n_cols,
                                              1, y1 + t * n_rows, KINFER_MATMUL_QUANT), KINFER_OK);
        }
        ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, w, n_rows, n_cols, x, nt, y0,
                                          KINFER_MATMUL_QUANT), KINFER_OK);
        if (nt >= KINFER_GEMM_TILED_MIN_TOKENS && kinfer_gemm_get_tiled(type) != NULL) {
            /* many tokens: llama.cpp's tiled order instead */
            const size_t ab = kinfer_row_size(KINFER_TYPE_Q8_K, n_cols), wrow = kinfer_row_size(type, n_cols);
            uint8_t *aq = xmalloc(ab);
            for (int64_t t = 0; t < nt; t++) {
                ck_assert_int_eq(kinfer_quantize_act_row(KINFER_TYPE_Q8_K, x + t * n_cols, aq, n_cols), KINFER_OK);
                for (int64_t r = 0; r < n_rows; r++)
                    y1[t * n_rows + r] = llama_tiled_k(type, (const uint8_t *)w + r * wrow, aq, n_cols);
            }
            free(aq);
        }
        ck_assert_msg(memcmp(y0, y1, (size_t)(nt * n_rows) * sizeof(float)) == 0,
                      "%s: batch of %ld differs from one token at a time", tt->name, (long)nt);
        if (nt >= 24) {
            /* in slices that start on a multiple of 8 and hold 8 or more
             * (forward.c's), a batch keeps its bits */
            ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, w, n_rows, n_cols, x, 16, y1,
                                              KINFER_MATMUL_QUANT), KINFER_OK);
            ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, w, n_rows, n_cols, x + 16 * n_cols, nt - 16,
                                              y1 + 16 * n_rows, KINFER_MATMUL_QUANT), KINFER_OK);
            ck_assert_msg(memcmp(y0, y1, (size_t)(nt * n_rows) * sizeof(float)) == 0,
                          "%s: batch of %ld differs from its slices of 16 and %ld", tt->name, (long)nt,
                          (long)(nt - 16));
        }
        for (int p = 1; p < N_POOLS; p++) {
            memset(y1, 0, (size_t)(nt * n_rows) * sizeof(float));
            ck_assert_int_eq(kinfer_matmul_ex(pools[p], scratch, ss, type, w, n_rows, n_cols, x, nt,
                                              y1, KINFER_MATMUL_QUANT), KINFER_OK);
            ck_assert_msg(memcmp(y0, y1, (size_t)(nt * n_rows) * sizeof(float)) == 0,
                          "%s: %d threads differ from 1", tt->name, p + 1);
        }
        /* against the reference kernels, and the BLAS path against both */
        double mag = 0.0;
        for (int64_t i = 0; i < nt * n_rows; i++)
            mag = fmax(mag, fabs(y_ref[i]));
        for (int64_t i = 0; i < nt * n_rows; i++)
            ck_assert_msg(fabs(y0[i] - y_ref[i]) <= 1e-4 * mag, "%s quant [%ld] %g vs %g", tt->name,
                          (long)i, y0[i], y_ref[i]);
        ck_assert_int_eq(kinfer_matmul_ex(pools[1], scratch, ss, type, w, n_rows, n_cols, x, nt, y1,
                                          KINFER_MATMUL_BLAS), KINFER_OK);
        /* BLAS multiplies by unquantized activations: compare with the
         * float product of dequantized W and x */
        float *wd = xmalloc((size_t)(n_rows * n_cols) * sizeof(float));
        kinfer_cpu_ref_kernels(type)->to_float(w, wd, n_rows * n_cols);
        for (int64_t t = 0; t < nt; t++) {
            for (int64_t r = 0; r < n_rows; r++) {
                double s = 0.0, m = 0.0;
                for (int64_t c = 0; c < n_cols; c++) {
                    s += (double)wd[r * n_cols + c] * x[t * n_cols + c];
                    m += fabs((double)wd[r * n_cols + c] * x[t * n_cols + c]);
                }
                ck_assert_msg(fabs(y1[t * n_rows + r] - s) <= 1e-5 * m + 1e-6, "%s blas [%ld,%ld]",
                              tt->name, (long)t, (long)r);
                /* and the quantized path is close to it (activation
                 * quantization error only) */
                ck_assert_msg(fabs(y0[t * n_rows + r] - s) <= 0.02 * m + 1e-6, "%s quant vs float",
                              tt->name);
            }
        }
        ck_assert_int_eq(kinfer_matmul(pools[2], scratch, ss, type, w, n_rows, n_cols, x, nt, y1),
                         KINFER_OK);
        /* errors: scratch too small, bad shape, unknown type */
        ck_assert_int_eq(kinfer_matmul(NULL, scratch, ss - 1, type, w, n_rows, n_cols, x, nt, y1),
                         KINFER_E_INVALID_ARG);
        if (tt->blck_size > 1)
            ck_assert_int_eq(kinfer_matmul(NULL, scratch, ss, type, w, n_rows, n_cols - 1, x, nt, y1),
                             KINFER_E_INVALID_ARG);
        ck_assert_int_eq(kinfer_matmul(NULL, scratch, ss, KINFER_TYPE_IQ1_S, w, n_rows, 256, x, nt, y1),
                         KINFER_E_UNSUPPORTED);
        free(wd);
        free(scratch);
        free(x);
        free(y_ref);
        free(y0);
        free(y1);
    }
    pools_free(pools);
    free(w);
    free(wf);
}
END_TEST

/* A Q4_0 matrix of a multiple of 8 rows at AVX-512 (llama.cpp repacks it):
 * every token, batched or alone, on 1 to 3 threads, in llama.cpp's
 * repacked order. */
START_TEST(test_matmul_repacked)
{
    if (kinfer_cpu_kernels_get(KINFER_TYPE_Q4_0)->repacked == NULL)
        return;
    rng_state = 3100;
    const int type = KINFER_TYPE_Q4_0;
    const int64_t n_rows = 56, n_cols = 32 * 7, token_counts[] = {1, 5, 40};
    const size_t wrow = kinfer_row_size(type, n_cols), ab = kinfer_row_size(KINFER_TYPE_Q8_0, n_cols);
    uint8_t *w = xmalloc(wrow * (size_t)n_rows), *aq = xmalloc(ab);
    for (int64_t r = 0; r < n_rows; r++)
        random_row(type, w + r * wrow, n_cols);
    kinfer_threadpool *pools[N_POOLS];
    pools_new(pools);
    for (size_t tc = 0; tc < sizeof token_counts / sizeof token_counts[0]; tc++) {
        const int64_t nt = token_counts[tc];
        float *x = xmalloc((size_t)(nt * n_cols) * sizeof(float));
        float *y = xmalloc((size_t)(nt * n_rows) * sizeof(float));
        fill_gauss(x, nt * n_cols, 1.0f);
        const size_t ss = kinfer_matmul_scratch_size(type, n_cols, nt, 3);
        void *scratch = xmalloc(ss);
        for (int p = 0; p < N_POOLS; p++) {
            memset(y, 0, (size_t)(nt * n_rows) * sizeof(float));
            ck_assert_int_eq(kinfer_matmul_ex(pools[p], scratch, ss, type, w, n_rows, n_cols, x, nt, y,
                                              KINFER_MATMUL_QUANT), KINFER_OK);
            for (int64_t t = 0; t < nt; t++) {
                ck_assert_int_eq(kinfer_quantize_act_row(KINFER_TYPE_Q8_0, x + t * n_cols, aq, n_cols), KINFER_OK);
                for (int64_t r = 0; r < n_rows; r++) {
                    const float want = llama_dot_q4_0_repacked(w + r * wrow, aq, n_cols);
                    ck_assert_msg(kinfer_f32_bits(y[t * n_rows + r]) == kinfer_f32_bits(want),
                                  "%ld tokens, %d threads: token %ld row %ld: %.9g vs llama.cpp order %.9g",
                                  (long)nt, p + 1, (long)t, (long)r, y[t * n_rows + r], want);
                }
            }
        }
        free(scratch);
        free(x);
        free(y);
    }
    pools_free(pools);
    free(w);
    free(aq);
}
END_TEST

/* A gated pair's random gate and up matrices (n_rows rows of n_cols). */
static void random_gate_up(int type, int64_t n_rows, int64_t n_cols, uint8_t **wg, uint8_t **wu)
{
    const size_t wrow = kinfer_row_size(type, n_cols);
    *wg = xmalloc(wrow * (size_t)n_rows);
    *wu = xmalloc(wrow * (size_t)n_rows);
    for (int64_t r = 0; r < n_rows; r++) {
        random_row(type, *wg + r * wrow, n_cols);
        random_row(type, *wu + r * wrow, n_cols);
    }
}

/* The gated pair (the FFN's gate and up at once) against two QUANT
 * matmuls and the gate over each token's row: the same bits, for every
 * path (one token, batched kernels, repacked rows, a last row chunk cut
 * short) and thread count; and in mul_mat_id's orders (QUANT_MMID: an
 * expert's gate and up) against two QUANT_MMID matmuls, whose Q4_K tokens
 * each have the bits of a one-token matmul. */
START_TEST(test_matmul_gated)
{
    static const int types[] = {KINFER_TYPE_Q4_0, KINFER_TYPE_Q4_1, KINFER_TYPE_Q5_0, KINFER_TYPE_Q8_0,
                                KINFER_TYPE_Q4_K, KINFER_TYPE_Q6_K, KINFER_TYPE_F16};
    static const kinfer_gate_fn gates[] = {kinfer_silu_gate, kinfer_gelu_gate};
    const int type = types[_i / 2];
    const kinfer_gate_fn gate = gates[_i % 2];
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    rng_state = 3200 + (uint64_t)_i;
    const int64_t n_cols = tt->blck_size == 256 ? 512 : 32 * 5, row_counts[] = {37, 72}, token_counts[] = {1, 5, 40};
    kinfer_threadpool *pools[N_POOLS];
    pools_new(pools);
    for (size_t rc = 0; rc < 2; rc++) {
        const int64_t n_rows = row_counts[rc];
        uint8_t *wg, *wu;
        random_gate_up(type, n_rows, n_cols, &wg, &wu);
        for (size_t tc = 0; tc < sizeof token_counts / sizeof token_counts[0]; tc++) {
            const int64_t nt = token_counts[tc], ny = nt * n_rows;
            float *x = xmalloc((size_t)(nt * n_cols) * sizeof(float));
            float *g = xmalloc((size_t)ny * sizeof(float)), *u = xmalloc((size_t)ny * sizeof(float));
            float *y = xmalloc((size_t)ny * sizeof(float));
            fill_gauss(x, nt * n_cols, 1.0f);
            const size_t ss = kinfer_matmul_scratch_size(type, n_cols, nt, 3),
                         gs = kinfer_matmul_gated_scratch_size(type, n_cols, nt, 3);
            void *scratch = xmalloc(ss > gs ? ss : gs);
            for (int mp = 0; mp < 2; mp++) {
            const kinfer_matmul_path path = mp ? KINFER_MATMUL_QUANT_MMID : KINFER_MATMUL_QUANT;
            ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, wg, n_rows, n_cols, x, nt, g, path),
                             KINFER_OK);
            ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, wu, n_rows, n_cols, x, nt, u, path),
                             KINFER_OK);
            if (path == KINFER_MATMUL_QUANT_MMID && kinfer_gemm_groups_tokens(type))
                /* each token in the gemv order: a one-token matmul's bits */
                for (int64_t t = 0; t < nt; t++) {
                    float one[72];
                    ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, wg, n_rows, n_cols, x + t * n_cols, 1,
                                                      one, KINFER_MATMUL_QUANT), KINFER_OK);
                    for (int64_t r = 0; r < n_rows; r++)
                        ck_assert_msg(kinfer_f32_bits(one[r]) == kinfer_f32_bits(g[t * n_rows + r]),
                                      "%s mmid %ld rows, %ld tokens: token %ld row %ld %.9g vs one token %.9g",
                                      tt->name, (long)n_rows, (long)nt, (long)t, (long)r, g[t * n_rows + r], one[r]);
                }
            for (int64_t t = 0; t < nt; t++)
                gate(g + t * n_rows, g + t * n_rows, u + t * n_rows, n_rows);
            for (int p = 0; p < N_POOLS; p++) {
                memset(y, 0, (size_t)ny * sizeof(float));
                ck_assert_int_eq(kinfer_matmul_gated_ex(pools[p], scratch, gs, type, wg, wu, n_rows, n_cols, x,
                                                        nt, y, gate, path), KINFER_OK);
                for (int64_t i = 0; i < ny; i++)
                    ck_assert_msg(kinfer_f32_bits(y[i]) == kinfer_f32_bits(g[i]),
                                  "%s %s %ld rows, %ld tokens, %d threads: [%ld] %.9g vs %.9g", tt->name,
                                  mp ? "mmid" : "quant", (long)n_rows, (long)nt, p + 1, (long)i, y[i], g[i]);
            }
            }
            ck_assert_int_eq(kinfer_matmul_gated(pools[2], scratch, gs - 1, type, wg, wu, n_rows, n_cols, x, nt, y,
                                                 gate), KINFER_E_INVALID_ARG);
            free(scratch);
            free(x);
            free(g);
            free(u);
            free(y);
        }
        free(wg);
        free(wu);
    }
    pools_free(pools);
}
END_TEST

/* QUANT_ONE_TOKEN (a batch-invariant server's K-quants): each token's
 * output of a batched call, plain and gated, has the bits of its own
 * one-token call, for every thread count, row count (repacked or not, a
 * row tile cut short) and batch size. */
START_TEST(test_matmul_one_token)
{
    static const int types[] = {KINFER_TYPE_Q4_K, KINFER_TYPE_Q5_K, KINFER_TYPE_Q6_K, KINFER_TYPE_Q4_0,
                                KINFER_TYPE_Q4_1, KINFER_TYPE_Q8_0};
    const int type = types[_i];
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    rng_state = 4100 + (uint64_t)_i;
    const int64_t n_cols = tt->blck_size == 256 ? 512 : 32 * 7, row_counts[] = {37, 136}, token_counts[] = {2, 9, 33};
    kinfer_threadpool *pools[N_POOLS];
    pools_new(pools);
    for (size_t rc = 0; rc < 2; rc++) {
        const int64_t n_rows = row_counts[rc];
        uint8_t *wg, *wu;
        random_gate_up(type, n_rows, n_cols, &wg, &wu);
        for (size_t tc = 0; tc < sizeof token_counts / sizeof token_counts[0]; tc++) {
            const int64_t nt = token_counts[tc], ny = nt * n_rows;
            float *x = xmalloc((size_t)(nt * n_cols) * sizeof(float));
            float *want = xmalloc((size_t)ny * sizeof(float)), *want_g = xmalloc((size_t)ny * sizeof(float));
            float *y = xmalloc((size_t)ny * sizeof(float));
            fill_gauss(x, nt * n_cols, 1.0f);
            const size_t ss = kinfer_matmul_scratch_size(type, n_cols, nt, 3),
                         gs = kinfer_matmul_gated_scratch_size(type, n_cols, nt, 3);
            void *scratch = xmalloc(ss > gs ? ss : gs);
            for (int64_t t = 0; t < nt; t++) {
                ck_assert_int_eq(kinfer_matmul_ex(NULL, scratch, ss, type, wg, n_rows, n_cols, x + t * n_cols, 1,
                                                  want + t * n_rows, KINFER_MATMUL_QUANT), KINFER_OK);
                ck_assert_int_eq(kinfer_matmul_gated(NULL, scratch, gs, type, wg, wu, n_rows, n_cols, x + t * n_cols,
                                                     1, want_g + t * n_rows, kinfer_silu_gate), KINFER_OK);
            }
            for (int p = 0; p < N_POOLS; p++) {
                memset(y, 0, (size_t)ny * sizeof(float));
                ck_assert_int_eq(kinfer_matmul_ex(pools[p], scratch, ss, type, wg, n_rows, n_cols, x, nt, y,
                                                  KINFER_MATMUL_QUANT_ONE_TOKEN), KINFER_OK);
                for (int64_t i = 0; i < ny; i++)
                    ck_assert_msg(kinfer_f32_bits(y[i]) == kinfer_f32_bits(want[i]),
                                  "%s %ld rows, %ld tokens, %d threads: [%ld] %.9g vs %.9g", tt->name,
                                  (long)n_rows, (long)nt, p + 1, (long)i, y[i], want[i]);
                memset(y, 0, (size_t)ny * sizeof(float));
                ck_assert_int_eq(kinfer_matmul_gated_ex(pools[p], scratch, gs, type, wg, wu, n_rows, n_cols, x, nt, y,
                                                        kinfer_silu_gate, KINFER_MATMUL_QUANT_ONE_TOKEN), KINFER_OK);
                for (int64_t i = 0; i < ny; i++)
                    ck_assert_msg(kinfer_f32_bits(y[i]) == kinfer_f32_bits(want_g[i]),
                                  "gated %s %ld rows, %ld tokens, %d threads: [%ld] %.9g vs %.9g", tt->name,
                                  (long)n_rows, (long)nt, p + 1, (long)i, y[i], want_g[i]);
            }
            free(scratch);
            free(x);
            free(want);
            free(want_g);
            free(y);
        }
        free(wg);
        free(wu);
    }
    pools_free(pools);
}
END_TEST

/* Many small jobs through the pool: every slice of every job runs exactly
 * once, with that job's context (a fresh one on the stack each time, so a
 * late worker using a stale job would show up as a miss or a double run). */
typedef struct slice_job {
    int runs[8];
    int job;
    int *seen_job; /* per slice: last job number it ran for */
} slice_job;

static void slice_task(void *ctx, int ith, int nth)
{
    slice_job *j = ctx;
    ck_assert_int_lt(ith, nth);
    j->runs[ith]++;
    j->seen_job[ith] = j->job;
    /* a little uneven work, so slices finish out of order */
    volatile unsigned x = 0;
    for (int i = 0; i < (ith + j->job % 3) * 50; i++)
        x += (unsigned)i;
}

START_TEST(test_threadpool)
{
    for (int n = 1; n <= 4; n++) {
        kinfer_threadpool *pool = kinfer_threadpool_new(n);
        ck_assert_ptr_nonnull(pool);
        ck_assert_int_eq(kinfer_threadpool_size(pool), n);
        int seen[8] = {0};
        for (int job = 1; job <= 3000; job++) {
            slice_job j = {.job = job, .seen_job = seen};
            if (job % 7 == 0)
                kinfer_threadpool_run_then_sleep(pool, slice_task, &j);
            else
                kinfer_threadpool_run(pool, slice_task, &j);
            for (int i = 0; i < n; i++) {
                ck_assert_msg(j.runs[i] == 1, "n=%d job %d slice %d ran %d times", n, job, i, j.runs[i]);
                ck_assert_int_eq(seen[i], job);
            }
            for (int i = n; i < 8; i++)
                ck_assert_int_eq(j.runs[i], 0);
        }
        kinfer_threadpool_free(pool);
    }
    slice_job j = {.job = 1, .seen_job = (int[8]){0}};
    kinfer_threadpool_run(NULL, slice_task, &j);
    ck_assert_int_eq(j.runs[0], 1);
    kinfer_threadpool_free(NULL);
}
END_TEST

/* OpenBLAS is loaded on demand, not linked: it must load (it is installed
 * wherever this builds) and multiply. */
START_TEST(test_blas_loads)
{
    char err[256] = "";
    const kblas_api *blas = kblas_load(err, sizeof err);
    ck_assert_msg(blas != NULL, "%s", err);
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    float c[4] = {0};
    /* c = a . b^T, row-major 2x2 */
    blas->sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    ck_assert(c[0] == 17 && c[1] == 23 && c[2] == 39 && c[3] == 53);
    ck_assert_ptr_eq(kblas_load(NULL, 0), blas); /* once per process */
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_traits);
    tcase_add_loop_test(tc, test_fixture_dequantize, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_fixture_quantize, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_roundtrip, 0, N_WEIGHT_TYPES);
    tcase_add_loop_test(tc, test_vec_dot, 0, N_WEIGHT_TYPES);
    tcase_add_test(tc, test_fp16_exhaustive);
    tcase_add_test(tc, test_errors);
    tcase_add_loop_test(tc, test_matmul, 0, N_MATMUL_TYPES);
    tcase_add_test(tc, test_matmul_repacked);
    tcase_add_loop_test(tc, test_matmul_gated, 0, 14);
    tcase_add_loop_test(tc, test_matmul_one_token, 0, 6);
    tcase_add_test(tc, test_blas_loads);
    tcase_add_test(tc, test_threadpool);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(quant_suite());
}
