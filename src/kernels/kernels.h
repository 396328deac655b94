/*
 * kernels.h — the numerical operations the models are built from.
 *
 * Every operation exists once in plain C (src/kernels/ref/) and may have SIMD
 * variants (src/kernels/x86/, files *_avx2.c / *_avx512.c) chosen once at run time
 * by cpuid (kiln_kernels_init). Callers only ever use the functions below.
 *
 * Determinism: kiln_matmul splits its output into fixed tasks; every output element
 * is computed by one task, with one fixed summation order that does not depend on
 * the number of threads. So 1 thread and N threads give bit-identical results.
 */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "tensor/tensor.h"

/* Picks the fastest variants this CPU supports. Idempotent and thread-safe;
 * called by every entry point that needs it. The environment variable
 * KILN_ISA=ref|avx2|avx512 forces a level (for tests and benchmarks). */
void kiln_kernels_init(void);
/* Name of the chosen level: "ref", "avx2" or "avx512". */
const char *kiln_kernels_isa(void);
/* True if the chosen level multiplies bf16 panels (AVX512_BF16). */
bool kiln_kernels_has_bf16(void);

/* True if kiln_matmul accepts weights of type t (F32, F16, BF16, Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, and whatever other families the kernel table registers). */
bool kiln_matmul_supports(kiln_dtype t);

/* y = x · wᵀ: w is a 2-D weight (ne[0] = k inputs, ne[1] = m outputs, rows
 * contiguous), x is (n, k) f32 row-major, y is (n, m) f32 row-major. Work is split
 * over pool (may be NULL). Returns KILN_ERR_UNSUPPORTED for a weight type it cannot
 * multiply, KILN_ERR_NOMEM if scratch memory cannot be had. */
kiln_status kiln_matmul(const kiln_tensor *w, const float *x, int64_t n, float *y, kiln_pool *pool);

/* y[i] = x · w[i]ᵀ for count (1..KILN_MATMUL_MAX) weights of the same width that read
 * the same input (a layer's q, k, v; gate and up): one quantization of x and one
 * parallel loop over the tasks of all of them, so threads meet once instead of count
 * times. Each y[i] gets the bits separate kiln_matmul calls would give. */
#define KILN_MATMUL_MAX 4
kiln_status kiln_matmul_many(int count, const kiln_tensor *const *w, const float *x, int64_t n, float *const *y,
                             kiln_pool *pool);

/* Repacks a 2-D weight matrix into the layout the fastest kernels of this CPU read
 * directly for every batch size (16 rows interleaved; Q4_0, Q8_0, Q4_K, Q6_K on AVX2 and AVX-512,
 * Q5_0 on AVX-512), if there is one: fills *out (type KILN_*_X16, same ne) and *mem
 * (the packed bytes: free() it after the tensor's last use) and returns KILN_OK.
 * Returns KILN_ERR_UNSUPPORTED when no packing applies (use w as it is), KILN_ERR_NOMEM.
 * kiln_matmul gives packed and unpacked weights the same results up to float
 * summation order, and for packed weights a batch row equals a call with that row. */
kiln_status kiln_weight_pack(const kiln_tensor *w, kiln_tensor *out, void **mem);

/* Copies a 2-D weight matrix of at least 2 MiB, of any type, into memory on 2 MiB
 * pages (where the OS gives them): *out is w with its rows back to back there, *mem
 * the copy (free() it after the tensor's last use). For the matrices kiln_weight_pack
 * leaves as they are (F16, BF16, F32, Q4_1, Q5_K, ...), which generation would
 * otherwise stream from the file mapping's small pages. Same values, same results.
 * KILN_ERR_UNSUPPORTED for smaller or non-2-D tensors (use w), KILN_ERR_NOMEM. */
kiln_status kiln_weight_copy_large(const kiln_tensor *w, kiln_tensor *out, void **mem);

/* For a model that only ever multiplies batches (an encoder): repacks an F32, F16 or
 * BF16 matrix as fp32 panels (KILN_F32_P32) when this CPU has the panel kernel
 * (AVX-512), with *out / *mem and the return codes as for kiln_weight_pack. The
 * matmul then skips the per-call conversion to panels, and takes the same path for
 * every batch size, so a row of a batch equals a call with that row (and the
 * results equal unpacked weights' for n >= 16). Costs 4 bytes per weight. */
kiln_status kiln_weight_pack_panels(const kiln_tensor *w, kiln_tensor *out, void **mem);

