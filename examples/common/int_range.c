/* int_range.c — integer ranges as GBNF (see int_range.h). */
#include "int_range.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void digit_range(textbuf *o, char from, char to)
{
    if (from == to) textbuf_printf(o, "[%c]", from);
    else textbuf_printf(o, "[%c-%c]", from, to);
}

static void more_digits(textbuf *o, int min, int max)
{
    textbuf_append_str(o, "[0-9]");
    if (min == max && min == 1) return;
    textbuf_printf(o, "{%d", min);
    if (max != min) {
        textbuf_append_str(o, ",");
        if (max != INT_MAX) textbuf_printf(o, "%d", max);
    }
    textbuf_append_str(o, "}");
}

static bool all_of_char(const char *s, size_t n, char ch)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ch) return false;
    return true;
}

/* Numbers of the same digit count from "from" to "to" (digit strings, lengths nf, nt). */
static void uniform_range(textbuf *o, const char *from, size_t nf, const char *to, size_t nt)
{
    size_t i = 0;
    while (i < nf && i < nt && from[i] == to[i]) i++;
    if (i > 0) textbuf_printf(o, "\"%.*s\"", (int)i, from);
    if (i >= nf || i >= nt) return;
    if (i > 0) textbuf_append_str(o, " ");
    size_t sub_len = nf - i - 1;
    if (sub_len == 0) {
        textbuf_printf(o, "[%c-%c]", from[i], to[i]);
        return;
    }
    char zeros[24], nines[24];
    memset(zeros, '0', sub_len);
    memset(nines, '9', sub_len);
    const char *from_sub = from + i + 1, *to_sub = to + i + 1;
    size_t nts = nt - i - 1;
    bool to_reached = false;
    textbuf_append_str(o, "(");
    if (all_of_char(from_sub, sub_len, '0')) {
        digit_range(o, from[i], (char)(to[i] - 1));
        textbuf_append_str(o, " ");
        more_digits(o, (int)sub_len, (int)sub_len);
    } else {
        textbuf_printf(o, "[%c] (", from[i]);
        uniform_range(o, from_sub, sub_len, nines, sub_len);
        textbuf_append_str(o, ")");
        if (from[i] < to[i] - 1) {
            textbuf_append_str(o, " | ");
            if (nts == sub_len && all_of_char(to_sub, nts, '9')) {
                digit_range(o, (char)(from[i] + 1), to[i]);
                to_reached = true;
            } else {
                digit_range(o, (char)(from[i] + 1), (char)(to[i] - 1));
            }
            textbuf_append_str(o, " ");
            more_digits(o, (int)sub_len, (int)sub_len);
        }
    }
    if (!to_reached) {
        textbuf_append_str(o, " | ");
        digit_range(o, to[i], to[i]);
        textbuf_append_str(o, " ");
        uniform_range(o, zeros, sub_len, to_sub, nts);
    }
    textbuf_append_str(o, ")");
}

/* The integers in [min, max] (INT64_MIN / INT64_MAX: unbounded), as llama.cpp writes them. */
static void min_max_int(textbuf *o, int64_t min, int64_t max, int decimals_left, bool top_level)
{
    bool has_min = min != INT64_MIN, has_max = max != INT64_MAX;
    char min_s[24], max_s[24];
    if (has_min && has_max) {
        if (min < 0 && max < 0) {
            textbuf_append_str(o, "\"-\" (");
            min_max_int(o, -max, -min, decimals_left, true);
            textbuf_append_str(o, ")");
            return;
        }
        if (min < 0) {
            textbuf_append_str(o, "\"-\" (");
            min_max_int(o, 0, -min, decimals_left, true);
            textbuf_append_str(o, ") | ");
            min = 0;
        }
        int nmin = snprintf(min_s, sizeof min_s, "%lld", (long long)min);
        int nmax = snprintf(max_s, sizeof max_s, "%lld", (long long)max);
        for (int digits = nmin; digits < nmax; digits++) {
            char nines[24];
            memset(nines, '9', (size_t)digits);
            uniform_range(o, min_s, strlen(min_s), nines, (size_t)digits);
            min_s[0] = '1';
            memset(min_s + 1, '0', (size_t)digits);
            min_s[digits + 1] = '\0';
            textbuf_append_str(o, " | ");
        }
        uniform_range(o, min_s, strlen(min_s), max_s, (size_t)nmax);
        return;
    }
    int less_decimals = decimals_left - 1 > 1 ? decimals_left - 1 : 1;
    if (has_min) {
        if (min < 0) {
            textbuf_append_str(o, "\"-\" (");
            min_max_int(o, INT64_MIN, -min, decimals_left, false);
            textbuf_append_str(o, ") | [0] | [1-9] ");
            more_digits(o, 0, decimals_left - 1);
        } else if (min == 0) {
            if (top_level) {
                textbuf_append_str(o, "[0] | [1-9] ");
                more_digits(o, 0, less_decimals);
            } else {
                more_digits(o, 1, decimals_left);
            }
        } else if (min <= 9) {
            char ch = (char)('0' + min), start = top_level ? '1' : '0';
            if (ch > start) {
                digit_range(o, start, (char)(ch - 1));
                textbuf_append_str(o, " ");
                more_digits(o, 1, less_decimals);
                textbuf_append_str(o, " | ");
            }
            digit_range(o, ch, '9');
            textbuf_append_str(o, " ");
            more_digits(o, 0, less_decimals);
        } else {
            int len = snprintf(min_s, sizeof min_s, "%lld", (long long)min);
            char ch = min_s[0];
            if (ch > '1') {
                digit_range(o, top_level ? '1' : '0', (char)(ch - 1));
                textbuf_append_str(o, " ");
                more_digits(o, len, less_decimals);
                textbuf_append_str(o, " | ");
            }
            digit_range(o, ch, ch);
            textbuf_append_str(o, " (");
            min_max_int(o, strtoll(min_s + 1, NULL, 10), INT64_MAX, less_decimals, false);
            textbuf_append_str(o, ")");
            if (ch < '9') {
                textbuf_append_str(o, " | ");
                digit_range(o, (char)(ch + 1), '9');
                textbuf_append_str(o, " ");
                more_digits(o, len - 1, less_decimals);
            }
        }
        return;
    }
    if (max >= 0) {
        if (top_level) {
            textbuf_append_str(o, "\"-\" [1-9] ");
            more_digits(o, 0, less_decimals);
            textbuf_append_str(o, " | ");
        }
        min_max_int(o, 0, max, decimals_left, true);
    } else {
        textbuf_append_str(o, "\"-\" (");
        min_max_int(o, -max, INT64_MAX, decimals_left, false);
        textbuf_append_str(o, ")");
    }
}

void gbnf_int_range(textbuf *o, int64_t min, int64_t max)
{
    min_max_int(o, min, max, 16, true);
}
