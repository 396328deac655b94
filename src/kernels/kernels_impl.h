/*
 * kernels_impl.h — what the kernel variants (ref/, x86/) share with the dispatcher
 * and the matmul driver. Not part of the kernel API: only src/kernels/ and the op
 * tests (which compare every variant with the reference) include it.
 *
 * A variant is a table of function pointers (kiln_kernel_table). The reference
 * table fills every entry; a SIMD variant overlays the entries it speeds up, so a
 * level can leave an op to the level below it.
 *
 * Matmul is split into a driver (matmul.c: argument checks, activation
 * quantization, tiling, threads) and per-type micro kernels that compute a tile of
 * at most KILN_MR weight rows x KILN_MC input rows. Contract of every micro kernel:
 * the value of an output element depends only on its weight row and its input row,
 * never on the tile shape (nr, nc) or its position in the tile. That is what makes
 * results independent of chunking and of the thread count, and makes a batch of n
 * inputs give the same bits as n single-input calls.
 */
#ifndef KILN_KERNELS_IMPL_H
#define KILN_KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* Largest micro-kernel tile: weight rows x input rows. */
#define KILN_MR 4
#define KILN_MC 4

typedef enum { KILN_ISA_REF = 0, KILN_ISA_AVX2 = 1, KILN_ISA_AVX512 = 2, KILN_ISA_COUNT = 3 } kiln_isa;

/*
 * The activations (x) a micro kernel reads, all rows of one matmul call.
 * Float weight types read f (n rows of k floats, f_stride floats apart).
 * Integer (quantized) weight types read the Q8_0 copy of x that the driver makes once
 * per call:
 * the same numbers as llama.cpp's block_q8_0 (32 int8 and one fp16 scale per block)
 * but split into two arrays so that SIMD code can load 64 consecutive quants:
 *   qs: row i at qs + i*qs_stride, k int8 (qs_stride a multiple of 64, 64-byte aligned)
 *   d:  row i at d + i*d_stride, k/32 floats, each the exact value of the fp16 scale.
 *   bs: row i at bs + i*bs_stride, k/16 sums of 16 consecutive int8 quants (exact), for
 *       types whose blocks carry a minimum / offset (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K):
 *       sum(x) over 16 elements is d[j/2] * bs[j]. Only filled when the weight type
 *       needs it (kiln_type_needs_sums); NULL otherwise.
 */
typedef struct {
    const float *f;
    size_t f_stride;
    const int8_t *qs;
    size_t qs_stride;
    const float *d;
    size_t d_stride;
    const int16_t *bs;
    size_t bs_stride;
    const uint32_t *b16; /* bf16 pairs for KILN_BF16_P32 weights: row i at b16 + i*b16_stride */
    size_t b16_stride;
} kiln_act;

/*
 * Micro kernel: for r in [0, nr) and c in [0, nc) (1 <= nr <= KILN_MR,
 * 1 <= nc <= KILN_MC) stores y[c*ldy + r] = dot(weight row r, input row i0 + c)
 * over k elements. Weight row r starts at w + r*w_stride bytes.
 */
typedef void (*kiln_mm_fn)(int64_t k, const void *w, size_t w_stride, int nr, const kiln_act *x,
                           int64_t i0, int nc, float *y, size_t ldy);

/* Quantizes k floats (k a multiple of 32) to the split Q8_0 layout above,
 * bit-exact with llama.cpp's quantize_row_q8_0_ref. */
typedef void (*kiln_quant_act_fn)(const float *x, int8_t *qs, float *d, int64_t k);

/* Row conversions of one type (n a multiple of its block size). quant follows
 * llama.cpp's reference quantizer for the type (same block layout; for K-quants the
 * same algorithm family, see the family's file). */
typedef void (*kiln_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*kiln_quant_fn)(const float *src, void *dst, int64_t n);

