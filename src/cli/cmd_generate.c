/*
 * cmd_generate.c — `kiln generate`: streams a model's continuation of a prompt to
 * stdout, and load time and speeds to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"
#include "util.h"

static bool write_out(const char *text, size_t len, void *user) {
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

int kiln_cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = "", *prompt_file = NULL, *tokenizer = NULL;
    int n = 256, threads = 0, ctx = 0;
    bool no_bos = false, no_prompt = false;
    uint64_t seed = 0;
    bool have_seed = false;
    str_list stops = {0};
    kiln_sample_options so;
    kiln_sample_options_default(&so);
    const char *seed_str = NULL;
    arg_spec specs[] = {
        {"--model", "-m", ARG_STR, &model, "model: .gguf, llama2.c .bin, or folder with config.json"},
        {"--prompt", "-p", ARG_STR, &prompt, "prompt text (default: empty)"},
        {"--file", "-f", ARG_STR, &prompt_file, "read the prompt from a file"},
        {"--n-predict", "-n", ARG_INT, &n, "tokens to generate (default 256; -1: until EOS)"},
        {"--temperature", "--temp", ARG_FLOAT, &so.temperature, "sampling temperature (default 0.8; 0: greedy)"},
        {"--top-k", NULL, ARG_INT, &so.top_k, "keep the k most likely tokens (default 40; 0: off)"},
        {"--top-p", NULL, ARG_FLOAT, &so.top_p, "nucleus sampling threshold (default 0.95; 1: off)"},
        {"--min-p", NULL, ARG_FLOAT, &so.min_p, "drop tokens below p × the best one's probability (default 0.05)"},
        {"--repeat-penalty", NULL, ARG_FLOAT, &so.repeat_penalty, "penalty for repeated tokens (default 1: off)"},
        {"--repeat-last-n", NULL, ARG_INT, &so.repeat_last_n, "tokens the penalties look back on (default 64)"},
        {"--frequency-penalty", NULL, ARG_FLOAT, &so.frequency_penalty, "subtract count × value (default 0)"},
        {"--presence-penalty", NULL, ARG_FLOAT, &so.presence_penalty, "subtract value if present (default 0)"},
        {"--seed", "-s", ARG_STR, &seed_str, "random seed (default: from the clock, printed)"},
        {"--stop", NULL, ARG_STR_LIST, &stops, "stop when this text is generated (repeatable)"},
        {"--threads", "-t", ARG_INT, &threads, "threads (default: all cores)"},
        {"--ctx", "-c", ARG_INT, &ctx, "context length (default: the model's, at most 4096)"},
        {"--tokenizer", NULL, ARG_STR, &tokenizer, "tokenizer file (tokenizer.bin, tokenizer.json, .gguf)"},
        {"--no-bos", NULL, ARG_FLAG, &no_bos, "do not add the BOS token"},
        {"--no-display-prompt", NULL, ARG_FLAG, &no_prompt, "do not echo the prompt"},
    };
    const char *pos[1];
    int n_pos;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 0, &n_pos,
                       "usage: kiln generate -m MODEL [-p PROMPT] [-n N] [--temperature T] [--top-k K] [--top-p P]\n"
                       "                     [--min-p P] [--seed S] [--threads N] [--tokenizer FILE] [--stop TEXT]");
    if (r) return r == 1 ? 0 : 2;
    if (!model) {
        fprintf(stderr, "kiln generate: -m MODEL is required\n");
        return 2;
    }
    if (seed_str) {
        char *end;
        seed = strtoull(seed_str, &end, 10);
        if (!*seed_str || *end || *seed_str == '-') {
            fprintf(stderr, "kiln generate: invalid seed '%s'\n", seed_str);
            return 2;
        }
        have_seed = true;
    }
    if (!have_seed) seed = (uint64_t)time(NULL);
    char *file_text = NULL;
    if (prompt_file) {
        if (!(file_text = cli_read_file("generate", prompt_file, NULL))) return 1;
        prompt = file_text;
    }
    stops.items[stops.n] = NULL;
    so.max_tokens = n;
    so.seed = seed;
    so.add_bos = !no_bos;
    so.stop = stops.n ? stops.items : NULL;

    kiln_llm_options lo = {.path = model, .tokenizer_path = tokenizer, .n_ctx = ctx, .n_threads = threads};
    kiln_llm *llm = NULL;
    double t0 = cli_now();
    kiln_status st = kiln_llm_load(&lo, &llm);
    double load_s = cli_now() - t0;
    if (st) {
        fprintf(stderr, "kiln generate: %s\n", kiln_last_error());
        free(file_text);
        return 1;
    }
    fprintf(stderr, "kiln: loaded %s in %.3f s (seed %llu)\n", model, load_s, (unsigned long long)seed);
    kiln_llm_info info;
    kiln_llm_get_info(llm, &info);
    if (!info.has_tokenizer) {
        fprintf(stderr, "kiln generate: %s has no tokenizer: give one with --tokenizer\n", model);
        kiln_llm_free(llm);
        free(file_text);
        return 1;
    }
    if (!no_prompt) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    kiln_gen_stats gs;
    st = kiln_llm_generate(llm, prompt, &so, write_out, NULL, &gs);
    fputc('\n', stdout);
    fflush(stdout);
    if (st) {
        fprintf(stderr, "kiln generate: %s\n", kiln_last_error());
    } else {
        fprintf(stderr, "kiln: prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s), stop: %s\n",
                gs.n_prompt, gs.prompt_seconds, gs.prompt_seconds > 0 ? gs.n_prompt / gs.prompt_seconds : 0.0,
                gs.n_generated, gs.gen_seconds, gs.gen_seconds > 0 ? gs.n_generated / gs.gen_seconds : 0.0,
                gs.stop_reason);
    }
    kiln_llm_free(llm);
    free(file_text);
    return st ? 1 : 0;
}
