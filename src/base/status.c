/*
 * status.c — status names and the per-thread error message.
 */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[1024];

const char *kiln_status_name(kiln_status s) {
    switch (s) {
#define KILN_X_NAME(name, desc) \
    case KILN_##name:           \
        return #name;
        KILN_STATUS_LIST(KILN_X_NAME)
#undef KILN_X_NAME
    }
    return "UNKNOWN";
}

const char *kiln_last_error(void) { return g_msg; }

void kiln_clear_error(void) { g_msg[0] = 0; }

kiln_status kiln_fail(kiln_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return s;
}

kiln_status kiln_fail_prefix(kiln_status s, const char *fmt, ...) {
    char prefix[512], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    size_t np = strlen(prefix), no = strlen(old);
    if (np > sizeof g_msg - 3) np = sizeof g_msg - 3;
    if (no > sizeof g_msg - 3 - np) no = sizeof g_msg - 3 - np;
    memcpy(g_msg, prefix, np);
    memcpy(g_msg + np, ": ", 2);
    memcpy(g_msg + np + 2, old, no);
    g_msg[np + 2 + no] = 0;
    return s;
}
