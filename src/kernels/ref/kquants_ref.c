/*
 * kquants_ref.c — the reference level of the K-quant weight types Q4_K, Q5_K, Q6_K
 * (super-blocks of 256 elements; the Q4_K_M / Q5_K_M files are mixtures of them).
 *
 * Layouts (tensor/dtype.h, bit-exact with GGUF):
 *   Q4_K/Q5_K: 8 sub-blocks of 32. A 6-bit scale sc_j and a 6-bit minimum m_j per
 *     sub-block packed in 12 bytes: bytes 0..3 hold sc_0..3 (low 6 bits), bytes 4..7
 *     m_0..3; bytes 8..11 hold the low nibbles of sc_4..7 (low half) and m_4..7 (high
 *     half), whose two high bits sit in the top two bits of bytes 0..3 (sc) and 4..7
 *     (m). x = d*sc_j*q - dmin*m_j. The 128 bytes of qs hold 64 elements per 32
 *     bytes: byte l of chunk c is element l of sub-block 2c (low nibble) and of
 *     sub-block 2c+1 (high nibble). Q5_K adds bit 2c (resp. 2c+1) of qh[l] as the
 *     fifth bit (value 16).
 *   Q6_K: 16 sub-blocks of 16 with int8 scales, x = d*sc*(q - 32), q 6 bits. Per half
 *     of 128 elements (64 bytes of ql, 32 of qh): element l + 32*i (i = 0..3) has its
 *     low 4 bits in ql[l] (i = 0 low, i = 2 high nibble) or ql[l + 32] (i = 1, 3) and
 *     its high 2 bits in bits 2i, 2i+1 of qh[l].
 *
 * Quantization follows llama.cpp's reference quantizers (quantize_row_q4_K_ref,
 * _q5_K_ref, _q6_K_ref), operation for operation in f32, so that rows get the same
 * bytes: per sub-block a weighted least-squares fit of scale and minimum over a grid
 * of candidate scales (Q4_K/Q5_K: weights sqrt(mean x^2) + |x|), or of a symmetric
 * scale (Q6_K: weights x^2, 19 candidates around nmax/max); then the sub-block
 * scales are themselves quantized to 6 (Q4_K/Q5_K) or 8 (Q6_K) bits and the
 * elements re-quantized against the stored scales. Rounding is to nearest, ties to
 * even (ggml's nearest_int). Non-finite input, undefined in llama.cpp, gives defined
 * (clamped) quants here.
 *
 * Micro kernels dot a weight row with the Q8_0 activations (kernels_impl.h). Q4_K/Q5_K
 * sub-blocks match the activation blocks, so per sub-block j of super-block b
 * (activation block 8b + j, scale dx):
 *   isum = sum of q*xq (exact int), bsum = bs[2j] + bs[2j+1] (exact)
 *   sum += (float)(sc*isum) * (d*dx) - (float)(m*bsum) * (dmin*dx)
 * with both integer products exact in f32 (|sc*isum| < 2^22, |m*bsum| < 2^18).
 * Q6_K: two sub-blocks share an activation block g:
 *   s = sc_2g * isum_2g + sc_2g+1 * isum_2g+1 (exact int), sum += (float)s * (d*dx).
 * Super-blocks and sub-blocks are summed in order; the SIMD levels compute the same
 * exact integer parts and differ only in the float summation order.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/ref/kquant_fit.h"


/* ---- 6-bit scale/min packing (Q4_K, Q5_K) ------------------------------------- */

static void pack_scales(const uint8_t *sc, const uint8_t *m, uint8_t *s) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
    }
}

/* ---- quantization --------------------------------------------------------------- */

