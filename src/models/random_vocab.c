/*
 * random_vocab.c — synthetic tokenizers for random-weight models.
 *
 * The pieces are made by growing words over the letters a..z, breadth first from
 * the word-start marker and the single letters: "▁a" .. "▁z", "aa" .. "zz", then
 * "▁aa" ... For byte-level BPE each new word w+c also gets the merge "w c", in
 * creation order, so every merge joins two tokens of the vocabulary into a third one
 * and ranks are consistent (a word's prefix is always merged before the word). The
 * vocabulary is not meant to compress text well, only to be a valid, deterministic
 * vocabulary of the real size (so the embedding and output matrices have the real
 * shapes) that both kiln and llama.cpp load.
 */
#include "models/random_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

/* GGUF token types (llama.cpp's llama_token_type). */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

typedef struct {
    char **tok;
    float *score;
    int32_t *type;
    int n, cap;
    char **merge;
    int n_merge;
} vocab;

static kiln_status add(vocab *v, const char *s, float score, int32_t type) {
    if (v->n >= v->cap) return kiln_fail(KILN_ERR_INVALID_ARG, "random vocabulary: too many tokens");
    if (!(v->tok[v->n] = kiln_strdup(s))) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    v->score[v->n] = score;
    v->type[v->n] = type;
    v->n++;
    return KILN_OK;
}

static void vocab_free(vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->tok[i]);
    for (int i = 0; i < v->n_merge; i++) free(v->merge[i]);
    free(v->tok);
    free(v->score);
    free(v->type);
    free(v->merge);
}

