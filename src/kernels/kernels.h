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

/* For a model that only ever multiplies batches (an encoder): repacks an F32, F16 or
 * BF16 matrix as fp32 panels (KILN_F32_P32) when this CPU has the panel kernel
 * (AVX-512), with *out / *mem and the return codes as for kiln_weight_pack. The
 * matmul then skips the per-call conversion to panels, and takes the same path for
 * every batch size, so a row of a batch equals a call with that row (and the
 * results equal unpacked weights' for n >= 16). Costs 4 bytes per weight. */
kiln_status kiln_weight_pack_panels(const kiln_tensor *w, kiln_tensor *out, void **mem);

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

/* y += x over n elements. */
void kiln_add(float *y, const float *x, int64_t n);
/* sum of a[i]*b[i]. */
float kiln_dot(const float *a, const float *b, int64_t n);
/* y += a * x over n elements. */
void kiln_axpy(float *y, float a, const float *x, int64_t n);

#endif
