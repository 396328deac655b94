/*
 * sd_sched_tables.c — the tables of a schedule: betas, alphas_cumprod, the inference
 * timesteps of each spacing, and the sigmas of the Euler-type and DPM++ samplers,
 * built as diffusers builds them (diffusers/src/diffusers/schedulers/scheduling_*.py).
 *
 * Rounding, where the UNet's input depends on it:
 * - betas are torch float32 tensors: torch.linspace(start, end, N) (its scalar
 *   formula: start + step*i in the first half, end - step*(N-1-i) in the second, in
 *   float; torch's vectorized path fuses the base multiply-add and may differ by one
 *   ulp in some betas, far below what any table here is tested to), scaled_linear
 *   squares it, squaredcos_cap_v2 is computed in double and rounded (Nichol & Dhariwal
 *   2021, eq. 17). alphas_cumprod = torch.cumprod(1 - betas): a double accumulator
 *   rounded to float32 at each element (ATen's CPU cumprod).
 * - the sigma table sqrt((1 - a) / a) is float32 arithmetic (torch), interpolated
 *   with np.interp in double at the timesteps and rounded to float32.
 * - timesteps come from numpy in float64 (linspace i*step, arange start + i*delta,
 *   round half to even) and are integers, except euler/euler_a "linspace" where the
 *   UNet gets the float32 rounding of i * (N-1)/(steps-1).
 * - Karras sigmas (Karras et al. 2022, eq. 5, rho = 7) are float64 from the float32
 *   sigma ends, mapped back to timesteps by interpolating log sigma (_sigma_to_t) and
 *   rounded to integers for DPM++ as diffusers does (truncated for squaredcos_cap_v2).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "pipelines/sd_sched_internal.h"

kiln_status kiln_sched_check_config(kiln_sd_sampler_kind kind, const kiln_sched_config *c) {
    if ((int)kind < 0 || (int)kind > KILN_SD_SAMPLER_LCM) return kiln_fail(KILN_ERR_INVALID_ARG, "bad sampler kind %d", kind);
    if (c->num_train_timesteps < 2 || c->num_train_timesteps > 100000)
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: num_train_timesteps %d is not in 2..100000",
                         c->num_train_timesteps);
    if ((unsigned)c->beta_schedule > KILN_BETA_SQUAREDCOS_CAP_V2)
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: bad beta_schedule %d", c->beta_schedule);
    if (c->beta_schedule != KILN_BETA_SQUAREDCOS_CAP_V2) {
        if (!(c->beta_start > 0 && c->beta_start < 1) || !(c->beta_end > 0 && c->beta_end < 1))
            return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: beta_start %g and beta_end %g must lie in (0, 1)",
                             c->beta_start, c->beta_end);
    }
    if ((unsigned)c->prediction_type > KILN_PRED_SAMPLE)
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: bad prediction_type %d", c->prediction_type);
    if (kind == KILN_SD_SAMPLER_EULER_A && c->prediction_type == KILN_PRED_SAMPLE)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "scheduler config: euler_a does not implement prediction_type 'sample' "
                                               "(diffusers' EulerAncestralDiscreteScheduler neither)");
    if ((unsigned)c->timestep_spacing > KILN_SPACING_LINSPACE)
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: bad timestep_spacing %d", c->timestep_spacing);
    if (c->steps_offset < 0 || c->steps_offset >= c->num_train_timesteps)
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: steps_offset %d is not in 0..%d", c->steps_offset,
                         c->num_train_timesteps - 1);
    if (!(c->clip_sample_range > 0) || !isfinite(c->clip_sample_range))
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: clip_sample_range %g must be positive",
                         c->clip_sample_range);
    if (kind == KILN_SD_SAMPLER_LCM) {
        if (c->original_inference_steps < 1 || c->original_inference_steps > c->num_train_timesteps)
            return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: original_inference_steps %d is not in 1..%d",
                             c->original_inference_steps, c->num_train_timesteps);
        if (!(c->timestep_scaling > 0) || !isfinite(c->timestep_scaling))
            return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: timestep_scaling %g must be positive",
                             c->timestep_scaling);
    }
    return KILN_OK;
}

/* torch.linspace(a, b, n, dtype=float32), its scalar formula. */
static void linspace_f32(double a, double b, int n, float *out) {
    float fa = (float)a, fb = (float)b;
    float step = (fb - fa) / (float)(n - 1);
    int half = n / 2;
    for (int i = 0; i < n; i++) out[i] = i < half ? fa + step * (float)i : fb - step * (float)(n - 1 - i);
}

