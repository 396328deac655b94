/*
 * tok_norm.c — the tokenizer.json normalizers kiln supports: Prepend, Replace
 * (literal or regex), NFC/NFD/NFKC/NFKD, Lowercase, StripAccents, Strip.
 *
 * Text may hold invalid UTF-8: Unicode steps work on the valid runs and pass the
 * invalid bytes through untouched, so encoding stays lossless.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/buf.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

void tok_norm_free(tok_norm *n) {
    free(n->str);
    free(n->str2);
    if (n->re) tok_regex_free(n->re);
    memset(n, 0, sizeof *n);
}

static bool is_white(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Unicode normalization of a valid UTF-8 run. */
static kiln_status nf_run(const char *s, size_t n, utf8proc_option_t opt, kiln_buf *out) {
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r, opt);
    if (k < 0) return kiln_buf_append(out, s, n); /* cannot happen for valid input; keep the text */
    kiln_status st = kiln_buf_append(out, r, (size_t)k);
    free(r);
    return st;
}

static kiln_status unicode_nf(const char *s, size_t n, utf8proc_option_t opt, kiln_buf *out) {
    kiln_status st = KILN_OK;
    size_t run = 0;
    for (size_t i = 0; i < n && st == KILN_OK;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, NULL);
        if (l && cp != 0) {
            i += l;
            continue;
        }
        /* invalid byte (or NUL, which utf8proc_map stops at): flush the run */
        if (i > run) st = nf_run(s + run, i - run, opt, out);
        if (st == KILN_OK) st = kiln_buf_append(out, s + i, 1);
        i++;
        run = i;
    }
    if (st == KILN_OK && n > run) st = nf_run(s + run, n - run, opt, out);
    return st;
}

/* Per code point rewrites: lowercase or drop nonspacing marks. */
static kiln_status per_char(const char *s, size_t n, tok_norm_kind kind, kiln_buf *out) {
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < n && st == KILN_OK;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, NULL);
        if (l == 0) {
            st = kiln_buf_append(out, s + i, 1);
            i++;
            continue;
        }
        if (kind == TOK_NORM_LOWERCASE) {
            char b[4];
            size_t k = tok_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), b);
            st = k ? kiln_buf_append(out, b, k) : kiln_buf_append(out, s + i, l);
        } else if (utf8proc_category((utf8proc_int32_t)cp) != UTF8PROC_CATEGORY_MN) {
            st = kiln_buf_append(out, s + i, l);
        }
        i += l;
    }
    return st;
}

static kiln_status replace_literal(const tok_norm *nm, const char *s, size_t n, kiln_buf *out) {
    kiln_status st = KILN_OK;
    size_t i = 0;
    if (nm->len == 0) return kiln_buf_append(out, s, n);
    while (i < n && st == KILN_OK) {
        if (n - i >= nm->len && memcmp(s + i, nm->str, nm->len) == 0) {
            st = kiln_buf_append(out, nm->str2, nm->len2);
            i += nm->len;
        } else {
            st = kiln_buf_append(out, s + i, 1);
            i++;
        }
    }
    return st;
}

static kiln_status replace_regex(const tok_norm *nm, const char *s, size_t n, kiln_buf *out) {
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    kiln_status st = KILN_OK;
    size_t pos = 0, prev = 0;
    while (pos <= n && st == KILN_OK) {
        int rc = pcre2_match(nm->re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(nm->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            st = kiln_fail(KILN_ERR_INVALID_ARG, "tokenizer: normalizer regex failed (%d)", rc);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] <= ov[0]) { /* empty match: replace nothing, step one byte */
            pos = ov[0] + 1;
            continue;
        }
        st = kiln_buf_append(out, s + prev, ov[0] - prev);
        if (st == KILN_OK) st = kiln_buf_append(out, nm->str2, nm->len2);
        prev = pos = ov[1];
    }
    if (st == KILN_OK && n > prev) st = kiln_buf_append(out, s + prev, n - prev);
    pcre2_match_data_free(md);
    return st;
}

static kiln_status strip(const tok_norm *nm, const char *s, size_t n, kiln_buf *out) {
    size_t a = 0, b = n;
    while (nm->left && a < b) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + a, b - a, &cp, NULL);
        if (!l || !is_white(cp)) break;
        a += l;
    }
    while (nm->right && b > a) {
        size_t k = b - 1; /* step back to a character start */
        while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80 && b - k < 4) k--;
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + k, b - k, &cp, NULL);
        if (l != b - k || !is_white(cp)) break;
        b = k;
    }
    return kiln_buf_append(out, s + a, b - a);
}

kiln_status tok_normalize(const kiln_tokenizer *t, const char *s, size_t len, char **out, size_t *out_len) {
    kiln_buf cur = {0};
    kiln_status st = kiln_buf_append(&cur, s, len);
    if (st == KILN_OK && !cur.data) st = kiln_buf_reserve(&cur, 1);
    for (size_t k = 0; k < t->n_norm && st == KILN_OK; k++) {
        const tok_norm *nm = &t->norm[k];
        kiln_buf nb = {0};
        const char *p = cur.data ? cur.data : "";
        switch (nm->kind) {
        case TOK_NORM_PREPEND:
            if (cur.len) st = kiln_buf_append(&nb, nm->str, nm->len);
            if (st == KILN_OK) st = kiln_buf_append(&nb, p, cur.len);
            break;
        case TOK_NORM_REPLACE:
            st = nm->re ? replace_regex(nm, p, cur.len, &nb) : replace_literal(nm, p, cur.len, &nb);
            break;
        case TOK_NORM_NFC: st = unicode_nf(p, cur.len, UTF8PROC_STABLE | UTF8PROC_COMPOSE, &nb); break;
        case TOK_NORM_NFD: st = unicode_nf(p, cur.len, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, &nb); break;
        case TOK_NORM_NFKC:
            st = unicode_nf(p, cur.len, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, &nb);
            break;
        case TOK_NORM_NFKD:
            st = unicode_nf(p, cur.len, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, &nb);
            break;
        case TOK_NORM_LOWERCASE:
        case TOK_NORM_STRIP_ACCENTS: st = per_char(p, cur.len, nm->kind, &nb); break;
        case TOK_NORM_STRIP: st = strip(nm, p, cur.len, &nb); break;
        }
        if (st == KILN_OK && !nb.data) st = kiln_buf_reserve(&nb, 1);
        kiln_buf_free(&cur);
        cur = nb;
    }
    if (st != KILN_OK) {
        kiln_buf_free(&cur);
        return st;
    }
    if (!cur.data) st = kiln_buf_reserve(&cur, 1);
    if (st != KILN_OK) return st;
    cur.data[cur.len] = 0;
    *out = cur.data;
    *out_len = cur.len;
    return KILN_OK;
}
