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
    X(ERR_CANCELLED, "cancelled")                                     \
    X(ERR_CAPACITY, "over the memory budget")                         \
    X(ERR_BUSY, "busy")

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
    size_t max_memory;          /* bytes the KV cache and activations may take (0: no
                                   limit); a load needing more fails with
                                   KILN_ERR_CAPACITY before allocating anything */
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
/* Bytes of memory the model holds beyond its mmap'd weights (KV cache, activations). */
size_t kiln_llm_memory(const kiln_llm *llm);
/* The model's chat template (GGUF tokenizer.chat_template or the folder's
 * tokenizer_config.json chat_template), or NULL if it has none. Owned by llm. */
const char *kiln_llm_chat_template(const kiln_llm *llm);
/* Text of the BOS or EOS token ("<s>", "<|end_of_text|>"); NULL for other ids or
 * without a tokenizer. Owned by llm. */
const char *kiln_llm_token_text(const kiln_llm *llm, int32_t id);

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

/* Called after every generated token with the final text it completed (len may be 0
 * when a token only starts a character or may begin a stop string); return false to
 * stop generation within that token. */
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

/* Runs ids[0..n) at positions pos..pos+n-1, after the pos tokens the model's cache
 * already holds (pos 0 starts a new sequence); for callers driving their own loop
 * (benchmarks, custom sampling). If logits is not NULL it receives the n_vocab logits
 * of the last position. KILN_ERR_CONTEXT_FULL if pos + n exceeds the context,
 * KILN_ERR_INVALID_ARG for an id outside the vocabulary. */
kiln_status kiln_llm_decode(kiln_llm *llm, const int32_t *ids, size_t n, size_t pos, float *logits);

/* Name of the kernel level this process runs: "ref", "avx2" or "avx512". */
const char *kiln_kernel_isa(void);

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
/* ---- sentence embeddings ---------------------------------------------------------- */

typedef struct kiln_embedder kiln_embedder;

typedef struct {
    const char *path;           /* GGUF (bert) or sentence-transformers / Hugging Face folder */
    const char *tokenizer_path; /* optional: tokenizer.json / .gguf; default: the model's
                                   (GGUF metadata, tokenizer.json, else vocab.txt) */
    int n_threads;              /* 0: all cores */
    int batch_tokens;           /* tokens per forward pass; 0: 1024 (never under the
                                   model's maximum sequence) */
    bool normalize;             /* L2-normalize even if the model has no Normalize module */
} kiln_embedder_options;

typedef struct {
    int dim;               /* embedding size */
    int max_tokens;        /* longer inputs are truncated to this ([CLS] and [SEP] included) */
    const char *pooling;   /* "mean", "cls", "last", "max" */
    bool normalize;        /* outputs are L2-normalized */
    const char *format;    /* "gguf" or "safetensors" */
    int n_layer, n_head, n_vocab;
} kiln_embedder_info;

/* What happened to one input. */
typedef struct {
    int tokens;     /* tokens the model saw, [CLS] and [SEP] included */
    bool truncated; /* the text had more than max_tokens: its end was cut (the final [SEP] kept) */
} kiln_embed_result;

/* Loads an embedding model and its tokenizer. A model without pooling (no sentence
 * vector) or with modules kiln does not run is refused with a message naming why. */
kiln_status kiln_embedder_load(const kiln_embedder_options *opt, kiln_embedder **out);
/* True if path declares an embedding architecture kiln runs (a GGUF "bert", a folder
 * with model_type "bert"): cheap, reads only the header / config.json. */
bool kiln_embedder_supports(const char *path);
void kiln_embedder_free(kiln_embedder *e);
void kiln_embedder_get_info(const kiln_embedder *e, kiln_embedder_info *info);
/* Whether the following calls L2-normalize (true) or return the pooled vectors as they
 * are (false), whatever the model's modules say (the server's per-request option). */
void kiln_embedder_set_normalize(kiln_embedder *e, bool normalize);
/* Bytes of memory the embedder holds beyond its mmap'd weights (activation buffers,
 * packed copies of the matrices), as kiln_llm_memory counts. */
size_t kiln_embedder_memory(const kiln_embedder *e);
/* Embeds n texts (texts[i] is lens[i] bytes; lens NULL: NUL-terminated): out receives
 * n x dim floats, res (may be NULL) n results. Inputs are sorted by length and packed
 * into batches of at most batch_tokens; a text's embedding is bit-identical whatever
 * the other texts of the call and the thread count. Not reentrant: one call at a time
 * per embedder. */
