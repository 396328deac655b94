/*
 * gemmb_avx512.c — matmul for weights packed as bf16 panels (KILN_BF16_P32) with the
 * AVX-512 BF16 dot product, and the bf16 rounding of activations it reads.
 *
 * vdpbf16ps adds, per 32-bit lane, the products of two bf16 pairs to an fp32
 * accumulator: with a panel vector holding an element pair (j, j+1) of 16 weight rows
 * and a broadcast pair of one input, one instruction does 32 multiply-adds where the
 * fp32 panel kernel (gemmf_avx512.c) does 16, and the panel is half the bytes. The
 * loop is that kernel's: 32 rows (two vectors) times up to 14 inputs, 28 accumulators
 * that are the outputs, no horizontal sums.
 *
 * Arithmetic: weights and inputs are bf16 (8-bit significands), so every product is
 * exact in fp32; per output one chain of vdpbf16ps over the pairs in k order from +0
 * (the instruction rounds to nearest even and flushes denormals). It depends on the
 * weight row and the input row only, so threads, tiles and batches never change bits
 * on one CPU. Compiled only into the AVX-512 table, and used only where the CPU reports
 * AVX512_BF16 (dispatch.c).
 */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 14")

INLINE void tile(int NC, int64_t np, const uint16_t *panel, int nr, const uint32_t *x, size_t xs, float *y,
                 size_t ldy) {
    __m512 acc[KILN_GEMMF_NC][2];
    UNROLL for (int c = 0; c < NC; c++) acc[c][0] = acc[c][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < np; p++) {
        const __m512bh w0 = (__m512bh)_mm512_load_si512(panel + p * 64);
        const __m512bh w1 = (__m512bh)_mm512_load_si512(panel + p * 64 + 32);
        UNROLL for (int c = 0; c < NC; c++) {
            const __m512bh xv = (__m512bh)_mm512_set1_epi32((int)x[(size_t)c * xs + (size_t)p]);
            acc[c][0] = _mm512_dpbf16_ps(acc[c][0], w0, xv);
            acc[c][1] = _mm512_dpbf16_ps(acc[c][1], w1, xv);
        }
    }
    const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
    const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffff : nr <= 16 ? 0 : (1u << (nr - 16)) - 1);
    UNROLL for (int c = 0; c < NC; c++) {
        _mm512_mask_storeu_ps(y + (size_t)c * ldy, m0, acc[c][0]);
        _mm512_mask_storeu_ps(y + (size_t)c * ldy + 16, m1, acc[c][1]);
    }
}

/* Panels of rows [0, nr) (groups of 32) times n inputs, in groups of equal width as in
 * gemmf_avx512.c. */
static void gemmb(int64_t kp, const uint16_t *panels, int nr, const uint32_t *x, size_t xs, int64_t n, float *y,
                  size_t ldy) {
    const int64_t np = kp / 2;
    const int64_t groups = (n + KILN_GEMMF_NC - 1) / KILN_GEMMF_NC, width = groups ? (n + groups - 1) / groups : 0;
    for (int r0 = 0; r0 < nr; r0 += KILN_GEMMF_ROWS) {
        const uint16_t *panel = panels + (size_t)r0 * (size_t)kp;
        const int rows = nr - r0 < KILN_GEMMF_ROWS ? nr - r0 : KILN_GEMMF_ROWS;
        for (int64_t c = 0; c < n; c += width) {
            const uint32_t *xc = x + (size_t)c * xs;
            float *yc = y + (size_t)c * ldy + r0;
#define TILE_CASE(N) \
    case N: tile(N, np, panel, rows, xc, xs, yc, ldy); break;
            switch (n - c < width ? n - c : width) {
                TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6) TILE_CASE(7)
                TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12) TILE_CASE(13)
            default: tile(14, np, panel, rows, xc, xs, yc, ldy); break;
#undef TILE_CASE
            }
        }
    }
}

/* n floats to bf16, round to nearest even (as kiln_f32_to_bf16 for non-NaN), zeros up
 * to kp. */
static void to_bf16(const float *x, uint16_t *y, int64_t n, int64_t kp) {
    for (int64_t j = 0; j < kp; j += 32) {
        const int64_t a = n - j, b = n - j - 16;
        const __mmask16 m0 = (__mmask16)(a >= 16 ? 0xffff : a <= 0 ? 0 : (1u << a) - 1);
        const __mmask16 m1 = (__mmask16)(b >= 16 ? 0xffff : b <= 0 ? 0 : (1u << b) - 1);
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + j + 16), _mm512_maskz_loadu_ps(m0, x + j));
        const int64_t left = kp - j;
        const __mmask32 ms = (__mmask32)(left >= 32 ? 0xffffffffu : (1u << left) - 1);
        _mm512_mask_storeu_epi16(y + j, ms, (__m512i)v);
    }
}

void kiln_avx512_fill_gemmb(kiln_kernel_table *t) {
    t->gemmb = gemmb;
    t->to_bf16 = to_bf16;
}
