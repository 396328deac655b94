/*
 * bert.c — the BERT encoder forward pass, and the model's lifetime.
 *
 * For T tokens of several sequences packed back to back (x is (T, n_embd)):
 *   x = LayerNorm(word[id] + position[p] + type[0])        // p: position in its sequence
 * then per layer (post-LN, as BertModel):
 *   q, k, v = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv           // (T, n_embd) each
 *   att[i, h] = Σ_j softmax_j(q[i,h]·k[j,h] / √hd) v[j,h]   // j over i's own sequence
 *   x = LayerNorm(x + att·Woᵀ + bo)
 *   x = LayerNorm(x + gelu(x·Wupᵀ + bup)·Wdownᵀ + bdown)
 * The result is the last layer's x: one state per token.
 *
 * Determinism: matmuls are deterministic by construction (kernels.h); attention runs
 * one task per (sequence, head), each computing its own outputs in a fixed order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "bert_internal.h"
#include "kernels/kernels.h"

/* ---- lifetime ------------------------------------------------------------------- */

static kiln_status alloc_f32(float **p, size_t a, size_t b, size_t *total) {
    size_t n;
    if (!kiln_mul_ok(a, b, &n)) return kiln_fail(KILN_ERR_NOMEM, "buffer size overflows");
    *p = kiln_aligned_alloc(64, n * sizeof(float) + 64);
    if (!*p) return kiln_fail(KILN_ERR_NOMEM, "out of memory allocating %zu MiB", (n * sizeof(float)) >> 20);
    memset(*p, 0, n * sizeof(float));
    *total += n * sizeof(float);
    return KILN_OK;
}

static kiln_status alloc_runtime(kiln_bert *m) {
    const kiln_bert_config *c = &m->cfg;
    size_t T = (size_t)m->max_batch, d = (size_t)c->n_embd, *tot = &m->runtime_bytes;
    kiln_status st;
    if ((st = alloc_f32(&m->x, T, d, tot)) || (st = alloc_f32(&m->q, T, d, tot)) ||
        (st = alloc_f32(&m->k, T, d, tot)) || (st = alloc_f32(&m->v, T, d, tot)) ||
        (st = alloc_f32(&m->att, T, d, tot)) || (st = alloc_f32(&m->tmp, T, d, tot)) ||
        (st = alloc_f32(&m->ff, T, (size_t)c->n_ff, tot)) || (st = alloc_f32(&m->scores, T, (size_t)c->n_head, tot)) ||
        (st = alloc_f32(&m->type0, d, 1, tot)))
        return kiln_fail_prefix(st, "activations for %d tokens", m->max_batch);
    return kiln_dequantize_row(m->type_embd->type, m->type_embd->data, m->type0, c->n_embd);
}

/* Repacks the layers' matrices the kernels of this CPU read faster in their own layout
 * (kiln_weight_pack), float ones as fp32 panels: an encoder always multiplies batches,
 * and panels made once at load save the conversion every call would make (MiniLM-L6,
 * one 16-token sentence: 3.2 -> 1.7 ms) and make a sequence's result independent of
 * the batch it runs in. The embedding tables keep their file layout (rows are gathered). */
static kiln_status pack_weights(kiln_bert *m) {
    const int per_layer = 6, n = m->cfg.n_layer * per_layer;
    const kiln_tensor ***slots = calloc((size_t)n, sizeof *slots);
    if (!slots) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int l = 0; l < m->cfg.n_layer; l++) {
        kiln_bert_layer *L = &m->layers[l];
        const kiln_tensor **s[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_up, &L->w_down};
        for (int k = 0; k < per_layer; k++) slots[l * per_layer + k] = s[k];
    }
    kiln_status st = kiln_pack_matrices((const kiln_tensor **const *)slots, n, KILN_PANELS_F32, NULL, m->pool, &m->packed);
    free(slots);
    return st;
}

