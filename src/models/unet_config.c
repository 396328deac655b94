/*
 * unet_config.c — reads diffusers' unet/config.json into a kiln_unet_config, and
 * refuses by name what kiln does not run (yet): every key that changes the network
 * is either understood or must hold its default.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/status.h"
#include "models/bind.h"
#include "unet.h"

/* o[key] as n ints: a number (repeated n times) or a list of exactly n. Absent or
 * null: dflt for every entry (dflt < 0: required). */
static kiln_status int_list(const cJSON *o, const char *key, int n, int dflt, int *out, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (dflt < 0) return kiln_fail(KILN_ERR_FORMAT, "%s: missing '%s'", what, key);
        for (int i = 0; i < n; i++) out[i] = dflt;
        return KILN_OK;
    }
    if (cJSON_IsNumber(v)) {
        for (int i = 0; i < n; i++) out[i] = v->valueint;
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == n) {
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsNumber(e)) return kiln_fail(KILN_ERR_FORMAT, "%s: '%s' holds a non-number", what, key);
            out[i] = e->valueint;
        }
    } else {
        return kiln_fail(KILN_ERR_FORMAT, "%s: '%s' must be a number or a list of %d", what, key, n);
    }
    for (int i = 0; i < n; i++)
        if (out[i] <= 0 || out[i] > (1 << 16)) return kiln_fail(KILN_ERR_FORMAT, "%s: '%s' out of range", what, key);
    return KILN_OK;
}

static bool is_default(const cJSON *v, const char *dflt_str) {
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return true;
    if (dflt_str && cJSON_IsString(v)) return !strcmp(v->valuestring, dflt_str);
    if (cJSON_IsArray(v)) { /* only_cross_attention may be a list of booleans */
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (!cJSON_IsFalse(e)) return false;
        return true;
    }
    return false;
}

/* Keys whose non-default values change the network in ways kiln does not build. */
static kiln_status refuse_features(const cJSON *j, const char *what) {
    static const struct {
        const char *key, *dflt; /* dflt: the accepted string value, or NULL (null / false only) */
    } keys[] = {
        {"addition_embed_type", NULL},   {"class_embed_type", NULL},        {"num_class_embeds", NULL},
        {"time_cond_proj_dim", NULL},    {"encoder_hid_dim", NULL},         {"encoder_hid_dim_type", NULL},
        {"dual_cross_attention", NULL},  {"only_cross_attention", NULL},    {"center_input_sample", NULL},
        {"mid_block_only_cross_attention", NULL}, {"reverse_transformer_layers_per_block", NULL},
        {"projection_class_embeddings_input_dim", NULL}, {"addition_time_embed_dim", NULL},
        {"resnet_time_scale_shift", "default"}, {"time_embedding_type", "positional"},
        {"mid_block_type", "UNetMidBlock2DCrossAttn"}, {"attention_type", "default"},
        {"act_fn", "silu"}, {"timestep_post_act", NULL}, {"time_embedding_act_fn", NULL},
        {"class_embeddings_concat", NULL}, {"cross_attention_norm", NULL}, {"resnet_skip_time_act", NULL},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i].key);
        if (!is_default(v, keys[i].dflt)) {
            char *s = cJSON_PrintUnformatted(v);
            kiln_status st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: %s = %.60s is not supported yet", what, keys[i].key,
                                       s ? s : "?");
            cJSON_free(s);
            return st;
        }
    }
    static const char *const kernels[] = {"conv_in_kernel", "conv_out_kernel"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, kernels[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valueint == 3))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: %s other than 3 is not supported", what, kernels[i]);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "cross_attention_dim");
    if (v && !cJSON_IsNumber(v))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: cross_attention_dim must be one number", what);
    return KILN_OK;
}

/* The block type lists: CrossAttn*Block2D or plain *Block2D of the given direction. */
static kiln_status block_types(const cJSON *j, const char *key, const char *dir, int n, bool *attn, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return kiln_fail(KILN_ERR_FORMAT, "%s: '%s' must list %d block types", what, key, n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        char cross[40], plain[40];
        snprintf(cross, sizeof cross, "CrossAttn%sBlock2D", dir);
        snprintf(plain, sizeof plain, "%sBlock2D", dir);
        if (!cJSON_IsString(e))
            return kiln_fail(KILN_ERR_FORMAT, "%s: '%s' holds a non-string", what, key);
        if (!strcmp(e->valuestring, cross))
            attn[i] = true;
        else if (!strcmp(e->valuestring, plain))
            attn[i] = false;
        else
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: block type '%.60s' is not supported (%s, %s are)", what,
                             e->valuestring, cross, plain);
    }
    return KILN_OK;
}

