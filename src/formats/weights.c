/*
 * weights.c — the named-tensor list shared by the weight-file readers.
 */
#include "weights.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

const kiln_tensor *kiln_weights_find(const kiln_weight_list *w, const char *name) {
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(w->items[i].name, name) == 0) return &w->items[i].t;
    }
    return NULL;
}

kiln_status kiln_weights_add(kiln_weight_list *w, const char *name, const kiln_tensor *t) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        size_t bytes;
        if (!kiln_mul_ok(cap, sizeof *w->items, &bytes)) return kiln_fail(KILN_ERR_NOMEM, "too many weights");
        kiln_weight *items = realloc(w->items, bytes);
        if (!items) return kiln_fail(KILN_ERR_NOMEM, "out of memory listing weights");
        w->items = items;
        w->cap = cap;
    }
    char *copy = kiln_strdup(name);
    if (!copy) return kiln_fail(KILN_ERR_NOMEM, "out of memory listing weights");
    w->items[w->n].name = copy;
    w->items[w->n].t = *t;
    w->n++;
    return KILN_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

kiln_status kiln_weights_check_unique(const kiln_weight_list *w, const char *path) {
    if (w->n < 2) return KILN_OK;
    const char **names = kiln_malloc_array(w->n, sizeof *names);
    if (!names) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < w->n; i++) names[i] = w->items[i].name;
    qsort(names, w->n, sizeof *names, cmp_name);
    kiln_status st = KILN_OK;
    for (size_t i = 1; i < w->n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: duplicate tensor name '%s'", path, names[i]);
            break;
        }
    }
    free(names);
    return st;
}

void kiln_weights_free(kiln_weight_list *w) {
    for (size_t i = 0; i < w->n; i++) free(w->items[i].name);
    free(w->items);
    memset(w, 0, sizeof *w);
}