kiln_status kiln_bert_load(const kiln_bert_options *opt, kiln_bert **out) {
    *out = NULL;
    if (!opt || !opt->path) return kiln_fail(KILN_ERR_INVALID_ARG, "no model path given");
    if (opt->n_threads < 0 || opt->max_batch < 0 || opt->max_batch > (1 << 20))
        return kiln_fail(KILN_ERR_INVALID_ARG, "thread count or batch size out of range");
    kiln_kernels_init();
    kiln_bert *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    kiln_status st = kiln_bert_bind(m, opt->path);
    if (st) goto fail;
    m->max_batch = opt->max_batch ? opt->max_batch : 1024;
    if (m->max_batch < m->cfg.max_tokens) m->max_batch = m->cfg.max_tokens; /* one whole sequence fits */
    if ((st = alloc_runtime(m)) || (st = kiln_pool_create(opt->n_threads, &m->pool)) || (st = pack_weights(m)))
        goto fail;
    *out = m;
    return KILN_OK;
fail:
    kiln_bert_free(m);
    return st;
}

void kiln_bert_free(kiln_bert *m) {
    if (!m) return;
    kiln_packed_set_free(&m->packed);
    kiln_pool_free(m->pool);
    float *bufs[] = {m->x, m->q, m->k, m->v, m->att, m->tmp, m->ff, m->scores, m->type0};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    kiln_owned_floats_free(&m->owned);
    free(m->layers);
    if (m->gguf) kiln_gguf_close(m->gguf);
    if (m->st) kiln_safetensors_close(m->st);
    free(m);
}

const kiln_bert_config *kiln_bert_get_config(const kiln_bert *m) { return &m->cfg; }
int kiln_bert_max_batch(const kiln_bert *m) { return m->max_batch; }

size_t kiln_bert_heap_bytes(const kiln_bert *m) {
    const kiln_bert_config *c = &m->cfg;
    size_t b = m->runtime_bytes;
    for (int i = 0; i < m->packed.n; i++) b += m->packed.t[i].nb[1] * (size_t)m->packed.t[i].ne[1];
    /* f32 copies of the vectors: per layer 4 biases and 2 norms of n_embd, b_up, b_down */
    b += sizeof(float) * ((size_t)c->n_layer * (9 * (size_t)c->n_embd + (size_t)c->n_ff) + 2 * (size_t)c->n_embd);
    return b;
}

const kiln_gguf *kiln_bert_gguf(const kiln_bert *m) { return m->gguf; }
const char *kiln_bert_format(const kiln_bert *m) { return m->format; }

/* ---- attention ------------------------------------------------------------------- */

typedef struct {
    kiln_bert *m;
    const int *lens, *starts;
} attn_job;

/* Task s * n_head + h: head h over every query of sequence s, each seeing all of the
 * sequence's keys (kiln_attention with one query whose causal window is the whole
 * sequence). */
static void attn_task(void *ctx, int64_t task) {
    const attn_job *j = ctx;
    kiln_bert *m = j->m;
    const kiln_bert_config *c = &m->cfg;
    int s = (int)(task / c->n_head), h = (int)(task % c->n_head), hd = c->head_dim, d = c->n_embd;
    int len = j->lens[s];
    size_t first = (size_t)j->starts[s], off = (size_t)h * hd;
    float scale = 1.0f / sqrtf((float)hd);
    float *scratch = m->scores + first * c->n_head + (size_t)h * len;
    const float *k = m->k + first * d + off, *v = m->v + first * d + off;
    for (int i = 0; i < len; i++) {
        size_t row = (first + (size_t)i) * d + off;
        kiln_attention(m->q + row, (size_t)d, 1, k, v, (size_t)d, len - 1, hd, scale, m->att + row, (size_t)d, scratch);
    }
}

/* ---- forward -------------------------------------------------------------------- */

/* x = LayerNorm(x + y) row by row. */
static void residual_norm(float *x, float *y, const float *w, const float *b, int T, int d, float eps) {
    kiln_add(y, x, (int64_t)T * d);
    kiln_layernorm_rows(x, y, w, b, T, d, eps);
}

