/*
 * image.c — float <-> 8-bit pixel conversions as diffusers' VaeImageProcessor does
 * them (see image.h for the exact steps and why each is rounded separately).
 */
#include "formats/image.h"

#include <math.h>
#include <stddef.h>

/* One value, step by step in float32. The build is ISO C (-std=c11), so the compiler
 * does not contract these into fused multiply-adds; each line is one float32
 * rounding, as in torch and numpy. */
static uint8_t to_u8(float v) {
    float x = v * 0.5f;          /* torch: images * 0.5 */
    x = x + 0.5f;                /*        + 0.5 */
    if (isnan(x)) return 0;      /* clamp keeps NaN; numpy casts it to 0 */
    if (x < 0.0f) x = 0.0f;      /* .clamp(0, 1) */
    if (x > 1.0f) x = 1.0f;
    float y = x * 255.0f;        /* numpy: images * 255 (float32) */
    return (uint8_t)nearbyintf(y); /* .round(): half to even in the default mode */
}

void kiln_image_f32_to_rgb8(const float *img, int w, int h, int c, uint8_t *out) {
    size_t n = (size_t)w * (size_t)h * (size_t)c;
    for (size_t i = 0; i < n; i++) out[i] = to_u8(img[i]);
}

void kiln_image_rgb8_to_f32(const uint8_t *rgb, int w, int h, int c, float *out) {
    size_t n = (size_t)w * (size_t)h * (size_t)c;
    for (size_t i = 0; i < n; i++) {
        float x = (float)rgb[i] / 255.0f; /* numpy: astype(float32) / 255.0 */
        out[i] = 2.0f * x - 1.0f;         /* torch: 2.0 * images - 1.0 */
    }
}
