/*
 * clip_tok.c — CLIP's BPE tokenizer (clip_tok.h).
 *
 * Two string -> int maps (open addressing over FNV-1a): token text -> id, and merge
 * "a b" -> rank (symbols never contain a space: the byte 0x20 is the symbol U+0120).
 * A word is merged as OpenAI's bpe() does: take the adjacent pair of lowest rank,
 * merge all its non-overlapping occurrences left to right, repeat until no pair has
 * a rank. Symbols stay contiguous ranges of the word's mapped text with "</w>"
 * appended, so merging two symbols is extending a range.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizers/clip_tok.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <zlib.h>

#include "base/alloc.h"
#include "base/mapfile.h"
#include "base/status.h"

#define CLIP_VOCAB 49408
#define EOW "</w>"

typedef struct {
    char **key;
    int32_t *val;
    size_t cap, n;
} strmap;

struct kiln_clip_tok {
    char **text; /* id -> token text */
    int32_t n_vocab, bos, eos;
    strmap vocab, ranks;
    uint8_t byte_of[512];    /* byte symbol code point (< 324) -> byte */
    uint16_t symbol_of[256]; /* byte -> code point */
    pcre2_code *re;
};

/* ---- maps ------------------------------------------------------------------------ */

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001B3ull;
    return h;
}

static kiln_status map_init(strmap *m, size_t n) {
    m->cap = 64;
    while (m->cap < 2 * n) m->cap *= 2;
    m->key = calloc(m->cap, sizeof *m->key);
    m->val = calloc(m->cap, sizeof *m->val);
    return m->key && m->val ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
}

static void map_free(strmap *m) {
    for (size_t i = 0; m->key && i < m->cap; i++) free(m->key[i]);
    free(m->key);
    free(m->val);
}

static int32_t map_get(const strmap *m, const char *s, size_t n) {
    for (size_t i = fnv(s, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->key[i]) return -1;
        if (!strncmp(m->key[i], s, n) && m->key[i][n] == 0) return m->val[i];
    }
}

/* Adds s -> v unless s is present (the first one wins, as a dict built in order would
 * not: callers refuse duplicates where they matter). */
static kiln_status map_put(strmap *m, const char *s, size_t n, int32_t v, bool *dup) {
    *dup = false;
    if (2 * (m->n + 1) > m->cap) return kiln_fail(KILN_ERR_INVALID_ARG, "clip tokenizer: map full");
    size_t i = fnv(s, n) & (m->cap - 1);
    for (; m->key[i]; i = (i + 1) & (m->cap - 1))
        if (!strncmp(m->key[i], s, n) && m->key[i][n] == 0) {
            *dup = true;
            return KILN_OK;
        }
    if (!(m->key[i] = kiln_strndup(s, n))) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    m->val[i] = v;
    m->n++;
    return KILN_OK;
}

/* ---- building ------------------------------------------------------------------ */

/* GPT-2's byte -> code point table: printable bytes stand for themselves, the others
 * take 256, 257, ... in byte order. The vocabulary's first 256 tokens are these
 * symbols in the order printable bytes first, then the others. */
static bool printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

static void byte_tables(kiln_clip_tok *t, int order[256]) {
    int n = 0, k = 0;
    for (int b = 0; b < 256; b++)
        if (printable(b)) t->symbol_of[b] = (uint16_t)b, order[k++] = b;
    for (int b = 0; b < 256; b++)
        if (!printable(b)) t->symbol_of[b] = (uint16_t)(256 + n++), order[k++] = b;
    for (int b = 0; b < 256; b++) t->byte_of[t->symbol_of[b]] = (uint8_t)b;
}

static size_t put_cp(char *dst, uint32_t cp) { return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)dst); }

size_t kiln_clip_tok_byte_symbol(int b, char out[4]) {
    int n = 0;
    for (int k = 0; k < b; k++) n += !printable(k);
    return put_cp(out, printable(b) ? (uint32_t)b : (uint32_t)(256 + n));
}


