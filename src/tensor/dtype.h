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
    KILN_DTYPE_COUNT = 40 /* ids at or above are unknown */
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

/* ---- half-precision conversions --------------------------------------------- */

float kiln_fp16_to_f32(uint16_t h);
uint16_t kiln_f32_to_fp16(float f);   /* round to nearest even */
static inline float kiln_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}
uint16_t kiln_f32_to_bf16(float f);   /* round to nearest even, NaN kept */

#endif
