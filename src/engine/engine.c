/*
 * engine.c — the engine's API: creation, submit, get/list/cancel/wait, events.
 *
 * Jobs live in the store (durable) and, while queued, running or just finished, in
 * memory as live_job (state, event log, cancel flag). One mutex guards the live jobs
 * and the store; workers (worker.c) take the queued job of highest priority, oldest
 * first. Every state change is written to the store before it is announced.
 */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "base/timer.h"

/* ---- live jobs and events ------------------------------------------------------- */

live_job *kiln_engine_find_live(kiln_engine *e, const char *id) {
    for (live_job *j = e->live; j; j = j->next)
        if (!strcmp(j->rec.id, id)) return j;
    return NULL;
}

static void live_free(live_job *j) {
    for (int i = 0; i < j->n_ev; i++) {
        free(j->ev_name[i]);
        free(j->ev_data[i]);
    }
    free(j->ev_name);
    free(j->ev_data);
    free(j->cancel_reason);
    kiln_job_rec_clear(&j->rec);
    free(j);
}

void kiln_engine_push_event(kiln_engine *e, live_job *j, const char *name, const cJSON *data) {
    if (j->n_ev == j->cap_ev) {
        int nc = j->cap_ev ? j->cap_ev * 2 : 16;
        char **nn = realloc(j->ev_name, (size_t)nc * sizeof *nn);
        if (nn) j->ev_name = nn;
        char **nd = realloc(j->ev_data, (size_t)nc * sizeof *nd);
        if (nd) j->ev_data = nd;
        if (!nn || !nd) return; /* out of memory: the event is lost, the job is not */
        j->cap_ev = nc;
    }
    char *d = data ? cJSON_PrintUnformatted(data) : kiln_strdup("{}");
    char *n = kiln_strdup(name);
    if (!d || !n) {
        free(d);
        free(n);
        return;
    }
    j->ev_name[j->n_ev] = n;
    j->ev_data[j->n_ev] = d;
    j->n_ev++;
    pthread_cond_broadcast(&e->event_cv);
}

double kiln_engine_eta(const live_job *j) {
    if (j->rec.state != KILN_JOB_RUNNING) return -1;
    if (j->eta_at > 0) { /* the pipeline's own estimate (it knows what follows the steps) */
        const double left = j->eta - (kiln_time_now() - j->eta_at);
        return left > 0 ? left : 0;
    }
    if (j->rec.done <= 0 || j->gen_start <= 0) return -1;
    double rate = (double)j->rec.done / (kiln_time_now() - j->gen_start);
    return rate > 0 ? (double)(j->rec.total - j->rec.done) / rate : -1;
}

cJSON *kiln_engine_progress_json(const live_job *j) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", j->rec.id);
    cJSON_AddNumberToObject(o, "done", (double)j->rec.done);
    cJSON_AddNumberToObject(o, "total", (double)j->rec.total);
    double eta = kiln_engine_eta(j);
    if (eta >= 0) cJSON_AddNumberToObject(o, "eta_seconds", eta);
    else cJSON_AddNullToObject(o, "eta_seconds");
    return o;
}

void kiln_engine_finish(kiln_engine *e, live_job *j) {
    kiln_status st = kiln_store_update(e->store, &j->rec);
    if (st) fprintf(stderr, "kiln: %s\n", kiln_last_error()); /* the job stays live; the log says why */
    j->final_at = kiln_time_now();
    cJSON *data = kiln_job_rec_to_json(&j->rec, -1);
    kiln_engine_push_event(e, j, kiln_job_state_name(j->rec.state), data);
    cJSON_Delete(data);
}

static kiln_status copy_out(const kiln_job_rec *src, kiln_job_rec *out) {
    if (!out) return KILN_OK;
    return kiln_job_rec_copy(out, src);
}

