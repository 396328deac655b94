/*
 * llama_internal.h — the kiln_llama struct, shared by the loader (llama_load.c) and
 * the forward pass (llama.c). Not for use outside src/models.
 */
#ifndef KILN_MODELS_LLAMA_INTERNAL_H
#define KILN_MODELS_LLAMA_INTERNAL_H

#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "llama.h"
#include "models/bind.h"

typedef struct {
    const float *attn_norm;                 /* (n_embd) */
    const kiln_tensor *wq, *wk, *wv, *wo;   /* (n_embd -> n_head*head_dim), (-> n_head_kv*head_dim) x2, (n_head*head_dim -> n_embd) */
    const float *bq, *bk, *bv;              /* biases or NULL */
    const float *ffn_norm;                  /* (n_embd) */
    const kiln_tensor *w_gate, *w_up, *w_down; /* (n_embd -> n_ff) x2, (n_ff -> n_embd) */
} kiln_llama_layer;

struct kiln_llama {
    kiln_llama_config cfg;
    const char *format;
    /* the file(s) the weights live in (exactly one is set) */
    kiln_gguf *gguf;
    kiln_safetensors *st;
    kiln_llama2c *l2c;

    const kiln_tensor *tok_embd;            /* (n_vocab, n_embd): rows are tokens */
    const float *output_norm;               /* (n_embd) */
    const kiln_tensor *output;              /* (n_embd -> n_vocab) */
    kiln_llama_layer *layers;               /* n_layer */
    float *rope_freq;                       /* (n_rot/2) angle per position, scaling applied */

    /* f32 copies of small vectors stored in other types (norms, biases); freed with the model */
    /* weight matrices repacked at load for this CPU's kernels (kiln_weight_pack): the
     * tensors the layer pointers then point to, and their bytes */
    kiln_packed_set packed;
    kiln_owned_floats owned;

    /* runtime */
    int n_ctx, n_batch;
    size_t runtime_bytes;                   /* sum of the buffers below */
    kiln_pool *pool;
    float *k_cache, *v_cache;               /* (n_layer, n_ctx, n_head_kv*head_dim) */
    float *x, *xn, *q, *k, *v, *att, *gate, *up; /* per-batch activations (n_batch rows) */
    float *scores;                          /* (n_head, n_ctx) attention scratch */
    float *logits_tmp;                      /* (n_vocab) */
};

/* Binds weights and fills cfg for each file kind (llama_load.c). */
kiln_status kiln_llama_bind(kiln_llama *m, const char *path);

#endif
