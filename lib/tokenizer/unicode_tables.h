/*
 * unicode_tables.h — the Unicode facts of the WordPiece tokenizer (internal),
 * as llama.cpp's src/unicode.cpp has them; the data is generated
 * (scripts/gen-unicode-tables.py -> unicode_tables.c).
 */
#ifndef KINFER_UNICODE_TABLES_H
#define KINFER_UNICODE_TABLES_H

#include <stdint.h>

/* Classes of a code point (bits). */
enum { UCD_WHITESPACE = 1, UCD_CONTROL = 2, UCD_MARK = 4, UCD_PUNCT = 8, UCD_SYMBOL = 16 };

/* Code point ucd_class_start[i] up to the next start has class
 * ucd_class_value[i]; the starts ascend from 0. */
extern const uint32_t ucd_class_start[];
extern const uint8_t ucd_class_value[];
extern const uint32_t ucd_n_class;

/* {first, last, to}: the code points first..last map to `to`, the first
 * code point of their canonical decomposition; ascending, disjoint. */
extern const uint32_t ucd_nfd[][3];
extern const uint32_t ucd_n_nfd;

/* {code point, its simple lowercase}; ascending. */
extern const uint32_t ucd_lower[][2];
extern const uint32_t ucd_n_lower;

#endif /* KINFER_UNICODE_TABLES_H */