kiln_status kiln_embedder_embed(kiln_embedder *e, const char *const *texts, const size_t *lens, size_t n, float *out,
                                kiln_embed_result *res);
/* Cosine similarity of two vectors of dim floats (0 when either is all zeros). */
float kiln_cosine_similarity(const float *a, const float *b, int dim);

/* ---- images: Stable Diffusion ------------------------------------------------------ */

typedef struct kiln_sd kiln_sd;

typedef struct {
    const char *path;        /* a diffusers folder (model_index.json, text_encoder/, tokenizer/,
                                unet/, vae/, scheduler/) or a single-file checkpoint */
    const char *clip_vocab;  /* a single file has no tokenizer: OpenAI's bpe_simple_vocab_16e6.txt.gz
                                or a folder with vocab.json + merges.txt; NULL: $KILN_CLIP_VOCAB */
    const char *prediction;  /* NULL: the scheduler config's (else "epsilon");
                                "epsilon" or "v_prediction" override it */
    const char *precision;   /* arithmetic of the UNet: "f32", or "bf16" (about twice as fast on
                                CPUs with AVX512_BF16, bf16 rounding); NULL: bf16 where the CPU
                                has it, else f32. The VAE always runs f32 */
    int n_threads;           /* 0: all cores */
} kiln_sd_options;

typedef struct {
    int step, steps;         /* steps done of steps, for image `image` of the batch (from 0) */
    double elapsed, eta;     /* seconds since the start and until the end (all images, VAE included) */
    const uint8_t *preview;  /* NULL, or an RGB preview of image 0 (preview_w x preview_h) */
    int preview_w, preview_h;
} kiln_sd_progress;

/* Called after every denoising step; returning false cancels the generation
 * (kiln_sd_generate then returns KILN_ERR_CANCELLED). */
typedef bool (*kiln_sd_progress_fn)(const kiln_sd_progress *p, void *user);

typedef struct {
    const char *prompt;           /* AUTOMATIC1111 syntax: (word:1.2), [word], BREAK; any length */
    const char *negative_prompt;  /* NULL: "" */
    int width, height;            /* multiples of 8, 64..2048; 0: the model's native size */
    int steps;                    /* 1..150; 0: 20 */
    float cfg_scale;              /* guidance; <= 1 runs no unconditional pass; NAN: 7.5 */
    const char *sampler;          /* ddim, euler, euler_a, dpmpp_2m, dpmpp_2m_karras, lcm; NULL: euler_a */
    uint64_t seed;
    const char *rng;              /* "torch" (PyTorch's CPU torch.randn: diffusers' latents for the seed)
                                     or "fast" (kiln's own generator); NULL: "torch" */
    int clip_skip;                /* 0: the model's default (1, or 2 for an SD 2.x single file) */
    int batch;                    /* images, 1..16; 0: 1 */
    int preview_every;            /* steps between previews (0: none) */
    kiln_sd_progress_fn progress; /* may be NULL */
    void *user;
} kiln_sd_params;

typedef struct {
    uint8_t *rgb;       /* width x height x 3, malloc'd */
    int width, height;
    uint64_t seed;
    char *parameters;   /* the generation parameters in AUTOMATIC1111's text format, malloc'd */
    char *json;         /* the same as a JSON object, malloc'd */
} kiln_sd_image;

/* Loads a Stable Diffusion model (SD 1.x, 2.x, SD-Turbo; F32, F16 or BF16 weights).
 * SDXL and other pipelines are refused with a message naming them. */
kiln_status kiln_sd_load(const kiln_sd_options *opt, kiln_sd **out);
/* "f32" or "bf16": the arithmetic the model runs with. Static string. */
const char *kiln_sd_precision(const kiln_sd *m);
/* True if path looks like a Stable Diffusion model kiln runs (cheap). */
bool kiln_sd_supports(const char *path);
void kiln_sd_free(kiln_sd *m);
/* Heap bytes the model holds beyond its mapped weights (prepared copies). */
size_t kiln_sd_memory(const kiln_sd *m);
/* Bytes one generation with p needs on top (activations, latents, the decode). */
size_t kiln_sd_memory_needed(const kiln_sd *m, const kiln_sd_params *p);
/* Generates p->batch images into out[0 .. batch) (each freed by kiln_sd_image_clear).
 * Checks the parameters and the memory need first (KILN_ERR_INVALID_ARG,
 * KILN_ERR_NOMEM naming what it needs); KILN_ERR_CANCELLED when the progress callback
 * asks. Bit-identical for a seed whatever the thread count. Not reentrant per model. */
