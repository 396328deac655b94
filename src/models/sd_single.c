/*
 * sd_single.c — LDM single-file checkpoints to diffusers' names (sd_single.h).
 *
 * The name table is diffusers' single_file_utils.py read backwards; with L =
 * layers_per_block and n blocks, under model.diffusion_model.:
 *
 *   time_embedding.linear_1 / linear_2      time_embed.0 / time_embed.2
 *   conv_in                                 input_blocks.0.0
 *   down_blocks.i.resnets.j                 input_blocks.(1 + i(L+1) + j).0
 *   down_blocks.i.attentions.j              input_blocks.(1 + i(L+1) + j).1
 *   down_blocks.i.downsamplers.0.conv       input_blocks.(1 + i(L+1) + L).0.op
 *   mid_block.resnets.0 / attentions.0 / resnets.1   middle_block.0 / .1 / .2
 *   up_blocks.i.resnets.j                   output_blocks.(i(L+1) + j).0
 *   up_blocks.i.attentions.j                output_blocks.(i(L+1) + j).1
 *   up_blocks.i.upsamplers.0.conv           output_blocks.(i(L+1) + L).(2 with
 *                                           attentions, else 1).conv
 *   conv_norm_out / conv_out                out.0 / out.2
 *   resnets: norm1 conv1 time_emb_proj norm2 conv2 conv_shortcut are in_layers.0
 *   in_layers.2 emb_layers.1 out_layers.0 out_layers.3 skip_connection; attentions
 *   (Transformer2DModel / SpatialTransformer) have the same names in both.
 *
 * and under first_stage_model. (the decoder's LDM levels count up from the
 * full-resolution one, diffusers' up blocks down from the bottom):
 *
 *   encoder.down_blocks.i.resnets.j         encoder.down.i.block.j  (nin_shortcut)
 *   encoder.down_blocks.i.downsamplers.0.conv  encoder.down.i.downsample.conv
 *   decoder.up_blocks.i.resnets.j           decoder.up.(n-1-i).block.j
 *   decoder.up_blocks.i.upsamplers.0.conv   decoder.up.(n-1-i).upsample.conv
 *   *.mid_block.resnets.0 / 1               *.mid.block_1 / block_2
 *   *.mid_block.attentions.0.group_norm, to_q, to_k, to_v, to_out.0
 *                                           *.mid.attn_1.norm, q, k, v, proj_out
 *   *.conv_norm_out                         *.norm_out
 *   conv_in, conv_out, quant_conv, post_quant_conv: the same names.
 *
 * The configs follow the shapes: block widths from the resnets' outputs, L and n from
 * where the downsamplers sit, attention blocks from which layers have transformers,
 * the cross-attention width from attn2.to_k's input; the constants are those of SD's
 * LDM configs (32 groups, eps 1e-5, flipped sinusoids, shift 0), and heads are SD
 * 1.x's 8 or SD 2.x's channels / 64, as diffusers derives attention_head_dim from
 * num_heads or num_head_channels (create_unet_diffusers_config_from_ldm).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "sd_single.h"

#define UNET_PREFIX "model.diffusion_model."
#define VAE_PREFIX "first_stage_model."
#define SD1_TEXT "cond_stage_model.transformer."
#define SD2_TEXT "cond_stage_model.model."
#define SDXL_TEXT "conditioner.embedders."

/* ---- lookup ---------------------------------------------------------------------- */

typedef struct {
    const kiln_weight_list *in;
    const char *path;
    const kiln_weight **sorted; /* the input's weights by name */
    const char *prefix;         /* of the LDM names being looked up */
    kiln_weight_list *out;
} splitter;

static int cmp_weight(const void *a, const void *b) {
    return strcmp((*(const kiln_weight *const *)a)->name, (*(const kiln_weight *const *)b)->name);
}

static int cmp_key(const void *key, const void *b) {
    return strcmp((const char *)key, (*(const kiln_weight *const *)b)->name);
}

