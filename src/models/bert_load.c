/*
 * bert_load.c — reads a BERT config from GGUF metadata or a Hugging Face folder
 * (config.json plus the sentence-transformers files that say how to pool) and binds
 * the weights by name.
 *
 * Tensor names stay the upstream ones: one column per file kind in g_names. Hugging
 * Face checkpoints saved from BertFor* heads prefix every name with "bert.", which is
 * detected. Every bound tensor's type and shape is checked against the config.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/mapfile.h"
#include "base/status.h"
#include "bert_internal.h"
#include "kernels/kernels.h"

/* ---- names --------------------------------------------------------------------- */

enum { SRC_GGUF, SRC_HF, SRC_COUNT };

enum {
    W_TOK, W_POS, W_TYPE, W_EMB_NORM_W, W_EMB_NORM_B,
    W_Q, W_BQ, W_K, W_BK, W_V, W_BV, W_O, W_BO, W_ATTN_NORM_W, W_ATTN_NORM_B,
    W_UP, W_BUP, W_DOWN, W_BDOWN, W_OUT_NORM_W, W_OUT_NORM_B,
    W_COUNT
};

/* Per-layer names take the layer index through %d. */
static const char *const g_names[SRC_COUNT][W_COUNT] = {
    [SRC_GGUF] = {"token_embd.weight", "position_embd.weight", "token_types.weight", "token_embd_norm.weight",
                  "token_embd_norm.bias", "blk.%d.attn_q.weight", "blk.%d.attn_q.bias", "blk.%d.attn_k.weight",
                  "blk.%d.attn_k.bias", "blk.%d.attn_v.weight", "blk.%d.attn_v.bias", "blk.%d.attn_output.weight",
                  "blk.%d.attn_output.bias", "blk.%d.attn_output_norm.weight", "blk.%d.attn_output_norm.bias",
                  "blk.%d.ffn_up.weight", "blk.%d.ffn_up.bias", "blk.%d.ffn_down.weight", "blk.%d.ffn_down.bias",
                  "blk.%d.layer_output_norm.weight", "blk.%d.layer_output_norm.bias"},
    [SRC_HF] = {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
                "encoder.layer.%d.attention.self.query.weight", "encoder.layer.%d.attention.self.query.bias",
                "encoder.layer.%d.attention.self.key.weight", "encoder.layer.%d.attention.self.key.bias",
                "encoder.layer.%d.attention.self.value.weight", "encoder.layer.%d.attention.self.value.bias",
                "encoder.layer.%d.attention.output.dense.weight", "encoder.layer.%d.attention.output.dense.bias",
                "encoder.layer.%d.attention.output.LayerNorm.weight",
                "encoder.layer.%d.attention.output.LayerNorm.bias", "encoder.layer.%d.intermediate.dense.weight",
                "encoder.layer.%d.intermediate.dense.bias", "encoder.layer.%d.output.dense.weight",
                "encoder.layer.%d.output.dense.bias", "encoder.layer.%d.output.LayerNorm.weight",
                "encoder.layer.%d.output.LayerNorm.bias"},
};

typedef struct {
    kiln_bert *m;
    int src;
    const char *prefix; /* "" or "bert." */
    const char *path;
} binder;

static const kiln_tensor *lookup(const binder *b, int role, int layer, char *name, size_t n) {
    int k = snprintf(name, n, "%s", b->prefix);
    snprintf(name + k, n - (size_t)k, g_names[b->src][role], layer);
    if (b->m->gguf) {
        const kiln_gguf_tensor *t = kiln_gguf_find_tensor(b->m->gguf, name);
        return t ? &t->t : NULL;
    }
    return kiln_weights_find(kiln_safetensors_weights(b->m->st), name);
}

static kiln_status bind_matrix(const binder *b, int role, int layer, int64_t in, int64_t out,
                               const kiln_tensor **dst) {
    char name[160];
    *dst = lookup(b, role, layer, name, sizeof name);
    return kiln_bind_matrix_check(*dst, b->path, name, in, out);
}

