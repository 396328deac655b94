/*
 * kquants_avx2.c — AVX2 + FMA + F16C micro kernels for Q4_K, Q5_K, Q6_K weights
 * against Q8_0 activations.
 *
 * Tiles: up to 4 weight rows x 2 inputs, or 2 rows x 4 inputs (at most 8 ymm
 * accumulators), so every weight super-block is unpacked once per micro-kernel call
 * and used for all the call's inputs (kiln_mm_fn's tile is at most 4 x 4: with 3 or 4
 * inputs the rows go two at a time).
 *
 * Per super-block of a weight row and an input (same exact integer parts as
 * ref/kquants_ref.c; only the float summation order differs):
 *   Q4_K/Q5_K: the levels are unsigned (0..15, 0..31), so vpmaddubsw multiplies them
 *     with the signed activation quants directly (pairs, no saturation:
 *     2*31*128 < 2^15), vpmaddwd with ones gives 8 exact int32 sums of 4 products
 *     per sub-block; they are converted to float and accumulated with the factor
 *     d*sc_j*dx_j of their sub-block j (an 8-float vector per row and input, stored
 *     once per super-block and broadcast per sub-block). The minimum is one 8-lane
 *     step per super-block: acc -= (dmin*m_j) * (bsum_j*dx_j), bsum_j the exact
 *     16-element sums of the driver.
 *   Q6_K: levels 0..63 (q + 32): vpmaddubsw(q, x) - vpmaddubsw(32, x) is the exact
 *     int16 pair sum of (q - 32)*x; vpmaddwd with ones gives per 32 elements 4 lanes
 *     of each 16-element sub-block, scaled by [d*sc_a*dx x4, d*sc_b*dx x4].
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/avx2_util.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

enum { K_Q4, K_Q5 };

/* d*sc_j and dmin*m_j (j = 0..7) of a Q4_K/Q5_K super-block (d, dmin, 12 scale bytes
 * at blk). The 6-bit fields are unpacked with 32-bit masks: sc_0..3 and m_0..3 are
 * the low 6 bits of bytes 0..3 / 4..7; sc_4..7 (m_4..7) take their low nibbles from
 * bytes 8..11 (low / high nibbles) and their top 2 bits from the top bits of bytes
 * 0..3 (4..7). */
static inline void kx_scales(const uint8_t *blk, __m256 *dsc, __m256 *dmn) {
    uint32_t u[3];
    memcpy(u, blk + 4, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3fu, m_lo = u[1] & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 2) & 0x30303030u);
    const uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 2) & 0x30303030u);
    const __m128i s = _mm_set_epi32((int)m_hi, (int)m_lo, (int)sc_hi, (int)sc_lo);
    const __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(s));
    const __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(s, 8)));
    *dsc = _mm256_mul_ps(_mm256_set1_ps(half_at(blk)), scf);
    *dmn = _mm256_mul_ps(_mm256_set1_ps(half_at(blk + 2)), mf);
}

/* ---- Q4_K / Q5_K -------------------------------------------------------------------- */

