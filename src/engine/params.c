/*
 * params.c — strict parsing of job parameters (see params.h).
 *
 * One table lists every key: its kind(s), its type, its range and where it lands in
 * kiln_params. Parsing walks the JSON object and looks each key up, so an unknown key
 * or a value of the wrong type is reported by name.
 */
#include "engine/params.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "pipelines/sd_sched.h"

static const char *const g_kind_names[KILN_JOB_KIND_COUNT] = {"text", "embedding", "image", "train"};

const char *kiln_job_kind_name(kiln_job_kind k) {
    return (unsigned)k < KILN_JOB_KIND_COUNT ? g_kind_names[k] : "?";
}

kiln_status kiln_job_kind_parse(const char *name, kiln_job_kind *out) {
    for (int i = 0; i < KILN_JOB_KIND_COUNT; i++) {
        if (name && !strcmp(name, g_kind_names[i])) {
            *out = (kiln_job_kind)i;
            return KILN_OK;
        }
    }
    return kiln_fail(KILN_ERR_INVALID_ARG, "unknown job kind '%s' (text, embedding, image or train)",
                     name ? name : "");
}

typedef enum { T_STR, T_INT, T_FLOAT, T_U64, T_STOP, T_BOOL, T_MESSAGES, T_INPUT, T_SIZE } ptype;

#define K_TEXT (1u << KILN_JOB_TEXT)
#define K_EMB (1u << KILN_JOB_EMBEDDING)
#define K_IMG (1u << KILN_JOB_IMAGE)

/* ALIAS: another name for the parameter(s) of the entries with the same bit(s)
 * ("guidance" for "cfg_scale", "size" for width and height): parsed, never written
 * back, not copied by an overlay. IF_SET: written to JSON only when given (its default
 * 0 means "the model's own"). */
enum { ALIAS = 1u << 0, IF_SET = 1u << 1 };

typedef struct {
    const char *key;
    unsigned kinds, bit;
    ptype type;
    size_t off;
    double lo, hi;
    unsigned flags;
} pspec;

#define F(f) offsetof(kiln_params, f)
static const pspec g_specs[] = {
    {"prompt", K_TEXT | K_IMG, KP_PROMPT, T_STR, F(prompt), 0, 0, 0},
    {"system", K_TEXT, KP_SYSTEM, T_STR, F(system), 0, 0, 0},
    {"messages", K_TEXT, KP_MESSAGES, T_MESSAGES, F(messages), 0, 0, 0},
    {"template", K_TEXT | K_IMG, KP_TEMPLATE, T_STR, F(template_), 0, 0, 0},
    {"max_tokens", K_TEXT, KP_MAX_TOKENS, T_INT, F(max_tokens), 1, 1e9, 0},
    {"temperature", K_TEXT, KP_TEMPERATURE, T_FLOAT, F(temperature), 0, 100, 0},
    {"top_p", K_TEXT, KP_TOP_P, T_FLOAT, F(top_p), 0, 1, 0},
    {"top_k", K_TEXT, KP_TOP_K, T_INT, F(top_k), 0, 1e9, 0},
    {"min_p", K_TEXT, KP_MIN_P, T_FLOAT, F(min_p), 0, 1, 0},
    {"repeat_penalty", K_TEXT, KP_REPEAT_PENALTY, T_FLOAT, F(repeat_penalty), 0.01, 100, 0},
    {"frequency_penalty", K_TEXT, KP_FREQ_PENALTY, T_FLOAT, F(frequency_penalty), -2, 2, 0},
    {"presence_penalty", K_TEXT, KP_PRES_PENALTY, T_FLOAT, F(presence_penalty), -2, 2, 0},
    {"seed", K_TEXT | K_IMG, KP_SEED, T_U64, F(seed), 0, 0, 0},
    {"stop", K_TEXT, KP_STOP, T_STOP, 0, 0, 0, 0},
    {"input", K_EMB, KP_INPUT, T_INPUT, F(input), 0, 0, 0},
    {"normalize", K_EMB, KP_NORMALIZE, T_BOOL, F(normalize), 0, 0, 0},
    {"negative_prompt", K_IMG, KP_NEGATIVE, T_STR, F(negative_prompt), 0, 0, 0},
    {"width", K_IMG, KP_WIDTH, T_INT, F(width), 64, KILN_IMAGE_MAX_SIDE, IF_SET},
    {"height", K_IMG, KP_HEIGHT, T_INT, F(height), 64, KILN_IMAGE_MAX_SIDE, IF_SET},
    {"size", K_IMG, KP_WIDTH | KP_HEIGHT, T_SIZE, 0, 0, 0, ALIAS},
    {"steps", K_IMG, KP_STEPS, T_INT, F(steps), 1, KILN_IMAGE_MAX_STEPS, 0},
    {"cfg_scale", K_IMG, KP_GUIDANCE, T_FLOAT, F(guidance), 0, 100, 0},
    {"guidance", K_IMG, KP_GUIDANCE, T_FLOAT, F(guidance), 0, 100, ALIAS},
    {"sampler", K_IMG, KP_SCHEDULER, T_STR, F(scheduler), 0, 0, 0},
    {"scheduler", K_IMG, KP_SCHEDULER, T_STR, F(scheduler), 0, 0, ALIAS},
    {"rng", K_IMG, KP_RNG, T_STR, F(rng), 0, 0, 0},
    {"clip_skip", K_IMG, KP_CLIP_SKIP, T_INT, F(clip_skip), 1, 48, IF_SET},
    {"n", K_IMG, KP_N, T_INT, F(n), 1, KILN_IMAGE_MAX_N, 0},
    {"preview_every", K_IMG, KP_PREVIEW, T_INT, F(preview_every), 0, KILN_IMAGE_MAX_STEPS, 0},
};
#undef F
#define N_SPECS (sizeof g_specs / sizeof g_specs[0])

