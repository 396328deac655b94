/*
 * alloc.c — checked allocation helpers.
 */
#define _POSIX_C_SOURCE 200809L
#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

void kiln_advise_cold(const void *p, size_t size) {
    const uintptr_t page = 4096, a = ((uintptr_t)p + page - 1) & ~(page - 1), b = ((uintptr_t)p + size) & ~(page - 1);
#ifdef MADV_COLD
    if (b > a) (void)madvise((void *)a, b - a, MADV_COLD);
#else
    (void)a, (void)b;
#endif
}

void *kiln_alloc_weights(size_t size) {
    const size_t huge = (size_t)2 << 20;
    if (size < huge) return kiln_aligned_alloc(64, size);
    void *p = NULL;
    if (posix_memalign(&p, huge, size) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}