/*
 * Symmetric fit x ~ scale * (L - nmax), L in 0..2*nmax-1, weights x^2: the scale
 * -nmax/max (max the signed value of largest magnitude) and 18 neighbours
 * -(nmax + 0.1*is)/max, each refined by least squares, keeping the best (llama.cpp's
 * make_qx_quants with rmse_type 1 and no importance weights).
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
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = kiln_kq_nearest(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = kiln_kq_nearest(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = kiln_kq_nearest(iscale * x[i]);
                l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
                L[i] = (int8_t)(l + nmax);
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q4_K (nmax 15) and Q5_K (nmax 31): levels L[256] and the header of one super-block
 * (d, dmin, the 12 scale bytes) from 256 floats. */
static void quant_kx_block(const float *x, int nmax, uint8_t *L, uint16_t *dh, uint16_t *dminh, uint8_t *packed) {
    const float rmin = nmax == 15 ? -1.0f : -0.5f;
    const int nstep = nmax == 15 ? 20 : 15;
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        scales[j] = kiln_kq_fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        /* as ggml: the int goes through uint8_t (wrapping) before the cap at 63 */
        const uint8_t ls = (uint8_t)kiln_kq_nearest(inv_scale * scales[j]);
        const uint8_t lm = (uint8_t)kiln_kq_nearest(inv_min * mins[j]);
        sc[j] = ls < 63 ? ls : 63;
        m[j] = lm < 63 ? lm : 63;
    }
    pack_scales(sc, m, packed);
    *dh = kiln_f32_to_fp16(max_scale / 63.0f);
    *dminh = kiln_f32_to_fp16(max_min / 63.0f);
    const float d = kiln_fp16_to_f32(*dh), dmin = kiln_fp16_to_f32(*dminh);
    for (int j = 0; j < 8; j++) {
        const float ds = d * sc[j];
        if (ds == 0.0f) continue; /* keeps the levels of the fit */
        const float dm = dmin * m[j];
        for (int l = 0; l < 32; l++) {
            const int q = kiln_kq_nearest((x[32 * j + l] + dm) / ds);
            L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > nmax ? nmax : q);
        }
    }
}

static void quant_q4_k(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / KILN_QK_K; i++) {
        const float *x = src + i * KILN_QK_K;
        uint8_t L[KILN_QK_K];
        kiln_block_q4_k b;
        quant_kx_block(x, 15, L, &b.d, &b.dmin, b.scales);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) b.qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

static void quant_q5_k(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / KILN_QK_K; i++) {
        const float *x = src + i * KILN_QK_K;
        uint8_t L[KILN_QK_K];
        kiln_block_q5_k b;
        quant_kx_block(x, 31, L, &b.d, &b.dmin, b.scales);
        memset(b.qh, 0, sizeof b.qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                b.qs[32 * c + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
                b.qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

static void quant_q6_k(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / KILN_QK_K; i++) {
        const float *x = src + i * KILN_QK_K;
        int8_t L[KILN_QK_K];
        float scales[16];
        float max_scale = 0, max_abs = 0;
        kiln_block_q6_k b;
        for (int s = 0; s < 16; s++) {
            scales[s] = fit_scale_sym(16, 32, x + 16 * s, L + 16 * s);
            if (fabsf(scales[s]) > max_abs) {
                max_abs = fabsf(scales[s]);
                max_scale = scales[s];
            }
        }
        memset(&b, 0, sizeof b);
        if (!(max_abs < 1e-15f)) {
            const float iscale = -128.0f / max_scale;
            b.d = kiln_f32_to_fp16(1 / iscale);
            for (int s = 0; s < 16; s++) {
                const int v = kiln_kq_nearest(iscale * scales[s]);
                b.scales[s] = (int8_t)(v < 127 ? v : 127);
            }
            const float d = kiln_fp16_to_f32(b.d);
            for (int s = 0; s < 16; s++) {
                const float ds = d * b.scales[s];
                if (ds == 0.0f) continue;
                for (int l = 0; l < 16; l++) {
                    int q = kiln_kq_nearest(x[16 * s + l] / ds);
                    q = q < -32 ? -32 : q > 31 ? 31 : q;
                    L[16 * s + l] = (int8_t)(q + 32);
                }
            }
            for (int h = 0; h < 2; h++) {
                const int8_t *Lh = L + 128 * h;
                for (int l = 0; l < 32; l++) {
                    b.ql[64 * h + l] = (uint8_t)((Lh[l] & 15) | ((Lh[l + 64] & 15) << 4));
                    b.ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 15) | ((Lh[l + 96] & 15) << 4));
                    b.qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                                 ((Lh[l + 96] >> 4) << 6));
                }
            }
        }
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

/* ---- dequantization ---------------------------------------------------------------- */

/* The unsigned levels of one Q4_K / Q5_K super-block, in element order. */
static void levels_q4_k(const kiln_block_q4_k *b, uint8_t *q) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = b->qs[32 * c + l] & 15;
            q[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
        }
}