/* The tensor called prefix + name, or NULL. */
static const kiln_tensor *find(const splitter *s, const char *prefix, const char *name) {
    char full[512];
    if (snprintf(full, sizeof full, "%s%s", prefix, name) >= (int)sizeof full) return NULL;
    const kiln_weight *const *w = bsearch(full, s->sorted, s->in->n, sizeof *s->sorted, cmp_key);
    return w ? &(*w)->t : NULL;
}

static bool has_prefix(const kiln_weight_list *in, const char *prefix) {
    const size_t n = strlen(prefix);
    for (size_t i = 0; i < in->n; i++)
        if (!strncmp(in->items[i].name, prefix, n)) return true;
    return false;
}

/* 1 + the largest N of the names prefix + "N.", or 0. */
static int count_indexed(const kiln_weight_list *in, const char *prefix) {
    const size_t n = strlen(prefix);
    long best = -1;
    for (size_t i = 0; i < in->n; i++) {
        const char *name = in->items[i].name;
        if (strncmp(name, prefix, n) || name[n] < '0' || name[n] > '9') continue;
        char *end;
        long v = strtol(name + n, &end, 10);
        if (*end == '.' && v < 1000 && v > best) best = v;
    }
    return (int)(best + 1);
}

/* ---- emitting ---------------------------------------------------------------------- */

/* Adds diffusers' dif as a view of s->prefix + ldm (which must exist). flatten: a 1x1
 * conv weight becomes the (out, in) matrix (diffusers' conv_attn_to_linear). */
static kiln_status emit(splitter *s, const char *dif, const char *ldm, bool flatten) {
    const kiln_tensor *t = find(s, s->prefix, ldm);
    if (!t)
        return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s%s' (diffusers' %s)", s->path, s->prefix, ldm, dif);
    kiln_tensor v = *t;
    if (flatten && v.n_dims == 4 && v.ne[0] == 1 && v.ne[1] == 1) {
        v.n_dims = 2;
        v.ne[0] = t->ne[2];
        v.ne[1] = t->ne[3];
        v.ne[2] = v.ne[3] = 1;
        v.nb[1] = t->nb[3];
        v.nb[2] = v.nb[3] = t->nb[3] * (size_t)t->ne[3];
    }
    return kiln_weights_add(s->out, dif, &v);
}

/* A pair of name stems, weight (and bias when with_bias) each. */
typedef struct {
    const char *dif, *ldm;
    bool with_bias, flatten;
} stem;

static kiln_status emit_stems(splitter *s, const char *dif_p, const char *ldm_p, const stem *st, int n) {
    kiln_status r;
    for (int i = 0; i < n; i++) {
        char a[384], b[384];
        for (int k = 0; k < (st[i].with_bias ? 2 : 1); k++) {
            const char *sfx = k ? ".bias" : ".weight";
            snprintf(a, sizeof a, "%s%s%s", dif_p, st[i].dif, sfx);
            snprintf(b, sizeof b, "%s%s%s", ldm_p, st[i].ldm, sfx);
            if ((r = emit(s, a, b, st[i].flatten && !k))) return r;
        }
    }
    return KILN_OK;
}

static kiln_status emit_conv(splitter *s, const char *dif, const char *ldm) {
    const stem st = {dif, ldm, true, false};
    return emit_stems(s, "", "", &st, 1);
}

/* A UNet ResnetBlock2D; shortcut: cin != cout. */
static kiln_status unet_resnet(splitter *s, const char *dif_p, const char *ldm_p, bool shortcut) {
    static const stem st[] = {
        {"norm1", "in_layers.0", true, false},  {"conv1", "in_layers.2", true, false},
        {"time_emb_proj", "emb_layers.1", true, false}, {"norm2", "out_layers.0", true, false},
        {"conv2", "out_layers.3", true, false}, {"conv_shortcut", "skip_connection", true, false},
    };
    return emit_stems(s, dif_p, ldm_p, st, shortcut ? 6 : 5);
}

