/*
 * cmd_tokenize.c — `kiln tokenize`: prints the token ids of a text, space separated.
 * Only the tokenizer is loaded, so vocab-only GGUF files work too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"
#include "util.h"

int kiln_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tokenizer = NULL, *file = NULL;
    bool no_bos = false, no_special = false;
    arg_spec specs[] = {
        {"--model", "-m", ARG_STR, &model, "model (its tokenizer is used)"},
        {"--tokenizer", NULL, ARG_STR, &tokenizer, "tokenizer file (tokenizer.bin, tokenizer.json, .gguf)"},
        {"--file", "-f", ARG_STR, &file, "tokenize the bytes of this file exactly"},
        {"--no-bos", NULL, ARG_FLAG, &no_bos, "do not add BOS (or CLS/SEP) tokens"},
        {"--no-parse-special", NULL, ARG_FLAG, &no_special, "treat special-token text as plain text"},
    };
    const char *pos[1];
    int n_pos;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 1, &n_pos,
                       "usage: kiln tokenize -m MODEL [--no-bos] [--tokenizer FILE] (TEXT | --file F)");
    if (r) return r == 1 ? 0 : 2;
    if (!model && !tokenizer) {
        fprintf(stderr, "kiln tokenize: -m MODEL (or --tokenizer FILE) is required\n");
        return 2;
    }
    if ((n_pos == 1) == (file != NULL)) {
        fprintf(stderr, "kiln tokenize: give either TEXT or --file F\n");
        return 2;
    }
    char *data = NULL;
    size_t len = 0;
    if (file) {
        if (!(data = cli_read_file("tokenize", file, &len))) return 1;
    }
    const char *text = file ? data : pos[0];
    if (!file) len = strlen(text);
    kiln_tokenizer *tok = NULL;
    kiln_status st = kiln_tokenizer_load(model, tokenizer, &tok);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!st) st = kiln_tokenizer_encode(tok, text, len, !no_bos, !no_special, &ids, &n);
    if (st) {
        fprintf(stderr, "kiln tokenize: %s\n", kiln_last_error());
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    free(ids);
    kiln_tokenizer_free(tok);
    free(data);
    return st ? 1 : 0;
}
