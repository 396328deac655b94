/*
 * matmul.c — the kiln_matmul driver: y (n, m) = x (n, k) · wᵀ, w (m, k) of type
 * any type the kernel table has a micro kernel for.
 *
 * Steps:
 *  1. Check the weight view (2-D, rows of whole blocks, element stride = type size).
 *  2. For quantized weights, quantize every row of x once to Q8_0 (the variant's
 *     quant_act, bit-exact with llama.cpp's quantize_row_q8_0_ref) into one scratch
 *     block of about 1.13·n·k bytes, freed before returning. Float weight types
 *     read x as it is and need no scratch.
 *  3. Split the m outputs into fixed chunks of rows; one task per chunk, run with
 *     kiln_pool_for (kiln_matmul_many: the chunks of all its weights in one loop, over
 *     one shared copy of the quantized x). With one input (n = 1) the chunks are small
 *     units handed out by run_stream: one contiguous range per thread, then stealing. A task walks its inputs KILN_MC at a time and, for each group,
 *     its rows KILN_MR at a time, calling the variant's micro kernel. So a chunk's
 *     weights (sized to stay in L2) are fetched from memory once and then reused
 *     from cache for every input, and with n = 1 the weights stream through
 *     KILN_MR rows at a time.
 *
 * Determinism: each output element is produced by exactly one micro-kernel call,
 * whose summation order depends only on k (kernels_impl.h), never on the chunk,
 * the tile or the thread that runs it. Chunk sizes depend on (m, k, n, type)
 * only. So any thread count gives bit-identical results, and row i of a batch
 * equals a call with that single row.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "kernels/kernels_impl.h"

bool kiln_matmul_supports(kiln_dtype t) {
    return (unsigned)t < KILN_DTYPE_COUNT && kiln_kernels_table(KILN_ISA_REF)->mm[t] != NULL;
}

bool kiln_type_quantized(kiln_dtype t) {
    return t != KILN_F32 && t != KILN_F16 && t != KILN_BF16;
}

bool kiln_type_needs_sums(kiln_dtype t) {
    return t == KILN_Q4_1 || t == KILN_Q5_1 || t == KILN_Q2_K || t == KILN_Q4_K || t == KILN_Q5_K;
}

static kiln_mm_fn kernel_for(const kiln_kernel_table *t, kiln_dtype type) {
    return (unsigned)type < KILN_DTYPE_COUNT ? t->mm[type] : NULL;
}

/* Scratch for the tasks of one call that need some (the packed prompt GEMM's groups,
 * the float panels): one buffer per thread that can run a task, claimed by a task
 * while it runs. Allocated once per call: fresh pages for every task cost more in
 * page faults than converting the weights. */
#define SCRATCH_SLOTS 64
typedef struct {
    int n;
    size_t bytes;
    uint8_t *mem;
    atomic_bool busy[SCRATCH_SLOTS];
} task_scratch;

/* At most n tasks run at once (one per thread), so a slot is always free or about to be. */
static uint8_t *scratch_take(task_scratch *s, int *slot) {
    for (;;)
        for (int i = 0; i < s->n; i++)
            if (!atomic_exchange_explicit(&s->busy[i], true, memory_order_acquire)) {
                *slot = i;
                return s->mem + (size_t)i * s->bytes;
            }
}

static void scratch_give(task_scratch *s, int slot) {
    atomic_store_explicit(&s->busy[slot], false, memory_order_release);
}

typedef struct {
    kiln_mm_fn mm;
    kiln_dtype type;
    kiln_row_q8_fn row_q8;       /* packed path: row converter and kernel, else NULL */
    kiln_gemm16_fn gemm16;
    kiln_gemmf_fn gemmf;         /* float prompt path, else NULL */
    kiln_gemmp_fn gemmp;         /* fp32 panels (KILN_F32_P32), else NULL */
    kiln_gemmb_fn gemmb;         /* bf16 panels (KILN_BF16_P32), else NULL */
    task_scratch *scratch;       /* per-task buffers for those two paths */
    kiln_packed16 *packs;        /* one slot per group of 16 rows of the whole matrix */
    const uint8_t *w;
    size_t w_stride;
    int64_t k, m, n;
    int64_t rows_per_task;
    kiln_act act;
    float *y;
} mm_job;

