/*
 * clip_text.c — the CLIP text encoder's forward pass, and its lifetime.
 *
 * For n_seq sequences of len tokens packed back to back (x is (T, n_embd)):
 *   x = token[id] + position[p]
 * then per layer (pre-LN, as CLIPEncoderLayer and OpenCLIP's ResidualAttentionBlock):
 *   h = LayerNorm1(x); q, k, v = h·Wqᵀ + bq, h·Wkᵀ + bk, h·Wvᵀ + bv
 *   att[i, h] = Σ_{j ≤ i} softmax_j(q[i,h]·k[j,h] / √hd) v[j,h]   // causal, own sequence
 *   x = x + att·Woᵀ + bo
 *   x = x + act(LayerNorm2(x)·W1ᵀ + b1)·W2ᵀ + b2     // act: quick_gelu or gelu
 * The states handed out are x after layer n_layer - skip, optionally through the
 * final LayerNorm; the pooled state is the final-normalized last layer at the eos
 * token, through the text projection.
 *
 * Determinism: matmuls are deterministic by construction (kernels.h); attention runs
 * one task per (sequence, head), each writing its own outputs in a fixed order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "clip_text_internal.h"
#include "kernels/kernels.h"

/* ---- lifetime ------------------------------------------------------------------- */

static void free_runtime(kiln_clip_text *m) {
    float *bufs[] = {m->x, m->h, m->q, m->k, m->v, m->att, m->ff, m->scores};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    m->x = m->h = m->q = m->k = m->v = m->att = m->ff = m->scores = NULL;
    m->cap_tokens = 0;
    m->runtime_bytes = 0;
}

/* Activations for T tokens (kept for later calls of at most as many). */
static kiln_status reserve(kiln_clip_text *m, int64_t T) {
    if (T <= m->cap_tokens) return KILN_OK;
    free_runtime(m);
    const size_t d = (size_t)m->cfg.n_embd, ff = (size_t)m->cfg.n_ff;
    float **bufs[] = {&m->x, &m->h, &m->q, &m->k, &m->v, &m->att, &m->ff, &m->scores};
    const size_t width[] = {d, d, d, d, d, d, ff, (size_t)m->cfg.n_head};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        size_t n;
        if (!kiln_mul_ok((size_t)T, width[i], &n) || n > SIZE_MAX / sizeof(float) - 16 ||
            !(*bufs[i] = kiln_aligned_alloc(64, n * sizeof(float) + 64))) {
            free_runtime(m);
            return kiln_fail(KILN_ERR_NOMEM, "out of memory for the text encoder's activations (%lld tokens)",
                             (long long)T);
        }
        m->runtime_bytes += n * sizeof(float);
    }
    m->cap_tokens = T;
    return KILN_OK;
}

/* fp32 panel copies of the matrices, as for BERT (an encoder only runs batches). */
static kiln_status pack_weights(kiln_clip_text *m) {
    const int per_layer = 6, n = m->cfg.n_layer * per_layer + 1;
    const kiln_tensor ***slots = calloc((size_t)n, sizeof *slots);
    if (!slots) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int l = 0; l < m->cfg.n_layer; l++) {
        kiln_clip_layer *L = &m->layers[l];
        const kiln_tensor **s[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_fc1, &L->w_fc2};
        for (int k = 0; k < per_layer; k++) slots[l * per_layer + k] = s[k];
    }
    slots[n - 1] = m->proj ? &m->proj : NULL;
    kiln_status st = kiln_pack_matrices((const kiln_tensor **const *)slots, n, KILN_PANELS_F32, NULL, m->pool, &m->packed);
    free(slots);
    return st;
}

