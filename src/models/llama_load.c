/*
 * llama_load.c — reads a Llama-family config from GGUF metadata, a Hugging Face
 * config.json or a llama2.c header, and binds the weights by name.
 *
 * Tensor names stay the upstream ones: one column per file kind in g_names below.
 * Every bound tensor's type and shape is checked against the config, so the forward
 * pass can trust them.
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
#include "kernels/kernels.h"
#include "llama_internal.h"

/* ---- names --------------------------------------------------------------------- */

enum { SRC_GGUF, SRC_HF, SRC_META, SRC_COUNT };

enum {
    W_TOK_EMBD, W_OUTPUT_NORM, W_OUTPUT,
    W_ATTN_NORM, W_Q, W_K, W_V, W_O, W_BQ, W_BK, W_BV, W_FFN_NORM, W_GATE, W_UP, W_DOWN,
    W_COUNT
};

/* Per-layer names take the layer index through %d. */
static const char *const g_names[SRC_COUNT][W_COUNT] = {
    [SRC_GGUF] = {"token_embd.weight", "output_norm.weight", "output.weight",
                  "blk.%d.attn_norm.weight", "blk.%d.attn_q.weight", "blk.%d.attn_k.weight",
                  "blk.%d.attn_v.weight", "blk.%d.attn_output.weight", "blk.%d.attn_q.bias",
                  "blk.%d.attn_k.bias", "blk.%d.attn_v.bias", "blk.%d.ffn_norm.weight",
                  "blk.%d.ffn_gate.weight", "blk.%d.ffn_up.weight", "blk.%d.ffn_down.weight"},
    [SRC_HF] = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                "model.layers.%d.input_layernorm.weight", "model.layers.%d.self_attn.q_proj.weight",
                "model.layers.%d.self_attn.k_proj.weight", "model.layers.%d.self_attn.v_proj.weight",
                "model.layers.%d.self_attn.o_proj.weight", "model.layers.%d.self_attn.q_proj.bias",
                "model.layers.%d.self_attn.k_proj.bias", "model.layers.%d.self_attn.v_proj.bias",
                "model.layers.%d.post_attention_layernorm.weight", "model.layers.%d.mlp.gate_proj.weight",
                "model.layers.%d.mlp.up_proj.weight", "model.layers.%d.mlp.down_proj.weight"},
    [SRC_META] = {"tok_embeddings.weight", "norm.weight", "output.weight", "layers.%d.attention_norm.weight",
                  "layers.%d.attention.wq.weight", "layers.%d.attention.wk.weight",
                  "layers.%d.attention.wv.weight", "layers.%d.attention.wo.weight", NULL, NULL, NULL,
                  "layers.%d.ffn_norm.weight", "layers.%d.feed_forward.w1.weight",
                  "layers.%d.feed_forward.w3.weight", "layers.%d.feed_forward.w2.weight"},
};

typedef struct {
    kiln_llama *m;
    int src;
    const char *path;
} binder;

static const kiln_tensor *lookup(const binder *b, const char *name) {
    if (b->m->gguf) {
        const kiln_gguf_tensor *t = kiln_gguf_find_tensor(b->m->gguf, name);
        return t ? &t->t : NULL;
    }
    if (b->m->st) return kiln_weights_find(kiln_safetensors_weights(b->m->st), name);
    return kiln_weights_find(kiln_llama2c_weights(b->m->l2c), name);
}

static void weight_name(const binder *b, int role, int layer, char *buf, size_t n) {
    snprintf(buf, n, g_names[b->src][role], layer);
}

/* Binds a matrix mapping `in` inputs to `out` outputs (ne = [in, out]). */
static kiln_status bind_matrix(const binder *b, int role, int layer, int64_t in, int64_t out, bool optional,
                               const kiln_tensor **dst) {
    char name[160];
    weight_name(b, role, layer, name, sizeof name);
    const kiln_tensor *t = lookup(b, name);
    *dst = t;
    if (!t && optional) return KILN_OK;
    return kiln_bind_matrix_check(t, b->path, name, in, out);
}

/* Binds a vector of n elements as an owned f32 copy (norms and biases are small and may be
 * stored as f16/bf16, or unaligned). */
static kiln_status bind_vector(const binder *b, int role, int layer, int64_t n, bool optional, const float **dst) {
    char name[160];
    *dst = NULL;
    if (!g_names[b->src][role]) return optional ? KILN_OK : kiln_fail(KILN_ERR_FORMAT, "%s: no name", b->path);
    weight_name(b, role, layer, name, sizeof name);
    const kiln_tensor *t = lookup(b, name);
    if (!t && optional) return KILN_OK;
    return kiln_bind_vector_copy(t, b->path, name, n, &b->m->owned, dst);
}

