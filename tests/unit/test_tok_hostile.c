/*
 * test_tok_hostile.c — tokenizers facing broken files and hostile text.
 *
 * Files: truncated / lying llama2.c tokenizer.bin files, and small GGUF files written
 * here with missing tokens, arrays of the wrong length or type, merges naming
 * unknown tokens, unknown models and pre-tokenizers: each must fail with a clear
 * status and message (and no leak or crash under ASan).
 * Text: random bytes (invalid UTF-8 included) through every real vocabulary, with
 * and without special handling: ids stay in range, SentencePiece and byte-level
 * pieces concatenate back to the exact input bytes, every detokenizer chunk is
 * valid UTF-8. Speed: 100 KB texts (prose, one 100 KB "word", digits, whitespace,
 * CJK) must each encode in well under a second.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/mapfile.h"
#include "base/rng.h"
#include "base/timer.h"
#include "formats/gguf.h"
#include "test.h"
#include "tokenizers/tok_impl.h"
#include "tokenizers/tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
#define TIME_LIMIT 30.0
#else
#define TIME_LIMIT 1.0
#endif

/* ---- a tiny GGUF writer ------------------------------------------------------------ */

typedef struct {
    kiln_buf b;
    uint64_t n_kv;
} gw;

static void put(gw *w, const void *p, size_t n) { kiln_buf_append(&w->b, p, n); }
static void put_u32(gw *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(gw *w, uint64_t v) { put(w, &v, 8); }
static void put_str(gw *w, const char *s) {
    put_u64(w, strlen(s));
    put(w, s, strlen(s));
}
static void kv_str(gw *w, const char *key, const char *v) {
    put_str(w, key);
    put_u32(w, KILN_GGUF_STRING);
    put_str(w, v);
    w->n_kv++;
}
static void kv_u32(gw *w, const char *key, uint32_t v) {
    put_str(w, key);
    put_u32(w, KILN_GGUF_UINT32);
    put_u32(w, v);
    w->n_kv++;
}
static void kv_strs(gw *w, const char *key, const char *const *v, size_t n) {
    put_str(w, key);
    put_u32(w, KILN_GGUF_ARRAY);
    put_u32(w, KILN_GGUF_STRING);
    put_u64(w, n);
    for (size_t i = 0; i < n; i++) put_str(w, v[i]);
    w->n_kv++;
}
static void kv_f32s(gw *w, const char *key, size_t n) {
    put_str(w, key);
    put_u32(w, KILN_GGUF_ARRAY);
    put_u32(w, KILN_GGUF_FLOAT32);
    put_u64(w, n);
    for (size_t i = 0; i < n; i++) {
        float f = -(float)i;
        put(w, &f, 4);
    }
    w->n_kv++;
}
static void kv_i32s(gw *w, const char *key, const int32_t *v, size_t n) {
    put_str(w, key);
    put_u32(w, KILN_GGUF_ARRAY);
    put_u32(w, KILN_GGUF_INT32);
    put_u64(w, n);
    put(w, v, n * 4);
    w->n_kv++;
}

/* Writes the GGUF and tries to build a tokenizer from it. */
static kiln_status try_gguf(gw *w, kiln_tokenizer **out) {
    kiln_buf f = {0};
    kiln_buf_append(&f, "GGUF", 4);
    uint32_t ver = 3;
    uint64_t nt = 0;
    kiln_buf_append(&f, &ver, 4);
    kiln_buf_append(&f, &nt, 8);
    kiln_buf_append(&f, &w->n_kv, 8);
    kiln_buf_append(&f, w->b.data, w->b.len);
    char path[1024];
    snprintf(path, sizeof path, "%s/tok-hostile.gguf", kiln_test_tmp());
    FILE *fp = fopen(path, "wb");
    fwrite(f.data, 1, f.len, fp);
    fclose(fp);
    kiln_buf_free(&f);
    kiln_buf_free(&w->b);
    w->n_kv = 0;
    *out = NULL;
    kiln_gguf *g = NULL;
    kiln_status st = kiln_gguf_open(path, &g);
    if (st != KILN_OK) {
        fprintf(stderr, "gguf writer produced a bad file: %s\n", kiln_last_error());
        return st;
    }
    st = kiln_tokenizer_from_gguf(g, out);
    kiln_gguf_close(g); /* the tokenizer must not need the file any more */
    remove(path);
    return st;
}

static const char *const small_vocab[] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "\xe2\x96\x81", "\xe2\x96\x81" "ab"};

