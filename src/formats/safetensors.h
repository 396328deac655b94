/*
 * safetensors.h — reader for Hugging Face safetensors files, single or sharded.
 *
 * A file is: u64 little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
 * then the byte buffer the offsets point into. Files are mmap'd; the weights are views
 * into the mappings, with safetensors' row-major shape [d0, d1, ...] turned into kiln's
 * ne[] = [.., d1, d0] (ne[0] is the last, contiguous dimension). A scalar (shape [])
 * has n_dims 0 and ne all 1.
 *
 * Everything is validated when opened: header length, JSON, dtypes, shapes (at most 4
 * dims), offsets inside the buffer, sizes matching the shapes, no overlaps, unique
 * names across shards, and for a sharded model every tensor of the index's weight_map
 * present in the shard it names.
 *
 * Data is placed where the writer put it; writers pad the header so tensors are
 * aligned to their element size, but a file that does not is still accepted.
 */
#ifndef KILN_FORMATS_SAFETENSORS_H
#define KILN_FORMATS_SAFETENSORS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/mapfile.h"
#include "formats/weights.h"

typedef struct kiln_safetensors kiln_safetensors; /* holds the mappings */

/* path: a .safetensors file, a *.safetensors.index.json, or a folder (which must hold
 * model.safetensors or model.safetensors.index.json; diffusion_pytorch_model.* also
 * accepted). On success *out is owned by the caller (kiln_safetensors_close). On
 * failure *out is NULL and the status is KILN_ERR_IO / KILN_ERR_FORMAT /
 * KILN_ERR_UNSUPPORTED / KILN_ERR_NOMEM with a message naming the file and the
 * problem. */
kiln_status kiln_safetensors_open(const char *path, kiln_safetensors **out);

/* All tensors of all shards, in file order. Valid until close. */
const kiln_weight_list *kiln_safetensors_weights(const kiln_safetensors *st);

/* Value of key in the __metadata__ of the first file (shards sorted by name), or NULL. */
const char *kiln_safetensors_metadata(const kiln_safetensors *st, const char *key);
/* Number of __metadata__ entries of the first file, and entry i (i < count). */
size_t kiln_safetensors_metadata_count(const kiln_safetensors *st);
void kiln_safetensors_metadata_at(const kiln_safetensors *st, size_t i, const char **key, const char **value);

/* The mapping of file i (i < kiln_safetensors_n_files). */
const kiln_mapfile *kiln_safetensors_map(const kiln_safetensors *st, size_t i);

/* Number of files (1 unless sharded) and the path of file i. */
size_t kiln_safetensors_n_files(const kiln_safetensors *st);
const char *kiln_safetensors_file(const kiln_safetensors *st, size_t i);

/* Where weight i (index into the weight list) lives: its file index and the byte
 * offset of its data from the start of that file. Caller guarantees i < n. */
void kiln_safetensors_locate(const kiln_safetensors *st, size_t i, size_t *file, uint64_t *offset);

void kiln_safetensors_close(kiln_safetensors *st);

#endif