static void mm_task(void *ctx, int64_t t) {
    const mm_job *j = ctx;
    const int64_t r0 = t * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->m ? r0 + j->rows_per_task : j->m;
    for (int64_t c = 0; c < j->n; c += KILN_MC) {
        const int nc = (int)(j->n - c < KILN_MC ? j->n - c : KILN_MC);
        for (int64_t r = r0; r < r1; r += KILN_MR) {
            const int nr = (int)(r1 - r < KILN_MR ? r1 - r : KILN_MR);
            j->mm(j->k, j->w + (size_t)r * j->w_stride, j->w_stride, nr, &j->act, c, nc,
                  j->y + (size_t)c * (size_t)j->m + (size_t)r, (size_t)j->m);
        }
    }
}

/* ---- packed prompt path (kernels_impl.h: kiln_packed16) ------------------------- */

/* Packs rows [r0, r0 + nr) (nr <= 16; missing rows are zero) into one group. */
/* Packs rows [r0, r0 + nr) (nr <= 16) into one group; missing rows get weight 0
 * (stored 128) and scale 0. */
static void pack_group(const mm_job *j, kiln_row_q8_fn row_q8, int64_t r0, int nr, uint8_t *q, float *d, float *m,
                       int8_t *rowq, float *rowd, float *rowm) {
    const int64_t nb = j->k / KILN_QK8_0;
    memset(q, 0x80, (size_t)nb * 512);
    memset(d, 0, sizeof(float) * (size_t)nb * 16);
    if (m) memset(m, 0, sizeof(float) * (size_t)nb * 16);
    for (int r = 0; r < nr; r++) {
        row_q8(j->w + (size_t)(r0 + r) * j->w_stride, j->k, rowq, rowd, rowm);
        for (int64_t b = 0; b < nb; b++) {
            const int8_t *src = rowq + b * 32;
            uint8_t *dst = q + b * 512 + r * 4;
            for (int g = 0; g < 8; g++)
                for (int e = 0; e < 4; e++) dst[g * 64 + e] = (uint8_t)(src[g * 4 + e] ^ 0x80);
            d[b * 16 + r] = rowd[b];
            if (m) m[b * 16 + r] = rowm[b];
        }
    }
}

static void mm_task_packed(void *ctx, int64_t t) {
    const mm_job *j = ctx;
    const int64_t r0 = t * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->m ? r0 + j->rows_per_task : j->m;
    const int64_t nb = j->k / KILN_QK8_0, groups = (r1 - r0 + 15) / 16;
    const bool has_m = kiln_type_needs_sums(j->type);
    /* per group: q (nb*512) + d, m (nb*16 floats each); then one row's scratch */
    const size_t gbytes = (size_t)nb * (512 + 16 * 4 * 2);
    int slot;
    uint8_t *buf = scratch_take(j->scratch, &slot);
    int8_t *rowq = (int8_t *)(buf + gbytes * (size_t)groups);
    float *rowd = (float *)(void *)(rowq + j->k), *rowm = rowd + nb;
    kiln_packed16 *p = j->packs + t * (j->rows_per_task / 16);
    for (int64_t g = 0; g < groups; g++) {
        uint8_t *gb = buf + gbytes * (size_t)g;
        uint8_t *q = gb;
        float *d = (float *)(void *)(gb + (size_t)nb * 512), *m = d + nb * 16;
        const int nr = (int)(r1 - r0 - g * 16 < 16 ? r1 - r0 - g * 16 : 16);
        pack_group(j, j->row_q8, r0 + g * 16, nr, q, d, has_m ? m : NULL, rowq, rowd, rowm);
        p[g] = (kiln_packed16){q, d, has_m ? m : NULL};
    }
    for (int64_t c = 0; c < j->n; c += KILN_PACK_NC) {
        const int nc = (int)(j->n - c < KILN_PACK_NC ? j->n - c : KILN_PACK_NC);
        for (int64_t g = 0; g < groups; g++) {
            const int nr = (int)(r1 - r0 - g * 16 < 16 ? r1 - r0 - g * 16 : 16);
            j->gemm16(nb, &p[g], nr, &j->act, c, nc, j->y + (size_t)c * (size_t)j->m + (size_t)(r0 + g * 16),
                      (size_t)j->m);
        }
    }
    scratch_give(j->scratch, slot);
}

/* Scratch bytes of one mm_task_packed task (rows_per_task rows). */
static size_t packed_scratch_bytes(int64_t k, int64_t rows_per_task) {
    const size_t nb = (size_t)k / KILN_QK8_0;
    return nb * (512 + 16 * 4 * 2) * (size_t)((rows_per_task + 15) / 16) + (size_t)k + 3 * sizeof(float) * nb;
}