static void levels_q5_k(const kiln_block_q5_k *b, uint8_t *q) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (uint8_t)((b->qs[32 * c + l] & 15) | (((b->qh[l] >> (2 * c)) & 1) << 4));
            q[64 * c + 32 + l] = (uint8_t)((b->qs[32 * c + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4));
        }
}

/* The signed levels q - 32 of one Q6_K super-block, in element order. */
static void levels_q6_k(const kiln_block_q6_k *b, int8_t *q) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

/* y = (d*sc) * q - (dmin*m), as ggml's dequantize_row_q4_K / _q5_K. */
static void dequant_kx(const uint8_t *q, uint16_t dh, uint16_t dminh, const uint8_t *packed, float *y) {
    uint8_t sc[8], m[8];
    kiln_kq_unpack_scales(packed, sc, m);
    const float d = kiln_fp16_to_f32(dh), dmin = kiln_fp16_to_f32(dminh);
    for (int j = 0; j < 8; j++) {
        const float ds = d * sc[j], dm = dmin * m[j];
        for (int l = 0; l < 32; l++) y[32 * j + l] = ds * q[32 * j + l] - dm;
    }
}

static void dequant_q4_k(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / KILN_QK_K; i++) {
        kiln_block_q4_k b;
        memcpy(&b, (const uint8_t *)src + i * sizeof b, sizeof b);
        uint8_t q[KILN_QK_K];
        levels_q4_k(&b, q);
        dequant_kx(q, b.d, b.dmin, b.scales, dst + i * KILN_QK_K);
    }
}

static void dequant_q5_k(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / KILN_QK_K; i++) {
        kiln_block_q5_k b;
        memcpy(&b, (const uint8_t *)src + i * sizeof b, sizeof b);
        uint8_t q[KILN_QK_K];
        levels_q5_k(&b, q);
        dequant_kx(q, b.d, b.dmin, b.scales, dst + i * KILN_QK_K);
    }
}

/* y = d * sc * (q - 32), evaluated as (d*sc)*(q-32) like ggml. */
static void dequant_q6_k(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / KILN_QK_K; i++) {
        kiln_block_q6_k b;
        memcpy(&b, (const uint8_t *)src + i * sizeof b, sizeof b);
        int8_t q[KILN_QK_K];
        levels_q6_k(&b, q);
        const float d = kiln_fp16_to_f32(b.d);
        float *y = dst + i * KILN_QK_K;
        for (int e = 0; e < KILN_QK_K; e++) y[e] = d * b.scales[e / 16] * q[e];
    }
}

/* ---- micro kernels ------------------------------------------------------------------ */

