/*
 * embed.c — embeddings out of a decode: pooling the per-token hidden states
 * per sequence (llama.cpp's meanings of mean, cls, last and rank), and
 * llama-embedding's normalisations.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "runtime/embed.h"

/* Rank: the classification head on each pooled first-token row, in place:
 * row <- cls_out (tanh(cls row + cls_b)) + cls_out_b (the cls layer only
 * where the file has one), the projections on the backend as llama.cpp's
 * mul_mat, tanh as its ggml_tanh. */
static kinfer_status rank_head(embd_pooled *out, const model_weights *w, backend *be, char *err,
                               size_t err_size)
{
    const size_t E = (size_t)w->hp.n_embd;
    float *h = malloc(2 * E * sizeof *h), *scores = h + E;
    if (!h) return status_fail(err, err_size, KINFER_E_NOMEM, "out of memory for the rank head");
    kinfer_status st = KINFER_OK;
    for (uint32_t s = 0; !st && s < out->n_seq; s++) {
        if (!out->set[s]) continue;
        float *row = out->rows + s * E;
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
        memset(out->set, 0, out->n_seq);
        return status_fail(err, err_size, st, "rank head: %s", be->errmsg);
    }
    return KINFER_OK;
}

kinfer_status embd_pool(embd_pooled *out, kinfer_pooling pooling, const model_weights *w, backend *be,
                        const float *embd, int32_t n, const kinfer_pos *pos, const kinfer_seq_id *seq,
                        char *err, size_t err_size)
{
    const size_t E = (size_t)w->hp.n_embd;
    memset(out->set, 0, out->n_seq);
    if (pooling == KINFER_POOLING_NONE) return KINFER_OK;
    for (uint32_t s = 0; s < out->n_seq; s++) {
        /* the sequence's tokens, and for cls / last the one at its lowest /
         * highest position (llama.cpp's build_inp_cls) */
        int32_t count = 0, pick = -1;
        for (int32_t i = 0; i < n; i++) {
            if ((uint32_t)seq[i] != s) continue;
            count++;
            if (pick < 0 || (pooling == KINFER_POOLING_LAST ? pos[i] >= pos[pick] : pos[i] < pos[pick]))
                pick = i;
        }
        if (!count) continue;
        float *row = out->rows + s * E;
        if (pooling == KINFER_POOLING_MEAN) {
            /* llama.cpp multiplies by a matrix of 1/count weights: the same
             * products, summed here in double */
            const float wt = 1.0f / (float)count;
            for (size_t e = 0; e < E; e++) {
                double sum = 0.0;
                for (int32_t i = 0; i < n; i++)
                    if ((uint32_t)seq[i] == s) sum += (double)(embd[(size_t)i * E + e] * wt);
                row[e] = (float)sum;
            }
        } else {
            memcpy(row, embd + (size_t)pick * E, E * sizeof *row);
        }
        out->set[s] = 1;
    }
    return pooling == KINFER_POOLING_RANK ? rank_head(out, w, be, err, err_size) : KINFER_OK;
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
