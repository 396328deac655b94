/*
 * test_quant_legacy.c — the legacy quantized types Q4_1, Q5_0, Q5_1:
 *  - hand-built blocks (raw GGUF bytes) dequantize to exactly the expected floats:
 *    nibble order, bit j of qh for element j, Q5_0's -16, the minimum of Q4_1/Q5_1;
 *  - the quantizers give the bytes llama.cpp's reference quantizers give, for rows
 *    worked out by hand (zeros, constants, ties, sign of the maximum, one outlier,
 *    values beyond fp16, a range that overflows f32) and for a fixture made with
 *    llama.cpp itself;
 *  - quantize -> dequantize error bounds on random rows;
 *  - rows of several blocks equal block-by-block conversion and write nothing
 *    beyond their end; argument errors;
 *  - every level's micro kernel against a double-precision dot of the dequantized
 *    weights and the dequantized Q8_0 activations (random blocks: any bit pattern).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

static const kiln_dtype TYPES[3] = {KILN_Q4_1, KILN_Q5_0, KILN_Q5_1};

static size_t bsize(kiln_dtype t) { return (size_t)kiln_dtype_get(t)->type_size; }

static uint16_t u16_at(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The 5-bit (or 4-bit) quant of element j of a raw block, read by byte and bit
 * position (a formulation independent of the library's). */
static int quant_of(kiln_dtype t, const uint8_t *blk, int j) {
    const uint8_t *qs = blk + (t == KILN_Q4_1 ? 4 : t == KILN_Q5_0 ? 6 : 8);
    int q = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
    if (t != KILN_Q4_1) {
        const uint8_t *qh = blk + (t == KILN_Q5_0 ? 2 : 4);
        q |= (qh[j / 8] >> (j % 8) & 1) << 4;
    }
    return q;
}

/* ---- dequantization of hand-built blocks --------------------------------------- */

static void test_dequant_known(void) {
    float out[32], want[32];
    /* Q4_1: d = 0.5 (0x3800), m = -2 (0xc000); qs[j] = j | (15 - j) << 4 */
    uint8_t q41[20] = {0x00, 0x38, 0x00, 0xc0};
    for (int j = 0; j < 16; j++) q41[4 + j] = (uint8_t)(j | (15 - j) << 4);
    CHECK_OK(kiln_dequantize_row(KILN_Q4_1, q41, out, 32));
    for (int j = 0; j < 16; j++) {
        CHECK(out[j] == (float)j * 0.5f - 2.0f);
        CHECK(out[16 + j] == (float)(15 - j) * 0.5f - 2.0f);
    }
    CHECK(out[0] == -2.0f && out[15] == 5.5f && out[16] == 5.5f && out[31] == -2.0f);

    /* Q5_0: d = 0.25 (0x3400); qh bits 0, 16, 31; qs 0x88 (q = 8: -2.0) but
     * qs[0] = 0x21, qs[1] = 0x3f, qs[15] = 0xf0 */
    uint8_t q50[22] = {0x00, 0x34, 0x01, 0x00, 0x01, 0x80};
    for (int j = 0; j < 16; j++) q50[6 + j] = 0x88;
    q50[6 + 0] = 0x21, q50[6 + 1] = 0x3f, q50[6 + 15] = 0xf0;
    for (int j = 0; j < 32; j++) want[j] = -2.0f;
    want[0] = 0.25f;   /* 1 | 16 -> 17 - 16 = 1 */
    want[16] = 0.5f;   /* 2 | 16 -> 2 */
    want[1] = -0.25f;  /* 15 -> -1 */
    want[17] = -3.25f; /* 3 -> -13 */
    want[15] = -4.0f;  /* 0 -> -16 */
    want[31] = 3.75f;  /* 15 | 16 -> 15 */
    CHECK_OK(kiln_dequantize_row(KILN_Q5_0, q50, out, 32));
    CHECK(memcmp(out, want, sizeof want) == 0);

    /* Q5_1: d = 1 (0x3c00), m = 0.5 (0x3800); qh bits 15 and 24; qs 0 but
     * qs[8] = 0x03, qs[15] = 0x0f */
    uint8_t q51[24] = {0x00, 0x3c, 0x00, 0x38, 0x00, 0x80, 0x00, 0x01};
    q51[8 + 8] = 0x03, q51[8 + 15] = 0x0f;
    for (int j = 0; j < 32; j++) want[j] = 0.5f;
    want[8] = 3.5f;   /* 3 */
    want[24] = 16.5f; /* 0 | 16 */
    want[15] = 31.5f; /* 15 | 16 */
    CHECK_OK(kiln_dequantize_row(KILN_Q5_1, q51, out, 32));
    CHECK(memcmp(out, want, sizeof want) == 0);

    /* two blocks: the second follows the first at 20/22/24 bytes, at any address */
    uint8_t two[1 + 48];
    memcpy(two + 1, q51, 24);
    memcpy(two + 1 + 24, q51, 24);
    two[1 + 24 + 3] = 0xc0; /* second block: m = -2 */
    float o2[64];
    CHECK_OK(kiln_dequantize_row(KILN_Q5_1, two + 1, o2, 64));
    for (int j = 0; j < 32; j++) CHECK(o2[j] == want[j] && o2[32 + j] == want[j] - 2.5f);
}

