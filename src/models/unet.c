/*
 * unet.c — the UNet's weights bound by diffusers' names, and its forward pass.
 *
 * One sample, channels-last (diffusers' UNet2DConditionModel.forward):
 *   temb = linear_2(silu(linear_1(sinusoid(t))))              // (4·c0)
 *   h = conv_in(x); skips = [h]
 *   per down block i: per layer: h = resnet(h, temb) [then h = transformer(h, ctx)];
 *                     push h; then (not last) h = conv_s2(h); push h
 *   mid: h = resnet(transformer(resnet(h, temb), ctx), temb)
 *   per up block i: per layer (layers_per_block + 1):
 *                     h = resnet(concat(h, pop()), temb) [then transformer];
 *                   then (not last) h = conv(upsample2x(h))
 *   out = conv_out(silu(GroupNorm(h)))
 * Channel counts follow diffusers' __init__: up block i has the reversed widths, and
 * its last resnet takes the skip of the block below.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "sd_blocks.h"
#include "unet.h"

typedef struct {
    sd_resnet res[16];
    sd_transformer attn[16];
    sd_conv sample; /* downsampler or upsampler conv */
    bool has_attn, has_sample;
    int n_layers;
} unet_block;

struct kiln_unet {
    kiln_unet_config cfg;
    sd_linear time1, time2;
    sd_conv conv_in, conv_out;
    sd_norm norm_out;
    unet_block down[KILN_UNET_MAX_BLOCKS], up[KILN_UNET_MAX_BLOCKS];
    sd_resnet mid_res[2];
    sd_transformer mid_attn;
    sd_owned own;
    kiln_pool *pool;
    bool bf16;
    sd_heap heap;  /* maps and temporaries reused from pass to pass */
    void *scratch; /* convolution tiles, reused by every conv of a forward pass */
    size_t scratch_bytes;
};

/* ---- binding ------------------------------------------------------------------------- */

static kiln_status bind_block(const sd_binder *b, unet_block *k, const char *dir, int i, int cin, int cout, int skip_in,
                              int prev, bool attn, int n_layers, int heads, int t_layers, const kiln_unet_config *c) {
    const int temb = 4 * c->channels[0];
    kiln_status st;
    k->n_layers = n_layers;
    k->has_attn = attn;
    for (int j = 0; j < n_layers; j++) {
        char p[96];
        int in;
        if (!strcmp(dir, "down")) {
            in = j == 0 ? cin : cout;
        } else { /* up: the previous block's output (or this one's), plus a skip */
            int skip = j == n_layers - 1 ? skip_in : cout;
            in = (j == 0 ? prev : cout) + skip;
        }
        snprintf(p, sizeof p, "%s_blocks.%d.resnets.%d.", dir, i, j);
        if ((st = sd_bind_resnet(b, &k->res[j], in, cout, temb, p))) return st;
        if (!attn) continue;
        snprintf(p, sizeof p, "%s_blocks.%d.attentions.%d.", dir, i, j);
        if ((st = sd_bind_transformer(b, &k->attn[j], cout, c->cross_attention_dim, heads, t_layers, p))) return st;
    }
    return KILN_OK;
}

