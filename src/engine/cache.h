/*
 * cache.h — loaded models under a memory budget.
 *
 * A job asks for a model by its resolved files and gets an instance for its own use
 * (an instance holds a KV cache, so two jobs running at once on one model use two
 * instances; the mmap'd weights are shared by the OS and counted once per model).
 * Idle instances stay loaded for the model's keep-alive; when a new load would not
 * fit the budget, idle instances are unloaded least recently used first. If it still
 * cannot fit, the request fails with KILN_ERR_CAPACITY naming the sizes — never an
 * out-of-memory kill: the KV cache size is checked before it is allocated.
 */
#ifndef KILN_ENGINE_CACHE_H
#define KILN_ENGINE_CACHE_H

#include <stdint.h>

#include "base/status.h"
#include "kiln.h"

typedef struct kiln_model_cache kiln_model_cache;

typedef struct {
    const char *name;           /* the key: one model name, one set of instances */
    const char *path, *tokenizer_path;
    int64_t weight_bytes;       /* size of the weight files */
    int n_ctx;                  /* 0: the model's own (capped at 4096) */
    double keep_alive;          /* seconds idle before unloading; < 0 never */
} kiln_model_spec;

typedef struct {
    char name[256];
    int instances, in_use;
    int64_t bytes;
    double load_seconds;        /* of the last load */
    double last_used;           /* monotonic seconds */
} kiln_cache_entry_info;

/* budget_bytes <= 0: no budget. n_threads: threads per instance (0: all cores). */
kiln_status kiln_cache_create(int64_t budget_bytes, int n_threads, kiln_model_cache **out);
/* Unloads everything; no instance may be in use. */
void kiln_cache_free(kiln_model_cache *c);
/* An instance for exclusive use until kiln_cache_release. *loaded tells whether this
 * call loaded it (and *load_seconds how long it took). */
kiln_status kiln_cache_acquire(kiln_model_cache *c, const kiln_model_spec *spec, kiln_llm **out, bool *loaded,
                               double *load_seconds);
void kiln_cache_release(kiln_model_cache *c, kiln_llm *llm);
/* The same for embedding models: instances of a name are embedders, counted with
 * their weights and activation buffers. */
kiln_status kiln_cache_acquire_embedder(kiln_model_cache *c, const kiln_model_spec *spec, kiln_embedder **out,
                                        bool *loaded, double *load_seconds);
void kiln_cache_release_embedder(kiln_model_cache *c, kiln_embedder *e);
/* The same for Stable Diffusion models: weights (the files) counted once per model,
 * each instance's prepared copies (kiln_sd_memory) on top. */
kiln_status kiln_cache_acquire_sd(kiln_model_cache *c, const kiln_model_spec *spec, kiln_sd **out, bool *loaded,
                                  double *load_seconds);
void kiln_cache_release_sd(kiln_model_cache *c, kiln_sd *m);
/* Counts bytes against the budget for the instance `handle` (acquired, any kind) until
 * it is released — what a job needs on top while it runs (an image generation's
 * activations, kiln_sd_memory_needed). Idle instances are unloaded to make room;
 * KILN_ERR_CAPACITY naming the sizes if it still cannot fit. */
kiln_status kiln_cache_reserve(kiln_model_cache *c, const void *handle, int64_t bytes);
/* Unloads idle instances past their keep-alive. Returns how many it unloaded. */
int kiln_cache_reap(kiln_model_cache *c);
/* Bytes counted against the budget now. */
int64_t kiln_cache_bytes(kiln_model_cache *c);
/* Up to max entries (one per model name loaded); returns the count. */
int kiln_cache_list(kiln_model_cache *c, kiln_cache_entry_info *out, int max);

#endif
