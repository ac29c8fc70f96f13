/*
 * int_range.h — the integers of a range as a GBNF expression, digit by
 * digit, exactly as llama.cpp's JSON Schema converter writes them
 * (json_schema.c's integer minimum / maximum).
 */
#ifndef KINFER_EXAMPLES_INT_RANGE_H
#define KINFER_EXAMPLES_INT_RANGE_H

#include <stdint.h>

#include "textbuf.h"

/* Append the integers in [min, max] (min = INT64_MIN: no lower bound,
 * max = INT64_MAX: no upper bound; not both) to o, decimal without leading
 * zeros.  Bounds must lie within +-2^62 (json_schema.c keeps them to 2^53). */
void gbnf_int_range(textbuf *o, int64_t min, int64_t max);

#endif
