/*
 * dl.c — open a library on first use and resolve its symbols (dl.h).
 */
#include "core/dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* A name the list already had before this entry (tried already). */
static bool seen_before(const char *const *first, const char *const *name)
{
    for (const char *const *p = first; p < name; p++)
        if (strcmp(*p, *name) == 0)
            return true;
    return false;
}

static void clear_slots(const kinfer_dl_lib *lib)
{
    for (const kinfer_dl_symbol *s = lib->symbols; s->name != NULL; s++)
        *s->slot = NULL;
}

/* Open the first soname that opens and resolve every symbol; on failure
 * the reason in lib->error and the library closed again.  A name given
 * twice (a build's soname that is also a usual one) is tried once. */
static bool open_and_resolve(kinfer_dl_lib *lib)
{
    void *handle = NULL;
    const char *soname = NULL;
    const char *why = "no library name given";
    char tried[160] = "";
    size_t len = 0;
    for (const char *const *name = lib->sonames; *name != NULL && handle == NULL; name++) {
        if (seen_before(lib->sonames, name))
            continue;
        soname = *name;
        handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) {
            const char *e = dlerror();
            why = e ? e : "unknown error";
            if (len < sizeof tried)
                len += (size_t)snprintf(tried + len, sizeof tried - len, "%s%s", len ? ", " : "", soname);
        }
    }
    if (handle == NULL) {
        /* the names tried, and why the last one failed */
        snprintf(lib->error, sizeof lib->error, "cannot load %s (%s): %s", lib->what, tried, why);
        return false;
    }
    for (const kinfer_dl_symbol *s = lib->symbols; s->name != NULL; s++) {
        *s->slot = dlsym(handle, s->name);
        if (*s->slot == NULL) {
            snprintf(lib->error, sizeof lib->error, "%s (%s): symbol %s not found", lib->what, soname,
                     s->name);
            clear_slots(lib);
            dlclose(handle);
            return false;
        }
    }
    lib->error[0] = '\0';
    return true; /* the handle stays open for the life of the process */
}

bool kinfer_dl_load(kinfer_dl_lib *lib, char *err, size_t err_size)
{
    if (!atomic_load_explicit(&lib->tried, memory_order_acquire)) {
        pthread_mutex_lock(&lib->lock);
        if (!atomic_load_explicit(&lib->tried, memory_order_relaxed)) {
            lib->loaded = open_and_resolve(lib);
            atomic_store_explicit(&lib->tried, true, memory_order_release);
        }
        pthread_mutex_unlock(&lib->lock);
    }
    if (!lib->loaded && err != NULL && err_size > 0)
        snprintf(err, err_size, "%s", lib->error);
    return lib->loaded;
}
