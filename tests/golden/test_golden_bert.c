/*
 * test_golden_bert.c — kiln's BERT encoder against a float64 PyTorch reference
 * (gen_bert.py) on random-weight configs, the all-MiniLM-L6 shape among them.
 *
 * The weights are not committed: both sides make them with the same counter-based
 * generator (see gen_bert.py), and this test writes them into a Hugging Face /
 * sentence-transformers folder or a GGUF as llama.cpp's converter names them, then
 * loads that through kiln_bert_load. For each case it checks the loaded config
 * (pooling, normalization, maximum length), then for every input the last layer's
 * token states and the pooled sentence vector (relative max error: max|kiln - ref| /
 * max|ref|). Why the tolerances:
 *  - F32/F16/BF16 weights: the reference uses exactly the values stored in the file,
 *    so only f32 vs f64 arithmetic differs: 1e-4.
 *  - Q8_0 weights: the reference uses the dequantized weights, but kiln also quantizes
 *    the activations to 8-bit blocks for the integer dot products: 3e-2, as for Llama.
 * Also: the inputs run together in one batch give each input exactly the states it
 * gets alone, and 1 and 2 threads give bit-identical states; on the BF16 folder, with
 * a vocab.txt written beside it, the embedder (tokenize, truncate, pool) gives exactly
 * forward + pool of the tokenizer's ids.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "files.h"
#include "golden.h"
#include "formats/gguf_write.h"
#include "kiln.h"
#include "kernels/kernels.h"
#include "models/bert.h"
#include "pipelines/embed.h"
#include "tensor/dtype.h"
#include "test.h"

static const char *const g_cases[] = {"hf_minilm_f32", "gguf_minilm_f16", "gguf_minilm_q8_0", "hf_bert_bf16",
                                      "gguf_bert_f32"};

enum { MAX_INPUTS = 8, MAX_TENSORS = 8 + 16 * 64 };

typedef struct {
    char name[96];      /* Hugging Face name, without any prefix */
    char gguf[64];      /* llama.cpp's name */
    int64_t rows, cols; /* rows 1 for a vector */
    bool vector;
    double scale, offset;
    float *data;
} spec;

typedef struct {
    char name[64], kind[8], type[8], pooling[8], act[24], prefix[16];
    int seed, normalize, max_seq_length;
    double eps, tol;
    int hidden, layers, heads, ff, vocab, positions, types;
    int n_inputs, lens[MAX_INPUTS];
    int32_t *ids; /* all inputs back to back */
    spec *specs;
    int n_specs;
} golden_case;

/* ---- the weights (gen_bert.py's tensor_specs, made by golden.h's generator) ----------- */

static void add_spec(golden_case *c, const char *name, const char *gguf, int64_t rows, int64_t cols, double scale,
                     double offset) {
    spec *s = &c->specs[c->n_specs++];
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->gguf, sizeof s->gguf, "%s", gguf);
    s->rows = rows;
    s->cols = cols;
    s->scale = scale;
    s->offset = offset;
    s->vector = rows == 1;
    s->data = malloc((size_t)(rows * cols) * sizeof(float));
    if (!s->data) abort();
    kiln_test_hashed(kiln_test_fnv1a(name) ^ (uint64_t)c->seed, rows * cols, scale, offset, s->data);
}

