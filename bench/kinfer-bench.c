/*
 * kinfer-bench — prompt-processing and generation speed, measured the way
 * llama.cpp's llama-bench measures them so the two can be compared:
 *
 *   pp<N>     N random tokens decoded as batches of n_batch into an empty
 *             context (or one holding -d tokens); t/s = N / time
 *   tg<N>     N tokens decoded one at a time; t/s = N / time
 *   pp<P>+tg<N>  both, t/s = (P + N) / total time
 *
 * Token ids are random (no tokenizer involved) and nothing is sampled: only
 * kinfer_decode is timed.  Load time is reported apart, from a cold and a
 * warm page cache: open the model, make a context, decode one token.  Every test runs once untimed as a warm-up, then
 * -r times; the table shows mean ± standard deviation of the repetitions.
 * Every parameter takes a comma list and every combination is run.
 *
 *   kinfer-bench -m model.gguf [-m other.gguf] -p 512 -n 128 -t 2 -r 5 -o md
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kinfer.h"

/* ------------------------------------------------------------ utilities */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kinfer-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Peak resident set of this process so far, in bytes. */
static uint64_t peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024u;
}

/* A growable list of ints or strings parsed from comma lists. */
typedef struct int_list {
    int *v;
    int n;
    int given;  /* set on the command line (replaces the default) */
} int_list;

typedef struct str_list {
    char **v;
    int n;
    int given;
} str_list;

static void int_push(int_list *l, int x)
{
    l->v = realloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
    if (!l->v) die("out of memory");
    l->v[l->n++] = x;
}

static void str_push(str_list *l, const char *s)
{
    l->v = realloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
    if (!l->v) die("out of memory");
    l->v[l->n] = strdup(s);
    if (!l->v[l->n]) die("out of memory");
    l->n++;
}

static int parse_int(const char *s, const char *flag)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -1000000000L || v > 1000000000L)
        die("%s: '%s' is not an integer", flag, s);
    return (int)v;
}

/* Append each element of a comma list; the first use replaces the default. */
static void parse_int_list(int_list *l, const char *arg, const char *flag)
{
    if (!l->given) l->n = 0;
    l->given = 1;
    char *copy = strdup(arg), *save = NULL;
    if (!copy) die("out of memory");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        int_push(l, parse_int(tok, flag));
    free(copy);
}

static void parse_str_list(str_list *l, const char *arg)
{
    if (!l->given) l->n = 0;
    l->given = 1;
    char *copy = strdup(arg), *save = NULL;
    if (!copy) die("out of memory");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        str_push(l, tok);
    free(copy);
}

/* "f16" / "q8_0" / "f32" -> type, as llama.cpp spells them. */
static kinfer_type kv_type_of(const char *s)
{
    if (!strcasecmp(s, "f16")) return KINFER_TYPE_F16;
    if (!strcasecmp(s, "f32")) return KINFER_TYPE_F32;
    if (!strcasecmp(s, "q8_0")) return KINFER_TYPE_Q8_0;
    die("unknown KV cache type '%s' (f16, q8_0, f32)", s);
}

static const char *kv_type_str(kinfer_type t)
{
    return t == KINFER_TYPE_F32 ? "f32" : t == KINFER_TYPE_Q8_0 ? "q8_0" : "f16";
}

/* -fa as llama-bench takes it: on|off|auto or 1|0|-1 */
static kinfer_flash_attn fa_of(const char *s)
{
    if (!strcasecmp(s, "on") || !strcmp(s, "1")) return KINFER_FLASH_ATTN_ON;
    if (!strcasecmp(s, "off") || !strcmp(s, "0")) return KINFER_FLASH_ATTN_OFF;
    if (!strcasecmp(s, "auto") || !strcmp(s, "-1")) return KINFER_FLASH_ATTN_AUTO;
    die("-fa: '%s' is not on, off or auto", s);
}

static const char *fa_str(kinfer_flash_attn f)
{
    return f == KINFER_FLASH_ATTN_ON ? "on" : f == KINFER_FLASH_ATTN_OFF ? "off" : "auto";
}

/* ---------------------------------------------------------------- model */

static void ctx_die(kinfer_context *ctx, kinfer_status st, const char *what)
{
    die("%s: %s: %s", what, kinfer_status_str(st), kinfer_context_errmsg(ctx));
}


