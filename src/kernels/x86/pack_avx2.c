/*
 * pack_avx2.c — AVX2 kernels for weights packed at load (kernels/pack.c:
 * KILN_Q4_0_X16, KILN_Q8_0_X16, KILN_Q4_K_X16, KILN_Q6_K_X16), for generation and
 * prompts alike (kernels_impl.h: kiln_gemmx_fn).
 *
 * The packed layouts give one 32-bit lane per row: 4 consecutive quants of 16 rows
 * in a 64-byte vector. AVX2 reads each vector as two halves, rows 0-7 and rows 8-15,
 * and runs a half at a time (so a tile needs half the registers; a group is small
 * enough that the second half reads it from cache). Without VNNI the 4-quant dot
 * products are vpmaddubsw (unsigned x signed bytes -> 16-bit pair sums) then
 * vpmaddwd with ones (-> the 32-bit sum of the 4), landing per row in the lanes as
 * with vpdpbusd:
 *   Q4_0, Q4_K: unsigned nibbles (<= 15) x quants (|x| <= 127): a pair sum is at most
 *     3810, so the 8 vectors of a 32-element block add up in 16 bits (<= 30480) and
 *     widen once per block;
 *   Q8_0: the stored q + 128 is turned back into q, and |q| times x with q's sign
 *     (vpsignb) keeps a pair within 32512;
 *   Q6_K: 6-bit unsigned q + 32 (<= 63): each vector widens at once.
 * The integer sums are exact, equal to the AVX-512 kernels' (the offsets cancel with
 * the input's block sums the same way), and the float steps are the same operations
 * in the same order (matmul_avx512.c), so both levels give the same bits.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/avx2_util.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
#define MAXC 4 /* inputs per tile (the widest tile that stays in 16 registers) */

/* The 4 quants of an input at q as one broadcast 32-bit lane. */
INLINE __m256i bcast4(const int8_t *q) {
    int32_t v;
    memcpy(&v, q, 4);
    return _mm256_set1_epi32(v);
}

/* The per-tile view of the NC inputs: block quants, scales, 16-element sums. */
typedef struct {
    __m256 acc[MAXC];
    const int8_t *xq[MAXC];
    const float *xd[MAXC];
    const int16_t *xs[MAXC];
} tile_in;

INLINE void tile_init(int NC, tile_in *t, const kiln_act *x, int64_t i0) {
    UNROLL for (int c = 0; c < NC; c++) {
        t->acc[c] = _mm256_setzero_ps();
        t->xq[c] = x->qs + (size_t)(i0 + c) * x->qs_stride;
        t->xd[c] = x->d + (size_t)(i0 + c) * x->d_stride;
        t->xs[c] = x->bs + (size_t)(i0 + c) * x->bs_stride;
    }
}

/* Stores the first nr (<= 8) lanes (rows) of each input's accumulator. */
INLINE void tile_store(int NC, const tile_in *t, int nr, float *y, size_t ldy) {
    if (nr >= 8) {
        UNROLL for (int c = 0; c < NC; c++) _mm256_storeu_ps(y + (size_t)c * ldy, t->acc[c]);
        return;
    }
    const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    UNROLL for (int c = 0; c < NC; c++) _mm256_maskstore_ps(y + (size_t)c * ldy, keep, t->acc[c]);
}

/* Exact sums over one 32-element block b of 8 rows (half of a Q4_0-layout nibble
 * block at nib: 4 vectors of 64 bytes) times each input: lane r = sum of nibble(r, e)
 * * x[e] (nibbles unsigned, no offset). */
