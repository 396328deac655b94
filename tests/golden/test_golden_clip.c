/*
 * test_golden_clip.c — kiln's CLIP text encoder against gen_clip.py's float64
 * PyTorch reference (CLIPTextModel, OpenCLIP's text tower).
 *
 * For each data/clip_<case>/: make the listed tensors with the shared generator
 * (golden.h), write them as the case's file kind (a diffusers text_encoder/ folder
 * with config.json, or a single-file checkpoint under its prefix, next to tensors of
 * other parts that must be ignored), bind, and compare the states for each clip skip
 * and the pooled vectors. Also: 1 vs 2 threads bit for bit, a sequence alone equals
 * it in a batch, and bad ids, sizes, missing or misshapen tensors refused.
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
#include "models/clip_text.h"
#include "test.h"

static const char *const g_cases[] = {"hf_sd1_f32", "ldm_sd1_f16", "openclip_sd2_bf16"};

typedef struct {
    cJSON *j;
    const char *name, *kind, *type, *naming, *prefix, *act;
    int seed, n_seq, len, final_norm, hidden, layers, heads, ff, vocab, positions, eos, proj;
    int skips[4], n_skips;
    double tol;
    int32_t *ids;
} clip_case;

static const char *jstr(const cJSON *j, const char *k) { return cJSON_GetObjectItemCaseSensitive(j, k)->valuestring; }
static int jint(const cJSON *j, const char *k) { return cJSON_GetObjectItemCaseSensitive(j, k)->valueint; }

static int read_case(const char *dir, clip_case *c) {
    char p[2200], *txt = NULL;
    snprintf(p, sizeof p, "%s/case.json", dir);
    if (kiln_read_file(p, 1 << 22, &txt, NULL)) return -1;
    c->j = cJSON_Parse(txt);
    free(txt);
    if (!c->j) return -1;
    const cJSON *j = c->j;
    c->name = jstr(j, "name"), c->kind = jstr(j, "kind"), c->type = jstr(j, "type");
    c->naming = jstr(j, "naming"), c->prefix = jstr(j, "prefix"), c->act = jstr(j, "act");
    c->seed = jint(j, "seed"), c->n_seq = jint(j, "n_seq"), c->len = jint(j, "len");
    c->final_norm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "final_norm"));
    c->hidden = jint(j, "hidden"), c->layers = jint(j, "layers"), c->heads = jint(j, "heads"), c->ff = jint(j, "ff");
    c->vocab = jint(j, "vocab"), c->positions = jint(j, "positions"), c->eos = jint(j, "eos"), c->proj = jint(j, "proj");
    c->tol = cJSON_GetObjectItemCaseSensitive(j, "tolerance")->valuedouble;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "skips")) if (c->n_skips < 4) c->skips[c->n_skips++] = it->valueint;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
    c->ids = malloc((size_t)cJSON_GetArraySize(ids) * sizeof *c->ids);
    if (!c->ids) abort();
    int n = 0;
    cJSON_ArrayForEach(it, ids) c->ids[n++] = it->valueint;
    return n == c->n_seq * c->len ? 0 : -1;
}

/* The case's tensors (golden.h); a single file also holds a tensor of another part. */
static void write_weights(const clip_case *c, const char *path, const char *skip_name, const char *bad_shape) {
    static const float other[4] = {1, 2, 3, 4};
    const kiln_test_tensor extra = {"model.diffusion_model.out.2.bias", 1, {4}, other};
    kiln_test_write_case_tensors(path, cJSON_GetObjectItemCaseSensitive(c->j, "tensors"), c->prefix, (uint64_t)c->seed,
                                 c->type, &extra, !strcmp(c->kind, "single"), skip_name, bad_shape);
}

static char *config_json(const clip_case *c) {
    char *s = malloc(1024);
    if (!s) abort();
    snprintf(s, 1024,
             "{\"architectures\": [\"CLIPTextModel\"], \"model_type\": \"clip_text_model\", \"hidden_size\": %d, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"intermediate_size\": %d, \"vocab_size\": %d, "
             "\"max_position_embeddings\": %d, \"hidden_act\": \"%s\", \"layer_norm_eps\": 1e-05, "
             "\"bos_token_id\": 0, \"eos_token_id\": %d, \"pad_token_id\": 1, \"projection_dim\": 768}",
             c->hidden, c->layers, c->heads, c->ff, c->vocab, c->positions, c->act, c->eos);
    return s;
}

typedef struct {
    kiln_safetensors *st;
    kiln_clip_text *m;
    kiln_pool *pool;
} loaded;

