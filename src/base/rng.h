/*
 * rng.h — a small seeded random number generator (xoshiro256**, seeded by
 * splitmix64) so that a seed gives the same stream on every machine.
 */
#ifndef KILN_BASE_RNG_H
#define KILN_BASE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} kiln_rng;

void kiln_rng_seed(kiln_rng *r, uint64_t seed);
uint64_t kiln_rng_u64(kiln_rng *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float kiln_rng_f32(kiln_rng *r);
/* Uniform in [0, 1) with 53 bits of precision. */
double kiln_rng_f64(kiln_rng *r);

#endif
