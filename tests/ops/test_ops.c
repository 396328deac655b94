/*
 * test_ops.c — the element-wise and reduction ops (rope, rmsnorm, layernorm, softmax,
 * swiglu, gelu, add, dot, axpy) against formulas evaluated in double, for the reference and
 * every SIMD variant, at lengths 1..67 (every tail) and 4096, with sentinels
 * around outputs and aliasing where the API allows it.
 *
 * Tolerances: rope, rmsnorm, add, axpy, swiglu are element-wise with a handful of
 * float roundings (a polynomial exp of ~2 ulp in the SIMD swiglu): 1e-5
 * relative. dot is a sum: its error is bounded relative to sum |a_i b_i|.
 * softmax: per element relative 1e-5.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

#define SENT 8
static const uint32_t SENTINEL = 0x7fc0beef;

static float *buf_alloc(int64_t n) {
    float *b = malloc(sizeof(float) * (size_t)(n + 2 * SENT));
    for (int64_t i = 0; i < n + 2 * SENT; i++) memcpy(&b[i], &SENTINEL, 4);
    return b + SENT;
}
static bool buf_intact(const float *y, int64_t n) {
    for (int i = 1; i <= SENT; i++)
        if (memcmp(&y[-i], &SENTINEL, 4) != 0 || memcmp(&y[n + i - 1], &SENTINEL, 4) != 0) return false;
    return true;
}
static void buf_free(float *b) { free(b - SENT); }

static bool close_rel(double got, double want, double tol) {
    return fabs(got - want) <= tol * fmax(fabs(want), 1e-30);
}

static kiln_rng rng;
static float frand(float scale) { return (kiln_rng_f32(&rng) - 0.5f) * 2.0f * scale; }

static const int64_t LENS[] = {1,  2,  3,  5,  7,  8,  9,  15, 16, 17, 23, 24, 31, 32,
                               33, 47, 48, 63, 64, 65, 67, 4096};
#define NLENS ((int)(sizeof LENS / sizeof LENS[0]))

static void test_elementwise(const kiln_kernel_table *t) {
    for (int li = 0; li < NLENS; li++) {
        const int64_t n = LENS[li];
        float *a = buf_alloc(n), *b = buf_alloc(n), *y = buf_alloc(n), *w = buf_alloc(n);
        for (int64_t i = 0; i < n; i++) a[i] = frand(3.0f), b[i] = frand(3.0f), w[i] = frand(2.0f);

        /* dot: |error| <= 1e-6 * sum |a b| (n roundings of at most 6e-8 each) */
        double want = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) want += (double)a[i] * b[i], mag += fabs((double)a[i] * b[i]);
        const float got = t->dot(a, b, n);
        CHECK_MSG(fabs(got - want) <= 1e-6 * mag + 1e-30, "%s dot n %lld: %g vs %g", t->name, (long long)n, got, want);

        /* add: exact */
        memcpy(y, a, sizeof(float) * (size_t)n);
        t->add(y, b, n);
        bool ok = buf_intact(y, n);
        for (int64_t i = 0; i < n; i++) ok = ok && y[i] == a[i] + b[i];
        CHECK_MSG(ok, "%s add n %lld", t->name, (long long)n);

        /* axpy */
        memcpy(y, a, sizeof(float) * (size_t)n);
        t->axpy(y, 0.75f, b, n);
        ok = buf_intact(y, n);
        for (int64_t i = 0; i < n; i++) ok = ok && fabs(y[i] - ((double)a[i] + 0.75 * b[i])) <= 1e-6 * (fabs(a[i]) + fabs(b[i]));
        CHECK_MSG(ok, "%s axpy n %lld", t->name, (long long)n);

        /* rmsnorm, out of place and in place */
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)a[i] * a[i];
        const double scale = 1.0 / sqrt(ss / (double)n + 1e-5);
        t->rmsnorm(y, a, w, n, 1e-5f);
        ok = buf_intact(y, n);
        for (int64_t i = 0; i < n; i++) ok = ok && close_rel(y[i], a[i] * scale * w[i], 1e-5);
        CHECK_MSG(ok, "%s rmsnorm n %lld", t->name, (long long)n);
        float *ycopy = malloc(sizeof(float) * (size_t)n);
        memcpy(ycopy, y, sizeof(float) * (size_t)n);
        memcpy(y, a, sizeof(float) * (size_t)n);
        t->rmsnorm(y, y, w, n, 1e-5f);
        CHECK(memcmp(y, ycopy, sizeof(float) * (size_t)n) == 0);
        free(ycopy);

        /* swiglu: silu(g) * u, including large |g| (exp overflow/underflow) */
        for (int64_t i = 0; i < n; i++) a[i] = i % 11 == 5 ? frand(120.0f) : frand(8.0f);
        t->swiglu(y, a, b, n);
        ok = buf_intact(y, n);
        for (int64_t i = 0; i < n; i++) {
            const double g = a[i], s = g / (1.0 + exp(-g)) * b[i];
            ok = ok && (fabs(y[i] - s) <= 1e-5 * fabs(s) + 1e-35);
        }
        CHECK_MSG(ok, "%s swiglu n %lld", t->name, (long long)n);
        memcpy(y, a, sizeof(float) * (size_t)n);
        t->swiglu(y, y, b, n); /* out aliases gate */
        ok = true;
        for (int64_t i = 0; i < n; i++) {
            const double g = a[i], s = g / (1.0 + exp(-g)) * b[i];
            ok = ok && (fabs(y[i] - s) <= 1e-5 * fabs(s) + 1e-35);
        }
        CHECK_MSG(ok, "%s swiglu aliased n %lld", t->name, (long long)n);

        buf_free(a), buf_free(b), buf_free(y), buf_free(w);
    }
}

