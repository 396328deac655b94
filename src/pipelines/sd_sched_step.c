/*
 * sd_sched_step.c — one denoising step of each sampler, and scale_model_input.
 *
 * Each follows the step() of its diffusers class with that class's defaults. diffusers
 * runs these in float32 on float32 tables; here the per-element arithmetic is double
 * on the same float32 table values and the latents are rounded to float32 after each
 * step (as the pipeline holds them), so results agree with diffusers to float32
 * rounding (tests/golden/README.md gives the measured differences).
 *
 * The model output is turned into a prediction of the clean latents x0 by the
 * prediction type (epsilon: x = x0 + sigma * eps in the Euler "k-diffusion" scaling,
 * x = sqrt(a) x0 + sqrt(1-a) eps in the DDPM one; v (Salimans & Ho 2022, sec. 4):
 * v = sqrt(a) eps - sqrt(1-a) x0; sample: x0 itself).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "pipelines/sd_sched_internal.h"

void kiln_sched_scale_input(const kiln_sched *s, int i, const float *x, float *out, int64_t n) {
    if ((s->kind == KILN_SD_SAMPLER_EULER || s->kind == KILN_SD_SAMPLER_EULER_A) && i >= 0 && i < s->steps) {
        /* x / ((sigma**2 + 1) ** 0.5), float32 as torch computes it: bit-identical */
        float sigma = s->sigmas[i];
        float scale = sqrtf(sigma * sigma + 1.0f);
        for (int64_t k = 0; k < n; k++) out[k] = x[k] / scale;
    } else if (out != x) {
        memmove(out, x, (size_t)n * sizeof(float));
    }
}

bool kiln_sched_needs_noise(const kiln_sched *s, int i) {
    if (i < 0 || i >= s->steps) return false;
    if (s->kind == KILN_SD_SAMPLER_EULER_A) return true;            /* randn every step, even the last (sigma_up 0) */
    if (s->kind == KILN_SD_SAMPLER_LCM) return i != s->steps - 1; /* the last step returns the denoised x0 */
    return false;
}

/* Euler (Karras et al. 2022, alg. 2 with s_churn 0) and Euler ancestral
 * (k-diffusion's sample_euler_ancestral: a step down to sigma_down, then noise of
 * sigma_up, sigma_up^2 + sigma_down^2 = sigma_to^2, eta 1). */
static void step_euler(const kiln_sched *s, int i, const float *m, float *x, const float *noise, int64_t n) {
    double sigma = s->sigmas[i], to = s->sigmas[i + 1];
    double up = 0, target = to;
    if (s->kind == KILN_SD_SAMPLER_EULER_A) {
        up = sqrt(to * to * (sigma * sigma - to * to) / (sigma * sigma));
        target = sqrt(to * to - up * up);
    }
    double dt = target - sigma;
    double vscale = -sigma / sqrt(sigma * sigma + 1), xscale = 1 / (sigma * sigma + 1);
    for (int64_t k = 0; k < n; k++) {
        double xk = x[k], x0;
        switch (s->cfg.prediction_type) {
        case KILN_PRED_EPSILON: x0 = xk - sigma * m[k]; break;
        case KILN_PRED_V: x0 = m[k] * vscale + xk * xscale; break;
        default: x0 = m[k]; break;
        }
        double d = (xk - x0) / sigma;
        double next = xk + d * dt;
        if (s->kind == KILN_SD_SAMPLER_EULER_A) next += noise[k] * up;
        x[k] = (float)next;
    }
}

/* x0 and eps predictions from alpha_cumprod a (DDPM parametrization). */
static void predict(kiln_prediction p, double a, double xk, double mk, double *x0, double *eps) {
    double sa = sqrt(a), sb = sqrt(1 - a);
    switch (p) {
    case KILN_PRED_EPSILON:
        *x0 = (xk - sb * mk) / sa;
        *eps = mk;
        break;
    case KILN_PRED_V:
        *x0 = sa * xk - sb * mk;
        *eps = sa * mk + sb * xk;
        break;
    default:
        *x0 = mk;
        *eps = (xk - sa * mk) / sb;
        break;
    }
}

static double clip(const kiln_sched_config *c, double x0) {
    if (!c->clip_sample) return x0;
    double r = c->clip_sample_range;
    return x0 < -r ? -r : x0 > r ? r : x0;
}

/* DDIM (Song et al. 2020, eq. 12 with eta = 0, sigma_t = 0):
 * x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps. diffusers takes the previous
 * timestep as t - N // steps whatever the spacing, and final_alpha_cumprod below 0. */
static void step_ddim(const kiln_sched *s, int i, const float *m, float *x, int64_t n) {
    int t = (int)s->timesteps[i];
    int prev = t - s->cfg.num_train_timesteps / s->steps;
    double a = s->ac[t], a_prev = prev >= 0 ? s->ac[prev] : s->final_ac;
    double sp = sqrt(a_prev), sd = sqrt(1 - a_prev);
    for (int64_t k = 0; k < n; k++) {
        double x0, eps;
        predict(s->cfg.prediction_type, a, x[k], m[k], &x0, &eps);
        x0 = clip(&s->cfg, x0);
        x[k] = (float)(sp * x0 + sd * eps);
    }
}

/* LCM (Luo et al. 2023, multistep sampling, alg. 3): the consistency function
 * f(x, t) = c_skip x + c_out x0 with the boundary scalings of Song et al. 2023
 * (sigma_data 0.5, t scaled by timestep_scaling), then noise back to the next
 * timestep, except after the last. */
