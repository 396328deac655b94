/*
 * klow_avx512.c — the avx512 level (F, BW, VL, VNNI) of the low-bit K-quant types
 * (Q2_K, Q3_K): matmul micro kernels over the driver's Q8_0 activations.
 *
 * Layout trick. A super-block's 64 bytes of 2-bit quants split into four 16-byte
 * chunks; chunk c with bit pair s holds the 16 elements of sub-block
 * 8*(c/2) + 2*s + c%2. So chunk c broadcast to the four 128-bit lanes and shifted
 * by 0, 2, 4, 6 per lane gives the vector V_c whose lane L is sub-block
 * 8*(c/2) + 2L + c%2: V_0 and V_1 hold the two halves of the activation blocks
 * 0..3 (lane L: block L), V_2 and V_3 of blocks 4..7. The matching activation
 * vectors are two 128-bit lane shuffles of the four 64-byte loads. So one int32
 * accumulator takes vpdpbusd of V_0 then V_1 (every lane stays within one
 * activation block, whose scale d_x is per lane), another V_2 and V_3: per
 * super-block and (row, input) pair, 4 vpdpbusd, 2 conversions and 4 FMAs.
 *
 * The sub-block scales are folded into the weight bytes first (once per row,
 * shared by the tile's inputs):
 *   Q2_K: w = sc * q in 0..45 (16-bit multiply of two bytes by a zero-extended
 *         scale cannot carry, since sc * q < 256); the minimum is one FMA per
 *         super-block: dmin * m_j (per row) times d_x * bs[j] (per input).
 *   Q3_K: w = (sc6 - 32) * q3 + 124, in 0..252 (the product lies in -124..128);
 *         bytes from two 16-bit multiplies (even and odd bytes) modulo 256. The
 *         offset 124 is removed exactly by starting the int32 sums at
 *         -124 * (sum of 4 activation quants), one vpdpbusd per input.
 * Every int32 lane is an exact integer sum; the float order per output element
 * depends only on k (kernels_impl.h), so tiles and threads do not change bits.
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

enum { K_Q2, K_Q3 };

static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* pshufb control: in lane L, 16-bit words (byte of sub-block 8*(c/2)+2L+c%2, 0). */
INLINE __m512i scale_ctl(int c) {
    const uint32_t s0 = 8u * (uint32_t)(c / 2) + (uint32_t)(c % 2);
    const int w0 = (int)((0x8000u | (s0 + 0)) * 0x10001u), w1 = (int)((0x8000u | (s0 + 2)) * 0x10001u);
    const int w2 = (int)((0x8000u | (s0 + 4)) * 0x10001u), w3 = (int)((0x8000u | (s0 + 6)) * 0x10001u);
    return _mm512_set_epi32(w3, w3, w3, w3, w2, w2, w2, w2, w1, w1, w1, w1, w0, w0, w0, w0);
}

/* The 2-bit quants of chunk c (16 bytes at qs + 16c) as V_c. */
INLINE __m512i low2(const uint8_t *qs, int c) {
    const __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(qs + 16 * c)));
    const __m512i sh = _mm512_set_epi64(0x0006000600060006LL, 0x0006000600060006LL, 0x0004000400040004LL,
                                        0x0004000400040004LL, 0x0002000200020002LL, 0x0002000200020002LL, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(b, sh), _mm512_set1_epi8(3));
}

/* A weight row's super-block, unpacked: the four scaled weight vectors, d, and for
 * Q2_K the minimums dmin * m_j (lane j: sub-block j). */
typedef struct {
    __m512i w[4];
    __m512 d, mins;
} wblock;

INLINE void unpack_q2(const uint8_t *p, wblock *o) {
    const __m128i sc = _mm_loadu_si128((const __m128i *)(const void *)(p + offsetof(kiln_block_q2_k, scales)));
    const __m512i scl = _mm512_broadcast_i32x4(_mm_and_si128(sc, _mm_set1_epi8(0x0f)));
    UNROLL for (int c = 0; c < 4; c++)
        o->w[c] = _mm512_mullo_epi16(low2(p + offsetof(kiln_block_q2_k, qs), c), _mm512_shuffle_epi8(scl, scale_ctl(c)));
    const __m128i m = _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0f));
    o->d = _mm512_set1_ps(half_at(p + offsetof(kiln_block_q2_k, d)));
    o->mins = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(m)),
                            _mm512_set1_ps(half_at(p + offsetof(kiln_block_q2_k, dmin))));
}

/* The 16 six-bit scales of a Q3_K block minus 32, as bytes (lane j: sub-block j). */
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
    const __m512i s = _mm512_broadcast_i32x4(q3_scales(p + offsetof(kiln_block_q3_k, scales)));
    const uint8_t *hm = p + offsetof(kiln_block_q3_k, hmask);
    UNROLL for (int c = 0; c < 4; c++) {
        const __m512i q = low2(p + offsetof(kiln_block_q3_k, qs), c);
        /* high bit of lane L: bit 4*(c/2) + L of hmask[16*(c%2) + i]; clear means q - 4 */
        const __m512i h = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(hm + 16 * (c % 2))));
        const uint32_t b0 = 0x01010101u << (4 * (c / 2));
        const int l0 = (int)b0, l1 = (int)(b0 << 1), l2 = (int)(b0 << 2), l3 = (int)(b0 << 3);
        const __m512i bit = _mm512_set_epi32(l3, l3, l3, l3, l2, l2, l2, l2, l1, l1, l1, l1, l0, l0, l0, l0);
        const __m512i q3 = _mm512_mask_sub_epi8(q, _mm512_testn_epi8_mask(h, bit), q, _mm512_set1_epi8(4));
        /* (q3 * s) mod 256 per byte: even bytes from the low byte of a 16-bit
         * product, odd bytes from the product of the word with its low byte cleared */
        const __m512i sw = _mm512_shuffle_epi8(s, scale_ctl(c));
        const __m512i ev = _mm512_mullo_epi16(q3, sw);
        const __m512i od = _mm512_mullo_epi16(_mm512_and_si512(q3, _mm512_set1_epi16((short)0xff00)), sw);
        const __m512i prod = _mm512_mask_blend_epi8((__mmask64)0xaaaaaaaaaaaaaaaaULL, ev, od);
        o->w[c] = _mm512_add_epi8(prod, _mm512_set1_epi8(124));
    }
    o->d = _mm512_set1_ps(half_at(p + offsetof(kiln_block_q3_k, d)));
    o->mins = _mm512_setzero_ps();
}

