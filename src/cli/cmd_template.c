/*
 * cmd_template.c — `kiln template`: renders a chat template over messages from a JSON
 * file and prints exactly the result (no newline added). The template comes from a file
 * or from a model (GGUF tokenizer.chat_template, tokenizer_config.json chat_template;
 * the ChatML default when the model has none), as do the BOS/EOS strings unless given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"
#include "util.h"

int kiln_cmd_template(int argc, char **argv) {
    const char *tmpl_file = NULL, *model = NULL, *msgs_file = NULL, *tools_file = NULL, *vars_file = NULL;
    const char *bos = NULL, *eos = NULL;
    bool gen = false;
    arg_spec specs[] = {
        {"--template", "-t", ARG_STR, &tmpl_file, "Jinja chat template file"},
        {"--model", "-m", ARG_STR, &model, "take the template (and BOS/EOS) from this model"},
        {"--messages", NULL, ARG_STR, &msgs_file, "JSON file: array of {\"role\", \"content\", ...}"},
        {"--tools", NULL, ARG_STR, &tools_file, "JSON file: array of tool definitions"},
        {"--vars", NULL, ARG_STR, &vars_file, "JSON file: object of extra template variables"},
        {"--bos", NULL, ARG_STR, &bos, "bos_token string (default: the model's, else empty)"},
        {"--eos", NULL, ARG_STR, &eos, "eos_token string (default: the model's, else empty)"},
        {"--add-generation-prompt", NULL, ARG_FLAG, &gen, "end with the assistant turn's header"},
    };
    int n_pos;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], NULL, 0, &n_pos,
                       "usage: kiln template (--template FILE | -m MODEL) --messages FILE.json [--tools FILE.json]\n"
                       "                     [--vars FILE.json] [--bos S] [--eos S] [--add-generation-prompt]");
    if (r) return r == 1 ? 0 : 2;
    if (!tmpl_file == !model) {
        fprintf(stderr, "kiln template: give either --template FILE or -m MODEL\n");
        return 2;
    }
    if (!msgs_file) {
        fprintf(stderr, "kiln template: --messages FILE.json is required\n");
        return 2;
    }
    char *tmpl = NULL, *mbos = NULL, *meos = NULL, *msgs = NULL, *tools = NULL, *vars = NULL, *out = NULL;
    size_t len;
    int rc = 1;
    if (tmpl_file) {
        if (!(tmpl = cli_read_file("template", tmpl_file, &len))) goto done;
    } else if (kiln_model_chat_template(model, &tmpl, &mbos, &meos)) {
        fprintf(stderr, "kiln template: %s\n", kiln_last_error());
        goto done;
    }
    if (!(msgs = cli_read_file("template", msgs_file, &len))) goto done;
    if (tools_file && !(tools = cli_read_file("template", tools_file, &len))) goto done;
    if (vars_file && !(vars = cli_read_file("template", vars_file, &len))) goto done;
    if (kiln_chat_render_json(tmpl, msgs, tools, vars, bos ? bos : mbos, eos ? eos : meos, gen, &out)) {
        fprintf(stderr, "kiln template: %s\n", kiln_last_error());
        goto done;
    }
    fwrite(out, 1, strlen(out), stdout);
    rc = fflush(stdout) ? 1 : 0;
done:
    free(tmpl);
    free(mbos);
    free(meos);
    free(msgs);
    free(tools);
    free(vars);
    free(out);
    return rc;
}
