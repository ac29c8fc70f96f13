/*
 * info.c — what the public API tells about a loaded model: its sizes and a
 * one-line description.
 */
#include <stdio.h>
#include <string.h>

#include "model/ftype.h"
#include "model/model.h"

static const model_hparams *runnable(const kinfer_model *model)
{
    return model && model->gguf && model->w.arch ? &model->w.hp : NULL;
}

int32_t kinfer_model_n_layer(const kinfer_model *model)
{
    const model_hparams *hp = runnable(model);
    return hp ? hp->n_layer : 0;
}

int32_t kinfer_model_n_embd(const kinfer_model *model)
{
    const model_hparams *hp = runnable(model);
    return hp ? hp->n_embd : 0;
}

int32_t kinfer_model_n_vocab(const kinfer_model *model)
{
    const model_hparams *hp = runnable(model);
    return hp ? hp->n_vocab : 0;
}

int32_t kinfer_model_n_ctx_train(const kinfer_model *model)
{
    const model_hparams *hp = runnable(model);
    return hp ? hp->n_ctx_train : 0;
}

bool kinfer_model_encoder_only(const kinfer_model *model)
{
    return runnable(model) && model->w.arch->encoder;
}

int32_t kinfer_model_n_cls_out(const kinfer_model *model)
{
    return runnable(model) && model->w.cls_out.data ? (int32_t)model->w.cls_out.ne1 : 0;
}

int64_t kinfer_model_desc(const kinfer_model *model, char *buf, size_t size)
{
    char tmp[256];
    if (!model || !model->gguf) {
        snprintf(tmp, sizeof tmp, "(no model)");
    } else {
        const char *arch = "unknown";
        kinfer_meta_get_str(model, "general.architecture", &arch);
        /* parameter count and the most common weight type */
        uint64_t n_params = 0, bytes_by_type[KINFER_TYPE_COUNT] = {0};
        for (uint64_t i = 0; i < model->gguf->n_tensors; i++) {
            const gguf_tensor *t = &model->gguf->tensors[i];
            n_params += t->n_elements;
            if (t->type < KINFER_TYPE_COUNT) bytes_by_type[t->type] += t->size;
        }
        int best = 0;
        for (int t = 1; t < KINFER_TYPE_COUNT; t++)
            if (bytes_by_type[t] > bytes_by_type[best]) best = t;
        /* the file type the file declares, else the type holding most bytes */
        uint64_t file_type;
        const char *tname = kinfer_meta_get_uint(model, "general.file_type", &file_type) == KINFER_OK
                                ? ftype_name((uint32_t)file_type)
                                : NULL;
        if (!tname) tname = kinfer_type_name(best);
        char size_str[32];
        if (n_params >= 1000000000ull)
            snprintf(size_str, sizeof size_str, "%.1fB", (double)n_params / 1e9);
        else
            snprintf(size_str, sizeof size_str, "%.0fM", (double)n_params / 1e6);
        if (model->w.arch)
            snprintf(tmp, sizeof tmp, "%s %s %s, %d layers", arch, size_str, tname ? tname : "?",
                     model->w.hp.n_layer);
        else
            snprintf(tmp, sizeof tmp, "%s %s %s (not runnable: %s)", arch, size_str,
                     tname ? tname : "?", model->w.unsupported);
    }
    size_t len = strlen(tmp);
    if (!buf || size <= len) {
        if (buf && size) buf[0] = '\0';
        return -(int64_t)len;
    }
    memcpy(buf, tmp, len + 1);
    return (int64_t)len;
}