/* A Transformer2DModel (SpatialTransformer): the same names on both sides. */
static kiln_status unet_transformer(splitter *s, const char *dif_p, const char *ldm_p, int depth) {
    static const stem outer[] = {{"norm", "norm", true, false}, {"proj_in", "proj_in", true, false},
                                 {"proj_out", "proj_out", true, false}};
    static const stem block[] = {
        {"norm1", "norm1", true, false},           {"attn1.to_q", "attn1.to_q", false, false},
        {"attn1.to_k", "attn1.to_k", false, false}, {"attn1.to_v", "attn1.to_v", false, false},
        {"attn1.to_out.0", "attn1.to_out.0", true, false}, {"norm2", "norm2", true, false},
        {"attn2.to_q", "attn2.to_q", false, false}, {"attn2.to_k", "attn2.to_k", false, false},
        {"attn2.to_v", "attn2.to_v", false, false}, {"attn2.to_out.0", "attn2.to_out.0", true, false},
        {"norm3", "norm3", true, false},           {"ff.net.0.proj", "ff.net.0.proj", true, false},
        {"ff.net.2", "ff.net.2", true, false},
    };
    kiln_status r = emit_stems(s, dif_p, ldm_p, outer, 3);
    for (int t = 0; t < depth && !r; t++) {
        char a[320], b[320];
        snprintf(a, sizeof a, "%stransformer_blocks.%d.", dif_p, t);
        snprintf(b, sizeof b, "%stransformer_blocks.%d.", ldm_p, t);
        r = emit_stems(s, a, b, block, (int)(sizeof block / sizeof block[0]));
    }
    return r;
}

static kiln_status vae_resnet(splitter *s, const char *dif_p, const char *ldm_p, bool shortcut) {
    static const stem st[] = {
        {"norm1", "norm1", true, false}, {"conv1", "conv1", true, false},
        {"norm2", "norm2", true, false}, {"conv2", "conv2", true, false},
        {"conv_shortcut", "nin_shortcut", true, false},
    };
    return emit_stems(s, dif_p, ldm_p, st, shortcut ? 5 : 4);
}

static kiln_status vae_mid(splitter *s, const char *half) {
    static const stem attn[] = {
        {"group_norm", "norm", true, false}, {"to_q", "q", true, true},          {"to_k", "k", true, true},
        {"to_v", "v", true, true},           {"to_out.0", "proj_out", true, true},
    };
    char a[96], b[96];
    kiln_status r;
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s.mid_block.resnets.%d.", half, i);
        snprintf(b, sizeof b, "%s.mid.block_%d.", half, i + 1);
        if ((r = vae_resnet(s, a, b, false))) return r;
    }
    snprintf(a, sizeof a, "%s.mid_block.attentions.0.", half);
    snprintf(b, sizeof b, "%s.mid.attn_1.", half);
    return emit_stems(s, a, b, attn, 5);
}

/* ---- the UNet ------------------------------------------------------------------------ */

/* ne[3] of a 4-D weight (its outputs) or ne[1] of a matrix; -1 if absent. */
static int out_width(const kiln_tensor *t) { return t ? (int)(t->n_dims == 4 ? t->ne[3] : t->ne[1]) : -1; }

static int depth_of(const splitter *s, const char *attn_p) {
    int d = 0;
    char name[320];
    for (;;) {
        snprintf(name, sizeof name, "%stransformer_blocks.%d.attn1.to_q.weight", attn_p, d);
        if (!find(s, UNET_PREFIX, name) || d >= 32) return d;
        d++;
    }
}

