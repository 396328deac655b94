/*
 * alloc.h — checked allocation and overflow-checked size arithmetic.
 *
 * Every size that comes from a file or a request goes through these before it
 * reaches malloc, so a lying header can never produce a short buffer.
 */
#ifndef KILN_BASE_ALLOC_H
#define KILN_BASE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* *r = a * b; returns false (and leaves *r unspecified) on overflow. */
static inline bool kiln_mul_ok(size_t a, size_t b, size_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}
static inline bool kiln_add_ok(size_t a, size_t b, size_t *r) {
    return !__builtin_add_overflow(a, b, r);
}

/* malloc(n * size) with an overflow check; NULL on overflow or failure. The
 * caller owns the result. */
void *kiln_malloc_array(size_t n, size_t size);
/* calloc with the same contract. */
void *kiln_calloc_array(size_t n, size_t size);
/* strdup that returns NULL on failure (and for NULL input). */
char *kiln_strdup(const char *s);
/* Copies len bytes of s into a new NUL-terminated string; NULL on failure. */
char *kiln_strndup(const char *s, size_t len);
/* malloc'd aligned block (alignment a power of two); free with free(). */
void *kiln_aligned_alloc(size_t alignment, size_t size);
/* An aligned block for large read-mostly data (weights): for 2 MiB and more, aligned
 * to 2 MiB and advised to be backed by 2 MiB pages (MADV_HUGEPAGE; the OS may
 * decline), else 64-byte aligned; free with free(). */
void *kiln_alloc_weights(size_t size);
/* Advises that the whole 4 KiB pages inside [p, p + size) will not be needed soon
 * (MADV_COLD: the first the OS reclaims under memory pressure; no data is lost, for
 * any kind of memory). For a file mapping's weights once a copy replaced them. This
 * function can't fail (the advice may be ignored). */
void kiln_advise_cold(const void *p, size_t size);

#endif
