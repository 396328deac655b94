/*
 * golden.c — the golden tests' weight generator and safetensors writer (golden.h).
 */
#include "golden.h"

#include <cjson/cJSON.h>
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
