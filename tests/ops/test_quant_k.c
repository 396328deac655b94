/*
 * test_quant_k.c — the K-quant weight types Q4_K, Q5_K, Q6_K:
 *  - hand-built super-blocks (packed here from the GGUF layout description, not with
 *    the library's packer) dequantize to exactly the expected values: all 8 Q4_K/Q5_K
 *    6-bit scales and mins (including their two high bits), Q5_K's qh bits, Q6_K's
 *    ql/qh split, the -32 offset and negative int8 scales;
 *  - quantize -> dequantize error bounds on random and structured rows;
 *  - the reference micro kernel against a double-precision dot of the dequantized
 *    weights and the dequantized Q8_0 activations;
 *  - every SIMD level against the reference on extreme blocks (all levels and scales
 *    at their maximum: the int16 pair sums of vpmaddubsw must not saturate);
 *  - argument errors.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

/* Sub-block scales and mins covering 0, 63 and values with both high bits. */
static const uint8_t SC[8] = {1, 2, 63, 17, 33, 48, 5, 62};
static const uint8_t MN[8] = {0, 63, 7, 40, 21, 1, 60, 34};

/* The 12 scale bytes from the layout: byte j (j < 4) = sc_j | (high 2 bits of sc_j+4)
 * << 6; byte 4 + j = m_j | (high 2 bits of m_j+4) << 6; byte 8 + j = low nibble of
 * sc_j+4 | low nibble of m_j+4 << 4. */
static void pack_scales_by_hand(uint8_t *s) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(SC[j] | ((SC[j + 4] >> 4) << 6));
        s[4 + j] = (uint8_t)(MN[j] | ((MN[j + 4] >> 4) << 6));
        s[8 + j] = (uint8_t)((SC[j + 4] & 15) | ((MN[j + 4] & 15) << 4));
    }
}

static void test_q4_k_known(void) {
    kiln_block_q4_k b[2];
    memset(b, 0, sizeof b);
    for (int i = 0; i < 2; i++) {
        b[i].d = i ? 0x4000 : 0x3c00;   /* 2.0, 1.0 */
        b[i].dmin = 0x3800;             /* 0.5 */
        pack_scales_by_hand(b[i].scales);
    }
    /* level of element e: (7e + 3) & 15 */
    for (int i = 0; i < 2; i++)
        for (int e = 0; e < 256; e++) {
            const int q = (7 * e + 3 + i) & 15, sub = e / 32, l = e % 32;
            /* sub-block 2c in the low nibbles of bytes 32c.., 2c+1 in the high nibbles */
            b[i].qs[32 * (sub / 2) + l] |= (uint8_t)(sub % 2 ? q << 4 : q);
        }
    float y[512];
    CHECK_OK(kiln_dequantize_row(KILN_Q4_K, b, y, 512));
    int bad = 0;
    for (int i = 0; i < 2; i++)
        for (int e = 0; e < 256; e++) {
            const int q = (7 * e + 3 + i) & 15, sub = e / 32;
            const float want = (i ? 2.0f : 1.0f) * (float)SC[sub] * (float)q - 0.5f * (float)MN[sub];
            bad += y[256 * i + e] != want;
        }
    CHECK_MSG(bad == 0, "q4_k: %d elements differ", bad);
}

