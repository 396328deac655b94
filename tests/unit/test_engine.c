/*
 * test_engine.c — the engine in-process on stories260K: submit/wait/get/list,
 * determinism across thread counts, idempotency, priorities, the queue bound, cancel
 * (queued, and running within one token), the memory budget, and store recovery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/store.h"
#include "test.h"

static char g_models[1024];

static kiln_engine *open_engine(int max_queue, int max_running, int threads, int64_t budget, const char *data) {
    kiln_engine_options o = {.models_dir = g_models, .data_dir = data, .max_queue = max_queue,
                             .max_running = max_running, .n_threads = threads, .memory_budget = budget,
                             .keep_alive = 60};
    kiln_engine *e = NULL;
    CHECK_OK(kiln_engine_create(&o, &e));
    return e;
}

static kiln_status submit(kiln_engine *e, const char *json, const char *key, kiln_job_rec *j) {
    cJSON *req = cJSON_Parse(json);
    kiln_status st = kiln_engine_submit(e, req, key, j, NULL);
    cJSON_Delete(req);
    return st;
}

static const char *text_of(const kiln_job_rec *j) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j->result, "text");
    return cJSON_IsString(t) ? t->valuestring : "";
}

/* Submits and waits; the finished job goes to out. */
static void run(kiln_engine *e, const char *json, kiln_job_rec *out) {
    kiln_job_rec j = {0};
    CHECK_OK(submit(e, json, NULL, &j));
    CHECK_OK(kiln_engine_wait(e, j.id, 60, out));
    kiln_job_rec_clear(&j);
}

static void test_basics(void) {
    kiln_engine *e = open_engine(0, 1, 1, 0, NULL);
    if (!e) return;
    kiln_job_rec a = {0}, b = {0};
    run(e, "{\"model\": \"stories260K\", \"params\": {\"prompt\": \"Once upon a time\", \"max_tokens\": 30, "
           "\"temperature\": 0}}", &a);
    CHECK(a.state == KILN_JOB_COMPLETED && a.done == 30 && a.attempts == 1);
    CHECK_MSG(!strncmp(text_of(&a), ", there was a little girl named Lily", 36), "%s", text_of(&a));
    CHECK(a.created > 0 && a.started >= a.created && a.finished >= a.started);
    kiln_job_rec got = {0};
    CHECK_OK(kiln_engine_get(e, a.id, &got, NULL));
    CHECK(!strcmp(got.id, a.id) && got.state == KILN_JOB_COMPLETED);
    kiln_job_rec_clear(&got);
    CHECK(kiln_engine_get(e, "job_0000000000000000", &got, NULL) == KILN_ERR_NOT_FOUND);
    kiln_job_rec *v = NULL;
    size_t n = 0;
    CHECK_OK(kiln_engine_list(e, KILN_JOB_COMPLETED, 10, &v, &n));
    CHECK(n == 1 && !strcmp(v[0].id, a.id));
    kiln_job_recs_free(v, n);
    /* a seed gives the same text; the job records the seed it drew when none is given */
    run(e, "{\"model\": \"stories260K\", \"params\": {\"prompt\": \"Lily\", \"max_tokens\": 40, \"seed\": 5}}", &b);
    kiln_engine_free(e);
    e = open_engine(0, 1, 2, 0, NULL);
    kiln_job_rec c = {0};
    run(e, "{\"model\": \"stories260K\", \"params\": {\"prompt\": \"Lily\", \"max_tokens\": 40, \"seed\": 5}}", &c);
    CHECK_MSG(!strcmp(text_of(&b), text_of(&c)), "1 thread '%s' vs 2 threads '%s'", text_of(&b), text_of(&c));
    /* refusals */
    kiln_job_rec r = {0};
    CHECK(submit(e, "{\"model\": \"../stories260K\", \"params\": {\"prompt\": \"x\"}}", NULL, &r) ==
          KILN_ERR_INVALID_ARG);
    CHECK(submit(e, "{\"model\": \"nope\", \"params\": {\"prompt\": \"x\"}}", NULL, &r) == KILN_ERR_NOT_FOUND);
    CHECK(submit(e, "{\"kind\": \"image\", \"model\": \"stories260K\", \"params\": {\"prompt\": \"x\"}}", NULL,
                 &r) == KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "not an image model") != NULL);
    CHECK(submit(e, "{\"kind\": \"train\", \"model\": \"stories260K\"}", NULL, &r) == KILN_ERR_UNSUPPORTED);
    CHECK(submit(e, "{\"model\": \"stories260K\", \"params\": {\"prompt\": \"x\", \"steps\": 3}}", NULL, &r) ==
          KILN_ERR_INVALID_ARG);
    CHECK(submit(e, "{\"model\": \"stories260K\"}", NULL, &r) == KILN_ERR_INVALID_ARG);
    CHECK(submit(e, "{\"model\": \"stories260K\", \"program\": \"p\", \"params\": {\"prompt\": \"x\"}}", NULL,
                 &r) == KILN_ERR_INVALID_ARG);
    kiln_job_rec_clear(&a);
    kiln_job_rec_clear(&b);
    kiln_job_rec_clear(&c);
    kiln_engine_free(e);
}

