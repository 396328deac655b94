/*
 * engine_internal.h — the engine's state, shared by engine.c (API, queue, events)
 * and worker.c (running jobs). Not for use outside src/engine.
 */
#ifndef KILN_ENGINE_INTERNAL_H
#define KILN_ENGINE_INTERNAL_H

#include <pthread.h>

#include "base/buf.h"
#include "engine/cache.h"
#include "engine/engine.h"
#include "engine/registry.h"
#include "engine/store.h"

/* A job the engine holds in memory: queued, running, or final within the last
 * LIVE_LINGER seconds (so streams that are following it see its end). */
typedef struct live_job {
    kiln_job_rec rec;
    char **ev_name, **ev_data;  /* the event log, in order */
    int n_ev, cap_ev;
    bool cancel, interrupt;     /* cancel: by request; interrupt: engine shutting down */
    char *cancel_reason;
    int64_t done_at_cancel;     /* tokens done when the cancel was requested */
    double gen_start;           /* monotonic time generation started (for the ETA) */
    double final_at;            /* monotonic time it became final; 0 before */
    double last_progress;       /* monotonic time of the last progress event */
    double eta, eta_at;         /* an ETA the pipeline reported (images), at monotonic eta_at; 0: none */
    int refs;                   /* event readers and waiters holding it */
    struct live_job *next;
} live_job;

#define LIVE_LINGER 10.0
#define LIVE_COMPACT 2.0

struct kiln_engine {
    kiln_engine_options opt;
    kiln_param_limits limits;
    kiln_registry *reg;
    kiln_presets *presets;
    kiln_store *store;
    kiln_model_cache *cache;

    pthread_mutex_t mu;         /* guards everything below and the store */
    pthread_cond_t work_cv;     /* a job was queued, or stopping */
    pthread_cond_t event_cv;    /* an event was appended to some job */
    pthread_cond_t reap_cv;     /* wakes the reaper (only when stopping) */
    live_job *live;
    int n_queued, n_running;
    bool stopping;
    pthread_t *workers;
    int n_workers;
    pthread_t reaper;
    bool reaper_started;

    int64_t tokens_generated, model_loads;
    double last_tps, load_seconds_total;
};

/* engine.c, called with e->mu held */
live_job *kiln_engine_find_live(kiln_engine *e, const char *id);
/* Appends an event (data is JSON text, copied) and wakes readers. */
void kiln_engine_push_event(kiln_engine *e, live_job *j, const char *name, const cJSON *data);
/* The job's progress + ETA as a JSON object (caller deletes). */
cJSON *kiln_engine_progress_json(const live_job *j);
double kiln_engine_eta(const live_job *j);
/* Writes the job's record, then pushes its final event. */
void kiln_engine_finish(kiln_engine *e, live_job *j);

/* prompt.c: template with every "{prompt}" replaced by prompt (NULL template: the prompt
 * itself); *out is malloc'd. */
kiln_status kiln_engine_apply_template(const char *tmpl, const char *prompt, char **out);
/* prompt.c: the text a text job feeds the model (template, chat rendering) and
 * whether to add BOS. *text is malloc'd. */
kiln_status kiln_engine_build_prompt(const kiln_params *p, const kiln_llm *llm, char **text, bool *add_bos);

/* worker.c */
void *kiln_engine_worker_main(void *arg);
/* Runs a text job (without e->mu held); fills j->rec's result/state/error under the lock. */
void kiln_engine_run_text(kiln_engine *e, live_job *j);
/* The cache spec of a model name (resolved through the registry and the config). */
kiln_status kiln_engine_model_spec(kiln_engine *e, const char *name, kiln_model_entry *me, kiln_model_spec *spec);

/* worker_embed.c: embedding jobs queued for one model run together as one batch. */
#define KILN_EMBED_GROUP_MAX 64   /* jobs per batch */
#define KILN_EMBED_GROUP_TEXTS 2048 /* texts per batch (a job may have more on its own) */
/* Fills group with first and the other queued embedding jobs of its model and
 * normalize setting, oldest first, within the limits above; returns the count.
 * Called with mu held. */
int kiln_engine_embed_group(kiln_engine *e, live_job *first, live_job **group);
/* Runs n embedding jobs (all started) as one embedder call, without e->mu held; fills
 * each job's result/state/error under the lock. */
void kiln_engine_run_embed(kiln_engine *e, live_job **group, int n);

/* worker_image.c: runs an image job (started) without e->mu held; the images are
 * written under DATA/outputs/<job id>/ before the job is marked completed. */
void kiln_engine_run_image(kiln_engine *e, live_job *j);

#endif
