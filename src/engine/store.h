/*
 * store.h — the durable job store (SQLite, WAL).
 *
 * Every accepted job is committed here before the submitter hears "accepted", and
 * every state change (start, completion with its result, failure, cancel) is
 * committed before it is reported, with synchronous=FULL: a SIGKILL (or power loss)
 * at any moment loses no accepted job and no completed result. At open, jobs that
 * were running when the process died are put back in the queue, or failed with a
 * clear reason once they have been started max_attempts times.
 *
 * The store is not thread-safe by itself: the engine serializes calls.
 */
#ifndef KILN_ENGINE_STORE_H
#define KILN_ENGINE_STORE_H

#include <stddef.h>

#include "engine/job.h"

typedef struct kiln_store kiln_store;

/* Opens (creating if needed) the store at path. *n_requeued / *n_failed report the
 * recovery of jobs found running (may be NULL). */
kiln_status kiln_store_open(const char *path, int max_attempts, kiln_store **out, int *n_requeued, int *n_failed);
void kiln_store_close(kiln_store *s);

/* Inserts a new job; sets j->seq. An Idempotency-Key already used gives
 * KILN_ERR_INVALID_ARG (callers look it up first). */
kiln_status kiln_store_insert(kiln_store *s, kiln_job_rec *j);
/* Writes a job's state, times, progress, result, error and attempts. */
kiln_status kiln_store_update(kiln_store *s, const kiln_job_rec *j);
/* KILN_ERR_NOT_FOUND if there is no such job. */
kiln_status kiln_store_get(kiln_store *s, const char *id, kiln_job_rec *out);
kiln_status kiln_store_find_idem(kiln_store *s, const char *key, kiln_job_rec *out);
/* Jobs in one state (state < 0: all), newest first (queued: in run order), at most
 * limit. *out is malloc'd; free with kiln_job_recs_free. */
kiln_status kiln_store_list(kiln_store *s, int state, int limit, kiln_job_rec **out, size_t *n);
/* Number of jobs in each state. */
kiln_status kiln_store_counts(kiln_store *s, int64_t counts[KILN_JOB_STATE_COUNT]);

#endif
