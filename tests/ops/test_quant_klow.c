/*
 * test_quant_klow.c — Q2_K and Q3_K: hand-built blocks dequantize to the exact
 * values of the GGUF layout (4-bit scale and min nibbles, the 2-bit quant packing,
 * Q3_K's hmask and its 6-bit scales packed in 12 bytes, for all 16 sub-blocks);
 * quantize -> dequantize error bounds on random and structured rows; the reference
 * micro kernels against a double-precision dot of the dequantized operands;
 * argument errors.
 *
 * Tolerances (RMS error over RMS value, rows of uniform [-1, 1]): a uniform grid of
 * 4 levels over a sub-block's range has an RMS error of (2/3)/sqrt(12) = 0.19 of a
 * range-2 row, 0.33 of its RMS; the min/scale search brings Q2_K to 0.234
 * (measured); Q3_K's 8 levels give 0.125 (measured). The bounds are 0.26 and 0.14:
 * a wrong packing or scale gives errors near or above 1. Constants come back within
 * 1% (measured 2e-4: fp16 scales), outliers within 2% (measured 0.4%).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

#define QK KILN_QK_K

/* ---- hand-built blocks ------------------------------------------------------------ */

static void test_q2_k_layout(void) {
    kiln_block_q2_k b;
    memset(&b, 0, sizeof b);
    b.d = 0x3c00;    /* 1.0 */
    b.dmin = 0x3800; /* 0.5 */
    for (int j = 0; j < 16; j++) b.scales[j] = (uint8_t)((j + 1) % 16 | (15 - j) << 4);
    /* byte 0 of the first half: bit pairs 0..3 are elements 0, 32, 64, 96 */
    b.qs[0] = 0xe4; /* 3 2 1 0 */
    /* byte 1 of the second half, bit pair 3: element 128 + 96 + 1 = 225 */
    b.qs[33] = 0xc0;
    /* byte 31 of the second half, bit pair 1: element 128 + 32 + 31 = 191 */
    b.qs[63] = 0x08;
    float y[QK];
    CHECK_OK(kiln_dequantize_row(KILN_Q2_K, &b, y, QK));
    int q[QK] = {0};
    q[0] = 0, q[32] = 1, q[64] = 2, q[96] = 3, q[225] = 3, q[191] = 2;
    for (int e = 0; e < QK; e++) {
        const int j = e / 16;
        const float want = 1.0f * (float)((j + 1) % 16) * (float)q[e] - 0.5f * (float)(15 - j);
        CHECK_MSG(y[e] == want, "q2_k element %d: %g, want %g", e, y[e], want);
    }
    /* a zero scale nibble zeroes the quant term, the min stays */
    b.scales[2] = 0xa0; /* sub-block 2 (elements 32..47): scale 0, min 10 */
    CHECK_OK(kiln_dequantize_row(KILN_Q2_K, &b, y, QK));
    CHECK(y[32] == -5.0f && y[33] == -5.0f);
}

/* Packs 16 six-bit values the way the Q3_K layout stores them. */
static void pack_q3_scales(const int *v, uint8_t s[12]) {
    memset(s, 0, 12);
    for (int j = 0; j < 16; j++) {
        if (j < 8)
            s[j] |= (uint8_t)(v[j] & 15);
        else
            s[j - 8] |= (uint8_t)((v[j] & 15) << 4);
        s[8 + j % 4] |= (uint8_t)((v[j] >> 4) << (2 * (j / 4)));
    }
}

static void test_q3_k_layout(void) {
    kiln_block_q3_k b;
    memset(&b, 0, sizeof b);
    b.d = 0x3800; /* 0.5 */
    /* 16 distinct 6-bit scales covering 0 and 63, every high-bit pattern */
    const int v[16] = {0, 63, 32, 31, 1, 17, 48, 33, 16, 47, 5, 60, 40, 9, 24, 56};
    pack_q3_scales(v, b.scales);
    float y[QK];
    /* every quant 1 (bit pairs 01), all high bits set: x = d * (v - 32) * 1 */
    memset(b.qs, 0x55, sizeof b.qs);
    memset(b.hmask, 0xff, sizeof b.hmask);
    CHECK_OK(kiln_dequantize_row(KILN_Q3_K, &b, y, QK));
    for (int e = 0; e < QK; e++)
        CHECK_MSG(y[e] == 0.5f * (float)(v[e / 16] - 32), "q3_k element %d: %g", e, y[e]);
    /* high bits clear: q - 4 = -3 */
    memset(b.hmask, 0, sizeof b.hmask);
    CHECK_OK(kiln_dequantize_row(KILN_Q3_K, &b, y, QK));
    for (int e = 0; e < QK; e++) CHECK(y[e] == 0.5f * (float)(v[e / 16] - 32) * -3.0f);
    /* one high bit: bit 3 of hmask[5] is element 3 * 32 + 5 = 101 */
    b.hmask[5] = 1 << 3;
    memset(b.qs, 0, sizeof b.qs);
    b.qs[0] = 0x1b; /* elements 0, 32, 64, 96: q 3 2 1 0 */
    CHECK_OK(kiln_dequantize_row(KILN_Q3_K, &b, y, QK));
    for (int e = 0; e < QK; e++) {
        int q = e == 0 ? 3 : e == 32 ? 2 : e == 64 ? 1 : 0;
        q -= e == 101 ? 0 : 4;
        CHECK_MSG(y[e] == 0.5f * (float)(v[e / 16] - 32) * (float)q, "q3_k element %d: %g", e, y[e]);
    }
}

