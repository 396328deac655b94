/*
 * test_threadpool.c — kiln_pool_for runs every task of every loop exactly once, for
 * loops of 1..300 tasks back to back, with 2, 3 and 8 threads (8 oversubscribes this
 * machine, so workers get preempted mid-loop and claim tasks of later loops late).
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "base/threadpool.h"
#include "test.h"

typedef struct {
    atomic_int *hits;
    int64_t n;
    int loop;
} job;

static void task(void *ctx, int64_t i) {
    job *j = ctx;
    if (i < 0 || i >= j->n) {
        atomic_fetch_add(&j->hits[300], 1000); /* out of range: recorded as a failure */
        return;
    }
    atomic_fetch_add(&j->hits[i], 1);
}

int main(void) {
    const int threads[] = {2, 3, 8};
    atomic_int *hits = calloc(301, sizeof *hits);
    for (size_t t = 0; t < 3; t++) {
        kiln_pool *p = NULL;
        CHECK_OK(kiln_pool_create(threads[t], &p));
        int bad = 0;
        for (int loop = 0; loop < 3000; loop++) {
            job j = {hits, 1 + (loop * 37) % 300, loop};
            for (int i = 0; i <= 300; i++) atomic_store(&hits[i], 0);
            kiln_pool_for(p, j.n, task, &j);
            for (int64_t i = 0; i < j.n; i++) bad += atomic_load(&hits[i]) != 1;
            bad += atomic_load(&hits[300]) != 0;
        }
        CHECK_MSG(bad == 0, "%d threads: %d tasks not run exactly once", threads[t], bad);
        kiln_pool_free(p);
    }
    free(hits);
    TEST_MAIN_END();
}
