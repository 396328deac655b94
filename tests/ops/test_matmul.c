/*
 * test_matmul.c — kiln_matmul: the reference against a double-precision oracle,
 * every SIMD variant against the reference, for every weight type and odd shapes,
 * with sentinels around the output; batch invariance; 1 vs 2 vs 3 threads
 * bit-identical; argument errors.
 *
 * Tolerances (normalized MSE, sum (y - y_ref)^2 / sum y_ref^2):
 *  - Q8_0/Q4_0: the variants compute the same exact integer block sums as the
 *    reference; only the float summation of the scaled partial sums differs
 *    (order, FMA). Each term carries a relative rounding of ~6e-8, so the NMSE is
 *    ~1e-14 (worst seen ~4e-12, for k = 4128 and a single output, where the
 *    reference's sequential sum dominates); 1e-10 leaves a margin, while any
 *    wrong quant or scale gives 1e-4 or more.
 *  - F32/F16/BF16: exact conversions, so again only the summation order differs:
 *    NMSE ~1e-11 in practice (mostly the reference's own sequential f32 sum over
 *    k = 4128); the bound is 1e-6 (a wrong element gives >= 1e-3).
 * KILN_TEST_VERBOSE=1 prints the NMSE of every case.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

#define SENT 16
static const uint32_t SENTINEL = 0x7fc0dead; /* a NaN no kernel produces */

/* Every weight type the reference multiplies, float types first (filled in main). */
static kiln_dtype TYPES[KILN_DTYPE_COUNT];
static size_t N_TYPES;
/* k values; a type uses those that are whole numbers of its blocks (256 for K-quants). */
static const int64_t KS[] = {32, 64, 96, 256, 768, 4096 + 32, 4096 + 256};
static const int64_t MS[] = {1, 3, 17, 64};
static const int64_t NS[] = {1, 2, 5, 33};

static bool is_quant(kiln_dtype t) { return kiln_type_quantized(t); }

static void collect_types(void) {
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    const kiln_dtype first[] = {KILN_F32, KILN_F16, KILN_BF16};
    for (size_t i = 0; i < 3; i++) TYPES[N_TYPES++] = first[i];
    for (int t = 0; t < KILN_DTYPE_COUNT; t++)
        if (ref->mm[t] && t != KILN_F32 && t != KILN_F16 && t != KILN_BF16) TYPES[N_TYPES++] = (kiln_dtype)t;
}

static int block_of(kiln_dtype t) { return kiln_dtype_get(t)->block_size; }

typedef struct {
    kiln_tensor w;
    uint8_t *data;
    float *x;
    int64_t k, m, n;
} problem;

static void problem_make(problem *p, kiln_dtype t, int64_t k, int64_t m, int64_t n, kiln_rng *rng) {
    p->k = k, p->m = m, p->n = n;
    size_t row;
    kiln_dtype_row_bytes(t, k, &row);
    p->data = malloc(row * (size_t)m);
    float *wf = malloc(sizeof(float) * (size_t)k);
    for (int64_t r = 0; r < m; r++) {
        for (int64_t j = 0; j < k; j++) wf[j] = (kiln_rng_f32(rng) - 0.5f) * (j % 37 == 0 ? 4.0f : 1.0f);
        kiln_quantize_row(t, wf, p->data + (size_t)r * row, k);
    }
    free(wf);
    p->x = malloc(sizeof(float) * (size_t)(k * n));
    for (int64_t i = 0; i < k * n; i++) p->x[i] = (kiln_rng_f32(rng) - 0.5f) * 2.0f;
    memset(&p->w, 0, sizeof p->w);
    p->w.type = t;
    p->w.n_dims = 2;
    p->w.ne[0] = k, p->w.ne[1] = m, p->w.ne[2] = 1, p->w.ne[3] = 1;
    size_t total;
    kiln_tensor_set_contiguous(&p->w, &total);
    p->w.data = p->data;
}

static void problem_free(problem *p) {
    free(p->data);
    free(p->x);
}

/* Output buffer of n*m floats with SENT sentinels on each side. */
static float *out_alloc(int64_t count) {
    float *b = malloc(sizeof(float) * (size_t)(count + 2 * SENT));
    for (int64_t i = 0; i < count + 2 * SENT; i++) memcpy(&b[i], &SENTINEL, 4);
    return b + SENT;
}
static bool out_intact(const float *y, int64_t count) {
    for (int i = 1; i <= SENT; i++) {
        if (memcmp(&y[-i], &SENTINEL, 4) != 0 || memcmp(&y[count + i - 1], &SENTINEL, 4) != 0) return false;
    }
    return true;
}
static void out_free(float *y) { free(y - SENT); }