static void test_q5_k_known(void) {
    kiln_block_q5_k b;
    memset(&b, 0, sizeof b);
    b.d = 0x3400;    /* 0.25 */
    b.dmin = 0x3c00; /* 1.0 */
    pack_scales_by_hand(b.scales);
    for (int e = 0; e < 256; e++) {
        const int q = (11 * e + 5) & 31, sub = e / 32, l = e % 32;
        b.qs[32 * (sub / 2) + l] |= (uint8_t)(sub % 2 ? (q & 15) << 4 : q & 15);
        if (q & 16) b.qh[l] |= (uint8_t)(1u << sub); /* fifth bit of sub-block s in bit s of qh[l] */
    }
    float y[256];
    CHECK_OK(kiln_dequantize_row(KILN_Q5_K, &b, y, 256));
    int bad = 0;
    for (int e = 0; e < 256; e++) {
        const int q = (11 * e + 5) & 31, sub = e / 32;
        bad += y[e] != 0.25f * (float)SC[sub] * (float)q - (float)MN[sub];
    }
    CHECK_MSG(bad == 0, "q5_k: %d elements differ", bad);
    /* every level 16..31 needs its qh bit: with qh cleared each drops by 16 */
    memset(b.qh, 0, sizeof b.qh);
    CHECK_OK(kiln_dequantize_row(KILN_Q5_K, &b, y, 256));
    bad = 0;
    for (int e = 0; e < 256; e++) {
        const int q = ((11 * e + 5) & 31) & 15, sub = e / 32;
        bad += y[e] != 0.25f * (float)SC[sub] * (float)q - (float)MN[sub];
    }
    CHECK(bad == 0);
}

static void test_q6_k_known(void) {
    static const int8_t sc6[16] = {-128, 127, -1, 5, 0, 64, -33, 1, 2, -2, 100, -100, 7, 13, -77, 31};
    kiln_block_q6_k b;
    memset(&b, 0, sizeof b);
    b.d = 0x3400; /* 0.25 */
    memcpy(b.scales, sc6, 16);
    for (int e = 0; e < 256; e++) {
        const int q = (13 * e + 1) & 63; /* stored level; value q - 32 */
        const int h = e / 128, i = (e % 128) / 32, l = e % 32;
        /* low 4 bits: i = 0, 2 in ql[l] (low, high nibble), i = 1, 3 in ql[l + 32];
         * high 2 bits: bits 2i, 2i+1 of qh[l] (per half: 64 bytes of ql, 32 of qh) */
        uint8_t *ql = &b.ql[64 * h + l + (i & 1) * 32];
        *ql |= (uint8_t)(i >= 2 ? (q & 15) << 4 : q & 15);
        b.qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * i));
    }
    float y[256];
    CHECK_OK(kiln_dequantize_row(KILN_Q6_K, &b, y, 256));
    int bad = 0;
    for (int e = 0; e < 256; e++) {
        const int q = (13 * e + 1) & 63;
        bad += y[e] != 0.25f * (float)sc6[e / 16] * (float)(q - 32);
    }
    CHECK_MSG(bad == 0, "q6_k: %d elements differ", bad);
}

/* ---- quantize -> dequantize ----------------------------------------------------------- */

static const kiln_dtype KT[3] = {KILN_Q4_K, KILN_Q5_K, KILN_Q6_K};

/* rms(back - x) / rms(x) of a round trip (0 when x is all zero and back too). */
static double roundtrip_err(kiln_dtype t, const float *x, int64_t n, float *back) {
    size_t rb;
    kiln_dtype_row_bytes(t, n, &rb);
    uint8_t *buf = malloc(rb);
    CHECK_OK(kiln_quantize_row(t, x, buf, n));
    CHECK_OK(kiln_dequantize_row(t, buf, back, n));
    double e2 = 0, x2 = 0;
    for (int64_t i = 0; i < n; i++) {
        e2 += ((double)back[i] - x[i]) * ((double)back[i] - x[i]);
        x2 += (double)x[i] * x[i];
    }
    free(buf);
    return x2 > 0 ? sqrt(e2 / x2) : sqrt(e2);
}

/*
 * Tolerances (relative RMS error), about 1.5x what the quantizers give:
 *  uniform in [-1, 1): a b-bit grid over the sub-block range gives relative RMS
 *    error ~ 1/(2^b - 1) (measured: Q4_K 0.054, Q5_K 0.028, Q6_K 0.013);
 *  gaussian-like rows (sum of 4 uniforms) with rare 20x outliers: the range is
 *    wider than the bulk (measured: Q4_K 0.088, Q5_K 0.044, Q6_K 0.029);
 *  constant rows are exact up to fp16 scales (< 1e-3); zero rows are exact.
 */