static kiln_status load(const clip_case *c, const char *path, int threads, loaded *out) {
    memset(out, 0, sizeof *out);
    kiln_status st = kiln_pool_create(threads, &out->pool);
    if (!st) st = kiln_safetensors_open(path, &out->st);
    if (st) return st;
    kiln_clip_text_config cfg, *pc = NULL;
    if (!strcmp(c->kind, "folder")) {
        char *json = config_json(c);
        st = kiln_clip_text_config_json(json, "config.json", &cfg);
        free(json);
        if (st) return st;
        pc = &cfg;
    }
    kiln_clip_names names = !strcmp(c->naming, "hf") ? KILN_CLIP_NAMES_HF : KILN_CLIP_NAMES_OPENCLIP;
    return kiln_clip_text_create(kiln_safetensors_weights(out->st), c->prefix, names, pc, path, out->pool, &out->m);
}

static void unload(loaded *l) {
    kiln_clip_text_free(l->m);
    kiln_safetensors_close(l->st);
    kiln_pool_free(l->pool);
}

static void bad_inputs(loaded *l, const clip_case *c, float *out) {
    int32_t ids[4] = {0, 1, c->vocab, 2};
    CHECK(kiln_clip_text_forward(l->m, ids, 1, 4, 1, true, out, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "vocabulary") != NULL);
    ids[2] = -1;
    CHECK(kiln_clip_text_forward(l->m, ids, 1, 4, 1, true, out, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_clip_text_forward(l->m, c->ids, 1, c->positions + 1, 1, true, out, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_clip_text_forward(l->m, c->ids, 0, 4, 1, true, out, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_clip_text_forward(l->m, c->ids, 1, 4, 0, true, out, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_clip_text_forward(l->m, c->ids, 1, 4, c->layers + 1, true, out, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "clip skip") != NULL);
}

/* Missing and misshapen tensors: a clear error naming the tensor, nothing bound. */
static void broken_files(const clip_case *c, const char *path) {
    const char *mlp = !strcmp(c->naming, "hf") ? "text_model.encoder.layers.1.mlp.fc2.weight"
                                               : "transformer.resblocks.1.mlp.c_proj.weight";
    const char *attn = !strcmp(c->naming, "hf") ? "text_model.encoder.layers.0.self_attn.k_proj.weight"
                                                : "transformer.resblocks.0.attn.in_proj_weight";
    const char *cases[][2] = {{mlp, NULL}, {NULL, attn}, {NULL, mlp}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_weights(c, path, cases[i][0], cases[i][1]);
        loaded l;
        kiln_status st = load(c, path, 1, &l);
        const char *needle = cases[i][0] ? cases[i][0] : cases[i][1];
        CHECK_MSG(st == KILN_ERR_FORMAT && !l.m && strstr(kiln_last_error(), needle), "%s: %s: %s", c->name,
                  kiln_status_name(st), kiln_last_error());
        unload(&l);
    }
}

static void run_case(const char *data, const char *name) {
    char dir[2100], path[2048], tmp[96];
    snprintf(dir, sizeof dir, "%s/clip_%s", data, name);
    clip_case c = {0};
    if (read_case(dir, &c)) {
        CHECK_MSG(0, "%s: unreadable case", dir);
        return;
    }
    snprintf(tmp, sizeof tmp, "golden_clip_%ld_%s.safetensors", (long)getpid(), name);
    kiln_test_tmp_path(path, sizeof path, tmp);
    write_weights(&c, path, NULL, NULL);

    const size_t d = (size_t)c.hidden, T = (size_t)c.n_seq * (size_t)c.len;
    const size_t pd = c.proj ? (size_t)c.proj : d, want = (c.n_skips * T * d + (size_t)c.n_seq * pd) * sizeof(float);
    char p[2200], *exp = NULL;
    size_t exp_len = 0;
    snprintf(p, sizeof p, "%s/expected.f32", dir);
    CHECK_OK(kiln_read_file(p, 1 << 26, &exp, &exp_len));
    CHECK_MSG(exp_len == want, "%s: %zu bytes, expected %zu", p, exp_len, want);
    loaded l2, l1;
    kiln_status s2 = load(&c, path, 2, &l2), s1 = load(&c, path, 1, &l1);
    CHECK_MSG(!s2 && !s1, "%s: %s", name, kiln_last_error());
    float *h = malloc(T * d * sizeof *h), *h1 = malloc(T * d * sizeof *h1), *pooled = malloc(c.n_seq * pd * 4);
    float *alone = malloc((size_t)c.len * d * sizeof *alone), *pooled1 = malloc(pd * sizeof *pooled1);
    if (!h || !h1 || !pooled || !alone || !pooled1) abort();
    if (!s2 && !s1 && exp_len == want) {
        const kiln_clip_text_config *cfg = kiln_clip_text_get_config(l2.m);
        CHECK(cfg->n_embd == c.hidden && cfg->n_layer == c.layers && cfg->n_head == c.heads && cfg->n_ff == c.ff);
        CHECK(cfg->n_vocab == c.vocab && cfg->n_pos == c.positions && cfg->proj_dim == c.proj);
        CHECK(cfg->quick_gelu == !strcmp(c.act, "quick_gelu") && cfg->eos_id == c.eos);
        const float *ref = (const float *)exp;
        double worst = 0;
        bool exact = true;
        for (int k = 0; k < c.n_skips; k++, ref += T * d) {
            bool last = k == c.n_skips - 1;
            CHECK_OK(kiln_clip_text_forward(l2.m, c.ids, c.n_seq, c.len, c.skips[k], c.final_norm, h,
                                            last ? pooled : NULL));
            CHECK_OK(kiln_clip_text_forward(l1.m, c.ids, c.n_seq, c.len, c.skips[k], c.final_norm, h1, NULL));
            exact = exact && !memcmp(h, h1, T * d * sizeof *h);
            double e = kiln_test_rel_err(h, ref, T * d);
            CHECK_MSG(e <= c.tol, "%s skip %d: states relative error %.3g > %.3g", name, c.skips[k], e, c.tol);
            worst = e > worst ? e : worst;
            for (int s = 0; s < c.n_seq; s++) { /* each sequence alone gets its bits in the batch */
                CHECK_OK(kiln_clip_text_forward(l1.m, c.ids + (size_t)s * c.len, 1, c.len, c.skips[k], c.final_norm,
                                                alone, last ? pooled1 : NULL));
                CHECK_MSG(!memcmp(alone, h + (size_t)s * c.len * d, (size_t)c.len * d * sizeof *alone),
                          "%s seq %d: alone differs from the batch", name, s);
                if (last) CHECK(!memcmp(pooled1, pooled + (size_t)s * pd, pd * sizeof *pooled1));
            }
        }
        double ep = kiln_test_rel_err(pooled, ref, (size_t)c.n_seq * pd);
        CHECK_MSG(ep <= c.tol, "%s: pooled relative error %.3g > %.3g", name, ep, c.tol);
        CHECK_MSG(exact, "%s: 1 and 2 threads differ", name);
        printf("%-18s %-6s %-4s %-8s states %.2e pooled %.2e (tolerance %.0e); threads and batch bit-identical\n",
               name, c.kind, c.type, c.naming, worst, ep, c.tol);
        bad_inputs(&l2, &c, h);
    }
    unload(&l2);
    unload(&l1);
    broken_files(&c, path);
    unlink(path);
    free(h);
    free(h1);
    free(pooled);
    free(pooled1);
    free(alone);
    free(exp);
    free(c.ids);
    cJSON_Delete(c.j);
}

/* config.json values kiln cannot run are refused by name. */
static void bad_configs(void) {
    kiln_clip_text_config c;
    CHECK(kiln_clip_text_config_json("[1]", "x", &c) == KILN_ERR_FORMAT);
    CHECK(kiln_clip_text_config_json("{\"hidden_act\": \"relu\", \"hidden_size\": 8}", "x", &c) ==
          KILN_ERR_UNSUPPORTED);
    CHECK(strstr(kiln_last_error(), "relu") != NULL);
    CHECK(kiln_clip_text_config_json("{\"hidden_size\": 64}", "cfg.json", &c) == KILN_ERR_FORMAT);
    CHECK(strstr(kiln_last_error(), "num_hidden_layers") != NULL);
    CHECK_OK(kiln_clip_text_config_json("{\"text_config\": {\"hidden_size\": 64, \"num_hidden_layers\": 2, "
                                        "\"num_attention_heads\": 4, \"intermediate_size\": 128}}", "x", &c));
    CHECK(c.n_embd == 64 && c.n_layer == 2 && c.quick_gelu && c.n_pos == 77 && c.n_vocab == 49408 && c.eos_id == 2);
}

int main(void) {
    char data[1900];
    snprintf(data, sizeof data, "%s/tests/golden/data", getenv("KILN_SRC") ? getenv("KILN_SRC") : ".");
    for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++) run_case(data, g_cases[i]);
    bad_configs();
    TEST_MAIN_END();
}
