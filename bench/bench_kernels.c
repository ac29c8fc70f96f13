/*
 * bench_kernels.c — matrix-vector and matrix-matrix speed of the CPU
 * kernels, per weight type.
 *
 *   build/bin/bench_kernels [-r rows] [-c cols] [-p tokens] [-t threads] [-n reps] [-T types]
 *
 * GEMV (1 token) is reported as GB/s of weights read, beside the machine's
 * read bandwidth measured in the same run (a streaming sum over a buffer
 * much larger than the caches): the ratio says how close decode gets to
 * the memory limit.  GEMM (-p tokens) is reported as GFLOP/s for the
 * quantized path and the dequantize + OpenBLAS path, beside cblas_sgemm on
 * f32 weights of the same shape.  For the types with batched kernels
 * (cpu/gemm.h) the kernel alone is timed too, on one thread: the first 64
 * weight rows (decoded where the type has a decoder) against all tokens,
 * packed beforehand, as the matmul calls it (so in cache: the arithmetic,
 * not the memory).  Timings are the best of -n repetitions.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "core/threadpool.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct bw_job {
    const uint64_t *buf;
    size_t n;
    uint64_t sums[256];
} bw_job;

static void bw_task(void *p, int ith, int nth)
{
    bw_job *job = p;
    const size_t lo = job->n * (size_t)ith / (size_t)nth, hi = job->n * (size_t)(ith + 1) / (size_t)nth;
    /* four independent chains of 16-byte vector loads (SSE2 / NEON, no
     * special flags): far more than DRAM can feed one core */
    typedef uint64_t v2u64 __attribute__((vector_size(16)));
    v2u64 a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0;
    size_t i = lo & ~(size_t)7;
    for (; i + 8 <= hi; i += 8) {
        const v2u64 *v = (const v2u64 *)(job->buf + i);
        a0 += v[0];
        a1 += v[1];
        a2 += v[2];
        a3 += v[3];
    }
    const v2u64 s = a0 + a1 + a2 + a3;
    job->sums[ith & 255] = s[0] + s[1];
}

/* Read bandwidth in GB/s with the pool's threads, best of reps. */
static double read_bandwidth(kinfer_threadpool *pool, int reps)
{
    const size_t n = (size_t)1 << 27; /* 1 GiB */
    uint64_t *buf = aligned_alloc(64, n * sizeof(uint64_t));
    if (buf == NULL)
        return 0.0;
    for (size_t i = 0; i < n; i++)
        buf[i] = i;
    bw_job job = {buf, n, {0}};
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        kinfer_threadpool_run(pool, bw_task, &job);
        const double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    free(buf);
    return (double)n * sizeof(uint64_t) / best / 1e9;
}

static void fill_random(float *x, size_t n, unsigned seed)
{
    unsigned s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
}

static double time_matmul(kinfer_threadpool *pool, void *scratch, size_t ss, int type, const void *w,
                          int64_t rows, int64_t cols, const float *x, int64_t nt, float *y,
                          kinfer_matmul_path path, int reps)
{
    /* one untimed call: page faults and cold caches are not the kernel's */
    if (kinfer_matmul_ex(pool, scratch, ss, type, w, rows, cols, x, nt, y, path) != KINFER_OK)
        return -1.0;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        if (kinfer_matmul_ex(pool, scratch, ss, type, w, rows, cols, x, nt, y, path) != KINFER_OK)
            return -1.0;
        const double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    return best;
}

/* GFLOP/s of the batched kernel alone (see the top), or 0 for a type
 * without one */
static double gemm_kernel_gflops(int type, const void *w, int64_t rows, int64_t cols, const float *x, int64_t nt,
                                 float *y, int reps)
{
    const kinfer_gemm_kernels gk = kinfer_gemm_get(type);
    const kinfer_cpu_kernels *k = kinfer_cpu_kernels_get(type);
    const kinfer_cpu_kernels *ka = k != NULL ? kinfer_cpu_kernels_get(k->vec_dot_type) : NULL;
    if (gk.gemm == NULL || ka == NULL || cols % kinfer_type_traits_get(type)->blck_size != 0)
        return 0.0;
    const int64_t G = KINFER_GEMM_MAX_NT, nr = rows < 64 ? rows : 64, ntg = (nt + G - 1) / G * G;
    const size_t wrow = kinfer_row_size(type, cols), arow = kinfer_row_size(k->vec_dot_type, cols);
    const size_t prow = kinfer_gemm_packed_size(cols);
    const size_t drow = gk.decode != NULL ? kinfer_gemm_decoded_row_size(cols) : wrow;
    uint8_t *aq = malloc(arow * (size_t)ntg), *ap = aligned_alloc(64, prow * (size_t)ntg);
    uint8_t *wd = aligned_alloc(64, drow * (size_t)nr);
    if (aq == NULL || ap == NULL || wd == NULL)
        return 0.0;
    for (int64_t t = 0; t < nt; t++) {
        ka->from_float_act(x + t * cols, aq + (size_t)t * arow, cols);
        if (gk.pack != NULL)
            gk.pack(cols, aq + (size_t)t * arow, ap + (size_t)t * prow);
    }
    for (int64_t t = 0; gk.pack_group != NULL && t < nt; t += G)
        gk.pack_group(cols, aq + (size_t)t * arow, arow, (int)(nt - t < G ? nt - t : G), ap + (size_t)t * prow);
    if (gk.decode != NULL)
        gk.decode(cols, w, wrow, (int)nr, wd);
    else
        memcpy(wd, w, wrow * (size_t)nr);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { /* the first is a warm-up */
        const double t0 = now_s();
        for (int64_t t = 0; t < nt; t += G)
            gk.gemm(cols, wd, drow, (int)nr, ap + (size_t)t * prow, prow, (int)(nt - t < G ? nt - t : G),
                    y + t * nr, (size_t)nr);
        const double dt = now_s() - t0;
        if (r > 0 && dt < best)
            best = dt;
    }
    free(aq);
    free(ap);
    free(wd);
    return 2.0 * (double)nr * (double)cols * (double)nt / best / 1e9;
}

