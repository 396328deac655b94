/*
 * test_golden_sd.c — kiln's Stable Diffusion UNet and VAE against gen_sd.py's float64
 * PyTorch reference (checked against diffusers' own modules: tests/golden/README.md).
 *
 * For each data/sd_<case>/: make the listed tensors and inputs with the shared
 * generator (golden.h), write one safetensors file, bind it with the case's config
 * (diffusers' config.json keys), run, and compare every traced stage (conv_in, each
 * down block, mid, each up block, out; for the VAE the decoder's, then the
 * encoder's) with the reference. Also: 1 vs 2 threads bit for bit, and hostile
 * configs, files and sizes refused with a clear error.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "files.h"
#include "formats/safetensors.h"
#include "golden.h"
#include "kiln.h"
#include "models/unet.h"
#include "models/vae.h"
#include "test.h"

static const char *const g_cases[] = {"unet_sd1_f32", "unet_sd2_f16", "vae_f32"};

enum { MAX_STAGES = 24 };

typedef struct {
    cJSON *j;
    const char *name, *model, *type;
    int seed, n_stages;
    double timestep, tol;
    int stage[MAX_STAGES][4]; /* B, h, w, c */
    char *config;             /* the config object as JSON text */
} sd_case;

/* Collects the traced stages of one sample into got[stage] at sample offset. */
typedef struct {
    const sd_case *c;
    float *got[MAX_STAGES];
    int sample, next, first; /* next: stage index; first: where this pass's stages start */
    bool bad_shape;
} collector;

static void collect(void *user, const char *stage, const float *map, int h, int w, int c) {
    collector *k = user;
    (void)stage;
    int s = k->next++;
    if (s >= k->c->n_stages || k->c->stage[s][1] != h || k->c->stage[s][2] != w || k->c->stage[s][3] != c) {
        k->bad_shape = true;
        return;
    }
    size_t n = (size_t)h * (size_t)w * (size_t)c;
    memcpy(k->got[s] + (size_t)k->sample * n, map, n * sizeof(float));
}

static int read_case(const char *dir, sd_case *c) {
    char p[2200], *txt = NULL;
    snprintf(p, sizeof p, "%s/case.json", dir);
    if (kiln_read_file(p, 1 << 22, &txt, NULL)) return -1;
    c->j = cJSON_Parse(txt);
    free(txt);
    if (!c->j) return -1;
    const cJSON *j = c->j, *it;
    c->name = cJSON_GetObjectItemCaseSensitive(j, "name")->valuestring;
    c->model = cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring;
    c->type = cJSON_GetObjectItemCaseSensitive(j, "type")->valuestring;
    c->seed = cJSON_GetObjectItemCaseSensitive(j, "seed")->valueint;
    c->timestep = cJSON_GetObjectItemCaseSensitive(j, "timestep")->valuedouble;
    c->tol = cJSON_GetObjectItemCaseSensitive(j, "tolerance")->valuedouble;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "stages")) {
        if (c->n_stages == MAX_STAGES) return -1;
        for (int d = 0; d < 4; d++) c->stage[c->n_stages][d] = cJSON_GetArrayItem(it, d)->valueint;
        c->n_stages++;
    }
    c->config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "config"));
    return c->config ? 0 : -1;
}

static float *make_input(const sd_case *c, const char *name, const char *key, size_t *n) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->j, "inputs"), key);
    *n = 1;
    for (int d = 0; d < cJSON_GetArraySize(shape); d++) *n *= (size_t)cJSON_GetArrayItem(shape, d)->valueint;
    float *x = malloc(*n * sizeof *x);
    if (!x) abort();
    kiln_test_hashed(kiln_test_fnv1a(name) ^ (uint64_t)c->seed, (int64_t)*n, 1.0, 0.0, x);
    return x;
}

static int input_dim(const sd_case *c, const char *key, int d) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->j, "inputs"), key);
    return cJSON_GetArrayItem(shape, d)->valueint;
}

