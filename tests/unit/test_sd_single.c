/*
 * test_sd_single.c — kiln_sd_single_split against the fixture gen_sd_single.py wrote
 * (tests/golden/data/sd_single/cases.json): LDM names and shapes of a tiny SD 1.x
 * UNet + VAE and an SD 2.x UNet, with the diffusers names and shapes diffusers' own
 * conversion gives them and the configs kiln must infer.
 *
 * The weight lists are built in memory with distinct fake data pointers into one
 * buffer (the split never reads data), so the test checks every diffusers name maps
 * to the right tensor, not only that the names exist. Then: the inpainting width,
 * files without a text encoder or a VAE encoder, and the refusals (SDXL, class
 * embeddings, a file that is no SD checkpoint, a missing tensor named).
 */
#include <cjson/cJSON.h>

#include "base/status.h"
#include "models/sd_single.h"
#include "files.h"
#include "test.h"

typedef struct {
    char *ldm, *dif; /* ldm: the full name */
    int ldm_dims, dif_dims;
    int64_t ldm_shape[4], dif_shape[4];
    int model; /* 0 UNet, 1 VAE, 2 other */
} entry;

typedef struct {
    entry *e;
    int n;
    const cJSON *json;
} fixture;

static int shape_of(const cJSON *a, int64_t *s) {
    int n = cJSON_GetArraySize(a);
    for (int i = 0; i < n && i < 4; i++) s[i] = (int64_t)cJSON_GetArrayItem(a, i)->valuedouble;
    return n;
}

static char *joined(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 1;
    char *p = malloc(n);
    snprintf(p, n, "%s%s", a, b);
    return p;
}

static void add_entries(fixture *f, const cJSON *list, const char *prefix, int model) {
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        entry *e = &f->e[f->n++];
        memset(e, 0, sizeof *e);
        e->model = model;
        if (model == 2) { /* [name, shape] */
            e->ldm = joined("", cJSON_GetArrayItem(it, 0)->valuestring);
            e->ldm_dims = shape_of(cJSON_GetArrayItem(it, 1), e->ldm_shape);
            continue;
        }
        e->ldm = joined(prefix, cJSON_GetArrayItem(it, 0)->valuestring);
        e->dif = joined("", cJSON_GetArrayItem(it, 1)->valuestring);
        e->ldm_dims = shape_of(cJSON_GetArrayItem(it, 2), e->ldm_shape);
        const cJSON *ds = cJSON_GetArrayItem(it, cJSON_GetArraySize(it) > 3 ? 3 : 2);
        e->dif_dims = shape_of(ds, e->dif_shape);
    }
}

static void fixture_load(fixture *f, const cJSON *doc, const cJSON *c) {
    const cJSON *unet = cJSON_GetObjectItem(c, "unet"), *vae = cJSON_GetObjectItem(c, "vae"),
                *extra = cJSON_GetObjectItem(c, "extra");
    int n = cJSON_GetArraySize(unet) + (cJSON_IsArray(vae) ? cJSON_GetArraySize(vae) : 0) + cJSON_GetArraySize(extra);
    f->e = calloc((size_t)n + 8, sizeof *f->e);
    f->n = 0;
    f->json = c;
    add_entries(f, unet, cJSON_GetObjectItem(doc, "unet_prefix")->valuestring, 0);
    if (cJSON_IsArray(vae)) add_entries(f, vae, cJSON_GetObjectItem(doc, "vae_prefix")->valuestring, 1);
    add_entries(f, extra, "", 2);
}

static void fixture_free(fixture *f) {
    for (int i = 0; i < f->n; i++) {
        free(f->e[i].ldm);
        free(f->e[i].dif);
    }
    free(f->e);
}

/* The list of the fixture's tensors, F16, entry i's data at buf + 16·i; skip(e) true
 * leaves an entry out; conv_in_width > 0 changes the UNet's input channels. */
typedef bool (*skip_fn)(const entry *e, const void *user);

static void build(const fixture *f, const char *buf, skip_fn skip, const void *user, kiln_weight_list *w) {
    memset(w, 0, sizeof *w);
    for (int i = 0; i < f->n; i++) {
        const entry *e = &f->e[i];
        if (skip && skip(e, user)) continue;
        kiln_tensor t = {0};
        t.type = KILN_F16;
        t.n_dims = e->ldm_dims;
        for (int d = 0; d < 4; d++) t.ne[d] = d < e->ldm_dims ? e->ldm_shape[e->ldm_dims - 1 - d] : 1;
        size_t total;
        CHECK(kiln_tensor_set_contiguous(&t, &total));
        t.data = buf + 16 * (size_t)i;
        CHECK_OK(kiln_weights_add(w, e->ldm, &t));
    }
}

