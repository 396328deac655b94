/*
 * test_gguf_write.c — writes GGUF files with every kind of metadata value (nested
 * arrays included) and several tensor types, reads them back with kiln_gguf_open and
 * compares; then checks the writer's argument errors.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "files.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "test.h"

static float g_a[6] = {1, 2, 3, 4, 5, 6};
static uint16_t g_h[4];
static uint8_t g_q[2 * 2 * 34]; /* q8_0, 64 x 2: two rows of two blocks */
static int32_t g_i[3] = {-1, 0, 7};

static void fill_writer(kiln_gguf_writer *w) {
    CHECK_OK(kiln_gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK_OK(kiln_gguf_writer_set_u32(w, "u32", 4000000000u));
    CHECK_OK(kiln_gguf_writer_set_i32(w, "i32", -5));
    CHECK_OK(kiln_gguf_writer_set_u64(w, "u64", (uint64_t)1 << 50));
    CHECK_OK(kiln_gguf_writer_set_f32(w, "f32", 0.25f));
    CHECK_OK(kiln_gguf_writer_set_bool(w, "bool", true));
    CHECK_OK(kiln_gguf_writer_set_str(w, "replaced", "first"));
    CHECK_OK(kiln_gguf_writer_set_str(w, "replaced", "second"));
    int32_t ia[4] = {1, -2, 3, -4};
    float fa[3] = {0.5f, -1.5f, 2};
    uint8_t ba[2] = {1, 0};
    CHECK_OK(kiln_gguf_writer_set_arr(w, "arr.i32", KILN_GGUF_INT32, ia, 4));
    CHECK_OK(kiln_gguf_writer_set_arr(w, "arr.f32", KILN_GGUF_FLOAT32, fa, 3));
    CHECK_OK(kiln_gguf_writer_set_arr(w, "arr.bool", KILN_GGUF_BOOL, ba, 2));
    CHECK_OK(kiln_gguf_writer_set_arr(w, "arr.empty", KILN_GGUF_UINT8, NULL, 0));
    const char *strs[3] = {"<s>", "", "héllo"};
    CHECK_OK(kiln_gguf_writer_set_str_arr(w, "arr.str", strs, 3));

    /* [[1, 2, 3], [4]] of u32, and [[["a", "bc"]]] of strings, through set_value. */
    uint32_t r0[3] = {1, 2, 3}, r1[1] = {4};
    kiln_gguf_value rows[2] = {
        {.type = KILN_GGUF_ARRAY, .arr = {.elem_type = KILN_GGUF_UINT32, .n = 3, .data = (const uint8_t *)r0}},
        {.type = KILN_GGUF_ARRAY, .arr = {.elem_type = KILN_GGUF_UINT32, .n = 1, .data = (const uint8_t *)r1}},
    };
    kiln_gguf_value nested = {.type = KILN_GGUF_ARRAY, .arr = {.elem_type = KILN_GGUF_ARRAY, .n = 2, .items = rows}};
    CHECK_OK(kiln_gguf_writer_set_value(w, "nested.u32", &nested));
    kiln_gguf_str s2[2] = {{"a", 1}, {"bc", 2}};
    kiln_gguf_value inner = {.type = KILN_GGUF_ARRAY, .arr = {.elem_type = KILN_GGUF_STRING, .n = 2, .strs = s2}};
    kiln_gguf_value mid = {.type = KILN_GGUF_ARRAY, .arr = {.elem_type = KILN_GGUF_ARRAY, .n = 1, .items = &inner}};
    kiln_gguf_value outer = {.type = KILN_GGUF_ARRAY, .arr = {.elem_type = KILN_GGUF_ARRAY, .n = 1, .items = &mid}};
    CHECK_OK(kiln_gguf_writer_set_value(w, "nested.str", &outer));
    kiln_gguf_value i8v = {.type = KILN_GGUF_INT8, .i = -7};
    CHECK_OK(kiln_gguf_writer_set_value(w, "i8", &i8v));
    kiln_gguf_value f64v = {.type = KILN_GGUF_FLOAT64, .f = 1e-300};
    CHECK_OK(kiln_gguf_writer_set_value(w, "f64", &f64v));

    for (int i = 0; i < 4; i++) g_h[i] = kiln_f32_to_fp16((float)i / 4);
    for (size_t i = 0; i < sizeof g_q; i++) g_q[i] = (uint8_t)(i * 7);
    int64_t ne_a[2] = {3, 2}, ne_h[1] = {4}, ne_q[2] = {64, 2}, ne_i[3] = {3, 1, 1};
    CHECK_OK(kiln_gguf_writer_add_tensor(w, "a", KILN_F32, 2, ne_a, g_a));
    CHECK_OK(kiln_gguf_writer_add_tensor(w, "h", KILN_F16, 1, ne_h, g_h));
    CHECK_OK(kiln_gguf_writer_add_tensor(w, "blk.0.q", KILN_Q8_0, 2, ne_q, g_q));
    CHECK_OK(kiln_gguf_writer_add_tensor(w, "i", KILN_I32, 3, ne_i, g_i));
}

static void check_file(const char *path, uint32_t align) {
    kiln_gguf *g = NULL;
    CHECK_OK(kiln_gguf_open(path, &g));
    if (!g) return;
    CHECK(g->version == 3 && g->alignment == align && g->data_offset % align == 0);
    kiln_gguf_str s;
    int64_t i;
    double f;
    bool b;
    CHECK(kiln_gguf_get_str(g, "general.architecture", &s) && kiln_gguf_str_eq(s, "llama"));
    CHECK(kiln_gguf_get_i64(g, "u32", &i) && i == 4000000000LL);
    CHECK(kiln_gguf_find(g, "u32")->value.type == KILN_GGUF_UINT32);
    CHECK(kiln_gguf_get_i64(g, "i32", &i) && i == -5);
    CHECK(kiln_gguf_get_i64(g, "u64", &i) && i == (int64_t)1 << 50);
    CHECK(kiln_gguf_get_f64(g, "f32", &f) && f == 0.25);
    CHECK(kiln_gguf_get_bool(g, "bool", &b) && b);
    CHECK(kiln_gguf_get_str(g, "replaced", &s) && kiln_gguf_str_eq(s, "second"));
    CHECK(kiln_gguf_get_i64(g, "i8", &i) && i == -7);
    CHECK(kiln_gguf_get_f64(g, "f64", &f) && f == 1e-300);
    const kiln_gguf_value *v = kiln_gguf_get_arr(g, "arr.i32", KILN_GGUF_INT32);
    CHECK(v && v->arr.n == 4 && kiln_gguf_arr_i64(v, 1) == -2 && kiln_gguf_arr_i64(v, 3) == -4);
    v = kiln_gguf_get_arr(g, "arr.f32", KILN_GGUF_FLOAT32);
    CHECK(v && v->arr.n == 3 && kiln_gguf_arr_f64(v, 1) == -1.5);
    v = kiln_gguf_get_arr(g, "arr.bool", KILN_GGUF_BOOL);
    CHECK(v && v->arr.n == 2 && kiln_gguf_arr_i64(v, 0) == 1 && kiln_gguf_arr_i64(v, 1) == 0);
    v = kiln_gguf_get_arr(g, "arr.empty", KILN_GGUF_UINT8);
    CHECK(v && v->arr.n == 0);
    v = kiln_gguf_get_arr(g, "arr.str", KILN_GGUF_STRING);
    CHECK(v && v->arr.n == 3 && kiln_gguf_str_eq(v->arr.strs[0], "<s>") && v->arr.strs[1].len == 0 &&
          kiln_gguf_str_eq(v->arr.strs[2], "héllo"));
    v = kiln_gguf_get_arr(g, "nested.u32", KILN_GGUF_ARRAY);
    CHECK(v && v->arr.n == 2);
    if (v && v->arr.n == 2) {
        const kiln_gguf_value *r0 = &v->arr.items[0], *r1 = &v->arr.items[1];
        CHECK(r0->arr.elem_type == KILN_GGUF_UINT32 && r0->arr.n == 3 && kiln_gguf_arr_i64(r0, 2) == 3);
        CHECK(r1->arr.n == 1 && kiln_gguf_arr_i64(r1, 0) == 4);
    }
    v = kiln_gguf_get_arr(g, "nested.str", KILN_GGUF_ARRAY);
    CHECK(v && v->arr.n == 1 && v->arr.items[0].arr.elem_type == KILN_GGUF_ARRAY && v->arr.items[0].arr.n == 1);
    if (v && v->arr.n == 1 && v->arr.items[0].arr.n == 1) {
        const kiln_gguf_value *in = &v->arr.items[0].arr.items[0];
        CHECK(in->arr.elem_type == KILN_GGUF_STRING && in->arr.n == 2 && kiln_gguf_str_eq(in->arr.strs[1], "bc"));
    }

    CHECK(g->n_tensors == 4);
    const kiln_gguf_tensor *t = kiln_gguf_find_tensor(g, "a");
    CHECK(t && t->t.type == KILN_F32 && t->t.ne[0] == 3 && t->t.ne[1] == 2 && !memcmp(t->t.data, g_a, sizeof g_a));
    t = kiln_gguf_find_tensor(g, "h");
    CHECK(t && t->t.type == KILN_F16 && !memcmp(t->t.data, g_h, sizeof g_h));
    t = kiln_gguf_find_tensor(g, "blk.0.q");
    CHECK(t && t->t.type == KILN_Q8_0 && t->size == sizeof g_q && !memcmp(t->t.data, g_q, sizeof g_q));
    t = kiln_gguf_find_tensor(g, "i");
    CHECK(t && t->t.type == KILN_I32 && t->t.n_dims == 3 && !memcmp(t->t.data, g_i, sizeof g_i));
    for (uint64_t k = 0; k < g->n_tensors; k++) CHECK(g->tensors[k].offset % align == 0);
    kiln_gguf_close(g);
}

static void test_errors(void) {
    kiln_gguf_writer *w;
    CHECK_OK(kiln_gguf_writer_create(&w));
    if (!w) return;
    float d[64] = {0};
    int64_t ne[5] = {4, 1, 1, 1, 1};
    CHECK_OK(kiln_gguf_writer_add_tensor(w, "x", KILN_F32, 1, ne, d));
    CHECK(kiln_gguf_writer_add_tensor(w, "x", KILN_F32, 1, ne, d) == KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "duplicate") != NULL);
    CHECK(kiln_gguf_writer_add_tensor(w, "y", KILN_F32, 5, ne, d) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_gguf_writer_add_tensor(w, "", KILN_F32, 1, ne, d) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_gguf_writer_add_tensor(w, "y", (kiln_dtype)99, 1, ne, d) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_gguf_writer_add_tensor(w, "y", KILN_F32, 1, ne, NULL) == KILN_ERR_INVALID_ARG);
    int64_t bad[2] = {33, 1}, zero[1] = {0};
    CHECK(kiln_gguf_writer_add_tensor(w, "y", KILN_Q4_0, 2, bad, d) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_gguf_writer_add_tensor(w, "y", KILN_F32, 1, zero, d) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_gguf_writer_set_u32(w, "", 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_gguf_writer_set_arr(w, "k", KILN_GGUF_STRING, d, 1) == KILN_ERR_INVALID_ARG);
    /* nesting deeper than the reader accepts */
    kiln_gguf_value lv[10];
    lv[9] = (kiln_gguf_value){.type = KILN_GGUF_ARRAY, .arr = {.elem_type = KILN_GGUF_UINT8, .n = 0}};
    for (int k = 8; k >= 0; k--)
        lv[k] = (kiln_gguf_value){.type = KILN_GGUF_ARRAY,
                                  .arr = {.elem_type = KILN_GGUF_ARRAY, .n = 1, .items = &lv[k + 1]}};
    CHECK(kiln_gguf_writer_set_value(w, "deep", &lv[0]) == KILN_ERR_INVALID_ARG);
    CHECK_OK(kiln_gguf_writer_set_value(w, "deep", &lv[2])); /* 8 levels: fine */

    char path[4096];
    CHECK(kiln_gguf_writer_write(w, "/nonexistent/dir/x.gguf") == KILN_ERR_IO);
    CHECK(strstr(kiln_last_error(), "/nonexistent/dir/x.gguf") != NULL);
    CHECK_OK(kiln_gguf_writer_set_u32(w, "general.alignment", 48));
    kiln_test_tmp_path(path, sizeof path, "gw_bad_align.gguf");
    CHECK(kiln_gguf_writer_write(w, path) == KILN_ERR_INVALID_ARG);
    CHECK_OK(kiln_gguf_writer_set_u32(w, "general.alignment", 8));
    CHECK_OK(kiln_gguf_writer_write(w, path));
    kiln_gguf *g = NULL;
    CHECK_OK(kiln_gguf_open(path, &g));
    if (g) CHECK(g->alignment == 8 && kiln_gguf_get_arr(g, "deep", KILN_GGUF_ARRAY));
    kiln_gguf_close(g);
    kiln_gguf_writer_free(w);
}

int main(void) {
    char path[4096];
    kiln_gguf_writer *w = NULL;
    CHECK_OK(kiln_gguf_writer_create(&w));
    if (w) {
        fill_writer(w);
        CHECK_OK(kiln_gguf_writer_write(w, kiln_test_tmp_path(path, sizeof path, "gw_roundtrip.gguf")));
        check_file(path, 32);
        CHECK_OK(kiln_gguf_writer_set_u32(w, "general.alignment", 256));
        CHECK_OK(kiln_gguf_writer_write(w, kiln_test_tmp_path(path, sizeof path, "gw_align256.gguf")));
        check_file(path, 256);
        kiln_gguf_writer_free(w);
    }
    /* an empty file (no metadata, no tensors) is valid too */
    CHECK_OK(kiln_gguf_writer_create(&w));
    if (w) {
        CHECK_OK(kiln_gguf_writer_write(w, kiln_test_tmp_path(path, sizeof path, "gw_empty.gguf")));
        kiln_gguf *g = NULL;
        CHECK_OK(kiln_gguf_open(path, &g));
        if (g) CHECK(g->n_kv == 0 && g->n_tensors == 0);
        kiln_gguf_close(g);
        kiln_gguf_writer_free(w);
    }
    test_errors();
    TEST_MAIN_END();
}