/* The case's tensors (golden.h); skip_name left out, bad_shape one output channel short. */
static void write_weights(const sd_case *c, const char *path, const char *skip_name, const char *bad_shape) {
    kiln_test_write_case_tensors(path, cJSON_GetObjectItemCaseSensitive(c->j, "tensors"), "", (uint64_t)c->seed, c->type,
                                 NULL, 0, skip_name, bad_shape);
}

typedef struct {
    kiln_safetensors *st;
    kiln_pool *pool;
    kiln_unet *unet;
    kiln_vae *vae;
} loaded;

static kiln_status load(const sd_case *c, const char *path, const char *config, int threads, loaded *l) {
    memset(l, 0, sizeof *l);
    kiln_status st = kiln_pool_create(threads, &l->pool);
    if (!st) st = kiln_safetensors_open(path, &l->st);
    if (st) return st;
    const kiln_weight_list *w = kiln_safetensors_weights(l->st);
    if (!strcmp(c->model, "unet")) {
        kiln_unet_config cfg;
        if (!(st = kiln_unet_config_json(config, "config.json", &cfg)))
            st = kiln_unet_create(w, "", &cfg, false, path, l->pool, &l->unet);
    } else {
        kiln_vae_config cfg;
        if (!(st = kiln_vae_config_json(config, "config.json", &cfg)))
            st = kiln_vae_create(w, "", &cfg, false, false, path, l->pool, &l->vae);
    }
    return st;
}

static void unload(loaded *l) {
    kiln_unet_free(l->unet);
    kiln_vae_free(l->vae);
    kiln_safetensors_close(l->st);
    kiln_pool_free(l->pool);
}

/* Runs the case on l, filling k's stage buffers; the final output goes to out. */
static void run_model(const sd_case *c, loaded *l, collector *k, float *out) {
    if (l->unet) {
        size_t nx, nc;
        float *x = make_input(c, "input.sample", "sample", &nx), *ctx = make_input(c, "input.context", "context", &nc);
        int B = input_dim(c, "sample", 0), h = input_dim(c, "sample", 1), w = input_dim(c, "sample", 2);
        int M = input_dim(c, "context", 1);
        size_t per_x = nx / (size_t)B, per_c = nc / (size_t)B;
        for (int b = 0; b < B; b++) {
            k->sample = b;
            k->next = 0;
            const kiln_unet_config *cfg = kiln_unet_get_config(l->unet);
            CHECK_OK(kiln_unet_forward(l->unet, x + b * per_x, h, w, c->timestep, ctx + b * per_c, M,
                                       out + (size_t)b * h * w * cfg->out_channels, collect, k));
        }
        free(x);
        free(ctx);
        return;
    }
    size_t nz, ni;
    float *z = make_input(c, "input.latent", "latent", &nz), *img = make_input(c, "input.image", "image", &ni);
    k->sample = 0;
    k->next = 0;
    CHECK_OK(kiln_vae_decode(l->vae, z, input_dim(c, "latent", 1), input_dim(c, "latent", 2), out, collect, k));
    int h = 0, w = 0;
    float *moments = malloc(nz * 4 * sizeof *moments + 64);
    if (!moments) abort();
    CHECK_OK(kiln_vae_encode(l->vae, img, input_dim(c, "image", 1), input_dim(c, "image", 2), moments, &h, &w, collect,
                             k));
    free(moments);
    free(z);
    free(img);
}

static size_t stage_size(const sd_case *c, int s) {
    return (size_t)c->stage[s][0] * c->stage[s][1] * c->stage[s][2] * c->stage[s][3];
}

static void free_stages(collector *k, int n) {
    for (int s = 0; s < n; s++) free(k->got[s]);
}

static void alloc_stages(const sd_case *c, collector *k) {
    memset(k, 0, sizeof *k);
    k->c = c;
    for (int s = 0; s < c->n_stages; s++)
        if (!(k->got[s] = calloc(stage_size(c, s), sizeof(float)))) abort();
}

