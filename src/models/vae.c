/*
 * vae.c — the VAE's config, weights (diffusers' names) and its two halves, as
 * diffusers' Encoder / Decoder compute them, channels-last:
 *
 *   decode: h = conv_in(post_quant_conv(z)); h = resnet(attn(resnet(h)));
 *           per up block (widths reversed): layers_per_block + 1 resnets, then (not
 *           last) conv(upsample2x(h)); img = conv_out(silu(GroupNorm(h)))
 *   encode: h = conv_in(img); per down block: layers_per_block resnets, then (not
 *           last) a stride-2 conv padded on the bottom and right only; mid as above;
 *           moments = quant_conv(conv_out(silu(GroupNorm(h))))
 * Every GroupNorm of the VAE uses eps 1e-6; the resnets take no time embedding.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "models/bind.h"
#include "sd_blocks.h"
#include "vae.h"

typedef struct {
    sd_resnet res[16];
    sd_conv sample;
    bool has_sample;
    int n_layers;
} vae_block;

typedef struct {
    sd_conv conv_in, conv_out;
    vae_block blocks[KILN_VAE_MAX_BLOCKS];
    sd_resnet mid_res[2];
    sd_vae_attn mid_attn;
    sd_norm norm_out;
    sd_linear quant; /* quant_conv (encoder) or post_quant_conv (decoder), 1x1 */
} vae_half;

struct kiln_vae {
    kiln_vae_config cfg;
    vae_half enc, dec;
    bool has_encoder;
    sd_owned own;
    kiln_pool *pool;
    bool bf16;
    sd_heap heap;  /* maps reused across calls */
    void *scratch; /* convolution tiles, reused by every conv */
    size_t scratch_bytes;
};

/* ---- config ------------------------------------------------------------------------ */

static kiln_status types(const cJSON *j, const char *key, const char *want, int n, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key), *e;
    if (!v) return KILN_OK; /* diffusers' defaults are these types */
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return kiln_fail(KILN_ERR_FORMAT, "%s: '%s' must list %d block types", what, key, n);
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e) || strcmp(e->valuestring, want))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: %s other than %s are not supported", what, key, want);
    }
    return KILN_OK;
}

kiln_status kiln_vae_config_json(const char *json, const char *what, kiln_vae_config *c) {
    memset(c, 0, sizeof *c);
    cJSON *j = kiln_json_parse_py(json);
    kiln_status st = KILN_OK;
    const cJSON *ch = j ? cJSON_GetObjectItemCaseSensitive(j, "block_out_channels") : NULL, *e;
    if (!j || !cJSON_IsObject(j)) {
        st = kiln_fail(KILN_ERR_FORMAT, "%s: not a JSON object", what);
        goto out;
    }
    c->n_blocks = cJSON_IsArray(ch) ? cJSON_GetArraySize(ch) : 0;
    if (c->n_blocks < 1 || c->n_blocks > KILN_VAE_MAX_BLOCKS) {
        st = kiln_fail(KILN_ERR_FORMAT, "%s: block_out_channels must list 1 to %d channel counts", what,
                       KILN_VAE_MAX_BLOCKS);
        goto out;
    }
    int i = 0;
    cJSON_ArrayForEach(e, ch) c->channels[i++] = cJSON_IsNumber(e) ? e->valueint : -1;
    if ((st = types(j, "down_block_types", "DownEncoderBlock2D", c->n_blocks, what)) ||
        (st = types(j, "up_block_types", "UpDecoderBlock2D", c->n_blocks, what)) ||
        (st = kiln_json_int(j, "in_channels", false, 3, &c->in_channels, what)) ||
        (st = kiln_json_int(j, "out_channels", false, 3, &c->out_channels, what)) ||
        (st = kiln_json_int(j, "latent_channels", false, 4, &c->latent_channels, what)) ||
        (st = kiln_json_int(j, "layers_per_block", false, 1, &c->layers_per_block, what)) ||
        (st = kiln_json_int(j, "norm_num_groups", false, 32, &c->groups, what)))
        goto out;
    static const char *const off[] = {"use_quant_conv", "use_post_quant_conv"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, off[k]);
        if (v && cJSON_IsFalse(v)) {
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: %s = false is not supported yet", what, off[k]);
            goto out;
        }
    }
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(j, "scaling_factor"), *sh = cJSON_GetObjectItemCaseSensitive(j, "shift_factor");
    c->scaling_factor = cJSON_IsNumber(sf) ? (float)sf->valuedouble : 0.18215f;
    c->shift_factor = cJSON_IsNumber(sh) ? (float)sh->valuedouble : 0.0f;
    bool ok = c->in_channels > 0 && c->in_channels <= 16 && c->out_channels > 0 && c->out_channels <= 16 &&
              c->latent_channels > 0 && c->latent_channels <= 64 && c->layers_per_block > 0 &&
              c->layers_per_block <= 8 && c->groups > 0 && c->scaling_factor > 0 && isfinite(c->scaling_factor) &&
              isfinite(c->shift_factor);
    for (int k = 0; k < c->n_blocks && ok; k++)
        ok = c->channels[k] > 0 && c->channels[k] <= (1 << 14) && c->channels[k] % c->groups == 0;
    if (!ok) st = kiln_fail(KILN_ERR_FORMAT, "%s: implausible VAE configuration", what);
