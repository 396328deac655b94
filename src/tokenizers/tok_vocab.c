/*
 * tok_vocab.c — the vocabulary part of a tokenizer: storage of token texts, the
 * text -> id and merge hash maps, and tok_finalize(), which derives the lookup
 * tables every algorithm needs (byte tokens, special-token table, end-of-generation
 * flags, rendered pieces) from what a loader filled in.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

/* ---- small helpers ---------------------------------------------------------------- */

kiln_status tok_ids_push(tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return KILN_OK;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

kiln_tokenizer *tok_alloc(void) {
    kiln_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->bos = t->eos = t->eot = t->eom = t->unk = t->sep = t->pad = -1;
    for (int i = 0; i < 256; i++) t->byte_tok[i] = -1;
    t->wpm_max_chars = 100;
    return t;
}

kiln_status tok_set_vocab(kiln_tokenizer *t, int32_t n, const char *const *texts, const size_t *lens) {
    if (n <= 0 || n > TOK_MAX_VOCAB)
        return kiln_fail(KILN_ERR_FORMAT, "tokenizer: vocabulary size %d out of range (1..%d)", (int)n,
                         TOK_MAX_VOCAB);
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (lens[i] > TOK_MAX_TOKEN_LEN)
            return kiln_fail(KILN_ERR_FORMAT, "tokenizer: token %d is %zu bytes long (max %d)", (int)i, lens[i],
                             TOK_MAX_TOKEN_LEN);
        total += lens[i]; /* cannot overflow: n * 64 KiB < 2^40 */
    }
    t->blob = malloc(total + 1);
    t->off = kiln_malloc_array((size_t)n + 1, sizeof *t->off);
    t->score = kiln_calloc_array((size_t)n, sizeof *t->score);
    t->attr = kiln_malloc_array((size_t)n, sizeof *t->attr);
    if (!t->blob || !t->off || !t->score || !t->attr) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    size_t p = 0;
    for (int32_t i = 0; i < n; i++) {
        t->off[i] = p;
        if (lens[i]) memcpy(t->blob + p, texts[i], lens[i]);
        p += lens[i];
        t->attr[i] = TOK_ATTR_NORMAL;
    }
    t->off[n] = p;
    t->blob[p] = 0;
    t->n_vocab = n;
    return KILN_OK;
}

int32_t tok_lookup(const kiln_tokenizer *t, const char *text, size_t len) {
    if (!t->map.slots || len == 0 || len > t->max_token_len) return -1;
    size_t i = (size_t)hash_bytes(text, len) & t->map.mask;
    for (;;) {
        int32_t id = t->map.slots[i];
        if (id < 0) return -1;
        if (tok_len(t, id) == len && memcmp(tok_text(t, id), text, len) == 0) return id;
        i = (i + 1) & t->map.mask;
    }
}

static kiln_status build_map(kiln_tokenizer *t) {
    size_t cap = pow2_at_least((size_t)t->n_vocab * 2);
    t->map.slots = kiln_malloc_array(cap, sizeof *t->map.slots);
    if (!t->map.slots) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    memset(t->map.slots, 0xff, cap * sizeof *t->map.slots);
    t->map.mask = cap - 1;
    t->max_token_len = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (tok_len(t, id) > t->max_token_len) t->max_token_len = tok_len(t, id);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len = tok_len(t, id);
        if (len == 0) continue;
        const char *s = tok_text(t, id);
        size_t i = (size_t)hash_bytes(s, len) & t->map.mask;
        bool dup = false;
        while (t->map.slots[i] >= 0) {
            int32_t o = t->map.slots[i];
            if (tok_len(t, o) == len && memcmp(tok_text(t, o), s, len) == 0) {
                dup = true; /* the first id keeps the text */
                break;
            }
            i = (i + 1) & t->map.mask;
        }
        if (!dup) t->map.slots[i] = id;
    }
    return KILN_OK;
}

/* ---- merges ---------------------------------------------------------------------- */

static size_t hash_pair(uint32_t a, uint32_t b) {
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 31));
}

kiln_status tok_merges_init(tok_mergemap *m, size_t n) {
    size_t cap = pow2_at_least(n * 2 + 1);
    m->slots = kiln_malloc_array(cap, sizeof *m->slots);
    if (!m->slots) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory for %zu merges", n);
    for (size_t i = 0; i < cap; i++) m->slots[i].a = UINT32_MAX;
    m->mask = cap - 1;
    m->n = 0;
    return KILN_OK;
}

