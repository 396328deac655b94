/*
 * sd_bench.c — timings of a Stable Diffusion model's parts (kiln.h, kiln_sd_bench):
 * the text encoder, one denoising step with guidance (the UNet run on the prompt's
 * and the negative prompt's states) and the VAE decode, each after an untimed
 * warm-up. The latents are random: the work does not depend on their values.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "sd_internal.h"

kiln_status kiln_sd_bench(kiln_sd *m, int width, int height, int reps, kiln_sd_bench_result *out) {
    memset(out, 0, sizeof *out);
    if (width < 64 || height < 64 || width % 8 || height % 8 || width > 2048 || height > 2048 || reps < 1 || reps > 1000)
        return kiln_fail(KILN_ERR_INVALID_ARG, "bench: size %dx%d or %d repetitions out of range", width, height, reps);
    const kiln_unet_config *uc = kiln_unet_get_config(m->unet);
    const int h = height / 8, w = width / 8, f = 1 << (uc->n_blocks - 1);
    if (h % f || w % f) return kiln_fail(KILN_ERR_INVALID_ARG, "bench: this model needs multiples of %d", 8 * f);
    const size_t n = (size_t)h * w * (size_t)uc->in_channels;
    float *x = kiln_malloc_array(n, sizeof *x), *y = kiln_malloc_array(n, sizeof *y);
    float *img = kiln_malloc_array((size_t)width * height * 3, sizeof *img), *ctx = NULL;
    int n_ctx = 0;
    kiln_status st = x && y && img ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    kiln_rng r;
    kiln_rng_seed(&r, 1);
    for (size_t i = 0; x && i < n; i++) x[i] = 2.0f * kiln_rng_f32(&r) - 1.0f;
    double *steps = kiln_malloc_array((size_t)reps, sizeof *steps);
    if (!steps && !st) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int i = 0; i <= reps && !st; i++) { /* i == 0: warm-up */
        free(ctx);
        const double t0 = kiln_time_now();
        st = kiln_sd_condition(m, "a photo of an astronaut riding a horse on the moon", 1, &ctx, &n_ctx);
        if (i) out->text_s += (kiln_time_now() - t0) / reps;
    }
    for (int i = 0; i <= reps && !st; i++) {
        const double t0 = kiln_time_now();
        st = kiln_unet_forward(m->unet, x, h, w, 500.0, ctx, n_ctx, y, NULL, NULL);
        if (!st) st = kiln_unet_forward(m->unet, x, h, w, 500.0, ctx, n_ctx, y, NULL, NULL);
        if (i) steps[i - 1] = kiln_time_now() - t0;
    }
    if (!st) {
        double s = 0, ss = 0;
        for (int i = 0; i < reps; i++) s += steps[i];
        out->step_s = s / reps;
        for (int i = 0; i < reps; i++) ss += (steps[i] - out->step_s) * (steps[i] - out->step_s);
        out->step_sd = reps > 1 ? sqrt(ss / (reps - 1)) : 0;
    }
    kiln_unet_release(m->unet);
    for (int i = 0; i <= reps && !st; i++) {
        const double t0 = kiln_time_now();
        st = kiln_vae_decode(m->vae, x, h, w, img, NULL, NULL);
        if (i) out->decode_s += (kiln_time_now() - t0) / reps;
    }
    free(x);
    free(y);
    free(img);
    free(ctx);
    free(steps);
    return st;
}
