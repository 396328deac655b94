/*
 * test_conv.c — the image-model kernels: kiln_conv2d (im2col on kiln_matmul) against
 * the direct-loop reference and hand-computed cases, group norm and SiLU against
 * double formulas, nearest 2x upsampling and GEGLU, and PyTorch's conv2d / group_norm
 * (tests/golden/data/conv/golden.bin from tests/golden/gen_conv.py), at every kernel
 * level this CPU runs. A timing line for a UNet-sized 3x3 conv ends the run (printed,
 * never asserted).
 *
 * Tolerances:
 *  - conv vs the reference (double sums of the same f32 / F16 / BF16 weights): per
 *    output, |y - ref| <= 1e-5 * sum|w x| (+ |b|); the fast path is one fp32 chain of
 *    k = kh*kw*C <= 603 roundings, each at most 2^-24 of the running magnitude, whose
 *    errors add up like a random walk (~sqrt(k) 2^-24 = 1.5e-6 at k = 603; the
 *    worst case k 2^-24 is reached only with all errors of one sign). Also normalized
 *    MSE sum (y - ref)^2 / sum ref^2 <= 1e-11.
 *  - hand-computed cases: exact (sums of a few small integers).
 *  - 1 thread, 2 threads, and tiles of 7 pixels (cut across rows): bit-identical.
 *  - group norm vs double: |y - ref| <= 1e-5 * ((|x| + |mean|) rstd |w| + |b|), SiLU
 *    after it adds 1e-5 |y|: a handful of float roundings of values of that size.
 *    Without SiLU the variants give the reference's bits (same double sums).
 *  - PyTorch (float64 on exact inputs): max |y - torch| / max |torch| <= 1e-5.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"



static kiln_rng rng;
static float frand(float scale) { return (kiln_rng_f32(&rng) - 0.5f) * 2.0f * scale; }

static const kiln_kernel_table *levels[KILN_ISA_COUNT];
static int n_levels;
static kiln_pool *pool1, *pool2;

/* A (O, C, kh, kw) weight of type t as a file holds it (ne = [kw, kh, C, O]) from f32
 * values vals (rounded to t in place, so that callers see the stored numbers). */
static kiln_tensor make_w4d(kiln_dtype t, float *vals, int O, int C, int kh, int kw, void **mem) {
    const size_t n = (size_t)O * C * kh * kw, esz = t == KILN_F32 ? 4 : 2;
    uint8_t *p = malloc(n * esz);
    for (size_t i = 0; i < n; i++) {
        if (t == KILN_F32) {
            memcpy(p + 4 * i, &vals[i], 4);
            continue;
        }
        const uint16_t h = t == KILN_F16 ? kiln_f32_to_fp16(vals[i]) : kiln_f32_to_bf16(vals[i]);
        memcpy(p + 2 * i, &h, 2);
        vals[i] = t == KILN_F16 ? kiln_fp16_to_f32(h) : kiln_bf16_to_f32(h);
    }
    *mem = p;
    kiln_tensor w = {.type = t, .n_dims = 4, .ne = {kw, kh, C, O}, .data = p};
    w.nb[0] = esz, w.nb[1] = esz * (size_t)kw, w.nb[2] = w.nb[1] * (size_t)kh, w.nb[3] = w.nb[2] * (size_t)C;
    return w;
}

/* ---- hand-computed cases: the (ky, kx, c) order and the padding sides ------------ */

static float xval(int i, int j, int c) { return (float)(10 * i + j + 100 * c); }

