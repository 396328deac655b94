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
 *     kiln_pool_for. A task walks its inputs KILN_MC at a time and, for each group,
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

typedef struct {
    kiln_mm_fn mm;
    kiln_dtype type;
    kiln_row_q8_fn row_q8;       /* packed path: row converter and kernel, else NULL */
    kiln_gemm16_fn gemm16;
    kiln_packed16 *packs;        /* one slot per group of 16 rows of the whole matrix */
    const uint8_t *w;
    size_t w_stride;
    int64_t k, m, n;
    int64_t rows_per_task;
    kiln_act act;
    float *y;
    /* activation quantization */
    kiln_quant_act_fn quant;
    const float *x;
    int8_t *qs;
    float *d;
    int16_t *bs;
} mm_job;

static void quant_task(void *ctx, int64_t i) {
    mm_job *j = ctx;
    int8_t *qs = j->qs + (size_t)i * j->act.qs_stride;
    j->quant(j->x + (size_t)i * (size_t)j->k, qs, j->d + (size_t)i * j->act.d_stride, j->k);
    if (j->bs) { /* exact integer sums of 16 quants, for types with block minimums */
        int16_t *bs = j->bs + (size_t)i * j->act.bs_stride;
        for (int64_t g = 0; g < j->k / 16; g++) {
            int s = 0;
            for (int e = 0; e < 16; e++) s += qs[g * 16 + e];
            bs[g] = (int16_t)s;
        }
    }
}

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
    uint8_t *buf = kiln_aligned_alloc(64, gbytes * (size_t)groups + (size_t)j->k + 3 * sizeof(float) * (size_t)nb);
    if (!buf) { /* no memory for packing: the unpacked kernels give the same numbers up to float order */
        mm_task(ctx, t);
        return;
    }
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
    free(buf);
}

/* Rows per task: with one input the work is a weight stream, so small chunks
 * (good load balance); with several, as many rows as keep ~128 KiB of weights in
 * L2, and never so many that fewer than 8 tasks remain for the threads. Always a
 * multiple of KILN_MR, and a function of the shapes only (determinism above). */
static int64_t rows_per_task(int64_t m, int64_t n, size_t row_bytes) {
    int64_t r;
    if (n == 1) {
        r = 16;
    } else {
        r = row_bytes ? (int64_t)((128 * 1024) / row_bytes) : 256;
        if (r > 256) r = 256;
    }
    int64_t cap = (m + 7) / 8;
    if (r > cap) r = cap;
    r = (r + KILN_MR - 1) / KILN_MR * KILN_MR;
    return r < KILN_MR ? KILN_MR : r;
}

/* Quantizes every input row to Q8_0 (and, with sums, its 16-element sums) into one
 * scratch block set in j; *scratch is to be freed by the caller. */
static kiln_status quantize_inputs(mm_job *j, const kiln_kernel_table *t, bool sums, kiln_pool *pool, void **scratch) {
    const int64_t n = j->n, k = j->k;
    /* (n, k) int8 quants, rows padded to 64 bytes, then (n, k/32) float scales,
     * then (n, k/16) int16 sums when asked. */
    const size_t qs_stride = ((size_t)k + 63) & ~(size_t)63;
    const size_t nblk = (size_t)k / KILN_QK8_0;
    size_t qs_bytes, d_bytes, bs_bytes = 0, total;
    if (!kiln_mul_ok((size_t)n, qs_stride, &qs_bytes) || !kiln_mul_ok((size_t)n, nblk, &d_bytes) ||
        !kiln_mul_ok(d_bytes, sizeof(float), &d_bytes) ||
        (sums && !kiln_mul_ok((size_t)n, 2 * nblk * sizeof(int16_t), &bs_bytes)) ||
        !kiln_add_ok(qs_bytes, d_bytes, &total) || !kiln_add_ok(total, bs_bytes, &total))
        return kiln_fail(KILN_ERR_NOMEM, "matmul: activation scratch size overflows (n %lld, k %lld)", (long long)n,
                         (long long)k);
    *scratch = kiln_aligned_alloc(64, total);
    if (!*scratch) return kiln_fail(KILN_ERR_NOMEM, "matmul: cannot allocate %zu bytes of activation scratch", total);
    j->qs = *scratch;
    j->d = (float *)(void *)((uint8_t *)*scratch + qs_bytes); /* qs_bytes is a multiple of 64 */
    j->quant = t->quant_act;
    j->act.qs = j->qs;
    j->act.qs_stride = qs_stride;
    j->act.d = j->d;
    j->act.d_stride = nblk;
    if (sums) {
        j->bs = (int16_t *)(void *)((uint8_t *)*scratch + qs_bytes + d_bytes); /* 4-byte aligned */
        j->act.bs = j->bs;
        j->act.bs_stride = 2 * nblk;
    }
    kiln_pool_for(n > 1 ? pool : NULL, n, quant_task, j);
    return KILN_OK;
}

/* ---- weights packed at load (pack.c) ---------------------------------------------- */

typedef struct {
    const mm_job *j;
    const kiln_kernel_table *t;
    kiln_dtype type;
    const uint8_t *w;
    size_t group_bytes;
    int64_t groups_per_task;
} x16_job;