/* ---- quantization of rows worked out by hand ------------------------------------ */

static void quant(kiln_dtype t, const float *x, uint8_t *blk) { CHECK_OK(kiln_quantize_row(t, x, blk, 32)); }

static bool all_quants(kiln_dtype t, const uint8_t *blk, int q) {
    for (int j = 0; j < 32; j++)
        if (quant_of(t, blk, j) != q) return false;
    return true;
}

static void test_quant_known(void) {
    float x[32], back[32];
    uint8_t b[24];
    static const uint8_t zero[24];

    /* all zeros: Q4_1/Q5_1 all bytes 0. Q5_0: d = 0 / -16 = -0 (0x8000), id = 0,
     * q = (int)(0 + 16.5) = 16: nibbles 0, every qh bit set. */
    memset(x, 0, sizeof x);
    quant(KILN_Q4_1, x, b);
    CHECK(memcmp(b, zero, 20) == 0);
    quant(KILN_Q5_1, x, b);
    CHECK(memcmp(b, zero, 24) == 0);
    quant(KILN_Q5_0, x, b);
    CHECK(u16_at(b) == 0x8000 && u32_at(b + 2) == 0xffffffffu && memcmp(b + 6, zero, 16) == 0);
    CHECK_OK(kiln_dequantize_row(KILN_Q5_0, b, back, 32));
    for (int j = 0; j < 32; j++) CHECK(back[j] == 0.0f);

    /* a constant 0.5: Q4_1/Q5_1 d = 0, m = 0.5, q = 0; Q5_0 d = -1/32 (0xa800),
     * q = (int)(-16 + 16.5) = 0. Every one dequantizes to exactly 0.5. */
    for (int j = 0; j < 32; j++) x[j] = 0.5f;
    for (int i = 0; i < 3; i++) {
        const kiln_dtype t = TYPES[i];
        quant(t, x, b);
        if (t == KILN_Q5_0) CHECK(u16_at(b) == 0xa800);
        else CHECK(u16_at(b) == 0 && u16_at(b + 2) == 0x3800);
        CHECK(all_quants(t, b, 0));
        CHECK_OK(kiln_dequantize_row(t, b, back, 32));
        for (int j = 0; j < 32; j++) CHECK(back[j] == 0.5f);
    }
    /* a constant -3: Q5_0 d = 3/16 (0x3200), q = 0 -> -16 * 0.1875 = -3 */
    for (int j = 0; j < 32; j++) x[j] = -3.0f;
    quant(KILN_Q5_0, x, b);
    CHECK(u16_at(b) == 0x3200 && all_quants(KILN_Q5_0, b, 0));

    /* ties: Q4_1 of {0, 15, 2.5, 7.5, 14.5, 1...}: d = 1, m = 0, q = (int)(v + 0.5):
     * halves go up (2.5 -> 3), and 1.0 -> 1 */
    for (int j = 0; j < 32; j++) x[j] = 1.0f;
    x[0] = 0.0f, x[1] = 15.0f, x[2] = 2.5f, x[3] = 7.5f, x[4] = 14.5f;
    quant(KILN_Q4_1, x, b);
    CHECK(u16_at(b) == 0x3c00 && u16_at(b + 2) == 0);
    CHECK(quant_of(KILN_Q4_1, b, 0) == 0 && quant_of(KILN_Q4_1, b, 1) == 15 && quant_of(KILN_Q4_1, b, 2) == 3 &&
          quant_of(KILN_Q4_1, b, 3) == 8 && quant_of(KILN_Q4_1, b, 4) == 15 && quant_of(KILN_Q4_1, b, 31) == 1);
    /* Q5_1 of {0, 31, 2.5, 30.5, 1...}: d = 1, q = 0, 31, 3, 31, 1 */
    x[1] = 31.0f, x[3] = 30.5f, x[4] = 1.0f;
    quant(KILN_Q5_1, x, b);
    CHECK(u16_at(b) == 0x3c00 && u16_at(b + 2) == 0);
    CHECK(quant_of(KILN_Q5_1, b, 1) == 31 && quant_of(KILN_Q5_1, b, 2) == 3 && quant_of(KILN_Q5_1, b, 3) == 31 &&
          quant_of(KILN_Q5_1, b, 9) == 1);

    /* Q5_0 takes the signed value of largest magnitude, the first on ties:
     * {-4, 4, 0...}: d = 0.25, 4 -> (int)(16 + 16.5) = 32, clamped to 31 -> 3.75 */
    memset(x, 0, sizeof x);
    x[0] = -4.0f, x[1] = 4.0f;
    quant(KILN_Q5_0, x, b);
    CHECK(u16_at(b) == 0x3400);
    CHECK(quant_of(KILN_Q5_0, b, 0) == 0 && quant_of(KILN_Q5_0, b, 1) == 31 && quant_of(KILN_Q5_0, b, 2) == 16);
    CHECK_OK(kiln_dequantize_row(KILN_Q5_0, b, back, 32));
    CHECK(back[0] == -4.0f && back[1] == 3.75f && back[2] == 0.0f);
    x[0] = 4.0f, x[1] = -4.0f; /* d = -0.25 (0xb400) */
    quant(KILN_Q5_0, x, b);
    CHECK(u16_at(b) == 0xb400);
    CHECK_OK(kiln_dequantize_row(KILN_Q5_0, b, back, 32));
    CHECK(back[0] == 4.0f && back[1] == -3.75f);

    /* one outlier: x[j] = 0.01 j, x[5] = 100.
     * Q5_0: d = -6.25 (0xc640), id = -0.16: the outlier -> q 0 (exactly 100 back),
     * the rest -> q 16 (0 back): nibbles all 0, qh all bits but bit 5.
     * Q4_1: min 0, d = 100/15 -> fp16 6.668 (0x46ab); outlier q 15, the rest q 0. */
    for (int j = 0; j < 32; j++) x[j] = 0.01f * (float)j;
    x[5] = 100.0f;
    quant(KILN_Q5_0, x, b);
    CHECK(u16_at(b) == 0xc640 && u32_at(b + 2) == 0xffffffdfu && memcmp(b + 6, zero, 16) == 0);
    CHECK_OK(kiln_dequantize_row(KILN_Q5_0, b, back, 32));
    CHECK(back[5] == 100.0f && back[0] == 0.0f && back[31] == 0.0f);
    quant(KILN_Q4_1, x, b);
    CHECK(u16_at(b) == 0x46ab && u16_at(b + 2) == 0);
    for (int j = 0; j < 32; j++) CHECK(quant_of(KILN_Q4_1, b, j) == (j == 5 ? 15 : 0));

    /* beyond fp16: {1e5, -1e5, 0...} in Q4_1: d = 2e5/15 -> 13336 (0x7283), the
     * minimum -1e5 -> -inf (0xfc00) as fp16 conversion gives; quants still 15, 0 */
    memset(x, 0, sizeof x);
    x[0] = 1e5f, x[1] = -1e5f;
    quant(KILN_Q4_1, x, b);
    CHECK(u16_at(b) == 0x7283 && u16_at(b + 2) == 0xfc00);
    CHECK(quant_of(KILN_Q4_1, b, 0) == 15 && quant_of(KILN_Q4_1, b, 1) == 0);

    /* a range that overflows f32: {3e38, -3e38, 0...}. Q4_1/Q5_1: max - min = inf,
     * d = inf, id = 0, and (x - min) * 0 is 0 or NaN (for x = max): every quant 0
     * (llama.cpp converts that NaN to an integer, undefined in C; on x86 it gives 0
     * too). Q5_0: d = -1.875e37 -> -inf (0xfc00), id finite: q 0, 31, 16. */
    x[0] = 3e38f, x[1] = -3e38f;
    for (int i = 0; i < 3; i++) {
        const kiln_dtype t = TYPES[i];
        quant(t, x, b);
        if (t == KILN_Q5_0) {
            CHECK(u16_at(b) == 0xfc00);
            CHECK(quant_of(t, b, 0) == 0 && quant_of(t, b, 1) == 31 && quant_of(t, b, 2) == 16);
        } else {
            CHECK(u16_at(b) == 0x7c00 && u16_at(b + 2) == 0xfc00 && all_quants(t, b, 0));
        }
    }
    /* NaN and inf give defined quants (no trap under UBSan) */
    x[0] = NAN, x[1] = INFINITY;
    for (int i = 0; i < 3; i++) quant(TYPES[i], x, b);
}

