/*
 * legacy_ref.c — the ref level of the legacy quantized types Q4_1, Q5_0, Q5_1:
 * row conversions (dequantize, quantize) and the matmul micro kernels.
 *
 * Block semantics (GGUF / ggml; layouts in tensor/dtype.h), 32 elements a block:
 *   Q4_1: x = d * q + m,        q = 4 bits: element j < 16 in the low nibble of
 *                               qs[j], element j + 16 in its high nibble.
 *   Q5_0: x = d * (q - 16),     q = 5 bits: low 4 bits as Q4_1, bit 4 of element j
 *                               in bit j of qh (a little-endian uint32).
 *   Q5_1: x = d * q + m,        q = 5 bits as Q5_0.
 * d and m are fp16.
 *
 * The quantizers follow llama.cpp's reference ones (quantize_row_q4_1_ref,
 * quantize_row_q5_0_ref, quantize_row_q5_1_ref) operation for operation, in f32
 * without contraction (the build is ISO C, so -ffp-contract=off):
 *   Q4_1/Q5_1: min, max over the block; d = (max - min) / (2^bits - 1);
 *              id = d ? 1/d : 0; q = trunc((x - min) * id + 0.5)
 *              (Q4_1 then takes min(15, q)); stored d, m = fp16(d), fp16(min).
 *   Q5_0:      the value of largest magnitude with its sign (the first on ties),
 *              d = max / -16; q = min(31, trunc(x * id + 16.5)).
 * The one departure: where llama.cpp converts a float outside the integer type's
 * range (only possible for non-finite input or max - min overflowing to inf), which
 * is undefined behaviour in C, the quant here is clamped to [0, 2^bits - 1] (NaN
 * gives 0). Finite rows whose range is finite give llama.cpp's bytes.
 *
 * Micro kernels: per block b, with the activation's Q8_0 quants q_x, scale d_x and
 * the integer sum of its 32 quants S_b = bs[2b] + bs[2b+1] (kernels_impl.h):
 *   Q5_0:      sumi = sum (q_w - 16) * q_x               (exact int)
 *              sum += (float)sumi * (d_w * d_x)
 *   Q4_1/Q5_1: sumi = sum q_w * q_x                      (exact int)
 *              sum += (float)sumi * (d_w * d_x) + m_w * (d_x * (float)S_b)
 * the block terms added to sum in block order (as llama.cpp's vec_dot_q4_1_q8_1 with
 * s_x = d_x * S_b kept in f32).
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define QK 32

/* trunc(v) clamped to [0, hi], NaN -> 0: the (int8_t)/(uint8_t) conversion of
 * llama.cpp's quantizers, which for their finite arguments is in [0, hi + 1). */
static uint8_t to_quant(float v, int hi) {
    if (!(v > 0.0f)) return 0;
    if (v >= (float)hi) return (uint8_t)hi;
    return (uint8_t)(int)v;
}

/* Packs 32 quants of `bits` (4 or 5) bits: low nibbles into qs (element j and
 * j + 16 share byte j), bit 4 of element j into bit j of *qh. */
static void pack(const uint8_t q[QK], uint8_t qs[QK / 2], uint32_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + QK / 2] & 0x0f) << 4);
        h |= (uint32_t)(q[j] >> 4 & 1) << j;
        h |= (uint32_t)(q[j + QK / 2] >> 4 & 1) << (j + QK / 2);
    }
    *qh = h;
}

/* The 32 quants of a block: nibbles from qs, fifth bits from qh (0 for Q4_1). */
static void unpack(const uint8_t qs[QK / 2], uint32_t qh, uint8_t q[QK]) {
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (uint8_t)((qs[j] & 0x0f) | (qh >> j & 1) << 4);
        q[j + QK / 2] = (uint8_t)((qs[j] >> 4) | (qh >> (j + QK / 2) & 1) << 4);
    }
}

/* Q4_1 / Q5_1 (hi = 15 / 31): scale and minimum of a block and its quants. */
static void quant_block_min(const float *x, int hi, uint16_t *dh, uint16_t *mh, uint8_t q[QK]) {
    float min = 3.40282347e38f, max = -3.40282347e38f; /* FLT_MAX */
    for (int j = 0; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / (float)hi;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *dh = kiln_f32_to_fp16(d);
    *mh = kiln_f32_to_fp16(min);
    for (int j = 0; j < QK; j++) {
        const float v = (x[j] - min) * id;
        q[j] = to_quant(v + 0.5f, hi);
    }
}

static void quant_q4_1(const float *src, void *dst, int64_t n) {
    uint8_t *o = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q4_1 b;
        uint8_t q[QK];
        uint32_t qh;
        quant_block_min(src + i * QK, 15, &b.d, &b.m, q);
        pack(q, b.qs, &qh);
        memcpy(o + (size_t)i * sizeof b, &b, sizeof b);
    }
}