INLINE void nib_sums(int NC, const uint8_t *nib, int half, const tile_in *t, int64_t b, __m256i out[MAXC]) {
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    /* the 8 weight vectors first (32 elements of 8 rows), then one input after the
     * other: 8 live weights, one sum and one broadcast stay in registers */
    __m256i w[8];
    UNROLL for (int h = 0; h < 4; h++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(nib + h * 64 + half * 32));
        w[h] = _mm256_and_si256(v, lo4);
        w[h + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4);
    }
    UNROLL for (int c = 0; c < NC; c++) {
        const int8_t *q = t->xq[c] + b * 32;
        __m256i s = _mm256_maddubs_epi16(w[0], bcast4(q));
        UNROLL for (int h = 1; h < 4; h++) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[h], bcast4(q + 4 * h)));
        UNROLL for (int h = 0; h < 4; h++)
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[h + 4], bcast4(q + 16 + 4 * h)));
        out[c] = _mm256_madd_epi16(s, _mm256_set1_epi16(1));
    }
}

/* The input's sum over block b (two 16-element sums). */
INLINE int block_sum(const tile_in *t, int c, int64_t b) { return t->xs[c][2 * b] + t->xs[c][2 * b + 1]; }

/* Q4_0 (raw nibbles, -8 removed with the block sum) and Q8_0 (q + 128). */
INLINE void tile_q(int Q4, int NC, int64_t nb, const uint8_t *g, int half, int nr, const kiln_act *x, int64_t i0,
                   float *y, size_t ldy) {
    tile_in t;
    tile_init(NC, &t, x, i0);
    const size_t bsz = Q4 ? KILN_X16_Q4_0_BLOCK : KILN_X16_Q8_0_BLOCK;
    const __m256i ones = _mm256_set1_epi16(1), bias = _mm256_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = g + (size_t)b * bsz;
        __m256i isum[MAXC];
        if (Q4) {
            nib_sums(NC, blk + 32, half, &t, b, isum);
            UNROLL for (int c = 0; c < NC; c++)
                isum[c] = _mm256_add_epi32(isum[c], _mm256_set1_epi32(-8 * block_sum(&t, c, b)));
        } else {
            UNROLL for (int c = 0; c < NC; c++) isum[c] = _mm256_setzero_si256();
            UNROLL for (int gi = 0; gi < 8; gi++) {
                const __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 32 + gi * 64 + half * 32));
                const __m256i q = _mm256_xor_si256(u, bias), aq = _mm256_abs_epi8(q);
                UNROLL for (int c = 0; c < NC; c++) {
                    const __m256i xq = _mm256_sign_epi8(bcast4(t.xq[c] + b * 32 + gi * 4), q);
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(aq, xq), ones));
                }
            }
        }
        const __m256 dw = half8(blk + half * 16);
        UNROLL for (int c = 0; c < NC; c++)
            t.acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(dw, _mm256_set1_ps(t.xd[c][b])),
                                       t.acc[c]);
    }
    tile_store(NC, &t, nr, y, ldy);
}

/* Q4_K: per sub-block j the nibbles read as a Q4_0 block; in order per element:
 *   acc = fma(float(isum_j), (d * sc_j) * d_x, acc);  acc = fma(-(dmin * m_j), d_x * sum_x, acc). */
INLINE void tile_q4k(int NC, int64_t nsb, const uint8_t *g, int half, int nr, const kiln_act *x, int64_t i0, float *y,
                     size_t ldy) {
    tile_in t;
    tile_init(NC, &t, x, i0);
    for (int64_t sb = 0; sb < nsb; sb++) {
        const uint8_t *blk = g + (size_t)sb * KILN_X16_Q4_K_BLOCK;
        const __m256 d = half8(blk + half * 16), dmin = half8(blk + 32 + half * 16);
        for (int j = 0; j < 8; j++) {
            const __m256 sc = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                                  _mm_loadl_epi64((const __m128i *)(const void *)(blk + 64 + j * 16 + half * 8)))));
            const __m256 mn = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                                      _mm_loadl_epi64((const __m128i *)(const void *)(blk + 192 + j * 16 + half * 8)))));
            const int64_t b = sb * 8 + j;
            __m256i isum[MAXC];
            nib_sums(NC, blk + 320 + (size_t)j * 256, half, &t, b, isum);
            UNROLL for (int c = 0; c < NC; c++) {
                const float dx = t.xd[c][b];
                t.acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(sc, _mm256_set1_ps(dx)), t.acc[c]);
                t.acc[c] = _mm256_fnmadd_ps(mn, _mm256_set1_ps(dx * (float)block_sum(&t, c, b)), t.acc[c]);
            }
        }
    }
    tile_store(NC, &t, nr, y, ldy);
}

