/*
 * bert_internal.h — the kiln_bert struct, shared by the loader (bert_load.c) and the
 * forward pass (bert.c). Not for use outside src/models.
 */
#ifndef KILN_MODELS_BERT_INTERNAL_H
#define KILN_MODELS_BERT_INTERNAL_H

#include "base/threadpool.h"
#include "bert.h"
#include "formats/safetensors.h"
#include "models/bind.h"

typedef struct {
    const kiln_tensor *wq, *wk, *wv, *wo;      /* (n_embd -> n_embd) each */
    const float *bq, *bk, *bv, *bo;            /* (n_embd) */
    const float *attn_norm_w, *attn_norm_b;    /* LayerNorm after attention + residual */
    const kiln_tensor *w_up, *w_down;          /* (n_embd -> n_ff), (n_ff -> n_embd) */
    const float *b_up, *b_down;                /* (n_ff), (n_embd) */
    const float *out_norm_w, *out_norm_b;      /* LayerNorm after the feed-forward + residual */
} kiln_bert_layer;

struct kiln_bert {
    kiln_bert_config cfg;
    const char *format;
    kiln_gguf *gguf;        /* exactly one of these holds the weights */
    kiln_safetensors *st;

    const kiln_tensor *tok_embd;   /* (n_vocab, n_embd): rows are tokens */
    const kiln_tensor *pos_embd;   /* (n_pos, n_embd) */
    const kiln_tensor *type_embd;  /* (n_types, n_embd) */
    const float *embd_norm_w, *embd_norm_b;
    kiln_bert_layer *layers;       /* n_layer */

    kiln_packed_set packed;
    kiln_owned_floats owned;

    /* runtime */
    kiln_pool *pool;
    int max_batch;
    size_t runtime_bytes;
    float *x, *q, *k, *v, *att, *tmp; /* (max_batch, n_embd) each */
    float *ff;                        /* (max_batch, n_ff) */
    float *scores;                    /* (max_batch * n_head) attention scratch */
    float *type0;                     /* (n_embd) token type 0's embedding, f32 */
};

/* Reads the config and binds the weights of the file at path (bert_load.c). */
kiln_status kiln_bert_bind(kiln_bert *m, const char *path);

#endif