/* UTF-8 of code point cp (< 0x800) into out (NUL-terminated). */
static void utf8(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others are
 * shifted to 256.. in byte order (space -> "Ġ", newline -> "Ċ"). */
static unsigned byte_char(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (unsigned)b;
    unsigned n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256 + n;
}

/* Adds grown words until v holds `until` tokens. start is the word-start marker. The
 * base tokens (start and a..z) must already be in the vocabulary. */
static kiln_status grow_words(vocab *v, const char *start, int until, bool merges) {
    int want = until - v->n;
    if (want <= 0) return KILN_OK;
    /* queue of words to extend: the base tokens, then every word made */
    char **q = kiln_malloc_array((size_t)want + 27, sizeof *q);
    if (!q) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    int nq = 0;
    kiln_status st = KILN_OK;
    q[nq++] = (char *)start;
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
    char one[2] = {0};
    for (int i = 0; i < 26; i++) {
        /* the single letters are already tokens (byte tokens or added pieces): point at them */
        one[0] = letters[i];
        q[nq++] = NULL; /* placeholder, filled below */
        for (int t = 0; t < v->n; t++)
            if (!strcmp(v->tok[t], one)) q[nq - 1] = v->tok[t];
        if (!q[nq - 1]) {
            free(q);
            return kiln_fail(KILN_ERR_INVALID_ARG, "random vocabulary: letter '%c' missing", letters[i]);
        }
    }
    for (int head = 0; v->n < until && !st; head++) {
        const char *w = q[head];
        size_t len = strlen(w);
        for (int c = 0; c < 26 && v->n < until && !st; c++) {
            char word[64];
            if (len + 2 > sizeof word) {
                st = kiln_fail(KILN_ERR_INVALID_ARG, "random vocabulary: words too long");
                break;
            }
            memcpy(word, w, len);
            word[len] = letters[c];
            word[len + 1] = 0;
            if ((st = add(v, word, -(float)v->n, TT_NORMAL))) break;
            q[nq++] = v->tok[v->n - 1];
            if (merges) {
                char m[80];
                snprintf(m, sizeof m, "%s %c", w, letters[c]);
                if (!(v->merge[v->n_merge] = kiln_strdup(m))) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
                else v->n_merge++;
            }
        }
    }
    free(q);
    return st;
}

/* BERT's layout: [PAD] 0, [unused0..98], [UNK] [CLS] [SEP] [MASK] 100..103, the
 * printable ASCII characters, "##0".."##9", then words and "##" continuations grown
 * over a..z (lowercase, as an uncased BERT's text is after normalization). */
static kiln_status build_wpm(vocab *v, int n_vocab) {
    char buf[32];
    kiln_status st = add(v, "[PAD]", 0, TT_CONTROL);
    for (int i = 0; i < 99 && !st; i++) {
        snprintf(buf, sizeof buf, "[unused%d]", i);
        st = add(v, buf, 0, TT_CONTROL);
    }
    if (!st) st = add(v, "[UNK]", 0, TT_UNKNOWN);
    if (!st) st = add(v, "[CLS]", 0, TT_CONTROL);
    if (!st) st = add(v, "[SEP]", 0, TT_CONTROL);
    if (!st) st = add(v, "[MASK]", 0, TT_CONTROL);
    for (int c = 33; c < 127 && !st; c++) {
        if (c >= 'A' && c <= 'Z') continue;
        buf[0] = (char)c;
        buf[1] = 0;
        st = add(v, buf, 0, TT_NORMAL);
    }
    for (int c = '0'; c <= '9' && !st; c++) {
        snprintf(buf, sizeof buf, "##%c", c);
        st = add(v, buf, 0, TT_NORMAL);
    }
    if (!st) st = add(v, "##", 0, TT_NORMAL);
    if (!st) st = grow_words(v, v->tok[v->n - 1], n_vocab, false);
    return st;
}

static kiln_status build(vocab *v, kiln_rvocab_kind kind, int n_vocab) {
    kiln_status st = KILN_OK;
    char buf[16];
    if (kind == KILN_RVOCAB_WPM) return build_wpm(v, n_vocab);
    if (kind == KILN_RVOCAB_SPM) {
        st = add(v, "<unk>", 0, TT_UNKNOWN);
        if (!st) st = add(v, "<s>", 0, TT_CONTROL);
        if (!st) st = add(v, "</s>", 0, TT_CONTROL);
        for (int b = 0; b < 256 && !st; b++) {
            snprintf(buf, sizeof buf, "<0x%02X>", b);
            st = add(v, buf, 0, TT_BYTE);
        }
        if (!st) st = add(v, "\xe2\x96\x81", -(float)v->n, TT_NORMAL); /* "▁", the word start */
        for (int c = 'a'; c <= 'z' && !st; c++) {
            buf[0] = (char)c;
            buf[1] = 0;
            st = add(v, buf, -(float)v->n, TT_NORMAL);
        }
        if (!st) st = grow_words(v, "\xe2\x96\x81", n_vocab, false);
        return st;
    }
    if (kind == KILN_RVOCAB_BPE_SMOLLM) {
        static const char *const specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
        for (int i = 0; i < 3 && !st; i++) st = add(v, specials[i], 0, TT_CONTROL);
    }
    for (int b = 0; b < 256 && !st; b++) {
        utf8(byte_char(b), buf);
        st = add(v, buf, 0, TT_NORMAL);
    }
    if (st) return st;
    if (kind == KILN_RVOCAB_BPE_SMOLLM) return grow_words(v, v->tok[3 + ' '], n_vocab, true);
    /* llama 3: merged words up to n_vocab - 256, then the special tokens */
    if ((st = grow_words(v, v->tok[' '], n_vocab - 256, true))) return st;
    static const char *const named[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                        "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
                                        "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
                                        "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};
    for (int i = 0; i < 256 && !st; i++) {
        char name[48];
        if (i < 11) snprintf(name, sizeof name, "%s", named[i]);
        else snprintf(name, sizeof name, "<|reserved_special_token_%d|>", i - 8);
        st = add(v, name, 0, TT_CONTROL);
    }
    return st;
}

kiln_status kiln_rvocab_write(kiln_gguf_writer *w, kiln_rvocab_kind kind, int n_vocab) {
    if (n_vocab < 512 || (kind == KILN_RVOCAB_BPE_LLAMA3 && n_vocab < 1024) || n_vocab > (1 << 24))
        return kiln_fail(KILN_ERR_INVALID_ARG, "random vocabulary: %d tokens is out of range", n_vocab);
    vocab v = {0};
    v.cap = n_vocab;
    v.tok = calloc((size_t)n_vocab, sizeof *v.tok);
    v.score = calloc((size_t)n_vocab, sizeof *v.score);
    v.type = calloc((size_t)n_vocab, sizeof *v.type);
    v.merge = calloc((size_t)n_vocab, sizeof *v.merge);
    kiln_status st = v.tok && v.score && v.type && v.merge ? build(&v, kind, n_vocab)
                                                           : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!st && v.n != n_vocab) st = kiln_fail(KILN_ERR_INVALID_ARG, "random vocabulary: made %d of %d tokens", v.n, n_vocab);
    bool spm = kind == KILN_RVOCAB_SPM;
    if (kind == KILN_RVOCAB_WPM) {
        if (!st) st = kiln_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
        if (!st) st = kiln_gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, (uint64_t)v.n);
        if (!st) st = kiln_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", KILN_GGUF_INT32, v.type, (uint64_t)v.n);
        static const struct {
            const char *key;
            uint32_t id;
        } ids[] = {{"tokenizer.ggml.padding_token_id", 0}, {"tokenizer.ggml.unknown_token_id", 100},
                   {"tokenizer.ggml.cls_token_id", 101},    {"tokenizer.ggml.seperator_token_id", 102},
                   {"tokenizer.ggml.mask_token_id", 103}};
        for (size_t i = 0; i < sizeof ids / sizeof ids[0] && !st; i++) st = kiln_gguf_writer_set_u32(w, ids[i].key, ids[i].id);
        /* segment vocabulary size: llama.cpp refuses a BERT without it */
        if (!st) st = kiln_gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", 2);
        vocab_free(&v);
        return st;
    }
    if (!st) st = kiln_gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    if (!st && !spm)
        st = kiln_gguf_writer_set_str(w, "tokenizer.ggml.pre", kind == KILN_RVOCAB_BPE_SMOLLM ? "smollm" : "llama-bpe");
    if (!st) st = kiln_gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, (uint64_t)v.n);
    if (!st && spm) st = kiln_gguf_writer_set_arr(w, "tokenizer.ggml.scores", KILN_GGUF_FLOAT32, v.score, (uint64_t)v.n);
    if (!st) st = kiln_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", KILN_GGUF_INT32, v.type, (uint64_t)v.n);
    if (!st && !spm)
        st = kiln_gguf_writer_set_str_arr(w, "tokenizer.ggml.merges", (const char *const *)v.merge, (uint64_t)v.n_merge);
    uint32_t bos = 1, eos = 2;
    if (kind == KILN_RVOCAB_BPE_SMOLLM) bos = eos = 0;
    if (kind == KILN_RVOCAB_BPE_LLAMA3) bos = (uint32_t)n_vocab - 256, eos = bos + 1;
    if (!st) st = kiln_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", bos);
    if (!st) st = kiln_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", eos);
    if (!st && spm) st = kiln_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (!st && kind == KILN_RVOCAB_BPE_LLAMA3) st = kiln_gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", bos + 9);
    if (!st) st = kiln_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", kind != KILN_RVOCAB_BPE_SMOLLM);
    if (!st) st = kiln_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    vocab_free(&v);
    return st;
}
