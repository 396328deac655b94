/*
 * cache.c — loaded-model cache with a memory budget and keep-alive (see cache.h).
 *
 * A flat array of instances under one mutex: the number of loaded instances is small
 * (a few models times the jobs running at once), so linear scans are the simple and
 * fast choice. Loads happen under the lock, which keeps the budget arithmetic exact.
 */
#include "engine/cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/timer.h"

typedef struct {
    char *name;
    kiln_llm *llm;       /* exactly one of these is set */
    kiln_embedder *emb;
    kiln_sd *sd;
    bool in_use;
    double last_used, keep_alive, load_seconds;
    int64_t weight_bytes, runtime_bytes;
    int64_t work_bytes;  /* reserved by the job using it (an image generation's activations) */
} instance;

typedef enum { KIND_LLM, KIND_EMB, KIND_SD } inst_kind;

static const void *handle_of(const instance *in) {
    return in->llm ? (const void *)in->llm : in->emb ? (const void *)in->emb : (const void *)in->sd;
}

struct kiln_model_cache {
    pthread_mutex_t mu;
    int64_t budget;
    int n_threads;
    instance *v;
    int n, cap;
};

kiln_status kiln_cache_create(int64_t budget_bytes, int n_threads, kiln_model_cache **out) {
    kiln_model_cache *c = calloc(1, sizeof *c);
    if (!c) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget_bytes;
    c->n_threads = n_threads;
    *out = c;
    return KILN_OK;
}

static void drop(kiln_model_cache *c, int i) {
    kiln_llm_free(c->v[i].llm);
    kiln_embedder_free(c->v[i].emb);
    kiln_sd_free(c->v[i].sd);
    free(c->v[i].name);
    c->v[i] = c->v[--c->n];
}

void kiln_cache_free(kiln_model_cache *c) {
    if (!c) return;
    while (c->n) drop(c, c->n - 1);
    free(c->v);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static bool name_loaded(const kiln_model_cache *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->v[i].name, name)) return true;
    return false;
}

/* Weights count once per model; each instance adds its KV cache and activations. */
static int64_t used_bytes(const kiln_model_cache *c) {
    int64_t sum = 0;
    for (int i = 0; i < c->n; i++) {
        bool first = true;
        for (int j = 0; j < i; j++)
            if (!strcmp(c->v[j].name, c->v[i].name)) first = false;
        sum += c->v[i].runtime_bytes + c->v[i].work_bytes + (first ? c->v[i].weight_bytes : 0);
    }
    return sum;
}

/* Least recently used idle instance, -1 if none. */
static int lru_idle(const kiln_model_cache *c) {
    int best = -1;
    for (int i = 0; i < c->n; i++)
        if (!c->v[i].in_use && (best < 0 || c->v[i].last_used < c->v[best].last_used)) best = i;
    return best;
}

/* An embedder or an image model knows its memory only once loaded: over the budget,
 * it is unloaded again (after evicting what idle instances can be) and the load fails
 * as an LLM's would. */
static kiln_status fit_loaded(kiln_model_cache *c, const kiln_model_spec *spec, int64_t runtime) {
    if (c->budget <= 0) return KILN_OK;
    const int64_t need = runtime + (name_loaded(c, spec->name) ? 0 : spec->weight_bytes);
    while (c->budget - used_bytes(c) < need) {
        int victim = lru_idle(c);
        if (victim < 0)
            return kiln_fail(KILN_ERR_CAPACITY, "model '%s' needs %lld MiB; the memory budget of %lld MiB has %lld "
                             "MiB free", spec->name, (long long)(need >> 20), (long long)(c->budget >> 20),
                             (long long)((c->budget - used_bytes(c)) >> 20));
        drop(c, victim);
    }
    return KILN_OK;
}

static kiln_status load_embedder(kiln_model_cache *c, const kiln_model_spec *spec, kiln_embedder **out,
                                 double *secs) {
    kiln_embedder_options o = {.path = spec->path, .tokenizer_path = spec->tokenizer_path, .n_threads = c->n_threads};
    double t0 = kiln_time_now();
    kiln_status st = kiln_embedder_load(&o, out);
    *secs = kiln_time_now() - t0;
    if (!st && (st = fit_loaded(c, spec, (int64_t)kiln_embedder_memory(*out)))) {
        kiln_embedder_free(*out);
        *out = NULL;
    }
    return st;
}

