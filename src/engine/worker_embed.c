/*
 * worker_embed.c — embedding jobs: concurrent requests for one model run as one batch.
 *
 * When a worker takes an embedding job it also takes the other embedding jobs queued
 * for the same model and normalize setting (up to KILN_EMBED_GROUP_MAX jobs and
 * KILN_EMBED_GROUP_TEXTS texts), so that many small /v1/embeddings requests arriving
 * together fill one encoder batch instead of queueing one behind the other. Batching
 * changes nothing in the numbers: the embedder gives a text the same vector whatever
 * else is in its batch (kiln.h), so each job's result is what it would get alone.
 *
 * A job's result: {"embeddings": [[...], ...], "tokens": [...], "truncated": [...],
 * "dim": D, "usage": {"prompt_tokens", "total_tokens"}, "batch": {"jobs", "texts"}}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/timer.h"
#include "engine/engine_internal.h"

static int n_texts(const kiln_job_rec *r) {
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(r->params, "input");
    return cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 1;
}

static bool normalizes(const kiln_job_rec *r) {
    return !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r->params, "normalize"));
}

int kiln_engine_embed_group(kiln_engine *e, live_job *first, live_job **group) {
    int n = 0, texts = n_texts(&first->rec);
    group[n++] = first;
    /* oldest first: the live list is newest first, so collect then reverse-scan */
    live_job *cand[KILN_EMBED_GROUP_MAX * 4];
    int nc = 0;
    for (live_job *j = e->live; j && nc < (int)(sizeof cand / sizeof cand[0]); j = j->next)
        if (j != first && j->rec.state == KILN_JOB_QUEUED && j->rec.kind == KILN_JOB_EMBEDDING &&
            !strcmp(j->rec.model, first->rec.model) && normalizes(&j->rec) == normalizes(&first->rec))
            cand[nc++] = j;
    for (int i = nc - 1; i >= 0 && n < KILN_EMBED_GROUP_MAX; i--) {
        const int t = n_texts(&cand[i]->rec);
        if (texts + t > KILN_EMBED_GROUP_TEXTS) continue;
        texts += t;
        group[n++] = cand[i];
    }
    return n;
}

static cJSON *job_result(const kiln_embed_result *res, const float *vec, int count, int dim, int jobs, int texts) {
    cJSON *o = cJSON_CreateObject(), *emb = cJSON_AddArrayToObject(o, "embeddings");
    cJSON *tok = cJSON_AddArrayToObject(o, "tokens"), *tr = cJSON_AddArrayToObject(o, "truncated");
    int64_t total = 0;
    for (int i = 0; i < count; i++) {
        cJSON_AddItemToArray(emb, cJSON_CreateFloatArray(vec + (size_t)i * (size_t)dim, dim));
        cJSON_AddItemToArray(tok, cJSON_CreateNumber(res[i].tokens));
        cJSON_AddItemToArray(tr, cJSON_CreateBool(res[i].truncated));
        total += res[i].tokens;
    }
    cJSON_AddNumberToObject(o, "dim", dim);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)total);
    cJSON_AddNumberToObject(u, "total_tokens", (double)total);
    cJSON *b = cJSON_AddObjectToObject(o, "batch");
    cJSON_AddNumberToObject(b, "jobs", jobs);
    cJSON_AddNumberToObject(b, "texts", texts);
    return o;
}

void kiln_engine_run_embed(kiln_engine *e, live_job **group, int n) {
    /* the params and model of running jobs do not change: read them unlocked */
    int total = 0;
    for (int i = 0; i < n; i++) total += n_texts(&group[i]->rec);
    const char **texts = kiln_malloc_array((size_t)total, sizeof *texts);
    kiln_embed_result *res = kiln_malloc_array((size_t)total, sizeof *res);
    kiln_model_entry me = {0};
    kiln_model_spec spec;
    kiln_embedder *emb = NULL;
    kiln_embedder_info info = {0};
    float *vec = NULL;
    bool loaded = false;
    double load_s = 0;
    kiln_status st = texts && res ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int i = 0, k = 0; i < n && !st; i++) {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(group[i]->rec.params, "input"), *s;
        if (cJSON_IsString(in)) {
            texts[k++] = in->valuestring;
            continue;
        }
        cJSON_ArrayForEach(s, in) texts[k++] = cJSON_IsString(s) ? s->valuestring : "";
    }
    if (!st) st = kiln_engine_model_spec(e, group[0]->rec.model, &me, &spec);
    if (!st) st = kiln_cache_acquire_embedder(e->cache, &spec, &emb, &loaded, &load_s);
    if (!st && loaded) {
        pthread_mutex_lock(&e->mu);
        e->model_loads++;
        e->load_seconds_total += load_s;
        pthread_mutex_unlock(&e->mu);
    }
    if (!st) {
        kiln_embedder_get_info(emb, &info);
        kiln_embedder_set_normalize(emb, normalizes(&group[0]->rec));
        if (!(vec = kiln_malloc_array((size_t)total * (size_t)info.dim, sizeof *vec)))
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory for %d embeddings", total);
    }
    if (!st) st = kiln_embedder_embed(emb, texts, NULL, (size_t)total, vec, res);
    char *err = st ? kiln_strdup(kiln_last_error()) : NULL;
    kiln_cache_release_embedder(e->cache, emb);

    pthread_mutex_lock(&e->mu);
    for (int i = 0, off = 0; i < n; off += n_texts(&group[i]->rec), i++) {
        live_job *j = group[i];
        const int count = n_texts(&j->rec);
        cJSON_Delete(j->rec.result);
        j->rec.result = NULL;
        if (j->interrupt && !j->cancel) { /* shutting down: back to the queue, not counted */
            j->rec.state = KILN_JOB_QUEUED;
            j->rec.attempts--;
            j->rec.done = 0;
            j->rec.started = 0;
            kiln_store_update(e->store, &j->rec);
            e->n_queued++;
            pthread_cond_broadcast(&e->event_cv);
            continue;
        }
        j->rec.finished = kiln_time_unix();
        if (st) {
            j->rec.state = KILN_JOB_FAILED;
            j->rec.error = kiln_strdup(err ? err : "failed");
            j->rec.result = cJSON_CreateObject();
            if (j->rec.result) cJSON_AddStringToObject(j->rec.result, "status", kiln_status_name(st));
        } else if (j->cancel) {
            j->rec.state = KILN_JOB_CANCELLED;
            j->rec.error = kiln_strdup(j->cancel_reason ? j->cancel_reason : "cancelled");
        } else {
            j->rec.result = job_result(res + off, vec + (size_t)off * (size_t)info.dim, count, info.dim, n, total);
            j->rec.done = j->rec.total = count;
            j->rec.state = j->rec.result ? KILN_JOB_COMPLETED : KILN_JOB_FAILED;
            if (!j->rec.result) j->rec.error = kiln_strdup("out of memory building the result");
        }
        kiln_engine_finish(e, j);
    }
    pthread_mutex_unlock(&e->mu);
    free(err);
    free(vec);
    free(res);
    free(texts);
    kiln_model_entry_clear(&me);
}
