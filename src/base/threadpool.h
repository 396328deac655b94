/*
 * threadpool.h — a fixed set of worker threads running parallel-for loops.
 *
 * Determinism: work is expressed as n_tasks independent tasks, each of which writes
 * only its own outputs and never combines partial sums with another task. Which
 * thread runs which task may vary; the results cannot, so any thread count gives
 * bit-identical output.
 */
#ifndef KILN_BASE_THREADPOOL_H
#define KILN_BASE_THREADPOOL_H

#include <stdint.h>

#include "kiln.h"

typedef struct kiln_pool kiln_pool;

/* Runs task(ctx, i) for i in [0, n_tasks). */
typedef void (*kiln_task_fn)(void *ctx, int64_t i);

/* Creates a pool of n_threads (the calling thread counts as one; n_threads <= 0 means
 * the number of online cores). *out is owned by the caller: kiln_pool_free. */
kiln_status kiln_pool_create(int n_threads, kiln_pool **out);
void kiln_pool_free(kiln_pool *pool);
int kiln_pool_size(const kiln_pool *pool);

/* Runs all tasks and returns when every one has finished. pool may be NULL (runs
 * inline). Not reentrant: one parallel-for at a time per pool. */
void kiln_pool_for(kiln_pool *pool, int64_t n_tasks, kiln_task_fn task, void *ctx);

/* Number of online cores (at least 1). */
int kiln_cpu_count(void);

#endif
