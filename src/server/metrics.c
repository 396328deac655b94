/*
 * metrics.c — the Prometheus metrics registry (see metrics.h).
 *
 * Locking: the registry's mutex guards its list of metrics (registration,
 * rendering); each metric's mutex guards its label sets and values (updates,
 * rendering). Render takes the registry lock, then one metric lock at a time, so
 * the two never deadlock. Label sets are found through a per-metric chained hash
 * table and kept in first-use order for rendering.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/status.h"

enum { COUNTER, GAUGE, HISTOGRAM };
static const char *const type_names[] = {"counter", "gauge", "histogram"};

#define HASH_SIZE 256

typedef struct series {
    struct series *next; /* hash chain */
    uint64_t hash;
    char **values; /* n_labels strings */
    double value;  /* counter, gauge */
    double sum;    /* histogram */
    uint64_t count;
    uint64_t *buckets; /* histogram: n_bounds + 1 per-bucket (not cumulative) counts */
} series;

struct kiln_metric {
    kiln_metrics *reg;
    int type;
    char *name, *help;
    char **label_names;
    size_t n_labels;
    double *bounds;
    size_t n_bounds;
    pthread_mutex_t lock;
    series **order; /* first-use order */
    size_t n_series, cap_series;
    series *table[HASH_SIZE];
};

struct kiln_metrics {
    pthread_mutex_t lock;
    kiln_metric **list;
    size_t n, cap;
    size_t max_series;
};

/* ---- small helpers ------------------------------------------------------------ */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool name_ok(const char *s, bool colon) {
    if (!s || !*s) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static bool utf8_ok(const char *s, size_t n) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)n, &cp);
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Formats v as Prometheus parses it: NaN, +Inf, -Inf, or the shortest of %.15g /
 * %.17g that reads back exactly. */
static void fmt_double(char out[40], double v) {
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(out, 40, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, 40, "%.17g", v);
    /* a locale with a decimal comma must not leak into the format */
    for (char *p = out; *p; p++)
        if (*p == ',') *p = '.';
}

static void free_series(series *s, size_t n_labels) {
    if (!s) return;
    if (s->values)
        for (size_t i = 0; i < n_labels; i++) free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s);
}

static void free_metric(kiln_metric *mt) {
    if (!mt) return;
    for (size_t i = 0; i < mt->n_series; i++) free_series(mt->order[i], mt->n_labels);
    free(mt->order);
    if (mt->label_names)
        for (size_t i = 0; i < mt->n_labels; i++) free(mt->label_names[i]);
    free(mt->label_names);
    free(mt->bounds);
    free(mt->name);
    free(mt->help);
    pthread_mutex_destroy(&mt->lock);
    free(mt);
}

/* ---- registry --------------------------------------------------------------- */

kiln_status kiln_metrics_create(size_t max_series, kiln_metrics **out) {
    *out = NULL;
    kiln_metrics *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "metrics: out of memory");
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return kiln_fail(KILN_ERR_NOMEM, "metrics: cannot create a mutex");
    }
    m->max_series = max_series ? max_series : KILN_METRICS_MAX_SERIES;
    *out = m;
    return KILN_OK;
}

void kiln_metrics_free(kiln_metrics *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) free_metric(m->list[i]);
    free(m->list);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static kiln_status new_series(kiln_metric *mt, const char *const *values, uint64_t hash, series **out);
static uint64_t hash_values(const char *const *values, size_t n);

