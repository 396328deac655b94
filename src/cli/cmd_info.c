/*
 * cmd_info.c — `kiln info`: prints a model file's metadata and tensor table.
 */
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"

int kiln_cmd_info(int argc, char **argv) {
    const char *pos[1];
    int n_pos;
    int r = args_parse(argc, argv, NULL, 0, pos, 1, &n_pos,
                       "usage: kiln info MODEL   (a .gguf, .safetensors, model folder or llama2.c .bin)");
    if (r) return r == 1 ? 0 : 2;
    if (n_pos != 1) {
        fprintf(stderr, "kiln info: give one MODEL\n");
        return 2;
    }
    char *text = NULL;
    if (kiln_model_describe(pos[0], &text)) {
        fprintf(stderr, "kiln info: %s\n", kiln_last_error());
        return 1;
    }
    fputs(text, stdout);
    free(text);
    return 0;
}
