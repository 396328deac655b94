/*
 * weights.h — the common result of every weight-file reader: a list of named tensor
 * views.
 *
 * Readers (safetensors, llama2.c, ...) turn their own layouts into this one shape so
 * model code binds weights by name without knowing which format they came from.
 * The tensors' data point into a mapping owned by the reader; the list is valid
 * until the reader is closed.
 */
#ifndef KILN_FORMATS_WEIGHTS_H
#define KILN_FORMATS_WEIGHTS_H

#include <stddef.h>

#include "kiln.h"
#include "tensor/tensor.h"

typedef struct {
    char *name;    /* owned, NUL-terminated */
    kiln_tensor t; /* t.data points into a mapping owned by the reader */
} kiln_weight;

typedef struct {
    kiln_weight *items;
    size_t n;
    size_t cap;    /* allocated items (internal to kiln_weights_add) */
} kiln_weight_list;

/* The tensor called name, or NULL if absent. Linear in the number of weights. */
const kiln_tensor *kiln_weights_find(const kiln_weight_list *w, const char *name);

/* Appends a copy of name with tensor t. KILN_ERR_NOMEM on failure (w unchanged). */
kiln_status kiln_weights_add(kiln_weight_list *w, const char *name, const kiln_tensor *t);

/* Returns KILN_ERR_FORMAT naming path and the first duplicated name if two weights
 * share a name; KILN_OK otherwise. O(n log n). */
kiln_status kiln_weights_check_unique(const kiln_weight_list *w, const char *path);

/* Frees the names and the array and empties w. This function can't fail. */
void kiln_weights_free(kiln_weight_list *w);

#endif
