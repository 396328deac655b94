/*
 * test_cli_tokenize.c — every case of ../shared/tokenizers/vocab/<name>.inp, tokenized
 * through the `kiln tokenize` program, must give exactly the ids of the matching
 * .out line. As llama.cpp's test-tokenizer-0 reads them: cases are separated by
 * "\n__ggml_vocab_test__\n", tokenized without BOS and without parsing special
 * tokens; line i of the .out file holds the ids of case i.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "test.h"

static const char *const g_vocabs[] = {"llama-spm", "phi-3", "gpt-2", "refact", "bert-bge"};
static const char g_sep[] = "\n__ggml_vocab_test__\n";

/* Runs kiln tokenize on the bytes text[0..len) and writes its output line to out. */
static int run_tokenize(const char *bin, const char *gguf, const char *text, size_t len, char *out, size_t cap) {
    char tmp[1024], cmd[4096];
    snprintf(tmp, sizeof tmp, "%s/tokcase.txt", kiln_test_tmp());
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    fwrite(text, 1, len, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --no-bos --no-parse-special --file '%s'", bin, gguf, tmp);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    out[0] = 0;
    if (!fgets(out, (int)cap, p)) out[0] = 0;
    int rc = pclose(p);
    out[strcspn(out, "\n")] = 0;
    return rc;
}

int main(void) {
    const char *bin = getenv("KILN_BIN");
    if (!bin) {
        printf("SKIP: KILN_BIN not set\n");
        return 77;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/vocab", kiln_test_shared());
    kiln_test_require_file(path);
    for (size_t v = 0; v < sizeof g_vocabs / sizeof g_vocabs[0]; v++) {
        char gguf[1200], inp[1300], outp[1300];
        snprintf(gguf, sizeof gguf, "%s/ggml-vocab-%s.gguf", path, g_vocabs[v]);
        snprintf(inp, sizeof inp, "%s.inp", gguf);
        snprintf(outp, sizeof outp, "%s.out", gguf);
        char *in_text = NULL, *out_text = NULL;
        size_t in_len = 0;
        CHECK_OK(kiln_read_file(inp, 1 << 20, &in_text, &in_len));
        CHECK_OK(kiln_read_file(outp, 1 << 20, &out_text, NULL));
        if (!in_text || !out_text) continue;
        int n_cases = 0, n_ok = 0;
        char *cur = in_text, *line = out_text;
        for (char *sep; (sep = strstr(cur, g_sep)) != NULL; cur = sep + strlen(g_sep)) {
            char *nl = strchr(line, '\n');
            if (!nl) {
                CHECK_MSG(0, "%s: more cases than lines in .out", g_vocabs[v]);
                break;
            }
            *nl = 0;
            const char *want = line + strspn(line, " ");
            char got[16384];
            int rc = run_tokenize(bin, gguf, cur, (size_t)(sep - cur), got, sizeof got);
            n_cases++;
            if (rc == 0 && strcmp(got, want) == 0) {
                n_ok++;
            } else {
                fprintf(stderr, "%s case %d (%.*s): want [%s] got [%s] (exit %d)\n", g_vocabs[v], n_cases,
                        (int)(sep - cur > 60 ? 60 : sep - cur), cur, want, got, rc);
            }
            line = nl + 1;
        }
        printf("%s: %d/%d cases match\n", g_vocabs[v], n_ok, n_cases);
        CHECK(n_cases > 30);
        CHECK(n_ok == n_cases);
        free(in_text);
        free(out_text);
    }
    TEST_MAIN_END();
}