/* The tensors in gen_bert.py's order (tensor_specs), with their GGUF names. */
static void make_weights(golden_case *c) {
    int64_t d = c->hidden, ff = c->ff;
    c->specs = calloc((size_t)(5 + 16 * c->layers), sizeof *c->specs);
    if (!c->specs) abort();
    add_spec(c, "embeddings.word_embeddings.weight", "token_embd.weight", c->vocab, d, 0.5, 0);
    add_spec(c, "embeddings.position_embeddings.weight", "position_embd.weight", c->positions, d, 0.2, 0);
    add_spec(c, "embeddings.token_type_embeddings.weight", "token_types.weight", c->types, d, 0.2, 0);
    add_spec(c, "embeddings.LayerNorm.weight", "token_embd_norm.weight", 1, d, 0.2, 1);
    add_spec(c, "embeddings.LayerNorm.bias", "token_embd_norm.bias", 1, d, 0.1, 0);
    static const struct {
        const char *hf, *gguf, *norm_hf, *norm_gguf;
        int rows_ff, cols_ff;
    } mats[] = {
        {"attention.self.query", "attn_q", NULL, NULL, 0, 0},
        {"attention.self.key", "attn_k", NULL, NULL, 0, 0},
        {"attention.self.value", "attn_v", NULL, NULL, 0, 0},
        {"attention.output.dense", "attn_output", "attention.output.LayerNorm", "attn_output_norm", 0, 0},
        {"intermediate.dense", "ffn_up", NULL, NULL, 1, 0},
        {"output.dense", "ffn_down", "output.LayerNorm", "layer_output_norm", 0, 1},
    };
    for (int l = 0; l < c->layers; l++) {
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            char hf[96], gg[64];
            int64_t rows = mats[i].rows_ff ? ff : d, cols = mats[i].cols_ff ? ff : d;
            snprintf(hf, sizeof hf, "encoder.layer.%d.%s.weight", l, mats[i].hf);
            snprintf(gg, sizeof gg, "blk.%d.%s.weight", l, mats[i].gguf);
            add_spec(c, hf, gg, rows, cols, 1.75 / sqrt((double)cols), 0);
            snprintf(hf, sizeof hf, "encoder.layer.%d.%s.bias", l, mats[i].hf);
            snprintf(gg, sizeof gg, "blk.%d.%s.bias", l, mats[i].gguf);
            add_spec(c, hf, gg, 1, rows, 0.1, 0);
            if (!mats[i].norm_hf) continue;
            snprintf(hf, sizeof hf, "encoder.layer.%d.%s.weight", l, mats[i].norm_hf);
            snprintf(gg, sizeof gg, "blk.%d.%s.weight", l, mats[i].norm_gguf);
            add_spec(c, hf, gg, 1, d, 0.2, 1);
            snprintf(hf, sizeof hf, "encoder.layer.%d.%s.bias", l, mats[i].norm_hf);
            snprintf(gg, sizeof gg, "blk.%d.%s.bias", l, mats[i].norm_gguf);
            add_spec(c, hf, gg, 1, d, 0.1, 0);
        }
    }
}

/* ---- the case file -------------------------------------------------------------- */

static int json_int(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valueint : cJSON_IsTrue(v) ? 1 : 0;
}

static void json_copy(const cJSON *j, const char *key, char *dst, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    snprintf(dst, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static int read_case(const char *dir, golden_case *c) {
    char p[2048];
    char *txt = NULL;
    snprintf(p, sizeof p, "%s/case.json", dir);
    if (kiln_read_file(p, 1 << 20, &txt, NULL)) return -1;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!j) return -1;
    json_copy(j, "name", c->name, sizeof c->name);
    json_copy(j, "kind", c->kind, sizeof c->kind);
    json_copy(j, "type", c->type, sizeof c->type);
    json_copy(j, "pooling", c->pooling, sizeof c->pooling);
    json_copy(j, "act", c->act, sizeof c->act);
    json_copy(j, "prefix", c->prefix, sizeof c->prefix);
    c->seed = json_int(j, "seed");
    c->normalize = json_int(j, "normalize");
    c->max_seq_length = json_int(j, "max_seq_length");
    c->eps = cJSON_GetObjectItemCaseSensitive(j, "eps")->valuedouble;
    c->tol = cJSON_GetObjectItemCaseSensitive(j, "tolerance")->valuedouble;
    c->hidden = json_int(j, "hidden");
    c->layers = json_int(j, "layers");
    c->heads = json_int(j, "heads");
    c->ff = json_int(j, "ff");
    c->vocab = json_int(j, "vocab");
    c->positions = json_int(j, "positions");
    c->types = json_int(j, "types");
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "inputs"), *in;
    int total = 0;
    cJSON_ArrayForEach(in, ins) total += cJSON_GetArraySize(in);
    c->ids = malloc((size_t)total * sizeof *c->ids);
    if (!c->ids) abort();
    total = 0;
    cJSON_ArrayForEach(in, ins) {
        if (c->n_inputs == MAX_INPUTS) break;
        const cJSON *id;
        c->lens[c->n_inputs++] = cJSON_GetArraySize(in);
        cJSON_ArrayForEach(id, in) c->ids[total++] = (int32_t)id->valueint;
    }
    cJSON_Delete(j);
    return 0;
}

