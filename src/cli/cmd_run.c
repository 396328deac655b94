/*
 * cmd_run.c — `kiln run PROGRAM PROMPT`: runs a program of the config file locally,
 * as a job of an in-process engine, streaming its text to stdout (an embedding
 * program prints its vector as one JSON line, as `kiln embed` does; an image program
 * stores its PNGs under --data DIR/outputs and prints one JSON line per image).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"

/* The embedding job's one vector as a JSON line, as `kiln embed` prints it. */
static void print_embedding(const cJSON *res) {
    const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "embeddings"), 0), *x;
    const cJSON *tok = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "tokens"), 0);
    const cJSON *tr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "truncated"), 0);
    printf("{\"index\": 0, \"tokens\": %d, \"truncated\": %s, \"embedding\": [", cJSON_IsNumber(tok) ? tok->valueint : 0,
           cJSON_IsTrue(tr) ? "true" : "false");
    int i = 0;
    cJSON_ArrayForEach(x, v) printf(i++ ? ", %.9g" : "%.9g", (double)(float)x->valuedouble);
    printf("]}\n");
}

/* One line per image of an image job: index, seed, and the stored file. */
static void print_images(const cJSON *res, const char *data) {
    const cJSON *img;
    cJSON_ArrayForEach(img, cJSON_GetObjectItemCaseSensitive(res, "images")) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(img, "file");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "index", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(img, "index"), false));
        cJSON_AddItemToObject(o, "seed", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(img, "seed"), false));
        if (cJSON_IsString(file)) {
            char path[4600];
            snprintf(path, sizeof path, "%s/%s", data, file->valuestring);
            cJSON_AddStringToObject(o, "file", path);
        }
        char *t = cJSON_PrintUnformatted(o);
        if (t) puts(t);
        free(t);
        cJSON_Delete(o);
    }
}

