/*
 * matmul_avx512.c — AVX-512 (F, BW, VL, DQ, VNNI) matmul micro kernels and the
 * activation quantizer.
 *
 * A tile is up to 4 weight rows x 4 inputs held in 16 zmm accumulators; every
 * weight vector loaded is used for all inputs of the tile and every input vector
 * for all rows. Tile shapes are instantiated with constant sizes (always_inline
 * templates) so the accumulators stay in registers.
 *
 * Per output element the order of operations is fixed by k alone (see
 * kernels_impl.h): 16-lane accumulation, then _mm512_reduce_add_ps.
 *   F32/F16/BF16: acc[p] += w[j..j+16) * x[j..j+16) (FMA) with p alternating 0, 1
 *     over the 16-element steps, masked loads for the tail, then acc[0] + acc[1] is
 *     reduced. F16 converts with vcvtph2ps, BF16 by a 16-bit shift: both exact, so
 *     the only difference from the reference is the summation order.
 *   Q8_0/Q4_0: two blocks per step. vpdpbusd multiplies unsigned by signed bytes,
 *     so the weight quants are made unsigned by an offset (q + 128 for Q8_0; the
 *     raw nibble q + 8 for Q4_0) and the offset's contribution is removed exactly
 *     by starting the int32 accumulator at -offset * (sum of 4 activation quants),
 *     itself one vpdpbusd per input, shared by the tile's rows. Each int32 lane then
 *     holds the exact sum of 4 products, which is converted to float and
 *     accumulated with the block scale d_w * d_x. The result equals the
 *     reference's integer block sums up to the float summation of the scaled
 *     partial sums.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define INLINE static inline __attribute__((always_inline))
/* Tile loops must be unrolled early so the accumulator arrays become registers. */
#define UNROLL _Pragma("GCC unroll 8")

enum { K_F32, K_F16, K_BF16, K_Q8_0, K_Q4_0 };

/* ---- float weight types ------------------------------------------------------ */

/* 16 (or, under mask m, fewer) weights of a row starting at element j, as f32. */
INLINE __m512 load_wf(int kind, const uint8_t *row, int64_t j, __mmask16 m) {
    switch (kind) {
    case K_F32: return _mm512_maskz_loadu_ps(m, row + 4 * j);
    case K_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * j));
    default:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + 2 * j)), 16));
    }
}

/* Inputs per float tile: 4 rows x 2 inputs x 2 partial sums = 16 accumulators. */
#define FLOAT_NC 2

/* One step: 16 elements from j (fewer under mask m) for every row and input. */
INLINE void float_step(int kind, int NR, int NC, const uint8_t *w, size_t ws, const float *x, size_t xs, int64_t j,
                       __mmask16 m, __m512 acc[KILN_MR][FLOAT_NC]) {
    __m512 wv[KILN_MR];
    UNROLL for (int r = 0; r < NR; r++) wv[r] = load_wf(kind, w + (size_t)r * ws, j, m);
    UNROLL for (int c = 0; c < NC; c++) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)c * xs + j);
        UNROLL for (int r = 0; r < NR; r++) acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
    }
}

/* Two partial sums per output: even 16-element steps into p = 0, odd ones into p = 1,
 * added before the final reduction. That halves the chain of dependent FMAs, which
 * otherwise caps one row's stream at 64 bytes of F16 per FMA latency. */
INLINE void tile_float(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const float *x, size_t xs,
                       float *y, size_t ldy) {
    __m512 acc[2][KILN_MR][FLOAT_NC];
    UNROLL for (int p = 0; p < 2; p++)
        UNROLL for (int r = 0; r < NR; r++)
            UNROLL for (int c = 0; c < NC; c++) acc[p][r][c] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
        float_step(kind, NR, NC, w, ws, x, xs, j, 0xffff, acc[0]);
        float_step(kind, NR, NC, w, ws, x, xs, j + 16, 0xffff, acc[1]);
    }
    if (j + 16 <= k) {
        float_step(kind, NR, NC, w, ws, x, xs, j, 0xffff, acc[0]);
        j += 16;
        if (j < k) float_step(kind, NR, NC, w, ws, x, xs, j, (__mmask16)((1u << (k - j)) - 1), acc[1]);
    } else if (j < k) {
        float_step(kind, NR, NC, w, ws, x, xs, j, (__mmask16)((1u << (k - j)) - 1), acc[0]);
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++)
            y[(size_t)c * ldy + (size_t)r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][r][c], acc[1][r][c]));
}

/* ---- Q8_0 / Q4_0 weights x Q8_0 activations --------------------------------- */