static kiln_status bind_all(kiln_unet *m, const sd_binder *b) {
    const kiln_unet_config *c = &m->cfg;
    const int n = c->n_blocks, c0 = c->channels[0], L = c->layers_per_block;
    kiln_status st;
    if ((st = sd_bind_linear(b, &m->time1, c0, 4 * c0, true, "time_embedding.linear_1")) ||
        (st = sd_bind_linear(b, &m->time2, 4 * c0, 4 * c0, true, "time_embedding.linear_2")) ||
        (st = sd_bind_conv(b, &m->conv_in, c->in_channels, c0, 3, "conv_in")))
        return st;
    int out = c0;
    for (int i = 0; i < n; i++) {
        int cin = out;
        out = c->channels[i];
        unet_block *k = &m->down[i];
        if ((st = bind_block(b, k, "down", i, cin, out, 0, 0, c->down_attn[i], L, c->heads[i],
                             c->transformer_layers[i], c)))
            return st;
        k->has_sample = i < n - 1;
        if (k->has_sample && (st = sd_bind_conv(b, &k->sample, out, out, 3, "down_blocks.%d.downsamplers.0.conv", i)))
            return st;
    }
    const int top = c->channels[n - 1], temb = 4 * c0;
    if ((st = sd_bind_resnet(b, &m->mid_res[0], top, top, temb, "mid_block.resnets.0.")) ||
        (st = sd_bind_transformer(b, &m->mid_attn, top, c->cross_attention_dim, c->heads[n - 1],
                                  c->transformer_layers[n - 1], "mid_block.attentions.0.")) ||
        (st = sd_bind_resnet(b, &m->mid_res[1], top, top, temb, "mid_block.resnets.1.")))
        return st;
    int prev = top;
    for (int i = 0; i < n; i++) {
        const int r = n - 1 - i; /* the down block this up block mirrors */
        const int cout = c->channels[r], skip_in = c->channels[r > 0 ? r - 1 : 0];
        unet_block *k = &m->up[i];
        if ((st = bind_block(b, k, "up", i, 0, cout, skip_in, prev, c->up_attn[i], L + 1, c->heads[r],
                             c->transformer_layers[r], c)))
            return st;
        k->has_sample = i < n - 1;
        if (k->has_sample && (st = sd_bind_conv(b, &k->sample, cout, cout, 3, "up_blocks.%d.upsamplers.0.conv", i)))
            return st;
        prev = cout;
    }
    if ((st = sd_bind_norm(b, &m->norm_out, c0, "conv_norm_out")) ||
        (st = sd_bind_conv(b, &m->conv_out, c0, c->out_channels, 3, "conv_out")))
        return st;
    return sd_owned_pack(&m->own, b->bf16, m->pool);
}