static kiln_status bind_all(binder *b) {
    kiln_llama *m = b->m;
    const kiln_llama_config *c = &m->cfg;
    int64_t q_dim = (int64_t)c->n_head * c->head_dim, kv_dim = (int64_t)c->n_head_kv * c->head_dim;
    kiln_status st;
    char name[160];
    weight_name(b, W_TOK_EMBD, 0, name, sizeof name);
    m->tok_embd = lookup(b, name);
    if (!m->tok_embd) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s'", b->path, name);
    if (m->tok_embd->ne[0] != c->n_embd || m->tok_embd->ne[1] != c->n_vocab || m->tok_embd->ne[2] != 1)
        return kiln_fail(KILN_ERR_FORMAT, "%s: '%s' has shape [%lld, %lld], expected [%d, %d]", b->path, name,
                         (long long)m->tok_embd->ne[0], (long long)m->tok_embd->ne[1], c->n_embd, c->n_vocab);
    if (!kiln_matmul_supports(m->tok_embd->type))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: '%s' has unsupported type %s", b->path, name,
                         kiln_dtype_name(m->tok_embd->type));
    if ((st = bind_vector(b, W_OUTPUT_NORM, 0, c->n_embd, false, &m->output_norm))) return st;
    if ((st = bind_matrix(b, W_OUTPUT, 0, c->n_embd, c->n_vocab, true, &m->output))) return st;
    if (!m->output) m->output = m->tok_embd; /* tied embeddings */

    m->layers = kiln_calloc_array((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->n_layer; l++) {
        kiln_llama_layer *L = &m->layers[l];
        if ((st = bind_vector(b, W_ATTN_NORM, l, c->n_embd, false, &L->attn_norm)) ||
            (st = bind_matrix(b, W_Q, l, c->n_embd, q_dim, false, &L->wq)) ||
            (st = bind_matrix(b, W_K, l, c->n_embd, kv_dim, false, &L->wk)) ||
            (st = bind_matrix(b, W_V, l, c->n_embd, kv_dim, false, &L->wv)) ||
            (st = bind_matrix(b, W_O, l, q_dim, c->n_embd, false, &L->wo)) ||
            (st = bind_vector(b, W_FFN_NORM, l, c->n_embd, false, &L->ffn_norm)) ||
            (st = bind_matrix(b, W_GATE, l, c->n_embd, c->n_ff, false, &L->w_gate)) ||
            (st = bind_matrix(b, W_UP, l, c->n_embd, c->n_ff, false, &L->w_up)) ||
            (st = bind_matrix(b, W_DOWN, l, c->n_ff, c->n_embd, false, &L->w_down)))
            return st;
        if (c->attn_bias) {
            if ((st = bind_vector(b, W_BQ, l, q_dim, false, &L->bq)) ||
                (st = bind_vector(b, W_BK, l, kv_dim, false, &L->bk)) ||
                (st = bind_vector(b, W_BV, l, kv_dim, false, &L->bv)))
                return st;
        }
    }
    return KILN_OK;
}

/* ---- config checks --------------------------------------------------------------- */

static kiln_status check_config(const kiln_llama_config *c, const char *path) {
    if (c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 || c->n_head_kv <= 0 || c->n_ff <= 0 ||
        c->n_vocab <= 0 || c->head_dim <= 0 || c->n_embd > (1 << 20) || c->n_ff > (1 << 22) ||
        c->n_layer > 4096 || c->n_head > 4096 || c->head_dim > 4096 || c->n_vocab > (1 << 24))
        return kiln_fail(KILN_ERR_FORMAT,
                         "%s: implausible model dimensions (embd %d, layers %d, heads %d/%d, head_dim %d, ff %d, vocab %d)",
                         path, c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->head_dim, c->n_ff, c->n_vocab);
    if (c->n_head % c->n_head_kv)
        return kiln_fail(KILN_ERR_FORMAT, "%s: %d heads is not a multiple of %d key/value heads", path, c->n_head,
                         c->n_head_kv);
    if (c->n_rot <= 0 || c->n_rot > c->head_dim || c->n_rot % 2)
        return kiln_fail(KILN_ERR_FORMAT, "%s: invalid rope dimension count %d (head_dim %d)", path, c->n_rot, c->head_dim);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta) || !(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return kiln_fail(KILN_ERR_FORMAT, "%s: invalid rope theta or norm epsilon", path);
    if (c->rope_scaling != KILN_ROPE_SCALING_NONE && !(c->rope_factor > 0 && isfinite(c->rope_factor)))
        return kiln_fail(KILN_ERR_FORMAT, "%s: invalid rope scaling factor", path);
    if (c->rope_scaling == KILN_ROPE_SCALING_LLAMA3 &&
        !(c->rope_orig_ctx > 0 && c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor))
        return kiln_fail(KILN_ERR_FORMAT, "%s: invalid llama3 rope scaling parameters", path);
    return KILN_OK;
}

