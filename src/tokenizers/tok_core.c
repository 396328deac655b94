/*
 * tok_core.c — kiln_tokenizer_encode: splits special tokens out of the text, runs
 * the model's algorithm on each remaining fragment and adds BOS/EOS (CLS/SEP).
 *
 * Special tokens are found leftmost-longest in one pass (as Hugging Face's added
 * vocabulary does); control tokens only when the caller asks (parse_special),
 * user-defined tokens always (they are literal text the model has one id for).
 */
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "tokenizers/tok_impl.h"

static bool is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Longest special token starting at text[i] that is active, or -1. */
static int32_t match_special(const kiln_tokenizer *t, const char *text, size_t len, size_t i, bool parse_special) {
    uint8_t c = (uint8_t)text[i];
    for (size_t k = t->special_at[c]; k < t->special_at[c + 1]; k++) {
        int32_t id = t->special[k];
        if (!parse_special && !(t->attr[id] & TOK_ATTR_USER)) continue;
        size_t n = tok_len(t, id);
        if (n <= len - i && memcmp(text + i, tok_text(t, id), n) == 0) return id;
    }
    return -1;
}

/* Encodes one text fragment with the model's algorithm. */
static kiln_status encode_fragment(const kiln_tokenizer *t, const char *s, size_t n, bool first, bool prev_special,
                                   tok_ids *out) {
    if (n == 0) return KILN_OK;
    switch (t->alg) {
    case TOK_ALG_SPM: return tok_spm_encode(t, s, n, t->add_space_prefix && prev_special, out);
    case TOK_ALG_BPE: return tok_bpe_encode(t, s, n, first, out);
    case TOK_ALG_WPM: return tok_wpm_encode(t, s, n, out);
    case TOK_ALG_LLAMA2C: return tok_llama2c_encode(t, s, n, out);
    }
    return kiln_fail(KILN_ERR_INVALID_ARG, "tokenizer: bad algorithm");
}

static kiln_status encode_text(const kiln_tokenizer *t, const char *text, size_t len, bool parse_special,
                               tok_ids *out) {
    if (t->alg == TOK_ALG_LLAMA2C || t->n_special == 0) return encode_fragment(t, text, len, true, true, out);
    size_t frag = 0;          /* start of the pending text fragment */
    bool prev_special = true; /* the text start counts as "after a special token" */
    kiln_status st;
    for (size_t i = 0; i < len;) {
        int32_t id = match_special(t, text, len, i, parse_special);
        if (id < 0) {
            i++;
            continue;
        }
        size_t end = i;
        if (t->attr[id] & TOK_ATTR_LSTRIP)
            while (end > frag && is_ascii_space(text[end - 1])) end--;
        if (end > frag) {
            if ((st = encode_fragment(t, text + frag, end - frag, frag == 0, prev_special, out)) != KILN_OK)
                return st;
        }
        if ((st = tok_ids_push(out, id)) != KILN_OK) return st;
        prev_special = true;
        i += tok_len(t, id);
        if (t->attr[id] & TOK_ATTR_RSTRIP)
            while (i < len && is_ascii_space(text[i])) i++;
        frag = i;
        continue;
    }
    if (len > frag) return encode_fragment(t, text + frag, len - frag, frag == 0, prev_special, out);
    return KILN_OK;
}

kiln_status kiln_tokenizer_encode(const kiln_tokenizer *t, const char *text, size_t len, bool add_special,
                                  bool parse_special, int32_t **ids, size_t *n) {
    if (!t || !ids || !n || (!text && len))
        return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n = 0;
    tok_ids out = {0};
    kiln_status st = KILN_OK;
    bool wpm = t->alg == TOK_ALG_WPM;
    if (add_special && (wpm || t->add_bos) && t->bos >= 0) st = tok_ids_push(&out, t->bos);
    if (st == KILN_OK && len) {
        /* fragment boundaries in the special-token pass ensure that prev_special is
         * only true right after a special token or at the very start */
        st = encode_text(t, text, len, parse_special, &out);
    }
    if (st == KILN_OK && add_special) {
        if (wpm && t->sep >= 0) st = tok_ids_push(&out, t->sep);
        else if (!wpm && t->add_eos && t->eos >= 0) st = tok_ids_push(&out, t->eos);
    }
    if (st != KILN_OK) {
        free(out.v);
        return st;
    }
    if (out.n == 0) {
        free(out.v);
        return KILN_OK;
    }
    *ids = out.v;
    *n = out.n;
    return KILN_OK;
}
