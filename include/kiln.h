/*
 * kiln.h — the public C API of libkiln.
 *
 * Everything a program (the kiln CLI, later the server, or a user's own code) needs
 * to load a language model and run it: status codes, opaque handles and option
 * structs. Every fallible function returns a kiln_status; on failure a message that
 * names the problem can be read with kiln_last_error() on the same thread.
 */
#ifndef KILN_H
#define KILN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------------ */

/* X-macro: one line per status, giving the enum suffix and a short description. */
#define KILN_STATUS_LIST(X)                                           \
    X(OK, "ok")                                                       \
    X(ERR_IO, "input/output error")                                   \
    X(ERR_FORMAT, "malformed file")                                   \
    X(ERR_UNSUPPORTED, "unsupported")                                 \
    X(ERR_NOMEM, "out of memory")                                     \
    X(ERR_INVALID_ARG, "invalid argument")                            \
    X(ERR_NOT_FOUND, "not found")                                     \
    X(ERR_CONTEXT_FULL, "context full")                               \
    X(ERR_CANCELLED, "cancelled")

typedef enum {
#define KILN_X_ENUM(name, desc) KILN_##name,
    KILN_STATUS_LIST(KILN_X_ENUM)
#undef KILN_X_ENUM
} kiln_status;

/* Short name of a status ("ERR_FORMAT"). Never NULL. This function can't fail. */
const char *kiln_status_name(kiln_status s);

/* The message of the last failure on the calling thread ("" if none). The string
 * stays valid until the next failing call on this thread. */
const char *kiln_last_error(void);

/* ---- language models ------------------------------------------------------- */

typedef struct kiln_llm kiln_llm;

typedef struct {
    const char *path;           /* .gguf, llama2.c .bin, or folder with config.json */
    const char *tokenizer_path; /* optional: tokenizer.bin / tokenizer.json / .gguf */
    int n_ctx;                  /* 0: the model's own context length */
    int n_threads;              /* 0: all cores */
} kiln_llm_options;

/* Loads a model. On success *out owns the model; free it with kiln_llm_free. */
kiln_status kiln_llm_load(const kiln_llm_options *opt, kiln_llm **out);
void kiln_llm_free(kiln_llm *llm);

/* Static facts about a loaded model. */
typedef struct {
    const char *arch;    /* "llama", "qwen2" */
    int n_vocab, n_ctx, n_layer, n_embd, n_head, n_head_kv;
    bool has_tokenizer;
    int32_t bos_id, eos_id; /* -1 if none */
} kiln_llm_info;
void kiln_llm_get_info(const kiln_llm *llm, kiln_llm_info *info);

/* Tokenizes text[0..len). On success *ids is malloc'd (caller frees) with *n ids. */
kiln_status kiln_llm_tokenize(kiln_llm *llm, const char *text, size_t len, bool add_bos,
                              int32_t **ids, size_t *n);

/* Runs the model on ids (from position 0, the KV cache is reset). If nll_sum is not
 * NULL it receives the summed negative log-likelihood of ids[1..n) (n_scored = n-1).
 * If last_logits is not NULL it receives n_vocab floats: the logits at the last position. */
kiln_status kiln_llm_eval(kiln_llm *llm, const int32_t *ids, size_t n, double *nll_sum,
                          float *last_logits);

typedef struct {
    int max_tokens;            /* <= 0: until EOS or context full */
    float temperature;         /* 0: greedy */
    int top_k;                 /* 0: off */
    float top_p;               /* 1: off */
    float min_p;               /* 0: off */
    float repeat_penalty;      /* 1: off */
    int repeat_last_n;         /* window for the penalties; 0: 64 */
    float frequency_penalty;   /* 0: off */
    float presence_penalty;    /* 0: off */
    uint64_t seed;
    bool add_bos;
    const char *const *stop;   /* NULL-terminated list of stop strings, or NULL */
} kiln_sample_options;

/* Fills o with the defaults (greedy off: temperature 0.8, top_k 40, top_p 0.95 ...). */
void kiln_sample_options_default(kiln_sample_options *o);

/* Called with each piece of final text; return false to stop generation. */
typedef bool (*kiln_text_fn)(const char *text, size_t len, void *user);

typedef struct {
    int n_prompt, n_generated;
    double prompt_seconds, gen_seconds;
    const char *stop_reason; /* "eos", "length", "stop", "context", "callback" */
} kiln_gen_stats;

/* Generates a continuation of prompt, streaming text through fn. */
kiln_status kiln_llm_generate(kiln_llm *llm, const char *prompt,
                              const kiln_sample_options *opt, kiln_text_fn fn,
                              void *user, kiln_gen_stats *stats);

/* ---- tokenizers ---------------------------------------------------------------- */

typedef struct kiln_tokenizer kiln_tokenizer;

/* Loads the tokenizer of a model without its weights: from tokenizer_path if given
 * (tokenizer.json, llama2.c tokenizer.bin, or any .gguf with tokenizer metadata),
 * else from the model (a GGUF's metadata, a folder's tokenizer.json, the
 * tokenizer.bin beside a llama2.c checkpoint). *out is owned by the caller. */
kiln_status kiln_tokenizer_load(const char *model_path, const char *tokenizer_path, kiln_tokenizer **out);
void kiln_tokenizer_free(kiln_tokenizer *t);
/* Encodes text[0..len): add_special adds BOS (etc.) as the model wants; parse_special
 * turns special-token text ("<|im_end|>") into its id. *ids is malloc'd. */
kiln_status kiln_tokenizer_encode(const kiln_tokenizer *t, const char *text, size_t len, bool add_special,
                                  bool parse_special, int32_t **ids, size_t *n);

/* ---- chat templates -------------------------------------------------------------- */

/* Renders a chat template (Jinja, as Hugging Face transformers renders it; NULL: the
 * ChatML default) over messages_json (a JSON array of {"role", "content", ...}) and
 * tools_json (a JSON array, or NULL: `tools` is none); vars_json (NULL or a JSON object)
 * adds or overrides variables (date_string, builtin_tools, ...). bos/eos may be NULL ("").
 * On success *out is malloc'd (caller frees). A template's raise_exception and runtime
 * errors give KILN_ERR_INVALID_ARG, syntax errors KILN_ERR_FORMAT naming the line. */
kiln_status kiln_chat_render_json(const char *tmpl, const char *messages_json, const char *tools_json,
                                  const char *vars_json, const char *bos_token, const char *eos_token,
                                  bool add_generation_prompt, char **out);

/* The chat template and BOS/EOS token strings of a model: a GGUF's
 * tokenizer.chat_template and tokens, or a Hugging Face folder's tokenizer_config.json.
 * Each out-string is malloc'd, or NULL when the model has none. */
kiln_status kiln_model_chat_template(const char *model_path, char **tmpl, char **bos, char **eos);

/* ---- model files ------------------------------------------------------------- */

/* Describes a model file or folder (GGUF, safetensors, llama2.c): metadata, then the
 * tensor table. On success *text is malloc'd (caller frees). */
kiln_status kiln_model_describe(const char *path, char **text);

#ifdef __cplusplus
}
#endif
#endif
