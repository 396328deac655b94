/*
 * test_golden_sd_single.c — a single-file checkpoint end to end: gen_sd.py's
 * unet_sd1_f32 and vae_f32 cases (diffusers names) written as one safetensors file
 * under the LDM names gen_sd_single.py lists for them (the VAE attention matrices as
 * 1x1 convs, as LDM stores them), with a dummy SD 1.x text encoder and EMA tensor;
 * then kiln_sd_single_split, kiln_unet_create / kiln_vae_create with the inferred
 * configs, and every traced stage compared with the cases' expected.f32.
 *
 * The inferred configs must equal the cases' except for what shapes cannot tell and
 * these tiny cases choose differently from SD (4 heads, 8 groups), which are set from
 * the case before binding.
 */
#include <cjson/cJSON.h>
#include <math.h>

#include "base/mapfile.h"
#include "base/status.h"
#include "files.h"
#include "formats/safetensors.h"
#include "golden.h"
#include "models/sd_single.h"
#include "test.h"

typedef struct {
    cJSON *j;
    int seed;
    float *expected;
    size_t n_expected;
} gcase;

static void read_case(const char *data, const char *name, gcase *c) {
    char p[1200], *txt = NULL;
    snprintf(p, sizeof p, "%s/sd_%s/case.json", data, name);
    CHECK_OK(kiln_read_file(p, 1 << 22, &txt, NULL));
    c->j = cJSON_Parse(txt);
    free(txt);
    if (!c->j) abort();
    c->seed = cJSON_GetObjectItem(c->j, "seed")->valueint;
    snprintf(p, sizeof p, "%s/sd_%s/expected.f32", data, name);
    char *e = NULL;
    size_t n = 0;
    CHECK_OK(kiln_read_file(p, 1 << 26, &e, &n));
    c->expected = (float *)e;
    c->n_expected = n / sizeof(float);
}

/* Appends case c's tensors to t under their LDM names from map ([ldm, diffusers(, 1)]). */
static void add_tensors(const gcase *c, const cJSON *map, const char *prefix, kiln_test_tensor *t, int *k,
                        float **bufs, char **names) {
    const cJSON *it, *m;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(c->j, "tensors")) {
        const char *dif = cJSON_GetArrayItem(it, 0)->valuestring;
        const cJSON *found = NULL;
        cJSON_ArrayForEach(m, map) if (!strcmp(cJSON_GetArrayItem(m, 1)->valuestring, dif)) found = m;
        CHECK_MSG(found != NULL, "no LDM name for %s", dif);
        if (!found) continue;
        kiln_test_tensor *x = &t[*k];
        const cJSON *shape = cJSON_GetArrayItem(it, 1);
        x->n_dims = cJSON_GetArraySize(shape);
        int64_t count = 1;
        for (int d = 0; d < x->n_dims; d++) count *= (x->shape[d] = cJSON_GetArrayItem(shape, d)->valueint);
        if (cJSON_GetArraySize(found) > 2) { /* the 1x1 conv LDM stores */
            x->shape[2] = x->shape[3] = 1;
            x->n_dims = 4;
        }
        size_t n = strlen(prefix) + strlen(cJSON_GetArrayItem(found, 0)->valuestring) + 1;
        names[*k] = malloc(n);
        snprintf(names[*k], n, "%s%s", prefix, cJSON_GetArrayItem(found, 0)->valuestring);
        x->name = names[*k];
        if (!(bufs[*k] = malloc((size_t)count * sizeof(float)))) abort();
        kiln_test_hashed(kiln_test_fnv1a(dif) ^ (uint64_t)c->seed, count, cJSON_GetArrayItem(it, 2)->valuedouble,
                         cJSON_GetArrayItem(it, 3)->valuedouble, bufs[*k]);
        x->data = bufs[(*k)++];
    }
}

static float *input(const gcase *c, const char *name, const char *key, int dims[4]) {
    const cJSON *shape = cJSON_GetObjectItem(cJSON_GetObjectItem(c->j, "inputs"), key);
    size_t n = 1;
    for (int d = 0; d < cJSON_GetArraySize(shape); d++) n *= (size_t)(dims[d] = cJSON_GetArrayItem(shape, d)->valueint);
    float *x = malloc(n * sizeof *x);
    if (!x) abort();
    kiln_test_hashed(kiln_test_fnv1a(name) ^ (uint64_t)c->seed, (int64_t)n, 1.0, 0.0, x);
    return x;
}

/* The traced stages, laid out as expected.f32 is: stage by stage, samples within. */
typedef struct {
    const gcase *c;
    float *got;
    size_t stage_off[32];
    int next, sample, n_stages;
    bool bad;
} tracer;