typedef struct bench_model {
    const char *path;
    kinfer_model *model;
    char desc[256];        /* kinfer_model_desc */
    uint64_t size;         /* bytes of tensor data */
    uint64_t n_params;     /* elements of all tensors */
    int32_t n_vocab;
    kinfer_token bos;      /* first token of every prompt, as llama-bench; -1 = none */
    double load_cold_ms, load_warm_ms; /* to the first token: see measure_load */
} bench_model;

/* Time from nothing to a first token's logits: load, a small context, one
 * decode (which reads every layer's weights from the mapped file). */
static double time_to_first_token(const char *path, int n_threads)
{
    const uint64_t t0 = now_ns();
    kinfer_model *model = NULL;
    kinfer_status st = kinfer_model_load(path, NULL, &model);
    if (st != KINFER_OK) die("%s: %s: %s", path, kinfer_status_str(st), kinfer_model_errmsg(model));
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 16;
    cp.n_threads = n_threads;
    kinfer_context *ctx = NULL;
    if ((st = kinfer_context_new(model, &cp, &ctx)) != KINFER_OK) ctx_die(ctx, st, "context");
    kinfer_token tok = kinfer_token_bos(model) >= 0 ? kinfer_token_bos(model) : 0;
    kinfer_pos pos = 0;
    kinfer_batch b = {.n_tokens = 1, .token = &tok, .pos = &pos};
    if ((st = kinfer_decode(ctx, &b)) != KINFER_OK) ctx_die(ctx, st, "decode (load time)");
    const double ms = (double)(now_ns() - t0) / 1e6;
    kinfer_context_free(ctx);
    kinfer_model_free(model);
    return ms;
}

/* Load time from a cold page cache (the file's cached pages dropped first;
 * the kernel may keep pages another process maps) and then a warm one. */
static void measure_load(bench_model *bm, int n_threads)
{
    int fd = open(bm->path, O_RDONLY);
    if (fd < 0) die("%s: %s", bm->path, strerror(errno));
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    bm->load_cold_ms = time_to_first_token(bm->path, n_threads);
    bm->load_warm_ms = time_to_first_token(bm->path, n_threads);
}

static void model_open(bench_model *bm, const char *path, int n_threads)
{
    memset(bm, 0, sizeof *bm);
    bm->path = path;
    measure_load(bm, n_threads);
    kinfer_status st = kinfer_model_load(path, NULL, &bm->model);
    if (st != KINFER_OK)
        die("%s: %s: %s", path, kinfer_status_str(st), kinfer_model_errmsg(bm->model));
    if (kinfer_model_desc(bm->model, bm->desc, sizeof bm->desc) < 0)
        snprintf(bm->desc, sizeof bm->desc, "?");
    for (int64_t i = 0; i < kinfer_tensor_count(bm->model); i++) {
        kinfer_tensor_info ti;
        if (kinfer_tensor_get_info(bm->model, i, &ti) != KINFER_OK) continue;
        bm->size += ti.size;
        bm->n_params += ti.n_elements;
    }
    bm->n_vocab = kinfer_model_n_vocab(bm->model);
    if (bm->n_vocab <= 0) die("%s: kinfer cannot run this model's architecture", path);
    bm->bos = kinfer_vocab_add_bos(bm->model) ? kinfer_token_bos(bm->model) : KINFER_TOKEN_NULL;
}

/* ----------------------------------------------------------------- tests */

typedef struct test_cfg {
    int n_prompt, n_gen, n_depth;
    int n_batch, n_ubatch, n_threads, n_gpu_layers;
    kinfer_type type_k, type_v;
    kinfer_flash_attn flash_attn;
} test_cfg;

typedef struct test_result {
    test_cfg cfg;
    const bench_model *bm;
    const char *backend;
    int n_reps;
    uint64_t *samples_ns;
    double avg_ns, stddev_ns, avg_ts, stddev_ts;
    uint64_t peak_rss;
    char time_str[32];
} test_result;

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static kinfer_token random_token(int32_t n_vocab)
{
    /* xorshift64*: deterministic across runs, quality irrelevant here */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (kinfer_token)((rng_state * 2685821657736338717ULL >> 33) % (uint64_t)n_vocab);
}

/* Decode n random tokens (after a BOS when the model wants one) at
 * positions pos0.. in batches of n_batch. */
