/*
 * sd_model.c — loads a Stable Diffusion model (kiln.h, kiln_sd_load): a diffusers
 * folder, whose model_index.json names the pipeline and whose parts each have a
 * config and safetensors weights (the fp16 variant files too), with the CLIP
 * tokenizer, the text encoder, the UNet, the VAE's decoder and encoder, and the
 * scheduler config the samplers start from.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/mapfile.h"
#include "base/status.h"
#include "kernels/kernels.h"
#include "models/bind.h"
#include "sd_internal.h"

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static kiln_status read_text(const char *dir, const char *file, bool required, char **out) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    *out = NULL;
    if (!required && !exists(p)) return KILN_OK;
    return kiln_read_file(p, 1 << 20, out, NULL);
}

/* DIR/sub's weights: the folder's own file, else the fp16 variant diffusers writes. */
static kiln_status open_weights(const char *dir, const char *sub, const char *base, kiln_safetensors **st) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    static const char *const suffix[] = {".safetensors", ".fp16.safetensors", ".safetensors.index.json",
                                         ".fp16.safetensors.index.json"};
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        char f[4200];
        snprintf(f, sizeof f, "%s/%s%s", p, base, suffix[i]);
        if (exists(f)) return kiln_safetensors_open(f, st);
    }
    return kiln_fail(KILN_ERR_NOT_FOUND, "%s: no %s.safetensors (or its fp16 variant)", p, base);
}

/* tokenizer/: vocab.json + merges.txt; the padding token from special_tokens_map.json. */
static kiln_status load_tokenizer(kiln_sd *m, const char *dir) {
    char v[4096], mg[4096];
    snprintf(v, sizeof v, "%s/tokenizer/vocab.json", dir);
    snprintf(mg, sizeof mg, "%s/tokenizer/merges.txt", dir);
    kiln_status st = kiln_clip_tok_from_hf(v, mg, &m->tok);
    if (st) return st;
    m->pad_id = kiln_clip_tok_eos(m->tok);
    char *txt = NULL;
    if ((st = read_text(dir, "tokenizer/special_tokens_map.json", false, &txt)) || !txt) return st;
    cJSON *j = kiln_json_parse_py(txt);
    free(txt);
    const cJSON *pad = j ? cJSON_GetObjectItemCaseSensitive(j, "pad_token") : NULL;
    if (cJSON_IsObject(pad)) pad = cJSON_GetObjectItemCaseSensitive(pad, "content");
    if (cJSON_IsString(pad)) {
        int32_t id = kiln_clip_tok_find(m->tok, pad->valuestring);
        if (id < 0) {
            char w[128];
            snprintf(w, sizeof w, "%s</w>", pad->valuestring); /* a word piece: "!" is "!</w>" */
            id = kiln_clip_tok_find(m->tok, w);
        }
        if (id >= 0) m->pad_id = id;
    }
    cJSON_Delete(j);
    return KILN_OK;
}

static kiln_status check_index(const char *dir) {
    char *txt = NULL;
    kiln_status st = read_text(dir, "model_index.json", true, &txt);
    if (st) return st;
    cJSON *j = kiln_json_parse_py(txt);
    free(txt);
    const cJSON *cls = j ? cJSON_GetObjectItemCaseSensitive(j, "_class_name") : NULL;
    static const char *const ok[] = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                                     "StableDiffusionInpaintPipeline"};
    if (!cJSON_IsString(cls)) {
        st = kiln_fail(KILN_ERR_FORMAT, "%s/model_index.json: no _class_name", dir);
    } else {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: pipeline %.60s is not supported (StableDiffusionPipeline is)", dir,
                       cls->valuestring);
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
            if (!strcmp(cls->valuestring, ok[i])) st = KILN_OK;
    }
    cJSON_Delete(j);
    return st;
}

