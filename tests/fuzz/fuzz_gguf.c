/* fuzz_gguf.c — libFuzzer target for the GGUF parser, the model loader's
 * binding of what it accepted (hyperparameters, RoPE scaling, every family's
 * tensors), and the vocabulary built from it, tokenizing the input's own
 * first bytes (SPM, BPE or WordPiece, as the file says): any bytes in, a
 * status out, never a crash or a read outside the input. */
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    gguf_file *gf = NULL;
    if (gguf_parse(data, size, &gf, err, sizeof err) != KINFER_OK) return 0;
    /* Walk what was accepted, the way a caller would. */
    char buf[256];
    for (uint64_t i = 0; i < gf->n_kv; i++) {
        gguf_kv_format(&gf->kv[i], 4, buf, sizeof buf);
        if (gf->kv[i].type == GGUF_ARR && gf->kv[i].n_elems > 0) {
            const char *s;
            size_t len;
            int64_t v;
            if (gguf_arr_str(&gf->kv[i], gf->kv[i].n_elems - 1, &s, &len) == KINFER_OK && len)
                (void)s[len - 1];
            gguf_arr_int(&gf->kv[i], 0, &v);
        }
    }
    for (uint64_t i = 0; i < gf->n_tensors; i++)
        if (gf->tensors[i].size) (void)((const uint8_t *)gf->tensors[i].data)[gf->tensors[i].size - 1];
    /* what kinfer_model_load does next: bind an architecture's weights */
    model_weights w;
    if (weights_bind(&w, gf, err, sizeof err) == KINFER_OK && w.arch)
        for (int il = 0; il < w.hp.n_layer; il++) {
            const kinfer_rope_params rp = model_layer_rope(&w, il, 1u << 20);
            if (rp.freq_factors) (void)((const volatile uint8_t *)rp.freq_factors)[2 * rp.n_rot - 1];
        }
    weights_unbind(&w);
    struct kinfer_vocab *v = NULL;
    if (vocab_build(gf, NULL, &v, err, sizeof err) == KINFER_OK && v) {
        int32_t tokens[512];
        kinfer_status st;
        const size_t n = size < 256 ? size : 256;
        vocab_tokenize(v, (const char *)data, n, tokens, 512, 1, 1, &st);
        vocab_tokenize(v, (const char *)data + size - n, n, tokens, 512, 0, 0, &st);
        vocab_free(v);
    }
    gguf_free(gf);
    return 0;
}
