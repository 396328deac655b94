/*
 * stream.c — following a job live: server-sent events (kiln's job events, or
 * OpenAI's completion chunks ending with "data: [DONE]") and WebSocket sessions.
 *
 * An SSE response is produced by libmicrohttpd pulling from a reader callback on the
 * connection's own thread; the reader blocks on the job's next event (sending a
 * comment line as keep-alive when nothing happens). When the client goes away, the
 * next write fails, libmicrohttpd frees the reader, and a stream that was asked to
 * (OpenAI streaming, or ?cancel_on_disconnect=true) cancels its job: a generation
 * stops within a token of the disconnect being noticed.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/alloc.h"
#include "base/timer.h"
#include "server/server_internal.h"
#include "server/sse.h"
#include "server/ws.h"

#define KEEPALIVE_SECONDS 15.0

typedef struct {
    kiln_server *srv;
    char id[32];
    stream_kind kind;
    char model[256];
    bool include_usage, cancel_on_disconnect;
    int seq;
    kiln_buf out;
    size_t out_pos;
    bool finished, role_sent;
    double created, last_write;
} sse_ctx;

static void chunk_begin(sse_ctx *s, cJSON **o, cJSON **choice) {
    *o = cJSON_CreateObject();
    char id[64];
    snprintf(id, sizeof id, "%s%s", s->kind == STREAM_CHAT ? "chatcmpl-" : "cmpl-", s->id);
    cJSON_AddStringToObject(*o, "id", id);
    cJSON_AddStringToObject(*o, "object", s->kind == STREAM_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(*o, "created", floor(s->created));
    cJSON_AddStringToObject(*o, "model", s->model);
    cJSON_AddStringToObject(*o, "system_fingerprint", "kiln");
    cJSON *choices = cJSON_AddArrayToObject(*o, "choices");
    if (choice) {
        *choice = cJSON_CreateObject();
        cJSON_AddNumberToObject(*choice, "index", 0);
        cJSON_AddItemToArray(choices, *choice);
    }
}

/* Appends "data: <json>\n\n" and frees o. */
static void send_data(sse_ctx *s, cJSON *o) {
    char *t = cJSON_PrintUnformatted(o);
    if (t) kiln_sse_event(&s->out, NULL, NULL, t, strlen(t));
    free(t);
    cJSON_Delete(o);
}

static void text_chunk(sse_ctx *s, const char *text, const char *finish) {
    cJSON *o, *ch;
    chunk_begin(s, &o, &ch);
    if (s->kind == STREAM_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (!s->role_sent) cJSON_AddStringToObject(d, "role", "assistant");
        if (text) cJSON_AddStringToObject(d, "content", text);
        s->role_sent = true;
    } else {
        cJSON_AddStringToObject(ch, "text", text ? text : "");
    }
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    send_data(s, o);
}

/* Formats one engine event for an OpenAI stream. */
static void openai_event(sse_ctx *s, const char *name, const cJSON *d, bool final) {
    if (!strcmp(name, "started") && s->kind == STREAM_CHAT) {
        text_chunk(s, "", NULL);
    } else if (!strcmp(name, "delta")) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "text");
        if (cJSON_IsString(t)) text_chunk(s, t->valuestring, NULL);
    } else if (final) {
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(d, "result");
        if (!strcmp(name, "completed")) {
            const cJSON *fr = cJSON_GetObjectItemCaseSensitive(res, "finish_reason");
            text_chunk(s, NULL, cJSON_IsString(fr) ? fr->valuestring : "stop");
            if (s->include_usage) {
                cJSON *o;
                chunk_begin(s, &o, NULL);
                const cJSON *u = cJSON_GetObjectItemCaseSensitive(res, "usage");
                if (u) cJSON_AddItemToObject(o, "usage", cJSON_Duplicate(u, true));
                send_data(s, o);
            }
        } else {
            const cJSON *err = cJSON_GetObjectItemCaseSensitive(d, "error");
            cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
            char msg[1200];
            snprintf(msg, sizeof msg, "job %s %s: %s", s->id, name, cJSON_IsString(err) ? err->valuestring : "");
            cJSON_AddStringToObject(e, "message", msg);
            cJSON_AddStringToObject(e, "type", "server_error");
            cJSON_AddNullToObject(e, "param");
            cJSON_AddNullToObject(e, "code");
            send_data(s, o);
        }
        kiln_buf_append_str(&s->out, "data: [DONE]\n\n");
    }
}

