/*
 * vae.h — Stable Diffusion's image autoencoder (diffusers' AutoencoderKL): the
 * decoder turns latents into pixels, the encoder pixels into latent moments (for
 * img2img and inpainting).
 *
 * Latents given to and taken from the VAE are the raw ones: the pipeline divides by
 * (or multiplies with) scaling_factor. Weights stay in the caller's mapping under
 * diffusers' names and must outlive the model.
 */
#ifndef KILN_MODELS_VAE_H
#define KILN_MODELS_VAE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "formats/weights.h"
#include "kiln.h"

#define KILN_VAE_MAX_BLOCKS 4

typedef struct {
    int in_channels, out_channels, latent_channels;
    int n_blocks;
    int channels[KILN_VAE_MAX_BLOCKS];
    int layers_per_block;
    int groups;
    float scaling_factor;  /* 0.18215 for SD 1.x / 2.x */
    float shift_factor;    /* 0 unless the config says otherwise */
} kiln_vae_config;

typedef struct kiln_vae kiln_vae;

/* Reads diffusers' vae/config.json; other block types or options are refused. */
kiln_status kiln_vae_config_json(const char *json, const char *what, kiln_vae_config *c);

/* Binds the VAE in w under prefix. decoder_only: skip the encoder (txt2img needs
 * none; its tensors need not exist). bf16: as for kiln_unet_create. pool (may be
 * NULL) must outlive the model. */
kiln_status kiln_vae_create(const kiln_weight_list *w, const char *prefix, const kiln_vae_config *cfg, bool decoder_only,
                            bool bf16, const char *path, kiln_pool *pool, kiln_vae **out);
void kiln_vae_free(kiln_vae *m);
const kiln_vae_config *kiln_vae_get_config(const kiln_vae *m);
/* Heap bytes the VAE holds (prepared and packed weights, vectors). */
size_t kiln_vae_heap_bytes(const kiln_vae *m);

/* Called after each stage (decoder: conv_in, mid, up.i, out; encoder: conv_in,
 * down.i, mid, out, moments), for tests. */
typedef void (*kiln_vae_trace_fn)(void *user, const char *stage, const float *map, int h, int w, int c);

/* z (h, w, latent_channels) channels-last -> img (h·f, w·f, out_channels), f =
 * 2^(n_blocks - 1), values about [-1, 1]. */
kiln_status kiln_vae_decode(kiln_vae *m, const float *z, int h, int w, float *img, kiln_vae_trace_fn trace,
                            void *user);
/* img (H, W, in_channels) -> moments (ceil-divided size, 2·latent_channels): the
 * mean, then the log-variance, per pixel. */
kiln_status kiln_vae_encode(kiln_vae *m, const float *img, int H, int W, float *moments, int *h, int *w,
                            kiln_vae_trace_fn trace, void *user);

#endif
