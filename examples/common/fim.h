/*
 * fim.h — the fill-in-the-middle prompt, built as llama-server's /infill
 * builds it (repo-level FIM, arXiv 2409.12186):
 *
 *   [FIM_REP "myproject\n"] [FIM_SEP "name\n" text]... [FIM_SEP "filename\n"]
 *   [BOS] FIM_PRE prefix prompt FIM_SUF suffix FIM_MID
 *
 * (without FIM_SEP each extra file is preceded by a "--- snippet ---" line).
 * The prefix keeps its last 3/4 of n_batch tokens, the suffix its first
 * n_batch/4 - 2 - |prompt|, the extra files the tail that fits
 * n_ctx - n_batch - 2 * n_predict.  kinfer-server's /infill and kinfer-cli's
 * --fim-prefix/--fim-suffix both use it.
 */
#ifndef KINFER_EXAMPLES_FIM_H
#define KINFER_EXAMPLES_FIM_H

#include <stdint.h>

#include "kinfer.h"

typedef struct fim_file {
    const char *name;   /* NULL: "tmp" */
    const char *text;
} fim_file;

typedef struct fim_input {
    const char *prefix, *suffix;   /* code before and after the hole (plain text) */
    const char *prompt;            /* start of the middle; special text parsed; may be NULL */
    const fim_file *extra;         /* other files of the project */
    int n_extra;
} fim_input;

/* The prompt's tokens (malloc'd, *n of them), or NULL with *error:
 * KINFER_E_UNSUPPORTED when the model has no FIM prefix/suffix/middle
 * tokens, KINFER_E_NOMEM. */
kinfer_token *fim_prompt(const kinfer_model *model, const fim_input *in, int32_t n_batch, int32_t n_ctx,
                         int32_t n_predict, int32_t *n, kinfer_error *error);

#endif
