/*
 * stop.h — stop strings over streamed text.
 *
 * Generated text arrives in pieces; a stop string may be split across them. The
 * matcher holds back only the longest suffix that could still begin a stop string
 * and releases everything else at once.
 */
#ifndef KILN_PIPELINES_STOP_H
#define KILN_PIPELINES_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

typedef struct kiln_stop kiln_stop;

/* stops: NULL-terminated list (or NULL for none); empty strings are rejected.
 * *out is owned by the caller (kiln_stop_free). */
kiln_status kiln_stop_create(const char *const *stops, kiln_stop **out);
void kiln_stop_free(kiln_stop *s);
/* Feeds new text; appends to out what is now safe to emit. Returns true when a stop
 * string completed: out then has the text before it and nothing after. */
bool kiln_stop_feed(kiln_stop *s, const char *text, size_t len, kiln_buf *out);
/* End of generation: appends any held-back text. */
void kiln_stop_flush(kiln_stop *s, kiln_buf *out);

#endif
