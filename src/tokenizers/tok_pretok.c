/*
 * tok_pretok.c — pre-tokenizers: cutting text into the pieces BPE merges within.
 *
 * A pipeline of steps (t->pre) runs over a list of byte ranges. The regex step is
 * Hugging Face's Split with its delimiter behaviours (Isolated, Removed,
 * MergedWithPrevious/Next, Contiguous; invert); llama.cpp's per-model regex lists
 * are a chain of Isolated splits. Each regex sees only the piece it splits, so
 * lookaheads such as \s+(?!\S) stop at the piece's end. Metaspace and ByteLevel's
 * add_prefix_space rewrite the text.
 *
 * Regexes run on PCRE2 with UTF + UCP (so \p{L}, \p{N} are Unicode categories) and
 * PCRE2_MATCH_INVALID_UTF (invalid bytes never match and so become pieces of their
 * own). \s is rewritten to the Unicode White_Space set, which is what the
 * reference tokenizers (Oniguruma, and llama.cpp's tables) use; PCRE2's own \s
 * lacks U+0085.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

/* ---- regex compilation ------------------------------------------------------------ */

#define WS_BODY "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

/* Rewrites \s / \S into explicit White_Space classes. */
static kiln_status translate(const char *p, size_t n, kiln_buf *out) {
    bool in_class = false;
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < n && st == KILN_OK;) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if (d == 's') st = kiln_buf_append_str(out, in_class ? WS_BODY : "[" WS_BODY "]");
            else if (d == 'S' && !in_class) st = kiln_buf_append_str(out, "[^" WS_BODY "]");
            else st = kiln_buf_append(out, p + i, 2);
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            size_t j = i + 1;
            if (j < n && p[j] == '^') j++;
            if (j < n && p[j] == ']') j++; /* a leading ] is a literal */
            st = kiln_buf_append(out, p + i, j - i);
            i = j;
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] */
            const char *e = NULL;
            for (size_t j = i + 2; j + 1 < n; j++)
                if (p[j] == ':' && p[j + 1] == ']') {
                    e = p + j + 2;
                    break;
                }
            if (e) {
                st = kiln_buf_append(out, p + i, (size_t)(e - (p + i)));
                i = (size_t)(e - p);
                continue;
            }
        }
        if (in_class && c == ']') in_class = false;
        st = kiln_buf_append(out, &c, 1);
        i++;
    }
    return st;
}

kiln_status tok_regex_compile(const char *pattern, size_t len, void **re) {
    *re = NULL;
    kiln_buf b = {0};
    kiln_status st = translate(pattern, len, &b);
    if (st != KILN_OK) {
        kiln_buf_free(&b);
        return st;
    }
    int err = 0;
    PCRE2_SIZE eoff = 0;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)(b.data ? b.data : ""), b.len,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                                     &err, &eoff, NULL);
    kiln_buf_free(&b);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return kiln_fail(KILN_ERR_FORMAT, "tokenizer: bad pre-tokenizer regex '%.*s': %s", (int)(len > 200 ? 200 : len),
                         pattern, (const char *)msg);
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* best effort: the interpreter is the fallback */
    *re = code;
    return KILN_OK;
}

void tok_regex_free(void *re) { pcre2_code_free((pcre2_code *)re); }

kiln_status tok_pre_add_split(kiln_tokenizer *t, const char *pattern, size_t len, tok_split_behavior b, bool invert) {
    void *re;
    kiln_status st = tok_regex_compile(pattern, len, &re);
    if (st != KILN_OK) return st;
    tok_pre *v = realloc(t->pre, (t->n_pre + 1) * sizeof *v);
    if (!v) {
        tok_regex_free(re);
        return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    }
    t->pre = v;
    v[t->n_pre++] = (tok_pre){.kind = TOK_PRE_SPLIT, .re = re, .behavior = b, .invert = invert};
    return KILN_OK;
}

/* ---- llama.cpp's pre-tokenizer table ---------------------------------------------- */

/* The regexes are those of the models' tokenizer.json files (llama.cpp keeps one
 * list per tokenizer.ggml.pre value); PCRE2 takes the originals unchanged. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_PORO " ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+"
#define RE_TEKKEN                                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"                  \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}|"          \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* DeepSeek LLM's letter class, as its tokenizer.json lists it (\u escapes). */
#define RE_DEEPSEEK_LETTERS                                                                                        \
    "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-\\x{293}"          \
    "\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x{386}\\x{388}-\\x{38a}"         \
    "\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48a}-\\x{52f}\\x{531}-\\x{556}"               \
    "\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}"             \
    "\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}"             \
    "\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}"     \
    "\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}"     \
    "\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}"              \
    "\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}"               \
    "\\x{212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}"               \
    "\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}"               \
    "\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}"             \
    "\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}"           \
    "\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}"   \
    "\\x{1e900}-\\x{1e943}]+"
#define RE_CJK "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"