/* Float weights, a batch of inputs: one task per rows_per_task rows (whole panels),
 * converted KILN_GEMMF_ROWS at a time to an fp32 panel in the task's scratch and
 * multiplied by every input (kernels_impl.h). */
static void mm_task_gemmf(void *ctx, int64_t t) {
    const mm_job *j = ctx;
    const int64_t r0 = t * j->rows_per_task;
    const int nr = (int)(j->m - r0 < j->rows_per_task ? j->m - r0 : j->rows_per_task);
    int slot;
    float *panel = (float *)(void *)scratch_take(j->scratch, &slot);
    j->gemmf(j->type, j->k, j->w + (size_t)r0 * j->w_stride, j->w_stride, nr, j->act.f, j->act.f_stride, j->n,
             j->y + (size_t)r0, (size_t)j->m, panel);
    scratch_give(j->scratch, slot);
}

/* Inputs per pass of a panel task: a task runs its panels over blocks of this many
 * inputs, so that a block stays in L2 while it meets every panel of the task (one
 * pass of all n inputs per panel read them from memory once per panel: a 4096 x 320 ·
 * 320 x 1280 product ran at 166 GFLOP/s on 1 and 2 threads). Per output the arithmetic
 * does not depend on the block. */
#define PANEL_INPUT_BLOCK 256

/* Weights packed as fp32 panels: rows_per_task rows (whole panels) per task. */
static void mm_task_gemmp(void *ctx, int64_t t) {
    const mm_job *j = ctx;
    const int64_t r0 = t * j->rows_per_task;
    const int nr = (int)(j->m - r0 < j->rows_per_task ? j->m - r0 : j->rows_per_task);
    for (int64_t c = 0; c < j->n; c += PANEL_INPUT_BLOCK)
        j->gemmp(j->k, (const float *)(const void *)j->w + (size_t)r0 * (size_t)j->k, nr,
                 j->act.f + (size_t)c * j->act.f_stride, j->act.f_stride,
                 j->n - c < PANEL_INPUT_BLOCK ? j->n - c : PANEL_INPUT_BLOCK,
                 j->y + (size_t)c * (size_t)j->m + (size_t)r0, (size_t)j->m);
}

/* Weights packed as bf16 panels: the same tasks, inputs from the bf16 copy. */
static void mm_task_gemmb(void *ctx, int64_t t) {
    const mm_job *j = ctx;
    const int64_t r0 = t * j->rows_per_task, kp = (j->k + 1) & ~(int64_t)1;
    const int nr = (int)(j->m - r0 < j->rows_per_task ? j->m - r0 : j->rows_per_task);
    for (int64_t c = 0; c < j->n; c += PANEL_INPUT_BLOCK)
        j->gemmb(kp, (const uint16_t *)(const void *)j->w + (size_t)r0 * (size_t)kp, nr,
                 j->act.b16 + (size_t)c * j->act.b16_stride, j->act.b16_stride,
                 j->n - c < PANEL_INPUT_BLOCK ? j->n - c : PANEL_INPUT_BLOCK,
                 j->y + (size_t)c * (size_t)j->m + (size_t)r0, (size_t)j->m);
}

/* Tasks of whole panels for m rows: up to 4 panels per task, at least 8 tasks for
 * balance. */
static int64_t panel_rows_per_task(int64_t m) {
    const int64_t panels = (m + KILN_GEMMF_ROWS - 1) / KILN_GEMMF_ROWS;
    return ((panels + 7) / 8 < 4 ? (panels + 7) / 8 : 4) * KILN_GEMMF_ROWS;
}

/* Packed weights with several inputs: about this many bytes per task, a chunk that
 * stays in L2 while it meets every input. */
#define PACKED_TASK_BYTES (256u << 10)

/* With one input a matrix is cut into units of about this many bytes (whole 16-row
 * groups, or KILN_MR rows), which run_stream hands out: small enough that the last
 * one costs little waiting, large enough that claiming one (a compare-and-swap on a
 * word no other thread touches until the end) costs nothing. Returns the rows or
 * groups per unit, at least `min`. */
#define STREAM_UNIT_BYTES (64u << 10)

static int64_t stream_units(int64_t min, size_t unit_bytes) {
    const int64_t u = unit_bytes ? (int64_t)(STREAM_UNIT_BYTES / unit_bytes) : 1;
    return u > min ? u : min;
}