int kiln_cmd_run(int argc, char **argv) {
    const char *models = getenv("KILN_MODELS"), *config = getenv("KILN_CONFIG"), *data = NULL;
    const char *seed_s = NULL;
    int max_tokens = 0, threads = 0;
    float temperature = -1;
    bool quiet = false;
    arg_spec specs[] = {
        {"--models", NULL, ARG_STR, &models, "the models directory (default $KILN_MODELS)"},
        {"--config", NULL, ARG_STR, &config, "the config file with the programs (default $KILN_CONFIG)"},
        {"--data", NULL, ARG_STR, &data, "keep the job in this data directory's store (default: in memory)"},
        {"--max-tokens", "-n", ARG_INT, &max_tokens, "override the program's max_tokens"},
        {"--temperature", "--temp", ARG_FLOAT, &temperature, "override the program's temperature"},
        {"--seed", "-s", ARG_STR, &seed_s, "random seed"},
        {"--threads", "-t", ARG_INT, &threads, "threads (default: all cores)"},
        {"--quiet", "-q", ARG_FLAG, &quiet, "do not print the job's id and speed to stderr"},
    };
    const char *pos[2];
    int n_pos;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 2, &n_pos,
                       "usage: kiln run PROGRAM PROMPT [--config FILE] [--models DIR] [-n N] [--seed S]");
    if (r) return r == 1 ? 0 : 2;
    if (n_pos != 2) {
        fprintf(stderr, "kiln run: give a program name and a prompt\n");
        return 2;
    }
    if (!models || !config) {
        fprintf(stderr, "kiln run: give --models DIR and --config FILE (or set KILN_MODELS and KILN_CONFIG)\n");
        return 2;
    }
    kiln_engine_options eo = {.models_dir = models, .data_dir = data, .config_path = config, .n_threads = threads,
                              .keep_alive = 0, .max_tokens = 1 << 20, .max_prompt = (size_t)1 << 30};
    kiln_engine *e = NULL;
    if (kiln_engine_create(&eo, &e)) {
        fprintf(stderr, "kiln run: %s\n", kiln_last_error());
        return 1;
    }
    /* an embedding program embeds PROMPT and prints it as `kiln embed` does */
    const char *kind = kiln_engine_program_kind(e, pos[0]);
    const bool embed = kind && !strcmp(kind, "embedding"), image = kind && !strcmp(kind, "image");
    if (image && !data) {
        fprintf(stderr, "kiln run: program '%s' makes images: give --data DIR to store them (DIR/outputs)\n", pos[0]);
        kiln_engine_free(e);
        return 2;
    }
    cJSON *req = cJSON_CreateObject(), *params = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "program", pos[0]);
    cJSON_AddStringToObject(params, embed ? "input" : "prompt", pos[1]);
    if (max_tokens && !embed && !image) cJSON_AddNumberToObject(params, "max_tokens", max_tokens);
    if (temperature >= 0 && !embed && !image) cJSON_AddNumberToObject(params, "temperature", temperature);
    if (seed_s && !embed) {
        char *end;
        unsigned long long seed = strtoull(seed_s, &end, 10);
        if (*end || !*seed_s) {
            fprintf(stderr, "kiln run: --seed '%s' is not a number\n", seed_s);
            cJSON_Delete(req);
            cJSON_Delete(params);
            kiln_engine_free(e);
            return 2;
        }
        cJSON_AddNumberToObject(params, "seed", (double)seed);
    }
    cJSON_AddItemToObject(req, "params", params);
    char *req_text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);

    char *job = NULL, *name = NULL, *ev = NULL;
    int rc = 1;
    kiln_status st = kiln_engine_submit_json(e, req_text, NULL, &job);
    if (st) goto done;
    cJSON *j = cJSON_Parse(job);
    char id[32];
    snprintf(id, sizeof id, "%s", cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring);
    cJSON_Delete(j);
    if (!quiet) fprintf(stderr, "kiln run: job %s\n", id);
    int seq = 0;
    bool final = false;
    while (!final) {
        free(name);
        free(ev);
        name = ev = NULL;
        if ((st = kiln_engine_next_event(e, id, &seq, 1.0, &name, &ev, &final))) goto done;
        if (!name) continue;
        cJSON *d = cJSON_Parse(ev);
        if (!strcmp(name, "progress") && image && !quiet) {
            const cJSON *step = cJSON_GetObjectItemCaseSensitive(d, "step"), *steps = cJSON_GetObjectItemCaseSensitive(d, "steps");
            if (cJSON_IsNumber(step) && cJSON_IsNumber(steps))
                fprintf(stderr, "\rkiln run: step %d/%d", step->valueint, steps->valueint);
            if (cJSON_IsNumber(step) && cJSON_IsNumber(steps) && step->valueint == steps->valueint) fputc('\n', stderr);
        } else if (!strcmp(name, "delta")) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "text");
            if (cJSON_IsString(t)) fputs(t->valuestring, stdout);
            fflush(stdout);
        } else if (final) {
            const cJSON *err = cJSON_GetObjectItemCaseSensitive(d, "error");
            const cJSON *tps = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "result"), "timings"),
                "tokens_per_second");
            if (embed && !strcmp(name, "completed")) print_embedding(cJSON_GetObjectItemCaseSensitive(d, "result"));
            else if (image && !strcmp(name, "completed")) print_images(cJSON_GetObjectItemCaseSensitive(d, "result"), data);
            else if (!image) putchar('\n');
            if (!strcmp(name, "completed")) {
                rc = 0;
                if (!quiet && cJSON_IsNumber(tps)) fprintf(stderr, "kiln run: %.1f tokens/s\n", tps->valuedouble);
            } else {
                fprintf(stderr, "kiln run: job %s: %s\n", name, cJSON_IsString(err) ? err->valuestring : "");
            }
        }
        cJSON_Delete(d);
    }
done:
    if (st) fprintf(stderr, "kiln run: %s\n", kiln_last_error());
    free(name);
    free(ev);
    free(job);
    free(req_text);
    kiln_engine_free(e);
    return rc;
}