INLINE void tile_kx(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                    float *y, size_t ldy) {
    const size_t bsz = kind == K_Q5 ? sizeof(kiln_block_q5_k) : sizeof(kiln_block_q4_k);
    const size_t qs_off = kind == K_Q5 ? 48 : 16;
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10), ones = _mm256_set1_epi16(1);
    const int8_t *xq[KILN_MC];
    const float *xd[KILN_MC];
    const int16_t *xs[KILN_MC];
    UNROLL for (int c = 0; c < NC; c++) {
        xq[c] = x->qs + (size_t)(i0 + c) * x->qs_stride;
        xd[c] = x->d + (size_t)(i0 + c) * x->d_stride;
        xs[c] = x->bs + (size_t)(i0 + c) * x->bs_stride;
    }
    __m256 acc[KILN_MR][KILN_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    _Alignas(32) float F[KILN_MR][KILN_MC][8];
    for (int64_t i = 0; i < k / KILN_QK_K; i++) {
        __m256 dxv[KILN_MC], bsx[KILN_MC];
        UNROLL for (int c = 0; c < NC; c++) {
            dxv[c] = _mm256_loadu_ps(xd[c] + 8 * i);
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(xs[c] + 16 * i));
            bsx[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, ones)), dxv[c]);
        }
        UNROLL for (int r = 0; r < NR; r++) {
            __m256 dsc, dmn;
            kx_scales(w + (size_t)r * ws + (size_t)i * bsz, &dsc, &dmn);
            UNROLL for (int c = 0; c < NC; c++) {
                _mm256_store_ps(F[r][c], _mm256_mul_ps(dsc, dxv[c]));
                acc[r][c] = _mm256_fnmadd_ps(dmn, bsx[c], acc[r][c]);
            }
        }
        UNROLL for (int t = 0; t < 4; t++) {
            UNROLL for (int r = 0; r < NR; r++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)i * bsz;
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(const void *)(blk + qs_off + 32 * t));
                __m256i lo = _mm256_and_si256(raw, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                if (kind == K_Q5) { /* bit 2t (2t+1) of qh[l] is bit 4 of element l of sub-block 2t (2t+1) */
                    const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 16));
                    lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * t), 4), b4));
                    hi = _mm256_or_si256(hi,
                                         _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * t + 1), 4), b4));
                }
                UNROLL for (int c = 0; c < NC; c++) {
                    const int8_t *xp = xq[c] + (size_t)i * KILN_QK_K + 64 * t;
                    const __m256i xl = _mm256_load_si256((const __m256i *)(const void *)xp);
                    const __m256i xh = _mm256_load_si256((const __m256i *)(const void *)(xp + 32));
                    const __m256 pl = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, xl), ones));
                    const __m256 ph = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(hi, xh), ones));
                    acc[r][c] = _mm256_fmadd_ps(pl, _mm256_broadcast_ss(&F[r][c][2 * t]), acc[r][c]);
                    acc[r][c] = _mm256_fmadd_ps(ph, _mm256_broadcast_ss(&F[r][c][2 * t + 1]), acc[r][c]);
                }
            }
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = hsum8(acc[r][c]);
}

/* ---- Q6_K ------------------------------------------------------------------------------ */

INLINE void tile_q6(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                    float *y, size_t ldy) {
    (void)kind;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30), ones = _mm256_set1_epi16(1);
    const __m256i c32 = _mm256_set1_epi8(32);
    const int8_t *xq[KILN_MC];
    const float *xd[KILN_MC];
    UNROLL for (int c = 0; c < NC; c++) {
        xq[c] = x->qs + (size_t)(i0 + c) * x->qs_stride;
        xd[c] = x->d + (size_t)(i0 + c) * x->d_stride;
    }
    __m256 acc[KILN_MR][KILN_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    _Alignas(32) float F[KILN_MR][KILN_MC][8];
    for (int64_t i = 0; i < k / KILN_QK_K; i++) {
        /* The block's scales sit at its end and are read first, which defeats the
         * hardware prefetchers (a 4x slower weight stream without this). */
        UNROLL for (int r = 0; r < NR; r++) {
            const char *nb = (const char *)(w + (size_t)r * ws + (size_t)(i + 2) * sizeof(kiln_block_q6_k));
            _mm_prefetch(nb, _MM_HINT_T0);
            _mm_prefetch(nb + 64, _MM_HINT_T0);
            _mm_prefetch(nb + 128, _MM_HINT_T0);
            _mm_prefetch(nb + 192, _MM_HINT_T0);
        }
        UNROLL for (int h = 0; h < 2; h++) {
            /* per sub-block s of this half (8): d*sc_s*dx_{s/2} */
            const __m256i sidx = _mm256_setr_epi32(4 * h, 4 * h, 4 * h + 1, 4 * h + 1, 4 * h + 2, 4 * h + 2,
                                                   4 * h + 3, 4 * h + 3);
            __m256 dxs[KILN_MC];
            UNROLL for (int c = 0; c < NC; c++) dxs[c] = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xd[c] + 8 * i), sidx);
            UNROLL for (int r = 0; r < NR; r++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)i * sizeof(kiln_block_q6_k);
                const __m128i sc8 = _mm_loadl_epi64((const __m128i *)(const void *)(blk + 192 + 8 * h));
                const __m256 dsc = _mm256_mul_ps(_mm256_set1_ps(half_at(blk + 208)),
                                                 _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8)));
                UNROLL for (int c = 0; c < NC; c++) _mm256_store_ps(F[r][c], _mm256_mul_ps(dsc, dxs[c]));
            }
            UNROLL for (int r = 0; r < NR; r++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)i * sizeof(kiln_block_q6_k);
                const __m256i A = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 64 * h));
                const __m256i B = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 64 * h + 32));
                const __m256i H = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 128 + 32 * h));
                UNROLL for (int g = 0; g < 4; g++) {
                    __m256i q;
                    switch (g) {
                    case 0: q = _mm256_or_si256(_mm256_and_si256(A, m4), _mm256_and_si256(_mm256_slli_epi16(H, 4), m30)); break;
                    case 1: q = _mm256_or_si256(_mm256_and_si256(B, m4), _mm256_and_si256(_mm256_slli_epi16(H, 2), m30)); break;
                    case 2: q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A, 4), m4), _mm256_and_si256(H, m30)); break;
                    default:
                        q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(B, 4), m4),
                                            _mm256_and_si256(_mm256_srli_epi16(H, 2), m30));
                        break;
                    }
                    const __m256i fidx =
                        _mm256_setr_epi32(2 * g, 2 * g, 2 * g, 2 * g, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1);
                    UNROLL for (int c = 0; c < NC; c++) {
                        const __m256i xv = _mm256_load_si256(
                            (const __m256i *)(const void *)(xq[c] + (size_t)i * KILN_QK_K + 128 * h + 32 * g));
                        const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, xv), _mm256_maddubs_epi16(c32, xv));
                        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                        acc[r][c] = _mm256_fmadd_ps(p, _mm256_permutevar8x32_ps(_mm256_load_ps(F[r][c]), fidx), acc[r][c]);
                    }
                }
            }
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = hsum8(acc[r][c]);
}

