/* testutil.h — helpers shared by the Check suites. */
#ifndef KINFER_TESTUTIL_H
#define KINFER_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Full path of a test model under $KINFER_MODELS_DIR (default "models"), or
 * NULL, after printing why the test is skipped, when the file is absent.
 * Static storage, overwritten by the next call. */
const char *test_model_path(const char *file);

/* The two real test models. */
#define TEST_MODEL_SMOLLM2 "SmolLM2-135M-Instruct.Q4_1.gguf"
#define TEST_MODEL_GEMMA3 "gemma-3-270m-q4_k_m.gguf"

/* Read a whole file; NULL if it cannot be read. The caller frees. */
unsigned char *test_read_file(const char *path, size_t *size);

/* True when tests should do less (sanitizer builds set KINFER_TEST_QUICK). */
int test_quick(void);

/* Deterministic random numbers (splitmix64): the same on every machine, so a
 * failing case can be replayed.  test_rng_seed starts a sequence. */
void test_rng_seed(uint64_t seed);
double test_rng_uniform(void);                            /* [0, 1) */
void test_fill(float *x, int64_t n, double lo, double hi); /* uniform in [lo, hi) */

/* Run a suite with Check's runner; returns the process exit status. */
int test_run_suite(Suite *suite);

#endif