static kiln_status unet_config(const splitter *s, kiln_sd_single *o) {
    kiln_unet_config *c = &o->unet_config;
    const char *path = s->path;
    const kiln_tensor *conv_in = find(s, UNET_PREFIX, "input_blocks.0.0.weight");
    const kiln_tensor *conv_out = find(s, UNET_PREFIX, "out.2.weight");
    const kiln_tensor *to_k = find(s, UNET_PREFIX, "middle_block.1.transformer_blocks.0.attn2.to_k.weight");
    const kiln_tensor *proj_in = find(s, UNET_PREFIX, "middle_block.1.proj_in.weight");
    if (!conv_in || conv_in->n_dims != 4 || !conv_out || conv_out->n_dims != 4)
        return kiln_fail(KILN_ERR_FORMAT, "%s: missing or malformed '%s' / '%s'", path,
                         UNET_PREFIX "input_blocks.0.0.weight", UNET_PREFIX "out.2.weight");
    if (!to_k || !proj_in)
        return kiln_fail(KILN_ERR_FORMAT, "%s: the UNet has no mid-block transformer ('%s')", path,
                         UNET_PREFIX "middle_block.1.transformer_blocks.0.attn2.to_k.weight");
    const int n_in = count_indexed(s->in, UNET_PREFIX "input_blocks.");
    const int n_out = count_indexed(s->in, UNET_PREFIX "output_blocks.");
    int first_op = 0;
    for (int k = 1; k < n_in && !first_op; k++) {
        char name[96];
        snprintf(name, sizeof name, "input_blocks.%d.0.op.weight", k);
        if (find(s, UNET_PREFIX, name)) first_op = k;
    }
    const int L = first_op ? first_op - 1 : n_in - 1;
    const int n = L > 0 ? n_in / (L + 1) : 0;
    if (L < 1 || L > 15 || n < 1 || n > KILN_UNET_MAX_BLOCKS || n * (L + 1) != n_in || n_out != n_in)
        return kiln_fail(KILN_ERR_FORMAT,
                         "%s: cannot infer the UNet's blocks from %d input and %d output blocks (at most %d blocks "
                         "of at most 15 layers)",
                         path, n_in, n_out, KILN_UNET_MAX_BLOCKS);
    memset(c, 0, sizeof *c);
    c->n_blocks = n;
    c->layers_per_block = L;
    c->in_channels = (int)conv_in->ne[2];
    c->out_channels = (int)conv_out->ne[3];
    c->cross_attention_dim = (int)to_k->ne[0];
    c->groups = 32;
    c->norm_eps = 1e-5f;
    c->flip_sin_to_cos = true;
    c->freq_shift = 0;
    o->linear_projection = proj_in->n_dims == 2;
    for (int i = 0; i < n; i++) {
        char name[160];
        const int k = 1 + i * (L + 1);
        snprintf(name, sizeof name, "input_blocks.%d.0.out_layers.3.weight", k);
        c->channels[i] = out_width(find(s, UNET_PREFIX, name));
        if (c->channels[i] <= 0)
            return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s%s'", path, UNET_PREFIX, name);
        snprintf(name, sizeof name, "input_blocks.%d.1.", k);
        c->transformer_layers[i] = depth_of(s, name);
        c->down_attn[i] = c->transformer_layers[i] > 0;
        snprintf(name, sizeof name, "output_blocks.%d.1.proj_in.weight", i * (L + 1));
        c->up_attn[i] = find(s, UNET_PREFIX, name) != NULL;
    }
    for (int i = 0; i < n; i++) {
        const int r = n - 1 - i; /* kiln's up block i takes down block r's heads and depth */
        if (c->up_attn[i] && !c->down_attn[r]) {
            char name[64];
            snprintf(name, sizeof name, "output_blocks.%d.1.", i * (L + 1));
            c->transformer_layers[r] = depth_of(s, name);
        }
    }
    const int mid_depth = depth_of(s, "middle_block.1.");
    if (!c->transformer_layers[n - 1]) c->transformer_layers[n - 1] = mid_depth;
    if (mid_depth != c->transformer_layers[n - 1])
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: the mid block's %d transformer layers differ from the last block's %d",
                         path, mid_depth, c->transformer_layers[n - 1]);
    for (int i = 0; i < n; i++) {
        if (!c->transformer_layers[i]) c->transformer_layers[i] = 1;
        c->heads[i] = o->family == KILN_SD_FAMILY_SD2 ? c->channels[i] / 64 : 8;
        if (c->heads[i] < 1 || c->channels[i] % c->heads[i] || c->channels[i] % c->groups)
            return kiln_fail(KILN_ERR_FORMAT, "%s: block %d's %d channels fit neither %s nor %d groups", path, i,
                             c->channels[i], o->family == KILN_SD_FAMILY_SD2 ? "64-wide heads" : "8 heads", c->groups);
    }
    o->inpainting = c->in_channels == 9;
    /* diffusers' default image size per model type (v2: 768, inpainting and v1: 512),
     * over the VAE's factor 8 */
    c->sample_size = o->family == KILN_SD_FAMILY_SD2 && !o->inpainting ? 96 : 64;
    return KILN_OK;
}

