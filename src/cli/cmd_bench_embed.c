/*
 * cmd_bench_embed.c — `kiln bench` for embedding models: the latency of one short
 * text (the search-query case) and the throughput of a batch of long ones (the
 * indexing case), end to end through kiln_embedder_embed (tokenizing, batching,
 * encoder, pooling), plus the process's peak resident memory.
 *
 * A text of L tokens is L - 2 copies of the word "a" ([CLS] and [SEP] make the rest):
 * one token per word in any uncased WordPiece vocabulary, and the encoder's work
 * does not depend on which tokens it sees. The token count is checked, not assumed.
 * A warm-up call comes first and is not counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "kiln.h"
#include "util.h"

static char *text_of(int tokens) {
    const size_t words = tokens > 2 ? (size_t)tokens - 2 : 0, n = words ? 2 * words - 1 : 0;
    char *t = malloc(n + 1);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) t[i] = i % 2 ? ' ' : 'a';
    t[n] = 0;
    return t;
}

typedef struct {
    double mean, sd;
} stat;

static stat stats(const double *v, int n) {
    stat r;
    cli_mean_sd(v, n, &r.mean, &r.sd);
    return r;
}

/* Times calls of n_texts copies of a text of len tokens: seconds per call in secs[]. */
static int timed(kiln_embedder *e, int len, int n_texts, int calls, float *out, double *secs) {
    char *t = text_of(len);
    const char **texts = malloc(sizeof *texts * (size_t)n_texts);
    kiln_embed_result *res = malloc(sizeof *res * (size_t)n_texts);
    int rc = 1;
    if (!t || !texts || !res) {
        fprintf(stderr, "kiln bench: out of memory\n");
        goto out;
    }
    for (int i = 0; i < n_texts; i++) texts[i] = t;
    for (int c = -1; c < calls; c++) { /* c = -1: warm-up */
        double t0 = cli_now();
        if (kiln_embedder_embed(e, texts, NULL, (size_t)n_texts, out, res)) {
            fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
            goto out;
        }
        if (c >= 0) secs[c] = cli_now() - t0;
    }
    if (res[0].tokens != len) {
        fprintf(stderr, "kiln bench: a %d-token text came out as %d tokens (the model's maximum is lower?)\n", len,
                res[0].tokens);
        goto out;
    }
    rc = 0;
out:
    free(t);
    free(texts);
    free(res);
    return rc;
}

int cli_bench_embed(const char *model, int threads, int reps, int short_len, int long_len, int n_texts, bool json) {
    kiln_embedder_options o = {.path = model, .n_threads = threads};
    kiln_embedder *e = NULL;
    if (kiln_embedder_load(&o, &e)) {
        fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
        return 1;
    }
    kiln_embedder_info info;
    kiln_embedder_get_info(e, &info);
    const int short_calls = reps * 20;
    float *out = malloc(sizeof(float) * (size_t)info.dim * (size_t)(n_texts > 1 ? n_texts : 1));
    double *s_short = calloc((size_t)short_calls, sizeof(double)), *s_long = calloc((size_t)reps, sizeof(double));
    int rc = 1;
    if (!out || !s_short || !s_long) {
        fprintf(stderr, "kiln bench: out of memory\n");
        goto done;
    }
    if (short_len && timed(e, short_len, 1, short_calls, out, s_short)) goto done;
    if (long_len && n_texts && timed(e, long_len, n_texts, reps, out, s_long)) goto done;
    for (int i = 0; i < short_calls; i++) s_short[i] *= 1e3; /* ms per text */
    for (int i = 0; i < reps; i++) s_long[i] = (double)long_len * n_texts / s_long[i]; /* tokens per second */
    stat sh = stats(s_short, short_len ? short_calls : 0), lg = stats(s_long, long_len && n_texts ? reps : 0);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double rss_mib = ru.ru_maxrss / 1024.0; /* Linux: KiB */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = threads > 0 ? threads : (cores > 0 ? (int)cores : 1);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", model);
        cJSON_AddStringToObject(j, "arch", "bert");
        cJSON_AddNumberToObject(j, "dim", info.dim);
        cJSON_AddNumberToObject(j, "n_layer", info.n_layer);
        cJSON_AddNumberToObject(j, "threads", n_threads);
        cJSON_AddStringToObject(j, "isa", kiln_kernel_isa());
        cJSON_AddNumberToObject(j, "repetitions", reps);
        if (short_len) {
            cJSON *s = cJSON_AddObjectToObject(j, "short");
            cJSON_AddNumberToObject(s, "tokens", short_len);
            cJSON_AddNumberToObject(s, "ms_mean", sh.mean);
            cJSON_AddNumberToObject(s, "ms_sd", sh.sd);
        }
        if (long_len && n_texts) {
            cJSON *b = cJSON_AddObjectToObject(j, "batch");
            cJSON_AddNumberToObject(b, "texts", n_texts);
            cJSON_AddNumberToObject(b, "tokens", long_len);
            cJSON_AddNumberToObject(b, "tok_s_mean", lg.mean);
            cJSON_AddNumberToObject(b, "tok_s_sd", lg.sd);
        }
        cJSON_AddNumberToObject(j, "peak_rss_mib", rss_mib);
        char *text = cJSON_PrintUnformatted(j);
        if (text) printf("%s\n", text);
        free(text);
        cJSON_Delete(j);
    } else {
        printf("model %s: bert, %d layers, dim %d, %s, %d threads\n", model, info.n_layer, info.dim,
               kiln_kernel_isa(), n_threads);
        if (short_len)
            printf("  1 text of %d tokens:     %8.3f ± %.3f ms\n", short_len, sh.mean, sh.sd);
        if (long_len && n_texts)
            printf("  %d texts of %d tokens: %8.0f ± %.0f tokens/s\n", n_texts, long_len, lg.mean, lg.sd);
        printf("  peak resident memory:   %8.1f MiB\n", rss_mib);
    }
    rc = 0;
done:
    free(out);
    free(s_short);
    free(s_long);
    kiln_embedder_free(e);
    return rc;
}