static double nmse(const float *a, const float *ref, int64_t count) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < count; i++) {
        const double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? num / den : num;
}

/* The product computed independently in double from dequantized rows; for the
 * quantized types x goes through Q8_0 first, as the kernels do. */
static void oracle(const problem *p, double *y) {
    float *wr = malloc(sizeof(float) * (size_t)p->k);
    float *xr = malloc(sizeof(float) * (size_t)p->k);
    uint8_t *xq = malloc((size_t)p->k * 2);
    size_t row;
    kiln_dtype_row_bytes(p->w.type, p->k, &row);
    for (int64_t i = 0; i < p->n; i++) {
        const float *x = p->x + i * p->k;
        if (is_quant(p->w.type)) {
            kiln_quantize_row(KILN_Q8_0, x, xq, p->k);
            kiln_dequantize_row(KILN_Q8_0, xq, xr, p->k);
        } else {
            memcpy(xr, x, sizeof(float) * (size_t)p->k);
        }
        for (int64_t r = 0; r < p->m; r++) {
            kiln_dequantize_row(p->w.type, p->data + (size_t)r * row, wr, p->k);
            double s = 0;
            for (int64_t j = 0; j < p->k; j++) s += (double)wr[j] * (double)xr[j];
            y[i * p->m + r] = s;
        }
    }
    free(wr);
    free(xr);
    free(xq);
}

static void test_variants(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 1234);
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    double worst[KILN_ISA_COUNT][2] = {{0}};
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++)
            for (size_t mi = 0; mi < sizeof MS / sizeof MS[0]; mi++)
                for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
                    const kiln_dtype t = TYPES[ti];
                    const int64_t k = KS[ki], m = MS[mi], n = NS[ni];
                    if (k % block_of(t)) continue;
                    if (k > 4096 && n > 5 && m > 17) continue; /* keep the run short */
                    problem p;
                    problem_make(&p, t, k, m, n, &rng);
                    const int64_t cnt = n * m;
                    const double tol = is_quant(t) ? 1e-10 : 1e-6;

                    float *yr = out_alloc(cnt);
                    CHECK_OK(kiln_matmul_with(ref, &p.w, p.x, n, yr, NULL));
                    CHECK(out_intact(yr, cnt));
                    double *yo = malloc(sizeof(double) * (size_t)cnt);
                    oracle(&p, yo);
                    float *yof = malloc(sizeof(float) * (size_t)cnt);
                    for (int64_t i = 0; i < cnt; i++) yof[i] = (float)yo[i];
                    const double e_ref = nmse(yr, yof, cnt);
                    CHECK_MSG(e_ref <= 1e-10, "ref %s k %lld m %lld n %lld: NMSE vs oracle %g", kiln_dtype_name(t),
                              (long long)k, (long long)m, (long long)n, e_ref);

                    for (int l = 1; l < KILN_ISA_COUNT; l++) {
                        const kiln_kernel_table *v = kiln_kernels_table((kiln_isa)l);
                        if (!v) continue;
                        float *y = out_alloc(cnt);
                        CHECK_OK(kiln_matmul_with(v, &p.w, p.x, n, y, NULL));
                        CHECK_MSG(out_intact(y, cnt), "%s %s: output overrun", v->name, kiln_dtype_name(t));
                        const double e = nmse(y, yr, cnt);
                        if (e > worst[l][is_quant(t)]) worst[l][is_quant(t)] = e;
                        if (getenv("KILN_TEST_VERBOSE"))
                            printf("%s %s k %lld m %lld n %lld: NMSE %g\n", v->name, kiln_dtype_name(t),
                                   (long long)k, (long long)m, (long long)n, e);
                        CHECK_MSG(e <= tol, "%s %s k %lld m %lld n %lld: NMSE %g", v->name, kiln_dtype_name(t),
                                  (long long)k, (long long)m, (long long)n, e);
                        out_free(y);
                    }
                    out_free(yr);
                    free(yo);
                    free(yof);
                    problem_free(&p);
                }
    for (int l = 1; l < KILN_ISA_COUNT; l++)
        if (kiln_kernels_table((kiln_isa)l))
            printf("%s: worst NMSE vs ref: float types %.3g, quantized types %.3g\n",
                   kiln_kernels_table((kiln_isa)l)->name, worst[l][0], worst[l][1]);
}