/* Rows per task: with one input, a stream unit (run_stream); with several, as many
 * rows as keep ~128 KiB of weights in L2, never so many that fewer than 8 tasks remain
 * for the threads, a function of the shapes only (determinism above). Always a
 * multiple of KILN_MR. */
static int64_t rows_per_task(int64_t m, int64_t n, size_t row_bytes) {
    int64_t r;
    if (n == 1) {
        r = stream_units(1, row_bytes);
        r = (r + KILN_MR - 1) / KILN_MR * KILN_MR;
        return r < KILN_MR ? KILN_MR : r;
    } else {
        r = row_bytes ? (int64_t)((128 * 1024) / row_bytes) : 256;
        if (r > 256) r = 256;
    }
    int64_t cap = (m + 7) / 8;
    if (r > cap) r = cap;
    r = (r + KILN_MR - 1) / KILN_MR * KILN_MR;
    return r < KILN_MR ? KILN_MR : r;
}

/* ---- activations: one Q8_0 copy of x shared by every weight of a call ------------ */

typedef struct {
    kiln_quant_act_fn quant;
    const float *x;
    int64_t k;
    kiln_act act;
} quant_job;

static void quant_task(void *ctx, int64_t i) {
    const quant_job *q = ctx;
    int8_t *qs = (int8_t *)q->act.qs + (size_t)i * q->act.qs_stride;
    q->quant(q->x + (size_t)i * (size_t)q->k, qs, (float *)q->act.d + (size_t)i * q->act.d_stride, q->k);
    /* exact integer sums of 16 quants, for types with block minimums and the packed paths */
    int16_t *bs = (int16_t *)q->act.bs + (size_t)i * q->act.bs_stride;
    for (int64_t g = 0; g < q->k / 16; g++) {
        int s = 0;
        for (int e = 0; e < 16; e++) s += qs[g * 16 + e];
        bs[g] = (int16_t)s;
    }
}

/* Quantizes every input row to Q8_0 with its 16-element sums into one scratch block
 * (*scratch, for the caller to free) and points act at it. */
static kiln_status quantize_inputs(const kiln_kernel_table *t, const float *x, int64_t n, int64_t k, kiln_act *act,
                                   kiln_pool *pool, void **scratch) {
    /* (n, k) int8 quants, rows padded to 64 bytes, then (n, k/32) float scales,
     * then (n, k/16) int16 sums. */
    const size_t qs_stride = ((size_t)k + 63) & ~(size_t)63;
    const size_t nblk = (size_t)k / KILN_QK8_0;
    size_t qs_bytes, d_bytes, bs_bytes, total;
    if (!kiln_mul_ok((size_t)n, qs_stride, &qs_bytes) || !kiln_mul_ok((size_t)n, nblk, &d_bytes) ||
        !kiln_mul_ok(d_bytes, sizeof(float), &d_bytes) ||
        !kiln_mul_ok((size_t)n, 2 * nblk * sizeof(int16_t), &bs_bytes) ||
        !kiln_add_ok(qs_bytes, d_bytes, &total) || !kiln_add_ok(total, bs_bytes, &total))
        return kiln_fail(KILN_ERR_NOMEM, "matmul: activation scratch size overflows (n %lld, k %lld)", (long long)n,
                         (long long)k);
    *scratch = kiln_aligned_alloc(64, total);
    if (!*scratch) return kiln_fail(KILN_ERR_NOMEM, "matmul: cannot allocate %zu bytes of activation scratch", total);
    act->qs = *scratch;
    act->qs_stride = qs_stride;
    act->d = (float *)(void *)((uint8_t *)*scratch + qs_bytes); /* qs_bytes is a multiple of 64 */
    act->d_stride = nblk;
    act->bs = (int16_t *)(void *)((uint8_t *)*scratch + qs_bytes + d_bytes); /* 4-byte aligned */
    act->bs_stride = 2 * nblk;
    quant_job q = {t->quant_act, x, k, *act};
    kiln_pool_for(n > 1 ? pool : NULL, n, quant_task, &q);
    return KILN_OK;
}

/* ---- activations for bf16 panels: one bf16 copy of x, rows of whole pairs ---------- */

typedef struct {
    kiln_to_bf16_fn conv;
    const float *x;
    int64_t k, kp;
    uint16_t *b;
    size_t stride; /* uint16 per row */
} bf16_job;

static void bf16_task(void *ctx, int64_t i) {
    const bf16_job *b = ctx;
    b->conv(b->x + (size_t)i * (size_t)b->k, b->b + (size_t)i * b->stride, b->k, b->kp);
}