static void x16_task(void *ctx, int64_t task) {
    const x16_job *xj = ctx;
    const mm_job *j = xj->j;
    const int64_t nb = j->k / (kiln_x16_superblock(xj->type) ? 256 : KILN_QK8_0), groups = (j->m + 15) / 16;
    const int64_t g0 = task * xj->groups_per_task;
    const int64_t g1 = g0 + xj->groups_per_task < groups ? g0 + xj->groups_per_task : groups;
    for (int64_t c = 0; c < j->n; c += KILN_PACK_NC) {
        const int nc = (int)(j->n - c < KILN_PACK_NC ? j->n - c : KILN_PACK_NC);
        for (int64_t g = g0; g < g1; g++) {
            const int nr = (int)(j->m - g * 16 < 16 ? j->m - g * 16 : 16);
            xj->t->gemm_x16(xj->type, nb, xj->w + (size_t)g * xj->group_bytes, nr, &j->act, c, nc,
                            j->y + (size_t)c * (size_t)j->m + (size_t)(g * 16), (size_t)j->m);
        }
    }
}

static kiln_status matmul_x16(const kiln_kernel_table *t, const kiln_tensor *w, const float *x, int64_t n, float *y,
                              kiln_pool *pool) {
    if (!t->gemm_x16)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "matmul: packed weights need the kernels they were packed for (%s)",
                         t->name);
    const int64_t k = w->ne[0], m = w->ne[1];
    const bool sup = kiln_x16_superblock(w->type);
    if (n < 0 || k <= 0 || m <= 0 || k % (sup ? 256 : 32))
        return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: bad packed shapes");
    if (n == 0) return KILN_OK;
    if (!x || !y || !w->data) return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: NULL data");
    mm_job j = {.type = w->type, .k = k, .m = m, .n = n, .y = y, .x = x};
    void *scratch = NULL;
    kiln_status st = quantize_inputs(&j, t, true, pool, &scratch);
    if (st) return st;
    const int64_t nb = sup ? k / 256 : k / 32, groups = (m + 15) / 16;
    const size_t bsz = w->type == KILN_Q6_K_X16   ? KILN_X16_Q6_K_BLOCK
                       : w->type == KILN_Q4_K_X16 ? KILN_X16_Q4_K_BLOCK
                       : w->type == KILN_Q4_0_X16 ? KILN_X16_Q4_0_BLOCK
                                                  : KILN_X16_Q8_0_BLOCK;
    /* A matrix-vector product is a weight stream: tasks of about 64 KiB of contiguous
     * packed weights (long enough runs for the hardware prefetchers), at least 8 tasks
     * for balance. Prompts: about 256 KiB per task, reused for every input. */
    int64_t per = (int64_t)(((n > 1 ? 256u : 64u) << 10) / ((size_t)nb * bsz));
    if (per < 1) per = 1;
    if (per > (groups + 7) / 8) per = (groups + 7) / 8 > 0 ? (groups + 7) / 8 : 1;
    x16_job xj = {&j, t, w->type, w->data, (size_t)nb * bsz, per};
    kiln_pool_for(pool, (groups + per - 1) / per, x16_task, &xj);
    free(scratch);
    return KILN_OK;
}

kiln_status kiln_matmul_with(const kiln_kernel_table *t, const kiln_tensor *w, const float *x, int64_t n, float *y,
                             kiln_pool *pool) {
    if (!t || !w) return kiln_fail(KILN_ERR_INVALID_ARG, "matmul: no kernel table or weight");
    if (kiln_x16_type(w->type)) return matmul_x16(t, w, x, n, y, pool);
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

    mm_job j = {.mm = mm, .type = w->type, .w = w->data, .w_stride = w->nb[1], .k = k, .m = m, .n = n, .y = y, .x = x};
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    const bool packed = n >= KILN_PACK_MIN_N && t->gemm16 && ref->row_q8[w->type] && k % KILN_QK8_0 == 0;
    j.rows_per_task = rows_per_task(m, n, row_bytes);
    if (packed) { /* whole groups of 16 rows per task */
        j.rows_per_task = (j.rows_per_task + 15) / 16 * 16;
        j.row_q8 = ref->row_q8[w->type];
        j.gemm16 = t->gemm16;
    }
    j.act.f = x;
    j.act.f_stride = (size_t)k;

    void *scratch = NULL;
    if (kiln_type_quantized(w->type)) {
        kiln_status st = quantize_inputs(&j, t, kiln_type_needs_sums(w->type) || packed, pool, &scratch);
        if (st) return st;
    }

    const int64_t n_tasks = (m + j.rows_per_task - 1) / j.rows_per_task;
    if (packed && (j.packs = calloc((size_t)n_tasks * (size_t)(j.rows_per_task / 16), sizeof *j.packs))) {
        kiln_pool_for(pool, n_tasks, mm_task_packed, &j);
        free(j.packs);
    } else {
        kiln_pool_for(pool, n_tasks, mm_task, &j);
    }
    free(scratch);
    return KILN_OK;
}
