/*
 * routes_embed.c — OpenAI's POST /v1/embeddings, as an embedding job of the engine.
 *
 * Request: {"model": NAME, "input": "text" | ["text", ...], "encoding_format":
 * "float" | "base64", "user": ...}, plus kiln's "normalize" (default true, as
 * text-embeddings-inference). NAME may also be an embedding program (preset) of the
 * config. Token-id inputs and "dimensions" are refused by name. Concurrent requests
 * for one model are batched together by the worker (worker_embed.c) with results
 * identical to running alone. Response: {"object": "list", "data": [{"object":
 * "embedding", "index": i, "embedding": [...] | "base64 of little-endian f32"}],
 * "model": NAME, "usage": {"prompt_tokens", "total_tokens"}}; kiln adds "tokens" and
 * "truncated" per item, so a cut input is never silent.
 */
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "server/server_internal.h"

static const char *const g_keys[] = {"model", "input", "encoding_format", "user", "normalize", "dimensions", NULL};

static const char *check_request(const cJSON *req, bool *b64, char *buf, size_t n) {
    const cJSON *v;
    cJSON_ArrayForEach(v, req) {
        bool known = false;
        for (const char *const *k = g_keys; *k; k++) known |= !strcmp(*k, v->string);
        if (!known) {
            snprintf(buf, n, "unknown parameter '%s'", v->string);
            return buf;
        }
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(req, "model")))
        return "'model' is required and must be a string";
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(req, "input");
    if (!in) return "'input' is required";
    if (cJSON_IsArray(in) && cJSON_IsNumber(in->child))
        return "'input' as token ids is not supported by kiln: give text";
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(req, "encoding_format");
    *b64 = false;
    if (fmt && !cJSON_IsNull(fmt)) {
        if (!cJSON_IsString(fmt) || (strcmp(fmt->valuestring, "float") && strcmp(fmt->valuestring, "base64")))
            return "'encoding_format' must be \"float\" or \"base64\"";
        *b64 = !strcmp(fmt->valuestring, "base64");
    }
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(req, "dimensions");
    if (dims && !cJSON_IsNull(dims)) return "'dimensions' is not supported: the model's embedding size is fixed";
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(req, "normalize");
    if (norm && !cJSON_IsBool(norm) && !cJSON_IsNull(norm)) return "'normalize' must be true or false";
    return NULL;
}

/* base64 of the vector's float32 values, little-endian (what OpenAI's clients decode). */
static cJSON *b64_vector(const cJSON *vec) {
    const int d = cJSON_GetArraySize(vec);
    uint8_t *bytes = kiln_malloc_array((size_t)d, 4);
    char *text = bytes ? malloc(BASE64_ENCODE_RAW_LENGTH((size_t)d * 4) + 1) : NULL;
    cJSON *out = NULL;
    if (text) {
        int i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, vec) {
            const float f = (float)x->valuedouble;
            uint32_t u;
            memcpy(&u, &f, 4);
            for (int b = 0; b < 4; b++) bytes[4 * i + b] = (uint8_t)(u >> (8 * b));
            i++;
        }
        base64_encode_raw(text, (size_t)d * 4, bytes);
        text[BASE64_ENCODE_RAW_LENGTH((size_t)d * 4)] = 0;
        out = cJSON_CreateString(text);
    }
    free(bytes);
    free(text);
    return out;
}

static cJSON *response_json(const kiln_job_rec *done, const char *model, bool b64) {
    const cJSON *res = done->result, *embs = cJSON_GetObjectItemCaseSensitive(res, "embeddings");
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(res, "tokens");
    const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(res, "truncated");
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data");
    cJSON_AddStringToObject(o, "object", "list");
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, embs) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "object", "embedding");
        cJSON_AddNumberToObject(item, "index", i);
        cJSON_AddItemToObject(item, "embedding", b64 ? b64_vector(v) : cJSON_Duplicate(v, true));
        const cJSON *t = cJSON_GetArrayItem(toks, i), *tr = cJSON_GetArrayItem(trunc, i);
        cJSON_AddNumberToObject(item, "tokens", cJSON_IsNumber(t) ? t->valuedouble : 0);
        cJSON_AddBoolToObject(item, "truncated", cJSON_IsTrue(tr));
        cJSON_AddItemToArray(data, item);
        i++;
    }
    cJSON_AddStringToObject(o, "model", model);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(res, "usage");
    if (usage) cJSON_AddItemToObject(o, "usage", cJSON_Duplicate(usage, true));
    return o;
}

MHD_Result_t kiln_route_embeddings(struct MHD_Connection *c, http_req *r) {
    MHD_Result_t ret;
    cJSON *req = kiln_http_body_json(c, r, &ret);
    if (!req) return ret;
    char err[256];
    bool b64 = false;
    const char *why = check_request(req, &b64, err, sizeof err);
    if (why) {
        ret = kiln_http_error(c, r, 400, "%s", why);
        cJSON_Delete(req);
        return ret;
    }
    char model[256];
    snprintf(model, sizeof model, "%s", cJSON_GetObjectItemCaseSensitive(req, "model")->valuestring);
    cJSON *job = cJSON_CreateObject(), *params = cJSON_AddObjectToObject(job, "params");
    cJSON_AddStringToObject(job, "kind", "embedding");
    cJSON_AddStringToObject(job, "model", model);
    cJSON_AddItemToObject(params, "input", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(req, "input"), true));
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(req, "normalize");
    if (cJSON_IsBool(norm)) cJSON_AddItemToObject(params, "normalize", cJSON_Duplicate(norm, false));
    cJSON_Delete(req);

    kiln_job_rec rec = {0};
    kiln_status st = kiln_engine_submit(r->srv->engine, job, NULL, &rec, NULL);
    if (st == KILN_ERR_NOT_FOUND) { /* not a model: an embedding program of that name? */
        cJSON_DeleteItemFromObjectCaseSensitive(job, "model");
        cJSON_AddStringToObject(job, "program", model);
        if (kiln_engine_submit(r->srv->engine, job, NULL, &rec, NULL) == KILN_OK) st = KILN_OK;
        else kiln_fail(KILN_ERR_NOT_FOUND, "no model or embedding program named '%s'", model);
    }
    cJSON_Delete(job);
    if (st) return kiln_http_fail(c, r, st);
    kiln_job_rec done = {0};
    st = kiln_engine_wait(r->srv->engine, rec.id, -1, &done);
    kiln_job_rec_clear(&rec);
    if (st) return kiln_http_fail(c, r, st);
    if (done.state == KILN_JOB_COMPLETED) {
        cJSON *o = response_json(&done, model, b64);
        ret = o ? kiln_http_json(c, r, 200, o) : kiln_http_fail(c, r, KILN_ERR_NOMEM);
        cJSON_Delete(o);
    } else {
        ret = kiln_http_job_failed(c, r, &done);
    }
    kiln_job_rec_clear(&done);
    return ret;
}
