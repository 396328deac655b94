/*
 * mapfile.h — read-only memory-mapped files.
 *
 * Model weights are used in place from the mapping, except the matrices a model
 * repacks or copies onto large pages at load (kernels.h: kiln_weight_pack,
 * kiln_weight_copy_large).
 */
#ifndef KILN_BASE_MAPFILE_H
#define KILN_BASE_MAPFILE_H

#include <stdbool.h>
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

/* If [p, p + n) lies inside mf's mapping, drops the whole pages inside it from this
 * process (MADV_DONTNEED: the mapping is private and read-only, so reading them again
 * faults the same bytes back in from the file, usually from the page cache) and
 * returns true; otherwise touches nothing and returns false. For weights a copy has
 * replaced, so they are not counted twice in the resident memory. */
bool kiln_mapfile_release(const kiln_mapfile *mf, const void *p, size_t n);

/* Reads a whole (small) file into a malloc'd NUL-terminated buffer; refuses files
 * over max_size bytes. *out is owned by the caller. */
kiln_status kiln_read_file(const char *path, size_t max_size, char **out, size_t *len);

#endif
