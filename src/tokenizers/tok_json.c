/*
 * tok_json.c — kiln_tokenizer_from_json: a tokenizer from Hugging Face's
 * tokenizer.json (and, optionally, tokenizer_config.json).
 *
 * Supported: model BPE (byte-level with its pre_tokenizer; or SentencePiece-style
 * with byte_fallback and a Prepend/Replace normalizer or Metaspace) and WordPiece;
 * normalizers Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD, Lowercase,
 * StripAccents, Strip, BertNormalizer (WordPiece); pre-tokenizers Sequence, Split,
 * ByteLevel, Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation,
 * BertPreTokenizer; post-processors TemplateProcessing, BertProcessing,
 * RobertaProcessing (for BOS/EOS). Anything else is refused with
 * KILN_ERR_UNSUPPORTED rather than silently tokenized differently.
 *
 * WordPiece vocabularies are stored in GGUF's form ("▁" on word-initial pieces,
 * "##" removed from continuations), so both sources share tok_wpm.c.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/mapfile.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

#define JSON_MAX_BYTES ((size_t)1 << 30)
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_PUNCT "[\\p{P}!-/:-@\\[-`{-~]"

typedef struct {
    const char *path;
    kiln_tokenizer *t;
    bool wordpiece;
} jctx;

/* ---- small cJSON helpers ------------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jbool(const cJSON *o, const char *key, bool def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* A non-negative integer id below TOK_MAX_VOCAB, or -1. */
static int64_t jid(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_VOCAB) || floor(d) != d) return -1;
    return (int64_t)d;
}

/* A token given as "text" or {"content": "text"} (tokenizer_config.json). */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return jstr(v, "content");
    return NULL;
}

static int32_t lookup_str(const kiln_tokenizer *t, const char *s) { return s ? tok_lookup(t, s, strlen(s)) : -1; }

static kiln_status parse_file(const char *path, cJSON **out) {
    char *text = NULL;
    size_t len = 0;
    kiln_status st = kiln_read_file(path, JSON_MAX_BYTES, &text, &len);
    if (st != KILN_OK) return st;
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!*out) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        free(text);
        return kiln_fail(KILN_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, at);
    }
    free(text);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return kiln_fail(KILN_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return KILN_OK;
}

/* ---- vocabulary --------------------------------------------------------------------- */

/* WordPiece text in GGUF form (malloc'd): "##x" -> "x", "[X]" as is, else "▁x". */
static char *wp_form(const char *s, const char *prefix) {
    size_t n = strlen(s), pl = strlen(prefix);
    if (pl && n > pl && memcmp(s, prefix, pl) == 0) return kiln_strdup(s + pl);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') return kiln_strdup(s);
    char *r = malloc(n + 4);
    if (r) {
        memcpy(r, "\xe2\x96\x81", 3);
        memcpy(r + 3, s, n + 1);
    }
    return r;
}

