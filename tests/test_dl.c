/*
 * test_dl.c — the dlopen loader of core/dl.h: the first soname that opens,
 * every symbol resolved, and a message naming the library or the symbol
 * that is missing.
 */
#include <string.h>

#include "core/dl.h"
#include "testutil.h"

typedef double (*unary_fn)(double);

START_TEST(test_dl_first_soname_that_opens)
{
    static unary_fn cos_fn, sqrt_fn;
    static const char *const names[] = {"libkinfer-no-such-library.so.9", "libm.so.6", NULL};
    static const kinfer_dl_symbol symbols[] = {{"cos", (void **)&cos_fn}, {"sqrt", (void **)&sqrt_fn}, {NULL, NULL}};
    static kinfer_dl_lib lib = KINFER_DL_LIB("libm", names, symbols);
    char err[256] = "untouched";
    ck_assert(kinfer_dl_load(&lib, err, sizeof err));
    ck_assert_str_eq(err, "untouched"); /* no message on success */
    ck_assert_ptr_nonnull(cos_fn);
    ck_assert(cos_fn(0.0) == 1.0 && sqrt_fn(4.0) == 2.0);
    /* a second call returns the first one's result */
    ck_assert(kinfer_dl_load(&lib, NULL, 0));
}
END_TEST

START_TEST(test_dl_missing_library)
{
    static unary_fn fn;
    static const char *const names[] = {"libkinfer-missing-a.so", "libkinfer-missing-b.so", NULL};
    static const kinfer_dl_symbol symbols[] = {{"cos", (void **)&fn}, {NULL, NULL}};
    static kinfer_dl_lib lib = KINFER_DL_LIB("Missing", names, symbols);
    char err[256];
    ck_assert(!kinfer_dl_load(&lib, err, sizeof err));
    ck_assert_msg(strstr(err, "cannot load Missing") && strstr(err, "libkinfer-missing-a.so") &&
                      strstr(err, "libkinfer-missing-b.so"),
                  "message: %s", err);
    ck_assert_ptr_null(fn);
    ck_assert(!kinfer_dl_load(&lib, err, sizeof err)); /* the same answer, once tried */
}
END_TEST

START_TEST(test_dl_missing_symbol)
{
    static unary_fn cos_fn, missing_fn;
    static const char *const names[] = {"libm.so.6", NULL};
    static const kinfer_dl_symbol symbols[] = {
        {"cos", (void **)&cos_fn}, {"kinfer_no_such_symbol", (void **)&missing_fn}, {NULL, NULL}};
    static kinfer_dl_lib lib = KINFER_DL_LIB("libm", names, symbols);
    char err[256];
    ck_assert(!kinfer_dl_load(&lib, err, sizeof err));
    ck_assert_msg(strstr(err, "libm.so.6") && strstr(err, "symbol kinfer_no_such_symbol not found"),
                  "message: %s", err);
    /* no half-loaded table */
    ck_assert_ptr_null(cos_fn);
    ck_assert_ptr_null(missing_fn);
}
END_TEST

static Suite *dl_suite(void)
{
    Suite *s = suite_create("dl");
    TCase *tc = tcase_create("dl");
    tcase_add_test(tc, test_dl_first_soname_that_opens);
    tcase_add_test(tc, test_dl_missing_library);
    tcase_add_test(tc, test_dl_missing_symbol);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(dl_suite());
}
