/*
 * kquant_fit.h — what the K-quant code shares (klow_ref.c: Q2_K, Q3_K; kquants_ref.c:
 * Q4_K, Q5_K, Q6_K; pack.c): ggml's rounding, its scale/min search, and the 6-bit
 * scale/min unpacking of Q4_K / Q5_K.
 */
#ifndef KILN_KERNELS_KQUANT_FIT_H
#define KILN_KERNELS_KQUANT_FIT_H

#include <stdbool.h>
#include <stdint.h>

/* Round to nearest, ties to even, as ggml's nearest_int (the 1.5 * 2^23 trick) within
 * its valid range |v| <= 4194303; saturating beyond it, NaN -> 0, so any input is
 * defined. */
int kiln_kq_nearest(float v);

/* Scale and minimum for n (<= 32) values x with weights w, quants 0..nmax in L, as
 * llama.cpp's make_qkx2_quants (same operations in the same order): returns the
 * scale, stores -min in *neg_min. use_mad: absolute instead of squared errors. */
float kiln_kq_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                            float rdelta, int nstep, bool use_mad);

/* Unpacks the 12 scale bytes of a Q4_K / Q5_K super-block to sc[8] and m[8]. */
void kiln_kq_unpack_scales(const uint8_t *s, uint8_t *sc, uint8_t *m);

/* The 6-bit scale (0..63, 32 meaning zero) of sub-block j of a Q3_K super-block
 * (klow_ref.c). */
int kiln_kq_q3_scale(const uint8_t *scales, int j);

#endif
