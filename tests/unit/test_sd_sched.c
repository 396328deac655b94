/*
 * test_sd_sched.c — the Stable Diffusion samplers against the fixtures of
 * tests/golden/gen_sched.py (a float64 numpy implementation, checked against
 * diffusers' classes, see tests/golden/README.md): for every case the timesteps
 * (exactly), sigmas, init_noise_sigma and alphas_cumprod (relative 1e-6), and the
 * latents after steps 1..3 and after the last step (relative to their largest value,
 * 1e-6). Then scheduler_config.json parsing (real files, unknown keys, Python's
 * -Infinity, refused values named) and refused step counts and misuse.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pipelines/sd_sched.h"
#include "files.h"
#include "test.h"

static const double TOL = 1e-6;
static double worst_sigma, worst_x, worst_ac;

static cJSON *load(const char *name) {
    const char *src = getenv("KILN_SRC");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/data/sched/%s.json", src ? src : ".", name);
    kiln_test_require_file(path);
    char *text = kiln_test_slurp(path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK_MSG(j != NULL, "%s does not parse", path);
    return j;
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1e-30); }

/* max |x - ref| / max |ref| */
static double rel_max(const float *x, const cJSON *ref, int n) {
    double d = 0, m = 0;
    for (int k = 0; k < n; k++) {
        double r = cJSON_GetArrayItem(ref, k)->valuedouble;
        d = fmax(d, fabs(x[k] - r));
        m = fmax(m, fabs(r));
    }
    return d / (m > 0 ? m : 1);
}

/* The fixture's inputs (gen_sched.py: inputs, x_init), exact in float32. */
static void inputs(int k, int n, float *m, float *e) {
    for (int j = 0; j < n; j++) {
        m[j] = (float)((double)(((j * 7 + k * 13) % 17) - 8) / 8.0);
        e[j] = (float)((double)(((j * 5 + k * 11) % 19) - 9) / 9.0);
    }
}

static void run_case(kiln_sd_sampler_kind kind, const cJSON *c, int n) {
    char *cfg_text = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "config"));
    int steps = cJSON_GetObjectItem(c, "steps")->valueint;
    kiln_sched_config cfg;
    kiln_sched *s = NULL;
    CHECK_OK(kiln_sched_config_parse(cfg_text, kind, &cfg));
    CHECK_OK(kiln_sched_create(kind, &cfg, steps, &s));
    if (!s) {
        fprintf(stderr, "  case %s %d steps: %s\n", kiln_sd_sampler_name(kind), steps, cfg_text);
        free(cfg_text);
        return;
    }
    CHECK(kiln_sched_steps(s) == steps);
    const cJSON *ts = cJSON_GetObjectItem(c, "timesteps");
    bool ts_ok = cJSON_GetArraySize(ts) == steps;
    for (int i = 0; ts_ok && i < steps; i++) ts_ok = kiln_sched_timestep(s, i) == cJSON_GetArrayItem(ts, i)->valuedouble;
    CHECK_MSG(ts_ok, "%s %d steps %s: timesteps differ", kiln_sd_sampler_name(kind), steps, cfg_text);

    const cJSON *sg = cJSON_GetObjectItem(c, "sigmas");
    int ns = 0;
    const float *sig = kiln_sched_sigmas(s, &ns);
    if (cJSON_IsArray(sg)) {
        CHECK(ns == steps + 1 && sig && sig[steps] == 0);
        double w = 0;
        for (int i = 0; ns == steps + 1 && i <= steps; i++) {
            double r = cJSON_GetArrayItem(sg, i)->valuedouble;
            w = fmax(w, r == 0 ? fabs(sig[i]) : rel(sig[i], r));
        }
        worst_sigma = fmax(worst_sigma, w);
        CHECK_MSG(w <= TOL, "%s %d steps %s: sigmas differ by %g", kiln_sd_sampler_name(kind), steps, cfg_text, w);
    } else {
        CHECK(ns == 0 && sig == NULL);
    }
    double ins = cJSON_GetObjectItem(c, "init_noise_sigma")->valuedouble;
    CHECK_MSG(rel(kiln_sched_init_noise_sigma(s), ins) <= TOL, "init_noise_sigma %g, want %g",
              kiln_sched_init_noise_sigma(s), ins);

    float *x = malloc((size_t)n * sizeof(float)), *m = malloc((size_t)n * sizeof(float));
    float *e = malloc((size_t)n * sizeof(float)), *xin = malloc((size_t)n * sizeof(float));
    float init = kiln_sched_init_noise_sigma(s);
    for (int j = 0; j < n; j++) x[j] = (float)((((j * 3) % 16) - 7.5) / 5.0) * init;
    const cJSON *after = cJSON_GetObjectItem(c, "after");
    for (int i = 0; i < steps; i++) {
        kiln_sched_scale_input(s, i, x, xin, n); /* what the UNet would get; not used by the fake model */
        inputs(i, n, m, e);
        CHECK_OK(kiln_sched_step(s, i, m, x, kiln_sched_needs_noise(s, i) ? e : NULL, n));
        const cJSON *ref = i == steps - 1 ? cJSON_GetObjectItem(c, "final") : i < 3 ? cJSON_GetArrayItem(after, i) : NULL;
        if (!ref) continue;
        double w = rel_max(x, ref, n);
        worst_x = fmax(worst_x, w);
        CHECK_MSG(w <= TOL, "%s %d steps %s: latents after step %d differ by %g", kiln_sd_sampler_name(kind), steps,
                  cfg_text, i + 1, w);
    }
    free(x), free(m), free(e), free(xin);
    kiln_sched_free(s);
    free(cfg_text);
}