typedef struct {
    const char *names; /* NUL-separated aliases, ending with an empty name */
    const char *re[6];
    bool ignore_merges, add_bos;
} pre_entry;

static const pre_entry pre_table[] = {
    {"default\0", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
    {"llama3\0llama-v3\0llama-bpe\0falcon3\0", {RE_LLAMA3}, true, true},
    {"dbrx\0smaug-bpe\0", {RE_LLAMA3}, false, false},
    {"deepseek-llm\0",
     {"[\\r\\n]", RE_DEEPSEEK_LETTERS, "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+",
      "\\s+$", RE_CJK, "\\p{N}+"},
     false, false},
    {"deepseek-v3\0",
     {"\\p{N}{1,3}", "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
      " ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false, false},
    {"deepseek-coder\0", {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}, false, false},
    {"falcon\0", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {"starcoder\0refact\0command-r\0smollm\0codeshell\0exaone\0minerva-7b\0minerva\0", {"\\p{N}", RE_GPT2}, false,
     false},
    {"gpt-2\0gpt2\0phi-2\0jina-es\0jina-de\0gigachat\0jina-v1-en\0jina-v2-es\0jina-v2-de\0jina-v2-code\0"
     "roberta-bpe\0mpt\0olmo\0gpt-neox\0jais\0",
     {RE_GPT2}, false, false},
    {"qwen2\0megrez\0stablelm2\0", {RE_QWEN2}, false, false},
    {"poro-chat\0poro\0bloom\0gpt3-finnish\0", {RE_PORO}, false, false},
    {"chatglm-bpe\0chatglm4\0", {RE_LLAMA3}, false, false},
    {"viking\0", {RE_PORO, "\\p{N}"}, false, false},
    {"tekken\0", {RE_TEKKEN}, true, true},
    {"chameleon\0",
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2},
     false, true},
};

kiln_status tok_pre_from_name(kiln_tokenizer *t, const char *name) {
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++) {
        const pre_entry *e = &pre_table[i];
        for (const char *a = e->names; *a; a += strlen(a) + 1) {
            if (strcmp(a, name) != 0) continue;
            for (size_t k = 0; k < 6 && e->re[k]; k++) {
                kiln_status st = tok_pre_add_split(t, e->re[k], strlen(e->re[k]), TOK_SPLIT_ISOLATED, false);
                if (st != KILN_OK) return st;
            }
            t->ignore_merges = e->ignore_merges;
            if (e->add_bos) t->add_bos = true;
            if (strcmp(name, "chatglm-bpe") == 0 || strcmp(name, "chatglm4") == 0) t->bos = -1;
            return KILN_OK;
        }
    }
    return kiln_fail(KILN_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", name);
}

/* ---- running the pipeline --------------------------------------------------------- */

static kiln_status spans_push(tok_spans *s, size_t start, size_t len) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        tok_span *v = realloc(s->v, cap * sizeof *v);
        if (!v) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (tok_span){start, len};
    return KILN_OK;
}

void tok_spans_free(tok_spans *s) {
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* One range of a split piece, delimiter or not. */
typedef struct {
    size_t start, end;
    bool delim;
} range;

typedef struct {
    range *v;
    size_t n, cap;
} ranges;

static kiln_status ranges_push(ranges *r, size_t start, size_t end, bool delim) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        range *v = realloc(r->v, cap * sizeof *v);
        if (!v) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (range){start, end, delim};
    return KILN_OK;
}

/* Finds the matches of re in s[0..n) as a list of ranges covering s. */
static kiln_status find_ranges(const tok_pre *p, const char *s, size_t n, size_t base, pcre2_match_data *md,
                               ranges *out) {
    size_t pos = 0, prev = 0;
    kiln_status st = KILN_OK;
    while (pos <= n && st == KILN_OK) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return kiln_fail(KILN_ERR_INVALID_ARG, "tokenizer: pre-tokenizer regex failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* empty match: not a piece; step over one character */
            uint32_t cp;
            size_t l = ms < n ? tok_utf8_decode((const uint8_t *)s + ms, n - ms, &cp, NULL) : 1;
            pos = ms + (l ? l : 1);
            continue;
        }
        if (ms > prev) st = ranges_push(out, base + prev, base + ms, p->invert);
        if (st == KILN_OK) st = ranges_push(out, base + ms, base + me, !p->invert);
        prev = pos = me;
    }
    if (st == KILN_OK && n > prev) st = ranges_push(out, base + prev, base + n, p->invert);
    return st;
}

/* Applies a split behaviour to the ranges of one piece (Hugging Face's rules). */
static kiln_status apply_behavior(tok_split_behavior b, const ranges *r, tok_spans *out) {
    kiln_status st = KILN_OK;
    size_t first = out->n; /* spans of this piece start here */
    bool prev_delim = false;
    if (b == TOK_SPLIT_MERGED_NEXT) {
        /* a delimiter joins the range after it, unless that one is a delimiter too */
        for (size_t i = 0; i < r->n && st == KILN_OK; i++) {
            size_t s = r->v[i].start, e = r->v[i].end;
            if (r->v[i].delim && i + 1 < r->n && !r->v[i + 1].delim) {
                e = r->v[i + 1].end;
                i++;
            }
            st = spans_push(out, s, e - s);
        }
        return st;
    }
    for (size_t i = 0; i < r->n && st == KILN_OK; i++) {
        const range *x = &r->v[i];
        bool join = false;
        switch (b) {
        case TOK_SPLIT_ISOLATED: break;
        case TOK_SPLIT_REMOVED:
            if (x->delim) continue;
            break;
        case TOK_SPLIT_MERGED_PREV: join = x->delim && !prev_delim; break;
        case TOK_SPLIT_CONTIGUOUS: join = x->delim == prev_delim; break;
        case TOK_SPLIT_MERGED_NEXT: break;
        }
        prev_delim = x->delim;
        if (join && out->n > first) out->v[out->n - 1].len = x->end - out->v[out->n - 1].start;
        else st = spans_push(out, x->start, x->end - x->start);
    }
    return st;
}

/* Rewrites every span for ByteLevel's prefix space or Metaspace into a new text. */
static kiln_status rewrite(const tok_pre *p, const char *s, const tok_spans *in, bool first, kiln_buf *nb,
                           tok_spans *out) {
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < in->n && st == KILN_OK; i++) {
        const char *ps = s + in->v[i].start;
        size_t pn = in->v[i].len, start = nb->len;
        if (p->kind == TOK_PRE_PREFIX_SPACE) {
            if (pn == 0 || ps[0] != ' ') st = kiln_buf_append(nb, " ", 1);
            if (st == KILN_OK) st = kiln_buf_append(nb, ps, pn);
            if (st == KILN_OK) st = spans_push(out, start, nb->len - start);
            continue;
        }
        /* Metaspace: spaces -> replacement, optional prepend, optional split */
        bool starts = pn >= p->repl_len && memcmp(ps, p->repl, p->repl_len) == 0;
        if (pn && ps[0] == ' ') starts = true;
        bool prepend = !starts && (p->prepend == 2 || (p->prepend == 1 && first && i == 0 && in->v[i].start == 0));
        if (prepend) st = kiln_buf_append(nb, p->repl, p->repl_len);
        for (size_t k = 0; k < pn && st == KILN_OK; k++)
            st = ps[k] == ' ' ? kiln_buf_append(nb, p->repl, p->repl_len) : kiln_buf_append(nb, ps + k, 1);
        if (st != KILN_OK) break;
        if (!p->split) {
            st = spans_push(out, start, nb->len - start);
            continue;
        }
        /* split before each replacement (MergedWithNext) */
        size_t seg = start;
        for (size_t k = start; k + p->repl_len <= nb->len && st == KILN_OK; k++) {
            if (k > seg && memcmp(nb->data + k, p->repl, p->repl_len) == 0) {
                st = spans_push(out, seg, k - seg);
                seg = k;
            }
        }
        if (st == KILN_OK && nb->len > seg) st = spans_push(out, seg, nb->len - seg);
    }
    return st;
}

