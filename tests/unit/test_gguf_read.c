/*
 * test_gguf_read.c — reads a real GGUF (a vocab-only file from ../shared) and checks
 * metadata getters, arrays of strings and the absence of tensors.
 */
#include <stdio.h>

#include "formats/gguf.h"
#include "test.h"

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/vocab/ggml-vocab-llama-spm.gguf", kiln_test_shared());
    kiln_test_require_file(path);
    kiln_gguf *g = NULL;
    CHECK_OK(kiln_gguf_open(path, &g));
    if (g) {
        CHECK(g->version == 3 || g->version == 2);
        kiln_gguf_str s;
        CHECK(kiln_gguf_get_str(g, "general.architecture", &s) && kiln_gguf_str_eq(s, "llama"));
        CHECK(kiln_gguf_get_str(g, "tokenizer.ggml.model", &s) && kiln_gguf_str_eq(s, "llama"));
        const kiln_gguf_value *tok = kiln_gguf_get_arr(g, "tokenizer.ggml.tokens", KILN_GGUF_STRING);
        CHECK(tok && tok->arr.n == 32000);
        if (tok) CHECK(kiln_gguf_str_eq(tok->arr.strs[1], "<s>"));
        const kiln_gguf_value *sc = kiln_gguf_get_arr(g, "tokenizer.ggml.scores", KILN_GGUF_FLOAT32);
        CHECK(sc && sc->arr.n == 32000);
        int64_t bos;
        CHECK(kiln_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &bos) && bos == 1);
        kiln_gguf_close(g);
    }
    kiln_gguf *bad = NULL;
    CHECK(kiln_gguf_open("/nonexistent/file.gguf", &bad) == KILN_ERR_IO && bad == NULL);
    CHECK(strstr(kiln_last_error(), "/nonexistent/file.gguf") != NULL);
    TEST_MAIN_END();
}
