/*
 * cmd_jobs.c — `kiln jobs list|show|cancel|wait` against a running server (the HTTP
 * jobs API, through libcurl).
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"

typedef struct {
    char *data;
    size_t len;
} body;

static size_t on_data(char *p, size_t size, size_t n, void *user) {
    body *b = user;
    size_t k = size * n;
    if (b->len + k > (64u << 20)) return 0; /* a job list is never this big: stop */
    char *nd = realloc(b->data, b->len + k + 1);
    if (!nd) return 0;
    memcpy(nd + b->len, p, k);
    b->data = nd;
    b->len += k;
    b->data[b->len] = '\0';
    return k;
}

/* One request; returns the parsed JSON body (or NULL, having printed why). */
static cJSON *request(const char *method, const char *url, const char *key, long *status) {
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    body b = {0};
    struct curl_slist *h = NULL;
    char auth[600];
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    cJSON *o = NULL;
    if (rc != CURLE_OK) {
        fprintf(stderr, "kiln jobs: %s %s: %s\n", method, url, curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        o = b.data ? cJSON_Parse(b.data) : NULL;
        if (!o) fprintf(stderr, "kiln jobs: %s %s: HTTP %ld with a body that is not JSON\n", method, url, *status);
    }
    free(b.data);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return o;
}

static bool is_error(const cJSON *o, long status) {
    if (status < 400) return false;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "error"), "message");
    fprintf(stderr, "kiln jobs: HTTP %ld: %s\n", status, cJSON_IsString(m) ? m->valuestring : "error");
    return true;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void print_row(const cJSON *j) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "progress");
    char when[32] = "";
    time_t t = (time_t)num(j, "created");
    struct tm tm;
    if (t && localtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    printf("%-22s %-10s %-6s %-24s %6.0f/%-6.0f %s\n", str(j, "id"), str(j, "state"), str(j, "kind"),
           *str(j, "program") ? str(j, "program") : str(j, "model"), num(p, "done"), num(p, "total"), when);
}

static void print_json(const cJSON *o) {
    char *t = cJSON_Print(o);
    if (t) puts(t);
    free(t);
}

int kiln_cmd_jobs(int argc, char **argv) {
    const char *url = getenv("KILN_URL"), *key = getenv("KILN_API_KEY"), *state = NULL;
    int limit = 50;
    float timeout = -1;
    arg_spec specs[] = {
        {"--url", NULL, ARG_STR, &url, "the server (default $KILN_URL, else http://127.0.0.1:8080)"},
        {"--api-key", NULL, ARG_STR, &key, "API key (default $KILN_API_KEY)"},
        {"--state", NULL, ARG_STR, &state, "list: only jobs in this state"},
        {"--limit", NULL, ARG_INT, &limit, "list: at most this many (default 50)"},
        {"--timeout", NULL, ARG_FLOAT, &timeout, "wait: give up after this many seconds"},
    };
    const char *pos[2];
    int n_pos;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 2, &n_pos,
                       "usage: kiln jobs list [--state S] | show ID | cancel ID | wait ID   [--url URL] [--api-key K]");
    if (r) return r == 1 ? 0 : 2;
    if (!url) url = "http://127.0.0.1:8080";
    const char *verb = n_pos ? pos[0] : "list";
    bool needs_id = strcmp(verb, "list") != 0;
    if (strcmp(verb, "list") && strcmp(verb, "show") && strcmp(verb, "cancel") && strcmp(verb, "wait")) {
        fprintf(stderr, "kiln jobs: unknown action '%s' (list, show, cancel, wait)\n", verb);
        return 2;
    }
    if (needs_id != (n_pos == 2)) {
        fprintf(stderr, needs_id ? "kiln jobs %s: give a job id\n" : "kiln jobs %s: takes no id\n", verb);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char full[2048];
    long status = 0;
    int rc = 1;
    cJSON *o = NULL;
    if (!needs_id) {
        snprintf(full, sizeof full, "%s/v1/jobs?limit=%d%s%s", url, limit, state ? "&state=" : "", state ? state : "");
        if ((o = request("GET", full, key, &status)) && !is_error(o, status)) {
            const cJSON *j;
            printf("%-22s %-10s %-6s %-24s %13s %s\n", "ID", "STATE", "KIND", "PROGRAM/MODEL", "PROGRESS", "CREATED");
            cJSON_ArrayForEach(j, cJSON_GetObjectItemCaseSensitive(o, "data")) print_row(j);
            rc = 0;
        }
    } else {
        snprintf(full, sizeof full, "%s/v1/jobs/%s", url, pos[1]);
        if (!strcmp(verb, "wait")) {
            /* Polls: simple, survives server restarts, and a job's state is small. */
            double waited = 0;
            for (;;) {
                cJSON_Delete(o);
                if (!(o = request("GET", full, key, &status)) || is_error(o, status)) break;
                const char *s = str(o, "state");
                if (strcmp(s, "queued") && strcmp(s, "running")) {
                    print_json(o);
                    rc = strcmp(s, "completed") ? 1 : 0;
                    break;
                }
                const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "progress");
                fprintf(stderr, "\r%s %s %.0f/%.0f", pos[1], s, num(p, "done"), num(p, "total"));
                if (timeout >= 0 && waited >= timeout) {
                    fprintf(stderr, "\nkiln jobs wait: still %s after %.0f s\n", s, waited);
                    break;
                }
                usleep(250000);
                waited += 0.25;
            }
        } else if ((o = request(!strcmp(verb, "cancel") ? "DELETE" : "GET", full, key, &status)) &&
                   !is_error(o, status)) {
            print_json(o);
            rc = 0;
        }
    }
    cJSON_Delete(o);
    curl_global_cleanup();
    return rc;
}