/* Bytes written by llama.cpp's quantize_row_q4_1_ref / _q5_0_ref / _q5_1_ref
 * (ggml-org/ggml d99724f, ggml-quants.c built alone with gcc -O2 on x86-64) for the
 * 128-element row of fixture_row(): exact multiples of 1/8 with an outlier (ties of
 * the +0.5 roundings), then multiples of 1/300. Generated by a throwaway program
 * outside this tree; only the bytes are kept. */
static const uint8_t LLAMA_Q4_1[80] = {
    0x77, 0x33, 0x00, 0xbf, 0x60, 0xb4, 0xf9, 0x4d, 0x82, 0xc6, 0x1a, 0x5e, 0xa3, 0xe8, 0x3c, 0x71,
    0xb5, 0x09, 0x4d, 0x92, 0xbc, 0x3d, 0x00, 0xbf, 0x12, 0x10, 0x21, 0x02, 0x12, 0x21, 0x21, 0x02,
    0x10, 0x21, 0x01, 0x12, 0x10, 0x2f, 0x02, 0x12, 0xef, 0x32, 0xab, 0xbe, 0xb0, 0xae, 0x8d, 0x7c,
    0x6a, 0x59, 0x38, 0x27, 0x15, 0xf4, 0xe3, 0xd2, 0xb0, 0xaf, 0x9d, 0x8c, 0xef, 0x32, 0xa0, 0xbe,
    0x26, 0x05, 0xf4, 0xd2, 0xc1, 0xb0, 0xae, 0x8d, 0x7c, 0x6a, 0x59, 0x38, 0x27, 0x15, 0xf4, 0xe3,
};
static const uint8_t LLAMA_Q5_0[88] = {
    0x00, 0x2f, 0xcc, 0x66, 0x36, 0x93, 0xe0, 0x79, 0xf2, 0x8b, 0x13, 0xad, 0x26, 0xbf, 0x57, 0xe0,
    0x69, 0xf1, 0x8a, 0x03, 0x9d, 0x25, 0xf0, 0xbc, 0x66, 0x17, 0xbb, 0xdd, 0x1f, 0x01, 0xf0, 0x1f,
    0x0f, 0x01, 0xf0, 0x1f, 0x01, 0xf1, 0x10, 0x1f, 0x01, 0xf0, 0x1f, 0x0f, 0xab, 0x2e, 0x7e, 0xe0,
    0x07, 0xfe, 0x70, 0x4d, 0x1b, 0xf8, 0xc6, 0xa3, 0x70, 0x4e, 0x2b, 0xf9, 0xd6, 0xa3, 0x71, 0x5e,
    0x2c, 0x09, 0xa0, 0x2e, 0xc0, 0x0f, 0xfc, 0xc0, 0x4d, 0x1a, 0xe8, 0xc5, 0x93, 0x70, 0x4e, 0x1b,
    0xf8, 0xc6, 0xa3, 0x71, 0x4e, 0x2b, 0xf9, 0xd6,
};
static const uint8_t LLAMA_Q5_1[96] = {
    0x3a, 0x2f, 0x00, 0xbf, 0xcc, 0x66, 0x36, 0x93, 0xd0, 0x69, 0xf2, 0x8b, 0x13, 0x9c, 0x25, 0xbe,
    0x47, 0xd0, 0x68, 0xe1, 0x7a, 0x03, 0x9c, 0x24, 0x8c, 0x39, 0x00, 0xbf, 0x00, 0x20, 0x00, 0x00,
    0x14, 0x31, 0x42, 0x03, 0x25, 0x31, 0x53, 0x14, 0x20, 0x42, 0x03, 0x15, 0x31, 0x4f, 0x14, 0x25,
    0xb6, 0x2e, 0xab, 0xbe, 0x7e, 0xe0, 0x07, 0xfe, 0x60, 0x4d, 0x1b, 0xf8, 0xc5, 0xa3, 0x70, 0x4e,
    0x2b, 0xf9, 0xc6, 0xa3, 0x71, 0x5e, 0x2c, 0x09, 0xb6, 0x2e, 0xa0, 0xbe, 0xc0, 0x0f, 0xfc, 0xc0,
    0x3d, 0x1a, 0xe8, 0xc5, 0x93, 0x60, 0x4d, 0x1b, 0xf8, 0xc5, 0xa3, 0x70, 0x4e, 0x2b, 0xf9, 0xc6,
};

