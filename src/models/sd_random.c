/*
 * sd_random.c — random-weight Stable Diffusion models as diffusers folders
 * (kiln_model_random with an "sd-*" shape): model_index.json, the scheduler config,
 * a synthetic CLIP tokenizer, and text_encoder/, unet/ and vae/ with configs and
 * safetensors weights of the named shape, written one tensor at a time.
 *
 * Shapes: "sd15" is Stable Diffusion 1.5's (CLIP ViT-L/14 text tower, the 860M UNet,
 * the 84M VAE), for benchmarks; "sd-tiny" keeps SD's structure (a 4-level VAE, so
 * pixels are 8 latents wide; cross-attention and plain blocks; 77 text positions)
 * at widths of 8 to 32, for tests. The tokenizer has CLIP's 512 byte symbols, a few
 * hundred merges of common English letter pairs and the two special tokens, so
 * prompts tokenize as CLIP would split them, only into shorter pieces.
 *
 * Weights: uniform in ±1/√fan_in (matrices and convolutions), biases ±0.02, norms 1
 * and 0, embeddings ±0.5, from kiln's generator keyed by the seed and the name.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "base/status.h"
#include "formats/safetensors_write.h"
#include "models/sd_random.h"
#include "tokenizers/clip_tok.h"

typedef struct {
    const char *name;
    int text_hidden, text_layers, text_heads, text_ff;
    int unet_ch[4], unet_n, unet_layers, unet_heads, unet_groups, sample_size;
    bool unet_attn[4];
    int vae_ch[4], vae_layers, vae_groups;
} sd_shape;

static const sd_shape g_shapes[] = {
    {"sd15", 768, 12, 12, 3072, {320, 640, 1280, 1280}, 4, 2, 8, 32, 64, {true, true, true, false},
     {128, 256, 512, 512}, 2, 32},
    {"sd-tiny", 32, 2, 2, 64, {16, 32}, 2, 1, 2, 4, 8, {true, false}, {8, 8, 16, 16}, 1, 4},
};

bool kiln_sd_random_shape(const char *name) {
    for (size_t i = 0; i < sizeof g_shapes / sizeof g_shapes[0]; i++)
        if (name && !strcmp(name, g_shapes[i].name)) return true;
    return false;
}

/* ---- tensor lists ------------------------------------------------------------------- */

typedef struct {
    kiln_st_entry *e;
    float *scale; /* per entry: > 0 uniform ±scale; then offset */
    float *offset;
    char **names;
    size_t n, cap;
    kiln_dtype type;
    kiln_status st;
} specs;

static void add(specs *s, const char *name, int n_dims, const int64_t *shape, float scale, float offset) {
    if (s->st) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        kiln_st_entry *e = realloc(s->e, cap * sizeof *e);
        float *sc = e ? realloc(s->scale, cap * sizeof *sc) : NULL;
        float *of = sc ? realloc(s->offset, cap * sizeof *of) : NULL;
        char **nm = of ? realloc(s->names, cap * sizeof *nm) : NULL;
        if (e) s->e = e;
        if (sc) s->scale = sc;
        if (of) s->offset = of;
        if (nm) s->names = nm;
        if (!nm) {
            s->st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            return;
        }
        s->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        s->st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        return;
    }
    kiln_st_entry *e = &s->e[s->n];
    memset(e, 0, sizeof *e);
    e->name = copy;
    e->type = s->type;
    e->n_dims = n_dims;
    memcpy(e->shape, shape, sizeof(int64_t) * (size_t)n_dims);
    s->names[s->n] = copy;
    s->scale[s->n] = scale;
    s->offset[s->n++] = offset;
}

static void specs_free(specs *s) {
    for (size_t i = 0; i < s->n; i++) free(s->names[i]);
    free(s->e);
    free(s->scale);
    free(s->offset);
    free(s->names);
}

static void vec(specs *s, const char *p, const char *n, int c, float off, float scale) {
    char name[320];
    snprintf(name, sizeof name, "%s%s", p, n);
    add(s, name, 1, (int64_t[]){c}, scale, off);
}

static void norm(specs *s, const char *p, int c) {
    vec(s, p, ".weight", c, 1.0f, 0.0f);
    vec(s, p, ".bias", c, 0.0f, 0.0f);
}

static void linear(specs *s, const char *p, int in, int out, bool bias) {
    char name[320];
    snprintf(name, sizeof name, "%s.weight", p);
    add(s, name, 2, (int64_t[]){out, in}, 1.0f / sqrtf((float)in), 0.0f);
    if (bias) vec(s, p, ".bias", out, 0.0f, 0.02f);
}