static kiln_status parse(const cJSON *j, const char *what, kiln_unet_config *c) {
    kiln_status st = refuse_features(j, what);
    if (st) return st;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "block_out_channels");
    c->n_blocks = cJSON_IsArray(ch) ? cJSON_GetArraySize(ch) : 0;
    if (c->n_blocks < 1 || c->n_blocks > KILN_UNET_MAX_BLOCKS)
        return kiln_fail(KILN_ERR_FORMAT, "%s: block_out_channels must list 1 to %d channel counts", what,
                         KILN_UNET_MAX_BLOCKS);
    const int n = c->n_blocks;
    int lpb[1] = {2}, heads[KILN_UNET_MAX_BLOCKS];
    if ((st = int_list(j, "block_out_channels", n, -1, c->channels, what)) ||
        (st = block_types(j, "down_block_types", "Down", n, c->down_attn, what)) ||
        (st = block_types(j, "up_block_types", "Up", n, c->up_attn, what)) ||
        (st = int_list(j, "layers_per_block", 1, 2, lpb, what)) ||
        (st = int_list(j, "transformer_layers_per_block", n, 1, c->transformer_layers, what)) ||
        (st = int_list(j, "attention_head_dim", n, 8, heads, what)) ||
        (st = kiln_json_int(j, "in_channels", false, 4, &c->in_channels, what)) ||
        (st = kiln_json_int(j, "out_channels", false, 4, &c->out_channels, what)) ||
        (st = kiln_json_int(j, "cross_attention_dim", false, 1280, &c->cross_attention_dim, what)) ||
        (st = kiln_json_int(j, "norm_num_groups", false, 32, &c->groups, what)) ||
        (st = kiln_json_int(j, "freq_shift", false, 0, &c->freq_shift, what)) ||
        (st = kiln_json_int(j, "sample_size", false, 64, &c->sample_size, what)))
        return st;
    /* diffusers' num_attention_heads, when absent, is what attention_head_dim says: the
     * name has meant the head count since SD 1.x's configs were written */
    const cJSON *nh = cJSON_GetObjectItemCaseSensitive(j, "num_attention_heads");
    if (nh && !cJSON_IsNull(nh) && (st = int_list(j, "num_attention_heads", n, -1, heads, what))) return st;
    memcpy(c->heads, heads, sizeof heads);
    c->layers_per_block = lpb[0];
    if (c->layers_per_block > 16 || c->in_channels <= 0 || c->in_channels > 64 || c->out_channels <= 0 ||
        c->out_channels > 64 || c->cross_attention_dim <= 0 || c->cross_attention_dim > (1 << 14) || c->groups <= 0 ||
        c->freq_shift > 1)
        return kiln_fail(KILN_ERR_FORMAT, "%s: implausible UNet configuration", what);
    for (int i = 0; i < n; i++) {
        if (c->channels[i] % c->groups)
            return kiln_fail(KILN_ERR_FORMAT, "%s: %d channels are not a multiple of %d groups", what, c->channels[i],
                             c->groups);
        if (c->channels[i] % c->heads[i])
            return kiln_fail(KILN_ERR_FORMAT, "%s: %d channels are not a multiple of %d heads", what, c->channels[i],
                             c->heads[i]);
        if (c->transformer_layers[i] > 32)
            return kiln_fail(KILN_ERR_FORMAT, "%s: transformer_layers_per_block out of range", what);
    }
    if (c->channels[0] % 2) return kiln_fail(KILN_ERR_FORMAT, "%s: odd first block width", what);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "norm_eps"), *flip = cJSON_GetObjectItemCaseSensitive(j, "flip_sin_to_cos");
    c->norm_eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-5f;
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps)) return kiln_fail(KILN_ERR_FORMAT, "%s: invalid norm_eps", what);
    c->flip_sin_to_cos = flip ? cJSON_IsTrue(flip) : true;
    return KILN_OK;
}

kiln_status kiln_unet_config_json(const char *json, const char *what, kiln_unet_config *c) {
    memset(c, 0, sizeof *c);
    cJSON *j = kiln_json_parse_py(json);
    kiln_status st = j && cJSON_IsObject(j) ? parse(j, what, c) : kiln_fail(KILN_ERR_FORMAT, "%s: not a JSON object", what);
    cJSON_Delete(j);
    return st;
}