/* Q4_K / Q5_K row (levels already unpacked per super-block by lev) x one Q8_0 row. */
static float dot_kx(int64_t k, const uint8_t *w, size_t bsize, int five, const int8_t *xq, const float *xd,
                    const int16_t *bs) {
    float sum = 0.0f;
    for (int64_t i = 0; i < k / KILN_QK_K; i++) {
        uint8_t q[KILN_QK_K], sc[8], m[8];
        uint16_t dh, dminh;
        if (five) {
            kiln_block_q5_k b;
            memcpy(&b, w + i * bsize, sizeof b);
            levels_q5_k(&b, q);
            kiln_kq_unpack_scales(b.scales, sc, m);
            dh = b.d, dminh = b.dmin;
        } else {
            kiln_block_q4_k b;
            memcpy(&b, w + i * bsize, sizeof b);
            levels_q4_k(&b, q);
            kiln_kq_unpack_scales(b.scales, sc, m);
            dh = b.d, dminh = b.dmin;
        }
        const float d = kiln_fp16_to_f32(dh), dmin = kiln_fp16_to_f32(dminh);
        for (int j = 0; j < 8; j++) {
            const int8_t *x = xq + i * KILN_QK_K + 32 * j;
            int32_t isum = 0;
            for (int l = 0; l < 32; l++) isum += (int32_t)q[32 * j + l] * x[l];
            const int32_t bsum = bs[16 * i + 2 * j] + bs[16 * i + 2 * j + 1];
            const float dx = xd[8 * i + j];
            sum += (float)(sc[j] * isum) * (d * dx) - (float)(m[j] * bsum) * (dmin * dx);
        }
    }
    return sum;
}

static float dot_q6_k(int64_t k, const uint8_t *w, const int8_t *xq, const float *xd) {
    float sum = 0.0f;
    for (int64_t i = 0; i < k / KILN_QK_K; i++) {
        kiln_block_q6_k b;
        memcpy(&b, w + i * sizeof b, sizeof b);
        int8_t q[KILN_QK_K];
        levels_q6_k(&b, q);
        const float d = kiln_fp16_to_f32(b.d);
        for (int g = 0; g < 8; g++) {
            const int8_t *x = xq + i * KILN_QK_K + 32 * g;
            int32_t s0 = 0, s1 = 0;
            for (int l = 0; l < 16; l++) {
                s0 += (int32_t)q[32 * g + l] * x[l];
                s1 += (int32_t)q[32 * g + 16 + l] * x[16 + l];
            }
            const int32_t s = b.scales[2 * g] * s0 + b.scales[2 * g + 1] * s1;
            sum += (float)s * (d * xd[8 * i + g]);
        }
    }
    return sum;
}

#define TILE_LOOP(expr)                                                     \
    for (int c = 0; c < nc; c++)                                            \
        for (int r = 0; r < nr; r++) {                                      \
            const uint8_t *wr = (const uint8_t *)w + (size_t)r * w_stride;  \
            const int64_t i = i0 + c;                                       \
            const int8_t *xq = x->qs + (size_t)i * x->qs_stride;            \
            const float *xd = x->d + (size_t)i * x->d_stride;               \
            y[(size_t)c * ldy + (size_t)r] = (expr);                        \
        }

static void mm_q4_k(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    TILE_LOOP(dot_kx(k, wr, sizeof(kiln_block_q4_k), 0, xq, xd, x->bs + (size_t)i * x->bs_stride))
}

static void mm_q5_k(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    TILE_LOOP(dot_kx(k, wr, sizeof(kiln_block_q5_k), 1, xq, xd, x->bs + (size_t)i * x->bs_stride))
}

static void mm_q6_k(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    TILE_LOOP(dot_q6_k(k, wr, xq, xd))
}

void kiln_ref_fill_kquants(kiln_kernel_table *t) {
    t->mm[KILN_Q4_K] = mm_q4_k;
    t->mm[KILN_Q5_K] = mm_q5_k;
    t->mm[KILN_Q6_K] = mm_q6_k;
    t->dequant[KILN_Q4_K] = dequant_q4_k;
    t->dequant[KILN_Q5_K] = dequant_q5_k;
    t->dequant[KILN_Q6_K] = dequant_q6_k;
    t->quant[KILN_Q4_K] = quant_q4_k;
    t->quant[KILN_Q5_K] = quant_q5_k;
    t->quant[KILN_Q6_K] = quant_q6_k;
}
