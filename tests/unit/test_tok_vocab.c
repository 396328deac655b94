/*
 * test_tok_vocab.c — every vocab-only GGUF under $KILN_SHARED/tokenizers/vocab
 * against llama.cpp's tokenizer test cases (the .inp/.out pairs), plus the decode
 * round trip.
 *
 * The .inp file holds the texts separated by "\n__ggml_vocab_test__\n" (split the
 * way llama.cpp's test-tokenizer-0 does); line i of .out holds the expected ids of
 * text i, space separated. Texts are encoded with add_special = false and
 * parse_special = false. For SentencePiece and byte-level BPE vocabularies the ids
 * are then pushed one by one through the streaming detokenizer: every chunk must be
 * valid UTF-8 and the concatenation must give the text back. A GGUF without test
 * files (baichuan) is loaded and round-tripped on the texts of another vocabulary.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "files.h"
#include "formats/gguf.h"
#include "test.h"
#include "tokenizers/tok_impl.h"
#include "tokenizers/tokenizer.h"

typedef struct {
    char **text;
    size_t *len;
    size_t n;
} cases;

static void cases_free(cases *c) {
    for (size_t i = 0; i < c->n; i++) free(c->text[i]);
    free(c->text);
    free(c->len);
    memset(c, 0, sizeof *c);
}

static void cases_add(cases *c, const char *s, size_t n) {
    c->text = realloc(c->text, (c->n + 1) * sizeof *c->text);
    c->len = realloc(c->len, (c->n + 1) * sizeof *c->len);
    c->text[c->n] = malloc(n + 1);
    memcpy(c->text[c->n], s, n);
    c->text[c->n][n] = 0;
    c->len[c->n++] = n;
}

/* llama.cpp's split: pieces between separators; a trailing separator adds nothing. */
static void split_inp(const char *raw, size_t size, cases *c) {
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t sl = sizeof sep - 1, pos = 0;
    while (pos < size) {
        const char *next = NULL;
        for (size_t i = pos; i + sl <= size; i++)
            if (memcmp(raw + i, sep, sl) == 0) {
                next = raw + i;
                break;
            }
        if (!next) {
            cases_add(c, raw + pos, size - pos);
            break;
        }
        cases_add(c, raw + pos, (size_t)(next - raw) - pos);
        pos = (size_t)(next - raw) + sl;
    }
}

/* Lines of the .out file (std::getline: no empty last line after a final \n). */
static void split_lines(const char *raw, size_t size, cases *c) {
    size_t pos = 0;
    while (pos < size) {
        const char *nl = memchr(raw + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - raw) : size;
        cases_add(c, raw + pos, end - pos);
        pos = end + 1;
    }
}

static size_t parse_ids(const char *s, int32_t *ids, size_t max) {
    size_t n = 0;
    while (*s && n < max) {
        while (*s == ' ' || *s == '\t' || *s == '\r') s++;
        if (!*s) break;
        ids[n++] = (int32_t)strtol(s, (char **)&s, 10);
    }
    return n;
}

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n && i < 120; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c < 0x20) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    if (n > 120) fputs("...", stderr);
}

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, NULL);
        if (!l) return false;
        i += l;
    }
    return true;
}

/* Pushes ids one at a time; checks chunks are valid UTF-8 and the result is text. */
static void check_roundtrip(const kiln_tokenizer *t, const char *name, size_t ci, const char *text, size_t len,
                            const int32_t *ids, size_t n) {
    kiln_detok *d = NULL;
    CHECK_OK(kiln_detok_create(t, &d));
    if (!d) return;
    kiln_buf all = {0}, chunk = {0};
    bool chunks_ok = true;
    for (size_t i = 0; i <= n; i++) {
        chunk.len = 0;
        if (i < n) CHECK_OK(kiln_detok_push(d, ids[i], &chunk));
        else CHECK_OK(kiln_detok_flush(d, &chunk));
        if (!valid_utf8(chunk.data ? chunk.data : "", chunk.len)) chunks_ok = false;
        kiln_buf_append(&all, chunk.data ? chunk.data : "", chunk.len);
    }
    CHECK_MSG(chunks_ok, "%s case %zu: a detokenizer chunk is not valid UTF-8", name, ci);
    bool same = all.len == len && memcmp(all.data, text, len) == 0;
    CHECK_MSG(same, "%s case %zu: round trip differs", name, ci);
    if (!same) {
        fputs("  text: '", stderr);
        print_escaped(text, len);
        fputs("'\n  back: '", stderr);
        print_escaped(all.data, all.len);
        fputs("'\n", stderr);
    }
    kiln_buf_free(&all);
    kiln_buf_free(&chunk);
    kiln_detok_free(d);
}