static kiln_status unet_split(splitter *s, const kiln_unet_config *c) {
    const int n = c->n_blocks, L = c->layers_per_block;
    char a[160], b[160];
    kiln_status r;
    s->prefix = UNET_PREFIX;
    if ((r = emit_conv(s, "time_embedding.linear_1", "time_embed.0")) ||
        (r = emit_conv(s, "time_embedding.linear_2", "time_embed.2")) || (r = emit_conv(s, "conv_in", "input_blocks.0.0")))
        return r;
    int out = c->channels[0];
    for (int i = 0; i < n; i++) {
        const int cin = out;
        out = c->channels[i];
        for (int j = 0; j < L; j++) {
            const int k = 1 + i * (L + 1) + j;
            snprintf(a, sizeof a, "down_blocks.%d.resnets.%d.", i, j);
            snprintf(b, sizeof b, "input_blocks.%d.0.", k);
            if ((r = unet_resnet(s, a, b, j == 0 && cin != out))) return r;
            if (!c->down_attn[i]) continue;
            snprintf(a, sizeof a, "down_blocks.%d.attentions.%d.", i, j);
            snprintf(b, sizeof b, "input_blocks.%d.1.", k);
            if ((r = unet_transformer(s, a, b, c->transformer_layers[i]))) return r;
        }
        if (i == n - 1) continue;
        snprintf(a, sizeof a, "down_blocks.%d.downsamplers.0.conv", i);
        snprintf(b, sizeof b, "input_blocks.%d.0.op", 1 + i * (L + 1) + L);
        if ((r = emit_conv(s, a, b))) return r;
    }
    if ((r = unet_resnet(s, "mid_block.resnets.0.", "middle_block.0.", false)) ||
        (r = unet_transformer(s, "mid_block.attentions.0.", "middle_block.1.", c->transformer_layers[n - 1])) ||
        (r = unet_resnet(s, "mid_block.resnets.1.", "middle_block.2.", false)))
        return r;
    for (int i = 0; i < n; i++) {
        const int rr = n - 1 - i;
        for (int j = 0; j <= L; j++) {
            const int k = i * (L + 1) + j;
            snprintf(a, sizeof a, "up_blocks.%d.resnets.%d.", i, j);
            snprintf(b, sizeof b, "output_blocks.%d.0.", k);
            if ((r = unet_resnet(s, a, b, true))) return r; /* a skip is concatenated: cin > cout */
            if (!c->up_attn[i]) continue;
            snprintf(a, sizeof a, "up_blocks.%d.attentions.%d.", i, j);
            snprintf(b, sizeof b, "output_blocks.%d.1.", k);
            if ((r = unet_transformer(s, a, b, c->transformer_layers[rr]))) return r;
        }
        if (i == n - 1) continue;
        snprintf(a, sizeof a, "up_blocks.%d.upsamplers.0.conv", i);
        snprintf(b, sizeof b, "output_blocks.%d.%d.conv", i * (L + 1) + L, c->up_attn[i] ? 2 : 1);
        if ((r = emit_conv(s, a, b))) return r;
    }
    if ((r = emit_conv(s, "conv_norm_out", "out.0")) || (r = emit_conv(s, "conv_out", "out.2"))) return r;
    return KILN_OK;
}

/* ---- the VAE ------------------------------------------------------------------------- */

