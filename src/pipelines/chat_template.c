/*
 * chat_template.c — chat rendering on top of the Jinja interpreter: the convenience
 * call that builds transformers' variables (messages, tools, bos_token, eos_token,
 * add_generation_prompt), the ChatML default, and the public entry points of kiln.h
 * (JSON text in, for callers without cJSON; a model's template and special tokens).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"
#include "formats/gguf.h"
#include "pipelines/chat_template.h"

const char *const kiln_chat_default_template =
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '')"
    " + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";

kiln_status kiln_chat_template_render(const char *tmpl, const cJSON *messages, const cJSON *tools,
                                      const char *bos_token, const char *eos_token, bool add_generation_prompt,
                                      char **out) {
    *out = NULL;
    if (!tmpl) tmpl = kiln_chat_default_template;
    if (!cJSON_IsArray(messages)) return kiln_fail(KILN_ERR_INVALID_ARG, "chat template: messages must be a JSON array");
    kiln_jinja *t = NULL;
    kiln_status st = kiln_jinja_compile(tmpl, strlen(tmpl), &t);
    if (st) return st;
    cJSON *ctx = cJSON_CreateObject();
    cJSON *m = cJSON_Duplicate(messages, true);
    cJSON *tl = tools ? cJSON_Duplicate(tools, true) : cJSON_CreateNull();
    if (!ctx || !m || !tl) {
        cJSON_Delete(ctx);
        cJSON_Delete(m);
        cJSON_Delete(tl);
        kiln_jinja_free(t);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    cJSON_AddItemToObject(ctx, "messages", m);
    cJSON_AddItemToObject(ctx, "tools", tl);
    cJSON_AddItemToObject(ctx, "documents", cJSON_CreateNull());
    cJSON_AddItemToObject(ctx, "add_generation_prompt", cJSON_CreateBool(add_generation_prompt));
    cJSON_AddItemToObject(ctx, "bos_token", cJSON_CreateString(bos_token ? bos_token : ""));
    cJSON_AddItemToObject(ctx, "eos_token", cJSON_CreateString(eos_token ? eos_token : ""));
    st = kiln_jinja_render(t, ctx, out, NULL);
    cJSON_Delete(ctx);
    kiln_jinja_free(t);
    return st;
}

kiln_status kiln_chat_render_json(const char *tmpl, const char *messages_json, const char *tools_json,
                                  const char *vars_json, const char *bos_token, const char *eos_token,
                                  bool add_generation_prompt, char **out) {
    *out = NULL;
    cJSON *m = cJSON_Parse(messages_json ? messages_json : "");
    cJSON *tools = tools_json ? cJSON_Parse(tools_json) : NULL;
    cJSON *vars = vars_json ? cJSON_Parse(vars_json) : NULL;
    kiln_status st = KILN_OK;
    if (!m) st = kiln_fail(KILN_ERR_FORMAT, "chat: messages are not valid JSON");
    else if (tools_json && !tools) st = kiln_fail(KILN_ERR_FORMAT, "chat: tools are not valid JSON");
    else if (vars_json && !cJSON_IsObject(vars)) st = kiln_fail(KILN_ERR_FORMAT, "chat: variables are not a JSON object");
    kiln_jinja *t = NULL;
    if (!st) st = kiln_jinja_compile(tmpl ? tmpl : kiln_chat_default_template, strlen(tmpl ? tmpl : kiln_chat_default_template), &t);
    if (!st) {
        cJSON *ctx = cJSON_CreateObject();
        if (!ctx) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        if (!st) {
            cJSON_AddItemToObject(ctx, "messages", m);
            m = NULL;
            cJSON_AddItemToObject(ctx, "tools", tools ? tools : cJSON_CreateNull());
            tools = NULL;
            cJSON_AddItemToObject(ctx, "documents", cJSON_CreateNull());
            cJSON_AddItemToObject(ctx, "add_generation_prompt", cJSON_CreateBool(add_generation_prompt));
            cJSON_AddItemToObject(ctx, "bos_token", cJSON_CreateString(bos_token ? bos_token : ""));
            cJSON_AddItemToObject(ctx, "eos_token", cJSON_CreateString(eos_token ? eos_token : ""));
            for (cJSON *x = vars ? vars->child : NULL, *next; x; x = next) { /* extra variables override */
                next = x->next;
                cJSON_DeleteItemFromObjectCaseSensitive(ctx, x->string);
                cJSON_AddItemToObject(ctx, x->string, cJSON_Duplicate(x, true));
            }
            st = kiln_jinja_render(t, ctx, out, NULL);
            cJSON_Delete(ctx);
        }
    }
    kiln_jinja_free(t);
    cJSON_Delete(m);
    cJSON_Delete(tools);
    cJSON_Delete(vars);
    return st;
}

/* ---- a model's template ----------------------------------------------------------- */
static char *gguf_token(const kiln_gguf *g, const char *id_key) {
    int64_t id;
    if (!kiln_gguf_get_i64(g, id_key, &id)) return NULL;
    const kiln_gguf_value *toks = kiln_gguf_get_arr(g, "tokenizer.ggml.tokens", KILN_GGUF_STRING);
    if (!toks || id < 0 || (uint64_t)id >= toks->arr.n) return NULL;
    return kiln_gguf_str_dup(toks->arr.strs[id]);
}

static char *json_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? kiln_strdup(v->valuestring) : NULL;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    kiln_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (kiln_buf_append(&b, chunk, n) || b.len > (256u << 20)) {
            kiln_buf_free(&b);
            fclose(f);
            return NULL;
        }
    fclose(f);
    if (!b.data && kiln_buf_append(&b, "", 0)) return NULL;
    return b.data;
}

kiln_status kiln_model_chat_template(const char *model_path, char **tmpl, char **bos, char **eos) {
    *tmpl = *bos = *eos = NULL;
    struct stat sb;
    if (stat(model_path, &sb) != 0) return kiln_fail(KILN_ERR_IO, "%s: no such file or folder", model_path);
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/tokenizer_config.json", model_path);
        char *text = read_text(p);
        if (!text) return KILN_OK; /* no config: no template */
        cJSON *cfg = cJSON_Parse(text);
        free(text);
        if (!cfg) return kiln_fail(KILN_ERR_FORMAT, "%s: not valid JSON", p);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsArray(ct)) { /* [{"name": "default", "template": ...}, ...] */
            const cJSON *pick = NULL, *x;
            cJSON_ArrayForEach(x, ct) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(x, "name");
                if (!pick || (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default"))) pick = x;
            }
            ct = pick ? cJSON_GetObjectItemCaseSensitive(pick, "template") : NULL;
        }
        if (cJSON_IsString(ct)) *tmpl = kiln_strdup(ct->valuestring);
        *bos = json_token(cfg, "bos_token");
        *eos = json_token(cfg, "eos_token");
        cJSON_Delete(cfg);
        return KILN_OK;
    }
    kiln_gguf *g = NULL;
    kiln_status st = kiln_gguf_open(model_path, &g);
    if (st) return st;
    kiln_gguf_str s;
    if (kiln_gguf_get_str(g, "tokenizer.chat_template", &s)) *tmpl = kiln_gguf_str_dup(s);
    *bos = gguf_token(g, "tokenizer.ggml.bos_token_id");
    *eos = gguf_token(g, "tokenizer.ggml.eos_token_id");
    kiln_gguf_close(g);
    return KILN_OK;
}
