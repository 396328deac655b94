/*
 * test_tok_pretok.c — every llama.cpp pre-tokenizer (tokenizer.ggml.pre) against a
 * reference.
 *
 * The piece lengths below were produced by splitting the texts with Python's
 * `regex` module (an engine independent of PCRE2) using the same regex lists and
 * Hugging Face's Isolated behaviour, one list after the other. They cover Unicode
 * whitespace (NBSP, NEL, ideographic space), case-insensitive contractions, digit
 * grouping, CJK, Hangul and Arabic-Indic digits. The regexes also run on hostile
 * input in test_tok_hostile.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tokenizers/tok_impl.h"

static const char *const split_texts[] = {
    "Hello, y'all! How ARE you \xf0\x9f\x98\x81 \x3f\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8\x61pple"
    "\xe5\xb7\xa5\xe4\xbd\x9c\x31\x33\x31\x34\x31\x35\x31\xe5\xa4\xa9\xef\xbd\x9e",
    "  \x0a\x0a\x09 x\xc2\xa0\xc2\x85 'S 3333\x0d\x0a",
    "IMGIMGABZ <sentinel:12> \xc3\x89\x43OLE \xc3\x89\x63ole 1.5\xe2\x80\xa6\xe3\x80\x82test",
    "\xce\xa9MEGA \xce\xa9mega \xe3\x80\x80\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xd9\xa3\xd9\xa4\xd9\xa5 tab\x09\x65nd   ",
};
/* byte lengths of the pieces of each text, per pre-tokenizer (Python regex reference) */
static const struct {
    const char *pre;
    const char *lens[4];
} split_cases[] = {
    {"default",
     {"5 1 2 1 3 1 4 4 4 5 1 1 20 3 3 1 3 3",
      "5 2 5 1 1 1 3 1 2",
      "9 1 1 8 1 2 1 7 7 1 1 1 1 6 4",
      "6 7 1 3 9 1 6 4 1 3 3"}},
    {"llama3",
     {"5 1 2 4 1 4 4 4 5 2 20 3 3 1 3 3",
      "4 1 2 4 2 1 1 3 1 2",
      "9 2 8 1 2 1 7 7 1 1 1 1 6 4",
      "6 7 1 12 1 6 4 4 3"}},
    {"deepseek-llm",
     {"5 1 2 1 3 1 4 4 4 5 2 9 5 6 7 3 3",
      "2 1 1 1 2 4 2 1 1 4 1 1",
      "9 2 8 1 2 1 3 4 3 4 1 1 1 1 3 3 4",
      "2 4 3 4 1 3 9 1 6 4 4 3"}},
    {"deepseek-v3",
     {"5 1 2 4 1 4 4 4 5 2 9 5 6 3 3 1 3 3",
      "4 1 2 4 2 1 1 3 1 2",
      "9 2 8 1 2 1 7 7 1 1 1 1 6 4",
      "6 7 1 12 1 6 4 4 3"}},
    {"deepseek-coder",
     {"5 1 2 1 3 1 4 4 4 5 2 9 5 6 1 1 1 1 1 1 1 3 3",
      "2 1 1 1 2 4 2 1 1 1 1 1 1 1 1",
      "9 2 8 1 1 1 1 7 7 1 1 1 1 6 4",
      "6 7 1 12 1 2 2 2 4 4 3"}},
    {"falcon",
     {"5 1 2 1 3 1 4 4 4 5 1 1 20 3 3 1 3 3",
      "5 2 5 1 1 1 3 1 2",
      "9 1 1 8 1 2 1 7 7 2 1 1 6 4",
      "6 7 1 3 9 7 4 1 3 3"}},
    {"starcoder",
     {"5 1 2 1 3 1 4 4 4 5 2 20 1 1 1 1 1 1 1 3 3",
      "5 2 4 2 1 1 1 1 1 1 2",
      "9 2 8 1 1 1 1 7 7 1 1 1 1 6 4",
      "6 7 1 3 9 1 2 2 2 4 1 3 3"}},
    {"gpt-2",
     {"5 1 2 1 3 1 4 4 4 5 2 20 7 3 3",
      "5 2 4 2 1 5 2",
      "9 2 8 1 2 1 7 7 2 1 1 6 4",
      "6 7 1 3 9 7 4 1 3 3"}},
    {"qwen2",
     {"5 1 2 4 1 4 4 4 5 2 20 1 1 1 1 1 1 1 3 3",
      "4 1 2 4 2 1 1 1 1 1 1 2",
      "9 2 8 1 1 1 1 7 7 1 1 1 1 6 4",
      "6 7 1 12 1 2 2 2 4 4 3"}},
    {"poro-chat",
     {"5 1 6 1 4 4 4 5 2 33",
      "5 2 4 3 5 2",
      "9 14 7 7 2 1 1 6 4",
      "6 7 4 9 7 4 1 3 3"}},
    {"viking",
     {"5 1 6 1 4 4 4 5 2 20 1 1 1 1 1 1 1 6",
      "5 2 4 3 1 1 1 1 1 2",
      "9 11 1 1 1 7 7 1 1 1 1 6 4",
      "6 7 4 9 1 2 2 2 4 1 3 3"}},
    {"tekken",
     {"5 1 2 4 1 4 4 4 5 2 20 1 1 1 1 1 1 1 3 3",
      "4 1 2 4 2 1 1 1 1 1 1 2",
      "9 2 8 1 1 1 1 7 7 1 1 1 1 6 4",
      "6 7 1 12 1 2 2 2 4 4 3"}},
    {"chameleon",
     {"5 1 2 1 3 1 4 4 4 5 1 1 20 1 1 1 1 1 1 1 3 3",
      "2 1 1 1 2 5 1 1 1 1 1 1 1 1 1",
      "9 1 1 8 1 1 1 1 7 7 1 1 1 1 3 3 4",
      "6 7 1 3 9 1 2 2 2 4 1 3 2 1"}},
};