/* Two floats a, b as [a x8, b x8]: the per-lane scale of a two-block step. */
INLINE __m512 pair_ps(float a, float b) {
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

/* The fp16 scales at pa and pb (pb NULL: 0) as [d_a x8, d_b x8], converted
 * together by one vcvtph2ps. */
INLINE __m512 pair_half(const uint8_t *pa, const uint8_t *pb) {
    uint16_t ha, hb = 0;
    memcpy(&ha, pa, 2);
    if (pb) memcpy(&hb, pb, 2);
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)ha | (uint32_t)hb << 16)));
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                 _mm512_castps128_ps512(f));
}

/* Unsigned quants (q + offset) of blocks b and b+1 of a row as 64 bytes (two = 0:
 * block b only, upper half zero), and their scales as [d_b x8, d_b+1 x8]. */
INLINE __m512i load_wq(int kind, const uint8_t *row, int64_t b, int two, __m512 *dv) {
    if (kind == K_Q8_0) {
        const uint8_t *pa = row + (size_t)b * sizeof(kiln_block_q8_0);
        const uint8_t *pb = pa + sizeof(kiln_block_q8_0);
        __m512i q = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(pa + 2)));
        if (two) q = _mm512_inserti64x4(q, _mm256_loadu_si256((const __m256i *)(const void *)(pb + 2)), 1);
        *dv = pair_half(pa, two ? pb : NULL);
        return _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
    } else {
        const uint8_t *pa = row + (size_t)b * sizeof(kiln_block_q4_0);
        const uint8_t *pb = pa + sizeof(kiln_block_q4_0);
        const __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(pa + 2));
        const __m128i c = two ? _mm_loadu_si128((const __m128i *)(const void *)(pb + 2)) : _mm_setzero_si128();
        /* [a, a, c, c] in 128-bit lanes; lanes 1 and 3 shifted right by 4: low
         * nibbles are elements 0..15 of a block, high nibbles 16..31. */
        const __m512i dup = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0),
                                                     _mm512_zextsi256_si512(_mm256_set_m128i(c, a)));
        const long long s4 = 0x0004000400040004LL;
        const __m512i sh = _mm512_srlv_epi16(dup, _mm512_set_epi64(s4, s4, 0, 0, s4, s4, 0, 0));
        *dv = pair_half(pa, two ? pb : NULL);
        return _mm512_and_si512(sh, _mm512_set1_epi8(0x0f));
    }
}

/* One step: blocks b and b+1 (TWO = 1) or block b alone (TWO = 0, the odd last
 * block), for every row and input of the tile. */
INLINE void quant_step(int kind, int NR, int NC, int TWO, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                       int64_t b, __m512 acc[KILN_MR][KILN_MC]) {
    const __m512i off = _mm512_set1_epi8(kind == K_Q8_0 ? (char)0x80 : 8);
    __m512i wv[KILN_MR];
    __m512 dw[KILN_MR];
    UNROLL for (int r = 0; r < NR; r++) wv[r] = load_wq(kind, w + (size_t)r * ws, b, TWO, &dw[r]);
    UNROLL for (int c = 0; c < NC; c++) {
        const int8_t *xq = x->qs + (size_t)(i0 + c) * x->qs_stride + (size_t)b * KILN_QK8_0;
        const float *xd = x->d + (size_t)(i0 + c) * x->d_stride + b;
        __m512i xv;
        __m512 dx;
        if (TWO) {
            xv = _mm512_load_si512((const void *)xq);
            /* the two scales (unaligned when a row has an odd number of blocks) */
            const __m128 d2 = _mm_castsi128_ps(_mm_loadu_si64(xd));
            dx = _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                       _mm512_castps128_ps512(d2));
        } else {
            xv = _mm512_zextsi256_si512(_mm256_load_si256((const __m256i *)(const void *)xq));
            dx = pair_ps(xd[0], 0.0f);
        }
        /* -offset * (sum of each 4 activation quants): removes the offset exactly. */
        const __m512i ncorr =
            _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, xv));
        UNROLL for (int r = 0; r < NR; r++) {
            const __m512i p = _mm512_dpbusd_epi32(ncorr, wv[r], xv);
            acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[r], dx), acc[r][c]);
        }
    }
}

