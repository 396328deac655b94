/*
 * job.c — job records: names of states, copies, the JSON the API shows.
 */
#include "engine/job.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

static const char *const g_states[KILN_JOB_STATE_COUNT] = {"queued", "running", "completed", "failed", "cancelled"};

const char *kiln_job_state_name(kiln_job_state s) {
    return (unsigned)s < KILN_JOB_STATE_COUNT ? g_states[s] : "?";
}

int kiln_job_state_parse(const char *name) {
    for (int i = 0; name && i < KILN_JOB_STATE_COUNT; i++)
        if (!strcmp(name, g_states[i])) return i;
    return -1;
}

void kiln_job_rec_clear(kiln_job_rec *j) {
    free(j->program);
    free(j->model);
    free(j->error);
    free(j->idem_key);
    cJSON_Delete(j->params);
    cJSON_Delete(j->result);
    memset(j, 0, sizeof *j);
}

void kiln_job_recs_free(kiln_job_rec *v, size_t n) {
    for (size_t i = 0; v && i < n; i++) kiln_job_rec_clear(&v[i]);
    free(v);
}

kiln_status kiln_job_rec_copy(kiln_job_rec *dst, const kiln_job_rec *src) {
    *dst = *src;
    dst->program = kiln_strdup(src->program);
    dst->model = kiln_strdup(src->model);
    dst->error = kiln_strdup(src->error);
    dst->idem_key = kiln_strdup(src->idem_key);
    dst->params = src->params ? cJSON_Duplicate(src->params, true) : NULL;
    dst->result = src->result ? cJSON_Duplicate(src->result, true) : NULL;
    if ((src->program && !dst->program) || (src->model && !dst->model) || (src->error && !dst->error) ||
        (src->idem_key && !dst->idem_key) || (src->params && !dst->params) || (src->result && !dst->result)) {
        kiln_job_rec_clear(dst);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    return KILN_OK;
}

static void add_time(cJSON *o, const char *key, double t) {
    if (t > 0) cJSON_AddNumberToObject(o, key, t);
    else cJSON_AddNullToObject(o, key);
}

cJSON *kiln_job_rec_to_json(const kiln_job_rec *j, double eta_seconds) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "job");
    cJSON_AddStringToObject(o, "kind", kiln_job_kind_name(j->kind));
    if (j->program) cJSON_AddStringToObject(o, "program", j->program);
    cJSON_AddStringToObject(o, "model", j->model ? j->model : "");
    cJSON_AddStringToObject(o, "state", kiln_job_state_name(j->state));
    cJSON_AddNumberToObject(o, "priority", j->priority);
    add_time(o, "created", j->created);
    add_time(o, "started", j->started);
    add_time(o, "finished", j->finished);
    cJSON *pr = cJSON_AddObjectToObject(o, "progress");
    if (pr) {
        cJSON_AddNumberToObject(pr, "done", (double)j->done);
        cJSON_AddNumberToObject(pr, "total", (double)j->total);
        if (eta_seconds >= 0) cJSON_AddNumberToObject(pr, "eta_seconds", eta_seconds);
    }
    cJSON_AddNumberToObject(o, "attempts", j->attempts);
    if (j->params) cJSON_AddItemToObject(o, "params", cJSON_Duplicate(j->params, true));
    if (j->result) cJSON_AddItemToObject(o, "result", cJSON_Duplicate(j->result, true));
    if (j->error) cJSON_AddStringToObject(o, "error", j->error);
    return o;
}
