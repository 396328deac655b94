/*
 * tensor.h — kiln_tensor: a typed, shaped view of memory (usually of a mapped file).
 *
 * ne[i] is the number of elements along dimension i (ne[0] is the innermost,
 * contiguous one, as in GGUF); nb[i] is the stride in bytes. A tensor does not own
 * its data.
 */
#ifndef KILN_TENSOR_TENSOR_H
#define KILN_TENSOR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#define KILN_MAX_DIMS 4

typedef struct {
    kiln_dtype type;
    int n_dims;
    int64_t ne[KILN_MAX_DIMS]; /* unused dims are 1 */
    size_t nb[KILN_MAX_DIMS];
    const void *data;
} kiln_tensor;

/* Total number of elements. */
static inline int64_t kiln_tensor_nelements(const kiln_tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

/* Fills nb[] for a contiguous tensor of t->type and t->ne[] (rows of ne[0]).
 * Returns false if ne[0] is not a multiple of the block size or sizes overflow;
 * on success *total is the byte size. */
int kiln_tensor_set_contiguous(kiln_tensor *t, size_t *total);

#endif
