/*
 * test_tok_json.c — tokenizer.json loading.
 *
 * Writes Hugging Face tokenizer.json files into $KILN_TMP, built from the GGUF
 * vocabularies of ../shared (as Hugging Face's converters would write them), and
 * checks they tokenize exactly like the expected ids of llama.cpp's test files:
 *   gpt-2      byte-level BPE, ByteLevel pre-tokenizer
 *   refact     Sequence[Digits, ByteLevel] + control/user added tokens
 *   llama-spm  SentencePiece-style BPE: Prepend/Replace normalizer, byte_fallback,
 *              merges derived from the scores the way HF's SentencePieceExtractor does;
 *              and again with a Metaspace pre-tokenizer and decoder (Mistral's form)
 *   bert-bge   WordPiece with BertNormalizer / BertPreTokenizer / TemplateProcessing
 * then a small hand-written file with a tokenizer_config.json, and malformed files.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "formats/gguf.h"
#include "test.h"
#include "tokenizers/tokenizer.h"

static char *tmp_path(const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 1024, "%s/%s", kiln_test_tmp(), name);
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static void write_json(const char *path, cJSON *root) {
    char *s = cJSON_PrintUnformatted(root);
    write_file(path, s);
    free(s);
    cJSON_Delete(root);
}

static char *str_of(kiln_gguf_str s) {
    char *r = malloc(s.len + 1);
    memcpy(r, s.ptr, s.len);
    r[s.len] = 0;
    return r;
}

/* ---- fixture cases ----------------------------------------------------------------- */

typedef struct {
    char *text[128];
    size_t len[128];
    int32_t *want[128];
    size_t nwant[128];
    size_t n;
} fixture;

static bool load_fixture(const char *gguf_path, fixture *f) {
    char p[1200];
    char *in = NULL, *out = NULL;
    size_t ni = 0, no = 0;
    snprintf(p, sizeof p, "%s.inp", gguf_path);
    if (kiln_read_file(p, 1 << 22, &in, &ni) != KILN_OK) return false;
    snprintf(p, sizeof p, "%s.out", gguf_path);
    if (kiln_read_file(p, 1 << 22, &out, &no) != KILN_OK) {
        free(in);
        return false;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t pos = 0;
    f->n = 0;
    while (pos < ni && f->n < 128) {
        char *next = strstr(in + pos, sep);
        size_t end = next ? (size_t)(next - in) : ni;
        f->text[f->n] = malloc(end - pos + 1);
        memcpy(f->text[f->n], in + pos, end - pos);
        f->text[f->n][end - pos] = 0;
        f->len[f->n++] = end - pos;
        pos = next ? end + sizeof sep - 1 : ni;
    }
    char *line = out;
    for (size_t i = 0; i < f->n; i++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        f->want[i] = malloc(4096 * sizeof(int32_t));
        size_t k = 0;
        for (char *s = line; *s && k < 4096;) {
            while (*s == ' ') s++;
            if (!*s) break;
            f->want[i][k++] = (int32_t)strtol(s, &s, 10);
        }
        f->nwant[i] = k;
        line = nl ? nl + 1 : line + strlen(line);
    }
    free(in);
    free(out);
    return true;
}

static void fixture_free(fixture *f) {
    for (size_t i = 0; i < f->n; i++) {
        free(f->text[i]);
        free(f->want[i]);
    }
}

static bool valid_utf8_chunk(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (c >= 0x80 && c < 0xC2) return false;
        if (i + l > n) return false;
        for (size_t k = 1; k < l; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) return false;
        i += l;
    }
    return true;
}

/* Every fixture case must give the expected ids; lossless ones must round-trip.
 * skip_space: skip texts that start with a space (HF's Metaspace does not add "▁" in
 * front of text that already starts with one, unlike SentencePiece's dummy prefix). */