static void golden(void) {
    static const char *const names[] = {"ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm"};
    int total = 0;
    for (int k = 0; k < 6; k++) {
        kiln_sd_sampler_kind kind;
        CHECK_OK(kiln_sd_sampler_from_name(names[k], &kind));
        CHECK(!strcmp(kiln_sd_sampler_name(kind), names[k]));
        cJSON *j = load(names[k]);
        if (!j) continue;
        int n = cJSON_GetObjectItem(j, "n_values")->valueint;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
            run_case(kind, c, n);
            total++;
        }
        cJSON_Delete(j);
    }
    CHECK(total > 150);

    cJSON *t = load("tables");
    const cJSON *tables = t ? cJSON_GetObjectItem(t, "tables") : NULL, *tab;
    cJSON_ArrayForEach(tab, tables) {
        kiln_sd_sampler_kind kind;
        CHECK_OK(kiln_sd_sampler_from_name(cJSON_GetObjectItem(tab, "sampler")->valuestring, &kind));
        char *cfg_text = cJSON_PrintUnformatted(cJSON_GetObjectItem(tab, "config"));
        kiln_sched_config cfg;
        kiln_sched *s = NULL;
        CHECK_OK(kiln_sched_config_parse(cfg_text, kind, &cfg));
        CHECK_OK(kiln_sched_create(kind, &cfg, 10, &s));
        const cJSON *ref = cJSON_GetObjectItem(tab, "alphas_cumprod");
        int n = 0;
        const float *ac = s ? kiln_sched_alphas_cumprod(s, &n) : NULL;
        CHECK(n == cJSON_GetArraySize(ref));
        double w = 0;
        for (int i = 0; ac && i < n; i++) w = fmax(w, rel(ac[i], cJSON_GetArrayItem(ref, i)->valuedouble));
        worst_ac = fmax(worst_ac, w);
        CHECK_MSG(w <= TOL, "alphas_cumprod %s: %g", cfg_text, w);
        kiln_sched_free(s);
        free(cfg_text);
    }
    cJSON_Delete(t);
    printf("%d cases; max relative difference: sigmas %.2g, latents %.2g, alphas_cumprod %.2g\n", total, worst_sigma,
           worst_x, worst_ac);
}

/* parse must fail with status st and a message naming `word` */
static void refused(const char *json, kiln_sd_sampler_kind kind, kiln_status st, const char *word) {
    kiln_sched_config cfg;
    kiln_status got = kiln_sched_config_parse(json, kind, &cfg);
    CHECK_MSG(got == st && strstr(kiln_last_error(), word), "%s: got %s '%s', want %s naming %s", json,
              kiln_status_name(got), kiln_last_error(), kiln_status_name(st), word);
}