static void conv(specs *s, const char *p, int in, int out, int k) {
    char name[320];
    snprintf(name, sizeof name, "%s.weight", p);
    add(s, name, 4, (int64_t[]){out, in, k, k}, 1.0f / sqrtf((float)(in * k * k)), 0.0f);
    vec(s, p, ".bias", out, 0.0f, 0.02f);
}

static void resnet(specs *s, const char *p, int in, int out, int temb) {
    char q[256];
    snprintf(q, sizeof q, "%snorm1", p), norm(s, q, in);
    snprintf(q, sizeof q, "%sconv1", p), conv(s, q, in, out, 3);
    if (temb) snprintf(q, sizeof q, "%stime_emb_proj", p), linear(s, q, temb, out, true);
    snprintf(q, sizeof q, "%snorm2", p), norm(s, q, out);
    snprintf(q, sizeof q, "%sconv2", p), conv(s, q, out, out, 3);
    if (in != out) snprintf(q, sizeof q, "%sconv_shortcut", p), conv(s, q, in, out, 1);
}

static void transformer(specs *s, const char *p, int c, int ctx) {
    char q[256];
    snprintf(q, sizeof q, "%snorm", p), norm(s, q, c);
    snprintf(q, sizeof q, "%sproj_in", p), conv(s, q, c, c, 1);
    for (int a = 1; a <= 2; a++) {
        snprintf(q, sizeof q, "%stransformer_blocks.0.norm%d", p, a), norm(s, q, c);
        static const char *const proj[] = {"to_q", "to_k", "to_v"};
        for (int k = 0; k < 3; k++) {
            snprintf(q, sizeof q, "%stransformer_blocks.0.attn%d.%s", p, a, proj[k]);
            linear(s, q, k && a == 2 ? ctx : c, c, false);
        }
        snprintf(q, sizeof q, "%stransformer_blocks.0.attn%d.to_out.0", p, a), linear(s, q, c, c, true);
    }
    snprintf(q, sizeof q, "%stransformer_blocks.0.norm3", p), norm(s, q, c);
    snprintf(q, sizeof q, "%stransformer_blocks.0.ff.net.0.proj", p), linear(s, q, c, 8 * c, true);
    snprintf(q, sizeof q, "%stransformer_blocks.0.ff.net.2", p), linear(s, q, 4 * c, c, true);
    snprintf(q, sizeof q, "%sproj_out", p), conv(s, q, c, c, 1);
}

static void unet_specs(specs *s, const sd_shape *h) {
    const int *ch = h->unet_ch, n = h->unet_n, L = h->unet_layers, temb = 4 * ch[0], ctx = h->text_hidden;
    char q[256];
    linear(s, "time_embedding.linear_1", ch[0], temb, true);
    linear(s, "time_embedding.linear_2", temb, temb, true);
    conv(s, "conv_in", 4, ch[0], 3);
    int out = ch[0];
    for (int i = 0; i < n; i++) {
        int in = out;
        out = ch[i];
        for (int j = 0; j < L; j++) {
            snprintf(q, sizeof q, "down_blocks.%d.resnets.%d.", i, j), resnet(s, q, j ? out : in, out, temb);
            if (h->unet_attn[i]) snprintf(q, sizeof q, "down_blocks.%d.attentions.%d.", i, j), transformer(s, q, out, ctx);
        }
        if (i < n - 1) snprintf(q, sizeof q, "down_blocks.%d.downsamplers.0.conv", i), conv(s, q, out, out, 3);
    }
    resnet(s, "mid_block.resnets.0.", ch[n - 1], ch[n - 1], temb);
    transformer(s, "mid_block.attentions.0.", ch[n - 1], ctx);
    resnet(s, "mid_block.resnets.1.", ch[n - 1], ch[n - 1], temb);
    int prev = ch[n - 1];
    for (int i = 0; i < n; i++) {
        const int r = n - 1 - i, o = ch[r], skip_in = ch[r ? r - 1 : 0];
        for (int j = 0; j <= L; j++) {
            snprintf(q, sizeof q, "up_blocks.%d.resnets.%d.", i, j);
            resnet(s, q, (j ? o : prev) + (j == L ? skip_in : o), o, temb);
            if (h->unet_attn[r]) snprintf(q, sizeof q, "up_blocks.%d.attentions.%d.", i, j), transformer(s, q, o, ctx);
        }
        if (i < n - 1) snprintf(q, sizeof q, "up_blocks.%d.upsamplers.0.conv", i), conv(s, q, o, o, 3);
        prev = o;
    }
    norm(s, "conv_norm_out", ch[0]);
    conv(s, "conv_out", ch[0], 4, 3);
}

