/*
 * test_engine_image.c — image jobs in-process on a random-weight Stable Diffusion
 * model (sd-tiny, written into a temporary models folder): parameter validation,
 * the model kind checks, a job's images stored under DATA/outputs before it completes
 * (PNG with the parameters chunk, JSON sidecar, seeds s and s + i), determinism, a
 * program's template, progress and preview events, cancel between steps, the memory
 * budget, the in-memory engine, and a job interrupted by a crash run again to the
 * same image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "formats/png.h"
#include "test.h"

static char g_root[1024], g_models[1100];

static kiln_engine *open_engine(const char *data, const char *config, int64_t budget) {
    kiln_engine_options o = {.models_dir = g_models, .data_dir = data, .config_path = config, .max_running = 1,
                             .n_threads = 1, .memory_budget = budget, .keep_alive = 60};
    kiln_engine *e = NULL;
    CHECK_OK(kiln_engine_create(&o, &e));
    return e;
}

static kiln_status submit(kiln_engine *e, const char *json, kiln_job_rec *j) {
    cJSON *req = cJSON_Parse(json);
    CHECK_MSG(req != NULL, "bad test JSON: %s", json);
    kiln_status st = kiln_engine_submit(e, req, NULL, j, NULL);
    cJSON_Delete(req);
    return st;
}

static void run(kiln_engine *e, const char *json, kiln_job_rec *out) {
    kiln_job_rec j = {0};
    CHECK_OK(submit(e, json, &j));
    CHECK_OK(kiln_engine_wait(e, j.id, 120, out));
    kiln_job_rec_clear(&j);
}

static const cJSON *image_of(const kiln_job_rec *j, int i) {
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j->result, "images"), i);
}

static double num(const cJSON *o, const char *key) {
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* ---- parameters ------------------------------------------------------------------ */

static kiln_status parse(const char *json, kiln_params *p) {
    kiln_param_limits lim = {.max_tokens = 100, .max_prompt = 64};
    kiln_params_default(p, KILN_JOB_IMAGE);
    cJSON *o = cJSON_Parse(json);
    kiln_status st = kiln_params_parse(p, KILN_JOB_IMAGE, o, "params", &lim, NULL);
    cJSON_Delete(o);
    return st;
}

