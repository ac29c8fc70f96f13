/*
 * bench_tokenizer — tokenization throughput.
 *
 *   bench_tokenizer [-r REPS] [-s] MODEL.gguf FILE...
 *
 * Tokenizes each file whole (add_special on, parse_special off unless -s),
 * REPS times (default 3), and prints the best time, MB/s and tokens/s.
 * Compare with llama.cpp on the same files (llama_tokenize through its Python
 * bindings or llama-tokenize) in the same run: on a shared machine only the
 * ratio means anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinfer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

int main(int argc, char **argv)
{
    int reps = 3, special = 0, a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (strcmp(argv[a], "-r") == 0 && a + 1 < argc)
            reps = atoi(argv[++a]);
        else if (strcmp(argv[a], "-s") == 0)
            special = 1;
        else
            break;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: %s [-r REPS] [-s] MODEL.gguf FILE...\n", argv[0]);
        return 2;
    }
    kinfer_model *model;
    if (kinfer_model_load(argv[a], NULL, &model) != KINFER_OK) {
        fprintf(stderr, "%s\n", kinfer_model_errmsg(model));
        kinfer_model_free(model);
        return 1;
    }
    printf("| model | file | MB | tokens | best s | MB/s | Mtok/s |\n|---|---|---|---|---|---|---|\n");
    for (int i = a + 1; i < argc; i++) {
        size_t size;
        char *text = slurp(argv[i], &size);
        if (!text) {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            continue;
        }
        kinfer_error e;
        int64_t need = -kinfer_tokenize(model, text, size, NULL, 0, true, special, &e);
        if (e.status != KINFER_OK) {
            fprintf(stderr, "%s: %s\n", argv[i], e.message);
            free(text);
            continue;
        }
        kinfer_token *toks = malloc((size_t)(need > 0 ? need : 1) * sizeof *toks);
        double best = 1e30;
        int64_t n = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            n = kinfer_tokenize(model, text, size, toks, need, true, special, &e);
            double dt = now() - t0;
            if (dt < best)
                best = dt;
        }
        const char *base = strrchr(argv[a], '/');
        const char *fbase = strrchr(argv[i], '/');
        printf("| %s | %s | %.2f | %lld | %.3f | %.2f | %.3f |\n", base ? base + 1 : argv[a],
               fbase ? fbase + 1 : argv[i], (double)size / 1e6, (long long)n, best,
               (double)size / 1e6 / best, (double)n / 1e6 / best);
        free(toks);
        free(text);
    }
    kinfer_model_free(model);
    return 0;
}
