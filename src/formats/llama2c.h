/*
 * llama2c.h — reader for llama2.c checkpoints (Karpathy's `.bin` files).
 *
 * Two layouts are read, both all float32:
 *  - version 0 (legacy, what run.c reads): 7 int32 (dim, hidden_dim, n_layers,
 *    n_heads, n_kv_heads, vocab_size, seq_len), a negative vocab_size meaning the
 *    classifier is stored separately at the end; then token embeddings, the per-layer
 *    arrays grouped by kind, the final norm, two RoPE tables (ignored) and the
 *    optional classifier.
 *  - version 1 (export.py --version 1): u32 magic "ak42", i32 version 1, the same 7
 *    ints, a u8 shared-classifier flag, zero padding to 256 bytes; then the norms, the
 *    embeddings, the per-layer matrices grouped by kind, the optional classifier.
 *
 * The file is mmap'd and cut into named 2-D views with Meta's original Llama names
 * (tok_embeddings.weight, layers.N.attention.wq.weight, ...). Every matrix is stored
 * (out, in) row-major, so its kiln shape is ne = [in, out].
 */
#ifndef KILN_FORMATS_LLAMA2C_H
#define KILN_FORMATS_LLAMA2C_H

#include <stdbool.h>
#include <stdint.h>

#include "base/mapfile.h"
#include "formats/weights.h"

typedef struct {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    bool shared_classifier; /* output.weight is tok_embeddings.weight */
    int version;            /* 0 (legacy) or 1 */
} kiln_llama2c_config;

typedef struct kiln_llama2c kiln_llama2c;

/* Opens and validates path: sane header values and a file at least as long as the
 * header implies (the message says how many bytes are missing). On success *out is
 * owned by the caller (kiln_llama2c_close); on failure *out is NULL and the status is
 * KILN_ERR_IO / KILN_ERR_FORMAT / KILN_ERR_UNSUPPORTED / KILN_ERR_NOMEM. */
kiln_status kiln_llama2c_open(const char *path, kiln_llama2c **out);

/* Heuristic for format detection: true if the first bytes (n of them) look like a
 * llama2.c header (version-1 magic, or 7 int32 that pass the open-time checks). */
bool kiln_llama2c_sniff(const void *head, size_t n);

const kiln_llama2c_config *kiln_llama2c_config_get(const kiln_llama2c *m);
/* The checkpoint's mapping (the weights' views point into it). */
const kiln_mapfile *kiln_llama2c_map(const kiln_llama2c *m);
/* The named views; valid until close. */
const kiln_weight_list *kiln_llama2c_weights(const kiln_llama2c *m);
/* Byte offset in the file of weight i's data (i < n). */
uint64_t kiln_llama2c_offset(const kiln_llama2c *m, size_t i);
void kiln_llama2c_close(kiln_llama2c *m);

#endif
