/*
 * llm.c — the public language-model API of include/kiln.h: a model plus its
 * tokenizer, evaluation (perplexity, logits) and streamed generation with samplers
 * and stop strings.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/mapfile.h"
#include "base/status.h"
#include "base/timer.h"
#include "kiln.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "kernels/kernels.h"
#include "models/llama.h"
#include "pipelines/sampler.h"
#include "pipelines/stop.h"
#include "tokenizers/tokenizer.h"

struct kiln_llm {
    kiln_llama *model;
    kiln_tokenizer *tok;  /* NULL when the model came without one */
    char *chat_template;  /* NULL when the model has none */
    char *bos_text, *eos_text;
};

/* ---- loading --------------------------------------------------------------------- */

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* Directory part of path (malloc'd), "." if none. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? kiln_strndup(path, (size_t)(slash - path)) : kiln_strdup(".");
}

static bool is_gguf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return false;
    bool ok = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(f);
    return ok;
}

static kiln_status tokenizer_from_file(const char *path, int32_t n_vocab, kiln_tokenizer **out) {
    if (has_suffix(path, ".json")) {
        char *dir = dir_of(path);
        if (!dir) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        char cfg[4096];
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
        free(dir);
        return kiln_tokenizer_from_json(path, file_exists(cfg) ? cfg : NULL, out);
    }
    if (is_gguf_file(path)) {
        kiln_gguf *g = NULL;
        kiln_status st = kiln_gguf_open(path, &g);
        if (st) return st;
        st = kiln_tokenizer_from_gguf(g, out);
        kiln_gguf_close(g);
        return st;
    }
    return kiln_tokenizer_from_llama2c(path, n_vocab, out);
}

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The tokenizer that came with a model, if any (*out stays NULL if none). gguf is the
 * model's open GGUF or NULL; n_vocab is the model's vocabulary size, which llama2.c
 * tokenizer files need because they do not store it. */
static kiln_status tokenizer_beside_model(const char *path, const kiln_gguf *gguf, int32_t n_vocab,
                                          kiln_tokenizer **out) {
    char p[4096];
    if (gguf) return kiln_gguf_find(gguf, "tokenizer.ggml.model") ? kiln_tokenizer_from_gguf(gguf, out) : KILN_OK;
    if (is_dir(path)) {
        snprintf(p, sizeof p, "%s/tokenizer.json", path);
        if (file_exists(p)) return tokenizer_from_file(p, n_vocab, out);
        /* a BERT folder may have only BertTokenizer's vocab.txt */
        char cfg[4096];
        snprintf(p, sizeof p, "%s/vocab.txt", path);
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", path);
        return file_exists(p) ? kiln_tokenizer_from_vocab_txt(p, file_exists(cfg) ? cfg : NULL, out) : KILN_OK;
    }
    char *dir = dir_of(path); /* a llama2.c checkpoint: tokenizer.bin beside it */
    if (!dir) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    snprintf(p, sizeof p, "%s/tokenizer.bin", dir);
    free(dir);
    return file_exists(p) ? tokenizer_from_file(p, n_vocab, out) : KILN_OK;
}

/* Vocabulary size of a llama2.c checkpoint. */
static kiln_status llama2c_vocab(const char *model_path, int32_t *n_vocab) {
    kiln_llama2c *m = NULL;
    kiln_status st = kiln_llama2c_open(model_path, &m);
    if (st) return st;
    *n_vocab = kiln_llama2c_config_get(m)->vocab_size;
    kiln_llama2c_close(m);
    return KILN_OK;
}

kiln_status kiln_tokenizer_load(const char *model_path, const char *tokenizer_path, kiln_tokenizer **out) {
    *out = NULL;
    kiln_status st;
    int32_t n_vocab = 0;
    if (tokenizer_path) {
        if (!file_exists(tokenizer_path)) return kiln_fail(KILN_ERR_NOT_FOUND, "%s: no such file", tokenizer_path);
        if (!has_suffix(tokenizer_path, ".json") && !is_gguf_file(tokenizer_path)) {
            /* llama2.c tokenizer.bin: the vocabulary size lives in the checkpoint */
            if (!model_path)
                return kiln_fail(KILN_ERR_INVALID_ARG, "%s: a llama2.c tokenizer needs its checkpoint (-m MODEL.bin)",
                                 tokenizer_path);
            if ((st = llama2c_vocab(model_path, &n_vocab))) return st;
        }
        return tokenizer_from_file(tokenizer_path, n_vocab, out);
    }
    if (!model_path) return kiln_fail(KILN_ERR_INVALID_ARG, "no model or tokenizer given");
    if (!file_exists(model_path) && !is_dir(model_path))
        return kiln_fail(KILN_ERR_NOT_FOUND, "%s: no such file or folder", model_path);
    if (is_gguf_file(model_path) || has_suffix(model_path, ".json")) {
        st = tokenizer_from_file(model_path, 0, out);
    } else {
        if (!is_dir(model_path) && (st = llama2c_vocab(model_path, &n_vocab))) return st;
        st = tokenizer_beside_model(model_path, NULL, n_vocab, out);
    }
    if (!st && !*out)
        st = kiln_fail(KILN_ERR_NOT_FOUND, "%s: no tokenizer found with the model (give --tokenizer)", model_path);
    return st;
}

