/*
 * test_sd_single_pipeline.c — a single-file checkpoint through the whole txt2img
 * pipeline gives the very image the same weights give as a diffusers folder.
 *
 * The layout is data/sd_single's "sd1" case (an SD 1.x structure at widths 32..128,
 * whose LDM names diffusers' own converter maps to the listed diffusers names): its
 * UNet and VAE tensors, plus a one-layer CLIP text encoder 48 wide, get values from
 * the shared generator keyed by their diffusers names, and are written twice: once as
 * a diffusers folder (configs written from the case) and once as one LDM-named file.
 * Both load through kiln_sd_load (the single file with the folder's tokenizer as its
 * CLIP vocabulary) and must give bit-identical images; the single file's inferred
 * configs are the folder's.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "files.h"
#include "golden.h"
#include "kiln.h"
#include "test.h"

enum { MAXT = 1200 };

typedef struct {
    kiln_test_tensor t[MAXT];
    char names[MAXT][200];
    float *bufs[MAXT];
    int n;
} tlist;

static void add(tlist *l, const char *name, const cJSON *shape, const char *key) {
    if (l->n == MAXT) abort();
    kiln_test_tensor *x = &l->t[l->n];
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    x->name = l->names[l->n];
    x->n_dims = cJSON_GetArraySize(shape);
    int64_t count = 1;
    for (int d = 0; d < x->n_dims; d++) count *= (x->shape[d] = cJSON_GetArrayItem(shape, d)->valueint);
    if (!(l->bufs[l->n] = malloc((size_t)count * sizeof(float)))) abort();
    /* values keyed by the diffusers name: the same numbers under both names */
    const bool vec = x->n_dims == 1;
    const double fan = vec ? 1 : (double)(count / x->shape[0]);
    kiln_test_hashed(kiln_test_fnv1a(key) ^ 77, count, vec ? 0.1 : 1.0 / __builtin_sqrt(fan),
                     vec && strstr(key, "norm") && strstr(key, "weight") ? 1.0 : 0.0, l->bufs[l->n]);
    x->data = l->bufs[l->n++];
}

static void tlist_free(tlist *l) {
    for (int i = 0; i < l->n; i++) free(l->bufs[i]);
    l->n = 0;
}

static void write_text(const char *dir, const char *file, const char *text) {
    char p[2300];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    kiln_test_write_file(p, text, strlen(text));
}

/* The text encoder under Hugging Face's names (prefix "" or the SD 1.x one). */
static void text_tensors(tlist *l, const char *prefix, int vocab) {
    char n[200], key[200];
    struct {
        const char *name;
        int rows, cols;
    } tt[] = {
        {"text_model.embeddings.token_embedding.weight", vocab, 48},
        {"text_model.embeddings.position_embedding.weight", 77, 48},
        {"text_model.final_layer_norm.weight", 48, 0},
        {"text_model.final_layer_norm.bias", 48, 0},
        {"text_model.encoder.layers.0.layer_norm1.weight", 48, 0},
        {"text_model.encoder.layers.0.layer_norm1.bias", 48, 0},
        {"text_model.encoder.layers.0.layer_norm2.weight", 48, 0},
        {"text_model.encoder.layers.0.layer_norm2.bias", 48, 0},
        {"text_model.encoder.layers.0.self_attn.q_proj.weight", 48, 48},
        {"text_model.encoder.layers.0.self_attn.q_proj.bias", 48, 0},
        {"text_model.encoder.layers.0.self_attn.k_proj.weight", 48, 48},
        {"text_model.encoder.layers.0.self_attn.k_proj.bias", 48, 0},
        {"text_model.encoder.layers.0.self_attn.v_proj.weight", 48, 48},
        {"text_model.encoder.layers.0.self_attn.v_proj.bias", 48, 0},
        {"text_model.encoder.layers.0.self_attn.out_proj.weight", 48, 48},
        {"text_model.encoder.layers.0.self_attn.out_proj.bias", 48, 0},
        {"text_model.encoder.layers.0.mlp.fc1.weight", 96, 48},
        {"text_model.encoder.layers.0.mlp.fc1.bias", 96, 0},
        {"text_model.encoder.layers.0.mlp.fc2.weight", 48, 96},
        {"text_model.encoder.layers.0.mlp.fc2.bias", 48, 0},
    };
    for (size_t i = 0; i < sizeof tt / sizeof tt[0]; i++) {
        cJSON *shape = cJSON_CreateArray();
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(tt[i].rows));
        if (tt[i].cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber(tt[i].cols));
        snprintf(n, sizeof n, "%s%s", prefix, tt[i].name);
        snprintf(key, sizeof key, "%s", tt[i].name);
        add(l, n, shape, key);
        cJSON_Delete(shape);
    }
}

/* One part's tensors from the case list: [ldm, diffusers, ldm shape (, diffusers shape)]. */
static void part(tlist *l, const cJSON *list, const char *ldm_prefix, bool ldm) {
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const char *diff = cJSON_GetArrayItem(e, 1)->valuestring;
        char n[200];
        snprintf(n, sizeof n, "%s%s", ldm ? ldm_prefix : "", ldm ? cJSON_GetArrayItem(e, 0)->valuestring : diff);
        const cJSON *shape = cJSON_GetArrayItem(e, !ldm && cJSON_GetArraySize(e) > 3 ? 3 : 2);
        add(l, n, shape, diff);
    }
}

