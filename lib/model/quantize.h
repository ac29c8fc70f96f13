/* quantize.h — llama.cpp's per-tensor type mixtures, shared by the quantizer
 * and the synthetic-model writer (internal). */
#ifndef KINFER_QUANTIZE_H
#define KINFER_QUANTIZE_H

#include <stdint.h>

#include "kinfer.h"

typedef struct quant_mix {
    const struct ftype_info *ft; /* ftype.h */
    int tied;               /* no output.weight: token_embd serves as output */
    int n_gqa;              /* query heads per KV head */
    int n_attn_v, i_attn_v; /* attn_v tensors in the model, and seen so far */
    int n_ffn_down, i_ffn_down;
    int n_expert;           /* experts per layer (8: llama.cpp's Mixtral rules) */
} quant_mix;

/* Start a mixture for an ftype name ("Q4_K_M"); the caller then sets tied,
 * n_gqa, n_attn_v, n_ffn_down and n_expert.  KINFER_E_UNSUPPORTED for an unknown name. */
kinfer_status quant_mix_init(quant_mix *mix, const char *ftype);

/* general.file_type of the mixture. */
uint32_t quant_mix_file_type(const quant_mix *mix);

/* Type of the next tensor, asked in writing order (by layer, then name). */
int quant_mix_type(quant_mix *mix, const char *name, uint32_t n_dims, const int64_t *ne,
                   int src_type);

#endif /* KINFER_QUANTIZE_H */
