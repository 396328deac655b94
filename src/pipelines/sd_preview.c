/*
 * sd_preview.c — cheap previews of the latents while they are denoised: each latent
 * pixel mapped to RGB by one affine map, as a 1/8-size image.
 *
 * The map is fitted once per model from the model's own VAE rather than taken from
 * constants: decoding flat latents (all zero, then ±1 along each channel) gives the
 * colour each channel pushes towards, and rgb ≈ b + A·z is the central-difference
 * fit around zero. It costs 2·channels + 1 decodes of a 4x4 latent (a 32x32 image).
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "sd_internal.h"

enum { PROBE = 4 };

/* The mean decoded colour of a flat latent z (c values, in the UNet's scaled space). */
static kiln_status probe(kiln_sd *m, const float *z, float rgb[3]) {
    const kiln_vae_config *vc = kiln_vae_get_config(m->vae);
    const int c = vc->latent_channels, f = 1 << (vc->n_blocks - 1), H = PROBE * f;
    const size_t npx = (size_t)H * H;
    float *lat = kiln_malloc_array((size_t)PROBE * PROBE * c, sizeof *lat);
    float *img = kiln_malloc_array(npx * (size_t)vc->out_channels, sizeof *img);
    kiln_status st = lat && img ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < PROBE * PROBE && !st; i++)
        for (int k = 0; k < c; k++) lat[i * c + k] = z[k] / vc->scaling_factor + vc->shift_factor;
    if (!st) st = kiln_vae_decode(m->vae, lat, PROBE, PROBE, img, NULL, NULL);
    for (int k = 0; k < 3 && !st; k++) {
        double s = 0;
        for (size_t i = 0; i < npx; i++) s += img[i * vc->out_channels + (k < vc->out_channels ? k : 0)];
        rgb[k] = (float)(s / (double)npx);
    }
    free(lat);
    free(img);
    return st;
}

kiln_status kiln_sd_preview_fit(kiln_sd *m) {
    if (m->preview_ready) return KILN_OK;
    const int c = kiln_vae_get_config(m->vae)->latent_channels;
    if (c > 4) return kiln_fail(KILN_ERR_UNSUPPORTED, "previews need at most 4 latent channels");
    float z[4] = {0}, base[3], plus[3], minus[3];
    kiln_status st = probe(m, z, base);
    for (int k = 0; k < c && !st; k++) {
        z[k] = 1.0f;
        st = probe(m, z, plus);
        z[k] = -1.0f;
        if (!st) st = probe(m, z, minus);
        z[k] = 0.0f;
        for (int j = 0; j < 3 && !st; j++) m->preview_rgb[k * 3 + j] = (plus[j] - minus[j]) / 2.0f;
    }
    if (st) return st;
    memcpy(m->preview_rgb + 12, base, sizeof base);
    m->preview_ready = true;
    return KILN_OK;
}

void kiln_sd_preview(const kiln_sd *m, const float *lat, int h, int w, uint8_t *rgb) {
    const int c = kiln_vae_get_config(m->vae)->latent_channels;
    for (int64_t i = 0; i < (int64_t)h * w; i++) {
        for (int j = 0; j < 3; j++) {
            float v = m->preview_rgb[12 + j];
            for (int k = 0; k < c; k++) v += m->preview_rgb[k * 3 + j] * lat[i * c + k];
            v = v / 2.0f + 0.5f;
            v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;
            rgb[i * 3 + j] = (uint8_t)(v * 255.0f + 0.5f);
        }
    }
}
