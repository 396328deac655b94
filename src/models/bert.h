/*
 * bert.h — BERT-family encoders for sentence embeddings (all-MiniLM, bge, e5, gte:
 * Hugging Face BertModel and llama.cpp's GGUF "bert").
 *
 * One loader for two file kinds — a Hugging Face / sentence-transformers folder
 * (config.json + model.safetensors, with the sentence-transformers files that say how
 * to pool: modules.json, 1_Pooling/config.json, sentence_bert_config.json) and a GGUF
 * written by llama.cpp's converter (general.architecture "bert") — ending in the same
 * kiln_bert: a config, the pooling the model asks for, and weight views bound by name.
 *
 * The forward pass takes several sequences at once, packed back to back with no
 * padding: each token attends only to the tokens of its own sequence, which is what a
 * padded batch with an attention mask computes, without the work on padding.
 */
#ifndef KILN_MODELS_BERT_H
#define KILN_MODELS_BERT_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "kiln.h"

/* How token states become one sentence vector (sentence-transformers' Pooling
 * modes; GGUF bert.pooling_type 0 none, 1 mean, 2 cls, 3 last). */
typedef enum {
    KILN_POOL_NONE,  /* token states only */
    KILN_POOL_MEAN,  /* mean over the sequence's tokens */
    KILN_POOL_CLS,   /* the first token ([CLS]) */
    KILN_POOL_LAST,  /* the last token */
    KILN_POOL_MAX,   /* element-wise max over the tokens */
} kiln_pooling;

typedef struct {
    int n_vocab;
    int n_embd;       /* hidden size */
    int n_layer;
    int n_head, head_dim;
    int n_ff;         /* intermediate size */
    int n_pos;        /* max_position_embeddings: longest sequence, [CLS] and [SEP] included */
    int n_types;      /* token type (segment) vocabulary; every input is type 0 */
    float norm_eps;
    bool gelu_tanh;   /* hidden_act gelu_new / gelu_pytorch_tanh: the tanh form; else exact erf */
    /* from the sentence-transformers files (or GGUF metadata) */
    kiln_pooling pooling;
    bool normalize;   /* a Normalize module follows the pooling */
    int max_tokens;   /* sentence_bert_config max_seq_length, else n_pos */
} kiln_bert_config;

typedef struct kiln_bert kiln_bert;

typedef struct {
    const char *path;    /* GGUF file or Hugging Face folder */
    int n_threads;       /* 0: all cores */
    int max_batch;       /* tokens per forward call (sum over its sequences); 0: 1024, and
                            never under max_tokens */
} kiln_bert_options;

/* Loads the model. On success *out is owned by the caller (kiln_bert_free). Errors name
 * the file and the problem (missing tensor, wrong shape, unsupported type or option). */
kiln_status kiln_bert_load(const kiln_bert_options *opt, kiln_bert **out);
void kiln_bert_free(kiln_bert *m);
/* True if path is a GGUF of architecture "bert" or a folder whose config.json says
 * model_type "bert" (whether or not it then loads). May leave kiln_last_error set. */
bool kiln_bert_probe(const char *path);

const kiln_bert_config *kiln_bert_get_config(const kiln_bert *m);
/* Tokens one forward call takes at most. */
int kiln_bert_max_batch(const kiln_bert *m);
/* Bytes the model allocates beyond its mapped file: activation buffers, the packed
 * copies of its matrices and the f32 copies of its vectors. */
size_t kiln_bert_heap_bytes(const kiln_bert *m);
/* The GGUF file (for its tokenizer), or NULL for a folder. */
const kiln_gguf *kiln_bert_gguf(const kiln_bert *m);
/* "gguf" or "safetensors". */
const char *kiln_bert_format(const kiln_bert *m);

/* Runs n_seq sequences packed back to back: sequence s is lens[s] ids (1..n_pos), the
 * ids of all sequences one after another in ids. out receives the last layer's state
 * of every token, (Σ lens, n_embd) floats. The sum of lens must not exceed the max
 * batch (KILN_ERR_INVALID_ARG, as for an id outside the vocabulary or a bad length).
 * Bit-identical whatever the thread count, and a sequence gets the very same states
 * alone or with others: every per-token step is row-wise, and the matrices are packed
 * (kiln_pack_matrices with float panels) so that the matmul takes one path for every
 * batch size: F32, F16, BF16 and the packed quantized types (Q8_0, Q4_0, Q4_K, Q6_K).
 * Other quantized types may differ in the last bits between calls of under and of
 * 16 or more tokens (kernels.h). */
kiln_status kiln_bert_forward(kiln_bert *m, const int32_t *ids, const int *lens, int n_seq, float *out);

#endif
