/*
 * test_llama2c.c — reads the real stories260K checkpoint (config, shapes, first
 * values, the shared classifier), then checks the same weights through two files the
 * test derives from it: a version-1 export (other header and order) and a legacy file
 * with a separate classifier (negative vocab_size).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "files.h"
#include "formats/llama2c.h"
#include "test.h"

static size_t tensor_bytes(const kiln_tensor *t) { return t->nb[3] * (size_t)t->ne[3]; }

static void check_stories(const kiln_llama2c *m) {
    const kiln_llama2c_config *c = kiln_llama2c_config_get(m);
    CHECK(c->dim == 64 && c->hidden_dim == 172 && c->n_layers == 5 && c->n_heads == 8 && c->n_kv_heads == 4);
    CHECK(c->vocab_size == 512 && c->seq_len == 512);
    const kiln_weight_list *w = kiln_llama2c_weights(m);
    CHECK(w->n == 1 + 5 * 9 + 1 + 1);
    const kiln_tensor *tok = kiln_weights_find(w, "tok_embeddings.weight");
    const kiln_tensor *out = kiln_weights_find(w, "output.weight");
    CHECK(tok && tok->type == KILN_F32 && tok->n_dims == 2 && tok->ne[0] == 64 && tok->ne[1] == 512);
    CHECK(out && out->ne[0] == 64 && out->ne[1] == 512);
    if (tok) {
        const float *f = tok->data;
        CHECK(f[0] == -0.29474878f && f[1] == 0.5618956f && f[2] == 0.17542253f && f[3] == 0.3405736f);
    }
    const struct {
        const char *name;
        int64_t ne0, ne1;
    } shapes[] = {
        {"norm.weight", 64, 1},
        {"layers.0.attention_norm.weight", 64, 1},
        {"layers.4.ffn_norm.weight", 64, 1},
        {"layers.2.attention.wq.weight", 64, 64},
        {"layers.2.attention.wk.weight", 64, 32},
        {"layers.2.attention.wv.weight", 64, 32},
        {"layers.2.attention.wo.weight", 64, 64},
        {"layers.3.feed_forward.w1.weight", 64, 172},
        {"layers.3.feed_forward.w2.weight", 172, 64},
        {"layers.3.feed_forward.w3.weight", 64, 172},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const kiln_tensor *t = kiln_weights_find(w, shapes[i].name);
        CHECK_MSG(t && t->ne[0] == shapes[i].ne0 && t->ne[1] == shapes[i].ne1, "%s", shapes[i].name);
    }
    CHECK(kiln_weights_find(w, "layers.5.attention.wq.weight") == NULL);
}

int main(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", kiln_test_shared());
    kiln_test_require_file(path);

    kiln_llama2c *m = NULL;
    CHECK_OK(kiln_llama2c_open(path, &m));
    if (!m) TEST_MAIN_END();
    check_stories(m);
    const kiln_weight_list *w = kiln_llama2c_weights(m);
    const kiln_llama2c_config *c = kiln_llama2c_config_get(m);
    CHECK(c->shared_classifier && c->version == 0);
    const kiln_tensor *tok = kiln_weights_find(w, "tok_embeddings.weight");
    const kiln_tensor *out = kiln_weights_find(w, "output.weight");
    CHECK(tok && out && tok->data == out->data);
    /* norm.weight comes right before the RoPE tables: check its place in the file */
    const kiln_tensor *norm = kiln_weights_find(w, "norm.weight");
    uint64_t expect = 28 + 4 * (512 * 64 + 5 * (64 + 64 * 64 + 2 * 64 * 32 + 64 * 64 + 64 + 3 * 64 * 172));
    for (size_t i = 0; i < w->n; i++) {
        if (&w->items[i].t == norm) CHECK(kiln_llama2c_offset(m, i) == expect);
    }

    /* ---- version 1: 256-byte header, norms first ---- */
    static const char *const v1_order[] = {"attention_norm", "ffn_norm", "norm", "tok", "attention.wq",
                                           "attention.wk", "attention.wv", "attention.wo", "feed_forward.w1",
                                           "feed_forward.w2", "feed_forward.w3"};
    kiln_test_bytes b = {0};
    uint32_t magic = 0x616b3432;
    int32_t version = 1, hdr[7] = {64, 172, 5, 8, 4, 512, 512};
    kiln_test_bytes_put(&b, &magic, 4);
    kiln_test_bytes_put(&b, &version, 4);
    kiln_test_bytes_put(&b, hdr, sizeof hdr);
    uint8_t shared = 1;
    kiln_test_bytes_put(&b, &shared, 1);
    kiln_test_bytes_pad(&b, 256);
    for (size_t k = 0; k < sizeof v1_order / sizeof v1_order[0]; k++) {
        for (size_t i = 0; i < w->n; i++) {
            const char *n = w->items[i].name;
            bool match = !strcmp(v1_order[k], "norm") ? !strcmp(n, "norm.weight")
                         : !strcmp(v1_order[k], "tok") ? !strcmp(n, "tok_embeddings.weight")
                         : strncmp(n, "layers.", 7) == 0 && strstr(n, v1_order[k]) != NULL;
            if (match) kiln_test_bytes_put(&b, w->items[i].t.data, tensor_bytes(&w->items[i].t));
        }
    }
    char p1[4096];
    kiln_test_write_file(kiln_test_tmp_path(p1, sizeof p1, "l2c_v1.bin"), b.p, b.n);
    kiln_test_bytes_free(&b);
    kiln_llama2c *m1 = NULL;
    CHECK_OK(kiln_llama2c_open(p1, &m1));
    if (m1) {
        check_stories(m1);
        CHECK(kiln_llama2c_config_get(m1)->version == 1);
        const kiln_weight_list *w1 = kiln_llama2c_weights(m1);
        for (size_t i = 0; i < w->n; i++) {
            const kiln_tensor *t1 = kiln_weights_find(w1, w->items[i].name);
            CHECK_MSG(t1 && memcmp(t1->data, w->items[i].t.data, tensor_bytes(t1)) == 0, "%s", w->items[i].name);
        }
        kiln_llama2c_close(m1);
    }

    /* ---- legacy with a separate classifier: negative vocab, wcls appended ---- */
    kiln_mapfile mf;
    CHECK_OK(kiln_mapfile_open(path, &mf));
    if (mf.data) {
        int32_t h[7];
        memcpy(h, mf.data, sizeof h);
        h[5] = -h[5];
        kiln_test_bytes_put(&b, h, sizeof h);
        kiln_test_bytes_put(&b, mf.data + 28, mf.size - 28);
        float *wcls = malloc(512 * 64 * sizeof *wcls);
        for (int i = 0; i < 512 * 64; i++) wcls[i] = (float)i;
        kiln_test_bytes_put(&b, wcls, 512 * 64 * sizeof *wcls);
        free(wcls);
        char p2[4096];
        kiln_test_write_file(kiln_test_tmp_path(p2, sizeof p2, "l2c_unshared.bin"), b.p, b.n);
        kiln_test_bytes_free(&b);
        kiln_mapfile_close(&mf);
        kiln_llama2c *m2 = NULL;
        CHECK_OK(kiln_llama2c_open(p2, &m2));
        if (m2) {
            check_stories(m2);
            CHECK(!kiln_llama2c_config_get(m2)->shared_classifier);
            const kiln_tensor *o = kiln_weights_find(kiln_llama2c_weights(m2), "output.weight");
            const kiln_tensor *t = kiln_weights_find(kiln_llama2c_weights(m2), "tok_embeddings.weight");
            CHECK(o && t && o->data != t->data);
            if (o) CHECK(((const float *)o->data)[0] == 0 && ((const float *)o->data)[64 * 511 + 63] == 64 * 511 + 63);
            kiln_llama2c_close(m2);
        }
    }
    kiln_llama2c_close(m);
    TEST_MAIN_END();
}
