/*
 * cmd_serve.c — `kiln serve`: the engine behind the HTTP API until SIGINT/SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "kiln.h"
#include "util.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* Reads API keys, one per line (blank lines and lines starting with # skipped). */
static int read_keys(const char *path, const char **keys, int n, int max, char **text_out) {
    size_t len;
    char *text = cli_read_file("serve", path, &len);
    if (!text) return -1;
    *text_out = text;
    for (char *line = strtok(text, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        while (*line == ' ' || *line == '\t') line++;
        if (!*line || *line == '#') continue;
        if (n >= max) {
            fprintf(stderr, "kiln serve: %s: more than %d keys\n", path, max - 1);
            return -1;
        }
        keys[n++] = line;
    }
    return n;
}

int kiln_cmd_serve(int argc, char **argv) {
    const char *host = "127.0.0.1", *models = NULL, *data = "kiln-data", *config = NULL, *budget_s = NULL;
    const char *key_file = NULL, *max_body_s = NULL;
    int port = 8080, max_queue = 256, parallel = 1, threads = 0, max_tokens = 4096, max_conn = 256;
    float keep_alive = 300, req_timeout = 30;
    str_list keys = {0};
    arg_spec specs[] = {
        {"--host", NULL, ARG_STR, &host, "address to listen on (default 127.0.0.1)"},
        {"--port", NULL, ARG_INT, &port, "port (default 8080; 0: any free port)"},
        {"--models", NULL, ARG_STR, &models, "the models directory (required)"},
        {"--data", NULL, ARG_STR, &data, "where kiln keeps its job store and outputs (default ./kiln-data)"},
        {"--config", NULL, ARG_STR, &config, "programs and model settings (default DATA/kiln.json if present)"},
        {"--api-key", NULL, ARG_STR_LIST, &keys, "require this API key (repeatable)"},
        {"--api-key-file", NULL, ARG_STR, &key_file, "require one of the keys in this file (one per line)"},
        {"--memory-budget", NULL, ARG_STR, &budget_s, "memory for loaded models, e.g. 8G (default: no budget)"},
        {"--keep-alive", NULL, ARG_FLOAT, &keep_alive, "seconds an idle model stays loaded (default 300; -1 forever)"},
        {"--max-queue", NULL, ARG_INT, &max_queue, "queued jobs accepted before 429 (default 256)"},
        {"--parallel", NULL, ARG_INT, &parallel, "jobs running at once (default 1)"},
        {"--threads", "-t", ARG_INT, &threads, "threads per model (default: all cores)"},
        {"--max-tokens", NULL, ARG_INT, &max_tokens, "largest max_tokens a request may ask (default 4096)"},
        {"--max-body", NULL, ARG_STR, &max_body_s, "largest request body (default 4M)"},
        {"--max-connections", NULL, ARG_INT, &max_conn, "open connections (default 256)"},
        {"--request-timeout", NULL, ARG_FLOAT, &req_timeout, "seconds to receive a request (default 30)"},
    };
    const char *pos[1];
    int n_pos;
    int r = args_parse(argc, argv, specs, sizeof specs / sizeof specs[0], pos, 0, &n_pos,
                       "usage: kiln serve --models DIR [--data DIR] [--host ADDR] [--port N] [--config FILE]\n"
                       "                  [--api-key KEY] [--memory-budget SIZE] [--parallel N]");
    if (r) return r == 1 ? 0 : 2;
    if (!models) {
        fprintf(stderr, "kiln serve: --models DIR is required\n");
        return 2;
    }
    int64_t budget = 0, max_body = 4 << 20;
    if (budget_s && !cli_parse_size("serve", "--memory-budget", budget_s, &budget)) return 2;
    if (max_body_s && !cli_parse_size("serve", "--max-body", max_body_s, &max_body)) return 2;
    const char *all_keys[129];
    int n_keys = 0;
    for (int i = 0; i < keys.n; i++) all_keys[n_keys++] = keys.items[i];
    char *key_text = NULL;
    if (key_file && (n_keys = read_keys(key_file, all_keys, n_keys, 128, &key_text)) < 0) {
        free(key_text);
        return 1;
    }
    all_keys[n_keys] = NULL;

    kiln_engine_options eo = {.models_dir = models, .data_dir = data, .config_path = config,
                              .memory_budget = budget, .max_queue = max_queue, .max_running = parallel,
                              .n_threads = threads, .keep_alive = keep_alive,
                              .max_tokens = max_tokens};
    kiln_engine *e = NULL;
    kiln_server *s = NULL;
    kiln_status st = kiln_engine_create(&eo, &e);
    if (!st) {
        kiln_server_options so = {.host = host, .port = port, .api_keys = all_keys, .max_body = (size_t)max_body,
                                  .max_connections = max_conn, .request_timeout = req_timeout};
        st = kiln_server_start(e, &so, &s);
    }
    if (st) {
        fprintf(stderr, "kiln serve: %s\n", kiln_last_error());
        kiln_engine_free(e);
        free(key_text);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "kiln serve: listening on http://%s:%d (models %s, data %s)\n", host, kiln_server_port(s), models,
            data);
    while (!g_stop) pause();
    fprintf(stderr, "kiln serve: stopping\n");
    kiln_server_stop(s);
    kiln_engine_free(e);
    free(key_text);
    return 0;
}
