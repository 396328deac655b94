/*
 * timer.c — CLOCK_MONOTONIC and CLOCK_REALTIME as doubles.
 */
#define _POSIX_C_SOURCE 200809L
#include "timer.h"

#include <time.h>

double kiln_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double kiln_time_unix(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
