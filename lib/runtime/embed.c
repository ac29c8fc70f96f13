/*
 * embed.c — embeddings out of a context: pooling the last decode's
 * per-token hidden states per sequence (llama.cpp's meanings of mean, cls,
 * last and rank), the getters, and llama-embedding's normalisations.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/context.h"

/* Rank: the classification head on each pooled first-token row, in place:
 * row <- cls_out (tanh(cls row + cls_b)) + cls_out_b (the cls layer only
 * where the file has one), the projections on the backend as llama.cpp's
 * mul_mat, tanh as its ggml_tanh. */
static kinfer_status rank_head(kinfer_context *ctx)
{
    const model_weights *w = &ctx->model->w;
    const size_t E = (size_t)w->hp.n_embd;
    backend *be = ctx->be;
    float *h = malloc(2 * E * sizeof *h), *scores = h + E;
    if (!h) return ctx_fail(ctx, KINFER_E_NOMEM, "out of memory for the rank head");
    kinfer_status st = KINFER_OK;
    for (uint32_t s = 0; !st && s < ctx->sz.n_seq_max; s++) {
        if (!ctx->embd_seq_set[s]) continue;
        float *row = ctx->embd_seq + s * E;
        const float *in = row;
        if (w->cls.data) {
            if ((st = be->ops->matmul(be, &w->cls, row, 1, h))) break;
            if (w->cls_b.data) be->ops->add_bias(be, h, &w->cls_b, 1);
            for (size_t e = 0; e < E; e++) h[e] = tanhf(h[e]);
            in = h;
        }
        if ((st = be->ops->matmul(be, &w->cls_out, in, 1, scores))) break;
        if (w->cls_out_b.data) be->ops->add_bias(be, scores, &w->cls_out_b, 1);
        memcpy(row, scores, (size_t)w->cls_out.ne1 * sizeof *row);
    }
    free(h);
    if (st) {
        memset(ctx->embd_seq_set, 0, ctx->sz.n_seq_max);
        return ctx_fail(ctx, st, "rank head: %s", be->errmsg);
    }
    return KINFER_OK;
}

kinfer_status embd_pool(kinfer_context *ctx, int32_t n, const kinfer_pos *pos, const kinfer_seq_id *seq)
{
    const size_t E = (size_t)ctx->model->w.hp.n_embd;
    const uint32_t n_seq = ctx->sz.n_seq_max;
    memset(ctx->embd_seq_set, 0, n_seq);
    if (ctx->sz.pooling == KINFER_POOLING_NONE) return KINFER_OK;
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
    return ctx->sz.pooling == KINFER_POOLING_RANK ? rank_head(ctx) : KINFER_OK;
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