/* Keeps only the final event of a finished job (it carries the whole result). */
static void compact_events(live_job *j) {
    for (int i = 0; i < j->n_ev - 1; i++) {
        free(j->ev_name[i]);
        free(j->ev_data[i]);
    }
    j->ev_name[0] = j->ev_name[j->n_ev - 1];
    j->ev_data[0] = j->ev_data[j->n_ev - 1];
    j->n_ev = 1;
}

/* Memory stays flat under load: a finished job's event log shrinks to its final event
 * once followers have had time to read it, and the job leaves memory (the store keeps
 * it) after LIVE_LINGER seconds. Called with mu held. */
static void prune_live(kiln_engine *e) {
    double now = kiln_time_now();
    for (live_job **pp = &e->live; *pp;) {
        live_job *j = *pp;
        if (j->final_at > 0 && j->refs == 0 && now - j->final_at > LIVE_COMPACT && j->n_ev > 1) compact_events(j);
        if (j->final_at > 0 && j->refs == 0 && now - j->final_at > LIVE_LINGER) {
            *pp = j->next;
            live_free(j);
        } else {
            pp = &j->next;
        }
    }
}

/* KILN_OK if name resolves to a model of the registry (the error says why not) of
 * the job's kind: an embedding job needs an embedding model, an image job a Stable
 * Diffusion model, a text job a language model (KILN_JOB_KIND_COUNT: any). Said at
 * submit, not after a load. */
static kiln_status check_model_kind(kiln_engine *e, const char *name, kiln_job_kind kind) {
    kiln_model_entry me = {0};
    kiln_status st = kiln_registry_resolve(e->reg, name, &me);
    if (!st && (kind == KILN_JOB_TEXT || kind == KILN_JOB_EMBEDDING || kind == KILN_JOB_IMAGE)) {
        const bool image = kiln_sd_supports(me.path);
        const bool embedder = !image && kiln_embedder_supports(me.path);
        if (kind == KILN_JOB_IMAGE && !image)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "model '%s' is not an image model (a Stable Diffusion diffusers "
                           "folder)", name);
        else if (kind != KILN_JOB_IMAGE && image)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "model '%s' is an image model: use /v1/images/generations (or a "
                           "job of kind image)", name);
        else if (kind == KILN_JOB_EMBEDDING && !embedder)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "model '%s' is not an embedding model (BERT family)", name);
        else if (kind == KILN_JOB_TEXT && embedder)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "model '%s' is an embedding model: use /v1/embeddings", name);
    }
    kiln_model_entry_clear(&me);
    return st;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static kiln_status add_live(kiln_engine *e, kiln_job_rec *rec, live_job **out) {
    live_job *j = calloc(1, sizeof *j);
    if (!j) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    j->rec = *rec;
    memset(rec, 0, sizeof *rec);
    j->next = e->live;
    e->live = j;
    if (j->rec.state == KILN_JOB_QUEUED) e->n_queued++;
    *out = j;
    return KILN_OK;
}

static void *reaper_main(void *arg) {
    kiln_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&e->reap_cv, &e->mu, &ts);
        prune_live(e);
        pthread_mutex_unlock(&e->mu);
        kiln_cache_reap(e->cache);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static kiln_status load_config(kiln_engine *e) {
    const char *path = e->opt.config_path;
    char buf[4096];
    if (!path && e->opt.data_dir) {
        snprintf(buf, sizeof buf, "%s/kiln.json", e->opt.data_dir);
        if (access(buf, F_OK) == 0) path = buf;
    }
    kiln_status st = path ? kiln_presets_load(path, &e->presets) : kiln_presets_empty(&e->presets);
    if (st) return st;
    for (size_t i = 0; i < e->presets->n_models; i++) {
        const kiln_model_conf *m = &e->presets->models[i];
        if (m->file && (st = kiln_registry_add_alias(e->reg, m->name, m->file)))
            return kiln_fail_prefix(st, "%s: models.%s", path, m->name);
    }
    for (size_t i = 0; i < e->presets->n_programs; i++) {
        const kiln_program *p = &e->presets->programs[i];
        if ((st = check_model_kind(e, p->model, p->kind)))
            return kiln_fail_prefix(st, "%s: programs.%s", path, p->name);
    }
    return KILN_OK;
}

