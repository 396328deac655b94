/*
 * sd_blocks.h — the building blocks Stable Diffusion's UNet and VAE share, bound by
 * diffusers' names and run on channels-last maps: a map is one image (H, W, C)
 * row-major, so its pixels are the rows of a matmul and attention's tokens are the
 * map itself. Not for use outside src/models.
 *
 *   sd_conv         Conv2d (a 1x1 convolution is the matmul sd_linear also does)
 *   sd_linear       Linear (and 1x1 Conv2d weights, whose bytes are the same matrix)
 *   sd_resnet       ResnetBlock2D: GroupNorm, SiLU, conv, + time embedding, GroupNorm,
 *                   SiLU, conv, + the input (through a 1x1 conv when channels change)
 *   sd_transformer  Transformer2DModel of BasicTransformerBlocks (self-attention,
 *                   cross-attention, GEGLU feed-forward)
 *   sd_vae_attn     the VAE mid block's single-head attention over the pixels
 *
 * Weights stay in the caller's mapping; conv weights are reordered at load into the
 * (ky, kx, c) patch order (kiln_conv_weight_prepare) and matrices packed as fp32
 * panels where the CPU has panel kernels; both live in sd_owned.
 */
#ifndef KILN_MODELS_SD_BLOCKS_H
#define KILN_MODELS_SD_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "formats/weights.h"
#include "kernels/kernels.h"
#include "models/bind.h"

/* What the blocks of one model own: f32 vector copies, prepared conv weights and
 * packed matrices. */
typedef struct {
    kiln_owned_floats floats;
    void **mem;
    int n_mem, cap_mem;
    kiln_packed_set packed;
    const kiln_tensor ***slots; /* matrices to pack once binding is done */
    int n_slots, cap_slots;
    size_t bytes;               /* vectors and prepared conv weights */
    int max_cin;                /* the widest input of a kxk (k > 1) convolution bound */
    struct sd_conv_job *convs;  /* conv weights to prepare once binding is done */
    int n_convs, cap_convs;
} sd_owned;

/* Allocates the convolution scratch (kiln_conv2d_scratch_bytes) for 3x3 kernels over
 * up to max_cin channels with pool's threads; none (NULL, 0) when max_cin is 0. */
kiln_status sd_conv_scratch(int max_cin, kiln_pool *pool, void **p, size_t *bytes);

/* Heap bytes of o: vectors, prepared conv weights, packed matrices. */
size_t sd_owned_bytes(const sd_owned *o);

/* Binding context: the weights, the prefix of every name, the file (for errors). */
typedef struct {
    const kiln_weight_list *w;
    const char *prefix, *path;
    sd_owned *own;
    bool bf16; /* matrices and conv weights as bf16 panels (where the CPU has AVX512_BF16) */
} sd_binder;

typedef struct {
    kiln_tensor w; /* prepared: ne = [kh*kw*cin, cout] */
    const float *b;
    int k, cin, cout;
} sd_conv;

typedef struct {
    const kiln_tensor *w; /* ne = [cin, cout]: the file's tensor, view or its packed copy */
    kiln_tensor view;     /* a 1x1 conv weight (ne [1, 1, cin, cout]) seen as the matrix */
    const float *b;       /* NULL: no bias */
    int cin, cout;
} sd_linear;

typedef struct {
    const float *w, *b;
} sd_norm;

typedef struct {
    sd_norm norm1, norm2;
    sd_conv conv1, conv2;
    sd_linear temb;      /* cout outputs; cin 0 when the block takes no time embedding (VAE) */
    sd_linear shortcut;  /* a 1x1 conv when cin != cout, else cin 0 */
    int cin, cout;
} sd_resnet;

typedef struct {
    sd_linear q, k, v, out;
} sd_attn;

typedef struct {
    sd_norm norm1, norm2, norm3;
    sd_attn attn1, attn2;
    sd_linear ff_in, ff_out; /* GEGLU projection (c -> 8c), then 4c -> c */
} sd_tblock;

typedef struct {
    sd_norm norm;
    sd_linear proj_in, proj_out;
    sd_tblock *blocks;
    int n_blocks, c, heads;
} sd_transformer;

typedef struct {
    sd_norm norm;
    sd_attn attn; /* with biases, one head */
    int c;
} sd_vae_attn;

/* Binding (sd_blocks_bind.c). name_fmt is printf-style, taking the block's indices.
 * Every function checks shapes and types, names the tensor in errors. Bound structs
 * must not move afterwards: the matrices to pack are kept by address. */