static void hand_cases(const kiln_kernel_table *t) {
    /* 3x3, pad 1, stride 1, C 2, O 3 on 4x5:
     *   y0 = x1(oy-1, ox+1) + 0.5   (w[0][1][ky 0][kx 2] = 1)
     *   y1 = 2 x0(oy+1, ox-1)       (w[1][0][2][0] = 2)
     *   y2 = x0(oy, ox) - x1(oy, ox) - 1 (centre taps) */
    enum { H = 4, W = 5, C = 2, O = 3 };
    float x[H * W * C], wv[O * C * 9] = {0}, b[O] = {0.5f, 0.0f, -1.0f};
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
            for (int c = 0; c < C; c++) x[(i * W + j) * C + c] = xval(i, j, c);
#define WI(o, c, ky, kx) (((o) * C + (c)) * 9 + (ky) * 3 + (kx))
    wv[WI(0, 1, 0, 2)] = 1.0f, wv[WI(1, 0, 2, 0)] = 2.0f, wv[WI(2, 0, 1, 1)] = 1.0f, wv[WI(2, 1, 1, 1)] = -1.0f;
    void *wm, *pm;
    kiln_tensor w4 = make_w4d(KILN_F32, wv, O, C, 3, 3, &wm), wp;
    CHECK_OK(kiln_conv_weight_prepare_with(t, &w4, false, &wp, &pm));
    float *y = kiln_test_guarded_alloc(H * W * O);
    CHECK_OK(kiln_conv2d_with(t, &wp, b, x, H, W, C, 3, 3, 1, kiln_pad2d_same(1), y, NULL, 0, pool2, 0));
    bool ok = kiln_test_guard_intact(y, H * W * O);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            const float *o = y + (i * W + j) * O;
            const float y0 = (i >= 1 && j + 1 < W ? xval(i - 1, j + 1, 1) : 0) + 0.5f;
            const float y1 = i + 1 < H && j >= 1 ? 2 * xval(i + 1, j - 1, 0) : 0;
            const float y2 = xval(i, j, 0) - xval(i, j, 1) - 1;
            ok = ok && o[0] == y0 && o[1] == y1 && o[2] == y2;
        }
    CHECK_MSG(ok, "%s: hand-computed 3x3 conv", t->name);
    kiln_test_guarded_free(y), free(wm), free(pm);

    /* the VAE encoder's downsampling: pad (0, 1, 0, 1), stride 2, 4x4 -> 2x2:
     *   y0 = x0(2oy, 2ox) (top-left tap), y1 = x0(2oy+2, 2ox+2) (bottom-right tap: 0 at
     *   the padded bottom / right edge) */
    enum { H2 = 4, W2 = 4 };
    float x2[H2 * W2], w2[2 * 9] = {0};
    for (int i = 0; i < H2; i++)
        for (int j = 0; j < W2; j++) x2[i * W2 + j] = xval(i, j, 0);
    w2[0] = 1.0f, w2[9 + 8] = 1.0f;
    kiln_tensor w4b = make_w4d(KILN_BF16, w2, 2, 1, 3, 3, &wm);
    CHECK_OK(kiln_conv_weight_prepare_with(t, &w4b, false, &wp, &pm));
    int Ho, Wo;
    const kiln_pad2d pad = {0, 0, 1, 1};
    CHECK(kiln_conv2d_out_size(H2, W2, 3, 3, 2, pad, &Ho, &Wo) && Ho == 2 && Wo == 2);
    y = kiln_test_guarded_alloc(2 * 2 * 2);
    CHECK_OK(kiln_conv2d_with(t, &wp, NULL, x2, H2, W2, 1, 3, 3, 2, pad, y, NULL, 0, pool1, 0));
    ok = kiln_test_guard_intact(y, 8);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            const float *o = y + (i * 2 + j) * 2;
            ok = ok && o[0] == xval(2 * i, 2 * j, 0) && o[1] == (i == 0 && j == 0 ? xval(2, 2, 0) : 0.0f);
        }
    CHECK_MSG(ok, "%s: hand-computed stride-2 asymmetric conv", t->name);
    kiln_test_guarded_free(y), free(wm), free(pm);
}

/* ---- conv vs the reference ---------------------------------------------------- */

