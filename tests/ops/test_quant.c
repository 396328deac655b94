/*
 * test_quant.c — kiln_quantize_row / kiln_dequantize_row against hand-computed
 * blocks (the numbers llama.cpp's reference quantizers give), fp16/bf16 edge
 * cases, round-trip error bounds, argument errors, and every variant's activation
 * quantizer against the reference bit for bit.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Q8_0 of x[j] = j - 16: amax 16, d = 16/127 (fp16 0x3008), id = 7.9375;
 * -8 * 7.9375 = -63.5 is a tie and rounds away from zero to -64. */
static void test_q8_0_known(void) {
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    static const int8_t want[32] = {-127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8,
                                    0,    8,    16,   24,   32,  40,  48,  56,  64,  71,  79,  87,  95,  103, 111, 119};
    kiln_block_q8_0 b;
    CHECK_OK(kiln_quantize_row(KILN_Q8_0, x, &b, 32));
    CHECK(b.d == 0x3008);
    CHECK(memcmp(b.qs, want, 32) == 0);
    float back[32];
    CHECK_OK(kiln_dequantize_row(KILN_Q8_0, &b, back, 32));
    CHECK(back[0] == -127.0f * 0.1259765625f && back[31] == 119.0f * 0.1259765625f);

    /* amax 127 -> d = 1, id = 1: halves round away from zero. */
    float t[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 126.5f, -126.5f, 1.49999988f};
    CHECK_OK(kiln_quantize_row(KILN_Q8_0, t, &b, 32));
    static const int8_t want_t[8] = {127, 3, -3, 1, -1, 127, -127, 1};
    CHECK(b.d == 0x3c00);
    CHECK(memcmp(b.qs, want_t, 8) == 0);
    for (int j = 8; j < 32; j++) CHECK(b.qs[j] == 0);

    /* all zeros: d = 0 and quants 0 (no division by zero) */
    float z[32] = {0};
    CHECK_OK(kiln_quantize_row(KILN_Q8_0, z, &b, 32));
    CHECK(b.d == 0);
    for (int j = 0; j < 32; j++) CHECK(b.qs[j] == 0);
}

/* Q4_0: d = max / -8 where max is the signed value of largest magnitude. */
static void test_q4_0_known(void) {
    float x[32];
    kiln_block_q4_0 b;
    /* x = j - 16: max = -16, d = 2 (0x4000), q = min(15, (int)(x/2 + 8.5)) */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    static const uint8_t want[16] = {128, 145, 145, 162, 162, 179, 179, 196, 196, 213, 213, 230, 230, 247, 247, 248};
    CHECK_OK(kiln_quantize_row(KILN_Q4_0, x, &b, 32));
    CHECK(b.d == 0x4000);
    CHECK(memcmp(b.qs, want, 16) == 0);
    float back[32];
    CHECK_OK(kiln_dequantize_row(KILN_Q4_0, &b, back, 32));
    CHECK(back[0] == -16.0f && back[1] == -14.0f && back[16] == 0.0f && back[31] == 14.0f);

    /* x = 8 - j/2: max = +8 (positive), d = -1 (0xbc00), q = min(15, (int)(j/2 + 0.5)) */
    for (int j = 0; j < 32; j++) x[j] = 8.0f - 0.5f * (float)j;
    CHECK_OK(kiln_quantize_row(KILN_Q4_0, x, &b, 32));
    CHECK(b.d == 0xbc00);
    for (int j = 0; j < 16; j++) {
        int lo = (j + 1) / 2, hi = (j + 16 + 1) / 2 > 15 ? 15 : (j + 16 + 1) / 2;
        CHECK_MSG((b.qs[j] & 15) == lo && (b.qs[j] >> 4) == hi, "j %d: %02x", j, b.qs[j]);
    }
}

