/*
 * sd_blocks_bind.c — binds the shared Stable Diffusion blocks (sd_blocks.h) by
 * diffusers' names, checking every shape against the block's channels.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "sd_blocks.h"

/* ---- ownership ------------------------------------------------------------------- */

static kiln_status keep_mem(sd_owned *o, void *p) {
    if (o->n_mem == o->cap_mem) {
        int cap = o->cap_mem ? 2 * o->cap_mem : 64;
        void **q = realloc(o->mem, (size_t)cap * sizeof *q);
        if (!q) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        o->mem = q;
        o->cap_mem = cap;
    }
    o->mem[o->n_mem++] = p;
    return KILN_OK;
}

struct sd_conv_job {
    const kiln_tensor *src;
    sd_conv *dst;
    bool bf16;
    void *mem;
    kiln_status st;
    char name[400]; /* "FILE: tensor 'NAME'", for errors */
};

static kiln_status keep_conv(sd_owned *o, const kiln_tensor *t, sd_conv *dst, bool bf16, const char *path,
                             const char *name) {
    if (o->n_convs == o->cap_convs) {
        int cap = o->cap_convs ? 2 * o->cap_convs : 64;
        struct sd_conv_job *q = realloc(o->convs, (size_t)cap * sizeof *q);
        if (!q) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        o->convs = q;
        o->cap_convs = cap;
    }
    struct sd_conv_job *j = &o->convs[o->n_convs++];
    *j = (struct sd_conv_job){.src = t, .dst = dst, .bf16 = bf16};
    snprintf(j->name, sizeof j->name, "%.160s: tensor '%.200s'", path, name);
    return KILN_OK;
}

static void conv_task(void *ctx, int64_t i) {
    struct sd_conv_job *j = (struct sd_conv_job *)ctx + i;
    j->st = kiln_conv_weight_prepare(j->src, j->bf16, &j->dst->w, &j->mem);
}

/* Every conv weight reordered (and packed) in parallel, one task each. */
static kiln_status prepare_convs(sd_owned *o, kiln_pool *pool) {
    kiln_pool_for(pool, o->n_convs, conv_task, o->convs);
    kiln_status st = KILN_OK;
    for (int i = 0; i < o->n_convs; i++) {
        struct sd_conv_job *j = &o->convs[i];
        if (j->st) {
            if (!st) st = kiln_fail(j->st, "%s: cannot prepare the convolution", j->name);
            free(j->mem);
        } else if (!st && (st = keep_mem(o, j->mem))) {
            free(j->mem);
        } else if (st) {
            free(j->mem);
        } else {
            o->bytes += j->dst->w.nb[1] * (size_t)j->dst->w.ne[1];
        }
    }
    free(o->convs);
    o->convs = NULL;
    o->n_convs = o->cap_convs = 0;
    return st;
}

static kiln_status keep_slot(sd_owned *o, const kiln_tensor **slot) {
    if (o->n_slots == o->cap_slots) {
        int cap = o->cap_slots ? 2 * o->cap_slots : 64;
        const kiln_tensor ***q = realloc(o->slots, (size_t)cap * sizeof *q);
        if (!q) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        o->slots = q;
        o->cap_slots = cap;
    }
    o->slots[o->n_slots++] = slot;
    return KILN_OK;
}

kiln_status sd_owned_pack(sd_owned *o, bool bf16, kiln_pool *pool) {
    kiln_status st = prepare_convs(o, pool);
    if (st || !o->n_slots) return st;
    st = kiln_pack_matrices((const kiln_tensor **const *)o->slots, o->n_slots,
                                        bf16 ? KILN_PANELS_BF16 : KILN_PANELS_F32, NULL, pool, &o->packed);
    free(o->slots);
    o->slots = NULL;
    o->n_slots = o->cap_slots = 0;
    return st;
}

kiln_status sd_conv_scratch(int max_cin, kiln_pool *pool, void **p, size_t *bytes) {
    *p = NULL;
    *bytes = 0;
    if (max_cin <= 0) return KILN_OK;
    const size_t n = kiln_conv2d_scratch_bytes(max_cin, 3, 3, kiln_pool_size(pool));
    if (!(*p = kiln_aligned_alloc(64, n))) return kiln_fail(KILN_ERR_NOMEM, "out of memory for convolution scratch");
    *bytes = n;
    return KILN_OK;
}

