/* grammar.h — what the sampler asks of a kinfer_grammar (internal). */
#ifndef KINFER_RUNTIME_GRAMMAR_H
#define KINFER_RUNTIME_GRAMMAR_H

#include <stdint.h>

#include "kinfer.h"

/* allowed[i] = whether token i (0 <= i < the model's n_vocab) may come
 * next.  KINFER_E_UNSUPPORTED when the state is too ambiguous to mask. */
kinfer_status grammar_mask(kinfer_grammar *gr, uint8_t *allowed);

/* Whether one token may come next (the cheap check of a single candidate). */
int grammar_allows(kinfer_grammar *gr, kinfer_token token);

#endif /* KINFER_RUNTIME_GRAMMAR_H */