/* Dequantization of blocks written byte by byte (the GGUF layout). */
static void test_dequant_bytes(void) {
    uint8_t q8[34] = {0x00, 0x38}; /* d = 0.5 (fp16 0x3800), little-endian */
    for (int j = 0; j < 32; j++) q8[2 + j] = (uint8_t)(int8_t)(j - 16);
    q8[2] = 0x80; /* -128 is a valid stored quant */
    float out[32];
    CHECK_OK(kiln_dequantize_row(KILN_Q8_0, q8, out, 32));
    CHECK(out[0] == -64.0f && out[1] == -7.5f && out[31] == 7.5f);

    uint8_t q4[18] = {0x00, 0x40}; /* d = 2 */
    for (int j = 0; j < 16; j++) q4[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    CHECK_OK(kiln_dequantize_row(KILN_Q4_0, q4, out, 32));
    for (int j = 0; j < 16; j++) {
        CHECK(out[j] == (float)(j - 8) * 2.0f);
        CHECK(out[j + 16] == (float)(7 - j) * 2.0f);
    }
}

static void test_half_edges(void) {
    const float in[] = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.0f, 65520.0f, 5.9604645e-8f, 2.9802322e-8f,
                        2.9802326e-8f, INFINITY, -INFINITY, 1.0009766f, 1.00048828125f, 6.1035156e-5f};
    const uint16_t want[] = {0x0000, 0x8000, 0x3c00, 0x7bff, 0x7bff, 0x7c00, 0x0001, 0x0000,
                             0x0001, 0x7c00, 0xfc00, 0x3c01, 0x3c00, 0x0400};
    const int n = (int)(sizeof in / sizeof in[0]);
    uint16_t h[16];
    CHECK_OK(kiln_quantize_row(KILN_F16, in, h, n));
    for (int i = 0; i < n; i++) CHECK_MSG(h[i] == want[i], "f16 #%d: %04x, want %04x", i, h[i], want[i]);
    float nan = NAN;
    CHECK_OK(kiln_quantize_row(KILN_F16, &nan, h, 1));
    CHECK((h[0] & 0x7c00) == 0x7c00 && (h[0] & 0x03ff) != 0);

    const uint16_t hin[] = {0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x3555};
    float out[8];
    CHECK_OK(kiln_dequantize_row(KILN_F16, hin, out, 8));
    CHECK(out[0] == ldexpf(1.0f, -24));
    CHECK(out[1] == ldexpf(1023.0f, -24));
    CHECK(out[2] == ldexpf(1.0f, -14));
    CHECK(out[3] == 65504.0f);
    CHECK(isinf(out[4]) && out[4] > 0 && isinf(out[5]) && out[5] < 0);
    CHECK(out[6] == 0.0f && signbit(out[6]));
    CHECK(out[7] == 0.333251953125f);

    /* bf16: round to nearest even, NaN stays NaN (quiet), overflow to inf */
    const float bin[] = {1.0f, bits_f32(0x3f808000), bits_f32(0x3f818000), bits_f32(0x3f808001), INFINITY,
                         bits_f32(0x7f7fffff), bits_f32(0x7f800001), -2.0f};
    const uint16_t bwant[] = {0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0x7f80, 0x7fc0, 0xc000};
    uint16_t bh[8];
    CHECK_OK(kiln_quantize_row(KILN_BF16, bin, bh, 8));
    for (int i = 0; i < 8; i++) CHECK_MSG(bh[i] == bwant[i], "bf16 #%d: %04x, want %04x", i, bh[i], bwant[i]);
    CHECK_OK(kiln_dequantize_row(KILN_BF16, bh, out, 8));
    CHECK(f32_bits(out[0]) == 0x3f800000 && f32_bits(out[2]) == 0x3f820000 && isnan(out[6]));
}

static void test_round_trips(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 7);
    enum { N = 32 * 64 };
    static float x[N], back[N];
    static uint8_t buf[N * 4];
    for (int i = 0; i < N; i++) x[i] = (kiln_rng_f32(&rng) - 0.5f) * (i % 64 == 0 ? 100.0f : 3.0f);

    CHECK_OK(kiln_quantize_row(KILN_F32, x, buf, N));
    CHECK_OK(kiln_dequantize_row(KILN_F32, buf, back, N));
    CHECK(memcmp(x, back, sizeof x) == 0);

    /* f16/bf16: relative error at most half an ulp (2^-11, 2^-8) for normal values */
    CHECK_OK(kiln_quantize_row(KILN_F16, x, buf, N));
    CHECK_OK(kiln_dequantize_row(KILN_F16, buf, back, N));
    for (int i = 0; i < N; i++)
        if (fabsf(x[i]) > 1e-4f) CHECK(fabsf(back[i] - x[i]) <= fabsf(x[i]) * 0x1p-11f);
    CHECK_OK(kiln_quantize_row(KILN_BF16, x, buf, N));
    CHECK_OK(kiln_dequantize_row(KILN_BF16, buf, back, N));
    for (int i = 0; i < N; i++) CHECK(fabsf(back[i] - x[i]) <= fabsf(x[i]) * 0x1p-8f);

    /* Q8_0: error <= d/2 (+ the fp16 rounding of d times |q| <= 127) */
    CHECK_OK(kiln_quantize_row(KILN_Q8_0, x, buf, N));
    CHECK_OK(kiln_dequantize_row(KILN_Q8_0, buf, back, N));
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 127.0f;
        for (int j = 0; j < 32; j++) CHECK(fabsf(back[b * 32 + j] - x[b * 32 + j]) <= d * (0.5f + 127.0f * 0x1p-11f));
    }
    /* Q4_0: error <= |d| (a value opposite to max can clamp at 15) + fp16 rounding */
    CHECK_OK(kiln_quantize_row(KILN_Q4_0, x, buf, N));
    CHECK_OK(kiln_dequantize_row(KILN_Q4_0, buf, back, N));
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 8.0f;
        for (int j = 0; j < 32; j++) CHECK(fabsf(back[b * 32 + j] - x[b * 32 + j]) <= d * (1.0f + 8.0f * 0x1p-11f));
    }
}

