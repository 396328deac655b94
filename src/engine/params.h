/*
 * params.h — the parameters of a job, one definition for every way in.
 *
 * A job's parameters arrive as JSON from HTTP, from a preset (program) in the config
 * file, or from CLI options turned into JSON. All of them go through the same strict
 * parser here: unknown keys and values of the wrong type or out of range are refused
 * with a message naming the key, never ignored. Parsed parameters remember which keys
 * were set, so a request can override a preset's defaults key by key.
 */
#ifndef KILN_ENGINE_PARAMS_H
#define KILN_ENGINE_PARAMS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"

/* The kinds of work the engine knows. Text, embedding and image jobs run; train is
 * designed in (its kind name parses) and refused with KILN_ERR_UNSUPPORTED at submit
 * until its pipeline exists. */
typedef enum { KILN_JOB_TEXT, KILN_JOB_EMBEDDING, KILN_JOB_IMAGE, KILN_JOB_TRAIN, KILN_JOB_KIND_COUNT } kiln_job_kind;

const char *kiln_job_kind_name(kiln_job_kind k);
/* KILN_ERR_INVALID_ARG for an unknown name. */
kiln_status kiln_job_kind_parse(const char *name, kiln_job_kind *out);

#define KILN_MAX_STOP 16

/* Bit i of kiln_params.set says field i was given explicitly. */
enum {
    KP_PROMPT = 1u << 0, KP_SYSTEM = 1u << 1, KP_MAX_TOKENS = 1u << 2, KP_TEMPERATURE = 1u << 3,
    KP_TOP_P = 1u << 4, KP_TOP_K = 1u << 5, KP_MIN_P = 1u << 6, KP_REPEAT_PENALTY = 1u << 7,
    KP_FREQ_PENALTY = 1u << 8, KP_PRES_PENALTY = 1u << 9, KP_SEED = 1u << 10, KP_STOP = 1u << 11,
    KP_TEMPLATE = 1u << 12, KP_STEPS = 1u << 13, KP_GUIDANCE = 1u << 14, KP_WIDTH = 1u << 15,
    KP_HEIGHT = 1u << 16, KP_SCHEDULER = 1u << 17, KP_NEGATIVE = 1u << 18, KP_INPUT = 1u << 19,
    KP_MESSAGES = 1u << 20, KP_NORMALIZE = 1u << 21, KP_RNG = 1u << 22, KP_CLIP_SKIP = 1u << 23,
    KP_N = 1u << 24, KP_PREVIEW = 1u << 25,
};

/* Largest image batch (n) and image side, and most denoising steps, a job may ask. */
#define KILN_IMAGE_MAX_N 16
#define KILN_IMAGE_MAX_SIDE 2048
#define KILN_IMAGE_MAX_STEPS 150

typedef struct {
    unsigned set;
    /* text */
    char *prompt;        /* the user's text */
    char *system;        /* a system prompt: the text is then rendered as a chat */
    cJSON *messages;     /* a chat (array of {role, content}) instead of prompt */
    char *template_;     /* preset prompt template containing "{prompt}" */
    int max_tokens;
    float temperature, top_p, min_p, repeat_penalty, frequency_penalty, presence_penalty;
    int top_k;
    uint64_t seed;
    char *stop[KILN_MAX_STOP];
    int n_stop;
    /* embedding */
    cJSON *input;        /* string or array of strings */
    bool normalize;
    /* image: "cfg_scale" (alias "guidance"), "sampler" (alias "scheduler"), "size"
     * ("WxH", sets width and height), "n" (batch; image i gets seed + i) */
    int steps, width, height;   /* width/height 0: the model's native size */
    float guidance;
    char *scheduler, *negative_prompt;
    char *rng;                  /* "torch" | "fast"; NULL: torch */
    int clip_skip;              /* 0: the model's default */
    int n;                      /* images, 1..KILN_IMAGE_MAX_N */
    int preview_every;          /* steps between preview events; 0: none */
} kiln_params;

/* Limits the server enforces on requests (the parser checks them). */
typedef struct {
    int max_tokens;      /* largest max_tokens accepted */
    size_t max_prompt;   /* bytes of prompt text */
} kiln_param_limits;

/* Fills p with the defaults of a kind (nothing marked set). */
void kiln_params_default(kiln_params *p, kiln_job_kind kind);
/* Parses a JSON object of parameters for `kind` into p (on top of what p holds).
 * `where` names the object in messages ("params", "program 'story'"). Keys in
 * `extra_ok` (NULL-terminated, may be NULL) are skipped rather than refused: callers
 * that read them themselves list them. */
kiln_status kiln_params_parse(kiln_params *p, kiln_job_kind kind, const cJSON *obj, const char *where,
                              const kiln_param_limits *lim, const char *const *extra_ok);
/* Copies every field set in src over dst. */
kiln_status kiln_params_overlay(kiln_params *dst, const kiln_params *src);
/* The parameters as a JSON object (every field of the kind, set or default). */
cJSON *kiln_params_to_json(const kiln_params *p, kiln_job_kind kind);
void kiln_params_clear(kiln_params *p);

#endif