static kiln_status bf16_inputs(const kiln_kernel_table *t, const float *x, int64_t n, int64_t k, kiln_act *act,
                               kiln_pool *pool, void **scratch) {
    const int64_t kp = (k + 1) & ~(int64_t)1;
    const size_t stride = ((size_t)kp + 31) & ~(size_t)31; /* rows on 64-byte lines */
    size_t total;
    if (!kiln_mul_ok((size_t)n, stride * sizeof(uint16_t), &total) || !(*scratch = kiln_aligned_alloc(64, total)))
        return kiln_fail(KILN_ERR_NOMEM, "matmul: cannot allocate bf16 activations (n %lld, k %lld)", (long long)n,
                         (long long)k);
    bf16_job b = {t->to_bf16, x, k, kp, *scratch, stride};
    kiln_pool_for(n > 1 ? pool : NULL, n, bf16_task, &b);
    act->b16 = *scratch;
    act->b16_stride = stride / 2;
    return KILN_OK;
}

/* ---- weights packed at load (pack.c) ---------------------------------------------- */

typedef struct {
    const kiln_kernel_table *t;
    kiln_dtype type;
    const uint8_t *w;
    size_t group_bytes;
    int64_t groups_per_task, nb, m, n;
    const kiln_act *act;
    float *y;
} x16_job;

static void x16_task(void *ctx, int64_t task) {
    const x16_job *xj = ctx;
    const int64_t groups = (xj->m + 15) / 16;
    const int64_t g0 = task * xj->groups_per_task;
    const int64_t g1 = g0 + xj->groups_per_task < groups ? g0 + xj->groups_per_task : groups;
    for (int64_t c = 0; c < xj->n; c += KILN_PACK_NC) {
        const int nc = (int)(xj->n - c < KILN_PACK_NC ? xj->n - c : KILN_PACK_NC);
        for (int64_t g = g0; g < g1; g++) {
            const int nr = (int)(xj->m - g * 16 < 16 ? xj->m - g * 16 : 16);
            xj->t->gemm_x16(xj->type, xj->nb, xj->w + (size_t)g * xj->group_bytes, nr, xj->act, c, nc,
                            xj->y + (size_t)c * (size_t)xj->m + (size_t)(g * 16), (size_t)xj->m);
        }
    }
}

/* ---- planning: each weight of a call becomes a part, a run of tasks ----------------- */

typedef struct {
    kiln_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    bool quantized;       /* reads the Q8_0 activations */
    bool bf16;            /* reads the bf16 activations */
    size_t scratch_bytes; /* per task (packed prompt GEMM, float panels), else 0 */
    union {
        mm_job mm;
        x16_job x16;
    } job;
} mm_part;

static kiln_status plan_x16(const kiln_kernel_table *t, const kiln_tensor *w, const float *x, int64_t n, float *y,
                            mm_part *p) {
    if (!t->gemm_x16)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "matmul: packed weights need the kernels they were packed for (%s)",
                         t->name);
    const int64_t k = w->ne[0], m = w->ne[1];
    const kiln_x16_layout *lay = kiln_x16_layout_of(w->type); /* plan_one: a packed type */
    const bool sup = lay->superblock;
    if (n < 0 || k <= 0 || m <= 0 || k % (sup ? 256 : 32))
        return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: bad packed shapes");
    if (n == 0) return KILN_OK;
    if (!x || !y || !w->data) return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: NULL data");
    const int64_t nb = sup ? k / 256 : k / 32, groups = (m + 15) / 16;
    if (lay->extended && !t->x16_ext)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "matmul: packed %s weights need the kernels they were packed for",
                         kiln_dtype_name(lay->file));
    const size_t bsz = lay->block_bytes;
    /* With several inputs about 256 KiB of packed weights per task, a chunk reused from
     * L2 for every input, at least 8 tasks for balance; with one, stream units
     * (run_stream). */
    int64_t per = (int64_t)(PACKED_TASK_BYTES / ((size_t)nb * bsz));
    if (per < 1) per = 1;
    if (per > (groups + 7) / 8) per = (groups + 7) / 8 > 0 ? (groups + 7) / 8 : 1;
    if (n == 1) per = stream_units(1, (size_t)nb * bsz);
    p->job.x16 = (x16_job){t, w->type, w->data, (size_t)nb * bsz, per, nb, m, n, NULL, y};
    p->fn = x16_task;
    p->n_tasks = (groups + per - 1) / per;
    p->quantized = true;
    return KILN_OK;
}

