/* textbuf.h — a growable, always NUL-terminated byte buffer. */
#ifndef KINFER_EXAMPLES_TEXTBUF_H
#define KINFER_EXAMPLES_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct textbuf {
    char *p;        /* owned; NULL until the first append */
    size_t n, cap;  /* bytes used (without the NUL), bytes allocated */
} textbuf;

/* Append n bytes; false when memory ran out (the buffer is unchanged). */
bool textbuf_append(textbuf *b, const char *text, size_t n);
bool textbuf_append_str(textbuf *b, const char *s);
/* Append printf-formatted text; false when memory ran out. */
bool textbuf_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text, "" when empty.  Valid until the next append or free. */
const char *textbuf_str(const textbuf *b);
void textbuf_clear(textbuf *b);
void textbuf_free(textbuf *b);

#endif
