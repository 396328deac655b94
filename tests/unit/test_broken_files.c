/*
 * test_broken_files.c — the hostile-file corpus. The test writes, into $KILN_TMP,
 * malformed GGUF, safetensors and llama2.c files (one defect each, built by patching a
 * valid file or written from scratch) and checks every open fails with a non-OK
 * status whose message names the file and the problem. Run under ASan it also checks
 * that no such file makes a reader crash, read out of bounds or leak.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "files.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "test.h"

typedef kiln_status (*opener)(const char *path);

static kiln_status open_gguf(const char *path) {
    kiln_gguf *g = NULL;
    kiln_status st = kiln_gguf_open(path, &g);
    kiln_gguf_close(g);
    return st;
}
static kiln_status open_st(const char *path) {
    kiln_safetensors *s = NULL;
    kiln_status st = kiln_safetensors_open(path, &s);
    kiln_safetensors_close(s);
    return st;
}
static kiln_status open_l2c(const char *path) {
    kiln_llama2c *m = NULL;
    kiln_status st = kiln_llama2c_open(path, &m);
    kiln_llama2c_close(m);
    return st;
}

/* Opening path must fail with a message holding `names` (the file) and one of the
 * '|'-separated keywords. */
static void expect_fail(const char *label, opener open, const char *path, const char *names, const char *keywords) {
    kiln_clear_error();
    kiln_status st = open(path);
    const char *msg = kiln_last_error();
    if (getenv("KILN_TEST_VERBOSE")) printf("%-36s %-16s %s\n", label, kiln_status_name(st), msg);
    CHECK_MSG(st != KILN_OK, "%s: opened a broken file", label);
    if (st == KILN_OK) return;
    CHECK_MSG(strstr(msg, names) != NULL, "%s: message does not name %s: %s", label, names, msg);
    bool found = false;
    char kw[256];
    snprintf(kw, sizeof kw, "%s", keywords);
    for (char *save = NULL, *k = strtok_r(kw, "|", &save); k; k = strtok_r(NULL, "|", &save))
        found = found || strstr(msg, k) != NULL;
    CHECK_MSG(found, "%s: message lacks [%s]: %s", label, keywords, msg);
}

static void patch_u32(kiln_test_bytes *b, size_t at, uint32_t v) { memcpy(b->p + at, &v, 4); }
static void patch_u64(kiln_test_bytes *b, size_t at, uint64_t v) { memcpy(b->p + at, &v, 8); }

/* ==== GGUF ==================================================================== */

/* Where the fields a test patches live in the valid file. */
typedef struct {
    size_t version, n_tensors, n_kv, key0_len, kv0_type, arr_type, arr_count;
    size_t t0_ndims, t0_ne0, t0_type, t1_name, t1_off;
} gguf_marks;

/* A valid GGUF v3: 2 metadata entries (a string, a u32 array) and 2 f32 tensors,
 * "a" [8] at 0 and "b" [4, 2] at 32. */
static void build_gguf(kiln_test_bytes *b, gguf_marks *m) {
    kiln_test_bytes_put(b, "GGUF", 4);
    m->version = b->n;
    kiln_test_bytes_u32(b, 3);
    m->n_tensors = b->n;
    kiln_test_bytes_u64(b, 2);
    m->n_kv = b->n;
    kiln_test_bytes_u64(b, 2);
    m->key0_len = b->n;
    kiln_test_bytes_str(b, "general.architecture");
    m->kv0_type = b->n;
    kiln_test_bytes_u32(b, KILN_GGUF_STRING);
    kiln_test_bytes_str(b, "llama");
    kiln_test_bytes_str(b, "x.arr");
    kiln_test_bytes_u32(b, KILN_GGUF_ARRAY);
    m->arr_type = b->n;
    kiln_test_bytes_u32(b, KILN_GGUF_UINT32);
    m->arr_count = b->n;
    kiln_test_bytes_u64(b, 3);
    for (uint32_t i = 1; i <= 3; i++) kiln_test_bytes_u32(b, i);
    kiln_test_bytes_str(b, "a");
    m->t0_ndims = b->n;
    kiln_test_bytes_u32(b, 1);
    m->t0_ne0 = b->n;
    kiln_test_bytes_u64(b, 8);
    m->t0_type = b->n;
    kiln_test_bytes_u32(b, KILN_F32);
    kiln_test_bytes_u64(b, 0);
    m->t1_name = b->n;
    kiln_test_bytes_str(b, "b");
    kiln_test_bytes_u32(b, 2);
    kiln_test_bytes_u64(b, 4);
    kiln_test_bytes_u64(b, 2);
    kiln_test_bytes_u32(b, KILN_F32);
    m->t1_off = b->n;
    kiln_test_bytes_u64(b, 32);
    kiln_test_bytes_pad(b, 32);
    float data[16];
    for (int i = 0; i < 16; i++) data[i] = (float)i;
    kiln_test_bytes_put(b, data, sizeof data);
}

