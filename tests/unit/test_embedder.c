/*
 * test_embedder.c — kiln_embedder end to end on a random-weight BERT (bert-tiny shape,
 * WordPiece vocabulary) written by kiln_model_random: every text's embedding is the
 * same alone, in one call with others of other lengths (sorted and packed into
 * batches internally), with a small token budget, and with 1 or 2 threads; results
 * report token counts; overlong texts are truncated to the model's maximum and
 * reported; outputs are unit vectors; bad input is refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "kiln.h"
#include "test.h"

static kiln_embedder *load(const char *path, int threads, int batch) {
    kiln_embedder_options o = {.path = path, .n_threads = threads, .batch_tokens = batch};
    kiln_embedder *e = NULL;
    kiln_status st = kiln_embedder_load(&o, &e);
    CHECK_MSG(st == KILN_OK, "%s", kiln_last_error());
    return e;
}

int main(void) {
    char path[1024], llama[1024];
    kiln_test_tmp_path(path, sizeof path, "test_embedder.gguf");
    kiln_test_tmp_path(llama, sizeof llama, "test_embedder_llama.gguf");
    kiln_random_model_options ro = {.shape = "bert-tiny", .type = "f32", .seed = 5, .n_threads = 1};
    CHECK_OK(kiln_model_random(path, &ro));
    ro.shape = "tiny";
    CHECK_OK(kiln_model_random(llama, &ro));

    /* a long text: 700 words, far over the 512-token maximum */
    char *long_text = malloc(700 * 4 + 1);
    if (!long_text) return 1;
    for (int i = 0; i < 700; i++) memcpy(long_text + 4 * i, i % 2 ? "cat " : "dog ", 4);
    long_text[700 * 4] = 0;
    const char *texts[] = {"hello world", "", "The quick brown fox jumps over the lazy dog, again and again.",
                           long_text, "hello world", "Ünïcödé ACCENTS and 数字 123"};
    const size_t n = sizeof texts / sizeof texts[0];

    kiln_embedder *e = load(path, 2, 0), *e1 = load(path, 1, 0), *small = load(path, 2, 512);
    if (!e || !e1 || !small) return kiln_test_end(__FILE__);
    kiln_embedder_info info;
    kiln_embedder_get_info(e, &info);
    CHECK(info.dim == 128 && info.max_tokens == 512 && info.normalize && !strcmp(info.pooling, "mean"));
    CHECK(!strcmp(info.format, "gguf") && info.n_layer == 2 && info.n_vocab == 1024);
    CHECK(kiln_embedder_memory(e) > 128u * 1024 * 4);
    const int d = info.dim;
    float *all = malloc(sizeof(float) * n * (size_t)d), *all1 = malloc(sizeof(float) * n * (size_t)d);
    float *alls = malloc(sizeof(float) * n * (size_t)d), *one = malloc(sizeof(float) * (size_t)d);
    kiln_embed_result res[6], r1;
    CHECK_OK(kiln_embedder_embed(e, texts, NULL, n, all, res));
    CHECK_OK(kiln_embedder_embed(e1, texts, NULL, n, all1, NULL));
    CHECK_OK(kiln_embedder_embed(small, texts, NULL, n, alls, NULL));
    CHECK_MSG(!memcmp(all, all1, sizeof(float) * n * (size_t)d), "1 and 2 threads differ");
    CHECK_MSG(!memcmp(all, alls, sizeof(float) * n * (size_t)d), "a 512-token budget changes the results");
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(kiln_embedder_embed(e, &texts[i], NULL, 1, one, &r1));
        CHECK_MSG(!memcmp(one, all + i * (size_t)d, sizeof(float) * (size_t)d), "text %zu: alone differs", i);
        CHECK(r1.tokens == res[i].tokens && r1.truncated == res[i].truncated);
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)one[j] * one[j];
        CHECK_MSG(fabs(sqrt(ss) - 1) < 1e-5, "text %zu: norm %g", i, sqrt(ss));
    }
    CHECK(res[0].tokens == 4 && !res[0].truncated); /* [CLS] hello world [SEP] */
    CHECK(res[1].tokens == 2 && !res[1].truncated); /* [CLS] [SEP] */
    CHECK(res[3].tokens == 512 && res[3].truncated);
    CHECK(!res[5].truncated && res[5].tokens > 4);
    CHECK(!memcmp(all, all + 4 * (size_t)d, sizeof(float) * (size_t)d)); /* the same text twice */
    CHECK(fabsf(kiln_cosine_similarity(all, all + 4 * (size_t)d, d) - 1.0f) < 1e-6f);
    CHECK(kiln_cosine_similarity(all, all + 2 * (size_t)d, d) < 0.999999f);
    float zero[4] = {0};
    CHECK(kiln_cosine_similarity(zero, zero, 4) == 0.0f);

    /* explicit lengths: bytes past lens[i] are not read */
    const char *part = "hello worldXXXX";
    size_t len = 11;
    CHECK_OK(kiln_embedder_embed(e, &part, &len, 1, one, &r1));
    CHECK(!memcmp(one, all, sizeof(float) * (size_t)d));

    /* bad input */
    const char *with_null[] = {"a", NULL};
    CHECK(kiln_embedder_embed(e, with_null, NULL, 2, all, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_embedder_embed(e, texts, NULL, 1, NULL, NULL) == KILN_ERR_INVALID_ARG);
    CHECK_OK(kiln_embedder_embed(e, texts, NULL, 0, all, NULL));
    kiln_embedder_options o = {.path = llama};
    kiln_embedder *bad = NULL;
    CHECK(kiln_embedder_load(&o, &bad) == KILN_ERR_UNSUPPORTED && !bad);
    CHECK(strstr(kiln_last_error(), "bert") != NULL);
    o.path = "/nonexistent/model.gguf";
    CHECK(kiln_embedder_load(&o, &bad) == KILN_ERR_NOT_FOUND && !bad);
    o.path = path;
    o.batch_tokens = -1;
    CHECK(kiln_embedder_load(&o, &bad) == KILN_ERR_INVALID_ARG && !bad);
    /* a tokenizer with more tokens than the model's embedding table */
    char bge[2048];
    snprintf(bge, sizeof bge, "%s/tokenizers/vocab/ggml-vocab-bert-bge.gguf", kiln_test_shared());
    FILE *f = fopen(bge, "rb");
    if (f) {
        fclose(f);
        o = (kiln_embedder_options){.path = path, .tokenizer_path = bge};
        CHECK(kiln_embedder_load(&o, &bad) == KILN_ERR_FORMAT && !bad);
        CHECK(strstr(kiln_last_error(), "tokenizer") != NULL);
    }

    kiln_embedder_free(e);
    kiln_embedder_free(e1);
    kiln_embedder_free(small);
    free(all), free(all1), free(alls), free(one), free(long_text);
    remove(path);
    remove(llama);
    TEST_MAIN_END();
}
