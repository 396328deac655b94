/*
 * quant_ref.c — row conversions between f32 and the stored types (F16, BF16, Q8_0,
 * Q4_0), and the reference quantization of matmul activations.
 *
 * The quantizers follow llama.cpp's reference ones (quantize_row_q8_0_ref,
 * quantize_row_q4_0_ref) operation for operation, so a row quantized here has the
 * same bytes as one written by llama.cpp's tools. The only departure is for inputs
 * that are not finite (NaN, inf), where the C conversion in llama.cpp is undefined
 * behaviour; here such values give defined, clamped quants.
 */
#include <math.h>
#include <string.h>

#include "base/status.h"
#include "kernels/kernels_impl.h"

/* round(v) clamped to int8, NaN -> 0 (roundf rounds halves away from zero, as ggml). */
static int8_t to_q8(float v) {
    if (!(v == v)) return 0;
    float r = roundf(v);
    if (r > 127.0f) return 127;
    if (r < -128.0f) return -128;
    return (int8_t)r;
}

/* ggml's MIN(15, (int8_t)(v)) for v = x/d + 8.5: truncation toward zero, which for
 * finite input lies in [0, 16]; clamped to [0, 15] so other input stays defined. */
static uint8_t to_q4(float v) {
    if (!(v > 0.0f)) return 0;
    if (v >= 15.0f) return 15;
    return (uint8_t)(int)v;
}

uint16_t kiln_ref_quant_block_q8_0(const float *x, int8_t *q) {
    float amax = 0.0f;
    for (int j = 0; j < KILN_QK8_0; j++) {
        float a = fabsf(x[j]);
        amax = amax > a ? amax : a; /* ggml's MAX(amax, fabsf(v)) */
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < KILN_QK8_0; j++) q[j] = to_q8(x[j] * id);
    return kiln_f32_to_fp16(d);
}

static void quantize_q8_0(const float *x, kiln_block_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        kiln_block_q8_0 b;
        b.d = kiln_ref_quant_block_q8_0(x + i * KILN_QK8_0, b.qs);
        memcpy(&y[i], &b, sizeof b);
    }
}

static void quantize_q4_0(const float *x, kiln_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float *v = x + i * KILN_QK4_0;
        /* The value of largest magnitude, with its sign (the first one on ties). */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < KILN_QK4_0; j++) {
            if (amax < fabsf(v[j])) {
                amax = fabsf(v[j]);
                max = v[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        kiln_block_q4_0 b;
        b.d = kiln_f32_to_fp16(d);
        for (int j = 0; j < KILN_QK4_0 / 2; j++) {
            uint8_t lo = to_q4(v[j] * id + 8.5f);
            uint8_t hi = to_q4(v[j + KILN_QK4_0 / 2] * id + 8.5f);
            b.qs[j] = (uint8_t)(lo | (hi << 4));
        }
        memcpy(&y[i], &b, sizeof b);
    }
}

static void dequantize_q8_0(const kiln_block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        kiln_block_q8_0 b;
        memcpy(&b, &x[i], sizeof b); /* weights may sit at any byte offset in a file */
        const float d = kiln_fp16_to_f32(b.d);
        for (int j = 0; j < KILN_QK8_0; j++) y[i * KILN_QK8_0 + j] = (float)b.qs[j] * d;
    }
}

