/*
 * image.c — the public image-model ops that are not convolutions (kernels.h): group
 * norm and SiLU (routed to the chosen variant, ref/image_ref.c and
 * x86/ops_avx512.c), nearest 2x upsampling and diffusers' GEGLU (plain C over the
 * variants' gelu: copies and one multiply per element, nothing to vectorize by hand).
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "kernels/kernels_impl.h"

kiln_status kiln_group_norm(float *y, const float *x, int64_t n_pix, int64_t C, int groups, const float *w,
                            const float *b, float eps, bool silu) {
    if (!y || !x || !w || !b || n_pix < 0 || C < 1 || groups < 1 || C % groups)
        return kiln_fail(KILN_ERR_INVALID_ARG, "group norm: %d groups do not divide %lld channels", groups,
                         (long long)C);
    if (n_pix == 0) return KILN_OK;
    double *scratch = kiln_malloc_array(KILN_GROUP_NORM_SCRATCH(C), sizeof(double));
    if (!scratch) return kiln_fail(KILN_ERR_NOMEM, "group norm: no memory for %lld channels", (long long)C);
    kiln_kernels_current()->group_norm(y, x, n_pix, C, groups, w, b, eps, silu, scratch);
    free(scratch);
    return KILN_OK;
}

void kiln_silu(float *x, int64_t n) { kiln_kernels_current()->silu(x, n); }

void kiln_upsample_nearest2x(const float *x, int H, int W, int C, float *y) {
    const size_t c = (size_t)C, row = 2 * (size_t)W * c;
    for (int i = 0; i < H; i++) {
        float *out = y + (size_t)(2 * i) * row;
        const float *in = x + (size_t)i * (size_t)W * c;
        for (int j = 0; j < W; j++) {
            memcpy(out + (size_t)(2 * j) * c, in + (size_t)j * c, c * sizeof(float));
            memcpy(out + (size_t)(2 * j + 1) * c, in + (size_t)j * c, c * sizeof(float));
        }
        memcpy(out + row, out, row * sizeof(float));
    }
}

void kiln_geglu(float *out, const float *x, int64_t n_rows, int64_t n) {
    const kiln_kernel_table *t = kiln_kernels_current();
    for (int64_t r = 0; r < n_rows; r++) {
        const float *a = x + (size_t)r * 2 * (size_t)n;
        float *o = out + (size_t)r * (size_t)n;
        memcpy(o, a + n, (size_t)n * sizeof(float));
        t->gelu(o, n, false);
        for (int64_t i = 0; i < n; i++) o[i] *= a[i];
    }
}