/* An input's super-block: the activation vectors matching V_0..V_3, the per-lane
 * activation scales of the two accumulators, and the int32 start values (Q3_K:
 * -124 * sums of 4 quants) or, for Q2_K, d_x[j/2] * bs[j] per sub-block j. */
typedef struct {
    __m512i x[4];
    __m512 da, db, xb;
    __m512i ia, ib;
} xblock;

INLINE void load_x(int kind, const kiln_act *a, int64_t i, int64_t sb, xblock *o) {
    const int8_t *q = a->qs + (size_t)i * a->qs_stride + (size_t)sb * KILN_QK_K;
    const __m512i x0 = _mm512_load_si512((const void *)q), x1 = _mm512_load_si512((const void *)(q + 64));
    const __m512i x2 = _mm512_load_si512((const void *)(q + 128)), x3 = _mm512_load_si512((const void *)(q + 192));
    o->x[0] = _mm512_shuffle_i32x4(x0, x1, _MM_SHUFFLE(2, 0, 2, 0));
    o->x[1] = _mm512_shuffle_i32x4(x0, x1, _MM_SHUFFLE(3, 1, 3, 1));
    o->x[2] = _mm512_shuffle_i32x4(x2, x3, _MM_SHUFFLE(2, 0, 2, 0));
    o->x[3] = _mm512_shuffle_i32x4(x2, x3, _MM_SHUFFLE(3, 1, 3, 1));
    const __m512 d8 = _mm512_castps256_ps512(_mm256_loadu_ps(a->d + (size_t)i * a->d_stride + (size_t)sb * 8));
    o->da = _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0), d8);
    o->db = _mm512_permutexvar_ps(_mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4), d8);
    if (kind == K_Q2) {
        const __m256i bs = _mm256_loadu_si256(
            (const __m256i *)(const void *)(a->bs + (size_t)i * a->bs_stride + (size_t)sb * 16));
        const __m512 dj = _mm512_permutexvar_ps(_mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0), d8);
        o->xb = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(bs)), dj);
        o->ia = o->ib = _mm512_setzero_si512();
    } else {
        const __m512i off = _mm512_set1_epi8(124);
        const __m512i sa = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), off, o->x[0]), off, o->x[1]);
        const __m512i sb2 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), off, o->x[2]), off, o->x[3]);
        o->ia = _mm512_sub_epi32(_mm512_setzero_si512(), sa);
        o->ib = _mm512_sub_epi32(_mm512_setzero_si512(), sb2);
        o->xb = _mm512_setzero_ps();
    }
}

INLINE void tile(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x, int64_t i0,
                 float *y, size_t ldy) {
    const size_t bsz = kind == K_Q2 ? sizeof(kiln_block_q2_k) : sizeof(kiln_block_q3_k);
    __m512 acc[KILN_MR][KILN_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
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
            xblock xb;
            load_x(kind, x, i0 + c, sb, &xb);
            UNROLL for (int r = 0; r < NR; r++) {
                __m512i ia = _mm512_dpbusd_epi32(xb.ia, wb[r].w[0], xb.x[0]);
                ia = _mm512_dpbusd_epi32(ia, wb[r].w[1], xb.x[1]);
                __m512i ib = _mm512_dpbusd_epi32(xb.ib, wb[r].w[2], xb.x[2]);
                ib = _mm512_dpbusd_epi32(ib, wb[r].w[3], xb.x[3]);
                __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(ia), xb.da);
                s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ib), xb.db, s);
                acc[r][c] = _mm512_fmadd_ps(s, wb[r].d, acc[r][c]);
                if (kind == K_Q2) acc[r][c] = _mm512_fnmadd_ps(wb[r].mins, xb.xb, acc[r][c]);
            }
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = _mm512_reduce_add_ps(acc[r][c]);
}

#define CASES_NC(K, R)                                   \
    switch (nc) {                                        \
    case 1: tile(K, R, 1, k, w, ws, x, i0, y, ldy); break; \
    case 2: tile(K, R, 2, k, w, ws, x, i0, y, ldy); break; \
    case 3: tile(K, R, 3, k, w, ws, x, i0, y, ldy); break; \
    default: tile(K, R, 4, k, w, ws, x, i0, y, ldy); break; \
    }
#define DEFINE_MM(name, K)                                                                              \
    static void name(int64_t k, const void *w, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                            \
        switch (nr) {                                                                                   \
        case 1: CASES_NC(K, 1) break;                                                                   \
        case 2: CASES_NC(K, 2) break;                                                                   \
        case 3: CASES_NC(K, 3) break;                                                                   \
        default: CASES_NC(K, 4) break;                                                                  \
        }                                                                                               \
    }

DEFINE_MM(mm_q2_k, K_Q2)
DEFINE_MM(mm_q3_k, K_Q3)

void kiln_avx512_fill_klow(kiln_kernel_table *t) {
    t->mm[KILN_Q2_K] = mm_q2_k;
    t->mm[KILN_Q3_K] = mm_q3_k;
}