static void check_case(const char *pre, const char *text, const char *lens) {
    kiln_tokenizer *t = tok_alloc();
    CHECK_OK(tok_pre_from_name(t, pre));
    tok_spans sp = {0};
    char *owned = NULL;
    const char *s = NULL;
    size_t slen = 0;
    CHECK_OK(tok_pretokenize(t, text, strlen(text), true, &sp, &owned, &s, &slen));
    char got[1024] = "";
    size_t g = 0, pos = 0;
    bool contiguous = true;
    for (size_t i = 0; i < sp.n && g + 16 < sizeof got; i++) {
        g += (size_t)snprintf(got + g, sizeof got - g, i ? " %zu" : "%zu", sp.v[i].len);
        contiguous = contiguous && sp.v[i].start == pos;
        pos = sp.v[i].start + sp.v[i].len;
    }
    CHECK_MSG(strcmp(got, lens) == 0, "%s on '%s':\n  expected %s\n  got      %s", pre, text, lens, got);
    CHECK_MSG(contiguous && pos == strlen(text), "%s: pieces do not tile the text", pre);
    tok_spans_free(&sp);
    free(owned);
    kiln_tokenizer_free(t);
}

int main(void) {
    for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++)
        for (size_t k = 0; k < 4; k++) check_case(split_cases[i].pre, split_texts[k], split_cases[i].lens[k]);

    /* aliases resolve; unknown names fail clearly */
    const char *aliases[] = {"llama-bpe", "smaug-bpe", "refact", "command-r", "mpt", "olmo", "stablelm2", "jais",
                             "smollm", "codeshell", "bloom", "gpt3-finnish", "exaone", "minerva-7b", "poro",
                             "chatglm4", "gpt-neox", "megrez", "falcon3"};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        kiln_tokenizer *t = tok_alloc();
        CHECK_MSG(tok_pre_from_name(t, aliases[i]) == KILN_OK && t->n_pre > 0, "pre-tokenizer %s", aliases[i]);
        kiln_tokenizer_free(t);
    }
    kiln_tokenizer *t = tok_alloc();
    CHECK(tok_pre_from_name(t, "no-such-pre") == KILN_ERR_UNSUPPORTED);
    CHECK(strstr(kiln_last_error(), "no-such-pre") != NULL);
    kiln_tokenizer_free(t);
    TEST_MAIN_END();
}