static kiln_status plan_panels(const kiln_kernel_table *t, const kiln_tensor *w, const float *x, int64_t n, float *y,
                               mm_part *p) {
    if (!t->gemmp && w->type == KILN_F32_P32)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "matmul: fp32-panel weights need the kernels they were packed for (%s)",
                         t->name);
    const int64_t k = w->ne[0], m = w->ne[1];
    if (n < 0 || k <= 0 || m <= 0 || w->ne[2] != 1 || w->ne[3] != 1)
        return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: bad panel shapes");
    if (n == 0) return KILN_OK;
    if (!x || !y || !w->data) return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: NULL data");
    mm_job *j = &p->job.mm;
    *j = (mm_job){.type = w->type, .gemmp = t->gemmp, .w = w->data, .k = k, .m = m, .n = n, .y = y,
                  .rows_per_task = panel_rows_per_task(m)};
    p->n_tasks = (m + j->rows_per_task - 1) / j->rows_per_task;
    p->fn = mm_task_gemmp;
    return KILN_OK;
}

static kiln_status plan_bf16_panels(const kiln_kernel_table *t, const kiln_tensor *w, const float *x, int64_t n,
                                    float *y, mm_part *p) {
    if (!t->gemmb || !t->to_bf16)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "matmul: bf16-panel weights need the kernels they were packed for (%s)",
                         t->name);
    kiln_status st = plan_panels(t, w, x, n, y, p); /* same checks and tasks */
    if (st || !p->n_tasks) return st;
    p->job.mm.gemmp = NULL;
    p->job.mm.gemmb = t->gemmb;
    p->fn = mm_task_gemmb;
    p->bf16 = true;
    return KILN_OK;
}

static kiln_status plan_one(const kiln_kernel_table *t, const kiln_tensor *w, const float *x, int64_t n, float *y,
                            mm_part *p) {
    *p = (mm_part){0};
    if (!w) return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: no weight");
    if (kiln_x16_type(w->type)) return plan_x16(t, w, x, n, y, p);
    if (w->type == KILN_F32_P32) return plan_panels(t, w, x, n, y, p);
    if (w->type == KILN_BF16_P32) return plan_bf16_panels(t, w, x, n, y, p);
    kiln_mm_fn mm = kernel_for(t, w->type);
    if (!mm) return kiln_fail(KILN_ERR_UNSUPPORTED, "matmul: weight type %s is not supported", kiln_dtype_name(w->type));
    const int64_t k = w->ne[0], m = w->ne[1];
    if (n < 0 || k < 0 || m < 0 || w->ne[2] != 1 || w->ne[3] != 1)
        return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: bad shapes (k %lld, m %lld, n %lld; weight must be 2-D)",
                         (long long)k, (long long)m, (long long)n);
    size_t row_bytes;
    if (!kiln_dtype_row_bytes(w->type, k, &row_bytes))
        return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: %lld inputs is not a whole number of %s blocks", (long long)k,
                         kiln_dtype_name(w->type));
    if (w->nb[0] != (size_t)kiln_dtype_get(w->type)->type_size || w->nb[1] < row_bytes)
        return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: weight rows are not contiguous");
    if (n == 0 || m == 0) return KILN_OK;
    if (!x || !y || !w->data) return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: NULL data");
    if (k == 0) { /* empty sums */
        size_t ny;
        if (!kiln_mul_ok((size_t)n, (size_t)m, &ny) || !kiln_mul_ok(ny, sizeof(float), &ny))
            return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: output too large");
        memset(y, 0, ny);
        return KILN_OK;
    }
    mm_job *j = &p->job.mm;
    *j = (mm_job){.mm = mm, .type = w->type, .w = w->data, .w_stride = w->nb[1], .k = k, .m = m, .n = n, .y = y};
    if (!kiln_type_quantized(w->type) && n >= KILN_PACK_MIN_N && t->gemmf) { /* float prompt GEMM */
        j->gemmf = t->gemmf;
        p->scratch_bytes = sizeof(float) * KILN_GEMMF_SCRATCH(k);
        j->rows_per_task = panel_rows_per_task(m);
        p->n_tasks = (m + j->rows_per_task - 1) / j->rows_per_task;
        p->fn = mm_task_gemmf;
        return KILN_OK;
    }
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    const bool packed = n >= KILN_PACK_MIN_N && t->gemm16 && ref->row_q8[w->type] && k % KILN_QK8_0 == 0;
    j->rows_per_task = rows_per_task(m, n, row_bytes);
    if (packed) { /* whole groups of 16 rows per task */
        j->rows_per_task = (j->rows_per_task + 15) / 16 * 16;
        j->row_q8 = ref->row_q8[w->type];
        j->gemm16 = t->gemm16;
        p->scratch_bytes = packed_scratch_bytes(k, j->rows_per_task);
    }
    p->n_tasks = (m + j->rows_per_task - 1) / j->rows_per_task;
    p->fn = packed ? mm_task_packed : mm_task;
    p->quantized = kiln_type_quantized(w->type);
    return KILN_OK;
}