static kiln_status make_rope_freq(kiln_llama *m);

/* ---- GGUF ------------------------------------------------------------------------ */

static kiln_status gguf_int(const kiln_gguf *g, const char *arch, const char *key, bool required, int64_t dflt,
                            int *out, const char *path) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int64_t v = dflt;
    if (kiln_gguf_find(g, full)) {
        if (!kiln_gguf_get_i64(g, full, &v))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: metadata '%s' is not a single integer", path, full);
    } else if (required) {
        return kiln_fail(KILN_ERR_FORMAT, "%s: missing metadata '%s'", path, full);
    }
    if (v < 0 || v > INT32_MAX) return kiln_fail(KILN_ERR_FORMAT, "%s: metadata '%s' out of range", path, full);
    *out = (int)v;
    return KILN_OK;
}

static double gguf_f64(const kiln_gguf *g, const char *arch, const char *key, double dflt) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    double v;
    return kiln_gguf_get_f64(g, full, &v) ? v : dflt;
}

static kiln_status load_gguf(kiln_llama *m, const char *path) {
    kiln_status st = kiln_gguf_open(path, &m->gguf);
    if (st) return st;
    const kiln_gguf *g = m->gguf;
    kiln_llama_config *c = &m->cfg;
    kiln_gguf_str a;
    if (!kiln_gguf_get_str(g, "general.architecture", &a))
        return kiln_fail(KILN_ERR_FORMAT, "%s: missing metadata 'general.architecture'", path);
    if (!kiln_gguf_str_eq(a, "llama") && !kiln_gguf_str_eq(a, "qwen2")) {
        char *s = kiln_gguf_str_dup(a);
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (llama, qwen2 are)", path,
                       s ? s : "?");
        free(s);
        return st;
    }
    memcpy(c->arch, a.ptr, a.len);
    c->arch[a.len] = 0;
    const char *arch = c->arch;
    if ((st = gguf_int(g, arch, "embedding_length", true, 0, &c->n_embd, path)) ||
        (st = gguf_int(g, arch, "block_count", true, 0, &c->n_layer, path)) ||
        (st = gguf_int(g, arch, "feed_forward_length", true, 0, &c->n_ff, path)) ||
        (st = gguf_int(g, arch, "attention.head_count", true, 0, &c->n_head, path)) ||
        (st = gguf_int(g, arch, "attention.head_count_kv", false, c->n_head, &c->n_head_kv, path)) ||
        (st = gguf_int(g, arch, "context_length", false, 2048, &c->n_ctx_train, path)))
        return st;
    if (c->n_head <= 0) return kiln_fail(KILN_ERR_FORMAT, "%s: head count is 0", path);
    if ((st = gguf_int(g, arch, "attention.key_length", false, c->n_embd / c->n_head, &c->head_dim, path)) ||
        (st = gguf_int(g, arch, "rope.dimension_count", false, c->head_dim, &c->n_rot, path)))
        return st;
    const kiln_gguf_tensor *emb = kiln_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor 'token_embd.weight'", path);
    c->n_vocab = (int)(emb->t.ne[1] > INT32_MAX ? -1 : emb->t.ne[1]);
    c->norm_eps = (float)gguf_f64(g, arch, "attention.layer_norm_rms_epsilon", 1e-5);
    c->rope_theta = gguf_f64(g, arch, "rope.freq_base", 10000.0);
    c->rope_neox = strcmp(arch, "qwen2") == 0;
    c->attn_bias = strcmp(arch, "qwen2") == 0;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    kiln_gguf_str stype;
    if (kiln_gguf_get_str(g, key, &stype) && !kiln_gguf_str_eq(stype, "none")) {
        if (!kiln_gguf_str_eq(stype, "linear"))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: rope scaling type '%.*s' is not supported", path,
                             (int)(stype.len > 32 ? 32 : stype.len), stype.ptr);
        c->rope_scaling = KILN_ROPE_SCALING_LINEAR;
        c->rope_factor = gguf_f64(g, arch, "rope.scaling.factor", 0.0);
        if (c->rope_factor == 0.0) { /* older files give the scale, not the factor */
            double scale = gguf_f64(g, arch, "rope.scale_linear", 0.0);
            c->rope_factor = scale > 0 ? 1.0 / scale : 0.0;
        }
    }
    if ((st = check_config(c, path)) || (st = make_rope_freq(m))) return st;
    binder b = {m, SRC_GGUF, path};
    if ((st = bind_all(&b))) return st;
    /* llama3-style frequency factors are stored as a tensor (divisors of each frequency) */
    const kiln_gguf_tensor *rf = kiln_gguf_find_tensor(g, "rope_freqs.weight");
    if (rf) {
        if (rf->t.type != KILN_F32 || kiln_tensor_nelements(&rf->t) != c->n_rot / 2)
            return kiln_fail(KILN_ERR_FORMAT, "%s: 'rope_freqs.weight' must be %d f32 values", path, c->n_rot / 2);
        const float *f = rf->t.data;
        for (int i = 0; i < c->n_rot / 2; i++) {
            if (!(f[i] > 0) || !isfinite(f[i]))
                return kiln_fail(KILN_ERR_FORMAT, "%s: 'rope_freqs.weight' holds a non-positive factor", path);
            m->rope_freq[i] /= f[i];
        }
    }
    return KILN_OK;
}

