/*
 * embedder.c — sentence embeddings end to end (kiln.h, kiln_embedder): tokenize,
 * truncate to the model's maximum, sort by length, pack into batches of whole
 * sequences under a token budget, run the encoder, pool and normalize.
 *
 * Batches carry no padding: the encoder takes sequences packed back to back, each
 * attending only to itself (bert.h), which is what a padded batch with an attention
 * mask computes. Sorting by length only decides which texts share a forward pass;
 * since a sequence's states do not depend on the others of its batch, the output is
 * the same as embedding every text alone.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "kiln.h"
#include "models/bert.h"
#include "pipelines/embed.h"
#include "tokenizers/tokenizer.h"

struct kiln_embedder {
    kiln_bert *model;
    kiln_tokenizer *tok;
    bool normalize;
    int tail;      /* special tokens the tokenizer appends ([SEP]): kept when truncating */
    float *states; /* (max_batch, n_embd) */
};

static const char *const g_pool_names[] = {"none", "mean", "cls", "last", "max"};

kiln_status kiln_embedder_load(const kiln_embedder_options *opt, kiln_embedder **out) {
    *out = NULL;
    if (!opt || !opt->path) return kiln_fail(KILN_ERR_INVALID_ARG, "no model path given");
    if (opt->batch_tokens < 0) return kiln_fail(KILN_ERR_INVALID_ARG, "batch_tokens must not be negative");
    kiln_embedder *e = calloc(1, sizeof *e);
    if (!e) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    kiln_bert_options bo = {.path = opt->path, .n_threads = opt->n_threads, .max_batch = opt->batch_tokens};
    kiln_status st = kiln_bert_load(&bo, &e->model);
    const kiln_bert_config *c = st ? NULL : kiln_bert_get_config(e->model);
    if (!st && c->pooling == KILN_POOL_NONE)
        st = kiln_fail(KILN_ERR_UNSUPPORTED,
                       "%s: the model has no pooling (no sentence vector); its modules.json lists no Pooling module",
                       opt->path);
    if (!st) {
        if (!opt->tokenizer_path && kiln_bert_gguf(e->model))
            st = kiln_tokenizer_from_gguf(kiln_bert_gguf(e->model), &e->tok);
        else
            st = kiln_tokenizer_load(opt->path, opt->tokenizer_path, &e->tok);
    }
    if (!st && kiln_tokenizer_n_vocab(e->tok) > c->n_vocab)
        st = kiln_fail(KILN_ERR_FORMAT, "%s: the tokenizer has %d tokens, the model's embedding table %d", opt->path,
                       kiln_tokenizer_n_vocab(e->tok), c->n_vocab);
    if (!st) { /* what the tokenizer adds around a text: an empty one is just that */
        int32_t *frame = NULL;
        size_t n_frame = 0;
        st = kiln_tokenizer_encode(e->tok, "", 0, true, false, &frame, &n_frame);
        const int head = n_frame && frame[0] == kiln_tokenizer_bos(e->tok) ? 1 : 0;
        e->tail = (int)n_frame - head;
        free(frame);
        if (!st && (int)n_frame >= c->max_tokens)
            st = kiln_fail(KILN_ERR_FORMAT, "%s: a maximum of %d tokens leaves no room for text", opt->path,
                           c->max_tokens);
    }
    if (!st && !(e->states = kiln_malloc_array((size_t)kiln_bert_max_batch(e->model) * (size_t)c->n_embd,
                                                sizeof *e->states)))
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory for the encoder's output");
    if (st) {
        kiln_embedder_free(e);
        return st;
    }
    e->normalize = c->normalize || opt->normalize;
    *out = e;
    return KILN_OK;
}

bool kiln_embedder_supports(const char *path) { return kiln_bert_probe(path); }

void kiln_embedder_set_normalize(kiln_embedder *e, bool normalize) { e->normalize = normalize; }

void kiln_embedder_free(kiln_embedder *e) {
    if (!e) return;
    kiln_bert_free(e->model);
    kiln_tokenizer_free(e->tok);
    free(e->states);
    free(e);
}