static kiln_status vae_config(const splitter *s, kiln_sd_single *o) {
    kiln_vae_config *c = &o->vae_config;
    const char *path = s->path;
    const kiln_tensor *z_in = find(s, VAE_PREFIX, "decoder.conv_in.weight");
    const kiln_tensor *img_out = find(s, VAE_PREFIX, "decoder.conv_out.weight");
    const kiln_tensor *img_in = find(s, VAE_PREFIX, "encoder.conv_in.weight");
    if (!z_in || z_in->n_dims != 4 || !img_out || img_out->n_dims != 4)
        return kiln_fail(KILN_ERR_FORMAT, "%s: the VAE lacks '%s' or '%s'", path, VAE_PREFIX "decoder.conv_in.weight",
                         VAE_PREFIX "decoder.conv_out.weight");
    const int n = count_indexed(s->in, VAE_PREFIX "decoder.up.");
    const int L1 = count_indexed(s->in, VAE_PREFIX "decoder.up.0.block.");
    if (n < 1 || n > KILN_VAE_MAX_BLOCKS || L1 < 2 || L1 > 9)
        return kiln_fail(KILN_ERR_FORMAT, "%s: cannot infer the VAE's blocks (%d decoder levels of %d resnets)", path, n,
                         L1);
    memset(c, 0, sizeof *c);
    c->n_blocks = n;
    c->layers_per_block = L1 - 1;
    c->latent_channels = (int)z_in->ne[2];
    c->out_channels = (int)img_out->ne[3];
    c->in_channels = img_in && img_in->n_dims == 4 ? (int)img_in->ne[2] : 3;
    c->groups = 32;
    c->scaling_factor = 0.18215f;
    c->shift_factor = 0.0f;
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "decoder.up.%d.block.0.conv2.weight", i);
        c->channels[i] = out_width(find(s, VAE_PREFIX, name));
        if (c->channels[i] <= 0 || c->channels[i] % c->groups)
            return kiln_fail(KILN_ERR_FORMAT, "%s: '%s%s' is missing or not a multiple of %d channels", path, VAE_PREFIX,
                             name, c->groups);
    }
    o->has_vae_encoder = img_in != NULL;
    return KILN_OK;
}