/* ---- writing the model ------------------------------------------------------------ */

static void write_text(const char *dir, const char *file, const char *text) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    kiln_test_write_file(p, text, strlen(text));
}

/* A sentence-transformers folder: config.json, model.safetensors (F32 or BF16, every
 * tensor in the model's dtype as transformers saves it), modules.json with the
 * Pooling (and Normalize) modules, 1_Pooling/config.json, sentence_bert_config.json. */
static void write_hf(const golden_case *c, const char *dir) {
    bool bf16 = !strcmp(c->type, "BF16");
    kiln_test_tensor *t = calloc((size_t)c->n_specs, sizeof *t);
    char (*names)[128] = calloc((size_t)c->n_specs, sizeof *names);
    if (!t || !names) abort();
    for (int i = 0; i < c->n_specs; i++) {
        const spec *s = &c->specs[i];
        snprintf(names[i], sizeof names[i], "%s%s", c->prefix, s->name);
        t[i] = (kiln_test_tensor){names[i], s->vector ? 1 : 2, {s->vector ? s->cols : s->rows, s->cols}, s->data};
    }
    char p[2048];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    kiln_test_write_tensors(p, t, c->n_specs, bf16 ? "BF16" : "F32");
    free(t);
    free(names);

    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"BertModel\"], \"model_type\": \"bert\", \"hidden_size\": %d, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"intermediate_size\": %d, "
             "\"vocab_size\": %d, \"max_position_embeddings\": %d, \"type_vocab_size\": %d, "
             "\"hidden_act\": \"%s\", \"layer_norm_eps\": %g, \"position_embedding_type\": \"absolute\", "
             "\"torch_dtype\": \"%s\"}\n",
             c->hidden, c->layers, c->heads, c->ff, c->vocab, c->positions, c->types, c->act, c->eps,
             bf16 ? "bfloat16" : "float32");
    write_text(dir, "config.json", cfg);
    snprintf(cfg, sizeof cfg,
             "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
             " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}%s]\n",
             c->normalize ? ", {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", "
                            "\"type\": \"sentence_transformers.models.Normalize\"}"
                          : "");
    write_text(dir, "modules.json", cfg);
    if (c->max_seq_length) {
        snprintf(cfg, sizeof cfg, "{\"max_seq_length\": %d, \"do_lower_case\": false}\n", c->max_seq_length);
        write_text(dir, "sentence_bert_config.json", cfg);
    }
    char sub[2100];
    snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
    mkdir(sub, 0755);
    snprintf(cfg, sizeof cfg,
             "{\"word_embedding_dimension\": %d, \"pooling_mode_cls_token\": %s, \"pooling_mode_mean_tokens\": %s, "
             "\"pooling_mode_max_tokens\": %s, \"pooling_mode_mean_sqrt_len_tokens\": false, "
             "\"pooling_mode_weightedmean_tokens\": false, \"pooling_mode_lasttoken\": %s}\n",
             c->hidden, !strcmp(c->pooling, "cls") ? "true" : "false", !strcmp(c->pooling, "mean") ? "true" : "false",
             !strcmp(c->pooling, "max") ? "true" : "false", !strcmp(c->pooling, "last") ? "true" : "false");
    write_text(sub, "config.json", cfg);
}