int main(int argc, char **argv)
{
    int64_t rows = 14336, cols = 4096, tokens = 512;
    int threads = 0, reps = 5;
    const char *type_list = "Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,IQ4_NL,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,IQ4_XS,F16,BF16,F32";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-r")) rows = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) cols = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) tokens = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-T")) type_list = argv[i + 1];
        else {
            fprintf(stderr, "usage: %s [-r rows] [-c cols] [-p tokens] [-t threads] [-n reps] [-T types]\n", argv[0]);
            return 2;
        }
    }
    kinfer_threadpool *pool1 = kinfer_threadpool_new(1);
    kinfer_threadpool *pooln = kinfer_threadpool_new(threads);
    const int nth = kinfer_threadpool_size(pooln);
    printf("kernels: %s, weights %lld x %lld, %d threads, best of %d\n",
           kinfer_cpu_level_name(kinfer_cpu_best_level()), (long long)rows, (long long)cols, nth, reps);
    /* best of at least 10: a shared machine only ever makes it look slower */
    const int bw_reps = reps > 10 ? reps : 10;
    const double bw1 = read_bandwidth(pool1, bw_reps), bwn = read_bandwidth(pooln, bw_reps);
    printf("read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n\n", bw1, bwn, nth);

    float *wf = malloc((size_t)(rows * cols) * sizeof(float));
    float *x = malloc((size_t)(tokens * cols) * sizeof(float));
    float *y = malloc((size_t)(tokens * rows) * sizeof(float));
    if (!wf || !x || !y)
        return 1;
    fill_random(wf, (size_t)(rows * cols), 1);
    fill_random(x, (size_t)(tokens * cols), 2);

    /* f32 sgemm reference: OpenBLAS with its own threads */
    double sgemm_best = 1e30;
    for (int r = 0; r <= reps; r++) { /* the first is a warm-up */
        const double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tokens, (int)rows, (int)cols, 1.0f,
                    x, (int)cols, wf, (int)cols, 0.0f, y, (int)rows);
        const double dt = now_s() - t0;
        if (r > 0 && dt < sgemm_best)
            sgemm_best = dt;
    }
    const double flops = 2.0 * (double)rows * (double)cols * (double)tokens;
    printf("cblas_sgemm f32, %lld tokens: %.1f GFLOP/s\n\n", (long long)tokens, flops / sgemm_best / 1e9);

    printf("| type   | GEMV GB/s 1t | GEMV GB/s %dt | %% of read BW | GEMV ms %dt | pp%lld quant GFLOP/s | pp%lld BLAS GFLOP/s | gemm kernel GFLOP/s 1t |\n",
           nth, nth, (long long)tokens, (long long)tokens);
    printf("|--------|-------------:|-------------:|-------------:|-----------:|------------------:|-----------------:|-----------------------:|\n");
    char list[512];
    snprintf(list, sizeof list, "%s", type_list);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        int type = -1;
        for (int t = 0; t < KINFER_TYPE_COUNT; t++)
            if (kinfer_type_name(t) && !strcmp(kinfer_type_name(t), name))
                type = t;
        if (type < 0 || kinfer_cpu_kernels_get(type) == NULL) {
            printf("| %-6s | unsupported |\n", name);
            continue;
        }
        const size_t wbytes = kinfer_row_size(type, cols) * (size_t)rows;
        void *w = malloc(wbytes);
        const size_t ss = kinfer_matmul_scratch_size(type, cols, tokens, nth);
        void *scratch = aligned_alloc(64, (ss + 63) & ~(size_t)63);
        if (!w || !scratch)
            return 1;
        kinfer_quantize_row(type, wf, w, rows * cols);
        const double g1 = time_matmul(pool1, scratch, ss, type, w, rows, cols, x, 1, y, KINFER_MATMUL_QUANT, reps);
        const double gn = time_matmul(pooln, scratch, ss, type, w, rows, cols, x, 1, y, KINFER_MATMUL_QUANT, reps);
        const int preps = reps > 2 ? 2 : reps;
        const double pq = time_matmul(pooln, scratch, ss, type, w, rows, cols, x, tokens, y, KINFER_MATMUL_QUANT, preps);
        const double pb = time_matmul(pooln, scratch, ss, type, w, rows, cols, x, tokens, y, KINFER_MATMUL_BLAS, preps);
        const double gk = gemm_kernel_gflops(type, w, rows, cols, x, tokens, y, reps);
        printf("| %-6s | %12.1f | %12.1f | %11.0f%% | %10.2f | %17.1f | %16.1f | %22.1f |\n", name,
               wbytes / g1 / 1e9, wbytes / gn / 1e9, 100.0 * (wbytes / gn / 1e9) / bwn, gn * 1e3,
               flops / pq / 1e9, flops / pb / 1e9, gk);
        fflush(stdout);
        free(w);
        free(scratch);
    }
    free(wf);
    free(x);
    free(y);
    kinfer_threadpool_free(pool1);
    kinfer_threadpool_free(pooln);
    return 0;
}