static void dequantize_q4_0(const kiln_block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        kiln_block_q4_0 b;
        memcpy(&b, &x[i], sizeof b);
        const float d = kiln_fp16_to_f32(b.d);
        float *o = y + i * KILN_QK4_0;
        for (int j = 0; j < KILN_QK4_0 / 2; j++) {
            o[j] = (float)((b.qs[j] & 0x0f) - 8) * d;
            o[j + KILN_QK4_0 / 2] = (float)((b.qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_f32(const void *src, float *dst, int64_t n) {
    if (n) memmove(dst, src, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = kiln_fp16_to_f32(h);
    }
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = kiln_bf16_to_f32(h);
    }
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) { dequantize_q8_0(src, dst, n / KILN_QK8_0); }
static void dequant_q4_0(const void *src, float *dst, int64_t n) { dequantize_q4_0(src, dst, n / KILN_QK4_0); }

static void quant_f32(const float *src, void *dst, int64_t n) {
    if (n) memmove(dst, src, (size_t)n * sizeof(float));
}

static void quant_f16(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = kiln_f32_to_fp16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

static void quant_bf16(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = kiln_f32_to_bf16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

static void quant_q8_0(const float *src, void *dst, int64_t n) { quantize_q8_0(src, dst, n / KILN_QK8_0); }
static void quant_q4_0(const float *src, void *dst, int64_t n) { quantize_q4_0(src, dst, n / KILN_QK4_0); }

/* Rows as int8 with a scale per 32 elements, exactly (row_q8 of kernels_impl.h). */
static void row_q8_q8_0(const void *row, int64_t k, int8_t *q, float *d, float *m) {
    (void)m;
    const kiln_block_q8_0 *b = row;
    for (int64_t i = 0; i < k / KILN_QK8_0; i++) {
        kiln_block_q8_0 blk;
        memcpy(&blk, b + i, sizeof blk);
        d[i] = kiln_fp16_to_f32(blk.d);
        memcpy(q + i * KILN_QK8_0, blk.qs, KILN_QK8_0);
    }
}

static void row_q8_q4_0(const void *row, int64_t k, int8_t *q, float *d, float *m) {
    (void)m;
    const kiln_block_q4_0 *b = row;
    for (int64_t i = 0; i < k / KILN_QK4_0; i++) {
        kiln_block_q4_0 blk;
        memcpy(&blk, b + i, sizeof blk);
        d[i] = kiln_fp16_to_f32(blk.d);
        for (int j = 0; j < KILN_QK4_0 / 2; j++) {
            q[i * KILN_QK4_0 + j] = (int8_t)((blk.qs[j] & 0x0f) - 8);
            q[i * KILN_QK4_0 + j + KILN_QK4_0 / 2] = (int8_t)((blk.qs[j] >> 4) - 8);
        }
    }
}

void kiln_ref_fill_conversions(kiln_kernel_table *t) {
    t->row_q8[KILN_Q8_0] = row_q8_q8_0;
    t->row_q8[KILN_Q4_0] = row_q8_q4_0;
    t->dequant[KILN_F32] = dequant_f32;
    t->dequant[KILN_F16] = dequant_f16;
    t->dequant[KILN_BF16] = dequant_bf16;
    t->dequant[KILN_Q8_0] = dequant_q8_0;
    t->dequant[KILN_Q4_0] = dequant_q4_0;
    t->quant[KILN_F32] = quant_f32;
    t->quant[KILN_F16] = quant_f16;
    t->quant[KILN_BF16] = quant_bf16;
    t->quant[KILN_Q8_0] = quant_q8_0;
    t->quant[KILN_Q4_0] = quant_q4_0;
}

/* Checks n is a non-negative multiple of t's block size. */
static kiln_status check_row(kiln_dtype t, int64_t n, const char *what) {
    int bs = kiln_dtype_get(t)->block_size;
    if (n < 0 || n % bs != 0)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: %lld elements is not a multiple of the %s block size %d",
                         what, (long long)n, kiln_dtype_name(t), bs);
    return KILN_OK;
}

kiln_status kiln_dequantize_row(kiln_dtype t, const void *src, float *dst, int64_t n) {
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    if ((unsigned)t >= KILN_DTYPE_COUNT || !ref->dequant[t])
        return kiln_fail(KILN_ERR_UNSUPPORTED, "dequantize: type %s is not supported", kiln_dtype_name(t));
    kiln_status st = check_row(t, n, "dequantize");
    if (!st) ref->dequant[t](src, dst, n);
    return st;
}

kiln_status kiln_quantize_row(kiln_dtype t, const float *src, void *dst, int64_t n) {
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    if ((unsigned)t >= KILN_DTYPE_COUNT || !ref->quant[t])
        return kiln_fail(KILN_ERR_UNSUPPORTED, "quantize: type %s is not supported", kiln_dtype_name(t));
    kiln_status st = check_row(t, n, "quantize");
    if (!st) ref->quant[t](src, dst, n);
    return st;
}

/* Reference activation quantization (kiln_quant_act_fn): the same numbers as
 * quantize_q8_0, in the split layout the matmul kernels read. */
void kiln_ref_quant_act(const float *x, int8_t *qs, float *d, int64_t k) {
    for (int64_t b = 0; b < k / KILN_QK8_0; b++)
        d[b] = kiln_fp16_to_f32(kiln_ref_quant_block_q8_0(x + b * KILN_QK8_0, qs + b * KILN_QK8_0));
}