void kiln_params_default(kiln_params *p, kiln_job_kind kind) {
    memset(p, 0, sizeof *p);
    p->max_tokens = 256;
    p->temperature = 0.8f;
    p->top_p = 0.95f;
    p->top_k = 40;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->normalize = true;
    p->steps = 20;
    p->guidance = 7.5f;
    p->n = 1;
    (void)kind;
}

static kiln_status set_str(char **dst, const char *s) {
    char *c = kiln_strdup(s);
    if (!c) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = c;
    return KILN_OK;
}

static void clear_stop(kiln_params *p) {
    for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
    p->n_stop = 0;
}

static kiln_status parse_stop(kiln_params *p, const cJSON *v, const char *where) {
    clear_stop(p);
    if (cJSON_IsNull(v)) return KILN_OK;
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0]) return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'stop' must not be empty", where);
        if (!(p->stop[0] = kiln_strdup(v->valuestring))) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        p->n_stop = 1;
        return KILN_OK;
    }
    if (!cJSON_IsArray(v))
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'stop' must be a string or an array of strings", where);
    if (cJSON_GetArraySize(v) > KILN_MAX_STOP)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'stop' has %d strings; at most %d are allowed", where,
                         cJSON_GetArraySize(v), KILN_MAX_STOP);
    const cJSON *s;
    cJSON_ArrayForEach(s, v) {
        if (!cJSON_IsString(s) || !s->valuestring[0])
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: every 'stop' entry must be a non-empty string", where);
        if (!(p->stop[p->n_stop] = kiln_strdup(s->valuestring))) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        p->n_stop++;
    }
    return KILN_OK;
}

static kiln_status check_messages(const cJSON *v, const char *where, const kiln_param_limits *lim) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'messages' must be a non-empty array", where);
    size_t total = 0;
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, v) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: messages[%d] must be an object with a string 'role'", where, i);
        if (content && !cJSON_IsString(content) && !cJSON_IsNull(content))
            return kiln_fail(KILN_ERR_INVALID_ARG,
                             "%s: messages[%d].content must be a string (content parts are not supported)", where, i);
        if (cJSON_IsString(content)) total += strlen(content->valuestring);
        i++;
    }
    if (lim && lim->max_prompt && total > lim->max_prompt)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: the messages hold %zu bytes of text; the limit is %zu", where,
                         total, lim->max_prompt);
    return KILN_OK;
}

/* As many inputs per request as OpenAI's embeddings endpoint takes. */
#define MAX_INPUTS 2048

