/*
 * util.h — small helpers shared by the subcommands.
 */
#ifndef KILN_CLI_UTIL_H
#define KILN_CLI_UTIL_H

#include <stddef.h>
#include <stdio.h>

/* Reads a whole file (at most 256 MiB) into a malloc'd NUL-terminated buffer; prints
 * an error naming the file and returns NULL on failure. */
char *cli_read_file(const char *cmd, const char *path, size_t *len);
/* The same for an open stream (stdin); name is what messages call it. */
char *cli_read_stream(const char *cmd, const char *name, FILE *f, size_t *len);

/* Mean and sample standard deviation (0 for fewer than 2 values) of v[0..n). */
void cli_mean_sd(const double *v, int n, double *mean, double *sd);

/* Parses a byte size such as "512M", "4G", "1.5GiB" or "1000000" (K/M/G/T are
 * powers of 1024). Prints an error naming the option and returns false if malformed. */
#include <stdbool.h>
#include <stdint.h>
bool cli_parse_size(const char *cmd, const char *opt, const char *text, int64_t *out);

/* Seconds from a monotonic clock. */
double cli_now(void);

#endif
