/*
 * matmul_avx2.c — AVX2 + FMA + F16C matmul micro kernels.
 *
 * With 16 ymm registers a tile is computed as up to 4 weight rows x 2 inputs
 * (8 accumulators); the driver's 4-input tiles are done in two halves, which
 * changes no result since each element's arithmetic depends only on k.
 *
 * Per output element (8-lane accumulators, then a fixed horizontal sum):
 *   F32/F16/BF16: acc += w[j..j+8) * x[j..j+8) (FMA); the k % 8 tail goes through
 *     zero-padded copies. F16 via vcvtph2ps, BF16 by a 16-bit shift (both exact).
 *   Q8_0/Q4_0: per block, the "sign trick": |w| (unsigned) times x with w's sign
 *     (vpmaddubsw, pairs; cannot saturate since |w| <= 128 and |x| <= 127), then
 *     vpmaddwd with ones gives 8 exact int32 sums of 4 products, converted to float
 *     and accumulated with the block scale d_w * d_x. Q4_0 nibbles become q - 8
 *     first. The result equals the reference's integer block sums up to the float
 *     summation of the scaled partial sums.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/avx2_util.h"

#define INLINE static inline __attribute__((always_inline))
/* Tile loops must be unrolled early so the accumulator arrays become registers. */
#define UNROLL _Pragma("GCC unroll 4")
#define AVX2_MC 2

enum { K_F32, K_F16, K_BF16, K_Q8_0, K_Q4_0 };

/* ---- float weight types ------------------------------------------------------ */

/* 8 weights of a row starting at element j, as f32. */
INLINE __m256 load_wf(int kind, const uint8_t *row, int64_t j) {
    switch (kind) {
    case K_F32: return _mm256_loadu_ps((const float *)(const void *)(row + 4 * j));
    case K_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(row + 2 * j)));
    default:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(row + 2 * j))), 16));
    }
}

/* The last k - j (< 8) weights of a row as f32, zero-padded to 8. */
INLINE __m256 load_wf_tail(int kind, const uint8_t *row, int64_t j, int64_t k) {
    uint8_t buf[32] = {0};
    const int es = kind == K_F32 ? 4 : 2;
    memcpy(buf, row + (size_t)es * (size_t)j, (size_t)(es * (k - j)));
    return load_wf(kind, buf, 0);
}

INLINE void tile_float(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const float *x, size_t xs,
                       float *y, size_t ldy) {
    __m256 acc[KILN_MR][AVX2_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256 xv[AVX2_MC];
        UNROLL for (int c = 0; c < NC; c++) xv[c] = _mm256_loadu_ps(x + (size_t)c * xs + j);
        UNROLL for (int r = 0; r < NR; r++) {
            const __m256 wv = load_wf(kind, w + (size_t)r * ws, j);
            UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
        }
    }
    if (j < k) {
        __m256 xv[AVX2_MC];
        UNROLL for (int c = 0; c < NC; c++) {
            float buf[8] = {0};
            memcpy(buf, x + (size_t)c * xs + j, (size_t)(k - j) * sizeof(float));
            xv[c] = _mm256_loadu_ps(buf);
        }
        UNROLL for (int r = 0; r < NR; r++) {
            const __m256 wv = load_wf_tail(kind, w + (size_t)r * ws, j, k);
            UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = hsum8(acc[r][c]);
}

/* ---- Q8_0 / Q4_0 weights x Q8_0 activations --------------------------------- */

/* The 32 signed quants of block b of a row (Q4_0: q - 8) and its scale. */
INLINE __m256i load_wq(int kind, const uint8_t *row, int64_t b, float *d) {
    if (kind == K_Q8_0) {
        const uint8_t *p = row + (size_t)b * sizeof(kiln_block_q8_0);
        *d = half_at(p);
        return _mm256_loadu_si256((const __m256i *)(const void *)(p + 2));
    } else {
        const uint8_t *p = row + (size_t)b * sizeof(kiln_block_q4_0);
        *d = half_at(p);
        const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
        const __m128i m = _mm_set1_epi8(0x0f);
        const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
        return _mm256_sub_epi8(u, _mm256_set1_epi8(8));
    }
}

INLINE void tile_quant(int kind, int NR, int NC, int64_t k, const uint8_t *w, size_t ws, const kiln_act *x,
                       int64_t i0, float *y, size_t ldy) {
    const int64_t nb = k / KILN_QK8_0;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[KILN_MR][AVX2_MC];
    UNROLL for (int r = 0; r < NR; r++)
        UNROLL for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[AVX2_MC];
        float dx[AVX2_MC];
        UNROLL for (int c = 0; c < NC; c++) {
            xv[c] = _mm256_load_si256(
                (const __m256i *)(const void *)(x->qs + (size_t)(i0 + c) * x->qs_stride + (size_t)b * KILN_QK8_0));
            dx[c] = x->d[(size_t)(i0 + c) * x->d_stride + (size_t)b];
        }
        UNROLL for (int r = 0; r < NR; r++) {
            float dw;
            const __m256i wq = load_wq(kind, w + (size_t)r * ws, b, &dw);
            const __m256i aw = _mm256_sign_epi8(wq, wq);
            UNROLL for (int c = 0; c < NC; c++) {
                const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[c], wq));
                const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                acc[r][c] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * dx[c]), acc[r][c]);
            }
        }
    }
    UNROLL for (int c = 0; c < NC; c++)
        UNROLL for (int r = 0; r < NR; r++) y[(size_t)c * ldy + (size_t)r] = hsum8(acc[r][c]);
}