static void expect_gguf(gw *w, kiln_status want, const char *what) {
    kiln_tokenizer *t = NULL;
    kiln_status st = try_gguf(w, &t);
    CHECK_MSG(st == want && t == NULL, "%s: got %s (%s)", what, kiln_status_name(st), kiln_last_error());
    if (st == want) printf("  %-40s -> %s: %s\n", what, kiln_status_name(st), kiln_last_error());
    kiln_tokenizer_free(t);
}

static void gguf_cases(void) {
    gw w = {0};
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    expect_gguf(&w, KILN_ERR_FORMAT, "no tokenizer.ggml.model");

    kv_str(&w, "tokenizer.ggml.model", "llama");
    expect_gguf(&w, KILN_ERR_FORMAT, "no tokens");

    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 0);
    expect_gguf(&w, KILN_ERR_FORMAT, "empty token list");

    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_u32(&w, "tokenizer.ggml.tokens", 7);
    expect_gguf(&w, KILN_ERR_FORMAT, "tokens not an array");

    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    kv_f32s(&w, "tokenizer.ggml.scores", 5);
    expect_gguf(&w, KILN_ERR_FORMAT, "scores of the wrong length");

    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    kv_strs(&w, "tokenizer.ggml.token_type", small_vocab, 8);
    expect_gguf(&w, KILN_ERR_FORMAT, "token_type of the wrong type");

    kv_str(&w, "tokenizer.ggml.model", "t5");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    expect_gguf(&w, KILN_ERR_UNSUPPORTED, "unsupported model");

    kv_str(&w, "tokenizer.ggml.model", "gpt2");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    expect_gguf(&w, KILN_ERR_FORMAT, "gpt2 without merges");

    static const char *const bad_merge[] = {"a b", "a zz"};
    kv_str(&w, "tokenizer.ggml.model", "gpt2");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    kv_strs(&w, "tokenizer.ggml.merges", bad_merge, 2);
    expect_gguf(&w, KILN_ERR_FORMAT, "merge naming an unknown token");

    static const char *const no_space[] = {"ab"};
    kv_str(&w, "tokenizer.ggml.model", "gpt2");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    kv_strs(&w, "tokenizer.ggml.merges", no_space, 1);
    expect_gguf(&w, KILN_ERR_FORMAT, "merge without a space");

    static const char *const good_merge[] = {"a b"};
    kv_str(&w, "tokenizer.ggml.model", "gpt2");
    kv_str(&w, "tokenizer.ggml.pre", "no-such-pre");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    kv_strs(&w, "tokenizer.ggml.merges", good_merge, 1);
    expect_gguf(&w, KILN_ERR_UNSUPPORTED, "unknown pre-tokenizer");

    /* valid but odd: out-of-range special ids are ignored, missing bytes survive */
    static const int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 1};
    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_strs(&w, "tokenizer.ggml.tokens", small_vocab, 8);
    kv_f32s(&w, "tokenizer.ggml.scores", 8);
    kv_i32s(&w, "tokenizer.ggml.token_type", types, 8);
    kv_u32(&w, "tokenizer.ggml.bos_token_id", 999999);
    kiln_tokenizer *t = NULL;
    CHECK_OK(try_gguf(&w, &t));
    if (t) {
        CHECK(kiln_tokenizer_bos(t) == 1); /* the default, not 999999 */
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(kiln_tokenizer_encode(t, "ab ab \xff\xfe z", 11, true, true, &ids, &n));
        CHECK(n >= 3 && ids[0] == 1 && ids[1] == 7); /* <s> ▁ab ... (unknown bytes -> <unk>) */
        for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < 8);
        free(ids);
        kiln_tokenizer_free(t);
    }
}