static kiln_status load_vocab(jctx *c, const cJSON *model, const cJSON *added) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return kiln_fail(KILN_ERR_FORMAT, "%s: model.vocab is not an object", c->path);
    int64_t max_id = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int64_t id = jid(e);
        if (id < 0) return kiln_fail(KILN_ERR_FORMAT, "%s: vocab entry '%.64s' has a bad id", c->path, e->string);
        if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(e, added) {
        int64_t id = jid(cJSON_GetObjectItemCaseSensitive(e, "id"));
        if (id < 0 || !jstr(e, "content")) return kiln_fail(KILN_ERR_FORMAT, "%s: bad entry in added_tokens", c->path);
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) return kiln_fail(KILN_ERR_FORMAT, "%s: empty vocabulary", c->path);
    /* a few unassigned ids are fine; a tiny file claiming id 16 million is not
     * worth hundreds of megabytes of empty slots */
    size_t entries = (size_t)cJSON_GetArraySize(vocab) + (size_t)cJSON_GetArraySize(added);
    if ((size_t)max_id >= 2 * entries + 1024)
        return kiln_fail(KILN_ERR_FORMAT, "%s: token id %lld for only %zu tokens", c->path, (long long)max_id,
                         entries);
    size_t n = (size_t)max_id + 1;
    const char **texts = kiln_calloc_array(n, sizeof *texts);
    size_t *lens = kiln_calloc_array(n, sizeof *lens);
    char **owned = kiln_calloc_array(n, sizeof *owned);
    uint16_t *attr = kiln_calloc_array(n, sizeof *attr); /* 0: hole */
    kiln_status st = KILN_OK;
    if (!texts || !lens || !owned || !attr) st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c->path);
    const char *prefix = c->wordpiece ? jstr(model, "continuing_subword_prefix") : NULL;
    if (!prefix) prefix = "##";
    cJSON_ArrayForEach(e, vocab) {
        if (st != KILN_OK) break;
        size_t id = (size_t)jid(e);
        if (texts[id]) continue; /* the first text for an id wins */
        const char *s = e->string ? e->string : "";
        if (c->wordpiece) {
            owned[id] = wp_form(s, prefix);
            if (!owned[id]) st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c->path);
            s = owned[id];
        }
        texts[id] = s;
        lens[id] = s ? strlen(s) : 0;
        attr[id] = TOK_ATTR_NORMAL;
    }
    cJSON_ArrayForEach(e, added) {
        if (st != KILN_OK) break;
        size_t id = (size_t)jid(cJSON_GetObjectItemCaseSensitive(e, "id"));
        texts[id] = jstr(e, "content");
        lens[id] = strlen(texts[id]);
        attr[id] = jbool(e, "special", false) ? TOK_ATTR_CONTROL : TOK_ATTR_USER;
        if (jbool(e, "lstrip", false)) attr[id] |= TOK_ATTR_LSTRIP;
        if (jbool(e, "rstrip", false)) attr[id] |= TOK_ATTR_RSTRIP;
    }
    for (size_t i = 0; st == KILN_OK && i < n; i++)
        if (!texts[i]) texts[i] = "", attr[i] = TOK_ATTR_UNUSED;
    if (st == KILN_OK) st = tok_set_vocab(c->t, (int32_t)n, texts, lens);
    if (st == KILN_OK) memcpy(c->t->attr, attr, n * sizeof *attr);
    for (size_t i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(texts);
    free(lens);
    free(attr);
    return st;
}

static kiln_status load_merges(jctx *c, const cJSON *model) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return kiln_fail(KILN_ERR_FORMAT, "%s: model.merges is not an array", c->path);
    size_t n = (size_t)cJSON_GetArraySize(merges);
    kiln_tokenizer *t = c->t;
    kiln_status st = tok_merges_init(&t->merges, n);
    char *buf = malloc(2 * TOK_MAX_TOKEN_LEN + 2);
    if (!buf) st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c->path);
    int32_t rank = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        if (st != KILN_OK) break;
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if (cJSON_IsString(e)) { /* "left right" */
            const char *s = e->valuestring, *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (sp) a = s, la = (size_t)(sp - s), b = sp + 1, lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2) { /* ["left", "right"] */
            const cJSON *x = cJSON_GetArrayItem(e, 0), *y = cJSON_GetArrayItem(e, 1);
            if (cJSON_IsString(x) && cJSON_IsString(y))
                a = x->valuestring, la = strlen(a), b = y->valuestring, lb = strlen(b);
        }
        if (!a) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: merge %d is malformed", c->path, (int)rank);
            break;
        }
        int32_t ia = tok_lookup(t, a, la), ib = tok_lookup(t, b, lb), im = -1;
        if (ia >= 0 && ib >= 0 && la + lb <= 2 * TOK_MAX_TOKEN_LEN) {
            memcpy(buf, a, la);
            memcpy(buf + la, b, lb);
            im = tok_lookup(t, buf, la + lb);
        }
        if (ia < 0 || ib < 0 || im < 0) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: merge %d ('%.*s' '%.*s') names a token not in the vocabulary",
                           c->path, (int)rank, (int)(la > 40 ? 40 : la), a, (int)(lb > 40 ? 40 : lb), b);
            break;
        }
        tok_merges_add(&t->merges, ia, ib, rank++, im);
    }
    free(buf);
    return st;
}

/* ---- normalizer --------------------------------------------------------------------- */

static kiln_status add_norm(kiln_tokenizer *t, tok_norm n) {
    tok_norm *v = realloc(t->norm, (t->n_norm + 1) * sizeof *v);
    if (!v) {
        tok_norm_free(&n);
        return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    }
    t->norm = v;
    v[t->n_norm++] = n;
    return KILN_OK;
}

