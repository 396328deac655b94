/*
 * cmd_image.c — `kiln image`: Stable Diffusion txt2img from the command line.
 *
 *   kiln image -m MODEL -p PROMPT [--negative P] [--steps N] [--cfg G] [--sampler S]
 *              [--seed S] [--rng torch|fast] [-W W -H H] [--batch N] [--clip-skip N]
 *              [-o out.png]
 *
 * Writes out.png (a batch: out-1.png, out-2.png ...) with the generation parameters
 * in a "parameters" text chunk as AUTOMATIC1111 writes them, and out.json beside it.
 * A progress bar with the ETA goes to stderr; Ctrl-C cancels between steps.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static bool on_progress(const kiln_sd_progress *p, void *user) {
    const bool quiet = *(const bool *)user;
    if (!quiet) {
        const int width = 30, fill = p->steps ? p->step * width / p->steps : width;
        fprintf(stderr, "\r[%.*s%*s] step %d/%d  %.1fs  eta %.1fs ", fill, "##############################",
                width - fill, "", p->step, p->steps, p->elapsed, p->eta);
        if (p->step == p->steps) fputc('\n', stderr);
    }
    return !g_interrupted;
}

/* out.png -> out-<i>.png for image i of a batch (1-based). */
static void numbered(char *dst, size_t n, const char *path, int i, int batch, const char *ext) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - path) : strlen(path);
    if (batch > 1)
        snprintf(dst, n, "%.*s-%d%s", (int)stem, path, i + 1, ext);
    else
        snprintf(dst, n, "%.*s%s", (int)stem, path, ext);
}

int kiln_cmd_image(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *negative = NULL, *sampler = NULL, *rng = NULL, *out = "out.png";
    const char *vocab = NULL, *prediction = NULL;
    int steps = 0, width = 0, height = 0, batch = 1, threads = 0, clip_skip = 0;
    float cfg = NAN;
    uint64_t seed = 0;
    bool quiet = false, seed_set = false;
    const char *seed_str = NULL;
    arg_spec specs[] = {
        {"--model", "-m", ARG_STR, &model, "a diffusers folder (model_index.json) of SD 1.x / 2.x / SD-Turbo"},
        {"--prompt", "-p", ARG_STR, &prompt, "the prompt: (word:1.2) weights, [word], BREAK, any length"},
        {"--negative", "-n", ARG_STR, &negative, "the negative prompt"},
        {"--steps", NULL, ARG_INT, &steps, "denoising steps, 1..150 (default 20)"},
        {"--cfg", NULL, ARG_FLOAT, &cfg, "guidance scale (default 7.5; 1 or less: no negative pass)"},
        {"--sampler", NULL, ARG_STR, &sampler, "ddim, euler, euler_a (default), dpmpp_2m, dpmpp_2m_karras, lcm"},
        {"--seed", "-s", ARG_STR, &seed_str, "seed (default: random); image i of a batch uses seed + i"},
        {"--rng", NULL, ARG_STR, &rng, "torch (PyTorch's CPU randn: diffusers' images, default) or fast"},
        {"--width", "-W", ARG_INT, &width, "width, a multiple of 8 (default: the model's)"},
        {"--height", "-H", ARG_INT, &height, "height, a multiple of 8 (default: the model's)"},
        {"--batch", NULL, ARG_INT, &batch, "images, 1..16 (default 1)"},
        {"--clip-skip", NULL, ARG_INT, &clip_skip, "text encoder layers to skip from the end (1: none)"},
        {"--prediction", NULL, ARG_STR, &prediction, "override the model's: epsilon or v_prediction"},
        {"--clip-vocab", NULL, ARG_STR, &vocab, "CLIP vocabulary for single-file checkpoints"},
        {"--threads", "-t", ARG_INT, &threads, "threads (default: all cores)"},
        {"--output", "-o", ARG_STR, &out, "output PNG (default out.png); a JSON sidecar goes beside it"},
        {"--quiet", "-q", ARG_FLAG, &quiet, "no progress bar"},
    };
    const char *pos[1];
    int n_pos = 0;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 0, &n_pos,
                       "usage: kiln image -m MODEL -p PROMPT [options]");
    if (r) return r == 1 ? 0 : 2;
    if (!model || !prompt) {
        fprintf(stderr, "kiln image: -m MODEL and -p PROMPT are required\n");
        return 2;
    }
    if (seed_str) {
        char *end;
        seed = strtoull(seed_str, &end, 10);
        if (!*seed_str || *end) {
            fprintf(stderr, "kiln image: --seed takes a non-negative integer\n");
            return 2;
        }
        seed_set = true;
    }
    if (!seed_set) {
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(&seed, sizeof seed, 1, f) != 1) seed = 0;
        if (f) fclose(f);
        seed &= 0xFFFFFFFFull; /* what PyTorch's generator keeps of a seed */
    }
    signal(SIGINT, on_sigint); /* from here on Ctrl-C cancels at the next step */
    kiln_sd_options o = {.path = model, .clip_vocab = vocab, .prediction = prediction, .n_threads = threads};
    kiln_sd *m = NULL;
    kiln_status st = kiln_sd_load(&o, &m);
    if (st) {
        fprintf(stderr, "kiln image: %s\n", kiln_last_error());
        return 1;
    }
    kiln_sd_params p = {.prompt = prompt, .negative_prompt = negative, .width = width, .height = height,
                        .steps = steps, .cfg_scale = cfg, .sampler = sampler, .seed = seed, .rng = rng,
                        .clip_skip = clip_skip, .batch = batch, .progress = on_progress, .user = &quiet};
    kiln_sd_image *imgs = batch > 0 && batch <= 16 ? calloc((size_t)batch, sizeof *imgs) : NULL;
    st = imgs ? kiln_sd_generate(m, &p, imgs) : KILN_ERR_INVALID_ARG;
    signal(SIGINT, SIG_DFL);
    int rc = 0;
    if (st) {
        fprintf(stderr, "%skiln image: %s\n", quiet ? "" : "\n", imgs ? kiln_last_error() : "--batch: 1 to 16");
        rc = 1;
    }
    for (int i = 0; !st && i < batch; i++) {
        char png[4096], json[4096];
        numbered(png, sizeof png, out, i, batch, ".png");
        numbered(json, sizeof json, out, i, batch, ".json");
        if ((st = kiln_sd_image_write(&imgs[i], png, json))) {
            fprintf(stderr, "kiln image: %s\n", kiln_last_error());
            rc = 1;
            break;
        }
        printf("%s  seed %llu\n", png, (unsigned long long)imgs[i].seed);
    }
    for (int i = 0; imgs && i < batch; i++) kiln_sd_image_clear(&imgs[i]);
    free(imgs);
    kiln_sd_free(m);
    return rc;
}