static bool cfg_eq(const kiln_sched_config *a, const kiln_sched_config *b) {
    return a->num_train_timesteps == b->num_train_timesteps && a->beta_start == b->beta_start &&
           a->beta_end == b->beta_end && a->beta_schedule == b->beta_schedule &&
           a->prediction_type == b->prediction_type && a->steps_offset == b->steps_offset &&
           a->timestep_spacing == b->timestep_spacing && a->set_alpha_to_one == b->set_alpha_to_one &&
           a->clip_sample == b->clip_sample && a->clip_sample_range == b->clip_sample_range &&
           a->rescale_betas_zero_snr == b->rescale_betas_zero_snr &&
           a->original_inference_steps == b->original_inference_steps && a->timestep_scaling == b->timestep_scaling;
}

static void configs(void) {
    kiln_sched_config c;
    /* Stable Diffusion 1.5's file (PNDMScheduler): absent keys are the target class's defaults */
    const char *sd15 = "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", \"beta_end\": 0.012,"
                       " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000,"
                       " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1,"
                       " \"trained_betas\": null, \"clip_sample\": false}";
    CHECK_OK(kiln_sched_config_parse(sd15, KILN_SD_SAMPLER_EULER, &c));
    CHECK(c.timestep_spacing == KILN_SPACING_LINSPACE && c.steps_offset == 1 && c.beta_start == 0.00085 &&
          c.beta_schedule == KILN_BETA_SCALED_LINEAR);
    CHECK_OK(kiln_sched_config_parse(sd15, KILN_SD_SAMPLER_DDIM, &c));
    CHECK(c.timestep_spacing == KILN_SPACING_LEADING && !c.set_alpha_to_one && !c.clip_sample);
    kiln_sched_config sd;
    kiln_sched_config_sd(KILN_SD_SAMPLER_DDIM, &sd);
    CHECK(cfg_eq(&sd, &c));
    /* SDXL's EulerDiscreteScheduler file */
    const char *sdxl = "{\"_class_name\": \"EulerDiscreteScheduler\", \"_diffusers_version\": \"0.19.0.dev0\","
                       " \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085,"
                       " \"clip_sample\": false, \"interpolation_type\": \"linear\", \"num_train_timesteps\": 1000,"
                       " \"prediction_type\": \"epsilon\", \"sample_max_value\": 1.0, \"set_alpha_to_one\": false,"
                       " \"skip_prk_steps\": true, \"steps_offset\": 1, \"timestep_spacing\": \"leading\","
                       " \"trained_betas\": null, \"use_karras_sigmas\": false}";
    CHECK_OK(kiln_sched_config_parse(sdxl, KILN_SD_SAMPLER_EULER_A, &c));
    CHECK(c.timestep_spacing == KILN_SPACING_LEADING && c.prediction_type == KILN_PRED_EPSILON);
    /* a DPM++ file as Python writes it */
    const char *dpm = "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": \"dpmsolver++\","
                      " \"lambda_min_clipped\": -Infinity, \"solver_order\": 2, \"use_karras_sigmas\": true,"
                      " \"variance_type\": null, \"thresholding\": false, \"final_sigmas_type\": \"zero\","
                      " \"prediction_type\": \"v_prediction\", \"timestep_spacing\": \"trailing\", \"note\": \"NaN Infinity\"}";
    CHECK_OK(kiln_sched_config_parse(dpm, KILN_SD_SAMPLER_DPMPP_2M, &c));
    CHECK(c.prediction_type == KILN_PRED_V && c.timestep_spacing == KILN_SPACING_TRAILING);
    CHECK_OK(kiln_sched_config_parse("{\"thresholding\": true}", KILN_SD_SAMPLER_EULER, &c)); /* Euler takes no such key */
    kiln_sched_config d;
    kiln_sched_config_default(KILN_SD_SAMPLER_LCM, &d);
    CHECK_OK(kiln_sched_config_parse("{}", KILN_SD_SAMPLER_LCM, &c));
    CHECK(cfg_eq(&c, &d) && c.original_inference_steps == 50 && c.timestep_scaling == 10.0);

    refused("not json", KILN_SD_SAMPLER_EULER, KILN_ERR_FORMAT, "JSON");
    refused("[1, 2]", KILN_SD_SAMPLER_EULER, KILN_ERR_FORMAT, "object");
    refused("{\"beta_schedule\": \"cosine\"}", KILN_SD_SAMPLER_EULER, KILN_ERR_UNSUPPORTED, "beta_schedule");
    refused("{\"prediction_type\": \"flow_prediction\"}", KILN_SD_SAMPLER_DDIM, KILN_ERR_UNSUPPORTED, "prediction_type");
    refused("{\"timestep_spacing\": \"karras\"}", KILN_SD_SAMPLER_EULER, KILN_ERR_UNSUPPORTED, "timestep_spacing");
    refused("{\"num_train_timesteps\": 0}", KILN_SD_SAMPLER_EULER, KILN_ERR_INVALID_ARG, "num_train_timesteps");
    refused("{\"num_train_timesteps\": \"1000\"}", KILN_SD_SAMPLER_EULER, KILN_ERR_FORMAT, "num_train_timesteps");
    refused("{\"num_train_timesteps\": 1e12}", KILN_SD_SAMPLER_EULER, KILN_ERR_FORMAT, "num_train_timesteps");
    refused("{\"steps_offset\": 1.5}", KILN_SD_SAMPLER_DDIM, KILN_ERR_FORMAT, "steps_offset");
    refused("{\"steps_offset\": -1}", KILN_SD_SAMPLER_DDIM, KILN_ERR_INVALID_ARG, "steps_offset");
    refused("{\"beta_start\": -0.1}", KILN_SD_SAMPLER_DDIM, KILN_ERR_INVALID_ARG, "beta_start");
    refused("{\"beta_end\": 1.5}", KILN_SD_SAMPLER_DDIM, KILN_ERR_INVALID_ARG, "beta_end");
    refused("{\"beta_end\": Infinity}", KILN_SD_SAMPLER_DDIM, KILN_ERR_INVALID_ARG, "beta_end");
    refused("{\"clip_sample\": 1}", KILN_SD_SAMPLER_DDIM, KILN_ERR_FORMAT, "clip_sample");
    refused("{\"thresholding\": true}", KILN_SD_SAMPLER_DDIM, KILN_ERR_UNSUPPORTED, "thresholding");
    refused("{\"trained_betas\": [0.1, 0.2]}", KILN_SD_SAMPLER_EULER, KILN_ERR_UNSUPPORTED, "trained_betas");
    refused("{\"lambda_min_clipped\": -5.1}", KILN_SD_SAMPLER_DPMPP_2M, KILN_ERR_UNSUPPORTED, "lambda_min_clipped");
    refused("{\"interpolation_type\": \"log_linear\"}", KILN_SD_SAMPLER_EULER, KILN_ERR_UNSUPPORTED, "interpolation_type");
    refused("{\"final_sigmas_type\": \"sigma_min\"}", KILN_SD_SAMPLER_DPMPP_2M_KARRAS, KILN_ERR_UNSUPPORTED,
            "final_sigmas_type");
    refused("{\"use_exponential_sigmas\": true}", KILN_SD_SAMPLER_EULER, KILN_ERR_UNSUPPORTED, "use_exponential_sigmas");
    refused("{\"original_inference_steps\": 2000}", KILN_SD_SAMPLER_LCM, KILN_ERR_INVALID_ARG, "original_inference_steps");
    refused("{\"timestep_scaling\": 0}", KILN_SD_SAMPLER_LCM, KILN_ERR_INVALID_ARG, "timestep_scaling");
    refused("{\"prediction_type\": \"sample\"}", KILN_SD_SAMPLER_EULER_A, KILN_ERR_UNSUPPORTED, "euler_a");
    CHECK(kiln_sched_config_parse(NULL, KILN_SD_SAMPLER_DDIM, &c) == KILN_ERR_INVALID_ARG);

    kiln_sd_sampler_kind kind;
    CHECK(kiln_sd_sampler_from_name("Euler", &kind) == KILN_ERR_INVALID_ARG && strstr(kiln_last_error(), "euler_a"));
    CHECK(kiln_sd_sampler_from_name(NULL, &kind) == KILN_ERR_INVALID_ARG);
}

