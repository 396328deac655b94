/*
 * llama_random.c — kiln_model_random: a llama (or BERT encoder) GGUF of a real
 * model's shape with random weights, for benchmarks (and for comparing with llama.cpp on the same file)
 * without downloading anything.
 *
 * Weights are drawn per row from a xoshiro256** stream seeded by (seed, tensor, row),
 * so any slice can be made on its own, on any thread, and the file is the same
 * whatever the thread count. Each value is the sum of four uniform 16-bit draws,
 * centred and scaled to stddev 0.02 (a cheap, bounded approximation of a normal:
 * making 8 billion Box-Muller normals would dominate the time). Norm weights are 1.
 * The writer asks for each tensor a chunk of rows at a time
 * (kiln_gguf_writer_add_tensor_fn), so a 7B/8B model never sits in memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "base/status.h"
#include "models/sd_random.h"
#include "base/threadpool.h"
#include "formats/gguf_write.h"
#include "kernels/kernels.h"
#include "models/quant_plan.h"
#include "models/random_vocab.h"

typedef struct {
    const char *name;
    bool bert; /* a BERT encoder (GGUF "bert", WordPiece) instead of a llama */
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    double rope_theta;
    bool tied;  /* no output.weight: the output reuses token_embd */
    kiln_rvocab_kind vocab;
} shape;

/* The real models' hyper-parameters (their config.json), and two tiny shapes for tests. */
static const shape g_shapes[] = {
    {"smollm-135m", false, 576, 30, 9, 3, 1536, 49152, 2048, 10000.0, true, KILN_RVOCAB_BPE_SMOLLM},
    {"tinyllama-1.1b", false, 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0, false, KILN_RVOCAB_SPM},
    {"llama2-7b", false, 4096, 32, 32, 32, 11008, 32000, 4096, 10000.0, false, KILN_RVOCAB_SPM},
    {"llama3-8b", false, 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0, false, KILN_RVOCAB_BPE_LLAMA3},
    {"tiny", false, 256, 2, 4, 2, 512, 512, 512, 10000.0, false, KILN_RVOCAB_SPM},
    {"tiny-bpe", false, 256, 2, 4, 2, 512, 1024, 512, 10000.0, true, KILN_RVOCAB_BPE_SMOLLM},
    /* sentence embedders: all-MiniLM-L6-v2 / -L12-v2 (bge-small has the L12 shape), bge-base */
    {"minilm-l6", true, 384, 6, 12, 12, 1536, 30522, 512, 0, false, KILN_RVOCAB_WPM},
    {"minilm-l12", true, 384, 12, 12, 12, 1536, 30522, 512, 0, false, KILN_RVOCAB_WPM},
    {"bge-base", true, 768, 12, 12, 12, 3072, 30522, 512, 0, false, KILN_RVOCAB_WPM},
    {"bert-tiny", true, 128, 2, 2, 2, 512, 1024, 512, 0, false, KILN_RVOCAB_WPM},
};
#define N_SHAPES (sizeof g_shapes / sizeof g_shapes[0])

const char *const *kiln_random_shapes(void) {
    static const char *names[N_SHAPES + 3];
    for (size_t i = 0; i < N_SHAPES; i++) names[i] = g_shapes[i].name; /* same values every call */
    names[N_SHAPES] = "sd15"; /* Stable Diffusion folders (sd_random.c) */
    names[N_SHAPES + 1] = "sd-tiny";
    names[N_SHAPES + 2] = NULL;
    return names;
}

#define WEIGHT_STD 0.02f

typedef struct {
    char name[64];
    kiln_dtype type;
    int n_dims;
    int64_t ne[2];
    size_t row_bytes;
    bool ones;       /* a norm: all 1 */
    uint64_t seed;   /* of row 0; row r uses seed ^ (r * odd constant) */
    int index, total;
    kiln_pool *pool;
    const kiln_random_model_options *opt;
} rtensor;

typedef struct {
    const rtensor *t;
    int64_t row0, n_rows, per_task;
    uint8_t *dst;
    int failed;
} rjob;