/* The chat template shipped with the model: GGUF metadata, or tokenizer_config.json in
 * a Hugging Face folder (a plain string, or the entry named "default" of a list). */
static kiln_status load_chat_template(kiln_llm *llm, const char *path) {
    const kiln_gguf *g = kiln_llama_gguf(llm->model);
    if (g) {
        kiln_gguf_str s;
        if (kiln_gguf_get_str(g, "tokenizer.chat_template", &s) && s.len) {
            if (!(llm->chat_template = kiln_strndup(s.ptr, (size_t)s.len)))
                return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        }
        return KILN_OK;
    }
    if (!is_dir(path)) return KILN_OK;
    kiln_buf f = {0};
    kiln_status st = kiln_buf_printf(&f, "%s/tokenizer_config.json", path);
    if (st || !file_exists(f.data)) {
        kiln_buf_free(&f);
        return st;
    }
    char *text = NULL;
    size_t len = 0;
    st = kiln_read_file(f.data, 64u << 20, &text, &len);
    kiln_buf_free(&f);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsArray(t)) {
        const cJSON *e, *found = NULL;
        cJSON_ArrayForEach(e, t) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default"))
                found = cJSON_GetObjectItemCaseSensitive(e, "template");
        }
        t = found;
    }
    if (cJSON_IsString(t) && !(llm->chat_template = kiln_strdup(t->valuestring)))
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    cJSON_Delete(root);
    return st;
}

static kiln_status token_text(const kiln_tokenizer *tok, int32_t id, char **out) {
    if (id < 0) return KILN_OK;
    kiln_buf b = {0};
    kiln_status st = kiln_tokenizer_piece(tok, id, &b);
    if (!st) {
        *out = b.data ? b.data : kiln_strdup("");
        if (!*out) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    } else {
        kiln_buf_free(&b);
    }
    return st;
}

kiln_status kiln_llm_load(const kiln_llm_options *opt, kiln_llm **out) {
    *out = NULL;
    if (!opt || !opt->path) return kiln_fail(KILN_ERR_INVALID_ARG, "no model path given");
    kiln_llm *llm = calloc(1, sizeof *llm);
    if (!llm) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    kiln_llama_options mo = {.path = opt->path, .n_ctx = opt->n_ctx, .n_threads = opt->n_threads,
                             .max_runtime_bytes = opt->max_memory};
    kiln_status st = kiln_llama_load(&mo, &llm->model);
    if (!st) {
        int32_t n_vocab = kiln_llama_get_config(llm->model)->n_vocab;
        st = opt->tokenizer_path ? tokenizer_from_file(opt->tokenizer_path, n_vocab, &llm->tok)
                                 : tokenizer_beside_model(opt->path, kiln_llama_gguf(llm->model), n_vocab, &llm->tok);
        if (!st && llm->tok && kiln_tokenizer_n_vocab(llm->tok) > n_vocab)
            st = kiln_fail(KILN_ERR_FORMAT, "the tokenizer has %d tokens but the model only %d",
                           kiln_tokenizer_n_vocab(llm->tok), n_vocab);
    }
    if (!st) st = load_chat_template(llm, opt->path);
    if (!st && llm->tok) st = token_text(llm->tok, kiln_tokenizer_bos(llm->tok), &llm->bos_text);
    if (!st && llm->tok) st = token_text(llm->tok, kiln_tokenizer_eos(llm->tok), &llm->eos_text);
    if (st) {
        kiln_llm_free(llm);
        return st;
    }
    *out = llm;
    return KILN_OK;
}

void kiln_llm_free(kiln_llm *llm) {
    if (!llm) return;
    kiln_tokenizer_free(llm->tok);
    kiln_llama_free(llm->model);
    free(llm->chat_template);
    free(llm->bos_text);
    free(llm->eos_text);
    free(llm);
}

size_t kiln_llm_memory(const kiln_llm *llm) { return kiln_llama_runtime_bytes(llm->model); }

const char *kiln_llm_chat_template(const kiln_llm *llm) { return llm->chat_template; }

