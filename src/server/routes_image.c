/*
 * routes_image.c — OpenAI's POST /v1/images/generations as an image job of the engine,
 * and GET /v1/outputs/{job}/{file}, the stored images the "url" form points at.
 *
 * Request: {"model": NAME (a Stable Diffusion model of the models directory, or an
 * image program of the config), "prompt", "n" (1..16; image i gets seed + i), "size":
 * "WxH" or "auto" (the model's native size), "response_format": "b64_json" (kiln's default) | "url", "user" (ignored)},
 * plus kiln's "negative_prompt", "steps", "cfg_scale" (or "guidance"), "sampler",
 * "seed", "rng", "clip_skip", "width", "height". OpenAI's options kiln has no use for
 * take their neutral values only ("quality": "auto" | "standard", "output_format":
 * "png", "background": "auto" | "opaque", "moderation"); others are refused by name.
 * Response: {"created", "data": [{"b64_json" | "url", "revised_prompt" (when a
 * program's template changed the prompt), "seed"}], "job"} and an X-Kiln-Job header:
 * the job the jobs API follows (its events, progress and ETA).
 *
 * Outputs are served from the engine's data directory only: the two path components
 * must be a job id and "N.png" / "N.json" (kiln_engine_read_output checks them before
 * any path is built), so no request can name another file.
 */
#include <math.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "server/server_internal.h"

static const char *const g_keys[] = {"model", "prompt", "n", "size", "response_format", "user", "quality", "style",
                                     "output_format", "background", "moderation", "output_compression",
                                     "partial_images", "stream", "negative_prompt", "steps", "cfg_scale", "guidance",
                                     "sampler", "seed", "rng", "clip_skip", "width", "height", NULL};
/* Copied into the job's params as they are (the engine validates them). */
static const char *const g_params[] = {"prompt", "n", "size", "negative_prompt", "steps", "cfg_scale", "guidance",
                                       "sampler", "seed", "rng", "clip_skip", "width", "height", NULL};

static bool in_list(const char *k, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(*list, k)) return true;
    return false;
}

/* A string option that may only take the values in ok (NULL-terminated); absent or
 * null is fine. */
static bool neutral(const cJSON *req, const char *key, const char *const *ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v || cJSON_IsNull(v)) return true;
    return cJSON_IsString(v) && in_list(v->valuestring, ok);
}

static const char *check_request(const cJSON *req, bool *url, char *buf, size_t n) {
    const cJSON *v;
    cJSON_ArrayForEach(v, req) {
        if (!in_list(v->string, g_keys)) {
            snprintf(buf, n, "unknown parameter '%s'", v->string);
            return buf;
        }
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(req, "model")))
        return "'model' is required and must be a string (a Stable Diffusion model or an image program)";
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(req, "prompt")))
        return "'prompt' is required and must be a string";
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    *url = false;
    if (fmt && !cJSON_IsNull(fmt)) {
        if (!cJSON_IsString(fmt) || (strcmp(fmt->valuestring, "b64_json") && strcmp(fmt->valuestring, "url")))
            return "'response_format' must be \"b64_json\" or \"url\"";
        *url = !strcmp(fmt->valuestring, "url");
    }
    if (!neutral(req, "quality", (const char *const[]){"auto", "standard", NULL}))
        return "'quality' is not supported by kiln beyond \"auto\" or \"standard\": use 'steps'";
    if (!neutral(req, "output_format", (const char *const[]){"png", NULL}))
        return "'output_format': kiln writes \"png\" only";
    if (!neutral(req, "background", (const char *const[]){"auto", "opaque", NULL}))
        return "'background': kiln makes opaque images only (\"auto\" or \"opaque\")";
    if (!neutral(req, "moderation", (const char *const[]){"auto", "low", NULL}))
        return "'moderation' must be \"auto\" or \"low\"";
    static const char *const refused[] = {"style", "output_compression", NULL};
    for (const char *const *k = refused; *k; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(req, *k);
        if (x && !cJSON_IsNull(x)) {
            snprintf(buf, n, "parameter '%s' is not supported by kiln", *k);
            return buf;
        }
    }
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(req, "stream");
    if (stream && !cJSON_IsNull(stream) && !cJSON_IsFalse(stream))
        return "'stream' is not supported for images: follow the job's events (/v1/jobs/{id}/events) instead";
    const cJSON *partial = cJSON_GetObjectItemCaseSensitive(req, "partial_images");
    if (partial && !cJSON_IsNull(partial) && !(cJSON_IsNumber(partial) && partial->valuedouble == 0))
        return "'partial_images' is not supported: follow the job's preview events instead";
    return NULL;
}