void tok_merges_add(tok_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if (m->n * 2 + 1 > m->mask) return; /* sized by init; never reached */
    size_t i = hash_pair((uint32_t)a, (uint32_t)b) & m->mask;
    while (m->slots[i].a != UINT32_MAX) {
        if (m->slots[i].a == (uint32_t)a && m->slots[i].b == (uint32_t)b) return;
        i = (i + 1) & m->mask;
    }
    m->slots[i] = (tok_merge){(uint32_t)a, (uint32_t)b, rank, id};
    m->n++;
}

const tok_merge *tok_merges_find(const tok_mergemap *m, int32_t a, int32_t b) {
    if (!m->slots || a < 0 || b < 0) return NULL;
    size_t i = hash_pair((uint32_t)a, (uint32_t)b) & m->mask;
    while (m->slots[i].a != UINT32_MAX) {
        if (m->slots[i].a == (uint32_t)a && m->slots[i].b == (uint32_t)b) return &m->slots[i];
        i = (i + 1) & m->mask;
    }
    return NULL;
}

/* ---- derived tables --------------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Byte value of a "<0xXX>" text, or -1. */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

static void find_byte_tokens(kiln_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        if (t->byte_tok[b] >= 0) continue; /* set by the loader (llama2.c) */
        char s[8];
        size_t n;
        int32_t id = -1;
        if (t->byte_level) {
            n = tok_utf8_encode(tok_byte_to_cp((uint8_t)b), s);
            id = tok_lookup(t, s, n);
        } else if (t->alg == TOK_ALG_SPM || t->alg == TOK_ALG_BPE) {
            static const char hex[] = "0123456789ABCDEF";
            char bt[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
            id = tok_lookup(t, bt, 6);
            if (id < 0 && t->alg == TOK_ALG_SPM) { /* llama.cpp: fall back to the byte itself */
                s[0] = (char)b;
                id = tok_lookup(t, s, 1);
            }
        }
        t->byte_tok[b] = id;
    }
}

/* qsort has no context argument, so the special table is sorted as (first byte,
 * length, id) triples: by first byte, longest first, then by id. */
typedef struct {
    size_t len;
    int32_t id;
    uint8_t first;
} len_id;

static int cmp_len_id(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static kiln_status build_specials(kiln_tokenizer *t) {
    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->attr[id] & (TOK_ATTR_SPECIAL | TOK_ATTR_USER)) && tok_len(t, id) > 0) n++;
    if (n == 0) return KILN_OK;
    len_id *tmp = kiln_malloc_array(n, sizeof *tmp);
    t->special = kiln_malloc_array(n, sizeof *t->special);
    if (!tmp || !t->special) {
        free(tmp);
        return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    }
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->attr[id] & (TOK_ATTR_SPECIAL | TOK_ATTR_USER)) && tok_len(t, id) > 0)
            tmp[n++] = (len_id){tok_len(t, id), id, (uint8_t)tok_text(t, id)[0]};
    qsort(tmp, n, sizeof *tmp, cmp_len_id);
    size_t k = 0;
    for (int c = 0; c < 256; c++) {
        t->special_at[c] = k;
        while (k < n && tmp[k].first == c) k++;
    }
    t->special_at[256] = n;
    for (size_t i = 0; i < n; i++) t->special[i] = tmp[i].id;
    free(tmp);
    t->n_special = n;
    return KILN_OK;
}

/* Texts that mark the end of a turn in the chat formats kiln knows. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", /* DeepSeek */
};

static void mark_eog(kiln_tokenizer *t) {
    int32_t ids[] = {t->eos, t->eot, t->eom};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i] >= 0 && ids[i] < t->n_vocab) t->attr[ids[i]] |= TOK_ATTR_EOG;
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = tok_lookup(t, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0) {
            t->attr[id] |= TOK_ATTR_EOG;
            if (t->eot < 0 && strcmp(eog_texts[i], "<|endoftext|>") != 0) t->eot = id;
            /* llama.cpp: an end-of-turn text that is not typed control still is one */
            if (!(t->attr[id] & TOK_ATTR_USER)) t->attr[id] |= TOK_ATTR_CONTROL;
        }
    }
}