/* ---- quantize -> dequantize ------------------------------------------------------- */

/* RMS error / RMS value of a round trip of n values; *maxerr gets the largest error. */
static double round_trip(kiln_dtype t, const float *x, int64_t n, double *maxerr) {
    size_t row;
    kiln_dtype_row_bytes(t, n, &row);
    uint8_t *q = malloc(row);
    float *y = malloc(sizeof(float) * (size_t)n);
    CHECK_OK(kiln_quantize_row(t, x, q, n));
    CHECK_OK(kiln_dequantize_row(t, q, y, n));
    double e2 = 0, v2 = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)y[i] - (double)x[i];
        e2 += d * d;
        v2 += (double)x[i] * (double)x[i];
        if (fabs(d) > mx) mx = fabs(d);
    }
    free(q);
    free(y);
    if (maxerr) *maxerr = mx;
    return v2 > 0 ? sqrt(e2 / v2) : sqrt(e2);
}

static void test_round_trip(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 7);
    const int64_t n = 4096;
    float *x = malloc(sizeof(float) * n);
    const kiln_dtype types[2] = {KILN_Q2_K, KILN_Q3_K};
    const double bound[2] = {0.26, 0.14};
    for (int ti = 0; ti < 2; ti++) {
        const kiln_dtype t = types[ti];
        double mx;
        /* uniform random */
        for (int64_t i = 0; i < n; i++) x[i] = 2.0f * kiln_rng_f32(&rng) - 1.0f;
        double e = round_trip(t, x, n, &mx);
        if (getenv("KILN_TEST_VERBOSE")) printf("%s uniform: rel RMS %.4f, max %.4f\n", kiln_dtype_name(t), e, mx);
        CHECK_MSG(e < bound[ti], "%s uniform: relative RMS error %g", kiln_dtype_name(t), e);
        /* all zeros: exact */
        memset(x, 0, sizeof(float) * n);
        CHECK(round_trip(t, x, n, &mx) == 0.0 && mx == 0.0);
        /* constants, positive and negative: within fp16 rounding of the scales and
         * the 4/6-bit scale grid (1% of the value) */
        for (int s = 0; s < 2; s++) {
            for (int64_t i = 0; i < n; i++) x[i] = s ? -0.75f : 0.3f;
            e = round_trip(t, x, n, &mx);
            if (getenv("KILN_TEST_VERBOSE")) printf("%s constant: rel RMS %.2g\n", kiln_dtype_name(t), e);
            CHECK_MSG(e < 0.01, "%s constant %d: relative error %g", kiln_dtype_name(t), s, e);
        }
        /* outliers: one value 100x the rest per 16; the outliers themselves come back
         * within 2% (their sub-block's scale is set by them), the whole row within
         * the bound (relative to its RMS, dominated by the outliers) */
        for (int64_t i = 0; i < n; i++) x[i] = (i % 16 == 5) ? 50.0f : 0.5f * (kiln_rng_f32(&rng) - 0.5f);
        size_t row;
        kiln_dtype_row_bytes(t, n, &row);
        uint8_t *q = malloc(row);
        float *y = malloc(sizeof(float) * n);
        CHECK_OK(kiln_quantize_row(t, x, q, n));
        CHECK_OK(kiln_dequantize_row(t, q, y, n));
        double worst = 0;
        for (int64_t i = 5; i < n; i += 16) worst = fmax(worst, fabs(y[i] - x[i]) / 50.0);
        if (getenv("KILN_TEST_VERBOSE")) printf("%s outliers: worst outlier rel error %.4f\n", kiln_dtype_name(t), worst);
        CHECK_MSG(worst < 0.02, "%s outliers: %g", kiln_dtype_name(t), worst);
        CHECK(round_trip(t, x, n, NULL) < bound[ti]);
        free(q);
        free(y);
        /* sub-blocks of zeros between random ones stay exactly zero */
        for (int64_t i = 0; i < n; i++) x[i] = ((i / 16) % 3 == 0) ? 0.0f : 2.0f * kiln_rng_f32(&rng) - 1.0f;
        q = malloc(row);
        y = malloc(sizeof(float) * n);
        CHECK_OK(kiln_quantize_row(t, x, q, n));
        CHECK_OK(kiln_dequantize_row(t, q, y, n));
        if (t == KILN_Q3_K) /* symmetric: zero is a grid point; Q2_K's min may shift it */
            for (int64_t i = 0; i < n; i++)
                if ((i / 16) % 3 == 0) CHECK_MSG(y[i] == 0.0f, "%s zero sub-block: %g", kiln_dtype_name(t), y[i]);
        free(q);
        free(y);
        /* non-finite input: defined (no UB) and the call succeeds */
        for (int64_t i = 0; i < n; i++) x[i] = kiln_rng_f32(&rng);
        x[3] = NAN, x[700] = INFINITY, x[1500] = -INFINITY;
        q = malloc(row);
        CHECK_OK(kiln_quantize_row(t, x, q, n));
        free(q);
    }
    free(x);
}