typedef struct {
    mm_part *parts;
    int count;
} multi_job;

/* Task i of the whole call: the part it falls in, then that part's task. */
static void multi_task(void *ctx, int64_t i) {
    const multi_job *mj = ctx;
    for (int p = 0; p < mj->count; p++) {
        if (i < mj->parts[p].n_tasks) {
            mj->parts[p].fn(mj->parts[p].ctx, i);
            return;
        }
        i -= mj->parts[p].n_tasks;
    }
}

/* ---- matrix-vector products: one contiguous run per thread, the rest stolen ------ */

/* With one input a matmul is a weight stream, and a decode runs hundreds of short
 * ones per token (TinyLlama's q is 2.4 MB). Handing out fixed tasks in claim order
 * gives every thread a new run (and a prefetcher restart) per task, and leaves a
 * thread idle for up to a task at the end. So the units of all parts (stream_units,
 * ~64 KiB each) are split into one contiguous range per thread; a thread walks its own
 * range front to back, then takes units from the back of the others' ranges, one at a
 * time, until none is left. Each thread reads one long run, and the loop ends within
 * about one unit of each other; a worker that is preempted or late just has its range
 * taken by the others. Which thread runs a unit changes no output bit (each output
 * element is computed by the same operations whatever runs it). On Zen 4 with 2
 * threads, TinyLlama's matrix-vector products as a decode runs them (22 layers x 4
 * calls, Q4_0; old and new build run back to back, each alternated with one 75 MB
 * matrix that read 55-62 GB/s) read 45-46 GB/s on average against 41-42 with >= 8
 * fixed tasks of 256 KiB; whole decodes did not tell them apart in a slow phase of
 * the machine (both 88-96% of a 36 GB/s probe). Long runs were already known to
 * matter: 64 KiB tasks had left TinyLlama Q4_0 at 62 tok/s where 256 KiB gave 70-88. */
#define STREAM_RANGES_MAX 64

typedef struct {
    multi_job *mj;
    int ranges;
    _Atomic uint64_t span[STREAM_RANGES_MAX]; /* per range: next unit << 32 | end */
} stream_job;

/* Takes the first (front) or the last unit of a range, if any is left. */
static bool stream_take(_Atomic uint64_t *span, bool front, int64_t *unit) {
    uint64_t v = atomic_load_explicit(span, memory_order_relaxed);
    for (;;) {
        const uint32_t f = (uint32_t)(v >> 32), e = (uint32_t)v;
        if (f >= e) return false;
        const uint64_t nv = front ? (uint64_t)(f + 1) << 32 | e : (uint64_t)f << 32 | (e - 1);
        if (atomic_compare_exchange_weak(span, &v, nv)) {
            *unit = front ? f : e - 1;
            return true;
        }
    }
}

static void stream_task(void *ctx, int64_t r) {
    stream_job *sj = ctx;
    int64_t u;
    while (stream_take(&sj->span[r], true, &u)) multi_task(sj->mj, u);
    for (int o = 1; o < sj->ranges; o++)
        while (stream_take(&sj->span[(r + o) % sj->ranges], false, &u)) multi_task(sj->mj, u);
}

static void run_stream(kiln_pool *pool, multi_job *mj, int64_t units) {
    int ranges = pool ? kiln_pool_size(pool) : 1;
    if (ranges > STREAM_RANGES_MAX) ranges = STREAM_RANGES_MAX;
    if (ranges > units) ranges = (int)units;
    stream_job sj = {.mj = mj, .ranges = ranges};
    for (int r = 0; r < ranges; r++)
        atomic_init(&sj.span[r], (uint64_t)(units * r / ranges) << 32 | (uint64_t)(units * (r + 1) / ranges));
    kiln_pool_for(pool, ranges, stream_task, &sj);
}

