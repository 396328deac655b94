/*
 * clip_text_internal.h — the kiln_clip_text struct, shared by the binder
 * (clip_text_load.c) and the forward pass (clip_text.c). Not for use outside
 * src/models.
 */
#ifndef KILN_MODELS_CLIP_TEXT_INTERNAL_H
#define KILN_MODELS_CLIP_TEXT_INTERNAL_H

#include "clip_text.h"
#include "models/bind.h"

typedef struct {
    const float *ln1_w, *ln1_b;             /* LayerNorm before attention */
    const kiln_tensor *wq, *wk, *wv, *wo;   /* (n_embd -> n_embd) each */
    const float *bq, *bk, *bv, *bo;
    const float *ln2_w, *ln2_b;             /* LayerNorm before the MLP */
    const kiln_tensor *w_fc1, *w_fc2;       /* (n_embd -> n_ff), (n_ff -> n_embd) */
    const float *b_fc1, *b_fc2;
    kiln_tensor qkv_rows[3];                /* OpenCLIP: q, k, v as row views of in_proj_weight */
} kiln_clip_layer;

struct kiln_clip_text {
    kiln_clip_text_config cfg;
    const kiln_tensor *tok_embd;  /* (n_vocab, n_embd): rows are tokens */
    const kiln_tensor *pos_embd;  /* (n_pos, n_embd) */
    kiln_clip_layer *layers;      /* n_layer */
    const float *final_w, *final_b;
    const kiln_tensor *proj;      /* (n_embd -> proj_dim) or NULL */
    kiln_tensor proj_t;           /* OpenCLIP's projection transposed into proj_t_data */

    kiln_packed_set packed;
    kiln_owned_floats owned;
    kiln_pool *pool;              /* the caller's */

    /* activations, grown to the largest batch seen */
    int64_t cap_tokens;
    size_t runtime_bytes;
    float *x, *h, *q, *k, *v, *att, *ff, *scores; /* (T, n_embd) each; ff (T, n_ff); scores (T) */
};

/* Binds cfg's weights from w (clip_text_load.c); the caller has set m->cfg or asked
 * for it to be inferred (infer true). */
kiln_status kiln_clip_text_bind(kiln_clip_text *m, const kiln_weight_list *w, const char *prefix,
                                kiln_clip_names names, bool infer, const char *path);

#endif