static kiln_status load_sd(kiln_model_cache *c, const kiln_model_spec *spec, kiln_sd **out, double *secs) {
    /* the weights must fit before they are mapped and prepared */
    if (c->budget > 0 && !name_loaded(c, spec->name) && spec->weight_bytes > c->budget)
        return kiln_fail(KILN_ERR_CAPACITY, "model '%s' needs %lld MiB for its weights; the memory budget is %lld MiB",
                         spec->name, (long long)(spec->weight_bytes >> 20), (long long)(c->budget >> 20));
    kiln_sd_options o = {.path = spec->path, .n_threads = c->n_threads};
    double t0 = kiln_time_now();
    kiln_status st = kiln_sd_load(&o, out);
    *secs = kiln_time_now() - t0;
    if (!st && (st = fit_loaded(c, spec, (int64_t)kiln_sd_memory(*out)))) {
        kiln_sd_free(*out);
        *out = NULL;
    }
    return st;
}

static kiln_status load(kiln_model_cache *c, const kiln_model_spec *spec, kiln_llm **out, double *secs) {
    for (;;) {
        int64_t free_bytes = 0;
        if (c->budget > 0) {
            free_bytes = c->budget - used_bytes(c) - (name_loaded(c, spec->name) ? 0 : spec->weight_bytes);
            if (free_bytes <= 0) {
                int victim = lru_idle(c);
                if (victim < 0) {
                    if (spec->weight_bytes > c->budget)
                        return kiln_fail(KILN_ERR_CAPACITY, "model '%s' needs %lld MiB for its weights; the memory "
                                         "budget is %lld MiB", spec->name, (long long)(spec->weight_bytes >> 20),
                                         (long long)(c->budget >> 20));
                    return kiln_fail(KILN_ERR_CAPACITY, "model '%s' does not fit the memory budget now (%lld of "
                                     "%lld MiB in use by running jobs)", spec->name,
                                     (long long)(used_bytes(c) >> 20), (long long)(c->budget >> 20));
                }
                drop(c, victim);
                continue;
            }
        }
        kiln_llm_options o = {.path = spec->path, .tokenizer_path = spec->tokenizer_path, .n_ctx = spec->n_ctx,
                              .n_threads = c->n_threads, .max_memory = (size_t)free_bytes};
        double t0 = kiln_time_now();
        kiln_status st = kiln_llm_load(&o, out);
        *secs = kiln_time_now() - t0;
        if (st != KILN_ERR_CAPACITY) return st;
        int victim = lru_idle(c);
        if (victim < 0) return kiln_fail_prefix(st, "model '%s'", spec->name);
        drop(c, victim);
    }
}

/* One instance of spec's model for exclusive use, of the kind asked (*out: its handle). */
static kiln_status acquire(kiln_model_cache *c, const kiln_model_spec *spec, inst_kind kind, void **out,
                           bool *loaded, double *load_seconds) {
    if (loaded) *loaded = false;
    if (load_seconds) *load_seconds = 0;
    pthread_mutex_lock(&c->mu);
    kiln_status st = KILN_OK;
    for (int i = 0; i < c->n; i++) {
        instance *in = &c->v[i];
        const bool same = kind == KIND_LLM ? in->llm != NULL : kind == KIND_EMB ? in->emb != NULL : in->sd != NULL;
        if (!in->in_use && same && !strcmp(in->name, spec->name)) {
            in->in_use = true;
            *out = (void *)handle_of(in);
            goto done;
        }
    }
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 8;
        instance *nv = realloc(c->v, (size_t)nc * sizeof *nv);
        if (!nv) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            goto done;
        }
        c->v = nv;
        c->cap = nc;
    }
    instance in = {.in_use = true, .keep_alive = spec->keep_alive, .weight_bytes = spec->weight_bytes};
    double secs = 0;
    if (!(in.name = kiln_strdup(spec->name))) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    else if (kind == KIND_LLM) st = load(c, spec, &in.llm, &secs);
    else if (kind == KIND_EMB) st = load_embedder(c, spec, &in.emb, &secs);
    else st = load_sd(c, spec, &in.sd, &secs);
    if (st) {
        free(in.name);
        goto done;
    }
    in.last_used = kiln_time_now();
    in.load_seconds = secs;
    in.runtime_bytes = (int64_t)(in.llm ? kiln_llm_memory(in.llm) : in.emb ? kiln_embedder_memory(in.emb)
                                                                            : kiln_sd_memory(in.sd));
    c->v[c->n++] = in;
    *out = (void *)handle_of(&in);
    if (loaded) *loaded = true;
    if (load_seconds) *load_seconds = secs;
done:
    pthread_mutex_unlock(&c->mu);
    return st;
}

