/*
 * attention_mh.c — full (non-causal) multi-head attention as blocked matrix products
 * (kernels.h, kiln_attention_mh): what the UNet's 4,096-token self-attention at
 * 512x512 and its cross-attention need, at the GEMM's speed instead of one query at
 * a time.
 *
 * Per head h (columns h·hd .. of q, k, v): K_h is packed once as the "weight" of a
 * matmul (its m rows are the outputs), and V_hᵀ likewise (hd rows of m). Then for a
 * block of B queries: S = Q_b · K_hᵀ (B x m), each row scaled and softmaxed, and
 * O_b = S · V_h (B x hd). Only one block's scores exist at a time (flash attention's
 * point: memory B·m, not n·m), and both products run on the panel kernels, in bf16
 * when asked and the CPU has it.
 *
 * Threads: one task per (head, query block), each doing its block alone with
 * single-threaded matmuls, so every output value is computed by one task in one
 * fixed order: any thread count gives the same bits.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "kernels/kernels_impl.h"

enum { QB = 64 }; /* queries per block */

typedef struct {
    const float *q;
    float *out;
    int64_t n, m;
    int c, hd, n_blocks;
    float scale;
    kiln_tensor *kt, *vt; /* per head: K_h and V_hᵀ packed */
    kiln_status *st;      /* per task */
} mh_job;

static void block_task(void *ctx, int64_t task) {
    const mh_job *j = ctx;
    const int h = (int)(task / j->n_blocks);
    const int64_t q0 = (task % j->n_blocks) * QB, nb = q0 + QB <= j->n ? QB : j->n - q0;
    float *qb = kiln_malloc_array((size_t)(nb * j->hd), sizeof *qb);
    float *s = kiln_malloc_array((size_t)(nb * j->m), sizeof *s);
    float *o = kiln_malloc_array((size_t)(nb * j->hd), sizeof *o);
    kiln_status st = qb && s && o ? KILN_OK : KILN_ERR_NOMEM;
    for (int64_t i = 0; i < nb && !st; i++)
        memcpy(qb + i * j->hd, j->q + (size_t)(q0 + i) * j->c + (size_t)h * j->hd, (size_t)j->hd * sizeof(float));
    if (!st) st = kiln_matmul(&j->kt[h], qb, nb, s, NULL);
    for (int64_t i = 0; i < nb && !st; i++) {
        float *row = s + i * j->m;
        for (int64_t t = 0; t < j->m; t++) row[t] *= j->scale;
        kiln_softmax(row, j->m);
    }
    if (!st) st = kiln_matmul(&j->vt[h], s, nb, o, NULL);
    for (int64_t i = 0; i < nb && !st; i++)
        memcpy(j->out + (size_t)(q0 + i) * j->c + (size_t)h * j->hd, o + i * j->hd, (size_t)j->hd * sizeof(float));
    j->st[task] = st;
    free(qb);
    free(s);
    free(o);
}

typedef struct {
    const float *k, *v;
    int64_t m;
    int c, hd;
    bool bf16;
    kiln_tensor *kt, *vt;
    void **mem; /* 2 per head */
    kiln_status *st;
} pack_job;

static kiln_status pack(const kiln_tensor *w, bool bf16, kiln_tensor *out, void **mem) {
    kiln_status st = bf16 ? kiln_weight_pack_panels_bf16(w, out, mem) : KILN_ERR_UNSUPPORTED;
    if (st == KILN_ERR_UNSUPPORTED) st = kiln_weight_pack_panels(w, out, mem);
    if (st == KILN_ERR_UNSUPPORTED) { /* no panel kernel on this CPU: a plain contiguous copy */
        const size_t row = (size_t)w->ne[0] * sizeof(float);
        float *p = kiln_malloc_array((size_t)(w->ne[0] * w->ne[1]), sizeof *p);
        if (!p) return KILN_ERR_NOMEM;
        for (int64_t r = 0; r < w->ne[1]; r++) memcpy((uint8_t *)p + r * row, (const uint8_t *)w->data + r * w->nb[1], row);
        *out = *w;
        out->nb[1] = row;
        out->nb[2] = out->nb[3] = row * (size_t)w->ne[1];
        out->data = p;
        *mem = p;
        st = KILN_OK;
    }
    return st;
}