/* Renders token id as its decoder shows it, into dst (room for tok_len bytes). */
static size_t render(const kiln_tokenizer *t, int32_t id, char *dst) {
    const char *s = tok_text(t, id);
    size_t n = tok_len(t, id);
    uint16_t a = t->attr[id];
    if (a & (TOK_ATTR_SPECIAL | TOK_ATTR_USER)) {
        memcpy(dst, s, n);
        return n;
    }
    int bv = byte_token_value(s, n);
    switch (t->dec) {
    case TOK_DEC_LLAMA2C:
        if (bv >= 0) {
            dst[0] = (char)bv;
            return 1;
        }
        memcpy(dst, s, n);
        return n;
    case TOK_DEC_SPM:
    case TOK_DEC_WPM: {
        if ((a & TOK_ATTR_BYTE) && bv >= 0) {
            dst[0] = (char)bv;
            return 1;
        }
        if (!(a & TOK_ATTR_NORMAL)) return 0; /* unused / undefined: llama.cpp prints nothing */
        size_t o = 0;
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                dst[o++] = ' ';
                i += 3;
            } else {
                dst[o++] = s[i++];
            }
        }
        return o;
    }
    case TOK_DEC_BYTELEVEL: {
        if (!(a & TOK_ATTR_NORMAL)) return 0;
        size_t o = 0;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, NULL);
            int b = l ? tok_cp_to_byte(cp) : -1;
            if (b >= 0) {
                dst[o++] = (char)b;
                i += l;
            } else { /* not in the alphabet: keep the text */
                size_t k = l ? l : 1;
                memcpy(dst + o, s + i, k);
                o += k;
                i += k;
            }
        }
        return o;
    }
    }
    return 0;
}

static kiln_status build_pieces(kiln_tokenizer *t) {
    size_t total = t->off[t->n_vocab];
    t->pblob = malloc(total + 1);
    t->poff = kiln_malloc_array((size_t)t->n_vocab + 1, sizeof *t->poff);
    if (!t->pblob || !t->poff) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    size_t p = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        t->poff[id] = p;
        p += render(t, id, t->pblob + p); /* a rendering is never longer than the text */
    }
    t->poff[t->n_vocab] = p;
    t->pblob[p] = 0;
    return KILN_OK;
}

kiln_status tok_finalize(kiln_tokenizer *t) {
    kiln_status st = build_map(t);
    if (st != KILN_OK) return st;
    find_byte_tokens(t);
    for (int b = 0; b < 256; b++) {
        int32_t id = t->byte_tok[b];
        if (id >= 0 && t->dec != TOK_DEC_BYTELEVEL && byte_token_value(tok_text(t, id), tok_len(t, id)) == b &&
            !(t->attr[id] & (TOK_ATTR_SPECIAL | TOK_ATTR_USER)))
            t->attr[id] |= TOK_ATTR_BYTE;
    }
    mark_eog(t);
    if ((st = build_specials(t)) != KILN_OK) return st;
    return build_pieces(t);
}

/* ---- public accessors ------------------------------------------------------------ */

void kiln_tokenizer_free(kiln_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->score);
    free(t->attr);
    free(t->map.slots);
    free(t->pblob);
    free(t->poff);
    free(t->special);
    free(t->merges.slots);
    for (size_t i = 0; i < t->n_norm; i++) tok_norm_free(&t->norm[i]);
    free(t->norm);
    for (size_t i = 0; i < t->n_pre; i++) tok_regex_free(t->pre[i].re);
    free(t->pre);
    free(t);
}

int32_t kiln_tokenizer_n_vocab(const kiln_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t kiln_tokenizer_bos(const kiln_tokenizer *t) { return t ? t->bos : -1; }
int32_t kiln_tokenizer_eos(const kiln_tokenizer *t) { return t ? t->eos : -1; }
bool kiln_tokenizer_add_bos(const kiln_tokenizer *t) { return t && t->add_bos && t->bos >= 0; }

bool kiln_tokenizer_is_eog(const kiln_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && (t->attr[id] & TOK_ATTR_EOG);
}

int32_t kiln_tokenizer_find(const kiln_tokenizer *t, const char *text, size_t len) {
    return t && text ? tok_lookup(t, text, len) : -1;
}

kiln_status kiln_tokenizer_piece(const kiln_tokenizer *t, int32_t id, kiln_buf *out) {
    if (!t || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_tokenizer_piece: NULL argument");
    if (id < 0 || id >= t->n_vocab) return KILN_OK;
    size_t n = t->poff[id + 1] - t->poff[id];
    return n ? kiln_buf_append(out, t->pblob + t->poff[id], n) : KILN_OK;
}
