/*
 * sse.h — formatting server-sent events (the text/event-stream format of the HTML
 * standard, "Server-sent events" §9.2).
 *
 * Streaming routes (token streams, job progress) write events into a kiln_buf that
 * the HTTP layer sends as they come. The format is small but easy to get wrong: a
 * newline inside the data must start a new "data:" line (the client joins them with
 * "\n"), and a CR or LF in the event name or id would inject fields. This module
 * does not depend on libmicrohttpd.
 */
#ifndef KILN_SERVER_SSE_H
#define KILN_SERVER_SSE_H

#include <stddef.h>

#include "base/buf.h"

/* Appends one event to out: "event: <event>\n" (if event is not NULL), "id: <id>\n"
 * (if id is not NULL), one "data: <line>\n" per line of data[0..len) (lines end at
 * "\r\n", "\r" or "\n"; empty data gives one empty data line, so the client still
 * dispatches an event whose data is ""), then the blank line that ends the event.
 * data may be NULL when len is 0. KILN_ERR_INVALID_ARG if event or id contains CR
 * or LF, KILN_ERR_NOMEM if out cannot grow; on error out is unchanged. */
kiln_status kiln_sse_event(kiln_buf *out, const char *event, const char *id, const char *data, size_t len);

/* Appends a comment, which clients ignore: ": <text>\n" per line of text, then a
 * blank line; kiln_sse_comment(out, "ping") gives ": ping\n\n", the keep-alive that
 * stops proxies from closing an idle stream. On error out is unchanged. */
kiln_status kiln_sse_comment(kiln_buf *out, const char *text);

/* Appends "retry: <ms>\n\n", the client's reconnection delay. */
kiln_status kiln_sse_retry(kiln_buf *out, unsigned ms);

#endif