static int json_int(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valueint; }

static void check_int_list(const cJSON *o, const char *k, const int *v, int n) {
    const cJSON *a = cJSON_GetObjectItem(o, k);
    CHECK(cJSON_GetArraySize(a) == n);
    for (int i = 0; i < n; i++) CHECK_MSG(cJSON_GetArrayItem(a, i)->valueint == v[i], "%s[%d] = %d", k, i, v[i]);
}

static void check_bool_list(const cJSON *o, const char *k, const bool *v, int n) {
    const cJSON *a = cJSON_GetObjectItem(o, k);
    for (int i = 0; i < n; i++) CHECK_MSG(cJSON_IsTrue(cJSON_GetArrayItem(a, i)) == v[i], "%s[%d]", k, i);
}

static void check_unet_config(const cJSON *o, const kiln_unet_config *c) {
    CHECK(c->in_channels == json_int(o, "in_channels") && c->out_channels == json_int(o, "out_channels"));
    CHECK(c->n_blocks == json_int(o, "n_blocks") && c->layers_per_block == json_int(o, "layers_per_block"));
    CHECK(c->cross_attention_dim == json_int(o, "cross_attention_dim") && c->groups == json_int(o, "groups"));
    CHECK(c->sample_size == json_int(o, "sample_size"));
    check_int_list(o, "channels", c->channels, c->n_blocks);
    check_int_list(o, "heads", c->heads, c->n_blocks);
    check_int_list(o, "transformer_layers", c->transformer_layers, c->n_blocks);
    check_bool_list(o, "down_attn", c->down_attn, c->n_blocks);
    check_bool_list(o, "up_attn", c->up_attn, c->n_blocks);
    CHECK(c->norm_eps == 1e-5f && c->flip_sin_to_cos && c->freq_shift == 0);
}

static void check_vae_config(const cJSON *o, const kiln_vae_config *c) {
    CHECK(c->in_channels == json_int(o, "in_channels") && c->out_channels == json_int(o, "out_channels"));
    CHECK(c->latent_channels == json_int(o, "latent_channels") && c->n_blocks == json_int(o, "n_blocks"));
    CHECK(c->layers_per_block == json_int(o, "layers_per_block") && c->groups == json_int(o, "groups"));
    check_int_list(o, "channels", c->channels, c->n_blocks);
    CHECK(c->scaling_factor == 0.18215f && c->shift_factor == 0.0f);
}

/* Every entry of model (not skipped) is in out under its diffusers name and shape,
 * viewing the input's data; nothing else is. */
static void check_views(const fixture *f, const char *buf, int model, const kiln_weight_list *out, skip_fn skip,
                        const void *user) {
    size_t want = 0;
    for (int i = 0; i < f->n; i++) {
        const entry *e = &f->e[i];
        if (e->model != model || (skip && skip(e, user))) continue;
        want++;
        const kiln_tensor *t = kiln_weights_find(out, e->dif);
        CHECK_MSG(t != NULL, "no '%s' (from '%s')", e->dif, e->ldm);
        if (!t) continue;
        CHECK_MSG(t->data == buf + 16 * (size_t)i, "'%s' views another tensor than '%s'", e->dif, e->ldm);
        CHECK(t->type == KILN_F16);
        bool same = t->n_dims == e->dif_dims;
        for (int d = 0; d < 4; d++) same = same && t->ne[d] == (d < e->dif_dims ? e->dif_shape[e->dif_dims - 1 - d] : 1);
        CHECK_MSG(same, "'%s' has another shape than diffusers gives it", e->dif);
        if (t->n_dims >= 2) CHECK(t->nb[0] == 2 && t->nb[1] == 2 * (size_t)t->ne[0]);
    }
    CHECK_MSG(out->n == want, "model %d: %zu tensors, want %zu", model, out->n, want);
    CHECK_OK(kiln_weights_check_unique(out, "split"));
}

static bool skip_none(const entry *e, const void *user) { return false; }
static bool skip_named(const entry *e, const void *user) { return !strcmp(e->ldm, (const char *)user); }
static bool skip_prefix(const entry *e, const void *user) {
    return !strncmp(e->ldm, (const char *)user, strlen((const char *)user));
}
/* a decoder-only VAE: no encoder, no quant_conv */
static bool skip_encoder(const entry *e, const void *user) {
    return e->model == 1 && (!strncmp(e->dif, "encoder.", 8) || !strcmp(e->dif, "quant_conv.weight") ||
                             !strcmp(e->dif, "quant_conv.bias"));
}