static cJSON *b64_string(const uint8_t *bytes, size_t n) {
    char *text = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
    if (!text) return NULL;
    base64_encode_raw(text, n, bytes);
    text[BASE64_ENCODE_RAW_LENGTH(n)] = 0;
    cJSON *s = cJSON_CreateString(text);
    free(text);
    return s;
}

/* "http://HOST" from the request's Host header when it looks like one, else "". */
static void base_url(struct MHD_Connection *c, char *out, size_t n) {
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    out[0] = 0;
    if (!host || !host[0] || strlen(host) > 255) return;
    for (const char *h = host; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') || strchr(".-:[]_", *h)))
            return;
    snprintf(out, n, "http://%s", host);
}

static MHD_Result_t respond(struct MHD_Connection *c, http_req *r, const kiln_job_rec *done, const char *prompt,
                            bool url) {
    kiln_engine *e = r->srv->engine;
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(done->result, "images");
    const cJSON *final_prompt = cJSON_GetObjectItemCaseSensitive(done->result, "prompt");
    const bool revised = cJSON_IsString(final_prompt) && strcmp(final_prompt->valuestring, prompt);
    char base[300];
    base_url(c, base, sizeof base);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "created", floor(done->created));
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    kiln_status st = o && data ? KILN_OK : KILN_ERR_NOMEM;
    const cJSON *img;
    cJSON_ArrayForEach(img, images) {
        if (st) break;
        const int i = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(img, "index"));
        cJSON *item = cJSON_CreateObject();
        if (!item || !cJSON_AddItemToArray(data, item)) {
            cJSON_Delete(item);
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        char file[32];
        snprintf(file, sizeof file, "%d.png", i);
        if (url) {
            char u[400];
            snprintf(u, sizeof u, "%s/v1/outputs/%s/%s", base, done->id, file);
            cJSON_AddStringToObject(item, "url", u);
        } else {
            const cJSON *mem = cJSON_GetObjectItemCaseSensitive(img, "b64_png");
            if (cJSON_IsString(mem)) {
                cJSON_AddStringToObject(item, "b64_json", mem->valuestring);
            } else {
                uint8_t *bytes = NULL;
                size_t len = 0;
                if ((st = kiln_engine_read_output(e, done->id, file, &bytes, &len, NULL))) break;
                cJSON *s = b64_string(bytes, len);
                free(bytes);
                if (!s) {
                    st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
                    break;
                }
                cJSON_AddItemToObject(item, "b64_json", s);
            }
        }
        if (revised) cJSON_AddStringToObject(item, "revised_prompt", final_prompt->valuestring);
        const cJSON *seed = cJSON_GetObjectItemCaseSensitive(img, "seed");
        if (seed) cJSON_AddItemToObject(item, "seed", cJSON_Duplicate(seed, false));
    }
    cJSON_AddStringToObject(o, "job", done->id);
    MHD_Result_t ret = st ? kiln_http_fail(c, r, st) : kiln_http_json_header(c, r, 200, o, "X-Kiln-Job", done->id);
    cJSON_Delete(o);
    return ret;
}

