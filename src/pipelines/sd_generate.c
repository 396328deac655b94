/*
 * sd_generate.c — txt2img (kiln.h, kiln_sd_generate): the prompt and the negative
 * prompt through the text encoder, seeded latents, the sampler's steps with
 * classifier-free guidance, the VAE decode, and each image's metadata.
 *
 * Per step i, for each image: x_in = scale_input(latents), e_c = UNet(x_in, t_i,
 * prompt), e_u = UNet(x_in, t_i, negative), e = e_u + g·(e_c − e_u) (Ho & Salimans
 * 2022; g <= 1 runs the prompt alone), then the sampler updates every image's
 * latents. Images are pixels = VAE(latents / scaling_factor), mapped from [-1, 1] to
 * 8 bits as diffusers' postprocessing does.
 *
 * Seeds: image b of a batch uses seed + b with its own generator, as AUTOMATIC1111
 * does and diffusers does for a list of generators, so any image of a batch is
 * reproduced alone from its seed. "torch" is PyTorch's CPU generator
 * (base/rng_torch.h): the latents are torch.randn((1, 4, h, w)) for the seed,
 * transposed to channels-last, and the ancestral samplers draw their noise from the
 * same generator after them, as diffusers does. "fast" is kiln's own generator.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "base/rng_torch.h"
#include "base/status.h"
#include "base/timer.h"
#include "formats/image.h"
#include "sd_internal.h"

/* ---- parameters ---------------------------------------------------------------------- */

typedef struct {
    kiln_sd_params p;
    kiln_sd_sampler_kind sampler;
    bool torch_rng;
    int skip;
} resolved;

static int native_size(const kiln_sd *m) {
    const kiln_unet_config *u = kiln_unet_get_config(m->unet);
    const int n = kiln_vae_get_config(m->vae)->n_blocks;
    return u->sample_size * (1 << (n - 1));
}

static kiln_status resolve(const kiln_sd *m, const kiln_sd_params *in, resolved *r) {
    r->p = *in;
    kiln_sd_params *p = &r->p;
    if (!p->prompt) return kiln_fail(KILN_ERR_INVALID_ARG, "no prompt given");
    if (!p->negative_prompt) p->negative_prompt = "";
    if (!p->width) p->width = native_size(m);
    if (!p->height) p->height = native_size(m);
    const int f = 1 << (kiln_unet_get_config(m->unet)->n_blocks - 1); /* latents: multiples of f */
    if (p->width < 64 || p->width > 2048 || p->height < 64 || p->height > 2048 || p->width % 8 || p->height % 8)
        return kiln_fail(KILN_ERR_INVALID_ARG, "size %dx%d: width and height must be multiples of 8 from 64 to 2048",
                         p->width, p->height);
    if ((p->width / 8) % f || (p->height / 8) % f)
        return kiln_fail(KILN_ERR_INVALID_ARG, "size %dx%d: this model needs multiples of %d", p->width, p->height,
                         8 * f);
    if (!p->steps) p->steps = 20;
    if (p->steps < 1 || p->steps > KILN_SCHED_MAX_STEPS)
        return kiln_fail(KILN_ERR_INVALID_ARG, "steps %d: 1 to %d", p->steps, KILN_SCHED_MAX_STEPS);
    if (isnan(p->cfg_scale)) p->cfg_scale = 7.5f;
    if (!isfinite(p->cfg_scale) || p->cfg_scale < 0 || p->cfg_scale > 100)
        return kiln_fail(KILN_ERR_INVALID_ARG, "cfg scale %g: 0 to 100", (double)p->cfg_scale);
    if (!p->batch) p->batch = 1;
    if (p->batch < 1 || p->batch > 16) return kiln_fail(KILN_ERR_INVALID_ARG, "batch %d: 1 to 16", p->batch);
    if (p->preview_every < 0) return kiln_fail(KILN_ERR_INVALID_ARG, "preview_every must not be negative");
    kiln_status st = kiln_sd_sampler_from_name(p->sampler ? p->sampler : "euler_a", &r->sampler);
    if (st) return st;
    if (!p->sampler) p->sampler = "euler_a";
    if (!p->rng || !strcmp(p->rng, "torch"))
        r->torch_rng = true;
    else if (!strcmp(p->rng, "fast"))
        r->torch_rng = false;
    else
        return kiln_fail(KILN_ERR_INVALID_ARG, "rng '%.40s': torch or fast", p->rng);
    if (!p->rng) p->rng = "torch";
    r->skip = p->clip_skip ? p->clip_skip : m->default_skip;
    const int layers = kiln_clip_text_get_config(m->clip)->n_layer;
    if (r->skip < 1 || r->skip > layers)
        return kiln_fail(KILN_ERR_INVALID_ARG, "clip skip %d: 1 to %d", r->skip, layers);
    return KILN_OK;
}

