/*
 * threadpool.c — pthread workers that pull task indices from a shared counter.
 *
 * A loop is published as a new generation number and tasks are claimed with an
 * atomic fetch-add. Token generation runs hundreds of small parallel-fors per token,
 * so waking sleeping threads each time would cost more than the work: workers (and
 * the caller, waiting for them) first spin for a short while, and only then sleep on
 * a condition variable.
 *
 * The caller waits for the loop's tasks to be done, not for every worker to show up:
 * a worker asleep or preempted by another process when a loop starts just finds no
 * task left, so a busy machine costs at most the task a preempted worker holds, not a
 * scheduler delay per loop. Claims therefore must never mix loops: the claim word
 * packs (loop number, task count, next index), so one fetch-add tells a worker which
 * loop its index belongs to and whether it is a task at all; a loop's function and
 * context sit in slot (loop & 1), which is only rewritten two loops later, after every
 * task of the loop in between has finished — so never while a claimed task runs.
 */
#define _POSIX_C_SOURCE 200809L
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "status.h"

struct kiln_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_ullong generation;
    atomic_int quit;
    /* loops: function and context by loop parity; the claim word (see above) */
    struct {
        kiln_task_fn task;
        void *ctx;
    } slot[2];
    uint64_t loop;
    atomic_ullong claim;  /* loop << 48 | n_tasks << 24 | next index */
    atomic_llong n_done;  /* tasks of the current loop finished */
};

#define CLAIM_BITS 24
#define CLAIM_MASK ((1ull << CLAIM_BITS) - 1)

int kiln_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void run_tasks(kiln_pool *p) {
    for (;;) {
        const uint64_t v = atomic_fetch_add(&p->claim, 1);
        const int64_t i = (int64_t)(v & CLAIM_MASK), n = (int64_t)((v >> CLAIM_BITS) & CLAIM_MASK);
        if (i >= n) break;
        const int s = (int)((v >> (2 * CLAIM_BITS)) & 1);
        p->slot[s].task(p->slot[s].ctx, i);
        if (atomic_fetch_add(&p->n_done, 1) + 1 == n) { /* the last task: wake the caller if it sleeps */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* Iterations of the spin before sleeping: about a tenth of a millisecond. */
#define SPIN_ITERS 20000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker(void *arg) {
    kiln_pool *p = arg;
    uint64_t seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ITERS && atomic_load(&p->generation) == seen && !atomic_load(&p->quit); i++)
            cpu_relax();
        if (atomic_load(&p->generation) == seen && !atomic_load(&p->quit)) {
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load(&p->generation);
        run_tasks(p);
    }
    return NULL;
}

kiln_status kiln_pool_create(int n_threads, kiln_pool **out) {
    *out = NULL;
    if (n_threads <= 0) n_threads = kiln_cpu_count();
    if (n_threads > 1024) return kiln_fail(KILN_ERR_INVALID_ARG, "too many threads: %d", n_threads);
    kiln_pool *p = calloc(1, sizeof *p);
    if (!p) return kiln_fail(KILN_ERR_NOMEM, "out of memory creating thread pool");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            kiln_pool_free(p);
            return kiln_fail(KILN_ERR_NOMEM, "out of memory creating thread pool");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
                p->n_threads = i + 1; /* only the started ones get joined */
                kiln_pool_free(p);
                return kiln_fail(KILN_ERR_NOMEM, "cannot start worker thread %d", i);
            }
        }
    }
    *out = p;
    return KILN_OK;
}

void kiln_pool_free(kiln_pool *p) {
    if (!p) return;
    if (p->threads) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->quit, 1);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->threads[i], NULL);
        free(p->threads);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

int kiln_pool_size(const kiln_pool *p) { return p ? p->n_threads : 1; }

void kiln_pool_for(kiln_pool *p, int64_t n_tasks, kiln_task_fn task, void *ctx) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1 || n_tasks > (int64_t)CLAIM_MASK / 2) {
        for (int64_t i = 0; i < n_tasks; i++) task(ctx, i);
        return;
    }
    /* Every task of the previous loop is done; its claims are spent. */
    const uint64_t loop = ++p->loop;
    p->slot[loop & 1].task = task;
    p->slot[loop & 1].ctx = ctx;
    atomic_store(&p->n_done, 0);
    atomic_store(&p->claim, (loop & 0xffff) << (2 * CLAIM_BITS) | (uint64_t)n_tasks << CLAIM_BITS);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p);
    for (int i = 0; i < SPIN_ITERS && atomic_load(&p->n_done) < n_tasks; i++) cpu_relax();
    if (atomic_load(&p->n_done) < n_tasks) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->n_done) < n_tasks) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