/* layernorm vs double (biased variance, as BERT), out of place and in place, with an
 * offset mean (cancellation in the variance); gelu, exact (erf) and tanh forms, vs
 * double over a wide range including large |x| (both tails) and 0. Tolerance 1e-5
 * relative (2e-5 for gelu's negative side, where x·Φ(x) is a small product of a large
 * x and a tiny Φ) plus 1e-30 absolute. */
static void test_layernorm_gelu(const kiln_kernel_table *t) {
    for (int li = 0; li < NLENS; li++) {
        const int64_t n = LENS[li];
        float *a = buf_alloc(n), *b = buf_alloc(n), *y = buf_alloc(n), *w = buf_alloc(n);
        for (int64_t i = 0; i < n; i++) a[i] = 10.0f + frand(3.0f), b[i] = frand(1.0f), w[i] = frand(2.0f);
        double s = 0, ss = 0;
        for (int64_t i = 0; i < n; i++) s += a[i];
        const double mean = s / (double)n;
        for (int64_t i = 0; i < n; i++) ss += (a[i] - mean) * (a[i] - mean);
        const double inv = 1.0 / sqrt(ss / (double)n + 1e-12);
        t->layernorm(y, a, w, b, n, 1e-12f);
        bool ok = buf_intact(y, n);
        for (int64_t i = 0; i < n; i++) {
            const double want = (a[i] - mean) * inv * w[i] + b[i];
            /* relative to the size of the normalized term, not of a result near 0 */
            ok = ok && fabs(y[i] - want) <= 1e-5 * (fabs((a[i] - mean) * inv * w[i]) + fabs(b[i])) + 1e-6;
        }
        CHECK_MSG(ok, "%s layernorm n %lld", t->name, (long long)n);
        float *ycopy = malloc(sizeof(float) * (size_t)n);
        memcpy(ycopy, y, sizeof(float) * (size_t)n);
        memcpy(y, a, sizeof(float) * (size_t)n);
        t->layernorm(y, y, w, b, n, 1e-12f);
        CHECK_MSG(memcmp(y, ycopy, sizeof(float) * (size_t)n) == 0, "%s layernorm in place n %lld", t->name,
                  (long long)n);
        free(ycopy);

        for (int tanh_form = 0; tanh_form < 2; tanh_form++) {
            for (int64_t i = 0; i < n; i++) a[i] = i % 13 == 6 ? frand(40.0f) : i % 17 == 3 ? 0.0f : frand(6.0f);
            memcpy(y, a, sizeof(float) * (size_t)n);
            t->gelu(y, n, tanh_form);
            ok = buf_intact(y, n);
            for (int64_t i = 0; i < n; i++) {
                const double v = a[i];
                /* 0.5 v (1 + tanh(a)) written as v · sigmoid(2a): no cancellation for v < 0 */
                const double a2 = 2.0 * 0.7978845608028654 * (v + 0.044715 * v * v * v);
                const double want = tanh_form ? v / (1.0 + exp(-a2)) : 0.5 * v * erfc(-v / sqrt(2.0));
                const double tol = v < 0 ? 2e-5 : 1e-5;
                ok = ok && fabs(y[i] - want) <= tol * fabs(want) + 1e-30;
                if (!ok) {
                    printf("%s gelu(%s) n %lld: x %.9g got %.9g want %.9g\n", t->name, tanh_form ? "tanh" : "erf",
                           (long long)n, v, y[i], want);
                    break;
                }
            }
            CHECK_MSG(ok, "%s gelu tanh=%d n %lld", t->name, tanh_form, (long long)n);
        }
        buf_free(a), buf_free(b), buf_free(y), buf_free(w);
    }
}

