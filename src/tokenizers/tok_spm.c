/*
 * tok_spm.c — SentencePiece-style encoders driven by token scores.
 *
 * tok_spm_encode is llama.cpp's SPM tokenizer: spaces become "▁" (with one more in
 * front of a fragment that starts the text or follows a special token), the text is
 * cut into UTF-8 characters, and adjacent symbols are merged while their
 * concatenation is a vocabulary token, always taking the highest-scoring one
 * (leftmost on ties). Symbols that end up outside the vocabulary become <0xXX> byte
 * tokens.
 *
 * tok_llama2c_encode is llama2.c run.c's encoder: a " " token in front, one token
 * per UTF-8 character (else byte + 3), then the same best-score merge loop, but on
 * token texts.
 *
 * Both use a heap of candidate merges, O(n log n) in the text length.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

typedef struct {
    size_t start, n;     /* SPM: byte range in the escaped text */
    int32_t prev, next;  /* linked list of live symbols */
    int32_t id;          /* llama2.c: token id */
} sym;

/* Cuts s[0..n) into symbols, one per valid UTF-8 character or invalid byte. */
static kiln_status split_chars(const char *s, size_t n, sym **out, size_t *count) {
    sym *v = kiln_malloc_array(n ? n : 1, sizeof *v);
    if (!v) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, NULL);
        if (l == 0) l = 1;
        v[k] = (sym){i, l, (int32_t)k - 1, (int32_t)k + 1, -1};
        k++;
        i += l;
    }
    if (k) v[k - 1].next = -1;
    *out = v;
    *count = k;
    return KILN_OK;
}

/* Tokens that text may turn into: not control, unknown, byte or unused pieces
 * (SentencePiece never produces those from text). */
static bool mergeable(const kiln_tokenizer *t, int32_t id) {
    return id >= 0 && !(t->attr[id] & (TOK_ATTR_SPECIAL | TOK_ATTR_BYTE | TOK_ATTR_UNUSED));
}

