/*
 * tok_heap.c — the priority queue behind every merge-based tokenizer.
 *
 * Entries are ordered by (key, left): the best merge first and, between equals, the
 * leftmost one, which is the tie rule of SentencePiece, llama.cpp, Hugging Face BPE
 * and run.c alike. Stale entries are not removed; the caller checks them on pop.
 */
#include <stdlib.h>

#include "base/status.h"
#include "tokenizers/tok_impl.h"

static bool less(const tok_cand *x, const tok_cand *y) {
    return x->key < y->key || (x->key == y->key && x->left < y->left);
}

kiln_status tok_heap_push(tok_heap *h, tok_cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        tok_cand *v = realloc(h->v, cap * sizeof *v);
        if (!v) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return KILN_OK;
}

bool tok_heap_pop(tok_heap *h, tok_cand *c) {
    if (h->n == 0) return false;
    *c = h->v[0];
    tok_cand last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const tok_cand *best = &last;
        if (l < n && less(&h->v[l], best)) {
            m = l;
            best = &h->v[l];
        }
        if (r < n && less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (n) h->v[i] = last;
    return true;
}