static kiln_sd_image generate(const char *path, const char *vocab) {
    kiln_sd_options o = {.path = path, .clip_vocab = vocab, .precision = "f32", .n_threads = 2};
    kiln_sd *m = NULL;
    kiln_sd_image img = {0};
    kiln_status st = kiln_sd_load(&o, &m);
    CHECK_MSG(st == KILN_OK, "%s: %s", path, kiln_last_error());
    if (!m) return img;
    kiln_sd_params p = {.prompt = "a photo of a cat", .negative_prompt = "blurry", .width = 64, .height = 64,
                        .steps = 3, .cfg_scale = 5.0f, .sampler = "dpmpp_2m", .seed = 9};
    CHECK_OK(kiln_sd_generate(m, &p, &img));
    kiln_sd_free(m);
    return img;
}

int main(void) {
    char data[1900], p[2400], *txt = NULL;
    snprintf(data, sizeof data, "%s/tests/golden/data/sd_single", getenv("KILN_SRC") ? getenv("KILN_SRC") : ".");
    snprintf(p, sizeof p, "%s/cases.json", data);
    CHECK_OK(kiln_read_file(p, 1 << 22, &txt, NULL));
    cJSON *root = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!root) TEST_MAIN_END();
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "cases"), 0);
    char dir[2048], name[64], sub[2200], file[2300], vocab[2200];
    snprintf(name, sizeof name, "sd_single_pipe_%ld", (long)getpid());
    kiln_test_tmp_path(dir, sizeof dir, name);
    /* the folder: a random sd-tiny's tokenizer and scheduler, this case's parts */
    kiln_random_model_options o = {.shape = "sd-tiny", .type = "f32", .seed = 1};
    CHECK_OK(kiln_model_random(dir, &o));
    snprintf(vocab, sizeof vocab, "%s/tokenizer", dir);
    char *vj = NULL;
    snprintf(p, sizeof p, "%s/vocab.json", vocab);
    CHECK_OK(kiln_read_file(p, 1 << 22, &vj, NULL));
    cJSON *vjs = vj ? cJSON_Parse(vj) : NULL;
    const int n_vocab = vjs ? cJSON_GetArraySize(vjs) : 0;
    cJSON_Delete(vjs);
    free(vj);
    static tlist l;
    snprintf(sub, sizeof sub, "%s/text_encoder", dir);
    snprintf(p, sizeof p,
             "{\"hidden_size\": 48, \"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"intermediate_size\": 96, "
             "\"vocab_size\": %d, \"max_position_embeddings\": 77, \"hidden_act\": \"quick_gelu\", \"eos_token_id\": %d}",
             n_vocab, n_vocab - 1);
    write_text(sub, "config.json", p);
    text_tensors(&l, "", n_vocab);
    snprintf(file, sizeof file, "%s/model.safetensors", sub);
    kiln_test_write_tensors(file, l.t, l.n, "F32");
    tlist_free(&l);
    snprintf(sub, sizeof sub, "%s/unet", dir);
    write_text(sub, "config.json",
               "{\"in_channels\": 4, \"out_channels\": 4, \"block_out_channels\": [32, 64, 128, 128], "
               "\"layers_per_block\": 2, \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "
               "\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", "
               "\"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"], \"cross_attention_dim\": 48, \"attention_head_dim\": 8, "
               "\"norm_num_groups\": 32, \"sample_size\": 64}");
    part(&l, cJSON_GetObjectItemCaseSensitive(c, "unet"), "", false);
    snprintf(file, sizeof file, "%s/diffusion_pytorch_model.safetensors", sub);
    kiln_test_write_tensors(file, l.t, l.n, "F32");
    tlist_free(&l);
    snprintf(sub, sizeof sub, "%s/vae", dir);
    write_text(sub, "config.json",
               "{\"block_out_channels\": [32, 64, 128, 128], \"layers_per_block\": 2, \"norm_num_groups\": 32, "
               "\"latent_channels\": 4}");
    part(&l, cJSON_GetObjectItemCaseSensitive(c, "vae"), "", false);
    snprintf(file, sizeof file, "%s/diffusion_pytorch_model.safetensors", sub);
    kiln_test_write_tensors(file, l.t, l.n, "F32");
    tlist_free(&l);
    /* scheduler/: the single file has none, so the folder uses SD's defaults too */
    snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", dir);
    unlink(p);
    /* the single file: LDM names, text under cond_stage_model.transformer. */
    text_tensors(&l, "cond_stage_model.transformer.", n_vocab);
    part(&l, cJSON_GetObjectItemCaseSensitive(c, "unet"), cJSON_GetObjectItemCaseSensitive(root, "unet_prefix")->valuestring, true);
    part(&l, cJSON_GetObjectItemCaseSensitive(c, "vae"), cJSON_GetObjectItemCaseSensitive(root, "vae_prefix")->valuestring, true);
    snprintf(file, sizeof file, "%s.safetensors", dir);
    kiln_test_write_tensors(file, l.t, l.n, "F32");
    tlist_free(&l);

    CHECK(kiln_sd_supports(dir) && kiln_sd_supports(file));
    kiln_sd_image a = generate(dir, NULL), b = generate(file, vocab);
    CHECK_MSG(a.rgb && b.rgb && a.width == b.width && a.height == b.height &&
                  !memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3),
              "the single file's image differs from the folder's");
    if (a.rgb && b.rgb) printf("single file and diffusers folder: the same %dx%d image\n", a.width, a.height);
    kiln_sd_image_clear(&a);
    kiln_sd_image_clear(&b);
    kiln_sd_options no_vocab = {.path = file};
    kiln_sd *m = NULL;
    unsetenv("KILN_CLIP_VOCAB");
    CHECK(kiln_sd_load(&no_vocab, &m) == KILN_ERR_INVALID_ARG && !m && strstr(kiln_last_error(), "--clip-vocab"));
    unlink(file);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    cJSON_Delete(root);
    TEST_MAIN_END();
}
