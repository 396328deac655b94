/*
 * args.h — a small long-option parser for the subcommands.
 *
 * Each subcommand lists its options in a table; parse fills the pointed-to values
 * and reports unknown options, missing values and malformed numbers by name.
 */
#ifndef KILN_CLI_ARGS_H
#define KILN_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { ARG_FLAG, ARG_STR, ARG_INT, ARG_FLOAT, ARG_U64, ARG_STR_LIST } arg_kind;

typedef struct {
    const char *name;  /* "--top-k" */
    const char *alias; /* "-k" or NULL */
    arg_kind kind;
    void *value;       /* bool*, const char**, int*, float*, uint64_t*, or str_list* */
    const char *help;
} arg_spec;

typedef struct {
    const char *items[32];
    int n;
} str_list;

/* Parses argv[1..argc) (argv[0] is the subcommand). Positional arguments are stored in
 * pos[] (up to max_pos). Returns 0 on success, 1 if --help was given (usage printed to
 * stdout), 2 on a usage error (message printed to stderr). */
int args_parse(int argc, char **argv, const arg_spec *specs, int n_specs, const char **pos, int max_pos,
               int *n_pos, const char *usage);

#endif
