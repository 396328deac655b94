/*
 * sd_sched_config.c — sampler names, diffusers' per-class scheduler defaults, and
 * reading a diffusers scheduler_config.json.
 *
 * diffusers' SamplerClass.from_config(file) takes the class's __init__ defaults and
 * overrides them with the keys the file holds; keys the class does not take are
 * ignored, whatever _class_name the file lists (since diffusers 0.22 the listed
 * class's own defaults, recorded in _use_default_values, do not leak either). So
 * Stable Diffusion 1.5's file (written for PNDMScheduler, no timestep_spacing) gives
 * euler "linspace" and ddim "leading". The sampler's name fixes its algorithm:
 * use_karras_sigmas, algorithm_type, solver_order, solver_type, lower_order_final and
 * euler_at_final in a file are ignored. Keys that would change the math in ways kiln
 * does not implement are refused by name when the sampler's class takes them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/status.h"
#include "models/bind.h"
#include "pipelines/sd_sched_internal.h"

static const char *const sampler_names[] = {"ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm"};
#define N_SAMPLERS ((int)(sizeof sampler_names / sizeof sampler_names[0]))

kiln_status kiln_sd_sampler_from_name(const char *name, kiln_sd_sampler_kind *out) {
    for (int k = 0; name && k < N_SAMPLERS; k++)
        if (!strcmp(name, sampler_names[k])) {
            *out = (kiln_sd_sampler_kind)k;
            return KILN_OK;
        }
    return kiln_fail(KILN_ERR_INVALID_ARG,
                     "unknown sampler '%s' (ddim, euler, euler_a, dpmpp_2m, dpmpp_2m_karras, lcm)",
                     name ? name : "(null)");
}

const char *kiln_sd_sampler_name(kiln_sd_sampler_kind kind) {
    return (int)kind >= 0 && (int)kind < N_SAMPLERS ? sampler_names[kind] : "?";
}

/* The __init__ defaults of DDIMScheduler, EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler and LCMScheduler. */
void kiln_sched_config_default(kiln_sd_sampler_kind kind, kiln_sched_config *c) {
    *c = (kiln_sched_config){
        .num_train_timesteps = 1000,
        .beta_start = 0.0001,
        .beta_end = 0.02,
        .beta_schedule = KILN_BETA_LINEAR,
        .prediction_type = KILN_PRED_EPSILON,
        .steps_offset = 0,
        .timestep_spacing = KILN_SPACING_LINSPACE,
        .set_alpha_to_one = true,
        .clip_sample = false,
        .clip_sample_range = 1.0,
        .rescale_betas_zero_snr = false,
        .original_inference_steps = 50,
        .timestep_scaling = 10.0,
    };
    if (kind == KILN_SD_SAMPLER_DDIM) {
        c->clip_sample = true;
        c->timestep_spacing = KILN_SPACING_LEADING;
    } else if (kind == KILN_SD_SAMPLER_LCM) {
        c->beta_start = 0.00085;
        c->beta_end = 0.012;
        c->beta_schedule = KILN_BETA_SCALED_LINEAR;
        c->timestep_spacing = KILN_SPACING_LEADING;
    }
}

void kiln_sched_config_sd(kiln_sd_sampler_kind kind, kiln_sched_config *c) {
    kiln_sched_config_default(kind, c);
    c->beta_start = 0.00085;
    c->beta_end = 0.012;
    c->beta_schedule = KILN_BETA_SCALED_LINEAR;
    c->steps_offset = 1;
    c->set_alpha_to_one = false;
    c->clip_sample = false;
}

/* ---- scheduler_config.json ------------------------------------------------------ */

/* Which samplers' classes take a key (bit per kiln_sd_sampler_kind). */
#define B(k) (1u << (k))
#define ALL 0x3fu
#define DPM (B(KILN_SD_SAMPLER_DPMPP_2M) | B(KILN_SD_SAMPLER_DPMPP_2M_KARRAS))
#define EULER B(KILN_SD_SAMPLER_EULER)
#define DDIM_LCM (B(KILN_SD_SAMPLER_DDIM) | B(KILN_SD_SAMPLER_LCM))

static bool takes(unsigned mask, kiln_sd_sampler_kind kind) { return (mask >> kind) & 1u; }

static kiln_status get_int(const cJSON *v, const char *key, int *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9)
        return kiln_fail(KILN_ERR_FORMAT, "scheduler config: %s must be an integer", key);
    *out = (int)v->valuedouble;
    return KILN_OK;
}

static kiln_status get_num(const cJSON *v, const char *key, double *out) {
    if (!cJSON_IsNumber(v)) return kiln_fail(KILN_ERR_FORMAT, "scheduler config: %s must be a number", key);
    *out = v->valuedouble;
    return KILN_OK;
}

static kiln_status get_bool(const cJSON *v, const char *key, bool *out) {
    if (!cJSON_IsBool(v)) return kiln_fail(KILN_ERR_FORMAT, "scheduler config: %s must be true or false", key);
    *out = cJSON_IsTrue(v);
    return KILN_OK;
}

/* A string key that must be one of names (returns the index). */
static kiln_status get_enum(const cJSON *v, const char *key, const char *const *names, int n, int *out) {
    if (!cJSON_IsString(v)) return kiln_fail(KILN_ERR_FORMAT, "scheduler config: %s must be a string", key);
    for (int k = 0; k < n; k++)
        if (!strcmp(v->valuestring, names[k])) {
            *out = k;
            return KILN_OK;
        }
    return kiln_fail(KILN_ERR_UNSUPPORTED, "scheduler config: %s '%s' is not supported (%s%s%s%s%s)", key,
                     v->valuestring, names[0], n > 1 ? ", " : "", n > 1 ? names[1] : "", n > 2 ? ", " : "",
                     n > 2 ? names[2] : "");
}

