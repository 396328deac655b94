/*
 * routes_jobs.c — the jobs API: submit, list, get, cancel, and follow a job's
 * events (SSE at /v1/jobs/{id}/events, WebSocket at /v1/jobs/{id}/ws).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static MHD_Result_t send_job(struct MHD_Connection *c, http_req *r, int status, const kiln_job_rec *j, double eta) {
    cJSON *o = kiln_job_rec_to_json(j, eta);
    MHD_Result_t ret = o ? kiln_http_json(c, r, status, o) : kiln_http_fail(c, r, KILN_ERR_NOMEM);
    cJSON_Delete(o);
    return ret;
}

static MHD_Result_t submit(struct MHD_Connection *c, http_req *r) {
    MHD_Result_t ret;
    cJSON *req = kiln_http_body_json(c, r, &ret);
    if (!req) return ret;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    kiln_job_rec j = {0};
    bool existing = false;
    kiln_status st = kiln_engine_submit(r->srv->engine, req, key, &j, &existing);
    cJSON_Delete(req);
    if (st) return kiln_http_fail(c, r, st);
    ret = send_job(c, r, existing ? 200 : 201, &j, -1);
    kiln_job_rec_clear(&j);
    return ret;
}

static MHD_Result_t list(struct MHD_Connection *c, http_req *r) {
    const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    const char *limit_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    int st_idx = -1, limit = 100;
    if (state && (st_idx = kiln_job_state_parse(state)) < 0)
        return kiln_http_error(c, r, 400, "unknown state '%s' (queued, running, completed, failed, cancelled)", state);
    if (limit_s) {
        char *end;
        long l = strtol(limit_s, &end, 10);
        if (*end || l < 1 || l > 1000) return kiln_http_error(c, r, 400, "'limit' must be between 1 and 1000");
        limit = (int)l;
    }
    kiln_job_rec *v = NULL;
    size_t n = 0;
    kiln_status st = kiln_engine_list(r->srv->engine, st_idx, limit, &v, &n);
    if (st) return kiln_http_fail(c, r, st);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(data, kiln_job_rec_to_json(&v[i], -1));
    kiln_job_recs_free(v, n);
    MHD_Result_t ret = kiln_http_json(c, r, 200, o);
    cJSON_Delete(o);
    return ret;
}

static bool valid_id(const char *id, size_t len) {
    if (len != 20 || strncmp(id, "job_", 4)) return false;
    for (size_t i = 4; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return false;
    return true;
}

static bool flag_arg(struct MHD_Connection *c, const char *name) {
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

MHD_Result_t kiln_route_jobs(struct MHD_Connection *c, http_req *r, const char *method, const char *url) {
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
    if (!strcmp(url, "/v1/jobs")) {
        if (post) return submit(c, r);
        if (get) return list(c, r);
        return kiln_http_error(c, r, 405, "use POST to submit a job or GET to list jobs");
    }
    const char *id = url + strlen("/v1/jobs/");
    const char *slash = strchr(id, '/');
    size_t id_len = slash ? (size_t)(slash - id) : strlen(id);
    if (!valid_id(id, id_len)) return kiln_http_error(c, r, 404, "no job '%.*s'", (int)(id_len > 64 ? 64 : id_len), id);
    char jid[32];
    memcpy(jid, id, id_len);
    jid[id_len] = '\0';
    if (slash) {
        if (!get) return kiln_http_error(c, r, 405, "use GET");
        kiln_job_rec j = {0};
        kiln_status st = kiln_engine_get(r->srv->engine, jid, &j, NULL);
        kiln_job_rec_clear(&j);
        if (st) return kiln_http_fail(c, r, st);
        bool cancel = flag_arg(c, "cancel_on_disconnect");
        if (!strcmp(slash, "/events")) return kiln_stream_sse(c, r, jid, STREAM_JOB_EVENTS, NULL, false, cancel);
        if (!strcmp(slash, "/ws")) return kiln_stream_ws(c, r, jid, cancel);
        return kiln_http_error(c, r, 404, "no route %s %s", method, url);
    }
    kiln_job_rec j = {0};
    double eta = -1;
    kiln_status st;
    if (get) st = kiln_engine_get(r->srv->engine, jid, &j, &eta);
    else if (del) st = kiln_engine_cancel(r->srv->engine, jid, "cancelled by request", &j);
    else return kiln_http_error(c, r, 405, "use GET to read a job or DELETE to cancel it");
    if (st) return kiln_http_fail(c, r, st);
    MHD_Result_t ret = send_job(c, r, 200, &j, eta);
    kiln_job_rec_clear(&j);
    return ret;
}
