/*
 * test_clip_tok.c — CLIP's BPE tokenizer on OpenAI's merges file
 * (../shared/tokenizers/clip/bpe_simple_vocab_16e6.txt.gz):
 *  - the vocabulary's layout as CLIP builds it (49408 tokens: byte symbols, the same
 *    ending a word, one per merge, <|startoftext|> 49406, <|endoftext|> 49407);
 *  - ids that CLIP's tokenizer is known to give ("a photo of a cat" is 320 1125 539
 *    320 2368, ids seen in every Stable Diffusion prompt dump; 320 = 256 + 64 is "a</w>"
 *    by construction);
 *  - cleaning (whitespace runs, case) and decode(encode(text)) giving the cleaned text
 *    back with one space after each word, for ASCII, accents, CJK, emoji and invalid
 *    UTF-8 (which becomes U+FFFD);
 *  - the same ids from a Hugging Face vocab.json + merges.txt written from it;
 *  - 77-token windows (start, 75 ids at most, end, padding) and truncation;
 *  - damaged files refused with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "files.h"
#include "test.h"
#include "tokenizers/clip_tok.h"

static int32_t *enc(const kiln_clip_tok *t, const char *s, size_t *n) {
    int32_t *ids = NULL;
    CHECK_OK(kiln_clip_tok_encode(t, s, strlen(s), &ids, n));
    return ids;
}

static char *dec(const kiln_clip_tok *t, const int32_t *ids, size_t n) {
    kiln_buf b = {0};
    CHECK_OK(kiln_clip_tok_decode(t, ids, n, &b));
    kiln_buf_append(&b, "", 1);
    return b.data;
}

int main(void) {
    char gz[2048];
    snprintf(gz, sizeof gz, "%s/tokenizers/clip/bpe_simple_vocab_16e6.txt.gz", kiln_test_shared());
    kiln_test_require_file(gz);
    kiln_clip_tok *t = NULL;
    CHECK_OK(kiln_clip_tok_from_merges_gz(gz, &t));
    if (!t) TEST_MAIN_END();
    CHECK(kiln_clip_tok_n_vocab(t) == 49408 && kiln_clip_tok_bos(t) == 49406 && kiln_clip_tok_eos(t) == 49407);
    CHECK(!strcmp(kiln_clip_tok_text(t, 0), "!") && !strcmp(kiln_clip_tok_text(t, 320), "a</w>"));
    CHECK(!strcmp(kiln_clip_tok_text(t, 256), "!</w>") && kiln_clip_tok_find(t, "a</w>") == 320);
    CHECK(kiln_clip_tok_text(t, 49408) == NULL && kiln_clip_tok_text(t, -1) == NULL);

    size_t n = 0;
    int32_t *ids = enc(t, "a photo of a cat", &n);
    const int32_t cat[] = {320, 1125, 539, 320, 2368};
    CHECK_MSG(n == 5 && !memcmp(ids, cat, sizeof cat), "a photo of a cat: %zu ids, first %d", n, n ? ids[0] : -1);
    free(ids);
    ids = enc(t, "  A   Photo\tOF\na CAT ", &n);
    CHECK(n == 5 && !memcmp(ids, cat, sizeof cat)); /* whitespace and case do not matter */
    free(ids);
    ids = enc(t, "", &n);
    CHECK(n == 0 && ids == NULL);
    ids = enc(t, "<|startoftext|>x<|endoftext|>", &n);
    CHECK(n == 3 && ids[0] == 49406 && ids[2] == 49407);
    free(ids);

    static const char *const texts[][2] = {
        {"a photo of an astronaut riding a horse on mars", "a photo of an astronaut riding a horse on mars "},
        {"Hello, World!! it's 2024 -- isn't it?", "hello , world !! it 's 2 0 2 4 -- isn 't it ? "},
        {"Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e", "caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e "},
        {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80\xf0\x9f\x8e\xa8", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80\xf0\x9f\x8e\xa8 "},
        {"bad \xff byte", "bad \xef\xbf\xbd byte "},
        {"masterpiece, (best quality:1.2), 8k", "masterpiece , ( best quality : 1 . 2 ), 8 k "},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ids = enc(t, texts[i][0], &n);
        char *back = dec(t, ids, n);
        CHECK_MSG(back && !strcmp(back, texts[i][1]), "decode(encode('%s')) = '%s'", texts[i][0], back ? back : "");
        free(back);
        free(ids);
    }

    /* a Hugging Face tokenizer folder with the same vocabulary gives the same ids */
    char vj[1024], mt[1024];
    kiln_test_tmp_path(vj, sizeof vj, "test_clip_vocab.json");
    kiln_test_tmp_path(mt, sizeof mt, "test_clip_merges.txt");
    cJSON *v = cJSON_CreateObject();
    for (int32_t i = 0; i < 49408; i++) cJSON_AddNumberToObject(v, kiln_clip_tok_text(t, i), i);
    char *vtext = cJSON_PrintUnformatted(v);
    kiln_test_write_file(vj, vtext, strlen(vtext));
    free(vtext);
    cJSON_Delete(v);
    /* merges.txt is the merges file itself (its header, then the merges CLIP uses) */
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "zcat '%s' | head -n 48895 > '%s'", gz, mt);
    CHECK(system(cmd) == 0);
    kiln_clip_tok *h = NULL;
    CHECK_OK(kiln_clip_tok_from_hf(vj, mt, &h));
    if (h) {
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            size_t n1 = 0, n2 = 0;
            int32_t *a = enc(t, texts[i][0], &n1), *b = enc(h, texts[i][0], &n2);
            CHECK_MSG(n1 == n2 && (!n1 || !memcmp(a, b, n1 * sizeof *a)), "vocab.json + merges.txt differ on '%s'",
                      texts[i][0]);
            free(a);
            free(b);
        }
        kiln_clip_tok_free(h);
    }

    /* windows */
    int32_t w[77];
    bool cut = true;
    CHECK_OK(kiln_clip_tok_window(t, "a photo of a cat", 16, 77, 49407, w, &cut));
    CHECK(!cut && w[0] == 49406 && !memcmp(w + 1, cat, sizeof cat) && w[6] == 49407 && w[76] == 49407);
    CHECK_OK(kiln_clip_tok_window(t, "a photo of a cat", 16, 77, 0, w, &cut));
    CHECK(w[6] == 49407 && w[7] == 0 && w[76] == 0);
    char longp[1000] = "";
    for (int i = 0; i < 100; i++) strcat(longp, "cat ");
    CHECK_OK(kiln_clip_tok_window(t, longp, strlen(longp), 77, 49407, w, &cut));
    CHECK(cut && w[0] == 49406 && w[1] == 2368 && w[75] == 2368 && w[76] == 49407);
    CHECK(kiln_clip_tok_window(t, "x", 1, 2, 0, w, &cut) == KILN_ERR_INVALID_ARG);

    /* damaged files */
    char bad[1024];
    kiln_test_tmp_path(bad, sizeof bad, "test_clip_bad.gz");
    snprintf(cmd, sizeof cmd, "zcat '%s' | head -n 1000 | gzip > '%s'", gz, bad);
    CHECK(system(cmd) == 0);
    kiln_clip_tok *x = NULL;
    CHECK(kiln_clip_tok_from_merges_gz(bad, &x) == KILN_ERR_FORMAT && !x);
    CHECK(strstr(kiln_last_error(), "merges") != NULL);
    kiln_test_write_file(bad, "not gzip at all", 15); /* zlib reads plain files as they are */
    CHECK(kiln_clip_tok_from_merges_gz(bad, &x) == KILN_ERR_FORMAT && !x);
    CHECK(kiln_clip_tok_from_merges_gz("/nonexistent.gz", &x) == KILN_ERR_NOT_FOUND && !x);
    kiln_test_write_file(vj, "[1, 2]", 6);
    CHECK(kiln_clip_tok_from_hf(vj, mt, &x) == KILN_ERR_FORMAT && !x);
    kiln_test_write_file(vj, "{\"a\": 0, \"b\": 0}", 16);
    CHECK(kiln_clip_tok_from_hf(vj, mt, &x) == KILN_ERR_FORMAT && !x);
    remove(vj);
    remove(mt);
    remove(bad);
    kiln_clip_tok_free(t);
    TEST_MAIN_END();
}
