/*
 * stop.c — incremental stop-string matching.
 */
#include "stop.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

struct kiln_stop {
    char **stops;
    int n;
    kiln_buf held; /* text not yet emitted */
};

kiln_status kiln_stop_create(const char *const *stops, kiln_stop **out) {
    *out = NULL;
    kiln_stop *s = calloc(1, sizeof *s);
    if (!s) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    int n = 0;
    while (stops && stops[n]) n++;
    s->stops = kiln_calloc_array((size_t)n, sizeof *s->stops);
    if (!s->stops) {
        free(s);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        if (!stops[i][0]) {
            kiln_stop_free(s);
            return kiln_fail(KILN_ERR_INVALID_ARG, "stop strings must not be empty");
        }
        if (!(s->stops[i] = kiln_strdup(stops[i]))) {
            kiln_stop_free(s);
            return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        }
        s->n = i + 1;
    }
    *out = s;
    return KILN_OK;
}

void kiln_stop_free(kiln_stop *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->stops[i]);
    free(s->stops);
    kiln_buf_free(&s->held);
    free(s);
}

/* Length of the longest suffix of h[0..n) that is a proper prefix of a stop string. */
static size_t partial_suffix(const kiln_stop *s, const char *h, size_t n) {
    size_t best = 0;
    for (int i = 0; i < s->n; i++) {
        size_t L = strlen(s->stops[i]);
        for (size_t k = (L - 1 < n ? L - 1 : n); k > best; k--) {
            if (!memcmp(h + n - k, s->stops[i], k)) {
                best = k;
                break;
            }
        }
    }
    return best;
}

bool kiln_stop_feed(kiln_stop *s, const char *text, size_t len, kiln_buf *out) {
    if (kiln_buf_append(&s->held, text, len)) { /* out of memory: release what we can */
        kiln_buf_append(out, s->held.data ? s->held.data : "", s->held.len);
        kiln_buf_clear(&s->held);
        kiln_buf_append(out, text, len);
        return false;
    }
    const char *h = s->held.data ? s->held.data : "";
    size_t n = s->held.len;
    /* earliest complete stop string */
    const char *first = NULL;
    for (int i = 0; i < s->n; i++) {
        const char *f = memmem(h, n, s->stops[i], strlen(s->stops[i]));
        if (f && (!first || f < first)) first = f;
    }
    if (first) {
        kiln_buf_append(out, h, (size_t)(first - h));
        kiln_buf_clear(&s->held);
        return true;
    }
    size_t keep = partial_suffix(s, h, n);
    kiln_buf_append(out, h, n - keep);
    memmove(s->held.data, h + n - keep, keep);
    s->held.len = keep;
    s->held.data[keep] = 0;
    return false;
}

void kiln_stop_flush(kiln_stop *s, kiln_buf *out) {
    if (s->held.len) kiln_buf_append(out, s->held.data, s->held.len);
    kiln_buf_clear(&s->held);
}