static void decode_prompt(kinfer_context *ctx, const bench_model *bm, int pos0, int n,
                          int n_batch, kinfer_token *tok, kinfer_pos *pos)
{
    int32_t n_vocab = bm->n_vocab;
    for (int done = 0; done < n;) {
        int m = n - done < n_batch ? n - done : n_batch;
        for (int i = 0; i < m; i++) {
            tok[i] = random_token(n_vocab);
            pos[i] = pos0 + done + i;
        }
        if (done == 0 && bm->bos >= 0) tok[0] = bm->bos;
        kinfer_batch b = {.n_tokens = m, .token = tok, .pos = pos};
        kinfer_status st = kinfer_decode(ctx, &b);
        if (st != KINFER_OK) ctx_die(ctx, st, "decode (prompt)");
        done += m;
    }
}

/* Decode n tokens one at a time at positions pos0.. */
static void decode_gen(kinfer_context *ctx, int32_t n_vocab, int pos0, int n)
{
    kinfer_token t = random_token(n_vocab);
    for (int i = 0; i < n; i++) {
        kinfer_pos p = pos0 + i;
        kinfer_batch b = {.n_tokens = 1, .token = &t, .pos = &p};
        kinfer_status st = kinfer_decode(ctx, &b);
        if (st != KINFER_OK) ctx_die(ctx, st, "decode (generation)");
        t = random_token(n_vocab);   /* what a sampler would have picked */
    }
}

static void run_test(const bench_model *bm, const test_cfg *cfg, int reps, int warmup,
                     test_result *res)
{
    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = (uint32_t)(cfg->n_depth + cfg->n_prompt + cfg->n_gen);
    if (cp.n_ctx < 16) cp.n_ctx = 16;
    cp.n_batch = (uint32_t)cfg->n_ubatch; /* the context's micro-batch, as llama.cpp's n_ubatch */
    cp.n_threads = cfg->n_threads;
    cp.n_gpu_layers = cfg->n_gpu_layers;
    cp.type_k = cfg->type_k;
    cp.type_v = cfg->type_v;
    cp.flash_attn = cfg->flash_attn;
    kinfer_context *ctx = NULL;
    kinfer_status st = kinfer_context_new(bm->model, &cp, &ctx);
    if (st != KINFER_OK) ctx_die(ctx, st, "context");

    int nb = cfg->n_batch;
    kinfer_token *tok = malloc((size_t)nb * sizeof *tok);
    kinfer_pos *pos = malloc((size_t)nb * sizeof *pos);
    if (!tok || !pos) die("out of memory");

    /* the depth is decoded once; each repetition cuts the cache back to it */
    if (cfg->n_depth > 0) decode_prompt(ctx, bm, 0, cfg->n_depth, nb, tok, pos);

    if (warmup) {
        if (cfg->n_prompt > 0)
            decode_prompt(ctx, bm, cfg->n_depth, cfg->n_prompt, nb, tok, pos);
        if (cfg->n_gen > 0) {
            kinfer_kv_seq_rm(ctx, 0, cfg->n_depth, -1);
            decode_gen(ctx, bm->n_vocab, cfg->n_depth, 1);
        }
    }

    memset(res, 0, sizeof *res);
    res->cfg = *cfg;
    res->bm = bm;
    res->n_reps = reps;
    res->samples_ns = calloc((size_t)reps, sizeof *res->samples_ns);
    if (!res->samples_ns) die("out of memory");
    time_t wall = time(NULL);
    struct tm tmv;
    strftime(res->time_str, sizeof res->time_str, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&wall, &tmv));

    for (int r = 0; r < reps; r++) {
        if (cfg->n_depth > 0)
            st = kinfer_kv_seq_rm(ctx, 0, cfg->n_depth, -1);
        else
            st = kinfer_kv_clear(ctx);
        if (st != KINFER_OK) ctx_die(ctx, st, "kv reset");
        uint64_t t0 = now_ns();
        if (cfg->n_prompt > 0)
            decode_prompt(ctx, bm, cfg->n_depth, cfg->n_prompt, nb, tok, pos);
        if (cfg->n_gen > 0)
            decode_gen(ctx, bm->n_vocab, cfg->n_depth + cfg->n_prompt, cfg->n_gen);
        res->samples_ns[r] = now_ns() - t0;
    }

    /* statistics over the repetitions, of the times and of the rates */
    double n_tok = cfg->n_prompt + cfg->n_gen;
    double sum_ns = 0, sum_ts = 0;
    for (int r = 0; r < reps; r++) {
        sum_ns += (double)res->samples_ns[r];
        sum_ts += n_tok * 1e9 / (double)res->samples_ns[r];
    }
    res->avg_ns = sum_ns / reps;
    res->avg_ts = sum_ts / reps;
    double var_ns = 0, var_ts = 0;
    for (int r = 0; r < reps; r++) {
        double ts = n_tok * 1e9 / (double)res->samples_ns[r];
        var_ns += ((double)res->samples_ns[r] - res->avg_ns) * ((double)res->samples_ns[r] - res->avg_ns);
        var_ts += (ts - res->avg_ts) * (ts - res->avg_ts);
    }
    /* sample standard deviation, as llama-bench reports */
    res->stddev_ns = reps > 1 ? sqrt(var_ns / (reps - 1)) : 0.0;
    res->stddev_ts = reps > 1 ? sqrt(var_ts / (reps - 1)) : 0.0;
    res->backend = (cfg->n_gpu_layers != 0 && kinfer_cuda_device_count(NULL) > 0) ? "CUDA" : "CPU";
    res->peak_rss = peak_rss_bytes();

    free(tok);
    free(pos);
    kinfer_context_free(ctx);
}