/* Keys whose only implemented value is the default: false, null, or one string. */
static const struct {
    const char *key;
    unsigned mask;
    const char *only; /* "false", "null", "-inf" or a string value */
} fixed_keys[] = {
    {"thresholding", DDIM_LCM | DPM, "false"},
    {"trained_betas", ALL, "null"},
    {"use_exponential_sigmas", EULER | DPM, "false"},
    {"use_beta_sigmas", EULER | DPM, "false"},
    {"use_lu_lambdas", DPM, "false"},
    {"use_flow_sigmas", DPM, "false"},
    {"use_dynamic_shifting", DPM, "false"},
    {"variance_type", DPM, "null"},
    {"lambda_min_clipped", DPM, "-inf"},
    {"sigma_min", EULER | DPM, "null"},
    {"sigma_max", EULER | DPM, "null"},
    {"interpolation_type", EULER, "linear"},
    {"timestep_type", EULER, "discrete"},
    {"final_sigmas_type", EULER | DPM, "zero"},
};

static kiln_status check_fixed(const cJSON *root, kiln_sd_sampler_kind kind) {
    for (size_t k = 0; k < sizeof fixed_keys / sizeof fixed_keys[0]; k++) {
        if (!takes(fixed_keys[k].mask, kind)) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, fixed_keys[k].key);
        if (!v) continue;
        const char *only = fixed_keys[k].only;
        bool ok;
        if (!strcmp(only, "false")) ok = cJSON_IsFalse(v) || cJSON_IsNull(v);
        else if (!strcmp(only, "null")) ok = cJSON_IsNull(v);
        else if (!strcmp(only, "-inf")) ok = cJSON_IsNull(v) || (cJSON_IsNumber(v) && isinf(v->valuedouble) && v->valuedouble < 0);
        else ok = cJSON_IsString(v) && !strcmp(v->valuestring, only);
        if (!ok)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "scheduler config: %s other than %s is not supported by %s",
                             fixed_keys[k].key, only, kiln_sd_sampler_name(kind));
    }
    return KILN_OK;
}

kiln_status kiln_sched_config_parse(const char *json, kiln_sd_sampler_kind kind, kiln_sched_config *cfg) {
    if ((int)kind < 0 || (int)kind >= N_SAMPLERS) return kiln_fail(KILN_ERR_INVALID_ARG, "bad sampler kind %d", kind);
    if (!json) return kiln_fail(KILN_ERR_INVALID_ARG, "scheduler config: no text");
    cJSON *root = kiln_json_parse_py(json);
    if (!root) return kiln_fail(KILN_ERR_FORMAT, "scheduler config: not valid JSON");
    kiln_status st = KILN_OK;
    if (!cJSON_IsObject(root)) {
        st = kiln_fail(KILN_ERR_FORMAT, "scheduler config: not a JSON object");
        goto done;
    }
    kiln_sched_config c;
    kiln_sched_config_default(kind, &c);
    if ((st = check_fixed(root, kind)) != KILN_OK) goto done;

    static const char *const betas[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    static const char *const preds[] = {"epsilon", "v_prediction", "sample"};
    static const char *const spacings[] = {"leading", "trailing", "linspace"};
    const cJSON *v;
    int e = 0;
#define ITEM(key) (v = cJSON_GetObjectItemCaseSensitive(root, key)) != NULL
#define TRY(expr)                          \
    do {                                   \
        if ((st = (expr)) != KILN_OK) goto done; \
    } while (0)
    if (ITEM("num_train_timesteps")) TRY(get_int(v, "num_train_timesteps", &c.num_train_timesteps));
    if (ITEM("beta_start")) TRY(get_num(v, "beta_start", &c.beta_start));
    if (ITEM("beta_end")) TRY(get_num(v, "beta_end", &c.beta_end));
    if (ITEM("beta_schedule")) {
        TRY(get_enum(v, "beta_schedule", betas, 3, &e));
        c.beta_schedule = (kiln_beta_schedule)e;
    }
    if (ITEM("prediction_type")) {
        TRY(get_enum(v, "prediction_type", preds, 3, &e));
        c.prediction_type = (kiln_prediction)e;
    }
    if (ITEM("steps_offset")) TRY(get_int(v, "steps_offset", &c.steps_offset));
    if (kind != KILN_SD_SAMPLER_LCM && ITEM("timestep_spacing")) {
        TRY(get_enum(v, "timestep_spacing", spacings, 3, &e));
        c.timestep_spacing = (kiln_spacing)e;
    }
    if (ITEM("rescale_betas_zero_snr")) TRY(get_bool(v, "rescale_betas_zero_snr", &c.rescale_betas_zero_snr));
    if (takes(DDIM_LCM, kind)) {
        if (ITEM("set_alpha_to_one")) TRY(get_bool(v, "set_alpha_to_one", &c.set_alpha_to_one));
        if (ITEM("clip_sample")) TRY(get_bool(v, "clip_sample", &c.clip_sample));
        if (ITEM("clip_sample_range")) TRY(get_num(v, "clip_sample_range", &c.clip_sample_range));
    }
    if (kind == KILN_SD_SAMPLER_LCM) {
        if (ITEM("original_inference_steps")) TRY(get_int(v, "original_inference_steps", &c.original_inference_steps));
        if (ITEM("timestep_scaling")) TRY(get_num(v, "timestep_scaling", &c.timestep_scaling));
    }
#undef ITEM
#undef TRY
    if ((st = kiln_sched_check_config(kind, &c)) != KILN_OK) goto done;
    *cfg = c;
done:
    cJSON_Delete(root);
    return st;
}
