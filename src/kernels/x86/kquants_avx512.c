/*
 * kquants_avx512.c — AVX-512 (F, BW, VL, VNNI) micro kernels for Q4_K, Q5_K, Q6_K
 * weights against Q8_0 activations.
 *
 * A tile is up to 4 weight rows x 4 inputs in 16 zmm accumulators. Per super-block
 * the weights are unpacked 64 levels at a time, once per row, and used for every
 * input of the tile; each input's 64 activation quants are loaded once and used for
 * every row.
 *
 * Per 64 elements of a row and an input (same exact integer parts as
 * ref/kquants_ref.c; only the float summation order differs):
 *   Q4_K/Q5_K: the unsigned levels (0..15 / 0..31, the fifth bit added under a byte
 *     mask from qh) go straight into vpdpbusd with the signed activation quants: 16
 *     exact int32 sums of 4 products, lanes 0..7 one sub-block, 8..15 the next. They
 *     are converted to float and accumulated with [d*sc*dx of the first sub-block x8,
 *     of the second x8] (one 8-float vector per row and input and super-block, lanes
 *     picked by vpermps). The minimum: one step per super-block,
 *     acc -= (dmin*m_j) * (bsum_j*dx_j) in 8 lanes.
 *   Q6_K: levels q + 32 in 0..63; the int32 accumulator starts at -32 * (sum of each
 *     4 activation quants) (one vpdpbusd per input, shared by the rows), so vpdpbusd
 *     leaves the exact sums of (q - 32)*x; 4 lanes per 16-element sub-block, scaled
 *     by d*sc_s*dx.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

enum { K_Q4, K_Q5 };

static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* d*sc_j and dmin*m_j (j = 0..7) of a Q4_K/Q5_K super-block (see kquants_avx2.c). */
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

/* [a x8, b x8] as lane indices */
static inline __m512i pair_idx(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi32(a), _mm256_set1_epi32(b), 1);
}

/* ---- Q4_K / Q5_K -------------------------------------------------------------------- */

INLINE void tile_kx(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                    float *y, size_t ldy) {
    const size_t bsz = kind == K_Q5 ? sizeof(kiln_block_q5_k) : sizeof(kiln_block_q4_k);
    const size_t qs_off = kind == K_Q5 ? 48 : 16;
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const int8_t *xq[KILN_MC];
    const float *xd[KILN_MC];
    const int16_t *xs[KILN_MC];
    UNROLL for (int c = 0; c < NC; c++) {
        xq[c] = x->qs + (size_t)(i0 + c) * x->qs_stride;
        xd[c] = x->d + (size_t)(i0 + c) * x->d_stride;
        xs[c] = x->bs + (size_t)(i0 + c) * x->bs_stride;
    }
    __m512 acc[KILN_MR][KILN_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
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
                acc[r][c] = _mm512_fnmadd_ps(_mm512_zextps256_ps512(dmn), _mm512_zextps256_ps512(bsx[c]), acc[r][c]);
            }
        }
        UNROLL for (int t = 0; t < 4; t++) {
            const __m512i fidx = pair_idx(2 * t, 2 * t + 1);
            __m512i q[KILN_MR];
            UNROLL for (int r = 0; r < NR; r++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)i * bsz;
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(const void *)(blk + qs_off + 32 * t));
                q[r] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(raw, m4)),
                                          _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), 1);
                if (kind == K_Q5) { /* + 16 where bit 2t (first 32) / 2t+1 (next 32) of qh[l] is set */
                    const __m512i qh = _mm512_broadcast_i64x4(
                        _mm256_loadu_si256((const __m256i *)(const void *)(blk + 16)));
                    const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * t))),
                                                           _mm256_set1_epi8((char)(1 << (2 * t + 1))), 1);
                    q[r] = _mm512_mask_add_epi8(q[r], _mm512_test_epi8_mask(qh, bit), q[r], _mm512_set1_epi8(16));
                }
            }
            UNROLL for (int c = 0; c < NC; c++) {
                const __m512i xv =
                    _mm512_load_si512((const void *)(xq[c] + (size_t)i * KILN_QK_K + 64 * t));
                UNROLL for (int r = 0; r < NR; r++) {
                    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[r], xv);
                    const __m512 f = _mm512_permutexvar_ps(fidx, _mm512_castps256_ps512(_mm256_load_ps(F[r][c])));
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), f, acc[r][c]);
                }
            }
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ---- Q6_K ------------------------------------------------------------------------------ */