static void trace(void *user, const char *stage, const float *map, int h, int w, int c) {
    tracer *t = user;
    const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItem(t->c->j, "stages"), t->next);
    if (!st || cJSON_GetArrayItem(st, 1)->valueint != h || cJSON_GetArrayItem(st, 2)->valueint != w ||
        cJSON_GetArrayItem(st, 3)->valueint != c) {
        t->bad = true;
        return;
    }
    size_t n = (size_t)h * w * c;
    memcpy(t->got + t->stage_off[t->next] + (size_t)t->sample * n, map, n * sizeof(float));
    t->next++;
    (void)stage;
}

static void tracer_init(tracer *t, const gcase *c) {
    memset(t, 0, sizeof *t);
    t->c = c;
    size_t off = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, cJSON_GetObjectItem(c->j, "stages")) {
        t->stage_off[t->n_stages++] = off;
        size_t n = 1;
        for (int d = 0; d < 4; d++) n *= (size_t)cJSON_GetArrayItem(st, d)->valueint;
        off += n;
    }
    CHECK(off == c->n_expected);
    t->got = calloc(off + 1, sizeof(float));
}

static int json_at(const cJSON *cfg, const char *key, int i) {
    const cJSON *v = cJSON_GetObjectItem(cfg, key);
    return cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i)->valueint : v->valueint;
}

static void run_unet(const gcase *c, const kiln_sd_single *s) {
    const cJSON *cfg = cJSON_GetObjectItem(c->j, "config");
    kiln_unet_config u = s->unet_config;
    CHECK(u.n_blocks == cJSON_GetArraySize(cJSON_GetObjectItem(cfg, "block_out_channels")));
    CHECK(u.layers_per_block == json_at(cfg, "layers_per_block", 0));
    CHECK(u.in_channels == json_at(cfg, "in_channels", 0) && u.out_channels == json_at(cfg, "out_channels", 0));
    CHECK(u.cross_attention_dim == json_at(cfg, "cross_attention_dim", 0));
    for (int i = 0; i < u.n_blocks; i++) {
        CHECK(u.channels[i] == json_at(cfg, "block_out_channels", i));
        CHECK(u.down_attn[i] == !strncmp(cJSON_GetArrayItem(cJSON_GetObjectItem(cfg, "down_block_types"), i)->valuestring,
                                         "CrossAttn", 9));
        CHECK(u.up_attn[i] == !strncmp(cJSON_GetArrayItem(cJSON_GetObjectItem(cfg, "up_block_types"), i)->valuestring,
                                       "CrossAttn", 9));
        CHECK(u.heads[i] == 8 && u.transformer_layers[i] == 1);
        u.heads[i] = json_at(cfg, "attention_head_dim", i); /* the tiny case's choice */
    }
    CHECK(u.groups == 32 && !s->linear_projection && s->family == KILN_SD_FAMILY_SD1);
    u.groups = json_at(cfg, "norm_num_groups", 0);
    kiln_unet *m = NULL;
    CHECK_OK(kiln_unet_create(&s->unet, "", &u, false, "single.safetensors", NULL, &m));
    if (!m) return;
    int xd[4], cd[4];
    float *x = input(c, "input.sample", "sample", xd), *ctx = input(c, "input.context", "context", cd);
    tracer t;
    tracer_init(&t, c);
    const size_t per_x = (size_t)xd[1] * xd[2] * xd[3], per_c = (size_t)cd[1] * cd[2];
    float *out = malloc((size_t)xd[1] * xd[2] * u.out_channels * sizeof *out);
    for (int b = 0; b < xd[0]; b++) {
        t.sample = b;
        t.next = 0;
        CHECK_OK(kiln_unet_forward(m, x + b * per_x, xd[1], xd[2], cJSON_GetObjectItem(c->j, "timestep")->valuedouble,
                                   ctx + b * per_c, cd[1], out, trace, &t));
    }
    double err = kiln_test_rel_err(t.got, c->expected, c->n_expected), tol = cJSON_GetObjectItem(c->j, "tolerance")->valuedouble;
    fprintf(stderr, "unet from a single file: rel err %.3g (tolerance %g)\n", err, tol);
    CHECK(!t.bad && err <= tol);
    free(out);
    free(t.got);
    free(x);
    free(ctx);
    kiln_unet_free(m);
}