kiln_status kiln_sd_generate(kiln_sd *m, const kiln_sd_params *p, kiln_sd_image *out);
void kiln_sd_image_clear(kiln_sd_image *img);
/* Timings of the parts of a generation at width x height (kiln bench). */
typedef struct {
    double text_s;          /* the text encoder on one 77-token window */
    double step_s, step_sd; /* one denoising step with guidance: two UNet passes (mean, sd over reps) */
    double decode_s;        /* the VAE decode of one image */
} kiln_sd_bench_result;

/* Runs each part reps times (after one untimed warm-up) on random latents. */
kiln_status kiln_sd_bench(kiln_sd *m, int width, int height, int reps, kiln_sd_bench_result *out);

/* Writes img as a PNG at png_path with its parameters in a "parameters" text chunk
 * (AUTOMATIC1111's format, which its PNG-info reader and other tools parse), and, if
 * json_path is not NULL, the JSON sidecar. Each file appears complete or not at all. */
kiln_status kiln_sd_image_write(const kiln_sd_image *img, const char *png_path, const char *json_path);
/* The same PNG in memory: *png (malloc'd) of *len bytes. */
kiln_status kiln_sd_image_encode(const kiln_sd_image *img, uint8_t **png, size_t *len);

/* ---- engine: the job queue ------------------------------------------------------ */

/* Every capability runs as a job of the engine: a durable queue (SQLite) with
 * progress, ETA, cancel and crash recovery, models named inside one models directory,
 * and the programs (presets) of a config file. The job API speaks JSON, the same
 * objects as the HTTP jobs API (docs/API.md). */
typedef struct kiln_engine kiln_engine;

typedef struct {
    const char *models_dir;   /* required: models are named by file/folder name inside it */
    const char *data_dir;     /* job store (DATA/jobs.db); NULL: in memory, nothing persists */
    const char *config_path;  /* programs and model settings; NULL: DATA/kiln.json if present */
    int64_t memory_budget;    /* bytes for loaded models; 0: no budget */
    int max_queue;            /* queued jobs accepted (0: 256); more -> KILN_ERR_BUSY */
    int max_running;          /* jobs running at once (0: 1) */
    int n_threads;            /* threads per model instance (0: all cores) */
    int max_attempts;         /* starts before a job interrupted by crashes is failed (0: 3) */
    double keep_alive;        /* seconds an idle model stays loaded (0: unload when idle;
                                 < 0: forever); a model's config entry may override it */
    int max_tokens;           /* largest max_tokens a request may ask (0: 4096) */
    size_t max_prompt;        /* bytes of prompt text a request may send (0: 1 MiB) */
} kiln_engine_options;

/* Opens the engine (and its store, recovering jobs a crash interrupted) and starts its
 * workers. *out is owned by the caller (kiln_engine_free). */
kiln_status kiln_engine_create(const kiln_engine_options *opt, kiln_engine **out);
/* Stops the workers; running jobs go back to the queue for the next start. */
void kiln_engine_free(kiln_engine *e);
/* Submits {"kind", "model" | "program", "params", "priority"}; *job_json (malloc'd)
 * is the accepted job. An idempotency key (may be NULL) already used returns that job. */
/* The kind ("text", "embedding", ...) of a program of the config, or NULL if there is
 * no program of that name. Static string. */
const char *kiln_engine_program_kind(kiln_engine *e, const char *program);
kiln_status kiln_engine_submit_json(kiln_engine *e, const char *request_json, const char *idem_key, char **job_json);
kiln_status kiln_engine_get_json(kiln_engine *e, const char *id, char **job_json);
kiln_status kiln_engine_cancel_json(kiln_engine *e, const char *id, char **job_json);
/* Waits for the job to finish (timeout < 0: forever). */
kiln_status kiln_engine_wait_json(kiln_engine *e, const char *id, double timeout, char **job_json);
/* The next event of a job (see docs/API.md): *seq starts at 0; *name is NULL when
 * timeout passed first; *final marks the last event. *name and *data are malloc'd. */
kiln_status kiln_engine_next_event(kiln_engine *e, const char *id, int *seq, double timeout, char **name,
                                   char **data, bool *final);

/* ---- server: HTTP API ------------------------------------------------------------ */

typedef struct kiln_server kiln_server;