/* ---- Hugging Face folder ---------------------------------------------------------- */

static double json_num(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static kiln_status hf_rope_scaling(kiln_llama_config *c, const cJSON *rs, const char *path) {
    if (!rs || cJSON_IsNull(rs)) return KILN_OK;
    if (!cJSON_IsObject(rs)) return kiln_fail(KILN_ERR_FORMAT, "%s: config.json 'rope_scaling' is not an object", path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(t)) return kiln_fail(KILN_ERR_FORMAT, "%s: 'rope_scaling' has no type", path);
    if (!strcmp(t->valuestring, "default")) return KILN_OK;
    c->rope_factor = json_num(rs, "factor", 0.0);
    if (!strcmp(t->valuestring, "linear")) {
        c->rope_scaling = KILN_ROPE_SCALING_LINEAR;
    } else if (!strcmp(t->valuestring, "llama3")) {
        c->rope_scaling = KILN_ROPE_SCALING_LLAMA3;
        c->rope_low_freq_factor = json_num(rs, "low_freq_factor", 0.0);
        c->rope_high_freq_factor = json_num(rs, "high_freq_factor", 0.0);
        c->rope_orig_ctx = (int)json_num(rs, "original_max_position_embeddings", 0.0);
    } else {
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: rope scaling type '%.40s' is not supported (linear, llama3 are)",
                         path, t->valuestring);
    }
    return KILN_OK;
}

static kiln_status load_hf(kiln_llama *m, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = NULL;
    kiln_status st = kiln_read_file(path, 1 << 20, &text, NULL);
    if (st) return st;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return kiln_fail(KILN_ERR_FORMAT, "%s: not valid JSON", path);
    }
    kiln_llama_config *c = &m->cfg;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const char *an = cJSON_IsString(a0) ? a0->valuestring : "";
    if (!strcmp(an, "LlamaForCausalLM") || !strcmp(an, "MistralForCausalLM")) {
        strcpy(c->arch, "llama");
    } else if (!strcmp(an, "Qwen2ForCausalLM")) {
        strcpy(c->arch, "qwen2");
        c->attn_bias = true;
    } else {
        st = kiln_fail(KILN_ERR_UNSUPPORTED,
                       "%s: architecture '%.60s' is not supported (LlamaForCausalLM, MistralForCausalLM, "
                       "Qwen2ForCausalLM are)", path, an);
        cJSON_Delete(j);
        return st;
    }
    int sliding = 0;
    if ((st = kiln_json_int(j, "hidden_size", true, 0, &c->n_embd, path)) ||
        (st = kiln_json_int(j, "num_hidden_layers", true, 0, &c->n_layer, path)) ||
        (st = kiln_json_int(j, "intermediate_size", true, 0, &c->n_ff, path)) ||
        (st = kiln_json_int(j, "num_attention_heads", true, 0, &c->n_head, path)) ||
        (st = kiln_json_int(j, "num_key_value_heads", false, c->n_head, &c->n_head_kv, path)) ||
        (st = kiln_json_int(j, "vocab_size", true, 0, &c->n_vocab, path)) ||
        (st = kiln_json_int(j, "max_position_embeddings", false, 2048, &c->n_ctx_train, path)) ||
        (st = kiln_json_int(j, "sliding_window", false, 0, &sliding, path)))
        goto out;
    if (c->n_head <= 0) {
        st = kiln_fail(KILN_ERR_FORMAT, "%s: num_attention_heads is 0", path);
        goto out;
    }
    if ((st = kiln_json_int(j, "head_dim", false, c->n_embd / c->n_head, &c->head_dim, path))) goto out;
    const cJSON *usw = cJSON_GetObjectItemCaseSensitive(j, "use_sliding_window");
    if (cJSON_IsFalse(usw)) sliding = 0;
    if (sliding > 0 && sliding < c->n_ctx_train) c->n_ctx_train = sliding; /* full attention is exact up to here */
    c->n_rot = c->head_dim;
    c->norm_eps = (float)json_num(j, "rms_norm_eps", 1e-6);
    c->rope_theta = json_num(j, "rope_theta", 10000.0);
    c->rope_neox = true; /* Hugging Face checkpoints rotate halves */
    if ((st = hf_rope_scaling(c, cJSON_GetObjectItemCaseSensitive(j, "rope_scaling"), path))) goto out;
    bool tied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings"));
    if ((st = check_config(c, path))) goto out;
    if ((st = kiln_safetensors_open(dir, &m->st))) goto out;
    binder b = {m, SRC_HF, dir};
    if ((st = bind_all(&b))) goto out;
    if (tied) m->output = m->tok_embd;