static kiln_status check_input(const cJSON *v, const char *where, const kiln_param_limits *lim) {
    const size_t max = lim && lim->max_prompt ? lim->max_prompt : 0;
    if (cJSON_IsString(v)) {
        if (max && strlen(v->valuestring) > max)
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'input' is longer than %zu bytes", where, max);
        return KILN_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'input' must be a string or a non-empty array of strings", where);
    if (cJSON_GetArraySize(v) > MAX_INPUTS)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'input' has %d entries; at most %d", where, cJSON_GetArraySize(v),
                         MAX_INPUTS);
    const cJSON *s;
    int i = 0;
    cJSON_ArrayForEach(s, v) {
        if (!cJSON_IsString(s))
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: every 'input' entry must be a string (token arrays are not "
                             "supported)", where);
        if (max && strlen(s->valuestring) > max)
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'input' entry %d is longer than %zu bytes", where, i, max);
        i++;
    }
    return KILN_OK;
}

/* "WxH" (OpenAI's size) into w and h; false unless both are plain decimal numbers. */
static bool parse_size(const char *s, int *w, int *h) {
    long v[2];
    for (int k = 0; k < 2; k++) {
        if (*s < '0' || *s > '9') return false;
        v[k] = 0;
        for (int d = 0; *s >= '0' && *s <= '9'; s++, d++) {
            if (d >= 6) return false;
            v[k] = v[k] * 10 + (*s - '0');
        }
        if (k == 0 && *s++ != 'x') return false;
    }
    if (*s) return false;
    *w = (int)v[0];
    *h = (int)v[1];
    return true;
}

static kiln_status check_side(const char *where, const char *what, int v) {
    if (v < 64 || v > KILN_IMAGE_MAX_SIDE || v % 8)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: %s is %d; it must be a multiple of 8 from 64 to %d", where, what,
                         v, KILN_IMAGE_MAX_SIDE);
    return KILN_OK;
}

/* A seed: a JSON integer (exact up to 2^53) or a string of decimal digits (any 64-bit
 * value, as AUTOMATIC1111's seeds and clients that keep 64-bit seeds send them). */
static kiln_status parse_seed(const cJSON *v, const char *where, const char *key, uint64_t *out) {
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0 &&
        v->valuedouble == floor(v->valuedouble)) {
        *out = (uint64_t)v->valuedouble;
        return KILN_OK;
    }
    if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) <= 20) {
        uint64_t x = 0;
        const char *c = v->valuestring;
        for (; *c >= '0' && *c <= '9'; c++) {
            const uint64_t d = (uint64_t)(*c - '0');
            if (x > (UINT64_MAX - d) / 10) break;
            x = x * 10 + d;
        }
        if (!*c) {
            *out = x;
            return KILN_OK;
        }
    }
    return kiln_fail(KILN_ERR_INVALID_ARG,
                     "%s: '%s' must be an integer between 0 and 2^53, or a string of decimal digits below 2^64",
                     where, key);
}

