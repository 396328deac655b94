/*
 * routes_openai.c — the OpenAI-compatible routes: /v1/models, /v1/completions and
 * /v1/chat/completions (streaming as server-sent events in OpenAI's chunk format).
 *
 * A completion is a text job: the request is translated into job parameters (chat
 * messages are rendered by the worker through the model's chat template), submitted
 * to the engine, and answered from the job's result or streamed from its events.
 * Parameters OpenAI defines but kiln does not implement are refused by name rather
 * than silently ignored; kiln's own sampler knobs (top_k, min_p, repeat_penalty) are
 * accepted as extensions, as llama.cpp's server does.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "server/server_internal.h"

MHD_Result_t kiln_route_models(struct MHD_Connection *c, http_req *r) {
    cJSON *data = kiln_engine_models_json(r->srv->engine);
    if (!data) return kiln_http_fail(c, r, KILN_ERR_IO);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToObject(o, "data", data);
    MHD_Result_t ret = kiln_http_json(c, r, 200, o);
    cJSON_Delete(o);
    return ret;
}

/* Keys copied into the job's params as they are. */
static const char *const g_passthrough[] = {"max_tokens", "temperature", "top_p", "top_k", "min_p",
                                            "repeat_penalty", "frequency_penalty", "presence_penalty",
                                            "seed", "stop", NULL};
/* Keys accepted and handled here (or harmless). */
static const char *const g_handled[] = {"model", "prompt", "messages", "stream", "stream_options", "n", "user",
                                        "max_completion_tokens", "logprobs", "echo", "best_of", "logit_bias",
                                        "suffix", "response_format", "tools", "tool_choice", "parallel_tool_calls",
                                        "functions", "function_call", "top_logprobs", NULL};

static bool in_list(const char *k, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(*list, k)) return true;
    return false;
}

/* Refuses what kiln cannot honour; returns a message or NULL. */
static const char *unsupported(const cJSON *req, bool chat, char *buf, size_t n) {
    const cJSON *v;
    cJSON_ArrayForEach(v, req) {
        const char *k = v->string;
        if (cJSON_IsNull(v)) continue;
        if (!in_list(k, g_passthrough) && !in_list(k, g_handled)) {
            snprintf(buf, n, "unknown parameter '%s'", k);
            return buf;
        }
        bool bad = false;
        if (!strcmp(k, "n") || !strcmp(k, "best_of")) bad = !cJSON_IsNumber(v) || v->valuedouble != 1;
        else if (!strcmp(k, "logprobs") || !strcmp(k, "echo")) bad = !cJSON_IsFalse(v);
        else if (!strcmp(k, "top_logprobs")) bad = !(cJSON_IsNumber(v) && v->valuedouble == 0);
        else if (!strcmp(k, "logit_bias")) bad = !cJSON_IsObject(v) || v->child;
        else if (!strcmp(k, "suffix") || !strcmp(k, "functions") || !strcmp(k, "function_call") ||
                 !strcmp(k, "tools") || !strcmp(k, "tool_choice") || !strcmp(k, "parallel_tool_calls"))
            bad = true;
        else if (!strcmp(k, "response_format")) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "type");
            bad = !cJSON_IsString(t) || strcmp(t->valuestring, "text");
        } else if (!strcmp(k, "prompt") && chat) bad = true;
        else if (!strcmp(k, "messages") && !chat) bad = true;
        if (bad) {
            snprintf(buf, n, "parameter '%s' with this value is not supported by kiln", k);
            return buf;
        }
    }
    return NULL;
}

/* Builds the job request {"kind":"text","model":...,"params":{...}}. */
static cJSON *job_request(const cJSON *req, bool chat, char *err, size_t n) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (!cJSON_IsString(model)) {
        snprintf(err, n, "'model' is required and must be a string");
        return NULL;
    }
    cJSON *job = cJSON_CreateObject(), *params = cJSON_AddObjectToObject(job, "params");
    cJSON_AddStringToObject(job, "kind", "text");
    cJSON_AddStringToObject(job, "model", model->valuestring);
    const cJSON *v;
    cJSON_ArrayForEach(v, req) {
        if (in_list(v->string, g_passthrough) && !cJSON_IsNull(v))
            cJSON_AddItemToObject(params, v->string, cJSON_Duplicate(v, true));
    }
    const cJSON *mct = cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens");
    if (mct && !cJSON_IsNull(mct) && !cJSON_GetObjectItemCaseSensitive(params, "max_tokens"))
        cJSON_AddItemToObject(params, "max_tokens", cJSON_Duplicate(mct, true));
    if (chat) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(req, "messages");
        if (!m) {
            snprintf(err, n, "'messages' is required");
            cJSON_Delete(job);
            return NULL;
        }
        cJSON_AddItemToObject(params, "messages", cJSON_Duplicate(m, true));
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child)) p = p->child;
        if (!cJSON_IsString(p)) {
            snprintf(err, n, "'prompt' is required and must be a string (or an array of one string)");
            cJSON_Delete(job);
            return NULL;
        }
        cJSON_AddStringToObject(params, "prompt", p->valuestring);
    }
    return job;
}