/*
 * Prompt-side GEMM for integer weights (n >= KILN_PACK_MIN_N inputs). The driver
 * converts each weight row to int8 with one scale per 32 elements (row_q8, exact:
 * w_j = d[b] * q[j], plus m[b] for types with a block minimum) and interleaves 16
 * rows, stored as unsigned q + 128, so that one vpdpbusd multiplies 4 consecutive
 * elements of all 16 rows by a broadcast 4-byte group of one input (signed): the
 * integer block sums of 16 rows land in the 16 lanes with no horizontal reduction;
 * the +128 is removed exactly by starting at -128 * (sum of the input's block quants,
 * from act.bs, which the driver fills on this path). The float work is one convert
 * and one or two multiply-adds per block and input for 16 rows. Per output element the
 * float order is fixed: acc = fma(float(isum_b), d_w[b] * d_x[b], acc) (then
 * acc = fma(m[b], d_x[b] * sum_x[b], acc)),
 * block after block; so results do not depend on threads or tiling (they may differ
 * in the last bits from the n < KILN_PACK_MIN_N kernels, which sum in another order).
 */
#define KILN_PACK_MIN_N 16
#define KILN_PACK_NC 8 /* inputs per gemm16 call */
typedef struct {
    const uint8_t *q;    /* [nb][8][16][4]: block, group of 4 elements, row, element; q + 128 */
    const float *d;      /* [nb][16] */
    const float *m;      /* [nb][16] block minimum terms, or NULL */
} kiln_packed16;
typedef void (*kiln_row_q8_fn)(const void *row, int64_t k, int8_t *q, float *d, float *m);
/* y[c*ldy + r] for r < nr (<= 16), c < nc (<= KILN_PACK_NC), inputs i0.. of x. */
typedef void (*kiln_gemm16_fn)(int64_t nb, const kiln_packed16 *p, int nr, const kiln_act *x, int64_t i0, int nc,
                               float *y, size_t ldy);

/* Prompt-side GEMM for float weights (F32, F16, BF16; n >= KILN_PACK_MIN_N inputs):
 * for rows [0, nr) (w_stride bytes apart), KILN_GEMMF_ROWS at a time, converts them to
 * an fp32 panel [k][KILN_GEMMF_ROWS] in panel (the caller's scratch of
 * KILN_GEMMF_SCRATCH(k) floats, 64-byte aligned; the panel, then room to stage rows)
 * and stores y[c*ldy + r] = dot(row r, input c) for all n inputs (x_stride floats
 * apart), KILN_GEMMF_NC inputs at a time, prefetching the next panel's rows meanwhile. Per output element
 * one fp32 fma chain over the k elements in order (x86/gemmf_avx512.c). */
#define KILN_GEMMF_ROWS 32
#define KILN_GEMMF_NC 14
#define KILN_GEMMF_KC 1024 /* elements of a row staged at a time */
#define KILN_GEMMF_SCRATCH(k) ((size_t)KILN_GEMMF_ROWS * (size_t)(k) + 16 * (KILN_GEMMF_KC + 16))
typedef void (*kiln_gemmf_fn)(kiln_dtype type, int64_t k, const void *w, size_t w_stride, int nr, const float *x,
                              size_t x_stride, int64_t n, float *y, size_t ldy, float *panel);
/* The same for weights packed at load as fp32 panels (KILN_F32_P32, kernels/pack.c:
 * rows in groups of KILN_GEMMF_ROWS, each group k x KILN_GEMMF_ROWS floats, element j
 * of row r at [j * KILN_GEMMF_ROWS + r]): rows [0, nr) from panels, a group start; any
 * n >= 1, with gemmf's arithmetic, so a row of a batch equals a call with that row. */
typedef void (*kiln_gemmp_fn)(int64_t k, const float *panels, int nr, const float *x, size_t x_stride, int64_t n,
                              float *y, size_t ldy);

/* The same for weights packed at load as bf16 panels (KILN_BF16_P32, kernels/pack.c:
 * k padded to kp = k rounded up to even; rows in groups of KILN_GEMMF_ROWS, each group
 * kp/2 pairs x KILN_GEMMF_ROWS rows x 2 bf16, element j of row r at
 * [(j/2) * 64 + r * 2 + j % 2]) against activations rounded to bf16 (x: rows of kp/2
 * 32-bit pairs, x_stride pairs apart; to_bf16 makes them): per output one chain of
 * vdpbf16ps over the pairs in order, fp32 accumulation (x86/gemmb_avx512.c). */
typedef void (*kiln_gemmb_fn)(int64_t kp, const uint16_t *panels, int nr, const uint32_t *x, size_t x_stride,
                              int64_t n, float *y, size_t ldy);
/* n floats to bf16 (round to nearest even), zeros up to kp >= n. */
typedef void (*kiln_to_bf16_fn)(const float *x, uint16_t *y, int64_t n, int64_t kp);

