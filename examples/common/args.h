/*
 * args.h — command-line values for the example programs: integers, numbers
 * and KV cache types checked with a message naming the flag, and the one
 * way a program dies on bad arguments ("<program>: message", exit 1).
 */
#ifndef KINFER_EXAMPLES_ARGS_H
#define KINFER_EXAMPLES_ARGS_H

#include "kinfer.h"

/* The name args_die puts first (set once, in main). */
void args_program(const char *name);

void args_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

long long args_int(const char *flag, const char *s, long long lo, long long hi);
float args_float(const char *flag, const char *s);
/* f16, q8_0 or f32 */
kinfer_type args_kv_type(const char *flag, const char *s);
/* on, off or auto (also 1, 0, -1), as llama.cpp's -fa */
kinfer_flash_attn args_flash_attn(const char *flag, const char *s);

#endif