static void test_roundtrip(void) {
    const double tol_uniform[3] = {0.08, 0.04, 0.02}, tol_gauss[3] = {0.13, 0.066, 0.043};
    const double tol_outlier[3] = {0.09, 0.047, 0.023};
    enum { N = 4096 };
    static float x[N], back[N];
    kiln_rng rng;
    kiln_rng_seed(&rng, 77);
    for (int ti = 0; ti < 3; ti++) {
        const kiln_dtype t = KT[ti];
        for (int i = 0; i < N; i++) x[i] = 2.0f * kiln_rng_f32(&rng) - 1.0f;
        double e = roundtrip_err(t, x, N, back);
        CHECK_MSG(e < tol_uniform[ti], "%s uniform: %g", kiln_dtype_name(t), e);
        if (getenv("KILN_TEST_VERBOSE")) printf("%s uniform %.4f\n", kiln_dtype_name(t), e);

        for (int i = 0; i < N; i++) {
            float g = 0;
            for (int j = 0; j < 4; j++) g += kiln_rng_f32(&rng) - 0.5f;
            x[i] = 0.02f * g * (i % 331 == 0 ? 20.0f : 1.0f); /* weights-like, rare outliers */
        }
        e = roundtrip_err(t, x, N, back);
        CHECK_MSG(e < tol_gauss[ti], "%s gaussian+outliers: %g", kiln_dtype_name(t), e);
        if (getenv("KILN_TEST_VERBOSE")) printf("%s gaussian %.4f\n", kiln_dtype_name(t), e);

        /* One outlier in a super-block. Its sub-block scale sets the super-block's
         * scale of scales, so the other sub-blocks keep 6-bit (Q6_K: 8-bit) scales
         * relative to it: with a 10x outlier they stay usable (measured relative
         * error of the other sub-blocks: Q4_K 0.060, Q5_K 0.031, Q6_K 0.015); with
         * a 1000x one their scales round to 0 and they degrade to relative error
         * ~1.9 (Q4_K/Q5_K: only the minimum remains) or 1.0 (Q6_K: zeros), a
         * property of the format (llama.cpp writes the same bytes). The outlier
         * itself is always kept. */
        for (int big = 0; big < 2; big++) {
            for (int i = 0; i < 256; i++) x[i] = 0.01f * (2.0f * kiln_rng_f32(&rng) - 1.0f);
            const float out = big ? 10.0f : 0.1f;
            x[37] = out;
            (void)roundtrip_err(t, x, 256, back);
            CHECK_MSG(fabsf(back[37] - out) < out * (float)tol_uniform[ti], "%s outlier %g -> %g", kiln_dtype_name(t),
                      out, back[37]);
            double e2 = 0, x2 = 0;
            for (int i = 64; i < 256; i++) {
                e2 += ((double)back[i] - x[i]) * ((double)back[i] - x[i]);
                x2 += (double)x[i] * x[i];
            }
            if (getenv("KILN_TEST_VERBOSE")) printf("%s outlier %g: rest %.4f\n", kiln_dtype_name(t), out, sqrt(e2 / x2));
            CHECK_MSG(sqrt(e2 / x2) < (big ? 2.5 : tol_outlier[ti]), "%s outlier %g: rest %g",
                      kiln_dtype_name(t), out, sqrt(e2 / x2));
        }

        /* zeros: exact zeros */
        memset(x, 0, sizeof(float) * 512);
        CHECK(roundtrip_err(t, x, 512, back) == 0.0);
        /* constants, positive and negative */
        for (int s = -1; s <= 1; s += 2) {
            for (int i = 0; i < 512; i++) x[i] = 0.3f * (float)s;
            e = roundtrip_err(t, x, 512, back);
            CHECK_MSG(e < 1e-3, "%s constant %g: %g", kiln_dtype_name(t), 0.3 * s, e);
        }
        /* a row mixing zero sub-blocks with tiny and large ones */
        for (int i = 0; i < 512; i++) x[i] = (i / 32) % 3 == 0 ? 0.0f : (i / 32) % 3 == 1 ? 1e-4f * (float)(i % 7) : (float)(i % 5) - 2.0f;
        e = roundtrip_err(t, x, 512, back);
        CHECK_MSG(e < tol_uniform[ti], "%s mixed: %g", kiln_dtype_name(t), e);
        for (int i = 0; i < 512; i++)
            if ((i / 32) % 3 == 0) CHECK(fabsf(back[i]) <= 1e-3f);
    }
}

