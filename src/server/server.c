/*
 * server.c — the HTTP daemon: receiving requests within limits, auth, routing,
 * JSON responses and errors, metrics.
 *
 * libmicrohttpd runs one thread per connection, so a handler may block (waiting for
 * a job, streaming its events) without holding up other clients. Limits protect
 * the process: a connection cap, an idle timeout, a deadline for receiving the whole
 * request (a client dribbling a byte a second is cut off), a body cap (413 as soon as
 * Content-Length or the bytes received pass it), and UTF-8 / JSON checks before any
 * handler sees the body.
 */
#include "server/server_internal.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/timer.h"

/* ---- responses ------------------------------------------------------------------ */

static MHD_Result_t queue(struct MHD_Connection *c, http_req *r, int status, struct MHD_Response *resp) {
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (status == 429 || status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    MHD_Result_t ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    r->answered = true;
    return ret;
}

MHD_Result_t kiln_http_text(struct MHD_Connection *c, http_req *r, int status, const char *type, const char *text,
                            size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (resp) MHD_add_response_header(resp, "Content-Type", type);
    return queue(c, r, status, resp);
}

MHD_Result_t kiln_http_bytes(struct MHD_Connection *c, http_req *r, int status, const char *type, uint8_t *data,
                             size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    return queue(c, r, status, resp);
}

MHD_Result_t kiln_http_json(struct MHD_Connection *c, http_req *r, int status, const cJSON *body) {
    return kiln_http_json_header(c, r, status, body, NULL, NULL);
}

MHD_Result_t kiln_http_json_header(struct MHD_Connection *c, http_req *r, int status, const cJSON *body,
                                   const char *header, const char *value) {
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    if (!text) return kiln_http_text(c, r, 500, "application/json", "{\"error\":{\"message\":\"out of memory\"}}", 38);
    size_t len = strlen(text);
    text[len] = '\0';
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (header && value) MHD_add_response_header(resp, header, value);
    return queue(c, r, status, resp);
}

static const char *error_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 500: return "server_error";
    case 503: case 507: return "server_error";
    default: return "invalid_request_error";
    }
}

MHD_Result_t kiln_http_error(struct MHD_Connection *c, http_req *r, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", error_type(status));
    cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    MHD_Result_t ret = kiln_http_json(c, r, status, o);
    cJSON_Delete(o);
    return ret;
}

int kiln_http_status_of(kiln_status st) {
    switch (st) {
    case KILN_ERR_INVALID_ARG:
    case KILN_ERR_UNSUPPORTED:
    case KILN_ERR_CONTEXT_FULL:
    case KILN_ERR_FORMAT: return 400;
    case KILN_ERR_NOT_FOUND: return 404;
    case KILN_ERR_BUSY: return 429;
    case KILN_ERR_CAPACITY: return 507;
    case KILN_ERR_NOMEM: return 503;
    default: return 500;
    }
}

MHD_Result_t kiln_http_fail(struct MHD_Connection *c, http_req *r, kiln_status st) {
    return kiln_http_error(c, r, kiln_http_status_of(st), "%s", kiln_last_error());
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        int len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0;
        if (!len || b > 0xF4 || i + (size_t)len > n) return false;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return false;
        if (b == 0xE0 && s[i + 1] < 0xA0) return false;
        if (b == 0xED && s[i + 1] > 0x9F) return false;
        if (b == 0xF0 && s[i + 1] < 0x90) return false;
        if (b == 0xF4 && s[i + 1] > 0x8F) return false;
        i += (size_t)len;
    }
    return true;
}

cJSON *kiln_http_body_json(struct MHD_Connection *c, http_req *r, MHD_Result_t *ret) {
    if (!r->body.len) {
        *ret = kiln_http_error(c, r, 400, "the request needs a JSON body");
        return NULL;
    }
    if (!utf8_valid((const unsigned char *)r->body.data, r->body.len)) {
        *ret = kiln_http_error(c, r, 400, "the request body is not valid UTF-8");
        return NULL;
    }
    const char *end = NULL;
    /* cJSON stops at CJSON_NESTING_LIMIT (1000) levels: deep nesting is a parse error, not a crash. */
    cJSON *o = cJSON_ParseWithLengthOpts(r->body.data, r->body.len, &end, false);
    if (!o) {
        size_t off = end ? (size_t)(end - r->body.data) : 0;
        *ret = kiln_http_error(c, r, 400, "the request body is not valid JSON (near byte %zu, or nested too deeply)",
                               off);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        *ret = kiln_http_error(c, r, 400, "the request body must be a JSON object");
        return NULL;
    }
    return o;
}