/* Bits 2h, 2h+1 of every byte of v at bits 4, 5 (other bits: anything). */
INLINE __m256i shift_pair(__m256i v, int h) {
    switch (h) {
    case 0: return _mm256_slli_epi16(v, 4);
    case 1: return _mm256_slli_epi16(v, 2);
    case 2: return v;
    default: return _mm256_srli_epi16(v, 2);
    }
}

/* Q6_K: q + 32 per element, two sub-blocks of 16 per block of 32, each with its own
 * int8 scale; the lanes start at -32 * (the input's 16-element sum). */
INLINE void tile_q6k(int NC, int64_t nsb, const uint8_t *g, int half, int nr, const kiln_act *x, int64_t i0, float *y,
                     size_t ldy) {
    tile_in t;
    tile_init(NC, &t, x, i0);
    const __m256i lo4 = _mm256_set1_epi8(0x0f), hi2 = _mm256_set1_epi8(0x30), ones = _mm256_set1_epi16(1);
    for (int64_t sb = 0; sb < nsb; sb++) {
        const uint8_t *blk = g + (size_t)sb * KILN_X16_Q6_K_BLOCK;
        const __m256 d = half8(blk + half * 16);
        for (int bb = 0; bb < 8; bb++) {
            const uint8_t *scp = blk + 32 + 32 * bb + half * 8;
            const __m256 sc0 = _mm256_mul_ps(
                d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)scp))));
            const __m256 sc1 = _mm256_mul_ps(
                d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(scp + 16)))));
            const uint8_t *lo = blk + 288 + (size_t)bb * 384 + half * 32, *hi = lo + 256;
            const __m256i h0 = _mm256_loadu_si256((const __m256i *)(const void *)hi);
            const __m256i h1 = _mm256_loadu_si256((const __m256i *)(const void *)(hi + 64));
            const int64_t b = sb * 8 + bb;
            __m256i s0[MAXC], s1[MAXC];
            UNROLL for (int c = 0; c < NC; c++) {
                s0[c] = _mm256_set1_epi32(-32 * t.xs[c][2 * b]);
                s1[c] = _mm256_set1_epi32(-32 * t.xs[c][2 * b + 1]);
            }
            UNROLL for (int h = 0; h < 4; h++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(lo + h * 64));
                /* bit pair h of each byte at bits 4-5 by one 16-bit shift (bits 4-5 of a byte
                 * come from the same byte for shifts of 4 left .. 2 right), then masked */
                const __m256i a = _mm256_and_si256(shift_pair(h0, h), hi2);
                const __m256i c1 = _mm256_and_si256(shift_pair(h1, h), hi2);
                const __m256i wa = _mm256_or_si256(_mm256_and_si256(v, lo4), a);
                const __m256i wb = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), lo4), c1);
                UNROLL for (int c = 0; c < NC; c++) {
                    const int8_t *q = t.xq[c] + b * 32;
                    s0[c] = _mm256_add_epi32(s0[c], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, bcast4(q + 4 * h)), ones));
                    s1[c] = _mm256_add_epi32(s1[c],
                                             _mm256_madd_epi16(_mm256_maddubs_epi16(wb, bcast4(q + 16 + 4 * h)), ones));
                }
            }
            UNROLL for (int c = 0; c < NC; c++) {
                const __m256 dx = _mm256_set1_ps(t.xd[c][b]);
                t.acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0[c]), _mm256_mul_ps(sc0, dx), t.acc[c]);
                t.acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1[c]), _mm256_mul_ps(sc1, dx), t.acc[c]);
            }
        }
    }
    tile_store(NC, &t, nr, y, ldy);
}

/* Q4_0 with one input (generation): both halves in one pass over the group, so each
 * broadcast of the input serves 16 rows. The same integer sums and float steps per
 * lane as tile_q, hence the same bits. */