/* ---- micro kernels --------------------------------------------------------------------- */

typedef struct {
    kiln_tensor w;
    uint8_t *data;
    size_t row;
} wmat;

static void wmat_make(wmat *m, kiln_dtype t, int64_t k, int64_t rows, const float *src) {
    kiln_dtype_row_bytes(t, k, &m->row);
    m->data = malloc(m->row * (size_t)rows);
    for (int64_t r = 0; r < rows; r++) kiln_quantize_row(t, src + r * k, m->data + (size_t)r * m->row, k);
    memset(&m->w, 0, sizeof m->w);
    m->w.type = t;
    m->w.n_dims = 2;
    m->w.ne[0] = k, m->w.ne[1] = rows, m->w.ne[2] = 1, m->w.ne[3] = 1;
    size_t total;
    kiln_tensor_set_contiguous(&m->w, &total);
    m->w.data = m->data;
}

/*
 * The reference kernel's output against sum_j w_j * x_j in double, w the dequantized
 * weights and x the dequantized Q8_0 activations: the kernel's integer parts are
 * exact, so only its f32 scaling and summation round. Bound: |y - y_double| <=
 * 1e-6 * sum_j |w_j * x_j| (relative to the magnitude of the terms, since the dot
 * itself may cancel to near zero).
 */
static void test_ref_kernel(void) {
    enum { K = 2048, M = 12, NI = 3 };
    kiln_rng rng;
    kiln_rng_seed(&rng, 5);
    float *src = malloc(sizeof(float) * K * M), *x = malloc(sizeof(float) * K * NI);
    for (int i = 0; i < K * M; i++) src[i] = (kiln_rng_f32(&rng) - 0.4f) * (i % 97 == 0 ? 8.0f : 1.0f);
    for (int i = 0; i < K * NI; i++) x[i] = 2.0f * kiln_rng_f32(&rng) - 1.0f;
    float wd[K], xd[K], y[NI * M];
    kiln_block_q8_0 xq[K / 32];
    for (int ti = 0; ti < 3; ti++) {
        wmat m;
        wmat_make(&m, KT[ti], K, M, src);
        CHECK_OK(kiln_matmul_with(kiln_kernels_table(KILN_ISA_REF), &m.w, x, NI, y, NULL));
        double worst = 0;
        for (int i = 0; i < NI; i++) {
            kiln_quantize_row(KILN_Q8_0, x + i * K, xq, K);
            kiln_dequantize_row(KILN_Q8_0, xq, xd, K);
            for (int r = 0; r < M; r++) {
                kiln_dequantize_row(KT[ti], m.data + (size_t)r * m.row, wd, K);
                double s = 0, sa = 0;
                for (int j = 0; j < K; j++) {
                    s += (double)wd[j] * xd[j];
                    sa += fabs((double)wd[j] * xd[j]);
                }
                const double rel = fabs(y[i * M + r] - s) / sa;
                if (rel > worst) worst = rel;
            }
        }
        CHECK_MSG(worst <= 1e-6, "%s ref kernel: relative error %g", kiln_dtype_name(KT[ti]), worst);
        if (getenv("KILN_TEST_VERBOSE")) printf("%s ref kernel vs double: %g\n", kiln_dtype_name(KT[ti]), worst);
        free(m.data);
    }
    free(src);
    free(x);
}

/* Blocks at the extremes: every level and scale at its maximum (and Q6_K's minimum
 * level, -32, with scale -128), activations all +127 or alternating +-127. Every
 * level must equal the reference (NMSE <= 1e-10 as in test_matmul). */
