/*
 * ftype.c — llama.cpp's file types (general.file_type): their names and the
 * type most weights have in each.
 */
#include "model/ftype.h"

#include <stddef.h>
#include <strings.h>

static const struct ftype_info ftypes[] = {
    {"F32", 0, KINFER_TYPE_F32},       {"F16", 1, KINFER_TYPE_F16},
    {"BF16", 32, KINFER_TYPE_BF16},    {"Q8_0", 7, KINFER_TYPE_Q8_0},
    {"Q4_0", 2, KINFER_TYPE_Q4_0},     {"Q4_1", 3, KINFER_TYPE_Q4_1},
    {"Q5_0", 8, KINFER_TYPE_Q5_0},     {"Q5_1", 9, KINFER_TYPE_Q5_1},
    {"Q2_K", 10, KINFER_TYPE_Q2_K},    {"Q3_K_M", 12, KINFER_TYPE_Q3_K},
    {"Q4_K_S", 14, KINFER_TYPE_Q4_K},  {"Q4_K_M", 15, KINFER_TYPE_Q4_K},
    {"Q5_K_S", 16, KINFER_TYPE_Q5_K},  {"Q5_K_M", 17, KINFER_TYPE_Q5_K},
    {"Q6_K", 18, KINFER_TYPE_Q6_K},    {"IQ4_NL", 25, KINFER_TYPE_IQ4_NL},
    {"IQ4_XS", 30, KINFER_TYPE_IQ4_XS},
};
#define N_FTYPES (sizeof ftypes / sizeof ftypes[0])

const char *kinfer_quantize_ftype_name(int i)
{
    return i >= 0 && (size_t)i < N_FTYPES ? ftypes[i].name : NULL;
}

const ftype_info *ftype_find(const char *name)
{
    for (size_t i = 0; name && i < N_FTYPES; i++)
        if (strcasecmp(ftypes[i].name, name) == 0) return &ftypes[i];
    return NULL;
}

const char *ftype_name(uint32_t file_type)
{
    for (size_t i = 0; i < N_FTYPES; i++)
        if (ftypes[i].file_type == file_type) return ftypes[i].name;
    return NULL;
}
