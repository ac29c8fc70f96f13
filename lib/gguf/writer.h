/*
 * gguf_writer.h — write GGUF v3 files (internal).
 *
 * Collect metadata and tensor infos, then write the header, then each
 * tensor's bytes in the order they were added.  Used by the quantizer and the
 * synthetic-model writer.
 */
#ifndef KINFER_GGUF_WRITER_H
#define KINFER_GGUF_WRITER_H

#include <stdio.h>

#include "gguf/gguf.h"

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);

/* Metadata, in the order given.  Setting a key twice replaces nothing: the
 * caller avoids duplicates (a reader refuses them). */
kinfer_status gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
kinfer_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
kinfer_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
kinfer_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
kinfer_status gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
kinfer_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
kinfer_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v,
                                      uint64_t n);
kinfer_status gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
kinfer_status gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);

/* A tensor of the given type and shape; KINFER_E_INVALID_ARG when ne[0] is
 * not a multiple of the type's block size.  Returns its data size in *size. */
kinfer_status gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                     const int64_t *ne, uint64_t *size);

/* Write the header (metadata, tensor infos, padding to the data section). */
kinfer_status gguf_writer_write_header(gguf_writer *w, FILE *f);
/* Write the next tensor's data (size bytes, as add_tensor said) and its
 * padding.  Tensors must be written in the order they were added. */
kinfer_status gguf_writer_write_tensor_data(gguf_writer *w, FILE *f, const void *data,
                                            uint64_t size);

#endif /* KINFER_GGUF_WRITER_H */
