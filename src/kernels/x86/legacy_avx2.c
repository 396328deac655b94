/*
 * legacy_avx2.c — AVX2 + FMA + F16C micro kernels of the legacy quantized types
 * Q4_1, Q5_0, Q5_1 (block semantics in ref/legacy_ref.c).
 *
 * As in matmul_avx2.c, a tile is computed as up to 4 weight rows x 2 inputs (8 ymm
 * accumulators), the driver's 4-input tiles in two halves; one block (32 elements)
 * per step, its weights unpacked once per row and used for both inputs.
 *
 * Unpacking: low nibbles are elements 0..15, high nibbles 16..31; for Q5_0/Q5_1 the
 * fifth bit of element j (bit j of qh) is spread to byte j by a byte shuffle of the
 * broadcast qh word, a test against the bit mask 1 << (j % 8), and an OR of 16.
 *
 * Per output element, per block (the order depends on k only, kernels_impl.h):
 *   Q5_0:      q_w - 16 is signed: |q_w - 16| (unsigned) times q_x with its sign
 *              (vpmaddubsw, as Q4_0), vpmaddwd with ones -> 8 exact int32 sums p;
 *              acc += float(p) * (d_w * d_x)
 *   Q4_1/Q5_1: q_w is unsigned (0..31): vpmaddubsw(q_w, q_x) cannot saturate
 *              (|pair| <= 2 * 31 * 128), then as above;
 *              acc += float(p) * (d_w * d_x), and acc += m_w * (S_b * d_x) in lane 0,
 *              S_b the exact sum of the block's activation quants (act.bs)
 * then a fixed horizontal sum. The integer block sums equal the reference's; only
 * the float summation of the scaled terms differs from it.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/avx2_util.h"

#define INLINE static inline __attribute__((always_inline))
/* Tile loops must be unrolled early so the accumulator arrays become registers. */
#define UNROLL _Pragma("GCC unroll 4")
#define AVX2_MC 2

enum { K_Q4_1, K_Q5_0, K_Q5_1 };

INLINE size_t block_bytes(int kind) {
    return kind == K_Q4_1   ? sizeof(kiln_block_q4_1)
           : kind == K_Q5_0 ? sizeof(kiln_block_q5_0)
                            : sizeof(kiln_block_q5_1);
}
INLINE size_t qh_at(int kind) { return kind == K_Q5_0 ? 2 : 4; }
INLINE size_t qs_at(int kind) { return kind == K_Q4_1 ? 4 : kind == K_Q5_0 ? 6 : 8; }

/* The 32 quants of block b of a row in element order (unsigned, 0..31; Q5_0: minus
 * 16, signed), its scale and (Q4_1/Q5_1) minimum. */
INLINE __m256i load_w(int kind, const uint8_t *row, int64_t b, float *d, float *m) {
    const uint8_t *p = row + (size_t)b * block_bytes(kind);
    *d = half_at(p);
    if (kind != K_Q5_0) *m = half_at(p + 2);
    const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(p + qs_at(kind)));
    const __m128i lo4 = _mm_set1_epi8(0x0f);
    __m256i v = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), _mm_and_si128(q, lo4));
    if (kind != K_Q4_1) {
        uint32_t qh;
        memcpy(&qh, p + qh_at(kind), 4);
        /* byte j <- byte j / 8 of qh, then bit j % 8 of it */
        const __m256i sel = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        const __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), sel);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
        v = _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(16)));
    }
    if (kind == K_Q5_0) v = _mm256_sub_epi8(v, _mm256_set1_epi8(16));
    return v;
}

INLINE void tile(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                 float *y, size_t ldy) {
    const int64_t nb = k / KILN_QK8_0;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[KILN_MR][AVX2_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[AVX2_MC];
        __m256 extra[AVX2_MC];
        float dx[AVX2_MC];
        UNROLL for (int c = 0; c < NC; c++) {
            const size_t i = (size_t)(i0 + c);
            const int8_t *xq = x->qs + i * x->qs_stride + (size_t)b * KILN_QK8_0;
            xv[c] = _mm256_load_si256((const __m256i *)(const void *)xq);
            dx[c] = x->d[i * x->d_stride + (size_t)b];
            if (kind != K_Q5_0) {
                const int16_t *bs = x->bs + i * x->bs_stride + 2 * (size_t)b;
                const float s = (float)((int32_t)bs[0] + bs[1]);
                extra[c] = _mm256_zextps128_ps256(_mm_set_ss(s * dx[c]));
            }
        }
        UNROLL for (int r = 0; r < NR; r++) {
            float dw, mw = 0.0f;
            const __m256i wq = load_w(kind, w + (size_t)r * ws, b, &dw, &mw);
            const __m256i aw = kind == K_Q5_0 ? _mm256_sign_epi8(wq, wq) : wq;
            UNROLL for (int c = 0; c < NC; c++) {
                const __m256i xs = kind == K_Q5_0 ? _mm256_sign_epi8(xv[c], wq) : xv[c];
                const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(aw, xs), ones));
                acc[r][c] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * dx[c]), acc[r][c]);
                if (kind != K_Q5_0) acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(mw), extra[c], acc[r][c]);
            }
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = hsum8(acc[r][c]);
}

/* ---- instantiation per tile shape ------------------------------------------- */

#define CALL(K, R, C) tile(K, R, C, k, w, ws, x, i0 + c0, y + (size_t)c0 * ldy, ldy)
#define CASES_NC(K, R)              \
    switch (ncc) {                  \
    case 1: CALL(K, R, 1); break;   \
    default: CALL(K, R, 2); break;  \
    }
/* One kiln_mm_fn per weight type: the inputs in pairs, nr selecting the rows. */
#define DEFINE_MM(name, K)                                                                              \
    static void name(int64_t k, const void *w, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                            \
        for (int c0 = 0; c0 < nc; c0 += AVX2_MC) {                                                      \
            const int ncc = nc - c0 < AVX2_MC ? nc - c0 : AVX2_MC;                                      \
            switch (nr) {                                                                               \
            case 1: CASES_NC(K, 1); break;                                                              \
            case 2: CASES_NC(K, 2); break;                                                              \
            case 3: CASES_NC(K, 3); break;                                                              \
            default: CASES_NC(K, 4); break;                                                             \
            }                                                                                           \
        }                                                                                               \
    }

DEFINE_MM(mm_q4_1, K_Q4_1)
DEFINE_MM(mm_q5_0, K_Q5_0)
DEFINE_MM(mm_q5_1, K_Q5_1)

void kiln_avx2_fill_legacy(kiln_kernel_table *t) {
    t->mm[KILN_Q4_1] = mm_q4_1;
    t->mm[KILN_Q5_0] = mm_q5_0;
    t->mm[KILN_Q5_1] = mm_q5_1;
}
