/*
 * timer.h — monotonic time in seconds.
 */
#ifndef KILN_BASE_TIMER_H
#define KILN_BASE_TIMER_H

double kiln_time_now(void);

#endif