static kiln_status compile_pattern(kiln_clip_tok *t) {
    static const char pat[] = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
                              "[^\\s\\p{L}\\p{N}]+";
    int err;
    PCRE2_SIZE off;
    t->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &err, &off,
                          NULL);
    return t->re ? KILN_OK : kiln_fail(KILN_ERR_INVALID_ARG, "clip tokenizer: pattern does not compile");
}

static kiln_status set_text(kiln_clip_tok *t, int32_t id, const char *s, size_t n) {
    if (id < 0 || id >= t->n_vocab || t->text[id])
        return kiln_fail(KILN_ERR_FORMAT, "clip tokenizer: token id %d is out of range or given twice", id);
    bool dup;
    kiln_status st = map_put(&t->vocab, s, n, id, &dup);
    if (!st && dup) st = kiln_fail(KILN_ERR_FORMAT, "clip tokenizer: token '%.*s' is given twice", (int)n, s);
    if (!st && !(t->text[id] = kiln_strndup(s, n))) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    return st;
}

static kiln_status tok_alloc(int32_t n_vocab, size_t n_merges, kiln_clip_tok **out) {
    kiln_clip_tok *t = calloc(1, sizeof *t);
    if (!t) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    t->n_vocab = n_vocab;
    int order[256];
    byte_tables(t, order);
    kiln_status st = (t->text = calloc((size_t)n_vocab, sizeof *t->text)) ? KILN_OK
                                                                          : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!st) st = map_init(&t->vocab, (size_t)n_vocab);
    if (!st) st = map_init(&t->ranks, n_merges);
    if (!st) st = compile_pattern(t);
    if (st) {
        kiln_clip_tok_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

/* A merge line "a b" (one space, neither side empty): its rank. */
static kiln_status add_merge(kiln_clip_tok *t, const char *line, size_t n, int32_t rank, const char *what) {
    const char *sp = memchr(line, ' ', n);
    if (!sp || sp == line || sp == line + n - 1 || memchr(sp + 1, ' ', (size_t)(line + n - sp - 1)))
        return kiln_fail(KILN_ERR_FORMAT, "%s: merge %d is not two symbols separated by one space", what, rank + 1);
    bool dup;
    return map_put(&t->ranks, line, n, rank, &dup);
}

static kiln_status finish(kiln_clip_tok *t, const char *what) {
    t->bos = map_get(&t->vocab, "<|startoftext|>", 15);
    t->eos = map_get(&t->vocab, "<|endoftext|>", 13);
    if (t->bos < 0 || t->eos < 0)
        return kiln_fail(KILN_ERR_FORMAT, "%s: the vocabulary lacks <|startoftext|> or <|endoftext|>", what);
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (!t->text[i]) return kiln_fail(KILN_ERR_FORMAT, "%s: token id %d has no text", what, i);
    for (int b = 0; b < 256; b++) { /* every byte symbol must be a token: words always encode */
        char s[4];
        size_t k = put_cp(s, t->symbol_of[b]);
        if (map_get(&t->vocab, s, k) < 0) return kiln_fail(KILN_ERR_FORMAT, "%s: byte symbol %d is missing", what, b);
    }
    return KILN_OK;
}

/* Reads a whole gzip file (at most 64 MiB uncompressed). */
static kiln_status read_gz(const char *path, char **out, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return kiln_fail(KILN_ERR_NOT_FOUND, "%s: cannot open", path);
    size_t cap = 1 << 22, n = 0;
    char *b = malloc(cap + 1);
    kiln_status st = b ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    while (!st) {
        if (n == cap) {
            char *nb = cap < (64u << 20) ? realloc(b, (cap *= 2) + 1) : NULL;
            if (!nb) {
                st = kiln_fail(KILN_ERR_FORMAT, "%s: more than 64 MiB uncompressed", path);
                break;
            }
            b = nb;
        }
        int r = gzread(f, b + n, (unsigned)(cap - n));
        if (r < 0) {
            int e;
            st = kiln_fail(KILN_ERR_FORMAT, "%s: not a valid gzip file (%s)", path, gzerror(f, &e));
        } else if (r == 0) {
            break;
        }
        n += (size_t)(r > 0 ? r : 0);
    }
    gzclose(f);
    if (st) {
        free(b);
        return st;
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return KILN_OK;
}

kiln_status kiln_clip_tok_from_merges_gz(const char *path, kiln_clip_tok **out) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    kiln_status st = read_gz(path, &text, &len);
    if (st) return st;
    const size_t n_merges = CLIP_VOCAB - 512 - 2;
    kiln_clip_tok *t = NULL;
    if ((st = tok_alloc(CLIP_VOCAB, n_merges, &t))) {
        free(text);
        return st;
    }
    int order[256];
    byte_tables(t, order);
    for (int i = 0; i < 256 && !st; i++) { /* the byte symbols, then the same ending a word */
        char s[16];
        size_t k = put_cp(s, t->symbol_of[order[i]]);
        st = set_text(t, i, s, k);
        memcpy(s + k, EOW, 4);
        if (!st) st = set_text(t, 256 + i, s, k + 4);
    }
    const char *p = memchr(text, '\n', len), *end = text + len; /* line 0 is a header */
    size_t m = 0;
    for (p = p ? p + 1 : end; m < n_merges && !st; m++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (p >= end) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: %zu merges, CLIP needs %zu", path, m, n_merges);
            break;
        }
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n && p[n - 1] == '\r') n--;
        if ((st = add_merge(t, p, n, (int32_t)m, path))) break;
        char joined[256];
        const char *sp = memchr(p, ' ', n);
        if (n > sizeof joined) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: merge %zu is too long", path, m + 1);
            break;
        }
        memcpy(joined, p, (size_t)(sp - p));
        memcpy(joined + (sp - p), sp + 1, n - (size_t)(sp - p) - 1);
        st = set_text(t, (int32_t)(512 + m), joined, n - 1);
        p = nl ? nl + 1 : end;
    }
    if (!st) st = set_text(t, CLIP_VOCAB - 2, "<|startoftext|>", 15);
    if (!st) st = set_text(t, CLIP_VOCAB - 1, "<|endoftext|>", 13);
    if (!st) st = finish(t, path);
    free(text);
    if (st) {
        kiln_clip_tok_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

kiln_status kiln_clip_tok_from_hf(const char *vocab_json, const char *merges_txt, kiln_clip_tok **out) {
    *out = NULL;
    char *vj = NULL, *mt = NULL;
    size_t mlen = 0;
    kiln_status st = kiln_read_file(vocab_json, 64u << 20, &vj, NULL);
    if (!st) st = kiln_read_file(merges_txt, 64u << 20, &mt, &mlen);
    cJSON *v = st ? NULL : cJSON_Parse(vj);
    if (!st && !cJSON_IsObject(v)) st = kiln_fail(KILN_ERR_FORMAT, "%s: not a JSON object of token ids", vocab_json);
    const int n_vocab = st ? 0 : cJSON_GetArraySize(v);
    if (!st && (n_vocab < 258 || n_vocab > (1 << 20)))
        st = kiln_fail(KILN_ERR_FORMAT, "%s: %d tokens is not a plausible vocabulary", vocab_json, n_vocab);
    size_t lines = 0;
    for (size_t i = 0; !st && i < mlen; i++) lines += mt[i] == '\n';
    kiln_clip_tok *t = NULL;
    if (!st) st = tok_alloc(n_vocab, lines + 1, &t);
    const cJSON *e, *entries = st ? (const cJSON *)NULL : v;
    cJSON_ArrayForEach(e, entries) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (int32_t)e->valuedouble) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: the id of '%.40s' is not an integer", vocab_json, e->string);
            break;
        }
        if ((st = set_text(t, (int32_t)e->valuedouble, e->string, strlen(e->string)))) break;
    }
    const char *p = mt, *end = mt ? mt + mlen : NULL;
    for (int32_t rank = 0; !st && p && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n && p[n - 1] == '\r') n--;
        if (n && !(p == mt && p[0] == '#')) st = add_merge(t, p, n, rank++, merges_txt);
        p = nl ? nl + 1 : end;
    }
    if (!st) st = finish(t, vocab_json);
    cJSON_Delete(v);
    free(vj);
    free(mt);
    if (st) {
        kiln_clip_tok_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

void kiln_clip_tok_free(kiln_clip_tok *t) {
    if (!t) return;
    for (int32_t i = 0; t->text && i < t->n_vocab; i++) free(t->text[i]);
    free(t->text);
    map_free(&t->vocab);
    map_free(&t->ranks);
    pcre2_code_free(t->re);
    free(t);
}

int32_t kiln_clip_tok_n_vocab(const kiln_clip_tok *t) { return t->n_vocab; }
int32_t kiln_clip_tok_bos(const kiln_clip_tok *t) { return t->bos; }
int32_t kiln_clip_tok_eos(const kiln_clip_tok *t) { return t->eos; }
const char *kiln_clip_tok_text(const kiln_clip_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->text[id] : NULL;
}
int32_t kiln_clip_tok_find(const kiln_clip_tok *t, const char *text) { return map_get(&t->vocab, text, strlen(text)); }

/* ---- encoding ------------------------------------------------------------------ */

static bool is_space(int32_t cp) {
    if (cp == ' ' || (cp >= 9 && cp <= 13) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85) return true;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

/* Whitespace runs -> one space, ends trimmed, lowercase; invalid UTF-8 -> U+FFFD. */
static kiln_status clean(const char *s, size_t n, kiln_buf *out) {
    bool space = false;
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < n && !st;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) cp = 0xFFFD, k = 1;
        i += (size_t)k;
        if (is_space(cp)) {
            space = out->len > 0;
            continue;
        }
        char b[8];
        if (space) st = kiln_buf_append(out, " ", 1);
        space = false;
        if (!st) st = kiln_buf_append(out, b, put_cp(b, (uint32_t)utf8proc_tolower(cp)));
    }
    return st;
}