static void vae_mid(specs *s, const char *half, int c) {
    char q[256];
    for (int i = 0; i < 2; i++) snprintf(q, sizeof q, "%s.mid_block.resnets.%d.", half, i), resnet(s, q, c, c, 0);
    snprintf(q, sizeof q, "%s.mid_block.attentions.0.group_norm", half), norm(s, q, c);
    static const char *const proj[] = {"to_q", "to_k", "to_v", "to_out.0"};
    for (int k = 0; k < 4; k++) snprintf(q, sizeof q, "%s.mid_block.attentions.0.%s", half, proj[k]), linear(s, q, c, c, true);
}

static void vae_specs(specs *s, const sd_shape *h) {
    const int *ch = h->vae_ch, n = 4, L = h->vae_layers;
    char q[256];
    conv(s, "encoder.conv_in", 3, ch[0], 3);
    int out = ch[0];
    for (int i = 0; i < n; i++) {
        int in = out;
        out = ch[i];
        for (int j = 0; j < L; j++) snprintf(q, sizeof q, "encoder.down_blocks.%d.resnets.%d.", i, j), resnet(s, q, j ? out : in, out, 0);
        if (i < n - 1) snprintf(q, sizeof q, "encoder.down_blocks.%d.downsamplers.0.conv", i), conv(s, q, out, out, 3);
    }
    vae_mid(s, "encoder", ch[n - 1]);
    norm(s, "encoder.conv_norm_out", ch[n - 1]);
    conv(s, "encoder.conv_out", ch[n - 1], 8, 3);
    conv(s, "quant_conv", 8, 8, 1);
    conv(s, "post_quant_conv", 4, 4, 1);
    conv(s, "decoder.conv_in", 4, ch[n - 1], 3);
    vae_mid(s, "decoder", ch[n - 1]);
    out = ch[n - 1];
    for (int i = 0; i < n; i++) {
        int in = out;
        out = ch[n - 1 - i];
        for (int j = 0; j <= L; j++) snprintf(q, sizeof q, "decoder.up_blocks.%d.resnets.%d.", i, j), resnet(s, q, j ? out : in, out, 0);
        if (i < n - 1) snprintf(q, sizeof q, "decoder.up_blocks.%d.upsamplers.0.conv", i), conv(s, q, out, out, 3);
    }
    norm(s, "decoder.conv_norm_out", ch[0]);
    conv(s, "decoder.conv_out", ch[0], 3, 3);
}

static void text_specs(specs *s, const sd_shape *h, int n_vocab) {
    const int d = h->text_hidden;
    char q[256];
    add(s, "text_model.embeddings.token_embedding.weight", 2, (int64_t[]){n_vocab, d}, 0.5f, 0.0f);
    add(s, "text_model.embeddings.position_embedding.weight", 2, (int64_t[]){77, d}, 0.2f, 0.0f);
    for (int l = 0; l < h->text_layers; l++) {
        static const char *const proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        snprintf(q, sizeof q, "text_model.encoder.layers.%d.layer_norm1", l), norm(s, q, d);
        for (int k = 0; k < 4; k++)
            snprintf(q, sizeof q, "text_model.encoder.layers.%d.self_attn.%s", l, proj[k]), linear(s, q, d, d, true);
        snprintf(q, sizeof q, "text_model.encoder.layers.%d.layer_norm2", l), norm(s, q, d);
        snprintf(q, sizeof q, "text_model.encoder.layers.%d.mlp.fc1", l), linear(s, q, d, h->text_ff, true);
        snprintf(q, sizeof q, "text_model.encoder.layers.%d.mlp.fc2", l), linear(s, q, h->text_ff, d, true);
    }
    norm(s, "text_model.final_layer_norm", d);
}

/* ---- writing ----------------------------------------------------------------------------- */

typedef struct {
    const specs *s;
    uint64_t seed;
} filler;

static kiln_status fill(void *user, size_t i, float *out, int64_t n) {
    const filler *f = user;
    uint64_t h = 0xCBF29CE484222325ull;
    for (const char *c = f->s->e[i].name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001B3ull;
    kiln_rng r;
    kiln_rng_seed(&r, f->seed ^ h);
    const float sc = f->s->scale[i], off = f->s->offset[i];
    for (int64_t k = 0; k < n; k++) out[k] = off + (sc ? sc * (2.0f * kiln_rng_f32(&r) - 1.0f) : 0.0f);
    return KILN_OK;
}

static kiln_status write_text(const char *dir, const char *file, const char *text) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "w");
    if (!f) return kiln_fail(KILN_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
    bool ok = fputs(text, f) >= 0;
    if (fclose(f) != 0) ok = false;
    return ok ? KILN_OK : kiln_fail(KILN_ERR_IO, "%s: write failed", p);
}