static void check_softmax(const kiln_kernel_table *t, const float *in, int64_t n, const char *what) {
    float *x = buf_alloc(n);
    memcpy(x, in, sizeof(float) * (size_t)n);
    t->softmax(x, n);
    double max = -INFINITY, sum = 0, got_sum = 0;
    for (int64_t i = 0; i < n; i++) max = fmax(max, in[i]);
    for (int64_t i = 0; i < n; i++) sum += exp((double)in[i] - max);
    bool ok = buf_intact(x, n);
    for (int64_t i = 0; i < n; i++) {
        const double want = exp((double)in[i] - max) / sum;
        ok = ok && (fabs(x[i] - want) <= 1e-5 * want + 1e-37);
        got_sum += x[i];
    }
    CHECK_MSG(ok && fabs(got_sum - 1.0) < 1e-5, "%s softmax %s n %lld (sum %g)", t->name, what, (long long)n, got_sum);
    buf_free(x);
}

static void test_softmax(const kiln_kernel_table *t) {
    for (int li = 0; li < NLENS; li++) {
        const int64_t n = LENS[li];
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) x[i] = frand(5.0f);
        check_softmax(t, x, n, "small");
        for (int64_t i = 0; i < n; i++) x[i] = 1000.0f + frand(30.0f); /* exp would overflow without the max */
        check_softmax(t, x, n, "large");
        for (int64_t i = 0; i < n; i++) x[i] = i % 3 == 1 ? -INFINITY : -1e4f + frand(50.0f); /* masked */
        if (n > 1) check_softmax(t, x, n, "masked");
        free(x);
    }
    float all_masked[5] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    t->softmax(all_masked, 5);
    for (int i = 0; i < 5; i++) CHECK(all_masked[i] == 0.0f);
    float one = 3.0f;
    t->softmax(&one, 1);
    CHECK(one == 1.0f);
}

/* rope against x' = x0 cos(theta) - x1 sin(theta), x1' = x0 sin(theta) + x1 cos(theta),
 * theta = pos * freq[i], for both pair layouts and a partial rotation. */