void kiln_embedder_get_info(const kiln_embedder *e, kiln_embedder_info *info) {
    const kiln_bert_config *c = kiln_bert_get_config(e->model);
    *info = (kiln_embedder_info){.dim = c->n_embd,
                                 .max_tokens = c->max_tokens,
                                 .pooling = g_pool_names[c->pooling],
                                 .normalize = e->normalize,
                                 .format = kiln_bert_format(e->model),
                                 .n_layer = c->n_layer,
                                 .n_head = c->n_head,
                                 .n_vocab = c->n_vocab};
}

size_t kiln_embedder_memory(const kiln_embedder *e) {
    const kiln_bert_config *c = kiln_bert_get_config(e->model);
    return kiln_bert_heap_bytes(e->model) + (size_t)kiln_bert_max_batch(e->model) * (size_t)c->n_embd * sizeof(float);
}

float kiln_cosine_similarity(const float *a, const float *b, int dim) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? (float)(ab / (sqrt(aa) * sqrt(bb))) : 0.0f;
}

typedef struct {
    int32_t *ids;
    int len;
    size_t index;
} seq;

/* Shortest first, ties in input order: a fixed order, so the batches are too. */
static int by_length(const void *a, const void *b) {
    const seq *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Tokenizes one text and cuts it to max tokens, keeping the closing special tokens
 * ([SEP]) as Hugging Face's truncation does (it cuts the text, then adds them). */
static kiln_status tokenize(const kiln_embedder *e, const char *text, size_t len, int max, seq *s, bool *truncated) {
    size_t n = 0;
    kiln_status st = kiln_tokenizer_encode(e->tok, text, len, true, false, &s->ids, &n);
    if (st) return st;
    *truncated = n > (size_t)max;
    if (*truncated) {
        memmove(s->ids + max - e->tail, s->ids + n - (size_t)e->tail, sizeof *s->ids * (size_t)e->tail);
        n = (size_t)max;
    }
    if (n == 0) return kiln_fail(KILN_ERR_INVALID_ARG, "the text gives no tokens");
    s->len = (int)n;
    return KILN_OK;
}

kiln_status kiln_embedder_embed(kiln_embedder *e, const char *const *texts, const size_t *lens, size_t n, float *out,
                                kiln_embed_result *res) {
    if (n == 0) return KILN_OK;
    if (!texts || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "no texts or no output buffer");
    const kiln_bert_config *c = kiln_bert_get_config(e->model);
    const int d = c->n_embd, max_batch = kiln_bert_max_batch(e->model);
    seq *seqs = calloc(n, sizeof *seqs);
    int32_t *ids = kiln_malloc_array((size_t)max_batch, sizeof *ids);
    int *blens = kiln_malloc_array((size_t)max_batch, sizeof *blens);
    kiln_status st = seqs && ids && blens ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !st; i++) {
        bool truncated = false;
        if (!texts[i]) {
            st = kiln_fail(KILN_ERR_INVALID_ARG, "input %zu is NULL", i);
            break;
        }
        seqs[i].index = i;
        st = tokenize(e, texts[i], lens ? lens[i] : strlen(texts[i]), c->max_tokens, &seqs[i], &truncated);
        if (st) {
            st = kiln_fail_prefix(st, "input %zu", i);
            break;
        }
        if (res) res[i] = (kiln_embed_result){.tokens = seqs[i].len, .truncated = truncated};
    }
    if (!st) qsort(seqs, n, sizeof *seqs, by_length);
    /* whole sequences per forward pass, up to max_batch tokens (each is at most
     * max_tokens <= max_batch, bert.h) */
    for (size_t first = 0; first < n && !st;) {
        size_t last = first;
        int tokens = 0, count = 0;
        while (last < n && tokens + seqs[last].len <= max_batch) {
            memcpy(ids + tokens, seqs[last].ids, sizeof *ids * (size_t)seqs[last].len);
            blens[count++] = seqs[last].len;
            tokens += seqs[last++].len;
        }
        st = kiln_bert_forward(e->model, ids, blens, count, e->states);
        for (size_t s = first, off = 0; s < last && !st; off += (size_t)seqs[s++].len)
            st = kiln_embed_pool(c->pooling, e->states + off * (size_t)d, seqs[s].len, d, e->normalize,
                                 out + seqs[s].index * (size_t)d);
        first = last;
    }
    for (size_t i = 0; seqs && i < n; i++) free(seqs[i].ids);
    free(seqs);
    free(ids);
    free(blens);
    return st;
}