/* One defect: the field at marks.<field> (+ extra bytes) set to value. */
typedef struct {
    const char *name;
    size_t field; /* offsetof(gguf_marks, ...) */
    size_t extra;
    int width;    /* 4 or 8 */
    uint64_t value;
    const char *keywords;
} gguf_patch;

#define AT(f) offsetof(gguf_marks, f)
static const gguf_patch g_gguf_patches[] = {
    {"gguf v1", AT(version), 0, 4, 1, "version 1"},
    {"gguf version 99", AT(version), 0, 4, 99, "unknown GGUF version"},
    {"gguf big-endian", AT(version), 0, 4, 0x03000000u, "big-endian"},
    {"gguf n_kv 2^60", AT(n_kv), 0, 8, (uint64_t)1 << 60, "more than the file can hold"},
    {"gguf 2^60 tensors", AT(n_tensors), 0, 8, (uint64_t)1 << 60, "more than the file can hold"},
    {"gguf key length 2^60", AT(key0_len), 0, 8, (uint64_t)1 << 60, "past the end"},
    {"gguf string value length 2^60", AT(kv0_type), 4, 8, (uint64_t)1 << 60, "past the end"},
    {"gguf unknown value type", AT(kv0_type), 0, 4, 13, "unknown type"},
    {"gguf unknown array element type", AT(arr_type), 0, 4, 77, "unknown array element type"},
    {"gguf array count 2^60", AT(arr_count), 0, 8, (uint64_t)1 << 60, "does not fit"},
    {"gguf n_dims 5", AT(t0_ndims), 0, 4, 5, "dimensions"},
    {"gguf n_dims 0", AT(t0_ndims), 0, 4, 0, "dimensions"},
    {"gguf dim 0", AT(t0_ne0), 0, 8, 0, "absurd dimension"},
    {"gguf dim 2^62", AT(t0_ne0), 0, 8, (uint64_t)1 << 62, "absurd dimension"},
    {"gguf unknown tensor type", AT(t0_type), 0, 4, 99, "unknown type"},
    {"gguf removed tensor type 4", AT(t0_type), 0, 4, 4, "unknown type"},
    {"gguf offset past end", AT(t1_off), 0, 8, 4096, "past the end"},
    {"gguf offset 2^63", AT(t1_off), 0, 8, (uint64_t)1 << 63, "past the end"},
    {"gguf misaligned offset", AT(t1_off), 0, 8, 4, "not aligned"},
    {"gguf overlapping tensors", AT(t1_off), 0, 8, 0, "overlap"},
    {"gguf duplicate tensor names", AT(t1_name), 8, 1, 'a', "duplicate tensor name"},
};