/* ---- health and metrics -------------------------------------------------------- */

static MHD_Result_t route_health(struct MHD_Connection *c, http_req *r) {
    kiln_engine_stats s;
    kiln_engine_get_stats(r->srv->engine, &s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddBoolToObject(o, "ready", !r->srv->stopping);
    cJSON_AddNumberToObject(o, "queue_length", (double)s.queue_length);
    cJSON_AddNumberToObject(o, "running", (double)s.running);
    cJSON_AddNumberToObject(o, "memory_bytes", (double)s.memory_bytes);
    cJSON_AddItemToObject(o, "models_loaded", kiln_engine_loaded_json(r->srv->engine));
    MHD_Result_t ret = kiln_http_json(c, r, 200, o);
    cJSON_Delete(o);
    return ret;
}

static kiln_status register_metrics(kiln_server *s) {
    static const double lat[] = KILN_METRICS_LATENCY_BOUNDS;
    kiln_metrics *m = s->metrics;
    kiln_status st;
    if ((st = kiln_metrics_counter(m, "kiln_http_requests_total", "HTTP requests answered, by route and status.",
                                   (const char *[]){"route", "code", NULL}, &s->m_requests)) ||
        (st = kiln_metrics_histogram(m, "kiln_http_request_duration_seconds", "Time to answer a request, by route.",
                                     (const char *[]){"route", NULL}, lat, sizeof lat / sizeof lat[0],
                                     &s->m_latency)) ||
        (st = kiln_metrics_gauge(m, "kiln_jobs", "Jobs in the store, by state.", (const char *[]){"state", NULL},
                                 &s->m_jobs)) ||
        (st = kiln_metrics_gauge(m, "kiln_queue_length", "Jobs waiting to run.", NULL, &s->m_queue)) ||
        (st = kiln_metrics_gauge(m, "kiln_jobs_running", "Jobs running now.", NULL, &s->m_running)) ||
        (st = kiln_metrics_counter(m, "kiln_tokens_generated_total", "Tokens generated since start.", NULL,
                                   &s->m_tokens)) ||
        (st = kiln_metrics_gauge(m, "kiln_tokens_per_second", "Generation speed of the last finished text job.",
                                 NULL, &s->m_tps)) ||
        (st = kiln_metrics_counter(m, "kiln_model_load_seconds_total", "Time spent loading models.", NULL,
                                   &s->m_load_s)) ||
        (st = kiln_metrics_counter(m, "kiln_model_loads_total", "Model loads.", NULL, &s->m_loads)) ||
        (st = kiln_metrics_gauge(m, "kiln_memory_bytes", "Memory held by loaded models (weights and KV caches).",
                                 NULL, &s->m_mem)) ||
        (st = kiln_metrics_gauge(m, "kiln_memory_budget_bytes", "The memory budget for models (0: none).", NULL,
                                 &s->m_budget)) ||
        (st = kiln_metrics_gauge(m, "kiln_models_loaded", "Models loaded now.", NULL, &s->m_models)))
        return st;
    return KILN_OK;
}

static MHD_Result_t route_metrics(struct MHD_Connection *c, http_req *r) {
    kiln_server *s = r->srv;
    kiln_engine_stats es;
    kiln_engine_get_stats(s->engine, &es);
    for (int i = 0; i < KILN_JOB_STATE_COUNT; i++)
        kiln_metrics_set(s->m_jobs, (const char *[]){kiln_job_state_name((kiln_job_state)i), NULL},
                         (double)es.jobs[i]);
    kiln_metrics_set(s->m_queue, NULL, (double)es.queue_length);
    kiln_metrics_set(s->m_running, NULL, (double)es.running);
    kiln_metrics_set(s->m_tps, NULL, es.last_tokens_per_second);
    kiln_metrics_set(s->m_mem, NULL, (double)es.memory_bytes);
    kiln_metrics_set(s->m_budget, NULL, (double)es.memory_budget);
    kiln_metrics_set(s->m_models, NULL, es.models_loaded);
    /* Counters grow by what the engine counted since the last scrape. */
    pthread_mutex_lock(&s->mu);
    kiln_metrics_add(s->m_tokens, NULL, (double)(es.tokens_generated - s->tokens_reported));
    kiln_metrics_add(s->m_loads, NULL, (double)(es.model_loads - s->loads_reported));
    kiln_metrics_add(s->m_load_s, NULL, es.model_load_seconds_total - s->load_s_reported);
    s->tokens_reported = es.tokens_generated;
    s->loads_reported = es.model_loads;
    s->load_s_reported = es.model_load_seconds_total;
    pthread_mutex_unlock(&s->mu);
    kiln_buf b = {0};
    MHD_Result_t ret;
    if (kiln_metrics_render(s->metrics, &b)) ret = kiln_http_fail(c, r, KILN_ERR_NOMEM);
    else ret = kiln_http_text(c, r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    kiln_buf_free(&b);
    return ret;
}

static MHD_Result_t route_programs(struct MHD_Connection *c, http_req *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToObject(o, "data", kiln_engine_programs_json(r->srv->engine));
    MHD_Result_t ret = kiln_http_json(c, r, 200, o);
    cJSON_Delete(o);
    return ret;
}

/* ---- auth and routing ---------------------------------------------------------- */

/* Compares in time independent of where the strings differ. */
static bool same_secret(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

static bool authorized(kiln_server *s, struct MHD_Connection *c) {
    if (!s->n_keys) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    bool ok = false;
    for (int i = 0; i < s->n_keys; i++) ok |= same_secret(h + 7, s->keys[i]);
    return ok;
}

static const char *route_name(const char *url) {
    static const char *const fixed[] = {"/health", "/metrics", "/v1/models", "/v1/programs", "/v1/completions",
                                        "/v1/chat/completions", "/v1/embeddings", "/v1/images/generations",
                                        "/v1/jobs", NULL};
    for (const char *const *f = fixed; *f; f++)
        if (!strcmp(url, *f)) return *f;
    if (!strncmp(url, "/v1/jobs/", 9)) {
        const char *rest = strchr(url + 9, '/');
        if (!rest) return "/v1/jobs/{id}";
        if (!strcmp(rest, "/events")) return "/v1/jobs/{id}/events";
        if (!strcmp(rest, "/ws")) return "/v1/jobs/{id}/ws";
    }
    if (!strncmp(url, "/v1/outputs/", 12)) return "/v1/outputs/{id}/{file}";
    return "other";
}

static MHD_Result_t dispatch(struct MHD_Connection *c, http_req *r, const char *method, const char *url) {
    kiln_server *s = r->srv;
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) return get ? route_health(c, r) : kiln_http_error(c, r, 405, "use GET");
    if (!authorized(s, c))
        return kiln_http_error(c, r, 401, "a valid API key is required (Authorization: Bearer KEY)");
    if (!strcmp(url, "/metrics")) return get ? route_metrics(c, r) : kiln_http_error(c, r, 405, "use GET");
    if (!strcmp(url, "/v1/models")) return get ? kiln_route_models(c, r) : kiln_http_error(c, r, 405, "use GET");
    if (!strcmp(url, "/v1/programs")) return get ? route_programs(c, r) : kiln_http_error(c, r, 405, "use GET");
    if (!strcmp(url, "/v1/completions"))
        return post ? kiln_route_completions(c, r, false) : kiln_http_error(c, r, 405, "use POST");
    if (!strcmp(url, "/v1/chat/completions"))
        return post ? kiln_route_completions(c, r, true) : kiln_http_error(c, r, 405, "use POST");
    if (!strcmp(url, "/v1/embeddings"))
        return post ? kiln_route_embeddings(c, r) : kiln_http_error(c, r, 405, "use POST");
    if (!strcmp(url, "/v1/images/generations"))
        return post ? kiln_route_images(c, r) : kiln_http_error(c, r, 405, "use POST");
    if (!strncmp(url, "/v1/outputs/", 12)) return kiln_route_outputs(c, r, method, url);
    if (!strcmp(url, "/v1/jobs") || !strncmp(url, "/v1/jobs/", 9)) return kiln_route_jobs(c, r, method, url);
    return kiln_http_error(c, r, 404, "no route %s %s", method, url);
}

/* ---- the libmicrohttpd callbacks ------------------------------------------------- */

static MHD_Result_t on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    kiln_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->srv = s;
        r->start = kiln_time_now();
        r->route = route_name(url);
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->opt.max_body) r->too_big = true;
        return MHD_YES;
    }
    if (r->answered) {
        *upload_size = 0; /* answered early (413): drop the rest */
        return MHD_YES;
    }
    if (kiln_time_now() - r->start > s->opt.request_timeout) return MHD_NO; /* too slow: cut off */
    if (*upload_size) {
        if (!r->too_big && r->body.len + *upload_size > s->opt.max_body) r->too_big = true;
        if (!r->too_big && kiln_buf_append(&r->body, upload_data, *upload_size)) r->too_big = true;
        *upload_size = 0;
        if (r->too_big) {
            kiln_buf_free(&r->body);
            return kiln_http_error(c, r, 413, "the request body is larger than %zu bytes", s->opt.max_body);
        }
        return MHD_YES;
    }
    if (r->too_big) return kiln_http_error(c, r, 413, "the request body is larger than %zu bytes", s->opt.max_body);
    (void)version;
    return dispatch(c, r, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    kiln_server *s = cls;
    http_req *r = *con_cls;
    (void)c;
    (void)toe;
    if (!r) return;
    if (r->status) {
        char code[8];
        snprintf(code, sizeof code, "%d", r->status);
        kiln_metrics_inc(s->m_requests, (const char *[]){r->route, code, NULL});
        kiln_metrics_observe(s->m_latency, (const char *[]){r->route, NULL}, kiln_time_now() - r->start);
    }
    kiln_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static int hex_value(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes %HH in the path and arguments as libmicrohttpd does, except %00: a NUL would
 * silently cut the string a handler reads ("0.png%00.txt" read as "0.png"), so it stays
 * as the three characters it was, which no route accepts. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hex_value(r[1])) >= 0 && (lo = hex_value(r[2])) >= 0 && (hi | lo)) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