static void run_vae(const gcase *c, const kiln_sd_single *s) {
    const cJSON *cfg = cJSON_GetObjectItem(c->j, "config");
    kiln_vae_config v = s->vae_config;
    CHECK(s->has_vae && s->has_vae_encoder);
    CHECK(v.n_blocks == cJSON_GetArraySize(cJSON_GetObjectItem(cfg, "block_out_channels")));
    CHECK(v.layers_per_block == json_at(cfg, "layers_per_block", 0) &&
          v.latent_channels == json_at(cfg, "latent_channels", 0));
    CHECK(v.in_channels == json_at(cfg, "in_channels", 0) && v.out_channels == json_at(cfg, "out_channels", 0));
    for (int i = 0; i < v.n_blocks; i++) CHECK(v.channels[i] == json_at(cfg, "block_out_channels", i));
    CHECK(v.groups == 32);
    v.groups = json_at(cfg, "norm_num_groups", 0);
    kiln_vae *m = NULL;
    CHECK_OK(kiln_vae_create(&s->vae, "", &v, false, false, "single.safetensors", NULL, &m));
    if (!m) return;
    int zd[4], id[4];
    float *z = input(c, "input.latent", "latent", zd), *img = input(c, "input.image", "image", id);
    tracer t;
    tracer_init(&t, c);
    float *pix = malloc((size_t)id[1] * id[2] * id[3] * 64 * sizeof *pix);
    float *mom = malloc((size_t)zd[1] * zd[2] * zd[3] * 64 * sizeof *mom);
    int h, w;
    CHECK_OK(kiln_vae_decode(m, z, zd[1], zd[2], pix, trace, &t));
    CHECK_OK(kiln_vae_encode(m, img, id[1], id[2], mom, &h, &w, trace, &t));
    double err = kiln_test_rel_err(t.got, c->expected, c->n_expected), tol = cJSON_GetObjectItem(c->j, "tolerance")->valuedouble;
    fprintf(stderr, "vae from a single file: rel err %.3g (tolerance %g)\n", err, tol);
    CHECK(!t.bad && t.next == t.n_stages && err <= tol);
    free(pix);
    free(mom);
    free(t.got);
    free(z);
    free(img);
    kiln_vae_free(m);
}

int main(void) {
    char data[1024], p[1200];
    snprintf(data, sizeof data, "%s/tests/golden/data", getenv("KILN_SRC") ? getenv("KILN_SRC") : ".");
    snprintf(p, sizeof p, "%s/sd_single/cases.json", data);
    char *txt = NULL;
    CHECK_OK(kiln_read_file(p, 1 << 24, &txt, NULL));
    cJSON *fx = cJSON_Parse(txt);
    free(txt);
    if (!fx) return 1;
    const cJSON *golden = cJSON_GetObjectItem(fx, "golden");
    gcase unet, vae;
    read_case(data, "unet_sd1_f32", &unet);
    read_case(data, "vae_f32", &vae);

    enum { MAX = 2048 };
    kiln_test_tensor *t = calloc(MAX, sizeof *t);
    float **bufs = calloc(MAX, sizeof *bufs);
    char **names = calloc(MAX, sizeof *names);
    int k = 0;
    add_tensors(&unet, cJSON_GetObjectItem(golden, "unet_sd1_f32"), "model.diffusion_model.", t, &k, bufs, names);
    add_tensors(&vae, cJSON_GetObjectItem(golden, "vae_f32"), "first_stage_model.", t, &k, bufs, names);
    static float dummy[8];
    t[k++] = (kiln_test_tensor){"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {8}, dummy};
    t[k++] = (kiln_test_tensor){"model_ema.diffusion_modelout2bias", 1, {4}, dummy};
    t[k++] = (kiln_test_tensor){"alphas_cumprod", 1, {8}, dummy};
    char path[1200];
    kiln_test_tmp_path(path, sizeof path, "sd_single.safetensors");
    kiln_test_write_tensors(path, t, k, "F32");

    kiln_safetensors *st = NULL;
    CHECK_OK(kiln_safetensors_open(path, &st));
    if (st) {
        kiln_sd_single s;
        CHECK_OK(kiln_sd_single_split(kiln_safetensors_weights(st), path, &s));
        CHECK(s.text_prefix && !strcmp(s.text_prefix, "cond_stage_model.transformer."));
        run_unet(&unet, &s);
        run_vae(&vae, &s);
        kiln_sd_single_free(&s);
        kiln_safetensors_close(st);
    }
    for (int i = 0; i < k; i++) {
        if (i < MAX && bufs[i]) free(bufs[i]);
        free(names[i]);
    }
    free(bufs);
    free(names);
    free(t);
    free(unet.expected);
    free(vae.expected);
    cJSON_Delete(unet.j);
    cJSON_Delete(vae.j);
    cJSON_Delete(fx);
    TEST_MAIN_END();
}