INLINE void tile_quant(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x,
                       int64_t i0, float *y, size_t ldy) {
    const int64_t nb = k / KILN_QK8_0;
    __m512 acc[KILN_MR][KILN_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) quant_step(kind, NR, NC, 1, w, ws, x, i0, b, acc);
    if (b < nb) quant_step(kind, NR, NC, 0, w, ws, x, i0, b, acc);
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ---- instantiation per tile shape ------------------------------------------- */

#define CASES_NC(CALL, K, R)               \
    switch (nc) {                          \
    case 1: CALL(K, R, 1); break;          \
    case 2: CALL(K, R, 2); break;          \
    case 3: CALL(K, R, 3); break;          \
    default: CALL(K, R, 4); break;         \
    }
#define CASES(CALL, K)                     \
    switch (nr) {                          \
    case 1: CASES_NC(CALL, K, 1); break;   \
    case 2: CASES_NC(CALL, K, 2); break;   \
    case 3: CASES_NC(CALL, K, 3); break;   \
    default: CASES_NC(CALL, K, 4); break;  \
    }
#define CALL_F(K, R, C) \
    tile_float(K, R, C, k, w, ws, x->f + (size_t)(i0 + c0) * x->f_stride, x->f_stride, y + (size_t)c0 * ldy, ldy)
#define CASES_F(K)                                                     \
    switch (nr) {                                                      \
    case 1: if (n2 == 1) CALL_F(K, 1, 1); else CALL_F(K, 1, 2); break; \
    case 2: if (n2 == 1) CALL_F(K, 2, 1); else CALL_F(K, 2, 2); break; \
    case 3: if (n2 == 1) CALL_F(K, 3, 1); else CALL_F(K, 3, 2); break; \
    default: if (n2 == 1) CALL_F(K, 4, 1); else CALL_F(K, 4, 2); break; \
    }
#define CALL_Q(K, R, C) tile_quant(K, R, C, k, w, ws, x, i0, y, ldy)

/* One kiln_mm_fn per weight type; nr, nc select a constant-size tile. */
#define DEFINE_MM(name, CALL, K)                                                                        \
    static void name(int64_t k, const void *w, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                            \
        CASES(CALL, K)                                                                                  \
    }

/* Float weights, one input: one row after the other, so each thread reads one
 * sequential stream (faster from DRAM than four interleaved ones); same per-element
 * arithmetic as the 4-row tiles, which take FLOAT_NC inputs at a time. */
#define DEFINE_MM_F(name, K)                                                                             \
    static void name(int64_t k, const void *w, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                             \
        if (nc == 1) {                                                                                   \
            for (int r = 0; r < nr; r++)                                                                 \
                tile_float(K, 1, 1, k, (const uint8_t *)w + (size_t)r * ws, ws,                          \
                           x->f + (size_t)i0 * x->f_stride, x->f_stride, y + r, ldy);                    \
            return;                                                                                      \
        }                                                                                                \
        for (int c0 = 0; c0 < nc; c0 += FLOAT_NC) {                                                      \
            const int n2 = nc - c0 < FLOAT_NC ? nc - c0 : FLOAT_NC;                                      \
            CASES_F(K)                                                                                   \
        }                                                                                                \
    }
DEFINE_MM_F(mm_f32, K_F32)
DEFINE_MM_F(mm_f16, K_F16)
DEFINE_MM_F(mm_bf16, K_BF16)
DEFINE_MM(mm_q8_0, CALL_Q, K_Q8_0)
DEFINE_MM(mm_q4_0, CALL_Q, K_Q4_0)

/* ---- packed prompt GEMM (kernels_impl.h: kiln_packed16) ------------------------- */

/* The rows of the NC inputs a packed tile reads (quants, scales, 16-element sums), and
 * its accumulators zeroed. */
typedef struct {
    __m512 acc[KILN_PACK_NC];
    const int8_t *xq[KILN_PACK_NC];
    const float *xd[KILN_PACK_NC];
    const int16_t *xs[KILN_PACK_NC];
} tile_in;

INLINE void tile_in_init(int NC, tile_in *t, const kiln_act *x, int64_t i0) {
    UNROLL for (int c = 0; c < NC; c++) {
        t->acc[c] = _mm512_setzero_ps();
        t->xq[c] = x->qs + (size_t)(i0 + c) * x->qs_stride;
        t->xd[c] = x->d + (size_t)(i0 + c) * x->d_stride;
        t->xs[c] = x->bs + (size_t)(i0 + c) * x->bs_stride;
    }
}

/* Stores the first nr lanes (rows) of each input's accumulator. */
INLINE void tile_store(int NC, const tile_in *t, int nr, float *y, size_t ldy) {
    const __mmask16 keep = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
    UNROLL for (int c = 0; c < NC; c++) _mm512_mask_storeu_ps(y + (size_t)c * ldy, keep, t->acc[c]);
}

/* Instantiates fn for the constant tile width nc (1..KILN_PACK_NC). */
#define NC_SWITCH(fn, ...)                          \
    switch (nc) {                                   \
    case 1: fn(1, __VA_ARGS__); break;              \
    case 2: fn(2, __VA_ARGS__); break;              \
    case 3: fn(3, __VA_ARGS__); break;              \
    case 4: fn(4, __VA_ARGS__); break;              \
    case 5: fn(5, __VA_ARGS__); break;              \
    case 6: fn(6, __VA_ARGS__); break;              \
    case 7: fn(7, __VA_ARGS__); break;              \
    default: fn(8, __VA_ARGS__); break;             \
    }

/* 16 rows x NC inputs. Per block: the int32 lanes start at -128 * (block sum of the
 * input's quants) and gather 8 vpdpbusd (4 elements of 16 rows each); then one
 * convert and fma with d_w * d_x, in block order. */
INLINE void gemm16_tile(int NC, int64_t nb, const kiln_packed16 *p, int nr, const kiln_act *x, int64_t i0,
                        float *y, size_t ldy) {
    tile_in in;
    tile_in_init(NC, &in, x, i0);
    __m512 *acc = in.acc;
    const int8_t *const *xq = in.xq;
    const float *const *xd = in.xd;
    const int16_t *const *xs = in.xs;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *qb = p->q + (size_t)b * 512;
        __m512i isum[KILN_PACK_NC];
        UNROLL for (int c = 0; c < NC; c++) isum[c] = _mm512_set1_epi32(-128 * (xs[c][2 * b] + xs[c][2 * b + 1]));
        UNROLL for (int g = 0; g < 8; g++) {
            const __m512i wq = _mm512_load_si512((const void *)(qb + g * 64));
            UNROLL for (int c = 0; c < NC; c++) {
                int32_t xg;
                memcpy(&xg, xq[c] + b * 32 + g * 4, 4);
                isum[c] = _mm512_dpbusd_epi32(isum[c], wq, _mm512_set1_epi32(xg));
            }
        }
        const __m512 dw = _mm512_loadu_ps(p->d + b * 16);
        UNROLL for (int c = 0; c < NC; c++) {
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dw, _mm512_set1_ps(xd[c][b])), acc[c]);
            if (p->m) {
                const float sx = xd[c][b] * (float)(xs[c][2 * b] + xs[c][2 * b + 1]);
                acc[c] = _mm512_fmadd_ps(_mm512_loadu_ps(p->m + b * 16), _mm512_set1_ps(sx), acc[c]);
            }
        }
    }
    tile_store(NC, &in, nr, y, ldy);
}

