/*
 * cli.h — the subcommands of the kiln program. Each takes argv starting at the
 * subcommand's name and returns the process exit status (0 ok, 1 error, 2 usage).
 */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>

int kiln_cmd_generate(int argc, char **argv);
int kiln_cmd_tokenize(int argc, char **argv);
int kiln_cmd_embed(int argc, char **argv);
int kiln_cmd_image(int argc, char **argv);
int kiln_cmd_eval(int argc, char **argv);
int kiln_cmd_info(int argc, char **argv);
int kiln_cmd_template(int argc, char **argv);
int kiln_cmd_serve(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_jobs(int argc, char **argv);
int kiln_cmd_quantize(int argc, char **argv);
int kiln_cmd_bench(int argc, char **argv);
/* kiln bench for an embedding model (cmd_bench_embed.c). */
int cli_bench_embed(const char *model, int threads, int reps, int short_len, int long_len, int n_texts, bool json);

/* kiln bench for a Stable Diffusion model (cmd_bench_sd.c). */
int cli_bench_sd(const char *model, int threads, int reps, int width, int height, const char *precision, bool json);

#endif
