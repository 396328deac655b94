/*
 * test_pack.c — weights packed at load (kernels/pack.c, KILN_Q4_0_X16 / Q8_0_X16 / ...):
 * kiln_matmul on packed weights (Q4_0, Q8_0, Q4_K, Q6_K, and Q5_0 where the level reads it) against the reference on the original weights
 * (NMSE <= 1e-10: exact integer block sums, only the float summation order differs,
 * as for the other quantized kernels in test_matmul.c), odd row counts (padding of
 * the last group of 16), sentinels, 1 vs 3 threads bit-identical, and a batch row
 * equal to a call with that row alone. The same for fp32 panels (KILN_F32_P32) from
 * F32 / F16 / BF16, which must also equal the unpacked float GEMM bit for bit.
 */
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

#define SENT 8
static const uint32_t SENTINEL = 0x7fc0beef;

static double nmse(const float *a, const float *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

static float *out_alloc(int64_t n) {
    float *b = malloc(sizeof(float) * (size_t)(n + 2 * SENT));
    for (int64_t i = 0; i < n + 2 * SENT; i++) memcpy(&b[i], &SENTINEL, 4);
    return b + SENT;
}

static bool intact(const float *y, int64_t n) {
    for (int i = 1; i <= SENT; i++)
        if (memcmp(&y[-i], &SENTINEL, 4) || memcmp(&y[n + i - 1], &SENTINEL, 4)) return false;
    return true;
}

int main(void) {
    kiln_kernels_init();
    const kiln_kernel_table *cur = kiln_kernels_current(), *ref = kiln_kernels_table(KILN_ISA_REF);
    kiln_pool *p1 = NULL, *p3 = NULL;
    CHECK_OK(kiln_pool_create(1, &p1));
    CHECK_OK(kiln_pool_create(3, &p3));
    kiln_rng rng;
    kiln_rng_seed(&rng, 7);
    const kiln_dtype types[] = {KILN_Q4_0, KILN_Q8_0, KILN_Q4_K, KILN_Q6_K, KILN_Q5_0, KILN_Q5_K, KILN_Q3_K,
                                KILN_Q2_K, KILN_Q4_1, KILN_Q5_1};
    const int64_t ks[] = {32, 96, 2048 + 32}, ks_k[] = {256, 768, 2048 + 256}, ms[] = {1, 15, 16, 17, 203},
                  ns[] = {1, 2, 9, 33};
    int packed_cases = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ki = 0; ki < 3; ki++)
            for (size_t mi = 0; mi < 5; mi++) {
                const int64_t k = kiln_dtype_get(types[ti])->block_size == 256 ? ks_k[ki] : ks[ki], m = ms[mi];
                if (!kiln_matmul_supports(types[ti])) continue; /* a type this build cannot make */
                size_t row;
                kiln_dtype_row_bytes(types[ti], k, &row);
                uint8_t *data = malloc(row * (size_t)m);
                float *wf = malloc(sizeof(float) * (size_t)k);
                for (int64_t r = 0; r < m; r++) {
                    for (int64_t j = 0; j < k; j++) wf[j] = kiln_rng_f32(&rng) - 0.5f;
                    kiln_quantize_row(types[ti], wf, data + (size_t)r * row, k);
                }
                kiln_tensor w = {.type = types[ti], .n_dims = 2, .ne = {k, m, 1, 1}};
                size_t total;
                kiln_tensor_set_contiguous(&w, &total);
                w.data = data;
                kiln_tensor pw;
                void *mem = NULL;
                kiln_status st = kiln_weight_pack(&w, &pw, &mem);
                const bool ext = types[ti] == KILN_Q5_0 || types[ti] == KILN_Q5_K || types[ti] == KILN_Q3_K ||
                                 types[ti] == KILN_Q2_K || types[ti] == KILN_Q4_1 || types[ti] == KILN_Q5_1;
                if (!cur->gemm_x16 || (ext && !cur->x16_ext)) {
                    CHECK(st == KILN_ERR_UNSUPPORTED && mem == NULL);
                } else {
                    CHECK_OK(st);
                    packed_cases++;
                    for (size_t ni = 0; ni < 4; ni++) {
                        const int64_t n = ns[ni];
                        float *x = malloc(sizeof(float) * (size_t)(n * k));
                        for (int64_t i = 0; i < n * k; i++) x[i] = (kiln_rng_f32(&rng) - 0.5f) * 2;
                        float *yr = out_alloc(n * m), *y1 = out_alloc(n * m), *y3 = out_alloc(n * m),
                              *ys = out_alloc(m);
                        CHECK_OK(kiln_matmul_with(ref, &w, x, n, yr, NULL));
                        CHECK_OK(kiln_matmul(&pw, x, n, y1, p1));
                        CHECK_OK(kiln_matmul(&pw, x, n, y3, p3));
                        const double e = nmse(y1, yr, n * m);
                        CHECK_MSG(e <= 1e-10, "%s k %lld m %lld n %lld: NMSE %g", kiln_dtype_name(types[ti]),
                                  (long long)k, (long long)m, (long long)n, e);
                        CHECK(intact(y1, n * m) && intact(y3, n * m));
                        CHECK_MSG(!memcmp(y1, y3, sizeof(float) * (size_t)(n * m)), "1 vs 3 threads differ");
                        for (int64_t i = 0; i < n; i++) {
                            CHECK_OK(kiln_matmul(&pw, x + i * k, 1, ys, p3));
                            CHECK_MSG(!memcmp(ys, y1 + i * m, sizeof(float) * (size_t)m), "batch row %lld differs",
                                      (long long)i);
                        }
                        CHECK(intact(ys, m));
                        free(yr - SENT), free(y1 - SENT), free(y3 - SENT), free(ys - SENT), free(x);
                    }
                    /* the reference level has no packed kernel: a clear error */
                    float x1[2048 + 256] = {0}, y0[203];
                    CHECK(kiln_matmul_with(ref, &pw, x1, 1, y0, NULL) == KILN_ERR_UNSUPPORTED);
                }
                free(mem);
                free(wf);
                free(data);
            }
    /* fp32 panels (KILN_F32_P32) from F32, F16, BF16: against the reference, equal to
     * the unpacked float GEMM for n >= 16 (the same arithmetic), and the same batch
     * row / thread-count properties for every n */
    int panel_cases = 0;
    kiln_rng_seed(&rng, 11); /* these cases do not depend on how many draws the packed ones made */
    const kiln_dtype ftypes[] = {KILN_F32, KILN_F16, KILN_BF16};
    const int64_t fks[] = {7, 384, 1100}, fms[] = {1, 31, 32, 33, 203}, fns[] = {1, 2, 9, 16, 33};
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t ki = 0; ki < 3; ki++)
            for (size_t mi = 0; mi < 5; mi++) {
                const int64_t k = fks[ki], m = fms[mi];
                size_t row;
                kiln_dtype_row_bytes(ftypes[ti], k, &row);
                uint8_t *data = malloc(row * (size_t)m);
                float *wf = malloc(sizeof(float) * (size_t)k);
                for (int64_t r = 0; r < m; r++) {
                    for (int64_t j = 0; j < k; j++) wf[j] = kiln_rng_f32(&rng) - 0.5f;
                    CHECK_OK(kiln_quantize_row(ftypes[ti], wf, data + (size_t)r * row, k));
                }
                kiln_tensor w = {.type = ftypes[ti], .n_dims = 2, .ne = {k, m, 1, 1}};
                size_t total;
                kiln_tensor_set_contiguous(&w, &total);
                w.data = data;
                kiln_tensor pw;
                void *mem = NULL;
                kiln_status st = kiln_weight_pack_panels(&w, &pw, &mem);
                if (!cur->gemmp) {
                    CHECK(st == KILN_ERR_UNSUPPORTED && mem == NULL);
                } else {
                    CHECK_OK(st);
                    CHECK(pw.type == KILN_F32_P32);
                    panel_cases++;
                    for (size_t ni = 0; ni < 5; ni++) {
                        const int64_t n = fns[ni];
                        float *x = malloc(sizeof(float) * (size_t)(n * k));
                        for (int64_t i = 0; i < n * k; i++) x[i] = (kiln_rng_f32(&rng) - 0.5f) * 2;
                        float *yr = out_alloc(n * m), *y1 = out_alloc(n * m), *y3 = out_alloc(n * m),
                              *yu = out_alloc(n * m), *ys = out_alloc(m);
                        CHECK_OK(kiln_matmul_with(ref, &w, x, n, yr, NULL));
                        CHECK_OK(kiln_matmul(&w, x, n, yu, p3));
                        CHECK_OK(kiln_matmul(&pw, x, n, y1, p1));
                        CHECK_OK(kiln_matmul(&pw, x, n, y3, p3));
                        /* fp32 sums in another order than the reference's: a few ulps, which
                         * for one or two outputs of a cancelling sum reached 3e-12 (test_matmul
                         * argues the same bound); a wrong element gives >= 1e-3 */
                        const double e = nmse(y1, yr, n * m);
                        CHECK_MSG(e <= 1e-10, "panels from %s k %lld m %lld n %lld: NMSE %g",
                                  kiln_dtype_name(ftypes[ti]), (long long)k, (long long)m, (long long)n, e);
                        CHECK(intact(y1, n * m) && intact(y3, n * m));
                        CHECK_MSG(!memcmp(y1, y3, sizeof(float) * (size_t)(n * m)), "panels: 1 vs 3 threads differ");
                        if (n >= KILN_PACK_MIN_N)
                            CHECK_MSG(!memcmp(y1, yu, sizeof(float) * (size_t)(n * m)),
                                      "panels differ from the unpacked GEMM (%s k %lld m %lld n %lld)",
                                      kiln_dtype_name(ftypes[ti]), (long long)k, (long long)m, (long long)n);
                        for (int64_t i = 0; i < n; i++) {
                            CHECK_OK(kiln_matmul(&pw, x + i * k, 1, ys, p3));
                            CHECK_MSG(!memcmp(ys, y1 + i * m, sizeof(float) * (size_t)m),
                                      "panels: batch row %lld differs", (long long)i);
                        }
                        CHECK(intact(ys, m));
                        free(yr - SENT), free(y1 - SENT), free(y3 - SENT), free(yu - SENT), free(ys - SENT), free(x);
                    }
                    float x1[1100] = {0}, y0[203];
                    CHECK(kiln_matmul_with(ref, &pw, x1, 1, y0, NULL) == KILN_ERR_UNSUPPORTED);
                }
                free(mem);
                free(wf);
                free(data);
            }
    /* quantized types have no panel layout */
    {
        uint8_t q[34] = {0};
        kiln_tensor qt = {.type = KILN_Q8_0, .n_dims = 2, .ne = {32, 1, 1, 1}, .data = q};
        size_t qtotal;
        kiln_tensor_set_contiguous(&qt, &qtotal);
        kiln_tensor pq;
        void *qmem = NULL;
        CHECK(kiln_weight_pack_panels(&qt, &pq, &qmem) == KILN_ERR_UNSUPPORTED && qmem == NULL);
    }
    /* types without a packed layout are left alone */
    uint8_t buf[64] = {0};
    kiln_tensor f = {.type = KILN_F32, .n_dims = 2, .ne = {4, 4, 1, 1}, .data = buf};
    size_t total;
    kiln_tensor_set_contiguous(&f, &total);
    kiln_tensor pf;
    void *mem = NULL;
    CHECK(kiln_weight_pack(&f, &pf, &mem) == KILN_ERR_UNSUPPORTED && mem == NULL);
    CHECK(kiln_weight_copy_large(&f, &pf, &mem) == KILN_ERR_UNSUPPORTED && mem == NULL); /* under 2 MiB */
    /* Large copies (kiln_weight_copy_large): any type, rows with a padded stride in the
     * source come out back to back, and the matmul gives the same bits as on the source. */
    int copy_cases = 0;
    const kiln_dtype copy_types[] = {KILN_F16, KILN_BF16, KILN_Q4_1, KILN_Q5_1};
    for (size_t ti = 0; ti < sizeof copy_types / sizeof *copy_types; ti++) {
        const kiln_dtype ty = copy_types[ti];
        const int64_t k = 512;
        size_t row;
        CHECK(kiln_dtype_row_bytes(ty, k, &row));
        const int64_t m = (int64_t)(((size_t)2 << 20) / row) + 3; /* just over 2 MiB, an odd row count */
        const size_t stride = row + 64;
        uint8_t *src = malloc(stride * (size_t)m);
        float *row_f = malloc(sizeof(float) * (size_t)k);
        for (int64_t r = 0; r < m; r++) {
            for (int64_t j = 0; j < k; j++) row_f[j] = (float)((r * 37 + j * 11) % 101) / 101.0f - 0.5f;
            CHECK_OK(kiln_quantize_row(ty, row_f, src + (size_t)r * stride, k));
            memset(src + (size_t)r * stride + row, 0xAB, 64); /* padding the copy must skip */
        }
        kiln_tensor w = {.type = ty, .n_dims = 2, .ne = {k, m, 1, 1}, .data = src};
        w.nb[0] = kiln_dtype_get(ty)->type_size, w.nb[1] = stride, w.nb[2] = w.nb[3] = stride * (size_t)m;
        kiln_tensor cw;
        void *cmem = NULL;
        CHECK_OK(kiln_weight_copy_large(&w, &cw, &cmem));
        CHECK(cmem == cw.data && cw.type == ty && cw.nb[1] == row && cw.ne[0] == k && cw.ne[1] == m);
        CHECK(((uintptr_t)cw.data & 63) == 0);
        for (int64_t r = 0; r < m; r += 997)
            CHECK(memcmp((const uint8_t *)cw.data + (size_t)r * row, src + (size_t)r * stride, row) == 0);
        for (int64_t n = 1; n <= 5; n += 4) {
            float *x = malloc(sizeof(float) * (size_t)(k * n));
            float *y0 = out_alloc(m * n), *y1 = out_alloc(m * n);
            for (int64_t i = 0; i < k * n; i++) x[i] = (float)(i % 29) / 29.0f - 0.4f;
            CHECK_OK(kiln_matmul(&w, x, n, y0, p3));
            CHECK_OK(kiln_matmul(&cw, x, n, y1, p3));
            CHECK(memcmp(y0, y1, sizeof(float) * (size_t)(m * n)) == 0 && intact(y1, m * n));
            free(x), free(y0 - SENT), free(y1 - SENT);
            copy_cases++;
        }
        free(cmem), free(src), free(row_f);
    }
    printf("%s: %d packed cases, %d panel cases, %d copy cases\n", kiln_kernels_isa(), packed_cases, panel_cases, copy_cases);
    kiln_pool_free(p1);
    kiln_pool_free(p3);
    TEST_MAIN_END();
}
