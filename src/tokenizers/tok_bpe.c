/*
 * tok_bpe.c — rank-driven BPE on each pre-token.
 *
 * Symbols are token ids from the start: for byte-level vocabularies each byte is the
 * token of its GPT-2 code point; otherwise each UTF-8 character is its token, or its
 * <0xXX> byte tokens (byte_fallback), or [UNK]. Merges come from a (left id, right id)
 * -> (rank, merged id) table and are applied lowest rank first, leftmost on ties,
 * with a heap, so a long pre-token costs O(n log n).
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

typedef struct {
    int32_t id;          /* -1: no token (dropped at the end) */
    int32_t prev, next;
    bool alive;
} bsym;

/* Scratch reused across the pre-tokens of one call. */
typedef struct {
    bsym *v;
    size_t cap;
    tok_heap h;
    char *enc;
    size_t enc_cap;
} bpe_ctx;

static kiln_status reserve(bpe_ctx *c, size_t n) {
    if (n <= c->cap) return KILN_OK;
    size_t cap = c->cap ? c->cap : 64;
    while (cap < n) cap *= 2;
    bsym *v = realloc(c->v, cap * sizeof *v);
    if (!v) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    c->v = v;
    c->cap = cap;
    return KILN_OK;
}

static kiln_status try_pair(const kiln_tokenizer *t, bpe_ctx *c, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return KILN_OK;
    const tok_merge *m = tok_merges_find(&t->merges, c->v[l].id, c->v[r].id);
    if (!m) return KILN_OK;
    return tok_heap_push(&c->h, (tok_cand){(double)m->rank, l, r, c->v[l].id, c->v[r].id});
}

/* With ignore_merges, a pre-token that is itself a token is taken whole. */
static int32_t whole_word(const kiln_tokenizer *t, bpe_ctx *c, const char *s, size_t n) {
    if (!t->byte_level) return n <= t->max_token_len ? tok_lookup(t, s, n) : -1;
    if (n > t->max_token_len) return -1; /* the encoded form is at least as long */
    if (c->enc_cap < n * 2) {
        char *e = realloc(c->enc, n * 2);
        if (!e) return -1;
        c->enc = e;
        c->enc_cap = n * 2;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += tok_utf8_encode(tok_byte_to_cp((uint8_t)s[i]), c->enc + k);
    return tok_lookup(t, c->enc, k);
}

static kiln_status add_sym(bpe_ctx *c, size_t *count, int32_t id) {
    kiln_status st = reserve(c, *count + 1);
    if (st != KILN_OK) return st;
    c->v[*count] = (bsym){id, (int32_t)*count - 1, -1, true};
    (*count)++;
    return KILN_OK;
}

/* Initial symbols of a non-byte-level word: characters, byte fallback, [UNK]. */
static kiln_status char_symbols(const kiln_tokenizer *t, bpe_ctx *c, const char *s, size_t n, size_t *count) {
    kiln_status st = KILN_OK;
    bool prev_unk = false;
    for (size_t i = 0; i < n && st == KILN_OK;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, NULL);
        if (l == 0) l = 1;
        int32_t id = tok_lookup(t, s + i, l);
        if (id >= 0) {
            st = add_sym(c, count, id);
            prev_unk = false;
        } else {
            bool all = t->byte_fallback;
            for (size_t k = 0; k < l && all; k++) all = t->byte_tok[(uint8_t)s[i + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < l && st == KILN_OK; k++) st = add_sym(c, count, t->byte_tok[(uint8_t)s[i + k]]);
                prev_unk = false;
            } else if (t->unk >= 0 && !(t->fuse_unk && prev_unk)) {
                st = add_sym(c, count, t->unk);
                prev_unk = true;
            }
        }
        i += l;
    }
    return st;
}

static kiln_status bpe_word(const kiln_tokenizer *t, bpe_ctx *c, const char *s, size_t n, tok_ids *out) {
    if (n == 0) return KILN_OK;
    if (t->ignore_merges) {
        int32_t id = whole_word(t, c, s, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    size_t count = 0;
    kiln_status st = KILN_OK;
    if (t->byte_level) {
        st = reserve(c, n);
        for (size_t i = 0; i < n && st == KILN_OK; i++) st = add_sym(c, &count, t->byte_tok[(uint8_t)s[i]]);
    } else {
        st = char_symbols(t, c, s, n, &count);
    }
    if (st != KILN_OK) return st;
    for (size_t i = 0; i + 1 < count; i++) c->v[i].next = (int32_t)i + 1;
    c->h.n = 0;
    for (size_t i = 1; i < count && st == KILN_OK; i++) st = try_pair(t, c, (int32_t)i - 1, (int32_t)i);
    tok_cand k;
    while (st == KILN_OK && tok_heap_pop(&c->h, &k)) {
        bsym *l = &c->v[k.left], *r = &c->v[k.right];
        if (!l->alive || !r->alive || l->next != k.right || l->id != k.a || r->id != k.b) continue; /* stale */
        l->id = tok_merges_find(&t->merges, k.a, k.b)->id;
        r->alive = false;
        l->next = r->next;
        if (r->next >= 0) c->v[r->next].prev = k.left;
        st = try_pair(t, c, l->prev, k.left);
        if (st == KILN_OK) st = try_pair(t, c, k.left, l->next);
    }
    for (int32_t i = count ? 0 : -1; st == KILN_OK && i >= 0; i = c->v[i].next)
        if (c->v[i].id >= 0) st = tok_ids_push(out, c->v[i].id);
    return st;
}

kiln_status tok_bpe_encode(const kiln_tokenizer *t, const char *text, size_t len, bool first, tok_ids *out) {
    char *norm = NULL;
    size_t nlen = len;
    kiln_status st = KILN_OK;
    if (t->n_norm) {
        st = tok_normalize(t, text, len, &norm, &nlen);
        if (st != KILN_OK) return st;
        text = norm;
    }
    tok_spans spans = {0};
    char *owned = NULL;
    const char *s = text;
    size_t slen = nlen;
    if (t->n_pre) {
        st = tok_pretokenize(t, text, nlen, first, &spans, &owned, &s, &slen);
    } else if (nlen) {
        spans.v = malloc(sizeof *spans.v);
        if (!spans.v) st = kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
        else spans.v[spans.n++] = (tok_span){0, nlen};
    }
    bpe_ctx c = {0};
    for (size_t i = 0; i < spans.n && st == KILN_OK; i++) st = bpe_word(t, &c, s + spans.v[i].start, spans.v[i].len, out);
    free(c.v);
    free(c.h.v);
    free(c.enc);
    tok_spans_free(&spans);
    free(owned);
    free(norm);
    return st;
}