typedef struct {
    int C, O, H, W, kh, kw, stride;
    kiln_pad2d pad;
} conv_shape;

#define P1 {1, 1, 1, 1}
#define P0 {0, 0, 0, 0}
static const conv_shape SHAPES[] = {
    {1, 1, 1, 1, 3, 3, 1, P1},           {3, 5, 7, 6, 3, 3, 1, P1},
    {4, 8, 8, 8, 3, 3, 2, P1},           {5, 7, 9, 7, 3, 3, 2, {0, 0, 1, 1}},
    {16, 32, 16, 16, 3, 3, 1, P1},       {67, 70, 11, 13, 3, 3, 1, P1},
    {33, 17, 10, 9, 3, 3, 2, {0, 0, 1, 1}}, {64, 70, 5, 5, 1, 1, 1, P0},
    {7, 9, 6, 5, 1, 1, 2, P0},           {2, 3, 1, 9, 3, 3, 1, P1},
    {8, 16, 40, 41, 3, 3, 1, P1},        {3, 4, 5, 6, 3, 3, 1, {2, 0, 1, 3}},
    {4, 6, 7, 8, 3, 1, 1, {1, 0, 1, 0}}, {1, 40, 2, 2, 3, 3, 1, P1},
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static double worst_rel, worst_nmse;

static void conv_case(const kiln_kernel_table *t, const conv_shape *s, kiln_dtype dt, bool bias) {
    int Ho, Wo;
    CHECK(kiln_conv2d_out_size(s->H, s->W, s->kh, s->kw, s->stride, s->pad, &Ho, &Wo));
    const size_t nx = (size_t)s->H * s->W * s->C, nw = (size_t)s->O * s->C * s->kh * s->kw;
    const size_t ny = (size_t)Ho * Wo * s->O;
    float *x = malloc(nx * 4), *ax = malloc(nx * 4), *wv = malloc(nw * 4), *aw = malloc(nw * 4);
    float *b = malloc((size_t)s->O * 4), *ab = malloc((size_t)s->O * 4);
    for (size_t i = 0; i < nx; i++) x[i] = frand(1.0f), ax[i] = fabsf(x[i]);
    for (size_t i = 0; i < nw; i++) wv[i] = frand(0.5f);
    for (int i = 0; i < s->O; i++) b[i] = frand(1.0f), ab[i] = fabsf(b[i]);
    void *wm, *am, *pm;
    kiln_tensor w4 = make_w4d(dt, wv, s->O, s->C, s->kh, s->kw, &wm), wp;
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(wv[i]);
    kiln_tensor a4 = make_w4d(dt, aw, s->O, s->C, s->kh, s->kw, &am);
    float *ref = malloc(ny * 4), *mag = malloc(ny * 4);
    kiln_ref_conv2d(&w4, bias ? b : NULL, x, s->H, s->W, s->C, s->stride, s->pad, ref);
    kiln_ref_conv2d(&a4, bias ? ab : NULL, ax, s->H, s->W, s->C, s->stride, s->pad, mag);
    CHECK_OK(kiln_conv_weight_prepare_with(t, &w4, false, &wp, &pm));
    CHECK(wp.ne[0] == (int64_t)s->kh * s->kw * s->C && wp.ne[1] == s->O);
    float *y1 = kiln_test_guarded_alloc(ny), *y2 = kiln_test_guarded_alloc(ny), *y3 = kiln_test_guarded_alloc(ny), tiny[4];
    /* 1 thread, scratch allocated; 2 threads in the caller's scratch (which must hold
     * it: sentinels after); 2 threads, scratch too small (allocated), 7-pixel tiles */
    const size_t sb = kiln_conv2d_scratch_bytes(s->C, s->kh, s->kw, 2);
    float *scratch = kiln_test_guarded_alloc(sb / 4);
    CHECK(sb % 4 == 0 && sb >= (size_t)s->kh * s->kw * s->C * 4);
    CHECK_OK(kiln_conv2d_with(t, &wp, bias ? b : NULL, x, s->H, s->W, s->C, s->kh, s->kw, s->stride, s->pad, y1,
                              NULL, 0, pool1, 0));
    CHECK_OK(kiln_conv2d_with(t, &wp, bias ? b : NULL, x, s->H, s->W, s->C, s->kh, s->kw, s->stride, s->pad, y2,
                              scratch, sb, pool2, 0));
    CHECK_OK(kiln_conv2d_with(t, &wp, bias ? b : NULL, x, s->H, s->W, s->C, s->kh, s->kw, s->stride, s->pad, y3,
                              tiny, sizeof tiny, pool2, 7));
    CHECK_MSG(kiln_test_guard_intact(scratch, sb / 4), "%s conv: wrote past the scratch it asked for", t->name);
    kiln_test_guarded_free(scratch);
    double worst = 0, se = 0, sr = 0;
    for (size_t i = 0; i < ny; i++) {
        const double e = fabs((double)y1[i] - ref[i]);
        const double r = e / fmax(mag[i], 1e-30);
        worst = r > worst ? r : worst;
        se += e * e, sr += (double)ref[i] * ref[i];
    }
    const double nmse = sr > 0 ? se / sr : se;
    worst_rel = worst > worst_rel ? worst : worst_rel;
    worst_nmse = nmse > worst_nmse ? nmse : worst_nmse;
    CHECK_MSG(worst <= 1e-5 && nmse <= 1e-11, "%s conv C %d O %d %dx%d k %dx%d s %d pad %d%d%d%d %s: rel %.3g nmse %.3g",
              t->name, s->C, s->O, s->H, s->W, s->kh, s->kw, s->stride, s->pad.top, s->pad.left, s->pad.bottom,
              s->pad.right, kiln_dtype_name(dt), worst, nmse);
    CHECK_MSG(kiln_test_guard_intact(y1, ny) && kiln_test_guard_intact(y2, ny) && kiln_test_guard_intact(y3, ny), "%s conv sentinels", t->name);
    CHECK_MSG(memcmp(y1, y2, ny * 4) == 0 && memcmp(y1, y3, ny * 4) == 0,
              "%s conv C %d O %d %dx%d: 1 thread, 2 threads and 7-pixel tiles differ", t->name, s->C, s->O, s->H,
              s->W);
    kiln_test_guarded_free(y1), kiln_test_guarded_free(y2), kiln_test_guarded_free(y3);
    free(x), free(ax), free(wv), free(aw), free(b), free(ab), free(ref), free(mag);
    free(wm), free(am), free(pm);
}

static void conv_refused(const kiln_kernel_table *t) {
    float wv[2 * 3 * 9] = {0}, x[3 * 4 * 4] = {0}, y[64];
    void *wm, *pm;
    kiln_tensor w4 = make_w4d(KILN_F32, wv, 2, 3, 3, 3, &wm), wp;
    CHECK_OK(kiln_conv_weight_prepare_with(t, &w4, false, &wp, &pm));
    /* channels that do not match the weight; kernel larger than the padded image */
    CHECK(kiln_conv2d_with(t, &wp, NULL, x, 4, 4, 2, 3, 3, 1, kiln_pad2d_same(1), y, NULL, 0, NULL, 0) ==
          KILN_ERR_INVALID_ARG);
    CHECK(kiln_conv2d_with(t, &wp, NULL, x, 1, 1, 3, 3, 3, 1, kiln_pad2d_same(0), y, NULL, 0, NULL, 0) ==
          KILN_ERR_INVALID_ARG);
    CHECK(kiln_conv2d_with(t, &wp, NULL, x, 4, 4, 3, 3, 3, 0, kiln_pad2d_same(1), y, NULL, 0, NULL, 0) ==
          KILN_ERR_INVALID_ARG);
    free(wm), free(pm);
    kiln_tensor q = w4;
    q.type = KILN_Q8_0;
    CHECK(kiln_conv_weight_prepare_with(t, &q, false, &wp, &pm) == KILN_ERR_UNSUPPORTED && pm == NULL);
}

/* ---- group norm, silu, upsample, geglu ------------------------------------------- */

static double worst_gn;

static void gn_case(const kiln_kernel_table *t, int64_t n_pix, int64_t C, int groups, bool silu, float offset) {
    const size_t n = (size_t)(n_pix * C);
    float *x = malloc(n * 4), *w = malloc((size_t)C * 4), *b = malloc((size_t)C * 4);
    for (size_t i = 0; i < n; i++) x[i] = offset + frand(2.0f);
    for (int64_t c = 0; c < C; c++) w[c] = 1.0f + frand(0.5f), b[c] = frand(0.5f);
    float *y = kiln_test_guarded_alloc(n), *z = malloc(n * 4), *r = malloc(n * 4);
    double *scratch = malloc(KILN_GROUP_NORM_SCRATCH(C) * sizeof(double));
    t->group_norm(y, x, n_pix, C, groups, w, b, 1e-5f, silu, scratch);
    memcpy(z, x, n * 4);
    t->group_norm(z, z, n_pix, C, groups, w, b, 1e-5f, silu, scratch); /* in place */
    kiln_ref_group_norm(r, x, n_pix, C, groups, w, b, 1e-5f, silu, scratch);
    bool ok = kiln_test_guard_intact(y, n) && memcmp(y, z, n * 4) == 0 && (silu || memcmp(y, r, n * 4) == 0);
    const int64_t cg = C / groups;
    double worst = 0;
    for (int g = 0; g < groups; g++) {
        double s = 0, ss = 0;
        for (int64_t p = 0; p < n_pix; p++)
            for (int64_t c = g * cg; c < (g + 1) * cg; c++) s += x[p * C + c];
        const double mean = s / (double)(n_pix * cg);
        for (int64_t p = 0; p < n_pix; p++)
            for (int64_t c = g * cg; c < (g + 1) * cg; c++) ss += (x[p * C + c] - mean) * (x[p * C + c] - mean);
        const double rstd = 1.0 / sqrt(ss / (double)(n_pix * cg) + 1e-5);
        for (int64_t p = 0; p < n_pix; p++)
            for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
                const double xv = x[p * C + c];
                double v = (xv - mean) * rstd * w[c] + b[c];
                double tol = 1e-5 * ((fabs(xv) + fabs(mean)) * rstd * fabs(w[c]) + fabs(b[c]));
                if (silu) v = v / (1.0 + exp(-v)), tol = tol * 1.1 + 1e-5 * fabs(v) + 1e-30;
                const double e = fabs(y[p * C + c] - v) / tol;
                worst = e > worst ? e : worst;
            }
    }
    worst_gn = worst > worst_gn ? worst : worst_gn;
    CHECK_MSG(ok && worst <= 1.0, "%s group norm %lld x %lld, %d groups, silu %d: %.3g of the bound%s",
              t->name, (long long)n_pix, (long long)C, groups, silu, worst, ok ? "" : ", sentinels / aliasing / bits");
    kiln_test_guarded_free(y), free(z), free(r), free(x), free(w), free(b), free(scratch);
}