static void gemm16(int64_t nb, const kiln_packed16 *p, int nr, const kiln_act *x, int64_t i0, int nc, float *y,
                   size_t ldy) {
    NC_SWITCH(gemm16_tile, nb, p, nr, x, i0, y, ldy)
}

/* ---- weights packed at load (kernels/pack.c) ------------------------------------ */

/* A 64-byte load the compiler may not repeat. Left alone, GCC folds the load of a
 * weight vector into each instruction that splits it (the AND and the shift of the
 * nibbles, Q6_K's three shifts), so the vector is read two to four times; Zen 4 does
 * one 512-bit load per cycle (measured), so with one input the repeated loads compete
 * with the 8 activation broadcasts and the scales for the load pipes. */
INLINE __m512i load_once(const uint8_t *p) {
    __m512i v = _mm512_loadu_si512((const void *)p);
    __asm__("" : "+v"(v));
    return v;
}

/* The 64 mask bits at p. GCC reads them straight into a mask register (kmovq k, m64).
 * For packed Q5_1 on this Zen 4 that streamed 9-10 GB/s from memory on one core
 * against 30 for Q5_0 with the same kernel; through a general register (via_gpr: an
 * ordinary load, then kmovq k, r64) Q5_1 streams 30 GB/s as well. Why is not known:
 * the masks of a Q5_1 block fill a cache line of their own, but so do Q3_K's, and
 * Q3_K lost 5-10% of its generation speed through general registers (the moves cost
 * about that in cache) where Q5_K gained (TinyLlama Q5_K_M: 39-48 against 29-42
 * tok/s). So the route is chosen per type, by measurement. */
INLINE __mmask64 load_mask(const uint8_t *p, bool via_gpr) {
    uint64_t m;
    memcpy(&m, p, 8);
    if (via_gpr) __asm__("" : "+r"(m));
    return (__mmask64)m;
}

/* The high nibbles of v's bytes: moved to bits 0-3 (a shift and an AND), or, with
 * in_place, left at bits 4-7 (one AND), so that each of their products is exactly 16
 * times the nibble's and nibble_dots corrects the sum once. With one input that saves
 * three vector ops per block of 16 rows (shifts use only two of Zen 4's four vector
 * pipes); with several inputs the shifts are shared and the corrections are not. */
#define HI_IN_PLACE(in_place, v)                                                                                       \
    ((in_place) ? _mm512_and_si512((v), _mm512_set1_epi8((char)0xf0))                                                 \
                : _mm512_and_si512(_mm512_srli_epi16((v), 4), _mm512_set1_epi8(0x0f)))

/* init + the int32 dot products of the 8 weight vectors of one block with the block's
 * 32 input quants (4 per vpdpbusd). With hi_in_place (HI_IN_PLACE) wv[4..7] hold
 * 16 * q: their products go to a second sum, a multiple of 16 that an arithmetic
 * shift divides exactly (|sum| <= 240 * 127 * 16, far inside int32); the two chains
 * also halve the dependent vpdpbusd latency. Integer sums: the same bits either way. */
