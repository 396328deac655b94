/*
 * metrics.h — a thread-safe registry of Prometheus metrics (counters, gauges,
 * histograms) rendered in the text exposition format 0.0.4.
 *
 * The server counts requests, tokens and jobs from many threads and serves the
 * totals at GET /metrics. Each metric has a name, help text and fixed label names;
 * a label set (one value per label) is created on first use. Label values often
 * come from requests (model names, routes), so the number of label sets per metric
 * is capped and values are bounded and checked to be UTF-8: a hostile client cannot
 * grow the registry without bound. This module does not depend on libmicrohttpd.
 *
 * Usage:
 *   kiln_metric *req;
 *   kiln_metrics_counter(m, "kiln_http_requests_total", "HTTP requests.",
 *                        (const char *[]){"method", "code", NULL}, &req);
 *   kiln_metrics_inc(req, (const char *[]){"GET", "200", NULL});
 */
#ifndef KILN_SERVER_METRICS_H
#define KILN_SERVER_METRICS_H

#include <stddef.h>

#include "base/buf.h"

typedef struct kiln_metrics kiln_metrics;
typedef struct kiln_metric kiln_metric;

/* Default cap on distinct label sets per metric. */
#define KILN_METRICS_MAX_SERIES 1000
/* Longest label value accepted, in bytes. */
#define KILN_METRICS_MAX_VALUE_LEN 256
/* Upper bounds (seconds) suited to request latency, for kiln_metrics_histogram. */
#define KILN_METRICS_LATENCY_BOUNDS {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

/* Creates an empty registry; max_series caps the label sets of each metric (0:
 * KILN_METRICS_MAX_SERIES). On success *out owns it; free it with kiln_metrics_free,
 * which also frees every metric registered in it. */
kiln_status kiln_metrics_create(size_t max_series, kiln_metrics **out);
void kiln_metrics_free(kiln_metrics *m);

/* Register a metric. name matches [a-zA-Z_:][a-zA-Z0-9_:]* and is not yet
 * registered; help is any text (NULL: empty); label_names is a NULL-terminated
 * list of names matching [a-zA-Z_][a-zA-Z0-9_]*, distinct, not starting with "__"
 * (NULL or empty: no labels). A metric without labels starts at 0 and is rendered
 * at once; labelled ones appear when first used. *out stays owned by the registry
 * and is valid until kiln_metrics_free. KILN_ERR_INVALID_ARG on a bad name or
 * duplicate, KILN_ERR_NOMEM. */
kiln_status kiln_metrics_counter(kiln_metrics *m, const char *name, const char *help,
                                 const char *const *label_names, kiln_metric **out);
kiln_status kiln_metrics_gauge(kiln_metrics *m, const char *name, const char *help,
                               const char *const *label_names, kiln_metric **out);
/* A histogram with the given finite, strictly increasing bucket upper bounds (n may
 * be 0; the +Inf bucket is implicit). "le" may not be a label name. */
kiln_status kiln_metrics_histogram(kiln_metrics *m, const char *name, const char *help,
                                   const char *const *label_names, const double *bounds, size_t n,
                                   kiln_metric **out);

/* Updates the sample of the label set label_values: a NULL-terminated list with one
 * value per label name, in order (NULL for a metric without labels). Values are
 * UTF-8 of at most KILN_METRICS_MAX_VALUE_LEN bytes. Thread-safe. Errors, after
 * which nothing changed: KILN_ERR_INVALID_ARG (wrong number of values, bad value,
 * wrong metric type, a negative or NaN counter increment), KILN_ERR_NOMEM (out of
 * memory, or the metric already has max_series label sets and this is a new one). */
kiln_status kiln_metrics_inc(kiln_metric *counter_or_gauge, const char *const *label_values);
kiln_status kiln_metrics_add(kiln_metric *counter_or_gauge, const char *const *label_values, double v);
kiln_status kiln_metrics_set(kiln_metric *gauge, const char *const *label_values, double v);
kiln_status kiln_metrics_observe(kiln_metric *histogram, const char *const *label_values, double v);

/* Appends the whole registry in the text format 0.0.4 (serve it as
 * "text/plain; version=0.0.4; charset=utf-8"): per metric, in registration order,
 * "# HELP" and "# TYPE" lines then its samples, label sets in order of first use.
 * Histograms give cumulative <name>_bucket{le="..."} samples ending with le="+Inf",
 * then <name>_sum and <name>_count. Thread-safe. On error out is unchanged. */
kiln_status kiln_metrics_render(kiln_metrics *m, kiln_buf *out);

#endif
