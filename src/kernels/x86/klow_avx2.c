/*
 * klow_avx2.c — the avx2 level (AVX2 + FMA + F16C) of the low-bit K-quant types
 * (Q2_K, Q3_K): matmul micro kernels over the driver's Q8_0 activations.
 *
 * The 32 bytes of each half of a super-block's 2-bit quants, shifted by 2*s, are
 * exactly activation block 4*half + s (32 consecutive elements, sub-blocks 2b and
 * 2b+1 in the two 128-bit lanes), so unpacking needs no shuffles. Each weight row's
 * super-block is unpacked once into a small buffer and reused by every input of
 * the tile (up to 4 rows x 2 inputs, AVX2_MC = 2; the driver's 4-input tiles run in
 * two halves, which changes no result since each element's arithmetic depends only
 * on k):
 *   Q2_K: w = sc * q (16-bit multiply by the zero-extended 4-bit scale, which
 *         cannot carry since sc * q < 256); per block vpmaddubsw (w unsigned, <= 45,
 *         cannot saturate) and vpmaddwd with ones give 8 exact int32 sums. The
 *         minimum is two FMAs per super-block: dmin * m_j (per row) times
 *         d_x * bs[j] (per input).
 *   Q3_K: q3 = q - 4 * (high bit clear) in -4..3; the sign trick (|q3| times x with
 *         q3's sign, vpmaddubsw) then vpmaddwd with the signed sub-block scales.
 * Per block the int32 sums are converted and accumulated with d_x; per super-block
 * the sum is scaled by d. Fixed order per output element, set by k alone.
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/avx2_util.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
#define AVX2_MC 2

enum { K_Q2, K_Q3 };

/* pshufb control giving 16-bit words (byte 2b, 0) in lane 0 and (byte 2b+1, 0) in lane 1. */
INLINE __m256i scale_ctl(int b) {
    const int w0 = (int)((0x8000u | (uint32_t)(2 * b)) * 0x10001u);
    const int w1 = (int)((0x8000u | (uint32_t)(2 * b + 1)) * 0x10001u);
    return _mm256_set_epi32(w1, w1, w1, w1, w0, w0, w0, w0);
}

/* The 2-bit quants of activation block b (0..7) of a super-block. */
INLINE __m256i low2(const uint8_t *qs, int b) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * (b / 4)));
    return _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * (b % 4))), _mm256_set1_epi8(3));
}

/* A weight row's super-block, unpacked. */
typedef struct {
    __m256i w[8];  /* Q2_K: sc * q; Q3_K: |q3| */
    __m256i sg[8]; /* Q3_K: q3 (its sign) */
    __m256i sw[8]; /* Q3_K: signed sub-block scales as 16-bit words */
    __m256 mins[2];
    float d;
} wblock;

INLINE void unpack_q2(const uint8_t *p, wblock *o) {
    const __m128i sc = _mm_loadu_si128((const __m128i *)(const void *)(p + offsetof(kiln_block_q2_k, scales)));
    const __m256i scl = _mm256_broadcastsi128_si256(_mm_and_si128(sc, _mm_set1_epi8(0x0f)));
    UNROLL for (int b = 0; b < 8; b++)
        o->w[b] = _mm256_mullo_epi16(low2(p + offsetof(kiln_block_q2_k, qs), b), _mm256_shuffle_epi8(scl, scale_ctl(b)));
    const __m128i m = _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0f));
    const __m256 dmin = _mm256_set1_ps(half_at(p + offsetof(kiln_block_q2_k, dmin)));
    o->mins[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(m)), dmin);
    o->mins[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(m, 8))), dmin);
    o->d = half_at(p + offsetof(kiln_block_q2_k, d));
}

/* The 16 six-bit scales of a Q3_K block minus 32, as bytes (byte j: sub-block j). */
INLINE __m128i q3_scales(const uint8_t *s) {
    uint32_t a[3];
    memcpy(a, s, 12);
    const uint32_t lo = 0x0f0f0f0f, hi = 0x03030303;
    const uint32_t r0 = (a[0] & lo) | ((a[2] & hi) << 4);
    const uint32_t r1 = (a[1] & lo) | (((a[2] >> 2) & hi) << 4);
    const uint32_t r2 = ((a[0] >> 4) & lo) | (((a[2] >> 4) & hi) << 4);
    const uint32_t r3 = ((a[1] >> 4) & lo) | (((a[2] >> 6) & hi) << 4);
    const __m128i v = _mm_set_epi64x((long long)((uint64_t)r3 << 32 | r2), (long long)((uint64_t)r1 << 32 | r0));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

INLINE void unpack_q3(const uint8_t *p, wblock *o) {
    /* signed scales sign-extended to words, sub-blocks 0..7 and 8..15 each in both lanes */
    const __m128i s8 = q3_scales(p + offsetof(kiln_block_q3_k, scales));
    const __m256i slo = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(s8));
    const __m256i shi = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(s8, 8)));
    const __m256i hm = _mm256_loadu_si256((const __m256i *)(const void *)(p + offsetof(kiln_block_q3_k, hmask)));
    UNROLL for (int b = 0; b < 8; b++) {
        const __m256i q = low2(p + offsetof(kiln_block_q3_k, qs), b);
        /* element 32b + i: bit b of hmask[i]; clear means q - 4 */
        const __m256i clr = _mm256_cmpeq_epi8(_mm256_and_si256(hm, _mm256_set1_epi8((char)(1 << b))),
                                              _mm256_setzero_si256());
        const __m256i q3 = _mm256_sub_epi8(q, _mm256_and_si256(clr, _mm256_set1_epi8(4)));
        o->w[b] = _mm256_abs_epi8(q3);
        o->sg[b] = q3;
        /* word 2b (lane 0) and 2b+1 (lane 1) of the sixteen, repeated over the lane */
        const uint32_t w0 = 4u * (uint32_t)(b % 4), w1 = w0 + 2;
        const int c0 = (int)((w0 | (w0 + 1) << 8) * 0x10001u), c1 = (int)((w1 | (w1 + 1) << 8) * 0x10001u);
        o->sw[b] = _mm256_shuffle_epi8(b < 4 ? slo : shi, _mm256_set_epi32(c1, c1, c1, c1, c0, c0, c0, c0));
    }
    o->mins[0] = o->mins[1] = _mm256_setzero_ps();
    o->d = half_at(p + offsetof(kiln_block_q3_k, d));
}

