/*
 * test_sd_pipeline.c — txt2img end to end through the public API (kiln_sd_*) on a
 * tiny random-weight model written by kiln_model_random("sd-tiny"): every sampler
 * runs, 1 and 2 threads give the same bits, image i of a batch equals a single image
 * of seed + i, the progress callback sees every step and can cancel, guidance 1
 * skips the negative prompt, and bad parameters are refused with a clear error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"
#include "golden.h"
#include "kiln.h"
#include "pipelines/sd_internal.h"
#include "test.h"

typedef struct {
    int calls, last_step, steps, cancel_at;
    bool eta_ok, preview;
} watch;

static bool on_progress(const kiln_sd_progress *p, void *user) {
    watch *w = user;
    w->calls++;
    w->eta_ok = w->eta_ok && p->eta >= 0 && p->elapsed >= 0 && p->step == w->last_step + 1;
    w->last_step = p->step;
    w->steps = p->steps;
    if (p->preview) w->preview = p->preview_w == 8 && p->preview_h == 8;
    return !(w->cancel_at && p->step == w->cancel_at);
}

static kiln_sd *load(const char *dir, int threads) {
    kiln_sd_options o = {.path = dir, .n_threads = threads};
    kiln_sd *m = NULL;
    CHECK_OK(kiln_sd_load(&o, &m));
    return m;
}

static kiln_sd_params params(void) {
    kiln_sd_params p = {.prompt = "a (red:1.3) fox in the snow, watercolor", .negative_prompt = "blurry",
                        .width = 64, .height = 64, .steps = 3, .cfg_scale = 7.5f, .seed = 42};
    return p;
}

static bool same_image(const kiln_sd_image *a, const kiln_sd_image *b) {
    return a->width == b->width && a->height == b->height && a->rgb && b->rgb &&
           !memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3);
}

static void samplers(kiln_sd *m1, kiln_sd *m2) {
    static const char *const names[] = {"ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        kiln_sd_params p = params();
        p.sampler = names[i];
        kiln_sd_image a = {0}, b = {0};
        CHECK_OK(kiln_sd_generate(m1, &p, &a));
        CHECK_OK(kiln_sd_generate(m2, &p, &b));
        CHECK_MSG(same_image(&a, &b), "%s: 1 and 2 threads differ", names[i]);
        CHECK(a.width == 64 && a.height == 64 && a.seed == 42);
        CHECK(a.parameters && strstr(a.parameters, "Steps: 3, Sampler: ") && strstr(a.parameters, "Seed: 42"));
        CHECK(a.parameters && strstr(a.parameters, "\nNegative prompt: blurry\n"));
        CHECK(a.json && strstr(a.json, names[i]));
        unsigned lo = 255, hi = 0; /* a real image, not a constant */
        for (int k = 0; a.rgb && k < 64 * 64 * 3; k++) lo = a.rgb[k] < lo ? a.rgb[k] : lo, hi = a.rgb[k] > hi ? a.rgb[k] : hi;
        CHECK_MSG(hi > lo, "%s: a flat image", names[i]);
        kiln_sd_image_clear(&a);
        kiln_sd_image_clear(&b);
    }
}

static void seeds_and_batches(kiln_sd *m) {
    kiln_sd_params p = params();
    p.batch = 2;
    kiln_sd_image two[2] = {{0}}, one = {0}, other = {0};
    CHECK_OK(kiln_sd_generate(m, &p, two));
    CHECK(two[0].seed == 42 && two[1].seed == 43);
    p.batch = 1;
    p.seed = 43;
    CHECK_OK(kiln_sd_generate(m, &p, &one));
    CHECK_MSG(same_image(&one, &two[1]), "image 1 of a batch differs from seed 43 alone");
    CHECK(!same_image(&two[0], &two[1]));
    p.rng = "fast";
    CHECK_OK(kiln_sd_generate(m, &p, &other));
    CHECK(!same_image(&other, &one) && strstr(other.parameters, "RNG: kiln"));
    kiln_sd_image_clear(&other);
    p.rng = NULL;
    p.cfg_scale = 1.0f; /* no negative pass: the negative prompt cannot matter */
    p.negative_prompt = "something else entirely";
    CHECK_OK(kiln_sd_generate(m, &p, &other));
    kiln_sd_image other2 = {0};
    p.negative_prompt = "";
    CHECK_OK(kiln_sd_generate(m, &p, &other2));
    CHECK(same_image(&other, &other2));
    for (int i = 0; i < 2; i++) kiln_sd_image_clear(&two[i]);
    kiln_sd_image_clear(&one);
    kiln_sd_image_clear(&other);
    kiln_sd_image_clear(&other2);
}

static void progress_and_cancel(kiln_sd *m) {
    kiln_sd_params p = params();
    watch w = {.eta_ok = true};
    p.progress = on_progress;
    p.user = &w;
    p.steps = 4;
    p.preview_every = 2;
    kiln_sd_image img = {0};
    CHECK_OK(kiln_sd_generate(m, &p, &img));
    CHECK(w.calls == 4 && w.last_step == 4 && w.steps == 4 && w.eta_ok && w.preview);
    kiln_sd_image_clear(&img);
    watch c = {.eta_ok = true, .cancel_at = 2};
    p.user = &c;
    CHECK(kiln_sd_generate(m, &p, &img) == KILN_ERR_CANCELLED);
    CHECK(c.calls == 2 && !img.rgb);
}

