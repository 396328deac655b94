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

/* The 8 fp16 values at p as floats (exact). */
static inline __m256 half8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)); }

/* Largest of the 8 lanes (max is exact, so the order does not matter for numbers). */
static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* Sum of the 8 lanes, in a fixed order. */
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
