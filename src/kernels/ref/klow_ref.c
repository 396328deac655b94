/*
 * klow_ref.c — the ref level of the low-bit K-quant types (Q2_K, Q3_K): row
 * dequantization, row quantization and the matmul micro kernels.
 *
 * Both types hold super-blocks of 256 weights in 16 sub-blocks of 16. Element e of
 * a super-block (sub-block e/16) keeps its 2 low bits in
 *     qs[32*(e/128) + e%32] >> 2*((e%128)/32)
 * (the 32 bytes of each half carry four consecutive runs of 32 elements, one per
 * bit pair). Then
 *   Q2_K: x = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4), q in 0..3;
 *   Q3_K: x = d * (sc6[j] - 32) * (q - (hmask[e%32] >> e/32 & 1 ? 0 : 4)), where
 *         sc6[j] is 6 bits: the low nibble is byte j (j < 8) or the high nibble of
 *         byte j-8 (j >= 8), the top two bits are bits 2*(j/4) of byte 8 + j%4.
 * Dequantization is bit-exact with llama.cpp's dequantize_row_q2_K / _q3_K (same
 * float operations in the same order).
 *
 * Quantization follows llama.cpp's reference quantizers (quantize_row_q2_K_ref with
 * its weighted min/scale search, make_qkx2_quants; quantize_row_q3_K_ref with its
 * iterative search, make_q3_quants), written here from the algorithm with the same
 * float operations in the same order, so finite input gives the same bytes. Only
 * where llama.cpp's nearest_int leaves its valid range (|v| > 4194303, NaN) are the
 * results here defined by saturation instead.
 *
 * Micro kernels (the definition the SIMD variants are tested against): per
 * activation block b of 32 (two sub-blocks j = 2b, 2b+1 sharing the scale d_x[b]),
 * the exact integers
 *   Q2_K: sumi = sum_j sc_j * sum(q * q_x), summ = sum_j m_j * bs[j];
 *         sum += d_x[b] * (d * (float)sumi - dmin * (float)summ)
 *   Q3_K: sumi = sum_j (sc6_j - 32) * sum(q3 * q_x);  sum += (float)sumi * (d * d_x[b])
 * over b in order, in f32. bs[j] (the driver's exact sum of sub-block j's 16
 * activation quants) makes Q2_K's minimum cost one multiply per sub-block.
 */
#include <math.h>
#include <string.h>

#include "kernels/ref/kquant_fit.h"

#include "kernels/kernels_impl.h"
#include "kernels/ref/kquant_fit.h"

#define QK KILN_QK_K

/* ---- shared helpers -------------------------------------------------------------- */

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* The 2 low bits of element e of a super-block. */
static int low2(const uint8_t *qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

/* Packs 256 values in 0..3 (element order) into qs. */
static void pack2(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | p[32] << 2 | p[64] << 4 | p[96] << 6);
        }
}

/* The 6-bit scale of sub-block j of a Q3_K block (0..63, 32 meaning zero). */
int kiln_kq_q3_scale(const uint8_t *s, int j) {
    const int lo = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return lo | hi << 4;
}

/* ---- dequantization -------------------------------------------------------------- */

static void dequant_q2_k(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q2_k b;
        memcpy(&b, (const uint8_t *)src + (size_t)i * sizeof b, sizeof b); /* any alignment */
        const float d = kiln_fp16_to_f32(b.d), dmin = kiln_fp16_to_f32(b.dmin);
        float *y = dst + i * QK;
        for (int j = 0; j < 16; j++) {
            const float dl = d * (float)(b.scales[j] & 0x0f), ml = dmin * (float)(b.scales[j] >> 4);
            for (int e = 16 * j; e < 16 * j + 16; e++) y[e] = dl * (float)low2(b.qs, e) - ml;
        }
    }
}