static void quant_q5_1(const float *src, void *dst, int64_t n) {
    uint8_t *o = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q5_1 b;
        uint8_t q[QK];
        uint32_t qh;
        quant_block_min(src + i * QK, 31, &b.d, &b.m, q);
        pack(q, b.qs, &qh);
        memcpy(b.qh, &qh, 4); /* little-endian, as GGUF (x86) */
        memcpy(o + (size_t)i * sizeof b, &b, sizeof b);
    }
}

static void quant_q5_0(const float *src, void *dst, int64_t n) {
    uint8_t *o = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        kiln_block_q5_0 b;
        uint8_t q[QK];
        uint32_t qh;
        b.d = kiln_f32_to_fp16(d);
        for (int j = 0; j < QK; j++) {
            const float v = x[j] * id;
            q[j] = to_quant(v + 16.5f, 31);
        }
        pack(q, b.qs, &qh);
        memcpy(b.qh, &qh, 4);
        memcpy(o + (size_t)i * sizeof b, &b, sizeof b);
    }
}

static void dequant_q4_1(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q4_1 b;
        memcpy(&b, s + (size_t)i * sizeof b, sizeof b); /* any byte offset in a file */
        const float d = kiln_fp16_to_f32(b.d), m = kiln_fp16_to_f32(b.m);
        uint8_t q[QK];
        unpack(b.qs, 0, q);
        for (int j = 0; j < QK; j++) dst[i * QK + j] = (float)q[j] * d + m;
    }
}

static void dequant_q5_0(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q5_0 b;
        memcpy(&b, s + (size_t)i * sizeof b, sizeof b);
        uint32_t qh;
        memcpy(&qh, b.qh, 4);
        const float d = kiln_fp16_to_f32(b.d);
        uint8_t q[QK];
        unpack(b.qs, qh, q);
        for (int j = 0; j < QK; j++) dst[i * QK + j] = (float)((int)q[j] - 16) * d;
    }
}

static void dequant_q5_1(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n / QK; i++) {
        kiln_block_q5_1 b;
        memcpy(&b, s + (size_t)i * sizeof b, sizeof b);
        uint32_t qh;
        memcpy(&qh, b.qh, 4);
        const float d = kiln_fp16_to_f32(b.d), m = kiln_fp16_to_f32(b.m);
        uint8_t q[QK];
        unpack(b.qs, qh, q);
        for (int j = 0; j < QK; j++) dst[i * QK + j] = (float)q[j] * d + m;
    }
}

/* ---- micro kernels ------------------------------------------------------------ */

/* One weight row of type t (Q4_1, Q5_0 or Q5_1) dotted with one activation row. */
static float dot_legacy(kiln_dtype t, int64_t k, const uint8_t *w, const int8_t *xq, const float *xd,
                        const int16_t *bs) {
    const size_t bsize = (size_t)kiln_dtype_get(t)->type_size;
    float sum = 0.0f;
    for (int64_t b = 0; b < k / QK; b++) {
        const uint8_t *p = w + (size_t)b * bsize;
        uint16_t dh, mh = 0;
        uint32_t qh = 0;
        const uint8_t *qs;
        memcpy(&dh, p, 2);
        if (t == KILN_Q5_0) {
            memcpy(&qh, p + 2, 4);
            qs = p + 6;
        } else {
            memcpy(&mh, p + 2, 2);
            if (t == KILN_Q5_1) memcpy(&qh, p + 4, 4);
            qs = p + (t == KILN_Q5_1 ? 8 : 4);
        }
        uint8_t q[QK];
        unpack(qs, qh, q);
        const int8_t *x = xq + b * QK;
        const int off = t == KILN_Q5_0 ? 16 : 0;
        int32_t sumi = 0;
        for (int j = 0; j < QK; j++) sumi += ((int32_t)q[j] - off) * x[j];
        const float dw = kiln_fp16_to_f32(dh), dx = xd[b];
        if (t == KILN_Q5_0) {
            sum += (float)sumi * (dw * dx);
        } else {
            const float s = (float)((int32_t)bs[2 * b] + bs[2 * b + 1]);
            sum += (float)sumi * (dw * dx) + kiln_fp16_to_f32(mh) * (dx * s);
        }
    }
    return sum;
}