static kiln_tokenizer *load(const char *path) {
    kiln_gguf *g = NULL;
    kiln_tokenizer *t = NULL;
    CHECK_OK(kiln_gguf_open(path, &g));
    if (!g) return NULL;
    CHECK_OK(kiln_tokenizer_from_gguf(g, &t));
    kiln_gguf_close(g);
    return t;
}

static bool lossless(const kiln_tokenizer *t) { return t->alg == TOK_ALG_SPM || t->alg == TOK_ALG_BPE; }

static void run_fixture(const char *path, const char *name, cases *texts_out, kiln_tokenizer *given) {
    char inp[1600], outp[1600];
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(outp, sizeof outp, "%s.out", path);
    char *raw_in = NULL, *raw_out = NULL;
    size_t n_in = 0, n_out = 0;
    if (kiln_read_file(inp, 1 << 24, &raw_in, &n_in) != KILN_OK || kiln_read_file(outp, 1 << 24, &raw_out, &n_out) != KILN_OK) {
        free(raw_in);
        free(raw_out);
        return;
    }
    kiln_tokenizer *t = given ? given : load(path);
    cases in = {0}, out = {0};
    split_inp(raw_in, n_in, &in);
    split_lines(raw_out, n_out, &out);
    CHECK_MSG(in.n == out.n && in.n > 0, "%s: %zu texts but %zu expected lines", name, in.n, out.n);
    int bad = 0;
    for (size_t i = 0; t && i < in.n && i < out.n; i++) {
        int32_t want[4096];
        size_t nw = parse_ids(out.text[i], want, 4096);
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(kiln_tokenizer_encode(t, in.text[i], in.len[i], false, false, &ids, &n));
        bool same = n == nw && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        CHECK_MSG(same, "%s case %zu", name, i);
        if (!same) {
            bad++;
            fputs("  text:     '", stderr);
            print_escaped(in.text[i], in.len[i]);
            fputs("'\n  expected:", stderr);
            for (size_t k = 0; k < nw; k++) fprintf(stderr, " %d", want[k]);
            fputs("\n  got:     ", stderr);
            for (size_t k = 0; k < n; k++) fprintf(stderr, " %d", ids[k]);
            fputs("\n", stderr);
        }
        if (lossless(t)) check_roundtrip(t, name, i, in.text[i], in.len[i], ids, n);
        free(ids);
    }
    printf("%s: %zu cases, %d mismatches\n", name, in.n, bad);
    if (texts_out && texts_out->n == 0) {
        for (size_t i = 0; i < in.n; i++) cases_add(texts_out, in.text[i], in.len[i]);
    }
    cases_free(&in);
    cases_free(&out);
    free(raw_in);
    free(raw_out);
    kiln_tokenizer_free(t);
}

/* The bert-bge fixture through a BERT vocab.txt written from its GGUF vocabulary
 * (GGUF's "▁x" is vocab.txt's "x", a bare "x" is "##x", "[X]" stays): every case must
 * give the same ids. Then a config that turns lowercasing off, and bad files. */
