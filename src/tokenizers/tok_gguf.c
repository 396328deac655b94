/*
 * tok_gguf.c — kiln_tokenizer_from_gguf: a tokenizer from GGUF metadata.
 *
 * Reads the keys llama.cpp's converters write (tokenizer.ggml.*) and applies the
 * same defaults llama.cpp does for each model kind, so a file behaves identically
 * in both: "llama" -> SentencePiece (BOS 1, EOS 2, UNK 0, add BOS, dummy-prefix
 * space), "gpt2" -> byte-level BPE with the pre-tokenizer named by
 * tokenizer.ggml.pre, "bert" -> WordPiece (CLS 101, SEP 102, UNK 100). Every array is
 * checked against the vocabulary size and every merge must name known tokens.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

/* GGUF token_type values (llama.cpp's llama_token_type). */
enum { TT_UNDEFINED, TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE };

static bool is_int_type(kiln_gguf_type t) {
    return t == KILN_GGUF_UINT8 || t == KILN_GGUF_INT8 || t == KILN_GGUF_UINT16 || t == KILN_GGUF_INT16 ||
           t == KILN_GGUF_UINT32 || t == KILN_GGUF_INT32 || t == KILN_GGUF_UINT64 || t == KILN_GGUF_INT64;
}

/* An optional array of n elements; NULL if absent, error if present but wrong. */
static kiln_status opt_array(const kiln_gguf *g, const char *key, uint64_t n, bool want_float,
                             const kiln_gguf_value **out) {
    *out = NULL;
    const kiln_gguf_kv *kv = kiln_gguf_find(g, key);
    if (!kv) return KILN_OK;
    const kiln_gguf_value *v = &kv->value;
    bool ok = v->type == KILN_GGUF_ARRAY &&
              (want_float ? (v->arr.elem_type == KILN_GGUF_FLOAT32 || v->arr.elem_type == KILN_GGUF_FLOAT64)
                          : is_int_type(v->arr.elem_type));
    if (!ok) return kiln_fail(KILN_ERR_FORMAT, "tokenizer: %s has the wrong type", key);
    if (v->arr.n != n)
        return kiln_fail(KILN_ERR_FORMAT, "tokenizer: %s has %llu entries for %llu tokens", key,
                         (unsigned long long)v->arr.n, (unsigned long long)n);
    *out = v;
    return KILN_OK;
}

/* Reads a special token id key; ids outside the vocabulary are ignored (llama.cpp
 * warns and keeps its default). */
static void read_id(const kiln_gguf *g, const char *key, int32_t n_vocab, int32_t *id) {
    int64_t v;
    if (kiln_gguf_get_i64(g, key, &v) && v >= 0 && v < n_vocab) *id = (int32_t)v;
}

static void read_bool(const kiln_gguf *g, const char *key, bool *b) {
    bool v;
    if (kiln_gguf_get_bool(g, key, &v)) *b = v;
}

static int32_t default_id(int32_t id, int32_t n) { return id < n ? id : -1; }