static void check_fixture(const kiln_tokenizer *t, const fixture *f, const char *name, bool roundtrip,
                          bool skip_space) {
    int bad = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (skip_space && f->text[i][0] == ' ') continue;
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(kiln_tokenizer_encode(t, f->text[i], f->len[i], false, false, &ids, &n));
        bool same = n == f->nwant[i] && (n == 0 || memcmp(ids, f->want[i], n * sizeof *ids) == 0);
        CHECK_MSG(same, "%s (tokenizer.json) case %zu: '%.60s'", name, i, f->text[i]);
        if (!same) {
            bad++;
            fprintf(stderr, "  expected:");
            for (size_t k = 0; k < f->nwant[i]; k++) fprintf(stderr, " %d", f->want[i][k]);
            fprintf(stderr, "\n  got:     ");
            for (size_t k = 0; k < n; k++) fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n");
        }
        if (roundtrip) {
            kiln_detok *d = NULL;
            kiln_buf all = {0}, chunk = {0};
            bool ok = true;
            CHECK_OK(kiln_detok_create(t, &d));
            for (size_t k = 0; d && k <= n; k++) {
                chunk.len = 0;
                if (k < n) CHECK_OK(kiln_detok_push(d, ids[k], &chunk));
                else CHECK_OK(kiln_detok_flush(d, &chunk));
                ok = ok && valid_utf8_chunk(chunk.data, chunk.len);
                kiln_buf_append(&all, chunk.data ? chunk.data : "", chunk.len);
            }
            CHECK_MSG(ok && all.len == f->len[i] && memcmp(all.data, f->text[i], all.len) == 0,
                      "%s (tokenizer.json) case %zu round trip", name, i);
            kiln_detok_free(d);
            kiln_buf_free(&all);
            kiln_buf_free(&chunk);
        }
        free(ids);
    }
    printf("%s via tokenizer.json%s: %zu cases, %d mismatches\n", name, skip_space ? " (Metaspace)" : "", f->n, bad);
}

/* ---- builders ------------------------------------------------------------------------- */

/* vocab object and added_tokens (types 3 = control, 4 = user-defined, 2 = unknown). */
static void add_vocab(cJSON *root, cJSON *model, const kiln_gguf *g, bool wordpiece) {
    const kiln_gguf_value *tok = kiln_gguf_get_arr(g, "tokenizer.ggml.tokens", KILN_GGUF_STRING);
    const kiln_gguf_kv *tt = kiln_gguf_find(g, "tokenizer.ggml.token_type");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (uint64_t i = 0; i < tok->arr.n; i++) {
        char *s = str_of(tok->arr.strs[i]);
        int64_t type = tt ? kiln_gguf_arr_i64(&tt->value, i) : 1;
        if (type == 2 || type == 3 || type == 4) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", s);
            cJSON_AddBoolToObject(a, "special", type != 4);
            cJSON_AddItemToArray(added, a);
        }
        if (wordpiece && !(s[0] == '[' && s[strlen(s) - 1] == ']')) {
            /* GGUF form back to vocab.txt form: "▁x" -> "x", "x" -> "##x" */
            char *w = malloc(strlen(s) + 3);
            if (strncmp(s, "\xe2\x96\x81", 3) == 0) strcpy(w, s + 3);
            else sprintf(w, "##%s", s);
            free(s);
            s = w;
        }
        cJSON_AddNumberToObject(vocab, s, (double)i);
        free(s);
    }
}

static const char *byte_level_pre =
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}";

static void build_bpe_json(const kiln_gguf *g, const char *path, const char *pre) {
    cJSON *root = cJSON_CreateObject();
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    add_vocab(root, model, g, false);
    const kiln_gguf_value *mg = kiln_gguf_get_arr(g, "tokenizer.ggml.merges", KILN_GGUF_STRING);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (uint64_t i = 0; i < mg->arr.n; i++) {
        char *s = str_of(mg->arr.strs[i]);
        if (i % 2) { /* both merge formats: "a b" and ["a", "b"] */
            char *sp = strchr(s + 1, ' ');
            *sp = 0;
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(s));
            cJSON_AddItemToArray(pair, cJSON_CreateString(sp + 1));
            cJSON_AddItemToArray(merges, pair);
        } else {
            cJSON_AddItemToArray(merges, cJSON_CreateString(s));
        }
        free(s);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", cJSON_Parse(pre));
    cJSON_AddItemToObject(root, "decoder", cJSON_Parse("{\"type\":\"ByteLevel\"}"));
    write_json(path, root);
}

/* SentencePiece -> BPE as HF's SentencePieceExtractor: every split of a piece into two
 * pieces is a merge, ordered by the piece's score (stable), then by the ids. */
typedef struct {
    int32_t l, r;
    float score;
    size_t order;
} spm_merge;