static void run_vocab_txt(const char *dir) {
    char path[1400];
    snprintf(path, sizeof path, "%s/ggml-vocab-bert-bge.gguf", dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) return;
    fclose(probe);
    kiln_tokenizer *g = load(path);
    if (!g) return;
    kiln_test_bytes txt = {0};
    for (int32_t id = 0; id < kiln_tokenizer_n_vocab(g); id++) {
        const char *s = tok_text(g, id);
        size_t n = tok_len(g, id);
        if (n >= 3 && !memcmp(s, "\xe2\x96\x81", 3)) {
            s += 3, n -= 3;
        } else if (!(n >= 2 && s[0] == '[' && s[n - 1] == ']')) {
            kiln_test_bytes_put(&txt, "##", 2);
        }
        kiln_test_bytes_put(&txt, s, n);
        kiln_test_bytes_put(&txt, "\n", 1);
    }
    kiln_tokenizer_free(g);
    char vocab[1024], cfg[1024];
    kiln_test_tmp_path(vocab, sizeof vocab, "bert-vocab.txt");
    kiln_test_write_file(vocab, txt.p, txt.n);
    kiln_test_bytes_free(&txt);
    kiln_tokenizer *t = NULL;
    CHECK_OK(kiln_tokenizer_from_vocab_txt(vocab, NULL, &t));
    if (t) {
        CHECK(t->wpm_lower && t->wpm_strip_accents && t->bos >= 0 && t->sep >= 0 && t->unk >= 0);
        CHECK((t->attr[t->bos] & TOK_ATTR_CONTROL) && (t->attr[t->sep] & TOK_ATTR_CONTROL));
        run_fixture(path, "bert-bge via vocab.txt", NULL, t); /* frees t */
    }
    /* do_lower_case false: "Hello" is no longer "hello" */
    kiln_test_tmp_path(cfg, sizeof cfg, "bert-tokenizer_config.json");
    const char *json = "{\"do_lower_case\": false, \"cls_token\": {\"content\": \"[CLS]\"}}";
    kiln_test_write_file(cfg, json, strlen(json));
    kiln_tokenizer *cased = NULL, *lower = NULL;
    CHECK_OK(kiln_tokenizer_from_vocab_txt(vocab, cfg, &cased));
    CHECK_OK(kiln_tokenizer_from_vocab_txt(vocab, NULL, &lower));
    if (cased && lower) {
        CHECK(!cased->wpm_lower && !cased->wpm_strip_accents);
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(kiln_tokenizer_encode(cased, "Hello", 5, true, false, &a, &na));
        CHECK_OK(kiln_tokenizer_encode(lower, "Hello", 5, true, false, &b, &nb));
        CHECK(na >= 3 && nb == 3 && a[0] == lower->bos && a[na - 1] == lower->sep); /* [CLS] hello [SEP] */
        CHECK(na != nb || memcmp(a, b, na * sizeof *a) != 0);
        free(a), free(b);
    }
    kiln_tokenizer_free(cased);
    kiln_tokenizer_free(lower);
    /* bad files: missing, empty, a line longer than any token */
    kiln_tokenizer *bad = NULL;
    char missing[1024], empty[1024], longline[1024];
    kiln_test_tmp_path(missing, sizeof missing, "no-such-vocab.txt");
    CHECK(kiln_tokenizer_from_vocab_txt(missing, NULL, &bad) == KILN_ERR_IO && !bad);
    kiln_test_tmp_path(empty, sizeof empty, "empty-vocab.txt");
    kiln_test_write_file(empty, "", 0);
    CHECK(kiln_tokenizer_from_vocab_txt(empty, NULL, &bad) == KILN_ERR_FORMAT && !bad);
    kiln_test_tmp_path(longline, sizeof longline, "long-vocab.txt");
    char *big = malloc(TOK_MAX_TOKEN_LEN + 10);
    memset(big, 'a', TOK_MAX_TOKEN_LEN + 9);
    big[TOK_MAX_TOKEN_LEN + 9] = '\n';
    kiln_test_write_file(longline, big, TOK_MAX_TOKEN_LEN + 10);
    free(big);
    CHECK(kiln_tokenizer_from_vocab_txt(longline, NULL, &bad) == KILN_ERR_FORMAT && !bad);
    CHECK(kiln_tokenizer_from_vocab_txt(vocab, missing, &bad) == KILN_ERR_IO && !bad); /* config missing */
}

/* A vocabulary without test files: it must load and round-trip. */
static void run_plain(const char *path, const char *name, const cases *texts) {
    kiln_tokenizer *t = load(path);
    if (!t) return;
    CHECK(kiln_tokenizer_n_vocab(t) > 0);
    for (size_t i = 0; i < texts->n; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(kiln_tokenizer_encode(t, texts->text[i], texts->len[i], true, false, &ids, &n));
        if (lossless(t)) check_roundtrip(t, name, i, texts->text[i], texts->len[i], ids, n);
        free(ids);
    }
    printf("%s: loaded, %zu round trips\n", name, texts->n);
    kiln_tokenizer_free(t);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tokenizers/vocab", kiln_test_shared());
    kiln_test_require_file(dir);
    DIR *dp = opendir(dir);
    if (!dp) return 77;
    char *names[256];
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && nn < 256) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".gguf") == 0) names[nn++] = strdup(e->d_name);
    }
    closedir(dp);
    qsort(names, nn, sizeof *names, cmp_str);
    cases texts = {0};
    int with_tests = 0;
    /* fixtures first (they also collect texts for the plain vocabularies) */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nn; i++) {
            char path[1400], inp[1500];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            snprintf(inp, sizeof inp, "%s.inp", path);
            FILE *f = fopen(inp, "rb");
            bool has = f != NULL;
            if (f) fclose(f);
            if (pass == 0 && has) {
                run_fixture(path, names[i], &texts, NULL);
                with_tests++;
            } else if (pass == 1 && !has) {
                run_plain(path, names[i], &texts);
            }
        }
    }
    CHECK_MSG(with_tests > 0, "no .gguf.inp fixtures found in %s", dir);
    run_vocab_txt(dir);
    for (size_t i = 0; i < nn; i++) free(names[i]);
    cases_free(&texts);
    TEST_MAIN_END();
}
