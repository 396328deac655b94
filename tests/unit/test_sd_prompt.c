/*
 * test_sd_prompt.c — prompt attention weights and 75-token chunks as AUTOMATIC1111
 * computes them: the examples of its parse_prompt_attention documentation (expected
 * weights are its float results, compared within 1e-12), escapes, BREAK, and the
 * chunking of long prompts (comma backtracking, BREAK padding, weights per token)
 * with CLIP's tokenizer from ../shared.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipelines/sd_prompt.h"
#include "test.h"

typedef struct {
    const char *text;
    double w;
} want;

static void parse_is(const char *prompt, const want *w, size_t nw) {
    kiln_prompt_piece *p = NULL;
    size_t n = 0;
    CHECK_OK(kiln_prompt_parse(prompt, &p, &n));
    bool ok = n == nw;
    for (size_t i = 0; ok && i < n; i++)
        ok = w[i].text ? (!p[i].brk && !strcmp(p[i].text, w[i].text) && fabs(p[i].weight - w[i].w) < 1e-12)
                       : p[i].brk;
    CHECK_MSG(ok, "parse '%s': %zu pieces (want %zu), first '%s' %g", prompt, n, nw, n && p[0].text ? p[0].text : "",
              n ? p[0].weight : 0);
    kiln_prompt_pieces_free(p, n);
}

#define PARSE(prompt, ...)                                                   \
    do {                                                                     \
        const want w_[] = {__VA_ARGS__};                                     \
        parse_is(prompt, w_, sizeof w_ / sizeof w_[0]);                      \
    } while (0)

int main(void) {
    PARSE("normal text", {"normal text", 1.0});
    PARSE("an (important) word", {"an ", 1.0}, {"important", 1.1}, {" word", 1.0});
    PARSE("(unbalanced", {"unbalanced", 1.1});
    PARSE("\\(literal\\]", {"(literal]", 1.0});
    PARSE("(unnecessary)(parens)", {"unnecessaryparens", 1.1});
    PARSE("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", {"a ", 1.0}, {"house", 1.3 * 1.1 * 1.1},
          {" ", 1.1}, {"on", 1.0}, {" a ", 1.1}, {"hill", 0.5 * 1.1}, {", sun, ", 1.1},
          {"sky", 1.1 * 1.1 * 1.1 * 1.1}, {".", 1.1});
    PARSE("", {"", 1.0});
    PARSE("[faded]", {"faded", 1 / 1.1});
    PARSE("weight:1.5) without a bracket", {"weight:1.5) without a bracket", 1.0});
    PARSE("a ) b ] c", {"a ) b ] c", 1.0});
    PARSE("one BREAK two", {"one", 1.0}, {NULL, 0}, {"two", 1.0});
    PARSE("BREAKFAST is not a break", {"BREAKFAST is not a break", 1.0});
    PARSE("back\\slash", {"backslash", 1.0});

    char gz[2048];
    snprintf(gz, sizeof gz, "%s/tokenizers/clip/bpe_simple_vocab_16e6.txt.gz", kiln_test_shared());
    kiln_test_require_file(gz);
    kiln_clip_tok *t = NULL;
    CHECK_OK(kiln_clip_tok_from_merges_gz(gz, &t));
    if (!t) TEST_MAIN_END();
    kiln_clip_chunk *c = NULL;
    size_t n = 0;
    CHECK_OK(kiln_prompt_chunks(t, "a photo of a (cat:1.5)", 49407, &c, &n));
    CHECK(n == 1 && c[0].ids[0] == 49406 && c[0].ids[5] == 2368 && c[0].weights[5] == 1.5f &&
          c[0].weights[4] == 1.0f && c[0].ids[6] == 49407 && c[0].ids[75] == 49407 && c[0].ids[76] == 49407);
    free(c);
    CHECK_OK(kiln_prompt_chunks(t, "", 0, &c, &n));
    CHECK(n == 1 && c[0].ids[0] == 49406 && c[0].ids[1] == 0 && c[0].ids[76] == 49407);
    free(c);
    CHECK_OK(kiln_prompt_chunks(t, "cat BREAK dog", 49407, &c, &n));
    CHECK(n == 2 && c[0].ids[1] == 2368 && c[0].ids[2] == 49407 && c[1].ids[1] != 49407 && c[1].ids[2] == 49407);
    free(c);
    /* 100 words: 75 in the first chunk, 25 in the second */
    char longp[1200] = "";
    for (int i = 0; i < 100; i++) strcat(longp, "cat ");
    CHECK_OK(kiln_prompt_chunks(t, longp, 49407, &c, &n));
    CHECK(n == 2 && c[0].ids[75] == 2368 && c[1].ids[25] == 2368 && c[1].ids[26] == 49407);
    free(c);
    /* a comma 10 tokens before the end of a full chunk: what follows it moves on */
    longp[0] = 0;
    for (int i = 0; i < 64; i++) strcat(longp, "cat ");
    strcat(longp, "dog, ");
    for (int i = 0; i < 30; i++) strcat(longp, "cat ");
    const int32_t comma = kiln_clip_tok_find(t, ",</w>");
    CHECK_OK(kiln_prompt_chunks(t, longp, 49407, &c, &n));
    /* chunk 0: 64 cats, dog, comma (66 tokens), then padding; chunk 1: the 30 cats */
    CHECK_MSG(n == 2 && c[0].ids[66] == comma && c[0].ids[67] == 49407 && c[1].ids[1] == 2368 &&
                  c[1].ids[30] == 2368 && c[1].ids[31] == 49407,
              "comma backtrack: %zu chunks, c0[66] %d c0[67] %d", n, n ? c[0].ids[66] : -1, n ? c[0].ids[67] : -1);
    free(c);
    kiln_clip_tok_free(t);
    TEST_MAIN_END();
}
