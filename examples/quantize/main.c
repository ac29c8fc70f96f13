/*
 * kinfer-quantize — rewrite a GGUF model with its weights in another type.
 *
 *   kinfer-quantize [-t threads] input.gguf output.gguf Q4_K_M
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinfer.h"

static bool show_progress(float progress, void *user)
{
    fprintf(stderr, "\rkinfer-quantize: %3d%%", (int)(progress * 100.0f));
    if (progress >= 1.0f) fputc('\n', stderr);
    return true;
}

static void usage(void)
{
    fprintf(stderr, "usage: kinfer-quantize [-t threads] input.gguf output.gguf TYPE\n  TYPE:");
    for (int i = 0; kinfer_quantize_ftype_name(i); i++) fprintf(stderr, " %s", kinfer_quantize_ftype_name(i));
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    kinfer_quantize_params params = kinfer_quantize_default_params();
    const char *args[3];
    int n_args = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) params.n_threads = atoi(argv[++i]);
        else if (argv[i][0] == '-') return usage(), 2;
        else if (n_args < 3) args[n_args++] = argv[i];
        else return usage(), 2;
    }
    if (n_args != 3) return usage(), 2;
    params.ftype = args[2];
    params.progress = show_progress;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char err[512];
    kinfer_status st = kinfer_quantize(args[0], args[1], &params, err, sizeof err);
    if (st != KINFER_OK) {
        fprintf(stderr, "\nkinfer-quantize: %s (%s)\n", err, kinfer_status_str(st));
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "kinfer-quantize: wrote %s (%s) in %.1f s\n", args[1], args[2],
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