static void make_row(const rtensor *t, int64_t row, float *x) {
    if (t->ones) {
        for (int64_t i = 0; i < t->ne[0]; i++) x[i] = 1.0f;
        return;
    }
    kiln_rng r;
    kiln_rng_seed(&r, t->seed ^ ((uint64_t)row * 0x9E3779B97F4A7C15ull));
    /* four uniforms in [0, 65535]: mean 2 * 65535, variance 4 * (65536² - 1) / 12 */
    const float scale = WEIGHT_STD * sqrtf(3.0f) / 65536.0f;
    for (int64_t i = 0; i < t->ne[0]; i++) {
        uint64_t u = kiln_rng_u64(&r);
        float s = (float)(u & 0xFFFF) + (float)((u >> 16) & 0xFFFF) + (float)((u >> 32) & 0xFFFF) + (float)(u >> 48);
        x[i] = (s - 2.0f * 65535.0f) * scale;
    }
}

static void random_task(void *ctx, int64_t i) {
    rjob *j = ctx;
    const rtensor *t = j->t;
    int64_t r0 = i * j->per_task, r1 = r0 + j->per_task < j->n_rows ? r0 + j->per_task : j->n_rows;
    float *buf = t->type == KILN_F32 ? NULL : kiln_malloc_array((size_t)t->ne[0], sizeof *buf);
    if (t->type != KILN_F32 && !buf) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        uint8_t *dst = j->dst + (size_t)r * t->row_bytes;
        if (t->type == KILN_F32) {
            make_row(t, j->row0 + r, (float *)dst);
        } else {
            make_row(t, j->row0 + r, buf);
            kiln_quantize_row(t->type, buf, dst, t->ne[0]); /* checked before writing */
        }
    }
    free(buf);
}

static kiln_status fill_random(void *user, int64_t row0, int64_t n_rows, void *dst) {
    const rtensor *t = user;
    int64_t per = n_rows / ((int64_t)kiln_pool_size(t->pool) * 4);
    if (per < 1) per = 1;
    rjob j = {t, row0, n_rows, per, dst, 0};
    kiln_pool_for(t->pool, (n_rows + per - 1) / per, random_task, &j);
    if (j.failed) return kiln_fail(KILN_ERR_NOMEM, "out of memory making '%s'", t->name);
    int64_t rows = t->n_dims == 2 ? t->ne[1] : 1;
    if (row0 + n_rows == rows && t->opt->progress) t->opt->progress(t->name, t->index + 1, t->total, t->opt->user);
    return KILN_OK;
}

/* llama.cpp's "bert" keys; mean pooling, as sentence-transformers' MiniLM and (with
 * cls) bge use; kiln L2-normalizes a GGUF's pooled vectors. */
static kiln_status set_bert_metadata(kiln_gguf_writer *w, const shape *s) {
    kiln_status st = kiln_gguf_writer_set_u32(w, "bert.context_length", (uint32_t)s->n_ctx);
    if (!st) st = kiln_gguf_writer_set_u32(w, "bert.embedding_length", (uint32_t)s->n_embd);
    if (!st) st = kiln_gguf_writer_set_u32(w, "bert.block_count", (uint32_t)s->n_layer);
    if (!st) st = kiln_gguf_writer_set_u32(w, "bert.feed_forward_length", (uint32_t)s->n_ff);
    if (!st) st = kiln_gguf_writer_set_u32(w, "bert.attention.head_count", (uint32_t)s->n_head);
    if (!st) st = kiln_gguf_writer_set_f32(w, "bert.attention.layer_norm_epsilon", 1e-12f);
    if (!st) st = kiln_gguf_writer_set_bool(w, "bert.attention.causal", false);
    if (!st) st = kiln_gguf_writer_set_u32(w, "bert.pooling_type", 1);
    if (!st) st = kiln_rvocab_write(w, s->vocab, s->n_vocab);
    return st;
}