typedef struct {
    size_t a, b; /* byte range in the mapped word */
} sym;

static kiln_status push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *nv = realloc(*ids, nc * sizeof *nv);
        if (!nv) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        *ids = nv;
        *cap = nc;
    }
    (*ids)[(*n)++] = id;
    return KILN_OK;
}

/* BPE of one pre-token (raw bytes w[0..n)), appending its ids. */
static kiln_status bpe_word(const kiln_clip_tok *t, const char *w, size_t n, kiln_buf *scratch, sym *syms,
                            int32_t **ids, size_t *n_ids, size_t *cap) {
    scratch->len = 0;
    size_t ns = 0;
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < n && !st; i++) { /* bytes -> symbols */
        char c[4];
        size_t k = put_cp(c, t->symbol_of[(uint8_t)w[i]]);
        syms[ns++] = (sym){scratch->len, scratch->len + k};
        st = kiln_buf_append(scratch, c, k);
    }
    if (!st) st = kiln_buf_append(scratch, EOW, 4);
    if (st) return st;
    syms[ns - 1].b += 4; /* the last symbol ends the word */
    char key[1024];
    for (;;) {
        int32_t best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < ns; i++) {
            size_t la = syms[i].b - syms[i].a, lb = syms[i + 1].b - syms[i + 1].a;
            if (la + lb + 1 > sizeof key) continue;
            memcpy(key, scratch->data + syms[i].a, la);
            key[la] = ' ';
            memcpy(key + la + 1, scratch->data + syms[i + 1].a, lb);
            int32_t r = map_get(&t->ranks, key, la + lb + 1);
            if (r >= 0 && (best < 0 || r < best)) best = r, at = i;
        }
        if (best < 0) break;
        /* merge every non-overlapping occurrence of the pair, left to right */
        const size_t la = syms[at].b - syms[at].a, lb = syms[at + 1].b - syms[at + 1].a;
        const char *pa = scratch->data + syms[at].a, *pb = scratch->data + syms[at + 1].a;
        size_t out = 0;
        for (size_t i = 0; i < ns;) {
            if (i + 1 < ns && syms[i].b - syms[i].a == la && syms[i + 1].b - syms[i + 1].a == lb &&
                !memcmp(scratch->data + syms[i].a, pa, la) && !memcmp(scratch->data + syms[i + 1].a, pb, lb)) {
                syms[out++] = (sym){syms[i].a, syms[i + 1].b};
                i += 2;
            } else {
                syms[out++] = syms[i++];
            }
        }
        ns = out;
    }
    for (size_t i = 0; i < ns; i++) {
        int32_t id = map_get(&t->vocab, scratch->data + syms[i].a, syms[i].b - syms[i].a);
        if (id < 0) return kiln_fail(KILN_ERR_FORMAT, "clip tokenizer: a merge makes a symbol that is not a token");
        if ((st = push_id(ids, n_ids, cap, id))) return st;
    }
    return KILN_OK;
}

