/*
 * test_gemm_bf16.c — kiln_matmul on bf16 panels (KILN_BF16_P32, AVX-512 BF16): against
 * a double reference on the bf16-rounded weights and inputs, and against the exact
 * f32 product with bf16's error bound; 1 vs 2 threads and batch rows vs single-row
 * calls bit-identical; sentinels. Skipped (77) where the CPU has no AVX512_BF16. Ends
 * with GFLOP/s of bf16 vs fp32 panels on a 4096x320 · 320x1280 product (printed only).
 *
 * Tolerances, per output, with S = sum |w x| over the row:
 *  - vs the reference on the rounded values: the products are exact in fp32, so only
 *    the k fp32 additions round: |y - ref| <= k 2^-24 S (also a floor of 1e-30).
 *  - vs the exact f32 product: bf16 keeps 8 significant bits, so rounding weight and
 *    input moves each by at most 2^-8 of itself and their product by at most
 *    2^-7 + 2^-16: |y - exact| <= (2^-7 + 2^-16 + k 2^-24) S.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

static kiln_rng rng;
static float frand(float s) { return (kiln_rng_f32(&rng) - 0.5f) * 2.0f * s; }


static float bf(float v) { return kiln_bf16_to_f32(kiln_f32_to_bf16(v)); }

static double worst_ref, worst_exact;

static void one_case(const kiln_kernel_table *t, kiln_pool *p1, kiln_pool *p2, int64_t n, int64_t k, int64_t m,
                     kiln_dtype wt) {
    const size_t esz = wt == KILN_F32 ? 4 : 2;
    float *wf = malloc((size_t)(m * k) * 4), *x = malloc((size_t)(n * k) * 4);
    uint8_t *wb = malloc((size_t)(m * k) * esz);
    for (int64_t i = 0; i < m * k; i++) {
        wf[i] = frand(1.0f);
        if (wt == KILN_F32) {
            memcpy(wb + 4 * i, &wf[i], 4);
        } else {
            const uint16_t h = wt == KILN_F16 ? kiln_f32_to_fp16(wf[i]) : kiln_f32_to_bf16(wf[i]);
            memcpy(wb + 2 * i, &h, 2);
            wf[i] = wt == KILN_F16 ? kiln_fp16_to_f32(h) : kiln_bf16_to_f32(h);
        }
    }
    for (int64_t i = 0; i < n * k; i++) x[i] = frand(2.0f);
    kiln_tensor w = {.type = wt, .n_dims = 2, .ne = {k, m, 1, 1}, .nb = {esz, esz * (size_t)k}, .data = wb}, wp;
    void *mem;
    CHECK_OK(kiln_weight_pack_panels_bf16_with(t, &w, &wp, &mem));
    CHECK(wp.type == KILN_BF16_P32 && wp.ne[0] == k && wp.ne[1] == m);
    float *y1 = kiln_test_guarded_alloc((size_t)(n * m)), *y2 = kiln_test_guarded_alloc((size_t)(n * m)), *yr = kiln_test_guarded_alloc((size_t)m);
    CHECK_OK(kiln_matmul_with(t, &wp, x, n, y1, p1));
    CHECK_OK(kiln_matmul_with(t, &wp, x, n, y2, p2));
    CHECK_MSG(kiln_test_guard_intact(y1, (size_t)(n * m)) && kiln_test_guard_intact(y2, (size_t)(n * m)), "bf16 sentinels n %lld", (long long)n);
    CHECK_MSG(memcmp(y1, y2, sizeof(float) * (size_t)(n * m)) == 0, "bf16 1 vs 2 threads n %lld k %lld m %lld",
              (long long)n, (long long)k, (long long)m);
    const int64_t row = n / 2;
    CHECK_OK(kiln_matmul_with(t, &wp, x + row * k, 1, yr, p2));
    CHECK_MSG(memcmp(yr, y1 + row * m, sizeof(float) * (size_t)m) == 0 && kiln_test_guard_intact(yr, (size_t)m),
              "bf16: a batch row differs from a call with that row (n %lld k %lld m %lld)", (long long)n,
              (long long)k, (long long)m);
    double wr = 0, we = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < m; o++) {
            double ref = 0, exact = 0, s = 0;
            for (int64_t j = 0; j < k; j++) {
                const double a = wf[o * k + j], b = x[i * k + j];
                ref += (double)bf((float)a) * (double)bf((float)b);
                exact += a * b;
                s += fabs(a * b);
            }
            const double y = y1[i * m + o], u = ldexp(1.0, -24);
            wr = fmax(wr, fabs(y - ref) / (k * u * s + 1e-30));
            we = fmax(we, fabs(y - exact) / ((ldexp(1.0, -7) + ldexp(1.0, -16) + k * u) * s + 1e-30));
        }
    worst_ref = fmax(worst_ref, wr), worst_exact = fmax(worst_exact, we);
    CHECK_MSG(wr <= 1.0 && we <= 1.0, "bf16 n %lld k %lld m %lld %s: %.3g / %.3g of the bounds", (long long)n,
              (long long)k, (long long)m, kiln_dtype_name(wt), wr, we);
    kiln_test_guarded_free(y1), kiln_test_guarded_free(y2), kiln_test_guarded_free(yr);
    free(wf), free(x), free(wb), free(mem);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void timing(const kiln_kernel_table *t, kiln_pool *pools[2]) {
    const char *e = getenv("KILN_SANITIZE");
    if (e && *e) return;
    enum { N = 4096, K = 320, M = 1280 };
    float *w = malloc(sizeof(float) * K * M), *x = malloc(sizeof(float) * N * K), *y = malloc(sizeof(float) * N * M);
    for (int i = 0; i < K * M; i++) w[i] = frand(0.1f);
    for (int i = 0; i < N * K; i++) x[i] = frand(1.0f);
    kiln_tensor wt = {.type = KILN_F32, .n_dims = 2, .ne = {K, M, 1, 1}, .nb = {4, 4 * K}, .data = w}, pb, pf;
    void *mb, *mf;
    CHECK_OK(kiln_weight_pack_panels_bf16_with(t, &wt, &pb, &mb));
    CHECK_OK(kiln_weight_pack_panels_with(t, &wt, &pf, &mf));
    const double flop = 2.0 * N * K * M;
    for (int p = 0; p < 2; p++) {
        double tb = 1e9, tf = 1e9;
        for (int r = 0; r < 4; r++) {
            double t0 = now_s();
            CHECK_OK(kiln_matmul_with(t, &pb, x, N, y, pools[p]));
            tb = fmin(tb, now_s() - t0);
            t0 = now_s();
            CHECK_OK(kiln_matmul_with(t, &pf, x, N, y, pools[p]));
            tf = fmin(tf, now_s() - t0);
        }
        printf("4096x320 . 320x1280, %d thread(s): bf16 panels %.1f GFLOP/s, fp32 panels %.1f GFLOP/s\n", p + 1,
               flop / tb * 1e-9, flop / tf * 1e-9);
    }
    free(w), free(x), free(y), free(mb), free(mf);
}

int main(void) {
    const kiln_kernel_table *t = kiln_kernels_table(KILN_ISA_AVX512);
    if (!t || !t->gemmb) {
        printf("no AVX512_BF16: skipped\n");
        return 77;
    }
    kiln_rng_seed(&rng, 16);
    kiln_pool *p1, *p2;
    CHECK_OK(kiln_pool_create(1, &p1));
    CHECK_OK(kiln_pool_create(2, &p2));
    static const int64_t ns[] = {1, 2, 13, 14, 15, 16, 29, 40};
    static const int64_t ks[] = {1, 2, 3, 17, 32, 63, 320};
    static const int64_t ms[] = {1, 15, 32, 33, 70, 130};
    static const kiln_dtype wts[] = {KILN_F32, KILN_F16, KILN_BF16};
    int c = 0;
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
            for (size_t d = 0; d < sizeof ms / sizeof ms[0]; d++, c++)
                one_case(t, p1, p2, ns[a], ks[b], ms[d], wts[c % 3]);
    /* other levels refuse bf16 panels rather than misread them */
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    float w[4] = {1, 2, 3, 4}, x[2] = {1, 1}, y[2];
    kiln_tensor wt = {.type = KILN_F32, .n_dims = 2, .ne = {2, 2, 1, 1}, .nb = {4, 8}, .data = w}, pb;
    void *mem;
    CHECK(kiln_weight_pack_panels_bf16_with(ref, &wt, &pb, &mem) == KILN_ERR_UNSUPPORTED && !mem);
    CHECK_OK(kiln_weight_pack_panels_bf16_with(t, &wt, &pb, &mem));
    CHECK(kiln_matmul_with(ref, &pb, x, 1, y, NULL) == KILN_ERR_UNSUPPORTED);
    CHECK_OK(kiln_matmul_with(t, &pb, x, 1, y, NULL));
    CHECK(y[0] == 3.0f && y[1] == 7.0f);
    free(mem);
    printf("bf16 panels: error %.3g of the fp32-sum bound (vs rounded inputs), %.3g of the bf16 bound (vs exact)\n",
           worst_ref, worst_exact);
    kiln_pool *pools[2] = {p1, p2};
    timing(t, pools);
    kiln_pool_free(p1);
    kiln_pool_free(p2);
    TEST_MAIN_END();
}