out:
    cJSON_Delete(j);
    return st;
}

/* ---- llama2.c checkpoint ------------------------------------------------------------ */

static kiln_status load_llama2c(kiln_llama *m, const char *path) {
    kiln_status st = kiln_llama2c_open(path, &m->l2c);
    if (st) return st;
    const kiln_llama2c_config *h = kiln_llama2c_config_get(m->l2c);
    kiln_llama_config *c = &m->cfg;
    strcpy(c->arch, "llama");
    c->n_embd = h->dim;
    c->n_ff = h->hidden_dim;
    c->n_layer = h->n_layers;
    c->n_head = h->n_heads;
    c->n_head_kv = h->n_kv_heads;
    c->n_vocab = h->vocab_size;
    c->n_ctx_train = h->seq_len;
    c->head_dim = h->dim / h->n_heads;
    c->n_rot = c->head_dim;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0;
    c->rope_neox = false; /* Meta layout: adjacent pairs */
    if ((st = check_config(c, path))) return st;
    binder b = {m, SRC_META, path};
    return bind_all(&b);
}

/* ---- rope frequencies --------------------------------------------------------------- */

/* freq_i = theta^(-2i/n_rot), then scaled: linear divides by the factor; llama3 (Meta's
 * Llama 3.1 recipe, as transformers' _compute_llama3_parameters) keeps high frequencies,
 * divides low ones by the factor and interpolates smoothly in between. */
static kiln_status make_rope_freq(kiln_llama *m) {
    const kiln_llama_config *c = &m->cfg;
    int half = c->n_rot / 2;
    m->rope_freq = kiln_malloc_array((size_t)half, sizeof *m->rope_freq);
    if (!m->rope_freq) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < half; i++) {
        double f = pow(c->rope_theta, -2.0 * i / c->n_rot);
        if (c->rope_scaling == KILN_ROPE_SCALING_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_scaling == KILN_ROPE_SCALING_LLAMA3) {
            double low_wavelen = c->rope_orig_ctx / c->rope_low_freq_factor;
            double high_wavelen = c->rope_orig_ctx / c->rope_high_freq_factor;
            double wavelen = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f /= c->rope_factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (c->rope_orig_ctx / wavelen - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0 - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        m->rope_freq[i] = (float)f;
    }
    return KILN_OK;
}

/* ---- entry ------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool file_starts_with(const char *path, const char *magic) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char buf[8] = {0};
    size_t k = strlen(magic), r = fread(buf, 1, k, f);
    fclose(f);
    return r == k && memcmp(buf, magic, k) == 0;
}

kiln_status kiln_llama_bind(kiln_llama *m, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return kiln_fail(KILN_ERR_NOT_FOUND, "%s: no such file or folder", path);
    kiln_status st;
    if (S_ISDIR(sb.st_mode)) {
        m->format = "safetensors";
        st = load_hf(m, path);
        if (!st) st = make_rope_freq(m);
    } else if (file_starts_with(path, "GGUF")) {
        m->format = "gguf";
        st = load_gguf(m, path);
    } else if (ends_with(path, ".bin")) {
        m->format = "llama2c";
        st = load_llama2c(m, path);
        if (!st) st = make_rope_freq(m);
    } else if (ends_with(path, ".safetensors") || ends_with(path, ".json")) {
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: give the model's folder (with config.json), not a file in it", path);
    } else {
        return kiln_fail(KILN_ERR_FORMAT, "%s: not a GGUF file, llama2.c checkpoint (.bin) or model folder", path);
    }
    return st;
}
