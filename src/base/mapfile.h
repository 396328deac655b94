/*
 * mapfile.h — read-only memory-mapped files.
 *
 * Model weights are used in place from the mapping, except the matrices a model
 * repacks or copies onto large pages at load (kernels.h: kiln_weight_pack,
 * kiln_weight_copy_large).
 */
#ifndef KILN_BASE_MAPFILE_H
#define KILN_BASE_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

typedef struct {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
    char *path;          /* owned copy of the path, for error messages */
} kiln_mapfile;

/* Maps path read-only. On success fills *mf (release with kiln_mapfile_close). On
 * failure returns KILN_ERR_IO with a message naming the file. */
kiln_status kiln_mapfile_open(const char *path, kiln_mapfile *mf);
void kiln_mapfile_close(kiln_mapfile *mf);

/* Reads a whole (small) file into a malloc'd NUL-terminated buffer; refuses files
 * over max_size bytes. *out is owned by the caller. */
kiln_status kiln_read_file(const char *path, size_t max_size, char **out, size_t *len);

#endif