static kiln_status bind_vector(const binder *b, int role, int layer, int64_t n, const float **dst) {
    char name[160];
    const kiln_tensor *t = lookup(b, role, layer, name, sizeof name);
    return kiln_bind_vector_copy(t, b->path, name, n, &b->m->owned, dst);
}

static kiln_status bind_table(const binder *b, int role, int64_t rows, const kiln_tensor **dst) {
    char name[160];
    *dst = lookup(b, role, 0, name, sizeof name);
    return kiln_bind_table_check(*dst, b->path, name, b->m->cfg.n_embd, rows);
}

static kiln_status bind_all(binder *b) {
    kiln_bert *m = b->m;
    const kiln_bert_config *c = &m->cfg;
    int64_t d = c->n_embd, ff = c->n_ff;
    kiln_status st;
    if ((st = bind_table(b, W_TOK, c->n_vocab, &m->tok_embd)) || (st = bind_table(b, W_POS, c->n_pos, &m->pos_embd)) ||
        (st = bind_table(b, W_TYPE, c->n_types, &m->type_embd)) ||
        (st = bind_vector(b, W_EMB_NORM_W, 0, d, &m->embd_norm_w)) ||
        (st = bind_vector(b, W_EMB_NORM_B, 0, d, &m->embd_norm_b)))
        return st;
    m->layers = kiln_calloc_array((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->n_layer; l++) {
        kiln_bert_layer *L = &m->layers[l];
        if ((st = bind_matrix(b, W_Q, l, d, d, &L->wq)) || (st = bind_vector(b, W_BQ, l, d, &L->bq)) ||
            (st = bind_matrix(b, W_K, l, d, d, &L->wk)) || (st = bind_vector(b, W_BK, l, d, &L->bk)) ||
            (st = bind_matrix(b, W_V, l, d, d, &L->wv)) || (st = bind_vector(b, W_BV, l, d, &L->bv)) ||
            (st = bind_matrix(b, W_O, l, d, d, &L->wo)) || (st = bind_vector(b, W_BO, l, d, &L->bo)) ||
            (st = bind_vector(b, W_ATTN_NORM_W, l, d, &L->attn_norm_w)) ||
            (st = bind_vector(b, W_ATTN_NORM_B, l, d, &L->attn_norm_b)) ||
            (st = bind_matrix(b, W_UP, l, d, ff, &L->w_up)) || (st = bind_vector(b, W_BUP, l, ff, &L->b_up)) ||
            (st = bind_matrix(b, W_DOWN, l, ff, d, &L->w_down)) || (st = bind_vector(b, W_BDOWN, l, d, &L->b_down)) ||
            (st = bind_vector(b, W_OUT_NORM_W, l, d, &L->out_norm_w)) ||
            (st = bind_vector(b, W_OUT_NORM_B, l, d, &L->out_norm_b)))
            return st;
    }
    return KILN_OK;
}

/* ---- config checks --------------------------------------------------------------- */

static kiln_status check_config(kiln_bert_config *c, const char *path) {
    if (c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 || c->n_ff <= 0 || c->n_vocab <= 0 || c->n_pos <= 0 ||
        c->n_types <= 0 || c->n_embd > (1 << 16) || c->n_ff > (1 << 18) || c->n_layer > 1024 ||
        c->n_head > c->n_embd || c->n_vocab > (1 << 24) || c->n_pos > (1 << 16) || c->n_types > (1 << 16))
        return kiln_fail(KILN_ERR_FORMAT,
                         "%s: implausible model dimensions (hidden %d, layers %d, heads %d, ff %d, vocab %d, positions "
                         "%d, types %d)", path, c->n_embd, c->n_layer, c->n_head, c->n_ff, c->n_vocab, c->n_pos,
                         c->n_types);
    if (c->n_embd % c->n_head)
        return kiln_fail(KILN_ERR_FORMAT, "%s: hidden size %d is not a multiple of %d heads", path, c->n_embd,
                         c->n_head);
    c->head_dim = c->n_embd / c->n_head;
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return kiln_fail(KILN_ERR_FORMAT, "%s: invalid layer norm epsilon", path);
    if (c->max_tokens <= 0 || c->max_tokens > c->n_pos) c->max_tokens = c->n_pos;
    return KILN_OK;
}

/* ---- GGUF ------------------------------------------------------------------------ */

static kiln_status gguf_int(const kiln_gguf *g, const char *key, bool required, int64_t dflt, int *out,
                            const char *path) {
    int64_t v = dflt;
    if (kiln_gguf_find(g, key)) {
        if (!kiln_gguf_get_i64(g, key, &v))
            return kiln_fail(KILN_ERR_FORMAT, "%s: metadata '%s' is not a single integer", path, key);
    } else if (required) {
        return kiln_fail(KILN_ERR_FORMAT, "%s: missing metadata '%s'", path, key);
    }
    if (v < 0 || v > INT32_MAX) return kiln_fail(KILN_ERR_FORMAT, "%s: metadata '%s' out of range", path, key);
    *out = (int)v;
    return KILN_OK;
}

static int64_t tensor_rows(const kiln_gguf *g, const char *name) {
    const kiln_gguf_tensor *t = kiln_gguf_find_tensor(g, name);
    return t && t->t.ne[1] <= INT32_MAX ? t->t.ne[1] : -1;
}

static kiln_status load_gguf(kiln_bert *m, const char *path) {
    kiln_status st = kiln_gguf_open(path, &m->gguf);
    if (st) return st;
    const kiln_gguf *g = m->gguf;
    kiln_bert_config *c = &m->cfg;
    kiln_gguf_str a;
    if (!kiln_gguf_get_str(g, "general.architecture", &a))
        return kiln_fail(KILN_ERR_FORMAT, "%s: missing metadata 'general.architecture'", path);
    if (!kiln_gguf_str_eq(a, "bert"))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: architecture '%.*s' is not an embedding model kiln runs (bert is)",
                         path, (int)(a.len > 40 ? 40 : a.len), a.ptr);
    int pooling = KILN_POOL_MEAN;
    bool causal = false;
    if ((st = gguf_int(g, "bert.embedding_length", true, 0, &c->n_embd, path)) ||
        (st = gguf_int(g, "bert.block_count", true, 0, &c->n_layer, path)) ||
        (st = gguf_int(g, "bert.feed_forward_length", true, 0, &c->n_ff, path)) ||
        (st = gguf_int(g, "bert.attention.head_count", true, 0, &c->n_head, path)) ||
        (st = gguf_int(g, "bert.context_length", true, 0, &c->n_pos, path)) ||
        (st = gguf_int(g, "bert.pooling_type", false, KILN_POOL_MEAN, &pooling, path)))
        return st;
    if (kiln_gguf_get_bool(g, "bert.attention.causal", &causal) && causal)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: causal BERT attention is not supported", path);
    /* GGUF's enum: 0 none, 1 mean, 2 cls, 3 last (4 rank needs a classifier head) */
    static const kiln_pooling gguf_pool[] = {KILN_POOL_NONE, KILN_POOL_MEAN, KILN_POOL_CLS, KILN_POOL_LAST};
    if (pooling > 3) return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: bert.pooling_type %d is not supported", path, pooling);
    c->pooling = gguf_pool[pooling];
    double eps = 1e-12;
    kiln_gguf_get_f64(g, "bert.attention.layer_norm_epsilon", &eps);
    c->norm_eps = (float)eps;
    c->n_vocab = (int)tensor_rows(g, "token_embd.weight");
    c->n_types = (int)tensor_rows(g, "token_types.weight");
    if (c->n_vocab < 0) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor 'token_embd.weight'", path);
    if (c->n_types < 0) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor 'token_types.weight'", path);
    /* llama.cpp's converter keeps sentence-transformers' max_seq_length nowhere, and
     * its embedding tools L2-normalize by default: so does kiln for a GGUF. */
    c->normalize = c->pooling != KILN_POOL_NONE;
    c->max_tokens = c->n_pos;
    if ((st = check_config(c, path))) return st;
    binder b = {m, SRC_GGUF, "", path};
    return bind_all(&b);
}

