/*
 * sd_blocks.c — running the shared Stable Diffusion blocks (sd_blocks.h) on
 * channels-last maps, as diffusers' modules compute them:
 *
 *   ResnetBlock2D       h = conv1(silu(GN1(x))) + temb_proj(silu(temb));
 *                       y = shortcut(x) + conv2(silu(GN2(h)))
 *   Transformer2DModel  h = proj_in(GN(x)) (eps 1e-6); per block
 *                         h += attn1(LN1(h)); h += attn2(LN2(h), context);
 *                         h += W2·(a ⊙ gelu(g)) with [a, g] = W1·LN3(h)
 *                       y = proj_out(h) + x
 *   VAE attention       y = x + Wo·softmax(QKᵀ/√C)V of GN(x), one head
 *
 * Determinism: every step is a matmul, a per-row norm, or attention split into tasks
 * that each write their own rows in a fixed order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "sd_blocks.h"

/* ---- maps ------------------------------------------------------------------------- */

struct sd_slab {
    float *p;
    size_t cap; /* floats */
    bool used;
};

float *sd_heap_get(sd_heap *h, size_t n) {
    if (!h) return kiln_aligned_alloc(64, n * sizeof(float) + 64);
    int best = -1;
    for (int i = 0; i < h->n; i++)
        if (!h->s[i].used && h->s[i].cap >= n && (best < 0 || h->s[i].cap < h->s[best].cap)) best = i;
    if (best >= 0) {
        h->s[best].used = true;
        return h->s[best].p;
    }
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 32;
        struct sd_slab *s = realloc(h->s, (size_t)cap * sizeof *s);
        if (!s) return NULL;
        h->s = s;
        h->cap = cap;
    }
    float *p = kiln_aligned_alloc(64, n * sizeof(float) + 64);
    if (p) h->s[h->n++] = (struct sd_slab){p, n, true};
    return p;
}

void sd_heap_put(sd_heap *h, float *p) {
    if (!p) return;
    if (!h) {
        free(p);
        return;
    }
    for (int i = 0; i < h->n; i++)
        if (h->s[i].p == p) {
            h->s[i].used = false;
            return;
        }
    free(p); /* not ours */
}

void sd_heap_free(sd_heap *h) {
    for (int i = 0; i < h->n; i++) free(h->s[i].p);
    free(h->s);
    memset(h, 0, sizeof *h);
}

kiln_status sd_map_alloc(const sd_ctx *x, sd_map *m, int h, int w, int c) {
    size_t n;
    memset(m, 0, sizeof *m);
    if (h <= 0 || w <= 0 || c <= 0 || !kiln_mul_ok((size_t)h * (size_t)w, (size_t)c, &n) ||
        n > SIZE_MAX / sizeof(float) / 2)
        return kiln_fail(KILN_ERR_INVALID_ARG, "a %d x %d x %d map is out of range", h, w, c);
    m->heap = x->heap;
    m->d = sd_heap_get(x->heap, n); /* not cleared: every producer writes all of it */
    if (!m->d) return kiln_fail(KILN_ERR_NOMEM, "out of memory for a %d x %d x %d map (%zu MiB)", h, w, c, (n * 4) >> 20);
    m->h = h;
    m->w = w;
    m->c = c;
    return KILN_OK;
}

void sd_map_free(sd_map *m) {
    sd_heap_put(m->heap, m->d);
    m->d = NULL;
}

void sd_trace(sd_trace_fn fn, void *user, const char *stage, int i, const sd_map *m) {
    if (!fn) return;
    char name[48];
    if (i >= 0)
        snprintf(name, sizeof name, "%s.%d", stage, i);
    else
        snprintf(name, sizeof name, "%s", stage);
    fn(user, name, m->d, m->h, m->w, m->c);
}

static int64_t pixels(const sd_map *m) { return (int64_t)m->h * m->w; }

/* ---- small pieces -------------------------------------------------------------------- */

kiln_status sd_linear_run(const sd_ctx *x, const sd_linear *l, const float *in, int64_t n, float *y) {
    kiln_status st = kiln_matmul(l->w, in, n, y, x->pool);
    if (!st && l->b) kiln_add_rows(y, l->b, n, l->cout);
    return st;
}

