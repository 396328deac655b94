/*
 * sd_internal.h — the kiln_sd struct (a loaded Stable Diffusion model) shared by the
 * pipeline's files: loading (sd_model.c), conditioning (sd_cond.c), generation
 * (sd_generate.c) and previews (sd_preview.c). Not for use outside src/pipelines.
 */
#ifndef KILN_PIPELINES_SD_INTERNAL_H
#define KILN_PIPELINES_SD_INTERNAL_H

#include "base/threadpool.h"
#include "formats/safetensors.h"
#include "kiln.h"
#include "models/clip_text.h"
#include "models/sd_single.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipelines/sd_sched.h"
#include "tokenizers/clip_tok.h"

struct kiln_sd {
    char *path, *name;              /* as given; its last component (for the metadata) */
    kiln_safetensors *st[3];        /* the files the weights live in (NULL when shared) */
    kiln_sd_single single;          /* a single file's UNet and VAE under diffusers' names */
    bool is_single;
    kiln_clip_tok *tok;
    kiln_clip_text *clip;
    kiln_unet *unet;
    kiln_vae *vae;
    kiln_pool *pool;
    int32_t pad_id;                 /* the tokenizer's padding (SD 1.x: end of text; SD 2.x: "!", 0) */
    int default_skip;               /* clip skip when the request gives none */
    char *sched_json;               /* scheduler/scheduler_config.json, or NULL (SD defaults) */
    kiln_prediction prediction;
    bool prediction_forced;         /* set by the options: overrides the scheduler config */
    const char *family;             /* "sd1", "sd2" */
    bool bf16;                      /* the UNet runs bf16 panels; the VAE stays f32: its decode is
                                       bound by the patches it moves, and was slower in bf16
                                       (15.2 vs 11.4 s at 512x512 on this project's machine) */
    float preview_rgb[4 * 3 + 3];   /* latent -> RGB projection (sd_preview.c), fitted lazily */
    bool preview_ready;
};

/* The text states of a prompt (A1111 weights applied), *n_tokens = 77 x chunks;
 * *ctx malloc'd (n_tokens, n_embd). */
kiln_status kiln_sd_condition(kiln_sd *m, const char *prompt, int skip, float **ctx, int *n_tokens);

/* The VAE decode in overlapping 64-latent tiles (sd_tiles.c): z (h, w, latent
 * channels) -> img (8h, 8w, 3), for images too large to decode at once. */
kiln_status kiln_sd_decode_tiled(kiln_sd *m, const float *z, int h, int w, float *img);

/* Fits the preview projection from the model's own VAE (once). */
kiln_status kiln_sd_preview_fit(kiln_sd *m);
/* RGB8 (h, w, 3) of latents (h, w, c) through the projection. */
void kiln_sd_preview(const kiln_sd *m, const float *lat, int h, int w, uint8_t *rgb);

#endif
