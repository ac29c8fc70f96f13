/*
 * model.c — the model handle: the GGUF image (mapped, read, or the caller's),
 * its parsed tables, and read access to metadata and tensors.
 */
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

kinfer_model_params kinfer_model_default_params(void)
{
    kinfer_model_params p = {0};
    p.use_mmap = true;
    return p;
}

static int report_progress(const kinfer_model_params *p, float progress)
{
    return !p->progress || p->progress(progress, p->progress_user_data);
}

/*
 * Drop the resident pages of the metadata once everything built from it is
 * built: the vocabulary (copied into the vocab), token types, merges and
 * scores are read once at load, and a 262k-token vocabulary spans 6 MiB of
 * the file.  The mapping is private, read-only and never written, so the
 * pages are clean copies of the file: anything that reads them later (the
 * meta accessors, pointers kept in the gguf tables) faults them back in with
 * the same bytes.  The page holding the start of the tensor data is kept.
 */
static void model_release_metadata(kinfer_model *model)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!model->mapped || page <= 0) return;
    size_t end = (size_t)model->gguf->data_offset;
    if (end > model->image_size) end = model->image_size;
    end -= end % (size_t)page;
    if (end > 0) madvise((void *)model->image, end, MADV_DONTNEED); /* advice: failure is harmless */
}

/* Parse the image and everything built from it. */
static kinfer_status model_finish_load(kinfer_model *model, const kinfer_model_params *params)
{
    kinfer_status st = gguf_parse(model->image, model->image_size, &model->gguf, model->errmsg,
                                  sizeof model->errmsg);
    if (st) return st;
    st = weights_bind(&model->w, model->gguf, model->errmsg, sizeof model->errmsg);
    if (st) return st;
    char err[256];
    st = vocab_build(model->gguf, NULL, &model->vocab, err, sizeof err);
    if (st) return model_fail(model, st, "vocab: %s", err);
    model_release_metadata(model);
    if (!report_progress(params, 1.0f))
        return model_fail(model, KINFER_E_ABORTED, "load cancelled by the progress callback");
    model->errmsg[0] = '\0';
    return KINFER_OK;
}

/* Read a whole file into memory, reporting progress between chunks. */
static kinfer_status read_file(kinfer_model *model, int fd, const char *path, size_t size,
                               const kinfer_model_params *params)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return model_fail(model, KINFER_E_NOMEM, "%s: out of memory for %zu bytes", path, size);
    model->image = buf;
    model->owned = 1;
    const size_t chunk = 64u << 20;
    for (size_t done = 0; done < size;) {
        size_t want = size - done < chunk ? size - done : chunk;
        ssize_t n = read(fd, buf + done, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return model_fail(model, KINFER_E_IO, "%s: read: %s", path, strerror(errno));
        if (n == 0) return model_fail(model, KINFER_E_IO, "%s: file shrank while reading", path);
        done += (size_t)n;
        if (!report_progress(params, 0.9f * (float)done / (float)size))
            return model_fail(model, KINFER_E_ABORTED, "load cancelled by the progress callback");
    }
    return KINFER_OK;
}

kinfer_status kinfer_model_load(const char *path, const kinfer_model_params *params,
                                kinfer_model **out)
{
    kinfer_model_params defaults = kinfer_model_default_params();
    if (!params) params = &defaults;
    if (!out) return KINFER_E_INVALID_ARG;
    kinfer_model *model = *out = calloc(1, sizeof(*model));
    if (!model) return KINFER_E_NOMEM;
    if (!path) return model_fail(model, KINFER_E_INVALID_ARG, "path is NULL");

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return model_fail(model, KINFER_E_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    kinfer_status st = KINFER_OK;
    if (fstat(fd, &sb) != 0) {
        st = model_fail(model, KINFER_E_IO, "%s: fstat: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = model_fail(model, KINFER_E_IO, "%s: not a regular file", path);
    } else if ((uint64_t)sb.st_size > SIZE_MAX) {
        st = model_fail(model, KINFER_E_UNSUPPORTED, "%s: too large for this address space", path);
    } else {
        model->image_size = (size_t)sb.st_size;
        if (params->use_mmap && model->image_size > 0) {
            void *p = mmap(NULL, model->image_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED)
                st = model_fail(model, KINFER_E_IO, "%s: mmap: %s", path, strerror(errno));
            else
                model->image = p, model->mapped = 1;
        } else {
            st = read_file(model, fd, path, model->image_size, params);
        }
    }
    close(fd);
    if (st) return st;
    st = model_finish_load(model, params);
    if (st && strncmp(model->errmsg, path, strlen(path)) != 0) {
        /* Prefix the file name so the message stands on its own. */
        char msg[sizeof model->errmsg];
        snprintf(msg, sizeof msg, "%s: %s", path, model->errmsg);
        memcpy(model->errmsg, msg, sizeof msg);
    }
    return st;
}

kinfer_status kinfer_model_load_from_buffer(const void *data, size_t size,
                                            const kinfer_model_params *params,
                                            kinfer_model **out)
{
    kinfer_model_params defaults = kinfer_model_default_params();
    if (!params) params = &defaults;
    if (!out) return KINFER_E_INVALID_ARG;
    kinfer_model *model = *out = calloc(1, sizeof(*model));
    if (!model) return KINFER_E_NOMEM;
    if (!data && size) return model_fail(model, KINFER_E_INVALID_ARG, "buffer is NULL");
    model->image = data;
    model->image_size = size;
    return model_finish_load(model, params);
}

void kinfer_model_free(kinfer_model *model)
{
    if (!model) return;
    weights_unbind(&model->w);
    vocab_free(model->vocab);
    gguf_free(model->gguf);
    if (model->mapped) munmap((void *)model->image, model->image_size);
    if (model->owned) free((void *)model->image);
    free(model);
}

const char *kinfer_model_errmsg(const kinfer_model *model)
{
    return model ? model->errmsg : "model is NULL";
}

uint32_t kinfer_model_gguf_version(const kinfer_model *model)
{
    return model && model->gguf ? model->gguf->version : 0;
}