static kiln_status parse_normalizer(jctx *c, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return KILN_OK;
    const char *type = jstr(n, "type");
    if (!type) return kiln_fail(KILN_ERR_FORMAT, "%s: normalizer without a type", c->path);
    kiln_tokenizer *t = c->t;
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            kiln_status st = parse_normalizer(c, e);
            if (st != KILN_OK) return st;
        }
        return KILN_OK;
    }
    if (c->wordpiece) { /* WordPiece runs BERT's normalizer itself; map the flags */
        if (!strcmp(type, "BertNormalizer")) {
            t->wpm_clean = jbool(n, "clean_text", true);
            t->wpm_chinese = jbool(n, "handle_chinese_chars", true);
            t->wpm_lower = jbool(n, "lowercase", true);
            t->wpm_strip_accents = jbool(n, "strip_accents", t->wpm_lower);
        } else if (!strcmp(type, "Lowercase")) {
            t->wpm_lower = true;
        } else if (!strcmp(type, "StripAccents")) {
            t->wpm_strip_accents = true;
        } else if (strcmp(type, "NFD") != 0) {
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: normalizer %s with WordPiece", c->path, type);
        }
        return KILN_OK;
    }
    tok_norm nm = {0};
    if (!strcmp(type, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p) return kiln_fail(KILN_ERR_FORMAT, "%s: Prepend without a string", c->path);
        nm.kind = TOK_NORM_PREPEND;
        nm.str = kiln_strdup(p);
        nm.len = strlen(p);
        if (!nm.str) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *lit = jstr(pat, "String"), *re = jstr(pat, "Regex"), *content = jstr(n, "content");
        if ((!lit && !re) || !content) return kiln_fail(KILN_ERR_FORMAT, "%s: malformed Replace normalizer", c->path);
        nm.kind = TOK_NORM_REPLACE;
        nm.str2 = kiln_strdup(content);
        nm.len2 = strlen(content);
        if (!nm.str2) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
        if (lit) {
            nm.str = kiln_strdup(lit);
            nm.len = strlen(lit);
            if (!nm.str) {
                tok_norm_free(&nm);
                return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
            }
        } else {
            kiln_status st = tok_regex_compile(re, strlen(re), &nm.re);
            if (st != KILN_OK) {
                tok_norm_free(&nm);
                return st;
            }
        }
    } else if (!strcmp(type, "NFC")) {
        nm.kind = TOK_NORM_NFC;
    } else if (!strcmp(type, "NFD")) {
        nm.kind = TOK_NORM_NFD;
    } else if (!strcmp(type, "NFKC")) {
        nm.kind = TOK_NORM_NFKC;
    } else if (!strcmp(type, "NFKD")) {
        nm.kind = TOK_NORM_NFKD;
    } else if (!strcmp(type, "Lowercase")) {
        nm.kind = TOK_NORM_LOWERCASE;
    } else if (!strcmp(type, "StripAccents")) {
        nm.kind = TOK_NORM_STRIP_ACCENTS;
    } else if (!strcmp(type, "Strip")) {
        nm.kind = TOK_NORM_STRIP;
        nm.left = jbool(n, "strip_left", true);
        nm.right = jbool(n, "strip_right", true);
    } else if (!strcmp(type, "Precompiled") && !jstr(n, "precompiled_charsmap")) {
        return KILN_OK; /* an empty charsmap changes nothing */
    } else {
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: unsupported normalizer %s", c->path, type);
    }
    return add_norm(t, nm);
}

/* ---- pre-tokenizer ------------------------------------------------------------------- */

static kiln_status add_pre(kiln_tokenizer *t, tok_pre p) {
    tok_pre *v = realloc(t->pre, (t->n_pre + 1) * sizeof *v);
    if (!v) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    t->pre = v;
    v[t->n_pre++] = p;
    return KILN_OK;
}

static bool parse_behavior(const char *s, tok_split_behavior *b) {
    static const struct {
        const char *name;
        tok_split_behavior b;
    } map[] = {{"Isolated", TOK_SPLIT_ISOLATED},       {"Removed", TOK_SPLIT_REMOVED},
               {"MergedWithPrevious", TOK_SPLIT_MERGED_PREV}, {"MergedWithNext", TOK_SPLIT_MERGED_NEXT},
               {"Contiguous", TOK_SPLIT_CONTIGUOUS}};
    for (size_t i = 0; s && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(s, map[i].name)) {
            *b = map[i].b;
            return true;
        }
    return false;
}

