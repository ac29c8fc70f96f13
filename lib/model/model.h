/* model.h — the model handle's insides (internal). */
#ifndef KINFER_MODEL_H
#define KINFER_MODEL_H

#include <stdarg.h>

#include "gguf/gguf.h"
#include "core/status.h"
#include "kinfer.h"
#include "model/weights.h"

struct kinfer_model {
    gguf_file *gguf;          /* metadata and tensor table; NULL after a failed load */
    const uint8_t *image;     /* the GGUF bytes: mapped, read, or the caller's */
    size_t image_size;
    int mapped;               /* image is an mmap to munmap */
    int owned;                /* image is a malloc to free */
    char errmsg[512];
    model_weights w;          /* architecture, hyperparameters, weights (weights.c) */
    struct kinfer_vocab *vocab; /* tokenizer (tokenizer.c); NULL when the file has none */
};

/* Record a failure message on the model and return status. printf-style. */
#define model_fail(model, status, ...) \
    status_fail((model)->errmsg, sizeof (model)->errmsg, (status), __VA_ARGS__)

#endif /* KINFER_MODEL_H */