static void run_case(const cJSON *doc, const cJSON *c, char *buf) {
    fixture f;
    fixture_load(&f, doc, c);
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const int family = json_int(c, "family");
    const bool with_vae = cJSON_IsArray(cJSON_GetObjectItem(c, "vae"));
    fprintf(stderr, "case %s: %d tensors\n", name, f.n);

    kiln_weight_list w;
    kiln_sd_single s;
    build(&f, buf, NULL, NULL, &w);
    CHECK(kiln_sd_single_is(&w));
    CHECK_OK(kiln_sd_single_split(&w, name, &s));
    CHECK(s.family == (kiln_sd_family)family);
    CHECK(s.text_prefix && !strcmp(s.text_prefix, cJSON_GetObjectItem(c, "text_prefix")->valuestring));
    CHECK(s.text_names == (family == 1 ? KILN_CLIP_NAMES_HF : KILN_CLIP_NAMES_OPENCLIP));
    const cJSON *uc = cJSON_GetObjectItem(c, "unet_config");
    CHECK(s.linear_projection == cJSON_IsTrue(cJSON_GetObjectItem(uc, "linear_projection")));
    CHECK(!s.inpainting);
    check_unet_config(uc, &s.unet_config);
    check_views(&f, buf, 0, &s.unet, NULL, NULL);
    CHECK(s.has_vae == with_vae && s.has_vae_encoder == with_vae);
    if (with_vae) {
        check_vae_config(cJSON_GetObjectItem(c, "vae_config"), &s.vae_config);
        check_views(&f, buf, 1, &s.vae, NULL, NULL);
    } else {
        CHECK(s.vae.n == 0);
    }
    kiln_sd_single_free(&s);
    kiln_weights_free(&w);

    /* no text encoder: the family comes from the UNet (linear projections mean SD 2.x) */
    build(&f, buf, skip_prefix, "cond_stage_model.", &w);
    CHECK_OK(kiln_sd_single_split(&w, name, &s));
    CHECK(s.family == (kiln_sd_family)family && s.text_prefix == NULL);
    check_int_list(uc, "heads", s.unet_config.heads, s.unet_config.n_blocks);
    kiln_sd_single_free(&s);
    kiln_weights_free(&w);

    /* inpainting: 9 input channels */
    build(&f, buf, skip_none, NULL, &w);
    for (size_t i = 0; i < w.n; i++)
        if (!strcmp(w.items[i].name, "model.diffusion_model.input_blocks.0.0.weight")) {
            w.items[i].t.ne[2] = 9;
            kiln_tensor_set_contiguous(&w.items[i].t, &(size_t){0});
        }
    CHECK_OK(kiln_sd_single_split(&w, name, &s));
    CHECK(s.inpainting && s.unet_config.in_channels == 9);
    CHECK(s.unet_config.sample_size == 64);
    kiln_sd_single_free(&s);
    kiln_weights_free(&w);

    if (with_vae) { /* a decoder-only VAE */
        build(&f, buf, skip_encoder, NULL, &w);
        CHECK_OK(kiln_sd_single_split(&w, name, &s));
        CHECK(s.has_vae && !s.has_vae_encoder);
        check_vae_config(cJSON_GetObjectItem(c, "vae_config"), &s.vae_config);
        check_views(&f, buf, 1, &s.vae, skip_encoder, NULL);
        kiln_sd_single_free(&s);
        kiln_weights_free(&w);
    }

    /* a missing tensor is named, with the diffusers name it would bind as */
    static const char *const missing[][2] = {
        {"model.diffusion_model.output_blocks.8.2.conv.weight", "up_blocks.2.upsamplers.0.conv.weight"},
        {"model.diffusion_model.input_blocks.7.0.skip_connection.bias", "down_blocks.2.resnets.0.conv_shortcut.bias"},
        {"model.diffusion_model.middle_block.1.transformer_blocks.0.ff.net.2.weight",
         "mid_block.attentions.0.transformer_blocks.0.ff.net.2.weight"},
        {"model.diffusion_model.time_embed.2.bias", "time_embedding.linear_2.bias"},
        {"first_stage_model.decoder.up.0.block.0.nin_shortcut.weight", "decoder.up_blocks.3.resnets.0.conv_shortcut.weight"},
        {"first_stage_model.encoder.mid.attn_1.proj_out.bias", "encoder.mid_block.attentions.0.to_out.0.bias"},
    };
    for (size_t k = 0; k < sizeof missing / sizeof missing[0]; k++) {
        if (!with_vae && !strncmp(missing[k][0], "first_stage_model.", 18)) continue;
        build(&f, buf, skip_named, missing[k][0], &w);
        CHECK(w.n == (size_t)f.n - 1);
        kiln_status st = kiln_sd_single_split(&w, name, &s);
        CHECK(st == KILN_ERR_FORMAT);
        CHECK_MSG(strstr(kiln_last_error(), missing[k][0]) && strstr(kiln_last_error(), missing[k][1]), "%s",
                  kiln_last_error());
        kiln_sd_single_free(&s);
        kiln_weights_free(&w);
    }
    fixture_free(&f);
}

