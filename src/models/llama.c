/*
 * llama.c — the Llama forward pass with a KV cache, and the model's lifetime.
 *
 * One layer, for a batch of n tokens at positions pos..pos+n-1 (x is (n, n_embd)):
 *   xn = rmsnorm(x) * attn_norm
 *   q, k, v = xn·Wqᵀ (+bq), xn·Wkᵀ (+bk), xn·Wvᵀ (+bv)   // (n, n_head*hd), (n, n_kv*hd) x2
 *   rope(q), rope(k) at each token's position; k, v appended to the cache
 *   att[i, h] = Σ_t softmax_t(q[i,h]·k[t,h/g] / √hd) v[t,h/g] for t ≤ pos+i   // g = n_head/n_kv
 *   x += att·Woᵀ
 *   xn = rmsnorm(x) * ffn_norm
 *   x += (silu(xn·Wgateᵀ) * (xn·Wupᵀ))·Wdownᵀ
 * then logits = rmsnorm(x) * output_norm · Woutᵀ.
 *
 * Determinism: matmuls are deterministic by construction (kernels.h); attention runs
 * one task per head, each computing its own outputs in a fixed order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "kernels/kernels.h"
#include "llama_internal.h"

/* ---- lifetime ------------------------------------------------------------------- */

static kiln_status alloc_f32(float **p, size_t a, size_t b, size_t c) {
    size_t n;
    if (!kiln_mul_ok(a, b, &n) || !kiln_mul_ok(n, c, &n))
        return kiln_fail(KILN_ERR_NOMEM, "buffer size overflows");
    *p = kiln_aligned_alloc(64, n * sizeof(float) + 64);
    if (!*p) return kiln_fail(KILN_ERR_NOMEM, "out of memory allocating %zu MiB", (n * sizeof(float)) >> 20);
    memset(*p, 0, n * sizeof(float));
    return KILN_OK;
}

