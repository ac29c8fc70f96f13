/*
 * types.c — the table of tensor type traits, indexed by GGUF type number:
 * pure data, shared by the CPU and CUDA sides (the CPU kernels of each type
 * are in kernels/cpu/, chosen by kernels/cpu/dispatch.c).
 */
#include "quant.h"

const int8_t kinfer_iq4nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

/* Block sizes and byte sizes as ggml defines them for each type, and for
 * the types we compute with, the activation type their dot product takes
 * (ggml's vec_dot_type).  A type without kernels has vec_dot_type -1. */
static const kinfer_type_traits type_traits[KINFER_TYPE_COUNT] = {
    [KINFER_TYPE_F32] = {"F32", 1, 4, KINFER_TYPE_F32},
    [KINFER_TYPE_F16] = {"F16", 1, 2, KINFER_TYPE_F16},
    [KINFER_TYPE_Q4_0] = {"Q4_0", 32, 18, KINFER_TYPE_Q8_0},
    [KINFER_TYPE_Q4_1] = {"Q4_1", 32, 20, KINFER_TYPE_Q8_1},
    [KINFER_TYPE_Q5_0] = {"Q5_0", 32, 22, KINFER_TYPE_Q8_0},
    [KINFER_TYPE_Q5_1] = {"Q5_1", 32, 24, KINFER_TYPE_Q8_1},
    [KINFER_TYPE_Q8_0] = {"Q8_0", 32, 34, KINFER_TYPE_Q8_0},
    [KINFER_TYPE_Q8_1] = {"Q8_1", 32, 36, KINFER_TYPE_Q8_1},
    [KINFER_TYPE_Q2_K] = {"Q2_K", 256, 84, KINFER_TYPE_Q8_K},
    [KINFER_TYPE_Q3_K] = {"Q3_K", 256, 110, KINFER_TYPE_Q8_K},
    [KINFER_TYPE_Q4_K] = {"Q4_K", 256, 144, KINFER_TYPE_Q8_K},
    [KINFER_TYPE_Q5_K] = {"Q5_K", 256, 176, KINFER_TYPE_Q8_K},
    [KINFER_TYPE_Q6_K] = {"Q6_K", 256, 210, KINFER_TYPE_Q8_K},
    [KINFER_TYPE_Q8_K] = {"Q8_K", 256, 292, KINFER_TYPE_Q8_K},
    [KINFER_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, -1},
    [KINFER_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74, -1},
    [KINFER_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, -1},
    [KINFER_TYPE_IQ1_S] = {"IQ1_S", 256, 50, -1},
    [KINFER_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, KINFER_TYPE_Q8_0},
    [KINFER_TYPE_IQ3_S] = {"IQ3_S", 256, 110, -1},
    [KINFER_TYPE_IQ2_S] = {"IQ2_S", 256, 82, -1},
    [KINFER_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, KINFER_TYPE_Q8_K},
    [KINFER_TYPE_I8] = {"I8", 1, 1, -1},
    [KINFER_TYPE_I16] = {"I16", 1, 2, -1},
    [KINFER_TYPE_I32] = {"I32", 1, 4, -1},
    [KINFER_TYPE_I64] = {"I64", 1, 8, -1},
    [KINFER_TYPE_F64] = {"F64", 1, 8, -1},
    [KINFER_TYPE_IQ1_M] = {"IQ1_M", 256, 56, -1},
    [KINFER_TYPE_BF16] = {"BF16", 1, 2, KINFER_TYPE_BF16},
    [KINFER_TYPE_TQ1_0] = {"TQ1_0", 256, 54, -1},
    [KINFER_TYPE_TQ2_0] = {"TQ2_0", 256, 66, -1},
    [KINFER_TYPE_MXFP4] = {"MXFP4", 32, 17, -1},
};

const kinfer_type_traits *kinfer_type_traits_get(int type)
{
    if (type < 0 || type >= KINFER_TYPE_COUNT || type_traits[type].name == NULL)
        return NULL;
    return &type_traits[type];
}

const char *kinfer_type_name(int type)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    return tt ? tt->name : NULL;
}

size_t kinfer_row_size(int type, int64_t n)
{
    const kinfer_type_traits *tt = kinfer_type_traits_get(type);
    if (tt == NULL || n < 0 || n % tt->blck_size != 0)
        return 0;
    return (size_t)(n / tt->blck_size) * tt->type_size;
}
