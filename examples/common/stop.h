/*
 * stop.h — stop strings over streamed text.
 *
 * Text arrives in pieces (one token's worth at a time).  The matcher emits
 * text as soon as it cannot be the start of a stop string, holds back a tail
 * that might be one (so a stop split across tokens is still caught), and
 * never emits a stop string or anything after it.
 */
#ifndef KINFER_EXAMPLES_STOP_H
#define KINFER_EXAMPLES_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "textbuf.h"

typedef struct stop_matcher {
    char **stops;     /* owned copies; empty strings are dropped */
    int n_stops;
    textbuf held;     /* text received but not emitted yet */
    bool stopped;     /* a stop string was seen: everything else is dropped */
    int which;        /* index of the stop string seen, -1 before */
} stop_matcher;

/* Copy the stop strings; false when memory ran out (then free it). */
bool stop_init(stop_matcher *m, const char *const *stops, int n_stops);
void stop_free(stop_matcher *m);

/* Feed text; appends what is safe to emit to out.  Returns true when a stop
 * string has been found (now or before): generation should end. */
bool stop_feed(stop_matcher *m, const char *text, size_t n, textbuf *out);

/* At the end of generation, emits the held-back tail (unless stopped). */
void stop_flush(stop_matcher *m, textbuf *out);

#endif
