/*
 * quant_plan.h — which type each tensor of a llama-family GGUF gets when a model is
 * quantized (kiln quantize) or generated (kiln quantize --random): the file-type
 * names (q4_0 ... q6_k, f16, the q4_k_m / q5_k_m mixtures), the per-tensor rule, the
 * fallback for rows that are not a whole number of blocks, and whether this build
 * can write a type at all.
 */
#ifndef KILN_MODELS_QUANT_PLAN_H
#define KILN_MODELS_QUANT_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"
#include "tensor/dtype.h"

typedef struct {
    const char *name;  /* "q4_k_m" */
    kiln_dtype base;   /* the type of most weight matrices */
    uint32_t ftype;    /* general.file_type (llama.cpp's llama_ftype number) */
    bool mix_m;        /* the *_M mixture rules (more bits for output, attn_v, ffn_down) */
} kiln_qtype;

/* The file type called name (case-insensitive), or NULL. */
const kiln_qtype *kiln_qtype_find(const char *name);
/* "q4_0, q4_1, ..." for messages. Static string. */
const char *kiln_qtype_names(void);

/* Facts about the whole model the rules look at. */
typedef struct {
    int n_layer;      /* blocks (blk.N) */
    bool has_output;  /* a separate output.weight (else token_embd is tied to the output) */
} kiln_qplan_model;

/* Type for tensor name with n_dims dims ne[] (ne[0] = row length) and source type src:
 * 1-D tensors (norms, biases) become F32, weight matrices the file type's type (with
 * the mixture rules and the row-length fallback), anything else keeps src. */
kiln_dtype kiln_qplan_tensor_type(const kiln_qtype *q, const kiln_qplan_model *m, const char *name, int n_dims,
                                  const int64_t *ne, kiln_dtype src);

/* Layer number N of a tensor named "blk.N.<...>", or -1. */
int kiln_qplan_layer(const char *name);

/* True if this build can convert f32 rows to t (kiln_quantize_row accepts it). */
bool kiln_qplan_can_write(kiln_dtype t);
/* True if this build can convert rows of t to f32. */
bool kiln_qplan_can_read(kiln_dtype t);

#endif
