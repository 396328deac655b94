/*
 * sd_random.h — random-weight Stable Diffusion models written as diffusers folders
 * (sd_random.c), behind kiln_model_random's "sd-*" shapes.
 */
#ifndef KILN_MODELS_SD_RANDOM_H
#define KILN_MODELS_SD_RANDOM_H

#include <stdbool.h>

#include "kiln.h"

/* True for the Stable Diffusion shapes ("sd15", "sd-tiny"). */
bool kiln_sd_random_shape(const char *name);
/* Writes the folder dir (created if needed); opt->type is f32, f16 or bf16. */
kiln_status kiln_sd_random_write(const char *dir, const kiln_random_model_options *opt);

#endif