/* Packed weights (kernels/pack.c): y[c*ldy + r] for r < nr (<= 16), c < nc
 * (<= KILN_PACK_NC) from one group of 16 rows starting at g; nb counts the type's
 * blocks (32 elements; 256 for Q4_K). */
typedef void (*kiln_gemmx_fn)(kiln_dtype type, int64_t nb, const uint8_t *g, int nr, const kiln_act *x, int64_t i0,
                              int nc, float *y, size_t ldy);
/* Bytes of one block of 16 packed rows: 16 fp16 scales, then the quants. */
#define KILN_X16_Q4_0_BLOCK (32 + 256)
#define KILN_X16_Q8_0_BLOCK (32 + 512)
/* Q4_K: per super-block of 256: 16 fp16 d, 16 fp16 dmin, 8x16 scale bytes, 8x16 min
 * bytes, then 8 sub-blocks of 256 nibble bytes laid out as a Q4_0 block. */
#define KILN_X16_Q4_K_BLOCK (64 + 256 + 8 * 256)
/* Q6_K: per super-block of 256: 16 fp16 d, 16x16 int8 scales (sub-block major), then
 * per block of 32: 4 low-nibble vectors (as Q4_0) and 2 vectors of high 2-bit pairs. */
#define KILN_X16_Q6_K_BLOCK (32 + 256 + 8 * (256 + 128))
/* Q5_0: a Q4_0 block of the low nibbles, then 8 masks of 64 bits: bit 4r + e of mask g is
 * the fifth bit of element 4g + e of row r, i.e. of byte 4r + e of the kernel's weight
 * vector g (nibble vector g % 4, low half for g < 4, high half above). */
#define KILN_X16_Q5_0_BLOCK (32 + 256 + 64)
/* Q5_K: the Q4_K header, then per sub-block of 32 its Q4_0-style nibbles and its 8
 * fifth-bit masks as Q5_0 has them. */
#define KILN_X16_Q5_K_BLOCK (64 + 256 + 8 * (256 + 64))
/* Q3_K: per super-block of 256: 16 fp16 d, 16x16 int8 scales sc6 - 32 (sub-block
 * major), then per block of 32 elements 2 vectors of 2-bit low parts (as Q6_K's high
 * pairs) and the 8 high-bit masks (as Q5_0's fifth bits). */
#define KILN_X16_Q3_K_BLOCK (32 + 256 + 8 * (128 + 64))
/* Q2_K: per super-block of 256: 16 fp16 d, 16 fp16 dmin, 16x16 scale bytes as the file
 * has them (4-bit scale | 4-bit min << 4, sub-block major), then per block of 32 the
 * 2 vectors of 2-bit quants as Q3_K's low parts. */
#define KILN_X16_Q2_K_BLOCK (64 + 256 + 8 * 128)
/* Q4_1 / Q5_1: 16 fp16 scales, 16 fp16 minimums, then Q4_0's nibbles (and Q5_0's masks). */
#define KILN_X16_Q4_1_BLOCK (64 + 256)
#define KILN_X16_Q5_1_BLOCK (64 + 256 + 64)
/* One packed layout (pack.c): the file type it is made from, its own type, the bytes
 * of one block of 16 rows (KILN_X16_*_BLOCK), whether such a block spans a super-block
 * of 256 elements (else 32), and whether only the AVX-512 kernel reads it (extended:
 * the fifth or high bits of Q5_0, Q5_1, Q5_K and Q3_K are mask registers; Q2_K and
 * Q4_1 have no AVX2 kernel yet). */
typedef struct {
    kiln_dtype file, packed;
    size_t block_bytes;
    bool superblock, extended;
} kiln_x16_layout;
/* The layout made from file type t, or whose packed type is t; NULL: none. */
const kiln_x16_layout *kiln_x16_layout_of(kiln_dtype t);
static inline bool kiln_x16_type(kiln_dtype t) {
    const kiln_x16_layout *l = kiln_x16_layout_of(t);
    return l && l->packed == t;
}