/* The same as bf16 panels (KILN_BF16_P32) where this CPU has AVX512_BF16: weights
 * rounded to bf16 (to nearest even; exact for BF16 files), and each matmul rounds its
 * activations to bf16 once, then sums the products (exact in fp32) in fp32 with the
 * BF16 dot product, two elements per step in k order. About twice the fp32 panels'
 * speed at half their memory, with bf16's error: |y - exact| <= (2^-7 + 2^-16 +
 * k 2^-24) sum |w x|. Deterministic (threads, batch rows as the fp32 panels); the bits may
 * differ between CPU makers' BF16 units. */
kiln_status kiln_weight_pack_panels_bf16(const kiln_tensor *w, kiln_tensor *out, void **mem);

/* Converts n elements (n a multiple of the block size) of type t to f32.
 * KILN_ERR_UNSUPPORTED for other types. */
kiln_status kiln_dequantize_row(kiln_dtype t, const void *src, float *dst, int64_t n);
/* Converts n f32 to type t (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), as llama.cpp's reference
 * quantizers do. KILN_ERR_UNSUPPORTED for other types. */
kiln_status kiln_quantize_row(kiln_dtype t, const float *src, void *dst, int64_t n);

/* y = x / sqrt(mean(x²) + eps) * w over n elements (y may alias x). */
void kiln_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);

/* Rotates, in place, the first n_rot dims of each of n_heads vectors of head_dim
 * floats (x is (n_heads, head_dim)) for position pos. freq[i] (n_rot/2 entries) is
 * the angle per position of pair i, scaling already applied.
 * neox=false: pairs are (2i, 2i+1) (GGUF llama layout, llama2.c);
 * neox=true:  pairs are (i, i + n_rot/2) (Hugging Face rotate_half layout, qwen2). */
void kiln_rope(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, const float *freq,
               bool neox);

/* y = (x - mean(x)) / sqrt(var(x) + eps) * w + b over n elements (y may alias x):
 * LayerNorm as BERT uses it (biased variance). */
void kiln_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps);
/* x = gelu(x) in place over n elements: x·Φ(x) with the exact normal CDF, or with
 * tanh_approx the tanh form 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) ("gelu_new"). */
void kiln_gelu(float *x, int64_t n, bool tanh_approx);

/* x = softmax(x) over n elements, computed stably (max subtracted). */
void kiln_softmax(float *x, int64_t n);
/* out = silu(gate) * up over n elements (out may alias gate or up). */
void kiln_swiglu(float *out, const float *gate, const float *up, int64_t n);
/* Causal attention of one head over n_q consecutive queries. Query i (q + i*q_stride,
 * hd floats) attends keys and values 0 .. n_kv0 + i (rows of k and v, kv_stride floats
 * apart): out_i = softmax(scale * q_i . K^T) V, written at out + i*out_stride.
 * scratch holds n_kv0 + n_q floats. The keys and values are read once per query from
 * cache-resident rows with the dot products and sums kept inline in registers. */
void kiln_attention(const float *q, size_t q_stride, int64_t n_q, const float *k, const float *v, size_t kv_stride,
                    int64_t n_kv0, int64_t hd, float scale, float *out, size_t out_stride, float *scratch);

/* Full (non-causal) attention of n queries over m keys, heads heads of c / heads
 * channels each: q (n, c), k and v (m, c), out (n, c) row-major, per head
 * out = softmax(q·kᵀ / √hd)·v, as blocked matrix products on the panel kernels (bf16
 * panels when bf16 and the CPU has them). Deterministic for any pool size.
 * KILN_ERR_INVALID_ARG, KILN_ERR_NOMEM. */
kiln_status kiln_attention_mh(const float *q, const float *k, const float *v, int64_t n, int64_t m, int c, int heads,
                              bool bf16, float *out, kiln_pool *pool);

/* y += x over n elements. */
void kiln_add(float *y, const float *x, int64_t n);
/* Adds the vector b (n floats) to each of rows rows of y (rows x n): a bias. */
void kiln_add_rows(float *y, const float *b, int64_t rows, int64_t n);
/* kiln_layernorm on each of rows rows of n floats (y may alias x). */
void kiln_layernorm_rows(float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t n, float eps);
/* sum of a[i]*b[i]. */
float kiln_dot(const float *a, const float *b, int64_t n);
/* y += a * x over n elements. */
void kiln_axpy(float *y, float a, const float *x, int64_t n);

/* ---- image models (Stable Diffusion's UNet and VAE) ----------------------------
 * Activations are channels-last: one image is (H, W, C) row-major, C contiguous, so
 * the pixels of a map are the rows of a matmul and attention's (H*W, C) tokens are
 * the map itself. */

