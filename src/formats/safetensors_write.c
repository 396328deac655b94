/*
 * safetensors_write.c — the streaming safetensors writer (safetensors_write.h).
 */
#include "formats/safetensors_write.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/status.h"

static const char *type_name(kiln_dtype t) {
    return t == KILN_F32 ? "F32" : t == KILN_F16 ? "F16" : t == KILN_BF16 ? "BF16" : NULL;
}

static kiln_status count(const kiln_st_entry *e, int64_t *n) {
    *n = 1;
    if (e->n_dims < 0 || e->n_dims > 4 || !type_name(e->type) || !e->name)
        return kiln_fail(KILN_ERR_INVALID_ARG, "tensor '%.80s': bad type or rank", e->name ? e->name : "?");
    for (int d = 0; d < e->n_dims; d++) {
        if (e->shape[d] <= 0 || *n > INT64_MAX / 8 / e->shape[d])
            return kiln_fail(KILN_ERR_INVALID_ARG, "tensor '%.80s': bad shape", e->name);
        *n *= e->shape[d];
    }
    return KILN_OK;
}

static char *header(const kiln_st_entry *e, size_t n, int64_t *largest) {
    cJSON *h = cJSON_CreateObject();
    uint64_t off = 0;
    *largest = 0;
    for (size_t i = 0; h && i < n; i++) {
        int64_t k;
        if (count(&e[i], &k)) {
            cJSON_Delete(h);
            return NULL;
        }
        if (k > *largest) *largest = k;
        const uint64_t bytes = (uint64_t)k * (e[i].type == KILN_F32 ? 4 : 2);
        cJSON *t = cJSON_AddObjectToObject(h, e[i].name), *shape = cJSON_AddArrayToObject(t, "shape");
        cJSON_AddStringToObject(t, "dtype", type_name(e[i].type));
        for (int d = 0; d < e[i].n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e[i].shape[d]));
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *s = h ? cJSON_PrintUnformatted(h) : NULL;
    cJSON_Delete(h);
    return s;
}

kiln_status kiln_safetensors_write(const char *path, const kiln_st_entry *e, size_t n, kiln_st_fill_fn fill,
                                   void *user) {
    int64_t largest = 0;
    for (size_t i = 0; i < n; i++) { /* validate every entry before creating anything */
        int64_t k;
        kiln_status st = count(&e[i], &k);
        if (st) return st;
    }
    char *json = header(e, n, &largest);
    if (!json) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory for the header", path);
    size_t jl = strlen(json), pad = (8 - jl % 8) % 8;
    float *vals = kiln_malloc_array((size_t)(largest ? largest : 1), sizeof *vals);
    uint16_t *half = kiln_malloc_array((size_t)(largest ? largest : 1), sizeof *half);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = vals && half ? fopen(tmp, "wb") : NULL;
    kiln_status st = KILN_OK;
    if (!vals || !half) st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    else if (!f) st = kiln_fail(KILN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    bool ok = !st;
    if (ok) {
        uint64_t hl = jl + pad;
        ok = fwrite(&hl, 8, 1, f) == 1 && fwrite(json, 1, jl, f) == jl && fwrite("        ", 1, pad, f) == pad;
    }
    for (size_t i = 0; i < n && ok; i++) {
        int64_t k;
        count(&e[i], &k);
        if ((st = fill(user, i, vals, k))) {
            ok = false;
            break;
        }
        if (e[i].type == KILN_F32) {
            ok = fwrite(vals, 4, (size_t)k, f) == (size_t)k;
            continue;
        }
        for (int64_t j = 0; j < k; j++)
            half[j] = e[i].type == KILN_F16 ? kiln_f32_to_fp16(vals[j]) : kiln_f32_to_bf16(vals[j]);
        ok = fwrite(half, 2, (size_t)k, f) == (size_t)k;
    }
    int err = ok ? 0 : errno;
    if (f && fclose(f) != 0 && ok) ok = false, err = errno;
    if (ok && rename(tmp, path) != 0) ok = false, err = errno;
    if (!ok) {
        if (f) remove(tmp);
        if (!st) st = kiln_fail(KILN_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    free(vals);
    free(half);
    cJSON_free(json);
    return st;
}
