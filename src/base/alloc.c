/*
 * alloc.c — checked allocation helpers.
 */
#define _POSIX_C_SOURCE 200809L
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

void *kiln_malloc_array(size_t n, size_t size) {
    size_t total;
    if (!kiln_mul_ok(n, size, &total)) return NULL;
    return malloc(total ? total : 1);
}

void *kiln_calloc_array(size_t n, size_t size) {
    if (n == 0 || size == 0) return calloc(1, 1);
    size_t total;
    if (!kiln_mul_ok(n, size, &total)) return NULL;
    return calloc(n, size);
}

char *kiln_strdup(const char *s) {
    if (!s) return NULL;
    return kiln_strndup(s, strlen(s));
}

char *kiln_strndup(const char *s, size_t len) {
    if (len == SIZE_MAX) return NULL;
    char *r = malloc(len + 1);
    if (!r) return NULL;
    memcpy(r, s, len);
    r[len] = 0;
    return r;
}

void *kiln_aligned_alloc(size_t alignment, size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, alignment, size ? size : alignment) != 0) return NULL;
    return p;
}