static kiln_status load_folder(kiln_sd *m, const char *dir) {
    kiln_status st = check_index(dir);
    char *txt = NULL, what[4200];
    if (st || (st = load_tokenizer(m, dir))) return st;
    /* text encoder */
    kiln_clip_text_config cc;
    snprintf(what, sizeof what, "%s/text_encoder/config.json", dir);
    if ((st = read_text(dir, "text_encoder/config.json", true, &txt))) return st;
    st = kiln_clip_text_config_json(txt, what, &cc);
    free(txt);
    if (st || (st = open_weights(dir, "text_encoder", "model", &m->st[0])) ||
        (st = kiln_clip_text_create(kiln_safetensors_weights(m->st[0]), "", KILN_CLIP_NAMES_HF, &cc,
                                    kiln_safetensors_file(m->st[0], 0), m->pool, &m->clip)))
        return st;
    /* UNet */
    kiln_unet_config uc;
    snprintf(what, sizeof what, "%s/unet/config.json", dir);
    if ((st = read_text(dir, "unet/config.json", true, &txt))) return st;
    st = kiln_unet_config_json(txt, what, &uc);
    free(txt);
    if (st || (st = open_weights(dir, "unet", "diffusion_pytorch_model", &m->st[1])) ||
        (st = kiln_unet_create(kiln_safetensors_weights(m->st[1]), "", &uc, m->bf16, kiln_safetensors_file(m->st[1], 0),
                               m->pool, &m->unet)))
        return st;
    if (uc.cross_attention_dim != kiln_clip_text_get_config(m->clip)->n_embd)
        return kiln_fail(KILN_ERR_FORMAT, "%s: the UNet attends to %d-wide text states, the text encoder gives %d",
                         dir, uc.cross_attention_dim, kiln_clip_text_get_config(m->clip)->n_embd);
    /* VAE */
    kiln_vae_config vc;
    snprintf(what, sizeof what, "%s/vae/config.json", dir);
    if ((st = read_text(dir, "vae/config.json", true, &txt))) return st;
    st = kiln_vae_config_json(txt, what, &vc);
    free(txt);
    if (st || (st = open_weights(dir, "vae", "diffusion_pytorch_model", &m->st[2])) ||
        (st = kiln_vae_create(kiln_safetensors_weights(m->st[2]), "", &vc, false, false, kiln_safetensors_file(m->st[2], 0),
                              m->pool, &m->vae)))
        return st;
    if (vc.latent_channels != uc.in_channels || vc.latent_channels != uc.out_channels)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: a UNet of %d input channels with a VAE of %d latent channels "
                         "(inpainting models are not supported yet)", dir, uc.in_channels, vc.latent_channels);
    /* scheduler: its config is parsed per sampler at generation */
    if ((st = read_text(dir, "scheduler/scheduler_config.json", false, &m->sched_json))) return st;
    m->family = cc.n_embd == 1024 ? "sd2" : "sd1";
    m->default_skip = 1;
    return KILN_OK;
}

/* The CLIP vocabulary a single file lacks: OpenAI's merges .gz, or a folder with
 * Hugging Face's vocab.json and merges.txt. */
static kiln_status load_vocab(kiln_sd *m, const char *vocab) {
    if (!vocab || !vocab[0]) vocab = getenv("KILN_CLIP_VOCAB");
    if (!vocab || !vocab[0])
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: a single-file checkpoint has no tokenizer: give the CLIP "
                         "vocabulary (bpe_simple_vocab_16e6.txt.gz, or a tokenizer folder) with --clip-vocab or "
                         "KILN_CLIP_VOCAB", m->path);
    struct stat sb;
    if (stat(vocab, &sb) != 0) return kiln_fail(KILN_ERR_NOT_FOUND, "%s: no such CLIP vocabulary", vocab);
    if (!S_ISDIR(sb.st_mode)) return kiln_clip_tok_from_merges_gz(vocab, &m->tok);
    char v[4096], mg[4096];
    snprintf(v, sizeof v, "%s/vocab.json", vocab);
    snprintf(mg, sizeof mg, "%s/merges.txt", vocab);
    return kiln_clip_tok_from_hf(v, mg, &m->tok);
}

/* A single-file checkpoint (SD 1.x / 2.x with the original LDM names): the parts are
 * split by models/sd_single.c; the config is read from the shapes and the scheduler
 * is SD's (no scheduler config in the file). */
static kiln_status load_single(kiln_sd *m, const char *path, const char *vocab) {
    kiln_status st = kiln_safetensors_open(path, &m->st[0]);
    if (st) return st;
    const kiln_weight_list *w = kiln_safetensors_weights(m->st[0]);
    if (!kiln_sd_single_is(w))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: not a Stable Diffusion checkpoint (no model.diffusion_model.*)", path);
    m->is_single = true; /* freed with m even when the split fails halfway */
    if ((st = kiln_sd_single_split(w, path, &m->single))) return st;
    const kiln_sd_single *s = &m->single;
    if (!s->text_prefix) return kiln_fail(KILN_ERR_FORMAT, "%s: the file has no text encoder (cond_stage_model.*)", path);
    if (!s->has_vae) return kiln_fail(KILN_ERR_FORMAT, "%s: the file has no VAE (first_stage_model.*)", path);
    if (s->inpainting) return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: inpainting models are not supported yet", path);
    if ((st = load_vocab(m, vocab))) return st;
    const bool sd2 = s->family == KILN_SD_FAMILY_SD2;
    m->pad_id = sd2 ? 0 : kiln_clip_tok_eos(m->tok); /* OpenCLIP pads with "!" (id 0), OpenAI's with the end token */
    if ((st = kiln_clip_text_create(w, s->text_prefix, s->text_names, NULL, path, m->pool, &m->clip)) ||
        (st = kiln_unet_create(&s->unet, "", &s->unet_config, m->bf16, path, m->pool, &m->unet)) ||
        (st = kiln_vae_create(&s->vae, "", &s->vae_config, !s->has_vae_encoder, false, path, m->pool, &m->vae)))
        return st;
    m->family = sd2 ? "sd2" : "sd1";
    /* SD 2.x conditions on OpenCLIP's penultimate layer; its single files keep all 24 */
    m->default_skip = sd2 ? 2 : 1;
    return KILN_OK;
}

