/*
 * gemmf_avx512.c — prompt-side GEMM for float weights (F32, F16, BF16) on AVX-512.
 *
 * The micro kernels in matmul_avx512.c put the k dimension in the lanes: every
 * weight vector is converted (F16, BF16) where it is used and every output needs a
 * horizontal sum, and a 4 x 4 tile does 16 FMAs per 8 loads. For a batch of inputs
 * that leaves the FMA units half idle. Here the weights of up to 32 rows are first
 * converted once to an fp32 panel [k][32] (rows in the lanes), then each group of up
 * to 12 inputs runs through it: per element j, two panel vectors and 12 broadcast
 * inputs feed 24 FMAs into 24 accumulators that hold the outputs themselves — no
 * horizontal sums, no conversions in the inner loop.
 *
 * Per output element the arithmetic is one fp32 fma chain over j = 0 .. k-1 in order,
 * from +0: it depends on the weight row and the input row only, never on the tile,
 * the group or the thread. It is another order than the micro kernels' (16 lanes,
 * then a reduction), so a row of a batch of n >= KILN_PACK_MIN_N may differ in the
 * last bits from a call with that row alone, as on the integer packed path.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 14")
#define UNROLL16 _Pragma("GCC unroll 16")

/* 16 weights of a row from element j (fewer under mask m, the rest 0) as f32. */
INLINE __m512 load_row(kiln_dtype type, const uint8_t *row, int64_t j, __mmask16 m) {
    if (type == KILN_F32) return _mm512_maskz_loadu_ps(m, row + 4 * j);
    const __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * j);
    return type == KILN_F16 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* One transpose stage: 2 x 2 swaps of blocks of S lanes between vectors i and i + S
 * (i & S == 0), one vpermt2ps per vector. */
INLINE void transpose_stage(__m512 v[16], int S) {
    int ia[16], ib[16];
    UNROLL16 for (int l = 0; l < 16; l++) {
        ia[l] = (l & S) ? 16 + l - S : l; /* a keeps its lanes without S, takes b's below them */
        ib[l] = (l & S) ? 16 + l : l + S;
    }
    const __m512i xa = _mm512_loadu_si512(ia), xb = _mm512_loadu_si512(ib);
    UNROLL16 for (int i = 0; i < 16; i++) {
        if (i & S) continue;
        const __m512 a = v[i], b = v[i + S];
        v[i] = _mm512_permutex2var_ps(a, xa, b);
        v[i + S] = _mm512_permutex2var_ps(a, xb, b);
    }
}

/* Transposes 16 vectors in place: v[i][l] becomes v[l][i] (stages of 8, 4, 2, 1 lanes). */
INLINE void transpose16(__m512 v[16]) {
    transpose_stage(v, 8);
    transpose_stage(v, 4);
    transpose_stage(v, 2);
    transpose_stage(v, 1);
}

/* Converts rows [0, nr) of a float weight to the panel, panel[j*32 + r] = w[r][j]
 * (rows nr..31 zero). By chunks of KILN_GEMMF_KC elements: the 16 rows of a half are
 * first converted one after the other into stage (each row read sequentially: rows are
 * often 4 KiB apart, and 16 of them read side by side would fight over the same L1
 * sets), then transposed from there 16 x 16 at a time in registers. */
static void fill_panel(kiln_dtype type, int64_t k, const uint8_t *w, size_t ws, int nr, float *panel, float *stage) {
    const size_t st = KILN_GEMMF_KC + 16; /* stage row stride, off the 4 KiB grid */
    for (int h = 0; h < 2; h++) {
        const int rows = nr - 16 * h < 0 ? 0 : nr - 16 * h > 16 ? 16 : nr - 16 * h;
        for (int64_t j0 = 0; j0 < k; j0 += KILN_GEMMF_KC) {
            const int64_t len = k - j0 < KILN_GEMMF_KC ? k - j0 : KILN_GEMMF_KC;
            for (int i = 0; i < rows; i++) {
                const uint8_t *row = w + (size_t)(16 * h + i) * ws;
                for (int64_t j = 0; j < len; j += 16) {
                    const __mmask16 m = (__mmask16)(len - j >= 16 ? 0xffff : (1u << (len - j)) - 1);
                    _mm512_storeu_ps(stage + (size_t)i * st + (size_t)j, load_row(type, row, j0 + j, m));
                }
            }
            for (int64_t j = 0; j < len; j += 16) {
                __m512 v[16];
                UNROLL16 for (int i = 0; i < 16; i++)
                    v[i] = i < rows ? _mm512_loadu_ps(stage + (size_t)i * st + (size_t)j) : _mm512_setzero_ps();
                transpose16(v);
                const int64_t n16 = len - j < 16 ? len - j : 16;
                for (int64_t l = 0; l < n16; l++)
                    _mm512_store_ps(panel + (j0 + j + l) * KILN_GEMMF_ROWS + 16 * h, v[l]);
            }
        }
    }
}