static void fixture_row(float *x) {
    for (int j = 0; j < 64; j++) x[j] = (float)((j * 37) % 29 - 14) / 8.0f + (j == 45 ? 20.0f : 0.0f);
    for (int j = 0; j < 64; j++) x[64 + j] = (float)((j * 7919) % 1000 - 500) / 300.0f;
}

static void test_llama_fixture(void) {
    float x[128];
    uint8_t b[96];
    fixture_row(x);
    const uint8_t *want[3] = {LLAMA_Q4_1, LLAMA_Q5_0, LLAMA_Q5_1};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(kiln_quantize_row(TYPES[i], x, b, 128));
        CHECK_MSG(memcmp(b, want[i], 4 * bsize(TYPES[i])) == 0, "%s: bytes differ from llama.cpp's",
                  kiln_dtype_name(TYPES[i]));
    }
}

/* ---- round-trip error bounds ---------------------------------------------------- */

static void test_roundtrip(void) {
    enum { N = 32 * 64 };
    static float x[N], back[N];
    static uint8_t buf[N];
    kiln_rng rng;
    kiln_rng_seed(&rng, 7);
    const float scales[] = {1e-4f, 1.0f, 3.0f, 1000.0f};
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        for (int i = 0; i < N; i++) {
            x[i] = (kiln_rng_f32(&rng) - 0.5f) * scales[si];
            if (i % 64 == 0) x[i] *= 8.0f;          /* an outlier every other block */
            if (i / 32 % 7 == 3) x[i] = fabsf(x[i]) + scales[si]; /* all-positive blocks */
        }
        for (int ti = 0; ti < 3; ti++) {
            const kiln_dtype t = TYPES[ti];
            CHECK_OK(kiln_quantize_row(t, x, buf, N));
            CHECK_OK(kiln_dequantize_row(t, buf, back, N));
            for (int blk = 0; blk < N / 32; blk++) {
                const float *v = x + blk * 32;
                const uint8_t *p = buf + (size_t)blk * bsize(t);
                const float D = kiln_fp16_to_f32(u16_at(p));
                float mn = v[0], mx = v[0], amax = 0, smax = 0;
                for (int j = 0; j < 32; j++) {
                    mn = fminf(mn, v[j]), mx = fmaxf(mx, v[j]);
                    if (fabsf(v[j]) > amax) amax = fabsf(v[j]), smax = v[j];
                }
                for (int j = 0; j < 32; j++) {
                    const double err = fabs((double)back[blk * 32 + j] - (double)v[j]);
                    double bound;
                    if (t == KILN_Q5_0) {
                        const double d = (double)smax / -16.0;
                        /* q is within 1/2 of x/d + 16 unless clamped at 31 (x/d > 15.5) */
                        const double half = (double)v[j] / d > 15.4 ? 1.0 : 0.5;
                        bound = fabs(d) * half * (1 + 1e-5) + 16 * fabs(d - (double)D);
                    } else {
                        const int hi = t == KILN_Q4_1 ? 15 : 31;
                        const double d = ((double)mx - (double)mn) / hi;
                        const float M = kiln_fp16_to_f32(u16_at(p + 2));
                        bound = d * 0.5 * (1 + 1e-5) + hi * fabs(d - (double)D) + fabs((double)mn - (double)M) +
                                1e-7 * (double)amax;
                    }
                    CHECK_MSG(err <= bound, "%s scale %g block %d elem %d: error %g > %g", kiln_dtype_name(t),
                              (double)scales[si], blk, j, err, bound);
                }
            }
        }
    }
}

