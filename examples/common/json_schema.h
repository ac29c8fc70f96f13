/*
 * json_schema.h — JSON Schema to a GBNF grammar, the grammar llama.cpp's
 * json_schema_to_grammar writes for the same schema (same rules, names,
 * property order and whitespace), so a model constrained by kinfer and by
 * llama.cpp sees the same language.
 *
 * Covered: type (one or a list), properties / required /
 * additionalProperties, items (a schema or a tuple) / prefixItems /
 * minItems / maxItems, enum, const, string pattern (llama.cpp's regular
 * subset, anchored ^...$) / minLength / maxLength / format (date, time,
 * date-time, uuid), integer minimum / maximum / exclusiveMinimum /
 * exclusiveMaximum, number, boolean, null, anyOf / oneOf, allOf of objects,
 * $ref into the same document ($defs, definitions, any JSON pointer).
 * Where llama.cpp would silently accept more than the schema says (an
 * unknown keyword, an unsupported pattern or format, bounds on a number),
 * this is an error naming the keyword instead.
 */
#ifndef KINFER_EXAMPLES_JSON_SCHEMA_H
#define KINFER_EXAMPLES_JSON_SCHEMA_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The grammar for schema (a malloc'd NUL-terminated string the caller
 * frees), or NULL with a message in err ("JSON schema error at
 * #/properties/x: unsupported keyword \"uniqueItems\""; err may be NULL). */
char *json_schema_to_gbnf(const cJSON *schema, char *err, size_t err_size);
/* The same from JSON text (len bytes); a text that does not parse is an error. */
char *json_schema_text_to_gbnf(const char *text, size_t len, char *err, size_t err_size);
/* JSON mode (OpenAI's json_object, Ollama's "json"): any JSON object, the
 * grammar of the schema {"type": "object"} as llama-server uses. */
char *json_object_gbnf(char *err, size_t err_size);

#endif
