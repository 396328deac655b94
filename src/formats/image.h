/*
 * image.h — conversions between the float images the Stable Diffusion VAE works on and
 * the 8-bit RGB(A) pixels of image files.
 *
 * They reproduce diffusers' VaeImageProcessor arithmetic in float32, so kiln's PNG
 * bytes equal those of a float32 diffusers pipeline given the same decoded image:
 *   postprocess: x = clamp(v * 0.5 + 0.5, 0, 1) (torch), then PIL's input
 *                (x * 255).round().astype(uint8) (numpy: round half to even);
 *   preprocess:  x = u / 255 (numpy float32), then 2 * x - 1 (torch).
 * Each step is rounded to float32 on its own, as those libraries do.
 */
#ifndef KILN_FORMATS_IMAGE_H
#define KILN_FORMATS_IMAGE_H

#include <stdint.h>

/* img: h rows of w pixels of c channels (channels-last), values nominally in [-1, 1];
 * out: w * h * c bytes. Values outside [-1, 1] clamp to 0 / 255, as diffusers clamps;
 * NaN gives 0 (what numpy's NaN -> uint8 cast gives on x86 after torch's clamp keeps
 * the NaN). */
void kiln_image_f32_to_rgb8(const float *img, int w, int h, int c, uint8_t *out);

/* The inverse for img2img inputs: out[i] = 2 * (rgb[i] / 255) - 1, w * h * c floats. */
void kiln_image_rgb8_to_f32(const uint8_t *rgb, int w, int h, int c, float *out);

#endif