static void add_fake(kiln_weight_list *w, const char *name, const char *buf) {
    kiln_tensor t = {0};
    t.type = KILN_F32;
    t.n_dims = 1;
    t.ne[0] = 8;
    t.ne[1] = t.ne[2] = t.ne[3] = 1;
    size_t total;
    kiln_tensor_set_contiguous(&t, &total);
    t.data = buf;
    CHECK_OK(kiln_weights_add(w, name, &t));
}

static void refusals(const cJSON *doc, const cJSON *c, char *buf) {
    fixture f;
    fixture_load(&f, doc, c);
    kiln_weight_list w;
    kiln_sd_single s;

    build(&f, buf, NULL, NULL, &w); /* SDXL's conditioner */
    add_fake(&w, "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias", buf);
    CHECK(kiln_sd_single_is(&w));
    CHECK(kiln_sd_single_split(&w, "xl.safetensors", &s) == KILN_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(kiln_last_error(), "xl.safetensors: SDXL single files are not supported yet"), "%s",
              kiln_last_error());
    kiln_sd_single_free(&s);
    kiln_weights_free(&w);

    build(&f, buf, NULL, NULL, &w); /* class embeddings (the x4 upscaler) */
    add_fake(&w, "model.diffusion_model.label_emb.weight", buf);
    CHECK(kiln_sd_single_split(&w, "up.safetensors", &s) == KILN_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(kiln_last_error(), "label_emb"), "%s", kiln_last_error());
    kiln_sd_single_free(&s);
    kiln_weights_free(&w);

    memset(&w, 0, sizeof w); /* not Stable Diffusion: an LLM, an empty file */
    add_fake(&w, "model.layers.0.self_attn.q_proj.weight", buf);
    add_fake(&w, "model.embed_tokens.weight", buf);
    CHECK(!kiln_sd_single_is(&w));
    CHECK(kiln_sd_single_split(&w, "llm.safetensors", &s) == KILN_ERR_FORMAT);
    CHECK_MSG(strstr(kiln_last_error(), "llm.safetensors: not a Stable Diffusion 1.x / 2.x single-file checkpoint"),
              "%s", kiln_last_error());
    kiln_sd_single_free(&s);
    kiln_weights_free(&w);
    memset(&w, 0, sizeof w);
    CHECK(kiln_sd_single_split(&w, "empty", &s) == KILN_ERR_FORMAT);
    CHECK(kiln_sd_single_split(NULL, "none", &s) == KILN_ERR_INVALID_ARG);

    /* a UNet whose structure cannot be read: no mid-block transformer */
    build(&f, buf, skip_prefix, "model.diffusion_model.middle_block.1.", &w);
    CHECK(kiln_sd_single_split(&w, "nomid", &s) == KILN_ERR_FORMAT);
    CHECK_MSG(strstr(kiln_last_error(), "middle_block.1.transformer_blocks.0.attn2.to_k.weight"), "%s",
              kiln_last_error());
    kiln_sd_single_free(&s);
    kiln_weights_free(&w);
    fixture_free(&f);
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/data/sd_single/cases.json",
             getenv("KILN_SRC") ? getenv("KILN_SRC") : ".");
    char *text = kiln_test_slurp(path);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    cJSON *doc = cJSON_Parse(text);
    free(text);
    CHECK(doc != NULL);
    const cJSON *cases = cJSON_GetObjectItem(doc, "cases"), *c;
    int max_n = 0;
    cJSON_ArrayForEach(c, cases) {
        int n = cJSON_GetArraySize(cJSON_GetObjectItem(c, "unet")) + cJSON_GetArraySize(cJSON_GetObjectItem(c, "extra"));
        if (cJSON_IsArray(cJSON_GetObjectItem(c, "vae"))) n += cJSON_GetArraySize(cJSON_GetObjectItem(c, "vae"));
        if (n > max_n) max_n = n;
    }
    char *buf = calloc((size_t)max_n + 8, 16);
    cJSON_ArrayForEach(c, cases) run_case(doc, c, buf);
    refusals(doc, cJSON_GetArrayItem(cases, 0), buf);
    free(buf);
    cJSON_Delete(doc);
    TEST_MAIN_END();
}
