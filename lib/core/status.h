/*
 * status.h — the one way a module records a failure message (internal).
 *
 * Every handle keeps a message buffer for its last failure (DESIGN.md 3);
 * status_fail formats into it and hands the status back, so a failing call
 * reads `return status_fail(buf, size, KINFER_E_FORMAT, "...", ...);`.
 */
#ifndef KINFER_CORE_STATUS_H
#define KINFER_CORE_STATUS_H

#include <stdarg.h>
#include <stddef.h>

#include "kinfer.h"

/* Write the printf-style message into buf (size bytes, may be 0) and
 * return st. */
kinfer_status status_fail(char *buf, size_t size, kinfer_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
kinfer_status status_vfail(char *buf, size_t size, kinfer_status st, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif /* KINFER_CORE_STATUS_H */
