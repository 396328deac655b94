/*
 * test_metrics.c — the Prometheus registry: exact rendered text, escaping, number
 * formatting, argument checks, the label-set cap, exact totals under concurrent
 * updates, and `promtool check metrics` on the output when promtool is installed.
 */
#include <pthread.h>
#include <unistd.h>

#include "server/metrics.h"
#include "test.h"

#define L(...) ((const char *[]){__VA_ARGS__, NULL})

static void expect_render(kiln_metrics *m, const char *want) {
    kiln_buf b = {0};
    CHECK_OK(kiln_metrics_render(m, &b));
    CHECK_MSG(b.data && strcmp(b.data, want) == 0, "got:\n%s\nwant:\n%s", b.data ? b.data : "", want);
    kiln_buf_free(&b);
}

static void test_render(void) {
    kiln_metrics *m = NULL;
    CHECK_OK(kiln_metrics_create(0, &m));
    kiln_metric *req, *up, *lat, *temp;
    CHECK_OK(kiln_metrics_counter(m, "kiln_http_requests_total", "HTTP requests served.", L("method", "code"), &req));
    CHECK_OK(kiln_metrics_gauge(m, "kiln_models_loaded", "Models in memory.", NULL, &up));
    double bounds[] = {0.1, 0.5, 1};
    CHECK_OK(kiln_metrics_histogram(m, "kiln_request_seconds", "Request latency.", L("route"), bounds, 3, &lat));
    CHECK_OK(kiln_metrics_gauge(m, "kiln_temperature", "Odd values.", L("k"), &temp));

    /* before any update: unlabelled metrics show 0, labelled ones only their header */
    expect_render(m, "# HELP kiln_http_requests_total HTTP requests served.\n"
                     "# TYPE kiln_http_requests_total counter\n"
                     "# HELP kiln_models_loaded Models in memory.\n"
                     "# TYPE kiln_models_loaded gauge\n"
                     "kiln_models_loaded 0\n"
                     "# HELP kiln_request_seconds Request latency.\n"
                     "# TYPE kiln_request_seconds histogram\n"
                     "# HELP kiln_temperature Odd values.\n"
                     "# TYPE kiln_temperature gauge\n");

    CHECK_OK(kiln_metrics_inc(req, L("GET", "200")));
    CHECK_OK(kiln_metrics_inc(req, L("POST", "500")));
    CHECK_OK(kiln_metrics_add(req, L("GET", "200"), 2));
    CHECK_OK(kiln_metrics_set(up, NULL, 3));
    CHECK_OK(kiln_metrics_add(up, NULL, -1));
    CHECK_OK(kiln_metrics_inc(up, NULL));
    CHECK_OK(kiln_metrics_observe(lat, L("/v1/chat"), 0.05));
    CHECK_OK(kiln_metrics_observe(lat, L("/v1/chat"), 0.1)); /* on a bound: le is inclusive */
    CHECK_OK(kiln_metrics_observe(lat, L("/v1/chat"), 0.7));
    CHECK_OK(kiln_metrics_observe(lat, L("/v1/chat"), 2.5));
    CHECK_OK(kiln_metrics_observe(lat, L("/metrics"), 0.25));
    CHECK_OK(kiln_metrics_set(temp, L("nan"), NAN));
    CHECK_OK(kiln_metrics_set(temp, L("inf"), INFINITY));
    CHECK_OK(kiln_metrics_set(temp, L("-inf"), -INFINITY));
    CHECK_OK(kiln_metrics_set(temp, L("tenth"), 0.1));
    CHECK_OK(kiln_metrics_set(temp, L("third"), 1.0 / 3));
    CHECK_OK(kiln_metrics_set(temp, L("big"), 1e21));
    CHECK_OK(kiln_metrics_set(temp, L("small"), -2.5e-7));
    CHECK_OK(kiln_metrics_set(temp, L("int"), 123456789012.0));

    expect_render(m, "# HELP kiln_http_requests_total HTTP requests served.\n"
                     "# TYPE kiln_http_requests_total counter\n"
                     "kiln_http_requests_total{method=\"GET\",code=\"200\"} 3\n"
                     "kiln_http_requests_total{method=\"POST\",code=\"500\"} 1\n"
                     "# HELP kiln_models_loaded Models in memory.\n"
                     "# TYPE kiln_models_loaded gauge\n"
                     "kiln_models_loaded 3\n"
                     "# HELP kiln_request_seconds Request latency.\n"
                     "# TYPE kiln_request_seconds histogram\n"
                     "kiln_request_seconds_bucket{route=\"/v1/chat\",le=\"0.1\"} 2\n"
                     "kiln_request_seconds_bucket{route=\"/v1/chat\",le=\"0.5\"} 2\n"
                     "kiln_request_seconds_bucket{route=\"/v1/chat\",le=\"1\"} 3\n"
                     "kiln_request_seconds_bucket{route=\"/v1/chat\",le=\"+Inf\"} 4\n"
                     "kiln_request_seconds_sum{route=\"/v1/chat\"} 3.35\n"
                     "kiln_request_seconds_count{route=\"/v1/chat\"} 4\n"
                     "kiln_request_seconds_bucket{route=\"/metrics\",le=\"0.1\"} 0\n"
                     "kiln_request_seconds_bucket{route=\"/metrics\",le=\"0.5\"} 1\n"
                     "kiln_request_seconds_bucket{route=\"/metrics\",le=\"1\"} 1\n"
                     "kiln_request_seconds_bucket{route=\"/metrics\",le=\"+Inf\"} 1\n"
                     "kiln_request_seconds_sum{route=\"/metrics\"} 0.25\n"
                     "kiln_request_seconds_count{route=\"/metrics\"} 1\n"
                     "# HELP kiln_temperature Odd values.\n"
                     "# TYPE kiln_temperature gauge\n"
                     "kiln_temperature{k=\"nan\"} NaN\n"
                     "kiln_temperature{k=\"inf\"} +Inf\n"
                     "kiln_temperature{k=\"-inf\"} -Inf\n"
                     "kiln_temperature{k=\"tenth\"} 0.1\n"
                     "kiln_temperature{k=\"third\"} 0.33333333333333331\n"
                     "kiln_temperature{k=\"big\"} 1e+21\n"
                     "kiln_temperature{k=\"small\"} -2.5e-07\n"
                     "kiln_temperature{k=\"int\"} 123456789012\n");

    /* render appends */
    kiln_buf b = {0};
    kiln_buf_append_str(&b, "prefix\n");
    CHECK_OK(kiln_metrics_render(m, &b));
    CHECK(strncmp(b.data, "prefix\n# HELP kiln_http_requests_total", 38) == 0);
    kiln_buf_free(&b);
    kiln_metrics_free(m);
}

