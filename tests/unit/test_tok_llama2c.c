/*
 * test_tok_llama2c.c — the llama2.c tokenizer.bin of stories260K (512 tokens).
 *
 * The expected ids were traced with a direct transcription of run.c's encode()
 * (dummy " " token, one token per UTF-8 character else byte + 3, then repeatedly
 * merge the best-scoring adjacent pair, leftmost on ties):
 *   "Once upon a time" -> 1 | " Once" 403, " upon" 407, " a" 261, " time" 378
 * Decoding follows run.c: the piece after BOS drops its leading space.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "test.h"
#include "tokenizers/tokenizer.h"

static void check_ids(const kiln_tokenizer *t, const char *text, bool bos, const int32_t *want, size_t nw) {
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(kiln_tokenizer_encode(t, text, strlen(text), bos, false, &ids, &n));
    bool same = n == nw && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    CHECK_MSG(same, "encode('%s')", text);
    if (!same) {
        fprintf(stderr, "  expected:");
        for (size_t i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n  got:     ");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}

static char *decode(const kiln_tokenizer *t, const int32_t *ids, size_t n) {
    kiln_detok *d = NULL;
    kiln_buf out = {0};
    CHECK_OK(kiln_detok_create(t, &d));
    for (size_t i = 0; d && i < n; i++) CHECK_OK(kiln_detok_push(d, ids[i], &out));
    if (d) CHECK_OK(kiln_detok_flush(d, &out));
    kiln_detok_free(d);
    kiln_buf_append(&out, "", 0);
    return out.data;
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", kiln_test_shared());
    kiln_test_require_file(path);
    kiln_tokenizer *t = NULL;
    CHECK_OK(kiln_tokenizer_from_llama2c(path, 512, &t));
    if (!t) TEST_MAIN_END();
    CHECK(kiln_tokenizer_n_vocab(t) == 512);
    CHECK(kiln_tokenizer_bos(t) == 1);
    CHECK(kiln_tokenizer_eos(t) == 2);
    CHECK(kiln_tokenizer_add_bos(t));
    CHECK(kiln_tokenizer_is_eog(t, 2));
    CHECK(!kiln_tokenizer_is_eog(t, 403));

    static const int32_t once[] = {1, 403, 407, 261, 378};
    check_ids(t, "Once upon a time", true, once, 5);
    check_ids(t, "Once upon a time", false, once + 1, 4);
    static const int32_t lily[] = {1, 317, 439, 419, 357, 336, 432, 313, 438, 310, 432, 278,
                                   316, 439, 419, 298, 414, 267, 265, 282, 295, 433, 426, 436};
    check_ids(t, "Lily's mom said, \"Lily, let's go to the park.\"", true, lily, sizeof lily / sizeof lily[0]);
    /* characters outside the vocabulary fall back to byte tokens (byte + 3) */
    static const int32_t utf[] = {1, 270, 485, 306, 414, 263, 198, 185, 420, 341, 410, 229, 159, 136};
    check_ids(t, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x85", true, utf, sizeof utf / sizeof utf[0]);
    static const int32_t bos_only[] = {1};
    check_ids(t, "", true, bos_only, 1);
    check_ids(t, "", false, NULL, 0);

    /* decoding: run.c drops the space of the piece after BOS; BOS/EOS print nothing */
    char *s = decode(t, once, 5);
    CHECK(s && strcmp(s, "Once upon a time") == 0);
    free(s);
    s = decode(t, once + 1, 4);
    CHECK(s && strcmp(s, " Once upon a time") == 0);
    free(s);
    s = decode(t, utf, sizeof utf / sizeof utf[0]);
    CHECK(s && strcmp(s, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x85") == 0);
    free(s);
    int32_t with_eos[] = {1, 403, 407, 2};
    s = decode(t, with_eos, 4);
    CHECK(s && strcmp(s, "Once upon") == 0);
    free(s);

    kiln_buf piece = {0};
    CHECK_OK(kiln_tokenizer_piece(t, 403, &piece));
    CHECK(piece.len == 5 && memcmp(piece.data, " Once", 5) == 0);
    piece.len = 0;
    CHECK_OK(kiln_tokenizer_piece(t, 13, &piece)); /* <0x0A> */
    CHECK(piece.len == 1 && piece.data[0] == '\n');
    piece.len = 0;
    CHECK_OK(kiln_tokenizer_piece(t, 9999, &piece));
    CHECK(piece.len == 0);
    kiln_buf_free(&piece);

    /* the published story round-trips through encode + decode */
    char story_path[1024];
    snprintf(story_path, sizeof story_path, "%s/models/stories260K/expected_greedy.txt", kiln_test_shared());
    char *story = NULL;
    size_t story_len = 0;
    if (kiln_read_file(story_path, 1 << 20, &story, &story_len) == KILN_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(kiln_tokenizer_encode(t, story, story_len, true, false, &ids, &n));
        CHECK(n > 10 && n < story_len);
        s = decode(t, ids, n);
        CHECK(s && strlen(s) == story_len && memcmp(s, story, story_len) == 0);
        free(s);
        free(ids);
        free(story);
    }
    kiln_tokenizer_free(t);
    TEST_MAIN_END();
}