static double alpha_bar_cos(double t) {
    double c = cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

/* alphas_cumprod (float32) of the config; zero_snr_floor: euler, euler_a and DPM++
 * set the last one to 2^-24 after rescaling, ddim and lcm leave it 0. */
static void build_alphas_cumprod(const kiln_sched_config *c, bool zero_snr_floor, float *ac) {
    int n = c->num_train_timesteps;
    float *betas = ac; /* built in place */
    if (c->beta_schedule == KILN_BETA_LINEAR) {
        linspace_f32(c->beta_start, c->beta_end, n, betas);
    } else if (c->beta_schedule == KILN_BETA_SCALED_LINEAR) {
        linspace_f32(pow(c->beta_start, 0.5), pow(c->beta_end, 0.5), n, betas);
        for (int i = 0; i < n; i++) betas[i] = betas[i] * betas[i];
    } else {
        for (int i = 0; i < n; i++) {
            double b = 1 - alpha_bar_cos((double)(i + 1) / n) / alpha_bar_cos((double)i / n);
            betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
    }
    double acc = 1.0;
    if (c->rescale_betas_zero_snr) {
        /* Lin et al. 2023 ("Common Diffusion Noise Schedules and Sample Steps Are
         * Flawed"), algorithm 1, in float32 as torch runs it: shift sqrt(alphas_cumprod)
         * so the last is 0, scale so the first is unchanged, back to betas. */
        for (int i = 0; i < n; i++) {
            acc *= (float)(1.0f - betas[i]);
            ac[i] = sqrtf((float)acc);
        }
        float s0 = ac[0], sT = ac[n - 1];
        float scale = s0 / (s0 - sT);
        for (int i = 0; i < n; i++) {
            float s = (ac[i] - sT) * scale;
            ac[i] = s * s; /* alphas_bar */
        }
        float prev = ac[0];
        for (int i = 1; i < n; i++) {
            float cur = ac[i];
            ac[i] = 1.0f - cur / prev; /* betas */
            prev = cur;
        }
        ac[0] = 1.0f - ac[0];
        acc = 1.0;
    }
    for (int i = 0; i < n; i++) {
        acc *= (float)(1.0f - betas[i]);
        ac[i] = (float)acc;
    }
    if (c->rescale_betas_zero_snr && zero_snr_floor) ac[n - 1] = 0x1p-24f;
}

/* np.arange(start, 0, -step) as numpy fills it (start + i * (v1 - v0)), rounded half
 * to even, minus 1: "trailing". Its length can differ from steps (numpy computes it
 * as ceil(start / step)), which is refused. */
static kiln_status trailing(int n_train, int steps, double *t) {
    double step = (double)n_train / steps;
    double len = ceil((0.0 - n_train) / -step);
    if (len != steps)
        return kiln_fail(KILN_ERR_INVALID_ARG,
                         "\"trailing\" spacing with %d steps gives diffusers %.0f timesteps (numpy's arange rounding); "
                         "use another step count",
                         steps, len);
    double v0 = n_train, delta = (v0 + -step) - v0;
    for (int i = 0; i < steps; i++) t[i] = nearbyint(i == 0 ? v0 : v0 + i * delta) - 1;
    return KILN_OK;
}

/* np.linspace(0, stop, num)[i], num >= 1. */
static double np_linspace(double stop, int num, int i) {
    if (num == 1) return 0;
    if (i == num - 1) return stop;
    return i * (stop / (num - 1));
}

/* np.interp(x, arange(n), table) for x in [0, n-1] (clamped outside). */
static double interp(const float *table, int n, double x) {
    if (!(x > 0)) return table[0];
    if (x >= n - 1) return table[n - 1];
    int j = (int)floor(x);
    if (x == j) return table[j];
    double slope = ((double)table[j + 1] - table[j]) / 1.0;
    return slope * (x - j) + table[j];
}

/* _sigma_to_t: the fractional index where log sigma falls in log_sigmas
 * (ascending), linear in log sigma. */
static double sigma_to_t(double sigma, const float *log_sigmas, int n) {
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int low = 0;
    for (int k = 0; k < n; k++)
        if (ls - log_sigmas[k] >= 0) low = k;
    if (low > n - 2) low = n - 2;
    double lo = log_sigmas[low], hi = log_sigmas[low + 1];
    double w = (lo - ls) / (lo - hi);
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1 - w) * low + w * (low + 1);
}

static kiln_status build_timesteps(kiln_sched *s) {
    const kiln_sched_config *c = &s->cfg;
    int n = c->num_train_timesteps, steps = s->steps;
    double *t = s->timesteps;
    if (s->kind == KILN_SD_SAMPLER_LCM) {
        /* LCM: the distillation schedule (j+1)*k - 1, k = N // original steps,
         * descending, sampled at floor(i * original/steps). */
        int orig = c->original_inference_steps, k = n / orig;
        double skip = (double)orig / steps;
        for (int i = 0; i < steps; i++) {
            int idx = (int)floor(i * skip);
            t[i] = (double)(orig - idx) * k - 1;
        }
        return KILN_OK;
    }
    bool dpm = s->kind == KILN_SD_SAMPLER_DPMPP_2M || s->kind == KILN_SD_SAMPLER_DPMPP_2M_KARRAS;
    bool euler = s->kind == KILN_SD_SAMPLER_EULER || s->kind == KILN_SD_SAMPLER_EULER_A;
    switch (c->timestep_spacing) {
    case KILN_SPACING_LINSPACE:
        for (int i = 0; i < steps; i++) {
            if (dpm) /* linspace(0, N-1, steps+1).round()[::-1][:-1] */
                t[i] = nearbyint(np_linspace(n - 1, steps + 1, steps - i));
            else if (euler) /* linspace(0, N-1, steps, dtype=float32)[::-1] */
                t[i] = (float)np_linspace(n - 1, steps, steps - 1 - i);
            else /* ddim: linspace(0, N-1, steps).round()[::-1] */
                t[i] = nearbyint(np_linspace(n - 1, steps, steps - 1 - i));
        }
        break;
    case KILN_SPACING_LEADING: {
        /* arange(steps) * (N // steps), descending, + steps_offset; DPM++ takes
         * steps+1 points and drops the 0 */
        int ratio = dpm ? n / (steps + 1) : n / steps;
        for (int i = 0; i < steps; i++) t[i] = (double)(dpm ? steps - i : steps - 1 - i) * ratio + c->steps_offset;
        break;
    }
    case KILN_SPACING_TRAILING: {
        kiln_status st = trailing(n, steps, t);
        if (st != KILN_OK) return st;
        break;
    }
    }
    for (int i = 0; i < steps; i++)
        if (!(t[i] >= 0 && t[i] <= n - 1))
            return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler: timestep %g of step %d is outside 0..%d (steps_offset %d?)",
                             t[i], i, n - 1, c->steps_offset);
    return KILN_OK;
}

