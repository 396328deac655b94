/*
 * dtype.c — type table and fp16/bf16 conversions.
 */
#include "dtype.h"

#include <string.h>
#include <strings.h>

/* Block sizes and byte sizes as GGUF defines them (ggml's type traits). */
static const kiln_dtype_traits g_traits[KILN_DTYPE_COUNT] = {
    [KILN_F32] = {"f32", 1, 4},
    [KILN_F16] = {"f16", 1, 2},
    [KILN_Q4_0] = {"q4_0", 32, 18},
    [KILN_Q4_1] = {"q4_1", 32, 20},
    [KILN_Q5_0] = {"q5_0", 32, 22},
    [KILN_Q5_1] = {"q5_1", 32, 24},
    [KILN_Q8_0] = {"q8_0", 32, 34},
    [KILN_Q8_1] = {"q8_1", 32, 36},
    [KILN_Q2_K] = {"q2_k", 256, 84},
    [KILN_Q3_K] = {"q3_k", 256, 110},
    [KILN_Q4_K] = {"q4_k", 256, 144},
    [KILN_Q5_K] = {"q5_k", 256, 176},
    [KILN_Q6_K] = {"q6_k", 256, 210},
    [KILN_Q8_K] = {"q8_k", 256, 292},
    [KILN_I8] = {"i8", 1, 1},
    [KILN_I16] = {"i16", 1, 2},
    [KILN_I32] = {"i32", 1, 4},
    [KILN_I64] = {"i64", 1, 8},
    [KILN_F64] = {"f64", 1, 8},
    [KILN_BF16] = {"bf16", 1, 2},
};

const kiln_dtype_traits *kiln_dtype_get(uint32_t type) {
    if (type >= KILN_DTYPE_COUNT || !g_traits[type].name) return NULL;
    return &g_traits[type];
}

const char *kiln_dtype_name(uint32_t type) {
    const kiln_dtype_traits *t = kiln_dtype_get(type);
    return t ? t->name : "unknown";
}

bool kiln_dtype_from_name(const char *name, kiln_dtype *out) {
    for (int i = 0; i < KILN_DTYPE_COUNT; i++) {
        if (g_traits[i].name && strcasecmp(g_traits[i].name, name) == 0) {
            *out = (kiln_dtype)i;
            return true;
        }
    }
    return false;
}

bool kiln_dtype_row_bytes(uint32_t type, int64_t n, size_t *bytes) {
    const kiln_dtype_traits *t = kiln_dtype_get(type);
    if (!t || n < 0 || n % t->block_size != 0) return false;
    uint64_t nb = (uint64_t)(n / t->block_size);
    return !__builtin_mul_overflow(nb, (uint64_t)t->type_size, bytes);
}

float kiln_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    union { uint32_t u; float f; } v = {.u = bits};
    return v.f;
}

uint16_t kiln_f32_to_fp16(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    uint32_t x = v.u;
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t man = x & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0)); /* inf / nan */
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (e <= 0) { /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: correct */
    return (uint16_t)half;
}

uint16_t kiln_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    if ((v.u & 0x7fffffff) > 0x7f800000) return (uint16_t)((v.u >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fff + ((v.u >> 16) & 1);
    return (uint16_t)((v.u + rounding) >> 16);
}