kiln_status sd_bind_conv(const sd_binder *b, sd_conv *c, int cin, int cout, int k, const char *fmt, ...);
kiln_status sd_bind_linear(const sd_binder *b, sd_linear *l, int cin, int cout, bool bias, const char *fmt, ...);
kiln_status sd_bind_norm(const sd_binder *b, sd_norm *n, int c, const char *fmt, ...);
/* temb: the time embedding width, 0 for none. p: the block's name with its dot. */
kiln_status sd_bind_resnet(const sd_binder *b, sd_resnet *r, int cin, int cout, int temb, const char *p);
kiln_status sd_bind_transformer(const sd_binder *b, sd_transformer *t, int c, int ctx_dim, int heads, int n_blocks,
                                const char *p);
kiln_status sd_bind_vae_attn(const sd_binder *b, sd_vae_attn *a, int c, const char *p);
/* Prepares the conv weights and packs the matrices bound so far (parallel passes over
 * pool), as bf16 panels if bf16. Bound convs are usable only after this. */
kiln_status sd_owned_pack(sd_owned *o, bool bf16, kiln_pool *pool);
void sd_owned_free(sd_owned *o);
void sd_transformer_free(sd_transformer *t);

/* Buffers a model reuses from one forward pass (and one operation) to the next:
 * the maps and temporaries of a UNet pass are the same sizes every step, and fresh
 * pages cost a fault each on first touch (in this project's VMs a fifth of a step).
 * Not thread-safe: one forward pass at a time per model. */
typedef struct {
    struct sd_slab *s;
    int n, cap;
} sd_heap;

/* A buffer of at least n floats: the smallest free one that fits, else a new one. */
float *sd_heap_get(sd_heap *h, size_t n);
/* Gives p (from sd_heap_get, or NULL) back for reuse. */
void sd_heap_put(sd_heap *h, float *p);
/* Frees every buffer. */
void sd_heap_free(sd_heap *h);

/* A channels-last map. */
typedef struct {
    float *d;
    int h, w, c;
    sd_heap *heap; /* where d goes back to (NULL: free()) */
} sd_map;

/* Running (sd_blocks.c). The output is a new map; the input is kept. */
typedef struct {
    kiln_pool *pool;
    sd_heap *heap;        /* buffers reused across calls (NULL: malloc / free each time) */
    int groups;
    float eps;            /* GroupNorm epsilon of resnets and the output norm */
    void *scratch;        /* convolution tiles reused across calls (may be NULL) */
    size_t scratch_bytes;
    bool bf16;            /* attention products in bf16 (the model's arithmetic) */
} sd_ctx;

/* Calls fn (if not NULL) with the stage's name ("stage", or "stage.i" for i >= 0) and
 * the map: the trace hooks of the UNet and VAE forward passes. */
typedef void (*sd_trace_fn)(void *user, const char *stage, const float *map, int h, int w, int c);
void sd_trace(sd_trace_fn fn, void *user, const char *stage, int i, const sd_map *m);

/* Allocates a map (not cleared) from x's heap; KILN_ERR_NOMEM naming the size. */
kiln_status sd_map_alloc(const sd_ctx *x, sd_map *m, int h, int w, int c);
void sd_map_free(sd_map *m);

/* y (n, cout) = in (n, cin) · Wᵀ + b: a Linear, or a 1x1 conv over n pixels. */
kiln_status sd_linear_run(const sd_ctx *x, const sd_linear *l, const float *in, int64_t n, float *y);

kiln_status sd_conv_run(const sd_ctx *x, const sd_conv *c, const sd_map *in, int stride, kiln_pad2d pad, sd_map *out);
/* temb_out: the block's projected time embedding (cout floats), or NULL. */
kiln_status sd_resnet_run(const sd_ctx *x, const sd_resnet *r, const sd_map *in, const float *temb_out, sd_map *out);
/* ctx: (n_ctx, ctx_dim) of this sample. */
kiln_status sd_transformer_run(const sd_ctx *x, const sd_transformer *t, const sd_map *in, const float *ctx, int n_ctx,
                               sd_map *out);
kiln_status sd_vae_attn_run(const sd_ctx *x, const sd_vae_attn *a, const sd_map *in, sd_map *out);
/* y = nearest 2x upsampling of in, then the conv. */
kiln_status sd_upsample_run(const sd_ctx *x, const sd_conv *c, const sd_map *in, sd_map *out);
/* GroupNorm, SiLU, conv: the output head of the UNet and the VAE halves. */
kiln_status sd_norm_silu_conv(const sd_ctx *x, const sd_norm *n, const sd_conv *c, const sd_map *in, sd_map *out);

#endif
