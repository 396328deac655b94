/*
 * clip_text_load.c — the CLIP text encoder's config (Hugging Face config.json, or
 * read from the tensors of a single-file checkpoint) and its weights bound by name.
 *
 * Two naming schemes, one column each in g_names: Hugging Face's CLIPTextModel
 * (diffusers' text_encoder/, and SD 1.x single files under
 * "cond_stage_model.transformer.") and OpenCLIP's (SD 2.x single files under
 * "cond_stage_model.model."), whose attention keeps q, k and v in one in_proj matrix
 * (rows q, then k, then v) and whose text projection is stored transposed (x @ P).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "clip_text_internal.h"
#include "kernels/kernels.h"

/* ---- config.json ----------------------------------------------------------------- */

kiln_status kiln_clip_text_config_json(const char *json, const char *what, kiln_clip_text_config *c) {
    memset(c, 0, sizeof *c);
    cJSON *root = kiln_json_parse_py(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return kiln_fail(KILN_ERR_FORMAT, "%s: not a JSON object", what);
    }
    const cJSON *j = root, *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (cJSON_IsObject(tc)) j = tc; /* a full CLIPConfig */
    kiln_status st = KILN_OK;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    const char *a = cJSON_IsString(act) ? act->valuestring : "quick_gelu"; /* CLIPTextConfig's default */
    if (!strcmp(a, "quick_gelu"))
        c->quick_gelu = true;
    else if (strcmp(a, "gelu"))
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: hidden_act '%.40s' is not supported (quick_gelu, gelu are)", what, a);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_eps");
    c->norm_eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-5f;
    if (!st && !(st = kiln_json_int(j, "hidden_size", true, 0, &c->n_embd, what)) &&
        !(st = kiln_json_int(j, "num_hidden_layers", true, 0, &c->n_layer, what)) &&
        !(st = kiln_json_int(j, "num_attention_heads", true, 0, &c->n_head, what)) &&
        !(st = kiln_json_int(j, "intermediate_size", true, 0, &c->n_ff, what)) &&
        !(st = kiln_json_int(j, "vocab_size", false, 49408, &c->n_vocab, what)))
        st = kiln_json_int(j, "max_position_embeddings", false, 77, &c->n_pos, what);
    if (!st) st = kiln_json_int(j, "eos_token_id", false, 2, &c->eos_id, what);
    /* projection_dim only matters with a text_projection tensor, which binding finds */
    cJSON_Delete(root);
    return st;
}

static kiln_status check_config(kiln_clip_text_config *c, const char *path) {
    if (c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 || c->n_ff <= 0 || c->n_vocab <= 0 || c->n_pos <= 0 ||
        c->n_embd > (1 << 16) || c->n_ff > (1 << 18) || c->n_layer > 1024 || c->n_head > c->n_embd ||
        c->n_vocab > (1 << 24) || c->n_pos > 4096)
        return kiln_fail(KILN_ERR_FORMAT,
                         "%s: implausible text encoder dimensions (hidden %d, layers %d, heads %d, ff %d, vocab %d, "
                         "positions %d)", path, c->n_embd, c->n_layer, c->n_head, c->n_ff, c->n_vocab, c->n_pos);
    if (c->n_embd % c->n_head)
        return kiln_fail(KILN_ERR_FORMAT, "%s: hidden size %d is not a multiple of %d heads", path, c->n_embd,
                         c->n_head);
    c->head_dim = c->n_embd / c->n_head;
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return kiln_fail(KILN_ERR_FORMAT, "%s: invalid layer norm epsilon", path);
    return KILN_OK;
}

/* ---- names ----------------------------------------------------------------------- */

enum {
    W_TOK, W_POS, W_FINAL_W, W_FINAL_B, W_PROJ,
    W_LN1_W, W_LN1_B, W_Q, W_BQ, W_K, W_BK, W_V, W_BV, W_QKV, W_BQKV, W_O, W_BO,
    W_LN2_W, W_LN2_B, W_FC1, W_BFC1, W_FC2, W_BFC2,
    W_COUNT
};

