/*
 * engine.h — the engine: one durable queue of jobs for every kind of work.
 *
 * The engine owns the model registry (names -> files, sandboxed to the models
 * directory), the config (model settings, aliases, programs), the job store (SQLite),
 * the loaded-model cache and the worker threads. Everything that runs work — the
 * HTTP server, `kiln run`, the C API — submits a job here and reads its state,
 * events and result from here.
 *
 * Thread-safe: every function may be called from any thread.
 */
#ifndef KILN_ENGINE_ENGINE_H
#define KILN_ENGINE_ENGINE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/job.h"
#include "engine/presets.h"
#include "kiln.h"

/* kiln_engine, kiln_engine_options, create/free and kiln_engine_next_event are
 * declared in kiln.h (the public API); the cJSON-level API is here. */

/* Submits a job. req: {"kind": "text", "model": NAME | "program": NAME, "params": {...},
 * "priority": N}. Errors: KILN_ERR_INVALID_ARG (malformed, naming the key),
 * KILN_ERR_NOT_FOUND (unknown model or program), KILN_ERR_UNSUPPORTED (kind without a
 * pipeline yet: train), KILN_ERR_BUSY (queue full). With an idempotency key already used,
 * the earlier job is returned and *existing is set. out is filled (caller clears). */
kiln_status kiln_engine_submit(kiln_engine *e, const cJSON *req, const char *idem_key, kiln_job_rec *out,
                               bool *existing);
/* KILN_ERR_NOT_FOUND for an unknown id. *eta: seconds left (< 0 unknown). */
kiln_status kiln_engine_get(kiln_engine *e, const char *id, kiln_job_rec *out, double *eta);
/* Jobs in a state (state < 0: all), at most limit (0: 100). */
kiln_status kiln_engine_list(kiln_engine *e, int state, int limit, kiln_job_rec **out, size_t *n);
/* Cancels a queued or running job (a running one stops within one token). Final
 * jobs are left as they are. reason goes into the job's error. out gets the job. */
kiln_status kiln_engine_cancel(kiln_engine *e, const char *id, const char *reason, kiln_job_rec *out);
/* Waits until the job is final or timeout seconds pass (< 0: forever). */
kiln_status kiln_engine_wait(kiln_engine *e, const char *id, double timeout, kiln_job_rec *out);

/* Events of a job: "queued", "started", "progress" (done, total, eta_seconds; image
 * jobs add step, steps, elapsed_seconds), "delta" (text), "preview" (image jobs with
 * preview_every: step, steps, width, height, b64_png), and one final "completed" | "failed" | "cancelled" (data: the job).
 * seq points at the index of the next event wanted (start at 0); on return name/data are
 * malloc'd and seq advanced, or name is NULL when timeout passed first. final is
 * set with the final event. A job that finished before this process started yields
 * just its final event. */

/* The data directory the engine was opened with (NULL: in memory). */
const char *kiln_engine_data_dir(const kiln_engine *e);
/* A stored output of an image job: file is "N.png" or "N.json" (image N of the job),
 * read from DATA/outputs/JOB_ID/. Names are checked before any path is built
 * (KILN_ERR_INVALID_ARG for anything else: no path can be formed from them);
 * KILN_ERR_NOT_FOUND if there is no such file or no data directory. *data is
 * malloc'd; *content_type is "image/png" or "application/json" (static). */
kiln_status kiln_engine_read_output(kiln_engine *e, const char *job_id, const char *file, uint8_t **data,
                                    size_t *len, const char **content_type);

/* Models: every model the directory and config name, with whether it is loaded. */
cJSON *kiln_engine_models_json(kiln_engine *e);
/* The programs of the config, with their defaults (for GET /v1/programs). */
cJSON *kiln_engine_programs_json(kiln_engine *e);

typedef struct {
    int64_t jobs[KILN_JOB_STATE_COUNT];  /* by state, from the store */
    int64_t queue_length, running;
    int64_t tokens_generated;            /* since start */
    double last_tokens_per_second;       /* of the last finished text job */
    double model_load_seconds_total;
    int64_t model_loads;
    int64_t memory_bytes;                /* counted by the model cache */
    int64_t memory_budget;
    int models_loaded;
} kiln_engine_stats;
void kiln_engine_get_stats(kiln_engine *e, kiln_engine_stats *s);
/* Loaded models as JSON (for /health). */
cJSON *kiln_engine_loaded_json(kiln_engine *e);

#endif
