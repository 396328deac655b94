/*
 * image_ref.c — reference ops of the image models on channels-last maps: group norm
 * (with the SiLU the UNet's resnet blocks fuse to it) and SiLU.
 *
 * Group norm's statistics are sums in double, per channel over the pixels in pixel
 * order, then per group over its channels in channel order: the mean first, then the
 * squared deviations from it (two passes, so a map whose values sit far from zero keeps
 * its variance). The AVX-512 variant keeps these very sums and the same float steps
 * after them, so without SiLU both give the same bits.
 */
#include <math.h>

#include "kernels/kernels_impl.h"

void kiln_ref_silu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void kiln_ref_group_norm(float *y, const float *x, int64_t n_pix, int64_t C, int groups, const float *w,
                         const float *b, float eps, bool silu, double *scratch) {
    double *s1 = scratch, *s2 = scratch + C;
    float *mean = (float *)(void *)(scratch + 2 * C), *scale = mean + C;
    const int64_t cg = C / groups;
    const double count = (double)n_pix * (double)cg;
    for (int64_t c = 0; c < C; c++) s1[c] = s2[c] = 0.0;
    for (int64_t p = 0; p < n_pix; p++)
        for (int64_t c = 0; c < C; c++) s1[c] += (double)x[p * C + c];
    for (int g = 0; g < groups; g++) { /* s1 becomes the group's mean, per channel */
        double s = 0.0;
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) s += s1[c];
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) s1[c] = s / count;
    }
    for (int64_t p = 0; p < n_pix; p++)
        for (int64_t c = 0; c < C; c++) {
            const double d = (double)x[p * C + c] - s1[c];
            s2[c] += d * d;
        }
    for (int g = 0; g < groups; g++) {
        double s = 0.0;
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) s += s2[c];
        const double rstd = 1.0 / sqrt(s / count + (double)eps);
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
            mean[c] = (float)s1[c];
            scale[c] = (float)(rstd * (double)w[c]);
        }
    }
    for (int64_t p = 0; p < n_pix; p++)
        for (int64_t c = 0; c < C; c++) {
            float v = (x[p * C + c] - mean[c]) * scale[c] + b[c];
            if (silu) v = v / (1.0f + expf(-v));
            y[p * C + c] = v;
        }
}
