/*
 * pending.c — subcommands whose implementation has not landed yet say so clearly.
 * (Removed as each subcommand lands.)
 */
#include <stdio.h>

#include "cli.h"

static int pending(const char *name) {
    fprintf(stderr, "kiln %s: not implemented in this build yet\n", name);
    return 1;
}

int kiln_cmd_generate(int argc, char **argv) { return pending("generate"); }
int kiln_cmd_tokenize(int argc, char **argv) { return pending("tokenize"); }
int kiln_cmd_eval(int argc, char **argv) { return pending("eval"); }
int kiln_cmd_info(int argc, char **argv) { return pending("info"); }