/* A literal pattern as a regex: ASCII punctuation escaped. */
static kiln_status add_literal_split(kiln_tokenizer *t, const char *lit, tok_split_behavior b, bool invert) {
    size_t n = strlen(lit);
    char *re = malloc(2 * n + 1);
    if (!re) return kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)lit[i];
        if (ch < 0x80 && strchr("\\^$.|?*+()[]{}-/#&~ ", ch)) re[k++] = '\\';
        re[k++] = (char)ch;
    }
    kiln_status st = tok_pre_add_split(t, re, k, b, invert);
    free(re);
    return st;
}

static kiln_status parse_pre(jctx *c, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return KILN_OK;
    const char *type = jstr(p, "type");
    if (!type) return kiln_fail(KILN_ERR_FORMAT, "%s: pre_tokenizer without a type", c->path);
    kiln_tokenizer *t = c->t;
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            kiln_status st = parse_pre(c, e);
            if (st != KILN_OK) return st;
        }
        return KILN_OK;
    }
    if (c->wordpiece) {
        if (!strcmp(type, "BertPreTokenizer") || !strcmp(type, "Whitespace") || !strcmp(type, "WhitespaceSplit"))
            return KILN_OK; /* WordPiece splits on whitespace and punctuation itself */
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: pre_tokenizer %s with WordPiece", c->path, type);
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *lit = jstr(pat, "String"), *re = jstr(pat, "Regex");
        tok_split_behavior b;
        if ((!lit && !re) || !parse_behavior(jstr(p, "behavior"), &b))
            return kiln_fail(KILN_ERR_FORMAT, "%s: malformed Split pre-tokenizer", c->path);
        bool inv = jbool(p, "invert", false);
        return re ? tok_pre_add_split(t, re, strlen(re), b, inv) : add_literal_split(t, lit, b, inv);
    }
    if (!strcmp(type, "ByteLevel")) {
        t->byte_level = true;
        kiln_status st = KILN_OK;
        if (jbool(p, "add_prefix_space", true)) st = add_pre(t, (tok_pre){.kind = TOK_PRE_PREFIX_SPACE});
        if (st == KILN_OK && jbool(p, "use_regex", true))
            st = tok_pre_add_split(t, RE_GPT2, strlen(RE_GPT2), TOK_SPLIT_ISOLATED, false);
        return st;
    }
    if (!strcmp(type, "Digits")) {
        const char *re = jbool(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+";
        return tok_pre_add_split(t, re, strlen(re), TOK_SPLIT_ISOLATED, false);
    }
    if (!strcmp(type, "Metaspace")) {
        tok_pre m = {.kind = TOK_PRE_METASPACE, .split = jbool(p, "split", true)};
        const char *r = jstr(p, "replacement");
        if (!r) r = "\xe2\x96\x81";
        if (strlen(r) == 0 || strlen(r) >= sizeof m.repl)
            return kiln_fail(KILN_ERR_FORMAT, "%s: Metaspace replacement '%s' not supported", c->path, r);
        memcpy(m.repl, r, strlen(r));
        m.repl_len = strlen(r);
        const char *scheme = jstr(p, "prepend_scheme");
        if (scheme) m.prepend = !strcmp(scheme, "always") ? 2 : !strcmp(scheme, "first") ? 1 : 0;
        else m.prepend = jbool(p, "add_prefix_space", true) ? 2 : 0;
        t->strip_first_space = t->strip_after_bos = m.prepend != 0;
        return add_pre(t, m);
    }
    if (!strcmp(type, "Whitespace"))
        return tok_pre_add_split(t, "\\w+|[^\\w\\s]+", 14, TOK_SPLIT_REMOVED, true);
    if (!strcmp(type, "WhitespaceSplit")) return tok_pre_add_split(t, "\\s+", 3, TOK_SPLIT_REMOVED, false);
    if (!strcmp(type, "Punctuation")) {
        tok_split_behavior b = TOK_SPLIT_ISOLATED;
        const char *bs = jstr(p, "behavior");
        if (bs && !parse_behavior(bs, &b)) return kiln_fail(KILN_ERR_FORMAT, "%s: bad Punctuation behavior", c->path);
        return tok_pre_add_split(t, RE_PUNCT, strlen(RE_PUNCT), b, false);
    }
    if (!strcmp(type, "BertPreTokenizer")) {
        kiln_status st = tok_pre_add_split(t, "\\s+", 3, TOK_SPLIT_REMOVED, false);
        return st == KILN_OK ? tok_pre_add_split(t, RE_PUNCT, strlen(RE_PUNCT), TOK_SPLIT_ISOLATED, false) : st;
    }
    return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: unsupported pre_tokenizer %s", c->path, type);
}