/* ---- Hugging Face folder ------------------------------------------------------------ */

static kiln_status read_json(const char *dir, const char *file, bool required, cJSON **out) {
    char path[4096];
    *out = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    struct stat sb;
    if (!required && stat(path, &sb) != 0) return KILN_OK;
    char *text = NULL;
    kiln_status st = kiln_read_file(path, 1 << 20, &text, NULL);
    if (st) return st;
    *out = cJSON_Parse(text);
    free(text);
    if (!*out || !(cJSON_IsObject(*out) || cJSON_IsArray(*out))) {
        cJSON_Delete(*out);
        *out = NULL;
        return kiln_fail(KILN_ERR_FORMAT, "%s: not valid JSON", path);
    }
    return KILN_OK;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* 1_Pooling/config.json (or wherever modules.json puts it): one mode must be set. */
static kiln_status hf_pooling(kiln_bert_config *c, const char *dir, const char *sub) {
    char where[4096];
    snprintf(where, sizeof where, "%s/%s", dir, sub);
    cJSON *j;
    kiln_status st = read_json(where, "config.json", true, &j);
    if (st) return st;
    static const struct {
        const char *key;
        int mode; /* -1: a mode kiln does not run */
    } modes[] = {
        {"pooling_mode_cls_token", KILN_POOL_CLS},        {"pooling_mode_mean_tokens", KILN_POOL_MEAN},
        {"pooling_mode_max_tokens", KILN_POOL_MAX},       {"pooling_mode_lasttoken", KILN_POOL_LAST},
        {"pooling_mode_mean_sqrt_len_tokens", -1},        {"pooling_mode_weightedmean_tokens", -1},
    };
    int n_set = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, modes[i].key))) continue;
        if (modes[i].mode < 0 && !st)
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s/config.json: %s is not supported (cls, mean, max, last are)",
                           where, modes[i].key);
        c->pooling = (kiln_pooling)(modes[i].mode < 0 ? 0 : modes[i].mode);
        n_set++;
    }
    if (!st && n_set != 1)
        st = kiln_fail(n_set ? KILN_ERR_UNSUPPORTED : KILN_ERR_FORMAT,
                       "%s/config.json: %d pooling modes are set; kiln runs exactly one", where, n_set);
    cJSON_Delete(j);
    return st;
}