static void pack_task(void *ctx, int64_t h) {
    const pack_job *j = ctx;
    /* K_h: m rows of hd floats, c apart */
    kiln_tensor kh = {.type = KILN_F32, .n_dims = 2, .ne = {j->hd, j->m, 1, 1},
                      .nb = {4, (size_t)j->c * 4, (size_t)j->c * 4 * (size_t)j->m, (size_t)j->c * 4 * (size_t)j->m},
                      .data = j->k + h * j->hd};
    kiln_status st = pack(&kh, j->bf16, &j->kt[h], &j->mem[2 * h]);
    /* V_hᵀ: hd rows of m floats, made contiguous first */
    float *vt = st ? NULL : kiln_malloc_array((size_t)(j->m * j->hd), sizeof *vt);
    if (!st && !vt) st = KILN_ERR_NOMEM;
    for (int64_t t = 0; t < j->m && !st; t++)
        for (int d = 0; d < j->hd; d++) vt[(size_t)d * j->m + t] = j->v[(size_t)t * j->c + (size_t)h * j->hd + d];
    if (!st) {
        kiln_tensor v = {.type = KILN_F32, .n_dims = 2, .ne = {j->m, j->hd, 1, 1},
                         .nb = {4, (size_t)j->m * 4, (size_t)j->m * 4 * j->hd, (size_t)j->m * 4 * j->hd}, .data = vt};
        st = pack(&v, j->bf16, &j->vt[h], &j->mem[2 * h + 1]);
    }
    free(vt);
    j->st[h] = st;
}

kiln_status kiln_attention_mh(const float *q, const float *k, const float *v, int64_t n, int64_t m, int c, int heads,
                              bool bf16, float *out, kiln_pool *pool) {
    if (!q || !k || !v || !out || n <= 0 || m <= 0 || c <= 0 || heads <= 0 || c % heads || n > (1 << 24) ||
        m > (1 << 24))
        return kiln_fail(KILN_ERR_INVALID_ARG, "attention: %lld queries, %lld keys, %d channels, %d heads",
                         (long long)n, (long long)m, c, heads);
    const int hd = c / heads, n_blocks = (int)((n + QB - 1) / QB);
    const int64_t tasks = (int64_t)heads * n_blocks;
    kiln_tensor *kt = calloc((size_t)heads, sizeof *kt), *vt = calloc((size_t)heads, sizeof *vt);
    void **mem = calloc(2 * (size_t)heads, sizeof *mem);
    kiln_status *st = calloc((size_t)(tasks > heads ? tasks : heads), sizeof *st);
    kiln_status r = kt && vt && mem && st ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!r) {
        pack_job pj = {k, v, m, c, hd, bf16, kt, vt, mem, st};
        kiln_pool_for(pool, heads, pack_task, &pj);
        for (int h = 0; h < heads && !r; h++)
            if (st[h]) r = kiln_fail(st[h], "attention: cannot pack head %d", h);
    }
    if (!r) {
        mh_job j = {q, out, n, m, c, hd, n_blocks, 1.0f / sqrtf((float)hd), kt, vt, st};
        memset(st, 0, sizeof *st * (size_t)tasks);
        kiln_pool_for(pool, tasks, block_task, &j);
        for (int64_t t = 0; t < tasks && !r; t++)
            if (st[t]) r = kiln_fail(st[t], "attention: out of memory for a block of scores");
    }
    for (int i = 0; mem && i < 2 * heads; i++) free(mem[i]);
    free(mem);
    free(kt);
    free(vt);
    free(st);
    return r;
}