static void test_extremes(void) {
    enum { K = 512, M = 5, NI = 4 };
    float x[NI * K], yr[NI * M], yv[NI * M];
    for (int i = 0; i < NI * K; i++) x[i] = (i / K) % 2 ? ((i % 2) ? -1.0f : 1.0f) : 1.0f;
    for (int ti = 0; ti < 3; ti++) {
        const kiln_dtype t = KT[ti];
        size_t row;
        kiln_dtype_row_bytes(t, K, &row);
        uint8_t *data = malloc(row * M);
        for (int r = 0; r < M; r++) {
            for (int b = 0; b < K / 256; b++) {
                uint8_t *blk = data + (size_t)r * row + (size_t)b * kiln_dtype_get(t)->type_size;
                if (t == KILN_Q6_K) {
                    kiln_block_q6_k q;
                    memset(q.ql, r % 2 ? 0x00 : 0xff, sizeof q.ql);
                    memset(q.qh, r % 2 ? 0x00 : 0xff, sizeof q.qh);
                    memset(q.scales, r % 2 ? 0x80 : 0x7f, sizeof q.scales);
                    q.d = 0x3c00;
                    memcpy(blk, &q, sizeof q);
                } else {
                    const size_t sz = (size_t)kiln_dtype_get(t)->type_size;
                    memset(blk, 0xff, sz);
                    const uint16_t one = 0x3c00, dmin = (uint16_t)(r % 2 ? 0x3c00 : 0);
                    memcpy(blk, &one, 2);
                    memcpy(blk + 2, &dmin, 2);
                }
            }
        }
        kiln_tensor w = {.type = t, .n_dims = 2, .ne = {K, M, 1, 1}, .data = data};
        size_t total;
        kiln_tensor_set_contiguous(&w, &total);
        CHECK_OK(kiln_matmul_with(kiln_kernels_table(KILN_ISA_REF), &w, x, NI, yr, NULL));
        for (int l = 1; l < KILN_ISA_COUNT; l++) {
            const kiln_kernel_table *v = kiln_kernels_table((kiln_isa)l);
            if (!v) continue;
            CHECK_OK(kiln_matmul_with(v, &w, x, NI, yv, NULL));
            double num = 0, den = 0;
            for (int i = 0; i < NI * M; i++) {
                num += ((double)yv[i] - yr[i]) * ((double)yv[i] - yr[i]);
                den += (double)yr[i] * yr[i];
            }
            CHECK_MSG(num <= 1e-10 * den, "%s %s extremes: NMSE %g", v->name, kiln_dtype_name(t), num / den);
        }
        free(data);
    }
}

static void test_errors(void) {
    float x[512] = {0};
    uint8_t buf[512 * 2];
    for (int ti = 0; ti < 3; ti++) {
        const kiln_dtype t = KT[ti];
        CHECK(kiln_matmul_supports(t));
        CHECK(kiln_quantize_row(t, x, buf, 255) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_quantize_row(t, x, buf, 288) == KILN_ERR_INVALID_ARG); /* whole Q8_0 blocks, not super-blocks */
        CHECK(kiln_quantize_row(t, x, buf, -256) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_dequantize_row(t, buf, x, 100) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_quantize_row(t, x, buf, 0) == KILN_OK);
        CHECK(kiln_dequantize_row(t, buf, x, 0) == KILN_OK);
        /* a weight whose rows are not whole super-blocks */
        const size_t ts = (size_t)kiln_dtype_get(t)->type_size;
        kiln_tensor w = {.type = t, .n_dims = 2, .ne = {288, 1, 1, 1}, .nb = {ts, 2 * ts, 2 * ts, 2 * ts}, .data = buf};
        float y[4];
        CHECK(kiln_matmul(&w, x, 1, y, NULL) == KILN_ERR_INVALID_ARG);
    }
}

int main(void) {
    test_q4_k_known();
    test_q5_k_known();
    test_q6_k_known();
    test_roundtrip();
    test_ref_kernel();
    test_extremes();
    test_errors();
    TEST_MAIN_END();
}
