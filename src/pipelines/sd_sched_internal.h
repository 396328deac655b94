/*
 * sd_sched_internal.h — the schedule record shared by sd_sched_tables.c (which builds
 * it) and sd_sched_step.c (which steps with it). Not for other callers.
 */
#ifndef KILN_PIPELINES_SD_SCHED_INTERNAL_H
#define KILN_PIPELINES_SD_SCHED_INTERNAL_H

#include "pipelines/sd_sched.h"

struct kiln_sched {
    kiln_sd_sampler_kind kind;
    kiln_sched_config cfg;
    int steps;
    double *timesteps;    /* steps values */
    float *sigmas;        /* steps + 1 (euler, euler_a, dpmpp_2m*), else NULL */
    float *ac;            /* alphas_cumprod, cfg.num_train_timesteps values (float32 as torch holds it) */
    float final_ac;       /* ddim, lcm: alpha_cumprod after the last step */
    float init_sigma;
    /* dpmpp_2m: the previous x0 prediction (float32, as diffusers keeps model_outputs) */
    float *prev_x0;
    int64_t prev_n;
    int lower_order_nums; /* 0, 1 or 2, as diffusers counts */
    int next;             /* index the next step must have; -1 before the first */
};

/* Checks a config's values for a sampler (KILN_ERR_INVALID_ARG / KILN_ERR_UNSUPPORTED
 * naming the field); kiln_sched_config_parse and kiln_sched_create both call it. */
kiln_status kiln_sched_check_config(kiln_sd_sampler_kind kind, const kiln_sched_config *c);

#endif