#define HF_L "text_model.encoder.layers.%d."
#define OC_L "transformer.resblocks.%d."
/* Per-layer names take the layer index through %d; NULL: the scheme has no such tensor. */
static const char *const g_names[2][W_COUNT] = {
    [KILN_CLIP_NAMES_HF] = {"text_model.embeddings.token_embedding.weight",
                            "text_model.embeddings.position_embedding.weight", "text_model.final_layer_norm.weight",
                            "text_model.final_layer_norm.bias", "text_projection.weight", HF_L "layer_norm1.weight",
                            HF_L "layer_norm1.bias", HF_L "self_attn.q_proj.weight", HF_L "self_attn.q_proj.bias",
                            HF_L "self_attn.k_proj.weight", HF_L "self_attn.k_proj.bias",
                            HF_L "self_attn.v_proj.weight", HF_L "self_attn.v_proj.bias", NULL, NULL,
                            HF_L "self_attn.out_proj.weight", HF_L "self_attn.out_proj.bias",
                            HF_L "layer_norm2.weight", HF_L "layer_norm2.bias", HF_L "mlp.fc1.weight",
                            HF_L "mlp.fc1.bias", HF_L "mlp.fc2.weight", HF_L "mlp.fc2.bias"},
    [KILN_CLIP_NAMES_OPENCLIP] = {"token_embedding.weight", "positional_embedding", "ln_final.weight",
                                  "ln_final.bias", "text_projection", OC_L "ln_1.weight", OC_L "ln_1.bias", NULL,
                                  NULL, NULL, NULL, NULL, NULL, OC_L "attn.in_proj_weight", OC_L "attn.in_proj_bias",
                                  OC_L "attn.out_proj.weight", OC_L "attn.out_proj.bias", OC_L "ln_2.weight",
                                  OC_L "ln_2.bias", OC_L "mlp.c_fc.weight", OC_L "mlp.c_fc.bias",
                                  OC_L "mlp.c_proj.weight", OC_L "mlp.c_proj.bias"},
};

typedef struct {
    kiln_clip_text *m;
    const kiln_weight_list *w;
    const char *prefix, *path;
    kiln_clip_names names;
} binder;

static const kiln_tensor *lookup(const binder *b, int role, int layer, char *name, size_t n) {
    int k = snprintf(name, n, "%s", b->prefix);
    if (k < 0 || (size_t)k >= n) k = 0;
    snprintf(name + k, n - (size_t)k, g_names[b->names][role], layer);
    return kiln_weights_find(b->w, name);
}

static kiln_status bind_matrix(const binder *b, int role, int layer, int64_t in, int64_t out,
                               const kiln_tensor **dst) {
    char name[320];
    *dst = lookup(b, role, layer, name, sizeof name);
    return kiln_bind_matrix_check(*dst, b->path, name, in, out);
}

static kiln_status bind_vector(const binder *b, int role, int layer, int64_t n, const float **dst) {
    char name[320];
    const kiln_tensor *t = lookup(b, role, layer, name, sizeof name);
    return kiln_bind_vector_copy(t, b->path, name, n, &b->m->owned, dst);
}

/* OpenCLIP's in_proj: one (3d, d) matrix and a 3d bias, split into row views. */
static kiln_status bind_fused_qkv(const binder *b, int l, kiln_clip_layer *L) {
    int64_t d = b->m->cfg.n_embd;
    const kiln_tensor *t;
    const float *bias;
    kiln_status st = bind_matrix(b, W_QKV, l, d, 3 * d, &t);
    if (st || (st = bind_vector(b, W_BQKV, l, 3 * d, &bias))) return st;
    const kiln_tensor **dst[] = {&L->wq, &L->wk, &L->wv};
    const float **bdst[] = {&L->bq, &L->bk, &L->bv};
    for (int i = 0; i < 3; i++) {
        L->qkv_rows[i] = *t;
        L->qkv_rows[i].ne[1] = d;
        L->qkv_rows[i].data = (const uint8_t *)t->data + (size_t)i * (size_t)d * t->nb[1];
        *dst[i] = &L->qkv_rows[i];
        *bdst[i] = bias + i * d;
    }
    return KILN_OK;
}