static kiln_status build_sigmas(kiln_sched *s) {
    int n = s->cfg.num_train_timesteps, steps = s->steps;
    float *table = malloc((size_t)n * 2 * sizeof(float));
    if (!table) return kiln_fail(KILN_ERR_NOMEM, "scheduler: out of memory");
    float *log_sigmas = table + n;
    for (int k = 0; k < n; k++) {
        float a = s->ac[k];
        table[k] = sqrtf((1.0f - a) / a);
        log_sigmas[k] = (float)log((double)table[k]); /* np.log of a float32 array */
    }
    if (s->kind == KILN_SD_SAMPLER_DPMPP_2M_KARRAS) {
        /* diffusers takes sigma_min/max from the ends of the whole table */
        double rho = 7.0, min_inv = pow((double)table[0], 1 / rho), max_inv = pow((double)table[n - 1], 1 / rho);
        for (int i = 0; i < steps; i++) {
            double ramp = np_linspace(1.0, steps, i);
            double sig = pow(max_inv + ramp * (min_inv - max_inv), rho);
            s->sigmas[i] = (float)sig;
            /* DPM++ rounds the timesteps, except for squaredcos_cap_v2 where only the
             * cast to int64 truncates them */
            double t = sigma_to_t(sig, log_sigmas, n);
            s->timesteps[i] = s->cfg.beta_schedule == KILN_BETA_SQUAREDCOS_CAP_V2 ? trunc(t) : nearbyint(t);
        }
    } else {
        for (int i = 0; i < steps; i++) s->sigmas[i] = (float)interp(table, n, s->timesteps[i]);
    }
    s->sigmas[steps] = 0;
    free(table);
    return KILN_OK;
}

