/*
 * worker.c — worker threads: take the next queued job, run it, record the outcome.
 *
 * A job is marked running (and its attempt counted) in the store before it starts,
 * so a job that crashes the process again and again is failed after max_attempts
 * instead of looping. Text generation reports every token to the job (progress,
 * ETA, text deltas) and checks the cancel flag there, so a cancel takes effect
 * within one token; embedding jobs run in worker_embed.c, image jobs in
 * worker_image.c (a cancel takes effect at the next denoising step).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/timer.h"
#include "engine/engine_internal.h"

/* The queued job to run next: highest priority, then oldest. Called with mu held. */
static live_job *pick(kiln_engine *e) {
    live_job *best = NULL;
    for (live_job *j = e->live; j; j = j->next) {
        if (j->rec.state != KILN_JOB_QUEUED) continue;
        if (!best || j->rec.priority > best->rec.priority ||
            (j->rec.priority == best->rec.priority && j->rec.seq < best->rec.seq))
            best = j;
    }
    return best;
}

/* Marks j running (counted, and held until the worker lets it go) and records it;
 * false if the store cannot: j is then failed and neither counted nor held. Called
 * with mu held. */
static bool start(kiln_engine *e, live_job *j) {
    j->rec.state = KILN_JOB_RUNNING;
    j->rec.started = kiln_time_unix();
    j->rec.attempts++;
    j->rec.done = 0;
    e->n_queued--;
    if (kiln_store_update(e->store, &j->rec)) {
        /* Cannot record the start: do not run what we could not account for. */
        j->rec.state = KILN_JOB_FAILED;
        j->rec.finished = kiln_time_unix();
        j->rec.error = kiln_strdup(kiln_last_error());
        kiln_engine_finish(e, j);
        return false;
    }
    e->n_running++;
    j->refs++;
    cJSON *d = kiln_job_rec_to_json(&j->rec, -1);
    kiln_engine_push_event(e, j, "started", d);
    cJSON_Delete(d);
    return true;
}

void *kiln_engine_worker_main(void *arg) {
    kiln_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        live_job *j = NULL;
        while (!e->stopping && !(j = pick(e))) pthread_cond_wait(&e->work_cv, &e->mu);
        if (e->stopping) break;
        /* Embedding jobs queued for the same model run together, as one batch. */
        live_job *group[KILN_EMBED_GROUP_MAX];
        int n = j->rec.kind == KILN_JOB_EMBEDDING ? kiln_engine_embed_group(e, j, group) : 1;
        if (n == 1) group[0] = j;
        const bool embed = j->rec.kind == KILN_JOB_EMBEDDING;
        int ok = 0;
        for (int i = 0; i < n; i++)
            if (start(e, group[i])) group[ok++] = group[i];
        if (ok) {
            pthread_mutex_unlock(&e->mu);
            if (embed) kiln_engine_run_embed(e, group, ok);
            else if (j->rec.kind == KILN_JOB_IMAGE) kiln_engine_run_image(e, j);
            else kiln_engine_run_text(e, j);
            pthread_mutex_lock(&e->mu);
        }
        for (int i = 0; i < ok; i++) {
            e->n_running--;
            group[i]->refs--;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- text jobs ------------------------------------------------------------------ */

typedef struct {
    kiln_engine *e;
    live_job *j;
    kiln_buf text;
    bool oom;
} text_run;

static bool on_token(const char *piece, size_t len, void *user) {
    text_run *r = user;
    kiln_engine *e = r->e;
    live_job *j = r->j;
    pthread_mutex_lock(&e->mu);
    double now = kiln_time_now();
    if (j->rec.done == 0) j->gen_start = now;
    j->rec.done++;
    e->tokens_generated++;
    if (len) {
        if (kiln_buf_append(&r->text, piece, len)) r->oom = true;
        cJSON *d = cJSON_CreateObject();
        if (d) {
            cJSON_AddStringToObject(d, "id", j->rec.id);
            cJSON_AddItemToObject(d, "text", cJSON_CreateString(r->text.data + r->text.len - len));
            cJSON_AddNumberToObject(d, "done", (double)j->rec.done);
            kiln_engine_push_event(e, j, "delta", d);
            cJSON_Delete(d);
        }
    }
    /* Progress at most four times a second: enough for a bar and an ETA. */
    if (now - j->last_progress >= 0.25 || j->rec.done == j->rec.total) {
        j->last_progress = now;
        cJSON *d = kiln_engine_progress_json(j);
        kiln_engine_push_event(e, j, "progress", d);
        cJSON_Delete(d);
    }
    bool go_on = !j->cancel && !j->interrupt && !r->oom;
    pthread_mutex_unlock(&e->mu);
    return go_on;
}

static const char *finish_reason(const char *stop_reason) {
    /* OpenAI's vocabulary: "stop" (EOS or a stop string) or "length". */
    return !strcmp(stop_reason, "length") || !strcmp(stop_reason, "context") ? "length" : "stop";
}

static cJSON *text_result(const text_run *r, const kiln_gen_stats *gs, kiln_status st) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "text", r->text.data ? r->text.data : "");
    if (!st && gs->stop_reason) {
        cJSON_AddStringToObject(o, "finish_reason", finish_reason(gs->stop_reason));
        cJSON_AddStringToObject(o, "stop_reason", gs->stop_reason);
    }
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    if (u) {
        cJSON_AddNumberToObject(u, "prompt_tokens", gs->n_prompt);
        cJSON_AddNumberToObject(u, "completion_tokens", gs->n_generated);
        cJSON_AddNumberToObject(u, "total_tokens", gs->n_prompt + gs->n_generated);
    }
    cJSON *t = cJSON_AddObjectToObject(o, "timings");
    if (t) {
        cJSON_AddNumberToObject(t, "prompt_seconds", gs->prompt_seconds);
        cJSON_AddNumberToObject(t, "generation_seconds", gs->gen_seconds);
        cJSON_AddNumberToObject(t, "tokens_per_second", gs->gen_seconds > 0 ? gs->n_generated / gs->gen_seconds : 0);
    }
    if (st) cJSON_AddStringToObject(o, "status", kiln_status_name(st));
    return o;
}