static void refused(const char *json, const char *needle) {
    kiln_params p;
    kiln_status st = parse(json, &p);
    CHECK_MSG(st == KILN_ERR_INVALID_ARG, "accepted: %s", json);
    CHECK_MSG(strstr(kiln_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", json, kiln_last_error(),
              needle);
    kiln_params_clear(&p);
}

static void test_params(void) {
    kiln_params p;
    CHECK_OK(parse("{\"prompt\": \"a cat\", \"negative_prompt\": \"blur\", \"size\": \"128x64\", \"steps\": 9, "
                   "\"cfg_scale\": 5.5, \"sampler\": \"dpmpp_2m\", \"seed\": \"18446744073709551615\", \"rng\": "
                   "\"fast\", \"clip_skip\": 2, \"n\": 3, \"preview_every\": 2}", &p));
    CHECK(p.width == 128 && p.height == 64 && p.steps == 9 && p.guidance == 5.5f && p.n == 3 && p.clip_skip == 2);
    CHECK(p.seed == UINT64_MAX && !strcmp(p.scheduler, "dpmpp_2m") && !strcmp(p.rng, "fast") && p.preview_every == 2);
    /* written back: every key under its main name, the 64-bit seed as digits */
    cJSON *j = kiln_params_to_json(&p, KILN_JOB_IMAGE);
    CHECK(j && !strcmp(str(j, "seed"), "18446744073709551615") && num(j, "width") == 128 && num(j, "height") == 64);
    CHECK(j && !cJSON_GetObjectItemCaseSensitive(j, "size") && !cJSON_GetObjectItemCaseSensitive(j, "guidance") &&
          num(j, "cfg_scale") == 5.5 && !strcmp(str(j, "sampler"), "dpmpp_2m"));
    kiln_params q;
    kiln_params_default(&q, KILN_JOB_IMAGE);
    CHECK_OK(kiln_params_parse(&q, KILN_JOB_IMAGE, j, "job params", NULL, NULL));
    CHECK(q.seed == p.seed && q.width == 128 && q.n == 3 && q.guidance == 5.5f);
    kiln_params_clear(&q);
    cJSON_Delete(j);
    kiln_params_clear(&p);
    /* the aliases; the model's own size when none is given (not written back) */
    CHECK_OK(parse("{\"prompt\": \"x\", \"guidance\": 3, \"scheduler\": \"euler\", \"seed\": 12}", &p));
    CHECK(p.guidance == 3.0f && !strcmp(p.scheduler, "euler") && p.seed == 12 && p.width == 0 && p.n == 1);
    j = kiln_params_to_json(&p, KILN_JOB_IMAGE);
    CHECK(j && !cJSON_GetObjectItemCaseSensitive(j, "width") && !cJSON_GetObjectItemCaseSensitive(j, "clip_skip") &&
          num(j, "seed") == 12 && num(j, "steps") == 20);
    cJSON_Delete(j);
    kiln_params_clear(&p);

    refused("{\"size\": \"65x64\"}", "multiple of 8");
    refused("{\"size\": \"4096x512\"}", "2048");
    refused("{\"size\": \"512\"}", "WIDTHxHEIGHT");
    refused("{\"size\": \"512x512 \"}", "WIDTHxHEIGHT");
    refused("{\"size\": 512}", "WIDTHxHEIGHT");
    refused("{\"width\": 100}", "multiple of 8");
    refused("{\"height\": 32}", "'height'");
    refused("{\"steps\": 0}", "'steps' is 0");
    refused("{\"steps\": 151}", "150");
    refused("{\"sampler\": \"plms\"}", "unknown sampler 'plms'");
    refused("{\"rng\": \"gpu\"}", "'rng'");
    refused("{\"n\": 17}", "'n' is 17");
    refused("{\"n\": 0}", "'n'");
    refused("{\"cfg_scale\": -1}", "'cfg_scale'");
    refused("{\"seed\": -3}", "'seed'");
    refused("{\"seed\": \"12a\"}", "'seed'");
    refused("{\"seed\": \"18446744073709551616\"}", "'seed'");
    refused("{\"seed\": 1.5}", "'seed'");
    refused("{\"clip_skip\": 0}", "'clip_skip'");
    refused("{\"preview_every\": -1}", "'preview_every'");
    refused("{\"prompt\": \"" "0123456789012345678901234567890123456789012345678901234567890123456789" "\"}",
            "the prompt has 70 bytes");
    refused("{\"negative_prompt\": \"" "0123456789012345678901234567890123456789012345678901234567890123456789" "\"}",
            "negative prompt");
    refused("{\"cfg_scale\": 5, \"guidance\": 6}", "'cfg_scale' and 'guidance'");
    refused("{\"size\": \"64x64\", \"height\": 64}", "'size' and 'height'");
    refused("{\"max_tokens\": 5}", "'max_tokens' does not apply to image jobs");
    refused("{\"messages\": []}", "does not apply to image");
    refused("{\"template\": \"no placeholder\"}", "{prompt}");
    /* text jobs take no image keys */
    kiln_params_default(&p, KILN_JOB_TEXT);
    cJSON *o = cJSON_Parse("{\"prompt\": \"x\", \"n\": 2}");
    CHECK(kiln_params_parse(&p, KILN_JOB_TEXT, o, "params", NULL, NULL) == KILN_ERR_INVALID_ARG);
    cJSON_Delete(o);
    kiln_params_clear(&p);
}

/* ---- jobs ----------------------------------------------------------------------- */

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The PNG of image i of job j, read back: its size and "parameters" text. */
static void check_png(const char *data, const kiln_job_rec *j, int i, int w, int h) {
    char path[2400];
    snprintf(path, sizeof path, "%s/outputs/%s/%d.png", data, j->id, i);
    kiln_png_image img = {0};
    CHECK_OK(kiln_png_read(path, 3, &img));
    CHECK_MSG(img.w == w && img.h == h, "%s: %dx%d", path, img.w, img.h);
    const char *params = NULL;
    for (int k = 0; k < img.n_texts; k++)
        if (!strcmp(img.texts[k].key, "parameters")) params = img.texts[k].value;
    CHECK_MSG(params && !strcmp(params, str(image_of(j, i), "parameters")), "%s: parameters '%s'", path,
              params ? params : "(none)");
    kiln_png_image_free(&img);
    snprintf(path, sizeof path, "%s/outputs/%s/%d.json", data, j->id, i);
    CHECK_MSG(file_exists(path), "%s missing", path);
}

static char *read_all(const char *path, size_t *len) {
    char *t = NULL;
    if (kiln_read_file(path, 1 << 26, &t, len)) return NULL;
    return t;
}

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void test_jobs(void) {
    char data[1200], config[1200];
    snprintf(data, sizeof data, "%s/data", g_root);
    snprintf(config, sizeof config, "%s/kiln.json", g_root);
    FILE *f = fopen(config, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"programs\": {\"detailed\": {\"kind\": \"image\", \"model\": \"sd\", \"template\": \"{prompt}, highly "
          "detailed\", \"steps\": 3, \"guidance\": 4, \"size\": \"64x128\", \"sampler\": \"euler\", "
          "\"negative_prompt\": \"blurry\"}}}", f);
    fclose(f);
    kiln_engine *e = open_engine(data, config, 0);
    if (!e) return;
    kiln_job_rec a = {0}, b = {0}, r = {0};
    run(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"a (cat:1.2)\", \"steps\": 4, "
           "\"n\": 2, \"seed\": 41, \"sampler\": \"dpmpp_2m\", \"size\": \"64x64\"}}", &a);
    CHECK_MSG(a.state == KILN_JOB_COMPLETED, "%s", a.error ? a.error : kiln_job_state_name(a.state));
    CHECK(a.done == 4 && a.total == 4 && a.attempts == 1);
    const cJSON *i0 = image_of(&a, 0), *i1 = image_of(&a, 1);
    CHECK(num(i0, "seed") == 41 && num(i1, "seed") == 42 && num(i0, "index") == 0 && num(i1, "index") == 1);
    CHECK(num(i0, "width") == 64 && num(i0, "height") == 64);
    char want[200];
    snprintf(want, sizeof want, "outputs/%s/1.png", a.id);
    CHECK_MSG(!strcmp(str(i1, "file"), want), "%s", str(i1, "file"));
    CHECK(strstr(str(i0, "parameters"), "Seed: 41") && strstr(str(i1, "parameters"), "Sampler: DPM++ 2M"));
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(i1, "metadata");
    CHECK(!strcmp(str(meta, "seed"), "42") && !strcmp(str(meta, "sampler"), "dpmpp_2m"));
    check_png(data, &a, 0, 64, 64);
    check_png(data, &a, 1, 64, 64);
    /* the same seed: the same image, byte for byte; image 1 of a batch is its seed alone */
    run(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"a (cat:1.2)\", \"steps\": 4, "
           "\"seed\": 42, \"sampler\": \"dpmpp_2m\", \"width\": 64, \"height\": 64}}", &b);
    char pa[2400], pb[2400];
    snprintf(pa, sizeof pa, "%s/outputs/%s/1.png", data, a.id);
    snprintf(pb, sizeof pb, "%s/outputs/%s/0.png", data, b.id);
    CHECK_MSG(b.state == KILN_JOB_COMPLETED && same_file(pa, pb), "seed 42 alone differs from image 1 of the batch");
    /* no seed: one is drawn at submit and recorded */
    kiln_job_rec c = {0};
    run(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"x\", \"steps\": 1}}", &c);
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(c.params, "seed");
    CHECK(cJSON_IsNumber(seed) && seed->valuedouble < 4294967296.0 && num(image_of(&c, 0), "seed") == seed->valuedouble);
    CHECK(num(image_of(&c, 0), "width") == 64); /* the model's native size */
    kiln_job_rec_clear(&c);
    /* a program: its template and defaults */
    run(e, "{\"program\": \"detailed\", \"params\": {\"prompt\": \"a fox\", \"seed\": 3}}", &c);
    CHECK_MSG(c.state == KILN_JOB_COMPLETED, "%s", c.error ? c.error : "");
    CHECK(!strcmp(str(c.result, "prompt"), "a fox, highly detailed") && c.total == 3);
    CHECK(num(image_of(&c, 0), "width") == 64 && num(image_of(&c, 0), "height") == 128);
    CHECK(strstr(str(image_of(&c, 0), "parameters"), "a fox, highly detailed\nNegative prompt: blurry\nSteps: 3, "
                                                     "Sampler: Euler, CFG scale: 4") != NULL);
    kiln_job_rec_clear(&c);
    /* refusals at submit */
    CHECK(submit(e, "{\"kind\": \"image\", \"model\": \"tiny\", \"params\": {\"prompt\": \"x\"}}", &r) ==
          KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "not an image model") != NULL);
    CHECK(submit(e, "{\"model\": \"sd\", \"params\": {\"prompt\": \"x\"}}", &r) == KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "is an image model") != NULL);
    CHECK(submit(e, "{\"kind\": \"embedding\", \"model\": \"sd\", \"params\": {\"input\": \"x\"}}", &r) ==
          KILN_ERR_INVALID_ARG);
    CHECK(submit(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"steps\": 2}}", &r) ==
          KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "needs 'prompt'") != NULL);
    CHECK(submit(e, "{\"kind\": \"text\", \"program\": \"detailed\", \"params\": {\"prompt\": \"x\"}}", &r) ==
          KILN_ERR_INVALID_ARG);
    /* parameters that only the model can refuse fail the job with the reason */
    run(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"x\", \"size\": \"72x64\"}}", &c);
    CHECK(c.state == KILN_JOB_FAILED && c.error && strstr(c.error, "multiples of 16"));
    CHECK(!strcmp(str(c.result, "status"), "ERR_INVALID_ARG"));
    kiln_job_rec_clear(&c);
    /* the outputs reader: names only */
    uint8_t *bytes = NULL;
    size_t len = 0;
    const char *type = NULL;
    CHECK_OK(kiln_engine_read_output(e, a.id, "1.png", &bytes, &len, &type));
    CHECK(bytes && len > 8 && !memcmp(bytes, "\x89PNG", 4) && !strcmp(type, "image/png"));
    free(bytes);
    CHECK_OK(kiln_engine_read_output(e, a.id, "0.json", &bytes, &len, &type));
    CHECK(bytes && !strcmp(type, "application/json"));
    free(bytes);
    const char *bad[] = {"../0.png", "0.png/", "00.png", "16.png", "0.txt", "", "0.png\n", "..", "1.pngx"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        CHECK_MSG(kiln_engine_read_output(e, a.id, bad[k], &bytes, &len, NULL) == KILN_ERR_INVALID_ARG, "'%s'",
                  bad[k]);
    CHECK(kiln_engine_read_output(e, "job_../../../etc", "0.png", &bytes, &len, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_engine_read_output(e, "..", "jobs.db", &bytes, &len, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_engine_read_output(e, a.id, "5.png", &bytes, &len, NULL) == KILN_ERR_NOT_FOUND);
    kiln_job_rec_clear(&a);
    kiln_job_rec_clear(&b);
    kiln_engine_free(e);
}

/* Reads events until the final one; counts progress (checking step/steps/eta) and
 * previews. */
static void test_events(void) {
    kiln_engine *e = open_engine(NULL, NULL, 0);
    if (!e) return;
    kiln_job_rec j = {0};
    CHECK_OK(submit(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"x\", \"steps\": 5, "
                       "\"preview_every\": 2, \"seed\": 1}}", &j));
    int seq = 0, progress = 0, previews = 0, last_step = 0;
    bool final = false, ok = true;
    char *name = NULL, *data = NULL;
    while (!final && kiln_engine_next_event(e, j.id, &seq, 30, &name, &data, &final) == KILN_OK && name) {
        cJSON *d = cJSON_Parse(data);
        if (!strcmp(name, "progress")) {
            progress++;
            ok &= num(d, "step") == last_step + 1 && num(d, "steps") == 5 && num(d, "done") == num(d, "step") &&
                  num(d, "total") == 5 && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "eta_seconds"));
            last_step = (int)num(d, "step");
        } else if (!strcmp(name, "preview")) {
            previews++;
            /* a PNG of the latents' size (64 / 8) */
            const char *b64 = str(d, "b64_png");
            ok &= num(d, "width") == 8 && num(d, "height") == 8 && !strncmp(b64, "iVBORw0KGgo", 11);
        } else if (final) {
            ok &= !strcmp(name, "completed");
            /* an in-memory engine keeps the PNG in the result */
            const cJSON *img = cJSON_GetArrayItem(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "result"), "images"), 0);
            ok &= !strncmp(str(img, "b64_png"), "iVBORw0KGgo", 11) && !cJSON_GetObjectItemCaseSensitive(img, "file");
        }
        cJSON_Delete(d);
        free(name);
        free(data);
    }
    CHECK_MSG(final && ok && progress == 5 && previews == 3, "final %d ok %d progress %d previews %d", final, ok,
              progress, previews);
    uint8_t *bytes = NULL;
    size_t len = 0;
    CHECK(kiln_engine_read_output(e, j.id, "0.png", &bytes, &len, NULL) == KILN_ERR_NOT_FOUND);
    kiln_job_rec_clear(&j);
    kiln_engine_free(e);
}