static void silu_case(const kiln_kernel_table *t) {
    static const int64_t lens[] = {1, 7, 15, 16, 17, 33, 64, 1000};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        float *x = kiln_test_guarded_alloc((size_t)n), *x0 = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) x0[i] = x[i] = i % 9 == 4 ? frand(150.0f) : frand(8.0f);
        t->silu(x, n);
        bool ok = kiln_test_guard_intact(x, (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            const double v = x0[i], s = v / (1.0 + exp(-v));
            ok = ok && fabs(x[i] - s) <= 1e-5 * fabs(s) + 1e-35;
        }
        CHECK_MSG(ok, "%s silu n %lld", t->name, (long long)n);
        kiln_test_guarded_free(x), free(x0);
    }
}

static void upsample_geglu(void) {
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {2, 2, 16}, {4, 1, 3}};
    for (size_t si = 0; si < 4; si++) {
        const int H = shapes[si][0], W = shapes[si][1], C = shapes[si][2];
        const size_t n = (size_t)H * W * C, ny = 4 * n;
        float *x = malloc(n * 4), *y = kiln_test_guarded_alloc(ny);
        for (size_t i = 0; i < n; i++) x[i] = frand(1.0f);
        kiln_upsample_nearest2x(x, H, W, C, y);
        bool ok = kiln_test_guard_intact(y, ny);
        for (int i = 0; i < 2 * H; i++)
            for (int j = 0; j < 2 * W; j++)
                for (int c = 0; c < C; c++)
                    ok = ok && y[((size_t)i * 2 * W + j) * C + c] == x[((size_t)(i / 2) * W + j / 2) * C + c];
        CHECK_MSG(ok, "upsample %dx%dx%d", H, W, C);
        free(x), kiln_test_guarded_free(y);
    }
    const int64_t rows = 3, n = 37;
    float *x = malloc(sizeof(float) * rows * 2 * n), *o = kiln_test_guarded_alloc((size_t)(rows * n));
    for (int64_t i = 0; i < rows * 2 * n; i++) x[i] = frand(4.0f);
    kiln_geglu(o, x, rows, n);
    bool ok = kiln_test_guard_intact(o, (size_t)(rows * n));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) {
            const double a = x[r * 2 * n + i], g = x[r * 2 * n + n + i];
            const double want = a * 0.5 * g * erfc(-g / sqrt(2.0));
            ok = ok && fabs(o[r * n + i] - want) <= 2e-5 * fabs(want) + 1e-30;
        }
    CHECK_MSG(ok, "geglu (first half times gelu of the second)");
    free(x), kiln_test_guarded_free(o);
}

