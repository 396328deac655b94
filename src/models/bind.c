/*
 * bind.c — shape and type checks, f32 vector copies and load-time repacking shared
 * by the model loaders (bind.h).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "bind.h"
#include "kernels/kernels.h"

void kiln_owned_floats_free(kiln_owned_floats *o) {
    for (int i = 0; i < o->n; i++) free(o->p[i]);
    free(o->p);
    o->p = NULL;
    o->n = o->cap = 0;
}

kiln_status kiln_owned_floats_keep(kiln_owned_floats *o, float *p) {
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        float **q = realloc(o->p, (size_t)cap * sizeof *q);
        if (!q) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        o->p = q;
        o->cap = cap;
    }
    o->p[o->n++] = p;
    return KILN_OK;
}

kiln_status kiln_bind_matrix_check(const kiln_tensor *t, const char *path, const char *name, int64_t in,
                                   int64_t out) {
    if (!t) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    if (t->ne[0] != in || t->ne[1] != out || t->ne[2] != 1 || t->ne[3] != 1)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                         path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                         (long long)t->ne[3], (long long)in, (long long)out);
    if (!kiln_matmul_supports(t->type))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which kiln cannot multiply yet", path,
                         name, kiln_dtype_name(t->type));
    const kiln_dtype_traits *tr = kiln_dtype_get(t->type);
    size_t align = tr->block_size == 1 ? (size_t)tr->type_size : 2;
    if ((uintptr_t)t->data % align) return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' data is not aligned", path, name);
    return KILN_OK;
}

kiln_status kiln_bind_vector_copy(const kiln_tensor *t, const char *path, const char *name, int64_t n,
                                  kiln_owned_floats *own, const float **dst) {
    *dst = NULL;
    if (!t) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    if (kiln_tensor_nelements(t) != n || t->ne[0] != n)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has %lld elements, expected %lld", path, name,
                         (long long)kiln_tensor_nelements(t), (long long)n);
    float *v = kiln_malloc_array((size_t)n, sizeof *v);
    if (!v) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    kiln_status st = kiln_dequantize_row(t->type, t->data, v, n);
    if (!st) st = kiln_owned_floats_keep(own, v);
    if (st) {
        free(v);
        return kiln_fail_prefix(st, "%s: tensor '%s'", path, name);
    }
    *dst = v;
    return KILN_OK;
}

kiln_status kiln_bind_table_check(const kiln_tensor *t, const char *path, const char *name, int64_t cols,
                                  int64_t rows) {
    if (!t) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", path, name,
                         (long long)t->ne[0], (long long)t->ne[1], (long long)cols, (long long)rows);
    float *row = kiln_malloc_array((size_t)cols, sizeof *row);
    if (!row) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    kiln_status st = kiln_dequantize_row(t->type, t->data, row, cols);
    free(row);
    if (st) return kiln_fail_prefix(st, "%s: tensor '%s'", path, name);
    return KILN_OK;
}

/* ---- packing ------------------------------------------------------------------- */

typedef struct {
    kiln_panel_mode panels;
    const kiln_weight_files *files;
    const kiln_tensor **slot;
    kiln_tensor packed;
    void *mem;
    kiln_status st;
} pack_item;

static void pack_task(void *ctx, int64_t i) {
    pack_item *it = (pack_item *)ctx + i;
    it->st = kiln_weight_pack(*it->slot, &it->packed, &it->mem);
    if (it->st == KILN_ERR_UNSUPPORTED && it->panels == KILN_PANELS_BF16)
        it->st = kiln_weight_pack_panels_bf16(*it->slot, &it->packed, &it->mem);
    if (it->st == KILN_ERR_UNSUPPORTED && it->panels != KILN_PANELS_NONE)
        it->st = kiln_weight_pack_panels(*it->slot, &it->packed, &it->mem);
    if (it->st == KILN_ERR_UNSUPPORTED && it->panels == KILN_PANELS_NONE)
        it->st = kiln_weight_copy_large(*it->slot, &it->packed, &it->mem);
    if (it->st != KILN_OK) return;
    /* the copy replaces the file's bytes: give their pages back (a tied token
     * embedding still gathers rows from them, faulting the few it reads back in) */
    const kiln_tensor *w = *it->slot;
    const size_t bytes = (size_t)w->ne[1] * w->nb[1];
    for (size_t f = 0; it->files && f < it->files->n; f++)
        if (kiln_mapfile_release(it->files->maps[f], w->data, bytes)) return;
    kiln_advise_cold(w->data, bytes);
}

kiln_status kiln_pack_matrices(const kiln_tensor **const *slots, int n, kiln_panel_mode mode,
                               const kiln_weight_files *files, kiln_pool *pool, kiln_packed_set *out) {
    pack_item *items = calloc((size_t)n + 1, sizeof *items);
    out->t = calloc((size_t)n + 1, sizeof *out->t);
    out->mem = calloc((size_t)n + 1, sizeof *out->mem);
    if (!items || !out->t || !out->mem) {
        free(items);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    int n_items = 0;
    for (int i = 0; i < n; i++)
        if (slots[i] && *slots[i]) items[n_items++] = (pack_item){.panels = mode, .files = files, .slot = slots[i]};
    kiln_pool_for(pool, n_items, pack_task, items);
    kiln_status st = KILN_OK;
    for (int i = 0; i < n_items; i++) {
        if (items[i].st == KILN_OK) {
            out->t[out->n] = items[i].packed;
            out->mem[out->n] = items[i].mem;
            *items[i].slot = &out->t[out->n++];
        } else if (items[i].st != KILN_ERR_UNSUPPORTED && !st) {
            st = kiln_fail(items[i].st, "packing the weights: out of memory");
        }
    }
    free(items);
    return st;
}

void kiln_packed_set_free(kiln_packed_set *s) {
    for (int i = 0; i < s->n; i++) free(s->mem[i]);
    free(s->mem);
    free(s->t);
    s->mem = NULL;
    s->t = NULL;
    s->n = 0;
}

cJSON *kiln_json_parse_py(const char *json) {
    const size_t len = strlen(json);
    char *text = malloc(len + 1); /* the replacements are never longer than what they replace */
    if (!text) return NULL;
    size_t o = 0;
    bool in_str = false;
    for (size_t i = 0; i < len;) {
        const char ch = json[i];
        if (in_str) {
            text[o++] = ch;
            i++;
            if (ch == '\\' && i < len) text[o++] = json[i++];
            else if (ch == '"') in_str = false;
            continue;
        }
        if (ch == '"') in_str = true;
        if (!strncmp(json + i, "-Infinity", 9)) {
            memcpy(text + o, "-1e999", 6), o += 6, i += 9;
        } else if (!strncmp(json + i, "Infinity", 8)) {
            memcpy(text + o, "1e999", 5), o += 5, i += 8;
        } else if (!strncmp(json + i, "NaN", 3)) {
            memcpy(text + o, "null", 4), o += 4, i += 3;
        } else {
            text[o++] = ch;
            i++;
        }
    }
    text[o] = 0;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

kiln_status kiln_json_int(const cJSON *o, const char *key, bool required, int dflt, int *out, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return kiln_fail(KILN_ERR_FORMAT, "%s lacks '%s'", what, key);
        *out = dflt;
        return KILN_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX ||
        v->valuedouble != floor(v->valuedouble))
        return kiln_fail(KILN_ERR_FORMAT, "%s: '%s' is not a valid integer", what, key);
    *out = (int)v->valuedouble;
    return KILN_OK;
}