size_t sd_owned_bytes(const sd_owned *o) {
    size_t b = o->bytes;
    for (int i = 0; i < o->packed.n; i++) b += o->packed.t[i].nb[1] * (size_t)o->packed.t[i].ne[1];
    return b;
}

void sd_owned_free(sd_owned *o) {
    free(o->convs);
    kiln_owned_floats_free(&o->floats);
    for (int i = 0; i < o->n_mem; i++) free(o->mem[i]);
    free(o->mem);
    free(o->slots);
    kiln_packed_set_free(&o->packed);
    memset(o, 0, sizeof *o);
}

/* ---- names ------------------------------------------------------------------------- */

static const kiln_tensor *find_suffix(const sd_binder *b, char *name, size_t n, const char *base, const char *suffix) {
    snprintf(name, n, "%s%s%s", b->prefix ? b->prefix : "", base, suffix);
    return kiln_weights_find(b->w, name);
}

static kiln_status bind_vec(const sd_binder *b, const char *base, const char *suffix, int n, const float **dst) {
    char name[400];
    const kiln_tensor *t = find_suffix(b, name, sizeof name, base, suffix);
    kiln_status st = kiln_bind_vector_copy(t, b->path, name, n, &b->own->floats, dst);
    if (!st) b->own->bytes += (size_t)n * sizeof(float);
    return st;
}

/* ---- blocks ------------------------------------------------------------------------- */

kiln_status sd_bind_conv(const sd_binder *b, sd_conv *c, int cin, int cout, int k, const char *fmt, ...) {
    char base[320], name[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(base, sizeof base, fmt, ap);
    va_end(ap);
    const kiln_tensor *t = find_suffix(b, name, sizeof name, base, ".weight");
    if (!t) return kiln_fail(KILN_ERR_FORMAT, "%s: missing tensor '%s'", b->path, name);
    if (t->ne[0] != k || t->ne[1] != k || t->ne[2] != cin || t->ne[3] != cout)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected (%d, %d, %d, %d)",
                         b->path, name, (long long)t->ne[3], (long long)t->ne[2], (long long)t->ne[1],
                         (long long)t->ne[0], cout, cin, k, k);
    if (t->type != KILN_F32 && t->type != KILN_F16 && t->type != KILN_BF16)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s (F32, F16 or BF16 convolutions)", b->path,
                         name, kiln_dtype_name(t->type));
    kiln_status st = keep_conv(b->own, t, c, b->bf16, b->path, name); /* prepared in parallel by sd_owned_pack */
    if (st) return st;
    if (k > 1 && cin > b->own->max_cin) b->own->max_cin = cin;
    c->k = k;
    c->cin = cin;
    c->cout = cout;
    return bind_vec(b, base, ".bias", cout, &c->b);
}