static const char *LONG = "{\"model\": \"stories260K\", \"params\": {\"prompt\": \"Once\", \"max_tokens\": 400}}";

static void test_queue(void) {
    kiln_engine *e = open_engine(3, 1, 1, 0, NULL);
    if (!e) return;
    /* idempotency */
    kiln_job_rec a = {0}, b = {0};
    CHECK_OK(submit(e, LONG, "k1", &a));
    bool existing = false;
    cJSON *req = cJSON_Parse(LONG);
    CHECK_OK(kiln_engine_submit(e, req, "k1", &b, &existing));
    cJSON_Delete(req);
    CHECK(existing && !strcmp(a.id, b.id));
    kiln_job_rec_clear(&b);
    /* priorities: lo then hi queued behind a; hi runs first */
    kiln_job_rec lo = {0}, hi = {0};
    CHECK_OK(submit(e, "{\"model\": \"stories260K\", \"priority\": 0, \"params\": {\"prompt\": \"a\", "
                       "\"max_tokens\": 5}}", NULL, &lo));
    CHECK_OK(submit(e, "{\"model\": \"stories260K\", \"priority\": 5, \"params\": {\"prompt\": \"b\", "
                       "\"max_tokens\": 5}}", NULL, &hi));
    /* the queue holds 3 at most: fill it until refused */
    kiln_status st = KILN_OK;
    for (int i = 0; i < 10 && st == KILN_OK; i++) {
        kiln_job_rec x = {0};
        st = submit(e, LONG, NULL, &x);
        kiln_job_rec_clear(&x);
    }
    CHECK_MSG(st == KILN_ERR_BUSY, "%s", kiln_status_name(st));
    CHECK(strstr(kiln_last_error(), "queue is full") != NULL);
    kiln_job_rec lo_done = {0}, hi_done = {0};
    CHECK_OK(kiln_engine_wait(e, lo.id, 60, &lo_done));
    CHECK_OK(kiln_engine_wait(e, hi.id, 60, &hi_done));
    CHECK_MSG(hi_done.started <= lo_done.started, "priority 5 started %.6f, priority 0 %.6f", hi_done.started,
              lo_done.started);
    kiln_job_rec_clear(&a);
    kiln_job_rec_clear(&lo);
    kiln_job_rec_clear(&hi);
    kiln_job_rec_clear(&lo_done);
    kiln_job_rec_clear(&hi_done);
    kiln_engine_free(e);
}

static void test_cancel(void) {
    kiln_engine *e = open_engine(0, 1, 1, 0, NULL);
    if (!e) return;
    /* queued: cancelled at once */
    kiln_job_rec a = {0}, b = {0}, c = {0};
    CHECK_OK(submit(e, LONG, NULL, &a));
    CHECK_OK(submit(e, LONG, NULL, &b));
    CHECK_OK(kiln_engine_cancel(e, b.id, "test", &c));
    if (c.state == KILN_JOB_CANCELLED) CHECK(c.error && !strcmp(c.error, "test") && c.started == 0);
    kiln_job_rec_clear(&c);
    /* running: stops within one token of the request */
    bool caught = false;
    for (int tries = 0; tries < 20 && !caught; tries++) {
        kiln_job_rec j = {0}, k = {0};
        CHECK_OK(submit(e, LONG, NULL, &j));
        int seq = 0;
        bool final = false;
        char *name = NULL, *data = NULL;
        while (!final && kiln_engine_next_event(e, j.id, &seq, 10, &name, &data, &final) == KILN_OK && name) {
            bool delta = !strcmp(name, "delta");
            free(name);
            free(data);
            if (delta) break;
        }
        CHECK_OK(kiln_engine_cancel(e, j.id, "stop", &k));
        if (k.state == KILN_JOB_CANCELLED) {
            caught = true;
            const cJSON *after = cJSON_GetObjectItemCaseSensitive(k.result, "tokens_after_cancel");
            CHECK(cJSON_IsNumber(after) && after->valuedouble <= 1);
            CHECK(k.done < 400 && k.finished > 0);
        }
        kiln_job_rec_clear(&j);
        kiln_job_rec_clear(&k);
    }
    CHECK_MSG(caught, "never caught a job running");
    kiln_job_rec_clear(&a);
    kiln_job_rec_clear(&b);
    kiln_engine_free(e);
}