static kiln_status add_metric(kiln_metrics *m, int type, const char *name, const char *help,
                              const char *const *label_names, const double *bounds, size_t n_bounds,
                              kiln_metric **out) {
    *out = NULL;
    if (!name_ok(name, true)) return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: invalid metric name \"%s\"", name ? name : "");
    size_t nl = 0;
    while (label_names && label_names[nl]) {
        const char *l = label_names[nl];
        if (!name_ok(l, false) || strncmp(l, "__", 2) == 0)
            return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s: invalid label name \"%s\"", name, l);
        if (type == HISTOGRAM && strcmp(l, "le") == 0)
            return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s: \"le\" is reserved in histograms", name);
        for (size_t j = 0; j < nl; j++)
            if (strcmp(label_names[j], l) == 0)
                return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s: label \"%s\" given twice", name, l);
        nl++;
    }
    for (size_t i = 0; i < n_bounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return kiln_fail(KILN_ERR_INVALID_ARG,
                             "metrics: %s: bucket bounds must be finite and strictly increasing", name);

    kiln_metric *mt = calloc(1, sizeof *mt);
    if (!mt) return kiln_fail(KILN_ERR_NOMEM, "metrics: out of memory");
    if (pthread_mutex_init(&mt->lock, NULL) != 0) {
        free(mt);
        return kiln_fail(KILN_ERR_NOMEM, "metrics: cannot create a mutex");
    }
    mt->reg = m;
    mt->type = type;
    mt->n_labels = nl;
    mt->n_bounds = n_bounds;
    mt->name = dup_str(name);
    mt->help = dup_str(help ? help : "");
    mt->label_names = nl ? calloc(nl, sizeof *mt->label_names) : NULL;
    mt->bounds = n_bounds ? malloc(n_bounds * sizeof *bounds) : NULL;
    bool ok = mt->name && mt->help && (!nl || mt->label_names) && (!n_bounds || mt->bounds);
    for (size_t i = 0; ok && i < nl; i++) ok = (mt->label_names[i] = dup_str(label_names[i])) != NULL;
    if (ok && n_bounds) memcpy(mt->bounds, bounds, n_bounds * sizeof *bounds);
    series *s0;
    if (ok && nl == 0) ok = new_series(mt, NULL, hash_values(NULL, 0), &s0) == KILN_OK; /* rendered from the start */
    if (!ok) {
        free_metric(mt);
        return kiln_fail(KILN_ERR_NOMEM, "metrics: out of memory");
    }

    pthread_mutex_lock(&m->lock);
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < m->n && !st; i++)
        if (strcmp(m->list[i]->name, name) == 0)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "metrics: \"%s\" is already registered", name);
    if (!st && m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        kiln_metric **l = realloc(m->list, cap * sizeof *l);
        if (!l) st = kiln_fail(KILN_ERR_NOMEM, "metrics: out of memory");
        else {
            m->list = l;
            m->cap = cap;
        }
    }
    if (!st) m->list[m->n++] = mt;
    pthread_mutex_unlock(&m->lock);
    if (st) free_metric(mt);
    else *out = mt;
    return st;
}

kiln_status kiln_metrics_counter(kiln_metrics *m, const char *name, const char *help,
                                 const char *const *label_names, kiln_metric **out) {
    return add_metric(m, COUNTER, name, help, label_names, NULL, 0, out);
}

kiln_status kiln_metrics_gauge(kiln_metrics *m, const char *name, const char *help,
                               const char *const *label_names, kiln_metric **out) {
    return add_metric(m, GAUGE, name, help, label_names, NULL, 0, out);
}

kiln_status kiln_metrics_histogram(kiln_metrics *m, const char *name, const char *help,
                                   const char *const *label_names, const double *bounds, size_t n,
                                   kiln_metric **out) {
    if (n && !bounds) return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s: NULL bucket bounds", name ? name : "");
    return add_metric(m, HISTOGRAM, name, help, label_names, bounds, n, out);
}

/* ---- label sets --------------------------------------------------------------- */

/* FNV-1a over the values, each followed by 0xFF (a byte UTF-8 never contains). */
static uint64_t hash_values(const char *const *values, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
        h = (h ^ 0xFF) * 0x100000001b3ull;
    }
    return h;
}