static void test_rope(void) {
    enum { H = 3, D = 16 };
    float freq[D / 2];
    for (int i = 0; i < D / 2; i++) freq[i] = powf(10000.0f, -2.0f * (float)i / D);
    const int64_t positions[] = {0, 1, 7, 513};
    for (int neox = 0; neox <= 1; neox++)
        for (int64_t n_rot = 8; n_rot <= D; n_rot += 8)
            for (size_t pi = 0; pi < 4; pi++) {
                const int64_t pos = positions[pi];
                float x[H * D], orig[H * D];
                for (int i = 0; i < H * D; i++) orig[i] = x[i] = frand(1.0f);
                kiln_rope(x, H, D, n_rot, pos, freq, neox);
                bool ok = true;
                for (int h = 0; h < H; h++) {
                    const float *o = orig + h * D, *v = x + h * D;
                    for (int64_t i = 0; i < n_rot / 2; i++) {
                        const int64_t a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
                        const double th = (double)((float)pos * freq[i]);
                        const double wa = o[a] * cos(th) - o[b] * sin(th);
                        const double wb = o[a] * sin(th) + o[b] * cos(th);
                        ok = ok && fabs(v[a] - wa) < 1e-5 && fabs(v[b] - wb) < 1e-5;
                    }
                    for (int64_t i = n_rot; i < D; i++) ok = ok && v[i] == o[i]; /* not rotated */
                }
                CHECK_MSG(ok, "rope neox %d n_rot %lld pos %lld", neox, (long long)n_rot, (long long)pos);
            }
    /* position 0 is the identity; llama layout pairs neighbours */
    float x[4] = {1, 2, 3, 4}, f2[2] = {1.0f, 0.5f};
    kiln_rope(x, 1, 4, 4, 0, f2, false);
    CHECK(x[0] == 1 && x[1] == 2 && x[2] == 3 && x[3] == 4);
    kiln_rope(x, 1, 4, 4, 1, f2, false);
    CHECK(fabsf(x[0] - (cosf(1) - 2 * sinf(1))) < 1e-6f && fabsf(x[1] - (sinf(1) + 2 * cosf(1))) < 1e-6f);
    float y[4] = {1, 2, 3, 4};
    kiln_rope(y, 1, 4, 4, 1, f2, true); /* neox pairs (0, 2) and (1, 3) */
    CHECK(fabsf(y[0] - (cosf(1) - 3 * sinf(1))) < 1e-6f && fabsf(y[2] - (sinf(1) + 3 * cosf(1))) < 1e-6f);
    CHECK(fabsf(y[1] - (2 * cosf(0.5f) - 4 * sinf(0.5f))) < 1e-6f);
}

int main(void) {
    kiln_rng_seed(&rng, 2024);
    for (int l = 0; l < KILN_ISA_COUNT; l++) {
        const kiln_kernel_table *t = kiln_kernels_table((kiln_isa)l);
        if (!t) {
            printf("level %d not supported by this CPU: skipped\n", l);
            continue;
        }
        test_elementwise(t);
        test_layernorm_gelu(t);
        test_softmax(t);
    }
    test_rope();
    /* the public wrappers reach the chosen variant */
    float a[3] = {1, 2, 3}, b[3] = {4, 5, 6};
    CHECK(kiln_dot(a, b, 3) == 32.0f);
    kiln_add(a, b, 3);
    CHECK(a[0] == 5 && a[2] == 9);
    kiln_axpy(a, 2.0f, b, 3);
    CHECK(a[0] == 13 && a[2] == 21);
    float ln[3] = {1, 2, 3}, one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    kiln_layernorm(ln, ln, one, zero, 3, 0.0f); /* mean 2, variance 2/3 */
    CHECK(fabsf(ln[0] + 1.2247449f) < 1e-6f && ln[1] == 0.0f && fabsf(ln[2] - 1.2247449f) < 1e-6f);
    float g[2] = {0.0f, 1.0f};
    kiln_gelu(g, 2, false);
    CHECK(g[0] == 0.0f && fabsf(g[1] - 0.8413447f) < 1e-6f);
    TEST_MAIN_END();
}