static void dequant_q3_k(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q3_k b;
        memcpy(&b, (const uint8_t *)src + (size_t)i * sizeof b, sizeof b);
        const float d = kiln_fp16_to_f32(b.d);
        float *y = dst + i * QK;
        for (int j = 0; j < 16; j++) {
            const float dl = d * (float)(kiln_kq_q3_scale(b.scales, j) - 32);
            for (int e = 16 * j; e < 16 * j + 16; e++) {
                const int q = low2(b.qs, e) - ((b.hmask[e % 32] >> (e / 32)) & 1 ? 0 : 4);
                y[e] = dl * (float)q;
            }
        }
    }
}

/* ---- Q2_K quantization ------------------------------------------------------------ */


static void quantize_block_q2_k(const float *x, kiln_block_q2_k *y) {
    uint8_t L[QK];
    float w[16], scales[16], mins[16];
    float max_scale = 0, max_min = 0; /* scales and -mins are >= 0 */
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
        scales[j] = kiln_kq_fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    /* 4-bit scales and mins relative to the largest of each */
    if (max_scale > 0) {
        const float iscale = 15.0f / max_scale;
        for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)kiln_kq_nearest(iscale * scales[j]);
        y->d = kiln_f32_to_fp16(max_scale / 15.0f);
    } else {
        memset(y->scales, 0, 16);
        y->d = kiln_f32_to_fp16(0.0f);
    }
    if (max_min > 0) {
        const float iscale = 15.0f / max_min;
        for (int j = 0; j < 16; j++) y->scales[j] |= (uint8_t)(kiln_kq_nearest(iscale * mins[j]) << 4);
        y->dmin = kiln_f32_to_fp16(max_min / 15.0f);
    } else {
        y->dmin = kiln_f32_to_fp16(0.0f);
    }
    /* requantize with the scales as stored (a zero scale keeps the fit's quants) */
    for (int j = 0; j < 16; j++) {
        const float d = kiln_fp16_to_f32(y->d) * (float)(y->scales[j] & 0x0f);
        if (d == 0.0f) continue;
        const float dm = kiln_fp16_to_f32(y->dmin) * (float)(y->scales[j] >> 4);
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)imax(0, imin(3, kiln_kq_nearest((x[16 * j + l] + dm) / d)));
    }
    pack2(L, y->qs);
}

/* ---- Q3_K quantization ------------------------------------------------------------ */

