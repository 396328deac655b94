/*
 * presets.h — the config file: model settings and aliases, and named programs.
 *
 * One JSON file (`--config FILE`, default DATA/kiln.json if it exists) is the single
 * source of truth that `kiln run`, the C API and the HTTP server all read. Format
 * (every key optional; unknown keys are refused when the file is loaded, by name):
 *
 *   {
 *     "models": {
 *       "tiny":        {"file": "stories260K"},            // an alias of a model name
 *       "stories260K": {"keep_alive": 600, "n_ctx": 512}   // settings of that model
 *     },
 *     "programs": {
 *       "story": {
 *         "kind": "text",                   // text | embedding | image
 *         "model": "stories260K",           // a model name or alias
 *         "description": "a bedtime story",
 *         "template": "Once upon a time, {prompt}",
 *         "system": "You tell stories.",    // renders the text as a chat
 *         "max_tokens": 200, "temperature": 0.8, "top_p": 0.95, "stop": ["\n\n"]
 *       },
 *       "poster": {
 *         "kind": "image", "model": "sd15",  // a Stable Diffusion model
 *         "template": "{prompt}, highly detailed",
 *         "steps": 25, "guidance": 7, "size": "512x768", "sampler": "euler_a",
 *         "negative_prompt": "blurry"
 *       }
 *     }
 *   }
 *
 * A model entry: "file" (makes the name an alias of that model in the models
 * directory), "keep_alive" (seconds an idle loaded model stays loaded; 0 unloads at once, -1
 * never), "n_ctx" (context length to load with). A program: "kind", "model",
 * "description" and any job parameter of its kind (see params.h), which become the
 * defaults a request may override; the engine checks at start-up that the model is of
 * the program's kind.
 */
#ifndef KILN_ENGINE_PRESETS_H
#define KILN_ENGINE_PRESETS_H

#include <stddef.h>

#include "engine/params.h"

typedef struct {
    char *name;
    kiln_job_kind kind;
    char *model;
    char *description;
    kiln_params params; /* the program's defaults (set bits mark the keys it gave) */
} kiln_program;

typedef struct {
    char *name;
    char *file;      /* alias target, or NULL */
    double keep_alive; /* seconds; valid if has_keep_alive */
    bool has_keep_alive;
    int n_ctx;       /* 0: the model's own */
} kiln_model_conf;

typedef struct {
    kiln_program *programs;
    size_t n_programs;
    kiln_model_conf *models;
    size_t n_models;
} kiln_presets;

/* Loads a config file. Errors name the file and the offending key. */
kiln_status kiln_presets_load(const char *path, kiln_presets **out);
/* Parses config text (path is used in messages only). */
kiln_status kiln_presets_parse(const char *text, size_t len, const char *path, kiln_presets **out);
/* An empty config (no models, no programs). */
kiln_status kiln_presets_empty(kiln_presets **out);
const kiln_program *kiln_presets_program(const kiln_presets *c, const char *name);
const kiln_model_conf *kiln_presets_model(const kiln_presets *c, const char *name);
void kiln_presets_free(kiln_presets *c);

#endif
