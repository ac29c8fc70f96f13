/* stop.c — stop-string matching over streamed text (see stop.h). */
#include "stop.h"

#include <stdlib.h>
#include <string.h>

bool stop_init(stop_matcher *m, const char *const *stops, int n_stops)
{
    memset(m, 0, sizeof *m);
    m->which = -1;
    if (n_stops <= 0) return true;
    m->stops = calloc((size_t)n_stops, sizeof *m->stops);
    if (!m->stops) return false;
    for (int i = 0; i < n_stops; i++) {
        if (!stops[i] || !stops[i][0]) continue;
        char *copy = strdup(stops[i]);
        if (!copy) return false;
        m->stops[m->n_stops++] = copy;
    }
    return true;
}

void stop_free(stop_matcher *m)
{
    for (int i = 0; i < m->n_stops; i++) free(m->stops[i]);
    free(m->stops);
    textbuf_free(&m->held);
    memset(m, 0, sizeof *m);
    m->which = -1;
}

/* Length of the longest tail of text[0..n) that is a proper prefix of a stop
 * string: the part that must wait for the next piece. */
static size_t partial_tail(const stop_matcher *m, const char *text, size_t n)
{
    size_t best = 0;
    for (int i = 0; i < m->n_stops; i++) {
        size_t len = strlen(m->stops[i]);
        size_t max = len - 1 < n ? len - 1 : n;
        for (size_t k = max; k > best; k--) {
            if (!memcmp(text + n - k, m->stops[i], k)) {
                best = k;
                break;
            }
        }
    }
    return best;
}

bool stop_feed(stop_matcher *m, const char *text, size_t n, textbuf *out)
{
    if (m->stopped) return true;
    if (m->n_stops == 0) {
        textbuf_append(out, text, n);
        return false;
    }
    textbuf_append(&m->held, text, n);
    const char *held = textbuf_str(&m->held);
    size_t n_held = m->held.n;
    if (n_held == 0) return false;

    /* the earliest stop string in what is held ends the text there */
    size_t first = n_held;
    for (int i = 0; i < m->n_stops; i++) {
        const char *hit = memmem(held, n_held, m->stops[i], strlen(m->stops[i]));
        if (hit && (size_t)(hit - held) < first) {
            first = (size_t)(hit - held);
            m->which = i;
        }
    }
    if (first < n_held) {
        textbuf_append(out, held, first);
        textbuf_clear(&m->held);
        m->stopped = true;
        return true;
    }
    size_t keep = partial_tail(m, held, n_held);
    textbuf_append(out, held, n_held - keep);
    memmove(m->held.p, held + n_held - keep, keep);
    m->held.n = keep;
    m->held.p[keep] = '\0';
    return false;
}

void stop_flush(stop_matcher *m, textbuf *out)
{
    if (!m->stopped && m->held.n) textbuf_append(out, m->held.p, m->held.n);
    textbuf_clear(&m->held);
}