/* ---- memory --------------------------------------------------------------------------- */

static size_t vae_decode_bytes(const kiln_vae_config *c, int H, int W) {
    double b = 0;
    if (H > 1024 || W > 1024) H = W = 512; /* decoded in tiles (sd_tiles.c) */
    for (int i = 0; i < c->n_blocks; i++) { /* the decoder at each resolution: about 4 live maps */
        double px = (double)(H >> i) * (double)(W >> i);
        b = fmax(b, px * c->channels[i] * 4.0 * 4);
    }
    return (size_t)b + ((size_t)64 << 20); /* conv tiles, attention at the lowest level */
}

static size_t memory_needed(const kiln_sd *m, const kiln_sd_params *p) {
    const int h = p->height / 8, w = p->width / 8, B = p->batch;
    const size_t lat = (size_t)B * (size_t)h * (size_t)w * 4 * sizeof(float);
    return kiln_unet_activation_bytes(kiln_unet_get_config(m->unet), h, w, 77 * 4) + 6 * lat +
           vae_decode_bytes(kiln_vae_get_config(m->vae), p->height, p->width) + (size_t)B * (size_t)p->width * p->height * 3;
}

size_t kiln_sd_memory_needed(const kiln_sd *m, const kiln_sd_params *p) {
    resolved r;
    return resolve(m, p, &r) ? 0 : memory_needed(m, &r.p);
}