/* 1, 2, 3 threads agree bit for bit in every variant, for the micro kernels and the
 * packed prompt GEMM; with the micro kernels row i of a batch also equals a call with
 * row i alone. */
static void test_determinism(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 99);
    kiln_pool *p1 = NULL, *p2 = NULL, *p3 = NULL;
    CHECK_OK(kiln_pool_create(1, &p1));
    CHECK_OK(kiln_pool_create(2, &p2));
    CHECK_OK(kiln_pool_create(3, &p3));
    /* n = 7 uses the micro kernels, n = 33 the packed prompt GEMM where a level has one */
    for (size_t ti = 0; ti < 2 * N_TYPES; ti++) {
        const int64_t n = ti < N_TYPES ? 7 : 33;
        const kiln_dtype ty = TYPES[ti % N_TYPES];
        const int64_t k = block_of(ty) > 32 ? 768 : 256 + 32, m = 203;
        problem p;
        problem_make(&p, ty, k, m, n, &rng);
        for (int l = 0; l < KILN_ISA_COUNT; l++) {
            const kiln_kernel_table *v = kiln_kernels_table((kiln_isa)l);
            if (!v) continue;
            float *y1 = out_alloc(n * m), *y2 = out_alloc(n * m), *y3 = out_alloc(n * m), *ys = out_alloc(m);
            CHECK_OK(kiln_matmul_with(v, &p.w, p.x, n, y1, p1));
            CHECK_OK(kiln_matmul_with(v, &p.w, p.x, n, y2, p2));
            CHECK_OK(kiln_matmul_with(v, &p.w, p.x, n, y3, p3));
            CHECK_MSG(memcmp(y1, y2, sizeof(float) * (size_t)(n * m)) == 0, "%s %s: 1 vs 2 threads differ", v->name,
                      kiln_dtype_name(ty));
            CHECK(memcmp(y1, y3, sizeof(float) * (size_t)(n * m)) == 0);
            CHECK(out_intact(y2, n * m) && out_intact(y3, n * m));
            /* below the packed path's batch size, a batch row equals a call with that row alone */
            for (int64_t i = 0; n < KILN_PACK_MIN_N && i < n; i++) {
                CHECK_OK(kiln_matmul_with(v, &p.w, p.x + i * k, 1, ys, p2));
                CHECK_MSG(memcmp(ys, y1 + i * m, sizeof(float) * (size_t)m) == 0, "%s %s: batch row %lld differs",
                          v->name, kiln_dtype_name(ty), (long long)i);
            }
            CHECK(out_intact(ys, m));
            /* one input (the split into runs depends on the thread count): 1 and 3 threads */
            if (n < KILN_PACK_MIN_N) {
                CHECK_OK(kiln_matmul_with(v, &p.w, p.x, 1, ys, p3));
                CHECK_MSG(memcmp(ys, y1, sizeof(float) * (size_t)m) == 0, "%s %s: n = 1, 3 threads differs", v->name,
                          kiln_dtype_name(ty));
            }
            out_free(y1), out_free(y2), out_free(y3), out_free(ys);
        }
        problem_free(&p);
    }
    /* the public entry point, with the chosen variant */
    problem p;
    problem_make(&p, KILN_Q4_0, 512, 64, 3, &rng);
    float *a = out_alloc(3 * 64), *b = out_alloc(3 * 64);
    CHECK_OK(kiln_matmul(&p.w, p.x, 3, a, p1));
    CHECK_OK(kiln_matmul(&p.w, p.x, 3, b, p3));
    CHECK(memcmp(a, b, sizeof(float) * 3 * 64) == 0);
    out_free(a), out_free(b);
    problem_free(&p);
    kiln_pool_free(p1);
    kiln_pool_free(p2);
    kiln_pool_free(p3);
}

/* Float weights accept any k (no blocks): k % 16 and k % 8 tails, with the micro
 * kernels (n = 3) and the float prompt GEMM (n = 29: two input groups, the second
 * short; m = 37: a second panel with 5 rows). */
