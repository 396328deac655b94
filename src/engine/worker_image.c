/*
 * worker_image.c — image jobs: Stable Diffusion txt2img on a cached kiln_sd, with a
 * progress event per denoising step, optional preview events, cancel between steps,
 * and the images stored durably before the job is reported completed.
 *
 * Outputs: with a data directory, image i of job J is DATA/outputs/J/i.png (with
 * AUTOMATIC1111's "parameters" text chunk) and DATA/outputs/J/i.json (the same as
 * JSON), each written atomically (temporary file, fsync, rename, fsync of the folder)
 * before the job's completion is committed: a crash loses no image of a completed
 * job, and a job interrupted by a crash runs again with the seed it recorded at
 * submit and writes the same files. Without a data directory (an in-memory engine)
 * nothing is written: the result carries each PNG as base64 ("b64_png"), held for as
 * long as the (in-memory) store keeps the job.
 *
 * A job's result: {"prompt": the text the model read (the template applied),
 * "images": [{"index", "seed", "width", "height", "file": "outputs/J/i.png",
 * "metadata_file": "outputs/J/i.json" (or "b64_png"), "parameters": the A1111 text,
 * "metadata": {...}}], "seconds": generation time}.
 */
#include <errno.h>
#include <fcntl.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/timer.h"
#include "engine/engine_internal.h"
#include "formats/png.h"

/* ---- outputs -------------------------------------------------------------------- */

static bool job_id_ok(const char *id) {
    if (!id || strncmp(id, "job_", 4) || strlen(id) != 20) return false;
    for (const char *c = id + 4; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return false;
    return true;
}

/* "i.png" or "i.json" for an image index 0..KILN_IMAGE_MAX_N-1 written without
 * leading zeros: the only names an output folder holds. */
static bool output_name_ok(const char *f, bool *png) {
    int i = 0, digits = 0;
    const char *c = f;
    for (; *c >= '0' && *c <= '9'; c++, digits++) i = i * 10 + (*c - '0');
    if (!digits || digits > 2 || (digits == 2 && f[0] == '0') || i >= KILN_IMAGE_MAX_N) return false;
    *png = !strcmp(c, ".png");
    return *png || !strcmp(c, ".json");
}

kiln_status kiln_engine_read_output(kiln_engine *e, const char *job_id, const char *file, uint8_t **data,
                                    size_t *len, const char **content_type) {
    *data = NULL;
    *len = 0;
    bool png = false;
    if (!job_id_ok(job_id) || !file || !output_name_ok(file, &png))
        return kiln_fail(KILN_ERR_INVALID_ARG, "not an output name: outputs are /v1/outputs/JOB_ID/N.png or N.json");
    if (!e->opt.data_dir)
        return kiln_fail(KILN_ERR_NOT_FOUND, "this engine has no data directory: images are kept in the job result");
    char path[4200];
    snprintf(path, sizeof path, "%s/outputs/%s/%s", e->opt.data_dir, job_id, file);
    /* the name is checked above; O_NOFOLLOW refuses a link put in place of the file */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return kiln_fail(KILN_ERR_NOT_FOUND, "no output %s/%s", job_id, file);
    struct stat sb;
    kiln_status st = KILN_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (off_t)(256u << 20))
        st = kiln_fail(KILN_ERR_NOT_FOUND, "no output %s/%s", job_id, file);
    uint8_t *buf = st ? NULL : malloc(sb.st_size ? (size_t)sb.st_size : 1);
    if (!st && !buf) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    size_t got = 0;
    while (!st && got < (size_t)sb.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)sb.st_size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) st = kiln_fail(KILN_ERR_IO, "reading output %s/%s: %s", job_id, file, k ? strerror(errno) : "short");
        else got += (size_t)k;
    }
    close(fd);
    if (st) {
        free(buf);
        return st;
    }
    *data = buf;
    *len = got;
    if (content_type) *content_type = png ? "image/png" : "application/json";
    return KILN_OK;
}

static char *base64_of(const uint8_t *bytes, size_t n) {
    char *text = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
    if (!text) return NULL;
    base64_encode_raw(text, n, bytes);
    text[BASE64_ENCODE_RAW_LENGTH(n)] = 0;
    return text;
}

/* mkdir that accepts an existing folder, then an fsync of its parent so the new entry
 * is on disk before anything inside it is reported. */
