/*
 * cmd_bench.c — `kiln bench`: prompt-processing and generation speed of a model, as
 * llama.cpp's llama-bench measures them, so the two can be compared on one file.
 *
 * Each repetition runs pp: one batched decode of p random token ids from an empty
 * context, and tg: n decodes of one random token each, from an empty context (as
 * llama-bench's pp512 / tg128). A warm-up run comes first and is not counted.
 * Results are tokens per second, mean ± sample standard deviation over reps.
 * Embedding models are measured by cmd_bench_embed.c instead.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"
#include "util.h"

/* splitmix64: random token ids without touching the library's generators. */
static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    double *tps;
    int n;
    double mean, sd;
} series;

static void summarize(series *s) { cli_mean_sd(s->tps, s->n, &s->mean, &s->sd); }

/* pp: p tokens in one decode; tg: n tokens one at a time. Returns 0 or 1 (error printed). */
static int run_pp(kiln_llm *llm, const int32_t *ids, int p, float *logits, double *tps) {
    double t0 = cli_now();
    if (kiln_llm_decode(llm, ids, (size_t)p, 0, logits)) {
        fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
        return 1;
    }
    *tps = p / (cli_now() - t0);
    return 0;
}

static int run_tg(kiln_llm *llm, const int32_t *ids, int n, float *logits, double *tps) {
    double t0 = cli_now();
    for (int i = 0; i < n; i++) {
        if (kiln_llm_decode(llm, ids + i, 1, (size_t)i, logits)) {
            fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
            return 1;
        }
    }
    *tps = n / (cli_now() - t0);
    return 0;
}

static void human_params(uint64_t n, char *out, size_t len) {
    if (n >= 1000000000ull) snprintf(out, len, "%.2f B", n / 1e9);
    else snprintf(out, len, "%.2f M", n / 1e6);
}

static cJSON *series_json(const series *s, int tokens) {
    cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "tokens", tokens);
    cJSON_AddNumberToObject(o, "tok_s_mean", s->mean);
    cJSON_AddNumberToObject(o, "tok_s_sd", s->sd);
    for (int i = 0; i < s->n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(s->tps[i]));
    cJSON_AddItemToObject(o, "samples", a);
    return o;
}