static const char *SLOW = "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"x\", \"steps\": 150, "
                          "\"size\": \"256x256\", \"seed\": 9}}";

static void test_cancel(void) {
    char data[1200];
    snprintf(data, sizeof data, "%s/data-cancel", g_root);
    kiln_engine *e = open_engine(data, NULL, 0);
    if (!e) return;
    kiln_job_rec j = {0}, k = {0};
    CHECK_OK(submit(e, SLOW, &j));
    int seq = 0, steps_seen = 0;
    bool final = false;
    char *name = NULL, *data_ev = NULL;
    while (!final && kiln_engine_next_event(e, j.id, &seq, 60, &name, &data_ev, &final) == KILN_OK && name) {
        bool progress = !strcmp(name, "progress");
        free(name);
        free(data_ev);
        if (progress && ++steps_seen == 2) break;
    }
    CHECK_OK(kiln_engine_cancel(e, j.id, "stop", &k));
    CHECK_MSG(k.state == KILN_JOB_CANCELLED, "%s", kiln_job_state_name(k.state));
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(k.result, "steps_after_cancel");
    CHECK(cJSON_IsNumber(after) && after->valuedouble <= 1 && k.done >= 2 && k.done < 150);
    CHECK(k.error && !strcmp(k.error, "stop"));
    char dir[1400];
    snprintf(dir, sizeof dir, "%s/outputs/%s/0.png", data, j.id);
    CHECK(!file_exists(dir));
    kiln_job_rec_clear(&j);
    kiln_job_rec_clear(&k);
    /* queued behind nothing: runs; the next job of the queue still runs after a cancel */
    kiln_job_rec n = {0};
    run(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"x\", \"steps\": 2}}", &n);
    CHECK(n.state == KILN_JOB_COMPLETED);
    kiln_job_rec_clear(&n);
    kiln_engine_free(e);
}

