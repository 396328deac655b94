/*
 * test_describe.c — `kiln info`'s descriptions: one file of each format (the real
 * stories260K checkpoint and files the test writes) must be detected and described
 * with their metadata and tensor table; unknown and broken files must fail clearly.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/buf.h"
#include "files.h"
#include "formats/describe.h"
#include "formats/gguf_write.h"
#include "test.h"

/* Describes path and checks the text holds every needle (NULL-terminated list). */
static void expect_desc(const char *path, const char *const *needles) {
    kiln_buf b = {0};
    kiln_status st = kiln_describe_file(path, &b);
    CHECK_MSG(st == KILN_OK, "%s: %s", path, kiln_last_error());
    if (getenv("KILN_TEST_VERBOSE") && b.data) fputs(b.data, stdout);
    for (const char *const *n = needles; *n; n++)
        CHECK_MSG(b.data && strstr(b.data, *n), "description of %s lacks '%s'", path, *n);
    kiln_buf_free(&b);
}

static void expect_fail(const char *path, kiln_status want, const char *keyword) {
    kiln_buf b = {0};
    kiln_status st = kiln_describe_file(path, &b);
    CHECK_MSG(st == want, "%s: got %s: %s", path, kiln_status_name(st), kiln_last_error());
    CHECK_MSG(strstr(kiln_last_error(), path) && strstr(kiln_last_error(), keyword), "%s: %s", path,
              kiln_last_error());
    kiln_buf_free(&b);
}

static void test_gguf(void) {
    char path[4096];
    kiln_gguf_writer *w;
    CHECK_OK(kiln_gguf_writer_create(&w));
    if (!w) return;
    const char *toks[10] = {"<unk>", "<s>", "</s>", "a\nb", "\"q\"", "e", "f", "g", "h", "i"};
    char longs[300];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    float a[6] = {0};
    int64_t ne[2] = {3, 2};
    CHECK_OK(kiln_gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK_OK(kiln_gguf_writer_set_u32(w, "llama.block_count", 5));
    CHECK_OK(kiln_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f));
    CHECK_OK(kiln_gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", toks, 10));
    CHECK_OK(kiln_gguf_writer_set_str(w, "long", longs));
    CHECK_OK(kiln_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", KILN_F32, 2, ne, a));
    CHECK_OK(kiln_gguf_writer_write(w, kiln_test_tmp_path(path, sizeof path, "desc.gguf")));
    kiln_gguf_writer_free(w);
    const char *needles[] = {"GGUF version 3", "general.architecture = \"llama\"", "llama.block_count = 5 (u32)",
                             "llama.rope.freq_base = 10000 (f32)",
                             "tokenizer.ggml.tokens = [str; 10] \"<unk>\", \"<s>\", \"</s>\", \"a\\nb\", \"\\\"q\\\"\"",
                             ", ...", "(299 bytes)", "blk.0.attn_q.weight", "[3, 2]", NULL};
    expect_desc(path, needles);
}

static void test_safetensors(void) {
    char dir[4096], path[4200];
    kiln_test_tmp_dir(dir, sizeof dir, "desc_st");
    float d[6] = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    kiln_test_write_safetensors(path, "{\"__metadata__\":{\"format\":\"pt\"},"
                                      "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
                                d, sizeof d);
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *cfg = "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":3}";
    kiln_test_write_file(path, cfg, strlen(cfg));
    const char *needles[] = {"safetensors, 1 tensors in 1 file", "architectures = [LlamaForCausalLM]",
                             "model_type = llama", "format = \"pt\"", "lm_head.weight", "[2, 3]", NULL};
    expect_desc(dir, needles);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    expect_desc(path, needles); /* the file: config.json beside it is found too */
}

int main(void) {
    char path[4096];
    test_gguf();
    test_safetensors();

    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", kiln_test_shared());
    if (access(path, R_OK) == 0) {
        const char *needles[] = {"llama2.c checkpoint (version 0)", "dim = 64", "n_kv_heads = 4",
                                 "shared_classifier = true", "tok_embeddings.weight", "[512, 64]",
                                 "layers.4.feed_forward.w2.weight", "[64, 172]", NULL};
        expect_desc(path, needles);
    }
    snprintf(path, sizeof path, "%s/tokenizers/vocab/ggml-vocab-llama-spm.gguf", kiln_test_shared());
    if (access(path, R_OK) == 0) {
        const char *needles[] = {"tokenizer.ggml.tokens = [str; 32000] \"<unk>\", \"<s>\"", "0 tensors", NULL};
        expect_desc(path, needles);
    }

    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "desc_text.txt"), "hello world\n", 12);
    expect_fail(path, KILN_ERR_UNSUPPORTED, "unrecognized");
    kiln_test_tmp_path(path, sizeof path, "desc_zip.bin");
    kiln_test_write_file(path, "PK\003\004xxxxxxxxxxxxxxxxxxxxxxx", 28);
    expect_fail(path, KILN_ERR_UNSUPPORTED, "zip");
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "desc_bad.gguf"), "GGUF\003\0\0\0", 8);
    expect_fail(path, KILN_ERR_FORMAT, "truncated");
    static const char zeros[28];
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "desc_bad.bin"), zeros, sizeof zeros);
    expect_fail(path, KILN_ERR_FORMAT, "dim is 0");
    expect_fail("/nonexistent/model.gguf", KILN_ERR_IO, "cannot open");
    TEST_MAIN_END();
}
