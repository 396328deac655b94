/*
 * cmd_quantize.c — `kiln quantize`: converts a GGUF model's weights to another type,
 * or (--random SHAPE) writes a random-weight GGUF of a real model's shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"
#include "util.h"

static void progress(const char *tensor, int done, int total, void *user) {
    const bool *show = user;
    if (!*show) return;
    fprintf(stderr, "\r[%d/%d] %-48.48s", done, total, tensor);
    if (done == total) fputc('\n', stderr);
}

int kiln_cmd_quantize(int argc, char **argv) {
    int threads = 0;
    uint64_t seed = 0;
    bool quiet = false;
    const char *random_shape = NULL;
    arg_spec specs[] = {
        {"--threads", "-t", ARG_INT, &threads, "threads (default: all cores)"},
        {"--random", NULL, ARG_STR, &random_shape, "write random weights of a named shape instead of reading IN"},
        {"--seed", "-s", ARG_U64, &seed, "seed of the random weights (default 0)"},
        {"--quiet", "-q", ARG_FLAG, &quiet, "no progress on stderr"},
    };
    const char *pos[3];
    int n_pos;
    char usage[1024];
    const char *const *shapes = kiln_random_shapes();
    int len = snprintf(usage, sizeof usage,
                       "usage: kiln quantize IN.gguf OUT.gguf TYPE [--threads N]\n"
                       "       kiln quantize --random SHAPE OUT.gguf TYPE [--seed S] [--threads N]\n"
                       "TYPE: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k q4_k_m q5_k_m\n"
                       "      (1-D tensors stay f32; types this build cannot write are refused)\nSHAPE:");
    for (int i = 0; shapes[i] && len > 0 && (size_t)len < sizeof usage; i++)
        len += snprintf(usage + len, sizeof usage - (size_t)len, " %s", shapes[i]);
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 3, &n_pos, usage);
    if (r) return r == 1 ? 0 : 2;
    bool show = !quiet && isatty(2); /* the per-tensor line only on a terminal */
    int want = random_shape ? 2 : 3;
    if (n_pos != want) {
        fprintf(stderr, "kiln quantize: expected %s (see kiln quantize --help)\n",
                random_shape ? "OUT.gguf TYPE after --random SHAPE" : "IN.gguf OUT.gguf TYPE");
        return 2;
    }
    double t0 = cli_now();
    kiln_status st;
    const char *out = pos[want - 2], *type = pos[want - 1];
    if (random_shape) {
        kiln_random_model_options o = {random_shape, type, seed, threads, progress, &show};
        st = kiln_model_random(out, &o);
    } else {
        kiln_quantize_options o = {type, threads, progress, &show};
        st = kiln_model_quantize(pos[0], out, &o);
    }
    if (st) {
        if (show) fputc('\n', stderr);
        fprintf(stderr, "kiln quantize: %s\n", kiln_last_error());
        return st == KILN_ERR_INVALID_ARG ? 2 : 1;
    }
    if (!quiet) fprintf(stderr, "kiln quantize: wrote %s (%s) in %.1f s\n", out, type, cli_now() - t0);
    return 0;
}
