/*
 * kinfer-perplexity — perplexity of a model over a text file, computed the
 * way llama.cpp's llama-perplexity does, so the two can be compared:
 *
 *   - the whole file is tokenized once (BOS added when the vocabulary asks);
 *   - it is cut into chunks of n_ctx tokens (a trailing partial chunk is
 *     dropped); each chunk is decoded into an empty cache, its first token
 *     replaced by BOS when the vocabulary adds one;
 *   - only the second half of each chunk is scored: the prediction at
 *     position j (first = n_ctx/2 <= j < n_ctx - 1) of token j + 1.
 *
 *   kinfer-perplexity -m model.gguf -f text.txt [-c 512] [-b 512] [--chunks N] [-t threads]
 */
#include <kinfer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/args.h"

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s -m model.gguf -f text.txt [-c n_ctx (512)] [-b n_batch (512)]\n"
            "          [--chunks N (all)] [-t threads (all cores)] [-fa on|off|auto (auto)]\n"
            "          [-ngl N: layers on the GPU, -1 = as many as fit (0)]\n",
            argv0);
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *text_path = NULL;
    int n_ctx = 512, n_batch = 512, n_chunks = -1, n_threads = 0, n_gpu_layers = 0;
    kinfer_flash_attn flash_attn = KINFER_FLASH_ATTN_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(argv[0]);
            return 0;
        }
        if (!v) {
            usage(argv[0]);
            return 2;
        }
        if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "-f")) text_path = v;
        else if (!strcmp(a, "-c")) n_ctx = atoi(v);
        else if (!strcmp(a, "-b")) n_batch = atoi(v);
        else if (!strcmp(a, "--chunks")) n_chunks = atoi(v);
        else if (!strcmp(a, "-t")) n_threads = atoi(v);
        else if (!strcmp(a, "-ngl") || !strcmp(a, "--n-gpu-layers")) n_gpu_layers = atoi(v);
        else if (!strcmp(a, "-fa") || !strcmp(a, "--flash-attn")) flash_attn = args_flash_attn(a, v);
        else {
            usage(argv[0]);
            return 2;
        }
        i++;
    }
    if (!model_path || !text_path || n_ctx < 4 || n_batch < 1) {
        usage(argv[0]);
        return 2;
    }

    kinfer_model *model = NULL;
    kinfer_status st = kinfer_model_load(model_path, NULL, &model);
    if (st) {
        fprintf(stderr, "%s: %s\n", kinfer_status_str(st), kinfer_model_errmsg(model));
        kinfer_model_free(model);
        return 1;
    }
    size_t text_len = 0;
    char *text = read_text(text_path, &text_len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", text_path);
        kinfer_model_free(model);
        return 1;
    }

    /* tokenize the whole text, special tokens not parsed (as llama.cpp) */
    kinfer_error err = {0};
    int64_t n_tok = kinfer_tokenize(model, text, text_len, NULL, 0, true, false, &err);
    if (n_tok == 0 && err.status) {
        fprintf(stderr, "tokenize: %s\n", err.message);
        return 1;
    }
    if (n_tok < 0) n_tok = -n_tok;
    kinfer_token *tokens = malloc(sizeof *tokens * (size_t)(n_tok ? n_tok : 1));
    if (!tokens || kinfer_tokenize(model, text, text_len, tokens, n_tok, true, false, &err) != n_tok) {
        fprintf(stderr, "tokenize failed: %s\n", err.message);
        return 1;
    }
    free(text);
    if (n_tok < 2 * (int64_t)n_ctx) {
        fprintf(stderr, "need at least %d tokens for a context of %d, the text has %lld\n",
                2 * n_ctx, n_ctx, (long long)n_tok);
        return 1;
    }
    const int n_chunk_max = (int)(n_tok / n_ctx);
    const int n_chunk = n_chunks < 0 ? n_chunk_max : (n_chunks < n_chunk_max ? n_chunks : n_chunk_max);
    if (n_batch > n_ctx) n_batch = n_ctx;
    const bool add_bos = kinfer_vocab_add_bos(model);
    const kinfer_token bos = kinfer_token_bos(model);

    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_threads = n_threads;
    cp.n_gpu_layers = n_gpu_layers;
    cp.flash_attn = flash_attn;
    kinfer_context *ctx = NULL;
    st = kinfer_context_new(model, &cp, &ctx);
    if (st) {
        fprintf(stderr, "%s: %s\n", kinfer_status_str(st), kinfer_context_errmsg(ctx));
        return 1;
    }
    const int n_vocab = kinfer_model_n_vocab(model);
    char desc[256];
    kinfer_model_desc(model, desc, sizeof desc);
    fprintf(stderr, "%s\n%lld tokens; %d chunks of %d, batch %d, BOS %s\n", desc, (long long)n_tok,
            n_chunk, n_ctx, n_batch, add_bos ? "added" : "not added");

    const int first = n_ctx / 2;
    kinfer_pos *pos = malloc(sizeof *pos * (size_t)n_ctx);
    int8_t *want = malloc((size_t)n_ctx);
    kinfer_token *chunk = malloc(sizeof *chunk * (size_t)n_ctx);
    for (int j = 0; j < n_ctx; j++) {
        pos[j] = j;
        want[j] = j >= first && j < n_ctx - 1;
    }
    double nll = 0.0, nll2 = 0.0, t0 = seconds();
    long count = 0;
    for (int i = 0; i < n_chunk; i++) {
        const kinfer_token *src = tokens + (size_t)i * n_ctx;
        memcpy(chunk, src, sizeof *chunk * (size_t)n_ctx);
        if (add_bos && bos != KINFER_TOKEN_NULL) chunk[0] = bos;
        kinfer_kv_clear(ctx);
        kinfer_batch b = {.n_tokens = n_ctx, .token = chunk, .pos = pos, .logits = want};
        st = kinfer_decode(ctx, &b);
        if (st) {
            fprintf(stderr, "\ndecode: %s: %s\n", kinfer_status_str(st), kinfer_context_errmsg(ctx));
            return 1;
        }
        for (int j = first; j < n_ctx - 1; j++) {
            double v = kinfer_token_nll(kinfer_get_logits(ctx, j), n_vocab, src[j + 1]);
            nll += v;
            nll2 += v * v;
            count++;
        }
        if (i == 0)
            fprintf(stderr, "%.2f seconds per chunk\n", seconds() - t0);
        printf("[%d]%.4f,", i + 1, exp(nll / (double)count));
        fflush(stdout);
    }
    printf("\n");
    nll /= (double)count;
    nll2 /= (double)count;
    const double ppl = exp(nll);
    nll2 -= nll * nll;
    if (nll2 > 0)
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sqrt(nll2 / (double)(count - 1)) * ppl);
    else
        printf("Final estimate: PPL = %.4f\n", ppl);
    free(pos);
    free(want);
    free(chunk);
    free(tokens);
    kinfer_context_free(ctx);
    kinfer_model_free(model);
    return 0;
}
