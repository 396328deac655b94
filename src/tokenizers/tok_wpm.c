/*
 * tok_wpm.c — WordPiece (BERT): the basic tokenizer, then greedy longest-match-first.
 *
 * The basic tokenizer is Hugging Face's BertNormalizer + BertPreTokenizer: drop NUL,
 * U+FFFD and control characters, whitespace to " ", CJK ideographs as words of
 * their own, strip accents (NFD, drop nonspacing marks), lowercase, split on
 * whitespace, punctuation as one-character words.
 *
 * The vocabulary is in GGUF's form (what llama.cpp's converter writes): word-initial
 * pieces carry a "▁" prefix, continuation pieces ("##ing" in vocab.txt) are bare.
 * Each word is matched longest piece first; a word with an unmatchable rest, or
 * longer than wpm_max_chars characters, becomes [UNK].
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/alloc.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

bool tok_is_chinese_char(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_white(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CN ||
           k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CS;
}

static bool is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cps;

static kiln_status cps_push(cps *a, uint32_t c) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        uint32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = c;
    return KILN_OK;
}

/* Normalizes one code point into out (several with NFD). */
static kiln_status normalize_cp(const kiln_tokenizer *t, uint32_t c, cps *out) {
    if (t->wpm_clean) {
        if (c == 0 || c == 0xFFFD || is_control(c)) return KILN_OK;
        if (is_white(c)) c = ' ';
    }
    utf8proc_int32_t d[8];
    utf8proc_ssize_t n = 1;
    d[0] = (utf8proc_int32_t)c;
    if (t->wpm_strip_accents) {
        int last = 0;
        n = utf8proc_decompose_char((utf8proc_int32_t)c, d, 8, UTF8PROC_DECOMPOSE, &last);
        if (n < 0 || n > 8) {
            n = 1;
            d[0] = (utf8proc_int32_t)c;
        }
    }
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)d[i];
        if (t->wpm_strip_accents && utf8proc_category(d[i]) == UTF8PROC_CATEGORY_MN) continue;
        if (t->wpm_lower) x = (uint32_t)utf8proc_tolower((utf8proc_int32_t)x);
        kiln_status st = cps_push(out, x);
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

/* Greedy longest-match-first over one word (code points w[0..n)). */
static kiln_status wordpiece(const kiln_tokenizer *t, const uint32_t *w, size_t n, char *buf, size_t *bound,
                             tok_ids *out) {
    if (n > t->wpm_max_chars) return t->unk >= 0 ? tok_ids_push(out, t->unk) : KILN_OK;
    /* buf = "▁" + UTF-8 of the word; bound[i] = byte offset of character i in buf */
    memcpy(buf, "\xe2\x96\x81", 3);
    size_t len = 3;
    for (size_t i = 0; i < n; i++) {
        bound[i] = len;
        size_t k = tok_utf8_encode(w[i], buf + len);
        if (k == 0) buf[len] = '?', k = 1; /* unreachable: code points come from decoding */
        len += k;
    }
    bound[n] = len;
    size_t mark = out->n;
    for (size_t start = 0; start < n;) {
        int32_t id = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t from = start == 0 ? 0 : bound[start]; /* word start keeps the "▁" */
            size_t l = bound[end] - from;
            if (l > t->max_token_len) continue;
            id = tok_lookup(t, buf + from, l);
            if (id >= 0 && !(t->attr[id] & TOK_ATTR_SPECIAL)) break;
            id = -1;
        }
        if (id < 0) { /* the whole word is unknown */
            out->n = mark;
            return t->unk >= 0 ? tok_ids_push(out, t->unk) : KILN_OK;
        }
        kiln_status st = tok_ids_push(out, id);
        if (st != KILN_OK) return st;
        start = end;
    }
    return KILN_OK;
}

kiln_status tok_wpm_encode(const kiln_tokenizer *t, const char *text, size_t len, tok_ids *out) {
    cps c = {0};
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < len && st == KILN_OK;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)text + i, len - i, &cp, NULL);
        if (l == 0) { /* invalid byte: U+FFFD, which the cleaner drops */
            cp = 0xFFFD;
            l = 1;
        }
        st = normalize_cp(t, cp, &c);
        i += l;
    }
    size_t maxw = t->wpm_max_chars + 1;
    char *buf = malloc(3 + 4 * maxw);
    size_t *bound = kiln_malloc_array(maxw + 1, sizeof *bound);
    if (st == KILN_OK && (!buf || !bound)) st = kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    size_t ws = 0; /* start of the current word */
    for (size_t i = 0; i <= c.n && st == KILN_OK; i++) {
        uint32_t x = i < c.n ? c.v[i] : ' ';
        bool white = is_white(x);
        bool alone = !white && (is_punct(x) || (t->wpm_chinese && tok_is_chinese_char(x)));
        if (white || alone) {
            if (i > ws) st = wordpiece(t, c.v + ws, i - ws, buf, bound, out);
            if (st == KILN_OK && alone) st = wordpiece(t, c.v + i, 1, buf, bound, out);
            ws = i + 1;
        }
    }
    free(buf);
    free(bound);
    free(c.v);
    return st;
}
