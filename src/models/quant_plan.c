/*
 * quant_plan.c — the per-tensor type rules of kiln quantize.
 *
 * Plain file types (q4_0, q8_0, q4_k, f16, ...) are "pure": every weight matrix gets
 * that type (as llama.cpp's `llama-quantize --pure`; without --pure llama.cpp also
 * raises output.weight to Q6_K). The *_M mixtures follow llama.cpp's rules for the
 * llama architecture (src/llama-quant.cpp, llama_tensor_get_type), written here
 * from their description:
 *
 *   - output.weight — or token_embd.weight when the model has no output.weight
 *     (tied embeddings) — gets Q6_K; Q8_0 if its rows are not a multiple of 256;
 *   - blk.N.attn_v.weight and blk.N.ffn_down.weight get Q6_K on the layers where
 *     use_more_bits(N, n_layer) holds: the first eighth of the layers, the last
 *     eighth, and every third layer in between
 *       N < n/8  ||  N >= 7n/8  ||  (N - n/8) % 3 == 2      (integer division)
 *   - every other weight matrix (token_embd when untied included) gets the base type
 *     (Q4_K for q4_k_m, Q5_K for q5_k_m).
 *   (llama.cpp also lifts attn_v to Q5_K on 70B models and changes MoE and Falcon
 *   tensors; kiln's llama files have none of those.)
 *
 * Row-length fallback (all file types), as llama.cpp's tensor_type_fallback: a weight
 * whose rows are not a whole number of the chosen type's blocks gets Q4_0 instead of
 * Q2_K/Q3_K, Q5_0 instead of Q4_K, Q5_1 instead of Q5_K, Q8_0 instead of Q6_K, and F16
 * when even that does not fit (rows not a multiple of 32; also for the legacy 32-blocks).
 * Where this build cannot write the fallback llama.cpp picks, Q8_0 is used (then F16),
 * so a smollm-sized model (rows of 576) still quantizes to q4_k with only the K-quants.
 *
 * 1-D tensors (norms, biases) are stored as F32; tensors that are not weights
 * (names not ending in "weight", or *_norm.weight) keep their type.
 */
#include "models/quant_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/kernels.h"

static const kiln_qtype g_qtypes[] = {
    /* general.file_type numbers are llama.cpp's llama_ftype values */
    {"f32", KILN_F32, 0, false},     {"f16", KILN_F16, 1, false},     {"bf16", KILN_BF16, 32, false},
    {"q4_0", KILN_Q4_0, 2, false},   {"q4_1", KILN_Q4_1, 3, false},   {"q5_0", KILN_Q5_0, 8, false},
    {"q5_1", KILN_Q5_1, 9, false},   {"q8_0", KILN_Q8_0, 7, false},   {"q2_k", KILN_Q2_K, 10, false},
    {"q3_k", KILN_Q3_K, 11, false},  {"q4_k", KILN_Q4_K, 14, false},  {"q5_k", KILN_Q5_K, 16, false},
    {"q6_k", KILN_Q6_K, 18, false},  {"q4_k_m", KILN_Q4_K, 15, true}, {"q5_k_m", KILN_Q5_K, 17, true},
};

const kiln_qtype *kiln_qtype_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof g_qtypes / sizeof g_qtypes[0]; i++)
        if (strcasecmp(name, g_qtypes[i].name) == 0) return &g_qtypes[i];
    return NULL;
}

const char *kiln_qtype_names(void) {
    return "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, q4_k_m, q5_k_m";
}

bool kiln_qplan_can_write(kiln_dtype t) {
    const kiln_dtype_traits *tr = kiln_dtype_get(t);
    if (!tr) return false;
    float src[256] = {0};
    _Alignas(16) uint8_t dst[1024];
    if (tr->block_size > 256 || tr->type_size > (int)sizeof dst) return false;
    return kiln_quantize_row(t, src, dst, tr->block_size) == KILN_OK;
}

bool kiln_qplan_can_read(kiln_dtype t) {
    const kiln_dtype_traits *tr = kiln_dtype_get(t);
    if (!tr) return false;
    _Alignas(16) uint8_t src[1024] = {0};
    float dst[256];
    if (tr->block_size > 256 || tr->type_size > (int)sizeof src) return false;
    return kiln_dequantize_row(t, src, dst, tr->block_size) == KILN_OK;
}

static bool fits(kiln_dtype t, int64_t row) {
    const kiln_dtype_traits *tr = kiln_dtype_get(t);
    return tr && row % tr->block_size == 0;
}

/* llama.cpp's use_more_bits(i_layer, n_layers). */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

int kiln_qplan_layer(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *p = name + 4;
    int n = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > 100000000) return -1; /* no model has that many layers */
        n = n * 10 + (*p - '0');
    }
    return *p == '.' ? n : -1;
}

static kiln_dtype row_fallback(kiln_dtype t, int64_t row) {
    if (fits(t, row)) return t;
    kiln_dtype f;
    switch (t) {
    case KILN_Q2_K: case KILN_Q3_K: f = KILN_Q4_0; break;
    case KILN_Q4_K: f = KILN_Q5_0; break;
    case KILN_Q5_K: f = KILN_Q5_1; break;
    case KILN_Q6_K: f = KILN_Q8_0; break;
    default: f = KILN_F16; break;
    }
    if (f != KILN_F16 && !kiln_qplan_can_write(f)) f = KILN_Q8_0;
    if (!fits(f, row) || !kiln_qplan_can_write(f)) f = KILN_F16;
    return f;
}

kiln_dtype kiln_qplan_tensor_type(const kiln_qtype *q, const kiln_qplan_model *m, const char *name, int n_dims,
                                  const int64_t *ne, kiln_dtype src) {
    if (n_dims < 2) return KILN_F32;
    if (!ends_with(name, "weight") || strstr(name, "_norm.weight")) return src;
    kiln_dtype t = q->base;
    if (q->mix_m) {
        bool is_output = strcmp(name, "output.weight") == 0 ||
                         (!m->has_output && strcmp(name, "token_embd.weight") == 0);
        int layer = kiln_qplan_layer(name);
        if (is_output) {
            t = ne[0] % KILN_QK_K == 0 ? KILN_Q6_K : KILN_Q8_0;
        } else if (layer >= 0 && (strstr(name, ".attn_v.weight") || strstr(name, ".ffn_down.weight")) &&
                   use_more_bits(layer, m->n_layer)) {
            t = KILN_Q6_K;
        }
    }
    return row_fallback(t, ne[0]);
}