/* ---- instantiation per tile shape ---------------------------------------------------- */

#define CASES_R(T, K, C)                        \
    switch (nrr) {                              \
    case 1: T(K, 1, C, k, wr, ws, x, i0, yr, ldy); break; \
    case 2: T(K, 2, C, k, wr, ws, x, i0, yr, ldy); break; \
    case 3: T(K, 3, C, k, wr, ws, x, i0, yr, ldy); break; \
    default: T(K, 4, C, k, wr, ws, x, i0, yr, ldy); break; \
    }

/* nc <= 2: all rows at once; nc 3 or 4: rows two at a time with every input. */
#define DEFINE_MM(name, T, K)                                                                            \
    static void name(int64_t k, const void *w, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                             \
        const int step = nc <= 2 ? nr : 2;                                                               \
        for (int r0 = 0; r0 < nr; r0 += step) {                                                          \
            const int nrr = nr - r0 < step ? nr - r0 : step;                                             \
            const uint8_t *wr = (const uint8_t *)w + (size_t)r0 * ws;                                    \
            float *yr = y + r0;                                                                          \
            switch (nc) {                                                                                \
            case 1: CASES_R(T, K, 1) break;                                                              \
            case 2: CASES_R(T, K, 2) break;                                                              \
            case 3:                                                                                      \
                if (nrr == 1) T(K, 1, 3, k, wr, ws, x, i0, yr, ldy);                                     \
                else T(K, 2, 3, k, wr, ws, x, i0, yr, ldy);                                              \
                break;                                                                                   \
            default:                                                                                     \
                if (nrr == 1) T(K, 1, 4, k, wr, ws, x, i0, yr, ldy);                                     \
                else T(K, 2, 4, k, wr, ws, x, i0, yr, ldy);                                              \
                break;                                                                                   \
            }                                                                                            \
        }                                                                                                \
    }

DEFINE_MM(mm_q4_k, tile_kx, K_Q4)
DEFINE_MM(mm_q5_k, tile_kx, K_Q5)
DEFINE_MM(mm_q6_k, tile_q6, 0)

void kiln_avx2_fill_kquants(kiln_kernel_table *t) {
    t->mm[KILN_Q4_K] = mm_q4_k;
    t->mm[KILN_Q5_K] = mm_q5_k;
    t->mm[KILN_Q6_K] = mm_q6_k;
}