/* modules.json lists the sentence-transformers pipeline: the Transformer, a Pooling,
 * optionally a Normalize. Anything else (Dense projections...) is refused rather than
 * silently skipped. Without modules.json the model is a plain BertModel: mean pooling
 * (what sentence-transformers builds for one), no normalization. */
static kiln_status hf_modules(kiln_bert_config *c, const char *dir) {
    cJSON *mods;
    c->pooling = KILN_POOL_MEAN;
    kiln_status st = read_json(dir, "modules.json", false, &mods);
    if (st || !mods) return st;
    bool pooled = false;
    const cJSON *it, *list = cJSON_IsArray(mods) ? mods : NULL;
    if (!list) st = kiln_fail(KILN_ERR_FORMAT, "%s/modules.json: not a list of modules", dir);
    cJSON_ArrayForEach(it, list) {
        const char *type = json_str(it, "type"), *sub = json_str(it, "path");
        if (st) break;
        if (!type || !sub) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s/modules.json: a module lacks 'type' or 'path'", dir);
        } else if (!strcmp(type, "sentence_transformers.models.Transformer")) {
            if (sub[0]) st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s/modules.json: the transformer must be the folder itself", dir);
        } else if (!strcmp(type, "sentence_transformers.models.Pooling")) {
            if (strstr(sub, "..") || sub[0] == '/')
                st = kiln_fail(KILN_ERR_FORMAT, "%s/modules.json: module path '%.60s' leaves the folder", dir, sub);
            else
                st = hf_pooling(c, dir, sub);
            pooled = true;
        } else if (!strcmp(type, "sentence_transformers.models.Normalize")) {
            c->normalize = true;
        } else {
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s/modules.json: module '%.80s' is not supported", dir, type);
        }
    }
    if (!st && !pooled) c->pooling = KILN_POOL_NONE;
    cJSON_Delete(mods);
    return st;
}