static kiln_status push_bytes(const kiln_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_tok[(uint8_t)s[i]];
        if (id < 0) id = t->unk;
        if (id < 0) continue; /* nothing can represent it */
        kiln_status st = tok_ids_push(out, id);
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

/* ---- llama.cpp SPM ---------------------------------------------------------------- */

static kiln_status spm_try(const kiln_tokenizer *t, const char *buf, const sym *v, int32_t l, int32_t r,
                           tok_heap *h) {
    if (l < 0 || r < 0) return KILN_OK;
    size_t n = v[l].n + v[r].n;
    if (n > t->max_token_len) return KILN_OK;
    int32_t id = tok_lookup(t, buf + v[l].start, n);
    if (!mergeable(t, id)) return KILN_OK;
    return tok_heap_push(h, (tok_cand){-(double)t->score[id], l, r, (int32_t)n, id});
}

kiln_status tok_spm_encode(const kiln_tokenizer *t, const char *text, size_t len, bool prefix_space,
                           tok_ids *out) {
    size_t cap;
    if (!kiln_mul_ok(len + 1, 3, &cap)) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: text too long");
    char *buf = malloc(cap);
    if (!buf) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    size_t n = 0;
    if (prefix_space) {
        memcpy(buf, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    sym *v = NULL;
    size_t count = 0;
    tok_heap h = {0};
    kiln_status st = split_chars(buf, n, &v, &count);
    for (size_t i = 1; st == KILN_OK && i < count; i++) st = spm_try(t, buf, v, (int32_t)i - 1, (int32_t)i, &h);
    tok_cand c;
    while (st == KILN_OK && tok_heap_pop(&h, &c)) {
        sym *l = &v[c.left], *r = &v[c.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != (size_t)c.a) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) v[r->next].prev = c.left;
        st = spm_try(t, buf, v, l->prev, c.left, &h);
        if (st == KILN_OK) st = spm_try(t, buf, v, c.left, l->next, &h);
    }
    for (int32_t i = count ? 0 : -1; st == KILN_OK && i >= 0; i = v[i].next) {
        int32_t id = tok_lookup(t, buf + v[i].start, v[i].n);
        if (mergeable(t, id)) st = tok_ids_push(out, id);
        else st = push_bytes(t, buf + v[i].start, v[i].n, out);
    }
    free(h.v);
    free(v);
    free(buf);
    return st;
}

/* ---- llama2.c run.c --------------------------------------------------------------- */

/* Looks up the concatenation of the texts of ids a and b. */
static int32_t lookup_pair(const kiln_tokenizer *t, int32_t a, int32_t b, char *scratch) {
    size_t la = tok_len(t, a), lb = tok_len(t, b);
    if (la + lb > t->max_token_len) return -1;
    memcpy(scratch, tok_text(t, a), la);
    memcpy(scratch + la, tok_text(t, b), lb);
    return tok_lookup(t, scratch, la + lb);
}

static kiln_status l2c_try(const kiln_tokenizer *t, const sym *v, int32_t l, int32_t r, char *scratch, tok_heap *h) {
    if (l < 0 || r < 0) return KILN_OK;
    int32_t id = lookup_pair(t, v[l].id, v[r].id, scratch);
    if (id < 0) return KILN_OK;
    return tok_heap_push(h, (tok_cand){-(double)t->score[id], l, r, v[l].id, v[r].id});
}

kiln_status tok_llama2c_encode(const kiln_tokenizer *t, const char *text, size_t len, tok_ids *out) {
    if (len == 0) return KILN_OK; /* run.c: no dummy prefix for empty text */
    /* at most one symbol per byte, plus the dummy prefix */
    sym *v = kiln_malloc_array(len + 1, sizeof *v);
    char *scratch = malloc(t->max_token_len * 2 + 1);
    if (!v || !scratch) {
        free(v);
        free(scratch);
        return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t count = 0;
    /* the dummy prefix: run.c looks up " " (byte fallback if the vocabulary lacks it) */
    for (size_t i = 0; i <= len;) {
        const char *s = i == 0 ? " " : text + i - 1;
        size_t avail = i == 0 ? 1 : len - (i - 1);
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s, avail, &cp, NULL);
        int32_t id = l ? tok_lookup(t, s, l) : -1;
        if (id >= 0) {
            v[count].id = id;
            count++;
        } else {
            if (l == 0) l = 1;
            for (size_t k = 0; k < l; k++) {
                int32_t b = t->byte_tok[(uint8_t)s[k]];
                if (b < 0) b = t->unk;
                if (b < 0) continue;
                v[count].id = b;
                count++;
            }
        }
        i += l;
    }
    for (size_t i = 0; i < count; i++) {
        v[i].prev = (int32_t)i - 1;
        v[i].next = i + 1 < count ? (int32_t)i + 1 : -1;
        v[i].n = 1; /* alive */
    }
    tok_heap h = {0};
    kiln_status st = KILN_OK;
    for (size_t i = 1; st == KILN_OK && i < count; i++) st = l2c_try(t, v, (int32_t)i - 1, (int32_t)i, scratch, &h);
    tok_cand c;
    while (st == KILN_OK && tok_heap_pop(&h, &c)) {
        sym *l = &v[c.left], *r = &v[c.right];
        if (!l->n || !r->n || l->next != c.right || l->id != c.a || r->id != c.b) continue; /* stale */
        l->id = lookup_pair(t, l->id, r->id, scratch);
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) v[r->next].prev = c.left;
        st = l2c_try(t, v, l->prev, c.left, scratch, &h);
        if (st == KILN_OK) st = l2c_try(t, v, c.left, l->next, scratch, &h);
    }
    for (int32_t i = count ? 0 : -1; st == KILN_OK && i >= 0; i = v[i].next) st = tok_ids_push(out, v[i].id);
    free(h.v);
    free(v);
    free(scratch);
    return st;
}