kiln_status kiln_engine_create(const kiln_engine_options *opt, kiln_engine **out) {
    *out = NULL;
    if (!opt || !opt->models_dir) return kiln_fail(KILN_ERR_INVALID_ARG, "no models directory given");
    kiln_engine *e = calloc(1, sizeof *e);
    if (!e) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    e->opt = *opt;
    if (e->opt.max_queue <= 0) e->opt.max_queue = 256;
    if (e->opt.max_running <= 0) e->opt.max_running = 1;
    if (e->opt.max_attempts <= 0) e->opt.max_attempts = 3;
    e->limits.max_tokens = e->opt.max_tokens > 0 ? e->opt.max_tokens : 4096;
    e->limits.max_prompt = e->opt.max_prompt ? e->opt.max_prompt : 1u << 20;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work_cv, NULL);
    pthread_cond_init(&e->event_cv, NULL);
    pthread_cond_init(&e->reap_cv, NULL);

    kiln_status st;
    char path[4096];
    if (e->opt.data_dir) {
        if (mkdir(e->opt.data_dir, 0700) != 0 && errno != EEXIST) {
            st = kiln_fail(KILN_ERR_IO, "cannot create the data directory %s: %s", e->opt.data_dir, strerror(errno));
            goto fail;
        }
        snprintf(path, sizeof path, "%s/jobs.db", e->opt.data_dir);
    } else {
        snprintf(path, sizeof path, ":memory:");
    }
    int requeued = 0, failed = 0;
    if ((st = kiln_registry_open(e->opt.models_dir, &e->reg)) || (st = load_config(e)) ||
        (st = kiln_store_open(path, e->opt.max_attempts, &e->store, &requeued, &failed)) ||
        (st = kiln_cache_create(e->opt.memory_budget, e->opt.n_threads, &e->cache)))
        goto fail;
    if (requeued || failed)
        fprintf(stderr, "kiln: recovered %d interrupted job(s): %d queued again, %d failed after too many attempts\n",
                requeued + failed, requeued, failed);

    /* Queued jobs from the store come back to memory, in run order. */
    kiln_job_rec *q = NULL;
    size_t nq = 0;
    if ((st = kiln_store_list(e->store, KILN_JOB_QUEUED, 0, &q, &nq))) goto fail;
    for (size_t i = nq; i-- > 0;) {
        live_job *j = NULL;
        if ((st = add_live(e, &q[i], &j))) {
            kiln_job_recs_free(q, nq);
            goto fail;
        }
        cJSON *d = kiln_job_rec_to_json(&j->rec, -1);
        kiln_engine_push_event(e, j, "queued", d);
        cJSON_Delete(d);
    }
    kiln_job_recs_free(q, nq);

    e->workers = calloc((size_t)e->opt.max_running, sizeof *e->workers);
    if (!e->workers) {
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < e->opt.max_running; i++) {
        if (pthread_create(&e->workers[i], NULL, kiln_engine_worker_main, e) != 0) {
            st = kiln_fail(KILN_ERR_NOMEM, "cannot start a worker thread");
            goto fail;
        }
        e->n_workers++;
    }
    if (pthread_create(&e->reaper, NULL, reaper_main, e) != 0) {
        st = kiln_fail(KILN_ERR_NOMEM, "cannot start the model reaper thread");
        goto fail;
    }
    e->reaper_started = true;
    *out = e;
    return KILN_OK;
fail:
    kiln_engine_free(e);
    return st;
}

