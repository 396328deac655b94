/*
 * test_presets.c — the config file and job parameters: every key validated, unknown
 * keys and bad values refused by name, request parameters overriding a program's.
 */
#include <string.h>

#include "engine/params.h"
#include "engine/presets.h"
#include "test.h"

static kiln_status parse(const char *text, kiln_presets **out) {
    return kiln_presets_parse(text, strlen(text), "kiln.json", out);
}

/* Parsing fails with the status and a message containing needle. */
static void refused(const char *text, const char *needle) {
    kiln_presets *c = NULL;
    kiln_status st = parse(text, &c);
    CHECK_MSG(st != KILN_OK && c == NULL, "accepted: %s", text);
    CHECK_MSG(strstr(kiln_last_error(), needle) != NULL, "message '%s' lacks '%s'", kiln_last_error(), needle);
    CHECK_MSG(strstr(kiln_last_error(), "kiln.json") != NULL, "message '%s' does not name the file",
              kiln_last_error());
}

static void test_config(void) {
    kiln_presets *c = NULL;
    CHECK_OK(parse("{\"models\": {\"tiny\": {\"file\": \"stories260K\"}, \"stories260K\": {\"keep_alive\": 60, "
                   "\"n_ctx\": 256}}, \"programs\": {\"story\": {\"kind\": \"text\", \"model\": \"tiny\", "
                   "\"description\": \"d\", \"template\": \"Once {prompt}\", \"max_tokens\": 40, \"temperature\": 0.5, "
                   "\"stop\": [\"\\n\\n\", \"The end\"], \"system\": \"Be brief.\"}, \"pic\": {\"kind\": \"image\", "
                   "\"model\": \"sd\", \"steps\": 30, \"guidance\": 6, \"width\": 768, \"height\": 512, "
                   "\"scheduler\": \"euler\"}}}",
                   &c));
    if (!c) return;
    CHECK(c->n_models == 2 && c->n_programs == 2);
    const kiln_model_conf *m = kiln_presets_model(c, "tiny");
    CHECK(m && m->file && !strcmp(m->file, "stories260K"));
    m = kiln_presets_model(c, "stories260K");
    CHECK(m && m->has_keep_alive && m->keep_alive == 60 && m->n_ctx == 256);
    const kiln_program *p = kiln_presets_program(c, "story");
    CHECK(p && p->kind == KILN_JOB_TEXT && !strcmp(p->model, "tiny"));
    CHECK(p && p->params.max_tokens == 40 && p->params.temperature == 0.5f && p->params.n_stop == 2);
    CHECK(p && (p->params.set & KP_TEMPLATE) && (p->params.set & KP_SYSTEM) && !(p->params.set & KP_TOP_P));
    p = kiln_presets_program(c, "pic");
    CHECK(p && p->kind == KILN_JOB_IMAGE && p->params.steps == 30 && p->params.width == 768);
    CHECK(kiln_presets_program(c, "nope") == NULL);
    kiln_presets_free(c);

    CHECK_OK(parse("{}", &c));
    kiln_presets_free(c);

    refused("{\"model\": {}}", "unknown key 'model'");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"temprature\": 1}}}", "unknown key 'temprature'");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"temperature\": \"hot\"}}}", "'temperature' must be a number");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"max_tokens\": -1}}}", "'max_tokens'");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"max_tokens\": 1.5}}}", "integer");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"top_p\": 2}}}", "'top_p'");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"stop\": [1]}}}", "'stop'");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"template\": \"no placeholder\"}}}", "{prompt}");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"steps\": 20}}}", "'steps' does not apply to text");
    refused("{\"programs\": {\"a\": {\"kind\": \"video\", \"model\": \"m\"}}}", "unknown job kind 'video'");
    refused("{\"programs\": {\"a\": {\"temperature\": 1}}}", "'model'");
    refused("{\"programs\": {\"a\": {\"model\": \"m\", \"prompt\": \"x\"}}}", "template");
    refused("{\"models\": {\"m\": {\"keep_alive\": \"forever\"}}}", "keep_alive");
    refused("{\"models\": {\"m\": {\"n_ctx\": 0}}}", "n_ctx");
    refused("{\"models\": {\"m\": {\"path\": \"x\"}}}", "unknown key 'path'");
    refused("{\"programs\": []}", "'programs' must be an object");
    refused("[1, 2]", "top level");
    refused("{\"programs\": {", "not valid JSON");
}

static void test_params(void) {
    kiln_param_limits lim = {.max_tokens = 100, .max_prompt = 10};
    kiln_params p;
    kiln_params_default(&p, KILN_JOB_TEXT);
    cJSON *o = cJSON_Parse("{\"prompt\": \"hello\", \"max_tokens\": 50, \"stop\": \"x\", \"seed\": 42}");
    CHECK_OK(kiln_params_parse(&p, KILN_JOB_TEXT, o, "params", &lim, NULL));
    CHECK(!strcmp(p.prompt, "hello") && p.max_tokens == 50 && p.n_stop == 1 && p.seed == 42);
    cJSON_Delete(o);
    /* limits */
    o = cJSON_Parse("{\"max_tokens\": 101}");
    CHECK(kiln_params_parse(&p, KILN_JOB_TEXT, o, "params", &lim, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "between 1 and 100") != NULL);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"prompt\": \"hello world\"}");
    CHECK(kiln_params_parse(&p, KILN_JOB_TEXT, o, "params", &lim, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_last_error(), "limit is 10") != NULL);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"seed\": -1}");
    CHECK(kiln_params_parse(&p, KILN_JOB_TEXT, o, "params", &lim, NULL) == KILN_ERR_INVALID_ARG);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"messages\": [{\"role\": \"user\", \"content\": [1]}]}");
    CHECK(kiln_params_parse(&p, KILN_JOB_TEXT, o, "params", NULL, NULL) == KILN_ERR_INVALID_ARG);
    cJSON_Delete(o);

    /* a request overrides a program key by key */
    kiln_params prog, req;
    kiln_params_default(&prog, KILN_JOB_TEXT);
    kiln_params_default(&req, KILN_JOB_TEXT);
    prog.set = req.set = 0;
    o = cJSON_Parse("{\"max_tokens\": 40, \"temperature\": 0.1, \"template\": \"A {prompt}\"}");
    CHECK_OK(kiln_params_parse(&prog, KILN_JOB_TEXT, o, "program", NULL, NULL));
    cJSON_Delete(o);
    o = cJSON_Parse("{\"temperature\": 0.9, \"prompt\": \"cat\"}");
    CHECK_OK(kiln_params_parse(&req, KILN_JOB_TEXT, o, "params", NULL, NULL));
    cJSON_Delete(o);
    kiln_params merged;
    kiln_params_default(&merged, KILN_JOB_TEXT);
    CHECK_OK(kiln_params_overlay(&merged, &prog));
    CHECK_OK(kiln_params_overlay(&merged, &req));
    CHECK(merged.max_tokens == 40 && merged.temperature == 0.9f && !strcmp(merged.template_, "A {prompt}") &&
          !strcmp(merged.prompt, "cat"));
    cJSON *j = kiln_params_to_json(&merged, KILN_JOB_TEXT);
    char *t = cJSON_PrintUnformatted(j);
    CHECK_MSG(t && strstr(t, "\"temperature\":0.9,") != NULL, "%s", t);
    free(t);
    cJSON_Delete(j);
    kiln_params_clear(&merged);
    kiln_params_clear(&prog);
    kiln_params_clear(&req);
    kiln_params_clear(&p);
}

int main(void) {
    test_config();
    test_params();
    TEST_MAIN_END();
}