static void tile_q4_n1(int64_t nb, const uint8_t *g, int nr, const kiln_act *x, int64_t i0, float *y) {
    const int8_t *xq = x->qs + (size_t)i0 * x->qs_stride;
    const float *xd = x->d + (size_t)i0 * x->d_stride;
    const int16_t *xs = x->bs + (size_t)i0 * x->bs_stride;
    const __m256i lo4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = g + (size_t)b * KILN_X16_Q4_0_BLOCK, *nib = blk + 32;
        const int8_t *q = xq + b * 32;
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        UNROLL for (int h = 0; h < 4; h++) {
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)(nib + h * 64));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(const void *)(nib + h * 64 + 32));
            const __m256i xl = bcast4(q + 4 * h), xh = bcast4(q + 16 + 4 * h);
            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(_mm256_and_si256(v0, lo4), xl));
            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(_mm256_and_si256(v1, lo4), xl));
            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), lo4), xh));
            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), lo4), xh));
        }
        const __m256i corr = _mm256_set1_epi32(-8 * (xs[2 * b] + xs[2 * b + 1]));
        const __m256 dx = _mm256_set1_ps(xd[b]);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_madd_epi16(s0, ones), corr)),
                               _mm256_mul_ps(half8(blk), dx), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_madd_epi16(s1, ones), corr)),
                               _mm256_mul_ps(half8(blk + 16), dx), acc1);
    }
    float out[16];
    _mm256_storeu_ps(out, acc0);
    _mm256_storeu_ps(out + 8, acc1);
    memcpy(y, out, sizeof(float) * (size_t)nr);
}

#define tile_q4(NC, ...) tile_q(1, NC, __VA_ARGS__)
#define tile_q8(NC, ...) tile_q(0, NC, __VA_ARGS__)
/* Instantiate fn for the constant tile width ncc: 1..4 (NC4) or 1..2 (NC2). */
#define NC4(fn, ...)                     \
    switch (ncc) {                       \
    case 1: fn(1, __VA_ARGS__); break;   \
    case 2: fn(2, __VA_ARGS__); break;   \
    case 3: fn(3, __VA_ARGS__); break;   \
    default: fn(4, __VA_ARGS__); break;  \
    }
#define NC2(fn, ...)                     \
    switch (ncc) {                       \
    case 1: fn(1, __VA_ARGS__); break;   \
    default: fn(2, __VA_ARGS__); break;  \
    }

/* kiln_gemmx_fn: each half of the group's 16 rows, the inputs a tile at a time. */
static void gemm_x16(kiln_dtype type, int64_t nb, const uint8_t *g, int nr, const kiln_act *x, int64_t i0, int nc,
                     float *y, size_t ldy) {
    if (type == KILN_Q4_0_X16 && nc == 1) {
        tile_q4_n1(nb, g, nr, x, i0, y);
        return;
    }
    const int width = type == KILN_Q6_K_X16 ? 2 : MAXC;
    for (int half = 0; half < 2 && half * 8 < nr; half++) {
        const int hr = nr - half * 8 < 8 ? nr - half * 8 : 8;
        float *yh = y + half * 8;
        for (int c0 = 0; c0 < nc; c0 += width) {
            const int ncc = nc - c0 < width ? nc - c0 : width;
            float *yc = yh + (size_t)c0 * ldy;
            const int64_t ic = i0 + c0;
            if (type == KILN_Q6_K_X16) {
                NC2(tile_q6k, nb, g, half, hr, x, ic, yc, ldy)
            } else if (type == KILN_Q4_K_X16) {
                NC4(tile_q4k, nb, g, half, hr, x, ic, yc, ldy)
            } else if (type == KILN_Q4_0_X16) {
                NC4(tile_q4, nb, g, half, hr, x, ic, yc, ldy)
            } else {
                NC4(tile_q8, nb, g, half, hr, x, ic, yc, ldy)
            }
        }
    }
}

void kiln_avx2_fill_pack(kiln_kernel_table *t) { t->gemm_x16 = gemm_x16; }