/* ---- decoder / post-processor / config --------------------------------------------------- */

/* Does the decoder drop the leading space SentencePiece's dummy prefix added? */
static bool decoder_strips(const cJSON *d) {
    const char *type = jstr(d, "type");
    if (!type) return false;
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "decoders"))
            if (decoder_strips(e)) return true;
        return false;
    }
    if (!strcmp(type, "Strip")) {
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const char *content = jstr(d, "content");
        return content && !strcmp(content, " ") && cJSON_IsNumber(start) && start->valuedouble >= 1;
    }
    if (!strcmp(type, "Metaspace")) {
        const char *scheme = jstr(d, "prepend_scheme");
        return scheme ? strcmp(scheme, "never") != 0 : jbool(d, "add_prefix_space", true);
    }
    return false;
}

/* Id of a [text, id] pair (BertProcessing / RobertaProcessing). */
static int32_t pair_id(const kiln_tokenizer *t, const cJSON *pair) {
    if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2) return -1;
    int64_t id = jid(cJSON_GetArrayItem(pair, 1));
    return id >= 0 && id < t->n_vocab ? (int32_t)id : -1;
}

/* First id of a TemplateProcessing special token item. */
static int32_t template_id(const kiln_tokenizer *t, const cJSON *pp, const cJSON *item) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
    const char *name = jstr(st, "id");
    if (!name) return -1;
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pp, "special_tokens"), name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(spec, "ids");
    int64_t id = cJSON_IsArray(ids) ? jid(cJSON_GetArrayItem(ids, 0)) : -1;
    if (id >= 0 && id < t->n_vocab) return (int32_t)id;
    return lookup_str(t, name);
}

static void parse_post(kiln_tokenizer *t, const cJSON *pp) {
    const char *type = jstr(pp, "type");
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors")) parse_post(t, e);
    } else if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
        int n = cJSON_GetArraySize(single);
        if (!cJSON_IsArray(single) || n == 0) return;
        int32_t first = template_id(t, pp, cJSON_GetArrayItem(single, 0));
        int32_t last = n > 1 ? template_id(t, pp, cJSON_GetArrayItem(single, n - 1)) : -1;
        if (first >= 0) t->bos = first, t->add_bos = true;
        if (last >= 0) {
            if (t->alg == TOK_ALG_WPM) t->sep = last;
            else t->eos = last, t->add_eos = true;
        }
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls = pair_id(t, cJSON_GetObjectItemCaseSensitive(pp, "cls"));
        int32_t sep = pair_id(t, cJSON_GetObjectItemCaseSensitive(pp, "sep"));
        if (cls >= 0) t->bos = cls, t->add_bos = true;
        if (sep >= 0) {
            t->sep = sep;
            if (t->alg != TOK_ALG_WPM) t->eos = sep, t->add_eos = true;
        }
    }
}

