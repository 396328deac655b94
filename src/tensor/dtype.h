/*
 * dtype.h — element types, with the numeric ids GGUF uses, and their block layouts.
 *
 * A quantized type stores a row as blocks of `block_size` elements taking
 * `type_size` bytes each; float types have block_size 1. The ids are GGUF's
 * (ggml_type) so a tensor type read from a file maps directly.
 */
#ifndef KILN_TENSOR_DTYPE_H
#define KILN_TENSOR_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    KILN_F32 = 0,
    KILN_F16 = 1,
    KILN_Q4_0 = 2,
    KILN_Q4_1 = 3,
    KILN_Q5_0 = 6,
    KILN_Q5_1 = 7,
    KILN_Q8_0 = 8,
    KILN_Q8_1 = 9,
    KILN_Q2_K = 10,
    KILN_Q3_K = 11,
    KILN_Q4_K = 12,
    KILN_Q5_K = 13,
    KILN_Q6_K = 14,
    KILN_Q8_K = 15,
    KILN_I8 = 24,
    KILN_I16 = 25,
    KILN_I32 = 26,
    KILN_I64 = 27,
    KILN_F64 = 28,
    KILN_BF16 = 30,
    KILN_DTYPE_COUNT = 40, /* ids at or above are unknown to files */
    /* kiln's own in-memory layouts, never read from or written to files (see
     * kernels/pack.c): Q4_0 / Q8_0 / Q4_K / Q6_K / Q5_0 / Q5_K / Q3_K / Q2_K / Q4_1 / Q5_1 rows interleaved 16 at a time for the kernels. */
    KILN_Q4_0_X16 = 64,
    KILN_Q8_0_X16 = 65,
    KILN_Q4_K_X16 = 66,
    KILN_Q6_K_X16 = 67,
    KILN_Q5_0_X16 = 68,
    /* F32 / F16 / BF16 matrices as fp32 panels of 32 rows, for encoders that only ever
     * multiply batches (kernels_impl.h, kiln_weight_pack_panels) */
    KILN_F32_P32 = 69,
    /* the same as bf16 pairs for the AVX-512 BF16 dot product (kiln_weight_pack_panels_bf16) */
    KILN_BF16_P32 = 70,
    KILN_Q5_K_X16 = 71, /* with the _X16 layouts above */
    KILN_Q3_K_X16 = 72,
    KILN_Q2_K_X16 = 73,
    KILN_Q4_1_X16 = 74,
    KILN_Q5_1_X16 = 75,
} kiln_dtype;

typedef struct {
    const char *name;  /* "q4_0" */
    int block_size;    /* elements per block (1 for plain types) */
    int type_size;     /* bytes per block */
} kiln_dtype_traits;

/* Traits of a type, or NULL for an id that is not a known type. */
const kiln_dtype_traits *kiln_dtype_get(uint32_t type);
/* Name of a type ("f16"), or "unknown". */
const char *kiln_dtype_name(uint32_t type);
/* Parses a name ("q8_0", "F16"); returns false if unknown. */
bool kiln_dtype_from_name(const char *name, kiln_dtype *out);

/* Bytes for n elements of type t. Returns false if t is unknown, n is not a
 * multiple of the block size, or the size overflows. */
bool kiln_dtype_row_bytes(uint32_t t, int64_t n, size_t *bytes);

/* ---- block layouts (bit-exact with GGUF) --------------------------------------- */

#define KILN_QK4_0 32
typedef struct {
    uint16_t d;                  /* scale, fp16 */
    uint8_t qs[KILN_QK4_0 / 2];  /* nibbles: element j in low nibble of qs[j], j+16 in high */
} kiln_block_q4_0;

#define KILN_QK8_0 32
typedef struct {
    uint16_t d;                  /* scale, fp16 */
    int8_t qs[KILN_QK8_0];
} kiln_block_q8_0;

/* Q4_1: x = d * q + m, q in 0..15 (nibbles as Q4_0). */
typedef struct {
    uint16_t d, m;               /* scale and minimum, fp16 */
    uint8_t qs[16];
} kiln_block_q4_1;

/* Q5_0: x = d * (q - 16), q 5 bits: low nibbles as Q4_0, bit 4 of element j in bit j
 * of qh (little-endian uint32). */
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[16];
} kiln_block_q5_0;

/* Q5_1: x = d * q + m, q 5 bits as Q5_0. */
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[16];
} kiln_block_q5_1;

/* K-quants: super-blocks of 256 elements (layouts as GGUF/ggml define them). */
#define KILN_QK_K 256

/* Q2_K: 16 sub-blocks of 16; scales[i] = 4-bit scale (low) | 4-bit min (high);
 * x = d * sc * q - dmin * m, q 2 bits. */
typedef struct {
    uint8_t scales[16];
    uint8_t qs[64];
    uint16_t d, dmin;
} kiln_block_q2_k;

/* Q3_K: 16 sub-blocks of 16 with 6-bit scales packed in 12 bytes; q 2 low bits in
 * qs, the high bit in hmask (set means no subtraction of 4). */
typedef struct {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint16_t d;
} kiln_block_q3_k;

/* Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes;
 * x = d * sc * q - dmin * m, q 4 bits. */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[128];
} kiln_block_q4_k;

/* Q5_K: as Q4_K with a fifth bit per element in qh. */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
} kiln_block_q5_k;

/* Q6_K: 16 sub-blocks of 16 with int8 scales; q 6 bits (4 in ql, 2 in qh), x = d * sc * (q - 32). */
typedef struct {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
} kiln_block_q6_k;

_Static_assert(sizeof(kiln_block_q4_0) == 18 && sizeof(kiln_block_q8_0) == 34, "Q4_0/Q8_0 layout");
_Static_assert(sizeof(kiln_block_q4_1) == 20 && sizeof(kiln_block_q5_0) == 22 && sizeof(kiln_block_q5_1) == 24,
               "legacy layouts");
_Static_assert(sizeof(kiln_block_q2_k) == 84 && sizeof(kiln_block_q3_k) == 110 && sizeof(kiln_block_q4_k) == 144 &&
                   sizeof(kiln_block_q5_k) == 176 && sizeof(kiln_block_q6_k) == 210,
               "K-quant layouts");

/* ---- half-precision conversions --------------------------------------------- */

float kiln_fp16_to_f32(uint16_t h);
uint16_t kiln_f32_to_fp16(float f);   /* round to nearest even */
static inline float kiln_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}
uint16_t kiln_f32_to_bf16(float f);   /* round to nearest even, NaN kept */

#endif
