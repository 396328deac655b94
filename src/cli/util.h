/*
 * util.h — small helpers shared by the subcommands.
 */
#ifndef KILN_CLI_UTIL_H
#define KILN_CLI_UTIL_H

#include <stddef.h>

/* Reads a whole file (at most 256 MiB) into a malloc'd NUL-terminated buffer; prints
 * an error naming the file and returns NULL on failure. */
char *cli_read_file(const char *cmd, const char *path, size_t *len);

/* Seconds from a monotonic clock. */
double cli_now(void);

#endif
