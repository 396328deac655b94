/*
 * embed.h — sentence embeddings from an encoder's token states: pooling and L2
 * normalization as sentence-transformers' Pooling and Normalize modules do them.
 */
#ifndef KILN_PIPELINES_EMBED_H
#define KILN_PIPELINES_EMBED_H

#include <stdbool.h>
#include <stdint.h>

#include "models/bert.h"

/* Pools the states of one sequence, (len, d) floats, into out (d floats): mean over
 * the tokens, the first ([CLS]) or last token, or the element-wise max; then divides
 * by the L2 norm (at least 1e-12) when normalize is set. KILN_POOL_NONE and len <= 0
 * give KILN_ERR_INVALID_ARG. Sums run in double, in token order. */
kiln_status kiln_embed_pool(kiln_pooling mode, const float *states, int len, int d, bool normalize, float *out);

#endif