/* Creates a label set (the metric's lock is held, or the metric is not shared yet). */
static kiln_status new_series(kiln_metric *mt, const char *const *values, uint64_t hash, series **out) {
    if (mt->n_series >= mt->reg->max_series)
        return kiln_fail(KILN_ERR_NOMEM, "metrics: %s: more than %zu label sets", mt->name, mt->reg->max_series);
    if (mt->n_series == mt->cap_series) {
        size_t cap = mt->cap_series ? 2 * mt->cap_series : 8;
        series **o = realloc(mt->order, cap * sizeof *o);
        if (!o) return kiln_fail(KILN_ERR_NOMEM, "metrics: out of memory");
        mt->order = o;
        mt->cap_series = cap;
    }
    series *s = calloc(1, sizeof *s);
    bool ok = s != NULL;
    if (ok && mt->n_labels) ok = (s->values = calloc(mt->n_labels, sizeof *s->values)) != NULL;
    for (size_t i = 0; ok && i < mt->n_labels; i++) ok = (s->values[i] = dup_str(values[i])) != NULL;
    if (ok && mt->type == HISTOGRAM) ok = (s->buckets = calloc(mt->n_bounds + 1, sizeof *s->buckets)) != NULL;
    if (!ok) {
        free_series(s, mt->n_labels);
        return kiln_fail(KILN_ERR_NOMEM, "metrics: out of memory");
    }
    s->hash = hash;
    s->next = mt->table[hash % HASH_SIZE];
    mt->table[hash % HASH_SIZE] = s;
    mt->order[mt->n_series++] = s;
    *out = s;
    return KILN_OK;
}

/* Checks the values, then finds or creates their label set; on success returns with
 * the metric locked. */
static kiln_status lock_series(kiln_metric *mt, const char *const *values, series **out) {
    size_t n = 0;
    while (values && values[n]) {
        size_t len = strlen(values[n]);
        if (len > KILN_METRICS_MAX_VALUE_LEN)
            return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s: label value longer than %d bytes", mt->name,
                             KILN_METRICS_MAX_VALUE_LEN);
        if (!utf8_ok(values[n], len))
            return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s: label value is not UTF-8", mt->name);
        n++;
    }
    if (n != mt->n_labels)
        return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s: %zu label values given, %zu expected", mt->name, n,
                         mt->n_labels);
    uint64_t h = hash_values(values, n);
    pthread_mutex_lock(&mt->lock);
    for (series *s = mt->table[h % HASH_SIZE]; s; s = s->next) {
        if (s->hash != h) continue;
        size_t i = 0;
        while (i < n && strcmp(s->values[i], values[i]) == 0) i++;
        if (i == n) {
            *out = s;
            return KILN_OK;
        }
    }
    kiln_status st = new_series(mt, values, h, out);
    if (st) pthread_mutex_unlock(&mt->lock);
    return st;
}

/* ---- updates ------------------------------------------------------------------ */

kiln_status kiln_metrics_add(kiln_metric *mt, const char *const *label_values, double v) {
    if (mt->type == HISTOGRAM) return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s is a histogram", mt->name);
    if (mt->type == COUNTER && !(v >= 0))
        return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: counter %s cannot change by %g", mt->name, v);
    series *s;
    kiln_status st = lock_series(mt, label_values, &s);
    if (st) return st;
    s->value += v;
    pthread_mutex_unlock(&mt->lock);
    return KILN_OK;
}

kiln_status kiln_metrics_inc(kiln_metric *mt, const char *const *label_values) {
    return kiln_metrics_add(mt, label_values, 1.0);
}

kiln_status kiln_metrics_set(kiln_metric *mt, const char *const *label_values, double v) {
    if (mt->type != GAUGE) return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s is not a gauge", mt->name);
    series *s;
    kiln_status st = lock_series(mt, label_values, &s);
    if (st) return st;
    s->value = v;
    pthread_mutex_unlock(&mt->lock);
    return KILN_OK;
}

