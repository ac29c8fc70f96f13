/* args.c — checked command-line values (see args.h). */
#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *program = "kinfer";

void args_program(const char *name) { program = name; }

void args_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

long long args_int(const char *flag, const char *s, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        args_die("%s: '%s' is not an integer in [%lld, %lld]", flag, s, lo, hi);
    return v;
}

float args_float(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end) args_die("%s: '%s' is not a number", flag, s);
    return v;
}

kinfer_flash_attn args_flash_attn(const char *flag, const char *s)
{
    if (!strcasecmp(s, "on") || !strcmp(s, "1")) return KINFER_FLASH_ATTN_ON;
    if (!strcasecmp(s, "off") || !strcmp(s, "0")) return KINFER_FLASH_ATTN_OFF;
    if (!strcasecmp(s, "auto") || !strcmp(s, "-1")) return KINFER_FLASH_ATTN_AUTO;
    args_die("%s: '%s' is not on, off or auto", flag, s);
}

kinfer_type args_kv_type(const char *flag, const char *s)
{
    if (!strcasecmp(s, "f16")) return KINFER_TYPE_F16;
    if (!strcasecmp(s, "f32")) return KINFER_TYPE_F32;
    if (!strcasecmp(s, "q8_0")) return KINFER_TYPE_Q8_0;
    args_die("%s: unknown KV cache type '%s' (f16, q8_0, f32)", flag, s);
}