/* ---------------------------------------------------------------- output */

enum out_fmt { OUT_MD, OUT_CSV, OUT_JSON, OUT_JSONL };

static void test_name(const test_cfg *c, char *buf, size_t size)
{
    int n;
    if (c->n_prompt > 0 && c->n_gen > 0)
        n = snprintf(buf, size, "pp%d+tg%d", c->n_prompt, c->n_gen);
    else if (c->n_prompt > 0)
        n = snprintf(buf, size, "pp%d", c->n_prompt);
    else
        n = snprintf(buf, size, "tg%d", c->n_gen);
    if (c->n_depth > 0 && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " @ d%d", c->n_depth);
}

/* The markdown table's columns: title, width, right-aligned. */
static const struct md_col {
    const char *title;
    int width, right;
} md_cols[] = {
    {"model", 30, 0}, {"size", 10, 1}, {"params", 10, 1}, {"backend", 7, 0}, {"ngl", 4, 1},
    {"threads", 7, 1}, {"n_batch", 7, 1}, {"n_ubatch", 8, 1}, {"ctk", 4, 0}, {"ctv", 4, 0}, {"fa", 4, 0}, {"test", 15, 1},
    {"t/s", 20, 1}, {"load cold/warm ms", 17, 1}, {"peak RSS", 9, 1},
};

static void print_md_header(void)
{
    size_t n = sizeof md_cols / sizeof md_cols[0];
    for (size_t i = 0; i < n; i++)
        printf("| %*s%s ", md_cols[i].right ? md_cols[i].width : -md_cols[i].width,
               md_cols[i].title, "");
    printf("|\n");
    for (size_t i = 0; i < n; i++) {
        printf("| ");
        for (int j = 0; j < md_cols[i].width - md_cols[i].right; j++) putchar('-');
        printf("%s ", md_cols[i].right ? ":" : "");
    }
    printf("|\n");
}