/* Rows of several blocks equal block-by-block conversion; nothing past the end is
 * written; an empty row is fine. */
static void test_rows(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 8);
    const int nbs[] = {1, 3, 7, 33};
    for (int ti = 0; ti < 3; ti++) {
        const kiln_dtype t = TYPES[ti];
        const size_t bs = bsize(t);
        for (size_t ni = 0; ni < sizeof nbs / sizeof nbs[0]; ni++) {
            const int nb = nbs[ni], n = 32 * nb;
            float *x = malloc(sizeof(float) * (size_t)n), *back = malloc(sizeof(float) * (size_t)(n + 8));
            uint8_t *row = malloc(bs * (size_t)nb + 16), one[24];
            for (int i = 0; i < n; i++) x[i] = kiln_rng_f32(&rng) * 4.0f - 1.0f;
            memset(row, 0xa5, bs * (size_t)nb + 16);
            CHECK_OK(kiln_quantize_row(t, x, row, n));
            for (int i = 0; i < 16; i++) CHECK(row[bs * (size_t)nb + (size_t)i] == 0xa5);
            for (int blk = 0; blk < nb; blk++) {
                CHECK_OK(kiln_quantize_row(t, x + blk * 32, one, 32));
                CHECK(memcmp(one, row + (size_t)blk * bs, bs) == 0);
            }
            for (int i = 0; i < 8; i++) back[n + i] = 12345.0f;
            CHECK_OK(kiln_dequantize_row(t, row, back, n));
            for (int i = 0; i < 8; i++) CHECK(back[n + i] == 12345.0f);
            free(x), free(back), free(row);
        }
        CHECK_OK(kiln_quantize_row(t, NULL, NULL, 0));
        CHECK_OK(kiln_dequantize_row(t, NULL, NULL, 0));
    }
}