MHD_Result_t kiln_route_images(struct MHD_Connection *c, http_req *r) {
    MHD_Result_t ret;
    cJSON *req = kiln_http_body_json(c, r, &ret);
    if (!req) return ret;
    char err[256];
    bool url = false;
    const char *why = check_request(req, &url, err, sizeof err);
    if (!why && url && !kiln_engine_data_dir(r->srv->engine))
        why = "'response_format' \"url\" needs a data directory to store the images: use \"b64_json\"";
    if (why) {
        ret = kiln_http_error(c, r, 400, "%s", why);
        cJSON_Delete(req);
        return ret;
    }
    char model[256];
    snprintf(model, sizeof model, "%s", cJSON_GetObjectItemCaseSensitive(req, "model")->valuestring);
    char *prompt = kiln_strdup(cJSON_GetObjectItemCaseSensitive(req, "prompt")->valuestring);
    cJSON *job = cJSON_CreateObject(), *params = cJSON_AddObjectToObject(job, "params");
    cJSON_AddStringToObject(job, "kind", "image");
    cJSON_AddStringToObject(job, "model", model);
    const cJSON *v;
    cJSON_ArrayForEach(v, req) {
        /* "size": "auto" (gpt-image-1's default) is the model's native size */
        const bool auto_size = !strcmp(v->string, "size") && cJSON_IsString(v) && !strcmp(v->valuestring, "auto");
        if (in_list(v->string, g_params) && !cJSON_IsNull(v) && !auto_size)
            cJSON_AddItemToObject(params, v->string, cJSON_Duplicate(v, true));
    }
    cJSON_Delete(req);
    if (!prompt || !params) {
        free(prompt);
        cJSON_Delete(job);
        return kiln_http_fail(c, r, kiln_fail(KILN_ERR_NOMEM, "out of memory"));
    }

    kiln_job_rec rec = {0};
    kiln_status st = kiln_engine_submit(r->srv->engine, job, NULL, &rec, NULL);
    if (st == KILN_ERR_NOT_FOUND) { /* not a model: an image program of that name? */
        cJSON_DeleteItemFromObjectCaseSensitive(job, "model");
        cJSON_AddStringToObject(job, "program", model);
        if (kiln_engine_program_kind(r->srv->engine, model))
            st = kiln_engine_submit(r->srv->engine, job, NULL, &rec, NULL);
        else
            kiln_fail(KILN_ERR_NOT_FOUND, "no model or image program named '%s'", model);
    }
    cJSON_Delete(job);
    if (st) {
        free(prompt);
        return kiln_http_fail(c, r, st);
    }
    kiln_job_rec done = {0};
    st = kiln_engine_wait(r->srv->engine, rec.id, -1, &done);
    kiln_job_rec_clear(&rec);
    if (st) ret = kiln_http_fail(c, r, st);
    else if (done.state == KILN_JOB_COMPLETED) ret = respond(c, r, &done, prompt, url);
    else ret = kiln_http_job_failed(c, r, &done);
    kiln_job_rec_clear(&done);
    free(prompt);
    return ret;
}

MHD_Result_t kiln_route_outputs(struct MHD_Connection *c, http_req *r, const char *method, const char *url) {
    if (strcmp(method, "GET")) return kiln_http_error(c, r, 405, "use GET");
    const char *rest = url + strlen("/v1/outputs/");
    const char *slash = strchr(rest, '/');
    char id[32] = "", file[32] = "";
    if (slash && (size_t)(slash - rest) < sizeof id && strlen(slash + 1) < sizeof file) {
        memcpy(id, rest, (size_t)(slash - rest));
        id[slash - rest] = 0;
        snprintf(file, sizeof file, "%s", slash + 1);
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    const char *type = NULL;
    kiln_status st = id[0] && file[0] ? kiln_engine_read_output(r->srv->engine, id, file, &bytes, &len, &type)
                                      : kiln_fail(KILN_ERR_INVALID_ARG, "not an output name: outputs are "
                                                  "/v1/outputs/JOB_ID/N.png or N.json");
    if (st) return kiln_http_fail(c, r, st);
    return kiln_http_bytes(c, r, 200, type, bytes, len);
}