static void test_budget(void) {
    /* the weights (under 1 MiB) fit 4 MiB; a generation's working memory does not */
    kiln_engine *e = open_engine(NULL, NULL, 4 << 20);
    if (!e) return;
    kiln_job_rec j = {0};
    run(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"x\", \"steps\": 2}}", &j);
    CHECK_MSG(j.state == KILN_JOB_FAILED && j.error && strstr(j.error, "while it runs") &&
                  strstr(j.error, "memory budget"), "%s", j.error ? j.error : kiln_job_state_name(j.state));
    CHECK(!strcmp(str(j.result, "status"), "ERR_CAPACITY"));
    kiln_job_rec_clear(&j);
    kiln_engine_free(e);
    /* 200 KiB does not even hold the weights */
    e = open_engine(NULL, NULL, 200 << 10);
    run(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"x\", \"steps\": 2}}", &j);
    CHECK_MSG(j.state == KILN_JOB_FAILED && j.error && strstr(j.error, "weights"), "%s", j.error ? j.error : "");
    kiln_job_rec_clear(&j);
    kiln_engine_free(e);
}

static void test_recovery(void) {
    char data[1200], db[1300];
    snprintf(data, sizeof data, "%s/data-recovery", g_root);
    snprintf(db, sizeof db, "%s/jobs.db", data);
    kiln_engine *e = open_engine(data, NULL, 0);
    if (!e) return;
    kiln_job_rec done = {0};
    run(e, "{\"kind\": \"image\", \"model\": \"sd\", \"params\": {\"prompt\": \"a boat\", \"steps\": 3, \"n\": 2}}",
        &done);
    CHECK(done.state == KILN_JOB_COMPLETED);
    kiln_engine_free(e);
    /* fake a crash in mid-run: the same job (params and seed) left 'running', no result, no files */
    kiln_store *s = NULL;
    CHECK_OK(kiln_store_open(db, 3, &s, NULL, NULL));
    kiln_job_rec r1 = {0};
    CHECK_OK(kiln_job_rec_copy(&r1, &done));
    snprintf(r1.id, sizeof r1.id, "job_00000000000000b1");
    r1.state = KILN_JOB_RUNNING;
    r1.attempts = 1;
    r1.done = 2;
    cJSON_Delete(r1.result);
    r1.result = NULL;
    CHECK_OK(kiln_store_insert(s, &r1));
    CHECK_OK(kiln_store_update(s, &r1));
    kiln_store_close(s);
    e = open_engine(data, NULL, 0);
    kiln_job_rec a = {0};
    CHECK_OK(kiln_engine_wait(e, r1.id, 60, &a));
    CHECK_MSG(a.state == KILN_JOB_COMPLETED && a.attempts == 2, "%s attempts %d", kiln_job_state_name(a.state),
              a.attempts);
    for (int i = 0; i < 2; i++) {
        char pa[1400], pb[1400];
        snprintf(pa, sizeof pa, "%s/outputs/%s/%d.png", data, done.id, i);
        snprintf(pb, sizeof pb, "%s/outputs/%s/%d.png", data, a.id, i);
        CHECK_MSG(same_file(pa, pb), "image %d after recovery differs from the uninterrupted run", i);
    }
    kiln_engine_free(e);
    kiln_job_rec_clear(&done);
    kiln_job_rec_clear(&r1);
    kiln_job_rec_clear(&a);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "%s/engine-image-%d", kiln_test_tmp(), (int)getpid());
    snprintf(g_models, sizeof g_models, "%s/models", g_root);
    char cmd[2400], path[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_root, g_models);
    CHECK(system(cmd) == 0);
    kiln_random_model_options ro = {.shape = "sd-tiny", .type = "f16", .seed = 1};
    snprintf(path, sizeof path, "%s/sd", g_models);
    CHECK_OK(kiln_model_random(path, &ro));
    ro = (kiln_random_model_options){.shape = "tiny", .type = "f32", .seed = 1};
    snprintf(path, sizeof path, "%s/tiny.gguf", g_models);
    CHECK_OK(kiln_model_random(path, &ro));
    test_params();
    test_jobs();
    test_events();
    test_cancel();
    test_budget();
    test_recovery();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    CHECK(system(cmd) == 0);
    TEST_MAIN_END();
}