/* ---- llama2.c files ------------------------------------------------------------------ */

static kiln_status try_bin(const void *data, size_t n, int32_t vocab, kiln_tokenizer **t) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tok-hostile.bin", kiln_test_tmp());
    FILE *f = fopen(path, "wb");
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    *t = NULL;
    kiln_status st = kiln_tokenizer_from_llama2c(path, vocab, t);
    remove(path);
    return st;
}

static void llama2c_cases(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", kiln_test_shared());
    char *data = NULL;
    size_t size = 0;
    kiln_tokenizer *t = NULL;
    CHECK(kiln_tokenizer_from_llama2c("/nonexistent/tokenizer.bin", 512, &t) == KILN_ERR_IO && !t);
    if (kiln_read_file(path, 1 << 20, &data, &size) != KILN_OK) return;
    size_t cuts[] = {0, 2, 4, 7, 11, 100, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        kiln_status st = try_bin(data, cuts[i], 512, &t);
        CHECK_MSG(st == KILN_ERR_FORMAT && !t, "truncated at %zu: %s", cuts[i], kiln_status_name(st));
        kiln_tokenizer_free(t);
    }
    CHECK(kiln_tokenizer_from_llama2c(path, 0, &t) == KILN_ERR_INVALID_ARG && !t);
    CHECK(kiln_tokenizer_from_llama2c(path, -5, &t) == KILN_ERR_INVALID_ARG && !t);
    CHECK(kiln_tokenizer_from_llama2c(path, 1 << 30, &t) == KILN_ERR_INVALID_ARG && !t);
    CHECK(kiln_tokenizer_from_llama2c(path, 513, &t) == KILN_ERR_FORMAT && !t); /* more than the file has */

    /* lying lengths */
    struct {
        int32_t max_len;
        float score;
        int32_t len;
    } rec[] = {{10, 0, 0x7fffffff}, {10, 0, -1}, {0, 0, 1}, {-3, 0, 1}, {10, 0, 11}};
    for (size_t i = 0; i < sizeof rec / sizeof rec[0]; i++) {
        uint8_t buf[64] = {0};
        memcpy(buf, &rec[i].max_len, 4);
        memcpy(buf + 4, &rec[i].score, 4);
        memcpy(buf + 8, &rec[i].len, 4);
        kiln_status st = try_bin(buf, sizeof buf, 1, &t);
        CHECK_MSG(st == KILN_ERR_FORMAT && !t, "record %zu: %s", i, kiln_status_name(st));
        kiln_tokenizer_free(t);
    }
    /* fewer tokens than the byte fallback needs: ids stay in range */
    CHECK_OK(kiln_tokenizer_from_llama2c(path, 10, &t));
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(kiln_tokenizer_encode(t, "Once upon \xe2\x9c\x85", 13, true, true, &ids, &n));
        for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < 10);
        free(ids);
        kiln_tokenizer_free(t);
    }
    free(data);
}

/* ---- random text ---------------------------------------------------------------------- */

static size_t random_text(kiln_rng *r, char *out, size_t max) {
    static const char *const pieces[] = {" ", "  ", "\n", "\t", "a", "Hello", "'s", "123", "\xc3\xa9", "\xe2\x9c\x85",
                                         "\xf0\x9f\xa6\x99", "\xe4\xbd\xa0", "<s>", "<|endoftext|>", "[CLS]", ".",
                                         "\xe2\x96", "\x80", "\xff", "\xf0\x9f"};
    size_t n = 0, want = kiln_rng_u64(r) % max;
    while (n < want) {
        if (kiln_rng_u64(r) % 3 == 0) {
            out[n++] = (char)(kiln_rng_u64(r) & 0xff);
        } else {
            const char *p = pieces[kiln_rng_u64(r) % (sizeof pieces / sizeof pieces[0])];
            size_t l = strlen(p);
            if (n + l > max) break;
            memcpy(out + n, p, l);
            n += l;
        }
    }
    return n;
}

