/*
 * buf.c — growable byte buffer.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

kiln_status kiln_buf_reserve(kiln_buf *b, size_t n) {
    size_t need;
    if (!kiln_add_ok(b->len, n, &need) || !kiln_add_ok(need, 1, &need))
        return kiln_fail(KILN_ERR_NOMEM, "buffer size overflow");
    if (need <= b->cap) return KILN_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) return kiln_fail(KILN_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->data = d;
    b->cap = cap;
    return KILN_OK;
}

kiln_status kiln_buf_append(kiln_buf *b, const void *p, size_t n) {
    kiln_status s = kiln_buf_reserve(b, n);
    if (s) return s;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return KILN_OK;
}

kiln_status kiln_buf_append_str(kiln_buf *b, const char *s) { return kiln_buf_append(b, s, strlen(s)); }

kiln_status kiln_buf_printf(kiln_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return kiln_fail(KILN_ERR_INVALID_ARG, "bad format string");
    kiln_status s = kiln_buf_reserve(b, (size_t)n);
    if (s) return s;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return KILN_OK;
}

void kiln_buf_clear(kiln_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

void kiln_buf_free(kiln_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