static void test_f32_odd_k(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 5);
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    for (int64_t k = 1; k <= 41; k += 3) {
        for (size_t ti = 0; ti < 3; ti++) {
            for (int64_t n = 3; n <= 29; n += 26) {
                const int64_t m = n == 3 ? 5 : 37, cnt = n * m;
                problem p;
                problem_make(&p, TYPES[ti], k, m, n, &rng);
                float *yr = out_alloc(cnt);
                CHECK_OK(kiln_matmul_with(ref, &p.w, p.x, n, yr, NULL));
                for (int l = 1; l < KILN_ISA_COUNT; l++) {
                    const kiln_kernel_table *v = kiln_kernels_table((kiln_isa)l);
                    if (!v) continue;
                    float *y = out_alloc(cnt);
                    CHECK_OK(kiln_matmul_with(v, &p.w, p.x, n, y, NULL));
                    CHECK(out_intact(y, cnt));
                    CHECK_MSG(nmse(y, yr, cnt) <= 1e-6, "%s %s k %lld n %lld", v->name, kiln_dtype_name(TYPES[ti]),
                              (long long)k, (long long)n);
                    out_free(y);
                }
                out_free(yr);
                problem_free(&p);
            }
        }
    }
}

/* kiln_matmul_many: each output has the bits of its own kiln_matmul call, for mixed
 * weight types (float, integer, K-quant, packed at load) sharing one input, with one
 * input (weight streams), a few (micro kernels) and a batch (prompt GEMMs), on 1 and
 * 3 threads; bad arguments are refused. */
static void test_matmul_many(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 77);
    const int64_t k = 512;
    const kiln_dtype types[4] = {KILN_Q4_0, KILN_F16, KILN_Q4_K, KILN_Q8_0};
    const int64_t ms[4] = {40, 17, 33, 64};
    problem p[4];
    kiln_tensor w[4];
    void *packed[4] = {0};
    for (int i = 0; i < 4; i++) {
        problem_make(&p[i], types[i], k, ms[i], 33, &rng);
        w[i] = p[i].w;
        /* Q8_0 as packed at load where this CPU has a layout for it */
        if (i == 3 && kiln_weight_pack(&p[i].w, &w[i], &packed[i]) != KILN_OK) w[i] = p[i].w;
    }
    kiln_pool *pools[2] = {NULL, NULL};
    CHECK_OK(kiln_pool_create(1, &pools[0]));
    CHECK_OK(kiln_pool_create(3, &pools[1]));
    const int64_t ns[3] = {1, 5, 33};
    for (int pi = 0; pi < 2; pi++)
        for (int ni = 0; ni < 3; ni++) {
            const int64_t n = ns[ni];
            const kiln_tensor *ws[4] = {&w[0], &w[1], &w[2], &w[3]};
            float *ys[4], *yone[4];
            for (int i = 0; i < 4; i++) ys[i] = out_alloc(n * ms[i]), yone[i] = out_alloc(n * ms[i]);
            CHECK_OK(kiln_matmul_many(4, ws, p[0].x, n, ys, pools[pi]));
            for (int i = 0; i < 4; i++) {
                CHECK_OK(kiln_matmul(ws[i], p[0].x, n, yone[i], pools[pi]));
                CHECK(out_intact(ys[i], n * ms[i]));
                CHECK_MSG(memcmp(ys[i], yone[i], sizeof(float) * (size_t)(n * ms[i])) == 0,
                          "matmul_many %s n %lld: differs from its own call", kiln_dtype_name(ws[i]->type),
                          (long long)n);
                out_free(ys[i]), out_free(yone[i]);
            }
        }
    /* refused: no weights, too many, widths that differ */
    const kiln_tensor *ws[5] = {&w[0], &w[1], &w[2], &w[3], &w[0]};
    float y[64 * 5], *ys[5] = {y, y, y, y, y};
    CHECK(kiln_matmul_many(0, ws, p[0].x, 1, ys, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_matmul_many(5, ws, p[0].x, 1, ys, NULL) == KILN_ERR_INVALID_ARG);
    problem narrow;
    problem_make(&narrow, KILN_F32, 256, 3, 1, &rng);
    const kiln_tensor *mixed[2] = {&w[1], &narrow.w};
    CHECK(kiln_matmul_many(2, mixed, p[0].x, 1, ys, NULL) == KILN_ERR_INVALID_ARG);
    problem_free(&narrow);
    for (int i = 0; i < 4; i++) free(packed[i]), problem_free(&p[i]);
    kiln_pool_free(pools[0]);
    kiln_pool_free(pools[1]);
}