static kiln_status load_vocab(kiln_tokenizer *t, const kiln_gguf *g) {
    const kiln_gguf_kv *kv = kiln_gguf_find(g, "tokenizer.ggml.tokens");
    if (!kv) return kiln_fail(KILN_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens is missing");
    if (kv->value.type != KILN_GGUF_ARRAY || kv->value.arr.elem_type != KILN_GGUF_STRING)
        return kiln_fail(KILN_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens is not an array of strings");
    uint64_t n = kv->value.arr.n;
    if (n == 0 || n > TOK_MAX_VOCAB)
        return kiln_fail(KILN_ERR_FORMAT, "tokenizer: %llu tokens (expected 1..%d)", (unsigned long long)n,
                         TOK_MAX_VOCAB);
    const kiln_gguf_value *scores, *types;
    kiln_status st = opt_array(g, "tokenizer.ggml.scores", n, true, &scores);
    if (st == KILN_OK) st = opt_array(g, "tokenizer.ggml.token_type", n, false, &types);
    if (st != KILN_OK) return st;
    const char **texts = kiln_malloc_array(n, sizeof *texts);
    size_t *lens = kiln_malloc_array(n, sizeof *lens);
    if (!texts || !lens) st = kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    for (uint64_t i = 0; st == KILN_OK && i < n; i++) {
        const kiln_gguf_str *s = &kv->value.arr.strs[i];
        texts[i] = s->ptr;
        lens[i] = s->len > TOK_MAX_TOKEN_LEN ? (size_t)TOK_MAX_TOKEN_LEN + 1 : (size_t)s->len;
    }
    if (st == KILN_OK) st = tok_set_vocab(t, (int32_t)n, texts, lens);
    free(texts);
    free(lens);
    if (st != KILN_OK) return st;
    for (uint64_t i = 0; i < n; i++) {
        if (scores) t->score[i] = (float)kiln_gguf_arr_f64(scores, i);
        if (!types) continue;
        switch (kiln_gguf_arr_i64(types, i)) {
        case TT_NORMAL: t->attr[i] = TOK_ATTR_NORMAL; break;
        case TT_UNKNOWN: t->attr[i] = TOK_ATTR_UNKNOWN; break;
        case TT_CONTROL: t->attr[i] = TOK_ATTR_CONTROL; break;
        case TT_USER_DEFINED: t->attr[i] = TOK_ATTR_USER; break;
        case TT_UNUSED: t->attr[i] = TOK_ATTR_UNUSED; break;
        case TT_BYTE: t->attr[i] = TOK_ATTR_BYTE; break;
        default: t->attr[i] = TOK_ATTR_UNDEFINED; break;
        }
    }
    return KILN_OK;
}

/* tokenizer.ggml.merges: "left right" strings, rank = position. The map needs the
 * text -> id lookup, so it is built on a temporary map first. */
static kiln_status load_merges(kiln_tokenizer *t, const kiln_gguf *g) {
    const kiln_gguf_kv *kv = kiln_gguf_find(g, "tokenizer.ggml.merges");
    if (!kv) return kiln_fail(KILN_ERR_FORMAT, "tokenizer: tokenizer.ggml.merges is missing (gpt2 model)");
    if (kv->value.type != KILN_GGUF_ARRAY || kv->value.arr.elem_type != KILN_GGUF_STRING)
        return kiln_fail(KILN_ERR_FORMAT, "tokenizer: tokenizer.ggml.merges is not an array of strings");
    uint64_t n = kv->value.arr.n;
    if (n > INT32_MAX) return kiln_fail(KILN_ERR_FORMAT, "tokenizer: too many merges");
    kiln_status st = tok_merges_init(&t->merges, (size_t)n);
    char *buf = malloc(2 * TOK_MAX_TOKEN_LEN + 2);
    if (!buf) st = kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    for (uint64_t i = 0; st == KILN_OK && i < n; i++) {
        const kiln_gguf_str *s = &kv->value.arr.strs[i];
        const char *sp = s->len > 1 ? memchr(s->ptr + 1, ' ', s->len - 1) : NULL;
        if (!sp) {
            st = kiln_fail(KILN_ERR_FORMAT, "tokenizer: merge %llu '%.*s' has no space", (unsigned long long)i,
                           (int)(s->len > 64 ? 64 : s->len), s->ptr);
            break;
        }
        size_t la = (size_t)(sp - s->ptr), lb = s->len - la - 1;
        int32_t a = tok_lookup(t, s->ptr, la), b = tok_lookup(t, sp + 1, lb), m = -1;
        if (a >= 0 && b >= 0 && la + lb <= 2 * TOK_MAX_TOKEN_LEN) {
            memcpy(buf, s->ptr, la);
            memcpy(buf + la, sp + 1, lb);
            m = tok_lookup(t, buf, la + lb);
        }
        if (a < 0 || b < 0 || m < 0) {
            st = kiln_fail(KILN_ERR_FORMAT, "tokenizer: merge %llu '%.*s' names a token not in the vocabulary",
                           (unsigned long long)i, (int)(s->len > 64 ? 64 : s->len), s->ptr);
            break;
        }
        tok_merges_add(&t->merges, a, b, (int32_t)i, m);
    }
    free(buf);
    return st;
}

/* llama.cpp gives Phi-3's special tokens rstrip (they swallow the whitespace after
 * them), except <unk>, <s> and <|endoftext|>; </s> gets it too. */
static void phi3_strip(kiln_tokenizer *t, const kiln_gguf *g) {
    kiln_gguf_str name;
    if (!kiln_gguf_get_str(g, "general.name", &name)) return;
    char low[256];
    size_t n = name.len < sizeof low - 1 ? (size_t)name.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name.ptr[i]);
    low[n] = 0;
    if (!strstr(low, "phi-3") && !strstr(low, "phi3")) return;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & (TOK_ATTR_SPECIAL | TOK_ATTR_USER)) t->attr[id] |= TOK_ATTR_RSTRIP;
    int32_t id = tok_lookup(t, "</s>", 4);
    if (id >= 0) t->attr[id] |= TOK_ATTR_RSTRIP;
    const char *keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < 3; i++) {
        id = tok_lookup(t, keep[i], strlen(keep[i]));
        if (id >= 0) t->attr[id] &= (uint16_t)~TOK_ATTR_RSTRIP;
    }
}