static void mm_legacy(kiln_dtype t, int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x,
                      int64_t i0, int nc, float *y, size_t ldy) {
    for (int c = 0; c < nc; c++) {
        const int64_t i = i0 + c;
        const int16_t *bs = t == KILN_Q5_0 ? NULL : x->bs + (size_t)i * x->bs_stride;
        for (int r = 0; r < nr; r++)
            y[(size_t)c * ldy + (size_t)r] =
                dot_legacy(t, k, (const uint8_t *)w + (size_t)r * w_stride, x->qs + (size_t)i * x->qs_stride,
                           x->d + (size_t)i * x->d_stride, bs);
    }
}

static void mm_q4_1(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    mm_legacy(KILN_Q4_1, k, w, w_stride, nr, x, i0, nc, y, ldy);
}
static void mm_q5_0(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    mm_legacy(KILN_Q5_0, k, w, w_stride, nr, x, i0, nc, y, ldy);
}
static void mm_q5_1(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    mm_legacy(KILN_Q5_1, k, w, w_stride, nr, x, i0, nc, y, ldy);
}

/* Rows as int8 per 32-block for the packed prompt GEMM (kernels_impl.h: row_q8):
 * Q5_0 w = d * (q - 16); Q4_1 / Q5_1 w = d * q + m. Exact. */
static void row_q8_q5_0(const void *row, int64_t k, int8_t *q, float *d, float *m) {
    (void)m;
    for (int64_t b = 0; b < k / QK; b++) {
        kiln_block_q5_0 blk;
        memcpy(&blk, (const kiln_block_q5_0 *)row + b, sizeof blk);
        uint32_t qh;
        memcpy(&qh, blk.qh, 4);
        uint8_t u[QK];
        unpack(blk.qs, qh, u);
        for (int j = 0; j < QK; j++) q[b * QK + j] = (int8_t)(u[j] - 16);
        d[b] = kiln_fp16_to_f32(blk.d);
    }
}

static void row_q8_min(const void *row, int64_t k, int8_t *q, float *d, float *m, bool five) {
    for (int64_t b = 0; b < k / QK; b++) {
        uint8_t u[QK];
        uint16_t dh, mh;
        if (five) {
            kiln_block_q5_1 blk;
            memcpy(&blk, (const kiln_block_q5_1 *)row + b, sizeof blk);
            uint32_t qh;
            memcpy(&qh, blk.qh, 4);
            unpack(blk.qs, qh, u);
            dh = blk.d, mh = blk.m;
        } else {
            kiln_block_q4_1 blk;
            memcpy(&blk, (const kiln_block_q4_1 *)row + b, sizeof blk);
            unpack(blk.qs, 0, u);
            dh = blk.d, mh = blk.m;
        }
        for (int j = 0; j < QK; j++) q[b * QK + j] = (int8_t)u[j];
        d[b] = kiln_fp16_to_f32(dh);
        m[b] = kiln_fp16_to_f32(mh);
    }
}

static void row_q8_q4_1(const void *row, int64_t k, int8_t *q, float *d, float *m) {
    row_q8_min(row, k, q, d, m, false);
}

static void row_q8_q5_1(const void *row, int64_t k, int8_t *q, float *d, float *m) {
    row_q8_min(row, k, q, d, m, true);
}

void kiln_ref_fill_legacy(kiln_kernel_table *t) {
    t->row_q8[KILN_Q4_1] = row_q8_q4_1;
    t->row_q8[KILN_Q5_0] = row_q8_q5_0;
    t->row_q8[KILN_Q5_1] = row_q8_q5_1;
    t->dequant[KILN_Q4_1] = dequant_q4_1;
    t->dequant[KILN_Q5_0] = dequant_q5_0;
    t->dequant[KILN_Q5_1] = dequant_q5_1;
    t->quant[KILN_Q4_1] = quant_q4_1;
    t->quant[KILN_Q5_0] = quant_q5_0;
    t->quant[KILN_Q5_1] = quant_q5_1;
    t->mm[KILN_Q4_1] = mm_q4_1;
    t->mm[KILN_Q5_0] = mm_q5_0;
    t->mm[KILN_Q5_1] = mm_q5_1;
}