static void test_escaping(void) {
    kiln_metrics *m = NULL;
    CHECK_OK(kiln_metrics_create(0, &m));
    kiln_metric *c;
    CHECK_OK(kiln_metrics_counter(m, "esc_total", "Help with \\ backslash,\nnewline and \"quotes\".", L("v"), &c));
    CHECK_OK(kiln_metrics_inc(c, L("a\\b\"c\nd")));
    CHECK_OK(kiln_metrics_inc(c, L("")));
    CHECK_OK(kiln_metrics_inc(c, L("caf\xc3\xa9 \xe2\x82\xac}{,=")));
    expect_render(m, "# HELP esc_total Help with \\\\ backslash,\\nnewline and \"quotes\".\n"
                     "# TYPE esc_total counter\n"
                     "esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"
                     "esc_total{v=\"\"} 1\n"
                     "esc_total{v=\"caf\xc3\xa9 \xe2\x82\xac}{,=\"} 1\n");
    kiln_metrics_free(m);
}

static void test_errors(void) {
    kiln_metrics *m = NULL;
    CHECK_OK(kiln_metrics_create(3, &m));
    kiln_metric *c = NULL, *g = NULL, *h = NULL, *x = NULL;
    CHECK_OK(kiln_metrics_counter(m, "c_total", NULL, L("a", "b"), &c));
    CHECK_OK(kiln_metrics_gauge(m, "ns:g", "", (const char *[]){NULL}, &g));
    double bounds[] = {1, 2};
    CHECK_OK(kiln_metrics_histogram(m, "h", "h", NULL, bounds, 2, &h));

    /* registration */
    CHECK(kiln_metrics_counter(m, "c_total", "dup", NULL, &x) == KILN_ERR_INVALID_ARG && !x);
    CHECK(kiln_metrics_counter(m, "", "x", NULL, &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_counter(m, "9lives", "x", NULL, &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_counter(m, "has-dash", "x", NULL, &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_counter(m, "has space", "x", NULL, &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_counter(m, "ok_total", "x", L("a:b"), &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_counter(m, "ok_total", "x", L("__name"), &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_counter(m, "ok_total", "x", L("a", "a"), &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_counter(m, "ok_total", "x", L("1a"), &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_histogram(m, "h2", "x", L("le"), bounds, 2, &x) == KILN_ERR_INVALID_ARG);
    double bad1[] = {1, 1}, bad2[] = {2, 1}, bad3[] = {1, INFINITY}, bad4[] = {NAN};
    CHECK(kiln_metrics_histogram(m, "h2", "x", NULL, bad1, 2, &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_histogram(m, "h2", "x", NULL, bad2, 2, &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_histogram(m, "h2", "x", NULL, bad3, 2, &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_histogram(m, "h2", "x", NULL, bad4, 1, &x) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_histogram(m, "h2", "x", NULL, NULL, 1, &x) == KILN_ERR_INVALID_ARG);
    CHECK_OK(kiln_metrics_histogram(m, "h_only_inf", "x", NULL, NULL, 0, &x));
    CHECK_OK(kiln_metrics_observe(x, NULL, 5));

    /* updates */
    CHECK(kiln_metrics_inc(c, L("only one")) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_inc(c, L("1", "2", "3")) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_inc(c, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_add(c, L("1", "2"), -1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_add(c, L("1", "2"), NAN) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_set(c, L("1", "2"), 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_observe(c, L("1", "2"), 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_inc(h, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_set(h, NULL, 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_observe(g, NULL, 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_inc(c, L("bad \xff utf8", "x")) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_inc(c, L("surrogate \xed\xa0\x80", "x")) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_metrics_inc(c, L("overlong \xc0\xaf", "x")) == KILN_ERR_INVALID_ARG);
    char longv[KILN_METRICS_MAX_VALUE_LEN + 2];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    CHECK(kiln_metrics_inc(c, L(longv, "x")) == KILN_ERR_INVALID_ARG);
    longv[KILN_METRICS_MAX_VALUE_LEN] = 0;
    CHECK_OK(kiln_metrics_inc(c, L(longv, "x")));

    /* the label-set cap (3 here): existing sets keep working, new ones are refused */
    CHECK_OK(kiln_metrics_inc(c, L("a", "1")));
    CHECK_OK(kiln_metrics_inc(c, L("a", "2")));
    CHECK(kiln_metrics_inc(c, L("a", "3")) == KILN_ERR_NOMEM);
    CHECK(strstr(kiln_last_error(), "label sets") != NULL);
    CHECK_OK(kiln_metrics_inc(c, L("a", "1")));
    /* "a","b" + "c" and "a" + "b","c" are distinct sets (no ambiguity from joining) */
    kiln_metric *j;
    CHECK_OK(kiln_metrics_counter(m, "join_total", "x", L("p", "q"), &j));
    CHECK_OK(kiln_metrics_inc(j, L("ab", "c")));
    CHECK_OK(kiln_metrics_inc(j, L("a", "bc")));
    CHECK_OK(kiln_metrics_inc(j, L("ab", "c")));
    kiln_buf b = {0};
    CHECK_OK(kiln_metrics_render(m, &b));
    CHECK(strstr(b.data, "join_total{p=\"ab\",q=\"c\"} 2\njoin_total{p=\"a\",q=\"bc\"} 1\n") != NULL);
    CHECK(strstr(b.data, "c_total{a=\"a\",b=\"1\"} 2\n") != NULL);
    CHECK(strstr(b.data, "\"3\"") == NULL);
    CHECK(strstr(b.data, "# HELP c_total \n") != NULL);
    CHECK(strstr(b.data, "h_only_inf_bucket{le=\"+Inf\"} 1\nh_only_inf_sum 5\nh_only_inf_count 1\n") != NULL);
    kiln_buf_free(&b);
    kiln_metrics_free(m);
    kiln_metrics_free(NULL);
}

/* ---- concurrency ------------------------------------------------------------ */

#define THREADS 8
#define ITERS 20000

typedef struct {
    kiln_metric *c, *g, *h, *plain;
    kiln_metrics *m;
    int id;
    int failures;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    static const char *codes[] = {"200", "404", "500"};
    char model[16];
    for (int i = 0; i < ITERS; i++) {
        snprintf(model, sizeof model, "m%d", i % 5);
        if (kiln_metrics_inc(a->c, L(model, codes[i % 3]))) a->failures++;
        if (kiln_metrics_inc(a->plain, NULL)) a->failures++;
        if (kiln_metrics_add(a->g, L(model), (i & 1) ? 1 : -1)) a->failures++;
        if (kiln_metrics_observe(a->h, NULL, (double)(i % 4) * 0.5)) a->failures++;
        if (i % 2000 == 0) { /* render while others update */
            kiln_buf b = {0};
            if (kiln_metrics_render(a->m, &b)) a->failures++;
            kiln_buf_free(&b);
        }
    }
    return NULL;
}

static void test_threads(void) {
    kiln_metrics *m = NULL;
    CHECK_OK(kiln_metrics_create(0, &m));
    worker_arg args[THREADS];
    kiln_metric *c, *g, *h, *plain;
    CHECK_OK(kiln_metrics_counter(m, "t_requests_total", "x", L("model", "code"), &c));
    CHECK_OK(kiln_metrics_gauge(m, "t_inflight", "x", L("model"), &g));
    double bounds[] = {0.5, 1};
    CHECK_OK(kiln_metrics_histogram(m, "t_seconds", "x", NULL, bounds, 2, &h));
    CHECK_OK(kiln_metrics_counter(m, "t_plain_total", "x", NULL, &plain));
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_arg){c, g, h, plain, m, t, 0};
        pthread_create(&th[t], NULL, worker, &args[t]);
    }
    int failures = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        failures += args[t].failures;
    }
    CHECK(failures == 0);
    kiln_buf b = {0};
    CHECK_OK(kiln_metrics_render(m, &b));
    char want[512];
    snprintf(want, sizeof want, "t_plain_total %d\n", THREADS * ITERS);
    CHECK(strstr(b.data, want) != NULL);
    /* i%5 and i%3 cycle together every 15 iterations: ITERS/15 per pair, plus the remainder */
    int total = 0;
    for (int mi = 0; mi < 5; mi++)
        for (int ci = 0; ci < 3; ci++) {
            static const char *codes[] = {"200", "404", "500"};
            int per = 0;
            for (int i = 0; i < ITERS; i++) per += (i % 5 == mi && i % 3 == ci);
            snprintf(want, sizeof want, "t_requests_total{model=\"m%d\",code=\"%s\"} %d\n", mi, codes[ci],
                     per * THREADS);
            CHECK_MSG(strstr(b.data, want) != NULL, "missing %s", want);
            total += per * THREADS;
        }
    CHECK(total == THREADS * ITERS);
    for (int mi = 0; mi < 5; mi++) {
        snprintf(want, sizeof want, "t_inflight{model=\"m%d\"} 0\n", mi); /* +1/-1 pairs cancel */
        CHECK_MSG(strstr(b.data, want) != NULL, "missing %s", want);
    }
    /* observations 0, 0.5, 1, 1.5 equally often */
    int n = THREADS * ITERS;
    snprintf(want, sizeof want,
             "t_seconds_bucket{le=\"0.5\"} %d\nt_seconds_bucket{le=\"1\"} %d\nt_seconds_bucket{le=\"+Inf\"} %d\n"
             "t_seconds_sum %d\nt_seconds_count %d\n",
             n / 2, 3 * n / 4, n, 3 * n / 4, n);
    CHECK_MSG(strstr(b.data, want) != NULL, "missing %s", want);
    kiln_buf_free(&b);
    kiln_metrics_free(m);
}

/* ---- promtool ------------------------------------------------------------------ */

/* Renders a registry that uses every feature, writes it under $KILN_TMP and runs
 * `promtool check metrics` on it (lint included). Skipped when promtool is absent. */
static void test_promtool(void) {
    const char *promtool = getenv("PROMTOOL");
    if (!promtool || !*promtool) promtool = "promtool";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", promtool);
    if (system(cmd) != 0) {
        printf("SKIP promtool check: %s is not installed\n", promtool);
        return;
    }
    kiln_metrics *m = NULL;
    CHECK_OK(kiln_metrics_create(0, &m));
    kiln_metric *req, *inflight, *lat;
    CHECK_OK(kiln_metrics_counter(m, "kiln_http_requests_total", "HTTP requests by \"method\" and code.\nSecond line \\.",
                                  L("method", "code"), &req));
    CHECK_OK(kiln_metrics_gauge(m, "kiln_jobs_running", "Jobs running now.", L("kind"), &inflight));
    double bounds[] = KILN_METRICS_LATENCY_BOUNDS;
    CHECK_OK(kiln_metrics_histogram(m, "kiln_http_request_duration_seconds", "Request latency.", L("route"), bounds,
                                    sizeof bounds / sizeof bounds[0], &lat));
    CHECK_OK(kiln_metrics_inc(req, L("GET", "200")));
    CHECK_OK(kiln_metrics_add(req, L("PO\"ST\\\n", "500"), 1e21));
    CHECK_OK(kiln_metrics_set(inflight, L("llm"), NAN));
    CHECK_OK(kiln_metrics_set(inflight, L("image"), INFINITY));
    CHECK_OK(kiln_metrics_set(inflight, L("embed\xc3\xa9"), -INFINITY));
    CHECK_OK(kiln_metrics_observe(lat, L("/v1/chat/completions"), 0.123));
    CHECK_OK(kiln_metrics_observe(lat, L("/v1/chat/completions"), 100));
    kiln_buf b = {0};
    CHECK_OK(kiln_metrics_render(m, &b));
    char path[512];
    snprintf(path, sizeof path, "%s/test_metrics_%d.prom", kiln_test_tmp(), (int)getpid());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(b.data, 1, b.len, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "%s check metrics < '%s' 2>&1", promtool, path);
        FILE *p = popen(cmd, "r");
        char out[4096] = {0};
        size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
        out[n] = 0;
        int rc = p ? pclose(p) : -1;
        CHECK_MSG(rc == 0, "promtool rejected %s (rc %d):\n%s", path, rc, out);
        if (rc == 0) remove(path);
    }
    kiln_buf_free(&b);
    kiln_metrics_free(m);
}

int main(void) {
    test_render();
    test_escaping();
    test_errors();
    test_threads();
    test_promtool();
    TEST_MAIN_END();
}
