/*
 * bind.h — what every model loader does to bind its weights by name: check a
 * matrix's shape and type, copy a small vector (norm, bias) to f32, and repack the
 * matrices this CPU's kernels read faster in their own layout.
 *
 * Loaders keep upstream tensor names in their own tables; these helpers only see the
 * tensor, its name (for the message) and the file it came from.
 */
#ifndef KILN_MODELS_BIND_H
#define KILN_MODELS_BIND_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/mapfile.h"
#include "base/threadpool.h"
#include "tensor/tensor.h"

/* f32 copies a model owns (freed with it). */
typedef struct {
    float **p;
    int n, cap;
} kiln_owned_floats;

/* Frees every copy and empties o. This function can't fail. */
void kiln_owned_floats_free(kiln_owned_floats *o);

/* Keeps p (malloc'd) in o, which frees it; KILN_ERR_NOMEM (p not kept) on failure. */
kiln_status kiln_owned_floats_keep(kiln_owned_floats *o, float *p);

/* Checks that t (called name, from path) is a table whose rows are gathered one at a
 * time (token, position embeddings): ne = [cols, rows], of a type kiln dequantizes
 * (checked on its first row). t NULL: missing (KILN_ERR_FORMAT). */
kiln_status kiln_bind_table_check(const kiln_tensor *t, const char *path, const char *name, int64_t cols,
                                  int64_t rows);

/* Checks that t (called name, from path) maps `in` inputs to `out` outputs (ne = [in,
 * out]), has a type kiln_matmul multiplies, and is aligned for it. t NULL: the tensor
 * is missing (KILN_ERR_FORMAT). Errors name the file, the tensor and the problem. */
kiln_status kiln_bind_matrix_check(const kiln_tensor *t, const char *path, const char *name, int64_t in,
                                   int64_t out);

/* Copies t, a vector of n elements of any type kiln dequantizes, into a new f32
 * array kept in own; *dst points at it. t NULL: missing (KILN_ERR_FORMAT). */
kiln_status kiln_bind_vector_copy(const kiln_tensor *t, const char *path, const char *name, int64_t n,
                                  kiln_owned_floats *own, const float **dst);

/* Matrices repacked at load (kiln_weight_pack): the tensors the model's slots then
 * point to, and their memory. */
typedef struct {
    kiln_tensor *t;
    void **mem;
    int n;
} kiln_packed_set;

/* The file mappings a model's weights point into (NULL: not known). A matrix that
 * kiln_pack_matrices replaces by a copy gives its pages back to the OS where it lies
 * in one of them (kiln_mapfile_release), so the weights are not resident twice;
 * elsewhere its pages are only advised cold. */
typedef struct {
    const kiln_mapfile *const *maps;
    size_t n;
} kiln_weight_files;

/* What kiln_pack_matrices does with float (F32, F16, BF16) matrices. */
typedef enum {
    KILN_PANELS_NONE, /* leave them as they are (decoders: one row at a time) */
    KILN_PANELS_F32,  /* fp32 panels (kiln_weight_pack_panels: models that only run batches) */
    KILN_PANELS_BF16, /* bf16 panels where the CPU has AVX512_BF16, else fp32 panels */
} kiln_panel_mode;

/* Repacks every *slots[i] (NULL slots skipped) that this CPU's kernels pack, in
 * parallel one task each, and points the slot at the packed copy kept in out. Types
 * the kernels leave as they are keep their slot; float matrices go as mode says.
 * KILN_ERR_NOMEM on failure (slots packed so far stay valid and are freed with out). */
kiln_status kiln_pack_matrices(const kiln_tensor **const *slots, int n, kiln_panel_mode mode,
                               const kiln_weight_files *files, kiln_pool *pool, kiln_packed_set *out);

/* Frees the packed copies. This function can't fail. */
void kiln_packed_set_free(kiln_packed_set *s);

/* Parses JSON as Python's json module writes it (diffusers' and transformers'
 * config files): NaN, Infinity and -Infinity outside strings, which cJSON does not
 * read, are taken as null, 1e999 and -1e999 (+-inf). NULL on a syntax error or
 * allocation failure; the caller deletes the result. */
cJSON *kiln_json_parse_py(const char *json);

/* A non-negative integer o[key] of a JSON config (absent or null: dflt, or an error if
 * required); errors name what (e.g. "DIR/config.json") and the key. */
kiln_status kiln_json_int(const cJSON *o, const char *key, bool required, int dflt, int *out, const char *what);

#endif
