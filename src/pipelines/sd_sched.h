/*
 * sd_sched.h — Stable Diffusion noise schedulers (samplers) as diffusers runs them:
 * the timesteps the UNet gets, the input scaling, and the update of the latents from
 * the model's output, one small interchangeable unit per sampler.
 *
 *   ddim             DDIMScheduler, eta 0                 (Song et al. 2020, eq. 12)
 *   euler            EulerDiscreteScheduler               (Karras et al. 2022, alg. 2, no churn)
 *   euler_a          EulerAncestralDiscreteScheduler      (k-diffusion sample_euler_ancestral)
 *   dpmpp_2m         DPMSolverMultistepScheduler, dpmsolver++, order 2, midpoint
 *                                                         (Lu et al. 2022b, DPM-Solver++(2M), alg. 2)
 *   dpmpp_2m_karras  the same on Karras sigmas, rho 7     (Karras et al. 2022, eq. 5)
 *   lcm              LCMScheduler                         (Luo et al. 2023, alg. 3)
 *
 * A schedule is made from a kiln_sched_config (what a diffusers
 * scheduler/scheduler_config.json holds) and a step count. The caller runs, for
 * i = 0 .. steps-1: t = kiln_sched_timestep(s, i); x_in = kiln_sched_scale_input(x);
 * model_out = UNet(x_in, t); kiln_sched_step(s, i, model_out, x, noise). The initial
 * latents are standard normal noise times kiln_sched_init_noise_sigma. Noise for the
 * ancestral samplers comes from the caller (a torch-compatible randn), drawn for each
 * step where kiln_sched_needs_noise says so, in the order diffusers draws it.
 *
 * Tables are built with diffusers' float32/float64 rounding (see sd_sched_tables.c) so
 * the timesteps equal diffusers' bit for bit; the updates run in double on the float32
 * table values and round the latents to float32, as the pipeline holds them.
 */
#ifndef KILN_PIPELINES_SD_SCHED_H
#define KILN_PIPELINES_SD_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"

typedef enum {
    KILN_SD_SAMPLER_DDIM,
    KILN_SD_SAMPLER_EULER,
    KILN_SD_SAMPLER_EULER_A,
    KILN_SD_SAMPLER_DPMPP_2M,
    KILN_SD_SAMPLER_DPMPP_2M_KARRAS,
    KILN_SD_SAMPLER_LCM,
} kiln_sd_sampler_kind;

/* "ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm" (exact, lower
 * case); anything else is KILN_ERR_INVALID_ARG listing the names. */
kiln_status kiln_sd_sampler_from_name(const char *name, kiln_sd_sampler_kind *out);
const char *kiln_sd_sampler_name(kiln_sd_sampler_kind kind);

typedef enum { KILN_BETA_LINEAR, KILN_BETA_SCALED_LINEAR, KILN_BETA_SQUAREDCOS_CAP_V2 } kiln_beta_schedule;
typedef enum { KILN_PRED_EPSILON, KILN_PRED_V, KILN_PRED_SAMPLE } kiln_prediction;
typedef enum { KILN_SPACING_LEADING, KILN_SPACING_TRAILING, KILN_SPACING_LINSPACE } kiln_spacing;

#define KILN_SCHED_MAX_STEPS 150

typedef struct {
    int num_train_timesteps;        /* 1000 */
    double beta_start, beta_end;    /* SD: 0.00085, 0.012 */
    kiln_beta_schedule beta_schedule;
    kiln_prediction prediction_type;
    int steps_offset;               /* added to "leading" timesteps; SD 1.x has 1 */
    kiln_spacing timestep_spacing;  /* not used by lcm */
    bool set_alpha_to_one;          /* ddim, lcm: alpha_cumprod after the last step is 1 (else alphas_cumprod[0]) */
    bool clip_sample;               /* ddim, lcm: clamp the predicted x0 to +-clip_sample_range */
    double clip_sample_range;
    bool rescale_betas_zero_snr;    /* Lin et al. 2023, alg. 1 */
    int original_inference_steps;   /* lcm: 50 */
    double timestep_scaling;        /* lcm: 10 */
} kiln_sched_config;

