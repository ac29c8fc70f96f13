/*
 * test_quantize.c — kinfer_quantize against llama-quantize: the same type for
 * every tensor, and the same bytes where the quantizer is the same.
 * Fixtures: tests/fixtures/quantize/<model>.<ftype>.txt (name type crc32),
 * written by gen_quantize_fixtures.py from llama.cpp's llama-quantize.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "kinfer.h"
#include "model/model.h"
#include "testutil.h"

static uint32_t crc32_of(const uint8_t *p, uint64_t n)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    for (uint64_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* Quantize a model and compare with the fixture; returns the share of
 * tensors whose bytes equal llama-quantize's. */
static double check_against_oracle(const char *model_file, const char *stem, const char *ftype)
{
    const char *path = test_model_path(model_file);
    if (!path) return -1;
    char fixture[256], out[] = "/tmp/kinfer_quant_XXXXXX";
    snprintf(fixture, sizeof fixture, "tests/fixtures/quantize/%s.%s.txt", stem, ftype);
    FILE *f = fopen(fixture, "r");
    ck_assert_msg(f != NULL, "missing fixture %s", fixture);
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    close(fd);

    kinfer_quantize_params p = kinfer_quantize_default_params();
    p.ftype = ftype;
    char err[512];
    kinfer_status st = kinfer_quantize(path, out, &p, err, sizeof err);
    ck_assert_msg(st == KINFER_OK, "%s -> %s: %s", model_file, ftype, err);

    kinfer_model *m = NULL;
    ck_assert_int_eq(kinfer_model_load(out, NULL, &m), KINFER_OK);
    const gguf_file *gf = m->gguf;
    char line[512], name[256], type[32];
    unsigned crc;
    uint64_t i = 0, same = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        ck_assert_int_eq(sscanf(line, "%255s %31s %x", name, type, &crc), 3);
        ck_assert_uint_lt(i, gf->n_tensors);
        const gguf_tensor *t = &gf->tensors[i++];
        ck_assert_str_eq(t->name, name);
        ck_assert_msg(strcmp(kinfer_type_name((int)t->type), type) == 0,
                      "%s -> %s: tensor %s is %s, llama-quantize wrote %s", model_file, ftype,
                      name, kinfer_type_name((int)t->type), type);
        same += crc32_of(t->data, t->size) == crc;
    }
    ck_assert_uint_eq(i, gf->n_tensors);
    int64_t ft;
    ck_assert_int_eq(kinfer_meta_get_int(m, "general.file_type", &ft), KINFER_OK);
    fprintf(stderr, "%s -> %s: %llu of %llu tensors typed as llama-quantize, %llu byte-identical\n",
            model_file, ftype, (unsigned long long)i, (unsigned long long)i,
            (unsigned long long)same);
    kinfer_model_free(m);
    fclose(f);
    unlink(out);
    return (double)same / (double)i;
}

static void exact(const char *model, const char *stem, const char *ftype)
{
    double same = check_against_oracle(model, stem, ftype);
    ck_assert_msg(same < 0 || same == 1.0, "%s %s: only %.1f%% of tensors byte-identical", stem,
                  ftype, 100 * same);
}

/* Q8_0 and Q4_0 quantizers are fully specified: the bytes must be equal. */
START_TEST(test_exact_types)
{
    exact(TEST_MODEL_SMOLLM2, "SmolLM2-135M-Instruct.Q4_1", "Q8_0");
    exact(TEST_MODEL_SMOLLM2, "SmolLM2-135M-Instruct.Q4_1", "Q4_0");
    if (test_quick()) return;
    exact(TEST_MODEL_GEMMA3, "gemma-3-270m-q4_k_m", "Q8_0");
    exact(TEST_MODEL_GEMMA3, "gemma-3-270m-q4_k_m", "Q4_0");
}
END_TEST

/* K-quant and IQ4 mixtures: the type of every tensor must match; the bytes
 * too wherever our reference quantizer follows the same search. */
START_TEST(test_mixtures)
{
    exact(TEST_MODEL_SMOLLM2, "SmolLM2-135M-Instruct.Q4_1", "Q4_K_M");
    if (test_quick()) return;
    exact(TEST_MODEL_SMOLLM2, "SmolLM2-135M-Instruct.Q4_1", "Q3_K_M");
    exact(TEST_MODEL_SMOLLM2, "SmolLM2-135M-Instruct.Q4_1", "IQ4_XS");
    exact(TEST_MODEL_GEMMA3, "gemma-3-270m-q4_k_m", "Q4_K_M");
    exact(TEST_MODEL_GEMMA3, "gemma-3-270m-q4_k_m", "Q3_K_M");
    exact(TEST_MODEL_GEMMA3, "gemma-3-270m-q4_k_m", "IQ4_XS");
}
END_TEST

START_TEST(test_errors)
{
    char err[512];
    kinfer_quantize_params p = kinfer_quantize_default_params();
    ck_assert_int_eq(kinfer_quantize("/nonexistent.gguf", "/tmp/x.gguf", &p, err, sizeof err),
                     KINFER_E_IO);
    ck_assert(strstr(err, "/nonexistent.gguf"));
    p.ftype = "Q9_Z";
    ck_assert_int_eq(kinfer_quantize("/nonexistent.gguf", "/tmp/x.gguf", &p, err, sizeof err),
                     KINFER_E_UNSUPPORTED);
    ck_assert(strstr(err, "Q9_Z"));
    ck_assert_int_eq(kinfer_quantize(NULL, "/tmp/x.gguf", NULL, err, sizeof err),
                     KINFER_E_INVALID_ARG);
    const char *path = test_model_path(TEST_MODEL_SMOLLM2);
    if (!path) return;
    p.ftype = "Q8_0";
    ck_assert_int_eq(kinfer_quantize(path, "/nonexistent-dir/out.gguf", &p, err, sizeof err),
                     KINFER_E_IO);
    ck_assert(strstr(err, "/nonexistent-dir/out.gguf"));
    ck_assert_str_eq(kinfer_quantize_ftype_name(0), "F32");
    ck_assert_ptr_null(kinfer_quantize_ftype_name(1000));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quantize");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_exact_types);
    tcase_add_test(tc, test_mixtures);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