/* The completion object for a finished job. */
static cJSON *completion_json(const kiln_job_rec *j, bool chat, const char *model) {
    const cJSON *res = j->result;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(res, "text");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(res, "finish_reason");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(res, "usage");
    cJSON *o = cJSON_CreateObject();
    char id[64];
    snprintf(id, sizeof id, "%s%s", chat ? "chatcmpl-" : "cmpl-", j->id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(o, "created", floor(j->created));
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "system_fingerprint", "kiln");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    const char *t = cJSON_IsString(text) ? text->valuestring : "";
    if (chat) {
        cJSON *msg = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", t);
        cJSON_AddNullToObject(msg, "refusal");
    } else {
        cJSON_AddStringToObject(ch, "text", t);
    }
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", cJSON_IsString(fr) ? fr->valuestring : "stop");
    cJSON_AddItemToArray(choices, ch);
    if (usage) cJSON_AddItemToObject(o, "usage", cJSON_Duplicate(usage, true));
    return o;
}

MHD_Result_t kiln_http_job_failed(struct MHD_Connection *c, http_req *r, const kiln_job_rec *done) {
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(done->result, "status");
    int code = 500;
    if (done->state == KILN_JOB_CANCELLED) code = 409;
    else if (cJSON_IsString(status) &&
             (!strcmp(status->valuestring, "ERR_CAPACITY") || !strcmp(status->valuestring, "ERR_NOMEM")))
        code = 507;
    else if (cJSON_IsString(status) && (!strcmp(status->valuestring, "ERR_CONTEXT_FULL") ||
                                        !strcmp(status->valuestring, "ERR_INVALID_ARG") ||
                                        !strcmp(status->valuestring, "ERR_UNSUPPORTED")))
        code = 400;
    return kiln_http_error(c, r, code, "job %s %s: %s", done->id, kiln_job_state_name(done->state),
                           done->error ? done->error : "no reason recorded");
}

MHD_Result_t kiln_route_completions(struct MHD_Connection *c, http_req *r, bool chat) {
    MHD_Result_t ret;
    cJSON *req = kiln_http_body_json(c, r, &ret);
    if (!req) return ret;
    char err[512];
    const char *why = unsupported(req, chat, err, sizeof err);
    if (why) {
        cJSON_Delete(req);
        return kiln_http_error(c, r, 400, "%s", why);
    }
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(req, "stream");
    const cJSON *sopt = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream)) {
        cJSON_Delete(req);
        return kiln_http_error(c, r, 400, "'stream' must be true or false");
    }
    bool streaming = cJSON_IsTrue(stream);
    const cJSON *iu = cJSON_GetObjectItemCaseSensitive(sopt, "include_usage");
    bool include_usage = cJSON_IsTrue(iu);
    cJSON *job = job_request(req, chat, err, sizeof err);
    if (!job) {
        cJSON_Delete(req);
        return kiln_http_error(c, r, 400, "%s", err);
    }
    char model[256];
    snprintf(model, sizeof model, "%s", cJSON_GetObjectItemCaseSensitive(req, "model")->valuestring);
    cJSON_Delete(req);

    kiln_job_rec rec = {0};
    kiln_status st = kiln_engine_submit(r->srv->engine, job, NULL, &rec, NULL);
    cJSON_Delete(job);
    if (st) return kiln_http_fail(c, r, st);
    if (streaming) {
        ret = kiln_stream_sse(c, r, rec.id, chat ? STREAM_CHAT : STREAM_COMPLETION, model, include_usage, true);
        kiln_job_rec_clear(&rec);
        return ret;
    }
    kiln_job_rec done = {0};
    st = kiln_engine_wait(r->srv->engine, rec.id, -1, &done);
    kiln_job_rec_clear(&rec);
    if (st) return kiln_http_fail(c, r, st);
    if (done.state == KILN_JOB_COMPLETED) {
        cJSON *o = completion_json(&done, chat, model);
        ret = kiln_http_json(c, r, 200, o);
        cJSON_Delete(o);
    } else {
        ret = kiln_http_job_failed(c, r, &done);
    }
    kiln_job_rec_clear(&done);
    return ret;
}
