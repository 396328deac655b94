/*
 * test_attention_mh.c — kiln_attention_mh (full multi-head attention as blocked
 * matrix products) against a double-precision direct computation: f32 panels to
 * 1e-5 and bf16 panels to bf16's error (both operands of both products rounded to 8
 * significant bits: 3e-2 of the largest output), for shapes around the 64-query
 * block and odd key counts, 1 vs 2 threads bit for bit, at every kernel level, and
 * bad arguments refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels.h"
#include "test.h"

static void reference(const float *q, const float *k, const float *v, int n, int m, int c, int heads, double *out) {
    const int hd = c / heads;
    double *s = malloc(sizeof *s * (size_t)m);
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < n; i++) {
            double mx = -INFINITY, sum = 0;
            for (int t = 0; t < m; t++) {
                double d = 0;
                for (int e = 0; e < hd; e++) d += (double)q[i * c + h * hd + e] * k[t * c + h * hd + e];
                s[t] = d / sqrt((double)hd);
                mx = s[t] > mx ? s[t] : mx;
            }
            for (int t = 0; t < m; t++) sum += (s[t] = exp(s[t] - mx));
            for (int e = 0; e < hd; e++) {
                double o = 0;
                for (int t = 0; t < m; t++) o += s[t] / sum * v[t * c + h * hd + e];
                out[i * c + h * hd + e] = o;
            }
        }
    free(s);
}

static void run(int n, int m, int c, int heads, bool bf16, kiln_pool *p1, kiln_pool *p2) {
    kiln_rng r;
    kiln_rng_seed(&r, (uint64_t)(n * 131 + m * 7 + c));
    float *q = malloc(sizeof *q * (size_t)n * c), *k = malloc(sizeof *k * (size_t)m * c);
    float *v = malloc(sizeof *v * (size_t)m * c), *o1 = malloc(sizeof *o1 * ((size_t)n * c + 1));
    float *o2 = malloc(sizeof *o2 * ((size_t)n * c + 1));
    double *ref = malloc(sizeof *ref * (size_t)n * c);
    for (int i = 0; i < n * c; i++) q[i] = 2 * kiln_rng_f32(&r) - 1;
    for (int i = 0; i < m * c; i++) k[i] = 2 * kiln_rng_f32(&r) - 1, v[i] = 2 * kiln_rng_f32(&r) - 1;
    o1[n * c] = o2[n * c] = 12345.0f; /* sentinel */
    CHECK_OK(kiln_attention_mh(q, k, v, n, m, c, heads, bf16, o1, p1));
    CHECK_OK(kiln_attention_mh(q, k, v, n, m, c, heads, bf16, o2, p2));
    CHECK_MSG(!memcmp(o1, o2, sizeof *o1 * (size_t)n * c), "n %d m %d: 1 and 2 threads differ", n, m);
    CHECK(o1[n * c] == 12345.0f && o2[n * c] == 12345.0f);
    reference(q, k, v, n, m, c, heads, ref);
    double err = 0, big = 0;
    for (int i = 0; i < n * c; i++) {
        err = fmax(err, fabs(o1[i] - ref[i]));
        big = fmax(big, fabs(ref[i]));
    }
    const double tol = bf16 && kiln_kernels_has_bf16() ? 3e-2 : 1e-5;
    CHECK_MSG(err <= tol * big, "%s n %d m %d c %d heads %d (%s): error %.3g of %.3g", kiln_kernels_isa(), n, m, c,
              heads, bf16 ? "bf16" : "f32", err / big, tol);
    free(q), free(k), free(v), free(o1), free(o2), free(ref);
}

int main(void) {
    kiln_pool *p1 = NULL, *p2 = NULL;
    CHECK_OK(kiln_pool_create(1, &p1));
    CHECK_OK(kiln_pool_create(2, &p2));
    static const int shapes[][4] = {{1, 1, 8, 1}, {63, 77, 40, 2}, {64, 64, 64, 1}, {65, 200, 80, 2},
                                    {130, 33, 24, 3}, {256, 256, 160, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int b = 0; b < 2; b++) run(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], b, p1, p2);
    float x[8] = {0}, y[8];
    CHECK(kiln_attention_mh(x, x, x, 1, 1, 8, 3, false, y, p1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_attention_mh(x, x, x, 0, 1, 8, 1, false, y, p1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_attention_mh(NULL, x, x, 1, 1, 8, 1, false, y, p1) == KILN_ERR_INVALID_ARG);
    kiln_pool_free(p1);
    kiln_pool_free(p2);
    TEST_MAIN_END();
}
