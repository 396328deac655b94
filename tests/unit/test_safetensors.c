/*
 * test_safetensors.c — writes small safetensors files (single, in a folder, sharded
 * with an index) into $KILN_TMP and checks the reader: dtypes, the reversed shape,
 * values, scalars and empty tensors, metadata, file locations.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "files.h"
#include "formats/safetensors.h"
#include "tensor/dtype.h"
#include "test.h"

/* Header padded with spaces to a multiple of 8, as writers do, so data is aligned. */
static void write_padded(const char *path, const char *json, const void *data, size_t n) {
    char hdr[2048];
    size_t len = strlen(json);
    memcpy(hdr, json, len);
    while ((len + 8) % 8) hdr[len++] = ' ';
    hdr[len] = 0;
    kiln_test_write_safetensors(path, hdr, data, n);
}

static void test_single(const char *dir) {
    uint8_t data[40];
    float a[6] = {0, 1, 2, 3, 4, 5};
    uint16_t b[4];
    int64_t c = 42;
    for (int i = 0; i < 4; i++) b[i] = kiln_f32_to_bf16(0.5f * (float)i);
    memcpy(data, a, 24);
    memcpy(data + 24, b, 8);
    memcpy(data + 32, &c, 8);
    const char *json = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"hi\"},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                       "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[32,40]},"
                       "\"e\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[40,40]}}";
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_padded(path, json, data, sizeof data);

    kiln_safetensors *st = NULL;
    CHECK_OK(kiln_safetensors_open(path, &st));
    if (!st) return;
    const kiln_weight_list *w = kiln_safetensors_weights(st);
    CHECK(w->n == 4);
    const kiln_tensor *ta = kiln_weights_find(w, "a");
    CHECK(ta && ta->type == KILN_F32 && ta->n_dims == 2 && ta->ne[0] == 3 && ta->ne[1] == 2 && ta->nb[1] == 12);
    if (ta) {
        const float *f = ta->data;
        CHECK(f[0] == 0 && f[5] == 5);
        CHECK(((uintptr_t)ta->data) % 8 == 0);
    }
    const kiln_tensor *tb = kiln_weights_find(w, "b");
    CHECK(tb && tb->type == KILN_BF16 && tb->n_dims == 1 && tb->ne[0] == 4);
    if (tb) CHECK(kiln_bf16_to_f32(((const uint16_t *)tb->data)[3]) == 1.5f);
    const kiln_tensor *tc = kiln_weights_find(w, "c");
    CHECK(tc && tc->type == KILN_I64 && tc->n_dims == 0 && tc->ne[0] == 1);
    if (tc) CHECK(*(const int64_t *)tc->data == 42);
    const kiln_tensor *te = kiln_weights_find(w, "e");
    CHECK(te && te->type == KILN_F16 && te->ne[0] == 3 && te->ne[1] == 0);
    CHECK(kiln_weights_find(w, "zzz") == NULL);

    CHECK(kiln_safetensors_metadata(st, "format") && strcmp(kiln_safetensors_metadata(st, "format"), "pt") == 0);
    CHECK(kiln_safetensors_metadata(st, "missing") == NULL);
    CHECK(kiln_safetensors_metadata_count(st) == 2);
    CHECK(kiln_safetensors_n_files(st) == 1);
    size_t file;
    uint64_t off;
    kiln_safetensors_locate(st, 1, &file, &off); /* "b": 8-byte length + header + 24 */
    uint64_t hlen;
    FILE *f = fopen(path, "rb");
    CHECK(f && fread(&hlen, 8, 1, f) == 1);
    if (f) fclose(f);
    CHECK(file == 0 && off == 8 + hlen + 24);
    kiln_safetensors_close(st);

    /* The folder itself opens model.safetensors. */
    CHECK_OK(kiln_safetensors_open(dir, &st));
    if (st) {
        CHECK(kiln_safetensors_weights(st)->n == 4);
        kiln_safetensors_close(st);
    }
}

static void test_sharded(const char *dir) {
    char p1[4096], p2[4096], idx[4096];
    float x[2] = {1, 2}, y[3] = {3, 4, 5};
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    write_padded(p2, "{\"__metadata__\":{\"format\":\"second\"},"
                     "\"y\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", y, sizeof y);
    write_padded(p1, "{\"__metadata__\":{\"format\":\"pt\"},"
                     "\"x\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}", x, sizeof x);
    const char *index = "{\"metadata\":{\"total_size\":20},\"weight_map\":{"
                        "\"y\":\"model-00002-of-00002.safetensors\",\"x\":\"model-00001-of-00002.safetensors\"}}";
    kiln_test_write_file(idx, index, strlen(index));

    const char *paths[2] = {idx, dir};
    for (int k = 0; k < 2; k++) {
        kiln_safetensors *st = NULL;
        CHECK_OK(kiln_safetensors_open(paths[k], &st));
        if (!st) continue;
        const kiln_weight_list *w = kiln_safetensors_weights(st);
        CHECK(w->n == 2);
        CHECK(kiln_safetensors_n_files(st) == 2);
        CHECK(strstr(kiln_safetensors_file(st, 0), "00001") != NULL);
        const kiln_tensor *tx = kiln_weights_find(w, "x"), *ty = kiln_weights_find(w, "y");
        CHECK(tx && tx->ne[0] == 2 && tx->ne[1] == 1 && ((const float *)tx->data)[1] == 2);
        CHECK(ty && ty->ne[0] == 3 && ((const float *)ty->data)[2] == 5);
        /* metadata comes from the first shard by name */
        CHECK(kiln_safetensors_metadata(st, "format") && !strcmp(kiln_safetensors_metadata(st, "format"), "pt"));
        for (size_t i = 0; i < w->n; i++) {
            size_t file;
            uint64_t off;
            kiln_safetensors_locate(st, i, &file, &off);
            CHECK(file == (strcmp(w->items[i].name, "x") == 0 ? 0u : 1u));
        }
        kiln_safetensors_close(st);
    }
}

int main(void) {
    char dir[4096];
    test_single(kiln_test_tmp_dir(dir, sizeof dir, "st_single"));
    test_sharded(kiln_test_tmp_dir(dir, sizeof dir, "st_sharded"));

    kiln_safetensors *st = (kiln_safetensors *)1;
    CHECK(kiln_safetensors_open("/nonexistent/x.safetensors", &st) == KILN_ERR_IO && st == NULL);
    CHECK(strstr(kiln_last_error(), "/nonexistent/x.safetensors") != NULL);
    TEST_MAIN_END();
}