/* ---- reference micro kernel vs a double dot ----------------------------------------- */

static void test_ref_kernel(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 11);
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    const int64_t k = 1024;
    int8_t *qs = kiln_aligned_alloc(64, (size_t)k);
    float d[1024 / 32];
    int16_t bs[1024 / 16];
    float *x = malloc(sizeof(float) * k), *w = malloc(sizeof(float) * k), *wd = malloc(sizeof(float) * k);
    uint8_t *wq = malloc(110 * (size_t)(k / QK));
    const kiln_dtype types[2] = {KILN_Q2_K, KILN_Q3_K};
    for (int trial = 0; trial < 20; trial++) {
        for (int64_t i = 0; i < k; i++) {
            x[i] = 2.0f * kiln_rng_f32(&rng) - 1.0f;
            w[i] = (trial % 2 ? 0.3f : 0.0f) + kiln_rng_f32(&rng) - 0.5f; /* odd trials: an offset (minimums) */
        }
        kiln_ref_quant_act(x, qs, d, k);
        for (int64_t g = 0; g < k / 16; g++) {
            int s = 0;
            for (int e = 0; e < 16; e++) s += qs[g * 16 + e];
            bs[g] = (int16_t)s;
        }
        const kiln_act act = {.qs = qs, .qs_stride = (size_t)k, .d = d, .d_stride = (size_t)(k / 32), .bs = bs,
                              .bs_stride = (size_t)(k / 16)};
        for (int ti = 0; ti < 2; ti++) {
            CHECK_OK(kiln_quantize_row(types[ti], w, wq, k));
            CHECK_OK(kiln_dequantize_row(types[ti], wq, wd, k));
            double want = 0, mag = 0;
            for (int64_t i = 0; i < k; i++) {
                const double xv = (double)qs[i] * (double)d[i / 32];
                want += (double)wd[i] * xv;
                mag += fabs((double)wd[i] * xv);
            }
            float y = 0;
            ref->mm[types[ti]](k, wq, 0, 1, &act, 0, 1, &y, 1);
            CHECK_MSG(fabs((double)y - want) <= 1e-6 * mag, "%s trial %d: %.9g vs %.9g (scale %g)",
                      kiln_dtype_name(types[ti]), trial, y, want, mag);
        }
    }
    free(qs), free(x), free(w), free(wd), free(wq);
}

/* ---- argument errors ------------------------------------------------------------------ */

static void test_errors(void) {
    float x[512] = {0}, y[512];
    uint8_t q[2 * 110];
    const kiln_dtype types[2] = {KILN_Q2_K, KILN_Q3_K};
    for (int ti = 0; ti < 2; ti++) {
        const kiln_dtype t = types[ti];
        CHECK(kiln_matmul_supports(t));
        CHECK(kiln_quantize_row(t, x, q, 128) == KILN_ERR_INVALID_ARG); /* not whole blocks */
        CHECK(kiln_quantize_row(t, x, q, -256) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_dequantize_row(t, q, y, 300) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_quantize_row(t, x, q, 0) == KILN_OK && kiln_dequantize_row(t, q, y, 0) == KILN_OK);
        CHECK_OK(kiln_quantize_row(t, x, q, 512));
        /* a weight of 128 inputs is not a whole super-block */
        kiln_tensor w = {.type = t, .n_dims = 2, .ne = {128, 1, 1, 1}, .data = q};
        size_t total;
        kiln_tensor_set_contiguous(&w, &total);
        CHECK(kiln_matmul(&w, x, 1, y, NULL) == KILN_ERR_INVALID_ARG);
        w.ne[0] = 512;
        kiln_tensor_set_contiguous(&w, &total);
        CHECK(kiln_matmul(&w, x, 1, y, NULL) == KILN_OK && y[0] == 0.0f);
    }
}

int main(void) {
    test_q2_k_layout();
    test_q3_k_layout();
    test_round_trip();
    test_ref_kernel();
    test_errors();
    TEST_MAIN_END();
}