/* Fills s->out with the next event(s); false at the end of the stream. */
static bool refill(sse_ctx *s) {
    kiln_buf_clear(&s->out);
    s->out_pos = 0;
    while (!s->out.len) {
        if (s->finished || s->srv->stopping) return false;
        char *name = NULL, *data = NULL;
        bool final = false;
        kiln_status st = kiln_engine_next_event(s->srv->engine, s->id, &s->seq, 1.0, &name, &data, &final);
        if (st) return false;
        if (!name) {
            if (kiln_time_now() - s->last_write >= KEEPALIVE_SECONDS) kiln_sse_comment(&s->out, "keep-alive");
            continue;
        }
        if (s->kind == STREAM_JOB_EVENTS) {
            char seq[16];
            snprintf(seq, sizeof seq, "%d", s->seq - 1);
            kiln_sse_event(&s->out, name, seq, data, strlen(data));
        } else {
            cJSON *d = cJSON_Parse(data);
            openai_event(s, name, d, final);
            cJSON_Delete(d);
        }
        s->finished = final;
        free(name);
        free(data);
    }
    s->last_write = kiln_time_now();
    return true;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    sse_ctx *s = cls;
    (void)pos;
    if (s->out_pos == s->out.len && !refill(s)) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = s->out.len - s->out_pos;
    if (n > max) n = max;
    memcpy(buf, s->out.data + s->out_pos, n);
    s->out_pos += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse_ctx *s = cls;
    if (!s->finished && s->cancel_on_disconnect) {
        kiln_job_rec j = {0};
        kiln_engine_cancel(s->srv->engine, s->id, "the client disconnected", &j);
        kiln_job_rec_clear(&j);
    }
    kiln_buf_free(&s->out);
    free(s);
}

MHD_Result_t kiln_stream_sse(struct MHD_Connection *c, http_req *r, const char *job_id, stream_kind kind,
                             const char *model, bool include_usage, bool cancel_on_disconnect) {
    sse_ctx *s = calloc(1, sizeof *s);
    if (!s) return kiln_http_fail(c, r, kiln_fail(KILN_ERR_NOMEM, "out of memory"));
    s->srv = r->srv;
    snprintf(s->id, sizeof s->id, "%s", job_id);
    snprintf(s->model, sizeof s->model, "%s", model ? model : "");
    s->kind = kind;
    s->include_usage = include_usage;
    s->cancel_on_disconnect = cancel_on_disconnect;
    s->created = kiln_time_unix();
    s->last_write = kiln_time_now();
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    MHD_add_response_header(resp, "X-Kiln-Job", job_id);
    MHD_Result_t ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    r->status = 200;
    r->answered = true;
    return ret;
}

/* ---- WebSocket ----------------------------------------------------------------------- */

typedef struct {
    kiln_server *srv;
    char id[32];
    bool cancel_on_disconnect;
    MHD_socket sock;
    struct MHD_UpgradeResponseHandle *urh;
    char *extra;
    size_t n_extra;
    bool peer_closed, failed;
} ws_ctx;

