/*
 * prompt.c — from a text job's parameters to the text the model reads.
 *
 * Plain jobs: the program's template with {prompt} replaced by the user's text.
 * Chat jobs (messages given, or a system prompt): the messages go through the model's
 * own chat template (tokenizer.chat_template), or kiln's documented default (ChatML,
 * see pipelines/chat_template.h) for models without one, with the generation prompt
 * for the assistant's turn appended. BOS is added by the tokenizer unless the
 * rendered chat already starts with the BOS token's text (templates that write
 * {{ bos_token }} themselves), so it is never doubled.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "engine/engine_internal.h"
#include "pipelines/chat_template.h"

kiln_status kiln_engine_apply_template(const char *tmpl, const char *prompt, char **out) {
    if (!tmpl) {
        *out = kiln_strdup(prompt);
        return *out ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    kiln_buf b = {0};
    kiln_status st = KILN_OK;
    const char *s = tmpl, *hit;
    while (!st && (hit = strstr(s, "{prompt}"))) {
        st = kiln_buf_append(&b, s, (size_t)(hit - s));
        if (!st) st = kiln_buf_append_str(&b, prompt);
        s = hit + strlen("{prompt}");
    }
    if (!st) st = kiln_buf_append_str(&b, s);
    if (st) {
        kiln_buf_free(&b);
        return st;
    }
    *out = b.data ? b.data : kiln_strdup("");
    return *out ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
}

static cJSON *message(const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    if (m && (!cJSON_AddStringToObject(m, "role", role) || !cJSON_AddStringToObject(m, "content", content))) {
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

static bool has_system(const cJSON *messages) {
    const cJSON *first = cJSON_GetArrayItem(messages, 0);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(first, "role");
    return cJSON_IsString(role) && !strcmp(role->valuestring, "system");
}

kiln_status kiln_engine_build_prompt(const kiln_params *p, const kiln_llm *llm, char **text, bool *add_bos) {
    *text = NULL;
    *add_bos = true;
    bool chat = (p->set & KP_MESSAGES) || p->system;
    char *user = NULL;
    kiln_status st = KILN_OK;
    if (p->prompt && (st = kiln_engine_apply_template(p->template_, p->prompt, &user))) return st;
    if (!chat) {
        *text = user;
        return KILN_OK;
    }
    cJSON *msgs = p->messages ? cJSON_Duplicate(p->messages, true) : cJSON_CreateArray();
    if (!msgs) goto nomem;
    if (p->system && !has_system(msgs)) {
        cJSON *m = message("system", p->system);
        if (!m || !cJSON_InsertItemInArray(msgs, 0, m)) {
            cJSON_Delete(m);
            goto nomem;
        }
    }
    if (user) {
        cJSON *m = message("user", user);
        if (!m || !cJSON_AddItemToArray(msgs, m)) {
            cJSON_Delete(m);
            goto nomem;
        }
    }
    kiln_llm_info info;
    kiln_llm_get_info(llm, &info);
    const char *bos = kiln_llm_token_text(llm, info.bos_id), *eos = kiln_llm_token_text(llm, info.eos_id);
    const char *tmpl = kiln_llm_chat_template(llm);
    st = kiln_chat_template_render(tmpl ? tmpl : kiln_chat_default_template, msgs, NULL, bos ? bos : "",
                                   eos ? eos : "", true, text);
    if (st) st = kiln_fail_prefix(st, "rendering the chat template");
    if (!st && bos && bos[0] && !strncmp(*text, bos, strlen(bos))) *add_bos = false;
    cJSON_Delete(msgs);
    free(user);
    return st;
nomem:
    cJSON_Delete(msgs);
    free(user);
    return kiln_fail(KILN_ERR_NOMEM, "out of memory");
}
