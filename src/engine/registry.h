/*
 * registry.h — the model registry: model names -> files, sandboxed in one folder.
 *
 * The server (`kiln serve --models DIR`) names models by their file or folder name
 * inside one models directory, or by an alias from its config. A name is a plain name,
 * never a path: it is checked before the file system is touched (non-empty, at most
 * 255 bytes, valid UTF-8 without control characters, no '/' or '\\', no leading '.'),
 * and whatever it leads to is realpath'd and must stay inside realpath(DIR) — so a
 * symlink that leads out of the directory (the model itself, or a file inside a model
 * folder) is refused, while symlinks that stay inside are followed.
 *
 * What counts as a model in DIR (hidden entries are ignored, anything else unlisted):
 *  - NAME.gguf, a file starting with the GGUF magic (version 2 or 3)    -> "gguf"
 *  - NAME.bin, a llama2.c checkpoint (header probed, length checked; a llama2.c
 *    tokenizer is not one), with DIR/tokenizer.bin as its tokenizer if present -> "llama2c"
 *  - a folder NAME holding
 *      model_index.json (a diffusers Stable Diffusion pipeline; every entry of
 *      its text_encoder/, unet/, vae/, tokenizer/, scheduler/ must stay inside)  -> "diffusers"
 *      config.json + *.safetensors or model.safetensors.index.json   -> "safetensors"
 *      else exactly one GGUF file                                     -> "gguf"
 *      else one llama2.c checkpoint (+ a llama2.c tokenizer .bin, tokenizer.bin
 *      preferred)                                                     -> "llama2c"
 * Files are listed under their name without .gguf / .bin; the full file name resolves
 * too. Nothing is parsed beyond a few header bytes (a llama2.c tokenizer is walked,
 * it is small).
 *
 * Thread safety: resolve and list only read the registry and the file system and may
 * run concurrently; add_alias must not run concurrently with anything else (the server
 * adds its aliases at start-up).
 */
#ifndef KILN_ENGINE_REGISTRY_H
#define KILN_ENGINE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

/* Longest model or alias name, in bytes. */
#define KILN_MODEL_NAME_MAX 255

typedef struct kiln_registry kiln_registry;

typedef struct {
    char *name;           /* the name it is listed under ("stories260K", "tinyllama.Q4_0", an alias) */
    char *alias_of;       /* for an alias: the model name it stands for; NULL otherwise */
    char *path;           /* absolute, realpath'd, inside the models dir: the model file, or the
                           * folder of a safetensors model */
    char *tokenizer_path; /* absolute path of a separate tokenizer file (llama2.c tokenizer .bin), or NULL */
    const char *format;   /* static string: "gguf", "llama2c", "safetensors" or "diffusers" */
    int64_t bytes;        /* total size of the weight files (for the memory budget) */
} kiln_model_entry;

/* Opens the registry of models_dir, which must exist and be a folder
 * (KILN_ERR_NOT_FOUND / KILN_ERR_INVALID_ARG otherwise). Nothing is scanned yet. On
 * success *out is owned by the caller (kiln_registry_free); on failure it is NULL. */
kiln_status kiln_registry_open(const char *models_dir, kiln_registry **out);
void kiln_registry_free(kiln_registry *r);

/* Adds alias -> target. Both obey the name rules (KILN_ERR_INVALID_ARG otherwise);
 * target must be a model of the directory now (not another alias; KILN_ERR_NOT_FOUND
 * if there is none); the alias must not already be an alias or a model of the
 * directory (KILN_ERR_INVALID_ARG). The strings are copied. */
kiln_status kiln_registry_add_alias(kiln_registry *r, const char *alias, const char *target);

/* Resolves a name (an alias, or a model of the directory, looked up now). On success
 * fills *out, whose strings are malloc'd (kiln_model_entry_clear). On failure *out is
 * zeroed and the status is
 *   KILN_ERR_INVALID_ARG  not a plain name ("model names are plain names inside the
 *                         models directory: '../x' is refused (...)"), or it leads
 *                         outside the models directory;
 *   KILN_ERR_NOT_FOUND    "no model named 'x' in DIR" (also: an entry that is no model);
 *   KILN_ERR_NOMEM / KILN_ERR_IO.
 * Messages quote the name escaped (non-printable bytes as \xNN), never the outside
 * target of a symlink. */
kiln_status kiln_registry_resolve(kiln_registry *r, const char *name, kiln_model_entry *out);

/* Lists every model of the directory (rescanned on each call) and every alias whose
 * target still resolves, sorted by name (strcmp). Entries that are no model or that
 * lead outside the directory are left out. On success *entries (NULL when *n is 0) is
 * owned by the caller (kiln_model_entries_free). */
kiln_status kiln_registry_list(kiln_registry *r, kiln_model_entry **entries, size_t *n);

/* Frees e's strings and zeroes it. NULL is fine. */
void kiln_model_entry_clear(kiln_model_entry *e);
/* Clears n entries and frees the array. */
void kiln_model_entries_free(kiln_model_entry *e, size_t n);

/* Checks that name is a plain model name (the rules above). KILN_OK, or
 * KILN_ERR_INVALID_ARG with a message saying what is wrong. Touches no file. */
kiln_status kiln_model_name_check(const char *name);

#endif
