/*
 * test_quant_plan.c — the per-tensor type rules of kiln quantize: pure types, the
 * q4_k_m / q5_k_m mixtures (llama.cpp's layer choice), the row-length fallback, and
 * 1-D tensors kept in F32. Also the streaming GGUF writer (add_tensor_fn) round trip.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "models/quant_plan.h"
#include "test.h"

static kiln_dtype type_of(const char *qname, int n_layer, bool has_output, const char *name, int64_t ne0, int64_t ne1) {
    const kiln_qtype *q = kiln_qtype_find(qname);
    kiln_qplan_model m = {n_layer, has_output};
    int64_t ne[2] = {ne0, ne1};
    return kiln_qplan_tensor_type(q, &m, name, ne1 ? 2 : 1, ne, KILN_F16);
}

/* fills rows with row*1000 + column */
static kiln_status fill_rows(void *user, int64_t row0, int64_t n_rows, void *dst) {
    int64_t ne0 = *(const int64_t *)user;
    float *f = dst;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < ne0; c++) f[r * ne0 + c] = (float)((row0 + r) * 1000 + c);
    return KILN_OK;
}

static kiln_status fill_fail(void *user, int64_t row0, int64_t n_rows, void *dst) {
    return row0 > 0 ? KILN_ERR_IO : fill_rows(user, row0, n_rows, dst);
}

int main(void) {
    CHECK(kiln_qtype_find("Q4_K_M") && kiln_qtype_find("q4_k_m")->ftype == 15);
    CHECK(kiln_qtype_find("q8_0")->ftype == 7 && kiln_qtype_find("q4_0")->ftype == 2);
    CHECK(!kiln_qtype_find("q9_0") && !kiln_qtype_find(NULL));

    CHECK(kiln_qplan_layer("blk.12.attn_v.weight") == 12 && kiln_qplan_layer("blk.x.a") == -1);
    CHECK(kiln_qplan_layer("blk.99999999999999.a") == -1 && kiln_qplan_layer("output.weight") == -1);

    /* pure types: every weight matrix, norms F32 */
    CHECK(type_of("q8_0", 32, true, "output.weight", 4096, 32000) == KILN_Q8_0);
    CHECK(type_of("q8_0", 32, true, "blk.0.attn_norm.weight", 4096, 0) == KILN_F32);
    CHECK(type_of("q4_0", 32, true, "blk.3.ffn_down.weight", 11008, 4096) == KILN_Q4_0);
    CHECK(type_of("f16", 32, true, "blk.3.ffn_down.weight", 11008, 4096) == KILN_F16);

    /* q4_k_m on 32 layers: use_more_bits is true for layers 0-3, 28-31 and 6, 9, ..., 27 */
    const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (int l = 0; l < 32; l++) {
        bool m = false;
        for (size_t k = 0; k < sizeof more / sizeof more[0]; k++) m |= more[k] == l;
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        CHECK_MSG(type_of("q4_k_m", 32, true, name, 4096, 1024) == (m ? KILN_Q6_K : KILN_Q4_K), "%s", name);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        CHECK_MSG(type_of("q5_k_m", 32, true, name, 14336, 4096) == (m ? KILN_Q6_K : KILN_Q5_K), "%s", name);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
        CHECK(type_of("q4_k_m", 32, true, name, 4096, 4096) == KILN_Q4_K);
    }
    CHECK(type_of("q4_k_m", 32, true, "output.weight", 4096, 32000) == KILN_Q6_K);
    CHECK(type_of("q4_k_m", 32, true, "token_embd.weight", 4096, 32000) == KILN_Q4_K);
    /* tied: the embedding is the output */
    CHECK(type_of("q4_k_m", 32, false, "token_embd.weight", 4096, 32000) == KILN_Q6_K);
    /* output rows not a multiple of 256: Q8_0 (smollm's 576) */
    CHECK(type_of("q4_k_m", 30, false, "token_embd.weight", 576, 49152) == KILN_Q8_0);

    /* row fallback: 576 is a multiple of 32, not of 256 */
    kiln_dtype fb = type_of("q4_k", 30, false, "blk.0.attn_q.weight", 576, 576);
    CHECK(fb == (kiln_qplan_can_write(KILN_Q5_0) ? KILN_Q5_0 : KILN_Q8_0));
    CHECK(type_of("q6_k", 30, false, "blk.0.attn_q.weight", 576, 576) == KILN_Q8_0);
    CHECK(type_of("q4_0", 2, true, "blk.0.attn_q.weight", 100, 100) == KILN_F16);
    CHECK(kiln_qplan_can_write(KILN_Q8_0) && kiln_qplan_can_write(KILN_F32) && kiln_qplan_can_read(KILN_Q4_0));

    /* streaming writer: data produced at write time, read back intact */
    char path[512];
    snprintf(path, sizeof path, "%s/quant_plan.%d.gguf", kiln_test_tmp(), (int)getpid());
    kiln_gguf_writer *w = NULL;
    CHECK_OK(kiln_gguf_writer_create(&w));
    int64_t ne[2] = {300, 20000}; /* 24 MB of f32: more than one chunk */
    CHECK_OK(kiln_gguf_writer_add_tensor_fn(w, "t", KILN_F32, 2, ne, fill_rows, &ne[0]));
    CHECK_OK(kiln_gguf_writer_write(w, path));
    kiln_gguf *g = NULL;
    CHECK_OK(kiln_gguf_open(path, &g));
    if (g) {
        const float *f = kiln_gguf_find_tensor(g, "t")->t.data;
        CHECK(f[0] == 0 && f[299] == 299 && f[300] == 1000 && f[(size_t)19999 * 300 + 7] == 19999 * 1000.0f + 7);
        kiln_gguf_close(g);
    }
    kiln_gguf_writer_free(w);
    /* a failing fill leaves no file */
    remove(path);
    CHECK_OK(kiln_gguf_writer_create(&w));
    CHECK_OK(kiln_gguf_writer_add_tensor_fn(w, "t", KILN_F32, 2, ne, fill_fail, &ne[0]));
    CHECK(kiln_gguf_writer_write(w, path) == KILN_ERR_IO);
    FILE *f = fopen(path, "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
    kiln_gguf_writer_free(w);
    remove(path);
    TEST_MAIN_END();
}
