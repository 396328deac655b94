/*
 * clip_text.h — the CLIP text encoder Stable Diffusion conditions on: OpenAI CLIP
 * ViT-L/14's text tower for SD 1.x, OpenCLIP ViT-H/14's for SD 2.x (and, later, the
 * two towers of SDXL).
 *
 * The weights stay in the caller's mapping (a diffusers text_encoder/ folder or a
 * single-file checkpoint): the encoder binds them by their upstream names, in one of
 * two naming schemes (Hugging Face's CLIPTextModel, also used with a prefix by SD 1.x
 * single files, and OpenCLIP's, used by SD 2.x single files), and keeps fp32 panel
 * copies of the matrices where the CPU has panel kernels. The mapping must outlive
 * the encoder.
 */
#ifndef KILN_MODELS_CLIP_TEXT_H
#define KILN_MODELS_CLIP_TEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "formats/weights.h"
#include "kiln.h"

typedef enum {
    KILN_CLIP_NAMES_HF,       /* text_model.encoder.layers.N.self_attn.q_proj.weight ... */
    KILN_CLIP_NAMES_OPENCLIP, /* transformer.resblocks.N.attn.in_proj_weight ... */
} kiln_clip_names;

typedef struct {
    int n_vocab, n_pos, n_embd, n_head, n_layer, n_ff;
    int head_dim;    /* n_embd / n_head */
    float norm_eps;
    bool quick_gelu; /* x·sigmoid(1.702x) (OpenAI CLIP); else exact gelu (OpenCLIP) */
    int proj_dim;    /* outputs of the text projection, 0 if the file has none */
    int eos_id;      /* the pooled state is the first eos_id's; 2 (HF's legacy value): the highest id's */
} kiln_clip_text_config;

typedef struct kiln_clip_text kiln_clip_text;

/* Reads a Hugging Face CLIPTextConfig (text_encoder/config.json; a full CLIPConfig's
 * text_config too). what names the file in errors. KILN_ERR_FORMAT /
 * KILN_ERR_UNSUPPORTED (another hidden_act) on failure. */
kiln_status kiln_clip_text_config_json(const char *json, const char *what, kiln_clip_text_config *c);

/* Binds the encoder in w, whose names start with prefix ("" for a diffusers folder,
 * "cond_stage_model.transformer." for an SD 1.x single file, "cond_stage_model.model."
 * for an SD 2.x one). cfg NULL: the config is read from the tensors' shapes (layers
 * counted, 64-wide heads, eps 1e-5, quick_gelu for HF names and gelu for OpenCLIP's,
 * as SD 1.x / 2.x checkpoints are). path names the file in errors. pool (may be
 * NULL) runs the matmuls; it must outlive the encoder. On success *out is owned by
 * the caller (kiln_clip_text_free). */
kiln_status kiln_clip_text_create(const kiln_weight_list *w, const char *prefix, kiln_clip_names names,
                                  const kiln_clip_text_config *cfg, const char *path, kiln_pool *pool,
                                  kiln_clip_text **out);
void kiln_clip_text_free(kiln_clip_text *m);

const kiln_clip_text_config *kiln_clip_text_get_config(const kiln_clip_text *m);

/* Heap memory the encoder holds (panel copies, vectors, activations). */
size_t kiln_clip_text_heap_bytes(const kiln_clip_text *m);

/* Encodes n_seq sequences of len tokens each (ids is (n_seq, len); 1 <= len <= n_pos),
 * each attending causally to itself only, as CLIP does (no padding mask: SD pads
 * with a token and lets it attend).
 *   skip: 1 takes the last layer's states, 2 the penultimate layer's (AUTOMATIC1111's
 *         "clip skip"; diffusers' clip_skip is one less), up to n_layer.
 *   final_norm: apply the final LayerNorm to those states (SD 1.x / 2.x do; SDXL
 *         takes the penultimate states without it).
 *   hidden: (n_seq, len, n_embd) out.
 *   pooled: NULL, or (n_seq, proj_dim or n_embd) out: the last layer's normalized
 *         state at each sequence's eos token (see eos_id), through the projection if
 *         there is one (what SDXL's added conditioning takes).
 * Deterministic whatever the pool's thread count. KILN_ERR_INVALID_ARG for ids
 * outside the vocabulary or bad sizes, KILN_ERR_NOMEM. */
kiln_status kiln_clip_text_forward(kiln_clip_text *m, const int32_t *ids, int n_seq, int len, int skip,
                                   bool final_norm, float *hidden, float *pooled);

#endif