static kiln_status layer_forward(kiln_bert *m, int l, int T, int n_seq, const int *lens, const int *starts) {
    const kiln_bert_config *c = &m->cfg;
    const kiln_bert_layer *L = &m->layers[l];
    int d = c->n_embd;
    kiln_status st;
    const kiln_tensor *qkv[] = {L->wq, L->wk, L->wv};
    float *qkv_out[] = {m->q, m->k, m->v};
    if ((st = kiln_matmul_many(3, qkv, m->x, T, qkv_out, m->pool))) return st;
    kiln_add_rows(m->q, L->bq, T, d);
    kiln_add_rows(m->k, L->bk, T, d);
    kiln_add_rows(m->v, L->bv, T, d);
    attn_job job = {m, lens, starts};
    kiln_pool_for(m->pool, (int64_t)n_seq * c->n_head, attn_task, &job);
    if ((st = kiln_matmul(L->wo, m->att, T, m->tmp, m->pool))) return st;
    kiln_add_rows(m->tmp, L->bo, T, d);
    residual_norm(m->x, m->tmp, L->attn_norm_w, L->attn_norm_b, T, d, c->norm_eps);

    if ((st = kiln_matmul(L->w_up, m->x, T, m->ff, m->pool))) return st;
    kiln_add_rows(m->ff, L->b_up, T, c->n_ff);
    kiln_gelu(m->ff, (int64_t)T * c->n_ff, c->gelu_tanh);
    if ((st = kiln_matmul(L->w_down, m->ff, T, m->tmp, m->pool))) return st;
    kiln_add_rows(m->tmp, L->b_down, T, d);
    residual_norm(m->x, m->tmp, L->out_norm_w, L->out_norm_b, T, d, c->norm_eps);
    return KILN_OK;
}

static kiln_status embed_tokens(kiln_bert *m, const int32_t *ids, const int *lens, int n_seq) {
    const kiln_bert_config *c = &m->cfg;
    int d = c->n_embd;
    size_t t = 0;
    kiln_status st;
    for (int s = 0; s < n_seq; s++) {
        for (int p = 0; p < lens[s]; p++, t++) {
            float *x = m->x + t * d, *tmp = m->tmp + t * d;
            const uint8_t *w = (const uint8_t *)m->tok_embd->data + (size_t)ids[t] * m->tok_embd->nb[1];
            const uint8_t *pe = (const uint8_t *)m->pos_embd->data + (size_t)p * m->pos_embd->nb[1];
            if ((st = kiln_dequantize_row(m->tok_embd->type, w, tmp, d)) ||
                (st = kiln_dequantize_row(m->pos_embd->type, pe, x, d)))
                return st;
            kiln_add(tmp, x, d);
            kiln_add(tmp, m->type0, d);
            kiln_layernorm(x, tmp, m->embd_norm_w, m->embd_norm_b, d, c->norm_eps);
        }
    }
    return KILN_OK;
}

kiln_status kiln_bert_forward(kiln_bert *m, const int32_t *ids, const int *lens, int n_seq, float *out) {
    const kiln_bert_config *c = &m->cfg;
    if (n_seq <= 0) return kiln_fail(KILN_ERR_INVALID_ARG, "no sequences to run");
    if (!ids || !lens || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_bert_forward: a NULL buffer");
    int *starts = kiln_malloc_array((size_t)n_seq, sizeof *starts);
    if (!starts) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    int64_t T = 0;
    kiln_status st = KILN_OK;
    for (int s = 0; s < n_seq && !st; s++) {
        if (lens[s] <= 0 || lens[s] > c->n_pos)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "sequence %d has %d tokens; the model takes 1 to %d", s, lens[s],
                           c->n_pos);
        starts[s] = (int)T;
        T += lens[s];
        if (!st && T > m->max_batch)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "%lld tokens in one batch; at most %d", (long long)T, m->max_batch);
    }
    for (int64_t t = 0; t < T && !st; t++) {
        if (ids[t] < 0 || ids[t] >= c->n_vocab)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%d)", ids[t],
                           c->n_vocab - 1);
    }
    if (!st) st = embed_tokens(m, ids, lens, n_seq);
    for (int l = 0; l < c->n_layer && !st; l++) st = layer_forward(m, l, (int)T, n_seq, lens, starts);
    if (!st) memcpy(out, m->x, (size_t)T * c->n_embd * sizeof(float));
    free(starts);
    return st;
}