kiln_status kiln_unet_create(const kiln_weight_list *w, const char *prefix, const kiln_unet_config *cfg, bool bf16,
                             const char *path, kiln_pool *pool, kiln_unet **out) {
    *out = NULL;
    if (!w || !cfg) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_unet_create: no weights or config");
    if (cfg->n_blocks < 1 || cfg->n_blocks > KILN_UNET_MAX_BLOCKS || cfg->layers_per_block < 1 ||
        cfg->layers_per_block > 15)
        return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_unet_create: a config out of range");
    kiln_kernels_init();
    kiln_unet *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->pool = pool;
    sd_binder b = {w, prefix ? prefix : "", path ? path : "(weights)", &m->own, bf16};
    m->bf16 = bf16;
    kiln_status st = bind_all(m, &b);
    if (!st) st = sd_conv_scratch(m->own.max_cin, pool, &m->scratch, &m->scratch_bytes);
    if (st) {
        kiln_unet_free(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}

static void free_block(unet_block *k) {
    for (int j = 0; j < 16; j++) sd_transformer_free(&k->attn[j]);
}

void kiln_unet_free(kiln_unet *m) {
    if (!m) return;
    for (int i = 0; i < KILN_UNET_MAX_BLOCKS; i++) {
        free_block(&m->down[i]);
        free_block(&m->up[i]);
    }
    sd_transformer_free(&m->mid_attn);
    sd_owned_free(&m->own);
    sd_heap_free(&m->heap);
    free(m->scratch);
    free(m);
}

const kiln_unet_config *kiln_unet_get_config(const kiln_unet *m) { return &m->cfg; }

size_t kiln_unet_heap_bytes(const kiln_unet *m) { return sd_owned_bytes(&m->own); }

void kiln_unet_release(kiln_unet *m) { sd_heap_free(&m->heap); }

size_t kiln_unet_activation_bytes(const kiln_unet_config *c, int h, int w, int n_ctx) {
    double skips = 0, widest = 0, attn = 0;
    for (int i = 0; i < c->n_blocks; i++) {
        double px = (double)(h >> i) * (double)(w >> i), map = px * c->channels[i] * 4.0;
        skips += map * (c->layers_per_block + 1);
        widest = fmax(widest, map);
        /* a transformer: 4 maps of rows, the 12c feed-forward buffer, q/k/v, scores */
        double heads = c->heads[i], q_blocks = ceil(px / 32);
        attn = fmax(attn, map * 19 + q_blocks * heads * fmax(px, n_ctx) * 4.0);
    }
    return (size_t)(skips + 6 * widest + attn);
}

/* ---- forward --------------------------------------------------------------------------- */

/* diffusers' get_timestep_embedding, in float32 as there: exponent_i = -ln(10000)·i /
 * (half - shift), arg_i = t·exp(exponent_i); [sin, cos] (or [cos, sin] flipped). */
static void timestep_embedding(float *emb, int dim, double t, bool flip, int shift) {
    const int half = dim / 2;
    const float neg_log = (float)-log(10000.0), tf = (float)t;
    for (int i = 0; i < half; i++) {
        float e = neg_log * (float)i;
        e = e / (float)(half - shift);
        const float arg = tf * expf(e), s = sinf(arg), co = cosf(arg);
        emb[i] = flip ? co : s;
        emb[half + i] = flip ? s : co;
    }
}

typedef struct {
    kiln_unet *m;
    sd_ctx x;
    float *silu_temb, *proj; /* (4·c0), (widest block) */
    const float *ctx;
    int n_ctx;
    sd_map stack[1 + KILN_UNET_MAX_BLOCKS * 17];
    int n_stack;
    kiln_unet_trace_fn trace;
    void *user;
} run;

static void trace(run *r, const char *stage, int i, const sd_map *h) { sd_trace(r->trace, r->user, stage, i, h); }

/* h = resnet(in) [, then its transformer]; in is kept. */
static kiln_status layer(run *r, const sd_resnet *res, const sd_transformer *attn, const sd_map *in, sd_map *h) {
    kiln_status st = sd_linear_run(&r->x, &res->temb, r->silu_temb, 1, r->proj); /* temb_proj(silu(temb)) */
    if (!st) st = sd_resnet_run(&r->x, res, in, r->proj, h);
    if (st || !attn) return st;
    sd_map a;
    st = sd_transformer_run(&r->x, attn, h, r->ctx, r->n_ctx, &a);
    sd_map_free(h);
    if (!st) *h = a;
    return st;
}

static kiln_status concat(const sd_ctx *x, const sd_map *a, const sd_map *b, sd_map *out) {
    if (a->h != b->h || a->w != b->w) return kiln_fail(KILN_ERR_INVALID_ARG, "skip connection sizes differ");
    kiln_status st = sd_map_alloc(x, out, a->h, a->w, a->c + b->c);
    if (st) return st;
    const int64_t n = (int64_t)a->h * a->w;
    for (int64_t i = 0; i < n; i++) {
        memcpy(out->d + i * out->c, a->d + i * a->c, (size_t)a->c * sizeof(float));
        memcpy(out->d + i * out->c + a->c, b->d + i * b->c, (size_t)b->c * sizeof(float));
    }
    return KILN_OK;
}

static kiln_status run_down(run *r, sd_map *cur) {
    const kiln_unet *m = r->m;
    kiln_status st;
    for (int i = 0; i < m->cfg.n_blocks; i++) {
        const unet_block *k = &m->down[i];
        for (int j = 0; j < k->n_layers; j++) {
            sd_map h;
            if ((st = layer(r, &k->res[j], k->has_attn ? &k->attn[j] : NULL, cur, &h))) return st;
            r->stack[r->n_stack++] = h; /* the stack owns every down-path map */
            *cur = h;
        }
        if (k->has_sample) {
            sd_map d;
            if ((st = sd_conv_run(&r->x, &k->sample, cur, 2, kiln_pad2d_same(1), &d))) return st;
            r->stack[r->n_stack++] = d;
            *cur = d;
        }
        trace(r, "down", i, cur);
    }
    return KILN_OK;
}

/* cur is owned here (the mid block's output onwards). */
static kiln_status run_up(run *r, sd_map *cur) {
    const kiln_unet *m = r->m;
    kiln_status st;
    for (int i = 0; i < m->cfg.n_blocks; i++) {
        const unet_block *k = &m->up[i];
        for (int j = 0; j < k->n_layers; j++) {
            sd_map cat, h, skip = r->stack[--r->n_stack];
            st = concat(&r->x, cur, &skip, &cat);
            sd_map_free(&skip);
            if (st) return st;
            sd_map_free(cur);
            st = layer(r, &k->res[j], k->has_attn ? &k->attn[j] : NULL, &cat, &h);
            sd_map_free(&cat);
            if (st) return st;
            *cur = h;
        }
        if (k->has_sample) {
            sd_map u;
            if ((st = sd_upsample_run(&r->x, &k->sample, cur, &u))) return st;
            sd_map_free(cur);
            *cur = u;
        }
        trace(r, "up", i, cur);
    }
    return KILN_OK;
}

static kiln_status run_mid(run *r, const sd_map *in, sd_map *out) {
    const kiln_unet *m = r->m;
    sd_map a;
    kiln_status st = layer(r, &m->mid_res[0], &m->mid_attn, in, &a);
    if (st) return st;
    st = layer(r, &m->mid_res[1], NULL, &a, out);
    sd_map_free(&a);
    if (!st) trace(r, "mid", -1, out);
    return st;
}

/* silu(linear_2(silu(linear_1(sinusoid(t))))): every resnet takes silu(temb). */
static kiln_status time_embedding(run *r, double timestep) {
    kiln_unet *m = r->m;
    const int c0 = m->cfg.channels[0];
    float *sin_emb = kiln_malloc_array((size_t)c0, sizeof *sin_emb), *hid = kiln_malloc_array(4 * (size_t)c0, 4);
    kiln_status st = sin_emb && hid ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!st) {
        timestep_embedding(sin_emb, c0, timestep, m->cfg.flip_sin_to_cos, m->cfg.freq_shift);
        st = sd_linear_run(&r->x, &m->time1, sin_emb, 1, hid);
    }
    if (!st) {
        kiln_silu(hid, 4 * c0);
        st = sd_linear_run(&r->x, &m->time2, hid, 1, r->silu_temb);
    }
    if (!st) kiln_silu(r->silu_temb, 4 * c0);
    free(sin_emb);
    free(hid);
    return st;
}

kiln_status kiln_unet_forward(kiln_unet *m, const float *x, int h, int w, double timestep, const float *ctx, int n_ctx,
                              float *out, kiln_unet_trace_fn trace_fn, void *user) {
    const kiln_unet_config *c = &m->cfg;
    const int f = 1 << (c->n_blocks - 1);
    if (!x || !ctx || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_unet_forward: a NULL buffer");
    if (h <= 0 || w <= 0 || h % f || w % f || h > 1024 || w > 1024)
        return kiln_fail(KILN_ERR_INVALID_ARG, "latents of %d x %d: the UNet takes multiples of %d up to 1024", h, w, f);
    if (n_ctx <= 0 || n_ctx > 4096) return kiln_fail(KILN_ERR_INVALID_ARG, "%d text states: 1 to 4096", n_ctx);
    if (!isfinite(timestep)) return kiln_fail(KILN_ERR_INVALID_ARG, "timestep is not finite");
    run r = {.m = m, .x = {m->pool, &m->heap, c->groups, c->norm_eps, m->scratch, m->scratch_bytes, m->bf16}, .ctx = ctx,
             .n_ctx = n_ctx, .trace = trace_fn, .user = user};
    int widest = 0;
    for (int i = 0; i < c->n_blocks; i++) widest = c->channels[i] > widest ? c->channels[i] : widest;
    r.silu_temb = kiln_malloc_array(4 * (size_t)c->channels[0], sizeof(float));
    r.proj = kiln_malloc_array((size_t)widest, sizeof(float));
    sd_map in = {(float *)x, h, w, c->in_channels, NULL}, cur = {0}, mid = {0}, res = {0};
    kiln_status st = r.silu_temb && r.proj ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!st) st = time_embedding(&r, timestep);
    if (!st && !(st = sd_conv_run(&r.x, &m->conv_in, &in, 1, kiln_pad2d_same(1), &cur))) {
        r.stack[r.n_stack++] = cur;
        trace(&r, "conv_in", -1, &cur);
        st = run_down(&r, &cur);
    }
    if (!st) st = run_mid(&r, &cur, &mid);
    if (!st) st = run_up(&r, &mid);
    if (!st) st = sd_norm_silu_conv(&r.x, &m->norm_out, &m->conv_out, &mid, &res);
    if (!st) {
        memcpy(out, res.d, (size_t)h * (size_t)w * (size_t)c->out_channels * sizeof(float));
        trace(&r, "out", -1, &res);
    }
    sd_map_free(&res);
    sd_map_free(&mid);
    while (r.n_stack) sd_map_free(&r.stack[--r.n_stack]);
    free(r.silu_temb);
    free(r.proj);
    return st;
}