/* Rows further apart than their size (a view into a larger matrix). */
static void test_strided_rows(void) {
    const int64_t k = 64, m = 3;
    kiln_block_q8_0 blocks[3][4]; /* each row: 2 blocks used, 2 skipped */
    float w[64], x[64], y[3], yc[3];
    kiln_rng rng;
    kiln_rng_seed(&rng, 3);
    for (int j = 0; j < 64; j++) x[j] = kiln_rng_f32(&rng) - 0.5f;
    kiln_block_q8_0 dense[3][2];
    for (int r = 0; r < 3; r++) {
        for (int j = 0; j < 64; j++) w[j] = kiln_rng_f32(&rng) - 0.5f;
        kiln_quantize_row(KILN_Q8_0, w, blocks[r], 64);
        memcpy(dense[r], blocks[r], sizeof dense[r]);
    }
    kiln_tensor t = {.type = KILN_Q8_0, .n_dims = 2, .ne = {k, m, 1, 1}, .nb = {34, 4 * 34, 12 * 34, 12 * 34},
                     .data = blocks};
    kiln_tensor td = {.type = KILN_Q8_0, .n_dims = 2, .ne = {k, m, 1, 1}, .nb = {34, 2 * 34, 6 * 34, 6 * 34},
                      .data = dense};
    CHECK_OK(kiln_matmul(&t, x, 1, y, NULL));
    CHECK_OK(kiln_matmul(&td, x, 1, yc, NULL));
    CHECK(memcmp(y, yc, sizeof y) == 0);
}

/* Weights at an odd address (a file may align tensors less than their element
 * size): same bits as from an aligned copy, in every variant. */
static void test_misaligned(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 17);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        problem p;
        const int64_t k = block_of(TYPES[ti]) > 32 ? 256 : 96;
        problem_make(&p, TYPES[ti], k, 9, 2, &rng);
        size_t row;
        kiln_dtype_row_bytes(TYPES[ti], k, &row);
        uint8_t *odd = malloc(row * 9 + 1);
        memcpy(odd + 1, p.data, row * 9);
        kiln_tensor t = p.w;
        t.data = odd + 1;
        for (int l = 0; l < KILN_ISA_COUNT; l++) {
            const kiln_kernel_table *v = kiln_kernels_table((kiln_isa)l);
            if (!v) continue;
            float ya[18], yb[18];
            CHECK_OK(kiln_matmul_with(v, &p.w, p.x, 2, ya, NULL));
            CHECK_OK(kiln_matmul_with(v, &t, p.x, 2, yb, NULL));
            CHECK_MSG(memcmp(ya, yb, sizeof ya) == 0, "%s %s misaligned", v->name, kiln_dtype_name(TYPES[ti]));
        }
        free(odd);
        problem_free(&p);
    }
}

static void test_errors(void) {
    float x[64] = {0}, y[4];
    uint8_t data[1024] = {0};
    kiln_tensor t = {.type = KILN_Q8_1, .n_dims = 2, .ne = {32, 1, 1, 1}, .data = data};
    size_t total;
    kiln_tensor_set_contiguous(&t, &total);
    CHECK(kiln_matmul(&t, x, 1, y, NULL) == KILN_ERR_UNSUPPORTED); /* an activation-only type */
    CHECK(!kiln_matmul_supports(KILN_Q8_1) && kiln_matmul_supports(KILN_Q4_0) && kiln_matmul_supports(KILN_BF16));
    t.type = KILN_Q8_0;
    t.ne[0] = 48; /* not a whole number of blocks */
    CHECK(kiln_matmul(&t, x, 1, y, NULL) == KILN_ERR_INVALID_ARG);
    t.ne[0] = 32;
    t.nb[0] = 34, t.nb[1] = 20; /* rows overlap */
    CHECK(kiln_matmul(&t, x, 1, y, NULL) == KILN_ERR_INVALID_ARG);
    t.nb[1] = 34;
    t.ne[2] = 2; /* 3-D */
    CHECK(kiln_matmul(&t, x, 1, y, NULL) == KILN_ERR_INVALID_ARG);
    t.ne[2] = 1;
    CHECK(kiln_matmul(&t, x, -1, y, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_matmul(&t, x, 0, y, NULL) == KILN_OK);
    CHECK(kiln_matmul(&t, x, 1, y, NULL) == KILN_OK && y[0] == 0.0f);
    /* a row count whose scratch size overflows is refused before allocating */
    CHECK(kiln_matmul(&t, x, INT64_MAX / 2, y, NULL) == KILN_ERR_NOMEM);
}

int main(void) {
    printf("kernels: %s\n", kiln_kernels_isa());
    collect_types();
    test_variants();
    test_determinism();
    test_f32_odd_k();
    test_matmul_many();
    test_strided_rows();
    test_misaligned();
    test_errors();
    TEST_MAIN_END();
}