kiln_status tok_pretokenize(const kiln_tokenizer *t, const char *s, size_t len, bool first, tok_spans *out,
                            char **owned, const char **s_out, size_t *len_out) {
    *owned = NULL;
    *s_out = s;
    *len_out = len;
    tok_spans cur = {0}, next = {0};
    kiln_status st = len ? spans_push(&cur, 0, len) : KILN_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) st = kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    ranges r = {0};
    for (size_t k = 0; k < t->n_pre && st == KILN_OK; k++) {
        const tok_pre *p = &t->pre[k];
        next.n = 0;
        if (p->kind == TOK_PRE_SPLIT) {
            for (size_t i = 0; i < cur.n && st == KILN_OK; i++) {
                r.n = 0;
                st = find_ranges(p, s + cur.v[i].start, cur.v[i].len, cur.v[i].start, md, &r);
                if (st == KILN_OK) st = apply_behavior(p->behavior, &r, &next);
            }
        } else {
            kiln_buf nb = {0};
            st = rewrite(p, s, &cur, first, &nb, &next);
            if (st == KILN_OK && nb.len) {
                free(*owned);
                *owned = nb.data;
                s = nb.data;
                *s_out = s;
                *len_out = nb.len;
            } else {
                kiln_buf_free(&nb);
            }
        }
        tok_spans tmp = cur;
        cur = next;
        next = tmp;
    }
    pcre2_match_data_free(md);
    free(r.v);
    tok_spans_free(&next);
    if (st != KILN_OK) {
        tok_spans_free(&cur);
        free(*owned);
        *owned = NULL;
        return st;
    }
    *out = cur;
    return KILN_OK;
}
