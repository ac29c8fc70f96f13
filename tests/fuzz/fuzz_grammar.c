/*
 * fuzz_grammar.c — libFuzzer target over the GBNF parser (lib/runtime/gbnf.c)
 * and the JSON Schema converter (examples/common/json_schema.c).  The first
 * byte picks: even, the rest is GBNF text; odd, the rest is a JSON Schema,
 * converted, and the grammar it gives parsed too.  Neither may crash, hang,
 * leak or take unbounded memory on any input; an error is a fine answer.
 *
 *   make fuzz   (builds build/fuzz/fuzz_grammar, seeds from the test grammars and schemas)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/gbnf.h"
#include "../examples/common/json_schema.h"

static void parse_gbnf(const char *text)
{
    gbnf_grammar g;
    char err[256];
    memset(&g, 0, sizeof g);
    if (gbnf_parse(text, NULL, &g, err, sizeof err) == KINFER_OK) gbnf_free(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] & 1) {
        char err[512];
        char *gbnf = json_schema_text_to_gbnf(text, size - 1, err, sizeof err);
        if (gbnf) parse_gbnf(gbnf);
        free(gbnf);
    } else {
        parse_gbnf(text);
    }
    free(text);
    return 0;
}