static void create_is_refused(kiln_sd_sampler_kind kind, const kiln_sched_config *c, int steps, const char *word) {
    kiln_sched *s = (kiln_sched *)1;
    kiln_status st = kiln_sched_create(kind, c, steps, &s);
    CHECK_MSG(st == KILN_ERR_INVALID_ARG && s == NULL && strstr(kiln_last_error(), word), "%s %d steps: %s '%s'",
              kiln_sd_sampler_name(kind), steps, kiln_status_name(st), kiln_last_error());
}

static void misuse(void) {
    kiln_sched_config c;
    kiln_sched_config_sd(KILN_SD_SAMPLER_EULER, &c);
    create_is_refused(KILN_SD_SAMPLER_EULER, &c, 0, "steps");
    create_is_refused(KILN_SD_SAMPLER_EULER, &c, 151, "steps");
    create_is_refused(KILN_SD_SAMPLER_EULER, &c, -3, "steps");
    c.timestep_spacing = KILN_SPACING_TRAILING;
    create_is_refused(KILN_SD_SAMPLER_EULER, &c, 61, "trailing"); /* numpy's arange gives diffusers 62 timesteps */
    kiln_sched_config_sd(KILN_SD_SAMPLER_LCM, &c);
    create_is_refused(KILN_SD_SAMPLER_LCM, &c, 51, "original_inference_steps");
    kiln_sched_config_sd(KILN_SD_SAMPLER_DDIM, &c);
    c.steps_offset = 990;
    create_is_refused(KILN_SD_SAMPLER_DDIM, &c, 2, "timestep");
    c.num_train_timesteps = 100;
    c.steps_offset = 0;
    create_is_refused(KILN_SD_SAMPLER_DDIM, &c, 120, "steps");

    float x[4] = {1, -2, 3, 0.5f}, m[4] = {0.1f, 0.2f, -0.3f, 0.4f}, out[4];
    kiln_sched *s = NULL;
    kiln_sched_config_sd(KILN_SD_SAMPLER_EULER_A, &c);
    CHECK_OK(kiln_sched_create(KILN_SD_SAMPLER_EULER_A, &c, 4, &s));
    if (s) {
        int n;
        const float *sig = kiln_sched_sigmas(s, &n);
        kiln_sched_scale_input(s, 1, x, out, 4);
        CHECK(out[1] == x[1] / sqrtf(sig[1] * sig[1] + 1.0f));
        for (int i = 0; i < 4; i++) CHECK(kiln_sched_needs_noise(s, i));
        CHECK(kiln_sched_step(s, 0, m, x, NULL, 4) == KILN_ERR_INVALID_ARG && strstr(kiln_last_error(), "noise"));
        CHECK(kiln_sched_step(s, 4, m, x, m, 4) == KILN_ERR_INVALID_ARG);
        kiln_sched_free(s);
    }
    kiln_sched_config_sd(KILN_SD_SAMPLER_LCM, &c);
    CHECK_OK(kiln_sched_create(KILN_SD_SAMPLER_LCM, &c, 4, &s));
    if (s) {
        CHECK(kiln_sched_needs_noise(s, 0) && kiln_sched_needs_noise(s, 2) && !kiln_sched_needs_noise(s, 3));
        kiln_sched_scale_input(s, 0, x, out, 4);
        CHECK(!memcmp(out, x, sizeof x));
        kiln_sched_free(s);
    }
    kiln_sched_config_sd(KILN_SD_SAMPLER_DPMPP_2M, &c);
    CHECK_OK(kiln_sched_create(KILN_SD_SAMPLER_DPMPP_2M, &c, 10, &s));
    if (s) {
        CHECK(!kiln_sched_needs_noise(s, 0) && kiln_sched_init_noise_sigma(s) == 1.0f);
        CHECK_OK(kiln_sched_step(s, 3, m, x, NULL, 4)); /* img2img may start later */
        CHECK(kiln_sched_step(s, 5, m, x, NULL, 4) == KILN_ERR_INVALID_ARG && strstr(kiln_last_error(), "order"));
        CHECK(kiln_sched_step(s, 4, m, x, NULL, 3) == KILN_ERR_INVALID_ARG);
        CHECK_OK(kiln_sched_step(s, 4, m, x, NULL, 4));
        kiln_sched_free(s);
    }
    kiln_sched_free(NULL);
}

int main(void) {
    golden();
    configs();
    misuse();
    TEST_MAIN_END();
}