static kiln_status bind_layer(const binder *b, int l) {
    const kiln_clip_text_config *c = &b->m->cfg;
    kiln_clip_layer *L = &b->m->layers[l];
    int64_t d = c->n_embd, ff = c->n_ff;
    kiln_status st;
    if ((st = bind_vector(b, W_LN1_W, l, d, &L->ln1_w)) || (st = bind_vector(b, W_LN1_B, l, d, &L->ln1_b)))
        return st;
    if (b->names == KILN_CLIP_NAMES_OPENCLIP)
        st = bind_fused_qkv(b, l, L);
    else if ((st = bind_matrix(b, W_Q, l, d, d, &L->wq)) || (st = bind_vector(b, W_BQ, l, d, &L->bq)) ||
             (st = bind_matrix(b, W_K, l, d, d, &L->wk)) || (st = bind_vector(b, W_BK, l, d, &L->bk)) ||
             (st = bind_matrix(b, W_V, l, d, d, &L->wv)) || (st = bind_vector(b, W_BV, l, d, &L->bv)))
        return st;
    if (st || (st = bind_matrix(b, W_O, l, d, d, &L->wo)) || (st = bind_vector(b, W_BO, l, d, &L->bo)) ||
        (st = bind_vector(b, W_LN2_W, l, d, &L->ln2_w)) || (st = bind_vector(b, W_LN2_B, l, d, &L->ln2_b)) ||
        (st = bind_matrix(b, W_FC1, l, d, ff, &L->w_fc1)) || (st = bind_vector(b, W_BFC1, l, ff, &L->b_fc1)) ||
        (st = bind_matrix(b, W_FC2, l, ff, d, &L->w_fc2)) || (st = bind_vector(b, W_BFC2, l, d, &L->b_fc2)))
        return st;
    return KILN_OK;
}

/* The text projection, if the file has one. Hugging Face's is a Linear weight (ne =
 * [n_embd, proj]); OpenCLIP's is the matrix x is multiplied by (ne = [proj, n_embd]),
 * kept here as an f32 transposed copy so both multiply the same way. */
static kiln_status bind_projection(const binder *b) {
    kiln_clip_text *m = b->m;
    char name[320];
    const kiln_tensor *t = lookup(b, W_PROJ, 0, name, sizeof name);
    int64_t d = m->cfg.n_embd;
    m->cfg.proj_dim = 0;
    if (!t) return KILN_OK;
    if (b->names == KILN_CLIP_NAMES_HF) {
        if (t->ne[0] != d || t->ne[1] <= 0 || t->ne[1] > (1 << 16))
            return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' does not take %lld inputs", b->path, name,
                             (long long)d);
        m->cfg.proj_dim = (int)t->ne[1];
        m->proj = t;
        return kiln_bind_matrix_check(t, b->path, name, d, t->ne[1]);
    }
    if (t->ne[1] != d || t->ne[0] <= 0 || t->ne[0] > (1 << 16) || t->ne[2] != 1 || t->ne[3] != 1)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' does not take %lld inputs", b->path, name, (long long)d);
    int64_t p = t->ne[0];
    float *row = kiln_malloc_array((size_t)p, sizeof *row), *tr = kiln_malloc_array((size_t)(p * d), sizeof *tr);
    kiln_status st = row && tr ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < d && !st; i++) { /* row i of P is input i's weight to every output */
        st = kiln_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)i * t->nb[1], row, p);
        for (int64_t j = 0; j < p && !st; j++) tr[j * d + i] = row[j];
    }
    free(row);
    if (!st) st = kiln_owned_floats_keep(&m->owned, tr);
    if (st) {
        free(tr);
        return kiln_fail_prefix(st, "%s: tensor '%s'", b->path, name);
    }
    kiln_tensor *pt = &m->proj_t;
    memset(pt, 0, sizeof *pt);
    pt->type = KILN_F32;
    pt->n_dims = 2;
    pt->ne[0] = d;
    pt->ne[1] = p;
    pt->ne[2] = pt->ne[3] = 1;
    size_t total;
    kiln_tensor_set_contiguous(pt, &total);
    pt->data = tr;
    m->proj = pt;
    m->cfg.proj_dim = (int)p;
    return KILN_OK;
}