INLINE __m512i nibble_dots(bool hi_in_place, __m512i init, const __m512i wv[8], const int8_t *xq) {
    __m512i lo = init, hi = _mm512_setzero_si512();
    UNROLL for (int gi = 0; gi < 8; gi++) {
        int32_t xg;
        memcpy(&xg, xq + gi * 4, 4);
        if (hi_in_place && gi >= 4) hi = _mm512_dpbusd_epi32(hi, wv[gi], _mm512_set1_epi32(xg));
        else lo = _mm512_dpbusd_epi32(lo, wv[gi], _mm512_set1_epi32(xg));
    }
    return hi_in_place ? _mm512_add_epi32(lo, _mm512_srai_epi32(hi, 4)) : lo;
}

/* 16 packed rows x NC inputs, the same arithmetic as gemm16_tile: per block the
 * int32 lanes start at -offset * (the input's block sum) (offset 8 for Q4_0's raw
 * nibbles, 16 for Q5_0's 5-bit quants, 128 for Q8_0's shifted quants), gather 8
 * vpdpbusd, then one convert and fma with d_w * d_x, block after block. Q5_0's fifth
 * bits come as one 64-bit mask per weight vector: a masked add of 16. Q4_1 / Q5_1
 * (the nibbles and masks of Q4_0 / Q5_0 after their 16 fp16 minimums m_w) have no
 * offset and add fma(m_w, d_x * (the input's block sum), acc) per block. */
enum { X_Q8, X_Q4, X_Q5, X_Q41, X_Q51 };
INLINE void x16_tile(int KIND, int NC, int64_t nb, const uint8_t *g, int nr, const kiln_act *x, int64_t i0, float *y,
                     size_t ldy) {
    tile_in in;
    tile_in_init(NC, &in, x, i0);
    __m512 *acc = in.acc;
    const int8_t *const *xq = in.xq;
    const float *const *xd = in.xd;
    const int16_t *const *xs = in.xs;
    const bool mins = KIND == X_Q41 || KIND == X_Q51, five = KIND == X_Q5 || KIND == X_Q51;
    const bool in_place = (KIND == X_Q4 || KIND == X_Q41) && NC == 1; /* HI_IN_PLACE */
    const size_t bsz = KIND == X_Q4    ? KILN_X16_Q4_0_BLOCK
                       : KIND == X_Q5  ? KILN_X16_Q5_0_BLOCK
                       : KIND == X_Q41 ? KILN_X16_Q4_1_BLOCK
                       : KIND == X_Q51 ? KILN_X16_Q5_1_BLOCK
                                       : KILN_X16_Q8_0_BLOCK;
    const size_t q_at = mins ? 64 : 32; /* the quants, after the scales (and minimums) */
    const int off = KIND == X_Q4 ? -8 : KIND == X_Q5 ? -16 : KIND == X_Q8 ? -128 : 0;
    const __m512i lo4 = _mm512_set1_epi8(0x0f), sixteen = _mm512_set1_epi8(16);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = g + (size_t)b * bsz;
        __m512i wv[8];
        if (KIND != X_Q8) {
            UNROLL for (int h = 0; h < 4; h++) {
                const __m512i v = load_once(blk + q_at + h * 64);
                wv[h] = _mm512_and_si512(v, lo4);
                wv[h + 4] = HI_IN_PLACE(in_place, v);
            }
            if (five)
                UNROLL for (int gi = 0; gi < 8; gi++) {
                    wv[gi] = _mm512_mask_add_epi8(wv[gi], load_mask(blk + q_at + 256 + 8 * gi, KIND == X_Q51), wv[gi], sixteen);
                }
        } else {
            UNROLL for (int gi = 0; gi < 8; gi++) wv[gi] = _mm512_loadu_si512((const void *)(blk + 32 + gi * 64));
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)blk));
        const __m512 mw = mins ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 32)))
                               : _mm512_setzero_ps();
        UNROLL for (int c = 0; c < NC; c++) {
            const int bsum = xs[c][2 * b] + xs[c][2 * b + 1];
            const __m512i isum = nibble_dots(in_place, _mm512_set1_epi32(off * bsum), wv, xq[c] + b * 32);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(xd[c][b])), acc[c]);
            if (mins) acc[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xd[c][b] * (float)bsum), acc[c]);
        }
    }
    tile_store(NC, &in, nr, y, ldy);
}

/* Q4_K / Q5_K packed (pack.c): per sub-block of 32 the nibbles are a Q4_0 block
 * (unsigned q, no offset), for Q5_K followed by the fifth bits as Q5_0's 8 masks (a
 * masked add of 16); per output element and sub-block j, in order:
 *   acc = fma(float(isum_j), (d * sc_j) * d_x, acc);  acc = fma(-(dmin * m_j), d_x * sum_x, acc)
 * d * sc_j and dmin * m_j are exact in float (an fp16 times a 6-bit integer). */