void kiln_engine_free(kiln_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    for (live_job *j = e->live; j; j = j->next) j->interrupt = true;
    pthread_cond_broadcast(&e->work_cv);
    pthread_cond_broadcast(&e->event_cv);
    pthread_cond_broadcast(&e->reap_cv);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_workers; i++) pthread_join(e->workers[i], NULL);
    if (e->reaper_started) pthread_join(e->reaper, NULL);
    free(e->workers);
    while (e->live) {
        live_job *j = e->live;
        e->live = j->next;
        live_free(j);
    }
    kiln_cache_free(e->cache);
    kiln_store_close(e->store);
    kiln_presets_free(e->presets);
    kiln_registry_free(e->reg);
    pthread_cond_destroy(&e->work_cv);
    pthread_cond_destroy(&e->event_cv);
    pthread_cond_destroy(&e->reap_cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* ---- submit ---------------------------------------------------------------------- */

static void new_id(char out[32]) {
    /* Random, not sequential: ids are handed to clients and must not be guessable. */
    static _Atomic uint64_t counter;
    uint64_t seed = (uint64_t)(kiln_time_unix() * 1e9) ^ ((uint64_t)getpid() << 32) ^ counter++;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        uint64_t r;
        if (fread(&r, sizeof r, 1, f) == 1) seed ^= r;
        fclose(f);
    }
    kiln_rng rng;
    kiln_rng_seed(&rng, seed);
    snprintf(out, 32, "job_%016llx", (unsigned long long)kiln_rng_u64(&rng));
}

static const char *const g_req_keys[] = {"kind", "model", "program", "params", "priority", NULL};

static kiln_status build_job(kiln_engine *e, const cJSON *req, kiln_job_rec *rec) {
    if (!cJSON_IsObject(req)) return kiln_fail(KILN_ERR_INVALID_ARG, "the request must be a JSON object");
    const cJSON *v;
    cJSON_ArrayForEach(v, req) {
        bool known = false;
        for (const char *const *k = g_req_keys; *k; k++) known |= !strcmp(*k, v->string);
        if (!known) return kiln_fail(KILN_ERR_INVALID_ARG, "unknown key '%s' in the job request", v->string);
    }
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(req, "kind");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    const cJSON *program = cJSON_GetObjectItemCaseSensitive(req, "program");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
    const cJSON *prio = cJSON_GetObjectItemCaseSensitive(req, "priority");
    kiln_status st;
    if (model && !cJSON_IsString(model)) return kiln_fail(KILN_ERR_INVALID_ARG, "'model' must be a string");
    if (program && !cJSON_IsString(program)) return kiln_fail(KILN_ERR_INVALID_ARG, "'program' must be a string");
    if (!model == !program) return kiln_fail(KILN_ERR_INVALID_ARG, "give either 'model' or 'program'");
    if (prio && (!cJSON_IsNumber(prio) || prio->valuedouble < -1000 || prio->valuedouble > 1000 ||
                 prio->valuedouble != (int)prio->valuedouble))
        return kiln_fail(KILN_ERR_INVALID_ARG, "'priority' must be an integer between -1000 and 1000");
    rec->priority = prio ? (int)prio->valuedouble : 0;

    const kiln_program *prog = NULL;
    if (program) {
        if (!(prog = kiln_presets_program(e->presets, program->valuestring)))
            return kiln_fail(KILN_ERR_NOT_FOUND, "no program named '%s'", program->valuestring);
        rec->kind = prog->kind;
        if (kind && (!cJSON_IsString(kind) || strcmp(kind->valuestring, kiln_job_kind_name(prog->kind))))
            return kiln_fail(KILN_ERR_INVALID_ARG, "program '%s' is of kind %s", prog->name,
                             kiln_job_kind_name(prog->kind));
    } else {
        rec->kind = KILN_JOB_TEXT;
        if (kind && !cJSON_IsString(kind)) return kiln_fail(KILN_ERR_INVALID_ARG, "'kind' must be a string");
        if (kind && (st = kiln_job_kind_parse(kind->valuestring, &rec->kind))) return st;
    }
    const char *model_name = prog ? prog->model : model->valuestring;
    if ((st = check_model_kind(e, model_name, rec->kind))) return st;

    kiln_params p;
    kiln_params_default(&p, rec->kind);
    if (prog) st = kiln_params_overlay(&p, &prog->params);
    if (!st) st = kiln_params_parse(&p, rec->kind, params, "params", &e->limits, NULL);
    if (!st && rec->kind == KILN_JOB_TEXT && !(p.set & (KP_PROMPT | KP_MESSAGES)))
        st = kiln_fail(KILN_ERR_INVALID_ARG, "params: a text job needs 'prompt' or 'messages'");
    if (!st && rec->kind == KILN_JOB_EMBEDDING && !(p.set & KP_INPUT))
        st = kiln_fail(KILN_ERR_INVALID_ARG, "params: an embedding job needs 'input'");
    if (!st && rec->kind == KILN_JOB_IMAGE && !(p.set & KP_PROMPT))
        st = kiln_fail(KILN_ERR_INVALID_ARG, "params: an image job needs 'prompt'");
    if (!st && rec->kind == KILN_JOB_TRAIN)
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s jobs are not available yet in this build of kiln",
                       kiln_job_kind_name(rec->kind));
    if (!st && !(p.set & KP_SEED)) {
        /* A fixed seed per job: a job run again after a crash gives the same text (or
         * image). Image seeds are 32-bit, as AUTOMATIC1111 and diffusers users write them. */
        char id[32];
        new_id(id);
        p.seed = strtoull(id + 4, NULL, 16) >> (rec->kind == KILN_JOB_IMAGE ? 32 : 11);
        p.set |= KP_SEED;
    }
    if (!st) {
        rec->params = kiln_params_to_json(&p, rec->kind);
        rec->model = kiln_strdup(model_name);
        rec->program = prog ? kiln_strdup(prog->name) : NULL;
        rec->total = rec->kind == KILN_JOB_EMBEDDING ? (cJSON_IsArray(p.input) ? cJSON_GetArraySize(p.input) : 1)
                     : rec->kind == KILN_JOB_IMAGE   ? p.steps
                                                     : p.max_tokens;
        if (!rec->params || !rec->model || (prog && !rec->program)) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    kiln_params_clear(&p);
    return st;
}