kiln_status sd_bind_linear(const sd_binder *b, sd_linear *l, int cin, int cout, bool bias, const char *fmt, ...) {
    char base[320], name[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(base, sizeof base, fmt, ap);
    va_end(ap);
    const kiln_tensor *t = find_suffix(b, name, sizeof name, base, ".weight");
    l->cin = cin;
    l->cout = cout;
    if (t && t->ne[0] == 1 && t->ne[1] == 1 && t->ne[2] == cin && t->ne[3] == cout) { /* a 1x1 conv */
        l->view = *t;
        l->view.n_dims = 2;
        l->view.ne[0] = cin;
        l->view.ne[1] = cout;
        l->view.ne[2] = l->view.ne[3] = 1;
        l->view.nb[1] = t->nb[3];
        l->view.nb[2] = l->view.nb[3] = t->nb[3] * (size_t)cout;
        t = &l->view;
    }
    kiln_status st = kiln_bind_matrix_check(t, b->path, name, cin, cout);
    if (st) return st;
    l->w = t;
    if ((st = keep_slot(b->own, &l->w))) return st;
    l->b = NULL;
    return bias ? bind_vec(b, base, ".bias", cout, &l->b) : KILN_OK;
}

kiln_status sd_bind_norm(const sd_binder *b, sd_norm *n, int c, const char *fmt, ...) {
    char base[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(base, sizeof base, fmt, ap);
    va_end(ap);
    kiln_status st = bind_vec(b, base, ".weight", c, &n->w);
    return st ? st : bind_vec(b, base, ".bias", c, &n->b);
}

kiln_status sd_bind_resnet(const sd_binder *b, sd_resnet *r, int cin, int cout, int temb, const char *p) {
    kiln_status st;
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    if ((st = sd_bind_norm(b, &r->norm1, cin, "%snorm1", p)) || (st = sd_bind_conv(b, &r->conv1, cin, cout, 3, "%sconv1", p)) ||
        (temb && (st = sd_bind_linear(b, &r->temb, temb, cout, true, "%stime_emb_proj", p))) ||
        (st = sd_bind_norm(b, &r->norm2, cout, "%snorm2", p)) ||
        (st = sd_bind_conv(b, &r->conv2, cout, cout, 3, "%sconv2", p)) ||
        (cin != cout && (st = sd_bind_linear(b, &r->shortcut, cin, cout, true, "%sconv_shortcut", p))))
        return st;
    return KILN_OK;
}

static kiln_status bind_attn(const sd_binder *b, sd_attn *a, int c, int kv_dim, bool qkv_bias, const char *p) {
    kiln_status st;
    if ((st = sd_bind_linear(b, &a->q, c, c, qkv_bias, "%sto_q", p)) ||
        (st = sd_bind_linear(b, &a->k, kv_dim, c, qkv_bias, "%sto_k", p)) ||
        (st = sd_bind_linear(b, &a->v, kv_dim, c, qkv_bias, "%sto_v", p)) ||
        (st = sd_bind_linear(b, &a->out, c, c, true, "%sto_out.0", p)))
        return st;
    return KILN_OK;
}

kiln_status sd_bind_transformer(const sd_binder *b, sd_transformer *t, int c, int ctx_dim, int heads, int n_blocks,
                                const char *p) {
    kiln_status st;
    memset(t, 0, sizeof *t);
    if (heads <= 0 || c % heads)
        return kiln_fail(KILN_ERR_FORMAT, "%s: %s has %d channels, not a multiple of %d heads", b->path, p, c, heads);
    t->c = c;
    t->heads = heads;
    t->blocks = kiln_calloc_array((size_t)n_blocks, sizeof *t->blocks);
    if (!t->blocks) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    t->n_blocks = n_blocks;
    if ((st = sd_bind_norm(b, &t->norm, c, "%snorm", p)) ||
        (st = sd_bind_linear(b, &t->proj_in, c, c, true, "%sproj_in", p)) ||
        (st = sd_bind_linear(b, &t->proj_out, c, c, true, "%sproj_out", p)))
        return st;
    for (int i = 0; i < n_blocks; i++) {
        sd_tblock *k = &t->blocks[i];
        char q[320];
        snprintf(q, sizeof q, "%stransformer_blocks.%d.", p, i);
        char a1[340], a2[340];
        snprintf(a1, sizeof a1, "%sattn1.", q);
        snprintf(a2, sizeof a2, "%sattn2.", q);
        if ((st = sd_bind_norm(b, &k->norm1, c, "%snorm1", q)) || (st = bind_attn(b, &k->attn1, c, c, false, a1)) ||
            (st = sd_bind_norm(b, &k->norm2, c, "%snorm2", q)) ||
            (st = bind_attn(b, &k->attn2, c, ctx_dim, false, a2)) ||
            (st = sd_bind_norm(b, &k->norm3, c, "%snorm3", q)) ||
            (st = sd_bind_linear(b, &k->ff_in, c, 8 * c, true, "%sff.net.0.proj", q)) ||
            (st = sd_bind_linear(b, &k->ff_out, 4 * c, c, true, "%sff.net.2", q)))
            return st;
    }
    return KILN_OK;
}

void sd_transformer_free(sd_transformer *t) {
    free(t->blocks);
    t->blocks = NULL;
}

kiln_status sd_bind_vae_attn(const sd_binder *b, sd_vae_attn *a, int c, const char *p) {
    kiln_status st = sd_bind_norm(b, &a->norm, c, "%sgroup_norm", p);
    a->c = c;
    return st ? st : bind_attn(b, &a->attn, c, c, true, p);
}