/* ---- PyTorch ------------------------------------------------------------------- */

/* The formulas of gen_conv.py: exact in f32, F16 and BF16. */
static float gx(int64_t i, float off) { return (float)((i * 7919 + 13) % 2003 - 1001) / 512.0f + off; }
static float gw(int64_t i) { return (float)((i * 104729 + 7) % 251 - 125) / 1024.0f; }
static float gb(int64_t i) { return (float)((i * 31 + 3) % 17 - 8) / 16.0f; }
static float gnw(int64_t i) { return 1.0f + (float)((i * 13 + 5) % 9 - 4) / 8.0f; }
static float gnb(int64_t i) { return (float)((i * 7 + 1) % 11 - 5) / 16.0f; }

static void golden(const kiln_kernel_table *t, const char *path) {
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    int32_t h[16];
    int convs = 0, norms = 0;
    double worst = 0;
    while (fread(h, sizeof h, 1, f) == 1) {
        const int kind = h[0], H = h[1], W = h[2], C = h[3], O = h[4], kh = h[5], kw = h[6], stride = h[7];
        const kiln_pad2d pad = {h[8], h[9], h[10], h[11]};
        const kiln_dtype types[3] = {KILN_F32, KILN_F16, KILN_BF16};
        const size_t ny = (size_t)h[15];
        float *want = malloc(ny * 4), *y = kiln_test_guarded_alloc(ny);
        CHECK(fread(want, 4, ny, f) == ny);
        float *x = malloc((size_t)H * W * C * 4);
        for (int64_t i = 0; i < (int64_t)H * W * C; i++) x[i] = gx(i, kind == 1 ? 3.0f : 0.0f);
        if (kind == 0) {
            int Ho, Wo;
            CHECK(kiln_conv2d_out_size(H, W, kh, kw, stride, pad, &Ho, &Wo) && (size_t)Ho * Wo * O == ny);
            const size_t nw = (size_t)O * C * kh * kw;
            float *wv = malloc(nw * 4), *b = malloc((size_t)O * 4), *ry = malloc(ny * 4);
            for (size_t i = 0; i < nw; i++) wv[i] = gw((int64_t)i);
            for (int i = 0; i < O; i++) b[i] = gb(i);
            void *wm, *pm;
            kiln_tensor w4 = make_w4d(types[h[12]], wv, O, C, kh, kw, &wm), wp;
            CHECK_OK(kiln_conv_weight_prepare_with(t, &w4, false, &wp, &pm));
            CHECK_OK(kiln_conv2d_with(t, &wp, h[13] ? b : NULL, x, H, W, C, kh, kw, stride, pad, y, NULL, 0, pool2, 0));
            kiln_ref_conv2d(&w4, h[13] ? b : NULL, x, H, W, C, stride, pad, ry);
            double e = 0, er = 0, m = 0;
            for (size_t i = 0; i < ny; i++) {
                e = fmax(e, fabs(y[i] - want[i])), er = fmax(er, fabs(ry[i] - want[i]));
                m = fmax(m, fabs(want[i]));
            }
            CHECK_MSG(e <= 1e-5 * m && er <= 1e-6 * m, "%s torch conv %dx%dx%d -> %d, %dx%d s %d %s: %.3g (ref %.3g)",
                      t->name, H, W, C, O, kh, kw, stride, kiln_dtype_name(types[h[12]]), e / m, er / m);
            worst = fmax(worst, e / m);
            free(wv), free(b), free(ry), free(wm), free(pm);
            convs++;
        } else {
            float *w = malloc((size_t)C * 4), *b = malloc((size_t)C * 4);
            for (int c = 0; c < C; c++) w[c] = gnw(c), b[c] = gnb(c);
            double *scratch = malloc(KILN_GROUP_NORM_SCRATCH(C) * sizeof(double));
            t->group_norm(y, x, (int64_t)H * W, C, O, w, b, 1e-5f, h[14] != 0, scratch);
            double e = 0, m = 0;
            for (size_t i = 0; i < ny; i++) e = fmax(e, fabs(y[i] - want[i])), m = fmax(m, fabs(want[i]));
            CHECK_MSG(e <= 1e-5 * m, "%s torch group norm %dx%dx%d, %d groups: %.3g", t->name, H, W, C, O, e / m);
            worst = fmax(worst, e / m);
            free(w), free(b), free(scratch);
            norms++;
        }
        CHECK(kiln_test_guard_intact(y, ny));
        free(x), free(want), kiln_test_guarded_free(y);
    }
    fclose(f);
    CHECK_MSG(convs == 5 && norms == 3, "golden.bin: %d conv and %d norm cases", convs, norms);
    printf("%s: PyTorch conv2d / group_norm, relative max error %.3g\n", t->name, worst);
}