kiln_status sd_conv_run(const sd_ctx *x, const sd_conv *c, const sd_map *in, int stride, kiln_pad2d pad, sd_map *out) {
    int ho, wo;
    if (in->c != c->cin || !kiln_conv2d_out_size(in->h, in->w, c->k, c->k, stride, pad, &ho, &wo))
        return kiln_fail(KILN_ERR_INVALID_ARG, "a %d x %d x %d map does not fit a %dx%d convolution of %d channels",
                         in->h, in->w, in->c, c->k, c->k, c->cin);
    kiln_status st = sd_map_alloc(x, out, ho, wo, c->cout);
    if (!st) st = kiln_conv2d(&c->w, c->b, in->d, in->h, in->w, in->c, c->k, c->k, stride, pad, out->d, x->scratch, x->scratch_bytes, x->pool);
    if (st) sd_map_free(out);
    return st;
}

static kiln_status group_norm(const sd_ctx *x, const sd_norm *n, const sd_map *in, float eps, bool silu, sd_map *out) {
    kiln_status st = sd_map_alloc(x, out, in->h, in->w, in->c);
    if (!st) st = kiln_group_norm(out->d, in->d, pixels(in), in->c, x->groups, n->w, n->b, eps, silu);
    if (st) sd_map_free(out);
    return st;
}

kiln_status sd_norm_silu_conv(const sd_ctx *x, const sd_norm *n, const sd_conv *c, const sd_map *in, sd_map *out) {
    sd_map h;
    kiln_status st = group_norm(x, n, in, x->eps, true, &h);
    if (st) return st;
    st = sd_conv_run(x, c, &h, 1, kiln_pad2d_same(c->k / 2), out);
    sd_map_free(&h);
    return st;
}

kiln_status sd_upsample_run(const sd_ctx *x, const sd_conv *c, const sd_map *in, sd_map *out) {
    sd_map up;
    if (in->h > (1 << 14) || in->w > (1 << 14)) return kiln_fail(KILN_ERR_INVALID_ARG, "map too large to upsample");
    kiln_status st = sd_map_alloc(x, &up, 2 * in->h, 2 * in->w, in->c);
    if (st) return st;
    kiln_upsample_nearest2x(in->d, in->h, in->w, in->c, up.d);
    st = sd_conv_run(x, c, &up, 1, kiln_pad2d_same(1), out);
    sd_map_free(&up);
    return st;
}

/* ---- resnet ----------------------------------------------------------------------------- */

kiln_status sd_resnet_run(const sd_ctx *x, const sd_resnet *r, const sd_map *in, const float *temb_out, sd_map *out) {
    sd_map h, g;
    if (in->c != r->cin)
        return kiln_fail(KILN_ERR_INVALID_ARG, "a map of %d channels given to a resnet block of %d", in->c, r->cin);
    kiln_status st = group_norm(x, &r->norm1, in, x->eps, true, &g);
    if (st) return st;
    st = sd_conv_run(x, &r->conv1, &g, 1, kiln_pad2d_same(1), &h);
    sd_map_free(&g);
    if (st) return st;
    const int64_t n = pixels(&h);
    if (temb_out)
        kiln_add_rows(h.d, temb_out, n, r->cout);
    st = kiln_group_norm(h.d, h.d, n, r->cout, x->groups, r->norm2.w, r->norm2.b, x->eps, true);
    if (!st) st = sd_conv_run(x, &r->conv2, &h, 1, kiln_pad2d_same(1), out);
    if (st) {
        sd_map_free(&h);
        return st;
    }
    if (r->cin != r->cout) { /* the shortcut's 1x1 conv reuses h's memory (cout per pixel) */
        st = sd_linear_run(x, &r->shortcut, in->d, n, h.d);
        if (!st) kiln_add(out->d, h.d, n * r->cout);
    } else {
        kiln_add(out->d, in->d, n * r->cout);
    }
    sd_map_free(&h);
    if (st) sd_map_free(out);
    return st;
}

/* ---- attention --------------------------------------------------------------------------- */

/* out (n, c) = attention of rows x (n, c) over kv (m, kv_dim): Wo·softmax(QKᵀ/√hd)V + bo. */
static kiln_status attention_run(const sd_ctx *x, const sd_attn *a, int heads, const float *in, int64_t n,
                                 const float *kv, int64_t m, float *out) {
    const int c = a->q.cout;
    float *q = NULL, *k = NULL, *v = NULL, *att = NULL;
    size_t nq, nk;
    kiln_status st = KILN_OK;
    if (!kiln_mul_ok((size_t)n, (size_t)c, &nq) || !kiln_mul_ok((size_t)m, (size_t)c, &nk) ||
        !(q = sd_heap_get(x->heap, nq)) || !(att = sd_heap_get(x->heap, nq)) || !(k = sd_heap_get(x->heap, nk)) ||
        !(v = sd_heap_get(x->heap, nk)))
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory for attention over %lld x %lld tokens", (long long)n,
                       (long long)m);
    if (!st) st = sd_linear_run(x, &a->q, in, n, q);
    if (!st) st = sd_linear_run(x, &a->k, kv, m, k);
    if (!st) st = sd_linear_run(x, &a->v, kv, m, v);
    if (!st) st = kiln_attention_mh(q, k, v, n, m, c, heads, x->bf16, att, x->pool);
    if (!st) st = sd_linear_run(x, &a->out, att, n, out);
    sd_heap_put(x->heap, q);
    sd_heap_put(x->heap, k);
    sd_heap_put(x->heap, v);
    sd_heap_put(x->heap, att);
    return st;
}