/* A config with key set to value (JSON text), for the refusal checks. */
static char *config_with(const sd_case *c, const char *key, const char *value) {
    cJSON *j = cJSON_Parse(c->config);
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    cJSON_AddItemToObject(j, key, cJSON_Parse(value));
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void refusals(const sd_case *c, const char *path) {
    static const struct {
        const char *model, *key, *value, *needle;
        kiln_status want;
    } bad[] = {
        {"unet", "addition_embed_type", "\"text_time\"", "addition_embed_type", KILN_ERR_UNSUPPORTED},
        {"unet", "time_cond_proj_dim", "256", "time_cond_proj_dim", KILN_ERR_UNSUPPORTED},
        {"unet", "down_block_types", "[\"SimpleCrossAttnDownBlock2D\", \"DownBlock2D\", \"DownBlock2D\"]",
         "SimpleCrossAttnDownBlock2D", KILN_ERR_UNSUPPORTED},
        {"unet", "block_out_channels", "[32, 64, 64, 64, 64]", "block_out_channels", KILN_ERR_FORMAT},
        {"unet", "norm_num_groups", "7", "groups", KILN_ERR_FORMAT},
        {"unet", "attention_head_dim", "[4, 4]", "attention_head_dim", KILN_ERR_FORMAT},
        {"unet", "layers_per_block", "3", "resnets.2", KILN_ERR_FORMAT},
        {"vae", "up_block_types", "[\"UpBlock2D\", \"UpBlock2D\"]", "up_block_types", KILN_ERR_UNSUPPORTED},
        {"vae", "latent_channels", "0", "implausible", KILN_ERR_FORMAT},
        {"vae", "block_out_channels", "[32, 64, 128]", "block types", KILN_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (strcmp(bad[i].model, c->model)) continue;
        char *cfg = config_with(c, bad[i].key, bad[i].value);
        loaded l;
        kiln_status st = load(c, path, cfg, 1, &l);
        CHECK_MSG(st == bad[i].want && !l.unet && !l.vae && strstr(kiln_last_error(), bad[i].needle),
                  "%s %s: %s: %s", c->name, bad[i].key, kiln_status_name(st), kiln_last_error());
        unload(&l);
        free(cfg);
    }
    /* missing and misshapen tensors */
    const char *missing = !strcmp(c->model, "unet") ? "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
                                                    : "decoder.mid_block.attentions.0.to_v.bias";
    const char *misshapen = !strcmp(c->model, "unet") ? "down_blocks.0.resnets.0.conv1.weight" : "encoder.conv_out.weight";
    const char *cases[][2] = {{missing, NULL}, {NULL, misshapen}};
    for (int i = 0; i < 2; i++) {
        write_weights(c, path, cases[i][0], cases[i][1]);
        loaded l;
        kiln_status st = load(c, path, c->config, 1, &l);
        const char *needle = cases[i][0] ? cases[i][0] : cases[i][1];
        CHECK_MSG(st == KILN_ERR_FORMAT && !l.unet && !l.vae && strstr(kiln_last_error(), needle), "%s: %s: %s",
                  c->name, kiln_status_name(st), kiln_last_error());
        unload(&l);
    }
}

static void bad_sizes(const sd_case *c, loaded *l) {
    float x[64] = {0}, out[64];
    if (l->unet) {
        CHECK(kiln_unet_forward(l->unet, x, 3, 4, 1.0, x, 1, out, NULL, NULL) == KILN_ERR_INVALID_ARG);
        CHECK(strstr(kiln_last_error(), "multiples") != NULL);
        CHECK(kiln_unet_forward(l->unet, x, 4, 4, NAN, x, 1, out, NULL, NULL) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_unet_forward(l->unet, x, 4, 4, 1.0, x, 0, out, NULL, NULL) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_unet_forward(l->unet, x, 4096, 4096, 1.0, x, 1, out, NULL, NULL) == KILN_ERR_INVALID_ARG);
    } else {
        int h, w;
        CHECK(kiln_vae_decode(l->vae, x, 0, 4, out, NULL, NULL) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_vae_decode(l->vae, x, 4, 5000, out, NULL, NULL) == KILN_ERR_INVALID_ARG);
        CHECK(kiln_vae_encode(l->vae, x, -1, 4, out, &h, &w, NULL, NULL) == KILN_ERR_INVALID_ARG);
    }
    (void)c;
}

static void run_case(const char *data, const char *name) {
    char dir[2100], path[2048], tmp[96], p[2200];
    snprintf(dir, sizeof dir, "%s/sd_%s", data, name);
    sd_case c = {0};
    if (read_case(dir, &c)) {
        CHECK_MSG(0, "%s: unreadable case", dir);
        return;
    }
    snprintf(tmp, sizeof tmp, "golden_sd_%ld_%s.safetensors", (long)getpid(), name);
    kiln_test_tmp_path(path, sizeof path, tmp);
    write_weights(&c, path, NULL, NULL);
    size_t total = 0;
    for (int s = 0; s < c.n_stages; s++) total += stage_size(&c, s);
    char *exp = NULL;
    size_t exp_len = 0;
    snprintf(p, sizeof p, "%s/expected.f32", dir);
    CHECK_OK(kiln_read_file(p, 1 << 26, &exp, &exp_len));
    CHECK_MSG(exp_len == total * sizeof(float), "%s: %zu bytes, expected %zu", p, exp_len, total * sizeof(float));
    loaded l2, l1;
    kiln_status s2 = load(&c, path, c.config, 2, &l2), s1 = load(&c, path, c.config, 1, &l1);
    CHECK_MSG(!s2 && !s1, "%s: %s", name, kiln_last_error());
    if (!s2 && !s1 && exp_len == total * sizeof(float)) {
        collector k2, k1;
        alloc_stages(&c, &k2);
        alloc_stages(&c, &k1);
        float *out2 = malloc(stage_size(&c, c.n_stages - 1) * 4 * sizeof(float) + 4096);
        float *out1 = malloc(stage_size(&c, c.n_stages - 1) * 4 * sizeof(float) + 4096);
        if (!out2 || !out1) abort();
        run_model(&c, &l2, &k2, out2);
        run_model(&c, &l1, &k1, out1);
        CHECK_MSG(!k2.bad_shape && k2.next == (l2.unet ? c.n_stages : c.n_stages), "%s: stages traced %d of %d%s", name,
                  k2.next, c.n_stages, k2.bad_shape ? " (a shape differs)" : "");
        const float *ref = (const float *)exp;
        double worst = 0;
        bool exact = true;
        for (int s = 0; s < c.n_stages; s++) {
            size_t n = stage_size(&c, s);
            double e = kiln_test_rel_err(k2.got[s], ref, n);
            CHECK_MSG(e <= c.tol, "%s stage %d: relative error %.3g > %.3g", name, s, e, c.tol);
            worst = e > worst ? e : worst;
            exact = exact && !memcmp(k2.got[s], k1.got[s], n * sizeof(float));
            ref += n;
        }
        CHECK_MSG(exact, "%s: 1 and 2 threads differ", name);
        printf("%-14s %-4s %-4s %2d stages: worst relative error %.2e (tolerance %.0e); 1 and 2 threads %s\n", name,
               c.model, c.type, c.n_stages, worst, c.tol, exact ? "bit-identical" : "DIFFER");
        bad_sizes(&c, &l2);
        free_stages(&k2, c.n_stages);
        free_stages(&k1, c.n_stages);
        free(out2);
        free(out1);
    }
    unload(&l2);
    unload(&l1);
    if (strcmp(name, "unet_sd2_f16")) refusals(&c, path);
    unlink(path);
    free(exp);
    cJSON_free(c.config);
    cJSON_Delete(c.j);
}

int main(void) {
    char data[1900];
    snprintf(data, sizeof data, "%s/tests/golden/data", getenv("KILN_SRC") ? getenv("KILN_SRC") : ".");
    for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++) run_case(data, g_cases[i]);
    TEST_MAIN_END();
}