INLINE void tile(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                 float *y, size_t ldy) {
    const size_t bsz = kind == K_Q2 ? sizeof(kiln_block_q2_k) : sizeof(kiln_block_q3_k);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[KILN_MR][AVX2_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / KILN_QK_K; sb++) {
        wblock wb[KILN_MR];
        UNROLL for (int r = 0; r < NR; r++) {
            const uint8_t *p = w + (size_t)r * ws + (size_t)sb * bsz;
            if (kind == K_Q2)
                unpack_q2(p, &wb[r]);
            else
                unpack_q3(p, &wb[r]);
        }
        UNROLL for (int c = 0; c < NC; c++) {
            const int64_t i = i0 + c;
            const int8_t *xq = x->qs + (size_t)i * x->qs_stride + (size_t)sb * KILN_QK_K;
            const float *xd = x->d + (size_t)i * x->d_stride + (size_t)sb * 8;
            __m256 xb0 = _mm256_setzero_ps(), xb1 = _mm256_setzero_ps();
            if (kind == K_Q2) {
                const int16_t *bs = x->bs + (size_t)i * x->bs_stride + (size_t)sb * 16;
                const __m256 d8 = _mm256_loadu_ps(xd);
                const __m256i b16 = _mm256_loadu_si256((const __m256i *)(const void *)bs);
                xb0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(b16))),
                                    _mm256_permutevar8x32_ps(d8, _mm256_set_epi32(3, 3, 2, 2, 1, 1, 0, 0)));
                xb1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(b16, 1))),
                                    _mm256_permutevar8x32_ps(d8, _mm256_set_epi32(7, 7, 6, 6, 5, 5, 4, 4)));
            }
            UNROLL for (int r = 0; r < NR; r++) {
                __m256 s = _mm256_setzero_ps();
                UNROLL for (int b = 0; b < 8; b++) {
                    const __m256i xv = _mm256_load_si256((const __m256i *)(const void *)(xq + 32 * b));
                    __m256i p;
                    if (kind == K_Q2)
                        p = _mm256_madd_epi16(_mm256_maddubs_epi16(wb[r].w[b], xv), ones);
                    else
                        p = _mm256_madd_epi16(_mm256_maddubs_epi16(wb[r].w[b], _mm256_sign_epi8(xv, wb[r].sg[b])),
                                              wb[r].sw[b]);
                    s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(xd + b), s);
                }
                acc[r][c] = _mm256_fmadd_ps(s, _mm256_set1_ps(wb[r].d), acc[r][c]);
                if (kind == K_Q2) {
                    acc[r][c] = _mm256_fnmadd_ps(wb[r].mins[0], xb0, acc[r][c]);
                    acc[r][c] = _mm256_fnmadd_ps(wb[r].mins[1], xb1, acc[r][c]);
                }
            }
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = hsum8(acc[r][c]);
}

#define CALL(K, R, C) tile(K, R, C, k, w, ws, x, i0 + c0, y + (size_t)c0 * ldy, ldy)
#define CASES_NC(K, R)                  \
    if (ncc == 1)                       \
        CALL(K, R, 1);                  \
    else                                \
        CALL(K, R, 2);
#define DEFINE_MM(name, K)                                                                              \
    static void name(int64_t k, const void *w, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                            \
        for (int c0 = 0; c0 < nc; c0 += AVX2_MC) {                                                      \
            const int ncc = nc - c0 < AVX2_MC ? nc - c0 : AVX2_MC;                                      \
            switch (nr) {                                                                               \
            case 1: CASES_NC(K, 1) break;                                                               \
            case 2: CASES_NC(K, 2) break;                                                               \
            case 3: CASES_NC(K, 3) break;                                                               \
            default: CASES_NC(K, 4) break;                                                              \
            }                                                                                           \
        }                                                                                               \
    }

DEFINE_MM(mm_q2_k, K_Q2)
DEFINE_MM(mm_q3_k, K_Q3)

void kiln_avx2_fill_klow(kiln_kernel_table *t) {
    t->mm[KILN_Q2_K] = mm_q2_k;
    t->mm[KILN_Q3_K] = mm_q3_k;
}