/* Zero padding of a convolution's input, in pixels on each side (diffusers pads the
 * VAE encoder's downsampling (0, 1, 0, 1): bottom and right only). */
typedef struct {
    int top, left, bottom, right;
} kiln_pad2d;
static inline kiln_pad2d kiln_pad2d_same(int p) { return (kiln_pad2d){p, p, p, p}; }

/* Output size of a convolution: Ho = (H + top + bottom - kh) / stride + 1, Wo
 * likewise. False if either is below 1 or an argument is out of range. */
bool kiln_conv2d_out_size(int H, int W, int kh, int kw, int stride, kiln_pad2d pad, int *Ho, int *Wo);

/* Load-time preparation of a conv weight: w4d is PyTorch's (O, C, kh, kw) as a file
 * stores it (kiln's ne = [kw, kh, C, O]; F32, F16 or BF16, elements contiguous along
 * ne[0]). *out becomes the 2-D matrix ne = [kh*kw*C, O] whose row o holds w[o] in
 * (ky, kx, c) order, the order of a channels-last patch, as fp32 panels
 * (KILN_F32_P32) where this CPU has the panel kernel (bf16: bf16 panels, KILN_BF16_P32,
 * where it has AVX512_BF16), else plain F32. *mem holds its
 * bytes (free() after the last use). KILN_ERR_INVALID_ARG, KILN_ERR_UNSUPPORTED (other
 * types), KILN_ERR_NOMEM. */
kiln_status kiln_conv_weight_prepare(const kiln_tensor *w4d, bool bf16, kiln_tensor *out, void **mem);

/* 2-D convolution (cross-correlation, as torch.nn.functional.conv2d) of one
 * channels-last image x (H, W, C) with a prepared weight w (ne [kh*kw*C, O]) and
 * bias (O floats or NULL), zero padding pad, stride >= 1: y is (Ho, Wo, O), not
 * overlapping x. A 1x1 kernel with stride 1 and no padding is one matmul over the
 * pixels; other kernels build their patches (im2col) for a tile of output pixels at a
 * time (about 4 MiB per tile, one tile buffer per thread that runs tiles), then
 * multiply. Tiles depend on the shapes only, and every output pixel is one matmul row,
 * so any thread count gives the same bits. The tile buffers come from scratch when
 * scratch_bytes >= kiln_conv2d_scratch_bytes(C, kh, kw, threads of pool) (reuse one
 * buffer across calls: fresh pages are slow to fault in), else they are allocated per
 * call (scratch may be NULL). KILN_ERR_INVALID_ARG for shapes that do not fit,
 * KILN_ERR_NOMEM. */
kiln_status kiln_conv2d(const kiln_tensor *w, const float *bias, const float *x, int H, int W, int C, int kh, int kw,
                        int stride, kiln_pad2d pad, float *y, void *scratch, size_t scratch_bytes, kiln_pool *pool);
/* Scratch that lets kiln_conv2d run a kh x kw kernel over C channels, any image, with
 * up to `threads` threads without allocating (float-aligned). */
size_t kiln_conv2d_scratch_bytes(int C, int kh, int kw, int threads);

/* GroupNorm over a channels-last map x (n_pix, C) as torch.nn.GroupNorm: channels in
 * `groups` consecutive groups of C/groups; per group the mean and biased variance over
 * its n_pix x C/groups values (sums in double, two passes), then
 * y = (x - mean) / sqrt(var + eps) * w[c] + b[c], followed by SiLU when silu is set
 * (the UNet's resnet blocks). y may alias x. KILN_ERR_INVALID_ARG if groups does not
 * divide C, KILN_ERR_NOMEM (a few bytes per channel of scratch). */
kiln_status kiln_group_norm(float *y, const float *x, int64_t n_pix, int64_t C, int groups, const float *w,
                            const float *b, float eps, bool silu);
/* x = x * sigmoid(x) in place over n elements. */
void kiln_silu(float *x, int64_t n);
/* Nearest-neighbour 2x upsampling of a channels-last image: x (H, W, C) to y
 * (2H, 2W, C), y[2i+a][2j+b] = x[i][j] (exact copies). */
void kiln_upsample_nearest2x(const float *x, int H, int W, int C, float *y);
/* diffusers' GEGLU after its projection: x is (n_rows, 2n); per row the first half a
 * and the second half g give out (n_rows, n) = a * gelu(g) with the exact (erf) GELU.
 * out must not overlap x. */
void kiln_geglu(float *out, const float *x, int64_t n_rows, int64_t n);

#endif
