/*
 * tok_detok.c — the streaming detokenizer.
 *
 * Pieces are rendered once per vocabulary (tok_finalize); pushing an id appends its
 * piece to a small carry-over of bytes not yet output, and everything up to the last
 * complete UTF-8 character leaves at once. A truncated sequence at the end waits
 * for the next piece (byte tokens spell multi-byte characters one byte at a time);
 * bytes that can never become valid leave as U+FFFD immediately, and whatever is
 * still held at flush does too. So every chunk handed out is valid UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "tokenizers/tok_impl.h"

struct kiln_detok {
    const kiln_tokenizer *t;
    uint8_t pend[4]; /* held-back prefix of an incomplete character (at most 3 bytes) */
    size_t npend;
    bool strip_space; /* drop one leading space of the next piece */
    kiln_buf scratch;
};

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

kiln_status kiln_detok_create(const kiln_tokenizer *t, kiln_detok **out) {
    if (!t || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_detok_create: NULL argument");
    kiln_detok *d = calloc(1, sizeof *d);
    if (!d) return kiln_fail(KILN_ERR_NOMEM, "detokenizer: out of memory");
    d->t = t;
    d->strip_space = t->strip_first_space;
    *out = d;
    return KILN_OK;
}

void kiln_detok_free(kiln_detok *d) {
    if (!d) return;
    kiln_buf_free(&d->scratch);
    free(d);
}

/* Emits the complete characters of p[0..n), keeps an incomplete tail in d->pend. */
static kiln_status emit(kiln_detok *d, const uint8_t *p, size_t n, kiln_buf *out) {
    size_t i = 0, run = 0; /* p[run..i) is valid text not yet appended */
    kiln_status st = KILN_OK;
    while (i < n && st == KILN_OK) {
        uint32_t cp;
        bool incomplete;
        size_t l = tok_utf8_decode(p + i, n - i, &cp, &incomplete);
        if (l) {
            i += l;
            continue;
        }
        if (i > run) st = kiln_buf_append(out, p + run, i - run);
        if (st != KILN_OK) break;
        if (incomplete) { /* only possible at the end: hold it */
            memcpy(d->pend, p + i, n - i);
            d->npend = n - i;
            return KILN_OK;
        }
        st = kiln_buf_append(out, replacement, 3);
        run = ++i;
    }
    if (st == KILN_OK && i > run) st = kiln_buf_append(out, p + run, i - run);
    return st;
}

kiln_status kiln_detok_push(kiln_detok *d, int32_t id, kiln_buf *out) {
    if (!d || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_detok_push: NULL argument");
    const kiln_tokenizer *t = d->t;
    if (id < 0 || id >= t->n_vocab) return KILN_OK; /* e.g. padding rows of a larger embedding */
    if (id == t->bos) {
        d->strip_space = t->strip_after_bos || (d->strip_space && t->strip_first_space);
        return KILN_OK;
    }
    if (t->attr[id] & TOK_ATTR_SPECIAL) return KILN_OK;
    const uint8_t *p = (const uint8_t *)t->pblob + t->poff[id];
    size_t n = t->poff[id + 1] - t->poff[id];
    if (d->strip_space) {
        if (n && p[0] == ' ') {
            p++;
            n--;
        }
        d->strip_space = false;
    }
    if (n == 0) return KILN_OK;
    if (d->npend == 0) return emit(d, p, n, out);
    /* join the held bytes with the new piece */
    d->scratch.len = 0;
    kiln_status st = kiln_buf_append(&d->scratch, d->pend, d->npend);
    if (st == KILN_OK) st = kiln_buf_append(&d->scratch, p, n);
    if (st != KILN_OK) return st;
    d->npend = 0;
    return emit(d, (const uint8_t *)d->scratch.data, d->scratch.len, out);
}

kiln_status kiln_detok_flush(kiln_detok *d, kiln_buf *out) {
    if (!d || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_detok_flush: NULL argument");
    kiln_status st = KILN_OK;
    if (d->npend) st = kiln_buf_append(out, replacement, 3); /* a truncated character */
    d->npend = 0;
    d->strip_space = d->t->strip_first_space;
    return st;
}