int kiln_cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    int p = 512, n = 128, threads = 0, reps = 5, short_len = 16, n_texts = 64, width = 512, height = 512;
    bool json = false;
    const char *precision = NULL;
    arg_spec specs[] = {
        {"--model", "-m", ARG_STR, &model, "model file (.gguf, llama2.c .bin or folder)"},
        {"--n-prompt", "-p", ARG_INT, &p, "prompt tokens processed in one batch (default 512; 0: skip)"},
        {"--n-gen", "-n", ARG_INT, &n, "tokens generated one at a time (default 128; 0: skip)"},
        {"--threads", "-t", ARG_INT, &threads, "threads (default: all cores)"},
        {"--repetitions", "-r", ARG_INT, &reps, "repetitions of each test (default 5)"},
        {"--json", NULL, ARG_FLAG, &json, "print one JSON object instead of the table"},
        {"--short", NULL, ARG_INT, &short_len, "embedding models: tokens of the one-text latency test (default 16)"},
        {"--texts", NULL, ARG_INT, &n_texts, "embedding models: texts of -p tokens in the batch test (default 64)"},
        {"--width", "-W", ARG_INT, &width, "image models: width (default 512)"},
        {"--height", "-H", ARG_INT, &height, "image models: height (default 512)"},
        {"--precision", NULL, ARG_STR, &precision, "image models: f32 or bf16 arithmetic (default: the best here)"},
    };
    const char *pos[1];
    int n_pos;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 0, &n_pos,
                       "usage: kiln bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r REPS] [--json]\n"
                       "       kiln bench -m EMBEDDING_MODEL [--short 16] [-p 128] [--texts 64] [-t N] [-r REPS] [--json]\n"
                       "       kiln bench -m IMAGE_MODEL [-W 512 -H 512] [--precision f32|bf16] [-t N] [-r REPS] [--json]");
    if (r) return r == 1 ? 0 : 2;
    if (!model) {
        fprintf(stderr, "kiln bench: -m MODEL is required\n");
        return 2;
    }
    if (p < 0 || n < 0 || reps < 1 || threads < 0 || (p == 0 && n == 0)) {
        fprintf(stderr, "kiln bench: need -p >= 0, -n >= 0 (not both 0), -r >= 1, -t >= 0\n");
        return 2;
    }
    if (kiln_sd_supports(model)) return cli_bench_sd(model, threads, reps, width, height, precision, json);
    if (kiln_embedder_supports(model)) {
        /* -p defaults to 512 for an LLM; an embedder's texts default to 128 tokens */
        bool p_given = false;
        for (int i = 1; i < argc; i++) p_given |= !strcmp(argv[i], "-p") || !strcmp(argv[i], "--n-prompt");
        if (short_len < 0 || n_texts < 0) {
            fprintf(stderr, "kiln bench: --short and --texts must not be negative\n");
            return 2;
        }
        return cli_bench_embed(model, threads, reps, short_len, p_given ? p : 128, n_texts, json);
    }
    kiln_llm_options lo = {.path = model, .n_ctx = (p > n ? p : n) < 16 ? 16 : (p > n ? p : n), .n_threads = threads};
    kiln_llm *llm = NULL;
    if (kiln_llm_load(&lo, &llm)) {
        fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
        return 1;
    }
    kiln_llm_info info;
    kiln_llm_get_info(llm, &info);
    kiln_model_stats ms;
    bool have_stats = kiln_model_stats_get(model, &ms) == KILN_OK;
    if (!have_stats) memset(&ms, 0, sizeof ms);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = threads > 0 ? threads : (cores > 0 ? (int)cores : 1); /* 0 means all cores */
    int max_tok = p > n ? p : n;
    int32_t *ids = malloc((size_t)(max_tok > 1 ? max_tok : 1) * sizeof *ids);
    float *logits = malloc((size_t)info.n_vocab * sizeof *logits);
    double *samples = calloc((size_t)reps * 2, sizeof *samples);
    int rc = 1;
    if (!ids || !logits || !samples) {
        fprintf(stderr, "kiln bench: out of memory\n");
        goto done;
    }
    uint64_t rs = 42;
    for (int i = 0; i < max_tok; i++) ids[i] = (int32_t)(next_rand(&rs) % (uint64_t)info.n_vocab);
    series pp = {samples, 0, 0, 0}, tg = {samples + reps, 0, 0, 0};
    double dummy;
    /* warm-up: pages the weights in, starts the threads */
    if ((p && run_pp(llm, ids, p < 32 ? p : 32, logits, &dummy)) || (n && run_tg(llm, ids, n < 4 ? n : 4, logits, &dummy)))
        goto done;
    for (int k = 0; k < reps; k++) {
        if (p && run_pp(llm, ids, p, logits, &pp.tps[pp.n++])) goto done;
        if (n && run_tg(llm, ids, n, logits, &tg.tps[tg.n++])) goto done;
    }
    summarize(&pp);
    summarize(&tg);
    const char *isa = kiln_kernel_isa();
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "arch", info.arch ? info.arch : "");
        cJSON_AddStringToObject(o, "type", ms.file_type);
        cJSON_AddNumberToObject(o, "size_bytes", (double)ms.n_bytes);
        cJSON_AddNumberToObject(o, "params", (double)ms.n_params);
        cJSON_AddNumberToObject(o, "bytes_per_token", (double)ms.bytes_per_token);
        cJSON_AddNumberToObject(o, "n_layer", info.n_layer);
        cJSON_AddNumberToObject(o, "n_embd", info.n_embd);
        cJSON_AddNumberToObject(o, "n_vocab", info.n_vocab);
        cJSON_AddNumberToObject(o, "threads", n_threads);
        cJSON_AddStringToObject(o, "isa", isa);
        cJSON_AddNumberToObject(o, "repetitions", reps);
        if (p) cJSON_AddItemToObject(o, "pp", series_json(&pp, p));
        if (n) cJSON_AddItemToObject(o, "tg", series_json(&tg, n));
        char *text = cJSON_PrintUnformatted(o);
        if (text) printf("%s\n", text);
        free(text);
        cJSON_Delete(o);
    } else {
        char params[32], size[32], tname[32];
        human_params(ms.n_params, params, sizeof params);
        snprintf(size, sizeof size, "%.2f MiB", ms.n_bytes / 1048576.0);
        printf("| %-28s | %12s | %10s | %-6s | %7s | %6s | %20s |\n", "model", "size", "params", "isa", "threads",
               "test", "t/s");
        printf("| %.28s | %.12s | %.10s | %.6s | %.7s | %.6s | %.20s |\n", "------------------------------",
               "------------", "----------", "------", "-------", "------", "--------------------");
        char mname[64];
        snprintf(mname, sizeof mname, "%s %s %s", info.arch ? info.arch : "?", params, ms.file_type);
        char th[16];
        snprintf(th, sizeof th, "%d", n_threads);
        for (int k = 0; k < 2; k++) {
            const series *s = k ? &tg : &pp;
            if (!(k ? n : p)) continue;
            char val[48];
            snprintf(tname, sizeof tname, "%s%d", k ? "tg" : "pp", k ? n : p);
            snprintf(val, sizeof val, "%.2f ± %.2f", s->mean, s->sd);
            printf("| %-28s | %12s | %10s | %-6s | %7s | %6s | %20s |\n", mname, size, params, isa, th, tname, val);
        }
    }
    rc = 0;
done:
    free(ids);
    free(logits);
    free(samples);
    kiln_llm_free(llm);
    return rc;
}
