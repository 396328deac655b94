/*
 * matmul_ref.c — reference matmul micro kernels, one per weight type.
 *
 * Each output element is one plain dot product, in the order below; this is the
 * definition the SIMD variants are tested against:
 *   F32/F16/BF16: sum += w[j] * x[j] for j = 0..k-1, in f32 (weights converted
 *                 exactly to f32 first).
 *   Q8_0/Q4_0:    per block b of 32, the exact integer sumi_b = sum of q_w * q_x
 *                 (q_w - 8 for Q4_0); then sum += (float)sumi_b * (d_w * d_x) over b,
 *                 as llama.cpp's vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0.
 */
#include <string.h>

#include "kernels/kernels_impl.h"

/* Weights are read with memcpy: a mapped file only promises the alignment its
 * header declares, which may be less than a float's. */
static float dot_f32(int64_t k, const uint8_t *w, const float *x) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; j++) {
        float v;
        memcpy(&v, w + 4 * j, 4);
        sum += v * x[j];
    }
    return sum;
}

static float dot_f16(int64_t k, const uint8_t *w, const float *x) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; j++) {
        uint16_t h;
        memcpy(&h, w + 2 * j, 2);
        sum += kiln_fp16_to_f32(h) * x[j];
    }
    return sum;
}

static float dot_bf16(int64_t k, const uint8_t *w, const float *x) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; j++) {
        uint16_t h;
        memcpy(&h, w + 2 * j, 2);
        sum += kiln_bf16_to_f32(h) * x[j];
    }
    return sum;
}

static float dot_q8_0(int64_t k, const uint8_t *w, const int8_t *xq, const float *xd) {
    float sum = 0.0f;
    for (int64_t b = 0; b < k / KILN_QK8_0; b++) {
        kiln_block_q8_0 blk;
        memcpy(&blk, w + b * sizeof blk, sizeof blk);
        const int8_t *q = xq + b * KILN_QK8_0;
        int32_t sumi = 0;
        for (int j = 0; j < KILN_QK8_0; j++) sumi += (int32_t)blk.qs[j] * q[j];
        sum += (float)sumi * (kiln_fp16_to_f32(blk.d) * xd[b]);
    }
    return sum;
}

static float dot_q4_0(int64_t k, const uint8_t *w, const int8_t *xq, const float *xd) {
    float sum = 0.0f;
    for (int64_t b = 0; b < k / KILN_QK4_0; b++) {
        kiln_block_q4_0 blk;
        memcpy(&blk, w + b * sizeof blk, sizeof blk);
        const int8_t *q = xq + b * KILN_QK4_0;
        int32_t sumi = 0;
        for (int j = 0; j < KILN_QK4_0 / 2; j++) {
            sumi += ((blk.qs[j] & 0x0f) - 8) * q[j];
            sumi += ((blk.qs[j] >> 4) - 8) * q[j + KILN_QK4_0 / 2];
        }
        sum += (float)sumi * (kiln_fp16_to_f32(blk.d) * xd[b]);
    }
    return sum;
}

/* One kiln_mm_fn per type: loops over the tile calling the dot above. */
#define TILE_LOOP(expr)                                                     \
    for (int c = 0; c < nc; c++)                                            \
        for (int r = 0; r < nr; r++) {                                      \
            const uint8_t *wr = (const uint8_t *)w + (size_t)r * w_stride;  \
            int64_t i = i0 + c;                                             \
            y[(size_t)c * ldy + (size_t)r] = (expr);                        \
        }

static void mm_f32(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                   float *y, size_t ldy) {
    TILE_LOOP(dot_f32(k, wr, x->f + (size_t)i * x->f_stride))
}

static void mm_f16(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                   float *y, size_t ldy) {
    TILE_LOOP(dot_f16(k, wr, x->f + (size_t)i * x->f_stride))
}

static void mm_bf16(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    TILE_LOOP(dot_bf16(k, wr, x->f + (size_t)i * x->f_stride))
}

static void mm_q8_0(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    TILE_LOOP(dot_q8_0(k, wr, x->qs + (size_t)i * x->qs_stride, x->d + (size_t)i * x->d_stride))
}

static void mm_q4_0(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x, int64_t i0, int nc,
                    float *y, size_t ldy) {
    TILE_LOOP(dot_q4_0(k, wr, x->qs + (size_t)i * x->qs_stride, x->d + (size_t)i * x->d_stride))
}

void kiln_kernels_fill_ref(kiln_kernel_table *t) {
    t->name = "ref";
    t->mm[KILN_F32] = mm_f32;
    t->mm[KILN_F16] = mm_f16;
    t->mm[KILN_BF16] = mm_bf16;
    t->mm[KILN_Q8_0] = mm_q8_0;
    t->mm[KILN_Q4_0] = mm_q4_0;
    kiln_ref_fill_conversions(t);
    kiln_ref_fill_legacy(t);
    kiln_ref_fill_kquants(t);
    kiln_ref_fill_klow(t);
    t->quant_act = kiln_ref_quant_act;
    t->dot = kiln_ref_dot;
    t->axpy = kiln_ref_axpy;
    t->add = kiln_ref_add;
    t->rmsnorm = kiln_ref_rmsnorm;
    t->layernorm = kiln_ref_layernorm;
    t->softmax = kiln_ref_softmax;
    t->gelu = kiln_ref_gelu;
    t->swiglu = kiln_ref_swiglu;
    t->attention = kiln_ref_attention;
    t->group_norm = kiln_ref_group_norm;
    t->silu = kiln_ref_silu;
}