static void print_md_row(const test_result *r)
{
    char name[64], ts[64], size[32], params[32], rss[32], load[48];
    test_name(&r->cfg, name, sizeof name);
    snprintf(ts, sizeof ts, "%.2f ± %.2f", r->avg_ts, r->stddev_ts);
    snprintf(size, sizeof size, "%.2f MiB", (double)r->bm->size / (1024.0 * 1024.0));
    snprintf(params, sizeof params, "%.2f M", (double)r->bm->n_params / 1e6);
    snprintf(rss, sizeof rss, "%.0f MiB", (double)r->peak_rss / (1024.0 * 1024.0));
    snprintf(load, sizeof load, "%.1f / %.1f", r->bm->load_cold_ms, r->bm->load_warm_ms);
    /* "±" is two bytes but one column: pad by one more */
    printf("| %-30.30s | %10s | %10s | %-7s | %4d | %7d | %7d | %8d | %-4s | %-4s | %-4s | %15s | %21s | %17s | %9s |\n",
           r->bm->desc, size, params, r->backend, r->cfg.n_gpu_layers, r->cfg.n_threads,
           r->cfg.n_batch, r->cfg.n_ubatch, kv_type_str(r->cfg.type_k), kv_type_str(r->cfg.type_v), fa_str(r->cfg.flash_attn), name, ts,
           load, rss);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json_obj(const test_result *r)
{
    const test_cfg *c = &r->cfg;
    printf("{\"kinfer_version\": \"%s\", \"model_filename\": ", kinfer_version());
    json_str(r->bm->path);
    printf(", \"model_type\": ");
    json_str(r->bm->desc);
    printf(", \"model_size\": %llu, \"model_n_params\": %llu, \"backends\": \"%s\", "
           "\"n_batch\": %d, \"n_ubatch\": %d, \"n_threads\": %d, \"type_k\": \"%s\", \"type_v\": \"%s\", "
           "\"flash_attn\": \"%s\", \"n_gpu_layers\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, "
           "\"test_time\": \"%s\", \"load_cold_ms\": %.3f, \"load_warm_ms\": %.3f, "
           "\"peak_rss_bytes\": %llu, "
           "\"avg_ns\": %.0f, \"stddev_ns\": %.0f, \"avg_ts\": %.6f, \"stddev_ts\": %.6f, "
           "\"samples_ns\": [",
           (unsigned long long)r->bm->size, (unsigned long long)r->bm->n_params, r->backend,
           c->n_batch, c->n_ubatch, c->n_threads, kv_type_str(c->type_k), kv_type_str(c->type_v),
           fa_str(c->flash_attn), c->n_gpu_layers, c->n_prompt, c->n_gen, c->n_depth, r->time_str, r->bm->load_cold_ms, r->bm->load_warm_ms,
           (unsigned long long)r->peak_rss, r->avg_ns, r->stddev_ns, r->avg_ts, r->stddev_ts);
    for (int i = 0; i < r->n_reps; i++)
        printf("%s%llu", i ? ", " : " ", (unsigned long long)r->samples_ns[i]);
    printf(" ], \"samples_ts\": [");
    double n_tok = c->n_prompt + c->n_gen;
    for (int i = 0; i < r->n_reps; i++)
        printf("%s%.3f", i ? ", " : " ", n_tok * 1e9 / (double)r->samples_ns[i]);
    printf(" ]}");
}

static void print_csv_header(void)
{
    printf("kinfer_version,model_filename,model_type,model_size,model_n_params,backends,n_batch,"
           "n_ubatch,n_threads,type_k,type_v,flash_attn,n_gpu_layers,n_prompt,n_gen,n_depth,test_time,load_cold_ms,load_warm_ms,"
           "peak_rss_bytes,avg_ns,stddev_ns,avg_ts,stddev_ts\n");
}

static void csv_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void print_csv_row(const test_result *r)
{
    const test_cfg *c = &r->cfg;
    printf("\"%s\",", kinfer_version());
    csv_str(r->bm->path);
    putchar(',');
    csv_str(r->bm->desc);
    printf(",%llu,%llu,\"%s\",%d,%d,%d,\"%s\",\"%s\",\"%s\",%d,%d,%d,%d,\"%s\",%.3f,%.3f,%llu,%.0f,%.0f,%.6f,%.6f\n",
           (unsigned long long)r->bm->size, (unsigned long long)r->bm->n_params, r->backend,
           c->n_batch, c->n_ubatch, c->n_threads, kv_type_str(c->type_k), kv_type_str(c->type_v),
           fa_str(c->flash_attn), c->n_gpu_layers, c->n_prompt, c->n_gen, c->n_depth, r->time_str, r->bm->load_cold_ms, r->bm->load_warm_ms,
           (unsigned long long)r->peak_rss, r->avg_ns, r->stddev_ns, r->avg_ts, r->stddev_ts);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kinfer-bench [options]\n"
            "  -m, --model FILE          GGUF model (repeatable, or a comma list)\n"
            "  -p, --n-prompt N,...      prompt sizes (default 512)\n"
            "  -n, --n-gen N,...         generation sizes (default 128)\n"
            "  -pg PP,TG                 a prompt + generation test (repeatable)\n"
            "  -d, --n-depth N,...       tokens already in the KV cache (default 0)\n"
            "  -b, --batch-size N,...    tokens per kinfer_decode call (default 2048)\n"
            "  -ub, --ubatch-size N,...  tokens per micro-batch (the context's n_batch; default 512)\n"
            "  -t, --threads N,...       threads (default: online cores)\n"
            "  -ngl, --n-gpu-layers N,...  layers on the GPU (-1 = as many as fit; default 99 with a GPU, else 0)\n"
            "  -ctk, --cache-type-k T,...  KV key type f16|q8_0|f32 (default f16)\n"
            "  -ctv, --cache-type-v T,...  KV value type (default f16)\n"
            "  -fa, --flash-attn F,...   flash attention on|off|auto (also 1|0|-1; default auto)\n"
            "  -r, --repetitions N       timed runs per test (default 5)\n"
            "  -o, --output FMT          md|csv|json|jsonl (default md)\n"
            "  --no-warmup               skip the untimed warm-up run\n"
            "  --progress                print each test as it starts, on stderr\n"
            "Every combination of the listed values is run.\n");
}