INLINE void x16_qk_tile(int FIVE, int NC, int64_t nsb, const uint8_t *g, int nr, const kiln_act *x, int64_t i0,
                        float *y, size_t ldy) {
    tile_in in;
    tile_in_init(NC, &in, x, i0);
    __m512 *acc = in.acc;
    const int8_t *const *xq = in.xq;
    const float *const *xd = in.xd;
    const int16_t *const *xs = in.xs;
    const __m512i lo4 = _mm512_set1_epi8(0x0f), sixteen = _mm512_set1_epi8(16);
    const size_t bsz = FIVE ? KILN_X16_Q5_K_BLOCK : KILN_X16_Q4_K_BLOCK, sub = FIVE ? 256 + 64 : 256;
    for (int64_t sb = 0; sb < nsb; sb++) {
        const uint8_t *blk = g + (size_t)sb * bsz;
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)blk));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 32)));
        for (int j = 0; j < 8; j++) {
            const __m512 sc = _mm512_mul_ps(
                d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(blk + 64 + j * 16)))));
            const __m512 mn = _mm512_mul_ps(
                dmin, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(blk + 192 + j * 16)))));
            const uint8_t *nb = blk + 320 + j * sub;
            __m512i wv[8];
            UNROLL for (int h = 0; h < 4; h++) {
                const __m512i v = load_once(nb + h * 64);
                wv[h] = _mm512_and_si512(v, lo4);
                wv[h + 4] = HI_IN_PLACE(!FIVE && NC == 1, v);
            }
            if (FIVE)
                UNROLL for (int gi = 0; gi < 8; gi++) {
                    wv[gi] = _mm512_mask_add_epi8(wv[gi], load_mask(nb + 256 + 8 * gi, true), wv[gi], sixteen);
                }
            const int64_t b = sb * 8 + j; /* the activation block of this sub-block */
            UNROLL for (int c = 0; c < NC; c++) {
                const __m512i isum = nibble_dots(!FIVE && NC == 1, _mm512_setzero_si512(), wv, xq[c] + b * 32);
                const float dx = xd[c][b];
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(sc, _mm512_set1_ps(dx)), acc[c]);
                const float sx = dx * (float)(xs[c][2 * b] + xs[c][2 * b + 1]);
                acc[c] = _mm512_fnmadd_ps(mn, _mm512_set1_ps(sx), acc[c]);
            }
        }
    }
    tile_store(NC, &in, nr, y, ldy);
}

/* Bits 2h, 2h+1 of every byte of v at bits 4, 5 (other bits: anything). */
INLINE __m512i shift_pair(__m512i v, int h) {
    switch (h) {
    case 0: return _mm512_slli_epi16(v, 4);
    case 1: return _mm512_slli_epi16(v, 2);
    case 2: return v;
    default: return _mm512_srli_epi16(v, 2);
    }
}

/* Q6_K / Q3_K / Q2_K packed (pack.c), sub-blocks of 16 with their own scales: per
 * block of 32 two of them; per output element and sub-block, in order:
 *   acc = fma(float(isum), (d * sc) * d_x, acc)
 *   Q2_K then: acc = fma(-(dmin * m), d_x * (the input's 16-element sum), acc)
 * Q6_K holds unsigned q + 32 (4 nibble vectors, 2 vectors of high bit pairs) and Q3_K
 * q + 4 (2 vectors of low bit pairs, 8 masks of high bits: + 4 by a masked byte add),
 * both with int8 scales; their lanes start at -32 (-4) * (the input's 16-element sum)
 * so the offset cancels exactly. Q2_K holds q in 0..3 (Q3_K's low pairs) and the
 * file's scale bytes (4-bit scale, 4-bit min). */
