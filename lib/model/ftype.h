/* ftype.h — llama.cpp's file types (general.file_type values) (internal). */
#ifndef KINFER_FTYPE_H
#define KINFER_FTYPE_H

#include <stdint.h>

#include "kinfer.h"

typedef struct ftype_info {
    const char *name;    /* "Q4_K_M" */
    uint32_t file_type;  /* general.file_type, llama.cpp's numbering */
    int base;            /* kinfer_type of most weights */
} ftype_info;

/* The file type of a name (case-insensitive), or NULL. */
const ftype_info *ftype_find(const char *name);

/* Name of a general.file_type value ("Q4_K_M"), or NULL when unknown. */
const char *ftype_name(uint32_t file_type);

#endif /* KINFER_FTYPE_H */
