/*
 * sd_single.h — Stable Diffusion 1.x / 2.x single-file checkpoints (the original
 * CompVis / Stability LDM layout hubs distribute as one .safetensors) split into the
 * UNet's and the VAE's weights under diffusers' names, with their configs inferred
 * from the shapes, so kiln_unet_create / kiln_vae_create bind them unchanged.
 *
 * Layer: models, not formats. The reader (formats/safetensors) only turns the file
 * into a kiln_weight_list; knowing which LDM tensor is which diffusers tensor, and
 * what a UNet's config is, is knowledge of the model's structure (the config structs
 * live in models/unet.h and models/vae.h).
 *
 * The renaming is diffusers' own single-file conversion (single_file_utils.py:
 * convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, conv_attn_to_linear) run
 * the other way: every tensor the config needs is looked up under its LDM name, so a
 * missing one is an error naming it. Everything else in the file (EMA copies under
 * model_ema., the text encoder under cond_stage_model., alphas_cumprod, ...) is
 * ignored. Shapes are not checked here: the binders report them.
 */
#ifndef KILN_MODELS_SD_SINGLE_H
#define KILN_MODELS_SD_SINGLE_H

#include <stdbool.h>

#include "formats/weights.h"
#include "kiln.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"

typedef enum {
    KILN_SD_FAMILY_SD1 = 1, /* CLIP ViT-L text encoder, 8 heads everywhere */
    KILN_SD_FAMILY_SD2 = 2, /* OpenCLIP ViT-H, 64-wide heads, linear proj_in/out */
} kiln_sd_family;

typedef struct {
    kiln_sd_family family;
    /* The text encoder's names in the input list: "cond_stage_model.transformer."
     * (SD 1.x, Hugging Face names) or "cond_stage_model.model." (SD 2.x, OpenCLIP
     * names), for kiln_clip_text_create with text_names; NULL when the file has no
     * text encoder (then the family comes from the UNet: cross-attention width 1024 or
     * linear projections mean SD 2.x). */
    const char *text_prefix;
    kiln_clip_names text_names;
    bool inpainting;        /* in_channels 9 */
    bool linear_projection; /* proj_in/out are Linear (SD 2.x), not 1x1 convs */
    /* The UNet under diffusers' names (prefix ""); the tensors are views of the input
     * list's data (no copies), valid while that is. */
    kiln_weight_list unet;
    kiln_unet_config unet_config;
    /* The VAE (prefix ""), when the file has first_stage_model.*; its encoder too when
     * the file has one (else bind with decoder_only). VAE attention q/k/v/proj_out
     * 1x1 conv weights are viewed as the (out, in) matrices diffusers makes of them. */
    bool has_vae, has_vae_encoder;
    kiln_weight_list vae;
    kiln_vae_config vae_config;
} kiln_sd_single;

/* True if in looks like an LDM single file this module should look at (it has the
 * LDM UNet's conv_in, or SDXL's conditioner, so that split can refuse it clearly). */
bool kiln_sd_single_is(const kiln_weight_list *in);

/* Splits in (read from path, named in errors) into *out, which the caller frees with
 * kiln_sd_single_free (also after a failure). KILN_ERR_UNSUPPORTED for SDXL files
 * ("SDXL single files are not supported yet") and class-conditioned UNets (label_emb:
 * the x4 upscaler), KILN_ERR_FORMAT for a file without an LDM UNet, for a structure
 * that cannot be inferred, and for a missing tensor (naming its LDM name and the
 * diffusers name it would bind as); KILN_ERR_NOMEM. */
kiln_status kiln_sd_single_split(const kiln_weight_list *in, const char *path, kiln_sd_single *out);
void kiln_sd_single_free(kiln_sd_single *s);

#endif