enum { K16_Q6, K16_Q3, K16_Q2 };
INLINE void x16_k16_tile(int KIND, int NC, int64_t nsb, const uint8_t *g, int nr, const kiln_act *x, int64_t i0,
                         float *y, size_t ldy) {
    tile_in in;
    tile_in_init(NC, &in, x, i0);
    __m512 *acc = in.acc;
    const int8_t *const *xq = in.xq;
    const float *const *xd = in.xd;
    const int16_t *const *xs = in.xs;
    const __m512i lo4 = _mm512_set1_epi8(0x0f), hi2 = _mm512_set1_epi8(0x30), three = _mm512_set1_epi8(3),
                  four = _mm512_set1_epi8(4);
    const int off = KIND == K16_Q3 ? -4 : KIND == K16_Q6 ? -32 : 0;
    const size_t bsz = KIND == K16_Q3 ? KILN_X16_Q3_K_BLOCK : KIND == K16_Q6 ? KILN_X16_Q6_K_BLOCK : KILN_X16_Q2_K_BLOCK;
    const size_t sc_at = KIND == K16_Q2 ? 64 : 32; /* the sub-blocks' scale bytes */
    for (int64_t sb = 0; sb < nsb; sb++) {
        const uint8_t *blk = g + (size_t)sb * bsz;
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)blk));
        const __m512 dmin = KIND == K16_Q2 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 32)))
                                           : _mm512_setzero_ps();
        for (int bb = 0; bb < 8; bb++) {
            const __m128i sb0 = _mm_loadu_si128((const __m128i *)(const void *)(blk + sc_at + 32 * bb));
            const __m128i sb1 = _mm_loadu_si128((const __m128i *)(const void *)(blk + sc_at + 32 * bb + 16));
            __m512 sc0, sc1, mn0 = _mm512_setzero_ps(), mn1 = _mm512_setzero_ps();
            if (KIND == K16_Q2) { /* scale in the low nibble, minimum in the high one */
                const __m512i b0 = _mm512_cvtepu8_epi32(sb0), b1 = _mm512_cvtepu8_epi32(sb1), l4 = _mm512_set1_epi32(15);
                sc0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(b0, l4)));
                sc1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(b1, l4)));
                mn0 = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_srli_epi32(b0, 4)));
                mn1 = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_srli_epi32(b1, 4)));
            } else {
                sc0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sb0)));
                sc1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sb1)));
            }
            __m512i wv[8];
            if (KIND != K16_Q6) {
                const uint8_t *lo = blk + (KIND == K16_Q3 ? 288 + (size_t)bb * 192 : 320 + (size_t)bb * 128);
                const __m512i l0 = load_once(lo), l1 = load_once(lo + 64);
                UNROLL for (int h = 0; h < 4; h++) { /* bit pair h of each byte to bits 0-1 */
                    wv[h] = _mm512_and_si512(h ? _mm512_srli_epi16(l0, 2 * h) : l0, three);
                    wv[h + 4] = _mm512_and_si512(h ? _mm512_srli_epi16(l1, 2 * h) : l1, three);
                }
                if (KIND == K16_Q3)
                    UNROLL for (int gi = 0; gi < 8; gi++) {
                        wv[gi] = _mm512_mask_add_epi8(wv[gi], load_mask(lo + 128 + 8 * gi, false), wv[gi], four); /* high bits */
                    }
            } else {
                const uint8_t *lo = blk + 288 + (size_t)bb * 384, *hi = lo + 256;
                const __m512i h0 = load_once(hi), h1 = load_once(hi + 64);
                UNROLL for (int h = 0; h < 4; h++) {
                    const __m512i v = load_once(lo + h * 64);
                    /* bit pair h of each byte moved to bits 4-5 by one 16-bit shift (bits 4-5 of
                     * a byte come from the same byte for shifts of 4 left .. 2 right) */
                    const __m512i a = _mm512_and_si512(shift_pair(h0, h), hi2);
                    const __m512i b = _mm512_and_si512(shift_pair(h1, h), hi2);
                    /* (v & 0x0f) | a and ((v >> 4) & 0x0f) | b, one vpternlogd each (0xEC: A & C | B) */
                    wv[h] = _mm512_ternarylogic_epi32(v, a, lo4, 0xEC);
                    wv[h + 4] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), b, lo4, 0xEC);
                }
            }
            const int64_t b = sb * 8 + bb;
            UNROLL for (int c = 0; c < NC; c++) {
                __m512i s0 = _mm512_set1_epi32(off * xs[c][2 * b]), s1 = _mm512_set1_epi32(off * xs[c][2 * b + 1]);
                UNROLL for (int gi = 0; gi < 4; gi++) {
                    int32_t x0, x1;
                    memcpy(&x0, xq[c] + b * 32 + gi * 4, 4);
                    memcpy(&x1, xq[c] + b * 32 + 16 + gi * 4, 4);
                    s0 = _mm512_dpbusd_epi32(s0, wv[gi], _mm512_set1_epi32(x0));
                    s1 = _mm512_dpbusd_epi32(s1, wv[gi + 4], _mm512_set1_epi32(x1));
                }
                const __m512 dx = _mm512_set1_ps(xd[c][b]);
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_mul_ps(sc0, dx), acc[c]);
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(sc1, dx), acc[c]);
                if (KIND == K16_Q2) {
                    acc[c] = _mm512_fnmadd_ps(mn0, _mm512_set1_ps(xd[c][b] * (float)xs[c][2 * b]), acc[c]);
                    acc[c] = _mm512_fnmadd_ps(mn1, _mm512_set1_ps(xd[c][b] * (float)xs[c][2 * b + 1]), acc[c]);
                }
            }
        }
    }
    tile_store(NC, &in, nr, y, ldy);
}