static kiln_status set_metadata(kiln_gguf_writer *w, const shape *s, const kiln_qtype *q) {
    char name[96];
    snprintf(name, sizeof name, "kiln random %s", s->name);
    if (s->bert) {
        kiln_status st = kiln_gguf_writer_set_str(w, "general.architecture", "bert");
        if (!st) st = kiln_gguf_writer_set_str(w, "general.name", name);
        if (!st) st = kiln_gguf_writer_set_u32(w, "general.file_type", q->ftype);
        if (!st) st = kiln_gguf_writer_set_u32(w, "general.quantization_version", 2);
        return st ? st : set_bert_metadata(w, s);
    }
    kiln_status st = kiln_gguf_writer_set_str(w, "general.architecture", "llama");
    if (!st) st = kiln_gguf_writer_set_str(w, "general.name", name);
    if (!st) st = kiln_gguf_writer_set_u32(w, "general.file_type", q->ftype);
    if (!st) st = kiln_gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (!st) st = kiln_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)s->n_vocab);
    if (!st) st = kiln_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)s->n_ctx);
    if (!st) st = kiln_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)s->n_embd);
    if (!st) st = kiln_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)s->n_layer);
    if (!st) st = kiln_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)s->n_ff);
    if (!st) st = kiln_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(s->n_embd / s->n_head));
    if (!st) st = kiln_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)s->n_head);
    if (!st) st = kiln_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)s->n_head_kv);
    if (!st) st = kiln_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (!st) st = kiln_gguf_writer_set_f32(w, "llama.rope.freq_base", (float)s->rope_theta);
    if (!st) st = kiln_rvocab_write(w, s->vocab, s->n_vocab);
    return st;
}

kiln_status kiln_model_random(const char *out_path, const kiln_random_model_options *opt) {
    if (!out_path || !opt) return kiln_fail(KILN_ERR_INVALID_ARG, "random model: missing argument");
    if (kiln_sd_random_shape(opt->shape)) return kiln_sd_random_write(out_path, opt);
    const shape *s = NULL;
    for (size_t i = 0; i < N_SHAPES; i++)
        if (opt->shape && !strcmp(opt->shape, g_shapes[i].name)) s = &g_shapes[i];
    if (!s)
        return kiln_fail(KILN_ERR_INVALID_ARG, "unknown shape '%s' (known: smollm-135m, tinyllama-1.1b, llama2-7b, "
                         "llama3-8b, tiny, tiny-bpe, minilm-l6, minilm-l12, bge-base, bert-tiny, sd15, sd-tiny)",
                         opt->shape ? opt->shape : "");
    const kiln_qtype *q = kiln_qtype_find(opt->type);
    if (!q)
        return kiln_fail(KILN_ERR_INVALID_ARG, "unknown type '%s' (known: %s)", opt->type ? opt->type : "",
                         kiln_qtype_names());
    if (!kiln_qplan_can_write(q->base)) return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: not supported by this build", q->name);

    int n_t = s->bert ? 5 + 16 * s->n_layer : 2 + !s->tied + 9 * s->n_layer;
    int64_t kv = (int64_t)s->n_embd / s->n_head * s->n_head_kv;
    rtensor *ts = calloc((size_t)n_t, sizeof *ts);
    kiln_gguf_writer *w = NULL;
    kiln_pool *pool = NULL;
    kiln_status st = ts ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!st) st = kiln_pool_create(opt->n_threads, &pool);
    if (!st) st = kiln_gguf_writer_create(&w);
    if (!st) st = set_metadata(w, s, q);
    /* the tensors in llama.cpp's order: embeddings, output, then each block */
    int k = 0;