INLINE void tile_q6(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                    float *y, size_t ldy) {
    (void)kind;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30), c32 = _mm512_set1_epi8(32);
    /* high-bit shifts: [q1 | q2] take qh << 4 | qh << 2, [q3 | q4] qh >> 0 | qh >> 2 */
    const __m512i sh_a = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i sh_b = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    /* sub-block s of the super-block uses activation block s/2 */
    const __m512i didx = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const int8_t *xq[KILN_MC];
    const float *xd[KILN_MC];
    UNROLL for (int c = 0; c < NC; c++) {
        xq[c] = x->qs + (size_t)(i0 + c) * x->qs_stride;
        xd[c] = x->d + (size_t)(i0 + c) * x->d_stride;
    }
    __m512 acc[KILN_MR][KILN_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    _Alignas(64) float F[KILN_MR][KILN_MC][16];
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
        __m512 dxs[KILN_MC];
        UNROLL for (int c = 0; c < NC; c++)
            dxs[c] = _mm512_permutexvar_ps(didx, _mm512_castps256_ps512(_mm256_loadu_ps(xd[c] + 8 * i)));
        UNROLL for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w + (size_t)r * ws + (size_t)i * sizeof(kiln_block_q6_k);
            const __m512 dsc = _mm512_mul_ps(
                _mm512_set1_ps(half_at(blk + 208)),
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(blk + 192)))));
            UNROLL for (int c = 0; c < NC; c++) _mm512_store_ps(F[r][c], _mm512_mul_ps(dsc, dxs[c]));
        }
        UNROLL for (int u = 0; u < 4; u++) { /* elements 64u..64u+63: sub-blocks 4u..4u+3 */
            const int h = u >> 1;
            const __m512i fidx = _mm512_setr_epi32(4 * u, 4 * u, 4 * u, 4 * u, 4 * u + 1, 4 * u + 1, 4 * u + 1,
                                                   4 * u + 1, 4 * u + 2, 4 * u + 2, 4 * u + 2, 4 * u + 2, 4 * u + 3,
                                                   4 * u + 3, 4 * u + 3, 4 * u + 3);
            __m512i q[KILN_MR];
            UNROLL for (int r = 0; r < NR; r++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)i * sizeof(kiln_block_q6_k);
                const __m512i ab = _mm512_loadu_si512((const void *)(blk + 64 * h));
                const __m512i hh =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 128 + 32 * h)));
                if ((u & 1) == 0)
                    q[r] = _mm512_or_si512(_mm512_and_si512(ab, m4), _mm512_and_si512(_mm512_sllv_epi16(hh, sh_a), m30));
                else
                    q[r] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ab, 4), m4),
                                           _mm512_and_si512(_mm512_srlv_epi16(hh, sh_b), m30));
            }
            UNROLL for (int c = 0; c < NC; c++) {
                const __m512i xv = _mm512_load_si512((const void *)(xq[c] + (size_t)i * KILN_QK_K + 64 * u));
                const __m512i ncorr =
                    _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), c32, xv));
                UNROLL for (int r = 0; r < NR; r++) {
                    const __m512i p = _mm512_dpbusd_epi32(ncorr, q[r], xv);
                    const __m512 f = _mm512_permutexvar_ps(fidx, _mm512_load_ps(F[r][c]));
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), f, acc[r][c]);
                }
            }
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ---- instantiation per tile shape ---------------------------------------------------- */

#define CASES_NC(T, K, R)                                      \
    switch (nc) {                                              \
    case 1: T(K, R, 1, k, w, ws, x, i0, y, ldy); break;        \
    case 2: T(K, R, 2, k, w, ws, x, i0, y, ldy); break;        \
    case 3: T(K, R, 3, k, w, ws, x, i0, y, ldy); break;        \
    default: T(K, R, 4, k, w, ws, x, i0, y, ldy); break;       \
    }

#define DEFINE_MM(name, T, K)                                                                              \
    static void name(int64_t k, const void *wv, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                               \
        const uint8_t *w = wv;                                                                             \
        switch (nr) {                                                                                      \
        case 1: CASES_NC(T, K, 1) break;                                                                   \
        case 2: CASES_NC(T, K, 2) break;                                                                   \
        case 3: CASES_NC(T, K, 3) break;                                                               \
        default: CASES_NC(T, K, 4) break;                                                                  \
        }                                                                                                  \
    }

DEFINE_MM(mm_q4_k, tile_kx, K_Q4)
DEFINE_MM(mm_q5_k, tile_kx, K_Q5)
DEFINE_MM(mm_q6_k, tile_q6, 0)

void kiln_avx512_fill_kquants(kiln_kernel_table *t) {
    t->mm[KILN_Q4_K] = mm_q4_k;
    t->mm[KILN_Q5_K] = mm_q5_k;
    t->mm[KILN_Q6_K] = mm_q6_k;
}