static void step_lcm(const kiln_sched *s, int i, const float *m, float *x, const float *noise, int64_t n) {
    int t = (int)s->timesteps[i];
    bool last = i == s->steps - 1;
    int prev = last ? t : (int)s->timesteps[i + 1];
    double a = s->ac[t], a_prev = prev >= 0 ? s->ac[prev] : s->final_ac;
    double st = t * s->cfg.timestep_scaling, sd2 = 0.25;
    double c_skip = sd2 / (st * st + sd2), c_out = st / sqrt(st * st + sd2);
    double sp = sqrt(a_prev), sb = sqrt(1 - a_prev);
    for (int64_t k = 0; k < n; k++) {
        double x0, eps;
        predict(s->cfg.prediction_type, a, x[k], m[k], &x0, &eps);
        x0 = clip(&s->cfg, x0);
        double denoised = c_out * x0 + c_skip * x[k];
        x[k] = (float)(last ? denoised : sp * denoised + sb * noise[k]);
    }
}

/* DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", alg. 2, midpoint form as
 * diffusers writes it), on the data prediction x0, with lambda = log(alpha/sigma),
 * alpha = 1/sqrt(sigma^2+1), sigma_t = sigma * alpha. First order (DDIM-like) on the
 * first step and on the last (diffusers' final_sigmas_type "zero" forces it there,
 * whatever lower_order_final says; lower_order_final with < 15 steps only lowers
 * third order to second, which order 2 never uses). */
static void step_dpm(kiln_sched *s, int i, const float *m, float *x, int64_t n) {
    double sig_s = s->sigmas[i], sig_t = s->sigmas[i + 1];
    double alpha_s = 1 / sqrt(sig_s * sig_s + 1), sigma_s = sig_s * alpha_s;
    double alpha_t = 1 / sqrt(sig_t * sig_t + 1), sigma_t = sig_t * alpha_t;
    double lambda_s = log(alpha_s) - log(sigma_s);
    /* sigma 0 (the last step): lambda_t = +inf, exp(-h) = 0 */
    double h = sig_t > 0 ? (log(alpha_t) - log(sigma_t)) - lambda_s : INFINITY;
    double emh1 = (sig_t > 0 ? exp(-h) : 0.0) - 1.0; /* exp(-h) - 1 */
    double ratio = sigma_t / sigma_s;
    bool first = s->lower_order_nums < 1 || i == s->steps - 1;
    double r0 = 1;
    if (!first) {
        double sig_1 = s->sigmas[i - 1];
        double alpha_1 = 1 / sqrt(sig_1 * sig_1 + 1), sigma_1 = sig_1 * alpha_1;
        double lambda_1 = log(alpha_1) - log(sigma_1);
        r0 = (lambda_s - lambda_1) / h;
    }
    for (int64_t k = 0; k < n; k++) {
        double xk = x[k], x0;
        switch (s->cfg.prediction_type) {
        case KILN_PRED_EPSILON: x0 = (xk - sigma_s * m[k]) / alpha_s; break;
        case KILN_PRED_V: x0 = alpha_s * xk - sigma_s * m[k]; break;
        default: x0 = m[k]; break;
        }
        float x0f = (float)x0; /* diffusers keeps model_outputs in float32 */
        double next;
        if (first) {
            next = ratio * xk - alpha_t * emh1 * x0f;
        } else {
            double d1 = (1.0 / r0) * ((double)x0f - s->prev_x0[k]);
            next = ratio * xk - alpha_t * emh1 * x0f - 0.5 * (alpha_t * emh1) * d1;
        }
        s->prev_x0[k] = x0f;
        x[k] = (float)next;
    }
    if (s->lower_order_nums < 2) s->lower_order_nums++;
}

kiln_status kiln_sched_step(kiln_sched *s, int i, const float *model_out, float *x, const float *noise, int64_t n) {
    if (i < 0 || i >= s->steps) return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler: step %d is not in 0..%d", i, s->steps - 1);
    if (n < 0 || (n > 0 && (!model_out || !x))) return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler: no latents");
    if (kiln_sched_needs_noise(s, i) && !noise && n > 0)
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler: %s step %d needs noise", kiln_sd_sampler_name(s->kind), i);
    switch (s->kind) {
    case KILN_SD_SAMPLER_EULER:
    case KILN_SD_SAMPLER_EULER_A: step_euler(s, i, model_out, x, noise, n); break;
    case KILN_SD_SAMPLER_DDIM: step_ddim(s, i, model_out, x, n); break;
    case KILN_SD_SAMPLER_LCM: step_lcm(s, i, model_out, x, noise, n); break;
    case KILN_SD_SAMPLER_DPMPP_2M:
    case KILN_SD_SAMPLER_DPMPP_2M_KARRAS:
        if (s->next >= 0 && (i != s->next || n != s->prev_n))
            return kiln_fail(KILN_ERR_INVALID_ARG,
                             "scheduler: dpmpp_2m steps run in order on latents of one size (step %d of %" PRId64
                             " values after step %d of %" PRId64 ")",
                             i, n, s->next - 1, s->prev_n);
        if (!s->prev_x0) {
            s->prev_x0 = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
            if (!s->prev_x0) return kiln_fail(KILN_ERR_NOMEM, "scheduler: out of memory");
            s->prev_n = n;
        }
        step_dpm(s, i, model_out, x, n);
        break;
    }
    s->next = i + 1;
    return KILN_OK;
}
