/*
 * server_internal.h — what the server's files share: the request context, JSON
 * responses and errors, and the route handlers. Not for use outside src/server.
 */
#ifndef KILN_SERVER_INTERNAL_H
#define KILN_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

#include "base/buf.h"
#include "server/metrics.h"
#include "server/server.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_Result_t;
#else
typedef enum MHD_Result MHD_Result_t;
#endif

struct kiln_server {
    kiln_engine *engine;
    kiln_server_options opt;
    char **keys;
    int n_keys;
    struct MHD_Daemon *daemon;
    int port;
    kiln_metrics *metrics;
    kiln_metric *m_requests, *m_latency, *m_jobs, *m_queue, *m_running, *m_tokens, *m_tps, *m_load_s, *m_loads,
        *m_mem, *m_budget, *m_models;
    int64_t tokens_reported, loads_reported;
    double load_s_reported;
    pthread_mutex_t mu;          /* guards the counters above and n_streams */
    pthread_cond_t streams_cv;
    int n_streams;               /* WebSocket sessions running on their own threads */
    bool stopping;
};

/* One HTTP request being received and answered. */
typedef struct {
    kiln_server *srv;
    double start;                /* monotonic */
    kiln_buf body;
    bool too_big, answered;
    const char *route;           /* normalized route for metrics ("/v1/jobs/{id}") */
    int status;                  /* the status sent */
} http_req;

/* Responses. Each queues the response on the connection and records the status. */
MHD_Result_t kiln_http_json(struct MHD_Connection *c, http_req *r, int status, const cJSON *body);
/* The same with one extra header (header NULL: none). */
MHD_Result_t kiln_http_json_header(struct MHD_Connection *c, http_req *r, int status, const cJSON *body,
                                   const char *header, const char *value);
/* A body of len bytes of type; takes data (malloc'd) in every case. */
MHD_Result_t kiln_http_bytes(struct MHD_Connection *c, http_req *r, int status, const char *type, uint8_t *data,
                             size_t len);
MHD_Result_t kiln_http_text(struct MHD_Connection *c, http_req *r, int status, const char *type, const char *text,
                            size_t len);
/* OpenAI-style error body {"error": {"message", "type", "param", "code"}}. */
MHD_Result_t kiln_http_error(struct MHD_Connection *c, http_req *r, int status, const char *fmt, ...)
    KILN_PRINTF(4, 5);
/* The HTTP status for a failed kiln_status, and an error response with the last error message. */
int kiln_http_status_of(kiln_status st);
MHD_Result_t kiln_http_fail(struct MHD_Connection *c, http_req *r, kiln_status st);
/* Parses the request body as a JSON object; on failure answers 400 and returns NULL. */
cJSON *kiln_http_body_json(struct MHD_Connection *c, http_req *r, MHD_Result_t *ret);

/* routes_openai.c */
MHD_Result_t kiln_route_models(struct MHD_Connection *c, http_req *r);
MHD_Result_t kiln_route_completions(struct MHD_Connection *c, http_req *r, bool chat);
/* POST /v1/embeddings (routes_embed.c). */
MHD_Result_t kiln_route_embeddings(struct MHD_Connection *c, http_req *r);
/* POST /v1/images/generations and GET /v1/outputs/{job}/{file} (routes_image.c). */
MHD_Result_t kiln_route_images(struct MHD_Connection *c, http_req *r);
MHD_Result_t kiln_route_outputs(struct MHD_Connection *c, http_req *r, const char *method, const char *url);
/* The error response for a job that did not complete (cancelled 409, capacity or
 * memory 507, bad input 400, else 500), naming the job and why. */
MHD_Result_t kiln_http_job_failed(struct MHD_Connection *c, http_req *r, const kiln_job_rec *done);
/* routes_jobs.c */
MHD_Result_t kiln_route_jobs(struct MHD_Connection *c, http_req *r, const char *method, const char *url);
/* stream.c: SSE of job events (raw: kiln's event names; openai: completion chunks). */
typedef enum { STREAM_JOB_EVENTS, STREAM_COMPLETION, STREAM_CHAT } stream_kind;
MHD_Result_t kiln_stream_sse(struct MHD_Connection *c, http_req *r, const char *job_id, stream_kind kind,
                             const char *model, bool include_usage, bool cancel_on_disconnect);
MHD_Result_t kiln_stream_ws(struct MHD_Connection *c, http_req *r, const char *job_id, bool cancel_on_disconnect);

#endif