/*
 * Symmetric scale of n values with quants in -nmax..nmax-1 (stored as L + nmax),
 * weights x²: start from round(x * -nmax / max) (max the value of largest
 * magnitude), then up to 5 passes that move single quants to their optimum under
 * the others' least-squares scale while that lowers the error. Returns the scale.
 * llama.cpp's make_q3_quants with do_rmse, same operations in the same order.
 */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) { /* ggml's GROUP_MAX_EPS: all zero */
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -(float)nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, kiln_kq_nearest(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            const int nl = imax(-nmax, imin(nmax - 1, kiln_kq_nearest(x[i] * sl2 / slx)));
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

static void quantize_block_q3_k(const float *x, kiln_block_q3_k *y) {
    int8_t L[QK];
    float scales[16];
    float max_scale = 0, amax = 0; /* the scale of largest magnitude, with its sign */
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_scale_sym(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(y->scales, 0, 12);
    if (max_scale != 0.0f) {
        const float iscale = -32.0f / max_scale;
        for (int j = 0; j < 16; j++) {
            /* ggml stores nearest_int in an int8_t; |iscale * scale| <= 32 here */
            const int l = imax(-32, imin(31, (int8_t)kiln_kq_nearest(iscale * scales[j]))) + 32;
            if (j < 8)
                y->scales[j] = (uint8_t)(l & 0x0f);
            else
                y->scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
            y->scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        y->d = kiln_f32_to_fp16(1 / iscale);
    } else {
        y->d = kiln_f32_to_fp16(0.0f);
    }
    /* requantize with the stored scales (a zero scale keeps the fit's quants) */
    for (int j = 0; j < 16; j++) {
        const float d = kiln_fp16_to_f32(y->d) * (float)(kiln_kq_q3_scale(y->scales, j) - 32);
        if (d == 0.0f) continue;
        for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(imax(-4, imin(3, kiln_kq_nearest(x[16 * j + l] / d))) + 4);
    }
    /* high bit of element e to bit e/32 of hmask[e%32]; the 2 low bits to qs */
    uint8_t low[QK];
    memset(y->hmask, 0, 32);
    for (int e = 0; e < QK; e++) {
        if (L[e] > 3) y->hmask[e % 32] |= (uint8_t)(1u << (e / 32));
        low[e] = (uint8_t)(L[e] & 3);
    }
    pack2(low, y->qs);
}

static void quant_q2_k(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q2_k b;
        quantize_block_q2_k(src + i * QK, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof b, &b, sizeof b);
    }
}

static void quant_q3_k(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q3_k b;
        quantize_block_q3_k(src + i * QK, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof b, &b, sizeof b);
    }
}

/* ---- micro kernels ------------------------------------------------------------------ */

static float dot_q2_k(int64_t k, const uint8_t *w, const int8_t *xq, const float *xd, const int16_t *bs) {
    float sum = 0.0f;
    for (int64_t i = 0; i < k / QK; i++) {
        kiln_block_q2_k b;
        memcpy(&b, w + (size_t)i * sizeof b, sizeof b);
        const float d = kiln_fp16_to_f32(b.d), dmin = kiln_fp16_to_f32(b.dmin);
        const int8_t *q = xq + i * QK;
        for (int blk = 0; blk < 8; blk++) {
            int32_t sumi = 0, summ = 0;
            for (int j = 2 * blk; j < 2 * blk + 2; j++) {
                int32_t s = 0;
                for (int e = 16 * j; e < 16 * j + 16; e++) s += low2(b.qs, e) * q[e];
                sumi += (b.scales[j] & 0x0f) * s;
                summ += (b.scales[j] >> 4) * bs[i * 16 + j];
            }
            sum += xd[i * 8 + blk] * (d * (float)sumi - dmin * (float)summ);
        }
    }
    return sum;
}

static float dot_q3_k(int64_t k, const uint8_t *w, const int8_t *xq, const float *xd) {
    float sum = 0.0f;
    for (int64_t i = 0; i < k / QK; i++) {
        kiln_block_q3_k b;
        memcpy(&b, w + (size_t)i * sizeof b, sizeof b);
        const float d = kiln_fp16_to_f32(b.d);
        const int8_t *q = xq + i * QK;
        for (int blk = 0; blk < 8; blk++) {
            int32_t sumi = 0;
            for (int j = 2 * blk; j < 2 * blk + 2; j++) {
                int32_t s = 0;
                for (int e = 16 * j; e < 16 * j + 16; e++) {
                    const int v = low2(b.qs, e) - ((b.hmask[e % 32] >> (e / 32)) & 1 ? 0 : 4);
                    s += v * q[e];
                }
                sumi += (kiln_kq_q3_scale(b.scales, j) - 32) * s;
            }
            sum += (float)sumi * (d * xd[i * 8 + blk]);
        }
    }
    return sum;
}

static void mm_q2_k(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++) {
            const int64_t i = i0 + c;
            y[(size_t)c * ldy + (size_t)r] =
                dot_q2_k(k, (const uint8_t *)w + (size_t)r * w_stride, x->qs + (size_t)i * x->qs_stride,
                         x->d + (size_t)i * x->d_stride, x->bs + (size_t)i * x->bs_stride);
        }
}

static void mm_q3_k(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++) {
            const int64_t i = i0 + c;
            y[(size_t)c * ldy + (size_t)r] = dot_q3_k(k, (const uint8_t *)w + (size_t)r * w_stride,
                                                      x->qs + (size_t)i * x->qs_stride, x->d + (size_t)i * x->d_stride);
        }
}

void kiln_ref_fill_klow(kiln_kernel_table *t) {
    t->dequant[KILN_Q2_K] = dequant_q2_k;
    t->dequant[KILN_Q3_K] = dequant_q3_k;
    t->quant[KILN_Q2_K] = quant_q2_k;
    t->quant[KILN_Q3_K] = quant_q3_k;
    t->mm[KILN_Q2_K] = mm_q2_k;
    t->mm[KILN_Q3_K] = mm_q3_k;
}