int main(int argc, char **argv)
{
    str_list models = {0}, ctk = {0}, ctv = {0}, fa = {0};
    int_list n_prompt = {0}, n_gen = {0}, depth = {0}, batch = {0}, ubatch = {0}, threads = {0},
             ngl = {0};
    int_list pg = {0};   /* pairs */
    int reps = 5, warmup = 1, progress = 0;
    enum out_fmt fmt = OUT_MD;

    int_push(&n_prompt, 512);
    int_push(&n_gen, 128);
    int_push(&depth, 0);
    int_push(&batch, 2048);
    int_push(&ubatch, 512);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int_push(&threads, ncpu > 0 ? (int)ncpu : 1);
    int_push(&ngl, kinfer_cuda_device_count(NULL) > 0 ? 99 : 0); /* llama-bench's 99, with a GPU */
    str_push(&ctk, "f16");
    str_push(&ctv, "f16");
    str_push(&fa, "auto");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-warmup")) {
            warmup = 0;
            continue;
        }
        if (!strcmp(a, "--progress")) {
            progress = 1;
            continue;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            die("%s needs a value", a);
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            parse_str_list(&models, v);   /* repeated -m accumulate */
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt"))
            parse_int_list(&n_prompt, v, a);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen"))
            parse_int_list(&n_gen, v, a);
        else if (!strcmp(a, "-pg")) {
            int_list one = {0};
            parse_int_list(&one, v, a);
            if (one.n != 2 || one.v[0] < 0 || one.v[1] < 0) die("-pg takes PP,TG");
            int_push(&pg, one.v[0]);
            int_push(&pg, one.v[1]);
            free(one.v);
        } else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth"))
            parse_int_list(&depth, v, a);
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size"))
            parse_int_list(&batch, v, a);
        else if (!strcmp(a, "-ub") || !strcmp(a, "--ubatch-size"))
            parse_int_list(&ubatch, v, a);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            parse_int_list(&threads, v, a);
        else if (!strcmp(a, "-ngl") || !strcmp(a, "--n-gpu-layers"))
            parse_int_list(&ngl, v, a);
        else if (!strcmp(a, "-ctk") || !strcmp(a, "--cache-type-k"))
            parse_str_list(&ctk, v);
        else if (!strcmp(a, "-ctv") || !strcmp(a, "--cache-type-v"))
            parse_str_list(&ctv, v);
        else if (!strcmp(a, "-fa") || !strcmp(a, "--flash-attn"))
            parse_str_list(&fa, v);
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions"))
            reps = parse_int(v, a);
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!strcmp(v, "md")) fmt = OUT_MD;
            else if (!strcmp(v, "csv")) fmt = OUT_CSV;
            else if (!strcmp(v, "json")) fmt = OUT_JSON;
            else if (!strcmp(v, "jsonl")) fmt = OUT_JSONL;
            else die("-o: unknown format '%s' (md, csv, json, jsonl)", v);
        } else {
            usage(stderr);
            die("unknown option %s", a);
        }
    }
    if (models.n == 0) {
        usage(stderr);
        die("no model given (-m)");
    }
    if (reps < 1) die("-r must be at least 1");
    for (int i = 0; i < n_prompt.n; i++) if (n_prompt.v[i] < 0) die("-p must be >= 0");
    for (int i = 0; i < n_gen.n; i++) if (n_gen.v[i] < 0) die("-n must be >= 0");
    for (int i = 0; i < depth.n; i++) if (depth.v[i] < 0) die("-d must be >= 0");
    for (int i = 0; i < batch.n; i++) if (batch.v[i] < 1) die("-b must be >= 1");
    for (int i = 0; i < ubatch.n; i++) if (ubatch.v[i] < 1) die("-ub must be >= 1");
    for (int i = 0; i < threads.n; i++) if (threads.v[i] < 1) die("-t must be >= 1");
    for (int i = 0; i < ctk.n; i++) kv_type_of(ctk.v[i]);
    for (int i = 0; i < ctv.n; i++) kv_type_of(ctv.v[i]);
    for (int i = 0; i < fa.n; i++) fa_of(fa.v[i]);

    /* the tests of one parameter set: every -p, every -n, every -pg */
    int n_kinds = n_prompt.n + n_gen.n + pg.n / 2;
    test_cfg *kinds = calloc((size_t)n_kinds, sizeof *kinds);
    if (!kinds) die("out of memory");
    int nk = 0;
    for (int i = 0; i < n_prompt.n; i++)
        if (n_prompt.v[i] > 0) kinds[nk++] = (test_cfg){.n_prompt = n_prompt.v[i]};
    for (int i = 0; i < n_gen.n; i++)
        if (n_gen.v[i] > 0) kinds[nk++] = (test_cfg){.n_gen = n_gen.v[i]};
    for (int i = 0; i + 1 < pg.n; i += 2)
        if (pg.v[i] + pg.v[i + 1] > 0)
            kinds[nk++] = (test_cfg){.n_prompt = pg.v[i], .n_gen = pg.v[i + 1]};
    if (nk == 0) die("nothing to run (all of -p, -n, -pg are 0)");

    if (fmt == OUT_MD) print_md_header();
    if (fmt == OUT_CSV) print_csv_header();
    if (fmt == OUT_JSON) printf("[\n");
    int n_printed = 0;

    for (int mi = 0; mi < models.n; mi++) {
        bench_model bm;
        model_open(&bm, models.v[mi], threads.v[0]);
        for (int bi = 0; bi < batch.n; bi++)
        for (int ui = 0; ui < ubatch.n; ui++)
        for (int ti = 0; ti < threads.n; ti++)
        for (int gi = 0; gi < ngl.n; gi++)
        for (int ki = 0; ki < ctk.n; ki++)
        for (int vi = 0; vi < ctv.n; vi++)
        for (int fi = 0; fi < fa.n; fi++)
        for (int di = 0; di < depth.n; di++)
        for (int k = 0; k < nk; k++) {
            test_cfg c = kinds[k];
            c.n_depth = depth.v[di];
            c.n_batch = batch.v[bi];
            c.n_ubatch = ubatch.v[ui];
            c.n_threads = threads.v[ti];
            c.n_gpu_layers = ngl.v[gi];
            c.type_k = kv_type_of(ctk.v[ki]);
            c.type_v = kv_type_of(ctv.v[vi]);
            c.flash_attn = fa_of(fa.v[fi]);
            if (progress) {
                char name[64];
                test_name(&c, name, sizeof name);
                fprintf(stderr, "kinfer-bench: %s %s t=%d b=%d ngl=%d\n", bm.path, name,
                        c.n_threads, c.n_batch, c.n_gpu_layers);
            }
            test_result r;
            run_test(&bm, &c, reps, warmup, &r);
            switch (fmt) {
            case OUT_MD: print_md_row(&r); break;
            case OUT_CSV: print_csv_row(&r); break;
            case OUT_JSON:
                printf("%s  ", n_printed ? ",\n" : "");
                print_json_obj(&r);
                break;
            case OUT_JSONL:
                print_json_obj(&r);
                printf("\n");
                break;
            }
            fflush(stdout);
            n_printed++;
            free(r.samples_ns);
        }
        kinfer_model_free(bm.model);
    }
    if (fmt == OUT_JSON) printf("\n]\n");
    if (fmt == OUT_MD) printf("\nkinfer %s\n", kinfer_version());

    free(kinds);
    for (int i = 0; i < models.n; i++) free(models.v[i]);
    for (int i = 0; i < ctk.n; i++) free(ctk.v[i]);
    for (int i = 0; i < ctv.n; i++) free(ctv.v[i]);
    for (int i = 0; i < fa.n; i++) free(fa.v[i]);
    free(fa.v);
    free(models.v), free(ctk.v), free(ctv.v);
    free(n_prompt.v), free(n_gen.v), free(depth.v), free(batch.v), free(ubatch.v), free(threads.v), free(ngl.v);
    free(pg.v);
    return 0;
}