static void fuzz_one(const kiln_tokenizer *t, const char *name, kiln_rng *r) {
    char text[600];
    int bad_pieces = 0, bad_utf8 = 0;
    for (int iter = 0; iter < 300; iter++) {
        size_t len = random_text(r, text, sizeof text);
        bool add = iter & 1, parse = iter & 2;
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(kiln_tokenizer_encode(t, text, len, add, parse, &ids, &n));
        kiln_buf pieces = {0}, chunk = {0};
        kiln_detok *d = NULL;
        CHECK_OK(kiln_detok_create(t, &d));
        for (size_t i = 0; i < n; i++) {
            CHECK(ids[i] >= 0 && ids[i] < kiln_tokenizer_n_vocab(t));
            kiln_tokenizer_piece(t, ids[i], &pieces);
            chunk.len = 0;
            kiln_detok_push(d, ids[i], &chunk);
            for (size_t k = 0; k < chunk.len;) {
                uint32_t cp;
                size_t l = tok_utf8_decode((const uint8_t *)chunk.data + k, chunk.len - k, &cp, NULL);
                if (!l) {
                    bad_utf8++;
                    break;
                }
                k += l;
            }
        }
        kiln_detok_free(d);
        /* SPM and byte-level BPE are lossless at the byte level (specials render as
         * their text; SPM adds the dummy-prefix space) when the vocabulary has a
         * token for every byte of the text (refact's lacks bytes that UTF-8 never uses) */
        bool all_bytes = true;
        for (size_t i = 0; i < len; i++) all_bytes = all_bytes && t->byte_tok[(uint8_t)text[i]] >= 0;
        if (!add && all_bytes && (t->alg == TOK_ALG_SPM || (t->alg == TOK_ALG_BPE && t->byte_level))) {
            kiln_buf want = {0};
            bool spm_space = t->alg == TOK_ALG_SPM && t->add_space_prefix && len > 0;
            if (spm_space) kiln_buf_append(&want, " ", 1);
            kiln_buf_append(&want, text, len);
            bool same = pieces.len == want.len && (want.len == 0 || memcmp(pieces.data, want.data, want.len) == 0);
            /* a special token parsed mid-text gets its own dummy-prefix space after it */
            if (!same && !(parse && t->alg == TOK_ALG_SPM)) bad_pieces++;
            kiln_buf_free(&want);
        }
        kiln_buf_free(&pieces);
        kiln_buf_free(&chunk);
        free(ids);
    }
    CHECK_MSG(bad_pieces == 0, "%s: %d random texts did not survive piece concatenation", name, bad_pieces);
    CHECK_MSG(bad_utf8 == 0, "%s: %d detokenizer chunks were not valid UTF-8", name, bad_utf8);
}

/* ---- speed ----------------------------------------------------------------------------- */

static void speed_one(const kiln_tokenizer *t, const char *name) {
    enum { N = 100 * 1024 };
    char *s = malloc(N + 8);
    const char *prose = "The quick brown fox, it's said, jumped over 1234 lazy dogs!\n";
    const char *kinds[] = {"prose", "one word", "letters", "digits", "spaces", "CJK"};
    kiln_rng r;
    kiln_rng_seed(&r, 7);
    double worst = 0;
    for (int k = 0; k < 6; k++) {
        size_t n = 0;
        while (n < N) {
            switch (k) {
            case 0: s[n] = prose[n % strlen(prose)], n++; break;
            case 1: s[n++] = 'a'; break;
            case 2: s[n++] = (char)('a' + kiln_rng_u64(&r) % 26); break;
            case 3: s[n++] = (char)('0' + kiln_rng_u64(&r) % 10); break;
            case 4: s[n++] = " \n\t"[kiln_rng_u64(&r) % 3]; break;
            case 5: memcpy(s + n, "\xe4\xbd\xa0\xe5\xa5\xbd", 6), n += 6; break;
            }
        }
        int32_t *ids = NULL;
        size_t m = 0;
        double t0 = kiln_time_now();
        CHECK_OK(kiln_tokenizer_encode(t, s, n, true, true, &ids, &m));
        double dt = kiln_time_now() - t0;
        if (dt > worst) worst = dt;
        CHECK_MSG(dt < TIME_LIMIT, "%s: encoding 100 KB of %s took %.3f s", name, kinds[k], dt);
        CHECK(m > 0);
        free(ids);
    }
    printf("  %-28s worst 100 KB encode: %.1f ms\n", name, worst * 1e3);
    free(s);
}