kiln_status kiln_clip_tok_encode(const kiln_clip_tok *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!text && len) return kiln_fail(KILN_ERR_INVALID_ARG, "clip tokenizer: NULL text");
    kiln_buf c = {0}, scratch = {0};
    kiln_status st = clean(text, len, &c);
    pcre2_match_data *md = st ? NULL : pcre2_match_data_create_from_pattern(t->re, NULL);
    sym *syms = NULL;
    size_t cap = 0, pos = 0;
    if (!st && !md) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    while (!st && pos < c.len) {
        int rc = pcre2_match(t->re, (PCRE2_SPTR)c.data, c.len, pos, 0, md, NULL);
        if (rc < 0) break; /* no more pieces: what is left is whitespace */
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        const char *w = c.data + ov[0];
        const size_t wn = ov[1] - ov[0];
        pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        if (!wn) continue;
        int32_t special = (wn == 15 && !memcmp(w, "<|startoftext|>", 15)) ? t->bos
                          : (wn == 13 && !memcmp(w, "<|endoftext|>", 13)) ? t->eos
                                                                        : -1;
        if (special >= 0) {
            st = push_id(ids, n, &cap, special);
            continue;
        }
        sym *ns = realloc(syms, (wn + 1) * sizeof *ns);
        if (!ns) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        syms = ns;
        st = bpe_word(t, w, wn, &scratch, syms, ids, n, &cap);
    }
    pcre2_match_data_free(md);
    free(syms);
    kiln_buf_free(&c);
    kiln_buf_free(&scratch);
    if (st) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    } else if (*n == 0) {
        free(*ids);
        *ids = NULL;
    }
    return st;
}