kiln_status kiln_matmul_many_with(const kiln_kernel_table *t, int count, const kiln_tensor *const *w, const float *x,
                                  int64_t n, float *const *y, kiln_pool *pool) {
    if (!t || !w || !y || count < 1 || count > KILN_MATMUL_MAX)
        return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: no kernel table, or not 1..%d weights", KILN_MATMUL_MAX);
    mm_part parts[KILN_MATMUL_MAX];
    bool quantized = false, bf16 = false;
    int64_t k = -1, total = 0;
    for (int i = 0; i < count; i++) {
        kiln_status st = plan_one(t, w[i], x, n, y[i], &parts[i]);
        if (st) return st;
        if (parts[i].n_tasks == 0) continue;
        if (k >= 0 && w[i]->ne[0] != k)
            return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: weights sharing an input differ in width (%lld, %lld)",
                             (long long)k, (long long)w[i]->ne[0]);
        k = w[i]->ne[0];
        quantized |= parts[i].quantized;
        bf16 |= parts[i].bf16;
        total += parts[i].n_tasks;
    }
    if (total == 0) return KILN_OK;
    kiln_act act = {.f = x, .f_stride = (size_t)k};
    void *scratch = NULL;
    if (quantized) {
        kiln_status st = quantize_inputs(t, x, n, k, &act, pool, &scratch);
        if (st) return st;
    }
    void *scratch_b16 = NULL;
    if (bf16) {
        kiln_status st = bf16_inputs(t, x, n, k, &act, pool, &scratch_b16);
        if (st) {
            free(scratch);
            return st;
        }
    }
    /* per-task scratch: the largest any part needs, one per thread */
    task_scratch ts = {.n = 0};
    int64_t scratch_tasks = 0;
    for (int i = 0; i < count; i++) {
        if (!parts[i].n_tasks || !parts[i].scratch_bytes) continue;
        const size_t b = (parts[i].scratch_bytes + 63) & ~(size_t)63;
        if (b > ts.bytes) ts.bytes = b;
        scratch_tasks += parts[i].n_tasks;
    }
    kiln_status st = KILN_OK;
    void *packs[KILN_MATMUL_MAX] = {0};
    if (ts.bytes) {
        const int64_t threads = pool ? kiln_pool_size(pool) : 1;
        ts.n = (int)(threads < scratch_tasks ? threads : scratch_tasks);
        if (ts.n > SCRATCH_SLOTS) ts.n = SCRATCH_SLOTS;
        size_t all;
        if (!kiln_mul_ok(ts.bytes, (size_t)ts.n, &all) || !(ts.mem = kiln_aligned_alloc(64, all)))
            st = kiln_fail(KILN_ERR_NOMEM, "matmul: cannot allocate %d x %zu bytes of task scratch", ts.n, ts.bytes);
        for (int i = 0; i < ts.n; i++) atomic_init(&ts.busy[i], false);
    }
    for (int i = 0; i < count && !st; i++) {
        mm_part *p = &parts[i];
        p->ctx = &p->job;
        if (p->fn == x16_task) {
            p->job.x16.act = &act;
        } else if (p->n_tasks) {
            mm_job *j = &p->job.mm;
            j->act = act;
            j->scratch = &ts;
            /* the packed prompt path's table of its tasks' 16-row groups */
            if (p->fn == mm_task_packed &&
                !(packs[i] = j->packs = calloc((size_t)p->n_tasks * (size_t)(j->rows_per_task / 16), sizeof *j->packs)))
                st = kiln_fail(KILN_ERR_NOMEM, "matmul: cannot allocate the packed-group table");
        }
    }
    if (!st) {
        multi_job mj = {parts, count};
        bool stream = n == 1 && total < ((int64_t)1 << 32);
        for (int i = 0; i < count; i++)
            stream &= !parts[i].n_tasks || parts[i].fn == x16_task || parts[i].fn == mm_task;
        if (stream)
            run_stream(pool, &mj, total);
        else
            kiln_pool_for(pool, total, multi_task, &mj);
    }
    for (int i = 0; i < count; i++) free(packs[i]);
    free(ts.mem);
    free(scratch);
    free(scratch_b16);
    return st;
}

kiln_status kiln_matmul_with(const kiln_kernel_table *t, const kiln_tensor *w, const float *x, int64_t n, float *y,
                             kiln_pool *pool) {
    return kiln_matmul_many_with(t, 1, &w, x, n, &y, pool);
}