static void on_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    fprintf(stderr, "kiln serve: ");
    vfprintf(stderr, fmt, ap);
}

/* ---- start / stop ------------------------------------------------------------------ */

static bool is_loopback(const char *host) {
    return !strcmp(host, "127.0.0.1") || !strcmp(host, "localhost") || !strcmp(host, "::1") ||
           !strncmp(host, "127.", 4);
}

kiln_status kiln_server_start(kiln_engine *e, const kiln_server_options *opt, kiln_server **out) {
    *out = NULL;
    kiln_server *s = calloc(1, sizeof *s);
    if (!s) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    s->engine = e;
    s->opt = *opt;
    if (!s->opt.host) s->opt.host = "127.0.0.1";
    if (!s->opt.max_body) s->opt.max_body = 4u << 20;
    if (s->opt.max_connections <= 0) s->opt.max_connections = 256;
    if (s->opt.request_timeout <= 0) s->opt.request_timeout = 30;
    if (s->opt.idle_timeout <= 0) s->opt.idle_timeout = 15;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->streams_cv, NULL);
    kiln_status st = kiln_metrics_create(0, &s->metrics);
    if (!st) st = register_metrics(s);
    for (const char *const *k = opt->api_keys; !st && k && *k; k++) {
        char **nk = realloc(s->keys, (size_t)(s->n_keys + 1) * sizeof *nk);
        if (!nk || !(nk[s->n_keys] = kiln_strdup(*k))) {
            if (nk) s->keys = nk;
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        s->keys = nk;
        s->n_keys++;
    }
    if (st) goto fail;

    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};
    struct sockaddr *addr;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_UPGRADE;
    const char *host = !strcmp(s->opt.host, "localhost") ? "127.0.0.1" : s->opt.host;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)s->opt.port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)s->opt.port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        st = kiln_fail(KILN_ERR_INVALID_ARG, "--host '%s' is not an IPv4 or IPv6 address", s->opt.host);
        goto fail;
    }
    if (s->opt.port < 0 || s->opt.port > 65535) {
        st = kiln_fail(KILN_ERR_INVALID_ARG, "--port %d is out of range", s->opt.port);
        goto fail;
    }
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->opt.port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                                 on_log, s, MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_UNESCAPE_CALLBACK, unescape, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)s->opt.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)s->opt.idle_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 << 10),
                                 MHD_OPTION_END);
    if (!s->daemon) {
        st = kiln_fail(KILN_ERR_IO, "cannot listen on %s port %d (in use, or not allowed)", s->opt.host, s->opt.port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->opt.port;
    if (!s->n_keys && !is_loopback(s->opt.host))
        fprintf(stderr, "kiln serve: WARNING: listening on %s without an API key: anyone who can reach this "
                        "address can use the server (give --api-key)\n", s->opt.host);
    *out = s;
    return KILN_OK;
fail:
    kiln_server_stop(s);
    return st;
}

int kiln_server_port(const kiln_server *s) { return s->port; }

void kiln_server_stop(kiln_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    if (s->daemon) MHD_stop_daemon(s->daemon);
    pthread_mutex_lock(&s->mu);
    while (s->n_streams > 0) pthread_cond_wait(&s->streams_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_keys; i++) free(s->keys[i]);
    free(s->keys);
    kiln_metrics_free(s->metrics);
    pthread_cond_destroy(&s->streams_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
