/*
 * safetensors_write.h — writes a safetensors file one tensor at a time, so a
 * generator (random models, converters) never holds more than one tensor in memory.
 *
 * The header (u64 length, JSON of names, dtypes, shapes and offsets, padded with
 * spaces to 8 bytes so every tensor is aligned) is built from the entries first; each
 * tensor's values are then asked for in order as f32 and stored as F32, F16 or BF16
 * (round to nearest even). The file is written to "<path>.tmp.<pid>" and renamed once
 * complete: a failure never leaves a partial file under the final name.
 */
#ifndef KILN_FORMATS_SAFETENSORS_WRITE_H
#define KILN_FORMATS_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"
#include "tensor/dtype.h"

typedef struct {
    const char *name;
    kiln_dtype type;   /* KILN_F32, KILN_F16 or KILN_BF16 */
    int n_dims;        /* 0..4; shape row-major, outermost first, as safetensors lists it */
    int64_t shape[4];
} kiln_st_entry;

/* Fills out (n floats) with tensor i's values. */
typedef kiln_status (*kiln_st_fill_fn)(void *user, size_t i, float *out, int64_t n);

/* KILN_ERR_INVALID_ARG (bad type or shape, duplicate names are not checked),
 * KILN_ERR_IO, KILN_ERR_NOMEM, or what fill returns. */
kiln_status kiln_safetensors_write(const char *path, const kiln_st_entry *e, size_t n, kiln_st_fill_fn fill, void *user);

#endif
