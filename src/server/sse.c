/*
 * sse.c — server-sent event formatting (see sse.h).
 */
#include "sse.h"

#include <string.h>

#include "base/status.h"

/* Appends "<prefix><line>\n" for each line of p[0..n); one empty line if n is 0. */
static kiln_status lines(kiln_buf *out, const char *prefix, const char *p, size_t n) {
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r') j++;
        kiln_status s = kiln_buf_append_str(out, prefix);
        if (!s) s = kiln_buf_append(out, p + i, j - i);
        if (!s) s = kiln_buf_append(out, "\n", 1);
        if (s) return s;
        if (j == n) return KILN_OK;
        /* a line break: "\r\n" counts once */
        i = j + (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n' ? 2 : 1);
    }
}

static bool has_newline(const char *s) { return s && strpbrk(s, "\r\n") != NULL; }

kiln_status kiln_sse_event(kiln_buf *out, const char *event, const char *id, const char *data, size_t len) {
    if (has_newline(event)) return kiln_fail(KILN_ERR_INVALID_ARG, "sse: event name contains a line break");
    if (has_newline(id)) return kiln_fail(KILN_ERR_INVALID_ARG, "sse: event id contains a line break");
    if (!data && len) return kiln_fail(KILN_ERR_INVALID_ARG, "sse: NULL data with length %zu", len);
    size_t start = out->len;
    kiln_status s = KILN_OK;
    if (event) s = kiln_buf_printf(out, "event: %s\n", event);
    if (!s && id) s = kiln_buf_printf(out, "id: %s\n", id);
    if (!s) s = lines(out, "data: ", data ? data : "", len);
    if (!s) s = kiln_buf_append(out, "\n", 1);
    if (s) {
        out->len = start;
        if (out->data) out->data[start] = 0;
    }
    return s;
}

kiln_status kiln_sse_comment(kiln_buf *out, const char *text) {
    size_t start = out->len;
    const char *t = text ? text : "";
    kiln_status s = lines(out, ": ", t, strlen(t));
    if (!s) s = kiln_buf_append(out, "\n", 1);
    if (s) {
        out->len = start;
        if (out->data) out->data[start] = 0;
    }
    return s;
}

kiln_status kiln_sse_retry(kiln_buf *out, unsigned ms) { return kiln_buf_printf(out, "retry: %u\n\n", ms); }
