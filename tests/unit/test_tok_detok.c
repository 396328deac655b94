/*
 * test_tok_detok.c — the streaming detokenizer, chunk by chunk.
 *
 * Uses the llama-spm and gpt-2 vocabularies of ../shared: a 4-byte emoji spelled as
 * byte tokens (<0xF0><0x9F><0xA6><0x99>) or split across byte-level tokens must leave
 * in one piece once complete; bytes that cannot become valid leave as U+FFFD at once;
 * a truncated character is U+FFFD at flush; the SentencePiece dummy-prefix space is
 * dropped at the start and after BOS; control tokens print nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "test.h"
#include "tokenizers/tokenizer.h"

#define FFFD "\xef\xbf\xbd"

static kiln_tokenizer *load(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/vocab/ggml-vocab-%s.gguf", kiln_test_shared(), name);
    kiln_test_require_file(path);
    kiln_gguf *g = NULL;
    kiln_tokenizer *t = NULL;
    CHECK_OK(kiln_gguf_open(path, &g));
    if (g) CHECK_OK(kiln_tokenizer_from_gguf(g, &t));
    kiln_gguf_close(g);
    return t;
}

/* Pushes ids (then flushes when flush is set) and compares every chunk with want[]
 * (the last entry is the flush output). */
static void expect_chunks(const kiln_tokenizer *t, const int32_t *ids, size_t n, bool flush, const char *const *want,
                          const char *what) {
    kiln_detok *d = NULL;
    CHECK_OK(kiln_detok_create(t, &d));
    if (!d) return;
    kiln_buf chunk = {0};
    for (size_t i = 0; i < n + (flush ? 1 : 0); i++) {
        chunk.len = 0;
        if (i < n) CHECK_OK(kiln_detok_push(d, ids[i], &chunk));
        else CHECK_OK(kiln_detok_flush(d, &chunk));
        bool same = chunk.len == strlen(want[i]) && memcmp(chunk.data ? chunk.data : "", want[i], chunk.len) == 0;
        CHECK_MSG(same, "%s: chunk %zu is '%.*s', expected '%s'", what, i, (int)chunk.len,
                  chunk.data ? chunk.data : "", want[i]);
    }
    kiln_buf_free(&chunk);
    kiln_detok_free(d);
}

int main(void) {
    kiln_tokenizer *spm = load("llama-spm");
    if (spm) {
        /* "🦙" = ▁ <0xF0> <0x9F> <0xA6> <0x99> */
        int32_t ids[] = {29871, 243, 162, 169, 156};
        const char *want[] = {"", "", "", "", "\xf0\x9f\xa6\x99", ""};
        expect_chunks(spm, ids, 5, true, want, "spm emoji");

        /* F0 then "." : the F0 can never complete -> U+FFFD, then "." */
        int32_t bad[] = {243, 29889};
        const char *want_bad[] = {"", FFFD ".", ""};
        expect_chunks(spm, bad, 2, true, want_bad, "spm broken sequence");

        /* a lone continuation byte is invalid at once; a truncated character at flush */
        int32_t lone[] = {131, 243, 162};
        const char *want_lone[] = {FFFD, "", "", FFFD};
        expect_chunks(spm, lone, 3, true, want_lone, "spm lone/truncated");

        /* dummy-prefix space: dropped at the start and after BOS, kept elsewhere;
         * BOS and EOS print nothing */
        int32_t hello[] = {1, 15043, 15043, 2, 1, 15043};
        const char *want_hello[] = {"", "Hello", " Hello", "", "", "Hello"};
        expect_chunks(spm, hello, 6, false, want_hello, "spm spaces");
        int32_t plain[] = {15043, 15043};
        const char *want_plain[] = {"Hello", " Hello", ""};
        expect_chunks(spm, plain, 2, true, want_plain, "spm start");

        /* flush resets the stream: the next text starts a new one */
        kiln_detok *d = NULL;
        kiln_buf out = {0};
        CHECK_OK(kiln_detok_create(spm, &d));
        if (d) {
            CHECK_OK(kiln_detok_push(d, 15043, &out));
            CHECK_OK(kiln_detok_flush(d, &out));
            CHECK_OK(kiln_detok_push(d, 15043, &out));
            CHECK_OK(kiln_detok_push(d, -1, &out));      /* out of range: nothing */
            CHECK_OK(kiln_detok_push(d, 1 << 30, &out)); /* likewise */
            CHECK(out.len == 10 && memcmp(out.data, "HelloHello", 10) == 0);
        }
        CHECK(kiln_detok_push(NULL, 1, &out) == KILN_ERR_INVALID_ARG);
        kiln_detok_free(d);
        kiln_buf_free(&out);

        /* pieces: "▁" -> " ", byte tokens -> the byte, controls -> their text */
        kiln_buf p = {0};
        CHECK_OK(kiln_tokenizer_piece(spm, 15043, &p));
        CHECK(p.len == 6 && memcmp(p.data, " Hello", 6) == 0);
        p.len = 0;
        CHECK_OK(kiln_tokenizer_piece(spm, 243, &p));
        CHECK(p.len == 1 && (unsigned char)p.data[0] == 0xF0);
        p.len = 0;
        CHECK_OK(kiln_tokenizer_piece(spm, 1, &p));
        CHECK(p.len == 3 && memcmp(p.data, "<s>", 3) == 0);
        p.len = 0;
        CHECK_OK(kiln_tokenizer_piece(spm, -7, &p));
        CHECK(p.len == 0);
        kiln_buf_free(&p);
        CHECK(kiln_tokenizer_is_eog(spm, 2) && !kiln_tokenizer_is_eog(spm, 1) && !kiln_tokenizer_is_eog(spm, -1));
        CHECK(kiln_tokenizer_bos(spm) == 1 && kiln_tokenizer_eos(spm) == 2 && kiln_tokenizer_add_bos(spm));
        kiln_tokenizer_free(spm);
    }

    kiln_tokenizer *gpt2 = load("gpt-2");
    if (gpt2) {
        /* " this is 🦙.cpp": the emoji's bytes are spread over " \xf0\x9f", "\xa6", "\x99" */
        int32_t ids[] = {428, 318, 12520, 99, 247, 13, 20322, 50256};
        const char *want[] = {" this", " is", " ", "", "\xf0\x9f\xa6\x99", ".", "cpp", "", ""};
        expect_chunks(gpt2, ids, 8, true, want, "byte-level emoji");
        CHECK(kiln_tokenizer_is_eog(gpt2, 50256));
        CHECK(!kiln_tokenizer_add_bos(gpt2));
        kiln_tokenizer_free(gpt2);
    }

    kiln_tokenizer *bert = load("bert-bge");
    if (bert) {
        /* WordPiece: [CLS] hello world ##s [SEP] -> "hello worlds" */
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(kiln_tokenizer_encode(bert, "Hello worlds", 12, true, false, &ids, &n));
        CHECK(n >= 4 && ids[0] == 101 && ids[n - 1] == 102);
        kiln_detok *d = NULL;
        kiln_buf out = {0};
        CHECK_OK(kiln_detok_create(bert, &d));
        for (size_t i = 0; d && i < n; i++) CHECK_OK(kiln_detok_push(d, ids[i], &out));
        if (d) CHECK_OK(kiln_detok_flush(d, &out));
        CHECK(out.len == 12 && memcmp(out.data, "hello worlds", 12) == 0);
        kiln_buf_free(&out);
        kiln_detok_free(d);
        free(ids);
        kiln_tokenizer_free(bert);
    }
    TEST_MAIN_END();
}