static kiln_status make_dir(const char *p) {
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return kiln_fail(KILN_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
    return KILN_OK;
}

/* The synthetic tokenizer: vocab.json and merges.txt; returns its size. */
static kiln_status write_tokenizer(const char *dir, int *n_vocab) {
    static const char letters[] = "etaoinshrdlucmfwypvbgkqjxz";
    char *vocab = malloc(1 << 20), *merges = malloc(1 << 18);
    if (!vocab || !merges) {
        free(vocab);
        free(merges);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    size_t vl = 0, ml = 0;
    int id = 0;
    vl += (size_t)sprintf(vocab + vl, "{");
    for (int w = 0; w < 2; w++) /* the byte symbols, then the same ending a word */
        for (int b = 0; b < 256; b++) {
            char sym[4];
            size_t k = kiln_clip_tok_byte_symbol(b, sym);
            const char *esc = sym[0] == '"' ? "\\\"" : sym[0] == '\\' ? "\\\\" : NULL;
            vl += (size_t)sprintf(vocab + vl, "%s\"%s%.*s%s\": %d", id ? ", " : "", esc ? esc : "", esc ? 0 : (int)k,
                                  sym, w ? "</w>" : "", id);
            id++;
        }
    ml += (size_t)sprintf(merges + ml, "#version: 0.2\n");
    for (int i = 0; i < 14; i++) /* pairs of frequent letters, inside and at the end of words */
        for (int j = 0; j < 14; j++)
            for (int w = 0; w < 2; w++) {
                char a = letters[i], b = letters[j];
                ml += (size_t)sprintf(merges + ml, "%c %c%s\n", a, b, w ? "</w>" : "");
                vl += (size_t)sprintf(vocab + vl, ", \"%c%c%s\": %d", a, b, w ? "</w>" : "", id++);
            }
    vl += (size_t)sprintf(vocab + vl, ", \"<|startoftext|>\": %d, \"<|endoftext|>\": %d}\n", id, id + 1);
    id += 2;
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer", dir);
    kiln_status st = make_dir(p);
    if (!st) st = write_text(p, "vocab.json", vocab);
    if (!st) st = write_text(p, "merges.txt", merges);
    if (!st)
        st = write_text(p, "special_tokens_map.json",
                        "{\"bos_token\": \"<|startoftext|>\", \"eos_token\": \"<|endoftext|>\", \"pad_token\": "
                        "\"<|endoftext|>\", \"unk_token\": \"<|endoftext|>\"}\n");
    free(vocab);
    free(merges);
    *n_vocab = id;
    return st;
}

static kiln_status write_part(const char *dir, const char *sub, const char *file, const char *config,
                              void (*make)(specs *, const sd_shape *), const sd_shape *h, int n_vocab,
                              const kiln_random_model_options *opt, kiln_dtype type) {
    char p[4200], f[4400];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    kiln_status st = make_dir(p);
    if (!st) st = write_text(p, "config.json", config);
    if (st) return st;
    specs s = {.type = type};
    if (make)
        make(&s, h);
    else
        text_specs(&s, h, n_vocab);
    if (!(st = s.st)) {
        snprintf(f, sizeof f, "%s/%s", p, file);
        filler fl = {&s, opt->seed};
        st = kiln_safetensors_write(f, s.e, s.n, fill, &fl);
    }
    specs_free(&s);
    if (!st && opt->progress) opt->progress(sub, 1, 1, opt->user);
    return st;
}

static void list(char *out, size_t n, const int *v, int k) {
    size_t l = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < k; i++) l += (size_t)snprintf(out + l, n - l, "%s%d", i ? ", " : "", v[i]);
    snprintf(out + l, n - l, "]");
}

kiln_status kiln_sd_random_write(const char *dir, const kiln_random_model_options *opt) {
    const sd_shape *h = NULL;
    for (size_t i = 0; i < sizeof g_shapes / sizeof g_shapes[0]; i++)
        if (!strcmp(opt->shape, g_shapes[i].name)) h = &g_shapes[i];
    if (!h) return kiln_fail(KILN_ERR_INVALID_ARG, "unknown Stable Diffusion shape '%s' (sd15, sd-tiny)", opt->shape);
    kiln_dtype type;
    const char *t = opt->type ? opt->type : "f16";
    if (!strcasecmp(t, "f32")) type = KILN_F32;
    else if (!strcasecmp(t, "f16")) type = KILN_F16;
    else if (!strcasecmp(t, "bf16")) type = KILN_BF16;
    else return kiln_fail(KILN_ERR_INVALID_ARG, "type '%s': a Stable Diffusion model is f32, f16 or bf16", t);
    kiln_status st = make_dir(dir);
    int n_vocab = 0;
    if (!st) st = write_tokenizer(dir, &n_vocab);
    char cfg[4096], ch[64], dn[256], up[256], vch[64];
    if (!st) {
        snprintf(cfg, sizeof cfg,
                 "{\"architectures\": [\"CLIPTextModel\"], \"model_type\": \"clip_text_model\", \"hidden_size\": %d, "
                 "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"intermediate_size\": %d, "
                 "\"vocab_size\": %d, \"max_position_embeddings\": 77, \"hidden_act\": \"quick_gelu\", "
                 "\"layer_norm_eps\": 1e-05, \"eos_token_id\": 2}\n",
                 h->text_hidden, h->text_layers, h->text_heads, h->text_ff, n_vocab);
        st = write_part(dir, "text_encoder", "model.safetensors", cfg, NULL, h, n_vocab, opt, type);
    }
    if (!st) {
        list(ch, sizeof ch, h->unet_ch, h->unet_n);
        size_t dl = (size_t)snprintf(dn, sizeof dn, "["), ul = (size_t)snprintf(up, sizeof up, "[");
        for (int i = 0; i < h->unet_n; i++) {
            dl += (size_t)snprintf(dn + dl, sizeof dn - dl, "%s\"%sDownBlock2D\"", i ? ", " : "", h->unet_attn[i] ? "CrossAttn" : "");
            ul += (size_t)snprintf(up + ul, sizeof up - ul, "%s\"%sUpBlock2D\"", i ? ", " : "",
                                   h->unet_attn[h->unet_n - 1 - i] ? "CrossAttn" : "");
        }
        snprintf(dn + dl, sizeof dn - dl, "]");
        snprintf(up + ul, sizeof up - ul, "]");
        snprintf(cfg, sizeof cfg,
                 "{\"_class_name\": \"UNet2DConditionModel\", \"in_channels\": 4, \"out_channels\": 4, "
                 "\"block_out_channels\": %s, \"layers_per_block\": %d, \"down_block_types\": %s, "
                 "\"up_block_types\": %s, \"cross_attention_dim\": %d, \"attention_head_dim\": %d, "
                 "\"norm_num_groups\": %d, \"norm_eps\": 1e-05, \"flip_sin_to_cos\": true, \"freq_shift\": 0, "
                 "\"sample_size\": %d, \"use_linear_projection\": false}\n",
                 ch, h->unet_layers, dn, up, h->text_hidden, h->unet_heads, h->unet_groups, h->sample_size);
        st = write_part(dir, "unet", "diffusion_pytorch_model.safetensors", cfg, unet_specs, h, 0, opt, type);
    }
    if (!st) {
        list(vch, sizeof vch, h->vae_ch, 4);
        snprintf(cfg, sizeof cfg,
                 "{\"_class_name\": \"AutoencoderKL\", \"in_channels\": 3, \"out_channels\": 3, \"latent_channels\": 4, "
                 "\"block_out_channels\": %s, \"layers_per_block\": %d, \"norm_num_groups\": %d, "
                 "\"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
                 "\"DownEncoderBlock2D\"], \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", "
                 "\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"], \"scaling_factor\": 0.18215, \"sample_size\": %d}\n",
                 vch, h->vae_layers, h->vae_groups, h->sample_size * 8);
        st = write_part(dir, "vae", "diffusion_pytorch_model.safetensors", cfg, vae_specs, h, 0, opt, type);
    }
    char sd[4200];
    snprintf(sd, sizeof sd, "%s/scheduler", dir);
    if (!st) st = make_dir(sd);
    if (!st)
        st = write_text(sd, "scheduler_config.json",
                        "{\"_class_name\": \"PNDMScheduler\", \"beta_start\": 0.00085, \"beta_end\": 0.012, "
                        "\"beta_schedule\": \"scaled_linear\", \"num_train_timesteps\": 1000, \"steps_offset\": 1, "
                        "\"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"clip_sample\": false, "
                        "\"prediction_type\": \"epsilon\"}\n");
    if (!st)
        st = write_text(dir, "model_index.json",
                        "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.30.0\", "
                        "\"scheduler\": [\"diffusers\", \"PNDMScheduler\"], \"text_encoder\": [\"transformers\", "
                        "\"CLIPTextModel\"], \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"], \"unet\": "
                        "[\"diffusers\", \"UNet2DConditionModel\"], \"vae\": [\"diffusers\", \"AutoencoderKL\"]}\n");
    return st;
}
