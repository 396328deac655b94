/*
 * status.h — setting and reading the per-thread error message.
 *
 * Library code reports a failure by returning kiln_fail(status, "fmt", ...): it
 * records a formatted message for the calling thread and returns the status, so a
 * failure path is one line. The message is read back with kiln_last_error().
 */
#ifndef KILN_BASE_STATUS_H
#define KILN_BASE_STATUS_H

#include "kiln.h"

#if defined(__GNUC__)
#define KILN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KILN_PRINTF(a, b)
#endif

/* Records the message for this thread and returns s. This function can't fail
 * (messages longer than the buffer are truncated). */
kiln_status kiln_fail(kiln_status s, const char *fmt, ...) KILN_PRINTF(2, 3);

/* Prefixes the current message with "prefix: " (e.g. the file name) and returns s. */
kiln_status kiln_fail_prefix(kiln_status s, const char *fmt, ...) KILN_PRINTF(2, 3);

/* Clears the message of this thread. */
void kiln_clear_error(void);

#endif