static kiln_status tblock_run(const sd_ctx *x, const sd_tblock *b, int heads, float *h, int64_t n, int c,
                              const float *ctx, int n_ctx, float *nrm, float *tmp, float *ff) {
    kiln_status st;
    kiln_layernorm_rows(nrm, h, b->norm1.w, b->norm1.b, n, c, 1e-5f);
    if ((st = attention_run(x, &b->attn1, heads, nrm, n, nrm, n, tmp))) return st;
    kiln_add(h, tmp, n * c);
    kiln_layernorm_rows(nrm, h, b->norm2.w, b->norm2.b, n, c, 1e-5f);
    if ((st = attention_run(x, &b->attn2, heads, nrm, n, ctx, n_ctx, tmp))) return st;
    kiln_add(h, tmp, n * c);
    kiln_layernorm_rows(nrm, h, b->norm3.w, b->norm3.b, n, c, 1e-5f);
    if ((st = sd_linear_run(x, &b->ff_in, nrm, n, ff))) return st;
    float *gated = ff + (size_t)n * 8 * c; /* (n, 4c) after the (n, 8c) projection */
    kiln_geglu(gated, ff, n, 4 * (int64_t)c);
    if ((st = sd_linear_run(x, &b->ff_out, gated, n, tmp))) return st;
    kiln_add(h, tmp, n * c);
    return KILN_OK;
}

kiln_status sd_transformer_run(const sd_ctx *x, const sd_transformer *t, const sd_map *in, const float *ctx, int n_ctx,
                               sd_map *out) {
    const int c = t->c;
    const int64_t n = pixels(in);
    if (in->c != c) return kiln_fail(KILN_ERR_INVALID_ARG, "a map of %d channels given to a transformer of %d", in->c, c);
    sd_map g;
    float *h = NULL, *nrm = NULL, *tmp = NULL, *ff = NULL;
    kiln_status st = group_norm(x, &t->norm, in, 1e-6f, false, &g);
    if (st) return st;
    size_t nc = (size_t)n * (size_t)c; /* fits: the map was allocated */
    if (!(h = sd_heap_get(x->heap, nc)) || !(nrm = sd_heap_get(x->heap, nc)) || !(tmp = sd_heap_get(x->heap, nc)) ||
        !(ff = sd_heap_get(x->heap, 12 * nc)))
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory for a transformer block over %lld tokens", (long long)n);
    if (!st) st = sd_linear_run(x, &t->proj_in, g.d, n, h);
    for (int i = 0; i < t->n_blocks && !st; i++)
        st = tblock_run(x, &t->blocks[i], t->heads, h, n, c, ctx, n_ctx, nrm, tmp, ff);
    if (!st) st = sd_map_alloc(x, out, in->h, in->w, c);
    if (!st && (st = sd_linear_run(x, &t->proj_out, h, n, out->d))) sd_map_free(out);
    if (!st) kiln_add(out->d, in->d, n * c);
    sd_map_free(&g);
    sd_heap_put(x->heap, h);
    sd_heap_put(x->heap, nrm);
    sd_heap_put(x->heap, tmp);
    sd_heap_put(x->heap, ff);
    return st;
}

kiln_status sd_vae_attn_run(const sd_ctx *x, const sd_vae_attn *a, const sd_map *in, sd_map *out) {
    sd_map g;
    kiln_status st = group_norm(x, &a->norm, in, x->eps, false, &g);
    if (st) return st;
    const int64_t n = pixels(in);
    if (!(st = sd_map_alloc(x, out, in->h, in->w, in->c)) &&
        (st = attention_run(x, &a->attn, 1, g.d, n, g.d, n, out->d)))
        sd_map_free(out);
    if (!st) kiln_add(out->d, in->d, n * in->c);
    sd_map_free(&g);
    return st;
}
