/*
 * util.c — helpers shared by the subcommands.
 */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *cli_read_stream(const char *cmd, const char *name, FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
        if (n + 1 == cap) {
            char *p = cap < ((size_t)256 << 20) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                fprintf(stderr, "kiln %s: %s: too large (over 256 MiB) or out of memory\n", cmd, name);
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
    }
    if (!buf || ferror(f)) {
        fprintf(stderr, "kiln %s: %s: read error\n", cmd, name);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

char *cli_read_file(const char *cmd, const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "kiln %s: %s: cannot open: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    char *buf = cli_read_stream(cmd, path, f, len);
    fclose(f);
    return buf;
}

void cli_mean_sd(const double *v, int n, double *mean, double *sd) {
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    *mean = n ? sum / n : 0;
    for (int i = 0; i < n; i++) sq += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(sq / (n - 1)) : 0;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool cli_parse_size(const char *cmd, const char *opt, const char *text, int64_t *out) {
    char *end = NULL;
    double v = strtod(text, &end);
    double mul = 1;
    if (end && *end) {
        switch (*end) {
        case 'k': case 'K': mul = 1024.0; break;
        case 'm': case 'M': mul = 1024.0 * 1024; break;
        case 'g': case 'G': mul = 1024.0 * 1024 * 1024; break;
        case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
        default: mul = 0;
        }
        if (mul) {
            end++;
            if (!strcmp(end, "iB") || !strcmp(end, "B") || !strcmp(end, "b")) end += strlen(end);
        }
    }
    if (end == text || !end || *end || mul == 0 || !(v >= 0) || v * mul > 9e18) {
        fprintf(stderr, "kiln %s: %s '%s' is not a size (e.g. 512M, 4G)\n", cmd, opt, text);
        return false;
    }
    *out = (int64_t)(v * mul);
    return true;
}
