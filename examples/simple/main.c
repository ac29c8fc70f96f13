/*
 * kinfer-simple — the shortest complete program: load a model, tokenize a
 * prompt, decode it, then pick the most likely next token n times.
 *
 *   kinfer-simple model.gguf "The capital of France is" [n_tokens]
 */
#include <kinfer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, kinfer_status st, const char *msg)
{
    fprintf(stderr, "%s: %s: %s\n", what, kinfer_status_str(st), msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) return fprintf(stderr, "usage: %s model.gguf prompt [n]\n", argv[0]), 1;
    int n_predict = argc > 3 ? atoi(argv[3]) : 32;

    kinfer_model *model = NULL;
    kinfer_status st = kinfer_model_load(argv[1], NULL, &model);
    if (st) return fail("load", st, kinfer_model_errmsg(model));

    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = 512;
    kinfer_context *ctx = NULL;
    st = kinfer_context_new(model, &cp, &ctx);
    if (st) return fail("context", st, kinfer_context_errmsg(ctx));

    kinfer_token tokens[512];
    kinfer_error err = {0};
    int64_t n = kinfer_tokenize(model, argv[2], strlen(argv[2]), tokens, 512, true, true, &err);
    if (n <= 0 || n + n_predict > 512)
        return fail("tokenize", err.status ? err.status : KINFER_E_INVALID_ARG, "empty or too long");

    kinfer_sampler_params sp = kinfer_sampler_default_params();
    sp.temperature = 0.0f;   /* greedy */
    kinfer_sampler *sampler = NULL;
    if ((st = kinfer_sampler_new(&sp, &sampler))) return fail("sampler", st, "");

    printf("%s", argv[2]);
    kinfer_pos pos[512];
    for (int i = 0; i < n; i++) pos[i] = i;
    kinfer_batch batch = {.n_tokens = (int32_t)n, .token = tokens, .pos = pos};
    for (int i = 0; i < n_predict; i++) {
        st = kinfer_decode(ctx, &batch);
        if (st) return fail("decode", st, kinfer_context_errmsg(ctx));
        kinfer_token next = kinfer_sampler_sample(sampler, kinfer_get_logits(ctx, batch.n_tokens - 1),
                                                  kinfer_model_n_vocab(model));
        if (kinfer_token_is_eog(model, next)) break;
        char piece[256];
        int32_t len = kinfer_token_to_piece(model, next, piece, sizeof piece, false);
        if (len > 0) fwrite(piece, 1, (size_t)len, stdout);
        fflush(stdout);
        tokens[n] = next;   /* the next batch: just this token, at the next position */
        pos[n] = (kinfer_pos)n;
        batch = (kinfer_batch){.n_tokens = 1, .token = &tokens[n], .pos = &pos[n]};
        n++;
    }
    printf("\n");
    kinfer_sampler_free(sampler);
    kinfer_context_free(ctx);
    kinfer_model_free(model);
    return 0;
}
