/*
 * presets.c — loading and validating the config file (format in presets.h).
 */
#include "engine/presets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/mapfile.h"

const kiln_program *kiln_presets_program(const kiln_presets *c, const char *name) {
    for (size_t i = 0; c && name && i < c->n_programs; i++)
        if (!strcmp(c->programs[i].name, name)) return &c->programs[i];
    return NULL;
}

const kiln_model_conf *kiln_presets_model(const kiln_presets *c, const char *name) {
    for (size_t i = 0; c && name && i < c->n_models; i++)
        if (!strcmp(c->models[i].name, name)) return &c->models[i];
    return NULL;
}

void kiln_presets_free(kiln_presets *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n_programs; i++) {
        free(c->programs[i].name);
        free(c->programs[i].model);
        free(c->programs[i].description);
        kiln_params_clear(&c->programs[i].params);
    }
    for (size_t i = 0; i < c->n_models; i++) {
        free(c->models[i].name);
        free(c->models[i].file);
    }
    free(c->programs);
    free(c->models);
    free(c);
}

kiln_status kiln_presets_empty(kiln_presets **out) {
    *out = calloc(1, sizeof **out);
    return *out ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
}

static kiln_status dup_string(const cJSON *v, const char *what, const char *key, char **dst) {
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' must be a non-empty string", what, key);
    if (!(*dst = kiln_strdup(v->valuestring))) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    return KILN_OK;
}

static kiln_status parse_model(kiln_model_conf *m, const cJSON *obj) {
    char what[300];
    snprintf(what, sizeof what, "models.%s", m->name);
    if (!cJSON_IsObject(obj)) return kiln_fail(KILN_ERR_INVALID_ARG, "%s must be an object", what);
    const cJSON *v;
    cJSON_ArrayForEach(v, obj) {
        kiln_status st = KILN_OK;
        if (!strcmp(v->string, "file")) {
            st = dup_string(v, what, "file", &m->file);
        } else if (!strcmp(v->string, "keep_alive")) {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < -1)
                return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'keep_alive' must be seconds (>= 0, or -1 for never)", what);
            m->keep_alive = v->valuedouble;
            m->has_keep_alive = true;
        } else if (!strcmp(v->string, "n_ctx")) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > (1 << 24) ||
                v->valuedouble != floor(v->valuedouble))
                return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'n_ctx' must be an integer between 1 and 16777216", what);
            m->n_ctx = (int)v->valuedouble;
        } else {
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: unknown key '%s'", what, v->string);
        }
        if (st) return st;
    }
    return KILN_OK;
}

static const char *const g_program_keys[] = {"kind", "model", "description", NULL};

static kiln_status parse_program(kiln_program *p, const cJSON *obj) {
    char what[300];
    snprintf(what, sizeof what, "programs.%s", p->name);
    if (!cJSON_IsObject(obj)) return kiln_fail(KILN_ERR_INVALID_ARG, "%s must be an object", what);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(obj, "kind");
    p->kind = KILN_JOB_TEXT;
    if (kind) {
        if (!cJSON_IsString(kind)) return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'kind' must be a string", what);
        kiln_status st = kiln_job_kind_parse(kind->valuestring, &p->kind);
        if (st) return kiln_fail_prefix(st, "%s", what);
        if (p->kind == KILN_JOB_TRAIN)
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: training runs are not programs", what);
    }
    kiln_status st = dup_string(cJSON_GetObjectItemCaseSensitive(obj, "model"), what, "model", &p->model);
    if (st) return st;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(obj, "description");
    if (d && (st = dup_string(d, what, "description", &p->description))) return st;
    kiln_params_default(&p->params, p->kind);
    p->params.set = 0;
    if ((st = kiln_params_parse(&p->params, p->kind, obj, what, NULL, g_program_keys))) return st;
    if (p->params.set & (KP_PROMPT | KP_MESSAGES | KP_INPUT))
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: a program holds a 'template', not the prompt itself", what);
    return KILN_OK;
}

kiln_status kiln_presets_parse(const char *text, size_t len, const char *path, kiln_presets **out) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        size_t off = end ? (size_t)(end - text) : 0;
        return kiln_fail(KILN_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", path, off);
    }
    kiln_presets *c = calloc(1, sizeof *c);
    kiln_status st = KILN_OK;
    if (!c) {
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        st = kiln_fail(KILN_ERR_INVALID_ARG, "the top level must be an object");
        goto done;
    }
    const cJSON *sec;
    cJSON_ArrayForEach(sec, root) {
        bool models = !strcmp(sec->string, "models"), programs = !strcmp(sec->string, "programs");
        if (!models && !programs) {
            st = kiln_fail(KILN_ERR_INVALID_ARG, "unknown key '%s' (the file holds 'models' and 'programs')",
                           sec->string);
            goto done;
        }
        if (!cJSON_IsObject(sec)) {
            st = kiln_fail(KILN_ERR_INVALID_ARG, "'%s' must be an object", sec->string);
            goto done;
        }
        size_t n = (size_t)cJSON_GetArraySize(sec), i = 0;
        if (models && !(c->models = calloc(n ? n : 1, sizeof *c->models))) goto nomem;
        if (programs && !(c->programs = calloc(n ? n : 1, sizeof *c->programs))) goto nomem;
        const cJSON *e;
        cJSON_ArrayForEach(e, sec) {
            if (!e->string[0]) {
                st = kiln_fail(KILN_ERR_INVALID_ARG, "%s: an entry has an empty name", sec->string);
                goto done;
            }
            if (models) {
                kiln_model_conf *m = &c->models[i];
                if (!(m->name = kiln_strdup(e->string))) goto nomem;
                c->n_models = ++i;
                if ((st = parse_model(m, e))) goto done;
            } else {
                kiln_program *p = &c->programs[i];
                if (!(p->name = kiln_strdup(e->string))) goto nomem;
                c->n_programs = ++i;
                if ((st = parse_program(p, e))) goto done;
            }
        }
    }
    goto done;
nomem:
    st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
done:
    cJSON_Delete(root);
    if (st) {
        kiln_presets_free(c);
        return kiln_fail_prefix(st, "%s", path);
    }
    *out = c;
    return KILN_OK;
}

kiln_status kiln_presets_load(const char *path, kiln_presets **out) {
    char *text = NULL;
    size_t len = 0;
    kiln_status st = kiln_read_file(path, 1 << 24, &text, &len);
    if (st) return st;
    st = kiln_presets_parse(text, len, path, out);
    free(text);
    return st;
}