static void refused(kiln_sd *m) {
    static const struct {
        int w, h, steps, batch;
        float cfg;
        const char *sampler, *rng, *needle;
    } bad[] = {
        {60, 64, 3, 1, 7, NULL, NULL, "multiples of 8"},
        {64, 4096, 3, 1, 7, NULL, NULL, "2048"},
        {64, 64, 0 - 1, 1, 7, NULL, NULL, "steps"},
        {64, 64, 151, 1, 7, NULL, NULL, "steps"},
        {64, 64, 3, 17, 7, NULL, NULL, "batch"},
        {64, 64, 3, 1, -1, NULL, NULL, "cfg"},
        {64, 64, 3, 1, 7, "plms", NULL, "plms"},
        {64, 64, 3, 1, 7, NULL, "gpu", "rng"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_sd_params p = params();
        p.width = bad[i].w, p.height = bad[i].h, p.steps = bad[i].steps, p.batch = bad[i].batch;
        p.cfg_scale = bad[i].cfg, p.sampler = bad[i].sampler, p.rng = bad[i].rng;
        kiln_sd_image img[17];
        kiln_status st = kiln_sd_generate(m, &p, img);
        CHECK_MSG(st == KILN_ERR_INVALID_ARG && strstr(kiln_last_error(), bad[i].needle), "case %zu: %s: %s", i,
                  kiln_status_name(st), kiln_last_error());
    }
    kiln_sd_params p = params();
    p.prompt = NULL;
    kiln_sd_image img;
    CHECK(kiln_sd_generate(m, &p, &img) == KILN_ERR_INVALID_ARG);
    p = params();
    p.clip_skip = 99;
    CHECK(kiln_sd_generate(m, &p, &img) == KILN_ERR_INVALID_ARG && strstr(kiln_last_error(), "clip skip"));
}

/* Tiled decode: one tile is the plain decode bit for bit; larger latents are covered
 * completely, deterministically; generate tiles past 1024 pixels a side. */
static void tiles(kiln_sd *m) {
    const int sizes[][2] = {{40, 24}, {100, 70}};
    for (int s = 0; s < 2; s++) {
        const int h = sizes[s][0], w = sizes[s][1];
        float *z = malloc(sizeof *z * (size_t)h * w * 4), *a = malloc(sizeof *a * (size_t)h * w * 192);
        float *b = malloc(sizeof *b * (size_t)h * w * 192);
        for (int i = 0; i < h * w * 4; i++) z[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
        for (int i = 0; i < h * w * 192; i++) a[i] = b[i] = NAN;
        CHECK_OK(kiln_sd_decode_tiled(m, z, h, w, a));
        if (s == 0) {
            CHECK_OK(kiln_vae_decode(m->vae, z, h, w, b, NULL, NULL));
        } else {
            CHECK_OK(kiln_sd_decode_tiled(m, z, h, w, b));
        }
        int nan = 0;
        for (int i = 0; i < h * w * 192; i++) nan += isnan(a[i]);
        CHECK_MSG(nan == 0, "%dx%d: %d values not written", h, w, nan);
        CHECK_MSG(!memcmp(a, b, sizeof *a * (size_t)h * w * 192), "%dx%d: tiled decode differs", h, w);
        free(z), free(a), free(b);
    }
    kiln_sd_params p = params();
    p.width = 1088;
    p.steps = 2;
    kiln_sd_image img = {0};
    CHECK_OK(kiln_sd_generate(m, &p, &img));
    CHECK(img.width == 1088 && img.height == 64 && img.rgb);
    kiln_sd_image_clear(&img);
}

int main(void) {
    char dir[2048], name[64];
    snprintf(name, sizeof name, "sd_pipeline_%ld", (long)getpid());
    kiln_test_tmp_path(dir, sizeof dir, name);
    kiln_random_model_options o = {.shape = "sd-tiny", .type = "f16", .seed = 1};
    CHECK_OK(kiln_model_random(dir, &o));
    CHECK(kiln_sd_supports(dir));
    kiln_sd *m1 = load(dir, 1), *m2 = load(dir, 2);
    if (m1 && m2) {
        CHECK(kiln_sd_memory(m1) > 0);
        kiln_sd_params p = params();
        CHECK(kiln_sd_memory_needed(m1, &p) > 0);
        samplers(m1, m2);
        seeds_and_batches(m2);
        progress_and_cancel(m2);
        refused(m2);
        tiles(m2);
    }
    kiln_sd_free(m1);
    kiln_sd_free(m2);
    /* single files: not SD, SD with a missing part, and no CLIP vocabulary */
    char f[2200];
    snprintf(f, sizeof f, "%s.safetensors", dir);
    static const float one[4] = {1, 2, 3, 4};
    kiln_test_tensor t1[] = {{"model.layers.0.weight", 1, {4}, one}};
    kiln_test_write_tensors(f, t1, 1, "F32");
    kiln_sd_options so = {.path = f};
    kiln_sd *sm = NULL;
    CHECK(!kiln_sd_supports(f));
    CHECK(kiln_sd_load(&so, &sm) == KILN_ERR_UNSUPPORTED && !sm && strstr(kiln_last_error(), "not a Stable Diffusion"));
    kiln_test_tensor t2[] = {{"model.diffusion_model.input_blocks.0.0.weight", 1, {4}, one},
                             {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {4}, one}};
    kiln_test_write_tensors(f, t2, 2, "F32");
    CHECK(kiln_sd_supports(f));
    kiln_status st = kiln_sd_load(&so, &sm);
    CHECK_MSG(st == KILN_ERR_FORMAT && !sm && strstr(kiln_last_error(), "model.diffusion_model"), "%s: %s",
              kiln_status_name(st), kiln_last_error());
    unlink(f);
    kiln_sd_options bad = {.path = "/nonexistent/model"};
    kiln_sd *m = NULL;
    CHECK(kiln_sd_load(&bad, &m) == KILN_ERR_NOT_FOUND && !m);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    TEST_MAIN_END();
}
