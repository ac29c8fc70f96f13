/* textbuf.c — growable byte buffer (see textbuf.h). */
#include "textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool textbuf_append(textbuf *b, const char *text, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, text, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

bool textbuf_append_str(textbuf *b, const char *s)
{
    return textbuf_append(b, s, strlen(s));
}

bool textbuf_printf(textbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return false;
    if (b->n + (size_t)n + 1 > b->cap) {   /* room for the text and its NUL */
        size_t cap = (b->n + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
    return true;
}

const char *textbuf_str(const textbuf *b)
{
    return b->p ? b->p : "";
}

void textbuf_clear(textbuf *b)
{
    b->n = 0;
    if (b->p) b->p[0] = '\0';
}

void textbuf_free(textbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
