/*
 * status.c — status names, the library version, value type names, and the
 * failure-message helper every module uses.
 */
#include "core/status.h"

#include <stdio.h>

#define STR_(x) #x
#define STR(x) STR_(x)

const char *kinfer_version(void)
{
    return STR(KINFER_VERSION_MAJOR) "." STR(KINFER_VERSION_MINOR) "." STR(KINFER_VERSION_PATCH);
}

const char *kinfer_status_str(kinfer_status status)
{
    switch (status) {
    case KINFER_OK: return "KINFER_OK";
    case KINFER_E_IO: return "KINFER_E_IO";
    case KINFER_E_FORMAT: return "KINFER_E_FORMAT";
    case KINFER_E_TRUNCATED: return "KINFER_E_TRUNCATED";
    case KINFER_E_UNSUPPORTED: return "KINFER_E_UNSUPPORTED";
    case KINFER_E_NOMEM: return "KINFER_E_NOMEM";
    case KINFER_E_DEVICE: return "KINFER_E_DEVICE";
    case KINFER_E_CONTEXT_FULL: return "KINFER_E_CONTEXT_FULL";
    case KINFER_E_ABORTED: return "KINFER_E_ABORTED";
    case KINFER_E_INVALID_ARG: return "KINFER_E_INVALID_ARG";
    case KINFER_E_NOT_FOUND: return "KINFER_E_NOT_FOUND";
    case KINFER_E_TYPE_MISMATCH: return "KINFER_E_TYPE_MISMATCH";
    }
    return "KINFER_E_UNKNOWN";
}

const char *kinfer_value_type_name(int type)
{
    static const char *const names[] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
    };
    return type >= 0 && type < (int)(sizeof names / sizeof names[0]) ? names[type] : NULL;
}

kinfer_status status_vfail(char *buf, size_t size, kinfer_status st, const char *fmt, va_list ap)
{
    if (buf && size) vsnprintf(buf, size, fmt, ap);
    return st;
}

kinfer_status status_fail(char *buf, size_t size, kinfer_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    status_vfail(buf, size, st, fmt, ap);
    va_end(ap);
    return st;
}
