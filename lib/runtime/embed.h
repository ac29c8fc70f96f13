/*
 * embed.h — embeddings out of a decode (internal): each sequence's pooled
 * row from the per-token hidden states, with llama.cpp's meanings of mean,
 * cls, last and rank.  It knows the model and a backend, not the context,
 * which owns the rows and calls it after each decode.
 */
#ifndef KINFER_EMBED_H
#define KINFER_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "kinfer.h"
#include "model/weights.h"

/* Each sequence's pooled embedding of the last decode. */
typedef struct embd_pooled {
    float *rows;     /* (n_seq, n_embd) */
    uint8_t *set;    /* (n_seq) 1: the last batch had this sequence */
    uint32_t n_seq;
} embd_pooled;

/* Pool the n token rows embd (n, n_embd), at positions pos of sequences
 * seq, into out as pooling says; rank then runs the model's classification
 * head on be.  A failure leaves no sequence set and its message in err. */
kinfer_status embd_pool(embd_pooled *out, kinfer_pooling pooling, const model_weights *w, backend *be,
                        const float *embd, int32_t n, const kinfer_pos *pos, const kinfer_seq_id *seq,
                        char *err, size_t err_size);

#endif /* KINFER_EMBED_H */