#define x16_tile_q4(NC, ...) x16_tile(X_Q4, NC, __VA_ARGS__)
#define x16_tile_q5(NC, ...) x16_tile(X_Q5, NC, __VA_ARGS__)
#define x16_tile_q8(NC, ...) x16_tile(X_Q8, NC, __VA_ARGS__)
#define x16_tile_q41(NC, ...) x16_tile(X_Q41, NC, __VA_ARGS__)
#define x16_tile_q51(NC, ...) x16_tile(X_Q51, NC, __VA_ARGS__)
#define x16_tile_q4k(NC, ...) x16_qk_tile(0, NC, __VA_ARGS__)
#define x16_tile_q5k(NC, ...) x16_qk_tile(1, NC, __VA_ARGS__)
#define x16_tile_q6k(NC, ...) x16_k16_tile(K16_Q6, NC, __VA_ARGS__)
#define x16_tile_q3k(NC, ...) x16_k16_tile(K16_Q3, NC, __VA_ARGS__)
#define x16_tile_q2k(NC, ...) x16_k16_tile(K16_Q2, NC, __VA_ARGS__)

static void gemm_x16(kiln_dtype type, int64_t nb, const uint8_t *g, int nr, const kiln_act *x, int64_t i0, int nc,
                     float *y, size_t ldy) {
    if (type == KILN_Q6_K_X16) {
        NC_SWITCH(x16_tile_q6k, nb, g, nr, x, i0, y, ldy)
    } else if (type == KILN_Q3_K_X16) {
        NC_SWITCH(x16_tile_q3k, nb, g, nr, x, i0, y, ldy)
    } else if (type == KILN_Q2_K_X16) {
        NC_SWITCH(x16_tile_q2k, nb, g, nr, x, i0, y, ldy)
    } else if (type == KILN_Q4_K_X16) {
        NC_SWITCH(x16_tile_q4k, nb, g, nr, x, i0, y, ldy)
    } else if (type == KILN_Q5_K_X16) {
        NC_SWITCH(x16_tile_q5k, nb, g, nr, x, i0, y, ldy)
    } else if (type == KILN_Q4_0_X16) {
        NC_SWITCH(x16_tile_q4, nb, g, nr, x, i0, y, ldy)
    } else if (type == KILN_Q5_0_X16) {
        NC_SWITCH(x16_tile_q5, nb, g, nr, x, i0, y, ldy)
    } else if (type == KILN_Q4_1_X16) {
        NC_SWITCH(x16_tile_q41, nb, g, nr, x, i0, y, ldy)
    } else if (type == KILN_Q5_1_X16) {
        NC_SWITCH(x16_tile_q51, nb, g, nr, x, i0, y, ldy)
    } else {
        NC_SWITCH(x16_tile_q8, nb, g, nr, x, i0, y, ldy)
    }
}

/* ---- activation quantization -------------------------------------------------- */

/* roundf(v) (halves away from zero) clamped to [-128, 127], NaN -> 0, for 16 lanes:
 * truncate, then step away from zero where the dropped fraction is >= 0.5 (the
 * fraction v - trunc(v) is exact). Matches quant_ref.c's to_q8 lane for lane. */
static inline __m128i round_q8(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    __m512 r = _mm512_mask_add_ps(t, up, t, one);
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(127.0f));
    r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), r);
    return _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(r));
}

/* kiln_quant_act_fn, bit-exact with kiln_ref_quant_act: the scale is computed
 * with the same scalar operations, the quants with the same IEEE product. */
static void quant_act(const float *x, int8_t *qs, float *d, int64_t k) {
    for (int64_t b = 0; b < k / KILN_QK8_0; b++) {
        const float *v = x + b * KILN_QK8_0;
        const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float dd = amax / 127.0f;
        const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
        const uint16_t h = kiln_f32_to_fp16(dd);
        d[b] = kiln_fp16_to_f32(h);
        const __m512 idv = _mm512_set1_ps(id);
        _mm_storeu_si128((__m128i *)(void *)(qs + b * KILN_QK8_0), round_q8(_mm512_mul_ps(v0, idv)));
        _mm_storeu_si128((__m128i *)(void *)(qs + b * KILN_QK8_0 + 16), round_q8(_mm512_mul_ps(v1, idv)));
    }
}

void kiln_kernels_fill_avx512(kiln_kernel_table *t) {
    t->name = "avx512";
    t->mm[KILN_F32] = mm_f32;
    t->mm[KILN_F16] = mm_f16;
    t->mm[KILN_BF16] = mm_bf16;
    t->mm[KILN_Q8_0] = mm_q8_0;
    t->mm[KILN_Q4_0] = mm_q4_0;
    kiln_avx512_fill_legacy(t);
    kiln_avx512_fill_kquants(t);
    kiln_avx512_fill_klow(t);
    kiln_avx512_fill_gemmf(t);
    t->quant_act = quant_act;
    t->gemm16 = gemm16;
    t->gemm_x16 = gemm_x16;
    t->x16_ext = true;
    kiln_avx512_fill_ops(t);
}