/* A single file says nothing of its encoder's shape: read it from the tensors. */
static kiln_status infer_config(const binder *b) {
    kiln_clip_text_config *c = &b->m->cfg;
    char name[320];
    const kiln_tensor *tok = lookup(b, W_TOK, 0, name, sizeof name);
    if (!tok) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s'", b->path, name);
    const kiln_tensor *pos = lookup(b, W_POS, 0, name, sizeof name);
    if (!pos) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s'", b->path, name);
    const kiln_tensor *fc1 = lookup(b, W_FC1, 0, name, sizeof name);
    if (!fc1) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s'", b->path, name);
    if (tok->ne[0] > INT32_MAX || tok->ne[1] > INT32_MAX || pos->ne[1] > INT32_MAX || fc1->ne[1] > INT32_MAX)
        return kiln_fail(KILN_ERR_FORMAT, "%s: implausible text encoder tensor shapes", b->path);
    memset(c, 0, sizeof *c);
    c->n_embd = (int)tok->ne[0];
    c->n_vocab = (int)tok->ne[1];
    c->n_pos = (int)pos->ne[1];
    c->n_ff = (int)fc1->ne[1];
    c->n_head = c->n_embd >= 64 ? c->n_embd / 64 : 1; /* CLIP's text towers use 64-wide heads */
    while (c->n_layer < 1024 && lookup(b, W_LN1_W, c->n_layer, name, sizeof name)) c->n_layer++;
    c->norm_eps = 1e-5f;
    c->quick_gelu = b->names == KILN_CLIP_NAMES_HF; /* OpenAI CLIP; OpenCLIP's towers use gelu */
    c->eos_id = c->n_vocab - 1; /* CLIP's end-of-text token is its vocabulary's last (49407) */
    return KILN_OK;
}

kiln_status kiln_clip_text_bind(kiln_clip_text *m, const kiln_weight_list *w, const char *prefix,
                                kiln_clip_names names, bool infer, const char *path) {
    if (names != KILN_CLIP_NAMES_HF && names != KILN_CLIP_NAMES_OPENCLIP)
        return kiln_fail(KILN_ERR_INVALID_ARG, "unknown CLIP naming scheme");
    binder b = {m, w, prefix ? prefix : "", path ? path : "(weights)", names};
    kiln_status st;
    if (infer && (st = infer_config(&b))) return st;
    if ((st = check_config(&m->cfg, b.path))) return st;
    const kiln_clip_text_config *c = &m->cfg;
    char name[320];
    m->tok_embd = lookup(&b, W_TOK, 0, name, sizeof name);
    if ((st = kiln_bind_table_check(m->tok_embd, b.path, name, c->n_embd, c->n_vocab))) return st;
    m->pos_embd = lookup(&b, W_POS, 0, name, sizeof name);
    if ((st = kiln_bind_table_check(m->pos_embd, b.path, name, c->n_embd, c->n_pos))) return st;
    if ((st = bind_vector(&b, W_FINAL_W, 0, c->n_embd, &m->final_w)) ||
        (st = bind_vector(&b, W_FINAL_B, 0, c->n_embd, &m->final_b)))
        return st;
    m->layers = kiln_calloc_array((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->n_layer; l++)
        if ((st = bind_layer(&b, l))) return st;
    return bind_projection(&b);
}