/* ---- one tokenizer, several threads ----------------------------------------------- */

typedef struct {
    const kiln_tokenizer *t;
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    kiln_status st;
} job;

static void *encode_job(void *arg) {
    job *j = arg;
    for (int rep = 0; rep < 20 && j->st == KILN_OK; rep++) {
        free(j->ids);
        j->ids = NULL;
        j->st = kiln_tokenizer_encode(j->t, j->text, j->len, true, true, &j->ids, &j->n);
    }
    return NULL;
}

/* A tokenizer is immutable after loading: concurrent encodes give the same ids. */
static void threads_one(const kiln_tokenizer *t, const char *name) {
    const char *text = "Once upon a time, 1234 \xe4\xbd\xa0\xe5\xa5\xbd <|endoftext|> it's \xf0\x9f\xa6\x99!\n\n  x";
    enum { NT = 4 };
    pthread_t th[NT];
    job jobs[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i] = (job){t, text, strlen(text), NULL, 0, KILN_OK};
        pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++) {
        CHECK_MSG(jobs[i].st == KILN_OK, "%s: thread %d failed", name, i);
        CHECK_MSG(jobs[i].n == jobs[0].n && memcmp(jobs[i].ids, jobs[0].ids, jobs[0].n * sizeof(int32_t)) == 0,
                  "%s: thread %d got other ids", name, i);
    }
    for (int i = 0; i < NT; i++) free(jobs[i].ids);
}

int main(void) {
    printf("broken GGUF files:\n");
    gguf_cases();
    llama2c_cases();

    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tokenizers/vocab", kiln_test_shared());
    const char *names[] = {"llama-spm", "phi-3", "baichuan", "gpt-2", "refact", "bert-bge"};
    kiln_rng r;
    kiln_rng_seed(&r, 1234);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, names[i]);
        kiln_gguf *g = NULL;
        if (kiln_gguf_open(path, &g) != KILN_OK) continue;
        kiln_tokenizer *t = NULL;
        CHECK_OK(kiln_tokenizer_from_gguf(g, &t));
        kiln_gguf_close(g);
        if (!t) continue;
        /* empty input */
        int32_t *ids = (int32_t *)1;
        size_t n = 1;
        CHECK_OK(kiln_tokenizer_encode(t, NULL, 0, false, false, &ids, &n));
        CHECK(n == 0 && ids == NULL);
        CHECK_OK(kiln_tokenizer_encode(t, "", 0, true, false, &ids, &n));
        CHECK(n == (size_t)(t->alg == TOK_ALG_WPM ? 2 : kiln_tokenizer_add_bos(t) ? 1 : 0));
        free(ids);
        CHECK(kiln_tokenizer_encode(t, NULL, 5, false, false, &ids, &n) == KILN_ERR_INVALID_ARG);
        fuzz_one(t, names[i], &r);
        speed_one(t, names[i]);
        threads_one(t, names[i]);
        kiln_tokenizer_free(t);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", kiln_test_shared());
    kiln_tokenizer *t = NULL;
    if (kiln_tokenizer_from_llama2c(path, 512, &t) == KILN_OK) {
        fuzz_one(t, "tok512", &r);
        speed_one(t, "tok512");
        kiln_tokenizer_free(t);
    }
    TEST_MAIN_END();
}
