/*
 * buf.h — a growable byte buffer (also used as a string builder: it keeps a NUL
 * after the last byte).
 */
#ifndef KILN_BASE_BUF_H
#define KILN_BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct {
    char *data; /* NULL until something is appended */
    size_t len, cap;
} kiln_buf;

/* Appends n bytes; KILN_ERR_NOMEM on failure (the buffer is unchanged). */
kiln_status kiln_buf_append(kiln_buf *b, const void *p, size_t n);
kiln_status kiln_buf_append_str(kiln_buf *b, const char *s);
kiln_status kiln_buf_printf(kiln_buf *b, const char *fmt, ...) KILN_PRINTF(2, 3);
/* Makes room for n more bytes. */
kiln_status kiln_buf_reserve(kiln_buf *b, size_t n);
void kiln_buf_clear(kiln_buf *b);
void kiln_buf_free(kiln_buf *b);

#endif