/* ---- instantiation per tile shape ------------------------------------------- */

#define CASES_NC(CALL, K, R, NCC)          \
    switch (NCC) {                         \
    case 1: CALL(K, R, 1); break;          \
    default: CALL(K, R, 2); break;         \
    }
#define CASES(CALL, K, NCC)                     \
    switch (nr) {                               \
    case 1: CASES_NC(CALL, K, 1, NCC); break;   \
    case 2: CASES_NC(CALL, K, 2, NCC); break;   \
    case 3: CASES_NC(CALL, K, 3, NCC); break;   \
    default: CASES_NC(CALL, K, 4, NCC); break;  \
    }
#define CALL_F(K, R, C) \
    tile_float(K, R, C, k, w, ws, x->f + (size_t)(i0 + c0) * x->f_stride, x->f_stride, y + (size_t)c0 * ldy, ldy)
#define CALL_Q(K, R, C) tile_quant(K, R, C, k, w, ws, x, i0 + c0, y + (size_t)c0 * ldy, ldy)

/* One kiln_mm_fn per weight type: the inputs in pairs, nr selecting the rows. */
#define DEFINE_MM(name, CALL, K)                                                                        \
    static void name(int64_t k, const void *w, size_t ws, int nr, const kiln_act *x, int64_t i0, int nc, \
                     float *y, size_t ldy) {                                                            \
        for (int c0 = 0; c0 < nc; c0 += AVX2_MC) {                                                      \
            const int ncc = nc - c0 < AVX2_MC ? nc - c0 : AVX2_MC;                                      \
            CASES(CALL, K, ncc)                                                                         \
        }                                                                                               \
    }

DEFINE_MM(mm_f32, CALL_F, K_F32)
DEFINE_MM(mm_f16, CALL_F, K_F16)
DEFINE_MM(mm_bf16, CALL_F, K_BF16)
DEFINE_MM(mm_q8_0, CALL_Q, K_Q8_0)
DEFINE_MM(mm_q4_0, CALL_Q, K_Q4_0)

/* ---- activation quantization -------------------------------------------------- */

/* roundf(v) (halves away from zero) clamped to [-128, 127], NaN -> 0, for 8 lanes, as
 * 32-bit integers: truncate, then step away from zero where the dropped fraction is
 * >= 0.5 (v - trunc(v) is exact). Matches quant_ref.c's to_q8 lane for lane. */
static inline __m256i round_q8(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sign));
    __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, one));
    r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
    r = _mm256_and_ps(r, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    return _mm256_cvttps_epi32(r);
}

/* kiln_quant_act_fn, bit-exact with kiln_ref_quant_act: the scale comes from the same
 * scalar operations, the quants from the same IEEE product. */
static void quant_act(const float *x, int8_t *qs, float *d, int64_t k) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < k / KILN_QK8_0; b++) {
        const float *v = x + b * KILN_QK8_0;
        __m256 vv[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            vv[i] = _mm256_loadu_ps(v + 8 * i);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, vv[i]));
        }
        const float amax = hmax8(m);
        const float dd = amax / 127.0f;
        const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
        d[b] = kiln_fp16_to_f32(kiln_f32_to_fp16(dd));
        const __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++) q[i] = round_q8(_mm256_mul_ps(vv[i], idv));
        /* packs interleave 128-bit lanes: undo it with one dword permute */
        const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
        const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        _mm256_storeu_si256((__m256i *)(void *)(qs + b * KILN_QK8_0),
                            _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}

void kiln_kernels_fill_avx2(kiln_kernel_table *t) {
    t->name = "avx2";
    t->mm[KILN_F32] = mm_f32;
    t->mm[KILN_F16] = mm_f16;
    t->mm[KILN_BF16] = mm_bf16;
    t->mm[KILN_Q8_0] = mm_q8_0;
    t->mm[KILN_Q4_0] = mm_q4_0;
    kiln_avx2_fill_legacy(t);
    kiln_avx2_fill_kquants(t);
    kiln_avx2_fill_klow(t);
    kiln_avx2_fill_pack(t);
    t->quant_act = quant_act;
    kiln_avx2_fill_ops(t);
}
