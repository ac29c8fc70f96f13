/* testutil.c — helpers shared by the Check suites. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *test_model_path(const char *file)
{
    static char path[4096];
    const char *dir = getenv("KINFER_MODELS_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "models", file);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "SKIP: %s not found (run `make models`)\n", path);
        return NULL;
    }
    return path;
}

unsigned char *test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf) *size = (size_t)n;
    return buf;
}

int test_run_suite(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int test_quick(void)
{
    const char *q = getenv("KINFER_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}