static kiln_status parse_one(kiln_params *p, const pspec *s, const cJSON *v, const char *where,
                             const kiln_param_limits *lim) {
    char *base = (char *)p;
    switch (s->type) {
    case T_STR:
        if (!cJSON_IsString(v)) return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' must be a string", where, s->key);
        if ((s->bit == KP_PROMPT || s->bit == KP_NEGATIVE) && lim && lim->max_prompt &&
            strlen(v->valuestring) > lim->max_prompt)
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: the %s has %zu bytes; the limit is %zu", where,
                             s->bit == KP_PROMPT ? "prompt" : "negative prompt", strlen(v->valuestring),
                             lim->max_prompt);
        if (s->bit == KP_TEMPLATE && !strstr(v->valuestring, "{prompt}"))
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'template' must contain {prompt}", where);
        if (s->bit == KP_SCHEDULER) {
            kiln_sd_sampler_kind k;
            kiln_status st = kiln_sd_sampler_from_name(v->valuestring, &k);
            if (st) return kiln_fail_prefix(st, "%s: '%s'", where, s->key);
        }
        if (s->bit == KP_RNG && strcmp(v->valuestring, "torch") && strcmp(v->valuestring, "fast"))
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'rng' must be \"torch\" or \"fast\"", where);
        return set_str((char **)(base + s->off), v->valuestring);
    case T_INT: {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' must be an integer", where, s->key);
        double hi = s->hi;
        if (s->bit == KP_MAX_TOKENS && lim && lim->max_tokens) hi = lim->max_tokens;
        if (v->valuedouble < s->lo || v->valuedouble > hi)
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' is %.0f; it must be between %.0f and %.0f", where, s->key,
                             v->valuedouble, s->lo, hi);
        if ((s->bit == KP_WIDTH || s->bit == KP_HEIGHT) && ((int)v->valuedouble) % 8)
            return check_side(where, s->bit == KP_WIDTH ? "'width'" : "'height'", (int)v->valuedouble);
        *(int *)(base + s->off) = (int)v->valuedouble;
        return KILN_OK;
    }
    case T_FLOAT:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' must be a number", where, s->key);
        if (v->valuedouble < s->lo || v->valuedouble > s->hi)
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' is %g; it must be between %g and %g", where, s->key,
                             v->valuedouble, s->lo, s->hi);
        *(float *)(base + s->off) = (float)v->valuedouble;
        return KILN_OK;
    case T_U64:
        return parse_seed(v, where, s->key, (uint64_t *)(base + s->off));
    case T_SIZE: {
        int w = 0, h = 0;
        if (!cJSON_IsString(v) || !parse_size(v->valuestring, &w, &h))
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: 'size' must be \"WIDTHxHEIGHT\" (\"512x512\")", where);
        kiln_status st = check_side(where, "the width of 'size'", w);
        if (!st) st = check_side(where, "the height of 'size'", h);
        if (st) return st;
        p->width = w;
        p->height = h;
        return KILN_OK;
    }
    case T_BOOL:
        if (!cJSON_IsBool(v)) return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' must be true or false", where, s->key);
        *(bool *)(base + s->off) = cJSON_IsTrue(v);
        return KILN_OK;
    case T_STOP:
        return parse_stop(p, v, where);
    case T_MESSAGES:
    case T_INPUT: {
        kiln_status st = s->type == T_MESSAGES ? check_messages(v, where, lim) : check_input(v, where, lim);
        if (st) return st;
        cJSON *dup = cJSON_Duplicate(v, true);
        if (!dup) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        cJSON **dst = (cJSON **)(base + s->off);
        cJSON_Delete(*dst);
        *dst = dup;
        return KILN_OK;
    }
    }
    return KILN_OK;
}

static bool listed(const char *key, const char *const *extra) {
    for (; extra && *extra; extra++)
        if (!strcmp(*extra, key)) return true;
    return false;
}

kiln_status kiln_params_parse(kiln_params *p, kiln_job_kind kind, const cJSON *obj, const char *where,
                              const kiln_param_limits *lim, const char *const *extra_ok) {
    if (!obj || cJSON_IsNull(obj)) return KILN_OK;
    if (!cJSON_IsObject(obj)) return kiln_fail(KILN_ERR_INVALID_ARG, "%s must be a JSON object", where);
    const cJSON *v;
    /* keys given by this object, so that two names of one parameter ("cfg_scale" and
     * "guidance", "size" and "width") are refused rather than one silently winning */
    unsigned now = 0;
    const char *now_key[32] = {0};
    cJSON_ArrayForEach(v, obj) {
        const char *key = v->string ? v->string : "";
        if (listed(key, extra_ok)) continue;
        const pspec *s = NULL;
        for (size_t i = 0; i < N_SPECS; i++)
            if (!strcmp(g_specs[i].key, key)) s = &g_specs[i];
        if (!s) return kiln_fail(KILN_ERR_INVALID_ARG, "%s: unknown key '%s'", where, key);
        if (!(s->kinds & (1u << kind)))
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' does not apply to %s jobs", where, key,
                             kiln_job_kind_name(kind));
        if (now & s->bit) {
            const char *other = "";
            for (int b = 0; b < 32; b++)
                if ((now & s->bit & (1u << b)) && now_key[b]) other = now_key[b];
            if (!strcmp(other, key))
                return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' is given twice", where, key);
            return kiln_fail(KILN_ERR_INVALID_ARG, "%s: '%s' and '%s' set the same parameter: give one", where,
                             other, key);
        }
        kiln_status st = parse_one(p, s, v, where, lim);
        if (st) return st;
        p->set |= s->bit;
        now |= s->bit;
        for (int b = 0; b < 32; b++)
            if (s->bit & (1u << b)) now_key[b] = key;
    }
    if ((p->set & KP_PROMPT) && (p->set & KP_MESSAGES))
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: give either 'prompt' or 'messages', not both", where);
    return KILN_OK;
}

