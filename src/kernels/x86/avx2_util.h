/*
 * avx2_util.h — small inline helpers shared by the AVX2 kernel files (compiled only
 * into *_avx2.c files, which get the AVX2/F16C flags).
 */
#ifndef KILN_KERNELS_AVX2_UTIL_H
#define KILN_KERNELS_AVX2_UTIL_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* The fp16 at p as a float (exact). */
static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Sum of the 8 lanes, in a fixed order. */
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