typedef struct {
    const char *name;
    /* kernel for packed weights (NULL: this level has none, nothing is packed) and
     * whether it reads the extended layouts too (kiln_x16_layout) */
    kiln_gemmx_fn gemm_x16;
    bool x16_ext;
    /* packed prompt GEMM (NULL: not at this level) and the row converters it needs
     * (reference level; NULL for types it does not cover) */
    kiln_gemm16_fn gemm16;
    kiln_row_q8_fn row_q8[KILN_DTYPE_COUNT];
    /* prompt GEMM for float weights (NULL: the micro kernels do it) */
    kiln_gemmf_fn gemmf;
    kiln_gemmp_fn gemmp; /* the same for KILN_F32_P32 weights (NULL: nothing is packed so) */
    kiln_gemmb_fn gemmb; /* KILN_BF16_P32 weights (NULL: no AVX512_BF16) and its activations */
    kiln_to_bf16_fn to_bf16;
    /* micro kernel per weight type (NULL: matmul does not support the type) */
    kiln_mm_fn mm[KILN_DTYPE_COUNT];
    /* conversions (filled by the reference level only; SIMD levels leave them) */
    kiln_dequant_fn dequant[KILN_DTYPE_COUNT];
    kiln_quant_fn quant[KILN_DTYPE_COUNT];
    kiln_quant_act_fn quant_act;
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*axpy)(float *y, float a, const float *x, int64_t n);
    void (*add)(float *y, const float *x, int64_t n);
    void (*rmsnorm)(float *y, const float *x, const float *w, int64_t n, float eps);
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int64_t n, float eps);
    void (*softmax)(float *x, int64_t n);
    void (*gelu)(float *x, int64_t n, bool tanh_approx);
    void (*swiglu)(float *out, const float *gate, const float *up, int64_t n);
    void (*attention)(const float *q, size_t q_stride, int64_t n_q, const float *k, const float *v, size_t kv_stride,
                      int64_t n_kv0, int64_t hd, float scale, float *out, size_t out_stride, float *scratch);
    /* kiln_group_norm with its scratch (KILN_GROUP_NORM_SCRATCH(C) doubles), groups | C */
    void (*group_norm)(float *y, const float *x, int64_t n_pix, int64_t C, int groups, const float *w, const float *b,
                       float eps, bool silu, double *scratch);
    void (*silu)(float *x, int64_t n);
} kiln_kernel_table;

/* Group norm scratch: per channel the double sums of both passes, then the float mean
 * and scale applied to it. */
#define KILN_GROUP_NORM_SCRATCH(C) (3 * (size_t)(C))

/* Whether matmul quantizes activations to Q8_0 for weights of type t (every
 * integer type) and whether their kernels read the 16-element sums (act.bs). */
bool kiln_type_quantized(kiln_dtype t);
bool kiln_type_needs_sums(kiln_dtype t);

/* Fill a table: the reference sets every entry, the others overlay theirs. */
void kiln_kernels_fill_ref(kiln_kernel_table *t);
/* Families of quantized types, one file per family and level (ref/, x86/). Each fills
 * mm[] (and, at the reference level, dequant[] and quant[]) for its types. */
void kiln_ref_fill_legacy(kiln_kernel_table *t);   /* Q4_1, Q5_0, Q5_1 (legacy_*.c) */
void kiln_ref_fill_kquants(kiln_kernel_table *t);  /* Q4_K, Q5_K, Q6_K (kquants_*.c) */
void kiln_ref_fill_klow(kiln_kernel_table *t);     /* Q2_K, Q3_K (klow_*.c) */
void kiln_avx2_fill_legacy(kiln_kernel_table *t);
void kiln_avx2_fill_kquants(kiln_kernel_table *t);
void kiln_avx2_fill_klow(kiln_kernel_table *t);
void kiln_avx2_fill_pack(kiln_kernel_table *t);   /* packed weights (x86/pack_avx2.c) */
void kiln_avx512_fill_legacy(kiln_kernel_table *t);
void kiln_avx512_fill_kquants(kiln_kernel_table *t);
void kiln_avx512_fill_klow(kiln_kernel_table *t);
void kiln_avx512_fill_gemmf(kiln_kernel_table *t); /* float prompt GEMM (x86/gemmf_avx512.c) */
void kiln_avx512_fill_gemmb(kiln_kernel_table *t); /* bf16 panels (x86/gemmb_avx512.c; needs AVX512_BF16) */
void kiln_kernels_fill_avx2(kiln_kernel_table *t);
void kiln_kernels_fill_avx512(kiln_kernel_table *t);
/* The element-wise halves of the SIMD fills (x86/ops_*.c). */
void kiln_avx2_fill_ops(kiln_kernel_table *t);
void kiln_avx512_fill_ops(kiln_kernel_table *t);