static kiln_status setup_model(kiln_tokenizer *t, const kiln_gguf *g, kiln_gguf_str model) {
    int32_t n = t->n_vocab;
    if (kiln_gguf_str_eq(model, "llama")) {
        t->alg = TOK_ALG_SPM;
        t->dec = TOK_DEC_SPM;
        t->bos = default_id(1, n);
        t->eos = default_id(2, n);
        t->unk = default_id(0, n);
        t->add_bos = true;
        t->add_space_prefix = true;
        read_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
        t->strip_first_space = t->strip_after_bos = t->add_space_prefix;
        return KILN_OK;
    }
    if (kiln_gguf_str_eq(model, "gpt2")) {
        t->alg = TOK_ALG_BPE;
        t->dec = TOK_DEC_BYTELEVEL;
        t->byte_level = true;
        kiln_gguf_str pre;
        char *name = kiln_gguf_get_str(g, "tokenizer.ggml.pre", &pre) ? kiln_gguf_str_dup(pre) : kiln_strdup("default");
        if (!name) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
        kiln_status st = tok_pre_from_name(t, name);
        free(name);
        return st;
    }
    if (kiln_gguf_str_eq(model, "bert")) {
        t->alg = TOK_ALG_WPM;
        t->dec = TOK_DEC_WPM;
        t->bos = default_id(101, n);
        t->unk = default_id(100, n);
        t->sep = default_id(102, n);
        t->pad = default_id(0, n);
        t->add_bos = true;
        t->wpm_lower = t->wpm_strip_accents = t->wpm_clean = t->wpm_chinese = true;
        t->strip_first_space = t->strip_after_bos = true;
        return KILN_OK;
    }
    return kiln_fail(KILN_ERR_UNSUPPORTED, "tokenizer: unsupported tokenizer model '%.*s'",
                     (int)(model.len > 64 ? 64 : model.len), model.ptr);
}

kiln_status kiln_tokenizer_from_gguf(const kiln_gguf *g, kiln_tokenizer **out) {
    if (!g || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    kiln_gguf_str model;
    if (!kiln_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return kiln_fail(KILN_ERR_FORMAT, "tokenizer: tokenizer.ggml.model is missing");
    kiln_tokenizer *t = tok_alloc();
    if (!t) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    kiln_status st = load_vocab(t, g);
    if (st == KILN_OK) st = setup_model(t, g, model);
    if (st == KILN_OK) {
        int32_t n = t->n_vocab;
        read_id(g, "tokenizer.ggml.bos_token_id", n, &t->bos);
        read_id(g, "tokenizer.ggml.eos_token_id", n, &t->eos);
        read_id(g, "tokenizer.ggml.eot_token_id", n, &t->eot);
        read_id(g, "tokenizer.ggml.eom_token_id", n, &t->eom);
        read_id(g, "tokenizer.ggml.unknown_token_id", n, &t->unk);
        read_id(g, "tokenizer.ggml.seperator_token_id", n, &t->sep); /* sic: llama.cpp's spelling */
        read_id(g, "tokenizer.ggml.separator_token_id", n, &t->sep);
        read_id(g, "tokenizer.ggml.padding_token_id", n, &t->pad);
        if (t->alg == TOK_ALG_WPM) read_id(g, "tokenizer.ggml.cls_token_id", n, &t->bos);
        read_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
        read_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
        if (t->alg == TOK_ALG_SPM) phi3_strip(t, g);
        /* the merge table resolves texts to ids, which needs the finished map */
        st = tok_finalize(t);
    }
    if (st == KILN_OK && t->alg == TOK_ALG_BPE) st = load_merges(t, g);
    if (st != KILN_OK) {
        kiln_tokenizer_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}