kiln_status kiln_params_overlay(kiln_params *dst, const kiln_params *src) {
    for (size_t i = 0; i < N_SPECS; i++) {
        const pspec *s = &g_specs[i];
        if (!(src->set & s->bit) || (s->flags & ALIAS)) continue;
        const char *from = (const char *)src;
        char *to = (char *)dst;
        kiln_status st = KILN_OK;
        switch (s->type) {
        case T_STR: st = set_str((char **)(to + s->off), *(char *const *)(from + s->off)); break;
        case T_INT: *(int *)(to + s->off) = *(const int *)(from + s->off); break;
        case T_FLOAT: *(float *)(to + s->off) = *(const float *)(from + s->off); break;
        case T_U64: *(uint64_t *)(to + s->off) = *(const uint64_t *)(from + s->off); break;
        case T_BOOL: *(bool *)(to + s->off) = *(const bool *)(from + s->off); break;
        case T_SIZE: break; /* an alias: width and height are copied as themselves */
        case T_STOP:
            clear_stop(dst);
            for (int j = 0; j < src->n_stop; j++) {
                if (!(dst->stop[j] = kiln_strdup(src->stop[j]))) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
                dst->n_stop = j + 1;
            }
            break;
        case T_MESSAGES:
        case T_INPUT: {
            cJSON *dup = cJSON_Duplicate(*(cJSON *const *)(from + s->off), true);
            if (!dup) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
            cJSON_Delete(*(cJSON **)(to + s->off));
            *(cJSON **)(to + s->off) = dup;
            break;
        }
        }
        if (st) return st;
        dst->set |= s->bit;
    }
    return KILN_OK;
}

cJSON *kiln_params_to_json(const kiln_params *p, kiln_job_kind kind) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    const char *base = (const char *)p;
    for (size_t i = 0; i < N_SPECS; i++) {
        const pspec *s = &g_specs[i];
        if (!(s->kinds & (1u << kind)) || (s->flags & ALIAS) || ((s->flags & IF_SET) && !(p->set & s->bit))) continue;
        cJSON *v = NULL;
        switch (s->type) {
        case T_STR: {
            const char *str = *(char *const *)(base + s->off);
            if (!str) continue;
            v = cJSON_CreateString(str);
            break;
        }
        case T_INT: v = cJSON_CreateNumber(*(const int *)(base + s->off)); break;
        case T_FLOAT: {
            /* floats print as the decimal they were given (0.8, not 0.800000011920929) */
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%.7g", *(const float *)(base + s->off));
            v = cJSON_CreateNumber(strtod(tmp, NULL));
            break;
        }
        case T_U64: {
            if (!(p->set & s->bit)) continue;
            const uint64_t x = *(const uint64_t *)(base + s->off);
            if (x <= (1ull << 53)) {
                v = cJSON_CreateNumber((double)x);
            } else { /* beyond a double's integers: the digits, which parse back the same */
                char d[24];
                snprintf(d, sizeof d, "%llu", (unsigned long long)x);
                v = cJSON_CreateString(d);
            }
            break;
        }
        case T_SIZE: continue;
        case T_BOOL: v = cJSON_CreateBool(*(const bool *)(base + s->off)); break;
        case T_STOP:
            if (!p->n_stop) continue;
            v = cJSON_CreateStringArray((const char *const *)p->stop, p->n_stop);
            break;
        case T_MESSAGES:
        case T_INPUT: {
            const cJSON *src = *(cJSON *const *)(base + s->off);
            if (!src) continue;
            v = cJSON_Duplicate(src, true);
            break;
        }
        }
        if (!v || !cJSON_AddItemToObject(o, s->key, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

void kiln_params_clear(kiln_params *p) {
    free(p->prompt);
    free(p->system);
    free(p->template_);
    free(p->scheduler);
    free(p->negative_prompt);
    free(p->rng);
    cJSON_Delete(p->messages);
    cJSON_Delete(p->input);
    clear_stop(p);
    memset(p, 0, sizeof *p);
}