static void gguf_corpus(void) {
    kiln_test_bytes good = {0};
    gguf_marks m;
    build_gguf(&good, &m);
    char path[4096], label[128];
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_ok.gguf"), good.p, good.n);
    CHECK_OK(open_gguf(path)); /* the base file is valid: each case has exactly one defect */

    for (size_t i = 0; i < sizeof g_gguf_patches / sizeof g_gguf_patches[0]; i++) {
        const gguf_patch *c = &g_gguf_patches[i];
        size_t at;
        memcpy(&at, (const char *)&m + c->field, sizeof at);
        at += c->extra;
        kiln_test_bytes b = {0};
        kiln_test_bytes_put(&b, good.p, good.n);
        if (c->width == 4) patch_u32(&b, at, (uint32_t)c->value);
        else if (c->width == 8) patch_u64(&b, at, c->value);
        else b.p[at] = (uint8_t)c->value;
        snprintf(label, sizeof label, "broken_gguf_%zu.gguf", i);
        kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, label), b.p, b.n);
        expect_fail(c->name, open_gguf, path, path, c->keywords);
        kiln_test_bytes_free(&b);
    }

    /* wrong magic */
    kiln_test_bytes b = {0};
    kiln_test_bytes_put(&b, good.p, good.n);
    memcpy(b.p, "GGUX", 4);
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_magic.gguf"), b.p, b.n);
    expect_fail("gguf wrong magic", open_gguf, path, path, "magic");
    kiln_test_bytes_free(&b);

    /* Q4_0 whose rows are not whole blocks */
    kiln_test_bytes_put(&b, good.p, good.n);
    patch_u32(&b, m.t0_type, KILN_Q4_0);
    patch_u64(&b, m.t0_ne0, 33);
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_q4.gguf"), b.p, b.n);
    expect_fail("gguf q4_0 ne[0] 33", open_gguf, path, path, "not valid for type");
    kiln_test_bytes_free(&b);

    /* truncated at every 1/16th */
    for (int k = 0; k < 16; k++) {
        size_t len = good.n * (size_t)k / 16;
        snprintf(label, sizeof label, "broken_trunc_%02d.gguf", k);
        kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, label), good.p, len);
        snprintf(label, sizeof label, "gguf truncated at %zu of %zu", len, good.n);
        expect_fail(label, open_gguf, path, path, "truncated|past the end|does not fit|more than the file");
    }
    kiln_test_bytes_free(&good);

    /* arrays nested 100 deep */
    kiln_test_bytes_put(&b, "GGUF", 4);
    kiln_test_bytes_u32(&b, 3);
    kiln_test_bytes_u64(&b, 0);
    kiln_test_bytes_u64(&b, 1);
    kiln_test_bytes_str(&b, "deep");
    kiln_test_bytes_u32(&b, KILN_GGUF_ARRAY);
    for (int d = 0; d < 99; d++) {
        kiln_test_bytes_u32(&b, KILN_GGUF_ARRAY);
        kiln_test_bytes_u64(&b, 1);
    }
    kiln_test_bytes_u32(&b, KILN_GGUF_UINT8);
    kiln_test_bytes_u64(&b, 0);
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_deep.gguf"), b.p, b.n);
    expect_fail("gguf nested 100 deep", open_gguf, path, path, "nested deeper");
    kiln_test_bytes_free(&b);

    /* duplicate metadata keys, and a general.alignment that is not a power of two */
    for (int k = 0; k < 2; k++) {
        kiln_test_bytes_put(&b, "GGUF", 4);
        kiln_test_bytes_u32(&b, 3);
        kiln_test_bytes_u64(&b, 0);
        kiln_test_bytes_u64(&b, 2);
        kiln_test_bytes_str(&b, k == 0 ? "dup" : "general.alignment");
        kiln_test_bytes_u32(&b, KILN_GGUF_UINT32);
        kiln_test_bytes_u32(&b, 24);
        kiln_test_bytes_str(&b, k == 0 ? "dup" : "other");
        kiln_test_bytes_u32(&b, KILN_GGUF_UINT32);
        kiln_test_bytes_u32(&b, 1);
        kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_kv.gguf"), b.p, b.n);
        expect_fail(k == 0 ? "gguf duplicate key" : "gguf alignment 24", open_gguf, path, path,
                    k == 0 ? "duplicate metadata key" : "alignment");
        kiln_test_bytes_free(&b);
    }
    expect_fail("gguf missing file", open_gguf, "/nonexistent/broken.gguf", "/nonexistent/broken.gguf", "cannot open");
}

/* ==== safetensors =============================================================== */

static void st_case(const char *label, const char *json, size_t data_len, const char *keywords) {
    static const uint8_t data[64];
    char path[4096], name[128];
    snprintf(name, sizeof name, "broken_st_%s.safetensors", label);
    for (char *p = name; *p; p++) {
        if (*p == ' ') *p = '_';
    }
    kiln_test_tmp_path(path, sizeof path, name);
    kiln_test_write_safetensors(path, json, data, data_len);
    expect_fail(label, open_st, path, path, keywords);
}

