/*
 * quantize.c — kiln_model_quantize: GGUF in, GGUF out with the weight matrices in
 * another type.
 *
 * The input is mmap'd; each output tensor is produced at write time, a chunk of rows
 * at a time (kiln_gguf_writer_add_tensor_fn), by dequantizing rows to f32 and
 * quantizing them to the target type on a thread pool. So memory stays at one chunk
 * whatever the model size, and the writer's temporary-file-then-rename rule means a
 * failure leaves no output behind. Which tensor gets which type is decided up front by
 * quant_plan.c, and every type needed is checked against what this build can convert
 * before anything is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/threadpool.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "kernels/kernels.h"
#include "models/quant_plan.h"

typedef struct {
    const kiln_gguf_tensor *in;
    kiln_dtype out;
    size_t in_row, out_row; /* bytes per row */
    int64_t ne0, rows;
    int index, total;
    kiln_pool *pool;
    const kiln_quantize_options *opt;
} qtensor;

typedef struct {
    const qtensor *q;
    int64_t row0, n_rows, per_task;
    uint8_t *dst;
    int failed; /* set (atomically) by a task that could not get memory */
} qjob;

/* Converts the rows of one task: src rows -> f32 -> target type. */
static void convert_task(void *ctx, int64_t i) {
    qjob *j = ctx;
    const qtensor *q = j->q;
    int64_t r0 = i * j->per_task, r1 = r0 + j->per_task < j->n_rows ? r0 + j->per_task : j->n_rows;
    const uint8_t *src = (const uint8_t *)q->in->t.data + (size_t)(j->row0 + r0) * q->in_row;
    uint8_t *dst = j->dst + (size_t)r0 * q->out_row;
    if ((kiln_dtype)q->in->t.type == q->out) {
        memcpy(dst, src, (size_t)(r1 - r0) * q->out_row);
        return;
    }
    float *buf = NULL;
    if (q->in->t.type != KILN_F32 && q->out != KILN_F32 && !(buf = kiln_malloc_array((size_t)q->ne0, sizeof *buf))) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t r = r0; r < r1; r++, src += q->in_row, dst += q->out_row) {
        /* both conversions were checked to be supported before writing began */
        if (q->out == KILN_F32) {
            kiln_dequantize_row((kiln_dtype)q->in->t.type, src, (float *)dst, q->ne0);
        } else if (q->in->t.type == KILN_F32) {
            kiln_quantize_row(q->out, (const float *)src, dst, q->ne0);
        } else {
            kiln_dequantize_row((kiln_dtype)q->in->t.type, src, buf, q->ne0);
            kiln_quantize_row(q->out, buf, dst, q->ne0);
        }
    }
    free(buf);
}

static kiln_status fill_tensor(void *user, int64_t row0, int64_t n_rows, void *dst) {
    const qtensor *q = user;
    int n_threads = kiln_pool_size(q->pool);
    int64_t per = n_rows / ((int64_t)n_threads * 4);
    if (per < 1) per = 1;
    qjob j = {q, row0, n_rows, per, dst, 0};
    kiln_pool_for(q->pool, (n_rows + per - 1) / per, convert_task, &j);
    if (j.failed) return kiln_fail(KILN_ERR_NOMEM, "out of memory converting '%s'", q->in->name);
    if (row0 + n_rows == q->rows && q->opt->progress)
        q->opt->progress(q->in->name, q->index + 1, q->total, q->opt->user);
    return KILN_OK;
}

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Checks the conversion src -> dst of tensor name is possible in this build. */
static kiln_status check_types(const kiln_qtype *qt, const char *name, kiln_dtype src, kiln_dtype dst) {
    if (src == dst) return KILN_OK;
    if (src != KILN_F32 && !kiln_qplan_can_read(src))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tensor '%s' is %s, which this build cannot read", name,
                         kiln_dtype_name(src));
    if (!kiln_qplan_can_write(dst)) {
        if (dst == qt->base) return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: not supported by this build", qt->name);
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: not supported by this build (%s needs it for '%s')",
                         kiln_dtype_name(dst), qt->name, name);
    }
    return KILN_OK;
}

kiln_status kiln_model_quantize(const char *in_path, const char *out_path, const kiln_quantize_options *opt) {
    if (!in_path || !out_path || !opt) return kiln_fail(KILN_ERR_INVALID_ARG, "quantize: missing argument");
    const kiln_qtype *qt = kiln_qtype_find(opt->type);
    if (!qt)
        return kiln_fail(KILN_ERR_INVALID_ARG, "unknown type '%s' (known: %s)", opt->type ? opt->type : "",
                         kiln_qtype_names());
    if (!kiln_qplan_can_write(qt->base)) return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: not supported by this build", qt->name);

    kiln_gguf *g = NULL;
    kiln_gguf_writer *w = NULL;
    kiln_pool *pool = NULL;
    qtensor *qs = NULL;
    kiln_status st = kiln_gguf_open(in_path, &g);
    if (st) return st;
    if (g->n_tensors > INT32_MAX) {
        st = kiln_fail(KILN_ERR_FORMAT, "%s: too many tensors", in_path);
        goto done;
    }
    int n = (int)g->n_tensors;
    kiln_qplan_model pm = {0};
    for (int i = 0; i < n; i++) {
        int layer = kiln_qplan_layer(g->tensors[i].name);
        if (layer >= 0 && layer + 1 > pm.n_layer) pm.n_layer = layer + 1;
        if (strcmp(g->tensors[i].name, "output.weight") == 0) pm.has_output = true;
    }
    if (!(qs = calloc((size_t)n + 1, sizeof *qs)) || (st = kiln_pool_create(opt->n_threads, &pool)) ||
        (st = kiln_gguf_writer_create(&w))) {
        if (!st) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* metadata: everything but the keys this file rewrites (and split bookkeeping) */
    for (uint64_t i = 0; i < g->n_kv && !st; i++) {
        const char *k = g->kv[i].key;
        if (!strcmp(k, "general.file_type") || !strcmp(k, "general.quantization_version") || has_prefix(k, "split."))
            continue;
        st = kiln_gguf_writer_set_value(w, k, &g->kv[i].value);
    }
    if (!st) st = kiln_gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (!st) st = kiln_gguf_writer_set_u32(w, "general.file_type", qt->ftype);
    for (int i = 0; i < n && !st; i++) {
        const kiln_gguf_tensor *t = &g->tensors[i];
        qtensor *q = &qs[i];
        q->in = t;
        q->out = kiln_qplan_tensor_type(qt, &pm, t->name, t->t.n_dims, t->t.ne, (kiln_dtype)t->t.type);
        q->ne0 = t->t.ne[0];
        q->rows = t->t.ne[1] * t->t.ne[2] * t->t.ne[3];
        q->index = i;
        q->total = n;
        q->pool = pool;
        q->opt = opt;
        if ((st = check_types(qt, t->name, (kiln_dtype)t->t.type, q->out))) break;
        if (!kiln_dtype_row_bytes(t->t.type, q->ne0, &q->in_row) || !kiln_dtype_row_bytes(q->out, q->ne0, &q->out_row)) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': bad row length %lld", in_path, t->name, (long long)q->ne0);
            break;
        }
        st = kiln_gguf_writer_add_tensor_fn(w, t->name, q->out, t->t.n_dims, t->t.ne, fill_tensor, q);
    }
    if (!st) st = kiln_gguf_writer_write(w, out_path);
done:
    kiln_gguf_writer_free(w);
    kiln_pool_free(pool);
    free(qs);
    kiln_gguf_close(g);
    return st;
}