const char *kiln_llm_token_text(const kiln_llm *llm, int32_t id) {
    if (!llm->tok) return NULL;
    if (id == kiln_tokenizer_bos(llm->tok)) return llm->bos_text;
    if (id == kiln_tokenizer_eos(llm->tok)) return llm->eos_text;
    return NULL;
}

void kiln_llm_get_info(const kiln_llm *llm, kiln_llm_info *info) {
    const kiln_llama_config *c = kiln_llama_get_config(llm->model);
    memset(info, 0, sizeof *info);
    info->arch = c->arch;
    info->n_vocab = c->n_vocab;
    info->n_ctx = kiln_llama_n_ctx(llm->model);
    info->n_layer = c->n_layer;
    info->n_embd = c->n_embd;
    info->n_head = c->n_head;
    info->n_head_kv = c->n_head_kv;
    info->has_tokenizer = llm->tok != NULL;
    info->bos_id = llm->tok ? kiln_tokenizer_bos(llm->tok) : -1;
    info->eos_id = llm->tok ? kiln_tokenizer_eos(llm->tok) : -1;
}

static kiln_status need_tokenizer(const kiln_llm *llm) {
    return llm->tok ? KILN_OK
                    : kiln_fail(KILN_ERR_NOT_FOUND, "the model has no tokenizer: give one (tokenizer.json, "
                                                    "tokenizer.bin or a .gguf) or pass token ids");
}

kiln_status kiln_llm_tokenize(kiln_llm *llm, const char *text, size_t len, bool add_bos, int32_t **ids, size_t *n) {
    kiln_status st = need_tokenizer(llm);
    if (st) return st;
    return kiln_tokenizer_encode(llm->tok, text, len, add_bos, true, ids, n);
}

/* ---- evaluation ----------------------------------------------------------------- */

/* log softmax(logits)[id] in double precision. */
static double log_prob(const float *logits, int n_vocab, int32_t id) {
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[id] - mx - log(sum);
}

kiln_status kiln_llm_eval(kiln_llm *llm, const int32_t *ids, size_t n, double *nll_sum, float *last_logits) {
    if (n == 0) return kiln_fail(KILN_ERR_INVALID_ARG, "no tokens to evaluate");
    int n_ctx = kiln_llama_n_ctx(llm->model);
    if (n > (size_t)n_ctx)
        return kiln_fail(KILN_ERR_CONTEXT_FULL, "%zu tokens do not fit in the context of %d", n, n_ctx);
    int n_vocab = kiln_llama_get_config(llm->model)->n_vocab;
    const int chunk = 64; /* logits for all positions of a chunk at a time: bounded memory */
    float *logits = kiln_malloc_array((size_t)chunk * n_vocab, sizeof *logits);
    if (!logits) return kiln_fail(KILN_ERR_NOMEM, "out of memory for logits");
    double nll = 0;
    kiln_status st = KILN_OK;
    for (size_t done = 0; done < n && !st;) {
        int k = n - done < (size_t)chunk ? (int)(n - done) : chunk;
        st = kiln_llama_forward(llm->model, ids + done, k, (int)done, logits, true);
        if (st) break;
        for (int i = 0; i < k; i++) {
            size_t t = done + i;
            if (t + 1 < n) nll -= log_prob(logits + (size_t)i * n_vocab, n_vocab, ids[t + 1]);
        }
        done += k;
        if (done == n && last_logits) memcpy(last_logits, logits + (size_t)(k - 1) * n_vocab, (size_t)n_vocab * sizeof(float));
    }
    free(logits);
    if (!st && nll_sum) *nll_sum = nll;
    return st;
}

kiln_status kiln_llm_decode(kiln_llm *llm, const int32_t *ids, size_t n, size_t pos, float *logits) {
    if (n == 0) return kiln_fail(KILN_ERR_INVALID_ARG, "no tokens to decode");
    int n_ctx = kiln_llama_n_ctx(llm->model);
    if (pos > (size_t)n_ctx || n > (size_t)n_ctx - pos)
        return kiln_fail(KILN_ERR_CONTEXT_FULL, "%zu tokens at position %zu do not fit in the context of %d", n, pos,
                         n_ctx);
    return kiln_llama_forward(llm->model, ids, (int)n, (int)pos, logits, false);
}

const char *kiln_kernel_isa(void) { return kiln_kernels_isa(); }

/* ---- generation ------------------------------------------------------------------ */

void kiln_sample_options_default(kiln_sample_options *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 256;
    o->temperature = 0.8f;
    o->top_k = 40;
    o->top_p = 0.95f;
    o->min_p = 0.05f;
    o->repeat_penalty = 1.0f;
    o->repeat_last_n = 64;
    o->seed = 0;
    o->add_bos = true;
}

typedef struct {
    kiln_text_fn fn;
    void *user;
    bool stopped_by_callback;
} emitter;