static int cmp_merge(const void *a, const void *b) {
    const spm_merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* metaspace: the newer form (Mistral): no normalizer, a Metaspace pre-tokenizer with
 * prepend_scheme "first" and a Metaspace decoder. */
static void build_spm_json(const kiln_gguf *g, const kiln_tokenizer *t, const char *path, bool metaspace) {
    const kiln_gguf_value *tok = kiln_gguf_get_arr(g, "tokenizer.ggml.tokens", KILN_GGUF_STRING);
    const kiln_gguf_value *sc = kiln_gguf_get_arr(g, "tokenizer.ggml.scores", KILN_GGUF_FLOAT32);
    size_t cap = 1 << 20, n = 0;
    spm_merge *m = malloc(cap * sizeof *m);
    for (uint64_t i = 0; i < tok->arr.n; i++) {
        kiln_gguf_str s = tok->arr.strs[i];
        size_t first = n;
        for (size_t k = 1; k < s.len; k++) {
            if (((unsigned char)s.ptr[k] & 0xC0) == 0x80) continue; /* split at characters */
            int32_t l = kiln_tokenizer_find(t, s.ptr, k), r = kiln_tokenizer_find(t, s.ptr + k, s.len - k);
            if (l < 0 || r < 0) continue;
            if (n == cap) m = realloc(m, (cap *= 2) * sizeof *m);
            m[n++] = (spm_merge){l, r, (float)kiln_gguf_arr_f64(sc, i), 0};
        }
        /* within one piece: by (left id, right id) */
        for (size_t a = first; a < n; a++)
            for (size_t b = a + 1; b < n; b++)
                if (m[b].l < m[a].l || (m[b].l == m[a].l && m[b].r < m[a].r)) {
                    spm_merge x = m[a];
                    m[a] = m[b];
                    m[b] = x;
                }
    }
    for (size_t i = 0; i < n; i++) m[i].order = i;
    qsort(m, n, sizeof *m, cmp_merge);
    cJSON *root = cJSON_CreateObject();
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddBoolToObject(model, "fuse_unk", true);
    cJSON_AddBoolToObject(model, "byte_fallback", true);
    add_vocab(root, model, g, false);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (size_t i = 0; i < n; i++) {
        kiln_gguf_str a = tok->arr.strs[m[i].l], b = tok->arr.strs[m[i].r];
        char *s = malloc(a.len + b.len + 2);
        memcpy(s, a.ptr, a.len);
        s[a.len] = ' ';
        memcpy(s + a.len + 1, b.ptr, b.len);
        s[a.len + b.len + 1] = 0;
        cJSON_AddItemToArray(merges, cJSON_CreateString(s));
        free(s);
    }
    free(m);
    if (metaspace) {
        const char *ms = "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"first\","
                         "\"split\":false}";
        cJSON_AddNullToObject(root, "normalizer");
        cJSON_AddItemToObject(root, "pre_tokenizer", cJSON_Parse(ms));
        cJSON_AddItemToObject(root, "decoder", cJSON_Parse(ms));
    } else {
        cJSON_AddItemToObject(root, "normalizer",
                              cJSON_Parse("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
                                          "\"\xe2\x96\x81\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
                                          "\"content\":\"\xe2\x96\x81\"}]}"));
        cJSON_AddNullToObject(root, "pre_tokenizer");
        cJSON_AddItemToObject(root, "decoder",
                              cJSON_Parse("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":"
                                          "{\"String\":\"\xe2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},"
                                          "{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,"
                                          "\"stop\":0}]}"));
    }
    cJSON_AddItemToObject(root, "post_processor",
                          cJSON_Parse("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\","
                                      "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":"
                                      "{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}}"));
    write_json(path, root);
}

static void build_wpm_json(const kiln_gguf *g, const char *path) {
    cJSON *root = cJSON_CreateObject();
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "WordPiece");
    cJSON_AddStringToObject(model, "unk_token", "[UNK]");
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "##");
    cJSON_AddNumberToObject(model, "max_input_chars_per_word", 100);
    add_vocab(root, model, g, true);
    cJSON_AddItemToObject(root, "normalizer",
                          cJSON_Parse("{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
                                      "\"strip_accents\":null,\"lowercase\":true}"));
    cJSON_AddItemToObject(root, "pre_tokenizer", cJSON_Parse("{\"type\":\"BertPreTokenizer\"}"));
    cJSON_AddItemToObject(root, "post_processor",
                          cJSON_Parse("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
                                      "\"[CLS]\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
                                      "{\"SpecialToken\":{\"id\":\"[SEP]\",\"type_id\":0}}],\"special_tokens\":{"
                                      "\"[CLS]\":{\"id\":\"[CLS]\",\"ids\":[101],\"tokens\":[\"[CLS]\"]},\"[SEP]\":"
                                      "{\"id\":\"[SEP]\",\"ids\":[102],\"tokens\":[\"[SEP]\"]}}}"));
    cJSON_AddItemToObject(root, "decoder", cJSON_Parse("{\"type\":\"WordPiece\",\"prefix\":\"##\"}"));
    write_json(path, root);
}