out:
    cJSON_Delete(j);
    return st;
}

/* ---- binding ------------------------------------------------------------------------- */

static kiln_status bind_mid(const sd_binder *b, vae_half *v, int c, const char *half) {
    char p[64];
    kiln_status st;
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s.mid_block.resnets.%d.", half, i);
        if ((st = sd_bind_resnet(b, &v->mid_res[i], c, c, 0, p))) return st;
    }
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.", half);
    return sd_bind_vae_attn(b, &v->mid_attn, c, p);
}

static kiln_status bind_encoder(const sd_binder *b, const kiln_vae_config *c, vae_half *v) {
    const int n = c->n_blocks, top = c->channels[n - 1];
    kiln_status st = sd_bind_conv(b, &v->conv_in, c->in_channels, c->channels[0], 3, "encoder.conv_in");
    int out = c->channels[0];
    for (int i = 0; i < n && !st; i++) {
        vae_block *k = &v->blocks[i];
        int cin = out;
        out = c->channels[i];
        k->n_layers = c->layers_per_block;
        for (int j = 0; j < k->n_layers && !st; j++) {
            char p[64];
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d.", i, j);
            st = sd_bind_resnet(b, &k->res[j], j == 0 ? cin : out, out, 0, p);
        }
        k->has_sample = i < n - 1;
        if (!st && k->has_sample) st = sd_bind_conv(b, &k->sample, out, out, 3, "encoder.down_blocks.%d.downsamplers.0.conv", i);
    }
    if (st || (st = bind_mid(b, v, top, "encoder")) || (st = sd_bind_norm(b, &v->norm_out, top, "encoder.conv_norm_out")) ||
        (st = sd_bind_conv(b, &v->conv_out, top, 2 * c->latent_channels, 3, "encoder.conv_out")))
        return st;
    return sd_bind_linear(b, &v->quant, 2 * c->latent_channels, 2 * c->latent_channels, true, "quant_conv");
}

static kiln_status bind_decoder(const sd_binder *b, const kiln_vae_config *c, vae_half *v) {
    const int n = c->n_blocks, top = c->channels[n - 1];
    kiln_status st;
    if ((st = sd_bind_linear(b, &v->quant, c->latent_channels, c->latent_channels, true, "post_quant_conv")) ||
        (st = sd_bind_conv(b, &v->conv_in, c->latent_channels, top, 3, "decoder.conv_in")) ||
        (st = bind_mid(b, v, top, "decoder")))
        return st;
    int out = top;
    for (int i = 0; i < n && !st; i++) {
        vae_block *k = &v->blocks[i];
        int cin = out;
        out = c->channels[n - 1 - i];
        k->n_layers = c->layers_per_block + 1;
        for (int j = 0; j < k->n_layers && !st; j++) {
            char p[64];
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d.", i, j);
            st = sd_bind_resnet(b, &k->res[j], j == 0 ? cin : out, out, 0, p);
        }
        k->has_sample = i < n - 1;
        if (!st && k->has_sample) st = sd_bind_conv(b, &k->sample, out, out, 3, "decoder.up_blocks.%d.upsamplers.0.conv", i);
    }
    if (st || (st = sd_bind_norm(b, &v->norm_out, c->channels[0], "decoder.conv_norm_out"))) return st;
    return sd_bind_conv(b, &v->conv_out, c->channels[0], c->out_channels, 3, "decoder.conv_out");
}

