/*
 * legacy_avx512.c — AVX-512 (F, BW, VL, DQ, VNNI) micro kernels of the legacy
 * quantized types Q4_1, Q5_0, Q5_1 (block semantics in ref/legacy_ref.c).
 *
 * A tile is up to 4 weight rows x 4 inputs in 16 zmm accumulators; each step
 * covers two blocks (64 elements: lanes 0..7 block b, lanes 8..15 block b+1), and
 * the weights of a step are unpacked once per row and used for every input.
 *
 * Unpacking: the 16 nibble bytes of each block become 32 unsigned quants in element
 * order (low nibbles = elements 0..15, high = 16..31); for Q5_0/Q5_1 the 32-bit qh
 * words of the two blocks form one 64-bit mask that adds 16 to the bytes whose
 * fifth bit is set (one masked vpaddb). So every weight quant is an unsigned byte
 * q in 0..31, which is what vpdpbusd wants (unsigned weights x signed activations,
 * 4 products summed exactly into each int32 lane).
 *
 * Per output element, per step (the order depends on k only, kernels_impl.h):
 *   Q5_0:      p = -16 * (sums of 4 activation quants) + sum q_w * q_x  (exact int,
 *              the offset term computed once per input and shared by the rows)
 *              acc += float(p) * (d_w * d_x)
 *   Q4_1/Q5_1: p = sum q_w * q_x (exact int)
 *              acc += float(p) * (d_w * d_x)
 *              acc += m_w * (S_b * d_x), with S_b the exact sum of the block's
 *              activation quants (act.bs, placed in lanes 0 and 8, zero elsewhere)
 * then _mm512_reduce_add_ps. The integer block sums equal the reference's; only the
 * float summation of the scaled terms differs from it.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define INLINE static inline __attribute__((always_inline))
/* Tile loops must be unrolled early so the accumulator arrays become registers. */
#define UNROLL _Pragma("GCC unroll 4")

enum { K_Q4_1, K_Q5_0, K_Q5_1 };

INLINE size_t block_bytes(int kind) {
    return kind == K_Q4_1   ? sizeof(kiln_block_q4_1)
           : kind == K_Q5_0 ? sizeof(kiln_block_q5_0)
                            : sizeof(kiln_block_q5_1);
}
/* Offsets of qh (5-bit types) and of the nibbles inside a block. */
INLINE size_t qh_at(int kind) { return kind == K_Q5_0 ? 2 : 4; }
INLINE size_t qs_at(int kind) { return kind == K_Q4_1 ? 4 : kind == K_Q5_0 ? 6 : 8; }

static inline uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint16_t u16_at(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Lane i of the 128-bit vector v in lanes 0..7 and lane j in lanes 8..15. */
INLINE __m512 spread2(__m128 v, int i, int j) {
    const __m512i idx = _mm512_set_epi32(j, j, j, j, j, j, j, j, i, i, i, i, i, i, i, i);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}

/* Quants of blocks b and b+1 of a row (TWO = 0: block b only, upper half zero) as
 * 64 unsigned bytes in element order, the scales as [d_b x8, d_b+1 x8] and, for
 * Q4_1/Q5_1, the minimums likewise. */
INLINE __m512i load_w(int kind, int TWO, const uint8_t *row, int64_t b, __m512 *dv, __m512 *mv) {
    const uint8_t *pa = row + (size_t)b * block_bytes(kind);
    const uint8_t *pb = pa + block_bytes(kind);
    const __m128i qa = _mm_loadu_si128((const __m128i *)(const void *)(pa + qs_at(kind)));
    const __m128i qb = TWO ? _mm_loadu_si128((const __m128i *)(const void *)(pb + qs_at(kind))) : _mm_setzero_si128();
    const __m256i ab = _mm256_set_m128i(qb, qa);
    /* [a, b, a >> 4, b >> 4] -> [a, a >> 4, b, b >> 4], then the low nibbles */
    const __m512i t = _mm512_inserti64x4(_mm512_castsi256_si512(ab), _mm256_srli_epi16(ab, 4), 1);
    __m512i q = _mm512_and_si512(_mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0f));
    if (kind != K_Q4_1) {
        const uint64_t hb = TWO ? (uint64_t)u32_at(pb + qh_at(kind)) << 32 : 0;
        const __mmask64 h = (__mmask64)(u32_at(pa + qh_at(kind)) | hb);
        q = _mm512_mask_add_epi8(q, h, q, _mm512_set1_epi8(16));
    }
    if (kind == K_Q5_0) {
        const uint32_t hh = (uint32_t)u16_at(pa) | (TWO ? (uint32_t)u16_at(pb) << 16 : 0);
        *dv = spread2(_mm_cvtph_ps(_mm_cvtsi32_si128((int)hh)), 0, 1);
    } else { /* d, m are the block's first 4 bytes: [d_a, m_a, d_b, m_b] */
        const uint64_t dm = (uint64_t)u32_at(pa) | (TWO ? (uint64_t)u32_at(pb) << 32 : 0);
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)dm));
        *dv = spread2(f, 0, 2);
        *mv = spread2(f, 1, 3);
    }
    return q;
}