kiln_status kiln_metrics_observe(kiln_metric *mt, const char *const *label_values, double v) {
    if (mt->type != HISTOGRAM) return kiln_fail(KILN_ERR_INVALID_ARG, "metrics: %s is not a histogram", mt->name);
    series *s;
    kiln_status st = lock_series(mt, label_values, &s);
    if (st) return st;
    size_t b = 0; /* first bucket whose bound is >= v; NaN lands in +Inf */
    while (b < mt->n_bounds && !(v <= mt->bounds[b])) b++;
    s->buckets[b]++;
    s->sum += v;
    s->count++;
    pthread_mutex_unlock(&mt->lock);
    return KILN_OK;
}

/* ---- rendering ---------------------------------------------------------------- */

/* Appends s with the escapes of the format: backslash and newline always, the
 * double quote too inside label values. */
static kiln_status escaped(kiln_buf *out, const char *s, bool quote) {
    kiln_status st = KILN_OK;
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *esc = NULL;
        if (*p == '\\') esc = "\\\\";
        else if (*p == '\n') esc = "\\n";
        else if (*p == '"' && quote) esc = "\\\"";
        if (esc || !*p) {
            st = kiln_buf_append(out, run, (size_t)(p - run));
            if (!st && esc) st = kiln_buf_append(out, esc, 2);
            if (st || !*p) return st;
            run = p + 1;
        }
    }
}

/* Appends name{labels[,le="..."]} value\n. */
static kiln_status sample(kiln_buf *out, const kiln_metric *mt, const char *suffix, const series *s,
                          const char *le, double v) {
    kiln_status st = kiln_buf_printf(out, "%s%s", mt->name, suffix);
    bool any = mt->n_labels || le;
    if (!st && any) st = kiln_buf_append(out, "{", 1);
    for (size_t i = 0; !st && i < mt->n_labels; i++) {
        st = kiln_buf_printf(out, "%s%s=\"", i ? "," : "", mt->label_names[i]);
        if (!st) st = escaped(out, s->values[i], true);
        if (!st) st = kiln_buf_append(out, "\"", 1);
    }
    if (!st && le) st = kiln_buf_printf(out, "%sle=\"%s\"", mt->n_labels ? "," : "", le);
    if (!st && any) st = kiln_buf_append(out, "}", 1);
    char num[40];
    fmt_double(num, v);
    if (!st) st = kiln_buf_printf(out, " %s\n", num);
    return st;
}

static kiln_status render_metric(kiln_buf *out, const kiln_metric *mt) {
    kiln_status st = kiln_buf_printf(out, "# HELP %s ", mt->name);
    if (!st) st = escaped(out, mt->help, false);
    if (!st) st = kiln_buf_printf(out, "\n# TYPE %s %s\n", mt->name, type_names[mt->type]);
    for (size_t i = 0; !st && i < mt->n_series; i++) {
        const series *s = mt->order[i];
        if (mt->type != HISTOGRAM) {
            st = sample(out, mt, "", s, NULL, s->value);
            continue;
        }
        uint64_t cum = 0;
        char le[40];
        for (size_t b = 0; !st && b <= mt->n_bounds; b++) {
            cum += s->buckets[b];
            if (b < mt->n_bounds) fmt_double(le, mt->bounds[b]);
            else strcpy(le, "+Inf");
            st = sample(out, mt, "_bucket", s, le, (double)cum);
        }
        if (!st) st = sample(out, mt, "_sum", s, NULL, s->sum);
        if (!st) st = sample(out, mt, "_count", s, NULL, (double)s->count);
    }
    return st;
}

kiln_status kiln_metrics_render(kiln_metrics *m, kiln_buf *out) {
    size_t start = out->len;
    kiln_status st = KILN_OK;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n && !st; i++) {
        kiln_metric *mt = m->list[i];
        pthread_mutex_lock(&mt->lock);
        st = render_metric(out, mt);
        pthread_mutex_unlock(&mt->lock);
    }
    pthread_mutex_unlock(&m->lock);
    if (st) {
        out->len = start;
        if (out->data) out->data[start] = 0;
    }
    return st;
}