kiln_status kiln_vae_create(const kiln_weight_list *w, const char *prefix, const kiln_vae_config *cfg, bool decoder_only,
                            bool bf16, const char *path, kiln_pool *pool, kiln_vae **out) {
    *out = NULL;
    if (!w || !cfg || cfg->n_blocks < 1 || cfg->n_blocks > KILN_VAE_MAX_BLOCKS || cfg->layers_per_block < 1 ||
        cfg->layers_per_block > 15)
        return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_vae_create: no weights, or a config out of range");
    kiln_kernels_init();
    kiln_vae *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->pool = pool;
    m->has_encoder = !decoder_only;
    sd_binder b = {w, prefix ? prefix : "", path ? path : "(weights)", &m->own, bf16};
    kiln_status st = bind_decoder(&b, cfg, &m->dec);
    if (!st && m->has_encoder) st = bind_encoder(&b, cfg, &m->enc);
    if (!st) st = sd_owned_pack(&m->own, bf16, pool);
    m->bf16 = bf16;
    if (!st) st = sd_conv_scratch(m->own.max_cin, pool, &m->scratch, &m->scratch_bytes);
    if (st) {
        kiln_vae_free(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}

void kiln_vae_free(kiln_vae *m) {
    if (!m) return;
    sd_owned_free(&m->own);
    sd_heap_free(&m->heap);
    free(m->scratch);
    free(m);
}

const kiln_vae_config *kiln_vae_get_config(const kiln_vae *m) { return &m->cfg; }
size_t kiln_vae_heap_bytes(const kiln_vae *m) { return sd_owned_bytes(&m->own); }

/* ---- forward ----------------------------------------------------------------------------- */

typedef struct {
    sd_ctx x;
    kiln_vae_trace_fn trace;
    void *user;
} run;

static void trace(const run *r, const char *stage, int i, const sd_map *h) { sd_trace(r->trace, r->user, stage, i, h); }

/* *cur = f(*cur): the old map is freed once the new one exists. */
#define STEP(call)                                                                                                    \
    do {                                                                                                              \
        sd_map next_;                                                                                                 \
        if ((st = (call))) goto out;                                                                                  \
        sd_map_free(&cur);                                                                                            \
        cur = next_;                                                                                                  \
    } while (0)

static kiln_status mid_run(const run *r, const vae_half *v, sd_map *io) {
    sd_map a, b;
    kiln_status st = sd_resnet_run(&r->x, &v->mid_res[0], io, NULL, &a);
    if (st) return st;
    st = sd_vae_attn_run(&r->x, &v->mid_attn, &a, &b);
    sd_map_free(&a);
    if (st) return st;
    st = sd_resnet_run(&r->x, &v->mid_res[1], &b, NULL, &a);
    sd_map_free(&b);
    if (st) return st;
    sd_map_free(io);
    *io = a;
    return KILN_OK;
}

/* out (n, cout) = a 1x1 conv of in. */
static kiln_status pointwise(const run *r, const sd_linear *l, const sd_map *in, sd_map *out) {
    kiln_status st = sd_map_alloc(&r->x, out, in->h, in->w, l->cout);
    if (st) return st;
    if ((st = sd_linear_run(&r->x, l, in->d, (int64_t)in->h * in->w, out->d))) sd_map_free(out);
    return st;
}

kiln_status kiln_vae_decode(kiln_vae *m, const float *z, int h, int w, float *img, kiln_vae_trace_fn trace_fn,
                            void *user) {
    const kiln_vae_config *c = &m->cfg;
    if (!z || !img) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_vae_decode: a NULL buffer");
    if (h <= 0 || w <= 0 || h > 1024 || w > 1024)
        return kiln_fail(KILN_ERR_INVALID_ARG, "latents of %d x %d: the VAE takes 1 to 1024 a side", h, w);
    run r = {{m->pool, &m->heap, c->groups, 1e-6f, m->scratch, m->scratch_bytes, m->bf16}, trace_fn, user};
    const vae_half *v = &m->dec;
    sd_map in = {(float *)z, h, w, c->latent_channels, NULL}, cur = {0};
    kiln_status st = pointwise(&r, &v->quant, &in, &cur);
    if (st) return st;
    STEP(sd_conv_run(&r.x, &v->conv_in, &cur, 1, kiln_pad2d_same(1), &next_));
    trace(&r, "conv_in", -1, &cur);
    if ((st = mid_run(&r, v, &cur))) goto out;
    trace(&r, "mid", -1, &cur);
    for (int i = 0; i < c->n_blocks; i++) {
        const vae_block *k = &v->blocks[i];
        for (int j = 0; j < k->n_layers; j++) STEP(sd_resnet_run(&r.x, &k->res[j], &cur, NULL, &next_));
        if (k->has_sample) STEP(sd_upsample_run(&r.x, &k->sample, &cur, &next_));
        trace(&r, "up", i, &cur);
    }
    STEP(sd_norm_silu_conv(&r.x, &v->norm_out, &v->conv_out, &cur, &next_));
    trace(&r, "out", -1, &cur);
    memcpy(img, cur.d, (size_t)cur.h * (size_t)cur.w * (size_t)cur.c * sizeof(float));
out:
    sd_map_free(&cur);
    sd_heap_free(&m->heap); /* the maps of one call are reused within it, not kept */
    return st;
}

kiln_status kiln_vae_encode(kiln_vae *m, const float *img, int H, int W, float *moments, int *h, int *w,
                            kiln_vae_trace_fn trace_fn, void *user) {
    const kiln_vae_config *c = &m->cfg;
    if (!m->has_encoder) return kiln_fail(KILN_ERR_INVALID_ARG, "the VAE was loaded without its encoder");
    if (!img || !moments) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_vae_encode: a NULL buffer");
    if (H <= 0 || W <= 0 || H > 8192 || W > 8192)
        return kiln_fail(KILN_ERR_INVALID_ARG, "an image of %d x %d: the VAE takes 1 to 8192 a side", H, W);
    run r = {{m->pool, &m->heap, c->groups, 1e-6f, m->scratch, m->scratch_bytes, m->bf16}, trace_fn, user};
    const vae_half *v = &m->enc;
    sd_map in = {(float *)img, H, W, c->in_channels, NULL}, cur = {0};
    kiln_status st = sd_conv_run(&r.x, &v->conv_in, &in, 1, kiln_pad2d_same(1), &cur);
    if (st) return st;
    trace(&r, "conv_in", -1, &cur);
    for (int i = 0; i < c->n_blocks; i++) {
        const vae_block *k = &v->blocks[i];
        for (int j = 0; j < k->n_layers; j++) STEP(sd_resnet_run(&r.x, &k->res[j], &cur, NULL, &next_));
        if (k->has_sample) STEP(sd_conv_run(&r.x, &k->sample, &cur, 2, (kiln_pad2d){0, 0, 1, 1}, &next_));
        trace(&r, "down", i, &cur);
    }
    if ((st = mid_run(&r, v, &cur))) goto out;
    trace(&r, "mid", -1, &cur);
    STEP(sd_norm_silu_conv(&r.x, &v->norm_out, &v->conv_out, &cur, &next_));
    trace(&r, "out", -1, &cur);
    STEP(pointwise(&r, &v->quant, &cur, &next_));
    trace(&r, "moments", -1, &cur);
    memcpy(moments, cur.d, (size_t)cur.h * (size_t)cur.w * (size_t)cur.c * sizeof(float));
    *h = cur.h;
    *w = cur.w;
out:
    sd_map_free(&cur);
    sd_heap_free(&m->heap); /* the maps of one call are reused within it, not kept */
    return st;
}
