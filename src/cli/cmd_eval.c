/*
 * cmd_eval.c — `kiln eval`: runs the model over a token sequence, prints the
 * perplexity and optionally writes the last position's logits (raw little-endian
 * float32), e.g. to compare with a reference implementation.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"
#include "util.h"

/* Parses "1 2 3" (spaces or commas) into a malloc'd array. */
static int parse_ids(const char *s, int32_t **out, size_t *n) {
    size_t cap = 64, k = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    while (*s) {
        while (*s && (isspace((unsigned char)*s) || *s == ',')) s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) {
            free(ids);
            return -1;
        }
        if (k == cap) {
            int32_t *p = cap < (1u << 24) ? realloc(ids, cap * 2 * sizeof *ids) : NULL;
            if (!p) {
                free(ids);
                return -1;
            }
            ids = p;
            cap *= 2;
        }
        ids[k++] = (int32_t)v;
        s = end;
    }
    *out = ids;
    *n = k;
    return 0;
}

int kiln_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *ids_str = NULL, *file = NULL, *logits_out = NULL, *tokenizer = NULL;
    int threads = 0, ctx = 0;
    bool no_bos = false;
    arg_spec specs[] = {
        {"--model", "-m", ARG_STR, &model, "model: .gguf, llama2.c .bin, or folder with config.json"},
        {"--ids", NULL, ARG_STR, &ids_str, "token ids, space separated"},
        {"--file", "-f", ARG_STR, &file, "text file to tokenize and evaluate"},
        {"--logits-out", NULL, ARG_STR, &logits_out, "write the last position's logits here (float32 LE)"},
        {"--tokenizer", NULL, ARG_STR, &tokenizer, "tokenizer file (with -f)"},
        {"--threads", "-t", ARG_INT, &threads, "threads (default: all cores)"},
        {"--ctx", "-c", ARG_INT, &ctx, "context length (default: the model's, at most 4096)"},
        {"--no-bos", NULL, ARG_FLAG, &no_bos, "with -f: do not add BOS"},
    };
    const char *pos[1];
    int n_pos;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 0, &n_pos,
                       "usage: kiln eval -m MODEL (--ids \"1 2 3\" | -f TEXTFILE) [--logits-out FILE]");
    if (r) return r == 1 ? 0 : 2;
    if (!model || (!ids_str == !file)) {
        fprintf(stderr, "kiln eval: -m MODEL and one of --ids or -f are required\n");
        return 2;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (ids_str && parse_ids(ids_str, &ids, &n) != 0) {
        fprintf(stderr, "kiln eval: --ids must be non-negative integers separated by spaces\n");
        return 2;
    }
    kiln_llm_options lo = {.path = model, .tokenizer_path = tokenizer, .n_ctx = ctx, .n_threads = threads};
    kiln_llm *llm = NULL;
    float *logits = NULL;
    char *text = NULL;
    int rc = 1;
    double t0 = cli_now();
    if (kiln_llm_load(&lo, &llm)) goto fail;
    if (file) {
        size_t len;
        if (!(text = cli_read_file("eval", file, &len))) goto out;
        if (kiln_llm_tokenize(llm, text, len, !no_bos, &ids, &n)) goto fail;
    }
    if (n < 1) {
        fprintf(stderr, "kiln eval: no tokens to evaluate\n");
        goto out;
    }
    kiln_llm_info info;
    kiln_llm_get_info(llm, &info);
    logits = malloc((size_t)info.n_vocab * sizeof *logits);
    double nll = 0;
    double t1 = cli_now();
    if (!logits) {
        fprintf(stderr, "kiln eval: out of memory\n");
        goto out;
    }
    if (kiln_llm_eval(llm, ids, n, &nll, logits)) goto fail;
    double t2 = cli_now();
    printf("tokens: %zu\n", n);
    if (n > 1) printf("nll: %.6f\nperplexity: %.4f\n", nll, exp(nll / (double)(n - 1)));
    fprintf(stderr, "kiln: load %.3f s, eval %.3f s (%.1f tok/s)\n", t1 - t0, t2 - t1, (double)n / (t2 - t1));
    if (logits_out) {
        FILE *f = fopen(logits_out, "wb");
        if (!f || fwrite(logits, sizeof *logits, (size_t)info.n_vocab, f) != (size_t)info.n_vocab) {
            fprintf(stderr, "kiln eval: %s: cannot write\n", logits_out);
            if (f) fclose(f);
            goto out;
        }
        if (fclose(f) != 0) {
            fprintf(stderr, "kiln eval: %s: cannot write\n", logits_out);
            goto out;
        }
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "kiln eval: %s\n", kiln_last_error());
out:
    free(ids);
    free(logits);
    free(text);
    kiln_llm_free(llm);
    return rc;
}
