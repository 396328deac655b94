/*
 * cmd_bench_sd.c — `kiln bench` for Stable Diffusion models: seconds per denoising
 * step with guidance (two UNet passes), the VAE decode and the text encoder at a
 * size, through kiln_sd_bench, plus the process's peak resident memory.
 */
#include <stdio.h>
#include <sys/resource.h>

#include "cli.h"
#include "kiln.h"

int cli_bench_sd(const char *model, int threads, int reps, int width, int height, const char *precision, bool json) {
    kiln_sd_options o = {.path = model, .n_threads = threads, .precision = precision};
    kiln_sd *m = NULL;
    if (kiln_sd_load(&o, &m)) {
        fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
        return 1;
    }
    kiln_sd_bench_result r;
    kiln_status st = kiln_sd_bench(m, width, height, reps, &r);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double rss = (double)ru.ru_maxrss / 1024.0;
    if (st) {
        fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
    } else if (json) {
        printf("{\"model\": \"%s\", \"width\": %d, \"height\": %d, \"precision\": \"%s\", \"threads\": %d, "
               "\"step_s\": %.4f, \"step_sd\": %.4f, \"decode_s\": %.4f, \"text_s\": %.5f, \"peak_rss_mib\": %.0f}\n",
               model, width, height, kiln_sd_precision(m), threads, r.step_s, r.step_sd, r.decode_s, r.text_s, rss);
    } else {
        printf("| model | size | precision | step with guidance (s) | VAE decode (s) | text encoder (s) | peak RSS (MiB) |\n");
        printf("|---|---|---|---|---|---|---|\n");
        printf("| %s | %dx%d | %s | %.3f ± %.3f | %.3f | %.4f | %.0f |\n", model, width, height, kiln_sd_precision(m),
               r.step_s, r.step_sd, r.decode_s, r.text_s, rss);
    }
    kiln_sd_free(m);
    return st ? 1 : 0;
}