static void test_errors(void) {
    float x[64] = {0};
    uint8_t buf[256];
    CHECK(kiln_quantize_row(KILN_Q8_1, x, buf, 32) == KILN_ERR_UNSUPPORTED);   /* activation-only types */
    CHECK(kiln_dequantize_row(KILN_Q8_K, buf, x, 256) == KILN_ERR_UNSUPPORTED);
    CHECK(kiln_dequantize_row((kiln_dtype)99, buf, x, 32) == KILN_ERR_UNSUPPORTED);
    CHECK(kiln_quantize_row(KILN_Q8_0, x, buf, 33) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_dequantize_row(KILN_Q4_0, buf, x, 16) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_quantize_row(KILN_F16, x, buf, -1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_quantize_row(KILN_F16, x, buf, 0) == KILN_OK);
}

/* Every variant's activation quantizer must give the reference's bytes. */
static void test_quant_act_variants(void) {
    enum { K = 32 * 40 };
    static float x[K];
    static int8_t qr[K], qv[K];
    static float dr[K / 32], dv[K / 32];
    kiln_rng rng;
    kiln_rng_seed(&rng, 11);
    for (int i = 0; i < K; i++) x[i] = (kiln_rng_f32(&rng) - 0.5f) * 8.0f;
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);          /* ties (-63.5) */
    for (int j = 0; j < 32; j++) x[32 + j] = 0.0f;                /* zero block */
    for (int j = 0; j < 32; j++) x[64 + j] = (float)j * 1e-39f;   /* subnormal inputs, d underflows */
    for (int j = 0; j < 32; j++) x[96 + j] = (float)(j - 15) * 1e37f; /* huge */
    for (int j = 0; j < 32; j++) x[128 + j] = (float)j * 1e-37f;  /* 1/d overflows to inf */
    for (int j = 0; j < 32; j++) x[160 + j] = j == 0 ? 127.0f : (float)j - 0.5f; /* d = 1: all halves */
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    ref->quant_act(x, qr, dr, K);
    /* the reference activation quantizer is quantize_row(Q8_0) in another layout */
    static kiln_block_q8_0 blk[K / 32];
    CHECK_OK(kiln_quantize_row(KILN_Q8_0, x, blk, K));
    for (int b = 0; b < K / 32; b++) {
        CHECK(dr[b] == kiln_fp16_to_f32(blk[b].d));
        CHECK(memcmp(qr + 32 * b, blk[b].qs, 32) == 0);
    }
    for (int l = 1; l < KILN_ISA_COUNT; l++) {
        const kiln_kernel_table *t = kiln_kernels_table((kiln_isa)l);
        if (!t) continue;
        memset(qv, 0x55, sizeof qv);
        t->quant_act(x, qv, dv, K);
        for (int b = 0; b < K / 32; b++) {
            CHECK_MSG(memcmp(qr + 32 * b, qv + 32 * b, 32) == 0, "%s: block %d quants differ", t->name, b);
            CHECK_MSG(f32_bits(dr[b]) == f32_bits(dv[b]), "%s: block %d scale differs", t->name, b);
        }
    }
}

int main(void) {
    test_q8_0_known();
    test_q4_0_known();
    test_dequant_bytes();
    test_half_edges();
    test_round_trips();
    test_errors();
    test_quant_act_variants();
    TEST_MAIN_END();
}