/* One step (blocks b, b+1; TWO = 0: block b alone) for every row and input. */
INLINE void step(int kind, int NR, int NC, int TWO, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                 int64_t b, __m512 acc[KILN_MR][KILN_MC]) {
    const __m512i zero = _mm512_setzero_si512();
    __m512 dx[KILN_MC], extra[KILN_MC];
    __m512i ncorr[KILN_MC];
    UNROLL for (int c = 0; c < NC; c++) {
        const size_t i = (size_t)(i0 + c);
        const float *xd = x->d + i * x->d_stride + b;
        dx[c] = TWO ? spread2(_mm_castsi128_ps(_mm_loadu_si64(xd)), 0, 1)
                    : _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(xd[0]));
        if (kind == K_Q5_0) {
            const int8_t *xq = x->qs + i * x->qs_stride + (size_t)b * KILN_QK8_0;
            const __m512i xv = TWO ? _mm512_load_si512((const void *)xq)
                                   : _mm512_zextsi256_si512(_mm256_load_si256((const __m256i *)(const void *)xq));
            ncorr[c] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(16), xv));
        } else {
            /* [S_b * d_x_b in lane 0, S_b+1 * d_x_b+1 in lane 8, 0 elsewhere] */
            const int16_t *bs = x->bs + i * x->bs_stride + 2 * (size_t)b;
            const __m128i s16 = TWO ? _mm_loadu_si64(bs) : _mm_loadu_si32(bs);
            const __m128 s = _mm_cvtepi32_ps(_mm_madd_epi16(s16, _mm_set1_epi16(1)));
            const __m512i idx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0);
            extra[c] = _mm512_mul_ps(_mm512_maskz_permutexvar_ps(0x0101, idx, _mm512_castps128_ps512(s)), dx[c]);
        }
    }
    UNROLL for (int r = 0; r < NR; r++) {
        __m512 dw, mw = _mm512_setzero_ps();
        const __m512i wv = load_w(kind, TWO, w + (size_t)r * ws, b, &dw, &mw);
        UNROLL for (int c = 0; c < NC; c++) {
            const int8_t *xq = x->qs + (size_t)(i0 + c) * x->qs_stride + (size_t)b * KILN_QK8_0;
            const __m512i xv = TWO ? _mm512_load_si512((const void *)xq)
                                   : _mm512_zextsi256_si512(_mm256_load_si256((const __m256i *)(const void *)xq));
            const __m512i p = _mm512_dpbusd_epi32(kind == K_Q5_0 ? ncorr[c] : zero, wv, xv);
            acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[c]), acc[r][c]);
            if (kind != K_Q5_0) acc[r][c] = _mm512_fmadd_ps(mw, extra[c], acc[r][c]);
        }
    }
}

INLINE void tile(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                 float *y, size_t ldy) {
    const int64_t nb = k / KILN_QK8_0;
    __m512 acc[KILN_MR][KILN_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) step(kind, NR, NC, 1, w, ws, x, i0, b, acc);
    if (b < nb) step(kind, NR, NC, 0, w, ws, x, i0, b, acc);
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ---- instantiation per tile shape ------------------------------------------- */

#define CASES_NC(K, R)                                     \
    switch (nc) {                                          \
    case 1: tile(K, R, 1, k, w, ws, x, i0, y, ldy); break; \
    case 2: tile(K, R, 2, k, w, ws, x, i0, y, ldy); break; \
    case 3: tile(K, R, 3, k, w, ws, x, i0, y, ldy); break; \
    default: tile(K, R, 4, k, w, ws, x, i0, y, ldy); break; \
    }
#define DEFINE_MM(name, K)                                                                              \
    static void name(int64_t k, const void *w, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                            \
        switch (nr) {                                                                                   \
        case 1: CASES_NC(K, 1); break;                                                                  \
        case 2: CASES_NC(K, 2); break;                                                                  \
        case 3: CASES_NC(K, 3); break;                                                                  \
        default: CASES_NC(K, 4); break;                                                                 \
        }                                                                                               \
    }

DEFINE_MM(mm_q4_1, K_Q4_1)
DEFINE_MM(mm_q5_0, K_Q5_0)
DEFINE_MM(mm_q5_1, K_Q5_1)

void kiln_avx512_fill_legacy(kiln_kernel_table *t) {
    t->mm[KILN_Q4_1] = mm_q4_1;
    t->mm[KILN_Q5_0] = mm_q5_0;
    t->mm[KILN_Q5_1] = mm_q5_1;
}