/* diffusers' defaults of the sampler's class (what it uses for keys a
 * scheduler_config.json lacks): e.g. euler: linear betas 0.0001..0.02, "linspace". */
void kiln_sched_config_default(kiln_sd_sampler_kind kind, kiln_sched_config *cfg);
/* Stable Diffusion 1.x/2.x's scheduler_config.json (scaled_linear 0.00085..0.012,
 * steps_offset 1, set_alpha_to_one false, clip_sample false, epsilon) over those
 * defaults: for checkpoints that come without a scheduler config. */
void kiln_sched_config_sd(kiln_sd_sampler_kind kind, kiln_sched_config *cfg);
/* Reads the JSON text of a diffusers scheduler_config.json for the sampler kind, as
 * SamplerClass.from_config(file) does: whatever _class_name it lists, keys it holds
 * override the class's defaults, unknown keys are ignored, and the sampler's name
 * decides the algorithm (use_karras_sigmas, solver_order... are ignored). Values kiln
 * does not implement (thresholding, trained_betas, exponential sigmas, ...) are
 * KILN_ERR_UNSUPPORTED, wrong types KILN_ERR_FORMAT, out-of-range values
 * KILN_ERR_INVALID_ARG, each message naming the key. */
kiln_status kiln_sched_config_parse(const char *json, kiln_sd_sampler_kind kind, kiln_sched_config *cfg);

typedef struct kiln_sched kiln_sched;

/* Builds the schedule of `steps` steps (1..KILN_SCHED_MAX_STEPS, and at most
 * original_inference_steps for lcm); bad configs are KILN_ERR_INVALID_ARG naming
 * the field. *out is owned by the caller (kiln_sched_free). */
kiln_status kiln_sched_create(kiln_sd_sampler_kind kind, const kiln_sched_config *cfg, int steps, kiln_sched **out);
void kiln_sched_free(kiln_sched *s);

int kiln_sched_steps(const kiln_sched *s);
kiln_sd_sampler_kind kiln_sched_kind(const kiln_sched *s);
/* The timestep the UNet gets at step i (an integer, or for euler/euler_a with
 * "linspace" a float32 value, as diffusers passes it). */
double kiln_sched_timestep(const kiln_sched *s, int i);
/* Initial latents = standard normal noise * this. */
float kiln_sched_init_noise_sigma(const kiln_sched *s);
/* scale_model_input: out = x / sqrt(sigma_i^2 + 1) for euler/euler_a, a copy
 * otherwise (out may be x). */
void kiln_sched_scale_input(const kiln_sched *s, int i, const float *x, float *out, int64_t n);
/* Whether step i consumes n values of standard normal noise: euler_a every step,
 * lcm all but the last, the others never. */
bool kiln_sched_needs_noise(const kiln_sched *s, int i);
/* Updates x (n floats) in place from the model's output at step i. noise: n
 * standard normal values where kiln_sched_needs_noise(s, i), else ignored (may be
 * NULL). dpmpp_2m keeps the previous step's x0 prediction inside s, so its steps must
 * run in order (the first may be any i, for img2img) with the same n. */
kiln_status kiln_sched_step(kiln_sched *s, int i, const float *model_out, float *x, const float *noise, int64_t n);

/* Tables, for tests and callers that need them (owned by s):
 * sigmas: steps + 1 values, the last 0, for euler, euler_a and dpmpp_2m*; NULL and
 * *n = 0 for ddim and lcm. alphas_cumprod: num_train_timesteps values. */
const float *kiln_sched_sigmas(const kiln_sched *s, int *n);
const float *kiln_sched_alphas_cumprod(const kiln_sched *s, int *n);

#endif
