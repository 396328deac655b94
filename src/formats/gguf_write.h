/*
 * gguf_write.h — writer for GGUF version 3 files.
 *
 * Used by converters and by tests that need GGUF files: collect metadata and tensors,
 * then write them in one go. Metadata values are encoded (copied) when set; setting a
 * key again replaces its value. Tensor data is NOT copied: the pointer given to
 * kiln_gguf_writer_add_tensor must stay valid until kiln_gguf_writer_write returns
 * (or the writer is freed), so a converter can stream weights from a mapping without
 * holding a second copy.
 *
 * The file is written to "<path>.tmp.<pid>" and renamed over path once complete, so a
 * failed write never leaves a half file under the final name. Tensors are aligned to
 * 32 bytes, or to general.alignment if it was set (as a u32 power of two).
 */
#ifndef KILN_FORMATS_GGUF_WRITE_H
#define KILN_FORMATS_GGUF_WRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/gguf.h"

typedef struct kiln_gguf_writer kiln_gguf_writer;

/* On success *out is owned by the caller (kiln_gguf_writer_free). */
kiln_status kiln_gguf_writer_create(kiln_gguf_writer **out);

/* Scalar and string values. Keys are non-empty and at most 65535 bytes.
 * KILN_ERR_INVALID_ARG for a bad key, KILN_ERR_NOMEM on allocation failure. */
kiln_status kiln_gguf_writer_set_u32(kiln_gguf_writer *w, const char *key, uint32_t value);
kiln_status kiln_gguf_writer_set_i32(kiln_gguf_writer *w, const char *key, int32_t value);
kiln_status kiln_gguf_writer_set_u64(kiln_gguf_writer *w, const char *key, uint64_t value);
kiln_status kiln_gguf_writer_set_f32(kiln_gguf_writer *w, const char *key, float value);
kiln_status kiln_gguf_writer_set_bool(kiln_gguf_writer *w, const char *key, bool value);
kiln_status kiln_gguf_writer_set_str(kiln_gguf_writer *w, const char *key, const char *value);

/* Array of n scalars of type elem (not STRING/ARRAY): data holds n packed elements of
 * kiln_gguf_type_size(elem) bytes each, in host (little-endian) order; BOOL is 1 byte. */
kiln_status kiln_gguf_writer_set_arr(kiln_gguf_writer *w, const char *key, kiln_gguf_type elem, const void *data,
                                     uint64_t n);
/* Array of n NUL-terminated strings. */
kiln_status kiln_gguf_writer_set_str_arr(kiln_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);

/* Any value as kiln_gguf_open represents it, including arrays of arrays (at most 8
 * deep, the reader's limit): lets a converter copy metadata from one file to another.
 * String pointers are copied, not kept. */
kiln_status kiln_gguf_writer_set_value(kiln_gguf_writer *w, const char *key, const kiln_gguf_value *v);

/* Adds a tensor of type with n_dims (1..4) dims ne[] (ne[0] innermost, a multiple of
 * the type's block size; each 1..2^40). data (the contiguous bytes, referenced, not
 * copied; see above) must stay valid until write. Names are unique, 1..4096 bytes.
 * KILN_ERR_INVALID_ARG names the problem. */
kiln_status kiln_gguf_writer_add_tensor(kiln_gguf_writer *w, const char *name, kiln_dtype type, int n_dims,
                                        const int64_t *ne, const void *data);

/* Produces rows [row0, row0 + n_rows) of a tensor added with kiln_gguf_writer_add_tensor_fn
 * into dst: n_rows rows of ne[0] elements in the tensor's type, contiguous (a "row" is
 * one ne[0] slice; a tensor has ne[1]*ne[2]*ne[3] of them). Called in row order, from
 * kiln_gguf_writer_write, on the writing thread. A status other than KILN_OK stops the
 * write (the message set by the callback is kept) and no file is left behind. */
typedef kiln_status (*kiln_gguf_fill_fn)(void *user, int64_t row0, int64_t n_rows, void *dst);

/* As kiln_gguf_writer_add_tensor, but the data is produced at write time by fill, a
 * chunk of rows (about 16 MiB) at a time: a converter or generator can write a model
 * far larger than memory, one tensor slice after another. user is passed to fill and
 * must stay valid until write returns. */
kiln_status kiln_gguf_writer_add_tensor_fn(kiln_gguf_writer *w, const char *name, kiln_dtype type, int n_dims,
                                           const int64_t *ne, kiln_gguf_fill_fn fill, void *user);

/* Writes everything to path. KILN_ERR_IO names the file on a write failure;
 * KILN_ERR_INVALID_ARG for a bad general.alignment. The writer stays usable. */
kiln_status kiln_gguf_writer_write(kiln_gguf_writer *w, const char *path);

void kiln_gguf_writer_free(kiln_gguf_writer *w);

#endif