static kiln_status vae_split(splitter *s, const kiln_vae_config *c, bool encoder) {
    const int n = c->n_blocks, L = c->layers_per_block, top = c->channels[n - 1];
    char a[160], b[160];
    kiln_status r;
    s->prefix = VAE_PREFIX;
    if (encoder) {
        if ((r = emit_conv(s, "encoder.conv_in", "encoder.conv_in"))) return r;
        int out = c->channels[0];
        for (int i = 0; i < n; i++) {
            const int cin = out;
            out = c->channels[i];
            for (int j = 0; j < L; j++) {
                snprintf(a, sizeof a, "encoder.down_blocks.%d.resnets.%d.", i, j);
                snprintf(b, sizeof b, "encoder.down.%d.block.%d.", i, j);
                if ((r = vae_resnet(s, a, b, j == 0 && cin != out))) return r;
            }
            if (i == n - 1) continue;
            snprintf(a, sizeof a, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            snprintf(b, sizeof b, "encoder.down.%d.downsample.conv", i);
            if ((r = emit_conv(s, a, b))) return r;
        }
        if ((r = vae_mid(s, "encoder")) || (r = emit_conv(s, "encoder.conv_norm_out", "encoder.norm_out")) ||
            (r = emit_conv(s, "encoder.conv_out", "encoder.conv_out")) || (r = emit_conv(s, "quant_conv", "quant_conv")))
            return r;
    }
    if ((r = emit_conv(s, "post_quant_conv", "post_quant_conv")) || (r = emit_conv(s, "decoder.conv_in", "decoder.conv_in")) ||
        (r = vae_mid(s, "decoder")))
        return r;
    int out = top;
    for (int i = 0; i < n; i++) {
        const int cin = out, lv = n - 1 - i;
        out = c->channels[lv];
        for (int j = 0; j <= L; j++) {
            snprintf(a, sizeof a, "decoder.up_blocks.%d.resnets.%d.", i, j);
            snprintf(b, sizeof b, "decoder.up.%d.block.%d.", lv, j);
            if ((r = vae_resnet(s, a, b, j == 0 && cin != out))) return r;
        }
        if (i == n - 1) continue;
        snprintf(a, sizeof a, "decoder.up_blocks.%d.upsamplers.0.conv", i);
        snprintf(b, sizeof b, "decoder.up.%d.upsample.conv", lv);
        if ((r = emit_conv(s, a, b))) return r;
    }
    if ((r = emit_conv(s, "decoder.conv_norm_out", "decoder.norm_out")) ||
        (r = emit_conv(s, "decoder.conv_out", "decoder.conv_out")))
        return r;
    return KILN_OK;
}

/* ---- the whole file ------------------------------------------------------------------ */

bool kiln_sd_single_is(const kiln_weight_list *in) {
    return in && (kiln_weights_find(in, UNET_PREFIX "input_blocks.0.0.weight") || has_prefix(in, SDXL_TEXT));
}

kiln_status kiln_sd_single_split(const kiln_weight_list *in, const char *path, kiln_sd_single *out) {
    memset(out, 0, sizeof *out);
    if (!in) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_sd_single_split: no weights");
    path = path ? path : "(weights)";
    if (has_prefix(in, SDXL_TEXT))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: SDXL single files are not supported yet (it has %s*)", path,
                         SDXL_TEXT);
    if (!kiln_weights_find(in, UNET_PREFIX "input_blocks.0.0.weight"))
        return kiln_fail(KILN_ERR_FORMAT,
                         "%s: not a Stable Diffusion 1.x / 2.x single-file checkpoint (no '%sinput_blocks.0.0.weight')",
                         path, UNET_PREFIX);
    if (has_prefix(in, UNET_PREFIX "label_emb."))
        return kiln_fail(KILN_ERR_UNSUPPORTED,
                         "%s: class-conditioned UNets (%slabel_emb.*: SDXL, the x4 upscaler) are not supported yet",
                         path, UNET_PREFIX);
    splitter s = {in, path, NULL, UNET_PREFIX, NULL};
    s.sorted = malloc((in->n ? in->n : 1) * sizeof *s.sorted);
    if (!s.sorted) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < in->n; i++) s.sorted[i] = &in->items[i];
    qsort(s.sorted, in->n, sizeof *s.sorted, cmp_weight);

    if (has_prefix(in, SD1_TEXT)) {
        out->family = KILN_SD_FAMILY_SD1;
        out->text_prefix = SD1_TEXT;
        out->text_names = KILN_CLIP_NAMES_HF;
    } else if (has_prefix(in, SD2_TEXT)) {
        out->family = KILN_SD_FAMILY_SD2;
        out->text_prefix = SD2_TEXT;
        out->text_names = KILN_CLIP_NAMES_OPENCLIP;
    } else { /* a UNet without its text encoder: diffusers' v2 test (to_k 1024 wide) */
        const kiln_tensor *k = find(&s, UNET_PREFIX, "middle_block.1.transformer_blocks.0.attn2.to_k.weight");
        const kiln_tensor *p = find(&s, UNET_PREFIX, "middle_block.1.proj_in.weight");
        bool v2 = (k && k->ne[0] == 1024) || (p && p->n_dims == 2);
        out->family = v2 ? KILN_SD_FAMILY_SD2 : KILN_SD_FAMILY_SD1;
        out->text_names = v2 ? KILN_CLIP_NAMES_OPENCLIP : KILN_CLIP_NAMES_HF;
    }
    kiln_status st = unet_config(&s, out);
    if (!st) {
        s.out = &out->unet;
        st = unet_split(&s, &out->unet_config);
    }
    if (!st && has_prefix(in, VAE_PREFIX)) {
        out->has_vae = true;
        if (!(st = vae_config(&s, out))) {
            s.out = &out->vae;
            st = vae_split(&s, &out->vae_config, out->has_vae_encoder);
        }
    }
    free(s.sorted);
    return st;
}

void kiln_sd_single_free(kiln_sd_single *s) {
    if (!s) return;
    kiln_weights_free(&s->unet);
    kiln_weights_free(&s->vae);
    memset(s, 0, sizeof *s);
}