const char *kiln_engine_data_dir(const kiln_engine *e) { return e->opt.data_dir; }

const char *kiln_engine_program_kind(kiln_engine *e, const char *program) {
    const kiln_program *p = e && program ? kiln_presets_program(e->presets, program) : NULL;
    return p ? kiln_job_kind_name(p->kind) : NULL;
}

kiln_status kiln_engine_submit(kiln_engine *e, const cJSON *req, const char *idem_key, kiln_job_rec *out,
                               bool *existing) {
    if (existing) *existing = false;
    if (out) memset(out, 0, sizeof *out);
    kiln_job_rec rec = {0};
    kiln_status st;
    if (idem_key && (!idem_key[0] || strlen(idem_key) > 255))
        return kiln_fail(KILN_ERR_INVALID_ARG, "the Idempotency-Key must have 1 to 255 bytes");
    if (idem_key) {
        pthread_mutex_lock(&e->mu);
        st = kiln_store_find_idem(e->store, idem_key, &rec);
        pthread_mutex_unlock(&e->mu);
        if (!st) {
            if (existing) *existing = true;
            st = copy_out(&rec, out);
            kiln_job_rec_clear(&rec);
            return st;
        }
        if (st != KILN_ERR_NOT_FOUND) return st;
    }
    if ((st = build_job(e, req, &rec))) {
        kiln_job_rec_clear(&rec);
        return st;
    }
    new_id(rec.id);
    rec.state = KILN_JOB_QUEUED;
    rec.created = kiln_time_unix();
    if (idem_key && !(rec.idem_key = kiln_strdup(idem_key))) {
        kiln_job_rec_clear(&rec);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_lock(&e->mu);
    live_job *j = NULL;
    kiln_job_rec prev = {0};
    if (e->stopping) {
        st = kiln_fail(KILN_ERR_BUSY, "the server is shutting down");
    } else if (e->n_queued >= e->opt.max_queue) {
        st = kiln_fail(KILN_ERR_BUSY, "the queue is full (%d jobs waiting)", e->n_queued);
    } else if (idem_key && kiln_store_find_idem(e->store, idem_key, &prev) == KILN_OK) {
        /* submitted concurrently with the same key: the first one wins */
        if (existing) *existing = true;
        st = copy_out(&prev, out);
        kiln_job_rec_clear(&prev);
    } else if (!(st = kiln_store_insert(e->store, &rec)) && !(st = add_live(e, &rec, &j))) {
        cJSON *d = kiln_job_rec_to_json(&j->rec, -1);
        kiln_engine_push_event(e, j, "queued", d);
        cJSON_Delete(d);
        pthread_cond_signal(&e->work_cv);
        st = copy_out(&j->rec, out);
    }
    pthread_mutex_unlock(&e->mu);
    kiln_job_rec_clear(&rec);
    return st;
}

/* ---- queries ------------------------------------------------------------------- */

kiln_status kiln_engine_get(kiln_engine *e, const char *id, kiln_job_rec *out, double *eta) {
    if (eta) *eta = -1;
    pthread_mutex_lock(&e->mu);
    live_job *j = kiln_engine_find_live(e, id);
    kiln_status st;
    if (j) {
        st = kiln_job_rec_copy(out, &j->rec);
        if (eta) *eta = kiln_engine_eta(j);
    } else {
        st = kiln_store_get(e->store, id, out);
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

kiln_status kiln_engine_list(kiln_engine *e, int state, int limit, kiln_job_rec **out, size_t *n) {
    pthread_mutex_lock(&e->mu);
    kiln_status st = kiln_store_list(e->store, state, limit > 0 ? limit : 100, out, n);
    /* The store has states as last written; live jobs are fresher (progress). */
    for (size_t i = 0; !st && i < *n; i++) {
        live_job *j = kiln_engine_find_live(e, (*out)[i].id);
        if (j && j->rec.state == (*out)[i].state) {
            (*out)[i].done = j->rec.done;
            (*out)[i].total = j->rec.total;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

kiln_status kiln_engine_cancel(kiln_engine *e, const char *id, const char *reason, kiln_job_rec *out) {
    pthread_mutex_lock(&e->mu);
    live_job *j = kiln_engine_find_live(e, id);
    kiln_status st = KILN_OK;
    if (!j) {
        st = kiln_store_get(e->store, id, out);
        pthread_mutex_unlock(&e->mu);
        return st;
    }
    if (j->rec.state == KILN_JOB_QUEUED) {
        j->rec.state = KILN_JOB_CANCELLED;
        j->rec.finished = kiln_time_unix();
        free(j->rec.error);
        j->rec.error = kiln_strdup(reason ? reason : "cancelled");
        e->n_queued--;
        kiln_engine_finish(e, j);
    } else if (j->rec.state == KILN_JOB_RUNNING && !j->cancel) {
        j->cancel = true;
        j->done_at_cancel = j->rec.done;
        j->cancel_reason = kiln_strdup(reason ? reason : "cancelled");
        /* Wait for the worker to stop it (within one token), so the caller sees the
         * final state. */
        j->refs++;
        while (j->rec.state == KILN_JOB_RUNNING) pthread_cond_wait(&e->event_cv, &e->mu);
        j->refs--;
    }
    st = kiln_job_rec_copy(out, &j->rec);
    pthread_mutex_unlock(&e->mu);
    return st;
}

static void deadline(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    double s = (double)ts->tv_sec + ts->tv_nsec * 1e-9 + seconds;
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((s - (double)ts->tv_sec) * 1e9);
}

kiln_status kiln_engine_wait(kiln_engine *e, const char *id, double timeout, kiln_job_rec *out) {
    struct timespec ts;
    if (timeout >= 0) deadline(&ts, timeout);
    pthread_mutex_lock(&e->mu);
    live_job *j = kiln_engine_find_live(e, id);
    kiln_status st;
    if (!j) {
        st = kiln_store_get(e->store, id, out);
    } else {
        j->refs++;
        while (!kiln_job_state_final(j->rec.state) && !e->stopping) {
            if (timeout < 0) pthread_cond_wait(&e->event_cv, &e->mu);
            else if (pthread_cond_timedwait(&e->event_cv, &e->mu, &ts) == ETIMEDOUT) break;
        }
        j->refs--;
        st = kiln_job_rec_copy(out, &j->rec);
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

kiln_status kiln_engine_next_event(kiln_engine *e, const char *id, int *seq, double timeout, char **name,
                                   char **data, bool *final) {
    *name = *data = NULL;
    *final = false;
    struct timespec ts;
    deadline(&ts, timeout);
    pthread_mutex_lock(&e->mu);
    live_job *j = kiln_engine_find_live(e, id);
    kiln_status st = KILN_OK;
    if (!j) {
        kiln_job_rec rec = {0};
        st = kiln_store_get(e->store, id, &rec);
        if (!st) {
            if (kiln_job_state_final(rec.state)) {
                cJSON *d = kiln_job_rec_to_json(&rec, -1);
                *name = kiln_strdup(kiln_job_state_name(rec.state));
                *data = d ? cJSON_PrintUnformatted(d) : NULL;
                cJSON_Delete(d);
                *final = true;
                (*seq)++;
            } else {
                st = kiln_fail(KILN_ERR_BUSY, "job '%s' is not followed by this process", id);
            }
            kiln_job_rec_clear(&rec);
        }
        pthread_mutex_unlock(&e->mu);
        return st;
    }
    /* The log may have been compacted to the final event since the last call. */
    if (j->final_at > 0 && *seq > j->n_ev - 1) *seq = j->n_ev - 1;
    j->refs++;
    while (*seq >= j->n_ev && !e->stopping) {
        if (pthread_cond_timedwait(&e->event_cv, &e->mu, &ts) == ETIMEDOUT) break;
    }
    if (*seq < j->n_ev) {
        *name = kiln_strdup(j->ev_name[*seq]);
        *data = kiln_strdup(j->ev_data[*seq]);
        *final = *seq == j->n_ev - 1 && j->final_at > 0;
        (*seq)++;
        if (!*name || !*data) {
            free(*name);
            free(*data);
            *name = *data = NULL;
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        }
    } else if (e->stopping) {
        st = kiln_fail(KILN_ERR_BUSY, "the server is shutting down");
    }
    j->refs--;
    pthread_mutex_unlock(&e->mu);
    return st;
}

/* ---- models and stats ---------------------------------------------------------- */

cJSON *kiln_engine_programs_json(kiln_engine *e) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < e->presets->n_programs; i++) {
        const kiln_program *p = &e->presets->programs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", p->name);
        cJSON_AddStringToObject(o, "object", "program");
        cJSON_AddStringToObject(o, "kind", kiln_job_kind_name(p->kind));
        cJSON_AddStringToObject(o, "model", p->model);
        if (p->description) cJSON_AddStringToObject(o, "description", p->description);
        cJSON_AddItemToObject(o, "params", kiln_params_to_json(&p->params, p->kind));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

cJSON *kiln_engine_models_json(kiln_engine *e) {
    kiln_model_entry *v = NULL;
    size_t n = 0;
    if (kiln_registry_list(e->reg, &v, &n)) return NULL;
    kiln_cache_entry_info info[64];
    int ni = kiln_cache_list(e->cache, info, 64);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", v[i].name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "kiln");
        cJSON_AddStringToObject(m, "format", v[i].format ? v[i].format : "");
        cJSON_AddNumberToObject(m, "bytes", (double)v[i].bytes);
        if (v[i].alias_of) cJSON_AddStringToObject(m, "alias_of", v[i].alias_of);
        bool loaded = false;
        for (int k = 0; k < ni; k++) loaded |= !strcmp(info[k].name, v[i].name);
        cJSON_AddBoolToObject(m, "loaded", loaded);
        cJSON_AddItemToArray(arr, m);
    }
    kiln_model_entries_free(v, n);
    return arr;
}

cJSON *kiln_engine_loaded_json(kiln_engine *e) {
    kiln_cache_entry_info info[64];
    int ni = kiln_cache_list(e->cache, info, 64);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < ni; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", info[i].name);
        cJSON_AddNumberToObject(m, "instances", info[i].instances);
        cJSON_AddNumberToObject(m, "in_use", info[i].in_use);
        cJSON_AddNumberToObject(m, "bytes", (double)info[i].bytes);
        cJSON_AddNumberToObject(m, "load_seconds", info[i].load_seconds);
        cJSON_AddItemToArray(arr, m);
    }
    return arr;
}

void kiln_engine_get_stats(kiln_engine *e, kiln_engine_stats *s) {
    memset(s, 0, sizeof *s);
    kiln_cache_entry_info info[64];
    s->models_loaded = kiln_cache_list(e->cache, info, 64);
    s->memory_bytes = kiln_cache_bytes(e->cache);
    s->memory_budget = e->opt.memory_budget;
    pthread_mutex_lock(&e->mu);
    kiln_store_counts(e->store, s->jobs);
    s->queue_length = e->n_queued;
    s->running = e->n_running;
    s->tokens_generated = e->tokens_generated;
    s->last_tokens_per_second = e->last_tps;
    s->model_load_seconds_total = e->load_seconds_total;
    s->model_loads = e->model_loads;
    pthread_mutex_unlock(&e->mu);
}

/* ---- the JSON API of kiln.h ------------------------------------------------------- */

static kiln_status job_text(kiln_status st, kiln_job_rec *j, double eta, char **out) {
    *out = NULL;
    if (!st) {
        cJSON *o = kiln_job_rec_to_json(j, eta);
        *out = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!*out) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    kiln_job_rec_clear(j);
    return st;
}

kiln_status kiln_engine_submit_json(kiln_engine *e, const char *request_json, const char *idem_key, char **job_json) {
    *job_json = NULL;
    cJSON *req = request_json ? cJSON_Parse(request_json) : NULL;
    if (!req) return kiln_fail(KILN_ERR_INVALID_ARG, "the job request is not valid JSON");
    kiln_job_rec j = {0};
    kiln_status st = kiln_engine_submit(e, req, idem_key, &j, NULL);
    cJSON_Delete(req);
    return job_text(st, &j, -1, job_json);
}

kiln_status kiln_engine_get_json(kiln_engine *e, const char *id, char **job_json) {
    kiln_job_rec j = {0};
    double eta = -1;
    kiln_status st = kiln_engine_get(e, id, &j, &eta);
    return job_text(st, &j, eta, job_json);
}

kiln_status kiln_engine_cancel_json(kiln_engine *e, const char *id, char **job_json) {
    kiln_job_rec j = {0};
    kiln_status st = kiln_engine_cancel(e, id, "cancelled by request", &j);
    return job_text(st, &j, -1, job_json);
}

kiln_status kiln_engine_wait_json(kiln_engine *e, const char *id, double timeout, char **job_json) {
    kiln_job_rec j = {0};
    kiln_status st = kiln_engine_wait(e, id, timeout, &j);
    return job_text(st, &j, -1, job_json);
}
