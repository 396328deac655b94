/*
 * sampler.c — token sampling.
 *
 * Chain (llama.cpp's default order): penalties over the last repeat_last_n tokens →
 * top-k → top-p (smallest set whose probability reaches p) → min-p (drop tokens below
 * min_p × the best one's probability) → temperature → softmax → one uniform draw.
 * Candidates are sorted by logit (descending, ties by lower id) so that every step is
 * exact and reproducible.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "base/status.h"

typedef struct {
    float logit;
    int32_t id;
} cand;

struct kiln_sampler {
    kiln_sampler_params p;
    int32_t n_vocab;
    kiln_rng rng;
    int32_t *hist;     /* ring of the last `window` tokens */
    int64_t n_hist;    /* tokens accepted so far */
    int window;        /* ring size (0: penalties off) */
    int32_t *counts;   /* (n_vocab) scratch for penalty counts */
    cand *cands;       /* (n_vocab) */
    double *probs;     /* (n_vocab) */
};

static bool penalties_on(const kiln_sampler_params *p) {
    return p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

kiln_status kiln_sampler_create(const kiln_sampler_params *p, int32_t n_vocab, kiln_sampler **out) {
    *out = NULL;
    if (n_vocab <= 0) return kiln_fail(KILN_ERR_INVALID_ARG, "sampler: vocabulary size %d", n_vocab);
    const struct { const char *name; float v; } fs[] = {
        {"temperature", p->temperature}, {"top_p", p->top_p}, {"min_p", p->min_p},
        {"repeat_penalty", p->repeat_penalty}, {"frequency_penalty", p->frequency_penalty},
        {"presence_penalty", p->presence_penalty}};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        if (!isfinite(fs[i].v)) return kiln_fail(KILN_ERR_INVALID_ARG, "sampler: %s is not a number", fs[i].name);
    }
    if (p->repeat_penalty <= 0) return kiln_fail(KILN_ERR_INVALID_ARG, "sampler: repeat_penalty must be > 0");
    if (p->top_p < 0 || p->min_p < 0 || p->min_p > 1)
        return kiln_fail(KILN_ERR_INVALID_ARG, "sampler: top_p must be >= 0 and min_p within [0, 1]");
    if (p->repeat_last_n < -1) return kiln_fail(KILN_ERR_INVALID_ARG, "sampler: repeat_last_n must be >= -1");
    kiln_sampler *s = calloc(1, sizeof *s);
    if (!s) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    if (penalties_on(p)) s->window = p->repeat_last_n == 0 ? 64 : p->repeat_last_n == -1 ? 1 << 20 : p->repeat_last_n;
    s->counts = kiln_calloc_array((size_t)n_vocab, sizeof *s->counts);
    s->cands = kiln_malloc_array((size_t)n_vocab, sizeof *s->cands);
    s->probs = kiln_malloc_array((size_t)n_vocab, sizeof *s->probs);
    s->hist = s->window ? kiln_malloc_array((size_t)s->window, sizeof *s->hist) : NULL;
    if (!s->counts || !s->cands || !s->probs || (s->window && !s->hist)) {
        kiln_sampler_free(s);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory for the sampler");
    }
    kiln_sampler_reset(s);
    *out = s;
    return KILN_OK;
}

void kiln_sampler_free(kiln_sampler *s) {
    if (!s) return;
    free(s->hist);
    free(s->counts);
    free(s->cands);
    free(s->probs);
    free(s);
}

void kiln_sampler_reset(kiln_sampler *s) {
    s->n_hist = 0;
    kiln_rng_seed(&s->rng, s->p.seed);
}

void kiln_sampler_accept(kiln_sampler *s, int32_t id) {
    if (!s->window) return;
    s->hist[s->n_hist % s->window] = id;
    s->n_hist++;
}

static void apply_penalties(kiln_sampler *s, float *logits) {
    int64_t n = s->n_hist < s->window ? s->n_hist : s->window;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = s->hist[i];
        if (id >= 0 && id < s->n_vocab) s->counts[id]++;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t id = s->hist[i];
        if (id < 0 || id >= s->n_vocab || s->counts[id] == 0) continue; /* each token once */
        float *l = &logits[id];
        *l = *l > 0 ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
        *l -= (float)s->counts[id] * s->p.frequency_penalty + s->p.presence_penalty;
        s->counts[id] = 0;
    }
}

static int32_t argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    return best;
}

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Puts the k best candidates, sorted, in cands[0..k) and returns k. Small k: one
 * pass with an insertion-sorted window (O(V·k) worst case, O(V) typical); else a
 * full sort. */
static int32_t select_sorted(kiln_sampler *s, const float *logits, int32_t k) {
    int32_t n = s->n_vocab;
    if (k < n && k <= 256) {
        /* keep a sorted window of the best k while scanning */
        int32_t m = 0;
        for (int32_t i = 0; i < n; i++) {
            cand c = {logits[i], i};
            if (m == k && cmp_cand(&c, &s->cands[m - 1]) >= 0) continue;
            int32_t j = m < k ? m++ : k - 1;
            while (j > 0 && cmp_cand(&c, &s->cands[j - 1]) < 0) {
                s->cands[j] = s->cands[j - 1];
                j--;
            }
            s->cands[j] = c;
        }
        return m;
    }
    for (int32_t i = 0; i < n; i++) s->cands[i] = (cand){logits[i], i};
    qsort(s->cands, (size_t)n, sizeof *s->cands, cmp_cand);
    return k < n ? k : n;
}

int32_t kiln_sampler_sample(kiln_sampler *s, float *logits) {
    const kiln_sampler_params *p = &s->p;
    if (s->window) apply_penalties(s, logits);
    if (p->temperature <= 0 || p->top_k == 1) return argmax(logits, s->n_vocab);
    int32_t k = p->top_k > 0 && p->top_k < s->n_vocab ? p->top_k : s->n_vocab;
    int32_t n = select_sorted(s, logits, k);
    /* probabilities at temperature 1 for top-p / min-p (as llama.cpp's chain) */
    double mx = s->cands[0].logit, sum = 0;
    for (int32_t i = 0; i < n; i++) sum += s->probs[i] = exp((double)s->cands[i].logit - mx);
    if (p->top_p < 1.0f) {
        double cum = 0;
        for (int32_t i = 0; i < n; i++) {
            cum += s->probs[i] / sum;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) {
        int32_t keep = 1; /* probs[0] is the best: exp(0) = 1 */
        while (keep < n && s->probs[keep] >= p->min_p) keep++;
        n = keep;
    }
    sum = 0;
    for (int32_t i = 0; i < n; i++) sum += s->probs[i] = exp(((double)s->cands[i].logit - mx) / p->temperature);
    double r = kiln_rng_f64(&s->rng) * sum, acc = 0;
    for (int32_t i = 0; i < n; i++) {
        acc += s->probs[i];
        if (r < acc) return s->cands[i].id;
    }
    return s->cands[n - 1].id;
}