#define T(nm, ones_, d0, d1) do { \
        rtensor *t = &ts[k++]; \
        snprintf(t->name, sizeof t->name, "%s", nm); \
        t->ones = ones_; t->n_dims = (d1) ? 2 : 1; t->ne[0] = d0; t->ne[1] = (d1) ? (d1) : 1; \
    } while (0)
    char nm[64];
    if (!st && s->bert) {
        T("token_embd.weight", false, s->n_embd, s->n_vocab);
        T("token_types.weight", false, s->n_embd, 2);
        T("position_embd.weight", false, s->n_embd, s->n_ctx);
        T("token_embd_norm.weight", true, s->n_embd, 0);
        T("token_embd_norm.bias", false, s->n_embd, 0);
        static const struct {
            const char *name;
            bool ff_out, ff_in, ones;
        } per[] = {{"attn_q.weight", 0, 0, 0},           {"attn_q.bias", 0, 0, 0},
                   {"attn_k.weight", 0, 0, 0},           {"attn_k.bias", 0, 0, 0},
                   {"attn_v.weight", 0, 0, 0},           {"attn_v.bias", 0, 0, 0},
                   {"attn_output.weight", 0, 0, 0},      {"attn_output.bias", 0, 0, 0},
                   {"attn_output_norm.weight", 0, 0, 1}, {"attn_output_norm.bias", 0, 0, 0},
                   {"ffn_up.weight", 1, 0, 0},           {"ffn_up.bias", 1, 0, 0},
                   {"ffn_down.weight", 0, 1, 0},         {"ffn_down.bias", 0, 0, 0},
                   {"layer_output_norm.weight", 0, 0, 1}, {"layer_output_norm.bias", 0, 0, 0}};
        for (int l = 0; l < s->n_layer; l++)
            for (size_t i = 0; i < sizeof per / sizeof per[0]; i++) {
                const bool matrix = strstr(per[i].name, ".weight") && !per[i].ones;
                const int64_t out = per[i].ff_out ? s->n_ff : s->n_embd, in = per[i].ff_in ? s->n_ff : s->n_embd;
                snprintf(nm, sizeof nm, "blk.%d.%s", l, per[i].name);
                T(nm, per[i].ones, matrix ? in : out, matrix ? out : 0);
            }
    } else if (!st) {
        T("token_embd.weight", false, s->n_embd, s->n_vocab);
        T("output_norm.weight", true, s->n_embd, 0);
        if (!s->tied) T("output.weight", false, s->n_embd, s->n_vocab);
        for (int l = 0; l < s->n_layer; l++) {
            snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l); T(nm, true, s->n_embd, 0);
            snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l); T(nm, false, s->n_embd, s->n_embd);
            snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l); T(nm, false, s->n_embd, kv);
            snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l); T(nm, false, s->n_embd, kv);
            snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l); T(nm, false, s->n_embd, s->n_embd);
            snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l); T(nm, true, s->n_embd, 0);
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l); T(nm, false, s->n_embd, s->n_ff);
            snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l); T(nm, false, s->n_embd, s->n_ff);
            snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l); T(nm, false, s->n_ff, s->n_embd);
        }
    }
#undef T
    kiln_qplan_model pm = {s->n_layer, !s->tied};
    for (int i = 0; i < n_t && !st; i++) {
        rtensor *t = &ts[i];
        t->type = kiln_qplan_tensor_type(q, &pm, t->name, t->n_dims, t->ne, KILN_F32);
        /* a BERT's two segment embeddings stay f32: llama.cpp adds them as a plain tensor */
        if (s->bert && !strcmp(t->name, "token_types.weight")) t->type = KILN_F32;
        if (!kiln_qplan_can_write(t->type)) {
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: not supported by this build (%s needs it for '%s')",
                           kiln_dtype_name(t->type), q->name, t->name);
            break;
        }
        kiln_dtype_row_bytes(t->type, t->ne[0], &t->row_bytes);
        t->seed = opt->seed ^ (((uint64_t)i + 1) * 0xD1B54A32D192ED03ull);
        t->index = i;
        t->total = n_t;
        t->pool = pool;
        t->opt = opt;
        st = kiln_gguf_writer_add_tensor_fn(w, t->name, t->type, t->n_dims, t->ne, fill_random, t);
    }
    if (!st) st = kiln_gguf_writer_write(w, out_path);
    kiln_gguf_writer_free(w);
    kiln_pool_free(pool);
    free(ts);
    return st;
}