/* A GGUF as llama.cpp's converter writes a BERT: F32 throughout; F16 matrices and
 * tables (vectors stay F32); or Q8_0 layer matrices and word embeddings, the other
 * tables and the vectors F32. */
static kiln_status write_gguf(const golden_case *c, const char *path) {
    kiln_gguf_writer *w = NULL;
    kiln_status st = kiln_gguf_writer_create(&w);
    void **bufs = calloc((size_t)c->n_specs, sizeof *bufs);
    if (st || !bufs) abort();
    int pool = !strcmp(c->pooling, "mean") ? 1 : !strcmp(c->pooling, "cls") ? 2 : !strcmp(c->pooling, "last") ? 3 : 0;
    if ((st = kiln_gguf_writer_set_str(w, "general.architecture", "bert")) ||
        (st = kiln_gguf_writer_set_u32(w, "bert.embedding_length", (uint32_t)c->hidden)) ||
        (st = kiln_gguf_writer_set_u32(w, "bert.block_count", (uint32_t)c->layers)) ||
        (st = kiln_gguf_writer_set_u32(w, "bert.feed_forward_length", (uint32_t)c->ff)) ||
        (st = kiln_gguf_writer_set_u32(w, "bert.attention.head_count", (uint32_t)c->heads)) ||
        (st = kiln_gguf_writer_set_u32(w, "bert.context_length", (uint32_t)c->positions)) ||
        (st = kiln_gguf_writer_set_u32(w, "bert.pooling_type", (uint32_t)pool)) ||
        (st = kiln_gguf_writer_set_bool(w, "bert.attention.causal", false)) ||
        (st = kiln_gguf_writer_set_f32(w, "bert.attention.layer_norm_epsilon", (float)c->eps)))
        goto out;
    for (int i = 0; i < c->n_specs && !st; i++) {
        const spec *s = &c->specs[i];
        kiln_dtype t = KILN_F32;
        if (!strcmp(c->type, "F16") && !s->vector) t = KILN_F16;
        if (!strcmp(c->type, "Q8_0") && !s->vector && !strstr(s->gguf, "position") && !strstr(s->gguf, "types"))
            t = KILN_Q8_0;
        size_t row_bytes = 0;
        kiln_dtype_row_bytes(t, s->cols, &row_bytes);
        uint8_t *b = bufs[i] = malloc(row_bytes * (size_t)s->rows);
        if (!b) abort();
        for (int64_t r = 0; r < s->rows && !st; r++) {
            const float *src = s->data + r * s->cols;
            uint8_t *dst = b + (size_t)r * row_bytes;
            if (t == KILN_F32) {
                memcpy(dst, src, row_bytes);
            } else if (t == KILN_F16) {
                for (int64_t k = 0; k < s->cols; k++) {
                    uint16_t h = kiln_f32_to_fp16(src[k]);
                    memcpy(dst + 2 * k, &h, 2);
                }
            } else {
                st = kiln_quantize_row(t, src, dst, s->cols);
            }
        }
        int64_t ne[2] = {s->cols, s->rows};
        if (!st) st = kiln_gguf_writer_add_tensor(w, s->gguf, t, s->vector ? 1 : 2, ne, b);
    }
    if (!st) st = kiln_gguf_writer_write(w, path);
out:
    kiln_gguf_writer_free(w);
    for (int i = 0; i < c->n_specs; i++) free(bufs[i]);
    free(bufs);
    return st;
}

/* ---- comparing ---------------------------------------------------------------------- */

static kiln_bert *load(const char *path, int threads) {
    kiln_bert_options o = {.path = path, .n_threads = threads};
    kiln_bert *m = NULL;
    kiln_status st = kiln_bert_load(&o, &m);
    CHECK_MSG(st == KILN_OK, "%s: %s", path, kiln_last_error());
    return m;
}

/* Ids outside the vocabulary, empty or overlong sequences and batches over the
 * maximum are refused with KILN_ERR_INVALID_ARG and the model stays usable. */
