/*
 * args.c — long-option parsing for the kiln subcommands.
 */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_usage(FILE *f, const char *usage, const arg_spec *specs, int n) {
    fprintf(f, "%s\n\noptions:\n", usage);
    for (int i = 0; i < n; i++) {
        char names[64];
        snprintf(names, sizeof names, "%s%s%s", specs[i].alias ? specs[i].alias : "", specs[i].alias ? ", " : "",
                 specs[i].name);
        fprintf(f, "  %-26s %s\n", names, specs[i].help);
    }
    fprintf(f, "  %-26s %s\n", "-h, --help", "show this help");
}

static int set_value(const arg_spec *s, const char *v, const char *cmd) {
    char *end = NULL;
    errno = 0;
    switch (s->kind) {
    case ARG_STR:
        *(const char **)s->value = v;
        return 0;
    case ARG_STR_LIST: {
        str_list *l = s->value;
        if (l->n >= (int)(sizeof l->items / sizeof l->items[0])) {
            fprintf(stderr, "kiln %s: too many %s options\n", cmd, s->name);
            return 2;
        }
        l->items[l->n++] = v;
        return 0;
    }
    case ARG_INT: {
        long x = strtol(v, &end, 10);
        if (errno || !*v || *end || x < -2147483647L || x > 2147483647L) break;
        *(int *)s->value = (int)x;
        return 0;
    }
    case ARG_U64: {
        if (*v == '-') break;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || !*v || *end) break;
        *(uint64_t *)s->value = (uint64_t)x;
        return 0;
    }
    case ARG_FLOAT: {
        float x = strtof(v, &end);
        if (errno || !*v || *end || !isfinite(x)) break;
        *(float *)s->value = x;
        return 0;
    }
    case ARG_FLAG:
        break;
    }
    fprintf(stderr, "kiln %s: invalid value '%s' for %s\n", cmd, v, s->name);
    return 2;
}

int args_parse(int argc, char **argv, const arg_spec *specs, int n_specs, const char **pos, int max_pos,
               int *n_pos, const char *usage) {
    const char *cmd = argv[0];
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_usage(stdout, usage, specs, n_specs);
            return 1;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (*n_pos >= max_pos) {
                fprintf(stderr, "kiln %s: unexpected argument '%s'\n", cmd, a);
                return 2;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        const arg_spec *s = NULL;
        for (int k = 0; k < n_specs && !s; k++) {
            if (!strcmp(a, specs[k].name) || (specs[k].alias && !strcmp(a, specs[k].alias))) s = &specs[k];
        }
        if (!s) {
            fprintf(stderr, "kiln %s: unknown option '%s' (see kiln %s --help)\n", cmd, a, cmd);
            return 2;
        }
        if (s->kind == ARG_FLAG) {
            *(bool *)s->value = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "kiln %s: option %s needs a value\n", cmd, a);
            return 2;
        }
        int r = set_value(s, argv[++i], cmd);
        if (r) return r;
    }
    return 0;
}