static void apply_config(kiln_tokenizer *t, const cJSON *cfg) {
    const cJSON *v;
    int32_t id;
    if ((id = lookup_str(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token")))) >= 0) t->bos = id;
    if ((id = lookup_str(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token")))) >= 0) t->eos = id;
    if ((id = lookup_str(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "unk_token")))) >= 0) t->unk = id;
    if ((id = lookup_str(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "pad_token")))) >= 0) t->pad = id;
    if ((id = lookup_str(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "sep_token")))) >= 0) t->sep = id;
    if (t->alg == TOK_ALG_WPM &&
        (id = lookup_str(t, token_text(cJSON_GetObjectItemCaseSensitive(cfg, "cls_token")))) >= 0)
        t->bos = id;
    if (cJSON_IsBool(v = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token"))) t->add_bos = cJSON_IsTrue(v);
    if (cJSON_IsBool(v = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token"))) t->add_eos = cJSON_IsTrue(v);
}

/* ---- entry point ------------------------------------------------------------------------- */

/* What every WordPiece tokenizer shares, before its vocabulary is finalized. */
static void wpm_init(kiln_tokenizer *t) {
    t->alg = TOK_ALG_WPM;
    t->dec = TOK_DEC_WPM;
    t->strip_first_space = t->strip_after_bos = true;
}

/* After tok_finalize: BERT's default [UNK] (unless set), [CLS] first, [SEP] last. */
static void wpm_default_specials(kiln_tokenizer *t) {
    if (t->unk < 0) t->unk = lookup_str(t, "[UNK]");
    t->bos = lookup_str(t, "[CLS]");
    t->sep = lookup_str(t, "[SEP]");
    t->add_bos = true;
}

static kiln_status build(jctx *c, const cJSON *root, const cJSON *cfg) {
    kiln_tokenizer *t = c->t;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return kiln_fail(KILN_ERR_FORMAT, "%s: no model object", c->path);
    const char *type = jstr(model, "type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(model, "merges") ? "BPE" : "WordPiece";
    if (!strcmp(type, "WordPiece")) {
        c->wordpiece = true;
        wpm_init(t);
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
        if (cJSON_IsNumber(mx) && mx->valuedouble >= 1)
            t->wpm_max_chars = mx->valuedouble > 1000 ? 1000 : (size_t)mx->valuedouble;
    } else if (!strcmp(type, "BPE")) {
        t->alg = TOK_ALG_BPE;
        const char *cp = jstr(model, "continuing_subword_prefix"), *ew = jstr(model, "end_of_word_suffix");
        if ((cp && *cp) || (ew && *ew))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: BPE with subword prefix/suffix is not supported", c->path);
        t->byte_fallback = jbool(model, "byte_fallback", false);
        t->ignore_merges = jbool(model, "ignore_merges", false);
        t->fuse_unk = jbool(model, "fuse_unk", false);
    } else {
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: unsupported tokenizer model %s", c->path, type);
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
        return kiln_fail(KILN_ERR_FORMAT, "%s: added_tokens is not an array", c->path);
    kiln_status st = load_vocab(c, model, added);
    if (st == KILN_OK) st = parse_normalizer(c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    if (st == KILN_OK) st = parse_pre(c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    if (st != KILN_OK) return st;
    if (t->alg == TOK_ALG_BPE) {
        t->dec = t->byte_level ? TOK_DEC_BYTELEVEL : TOK_DEC_SPM;
        if (!t->byte_level && decoder_strips(cJSON_GetObjectItemCaseSensitive(root, "decoder")))
            t->strip_first_space = t->strip_after_bos = true;
    }
    if ((st = tok_finalize(t)) != KILN_OK) return st;
    if (t->alg == TOK_ALG_BPE && (st = load_merges(c, model)) != KILN_OK) return st;
    t->unk = lookup_str(t, jstr(model, "unk_token"));
    if (t->alg == TOK_ALG_WPM) wpm_default_specials(t);
    parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (cfg) apply_config(t, cfg);
    /* EOS may only be known now: refresh the end-of-generation flags */
    if (t->eos >= 0) t->attr[t->eos] |= TOK_ATTR_EOG;
    return KILN_OK;
}

kiln_status kiln_tokenizer_from_json(const char *tokenizer_json, const char *tokenizer_config_json,
                                     kiln_tokenizer **out) {
    if (!tokenizer_json || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_tokenizer_from_json: NULL argument");
    *out = NULL;
    cJSON *root = NULL, *cfg = NULL;
    kiln_status st = parse_file(tokenizer_json, &root);
    if (st == KILN_OK && tokenizer_config_json) st = parse_file(tokenizer_config_json, &cfg);
    jctx c = {.path = tokenizer_json, .t = NULL};
    if (st == KILN_OK && !(c.t = tok_alloc())) st = kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    if (st == KILN_OK) st = build(&c, root, cfg);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (st != KILN_OK) {
        kiln_tokenizer_free(c.t);
        return st;
    }
    *out = c.t;
    return KILN_OK;
}

/* ---- BERT vocab.txt ------------------------------------------------------------------------ */

/* Whether line (a vocab.txt token) is one of the special tokens BertTokenizer never
 * splits: the config's unk / sep / pad / cls / mask texts, else the defaults. */
static bool bert_special(const char *line, const cJSON *cfg) {
    static const char *const keys[] = {"unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    static const char *const defaults[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    for (int i = 0; i < 5; i++) {
        const char *s = cfg ? token_text(cJSON_GetObjectItemCaseSensitive(cfg, keys[i])) : NULL;
        if (!strcmp(line, s ? s : defaults[i])) return true;
    }
    return false;
}

static kiln_status vocab_txt_build(kiln_tokenizer *t, const char *path, const char *text, size_t len,
                                   const cJSON *cfg) {
    /* one token per line, id = line number; only "\n" ends a line (as BertTokenizer's
     * load_vocab strips it); no empty token after a final newline */
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    if (len && text[len - 1] != '\n') n++;
    if (n == 0) return kiln_fail(KILN_ERR_FORMAT, "%s: empty vocabulary", path);
    if (n > INT32_MAX / 2) return kiln_fail(KILN_ERR_FORMAT, "%s: %zu lines is not a vocabulary", path, n);
    const char **texts = kiln_calloc_array(n, sizeof *texts);
    size_t *lens = kiln_calloc_array(n, sizeof *lens);
    char **owned = kiln_calloc_array(n, sizeof *owned);
    uint16_t *attr = kiln_calloc_array(n, sizeof *attr);
    kiln_status st = texts && lens && owned && attr ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    size_t at = 0;
    for (size_t id = 0; st == KILN_OK && id < n; id++) {
        const char *nl = memchr(text + at, '\n', len - at);
        const size_t l = nl ? (size_t)(nl - (text + at)) : len - at;
        if (l > TOK_MAX_TOKEN_LEN) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: line %zu is %zu bytes long", path, id + 1, l);
            break;
        }
        char *line = kiln_strndup(text + at, l);
        owned[id] = line ? (l ? wp_form(line, "##") : kiln_strdup("")) : NULL;
        attr[id] = !l ? TOK_ATTR_UNUSED : line && bert_special(line, cfg) ? TOK_ATTR_CONTROL : TOK_ATTR_NORMAL;
        free(line);
        if (!owned[id]) st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
        texts[id] = owned[id];
        lens[id] = owned[id] ? strlen(owned[id]) : 0;
        at += l + 1;
    }
    if (st == KILN_OK) st = tok_set_vocab(t, (int32_t)n, texts, lens);
    if (st == KILN_OK) memcpy(t->attr, attr, n * sizeof *attr);
    for (size_t i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(texts);
    free(lens);
    free(attr);
    if (st != KILN_OK) return st;

    wpm_init(t);
    /* BertTokenizer's defaults: lowercase, accents stripped when lowercasing (unless
     * strip_accents says otherwise), CJK characters split, text cleaned */
    t->wpm_lower = cfg ? jbool(cfg, "do_lower_case", true) : true;
    const cJSON *sa = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "strip_accents") : NULL;
    t->wpm_strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : t->wpm_lower;
    t->wpm_chinese = cfg ? jbool(cfg, "tokenize_chinese_chars", true) : true;
    t->wpm_clean = true;
    if ((st = tok_finalize(t)) != KILN_OK) return st;
    wpm_default_specials(t);
    t->pad = lookup_str(t, "[PAD]");
    if (cfg) apply_config(t, cfg); /* the config's unk / sep / pad / cls texts */
    return KILN_OK;
}

kiln_status kiln_tokenizer_from_vocab_txt(const char *vocab_txt, const char *tokenizer_config_json,
                                          kiln_tokenizer **out) {
    if (!vocab_txt || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_tokenizer_from_vocab_txt: NULL argument");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    cJSON *cfg = NULL;
    kiln_status st = kiln_read_file(vocab_txt, JSON_MAX_BYTES, &text, &len);
    if (st == KILN_OK && tokenizer_config_json) st = parse_file(tokenizer_config_json, &cfg);
    kiln_tokenizer *t = NULL;
    if (st == KILN_OK && !(t = tok_alloc())) st = kiln_fail(KILN_ERR_NOMEM, "tokenizer: out of memory");
    if (st == KILN_OK) st = vocab_txt_build(t, vocab_txt, text, len, cfg);
    free(text);
    cJSON_Delete(cfg);
    if (st != KILN_OK) {
        kiln_tokenizer_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}