/* ---- timing: a UNet 64x64x320 -> 320 3x3 conv ------------------------------------ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void timing(void) {
    const char *e = getenv("KILN_SANITIZE");
    if ((e && *e) || strcmp(kiln_kernels_isa(), "ref") == 0) return;
    enum { H = 64, W = 64, C = 320, O = 320 };
    float *x = malloc(sizeof(float) * H * W * C), *wv = malloc(sizeof(float) * O * C * 9);
    float *y = malloc(sizeof(float) * H * W * O);
    for (size_t i = 0; i < (size_t)H * W * C; i++) x[i] = frand(1.0f);
    for (size_t i = 0; i < (size_t)O * C * 9; i++) wv[i] = frand(0.05f);
    void *wm, *pm;
    kiln_tensor w4 = make_w4d(KILN_F16, wv, O, C, 3, 3, &wm), wp;
    CHECK_OK(kiln_conv_weight_prepare(&w4, false, &wp, &pm));
    const double flop = 2.0 * H * W * O * C * 9;
    const size_t sb = kiln_conv2d_scratch_bytes(C, 3, 3, 2);
    void *scratch = malloc(sb);
    kiln_pool *pools[2] = {pool1, pool2};
    for (int p = 0; p < 2; p++) {
        double best = 1e9;
        for (int r = 0; r < 3; r++) {
            const double t0 = now_s();
            CHECK_OK(kiln_conv2d(&wp, NULL, x, H, W, C, 3, 3, 1, kiln_pad2d_same(1), y, scratch, sb, pools[p]));
            best = fmin(best, now_s() - t0);
        }
        printf("conv 64x64x320 -> 320 3x3 (%s, %s weights): %d thread(s) %.1f ms, %.1f GFLOP/s\n", kiln_kernels_isa(),
               wp.type == KILN_F32_P32 ? "fp32 panel" : "f32", p + 1, best * 1e3, flop / best * 1e-9);
    }
    float *g = malloc(sizeof(float) * C), *b = malloc(sizeof(float) * C);
    for (int c = 0; c < C; c++) g[c] = 1.0f, b[c] = 0.0f;
    for (int s = 0; s < 2; s++) {
        double best = 1e9;
        for (int r = 0; r < 5; r++) {
            const double t0 = now_s();
            CHECK_OK(kiln_group_norm(y, x, H * W, C, 32, g, b, 1e-5f, s));
            best = fmin(best, now_s() - t0);
        }
        printf("group norm 64x64x320%s: %.2f ms\n", s ? " + silu" : "", best * 1e3);
    }
    free(x), free(wv), free(y), free(wm), free(pm), free(g), free(b), free(scratch);
}

int main(void) {
    kiln_rng_seed(&rng, 6);
    for (int l = 0; l < KILN_ISA_COUNT; l++)
        if (kiln_kernels_table((kiln_isa)l)) levels[n_levels++] = kiln_kernels_table((kiln_isa)l);
    CHECK_OK(kiln_pool_create(1, &pool1));
    CHECK_OK(kiln_pool_create(2, &pool2));
    const char *src = getenv("KILN_SRC");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/data/conv/golden.bin", src ? src : ".");
    static const kiln_dtype dts[3] = {KILN_F32, KILN_F16, KILN_BF16};
    for (int l = 0; l < n_levels; l++) {
        const kiln_kernel_table *t = levels[l];
        worst_rel = worst_nmse = worst_gn = 0;
        hand_cases(t);
        conv_refused(t);
        for (int s = 0; s < NSHAPES; s++)
            for (int d = 0; d < 3; d++) conv_case(t, &SHAPES[s], dts[d], (s + d) % 2 == 0);
        gn_case(t, 20, 64, 32, false, 0.0f);
        gn_case(t, 20, 64, 32, true, 0.0f);
        gn_case(t, 4096, 320, 32, true, 5.0f);
        gn_case(t, 4096, 320, 32, false, -20.0f);
        gn_case(t, 7, 12, 3, false, 1.0f);
        gn_case(t, 5, 6, 6, true, 0.0f);
        gn_case(t, 9, 5, 1, false, 0.0f);
        gn_case(t, 1, 32, 32, true, 0.0f);
        silu_case(t);
        golden(t, path);
        printf("%s: conv vs reference: max error / sum|w x| %.3g, normalized MSE %.3g; group norm %.3g of its bound\n",
               t->name, worst_rel, worst_nmse, worst_gn);
    }
    upsample_geglu();
    float x[4] = {0}, y[4];
    CHECK(kiln_group_norm(y, x, 1, 4, 3, x, x, 1e-5f, false) == KILN_ERR_INVALID_ARG);
    timing();
    kiln_pool_free(pool1);
    kiln_pool_free(pool2);
    TEST_MAIN_END();
}