/* ---- per vocabulary ------------------------------------------------------------------ */

static void run_vocab(const char *name, const char *kind) {
    char gpath[1024];
    snprintf(gpath, sizeof gpath, "%s/tokenizers/vocab/ggml-vocab-%s.gguf", kiln_test_shared(), name);
    fixture f = {0};
    kiln_gguf *g = NULL;
    if (!load_fixture(gpath, &f) || kiln_gguf_open(gpath, &g) != KILN_OK) {
        printf("skip %s: fixture missing\n", name);
        fixture_free(&f);
        return;
    }
    kiln_tokenizer *tg = NULL, *tj = NULL;
    CHECK_OK(kiln_tokenizer_from_gguf(g, &tg));
    char jname[256];
    snprintf(jname, sizeof jname, "tok-%s.json", name);
    const char *jpath = tmp_path(jname);
    bool roundtrip = true;
    if (!strcmp(kind, "bytelevel")) {
        build_bpe_json(g, jpath, byte_level_pre);
    } else if (!strcmp(kind, "digits")) {
        char pre[512];
        snprintf(pre, sizeof pre,
                 "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},%s]}",
                 byte_level_pre);
        build_bpe_json(g, jpath, pre);
    } else if (!strcmp(kind, "spm") || !strcmp(kind, "metaspace")) {
        build_spm_json(g, tg, jpath, !strcmp(kind, "metaspace"));
    } else {
        build_wpm_json(g, jpath);
        roundtrip = false;
    }
    CHECK_OK(kiln_tokenizer_from_json(jpath, NULL, &tj));
    if (tj && tg) {
        check_fixture(tj, &f, name, roundtrip, !strcmp(kind, "metaspace"));
        CHECK(kiln_tokenizer_n_vocab(tj) == kiln_tokenizer_n_vocab(tg));
        /* with specials too: same as the GGUF path */
        const char *s = "Hello world, this is a test of special handling!";
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(kiln_tokenizer_encode(tg, s, strlen(s), true, true, &a, &na));
        CHECK_OK(kiln_tokenizer_encode(tj, s, strlen(s), true, true, &b, &nb));
        CHECK_MSG(na == nb && memcmp(a, b, na * sizeof *a) == 0, "%s: add_special differs from GGUF", name);
        free(a);
        free(b);
    }
    kiln_tokenizer_free(tj);
    kiln_tokenizer_free(tg);
    kiln_gguf_close(g);
    fixture_free(&f);
    remove(jpath);
}

/* ---- hand-written file -------------------------------------------------------------- */

