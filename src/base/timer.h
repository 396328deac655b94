/*
 * timer.h — time in seconds: monotonic (for durations) and wall clock (for records).
 */
#ifndef KILN_BASE_TIMER_H
#define KILN_BASE_TIMER_H

double kiln_time_now(void);
/* Seconds since the Unix epoch (CLOCK_REALTIME). */
double kiln_time_unix(void);

#endif