static void test_budget(void) {
    /* stories260K's weights are 1 MiB: a 512 KiB budget cannot hold it */
    kiln_engine *e = open_engine(0, 1, 1, 512 << 10, NULL);
    if (!e) return;
    kiln_job_rec j = {0};
    run(e, LONG, &j);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j.result, "status");
    CHECK(j.state == KILN_JOB_FAILED && cJSON_IsString(st) && !strcmp(st->valuestring, "ERR_CAPACITY"));
    CHECK_MSG(j.error && strstr(j.error, "memory budget"), "%s", j.error ? j.error : "(none)");
    kiln_job_rec_clear(&j);
    kiln_engine_free(e);
    /* 1.2 MiB holds the weights but not the KV cache for the full context */
    e = open_engine(0, 1, 1, 1200 << 10, NULL);
    run(e, LONG, &j);
    CHECK_MSG(j.state == KILN_JOB_FAILED && j.error && strstr(j.error, "KV cache"), "%s",
              j.error ? j.error : "(none)");
    kiln_job_rec_clear(&j);
    kiln_engine_free(e);
}

static int loaded_models(kiln_engine *e) {
    cJSON *a = kiln_engine_loaded_json(e);
    int n = cJSON_GetArraySize(a);
    cJSON_Delete(a);
    return n;
}

static void test_keep_alive(void) {
    kiln_engine_options o = {.models_dir = g_models, .max_running = 1, .n_threads = 1, .keep_alive = 0};
    kiln_engine *e = NULL;
    CHECK_OK(kiln_engine_create(&o, &e));
    if (!e) return;
    kiln_job_rec j = {0};
    run(e, "{\"model\": \"stories260K\", \"params\": {\"prompt\": \"a\", \"max_tokens\": 4}}", &j);
    CHECK(j.state == KILN_JOB_COMPLETED);
    CHECK_MSG(loaded_models(e) == 0, "keep_alive 0: still loaded");
    kiln_job_rec_clear(&j);
    kiln_engine_free(e);
    o.keep_alive = 1;
    CHECK_OK(kiln_engine_create(&o, &e));
    run(e, "{\"model\": \"stories260K\", \"params\": {\"prompt\": \"a\", \"max_tokens\": 4}}", &j);
    CHECK_MSG(loaded_models(e) == 1, "keep_alive 1: not kept loaded");
    usleep(2600000); /* the reaper looks every second */
    CHECK_MSG(loaded_models(e) == 0, "keep_alive 1: not unloaded after 2.6 s");
    kiln_job_rec_clear(&j);
    kiln_engine_free(e);
}

static void test_recovery(void) {
    char dir[1200], db[1300];
    snprintf(dir, sizeof dir, "%s/engine-%d", kiln_test_tmp(), (int)getpid());
    snprintf(db, sizeof db, "%s/jobs.db", dir);
    kiln_engine *e = open_engine(0, 1, 1, 0, dir);
    if (!e) return;
    kiln_job_rec done = {0};
    run(e, "{\"model\": \"stories260K\", \"params\": {\"prompt\": \"Lily\", \"max_tokens\": 20, \"seed\": 3}}", &done);
    kiln_engine_free(e);
    /* fake two crashes: jobs left 'running' with 1 and 3 attempts */
    kiln_store *s = NULL;
    CHECK_OK(kiln_store_open(db, 3, &s, NULL, NULL));
    kiln_job_rec r1 = {0}, r2 = {0};
    CHECK_OK(kiln_job_rec_copy(&r1, &done));
    CHECK_OK(kiln_job_rec_copy(&r2, &done));
    snprintf(r1.id, sizeof r1.id, "job_00000000000000a1");
    snprintf(r2.id, sizeof r2.id, "job_00000000000000a2");
    r1.state = r2.state = KILN_JOB_RUNNING;
    r1.attempts = 1;
    r2.attempts = 3;
    cJSON_Delete(r1.result);
    r1.result = NULL;
    CHECK_OK(kiln_store_insert(s, &r1));
    CHECK_OK(kiln_store_update(s, &r1));
    CHECK_OK(kiln_store_insert(s, &r2));
    CHECK_OK(kiln_store_update(s, &r2));
    kiln_store_close(s);
    e = open_engine(0, 1, 1, 0, dir);
    kiln_job_rec a = {0}, b = {0}, c = {0};
    CHECK_OK(kiln_engine_wait(e, r1.id, 60, &a));
    CHECK(a.state == KILN_JOB_COMPLETED && a.attempts == 2 && !strcmp(text_of(&a), text_of(&done)));
    CHECK_OK(kiln_engine_get(e, r2.id, &b, NULL));
    CHECK(b.state == KILN_JOB_FAILED && b.error && strstr(b.error, "not retried"));
    CHECK_OK(kiln_engine_get(e, done.id, &c, NULL));
    CHECK(c.state == KILN_JOB_COMPLETED && !strcmp(text_of(&c), text_of(&done)));
    kiln_engine_free(e);
    kiln_job_rec *recs[] = {&done, &r1, &r2, &a, &b, &c};
    for (size_t i = 0; i < 6; i++) kiln_job_rec_clear(recs[i]);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    snprintf(g_models, sizeof g_models, "%s/models", kiln_test_shared());
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/stories260K/stories260K.bin", g_models);
    kiln_test_require_file(probe);
    test_basics();
    test_queue();
    test_cancel();
    test_budget();
    test_keep_alive();
    test_recovery();
    TEST_MAIN_END();
}
