/*
 * golden.c — the golden tests' weight generator and safetensors writer (golden.h).
 */
#include "golden.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "tensor/dtype.h"

uint64_t kiln_test_fnv1a(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

void kiln_test_hashed(uint64_t seed, int64_t n, double scale, double offset, float *out) {
    for (int64_t i = 1; i <= n; i++) {
        uint64_t z = seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        double u = (double)(z >> 40) * (1.0 / 16777216.0) - 0.5;
        out[i - 1] = (float)(offset + u * (2.0 * scale));
    }
}

double kiln_test_rel_err(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]), r = fabs((double)ref[i]);
        if (!(e <= num)) num = e; /* NaN counts as the worst error */
        if (r > den) den = r;
    }
    return den > 0 ? num / den : num;
}

void kiln_test_write_case_tensors(const char *path, const struct cJSON *list, const char *prefix, uint64_t seed,
                                  const char *dtype, const kiln_test_tensor *extra, int n_extra,
                                  const char *skip_name, const char *bad_shape) {
    const int n = cJSON_GetArraySize(list) + n_extra;
    kiln_test_tensor *t = calloc((size_t)n, sizeof *t);
    char (*names)[192] = calloc((size_t)n, sizeof *names);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    if (!t || !names || !bufs) abort();
    int k = 0;
    for (int i = 0; i < n_extra; i++) t[k++] = extra[i];
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        const char *name = cJSON_GetArrayItem(it, 0)->valuestring;
        if (skip_name && !strcmp(name, skip_name)) continue;
        const cJSON *shape = cJSON_GetArrayItem(it, 1);
        kiln_test_tensor *x = &t[k];
        snprintf(names[k], sizeof names[k], "%s%s", prefix ? prefix : "", name);
        x->name = names[k];
        x->n_dims = cJSON_GetArraySize(shape);
        int64_t count = 1;
        for (int d = 0; d < x->n_dims; d++) count *= (x->shape[d] = cJSON_GetArrayItem(shape, d)->valueint);
        if (!(bufs[k] = malloc((size_t)count * sizeof(float)))) abort();
        kiln_test_hashed(kiln_test_fnv1a(names[k]) ^ seed, count, cJSON_GetArrayItem(it, 2)->valuedouble,
                         cJSON_GetArrayItem(it, 3)->valuedouble, bufs[k]);
        if (bad_shape && !strcmp(name, bad_shape)) x->shape[0]--;
        x->data = bufs[k++];
    }
    kiln_test_write_tensors(path, t, k, dtype);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(names);
    free(t);
}

void kiln_test_write_tensors(const char *path, const kiln_test_tensor *t, int n, const char *dtype) {
    size_t esz = strcmp(dtype, "F32") ? 2 : 4, total = 0;
    for (int i = 0; i < n; i++) {
        size_t k = 1;
        for (int d = 0; d < t[i].n_dims; d++) k *= (size_t)t[i].shape[d];
        total += k * esz;
    }
    uint8_t *data = malloc(total ? total : 1);
    cJSON *hdr = cJSON_CreateObject();
    if (!data || !hdr) abort();
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t k = 1;
        cJSON *o = cJSON_AddObjectToObject(hdr, t[i].name), *shape = cJSON_AddArrayToObject(o, "shape");
        cJSON_AddStringToObject(o, "dtype", dtype);
        for (int d = 0; d < t[i].n_dims; d++) {
            k *= (size_t)t[i].shape[d];
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        }
        for (size_t j = 0; j < k; j++) {
            uint8_t *p = data + off + j * esz;
            if (esz == 4) {
                memcpy(p, &t[i].data[j], 4);
            } else {
                uint16_t h = strcmp(dtype, "F16") ? kiln_f32_to_bf16(t[i].data[j]) : kiln_f32_to_fp16(t[i].data[j]);
                memcpy(p, &h, 2);
            }
        }
        cJSON *offs = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + k * esz)));
        off += k * esz;
    }
    /* padded with spaces to a multiple of 8 bytes, so every tensor is aligned */
    char *json = cJSON_PrintUnformatted(hdr), *padded = json ? malloc(strlen(json) + 8) : NULL;
    if (!padded) abort();
    size_t jl = strlen(json);
    memcpy(padded, json, jl);
    while (jl % 8) padded[jl++] = ' ';
    padded[jl] = 0;
    kiln_test_write_safetensors(path, padded, data, total);
    free(json);
    free(padded);
    cJSON_Delete(hdr);
    free(data);
}
