/*
 * tensor.c — shape helpers.
 */
#include "tensor.h"

int kiln_tensor_set_contiguous(kiln_tensor *t, size_t *total) {
    size_t row;
    if (!kiln_dtype_row_bytes(t->type, t->ne[0], &row)) return 0;
    const kiln_dtype_traits *tr = kiln_dtype_get(t->type);
    t->nb[0] = (size_t)tr->type_size;
    t->nb[1] = row;
    for (int i = 2; i < KILN_MAX_DIMS; i++) {
        if (t->ne[i - 1] < 0 || __builtin_mul_overflow(t->nb[i - 1], (size_t)t->ne[i - 1], &t->nb[i])) return 0;
    }
    if (t->ne[3] < 0 || __builtin_mul_overflow(t->nb[3], (size_t)t->ne[3], total)) return 0;
    return 1;
}