/* MemAvailable from /proc/meminfo, or 0 when it cannot be read. */
static size_t available_memory(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

/* ---- metadata -------------------------------------------------------------------------- */

static const char *a1111_sampler(kiln_sd_sampler_kind k) {
    switch (k) {
    case KILN_SD_SAMPLER_DDIM: return "DDIM";
    case KILN_SD_SAMPLER_EULER: return "Euler";
    case KILN_SD_SAMPLER_EULER_A: return "Euler a";
    case KILN_SD_SAMPLER_DPMPP_2M: return "DPM++ 2M";
    case KILN_SD_SAMPLER_DPMPP_2M_KARRAS: return "DPM++ 2M Karras";
    case KILN_SD_SAMPLER_LCM: return "LCM";
    }
    return "?";
}

/* AUTOMATIC1111's "parameters" text: the prompt, "Negative prompt: ...", then one line
 * of "Key: value" pairs, and the same as a JSON object. */
static kiln_status metadata(const kiln_sd *m, const resolved *r, uint64_t seed, kiln_sd_image *img) {
    const kiln_sd_params *p = &r->p;
    char line[1024];
    snprintf(line, sizeof line,
             "Steps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, Size: %dx%d, Model: %s, Clip skip: %d, RNG: %s, "
             "Version: kiln",
             p->steps, a1111_sampler(r->sampler), (double)p->cfg_scale, (unsigned long long)seed, p->width, p->height,
             m->name, r->skip, r->torch_rng ? "CPU" : "kiln");
    size_t n = strlen(p->prompt) + strlen(p->negative_prompt) + strlen(line) + 32;
    img->parameters = malloc(n);
    if (!img->parameters) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (p->negative_prompt[0])
        snprintf(img->parameters, n, "%s\nNegative prompt: %s\n%s", p->prompt, p->negative_prompt, line);
    else
        snprintf(img->parameters, n, "%s\n%s", p->prompt, line);
    cJSON *j = cJSON_CreateObject();
    if (!j) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(j, "prompt", p->prompt);
    cJSON_AddStringToObject(j, "negative_prompt", p->negative_prompt);
    cJSON_AddNumberToObject(j, "steps", p->steps);
    cJSON_AddStringToObject(j, "sampler", kiln_sd_sampler_name(r->sampler));
    cJSON_AddNumberToObject(j, "cfg_scale", p->cfg_scale);
    char s[32];
    snprintf(s, sizeof s, "%llu", (unsigned long long)seed); /* as a string: JSON numbers lose 64-bit seeds */
    cJSON_AddStringToObject(j, "seed", s);
    cJSON_AddNumberToObject(j, "width", p->width);
    cJSON_AddNumberToObject(j, "height", p->height);
    cJSON_AddStringToObject(j, "model", m->name);
    cJSON_AddNumberToObject(j, "clip_skip", r->skip);
    cJSON_AddStringToObject(j, "rng", p->rng);
    cJSON_AddStringToObject(j, "prediction", m->prediction == KILN_PRED_V ? "v_prediction" : "epsilon");
    img->json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return img->json ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
}

/* ---- noise ----------------------------------------------------------------------------- */

typedef struct {
    kiln_torch_rng torch;
    kiln_rng fast;
} image_rng;

/* n = c·h·w standard normals into out (h, w, c) channels-last: drawn in PyTorch's
 * (c, h, w) order for the torch generator. tmp holds n floats (and 16 more). */
static void draw(image_rng *g, bool torch, int h, int w, int c, float *out, float *tmp) {
    const int64_t hw = (int64_t)h * w, n = hw * c;
    if (torch) {
        kiln_torch_randn(&g->torch, tmp, n);
        for (int k = 0; k < c; k++)
            for (int64_t i = 0; i < hw; i++) out[i * c + k] = tmp[k * hw + i];
        return;
    }
    for (int64_t i = 0; i < n; i += 2) { /* Box-Muller on kiln's generator */
        double u1 = 1.0 - kiln_rng_f64(&g->fast), u2 = kiln_rng_f64(&g->fast);
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        out[i] = (float)(rad * cos(th));
        if (i + 1 < n) out[i + 1] = (float)(rad * sin(th));
    }
}

/* ---- generation ------------------------------------------------------------------------- */

typedef struct {
    kiln_sd *m;
    resolved r;
    kiln_sched *sched;
    int h, w, c, B;
    int64_t per; /* floats per image's latents */
    float *lat, *xin, *out, *eu, *noise, *tmp;
    float *cond, *uncond;
    int n_cond, n_uncond;
    image_rng *rng;
    double t0;
    uint8_t *preview;
} gen;

static kiln_status denoise_step(gen *g, int i) {
    kiln_sd *m = g->m;
    const double t = kiln_sched_timestep(g->sched, i);
    const float cfg = g->r.p.cfg_scale;
    kiln_sched_scale_input(g->sched, i, g->lat, g->xin, g->per * g->B);
    kiln_status st = KILN_OK;
    for (int b = 0; b < g->B && !st; b++) {
        float *x = g->xin + b * g->per, *o = g->out + b * g->per;
        st = kiln_unet_forward(m->unet, x, g->h, g->w, t, g->cond, g->n_cond, o, NULL, NULL);
        if (st || !(cfg > 1.0f)) continue;
        if ((st = kiln_unet_forward(m->unet, x, g->h, g->w, t, g->uncond, g->n_uncond, g->eu, NULL, NULL))) break;
        for (int64_t k = 0; k < g->per; k++) o[k] = g->eu[k] + cfg * (o[k] - g->eu[k]);
    }
    if (st) return st;
    const float *noise = NULL;
    if (kiln_sched_needs_noise(g->sched, i)) {
        for (int b = 0; b < g->B; b++)
            draw(&g->rng[b], g->r.torch_rng, g->h, g->w, g->c, g->noise + b * g->per, g->tmp);
        noise = g->noise;
    }
    return kiln_sched_step(g->sched, i, g->out, g->lat, noise, g->per * g->B);
}

static bool report(gen *g, int i) {
    const kiln_sd_params *p = &g->r.p;
    if (!p->progress) return true;
    const double el = kiln_time_now() - g->t0;
    kiln_sd_progress pr = {i + 1, p->steps, el, el / (i + 1) * (p->steps - i - 1), NULL, 0, 0};
    if (p->preview_every && ((i + 1) % p->preview_every == 0 || i + 1 == p->steps) && g->preview &&
        !kiln_sd_preview_fit(g->m)) {
        kiln_sd_preview(g->m, g->lat, g->h, g->w, g->preview);
        pr.preview = g->preview;
        pr.preview_w = g->w;
        pr.preview_h = g->h;
    }
    return p->progress(&pr, p->user);
}

static kiln_status decode(gen *g, kiln_sd_image *out) {
    kiln_sd *m = g->m;
    const kiln_vae_config *vc = kiln_vae_get_config(m->vae);
    const int H = g->r.p.height, W = g->r.p.width;
    const size_t px = (size_t)H * (size_t)W * (size_t)vc->out_channels;
    float *img = kiln_malloc_array(px, sizeof *img);
    kiln_status st = img ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory for a %dx%d image", W, H);
    for (int b = 0; b < g->B && !st; b++) {
        float *z = g->lat + b * g->per;
        for (int64_t k = 0; k < g->per; k++) z[k] = z[k] / vc->scaling_factor + vc->shift_factor;
        /* past 1024 pixels a side the decode goes in tiles (sd_tiles.c), whose memory is a
         * 512-pixel decode's; below, at once, which is what diffusers does by default */
        st = (H > 1024 || W > 1024) ? kiln_sd_decode_tiled(m, z, g->h, g->w, img)
                                    : kiln_vae_decode(m->vae, z, g->h, g->w, img, NULL, NULL);
        if (st) break;
        out[b].width = W;
        out[b].height = H;
        out[b].seed = g->r.p.seed + (uint64_t)b;
        if (!(out[b].rgb = malloc((size_t)W * H * 3))) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        kiln_image_f32_to_rgb8(img, W, H, 3, out[b].rgb);
        st = metadata(m, &g->r, out[b].seed, &out[b]);
    }
    free(img);
    return st;
}

static kiln_status setup(gen *g) {
    kiln_sd *m = g->m;
    const kiln_sd_params *p = &g->r.p;
    kiln_status st;
    if ((st = kiln_sd_condition(m, p->prompt, g->r.skip, &g->cond, &g->n_cond))) return st;
    if (p->cfg_scale > 1.0f &&
        (st = kiln_sd_condition(m, p->negative_prompt, g->r.skip, &g->uncond, &g->n_uncond)))
        return st;
    kiln_sched_config sc;
    if (m->sched_json) {
        if ((st = kiln_sched_config_parse(m->sched_json, g->r.sampler, &sc))) return st;
    } else {
        kiln_sched_config_sd(g->r.sampler, &sc);
    }
    if (m->prediction_forced || !m->sched_json) sc.prediction_type = m->prediction;
    if ((st = kiln_sched_create(g->r.sampler, &sc, p->steps, &g->sched))) return st;
    const size_t n = (size_t)g->per * (size_t)g->B;
    float **bufs[] = {&g->lat, &g->xin, &g->out, &g->noise};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = kiln_malloc_array(n, sizeof(float)))) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!(g->eu = kiln_malloc_array((size_t)g->per, sizeof(float))) ||
        !(g->tmp = kiln_malloc_array((size_t)g->per + 16, sizeof(float))) ||
        !(g->rng = calloc((size_t)g->B, sizeof *g->rng)))
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (p->preview_every && !(g->preview = malloc((size_t)g->h * g->w * 3)))
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    const float sigma = kiln_sched_init_noise_sigma(g->sched);
    for (int b = 0; b < g->B; b++) {
        const uint64_t seed = p->seed + (uint64_t)b;
        kiln_torch_rng_seed(&g->rng[b].torch, seed);
        kiln_rng_seed(&g->rng[b].fast, seed);
        float *z = g->lat + b * g->per;
        draw(&g->rng[b], g->r.torch_rng, g->h, g->w, g->c, z, g->tmp);
        for (int64_t k = 0; k < g->per; k++) z[k] *= sigma;
    }
    return KILN_OK;
}

