/*
 * job.h — a job as the engine stores and reports it.
 *
 * Every kind of work (text, embeddings, images; training later) is a job with the
 * same life: queued -> running -> completed | failed | cancelled, with times, progress
 * (units done of total: tokens for text, steps for images), a result or an error. The
 * record holds the fully resolved parameters (model name, final prompt, seed), so a
 * job can be run again after a crash and give the same output.
 */
#ifndef KILN_ENGINE_JOB_H
#define KILN_ENGINE_JOB_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/params.h"

typedef enum {
    KILN_JOB_QUEUED,
    KILN_JOB_RUNNING,
    KILN_JOB_COMPLETED,
    KILN_JOB_FAILED,
    KILN_JOB_CANCELLED,
    KILN_JOB_STATE_COUNT
} kiln_job_state;

const char *kiln_job_state_name(kiln_job_state s);
/* -1 if name is not a state. */
int kiln_job_state_parse(const char *name);
static inline int kiln_job_state_final(kiln_job_state s) { return s >= KILN_JOB_COMPLETED; }

typedef struct {
    char id[32];        /* "job_" + 16 hex digits */
    int64_t seq;        /* order of acceptance (the store assigns it) */
    kiln_job_kind kind;
    char *program;      /* the program it came from, or NULL */
    char *model;        /* the model name it runs on */
    cJSON *params;      /* resolved parameters (object) */
    kiln_job_state state;
    int priority;       /* higher runs first; ties by seq */
    double created, started, finished; /* unix seconds; 0 = not yet */
    int64_t done, total; /* progress units */
    cJSON *result;      /* kind-specific result object, or NULL */
    char *error;        /* why it failed / was cancelled, or NULL */
    int attempts;       /* times it was started */
    char *idem_key;     /* Idempotency-Key it was submitted with, or NULL */
} kiln_job_rec;

void kiln_job_rec_clear(kiln_job_rec *j);
/* Clears n records and frees the array. */
void kiln_job_recs_free(kiln_job_rec *v, size_t n);
/* Deep copy; KILN_ERR_NOMEM on failure (dst is then cleared). */
kiln_status kiln_job_rec_copy(kiln_job_rec *dst, const kiln_job_rec *src);
/* The job as the API shows it; eta_seconds < 0 leaves "eta_seconds" out. NULL on OOM. */
cJSON *kiln_job_rec_to_json(const kiln_job_rec *j, double eta_seconds);

#endif
