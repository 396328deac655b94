/*
 * rng_torch.c — PyTorch's CPU generator (MT19937 + torch's randn paths), written from
 * the description in rng_torch.h, for diffusers-compatible Stable Diffusion seeds.
 *
 * The AVX2 path is a one-lane emulation of the Cephes-style float log and sin/cos that
 * torch 1.13 runs eight lanes at a time: every operation is a separate float
 * operation in the order torch's build performs it, fmaf() exactly where GCC 12 fused
 * a multiply into the add that follows (-ffp-contract=fast with -mfma), and masks as
 * the additions of +0 they are in the vector code, so every bit matches.
 */
#include "rng_torch.h"

#include <math.h>
#include <string.h>

/* Our own multiplies and adds must not be fused: the fusions that matter are explicit. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

enum { MT_N = 624, MT_M = 397 };

void kiln_torch_rng_seed(kiln_torch_rng *g, uint64_t seed) {
    memset(g, 0, sizeof *g);
    g->seed = seed;
    g->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (uint32_t i = 1; i < MT_N; i++)
        g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + i;
    g->idx = MT_N;
    g->has_next_normal = 0;
    g->path = KILN_TORCH_PATH_AVX2;
}

static void mt_twist(uint32_t *mt) {
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % MT_N] & 0x7fffffffu);
        mt[i] = mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
}

uint32_t kiln_torch_rng_u32(kiln_torch_rng *g) {
    if (g->idx >= MT_N) {
        mt_twist(g->mt);
        g->idx = 0;
    }
    uint32_t y = g->mt[g->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* torch's uniform_real_distribution<float>(0, 1): 24 bits of one word. */
static float uniform_f32(kiln_torch_rng *g) {
    return (float)(kiln_torch_rng_u32(g) & 0xffffffu) * 0x1p-24f;
}

/* uniform_real_distribution<double>(0, 1): 53 bits of two words, the first high. */
static double uniform_f64(kiln_torch_rng *g) {
    uint64_t hi = kiln_torch_rng_u32(g);
    uint64_t lo = kiln_torch_rng_u32(g);
    return (double)(((hi << 32) | lo) & ((1ull << 53) - 1)) * 0x1p-53;
}

/* normal_distribution<double>(0, 1), with torch's cached second sample. */
static double normal_f64(kiln_torch_rng *g) {
    if (g->has_next_normal) {
        g->has_next_normal = 0;
        return g->next_normal;
    }
    double u1 = uniform_f64(g);
    double u2 = uniform_f64(g);
    double r = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    g->next_normal = r * sin(theta);
    g->has_next_normal = 1;
    return r * cos(theta);
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* avx_mathfun's log256_ps, one lane: frexp-like split, Cephes polynomial. */
static float cephes_logf(float x) {
    if (!(x > 0.0f)) return NAN; /* the vector code ORs in an all-ones (NaN) mask */
    if (x < u2f(0x00800000u)) x = u2f(0x00800000u);
    uint32_t bits = f2u(x);
    int32_t ex = (int32_t)(bits >> 23) - 0x7f;
    x = u2f((bits & ~0x7f800000u) | f2u(0.5f));
    float e = (float)ex;
    e = e + 1.0f;
    int below = x < (float)0.707106781186547524;
    float tmp = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + tmp;

    float z = x * x;
    float y = (float)7.0376836292E-2;
    y = fmaf(y, x, (float)-1.1514610310E-1);
    y = fmaf(y, x, (float)1.1676998740E-1);
    y = fmaf(y, x, (float)-1.2420140846E-1);
    y = fmaf(y, x, (float)1.4249322787E-1);
    y = fmaf(y, x, (float)-1.6668057665E-1);
    y = fmaf(y, x, (float)2.0000714765E-1);
    y = fmaf(y, x, (float)-2.4999993993E-1);
    y = fmaf(y, x, (float)3.3333331174E-1);
    y = y * x;
    tmp = e * (float)-2.12194440e-4;
    y = fmaf(y, z, tmp);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, (float)0.693359375, x);
    return x;
}

/* avx_mathfun's sincos256_ps, one lane. */
static void cephes_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = f2u(x) & 0x80000000u;
    x = u2f(f2u(x) & 0x7fffffffu);
    float y = x * (float)1.27323954473516;
    int32_t j = (int32_t)y; /* cvttps: truncation; |x| here is below 2 pi */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    int poly2 = (j & 2) == 0; /* the sine polynomial serves the sine */
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, (float)-2.4187564849853515625e-4, x);
    x = fmaf(y, (float)-3.77489497744594108e-8, x);
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;

    float z = x * x;
    float yc = fmaf((float)2.443315711809948E-005, z, (float)-1.388731625493765E-003);
    yc = fmaf(yc, z, (float)4.166664568298827E-002);
    yc = yc * z;
    float tmp = z * 0.5f;
    yc = fmaf(yc, z, -tmp);
    yc = yc + 1.0f;

    float ys = fmaf((float)-1.9515295891E-4, z, (float)8.3321608736E-3);
    ys = fmaf(ys, z, (float)-1.6666654611E-1);
    ys = ys * z;
    ys = fmaf(ys, x, x);

    /* and/andnot/sub/add select: the chosen value plus +0 */
    float vs = poly2 ? ys : yc;
    float vc = poly2 ? yc : ys;
    vs = vs + 0.0f;
    vc = vc + 0.0f;
    *s = u2f(f2u(vs) ^ sign_sin);
    *c = u2f(f2u(vc) ^ sign_cos);
}

/* normal_fill_16_AVX2 with mean 0, std 1. */
static void block16_avx2(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float s, c;
        cephes_sincosf(two_pi * u2, &s, &c);
        d[j] = fmaf(radius * c, 1.0f, 0.0f);
        d[j + 8] = fmaf(radius * s, 1.0f, 0.0f);
    }
}

/* normal_fill_16 (scalar, float) with mean 0, std 1. */
static void block16_scalar(float *d) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = (float)(2.0 * 3.14159265358979323846 * (double)u2);
        float c = radius * cosf(theta);
        float s = radius * sinf(theta);
        d[j] = c * 1.0f + 0.0f;
        d[j + 8] = s * 1.0f + 0.0f;
    }
}

void kiln_torch_randn(kiln_torch_rng *g, float *out, int64_t n) {
    if (n <= 0) return;
    if (n < 16) {
        for (int64_t i = 0; i < n; i++) out[i] = (float)(normal_f64(g) * 1.0 + 0.0);
        return;
    }
    void (*block)(float *) = g->path == KILN_TORCH_PATH_SCALAR ? block16_scalar : block16_avx2;
    for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(g);
    for (int64_t i = 0; i + 16 <= n; i += 16) block(out + i);
    if (n % 16) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(g);
        block(tail);
    }
}
