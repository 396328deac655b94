/*
 * conv_ref.c — the reference 2-D convolution: direct loops over PyTorch's (O, C, kh,
 * kw) weight as the file stores it, sums in double.
 *
 * It reads the weight tensor itself (not the prepared matrix of conv.c), so the tests
 * that compare kiln_conv2d with it check the (ky, kx, c) reordering too, not just the
 * arithmetic.
 */
#include <string.h>

#include "kernels/kernels_impl.h"

/* Element (o, c, ky, kx) of the file's weight as f32 (exact for F16 / BF16). */
static float weight_at(const kiln_tensor *w, int64_t o, int64_t c, int64_t ky, int64_t kx) {
    const uint8_t *p = (const uint8_t *)w->data + (size_t)o * w->nb[3] + (size_t)c * w->nb[2] +
                       (size_t)ky * w->nb[1] + (size_t)kx * w->nb[0];
    if (w->type == KILN_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return w->type == KILN_F16 ? kiln_fp16_to_f32(h) : kiln_bf16_to_f32(h);
}

void kiln_ref_conv2d(const kiln_tensor *w4d, const float *bias, const float *x, int H, int W, int C, int stride,
                     kiln_pad2d pad, float *y) {
    const int kw = (int)w4d->ne[0], kh = (int)w4d->ne[1], O = (int)w4d->ne[3];
    int Ho, Wo;
    if (w4d->ne[2] != C || !kiln_conv2d_out_size(H, W, kh, kw, stride, pad, &Ho, &Wo)) return;
    for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++)
            for (int o = 0; o < O; o++) {
                double s = bias ? bias[o] : 0.0;
                for (int ky = 0; ky < kh; ky++) {
                    const int iy = oy * stride - pad.top + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < kw; kx++) {
                        const int ix = ox * stride - pad.left + kx;
                        if (ix < 0 || ix >= W) continue;
                        const float *px = x + ((size_t)iy * (size_t)W + (size_t)ix) * (size_t)C;
                        for (int c = 0; c < C; c++) s += (double)weight_at(w4d, o, c, ky, kx) * (double)px[c];
                    }
                }
                y[((size_t)oy * (size_t)Wo + (size_t)ox) * (size_t)O + (size_t)o] = (float)s;
            }
}