static void test_errors(void) {
    float x[64] = {0};
    uint8_t buf[64];
    for (int ti = 0; ti < 3; ti++) {
        const kiln_dtype t = TYPES[ti];
        CHECK(kiln_quantize_row(t, x, buf, 16) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_quantize_row(t, x, buf, 33) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_quantize_row(t, x, buf, -32) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_dequantize_row(t, buf, x, 48) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_dequantize_row(t, buf, x, -1) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_matmul_supports(t));
    }
}

/* ---- micro kernels against a double-precision dot -------------------------------- */

/* Every level's kernel, for random blocks (any bit pattern, scales and minimums
 * from fp16 values of either sign) and random activations: within 1e-6 of
 * sum |w_j x_j| of the double dot of the dequantized rows. */
static void test_dot(void) {
    enum { KMAX = 32 * 65 };
    _Alignas(64) static int8_t qs[KMAX];
    static float xd[KMAX / 32], x[KMAX], xr[KMAX], wr[KMAX];
    static int16_t bsum[KMAX / 16];
    static uint8_t w[KMAX], xq8[KMAX * 2];
    kiln_rng rng;
    kiln_rng_seed(&rng, 9);
    const int nbs[] = {1, 2, 3, 8, 65};
    double worst = 0;
    for (int ti = 0; ti < 3; ti++) {
        const kiln_dtype t = TYPES[ti];
        const size_t bs = bsize(t);
        for (size_t ni = 0; ni < sizeof nbs / sizeof nbs[0]; ni++)
            for (int rep = 0; rep < 20; rep++) {
                const int nb = nbs[ni], k = 32 * nb;
                for (size_t i = 0; i < bs * (size_t)nb; i++) w[i] = (uint8_t)kiln_rng_u64(&rng);
                for (int blk = 0; blk < nb; blk++) {
                    uint8_t *p = w + (size_t)blk * bs;
                    const uint16_t d = kiln_f32_to_fp16((kiln_rng_f32(&rng) - 0.5f) * 0.1f);
                    const uint16_t m = kiln_f32_to_fp16((kiln_rng_f32(&rng) - 0.5f) * 2.0f);
                    memcpy(p, &d, 2);
                    if (t != KILN_Q5_0) memcpy(p + 2, &m, 2);
                }
                for (int j = 0; j < k; j++) x[j] = (kiln_rng_f32(&rng) - 0.5f) * (rep % 2 ? 100.0f : 1.0f);
                kiln_ref_quant_act(x, qs, xd, k);
                for (int g = 0; g < k / 16; g++) {
                    int s = 0;
                    for (int e = 0; e < 16; e++) s += qs[g * 16 + e];
                    bsum[g] = (int16_t)s;
                }
                CHECK_OK(kiln_quantize_row(KILN_Q8_0, x, xq8, k));
                CHECK_OK(kiln_dequantize_row(KILN_Q8_0, xq8, xr, k));
                CHECK_OK(kiln_dequantize_row(t, w, wr, k));
                double want = 0, mag = 0;
                for (int j = 0; j < k; j++) {
                    want += (double)wr[j] * (double)xr[j];
                    mag += fabs((double)wr[j] * (double)xr[j]);
                }
                const kiln_act act = {.qs = qs, .qs_stride = KMAX, .d = xd, .d_stride = KMAX / 32, .bs = bsum,
                                      .bs_stride = KMAX / 16};
                for (int l = 0; l < KILN_ISA_COUNT; l++) {
                    const kiln_kernel_table *v = kiln_kernels_table((kiln_isa)l);
                    if (!v) continue;
                    float y[2] = {0, 12345.0f};
                    v->mm[t](k, w, bs * (size_t)nb, 1, &act, 0, 1, y, 1);
                    const double e = fabs((double)y[0] - want) / (mag > 0 ? mag : 1);
                    if (e > worst) worst = e;
                    CHECK_MSG(e <= 1e-6, "%s %s k %d: %.9g vs %.9g (mag %g)", v->name, kiln_dtype_name(t), k,
                              (double)y[0], want, mag);
                    CHECK(y[1] == 12345.0f);
                }
            }
    }
    printf("micro kernels vs double dot: worst error %.3g of sum |w x|\n", worst);
}

int main(void) {
    printf("kernels: %s\n", kiln_kernels_isa());
    test_dequant_known();
    test_quant_known();
    test_llama_fixture();
    test_roundtrip();
    test_rows();
    test_errors();
    test_dot();
    TEST_MAIN_END();
}