kiln_status kiln_sched_create(kiln_sd_sampler_kind kind, const kiln_sched_config *cfg, int steps, kiln_sched **out) {
    *out = NULL;
    kiln_status st = kiln_sched_check_config(kind, cfg);
    if (st != KILN_OK) return st;
    if (steps < 1 || steps > KILN_SCHED_MAX_STEPS || steps > cfg->num_train_timesteps)
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler: steps %d is not in 1..%d", steps,
                         cfg->num_train_timesteps < KILN_SCHED_MAX_STEPS ? cfg->num_train_timesteps : KILN_SCHED_MAX_STEPS);
    if (kind == KILN_SD_SAMPLER_LCM && steps > cfg->original_inference_steps)
        return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler: lcm takes at most original_inference_steps (%d) steps, not %d",
                         cfg->original_inference_steps, steps);
    kiln_sched *s = calloc(1, sizeof *s);
    if (!s) return kiln_fail(KILN_ERR_NOMEM, "scheduler: out of memory");
    s->kind = kind;
    s->cfg = *cfg;
    s->steps = steps;
    s->next = -1;
    bool sigma_kind = kind != KILN_SD_SAMPLER_DDIM && kind != KILN_SD_SAMPLER_LCM;
    s->timesteps = malloc((size_t)steps * sizeof(double));
    s->ac = malloc((size_t)cfg->num_train_timesteps * sizeof(float));
    s->sigmas = sigma_kind ? malloc((size_t)(steps + 1) * sizeof(float)) : NULL;
    if (!s->timesteps || !s->ac || (sigma_kind && !s->sigmas)) {
        kiln_sched_free(s);
        return kiln_fail(KILN_ERR_NOMEM, "scheduler: out of memory");
    }
    build_alphas_cumprod(cfg, sigma_kind, s->ac);
    s->final_ac = cfg->set_alpha_to_one ? 1.0f : s->ac[0];
    s->init_sigma = 1.0f;
    if ((st = build_timesteps(s)) != KILN_OK || (sigma_kind && (st = build_sigmas(s)) != KILN_OK)) {
        kiln_sched_free(s);
        return st;
    }
    if (kind == KILN_SD_SAMPLER_EULER || kind == KILN_SD_SAMPLER_EULER_A) {
        float m = 0;
        for (int i = 0; i <= steps; i++) m = s->sigmas[i] > m ? s->sigmas[i] : m;
        /* init_noise_sigma: the largest sigma, or sqrt(max^2 + 1) for "leading" (float32) */
        s->init_sigma = cfg->timestep_spacing == KILN_SPACING_LEADING ? sqrtf(m * m + 1.0f) : m;
    }
    *out = s;
    return KILN_OK;
}

void kiln_sched_free(kiln_sched *s) {
    if (!s) return;
    free(s->timesteps);
    free(s->sigmas);
    free(s->ac);
    free(s->prev_x0);
    free(s);
}

int kiln_sched_steps(const kiln_sched *s) { return s->steps; }
kiln_sd_sampler_kind kiln_sched_kind(const kiln_sched *s) { return s->kind; }
double kiln_sched_timestep(const kiln_sched *s, int i) { return i >= 0 && i < s->steps ? s->timesteps[i] : 0; }
float kiln_sched_init_noise_sigma(const kiln_sched *s) { return s->init_sigma; }

const float *kiln_sched_sigmas(const kiln_sched *s, int *n) {
    *n = s->sigmas ? s->steps + 1 : 0;
    return s->sigmas;
}

const float *kiln_sched_alphas_cumprod(const kiln_sched *s, int *n) {
    *n = s->cfg.num_train_timesteps;
    return s->ac;
}
