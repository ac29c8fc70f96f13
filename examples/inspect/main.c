/*
 * kinfer-inspect — print a GGUF file's metadata and tensor table.
 *
 *   kinfer-inspect [--json] [--full] model.gguf
 *
 * Works on any valid GGUF, including architectures kinfer cannot run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer.h"

#define ARRAY_PREVIEW 8 /* elements shown of a long array unless --full */

/* The formatted value of metadata entry i, in a malloc'd string. */
static char *format_value(const kinfer_model *model, int64_t i, uint64_t max_elems)
{
    int64_t n = kinfer_meta_format(model, i, max_elems, NULL, 0);
    size_t size = (size_t)(n < 0 ? -n : n) + 1;
    char *buf = malloc(size);
    if (buf) kinfer_meta_format(model, i, max_elems, buf, size);
    return buf;
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static void shape_text(const kinfer_tensor_info *t, char *buf, size_t size)
{
    int n = 0;
    for (uint32_t d = 0; d < t->n_dims && n >= 0 && (size_t)n < size; d++)
        n += snprintf(buf + n, size - (size_t)n, d ? " x %" PRId64 : "%" PRId64, t->ne[d]);
}

typedef struct type_total {
    uint64_t count, elements, bytes;
} type_total;

static void print_text(const char *path, const kinfer_model *model, uint64_t max_elems)
{
    int64_t n_kv = kinfer_meta_count(model), n_t = kinfer_tensor_count(model);
    printf("%s: GGUF v%u, %" PRId64 " metadata entries, %" PRId64 " tensors\n\n", path,
           kinfer_model_gguf_version(model), n_kv, n_t);
    for (int64_t i = 0; i < n_kv; i++) {
        kinfer_value_type type, elem;
        uint64_t n;
        kinfer_meta_type(model, i, &type, &elem, &n);
        char tname[32];
        if (type == KINFER_VALUE_ARRAY)
            snprintf(tname, sizeof tname, "%s[%" PRIu64 "]", kinfer_value_type_name(elem), n);
        else
            snprintf(tname, sizeof tname, "%s", kinfer_value_type_name(type));
        char *value = format_value(model, i, max_elems);
        printf("  %-44s %-14s %s\n", kinfer_meta_key(model, i), tname, value ? value : "?");
        free(value);
    }

    type_total totals[KINFER_TYPE_COUNT] = {0};
    uint64_t all_elements = 0, all_bytes = 0;
    printf("\n  %-5s %-40s %-7s %-24s %12s %12s\n", "#", "tensor", "type", "shape", "offset",
           "bytes");
    for (int64_t i = 0; i < n_t; i++) {
        kinfer_tensor_info t;
        kinfer_tensor_get_info(model, i, &t);
        char shape[96] = "";
        shape_text(&t, shape, sizeof shape);
        printf("  %-5" PRId64 " %-40s %-7s %-24s %12" PRIu64 " %12" PRIu64 "\n", i, t.name,
               kinfer_type_name(t.type), shape, t.offset, t.size);
        totals[t.type].count++;
        totals[t.type].elements += t.n_elements;
        totals[t.type].bytes += t.size;
        all_elements += t.n_elements;
        all_bytes += t.size;
    }
    printf("\n  %-7s %8s %16s %14s %10s\n", "type", "tensors", "elements", "bytes", "bits/elt");
    for (int ty = 0; ty < KINFER_TYPE_COUNT; ty++) {
        if (!totals[ty].count) continue;
        printf("  %-7s %8" PRIu64 " %16" PRIu64 " %14" PRIu64 " %10.3f\n", kinfer_type_name(ty),
               totals[ty].count, totals[ty].elements, totals[ty].bytes,
               totals[ty].elements ? 8.0 * (double)totals[ty].bytes / (double)totals[ty].elements : 0);
    }
    printf("  %-7s %8" PRId64 " %16" PRIu64 " %14" PRIu64 " %10.3f\n", "total", n_t, all_elements,
           all_bytes, all_elements ? 8.0 * (double)all_bytes / (double)all_elements : 0);
}

static void print_json(const kinfer_model *model, uint64_t max_elems)
{
    int64_t n_kv = kinfer_meta_count(model), n_t = kinfer_tensor_count(model);
    printf("{\n  \"gguf_version\": %u,\n  \"metadata\": [", kinfer_model_gguf_version(model));
    for (int64_t i = 0; i < n_kv; i++) {
        kinfer_value_type type, elem;
        uint64_t n;
        kinfer_meta_type(model, i, &type, &elem, &n);
        char *value = format_value(model, i, max_elems);
        printf("%s\n    {\"key\": ", i ? "," : "");
        json_string(kinfer_meta_key(model, i));
        printf(", \"type\": \"%s\"", kinfer_value_type_name(type));
        if (type == KINFER_VALUE_ARRAY)
            printf(", \"elem_type\": \"%s\", \"n_elems\": %" PRIu64, kinfer_value_type_name(elem), n);
        /* Abbreviated arrays are not valid JSON values, so values go as text. */
        printf(", \"value\": ");
        json_string(value ? value : "");
        printf("}");
        free(value);
    }
    printf("\n  ],\n  \"tensors\": [");
    for (int64_t i = 0; i < n_t; i++) {
        kinfer_tensor_info t;
        kinfer_tensor_get_info(model, i, &t);
        printf("%s\n    {\"name\": ", i ? "," : "");
        json_string(t.name);
        printf(", \"type\": \"%s\", \"shape\": [", kinfer_type_name(t.type));
        for (uint32_t d = 0; d < t.n_dims; d++) printf(d ? ", %" PRId64 : "%" PRId64, t.ne[d]);
        printf("], \"offset\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", t.offset, t.size);
    }
    printf("\n  ]\n}\n");
}

int main(int argc, char **argv)
{
    int json = 0;
    uint64_t max_elems = ARRAY_PREVIEW;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--full") == 0) max_elems = 0;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) path = NULL, argc = 0;
        else path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: kinfer-inspect [--json] [--full] model.gguf\n"
                        "  --json  print JSON instead of text\n"
                        "  --full  print long arrays whole instead of their first %d elements\n",
                ARRAY_PREVIEW);
        return 2;
    }
    kinfer_model *model = NULL;
    kinfer_status st = kinfer_model_load(path, NULL, &model);
    if (st != KINFER_OK) {
        fprintf(stderr, "kinfer-inspect: %s (%s)\n", kinfer_model_errmsg(model),
                kinfer_status_str(st));
        kinfer_model_free(model);
        return 1;
    }
    if (json) print_json(model, max_elems);
    else print_text(path, model, max_elems);
    kinfer_model_free(model);
    return 0;
}