kiln_status kiln_engine_model_spec(kiln_engine *e, const char *name, kiln_model_entry *me, kiln_model_spec *spec) {
    kiln_status st = kiln_registry_resolve(e->reg, name, me);
    if (st) return st;
    const kiln_model_conf *mc = kiln_presets_model(e->presets, name);
    /* settings given under the alias win over those given under the model's name */
    if (!mc && me->alias_of) mc = kiln_presets_model(e->presets, me->alias_of);
    *spec = (kiln_model_spec){.name = me->alias_of ? me->alias_of : me->name, .path = me->path,
                              .tokenizer_path = me->tokenizer_path, .weight_bytes = me->bytes,
                              .n_ctx = mc ? mc->n_ctx : 0,
                              .keep_alive = mc && mc->has_keep_alive ? mc->keep_alive : e->opt.keep_alive};
    return KILN_OK;
}

void kiln_engine_run_text(kiln_engine *e, live_job *j) {
    text_run r = {e, j, {0}, false};
    kiln_gen_stats gs = {0};
    kiln_params p;
    kiln_params_default(&p, KILN_JOB_TEXT);
    kiln_model_entry me = {0};
    kiln_model_spec spec;
    kiln_llm *llm = NULL;
    char *prompt = NULL;
    bool add_bos = true, loaded = false;
    double load_s = 0;
    const char *stops[KILN_MAX_STOP + 1] = {0};

    /* j->rec.params and model are not changed while the job runs: read them unlocked. */
    kiln_status st = kiln_params_parse(&p, KILN_JOB_TEXT, j->rec.params, "job params", NULL, NULL);
    if (!st) st = kiln_engine_model_spec(e, j->rec.model, &me, &spec);
    if (!st) st = kiln_cache_acquire(e->cache, &spec, &llm, &loaded, &load_s);
    if (!st && loaded) {
        pthread_mutex_lock(&e->mu);
        e->model_loads++;
        e->load_seconds_total += load_s;
        pthread_mutex_unlock(&e->mu);
    }
    if (!st) st = kiln_engine_build_prompt(&p, llm, &prompt, &add_bos);
    if (!st) {
        kiln_sample_options so;
        kiln_sample_options_default(&so);
        so.max_tokens = p.max_tokens;
        so.temperature = p.temperature;
        so.top_k = p.top_k;
        so.top_p = p.top_p;
        so.min_p = p.min_p;
        so.repeat_penalty = p.repeat_penalty;
        so.frequency_penalty = p.frequency_penalty;
        so.presence_penalty = p.presence_penalty;
        so.seed = p.seed;
        so.add_bos = add_bos;
        for (int i = 0; i < p.n_stop; i++) stops[i] = p.stop[i];
        so.stop = p.n_stop ? stops : NULL;
        st = kiln_llm_generate(llm, prompt, &so, on_token, &r, &gs);
        if (!st && r.oom) st = kiln_fail(KILN_ERR_NOMEM, "out of memory collecting the generated text");
    }
    char *err = st ? kiln_strdup(kiln_last_error()) : NULL;
    kiln_cache_release(e->cache, llm);

    pthread_mutex_lock(&e->mu);
    if (!st && gs.gen_seconds > 0) e->last_tps = gs.n_generated / gs.gen_seconds;
    cJSON_Delete(j->rec.result);
    j->rec.result = text_result(&r, &gs, st);
    if (j->interrupt && !j->cancel) {
        /* Shutting down: back to the queue, not counted as an attempt. */
        j->rec.state = KILN_JOB_QUEUED;
        j->rec.attempts--;
        j->rec.done = 0;
        j->rec.started = 0;
        cJSON_Delete(j->rec.result);
        j->rec.result = NULL;
        kiln_store_update(e->store, &j->rec);
        e->n_queued++;
        pthread_cond_broadcast(&e->event_cv);
    } else {
        j->rec.finished = kiln_time_unix();
        if (st) {
            j->rec.state = KILN_JOB_FAILED;
            j->rec.error = err;
            err = NULL;
        } else if (j->cancel) {
            j->rec.state = KILN_JOB_CANCELLED;
            j->rec.error = kiln_strdup(j->cancel_reason ? j->cancel_reason : "cancelled");
            /* how far generation went after the cancel arrived: 0 or 1 token */
            if (j->rec.result)
                cJSON_AddNumberToObject(j->rec.result, "tokens_after_cancel", (double)(j->rec.done - j->done_at_cancel));
        } else {
            j->rec.state = KILN_JOB_COMPLETED;
        }
        kiln_engine_finish(e, j);
    }
    pthread_mutex_unlock(&e->mu);
    free(err);
    free(prompt);
    kiln_buf_free(&r.text);
    kiln_model_entry_clear(&me);
    kiln_params_clear(&p);
}
