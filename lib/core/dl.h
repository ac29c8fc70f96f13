/*
 * dl.h — a shared library opened with dlopen on first use (internal).
 *
 * kinfer links neither OpenBLAS nor cuBLAS: mapping them costs every
 * process memory at start-up although most runs never call them.  A
 * library is described once, statically (the sonames to try, the symbols
 * to resolve into a table of function pointers), and kinfer_dl_load opens
 * it the first time it is asked, from any thread; afterwards the table is
 * read-only and the library stays loaded for the life of the process.
 */
#ifndef KINFER_CORE_DL_H
#define KINFER_CORE_DL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* One symbol: its name and where its address goes (a function pointer's
 * address, as void **: POSIX guarantees dlsym's result converts). */
typedef struct kinfer_dl_symbol {
    const char *name;
    void **slot;
} kinfer_dl_symbol;

typedef struct kinfer_dl_lib {
    const char *what;              /* for messages: "OpenBLAS" */
    const char *const *sonames;    /* tried in order, NULL-terminated */
    const kinfer_dl_symbol *symbols; /* NULL-terminated by name */
    /* state, written once by the first kinfer_dl_load under lock */
    pthread_mutex_t lock;
    atomic_bool tried;             /* set (release) after loaded and error */
    bool loaded;
    char error[256];
} kinfer_dl_lib;

/* The initializer of a kinfer_dl_lib with static storage:
 * static kinfer_dl_lib lib = KINFER_DL_LIB("cuBLAS", sonames, symbols); */
#define KINFER_DL_LIB(what, sonames, symbols) \
    {(what), (sonames), (symbols), PTHREAD_MUTEX_INITIALIZER, false, false, ""}

/* Open lib and resolve its symbols, once (thread-safe; every call after the
 * first returns the first one's result).  false when none of the sonames
 * opens or a symbol is missing, with the reason in err (which library or
 * symbol); then every slot is NULL. */
bool kinfer_dl_load(kinfer_dl_lib *lib, char *err, size_t err_size);

#endif /* KINFER_CORE_DL_H */