kiln_status kiln_sd_generate(kiln_sd *m, const kiln_sd_params *p, kiln_sd_image *out) {
    if (!m || !p || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_sd_generate: a NULL argument");
    gen g = {.m = m, .t0 = kiln_time_now()};
    kiln_status st = resolve(m, p, &g.r);
    if (st) return st;
    memset(out, 0, sizeof *out * (size_t)g.r.p.batch);
    const size_t need = memory_needed(m, &g.r.p), avail = available_memory();
    if (avail && need > avail)
        return kiln_fail(KILN_ERR_NOMEM, "a %dx%d batch of %d needs about %zu MiB; %zu MiB are available",
                         g.r.p.width, g.r.p.height, g.r.p.batch, need >> 20, avail >> 20);
    g.h = g.r.p.height / 8;
    g.w = g.r.p.width / 8;
    g.c = kiln_unet_get_config(m->unet)->in_channels;
    g.B = g.r.p.batch;
    g.per = (int64_t)g.h * g.w * g.c;
    st = setup(&g);
    for (int i = 0; i < g.r.p.steps && !st; i++) {
        st = denoise_step(&g, i);
        if (!st && !report(&g, i)) st = kiln_fail(KILN_ERR_CANCELLED, "cancelled after step %d of %d", i + 1, g.r.p.steps);
    }
    kiln_unet_release(m->unet);
    if (!st) st = decode(&g, out);
    if (st)
        for (int b = 0; b < g.B; b++) kiln_sd_image_clear(&out[b]);
    kiln_sched_free(g.sched);
    float *bufs[] = {g.lat, g.xin, g.out, g.eu, g.noise, g.tmp, g.cond, g.uncond};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(g.rng);
    free(g.preview);
    return st;
}

void kiln_sd_image_clear(kiln_sd_image *img) {
    if (!img) return;
    free(img->rgb);
    free(img->parameters);
    free(img->json);
    memset(img, 0, sizeof *img);
}
