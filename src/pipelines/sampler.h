/*
 * sampler.h — picks the next token from logits: repetition / frequency / presence
 * penalties, then top-k, top-p, min-p and temperature, then a seeded draw.
 *
 * The order is llama.cpp's default chain, so users coming from it get the same
 * behaviour from the same settings. A given seed and history give the same token on
 * every machine and thread count (the draw uses kiln_rng, the arithmetic is scalar).
 */
#ifndef KILN_PIPELINES_SAMPLER_H
#define KILN_PIPELINES_SAMPLER_H

#include <stdint.h>

#include "kiln.h"

typedef struct {
    float temperature;        /* <= 0: greedy (argmax; ties -> lowest id) */
    int top_k;                /* <= 0: off */
    float top_p;              /* >= 1: off */
    float min_p;              /* <= 0: off */
    float repeat_penalty;     /* 1: off (logit > 0 ? logit / p : logit * p) */
    int repeat_last_n;        /* penalty window; 0 -> 64; -1 -> whole history */
    float frequency_penalty;  /* 0: off: logit -= count * value */
    float presence_penalty;   /* 0: off: logit -= (count > 0) * value */
    uint64_t seed;
} kiln_sampler_params;

typedef struct kiln_sampler kiln_sampler;

/* Checks the parameters (KILN_ERR_INVALID_ARG naming a bad one) and allocates all
 * the memory sampling will need. *out is owned by the caller (kiln_sampler_free). */
kiln_status kiln_sampler_create(const kiln_sampler_params *p, int32_t n_vocab, kiln_sampler **out);
void kiln_sampler_free(kiln_sampler *s);
/* Records a token (prompt or generated) in the penalty history. */
void kiln_sampler_accept(kiln_sampler *s, int32_t id);
/* Picks the next token from logits (n_vocab floats; modified in place). This
 * function can't fail. */
int32_t kiln_sampler_sample(kiln_sampler *s, float *logits);
/* Clears the history and reseeds. */
void kiln_sampler_reset(kiln_sampler *s);

#endif