static void st_corpus(void) {
    char path[4096];
    kiln_test_bytes b = {0};
    kiln_test_bytes_u64(&b, (uint64_t)1 << 60);
    kiln_test_bytes_put(&b, "{}", 2);
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_st_hlen.safetensors"), b.p, b.n);
    expect_fail("st header length 2^60", open_st, path, path, "absurd");
    kiln_test_bytes_free(&b);
    kiln_test_bytes_u64(&b, 1000);
    kiln_test_bytes_put(&b, "{}", 2);
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_st_hlen2.safetensors"), b.p, b.n);
    expect_fail("st header past end", open_st, path, path, "past the end of the file");
    kiln_test_bytes_free(&b);
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_st_short.safetensors"), "abc", 3);
    expect_fail("st 3-byte file", open_st, path, path, "truncated");

    st_case("not json", "{\"a\": {\"dtype\": \"F32\", ", 0, "not valid JSON");
    st_case("json array", "[1, 2]", 0, "not an object");
    st_case("entry not object", "{\"a\": 5}", 0, "not a JSON object");
    st_case("no dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    st_case("no shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape");
    st_case("no offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    st_case("three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "data_offsets");
    st_case("offsets past end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16,
            "past the end");
    st_case("offsets reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 16, "reversed");
    st_case("offset negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16, "data_offsets");
    st_case("offset huge", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e30,1e30]}}", 16,
            "data_offsets");
    st_case("size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16, "size mismatch");
    st_case("overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, "overlap");
    st_case("bad dtype", "{\"a\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    st_case("dtype not string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    st_case("unsupported dtype", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, "dtype U8");
    st_case("negative shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape");
    st_case("fractional shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape");
    st_case("string shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "shape");
    st_case("huge shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, "shape");
    st_case("overflowing shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                                 "\"data_offsets\":[0,4]}}", 4, "too large");
    st_case("byte size overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[1125899906842624,4096],"
                                  "\"data_offsets\":[0,4]}}", 4, "too large");
    st_case("five dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
            "dimensions");
    st_case("duplicate name", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate");
    st_case("metadata not object", "{\"__metadata__\":[1]}", 0, "__metadata__");
    st_case("metadata value not string", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__");
    st_case("empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty name");
}

static void write_json(const char *dir, const char *name, const char *json) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    kiln_test_write_file(path, json, strlen(json));
}

static void st_shard(const char *dir, const char *name, const char *tensor) {
    char path[4096], json[256];
    float d[2] = {1, 2};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(json, sizeof json, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", tensor);
    kiln_test_write_safetensors(path, json, d, sizeof d);
}

static void write_index(const char *dir, const char *json) { write_json(dir, "model.safetensors.index.json", json); }

static void st_index_corpus(void) {
    char dir[4096], idx[4200], shard[4200];
    kiln_test_tmp_dir(dir, sizeof dir, "broken_st_index");
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    st_shard(dir, "s1.safetensors", "x");
    st_shard(dir, "s2.safetensors", "x");

    write_index(dir, "{\"weight_map\":{\"x\":\"s1.safetensors\",\"y\":\"gone.safetensors\"}}");
    expect_fail("index missing shard", open_st, idx, idx, "gone.safetensors");
    expect_fail("index missing shard (folder)", open_st, dir, "gone.safetensors", "cannot open");
    write_index(dir, "{\"weight_map\":{\"x\":\"../s1.safetensors\"}}");
    expect_fail("index escaping with ..", open_st, idx, idx, "escaping");
    write_index(dir, "{\"weight_map\":{\"x\":\"/etc/passwd\"}}");
    expect_fail("index absolute path", open_st, idx, idx, "escaping");
    write_index(dir, "{\"weight_map\":{\"x\":\"..\"}}");
    expect_fail("index dot-dot", open_st, idx, idx, "escaping");
    write_index(dir, "{\"weight_map\":{\"x\":\"s1.safetensors\",\"z\":\"s1.safetensors\"}}");
    expect_fail("index tensor not in shard", open_st, idx, idx, "missing from shard");
    write_index(dir, "{\"weight_map\":{\"x\":\"s1.safetensors\",\"q\":\"s2.safetensors\"}}");
    expect_fail("index duplicate across shards", open_st, idx, idx, "duplicate tensor name");
    st_shard(dir, "s3.safetensors", "w");
    write_index(dir, "{\"weight_map\":{\"x\":\"s1.safetensors\",\"w\":\"s1.safetensors\","
                                                    "\"v\":\"s3.safetensors\"}}");
    expect_fail("index wrong shard", open_st, idx, idx, "missing from shard|mapped to");
    write_index(dir, "{\"weight_map\":{}}");
    expect_fail("index empty map", open_st, idx, idx, "empty");
    write_index(dir, "{\"metadata\":{}}");
    expect_fail("index without weight_map", open_st, idx, idx, "weight_map");
    write_index(dir, "{\"weight_map\":{\"x\":5}}");
    expect_fail("index value not string", open_st, idx, idx, "not a file name");
    write_index(dir, "{\"weight_map\":");
    expect_fail("index not json", open_st, idx, idx, "not valid JSON");
    /* a shard that is itself broken is reported under its own name */
    snprintf(shard, sizeof shard, "%s/bad.safetensors", dir);
    kiln_test_write_file(shard, "xy", 2);
    write_index(dir, "{\"weight_map\":{\"x\":\"bad.safetensors\"}}");
    expect_fail("index broken shard", open_st, idx, shard, "truncated");

    kiln_test_tmp_dir(dir, sizeof dir, "broken_st_empty_dir");
    expect_fail("folder without model", open_st, dir, dir, "folder holds no");
}

/* ==== llama2.c ================================================================== */

static void l2c_case(const char *label, const int32_t h[7], size_t extra, const char *keywords) {
    kiln_test_bytes b = {0};
    kiln_test_bytes_put(&b, h, 7 * sizeof *h);
    static const uint8_t zeros[1024];
    for (size_t n = extra; n; n -= n < sizeof zeros ? n : sizeof zeros)
        kiln_test_bytes_put(&b, zeros, n < sizeof zeros ? n : sizeof zeros);
    char path[4096], name[128];
    snprintf(name, sizeof name, "broken_l2c_%s.bin", label);
    for (char *p = name; *p; p++) {
        if (*p == ' ') *p = '_';
    }
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, name), b.p, b.n);
    expect_fail(label, open_l2c, path, path, keywords);
    kiln_test_bytes_free(&b);
}

static void l2c_corpus(void) {
    /* stories260K's header: the full file is 1056540 bytes */
    l2c_case("truncated", (int32_t[7]){64, 172, 5, 8, 4, 512, 512}, 1000, "1055512 bytes missing");
    l2c_case("unshared truncated", (int32_t[7]){64, 172, 5, 8, 4, -512, 512}, 1056512, "131072 bytes missing");
    l2c_case("zero dim", (int32_t[7]){0, 172, 5, 8, 4, 512, 512}, 0, "dim is 0");
    l2c_case("zero layers", (int32_t[7]){64, 172, 0, 8, 4, 512, 512}, 0, "n_layers is 0");
    l2c_case("negative hidden", (int32_t[7]){64, -172, 5, 8, 4, 512, 512}, 0, "hidden_dim is -172");
    l2c_case("negative seq", (int32_t[7]){64, 172, 5, 8, 4, 512, -1}, 0, "seq_len");
    l2c_case("vocab int32 min", (int32_t[7]){64, 172, 5, 8, 4, INT32_MIN, 512}, 0, "vocab_size");
    l2c_case("heads not dividing dim", (int32_t[7]){64, 172, 5, 7, 7, 512, 512}, 0, "not divisible by n_heads");
    l2c_case("kv heads not dividing", (int32_t[7]){64, 172, 5, 8, 3, 512, 512}, 0, "not divisible by n_kv_heads");
    l2c_case("odd head size", (int32_t[7]){24, 172, 5, 8, 8, 512, 512}, 0, "odd");
    l2c_case("absurd dim", (int32_t[7]){1 << 30, 172, 5, 8, 4, 512, 512}, 0, "absurdly large");
    l2c_case("absurd layers", (int32_t[7]){64, 172, 100000, 8, 4, 512, 512}, 0, "absurdly large");
    l2c_case("absurd kv heads", (int32_t[7]){64, 172, 5, 8, INT32_MAX, 512, 512}, 0, "absurdly large");
    l2c_case("largest sane sizes", (int32_t[7]){1 << 20, 1 << 20, 4096, 1 << 10, 1 << 10, 1 << 20, 1 << 20}, 0,
             "bytes missing");

    char path[4096];
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_l2c_short.bin"), "abcdefghij", 10);
    expect_fail("l2c 10-byte file", open_l2c, path, path, "truncated");
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_l2c_empty.bin"), "", 0);
    expect_fail("l2c empty file", open_l2c, path, path, "truncated");

    /* version-1 headers */
    uint8_t h1[256] = {0};
    uint32_t magic = 0x616b3432;
    int32_t v = 2, cfg[7] = {64, 172, 5, 8, 4, 512, 512};
    memcpy(h1, &magic, 4);
    memcpy(h1 + 4, &v, 4);
    memcpy(h1 + 8, cfg, sizeof cfg);
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "broken_l2c_v2.bin"), h1, sizeof h1);
    expect_fail("l2c version 2", open_l2c, path, path, "version 2");
    CHECK(open_l2c(path) == KILN_ERR_UNSUPPORTED);
    v = 1;
    memcpy(h1 + 4, &v, 4);
    h1[36] = 7;
    kiln_test_write_file(path, h1, sizeof h1);
    expect_fail("l2c v1 bad flag", open_l2c, path, path, "flag");
    h1[36] = 1;
    kiln_test_write_file(path, h1, sizeof h1);
    expect_fail("l2c v1 no weights", open_l2c, path, path, "bytes missing");
    kiln_test_write_file(path, h1, 40);
    expect_fail("l2c v1 short header", open_l2c, path, path, "truncated");
}

/* ==== mutation sweep ============================================================ */

/* Every header byte of the valid GGUF set to 0x00, 0x80 and 0xff in turn: each open must
 * either fail with a message or yield tensors that lie inside the file. */
static void gguf_sweep(void) {
    kiln_test_bytes good = {0};
    gguf_marks m;
    build_gguf(&good, &m);
    char path[4096];
    kiln_test_tmp_path(path, sizeof path, "broken_sweep.gguf");
    static const uint8_t values[3] = {0x00, 0x80, 0xff};
    int opened = 0, failed = 0;
    for (size_t i = 0; i + 64 < good.n; i++) { /* the last 64 bytes are tensor data */
        for (int v = 0; v < 3; v++) {
            if (good.p[i] == values[v]) continue;
            uint8_t saved = good.p[i];
            good.p[i] = values[v];
            kiln_test_write_file(path, good.p, good.n);
            good.p[i] = saved;
            kiln_gguf *g = NULL;
            kiln_status st = kiln_gguf_open(path, &g);
            if (st) {
                failed++;
                CHECK_MSG(strstr(kiln_last_error(), path) != NULL, "byte %zu = %u: %s", i, values[v],
                          kiln_last_error());
                continue;
            }
            opened++;
            for (uint64_t k = 0; k < g->n_tensors; k++) {
                const uint8_t *d = g->tensors[k].t.data;
                CHECK(d >= g->map.data && g->tensors[k].size <= g->map.size &&
                      (size_t)(d - g->map.data) <= g->map.size - g->tensors[k].size);
            }
            kiln_gguf_close(g);
        }
    }
    CHECK(failed > 0 && opened > 0); /* some bytes (values, data) are harmless */
    kiln_test_bytes_free(&good);
}

/* Every byte of a safetensors header replaced by characters that break JSON or numbers. */
static void st_sweep(void) {
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[16,24]}}";
    static const char repl[] = {'9', '-', '"', '}', ']', ',', '\0', 'e'};
    uint8_t data[24] = {0};
    char path[4096], buf[512];
    kiln_test_tmp_path(path, sizeof path, "broken_sweep.safetensors");
    size_t n = strlen(json);
    for (size_t i = 0; i < n; i++) {
        for (size_t r = 0; r < sizeof repl; r++) {
            memcpy(buf, json, n + 1);
            buf[i] = repl[r];
            kiln_test_bytes b = {0};
            kiln_test_bytes_u64(&b, n);
            kiln_test_bytes_put(&b, buf, n);
            kiln_test_bytes_put(&b, data, sizeof data);
            kiln_test_write_file(path, b.p, b.n);
            size_t file_size = b.n;
            kiln_test_bytes_free(&b);
            kiln_safetensors *st = NULL;
            if (kiln_safetensors_open(path, &st) == KILN_OK) {
                const kiln_weight_list *w = kiln_safetensors_weights(st);
                for (size_t k = 0; k < w->n; k++) {
                    size_t file;
                    uint64_t off;
                    kiln_safetensors_locate(st, k, &file, &off);
                    CHECK(file == 0 && off + w->items[k].t.nb[3] * (size_t)w->items[k].t.ne[3] <= file_size);
                }
                kiln_safetensors_close(st);
            } else {
                CHECK_MSG(strstr(kiln_last_error(), path) != NULL, "%s", kiln_last_error());
            }
        }
    }
}

int main(void) {
    gguf_sweep();
    st_sweep();
    gguf_corpus();
    st_corpus();
    st_index_corpus();
    l2c_corpus();
    TEST_MAIN_END();
}