static void run_handmade(void) {
    /* a toy byte-level vocabulary: single letters, a few merges, chat specials */
    const char *json =
        "{\"version\":\"1.0\",\"added_tokens\":["
        "{\"id\":10,\"content\":\"<|im_start|>\",\"special\":true},"
        "{\"id\":11,\"content\":\"<|im_end|>\",\"special\":true,\"rstrip\":true},"
        "{\"id\":12,\"content\":\"<bos>\",\"special\":true},"
        "{\"id\":13,\"content\":\"[lit]\",\"special\":false}],"
        "\"normalizer\":null,"
        "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
        "\" ?\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
        "\"add_prefix_space\":false,\"use_regex\":false}]},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<bos>\","
        "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<bos>\":{\"id\":"
        "\"<bos>\",\"ids\":[12],\"tokens\":[\"<bos>\"]}}},"
        "\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"\xc4\xa0\":3,"
        "\"ab\":4,\"\xc4\xa0" "a\":5,\"\xc4\xa0" "ab\":6,\"abc\":7,\"cab\":8,\"\xc4\x8a\":9},"
        "\"merges\":[\"a b\",\"\xc4\xa0 a\",\"\xc4\xa0" "a b\"]}}";
    const char *cfg = "{\"add_bos_token\":false,\"eos_token\":{\"content\":\"<|im_end|>\"},\"bos_token\":\"<bos>\"}";
    const char *jp = tmp_path("tok-hand.json"), *cp = tmp_path("tok-hand-config.json");
    write_file(jp, json);
    write_file(cp, cfg);
    kiln_tokenizer *t = NULL;
    CHECK_OK(kiln_tokenizer_from_json(jp, NULL, &t));
    if (t) {
        CHECK(kiln_tokenizer_n_vocab(t) == 14);
        CHECK(kiln_tokenizer_bos(t) == 12 && kiln_tokenizer_add_bos(t)); /* from the template */
        CHECK(kiln_tokenizer_is_eog(t, 11));                            /* <|im_end|> by name */
        int32_t *ids = NULL;
        size_t n = 0;
        /* "abc" is whole in the vocabulary (ignore_merges); " ab" merges; "[lit]" is
         * always literal; <|im_end|> only with parse_special, and eats the "\n" after it */
        const char *s = "abc ab[lit]<|im_end|>\nab";
        CHECK_OK(kiln_tokenizer_encode(t, s, strlen(s), true, true, &ids, &n));
        int32_t want[] = {12, 7, 6, 13, 11, 4};
        CHECK(n == 6 && memcmp(ids, want, sizeof want) == 0);
        free(ids);
        CHECK_OK(kiln_tokenizer_encode(t, s, strlen(s), false, false, &ids, &n));
        /* <|im_end|> is now text: its characters are not in this toy vocabulary except
         * "\n" (byte-level U+010A), so only that survives */
        int32_t want2[] = {7, 6, 13, 9, 4};
        CHECK(n == 5 && memcmp(ids, want2, sizeof want2) == 0);
        free(ids);
        kiln_tokenizer_free(t);
    }
    t = NULL;
    CHECK_OK(kiln_tokenizer_from_json(jp, cp, &t));
    if (t) {
        CHECK(kiln_tokenizer_bos(t) == 12 && !kiln_tokenizer_add_bos(t)); /* config wins */
        CHECK(kiln_tokenizer_eos(t) == 11);
        kiln_tokenizer_free(t);
    }
    remove(jp);
    remove(cp);
}

static void expect_error(const char *json, kiln_status want, const char *what) {
    const char *p = tmp_path("tok-bad.json");
    write_file(p, json);
    kiln_tokenizer *t = (kiln_tokenizer *)1;
    kiln_status st = kiln_tokenizer_from_json(p, NULL, &t);
    CHECK_MSG(st == want && t == NULL, "%s: got %s (%s)", what, kiln_status_name(st), kiln_last_error());
    if (st == KILN_OK) kiln_tokenizer_free(t);
    remove(p);
}

static void run_errors(void) {
    kiln_tokenizer *t = (kiln_tokenizer *)1;
    CHECK(kiln_tokenizer_from_json("/nonexistent/tokenizer.json", NULL, &t) == KILN_ERR_IO && !t);
    expect_error("{\"model\": ", KILN_ERR_FORMAT, "truncated JSON");
    expect_error("[1,2]", KILN_ERR_FORMAT, "not an object");
    expect_error("{}", KILN_ERR_FORMAT, "no model");
    expect_error("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}", KILN_ERR_UNSUPPORTED, "Unigram");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}}", KILN_ERR_FORMAT,
                 "merge naming an unknown token");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", KILN_ERR_FORMAT,
                 "merge whose result is not a token");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", KILN_ERR_FORMAT, "negative id");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e12},\"merges\":[]}}", KILN_ERR_FORMAT, "huge id");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":16000000},\"merges\":[]}}", KILN_ERR_FORMAT,
                 "sparse ids");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}}", KILN_ERR_FORMAT, "bad merge");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":"
                 "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(unclosed\"},\"behavior\":\"Isolated\"}}",
                 KILN_ERR_FORMAT, "bad regex");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":"
                 "{\"type\":\"Frobnicate\"}}",
                 KILN_ERR_UNSUPPORTED, "unknown pre-tokenizer");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":\"x\"}]}",
                 KILN_ERR_FORMAT, "bad added token");
}

int main(void) {
    run_vocab("gpt-2", "bytelevel");
    run_vocab("refact", "digits");
    run_vocab("llama-spm", "spm");
    run_vocab("llama-spm", "metaspace");
    run_vocab("bert-bge", "wordpiece");
    run_handmade();
    run_errors();
    TEST_MAIN_END();
}