/* The prediction type the scheduler config names (epsilon when none). */
static kiln_status read_prediction(kiln_sd *m) {
    m->prediction = KILN_PRED_EPSILON;
    if (!m->sched_json) return KILN_OK;
    kiln_sched_config c;
    kiln_status st = kiln_sched_config_parse(m->sched_json, KILN_SD_SAMPLER_EULER, &c);
    if (st) return kiln_fail_prefix(st, "%s: scheduler/scheduler_config.json", m->path);
    m->prediction = c.prediction_type;
    return KILN_OK;
}

bool kiln_sd_supports(const char *path) {
    if (!path) return false;
    const size_t n = strlen(path);
    struct stat sb;
    if (n > 12 && !strcmp(path + n - 12, ".safetensors") && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        kiln_safetensors *st = NULL;
        if (kiln_safetensors_open(path, &st) != KILN_OK) return false;
        bool yes = kiln_sd_single_is(kiln_safetensors_weights(st));
        kiln_safetensors_close(st);
        return yes;
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/model_index.json", path);
    char *txt = NULL;
    if (kiln_read_file(p, 1 << 20, &txt, NULL) != KILN_OK) return false;
    bool yes = strstr(txt, "UNet2DConditionModel") != NULL;
    free(txt);
    return yes;
}

kiln_status kiln_sd_load(const kiln_sd_options *opt, kiln_sd **out) {
    *out = NULL;
    if (!opt || !opt->path) return kiln_fail(KILN_ERR_INVALID_ARG, "no model path given");
    struct stat sb;
    if (stat(opt->path, &sb) != 0) return kiln_fail(KILN_ERR_NOT_FOUND, "%s: no such file or folder", opt->path);
    kiln_sd *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    m->path = strdup(opt->path);
    const char *slash = strrchr(opt->path, '/');
    m->name = strdup(slash && slash[1] ? slash + 1 : opt->path);
    kiln_status st = m->path && m->name ? kiln_pool_create(opt->n_threads, &m->pool)
                                        : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    kiln_kernels_init();
    if (!opt->precision)
        m->bf16 = kiln_kernels_has_bf16();
    else if (!strcmp(opt->precision, "bf16"))
        m->bf16 = true;
    else if (strcmp(opt->precision, "f32") && !st)
        st = kiln_fail(KILN_ERR_INVALID_ARG, "precision '%.40s': f32 or bf16", opt->precision);
    if (m->bf16 && !kiln_kernels_has_bf16()) m->bf16 = false; /* asked for, but this CPU has none: f32 */
    if (!st) {
        if (S_ISDIR(sb.st_mode))
            st = load_folder(m, opt->path);
        else
            st = load_single(m, opt->path, opt->clip_vocab);
    }
    if (!st) st = read_prediction(m);
    if (!st && opt->prediction) {
        if (!strcmp(opt->prediction, "epsilon"))
            m->prediction = KILN_PRED_EPSILON;
        else if (!strcmp(opt->prediction, "v_prediction"))
            m->prediction = KILN_PRED_V;
        else
            st = kiln_fail(KILN_ERR_INVALID_ARG, "prediction '%.40s': epsilon or v_prediction", opt->prediction);
        m->prediction_forced = true;
    }
    if (st) {
        kiln_sd_free(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}

void kiln_sd_free(kiln_sd *m) {
    if (!m) return;
    kiln_clip_text_free(m->clip);
    kiln_unet_free(m->unet);
    kiln_vae_free(m->vae);
    kiln_clip_tok_free(m->tok);
    if (m->is_single) kiln_sd_single_free(&m->single);
    for (int i = 0; i < 3; i++) kiln_safetensors_close(m->st[i]);
    kiln_pool_free(m->pool);
    free(m->sched_json);
    free(m->path);
    free(m->name);
    free(m);
}

const char *kiln_sd_precision(const kiln_sd *m) { return m->bf16 ? "bf16" : "f32"; }

size_t kiln_sd_memory(const kiln_sd *m) {
    return kiln_clip_text_heap_bytes(m->clip) + kiln_unet_heap_bytes(m->unet) + kiln_vae_heap_bytes(m->vae);
}