/* The table of a level, or NULL if this CPU cannot run it (for tests: they run
 * every available level against the reference). Does not depend on KILN_ISA. */
const kiln_kernel_table *kiln_kernels_table(kiln_isa level);
/* The table chosen by kiln_kernels_init. */
const kiln_kernel_table *kiln_kernels_current(void);

/* kiln_matmul with an explicit table (tests compare the variants through it). */
kiln_status kiln_matmul_with(const kiln_kernel_table *t, const kiln_tensor *w, const float *x,
                             int64_t n, float *y, kiln_pool *pool);
kiln_status kiln_matmul_many_with(const kiln_kernel_table *t, int count, const kiln_tensor *const *w, const float *x,
                                  int64_t n, float *const *y, kiln_pool *pool);

/* kiln_weight_pack_panels_bf16 for the kernels of table t (packs only if t has gemmb). */
kiln_status kiln_weight_pack_panels_bf16_with(const kiln_kernel_table *t, const kiln_tensor *w, kiln_tensor *out,
                                              void **mem);
/* kiln_weight_pack_panels for the kernels of table t (packs only if t has gemmp). */
kiln_status kiln_weight_pack_panels_with(const kiln_kernel_table *t, const kiln_tensor *w, kiln_tensor *out,
                                         void **mem);
/* kiln_conv_weight_prepare and kiln_conv2d with an explicit table (tests run every
 * level); tile_pixels > 0 overrides the output pixels per im2col tile (tests cut tiles
 * across rows), 0 takes the default (conv.c). */
kiln_status kiln_conv_weight_prepare_with(const kiln_kernel_table *t, const kiln_tensor *w4d, bool bf16, kiln_tensor *out,
                                          void **mem);
kiln_status kiln_conv2d_with(const kiln_kernel_table *t, const kiln_tensor *w, const float *bias, const float *x, int H,
                             int W, int C, int kh, int kw, int stride, kiln_pad2d pad, float *y, void *scratch,
                             size_t scratch_bytes, kiln_pool *pool, int64_t tile_pixels);
/* Reference convolution (ref/conv_ref.c): direct loops over the file's (O, C, kh, kw)
 * weight w4d (F32, F16, BF16; ne = [kw, kh, C, O]) with double sums; y (Ho, Wo, O). */
void kiln_ref_conv2d(const kiln_tensor *w4d, const float *bias, const float *x, int H, int W, int C, int stride,
                     kiln_pad2d pad, float *y);
/* Reference image ops (ref/image_ref.c). */
void kiln_ref_group_norm(float *y, const float *x, int64_t n_pix, int64_t C, int groups, const float *w,
                         const float *b, float eps, bool silu, double *scratch);
void kiln_ref_silu(float *x, int64_t n);

/* Reference Q8_0 quantization of one block of 32 floats (llama.cpp's
 * quantize_row_q8_0_ref): returns the fp16 scale and writes 32 quants. */
uint16_t kiln_ref_quant_block_q8_0(const float *x, int8_t *q);
/* The reference kiln_quant_act_fn (the other variants must match it bit for bit). */
void kiln_ref_quant_act(const float *x, int8_t *qs, float *d, int64_t k);
/* F32, F16, BF16, Q8_0, Q4_0 conversions (quant_ref.c). */
void kiln_ref_fill_conversions(kiln_kernel_table *t);

/* Reference ops (ref/ops_ref.c); SIMD variants fall back to them for short tails. */
float kiln_ref_dot(const float *a, const float *b, int64_t n);
void kiln_ref_axpy(float *y, float a, const float *x, int64_t n);
void kiln_ref_add(float *y, const float *x, int64_t n);
void kiln_ref_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
void kiln_ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps);
void kiln_ref_softmax(float *x, int64_t n);
void kiln_ref_gelu(float *x, int64_t n, bool tanh_approx);
void kiln_ref_swiglu(float *out, const float *gate, const float *up, int64_t n);
void kiln_ref_attention(const float *q, size_t q_stride, int64_t n_q, const float *k, const float *v, size_t kv_stride,
                        int64_t n_kv0, int64_t hd, float scale, float *out, size_t out_stride, float *scratch);

#endif