static kiln_status make_dir(const char *path, const char *parent) {
    if (mkdir(path, 0700) != 0) {
        if (errno == EEXIST) return KILN_OK;
        return kiln_fail(KILN_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return KILN_OK;
}

static cJSON *seed_json(uint64_t s) {
    if (s <= (1ull << 53)) return cJSON_CreateNumber((double)s);
    char d[24];
    snprintf(d, sizeof d, "%llu", (unsigned long long)s);
    return cJSON_CreateString(d);
}

/* Stores the images (files, or base64 in memory) and builds the result. */
static kiln_status store_images(kiln_engine *e, const char *id, const kiln_sd_image *imgs, int n, const char *prompt,
                                double seconds, cJSON **out) {
    *out = NULL;
    const char *data = e->opt.data_dir;
    char dir[4200], parent[4100];
    kiln_status st = KILN_OK;
    if (data && strlen(data) > 4000) return kiln_fail(KILN_ERR_INVALID_ARG, "the data directory's path is too long");
    if (data) {
        snprintf(parent, sizeof parent, "%s/outputs", data);
        snprintf(dir, sizeof dir, "%s/%s", parent, id);
        if ((st = make_dir(parent, data)) || (st = make_dir(dir, parent))) return st;
    }
    cJSON *res = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(res, "images");
    if (!res || !arr || !cJSON_AddStringToObject(res, "prompt", prompt)) {
        cJSON_Delete(res);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n && !st; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddItemToObject(o, "seed", seed_json(imgs[i].seed));
        cJSON_AddNumberToObject(o, "width", imgs[i].width);
        cJSON_AddNumberToObject(o, "height", imgs[i].height);
        if (data) {
            char png[4300], json[4300], rel[64];
            snprintf(png, sizeof png, "%s/%d.png", dir, i);
            snprintf(json, sizeof json, "%s/%d.json", dir, i);
            if ((st = kiln_sd_image_write(&imgs[i], png, json))) break;
            snprintf(rel, sizeof rel, "outputs/%s/%d.png", id, i);
            cJSON_AddStringToObject(o, "file", rel);
            snprintf(rel, sizeof rel, "outputs/%s/%d.json", id, i);
            cJSON_AddStringToObject(o, "metadata_file", rel);
        } else {
            uint8_t *bytes = NULL;
            size_t len = 0;
            if ((st = kiln_sd_image_encode(&imgs[i], &bytes, &len))) break;
            char *b64 = base64_of(bytes, len);
            free(bytes);
            if (!b64) {
                st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
                break;
            }
            cJSON_AddStringToObject(o, "b64_png", b64);
            free(b64);
        }
        cJSON_AddStringToObject(o, "parameters", imgs[i].parameters ? imgs[i].parameters : "");
        cJSON *meta = imgs[i].json ? cJSON_Parse(imgs[i].json) : NULL;
        cJSON_AddItemToObject(o, "metadata", meta ? meta : cJSON_CreateObject());
    }
    cJSON_AddNumberToObject(res, "seconds", seconds);
    if (st) {
        cJSON_Delete(res);
        return st;
    }
    *out = res;
    return KILN_OK;
}

/* ---- running ---------------------------------------------------------------------- */

typedef struct {
    kiln_engine *e;
    live_job *j;
} image_run;

/* A small PNG of the callback's RGB preview, as base64; NULL if it cannot be made. */
static char *preview_b64(const kiln_sd_progress *pr) {
    uint8_t *png = NULL;
    size_t len = 0;
    if (kiln_png_encode(pr->preview, pr->preview_w, pr->preview_h, 3, NULL, 0, &png, &len)) return NULL;
    char *b64 = base64_of(png, len);
    free(png);
    return b64;
}

static bool on_step(const kiln_sd_progress *pr, void *user) {
    image_run *r = user;
    kiln_engine *e = r->e;
    live_job *j = r->j;
    char *b64 = pr->preview ? preview_b64(pr) : NULL; /* encoded before taking the lock */
    pthread_mutex_lock(&e->mu);
    const double now = kiln_time_now();
    if (j->gen_start <= 0) j->gen_start = now - pr->elapsed;
    j->rec.done = pr->step;
    j->rec.total = pr->steps;
    j->eta = pr->eta;
    j->eta_at = now;
    j->last_progress = now;
    cJSON *d = kiln_engine_progress_json(j);
    if (d) {
        cJSON_AddNumberToObject(d, "step", pr->step);
        cJSON_AddNumberToObject(d, "steps", pr->steps);
        cJSON_AddNumberToObject(d, "elapsed_seconds", pr->elapsed);
        kiln_engine_push_event(e, j, "progress", d);
        cJSON_Delete(d);
    }
    if (b64 && (d = cJSON_CreateObject())) {
        cJSON_AddStringToObject(d, "id", j->rec.id);
        cJSON_AddNumberToObject(d, "step", pr->step);
        cJSON_AddNumberToObject(d, "steps", pr->steps);
        cJSON_AddNumberToObject(d, "width", pr->preview_w);
        cJSON_AddNumberToObject(d, "height", pr->preview_h);
        cJSON_AddStringToObject(d, "b64_png", b64);
        kiln_engine_push_event(e, j, "preview", d);
        cJSON_Delete(d);
    }
    const bool go_on = !j->cancel && !j->interrupt;
    pthread_mutex_unlock(&e->mu);
    free(b64);
    return go_on;
}

void kiln_engine_run_image(kiln_engine *e, live_job *j) {
    image_run r = {e, j};
    kiln_params p;
    kiln_params_default(&p, KILN_JOB_IMAGE);
    kiln_model_entry me = {0};
    kiln_model_spec spec;
    kiln_sd *sd = NULL;
    kiln_sd_image *imgs = NULL;
    char *prompt = NULL;
    cJSON *result = NULL;
    bool loaded = false;
    double load_s = 0, t0 = 0;

    /* j->rec.params and model are not changed while the job runs: read them unlocked. */
    kiln_status st = kiln_params_parse(&p, KILN_JOB_IMAGE, j->rec.params, "job params", NULL, NULL);
    if (!st) st = kiln_engine_apply_template(p.template_, p.prompt ? p.prompt : "", &prompt);
    if (!st) st = kiln_engine_model_spec(e, j->rec.model, &me, &spec);
    if (!st) st = kiln_cache_acquire_sd(e->cache, &spec, &sd, &loaded, &load_s);
    if (!st && loaded) {
        pthread_mutex_lock(&e->mu);
        e->model_loads++;
        e->load_seconds_total += load_s;
        pthread_mutex_unlock(&e->mu);
    }
    kiln_sd_params sp = {.prompt = prompt, .negative_prompt = p.negative_prompt, .width = p.width,
                         .height = p.height, .steps = p.steps, .cfg_scale = p.guidance, .sampler = p.scheduler,
                         .seed = p.seed, .rng = p.rng, .clip_skip = p.clip_skip, .batch = p.n,
                         .preview_every = p.preview_every, .progress = on_step, .user = &r};
    if (!st) {
        /* what the generation needs on top of the model counts against the budget while
         * it runs (0: the parameters do not fit this model; kiln_sd_generate says why) */
        const size_t need = kiln_sd_memory_needed(sd, &sp);
        if (need && (st = kiln_cache_reserve(e->cache, sd, (int64_t)need))) {
            char size[32] = "the model's size";
            if (p.width && p.height) snprintf(size, sizeof size, "%dx%d", p.width, p.height);
            st = kiln_fail_prefix(st, "%d image(s) of %s on '%s'", p.n, size, j->rec.model);
        }
    }
    if (!st && !(imgs = calloc((size_t)p.n, sizeof *imgs))) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!st) {
        t0 = kiln_time_now();
        st = kiln_sd_generate(sd, &sp, imgs);
    }
    /* written before the completion is committed below */
    if (!st) st = store_images(e, j->rec.id, imgs, p.n, prompt, kiln_time_now() - t0, &result);
    char *err = st ? kiln_strdup(kiln_last_error()) : NULL;
    kiln_cache_release_sd(e->cache, sd);

    pthread_mutex_lock(&e->mu);
    cJSON_Delete(j->rec.result);
    j->rec.result = NULL;
    j->eta_at = 0;
    if (j->interrupt && !j->cancel && st) {
        /* Shutting down mid-run: back to the queue, not counted as an attempt. */
        j->rec.state = KILN_JOB_QUEUED;
        j->rec.attempts--;
        j->rec.done = 0;
        j->rec.started = 0;
        j->gen_start = 0;
        kiln_store_update(e->store, &j->rec);
        e->n_queued++;
        cJSON_Delete(result);
        pthread_cond_broadcast(&e->event_cv);
    } else {
        j->rec.finished = kiln_time_unix();
        /* a cancel that came after the last step finds the images made and stored: the
         * job completes */
        if (j->cancel && st == KILN_ERR_CANCELLED) {
            j->rec.state = KILN_JOB_CANCELLED;
            j->rec.error = kiln_strdup(j->cancel_reason ? j->cancel_reason : "cancelled");
            if ((j->rec.result = cJSON_CreateObject())) {
                cJSON_AddNumberToObject(j->rec.result, "steps_done", (double)j->rec.done);
                /* how far it went after the cancel arrived: 0 or 1 step */
                cJSON_AddNumberToObject(j->rec.result, "steps_after_cancel", (double)(j->rec.done - j->done_at_cancel));
            }
        } else if (st) {
            j->rec.state = KILN_JOB_FAILED;
            j->rec.error = err;
            err = NULL;
            if ((j->rec.result = cJSON_CreateObject()))
                cJSON_AddStringToObject(j->rec.result, "status", kiln_status_name(st));
        } else {
            j->rec.state = KILN_JOB_COMPLETED;
            j->rec.result = result;
        }
        kiln_engine_finish(e, j);
    }
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; imgs && i < p.n; i++) kiln_sd_image_clear(&imgs[i]);
    free(imgs);
    free(err);
    free(prompt);
    kiln_model_entry_clear(&me);
    kiln_params_clear(&p);
}