kiln_status kiln_cache_acquire(kiln_model_cache *c, const kiln_model_spec *spec, kiln_llm **out, bool *loaded,
                               double *load_seconds) {
    void *h = NULL;
    kiln_status st = acquire(c, spec, KIND_LLM, &h, loaded, load_seconds);
    *out = h;
    return st;
}

kiln_status kiln_cache_acquire_embedder(kiln_model_cache *c, const kiln_model_spec *spec, kiln_embedder **out,
                                        bool *loaded, double *load_seconds) {
    void *h = NULL;
    kiln_status st = acquire(c, spec, KIND_EMB, &h, loaded, load_seconds);
    *out = h;
    return st;
}

kiln_status kiln_cache_acquire_sd(kiln_model_cache *c, const kiln_model_spec *spec, kiln_sd **out, bool *loaded,
                                  double *load_seconds) {
    void *h = NULL;
    kiln_status st = acquire(c, spec, KIND_SD, &h, loaded, load_seconds);
    *out = h;
    return st;
}

kiln_status kiln_cache_reserve(kiln_model_cache *c, const void *handle, int64_t bytes) {
    pthread_mutex_lock(&c->mu);
    kiln_status st = KILN_OK;
    int k = -1;
    for (int i = 0; i < c->n && k < 0; i++)
        if (handle_of(&c->v[i]) == handle) k = i;
    if (k < 0) {
        st = kiln_fail(KILN_ERR_INVALID_ARG, "kiln_cache_reserve: not an instance of this cache");
        goto done;
    }
    c->v[k].work_bytes = 0;
    while (c->budget > 0 && c->budget - used_bytes(c) < bytes) {
        int victim = lru_idle(c); /* never k: it is in use */
        if (victim < 0) {
            st = kiln_fail(KILN_ERR_CAPACITY, "it needs %lld MiB while it runs; the memory budget of %lld MiB has "
                           "%lld MiB free", (long long)(bytes >> 20), (long long)(c->budget >> 20),
                           (long long)((c->budget - used_bytes(c)) >> 20));
            goto done;
        }
        const void *h = handle_of(&c->v[k]);
        drop(c, victim); /* drop moves the last instance into the victim's place */
        for (int i = 0; i < c->n; i++)
            if (handle_of(&c->v[i]) == h) k = i;
    }
    c->v[k].work_bytes = bytes;
done:
    pthread_mutex_unlock(&c->mu);
    return st;
}

static void release(kiln_model_cache *c, const void *handle) {
    if (!handle) return;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        if (handle_of(&c->v[i]) == handle) {
            c->v[i].in_use = false;
            c->v[i].work_bytes = 0;
            c->v[i].last_used = kiln_time_now();
            if (c->v[i].keep_alive == 0) drop(c, i);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void kiln_cache_release(kiln_model_cache *c, kiln_llm *llm) { release(c, llm); }
void kiln_cache_release_embedder(kiln_model_cache *c, kiln_embedder *e) { release(c, e); }
void kiln_cache_release_sd(kiln_model_cache *c, kiln_sd *m) { release(c, m); }

int kiln_cache_reap(kiln_model_cache *c) {
    int n = 0;
    double now = kiln_time_now();
    pthread_mutex_lock(&c->mu);
    for (int i = c->n - 1; i >= 0; i--) {
        instance *in = &c->v[i];
        if (!in->in_use && in->keep_alive >= 0 && now - in->last_used >= in->keep_alive) {
            drop(c, i);
            n++;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

int64_t kiln_cache_bytes(kiln_model_cache *c) {
    pthread_mutex_lock(&c->mu);
    int64_t b = used_bytes(c);
    pthread_mutex_unlock(&c->mu);
    return b;
}

int kiln_cache_list(kiln_model_cache *c, kiln_cache_entry_info *out, int max) {
    int n = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        int k = 0;
        while (k < n && strcmp(out[k].name, c->v[i].name)) k++;
        if (k == n) {
            if (n == max) continue;
            memset(&out[n], 0, sizeof out[n]);
            snprintf(out[n].name, sizeof out[n].name, "%s", c->v[i].name);
            out[n].bytes = c->v[i].weight_bytes;
            n++;
        }
        out[k].instances++;
        out[k].in_use += c->v[i].in_use;
        out[k].bytes += c->v[i].runtime_bytes + c->v[i].work_bytes;
        out[k].load_seconds = c->v[i].load_seconds;
        if (c->v[i].last_used > out[k].last_used) out[k].last_used = c->v[i].last_used;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}
