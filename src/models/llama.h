/*
 * llama.h — the Llama family of decoder-only transformers (Llama 1/2/3, Mistral,
 * TinyLlama, SmolLM, llama2.c stories, Qwen2 with attention biases).
 *
 * One loader for three file kinds — GGUF (general.architecture llama / qwen2),
 * Hugging Face folders (config.json + safetensors) and llama2.c checkpoints — that
 * all end in the same kiln_llama: a config, weight views bound by name, and a KV
 * cache. The forward pass takes a batch of tokens at consecutive positions.
 */
#ifndef KILN_MODELS_LLAMA_H
#define KILN_MODELS_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "formats/gguf.h"
#include "tensor/tensor.h"

typedef enum { KILN_ROPE_SCALING_NONE, KILN_ROPE_SCALING_LINEAR, KILN_ROPE_SCALING_LLAMA3 } kiln_rope_scaling;

typedef struct {
    char arch[16];          /* "llama" or "qwen2" */
    int n_vocab;
    int n_embd;             /* model width */
    int n_layer;
    int n_head, n_head_kv;  /* query heads, key/value heads (GQA when fewer) */
    int head_dim;
    int n_ff;               /* feed-forward width */
    int n_ctx_train;        /* context length the model was trained for */
    int n_rot;              /* rotated dims per head (usually head_dim) */
    float norm_eps;
    double rope_theta;
    bool rope_neox;         /* true: pairs (i, i+n_rot/2) (HF layout); false: (2i, 2i+1) (GGUF/Meta) */
    kiln_rope_scaling rope_scaling;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_ctx;
    bool attn_bias;         /* q/k/v projections have biases (qwen2) */
} kiln_llama_config;

typedef struct kiln_llama kiln_llama;

typedef struct {
    const char *path;  /* .gguf file, llama2.c .bin, or Hugging Face folder */
    int n_ctx;         /* 0: min(n_ctx_train, 4096) */
    int n_threads;     /* 0: all cores */
    int n_batch;       /* 0: 256 tokens per forward chunk */
    size_t max_runtime_bytes; /* 0: no limit on KV cache + activations (else KILN_ERR_CAPACITY) */
} kiln_llama_options;

/* Loads the model. On success *out is owned by the caller (kiln_llama_free). Errors
 * name the file and the problem (missing tensor, wrong shape, unsupported type...). */
kiln_status kiln_llama_load(const kiln_llama_options *opt, kiln_llama **out);
void kiln_llama_free(kiln_llama *m);

const kiln_llama_config *kiln_llama_get_config(const kiln_llama *m);
int kiln_llama_n_ctx(const kiln_llama *m);
/* Bytes of the KV cache and activation buffers. */
size_t kiln_llama_runtime_bytes(const kiln_llama *m);
/* The file kind the model came from: "gguf", "safetensors" or "llama2c". */
const char *kiln_llama_format(const kiln_llama *m);
/* The GGUF file (for its tokenizer metadata), or NULL for other formats. */
const kiln_gguf *kiln_llama_gguf(const kiln_llama *m);

/* Runs tokens ids[0..n) at positions pos..pos+n-1, appending their keys/values to the
 * cache (entries at and after pos are overwritten). If logits is not NULL it
 * receives the logits of the last token (n_vocab floats) or, with all_logits, of
 * every token (n × n_vocab). KILN_ERR_CONTEXT_FULL if pos + n exceeds the context;
 * KILN_ERR_INVALID_ARG for an id outside the vocabulary. */
kiln_status kiln_llama_forward(kiln_llama *m, const int32_t *ids, int n, int pos, float *logits, bool all_logits);

#endif