static void bad_inputs(kiln_bert *m, const golden_case *c, float *out) {
    const kiln_bert_config *cfg = kiln_bert_get_config(m);
    int32_t ids[2] = {1, cfg->n_vocab}, neg = -1;
    int len = 2, one = 1, zero = 0;
    CHECK(kiln_bert_forward(m, ids, &len, 1, out) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_bert_forward(m, &neg, &one, 1, out) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_bert_forward(m, ids, &zero, 1, out) == KILN_ERR_INVALID_ARG);
    int too_long = cfg->n_pos + 1, big = kiln_bert_max_batch(m) + 1;
    int32_t *many = calloc((size_t)(big > too_long ? big : too_long), sizeof *many);
    float *o2 = malloc((size_t)(big > too_long ? big : too_long) * (size_t)cfg->n_embd * sizeof *o2);
    if (!many || !o2) abort();
    CHECK(kiln_bert_forward(m, many, &too_long, 1, o2) == KILN_ERR_INVALID_ARG);
    int lens[64], n = 0, sum = 0;
    while (sum < big && n < 64) sum += lens[n++] = cfg->n_pos < big - sum ? cfg->n_pos : big - sum;
    if (sum == big) CHECK(kiln_bert_forward(m, many, lens, n, o2) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_bert_forward(m, ids, &one, 1, NULL) == KILN_ERR_INVALID_ARG);
    free(many);
    free(o2);
    len = c->lens[0]; /* the model still works */
    CHECK_OK(kiln_bert_forward(m, c->ids, &len, 1, out));
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes a model file or folder this test wrote. */
static void remove_model(const char *path) { nftw(path, remove_entry, 8, FTW_DEPTH | FTW_PHYS); }

static void free_case(golden_case *c) {
    for (int i = 0; i < c->n_specs; i++) free(c->specs[i].data);
    free(c->specs);
    free(c->ids);
}

/* The whole pipeline on a folder: a BertTokenizer vocab.txt (+ tokenizer_config.json)
 * beside the model is found, and kiln_embedder_embed gives exactly the encoder's
 * states of the tokenizer's ids, pooled as the modules say; overlong text is cut to
 * the model's maximum, keeping [SEP]. */
static void folder_pipeline(const golden_case *c, const char *model, kiln_bert *m) {
    char p[4096];
    snprintf(p, sizeof p, "%s/vocab.txt", model);
    FILE *f = fopen(p, "w");
    if (!f) abort();
    static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    int n = 0;
    for (; n < 5; n++) fprintf(f, "%s\n", specials[n]);
    for (char ch = 'a'; ch <= 'z'; ch++, n++) fprintf(f, "%c\n", ch);
    for (char ch = 'a'; ch <= 'z'; ch++, n++) fprintf(f, "##%c\n", ch);
    for (; n < c->vocab; n++) fprintf(f, "[unused%d]\n", n);
    fclose(f);
    write_text(model, "tokenizer_config.json", "{\"do_lower_case\": true, \"model_max_length\": 64}");
    kiln_embedder_options o = {.path = model, .n_threads = 2};
    kiln_embedder *e = NULL;
    CHECK_OK(kiln_embedder_load(&o, &e));
    kiln_tokenizer *tok = NULL;
    CHECK_OK(kiln_tokenizer_load(model, NULL, &tok));
    if (!e || !tok) {
        kiln_embedder_free(e);
        kiln_tokenizer_free(tok);
        return;
    }
    kiln_embedder_info info;
    kiln_embedder_get_info(e, &info);
    CHECK(info.dim == c->hidden && !strcmp(info.pooling, "max") && !info.normalize && info.max_tokens == 64);
    const char *text = "Hello World, the Quick brown fox";
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK_OK(kiln_tokenizer_encode(tok, text, strlen(text), true, false, &ids, &n_ids));
    CHECK(n_ids > 2 && ids[0] == 2 && ids[n_ids - 1] == 3); /* [CLS] ... [SEP] */
    const int d = c->hidden;
    float *states = malloc(sizeof(float) * (size_t)d * 64), *ref = malloc(sizeof(float) * (size_t)d);
    float *got = malloc(sizeof(float) * (size_t)d);
    int len = (int)n_ids;
    kiln_embed_result res;
    CHECK_OK(kiln_bert_forward(m, ids, &len, 1, states));
    CHECK_OK(kiln_embed_pool(KILN_POOL_MAX, states, len, d, false, ref));
    CHECK_OK(kiln_embedder_embed(e, &text, NULL, 1, got, &res));
    CHECK(res.tokens == len && !res.truncated);
    CHECK_MSG(!memcmp(got, ref, sizeof(float) * (size_t)d), "embedder differs from forward + pool");
    /* 100 words: cut to 64 tokens, the last one [SEP] */
    char long_text[400] = "";
    for (int i = 0; i < 100; i++) strcat(long_text, "ab ");
    free(ids);
    CHECK_OK(kiln_tokenizer_encode(tok, long_text, strlen(long_text), true, false, &ids, &n_ids));
    const char *lt = long_text;
    CHECK_OK(kiln_embedder_embed(e, &lt, NULL, 1, got, &res));
    CHECK(res.tokens == 64 && res.truncated);
    if (ids && n_ids > 64) {
        ids[63] = ids[n_ids - 1];
        len = 64;
        CHECK_OK(kiln_bert_forward(m, ids, &len, 1, states));
        CHECK_OK(kiln_embed_pool(KILN_POOL_MAX, states, len, d, false, ref));
        CHECK_MSG(!memcmp(got, ref, sizeof(float) * (size_t)d), "truncated embedding differs");
    }
    free(ids);
    free(states);
    free(ref);
    free(got);
    kiln_tokenizer_free(tok);
    kiln_embedder_free(e);
}

static void run_case(const char *data, const char *name, bool first) {
    char dir[2048], model[2048];
    golden_case c = {0};
    snprintf(dir, sizeof dir, "%s/bert_%s", data, name);
    if (read_case(dir, &c)) {
        CHECK_MSG(0, "%s: cannot read case.json", dir);
        return;
    }
    make_weights(&c);
    char tmpname[128];
    bool hf = !strcmp(c.kind, "hf");
    /* the pid keeps this run's files apart from the KILN_ISA=avx2 run ctest starts beside it */
    snprintf(tmpname, sizeof tmpname, "golden_bert_%ld_%s%s", (long)getpid(), name, hf ? "" : ".gguf");
    if (hf) {
        kiln_test_tmp_dir(model, sizeof model, tmpname);
        write_hf(&c, model);
    } else {
        kiln_test_tmp_path(model, sizeof model, tmpname);
        CHECK_OK(write_gguf(&c, model));
    }
    int d = c.hidden, total = 0;
    for (int i = 0; i < c.n_inputs; i++) total += c.lens[i];
    char p[2100];
    char *exp = NULL;
    size_t exp_len = 0, want = (size_t)(total + c.n_inputs) * (size_t)d * sizeof(float);
    snprintf(p, sizeof p, "%s/expected.f32", dir);
    CHECK_OK(kiln_read_file(p, 1 << 26, &exp, &exp_len));
    CHECK_MSG(exp_len == want, "%s: %zu bytes, expected %zu", p, exp_len, want);
    kiln_bert *m = exp_len == want ? load(model, 2) : NULL;
    kiln_bert *m1 = m ? load(model, 1) : NULL;
    size_t states = (size_t)total * (size_t)d;
    float *alone = malloc(states * sizeof *alone), *batch = malloc(states * sizeof *batch);
    float *batch1 = malloc(states * sizeof *batch1), *pooled = malloc((size_t)d * sizeof *pooled);
    if (!alone || !batch || !batch1 || !pooled) abort();
    if (m && m1) {
        const kiln_bert_config *cfg = kiln_bert_get_config(m);
        static const char *const pool_names[] = {"none", "mean", "cls", "last", "max"};
        CHECK(cfg->n_embd == d && cfg->n_layer == c.layers && cfg->n_head == c.heads && cfg->n_ff == c.ff);
        CHECK(cfg->n_vocab == c.vocab && cfg->n_pos == c.positions && cfg->n_types == c.types);
        CHECK_MSG(!strcmp(pool_names[cfg->pooling], c.pooling), "%s: pooling %s, expected %s", name,
                  pool_names[cfg->pooling], c.pooling);
        CHECK(cfg->normalize == (c.normalize != 0));
        CHECK(cfg->max_tokens == (c.max_seq_length ? c.max_seq_length : c.positions));
        CHECK(cfg->gelu_tanh == (strcmp(c.act, "gelu") != 0));
        const float *ref = (const float *)exp;
        double worst_states = 0, worst_pooled = 0, worst_batch = 0;
        bool batch_exact = true;
        CHECK_OK(kiln_bert_forward(m, c.ids, c.lens, c.n_inputs, batch));
        CHECK_OK(kiln_bert_forward(m1, c.ids, c.lens, c.n_inputs, batch1));
        CHECK_MSG(!memcmp(batch, batch1, states * sizeof *batch), "%s: 1 and 2 threads differ", name);
        for (int i = 0, off = 0; i < c.n_inputs; off += c.lens[i], i++) {
            size_t n = (size_t)c.lens[i] * (size_t)d;
            float *a = alone + (size_t)off * (size_t)d;
            CHECK_OK(kiln_bert_forward(m, c.ids + off, &c.lens[i], 1, a));
            double e = kiln_test_rel_err(a, ref, n);
            CHECK_MSG(e <= c.tol, "%s input %d: token states relative error %.3g > %.3g", name, i, e, c.tol);
            ref += n;
            CHECK_OK(kiln_embed_pool(cfg->pooling, a, c.lens[i], d, cfg->normalize, pooled));
            double ep = kiln_test_rel_err(pooled, ref, (size_t)d);
            CHECK_MSG(ep <= c.tol, "%s input %d: pooled relative error %.3g > %.3g", name, i, ep, c.tol);
            ref += d;
            double eb = kiln_test_rel_err(batch + (size_t)off * (size_t)d, a, n);
            bool same = !memcmp(batch + (size_t)off * (size_t)d, a, n * sizeof *a);
            CHECK_MSG(same, "%s input %d: in a batch %.3g from alone", name, i, eb);
            batch_exact = batch_exact && same;
            worst_states = e > worst_states ? e : worst_states;
            worst_pooled = ep > worst_pooled ? ep : worst_pooled;
            worst_batch = eb > worst_batch ? eb : worst_batch;
        }
        printf("%-18s %-4s %-4s states %.2e pooled %.2e (tolerance %.0e); batch vs alone %s (%.1e)\n", name,
               c.kind, c.type, worst_states, worst_pooled, c.tol, batch_exact ? "bit-identical" : "differs",
               worst_batch);
        if (first) bad_inputs(m, &c, batch);
        if (!strcmp(name, "hf_bert_bf16")) folder_pipeline(&c, model, m);
    }
    kiln_bert_free(m);
    kiln_bert_free(m1);
    free(alone);
    free(batch);
    free(batch1);
    free(pooled);
    free(exp);
    free_case(&c);
    remove_model(model);
}

/* A model folder whose sentence-transformers modules kiln cannot honour is refused,
 * naming what; one without a Pooling module gives token states only. */
static void refused_configs(const char *data) {
    golden_case c = {0};
    char dir[2048], model[2048];
    snprintf(dir, sizeof dir, "%s/bert_hf_bert_bf16", data);
    if (read_case(dir, &c)) return;
    c.layers = 1;
    make_weights(&c);
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, "golden_bert_%ld_refused", (long)getpid());
    kiln_test_tmp_dir(model, sizeof model, tmpname);
    write_hf(&c, model);
    char sub[2100];
    snprintf(sub, sizeof sub, "%s/1_Pooling", model);
    kiln_bert_options o = {.path = model, .n_threads = 1};
    kiln_bert *m = NULL;
    write_text(sub, "config.json", "{\"pooling_mode_mean_sqrt_len_tokens\": true}");
    CHECK(kiln_bert_load(&o, &m) == KILN_ERR_UNSUPPORTED && !m);
    CHECK(strstr(kiln_last_error(), "mean_sqrt_len") != NULL);
    write_text(sub, "config.json", "{\"pooling_mode_mean_tokens\": true, \"pooling_mode_cls_token\": true}");
    CHECK(kiln_bert_load(&o, &m) != KILN_OK && !m);
    write_text(sub, "config.json", "{\"pooling_mode_mean_tokens\": true}");
    write_text(model, "modules.json", "[{\"path\": \"2_Dense\", \"type\": \"sentence_transformers.models.Dense\"}]");
    CHECK(kiln_bert_load(&o, &m) == KILN_ERR_UNSUPPORTED && !m);
    CHECK(strstr(kiln_last_error(), "Dense") != NULL);
    /* hostile or unsupported config.json values: a clear error, nothing loaded */
    static const struct {
        const char *key, *value, *needle;
        kiln_status want;
    } bad[] = {
        {"num_attention_heads", "7", "multiple", KILN_ERR_FORMAT},
        {"num_hidden_layers", "2", "encoder.layer.1", KILN_ERR_FORMAT},
        {"vocab_size", "1000000000", "implausible", KILN_ERR_FORMAT},
        {"hidden_size", "-64", "hidden_size", KILN_ERR_FORMAT},
        {"hidden_act", "\"relu\"", "relu", KILN_ERR_UNSUPPORTED},
        {"model_type", "\"roberta\"", "roberta", KILN_ERR_UNSUPPORTED},
        {"position_embedding_type", "\"relative_key\"", "relative_key", KILN_ERR_UNSUPPORTED},
    };
    static const char *const keys[] = {"model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                       "intermediate_size", "vocab_size", "max_position_embeddings"};
    static const char *const values[] = {"\"bert\"", "64", "1", "4", "128", "300", "64"};
    write_text(model, "modules.json", "[]");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cfg[1024];
        int len = snprintf(cfg, sizeof cfg, "{\"%s\": %s", bad[i].key, bad[i].value);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (strcmp(keys[k], bad[i].key))
                len += snprintf(cfg + len, sizeof cfg - (size_t)len, ", \"%s\": %s", keys[k], values[k]);
        snprintf(cfg + len, sizeof cfg - (size_t)len, "}");
        write_text(model, "config.json", cfg);
        kiln_status st = kiln_bert_load(&o, &m);
        CHECK_MSG(st == bad[i].want && !m && strstr(kiln_last_error(), bad[i].needle),
                  "%s = %s: %s (%s)", bad[i].key, bad[i].value, kiln_status_name(st), kiln_last_error());
    }
    write_text(model, "config.json", "{\"model_type\": \"bert\", \"hidden_size\": 64, \"num_hidden_layers\": 1, "
               "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 300, "
               "\"max_position_embeddings\": 64, \"hidden_act\": \"gelu_new\"}");
    write_text(model, "modules.json", "[]");
    CHECK_OK(kiln_bert_load(&o, &m));
    if (m) CHECK(kiln_bert_get_config(m)->pooling == KILN_POOL_NONE && !kiln_bert_get_config(m)->normalize);
    kiln_bert_free(m);
    free_case(&c);
    remove_model(model);
}

int main(void) {
    const char *src = getenv("KILN_SRC");
    char data[1024];
    snprintf(data, sizeof data, "%s/tests/golden/data", src ? src : ".");
    for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++) run_case(data, g_cases[i], i == 0);
    refused_configs(data);
    TEST_MAIN_END();
}
