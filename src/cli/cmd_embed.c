/*
 * cmd_embed.c — `kiln embed`: sentence embeddings of the texts given (or of the lines
 * of stdin), one JSON object per input and line:
 *   {"index": 0, "tokens": 7, "truncated": false, "embedding": [...]}
 * or, with --similarity, the matrix of cosine similarities, one JSON array per row.
 * Floats are printed with 9 significant digits, enough to read back the exact f32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"
#include "util.h"

#define MAX_TEXTS 4096

/* Splits buf (len bytes, modified) into lines, without their "\n" / "\r\n"; a last
 * line without a newline counts, an empty tail after the final newline does not. */
static size_t split_lines(char *buf, size_t len, const char **texts, size_t *lens, size_t max, bool *too_many) {
    size_t n = 0, start = 0;
    *too_many = false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && buf[i] != '\n') continue;
        if (i == len && start == len) break;
        size_t end = i;
        if (end > start && buf[end - 1] == '\r') end--;
        if (n == max) {
            *too_many = true;
            break;
        }
        texts[n] = buf + start;
        lens[n++] = end - start;
        start = i + 1;
    }
    return n;
}

static void print_floats(const float *v, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ", %.9g" : "%.9g", (double)v[i]);
    putchar(']');
}

int kiln_cmd_embed(int argc, char **argv) {
    const char *model = NULL, *tokenizer = NULL;
    bool normalize = false, similarity = false;
    int threads = 0, batch = 0;
    arg_spec specs[] = {
        {"--model", "-m", ARG_STR, &model, "embedding model: GGUF (bert) or sentence-transformers folder"},
        {"--tokenizer", NULL, ARG_STR, &tokenizer, "tokenizer file (tokenizer.json, .gguf) instead of the model's"},
        {"--normalize", NULL, ARG_FLAG, &normalize, "L2-normalize even if the model has no Normalize module"},
        {"--similarity", NULL, ARG_FLAG, &similarity, "print the cosine-similarity matrix instead"},
        {"--threads", "-t", ARG_INT, &threads, "threads (default: all cores)"},
        {"--batch-tokens", NULL, ARG_INT, &batch, "tokens per forward pass (default 1024)"},
    };
    static const char *pos[MAX_TEXTS];
    int n_pos = 0;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, MAX_TEXTS, &n_pos,
                       "usage: kiln embed -m MODEL [--normalize] [--similarity] [TEXT...]  (lines of stdin without TEXT)");
    if (r) return r == 1 ? 0 : 2;
    if (!model) {
        fprintf(stderr, "kiln embed: -m MODEL is required\n");
        return 2;
    }
    if (threads < 0 || batch < 0) {
        fprintf(stderr, "kiln embed: --threads and --batch-tokens must not be negative\n");
        return 2;
    }
    static const char *texts[MAX_TEXTS];
    static size_t lens[MAX_TEXTS];
    size_t n = 0;
    char *input = NULL;
    if (n_pos > 0) {
        for (int i = 0; i < n_pos; i++) texts[i] = pos[i], lens[i] = strlen(pos[i]);
        n = (size_t)n_pos;
    } else {
        size_t len = 0;
        bool too_many;
        if (!(input = cli_read_stream("embed", "stdin", stdin, &len))) return 1;
        n = split_lines(input, len, texts, lens, MAX_TEXTS, &too_many);
        if (too_many) {
            fprintf(stderr, "kiln embed: more than %d lines on stdin; give them in several runs\n", MAX_TEXTS);
            free(input);
            return 2;
        }
    }
    kiln_embedder_options o = {.path = model, .tokenizer_path = tokenizer, .n_threads = threads,
                               .batch_tokens = batch, .normalize = normalize};
    kiln_embedder *e = NULL;
    kiln_status st = kiln_embedder_load(&o, &e);
    kiln_embedder_info info = {0};
    float *out = NULL;
    kiln_embed_result *res = NULL;
    if (!st) {
        kiln_embedder_get_info(e, &info);
        out = calloc(n ? n : 1, sizeof *out * (size_t)info.dim);
        res = calloc(n ? n : 1, sizeof *res);
        if (!out || !res) st = KILN_ERR_NOMEM;
    }
    if (!st) st = kiln_embedder_embed(e, texts, lens, n, out, res);
    if (st) {
        fprintf(stderr, "kiln embed: %s\n", st == KILN_ERR_NOMEM && !kiln_last_error()[0] ? "out of memory"
                                                                                         : kiln_last_error());
    } else {
        for (size_t i = 0; i < n; i++) {
            if (res[i].truncated)
                fprintf(stderr, "kiln embed: input %zu is longer than the model's %d tokens: truncated\n", i,
                        info.max_tokens);
            if (similarity) {
                putchar('[');
                for (size_t j = 0; j < n; j++)
                    printf(j ? ", %.6f" : "%.6f",
                           (double)kiln_cosine_similarity(out + i * (size_t)info.dim, out + j * (size_t)info.dim,
                                                          info.dim));
                printf("]\n");
            } else {
                printf("{\"index\": %zu, \"tokens\": %d, \"truncated\": %s, \"embedding\": ", i, res[i].tokens,
                       res[i].truncated ? "true" : "false");
                print_floats(out + i * (size_t)info.dim, info.dim);
                printf("}\n");
            }
        }
    }
    free(out);
    free(res);
    free(input);
    kiln_embedder_free(e);
    return st ? 1 : 0;
}
