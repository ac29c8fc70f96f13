/*
 * embed.c — embeddings out of a context: pooling the last decode's
 * per-token hidden states per sequence (llama.cpp's meanings of mean, cls
 * and last), the getters, and llama-embedding's normalisations.
 */
#include <math.h>
#include <string.h>

#include "runtime/context.h"

void embd_pool(kinfer_context *ctx, int32_t n, const kinfer_pos *pos, const kinfer_seq_id *seq)
{
    const size_t E = (size_t)ctx->model->w.hp.n_embd;
    const uint32_t n_seq = ctx->sz.n_seq_max;
    memset(ctx->embd_seq_set, 0, n_seq);
    if (ctx->sz.pooling == KINFER_POOLING_NONE) return;
    for (uint32_t s = 0; s < n_seq; s++) {
        /* the sequence's tokens, and for cls / last the one at its lowest /
         * highest position (llama.cpp's build_inp_cls) */
        int32_t count = 0, pick = -1;
        for (int32_t i = 0; i < n; i++) {
            if ((uint32_t)seq[i] != s) continue;
            count++;
            if (pick < 0 || (ctx->sz.pooling == KINFER_POOLING_LAST ? pos[i] >= pos[pick]
                                                                    : pos[i] < pos[pick]))
                pick = i;
        }
        if (!count) continue;
        float *out = ctx->embd_seq + s * E;
        if (ctx->sz.pooling == KINFER_POOLING_MEAN) {
            /* llama.cpp multiplies by a matrix of 1/count weights: the same
             * products, summed here in double */
            const float w = 1.0f / (float)count;
            for (size_t e = 0; e < E; e++) {
                double sum = 0.0;
                for (int32_t i = 0; i < n; i++)
                    if ((uint32_t)seq[i] == s) sum += (double)(ctx->embd[(size_t)i * E + e] * w);
                out[e] = (float)sum;
            }
        } else {
            memcpy(out, ctx->embd + (size_t)pick * E, E * sizeof *out);
        }
        ctx->embd_seq_set[s] = 1;
    }
}

kinfer_pooling kinfer_context_pooling(const kinfer_context *ctx)
{
    return ctx ? ctx->sz.pooling : KINFER_POOLING_NONE;
}

const float *kinfer_get_embeddings_ith(kinfer_context *ctx, int32_t i)
{
    if (!ctx || !ctx->sz.embeddings || ctx->sz.pooling != KINFER_POOLING_NONE || i < 0 ||
        i >= ctx->n_batch_tokens)
        return NULL;
    return ctx->embd + (size_t)i * (size_t)ctx->model->w.hp.n_embd;
}

const float *kinfer_get_embeddings_seq(kinfer_context *ctx, kinfer_seq_id seq)
{
    if (!ctx || !ctx->sz.embeddings || ctx->sz.pooling == KINFER_POOLING_NONE || seq < 0 ||
        (uint32_t)seq >= ctx->sz.n_seq_max || !ctx->n_batch_tokens || !ctx->embd_seq_set[seq])
        return NULL;
    return ctx->embd_seq + (size_t)seq * (size_t)ctx->model->w.hp.n_embd;
}

kinfer_status kinfer_embd_normalize(const float *in, float *out, int32_t n, int32_t norm)
{
    if (!in || !out || n < 0 || norm < -1) return KINFER_E_INVALID_ARG;
    double sum = 0.0;
    if (norm == -1) {
        sum = 1.0;
    } else if (norm == 0) {
        for (int32_t i = 0; i < n; i++) sum = fmax(sum, fabs((double)in[i]));
        sum /= 32760.0; /* the largest magnitude maps to 32760: an int16 range */
    } else if (norm == 2) {
        for (int32_t i = 0; i < n; i++) sum += in[i] * in[i]; /* float products, as llama.cpp */
        sum = sqrt(sum);
    } else {
        for (int32_t i = 0; i < n; i++) sum += pow(fabs((double)in[i]), norm);
        sum = pow(sum, 1.0 / norm);
    }
    const float scale = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    for (int32_t i = 0; i < n; i++) out[i] = in[i] * scale;
    return KINFER_OK;
}