static bool send_all(MHD_socket fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static bool send_buf(ws_ctx *w, kiln_buf *b) {
    bool ok = send_all(w->sock, b->data ? b->data : "", b->len);
    kiln_buf_clear(b);
    if (!ok) w->failed = true;
    return ok;
}

static void on_ws_event(void *user, const kiln_ws_event *ev) {
    ws_ctx *w = user;
    kiln_buf b = {0};
    if (ev->type == KILN_WS_EV_PING) {
        kiln_ws_frame(&b, KILN_WS_OP_PONG, ev->data, ev->len, true);
        send_buf(w, &b);
    } else if (ev->type == KILN_WS_EV_CLOSE) {
        w->peer_closed = true;
    }
    kiln_buf_free(&b);
}

/* Reads and handles client frames for up to wait_ms. */
static void ws_drain(ws_ctx *w, kiln_ws_decoder *dec, kiln_buf *b, int wait_ms) {
    struct pollfd pfd = {.fd = w->sock, .events = POLLIN};
    while (!w->failed && !w->peer_closed && poll(&pfd, 1, wait_ms) > 0) {
        char in[4096];
        ssize_t k = recv(w->sock, in, sizeof in, 0);
        if (k <= 0) {
            w->failed = true;
            break;
        }
        if (kiln_ws_decoder_feed(dec, in, (size_t)k, on_ws_event, w)) {
            const char *why = NULL;
            int code = kiln_ws_decoder_error(dec, &why);
            kiln_ws_frame_close(b, code ? code : KILN_WS_CLOSE_PROTOCOL, why);
            send_buf(w, b);
            w->failed = true;
        }
    }
}

static void *ws_main(void *arg) {
    ws_ctx *w = arg;
    kiln_server *srv = w->srv;
    kiln_ws_decoder *dec = NULL;
    kiln_buf b = {0};
    int seq = 0;
    bool finished = false;
    int flags = fcntl(w->sock, F_GETFL);
    if (flags >= 0) fcntl(w->sock, F_SETFL, flags & ~O_NONBLOCK);
    if (kiln_ws_decoder_create(1 << 16, 0, &dec)) w->failed = true;
    if (!w->failed && w->n_extra) kiln_ws_decoder_feed(dec, w->extra, w->n_extra, on_ws_event, w);
    while (!w->failed && !w->peer_closed && !finished && !srv->stopping) {
        char *name = NULL, *data = NULL;
        bool final = false;
        if (kiln_engine_next_event(srv->engine, w->id, &seq, 0.2, &name, &data, &final)) break;
        if (name) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "event", name);
            cJSON *d = cJSON_Parse(data);
            cJSON_AddItemToObject(o, "data", d ? d : cJSON_CreateNull());
            char *t = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (t) kiln_ws_frame_text(&b, t, strlen(t));
            free(t);
            send_buf(w, &b);
            finished = final;
        }
        free(name);
        free(data);
        /* Anything from the client? (pings, close, or the connection gone). After the
         * last event, wait a moment for what the client already sent (a ping) before
         * closing. */
        ws_drain(w, dec, &b, finished ? 100 : 0);
    }
    if (!finished && w->cancel_on_disconnect && (w->failed || w->peer_closed)) {
        kiln_job_rec j = {0};
        kiln_engine_cancel(srv->engine, w->id, "the client disconnected", &j);
        kiln_job_rec_clear(&j);
    }
    if (!w->failed) {
        kiln_ws_frame_close(&b, srv->stopping && !finished ? KILN_WS_CLOSE_GOING_AWAY : KILN_WS_CLOSE_NORMAL,
                            finished ? "job finished" : NULL);
        send_buf(w, &b);
    }
    kiln_buf_free(&b);
    kiln_ws_decoder_free(dec);
    MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
    free(w->extra);
    free(w);
    pthread_mutex_lock(&srv->mu);
    srv->n_streams--;
    pthread_cond_broadcast(&srv->streams_cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in, size_t extra_in_size,
                       MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
    ws_ctx *w = cls;
    (void)c;
    (void)con_cls;
    w->sock = sock;
    w->urh = urh;
    if (extra_in_size && (w->extra = malloc(extra_in_size))) {
        memcpy(w->extra, extra_in, extra_in_size);
        w->n_extra = extra_in_size;
    }
    pthread_mutex_lock(&w->srv->mu);
    w->srv->n_streams++;
    pthread_mutex_unlock(&w->srv->mu);
    pthread_t t;
    if (pthread_create(&t, NULL, ws_main, w) != 0) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        pthread_mutex_lock(&w->srv->mu);
        w->srv->n_streams--;
        pthread_cond_broadcast(&w->srv->streams_cv);
        pthread_mutex_unlock(&w->srv->mu);
        free(w->extra);
        free(w);
        return;
    }
    pthread_detach(t);
}

MHD_Result_t kiln_stream_ws(struct MHD_Connection *c, http_req *r, const char *job_id, bool cancel_on_disconnect) {
    const char *why = NULL;
    int status = 400;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    if (!kiln_ws_handshake_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade"),
                              MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection"),
                              MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version"), key, &why,
                              &status))
        return kiln_http_error(c, r, status, "not a WebSocket upgrade: %s", why ? why : "bad handshake");
    ws_ctx *w = calloc(1, sizeof *w);
    if (!w) return kiln_http_fail(c, r, kiln_fail(KILN_ERR_NOMEM, "out of memory"));
    w->srv = r->srv;
    snprintf(w->id, sizeof w->id, "%s", job_id);
    w->cancel_on_disconnect = cancel_on_disconnect;
    struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, w);
    if (!resp) {
        free(w);
        return MHD_NO;
    }
    char accept[29];
    kiln_ws_accept_key(key, accept);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    MHD_Result_t ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
    MHD_destroy_response(resp);
    r->status = 101;
    r->answered = true;
    return ret;
}
