/*
 * main.c — the kiln program: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} g_commands[] = {
    {"generate", kiln_cmd_generate, "generate text from a prompt, streamed to stdout"},
    {"tokenize", kiln_cmd_tokenize, "print the token ids of a text"},
    {"image", kiln_cmd_image, "Stable Diffusion: an image from a prompt, as PNG with its parameters"},
    {"embed", kiln_cmd_embed, "sentence embeddings (BERT family) of texts, or their similarities"},
    {"eval", kiln_cmd_eval, "run the model on tokens: perplexity and last logits"},
    {"info", kiln_cmd_info, "print a model file's metadata and tensor table"},
    {"template", kiln_cmd_template, "render a model's chat template over messages (JSON)"},
    {"serve", kiln_cmd_serve, "serve the HTTP API (OpenAI-compatible and jobs) over a models directory"},
    {"run", kiln_cmd_run, "run a program (preset) of the config file locally"},
    {"jobs", kiln_cmd_jobs, "list, show, cancel or wait for jobs of a running server"},
    {"quantize", kiln_cmd_quantize, "convert a GGUF's weights to another type, or write a random model"},
    {"bench", kiln_cmd_bench, "measure prompt and generation speed (like llama-bench)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: kiln COMMAND [options]   (kiln COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof g_commands / sizeof g_commands[0]; i++)
        fprintf(f, "  %-10s %s\n", g_commands[i].name, g_commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof g_commands / sizeof g_commands[0]; i++) {
        if (!strcmp(argv[1], g_commands[i].name)) return g_commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "kiln: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