typedef struct {
    const char *host;            /* address to listen on (default 127.0.0.1) */
    int port;                    /* 0: any free port (see kiln_server_port) */
    const char *const *api_keys; /* NULL-terminated; NULL or empty: no auth */
    size_t max_body;             /* bytes of request body (0: 4 MiB); more -> 413 */
    int max_connections;         /* open connections (0: 256) */
    double request_timeout;      /* seconds to receive a whole request (0: 30) */
    double idle_timeout;         /* seconds a connection may stay silent (0: 15) */
} kiln_server_options;

/* Serves the engine over HTTP on libmicrohttpd's threads until kiln_server_stop. */
kiln_status kiln_server_start(kiln_engine *e, const kiln_server_options *opt, kiln_server **out);
int kiln_server_port(const kiln_server *s);
void kiln_server_stop(kiln_server *s);

/* ---- model files ------------------------------------------------------------- */

/* Describes a model file or folder (GGUF, safetensors, llama2.c): metadata, then the
 * tensor table. On success *text is malloc'd (caller frees). */
kiln_status kiln_model_describe(const char *path, char **text);

/* Weight statistics of a GGUF model file (benchmarks, roofline). */
typedef struct {
    uint64_t n_params;        /* elements of all tensors */
    uint64_t n_bytes;         /* bytes of all tensor data */
    uint64_t embd_bytes;      /* bytes of token_embd.weight */
    uint64_t bytes_per_token; /* bytes a generated token reads: all tensors except the
                                 token embedding, which is only gathered (unless it is
                                 tied to the output, which reads it all) */
    char file_type[24];       /* "Q4_K_M", "Q8_0", "F16" ... (general.file_type, else
                                 the type holding most bytes); "" if unknown */
} kiln_model_stats;

/* Fills *out for the GGUF file at path. KILN_ERR_UNSUPPORTED for other formats. */
kiln_status kiln_model_stats_get(const char *path, kiln_model_stats *out);

/* Called after each tensor is written: its name, and tensors done / total. */
typedef void (*kiln_progress_fn)(const char *tensor, int done, int total, void *user);

typedef struct {
    const char *type;           /* "q8_0", "q4_0", "q4_k_m", "f16" ... (case-insensitive) */
    int n_threads;              /* 0: all cores */
    kiln_progress_fn progress;  /* may be NULL */
    void *user;
} kiln_quantize_options;

/* Reads the GGUF in_path (tensors F32/F16/BF16 or quantized: dequantized first) and
 * writes out_path with all metadata copied (general.file_type set) and every weight
 * matrix converted to opt->type (rules in src/models/quant_plan.c); 1-D tensors are
 * stored as F32. The file is written under a temporary name and renamed when complete:
 * on any failure no out_path (nor a partial file) is left. KILN_ERR_INVALID_ARG for an
 * unknown type, KILN_ERR_UNSUPPORTED ("q4_k: not supported by this build") for a type
 * this build cannot write or read, KILN_ERR_FORMAT for a file that is not GGUF,
 * KILN_ERR_IO for read/write failures. */
kiln_status kiln_model_quantize(const char *in_path, const char *out_path, const kiln_quantize_options *opt);

/* NULL-terminated names of the model shapes kiln_model_random knows ("smollm-135m",
 * "tinyllama-1.1b", "llama2-7b", "llama3-8b", the tiny test shapes "tiny", "tiny-bpe";
 * the BERT encoders "minilm-l6", "minilm-l12", "bge-base" and the test shape
 * "bert-tiny"). Static. */
const char *const *kiln_random_shapes(void);

typedef struct {
    const char *shape;          /* one of kiln_random_shapes() */
    const char *type;           /* as kiln_quantize_options.type */
    uint64_t seed;
    int n_threads;              /* 0: all cores */
    kiln_progress_fn progress;  /* may be NULL */
    void *user;
} kiln_random_model_options;

/* Writes a llama (or, for the BERT shapes, a GGUF "bert" with mean pooling) GGUF of
 * the named shape with random weights (seeded; stddev 0.02, norms 1) stored directly
 * in opt->type, plus a synthetic but valid tokenizer (SPM "llama" for the
 * llama2/tinyllama shapes, "gpt2" BPE with merges for smollm/llama3, WordPiece "bert"
 * with BERT's special-token ids for the encoders).
 * Tensors are generated and written one slice at a time: memory stays small whatever
 * the model size. Same errors and temporary-file rule as kiln_model_quantize. */
kiln_status kiln_model_random(const char *out_path, const kiln_random_model_options *opt);

#ifdef __cplusplus
}
#endif
#endif