static kiln_status load_hf(kiln_bert *m, const char *dir) {
    char what[4200];
    snprintf(what, sizeof what, "%s/config.json", dir);
    cJSON *j;
    kiln_status st = read_json(dir, "config.json", true, &j);
    if (st) return st;
    kiln_bert_config *c = &m->cfg;
    const char *type = json_str(j, "model_type");
    const char *act = json_str(j, "hidden_act"), *pos_type = json_str(j, "position_embedding_type");
    double eps = 1e-12;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_eps");
    if (cJSON_IsNumber(e)) eps = e->valuedouble;
    c->norm_eps = (float)eps;
    if (!type || strcmp(type, "bert")) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: model_type '%.40s' is not an embedding model kiln runs (bert is)", what,
                       type ? type : "(none)");
    } else if (act && strcmp(act, "gelu") && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh")) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: hidden_act '%.40s' is not supported (gelu, gelu_new are)", what, act);
    } else if (pos_type && strcmp(pos_type, "absolute")) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: position_embedding_type '%.40s' is not supported (absolute is)",
                       what, pos_type);
    }
    c->gelu_tanh = act && strcmp(act, "gelu") != 0;
    if (st || (st = kiln_json_int(j, "hidden_size", true, 0, &c->n_embd, what)) ||
        (st = kiln_json_int(j, "num_hidden_layers", true, 0, &c->n_layer, what)) ||
        (st = kiln_json_int(j, "num_attention_heads", true, 0, &c->n_head, what)) ||
        (st = kiln_json_int(j, "intermediate_size", true, 0, &c->n_ff, what)) ||
        (st = kiln_json_int(j, "vocab_size", true, 0, &c->n_vocab, what)) ||
        (st = kiln_json_int(j, "max_position_embeddings", false, 512, &c->n_pos, what)) ||
        (st = kiln_json_int(j, "type_vocab_size", false, 2, &c->n_types, what)))
        goto out;
    cJSON_Delete(j);
    j = NULL;
    if ((st = read_json(dir, "sentence_bert_config.json", false, &j))) goto out;
    if (j && (st = kiln_json_int(j, "max_seq_length", false, 0, &c->max_tokens, "sentence_bert_config.json"))) goto out;
    if ((st = hf_modules(c, dir)) || (st = check_config(c, dir)) || (st = kiln_safetensors_open(dir, &m->st))) goto out;
    binder b = {m, SRC_HF, "", dir};
    if (!kiln_weights_find(kiln_safetensors_weights(m->st), g_names[SRC_HF][W_TOK]) &&
        kiln_weights_find(kiln_safetensors_weights(m->st), "bert.embeddings.word_embeddings.weight"))
        b.prefix = "bert.";
    st = bind_all(&b);
out:
    cJSON_Delete(j);
    return st;
}

/* ---- entry ------------------------------------------------------------------------- */

bool kiln_bert_probe(const char *path) {
    struct stat sb;
    if (!path || stat(path, &sb) != 0) return false;
    if (S_ISDIR(sb.st_mode)) {
        cJSON *j = NULL;
        bool yes = read_json(path, "config.json", false, &j) == KILN_OK && j && json_str(j, "model_type") &&
                   !strcmp(json_str(j, "model_type"), "bert");
        cJSON_Delete(j);
        return yes;
    }
    kiln_gguf *g = NULL;
    if (kiln_gguf_open(path, &g) != KILN_OK) return false;
    kiln_gguf_str a;
    bool yes = kiln_gguf_get_str(g, "general.architecture", &a) && kiln_gguf_str_eq(a, "bert");
    kiln_gguf_close(g);
    return yes;
}

kiln_status kiln_bert_bind(kiln_bert *m, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return kiln_fail(KILN_ERR_NOT_FOUND, "%s: no such file or folder", path);
    if (S_ISDIR(sb.st_mode)) {
        m->format = "safetensors";
        return load_hf(m, path);
    }
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    size_t r = f ? fread(magic, 1, 4, f) : 0;
    if (f) fclose(f);
    if (r != 4 || memcmp(magic, "GGUF", 4))
        return kiln_fail(KILN_ERR_FORMAT, "%s: not a GGUF file or a model folder", path);
    m->format = "gguf";
    return load_gguf(m, path);
}