kiln_status kiln_clip_tok_decode(const kiln_clip_tok *t, const int32_t *ids, size_t n, kiln_buf *out) {
    kiln_buf raw = {0};
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < n && !st; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || ids[i] == t->bos || ids[i] == t->eos) continue;
        const char *s = t->text[ids[i]];
        const size_t sl = strlen(s);
        for (size_t j = 0; j < sl && !st;) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + j, (utf8proc_ssize_t)(sl - j), &cp);
            if (k <= 0) break;
            j += (size_t)k;
            uint8_t b = cp >= 0 && cp < 512 && (cp < 256 ? printable(cp) : cp < 324) ? t->byte_of[cp] : '?';
            st = kiln_buf_append(&raw, &b, 1);
        }
    }
    for (size_t i = 0; i < raw.len && !st;) { /* "</w>" -> " " */
        if (raw.len - i >= 4 && !memcmp(raw.data + i, EOW, 4)) {
            st = kiln_buf_append(out, " ", 1);
            i += 4;
        } else {
            st = kiln_buf_append(out, raw.data + i, 1);
            i++;
        }
    }
    kiln_buf_free(&raw);
    return st;
}

kiln_status kiln_clip_tok_window(const kiln_clip_tok *t, const char *text, size_t len, int window, int32_t pad_id,
                                 int32_t *out, bool *truncated) {
    if (window < 3 || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "clip tokenizer: a window needs 3 or more tokens");
    int32_t *ids = NULL;
    size_t n = 0;
    kiln_status st = kiln_clip_tok_encode(t, text, len, &ids, &n);
    if (st) return st;
    const size_t keep = n < (size_t)window - 2 ? n : (size_t)window - 2;
    if (truncated) *truncated = n > keep;
    out[0] = t->bos;
    memcpy(out + 1, ids, keep * sizeof *ids);
    out[keep + 1] = t->eos;
    for (size_t i = keep + 2; i < (size_t)window; i++) out[i] = pad_id;
    free(ids);
    return KILN_OK;
}