/* NC inputs (rows of x, xs floats apart) times the panel: y[c*ldy + r], r < nr. */
INLINE void tile(int NC, int64_t k, const float *panel, int nr, const float *x, size_t xs, float *y, size_t ldy) {
    __m512 acc[KILN_GEMMF_NC][2];
    UNROLL for (int c = 0; c < NC; c++) acc[c][0] = acc[c][1] = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; j++) {
        const __m512 w0 = _mm512_load_ps(panel + j * KILN_GEMMF_ROWS);
        const __m512 w1 = _mm512_load_ps(panel + j * KILN_GEMMF_ROWS + 16);
        UNROLL for (int c = 0; c < NC; c++) {
            const __m512 xv = _mm512_set1_ps(x[(size_t)c * xs + (size_t)j]);
            acc[c][0] = _mm512_fmadd_ps(w0, xv, acc[c][0]);
            acc[c][1] = _mm512_fmadd_ps(w1, xv, acc[c][1]);
        }
    }
    const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
    const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffff : nr <= 16 ? 0 : (1u << (nr - 16)) - 1);
    UNROLL for (int c = 0; c < NC; c++) {
        _mm512_mask_storeu_ps(y + (size_t)c * ldy, m0, acc[c][0]);
        _mm512_mask_storeu_ps(y + (size_t)c * ldy + 16, m1, acc[c][1]);
    }
}

/* One fp32 panel (rows [0, nr <= 32)) times all n inputs. */
static void panel_times_inputs(int64_t k, const float *panel, int nr, const float *x, size_t xs, int64_t n, float *y,
                               size_t ldy) {
    /* Groups of equal width (16 inputs: 8 + 8, not 14 + 2): a narrow last group has
     * too few accumulators to cover the FMA latency. The grouping does not change any
     * output's arithmetic. */
    const int64_t groups = (n + KILN_GEMMF_NC - 1) / KILN_GEMMF_NC, width = groups ? (n + groups - 1) / groups : 0;
    for (int64_t c = 0; c < n; c += width) {
        const float *xc = x + (size_t)c * xs;
        float *yc = y + (size_t)c * ldy;
        /* a constant tile width per case, so the accumulators stay in registers */
#define TILE_CASE(N) \
    case N: tile(N, k, panel, nr, xc, xs, yc, ldy); break;
        switch (n - c < width ? n - c : width) {
            TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6) TILE_CASE(7)
            TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12) TILE_CASE(13)
        default: tile(14, k, panel, nr, xc, xs, yc, ldy); break;
#undef TILE_CASE
        }
    }
}

static void gemmf(kiln_dtype type, int64_t k, const void *w, size_t ws, int nr, const float *x, size_t xs, int64_t n,
                  float *y, size_t ldy, float *panel) {
    const uint8_t *wb = w;
    for (int r0 = 0; r0 < nr; r0 += KILN_GEMMF_ROWS) {
        const int rows = nr - r0 < KILN_GEMMF_ROWS ? nr - r0 : KILN_GEMMF_ROWS;
        fill_panel(type, k, wb + (size_t)r0 * ws, ws, rows, panel, panel + KILN_GEMMF_ROWS * (size_t)k);
        panel_times_inputs(k, panel, rows, x, xs, n, y + r0, ldy);
    }
}

/* Weights packed at load as fp32 panels (KILN_F32_P32): the same arithmetic as gemmf
 * with no conversion per call. */
static void gemmp(int64_t k, const float *panels, int nr, const float *x, size_t xs, int64_t n, float *y,
                  size_t ldy) {
    for (int r0 = 0; r0 < nr; r0 += KILN_GEMMF_ROWS)
        panel_times_inputs(k, panels + (size_t)r0 * (size_t)k, nr - r0 < KILN_GEMMF_ROWS ? nr - r0 : KILN_GEMMF_ROWS,
                           x, xs, n, y + r0, ldy);
}

void kiln_avx512_fill_gemmf(kiln_kernel_table *t) {
    t->gemmf = gemmf;
    t->gemmp = gemmp;
}