/* Called once per token, with empty text too, so callers can count tokens and stop. */
static void emit(emitter *e, kiln_buf *b) {
    if (!e->stopped_by_callback && !e->fn(b->data ? b->data : "", b->len, e->user)) e->stopped_by_callback = true;
    kiln_buf_clear(b);
}

kiln_status kiln_llm_generate(kiln_llm *llm, const char *prompt, const kiln_sample_options *opt, kiln_text_fn fn,
                              void *user, kiln_gen_stats *stats) {
    kiln_status st = need_tokenizer(llm);
    if (st) return st;
    kiln_gen_stats local = {0};
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    const kiln_llama_config *c = kiln_llama_get_config(llm->model);
    int n_ctx = kiln_llama_n_ctx(llm->model);

    int32_t *ids = NULL;
    size_t n_ids = 0;
    kiln_sampler *smp = NULL;
    kiln_stop *stop = NULL;
    kiln_detok *dt = NULL;
    kiln_buf text = {0}, out = {0};
    float *logits = kiln_malloc_array((size_t)c->n_vocab, sizeof *logits);
    kiln_sampler_params sp = {opt->temperature, opt->top_k, opt->top_p, opt->min_p, opt->repeat_penalty,
                              opt->repeat_last_n, opt->frequency_penalty, opt->presence_penalty, opt->seed};
    if (!logits) {
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = kiln_tokenizer_encode(llm->tok, prompt, strlen(prompt), opt->add_bos, true, &ids, &n_ids)) ||
        (st = kiln_sampler_create(&sp, c->n_vocab, &smp)) || (st = kiln_stop_create(opt->stop, &stop)) ||
        (st = kiln_detok_create(llm->tok, &dt)))
        goto done;
    if (n_ids == 0) {
        st = kiln_fail(KILN_ERR_INVALID_ARG, "the prompt is empty and the model adds no BOS token: nothing to start from");
        goto done;
    }
    if (n_ids >= (size_t)n_ctx) {
        st = kiln_fail(KILN_ERR_CONTEXT_FULL, "the prompt has %zu tokens; the context holds %d", n_ids, n_ctx);
        goto done;
    }
    /* The prompt goes through the detokenizer too (its text is dropped: the caller has
     * it), so the continuation is rendered in context (e.g. SentencePiece's leading
     * space after BOS). */
    for (size_t i = 0; i < n_ids; i++) {
        if ((st = kiln_detok_push(dt, ids[i], &text))) goto done;
    }
    kiln_buf_clear(&text);
    double t0 = kiln_time_now();
    if ((st = kiln_llama_forward(llm->model, ids, (int)n_ids, 0, logits, false))) goto done;
    for (size_t i = 0; i < n_ids; i++) kiln_sampler_accept(smp, ids[i]);
    double t1 = kiln_time_now();
    stats->n_prompt = (int)n_ids;
    stats->prompt_seconds = t1 - t0;

    emitter em = {fn, user, false};
    int pos = (int)n_ids;
    stats->stop_reason = "length";
    for (;;) {
        if (opt->max_tokens > 0 && stats->n_generated >= opt->max_tokens) break;
        int32_t id = kiln_sampler_sample(smp, logits);
        if (kiln_tokenizer_is_eog(llm->tok, id)) {
            stats->stop_reason = "eos";
            break;
        }
        kiln_sampler_accept(smp, id);
        stats->n_generated++;
        if ((st = kiln_detok_push(dt, id, &text))) goto done;
        bool hit = kiln_stop_feed(stop, text.data ? text.data : "", text.len, &out);
        kiln_buf_clear(&text);
        emit(&em, &out);
        if (hit) {
            stats->stop_reason = "stop";
            break;
        }
        if (em.stopped_by_callback) {
            stats->stop_reason = "callback";
            break;
        }
        if (pos >= n_ctx) {
            stats->stop_reason = "context";
            break;
        }
        if ((st = kiln_llama_forward(llm->model, &id, 1, pos, logits, false))) goto done;
        pos++;
    }
    if (strcmp(stats->stop_reason, "stop") != 0) {
        if ((st = kiln_detok_flush(dt, &text))) goto done;
        kiln_stop_feed(stop, text.data ? text.data : "", text.len, &out);
        kiln_stop_flush(stop, &out);
        if (out.len) emit(&em, &out); /* text held back at the end: not a new token */
    }
    stats->gen_seconds = kiln_time_now() - t1;
done:
    free(logits);
    free(ids);
    kiln_sampler_free(smp);
    kiln_stop_free(stop);
    kiln_detok_free(dt);
    kiln_buf_free(&text);
    kiln_buf_free(&out);
    return st;
}
