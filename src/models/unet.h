/*
 * unet.h — Stable Diffusion's denoising UNet (diffusers' UNet2DConditionModel) for
 * SD 1.x, 2.x and SD-Turbo: epsilon or v predictions are the pipeline's business,
 * the UNet only maps (latents, timestep, text states) to its output.
 *
 * The weights stay in the caller's mapping under diffusers' names (a unet/ folder,
 * or a single-file checkpoint renamed to them), and must outlive the model. SDXL's
 * added conditioning and its deeper transformer stacks are part of the config
 * (transformer_layers, addition_embed) so the loader refuses them by name until they
 * are built.
 */
#ifndef KILN_MODELS_UNET_H
#define KILN_MODELS_UNET_H

#include <stdbool.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "formats/weights.h"
#include "kiln.h"

#define KILN_UNET_MAX_BLOCKS 4

typedef struct {
    int in_channels, out_channels;
    int n_blocks;                          /* down (and up) blocks */
    int channels[KILN_UNET_MAX_BLOCKS];    /* block_out_channels */
    bool down_attn[KILN_UNET_MAX_BLOCKS];  /* CrossAttnDownBlock2D (else DownBlock2D) */
    bool up_attn[KILN_UNET_MAX_BLOCKS];    /* CrossAttnUpBlock2D (else UpBlock2D), in up order */
    int heads[KILN_UNET_MAX_BLOCKS];       /* attention heads per down block */
    int transformer_layers[KILN_UNET_MAX_BLOCKS];
    int layers_per_block;
    int cross_attention_dim;
    int groups;
    float norm_eps;
    bool flip_sin_to_cos;
    int freq_shift;
    int sample_size;                       /* the latent size it was trained at (64 for 512 px) */
} kiln_unet_config;

typedef struct kiln_unet kiln_unet;

/* Reads diffusers' unet/config.json. Configurations kiln does not run (other block
 * types, class or added embeddings, time_cond_proj_dim, ...) are refused naming the
 * key: KILN_ERR_UNSUPPORTED; malformed ones KILN_ERR_FORMAT. */
kiln_status kiln_unet_config_json(const char *json, const char *what, kiln_unet_config *c);

/* Binds the UNet in w (names under prefix, "" for a diffusers folder). bf16: its
 * matrices and convolutions run as bf16 panels where the CPU has AVX512_BF16 (about
 * twice as fast, bf16's rounding of weights and activations). path names
 * the file in errors; pool (may be NULL) runs the kernels and must outlive the
 * model. On success *out is owned by the caller (kiln_unet_free). */
kiln_status kiln_unet_create(const kiln_weight_list *w, const char *prefix, const kiln_unet_config *cfg, bool bf16,
                             const char *path, kiln_pool *pool, kiln_unet **out);
void kiln_unet_free(kiln_unet *m);
const kiln_unet_config *kiln_unet_get_config(const kiln_unet *m);
size_t kiln_unet_heap_bytes(const kiln_unet *m);
/* Frees the activation buffers forward passes keep for the next one (at the end of a
 * generation). This function can't fail. */
void kiln_unet_release(kiln_unet *m);

/* Called after each stage of a forward pass (conv_in, each down block, mid, each up
 * block, out) with the stage's channels-last map, for tests and previews. */
typedef void (*kiln_unet_trace_fn)(void *user, const char *stage, const float *map, int h, int w, int c);

/* One sample: x (h, w, in_channels) channels-last latents, the timestep, the text
 * states ctx (n_ctx, cross_attention_dim); out (h, w, out_channels). h and w must
 * be multiples of 2^(n_blocks - 1). trace may be NULL. Deterministic whatever the
 * pool's thread count. KILN_ERR_INVALID_ARG for sizes that do not fit, NOMEM. */
kiln_status kiln_unet_forward(kiln_unet *m, const float *x, int h, int w, double timestep, const float *ctx, int n_ctx,
                              float *out, kiln_unet_trace_fn trace, void *user);

/* Activation memory one forward pass at (h, w) needs at most, in bytes (for the
 * check before a job starts). */
size_t kiln_unet_activation_bytes(const kiln_unet_config *c, int h, int w, int n_ctx);

#endif