kiln_status kiln_clip_text_create(const kiln_weight_list *w, const char *prefix, kiln_clip_names names,
                                  const kiln_clip_text_config *cfg, const char *path, kiln_pool *pool,
                                  kiln_clip_text **out) {
    *out = NULL;
    if (!w) return kiln_fail(KILN_ERR_INVALID_ARG, "no weights given");
    kiln_kernels_init();
    kiln_clip_text *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (cfg) m->cfg = *cfg;
    m->pool = pool;
    kiln_status st = kiln_clip_text_bind(m, w, prefix, names, cfg == NULL, path);
    if (!st) st = pack_weights(m);
    if (st) {
        kiln_clip_text_free(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}

void kiln_clip_text_free(kiln_clip_text *m) {
    if (!m) return;
    free_runtime(m);
    kiln_packed_set_free(&m->packed);
    kiln_owned_floats_free(&m->owned);
    free(m->layers);
    free(m);
}

const kiln_clip_text_config *kiln_clip_text_get_config(const kiln_clip_text *m) { return &m->cfg; }

size_t kiln_clip_text_heap_bytes(const kiln_clip_text *m) {
    const kiln_clip_text_config *c = &m->cfg;
    size_t b = m->runtime_bytes;
    for (int i = 0; i < m->packed.n; i++) b += m->packed.t[i].nb[1] * (size_t)m->packed.t[i].ne[1];
    /* f32 copies: per layer 2 norms, 4 biases of n_embd and b_fc1; the final norm */
    b += sizeof(float) * ((size_t)c->n_layer * (7 * (size_t)c->n_embd + (size_t)c->n_ff) + 2 * (size_t)c->n_embd);
    if (m->proj == &m->proj_t) b += sizeof(float) * (size_t)c->n_embd * (size_t)c->proj_dim;
    return b;
}

/* ---- attention ------------------------------------------------------------------- */

typedef struct {
    kiln_clip_text *m;
    int len;
} attn_job;

/* Task s * n_head + h: head h of sequence s, its len queries attending causally
 * (kiln_attention's causal window starting at the sequence's first token). */
static void attn_task(void *ctx, int64_t task) {
    const attn_job *j = ctx;
    kiln_clip_text *m = j->m;
    const kiln_clip_text_config *c = &m->cfg;
    int64_t s = task / c->n_head, h = task % c->n_head;
    size_t d = (size_t)c->n_embd, row = (size_t)s * (size_t)j->len * d + (size_t)h * (size_t)c->head_dim;
    float *scratch = m->scores + (size_t)s * (size_t)j->len * (size_t)c->n_head + (size_t)h * (size_t)j->len;
    kiln_attention(m->q + row, d, j->len, m->k + row, m->v + row, d, 0, c->head_dim,
                   1.0f / sqrtf((float)c->head_dim), m->att + row, d, scratch);
}

/* ---- forward -------------------------------------------------------------------- */

/* x·sigmoid(1.702x): the sigmoid approximation of gelu OpenAI trained CLIP with. */
static void quick_gelu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

static kiln_status layer_forward(kiln_clip_text *m, int l, int64_t T, int n_seq, int len) {
    const kiln_clip_text_config *c = &m->cfg;
    const kiln_clip_layer *L = &m->layers[l];
    const int64_t d = c->n_embd;
    kiln_status st;
    kiln_layernorm_rows(m->h, m->x, L->ln1_w, L->ln1_b, T, d, c->norm_eps);
    const kiln_tensor *qkv[] = {L->wq, L->wk, L->wv};
    float *qkv_out[] = {m->q, m->k, m->v};
    if ((st = kiln_matmul_many(3, qkv, m->h, T, qkv_out, m->pool))) return st;
    kiln_add_rows(m->q, L->bq, T, d);
    kiln_add_rows(m->k, L->bk, T, d);
    kiln_add_rows(m->v, L->bv, T, d);
    attn_job job = {m, len};
    kiln_pool_for(m->pool, (int64_t)n_seq * c->n_head, attn_task, &job);
    if ((st = kiln_matmul(L->wo, m->att, T, m->h, m->pool))) return st;
    kiln_add_rows(m->h, L->bo, T, d);
    kiln_add(m->x, m->h, T * d);

    kiln_layernorm_rows(m->h, m->x, L->ln2_w, L->ln2_b, T, d, c->norm_eps);
    if ((st = kiln_matmul(L->w_fc1, m->h, T, m->ff, m->pool))) return st;
    kiln_add_rows(m->ff, L->b_fc1, T, c->n_ff);
    if (c->quick_gelu)
        quick_gelu(m->ff, T * c->n_ff);
    else
        kiln_gelu(m->ff, T * c->n_ff, false);
    if ((st = kiln_matmul(L->w_fc2, m->ff, T, m->h, m->pool))) return st;
    kiln_add_rows(m->h, L->b_fc2, T, d);
    kiln_add(m->x, m->h, T * d);
    return KILN_OK;
}

static kiln_status embed_tokens(kiln_clip_text *m, const int32_t *ids, int64_t T, int len) {
    const int64_t d = m->cfg.n_embd;
    kiln_status st;
    for (int64_t t = 0; t < T; t++) {
        const uint8_t *w = (const uint8_t *)m->tok_embd->data + (size_t)ids[t] * m->tok_embd->nb[1];
        const uint8_t *pe = (const uint8_t *)m->pos_embd->data + (size_t)(t % len) * m->pos_embd->nb[1];
        if ((st = kiln_dequantize_row(m->tok_embd->type, w, m->x + t * d, d)) ||
            (st = kiln_dequantize_row(m->pos_embd->type, pe, m->h, d)))
            return st;
        kiln_add(m->x + t * d, m->h, d);
    }
    return KILN_OK;
}

/* Where sequence s's pooled state is: its first eos_id, or with HF's legacy eos_id 2
 * its highest id (the end-of-text token is the vocabulary's last). */
static int eos_position(const kiln_clip_text_config *c, const int32_t *ids, int len) {
    int best = 0;
    for (int i = 0; i < len; i++) {
        if (c->eos_id == 2 ? ids[i] > ids[best] : ids[i] == c->eos_id) {
            best = i;
            if (c->eos_id != 2) return i;
        }
    }
    return c->eos_id == 2 ? best : len - 1;
}

static kiln_status pool_states(kiln_clip_text *m, const int32_t *ids, int n_seq, int len, float *pooled) {
    const kiln_clip_text_config *c = &m->cfg;
    const int64_t d = c->n_embd;
    for (int s = 0; s < n_seq; s++) { /* gather each sequence's eos state (final norm) into h's rows */
        int p = eos_position(c, ids + (size_t)s * len, len);
        kiln_layernorm(m->h + (size_t)s * d, m->x + ((size_t)s * len + p) * d, m->final_w, m->final_b, d, c->norm_eps);
    }
    if (!m->proj) {
        memcpy(pooled, m->h, (size_t)n_seq * d * sizeof(float));
        return KILN_OK;
    }
    return kiln_matmul(m->proj, m->h, n_seq, pooled, m->pool);
}

kiln_status kiln_clip_text_forward(kiln_clip_text *m, const int32_t *ids, int n_seq, int len, int skip,
                                   bool final_norm, float *hidden, float *pooled) {
    const kiln_clip_text_config *c = &m->cfg;
    if (!ids || !hidden) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_clip_text_forward: a NULL buffer");
    if (n_seq <= 0 || n_seq > (1 << 16) || len <= 0 || len > c->n_pos)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%d sequences of %d tokens: the text encoder takes 1 to %d tokens", n_seq,
                         len, c->n_pos);
    if (skip < 1 || skip > c->n_layer)
        return kiln_fail(KILN_ERR_INVALID_ARG, "clip skip %d is outside 1..%d", skip, c->n_layer);
    const int64_t T = (int64_t)n_seq * len, d = c->n_embd;
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->n_vocab)
            return kiln_fail(KILN_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%d)", ids[t],
                             c->n_vocab - 1);
    kiln_status st = reserve(m, T);
    if (!st) st = embed_tokens(m, ids, T, len);
    const int last = c->n_layer - skip; /* the layer whose states are handed out */
    for (int l = 0; l < c->n_layer && !st; l++) {
        st = layer_forward(m, l, T, n_seq, len);
        if (st || l != last) continue;
        if (final_norm)
            kiln_layernorm_rows(hidden, m->x, m->final_w, m->final_b, T, d, c->norm_eps);
        else
            memcpy(hidden, m->x, (size_t)(T * d) * sizeof(float));
        if (!pooled) break; /* later layers only feed the pooled state */
    }
    if (!st && pooled) st = pool_states(m, ids, n_seq, len, pooled);
    return st;
}