/* Bytes alloc_runtime will take (saturating at SIZE_MAX). */
static size_t runtime_bytes(const kiln_llama *m) {
    const kiln_llama_config *c = &m->cfg;
    double q_dim = (double)c->n_head * c->head_dim, kv_dim = (double)c->n_head_kv * c->head_dim;
    double nb = m->n_batch;
    double floats = 2.0 * c->n_layer * m->n_ctx * kv_dim + nb * (2.0 * c->n_embd + 2 * q_dim + 2 * kv_dim + 2.0 * c->n_ff) +
                    (double)c->n_head * m->n_ctx;
    double bytes = floats * sizeof(float) + 11 * 64;
    return bytes >= (double)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

static kiln_status alloc_runtime(kiln_llama *m, size_t limit) {
    const kiln_llama_config *c = &m->cfg;
    size_t q_dim = (size_t)c->n_head * c->head_dim, kv_dim = (size_t)c->n_head_kv * c->head_dim;
    size_t nb = (size_t)m->n_batch;
    m->runtime_bytes = runtime_bytes(m);
    if (limit && m->runtime_bytes > limit)
        return kiln_fail(KILN_ERR_CAPACITY, "the KV cache and activations for %d tokens need %zu MiB; %zu MiB are free",
                         m->n_ctx, m->runtime_bytes >> 20, limit >> 20);
    kiln_status st;
    if ((st = alloc_f32(&m->k_cache, (size_t)c->n_layer, (size_t)m->n_ctx, kv_dim)) ||
        (st = alloc_f32(&m->v_cache, (size_t)c->n_layer, (size_t)m->n_ctx, kv_dim)) ||
        (st = alloc_f32(&m->x, nb, (size_t)c->n_embd, 1)) || (st = alloc_f32(&m->xn, nb, (size_t)c->n_embd, 1)) ||
        (st = alloc_f32(&m->q, nb, q_dim, 1)) || (st = alloc_f32(&m->k, nb, kv_dim, 1)) ||
        (st = alloc_f32(&m->v, nb, kv_dim, 1)) || (st = alloc_f32(&m->att, nb, q_dim, 1)) ||
        (st = alloc_f32(&m->gate, nb, (size_t)c->n_ff, 1)) || (st = alloc_f32(&m->up, nb, (size_t)c->n_ff, 1)) ||
        (st = alloc_f32(&m->scores, (size_t)c->n_head, (size_t)m->n_ctx, 1)))
        return kiln_fail_prefix(st, "KV cache and activations for %d tokens", m->n_ctx);
    return KILN_OK;
}

/* Repacks every weight matrix the kernels of this CPU read faster in their own layout
 * (kernels.h: kiln_weight_pack; Q4_0, Q8_0, Q4_K, Q6_K on AVX2 and AVX-512), and copies
 * the other large ones as they are (kiln_weight_copy_large): both land on 2 MiB pages,
 * so token generation streams weights at memory bandwidth instead of walking the file
 * mapping's 4 KiB pages, and the file pages they replace are given back, so the weights
 * are resident once. The token embedding keeps its file layout (rows are gathered); a
 * tied output matrix gets its own copy. The matrices are packed in parallel, one
 * task each. */
static kiln_status pack_weights(kiln_llama *m) {
    const int per_layer = 7, n = m->cfg.n_layer * per_layer + 1;
    const kiln_tensor ***slots = calloc((size_t)n, sizeof *slots);
    if (!slots) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int l = 0; l < m->cfg.n_layer; l++) {
        kiln_llama_layer *L = &m->layers[l];
        const kiln_tensor **s[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < per_layer; k++) slots[l * per_layer + k] = s[k];
    }
    slots[n - 1] = &m->output;
    /* the mappings the weights point into, so the replaced pages are given back */
    size_t n_maps = m->st ? kiln_safetensors_n_files(m->st) : 1;
    const kiln_mapfile **maps = calloc(n_maps, sizeof *maps);
    if (!maps && n_maps) {
        free(slots);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    if (m->gguf) maps[0] = &m->gguf->map;
    else if (m->l2c) maps[0] = kiln_llama2c_map(m->l2c);
    else
        for (size_t i = 0; i < n_maps; i++) maps[i] = kiln_safetensors_map(m->st, i);
    const kiln_weight_files files = {maps, n_maps};
    kiln_status st =
        kiln_pack_matrices((const kiln_tensor **const *)slots, n, KILN_PANELS_NONE, &files, m->pool, &m->packed);
    free(maps);
    free(slots);
    return st;
}

kiln_status kiln_llama_load(const kiln_llama_options *opt, kiln_llama **out) {
    *out = NULL;
    if (!opt || !opt->path) return kiln_fail(KILN_ERR_INVALID_ARG, "no model path given");
    if (opt->n_ctx < 0 || opt->n_threads < 0 || opt->n_batch < 0)
        return kiln_fail(KILN_ERR_INVALID_ARG, "negative context, thread or batch count");
    kiln_kernels_init();
    kiln_llama *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    kiln_status st = kiln_llama_bind(m, opt->path);
    if (st) goto fail;
    const kiln_llama_config *c = &m->cfg;
    m->n_ctx = opt->n_ctx ? opt->n_ctx : (c->n_ctx_train < 4096 ? c->n_ctx_train : 4096);
    if (m->n_ctx <= 0 || m->n_ctx > (1 << 20)) {
        st = kiln_fail(KILN_ERR_INVALID_ARG, "%s: context length %d is out of range", opt->path, m->n_ctx);
        goto fail;
    }
    m->n_batch = opt->n_batch ? opt->n_batch : 256;
    if (m->n_batch > m->n_ctx) m->n_batch = m->n_ctx;
    if ((st = alloc_runtime(m, opt->max_runtime_bytes)) || (st = kiln_pool_create(opt->n_threads, &m->pool)) ||
        (st = pack_weights(m)))
        goto fail;
    *out = m;
    return KILN_OK;
fail:
    kiln_llama_free(m);
    return st;
}

void kiln_llama_free(kiln_llama *m) {
    if (!m) return;
    kiln_packed_set_free(&m->packed);
    kiln_pool_free(m->pool);
    float *bufs[] = {m->k_cache, m->v_cache, m->x, m->xn, m->q, m->k, m->v, m->att, m->gate, m->up, m->scores,
                     m->rope_freq};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    kiln_owned_floats_free(&m->owned);
    free(m->layers);
    if (m->gguf) kiln_gguf_close(m->gguf);
    if (m->st) kiln_safetensors_close(m->st);
    if (m->l2c) kiln_llama2c_close(m->l2c);
    free(m);
}

const kiln_llama_config *kiln_llama_get_config(const kiln_llama *m) { return &m->cfg; }
int kiln_llama_n_ctx(const kiln_llama *m) { return m->n_ctx; }
size_t kiln_llama_runtime_bytes(const kiln_llama *m) { return m->runtime_bytes; }
const char *kiln_llama_format(const kiln_llama *m) { return m->format; }
const kiln_gguf *kiln_llama_gguf(const kiln_llama *m) { return m->gguf; }

/* ---- attention ------------------------------------------------------------------- */

typedef struct {
    kiln_llama *m;
    int layer, n, pos;
} attn_job;

/* One head over all n tokens of the batch. */
static void attn_head(void *ctx, int64_t h) {
    const attn_job *j = ctx;
    kiln_llama *m = j->m;
    const kiln_llama_config *c = &m->cfg;
    int hd = c->head_dim, q_dim = c->n_head * hd, kv_dim = c->n_head_kv * hd;
    int kvh = (int)h / (c->n_head / c->n_head_kv);
    float scale = 1.0f / sqrtf((float)hd);
    const float *kc = m->k_cache + (size_t)j->layer * m->n_ctx * kv_dim + (size_t)kvh * hd;
    const float *vc = m->v_cache + (size_t)j->layer * m->n_ctx * kv_dim + (size_t)kvh * hd;
    float *sc = m->scores + (size_t)h * m->n_ctx;
    /* causal: query i of the batch sees positions 0 .. pos + i */
    kiln_attention(m->q + (size_t)h * hd, (size_t)q_dim, j->n, kc, vc, (size_t)kv_dim, j->pos, hd, scale,
                   m->att + (size_t)h * hd, (size_t)q_dim, sc);
}

/* ---- forward -------------------------------------------------------------------- */

static kiln_status layer_forward(kiln_llama *m, int l, int n, int pos) {
    const kiln_llama_config *c = &m->cfg;
    const kiln_llama_layer *L = &m->layers[l];
    int hd = c->head_dim, q_dim = c->n_head * hd, kv_dim = c->n_head_kv * hd, d = c->n_embd;
    kiln_status st;
    for (int i = 0; i < n; i++) kiln_rmsnorm(m->xn + (size_t)i * d, m->x + (size_t)i * d, L->attn_norm, d, c->norm_eps);
    const kiln_tensor *qkv[] = {L->wq, L->wk, L->wv};
    float *qkv_out[] = {m->q, m->k, m->v};
    if ((st = kiln_matmul_many(3, qkv, m->xn, n, qkv_out, m->pool))) return st;
    for (int i = 0; i < n; i++) {
        float *q = m->q + (size_t)i * q_dim, *k = m->k + (size_t)i * kv_dim, *v = m->v + (size_t)i * kv_dim;
        if (L->bq) {
            kiln_add(q, L->bq, q_dim);
            kiln_add(k, L->bk, kv_dim);
            kiln_add(v, L->bv, kv_dim);
        }
        kiln_rope(q, c->n_head, hd, c->n_rot, pos + i, m->rope_freq, c->rope_neox);
        kiln_rope(k, c->n_head_kv, hd, c->n_rot, pos + i, m->rope_freq, c->rope_neox);
        size_t at = ((size_t)l * m->n_ctx + (size_t)(pos + i)) * kv_dim;
        memcpy(m->k_cache + at, k, (size_t)kv_dim * sizeof(float));
        memcpy(m->v_cache + at, v, (size_t)kv_dim * sizeof(float));
    }
    attn_job job = {m, l, n, pos};
    kiln_pool_for(m->pool, c->n_head, attn_head, &job);
    if ((st = kiln_matmul(L->wo, m->att, n, m->xn, m->pool))) return st;
    kiln_add(m->x, m->xn, (int64_t)n * d);

    for (int i = 0; i < n; i++) kiln_rmsnorm(m->xn + (size_t)i * d, m->x + (size_t)i * d, L->ffn_norm, d, c->norm_eps);
    const kiln_tensor *gate_up[] = {L->w_gate, L->w_up};
    float *gate_up_out[] = {m->gate, m->up};
    if ((st = kiln_matmul_many(2, gate_up, m->xn, n, gate_up_out, m->pool))) return st;
    kiln_swiglu(m->gate, m->gate, m->up, (int64_t)n * c->n_ff);
    if ((st = kiln_matmul(L->w_down, m->gate, n, m->xn, m->pool))) return st;
    kiln_add(m->x, m->xn, (int64_t)n * d);
    return KILN_OK;
}

/* One chunk of at most n_batch tokens. */
static kiln_status forward_chunk(kiln_llama *m, const int32_t *ids, int n, int pos, float *logits, bool all_logits) {
    const kiln_llama_config *c = &m->cfg;
    int d = c->n_embd;
    kiln_status st;
    for (int i = 0; i < n; i++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd->data + (size_t)ids[i] * m->tok_embd->nb[1];
        if ((st = kiln_dequantize_row(m->tok_embd->type, row, m->x + (size_t)i * d, d))) return st;
    }
    for (int l = 0; l < c->n_layer; l++) {
        if ((st = layer_forward(m, l, n, pos))) return st;
    }
    if (!logits) return KILN_OK;
    int first = all_logits ? 0 : n - 1;
    for (int i = first; i < n; i++)
        kiln_rmsnorm(m->xn + (size_t)i * d, m->x + (size_t)i * d, m->output_norm, d, c->norm_eps);
    return kiln_matmul(m->output, m->xn + (size_t)first * d, n - first, logits, m->pool);
}

kiln_status kiln_llama_forward(kiln_llama *m, const int32_t *ids, int n, int pos, float *logits, bool all_logits) {
    if (n <= 0) return kiln_fail(KILN_ERR_INVALID_ARG, "no tokens to run");
    if (pos < 0 || pos > m->n_ctx || n > m->n_ctx - pos)
        return kiln_fail(KILN_ERR_CONTEXT_FULL, "context full: %d tokens at position %d do not fit in %d", n, pos,
                         m->n_ctx);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->cfg.n_vocab)
            return kiln_fail(KILN_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%d)", ids[i],
                             m->cfg.n_vocab - 1);
    }
    for (int done = 0; done < n;) {
        int k = n - done < m->n_batch ? n - done : m->n_batch;
        bool last = done + k == n;
        float *out = NULL;
        if (logits && all_logits) out = logits + (size_t)done * m->cfg.n_vocab;
        else if (logits && last) out = logits;
        kiln_status st = forward_chunk(m, ids + done, k, pos + done, out, all_logits);
        if (st) return st;
        done += k;
    }
    return KILN_OK;
}
