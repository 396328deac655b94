/*
 * test_registry.c — the model registry: what a models directory lists (GGUF files,
 * llama2.c checkpoints, HF / GGUF / llama2.c folders) and what it refuses (junk,
 * hidden entries, symlinks leading outside, names that are not plain names), aliases,
 * and the real stories260K folder of the shared data when it is there.
 *
 * The test builds $KILN_TMP/registry-PID/{models,outside} and removes it at the end.
 */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "engine/registry.h"
#include "files.h"
#include "test.h"

static char g_base[1024], g_models[1200], g_outside[1200], g_root[4096];

/* ---- fixture ------------------------------------------------------------------------ */

static void path_of(char *buf, size_t n, const char *rel) { snprintf(buf, n, "%s/%s", g_base, rel); }

static void mk(const char *rel) {
    char p[2048];
    path_of(p, sizeof p, rel);
    if (mkdir(p, 0755) != 0) {
        perror(p);
        exit(1);
    }
}

static void put(const char *rel, const void *data, size_t n) {
    char p[2048];
    path_of(p, sizeof p, rel);
    kiln_test_write_file(p, data, n);
}

static void link_to(const char *target, const char *rel) {
    char p[2048];
    path_of(p, sizeof p, rel);
    if (symlink(target, p) != 0) {
        perror(p);
        exit(1);
    }
}

/* A GGUF v3 header with no tensors and no metadata: what the registry checks. */
static void put_gguf(const char *rel) {
    kiln_test_bytes b = {0};
    kiln_test_bytes_put(&b, "GGUF", 4);
    kiln_test_bytes_u32(&b, 3);
    kiln_test_bytes_u64(&b, 0);
    kiln_test_bytes_u64(&b, 0);
    put(rel, b.p, b.n);
    kiln_test_bytes_free(&b);
}

/* A tiny legacy llama2.c checkpoint: dim 8, hidden 16, 1 layer, 2 heads, vocab 32,
 * seq_len 8, zero weights (more bytes than the header needs is fine). */
static void put_checkpoint(const char *rel) {
    kiln_test_bytes b = {0};
    const uint32_t h[7] = {8, 16, 1, 2, 2, 32, 8};
    for (int i = 0; i < 7; i++) kiln_test_bytes_u32(&b, h[i]);
    static const uint8_t zeros[32768];
    kiln_test_bytes_put(&b, zeros, sizeof zeros);
    put(rel, b.p, b.n);
    kiln_test_bytes_free(&b);
}

/* A llama2.c tokenizer with 32 one-byte tokens (its first int32 and score look
 * nothing like a checkpoint header). */
static void put_tokenizer(const char *rel) {
    kiln_test_bytes b = {0};
    kiln_test_bytes_u32(&b, 1);
    for (int i = 0; i < 32; i++) {
        float score = (float)-i;
        uint8_t c = (uint8_t)('a' + i);
        kiln_test_bytes_put(&b, &score, 4);
        kiln_test_bytes_u32(&b, 1);
        kiln_test_bytes_put(&b, &c, 1);
    }
    put(rel, b.p, b.n);
    kiln_test_bytes_free(&b);
}

static bool copy_file(const char *from, const char *rel) {
    FILE *f = fopen(from, "rb");
    if (!f) return false;
    kiln_test_bytes b = {0};
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) kiln_test_bytes_put(&b, buf, k);
    fclose(f);
    put(rel, b.p, b.n);
    kiln_test_bytes_free(&b);
    return true;
}

static void put_hf(const char *dir) {
    char p[2048];
    static const char config[] = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8}";
    snprintf(p, sizeof p, "%s/config.json", dir);
    put(p, config, strlen(config));
    static const float w[4] = {1, 2, 3, 4};
    snprintf(p, sizeof p, "%s/%s/model.safetensors", g_base, dir);
    kiln_test_write_safetensors(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", w, sizeof w);
}

static bool g_have_shared;

static void build_fixture(void) {
    snprintf(g_base, sizeof g_base, "%s/registry-%ld", kiln_test_tmp(), (long)getpid());
    if (mkdir(g_base, 0755) != 0 && errno != EEXIST) {
        perror(g_base);
        exit(1);
    }
    snprintf(g_models, sizeof g_models, "%s/models", g_base);
    snprintf(g_outside, sizeof g_outside, "%s/outside", g_base);
    mk("models");
    mk("outside");

    /* outside: a perfectly valid model the registry must never hand out */
    put_gguf("outside/model.gguf");
    put_hf("outside");
    put_gguf("outside/secret.gguf");

    /* models that are listed */
    put_gguf("models/tiny.gguf");
    put_checkpoint("models/story.bin");
    put_tokenizer("models/tokenizer.bin");
    mk("models/hf");
    put_hf("models/hf");
    put("models/hf/README.md", "hi", 2);
    mk("models/ggdir");
    put_gguf("models/ggdir/weights.Q4_0.gguf");
    put("models/ggdir/notes.txt", "x", 1);
    mk("models/l2c");
    char shared_ckpt[2048], shared_tok[2048];
    snprintf(shared_ckpt, sizeof shared_ckpt, "%s/models/stories260K/stories260K.bin", kiln_test_shared());
    snprintf(shared_tok, sizeof shared_tok, "%s/models/stories260K/tok512.bin", kiln_test_shared());
    g_have_shared = access(shared_ckpt, R_OK) == 0 && access(shared_tok, R_OK) == 0;
    if (!(g_have_shared && copy_file(shared_ckpt, "models/l2c/ckpt.bin") && copy_file(shared_tok, "models/l2c/tok512.bin"))) {
        put_checkpoint("models/l2c/ckpt.bin");
        put_tokenizer("models/l2c/tok512.bin");
    }
    link_to("tiny.gguf", "models/link.gguf");           /* symlink inside: fine */
    link_to("hf", "models/hflink");                     /* folder symlink inside: fine */
    mk("models/sub");                                   /* a folder whose GGUF is a symlink inside */
    link_to("../tiny.gguf", "models/sub/w.gguf");

    /* symlinks leading out: never listed, refused by name */
    link_to("/etc", "models/etc");
    link_to("/etc/passwd", "models/passwd.gguf");
    link_to("../outside", "models/outdir");
    link_to("../outside/secret.gguf", "models/secret.gguf");
    mk("models/evilcfg"); /* HF folder whose config.json leads out */
    link_to("../../outside/config.json", "models/evilcfg/config.json");
    put_gguf("models/evilcfg/x.gguf");
    {
        static const float w[1] = {0};
        char p[2048];
        snprintf(p, sizeof p, "%s/models/evilcfg/model.safetensors", g_base);
        kiln_test_write_safetensors(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", w, 4);
    }
    mk("models/evilw"); /* HF folder whose weights lead out */
    put("models/evilw/config.json", "{}", 2);
    link_to("../../outside/model.safetensors", "models/evilw/model.safetensors");
    mk("models/eviltok"); /* llama2.c folder whose tokenizer leads out */
    put_checkpoint("models/eviltok/ckpt.bin");
    put_tokenizer("outside/tokenizer.bin");
    link_to("../../outside/tokenizer.bin", "models/eviltok/tokenizer.bin");
    mk("models2"); /* a second models dir whose tokenizer.bin leads out: the checkpoint
                    * is offered without it */
    put_checkpoint("models2/story.bin");
    link_to("../outside/tokenizer.bin", "models2/tokenizer.bin");
    mk("models/evilgg"); /* GGUF folder whose only file leads out */
    link_to("/etc/passwd", "models/evilgg/a.gguf");

    /* a diffusers folder; an fp16 twin beside a plain file is not counted */
    mk("models/sd");
    {
        static const char idx[] = "{\"_class_name\": \"StableDiffusionPipeline\"}";
        put("models/sd/model_index.json", idx, strlen(idx));
    }
    {
        static const float w[4] = {1, 2, 3, 4};
        static const char *const parts[] = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"};
        char p[2048], rel[64];
        for (size_t i = 0; i < 5; i++) {
            snprintf(rel, sizeof rel, "models/sd/%s", parts[i]);
            mk(rel);
        }
        const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
        snprintf(p, sizeof p, "%s/models/sd/unet/diffusion_pytorch_model.safetensors", g_base);
        kiln_test_write_safetensors(p, hdr, w, sizeof w);
        snprintf(p, sizeof p, "%s/models/sd/unet/diffusion_pytorch_model.fp16.safetensors", g_base);
        kiln_test_write_safetensors(p, hdr, w, sizeof w);
        snprintf(p, sizeof p, "%s/models/sd/vae/diffusion_pytorch_model.fp16.safetensors", g_base);
        kiln_test_write_safetensors(p, hdr, w, sizeof w);
        snprintf(p, sizeof p, "%s/models/sd/text_encoder/model.safetensors", g_base);
        kiln_test_write_safetensors(p, hdr, w, sizeof w);
        put("models/sd/tokenizer/vocab.json", "{}", 2);
    }
    { /* a single-file SD checkpoint (LDM names) is a model; another safetensors file is not */
        const char *sd = "{\"model.diffusion_model.input_blocks.0.0.weight\":{\"dtype\":\"F32\",\"shape\":[4],"
                         "\"data_offsets\":[0,16]}}";
        const char *other = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
        static const float w4[4] = {1, 2, 3, 4};
        char p[2048];
        path_of(p, sizeof p, "models/dream.safetensors");
        kiln_test_write_safetensors(p, sd, w4, sizeof w4);
        path_of(p, sizeof p, "models/notsd.safetensors");
        kiln_test_write_safetensors(p, other, w4, sizeof w4);
    }
    mk("models/evilsd"); /* diffusers folder whose unet/ leads out */
    put("models/evilsd/model_index.json", "{}", 2);
    link_to("../../outside", "models/evilsd/unet");
    mk("models/evilsd2"); /* ... whose VAE weights lead out */
    put("models/evilsd2/model_index.json", "{}", 2);
    mk("models/evilsd2/vae");
    link_to("../../../outside/model.safetensors", "models/evilsd2/vae/diffusion_pytorch_model.safetensors");
    mk("models/evilsd3"); /* ... whose model_index.json leads out */
    link_to("../../outside/config.json", "models/evilsd3/model_index.json");

    /* not models */
    put_gguf("models/.hidden.gguf");
    mk("models/.cache");
    put_gguf("models/.cache/c.gguf");
    put("models/notes.txt", "not a model", 11);
    put("models/junk.gguf", "GGUF", 4);                 /* too short */
    put("models/v9.gguf", "GGUF\x09\0\0\0\0\0\0\0", 12); /* unknown version */
    {
        uint8_t junk[4096];
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 2654435761u >> 13);
        put("models/junk.bin", junk, sizeof junk);
    }
    put("models/plain", "x", 1);
    mk("models/empty");
    mk("models/two"); /* ambiguous: two GGUF files */
    put_gguf("models/two/a.gguf");
    put_gguf("models/two/b.gguf");
    link_to("nowhere.gguf", "models/dangling.gguf");
    char fifo[2048];
    path_of(fifo, sizeof fifo, "models/pipe.gguf");
    if (mkfifo(fifo, 0644) != 0) perror(fifo); /* must not hang a scan */
    link_to("loop.gguf", "models/loop.gguf");

    if (!realpath(g_models, g_root)) {
        perror(g_models);
        exit(1);
    }
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void remove_fixture(void) { nftw(g_base, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- checks ------------------------------------------------------------------------- */

static bool inside_root(const char *p) {
    size_t n = strlen(g_root);
    return p && !strncmp(p, g_root, n) && p[n] == '/';
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = s ? strlen(s) : 0, k = strlen(suf);
    return s && n >= k && !strcmp(s + n - k, suf);
}

static bool entry_zero(const kiln_model_entry *e) {
    return !e->name && !e->alias_of && !e->path && !e->tokenizer_path && !e->format && e->bytes == 0;
}

/* Resolves name and checks the format, the path's tail and the tokenizer's tail. */
static void check_resolves(kiln_registry *r, const char *name, const char *listed, const char *format,
                           const char *path_tail, const char *tok_tail) {
    kiln_model_entry e;
    kiln_status st = kiln_registry_resolve(r, name, &e);
    CHECK_MSG(st == KILN_OK, "resolve '%s': %s: %s", name, kiln_status_name(st), kiln_last_error());
    if (st) return;
    CHECK_MSG(!strcmp(e.name, listed), "'%s' resolved with name '%s'", name, e.name);
    CHECK_MSG(!strcmp(e.format, format), "'%s' has format %s", name, e.format);
    CHECK_MSG(inside_root(e.path) && ends_with(e.path, path_tail), "'%s' has path %s", name, e.path);
    if (tok_tail)
        CHECK_MSG(inside_root(e.tokenizer_path) && ends_with(e.tokenizer_path, tok_tail), "'%s' tokenizer %s", name,
                  e.tokenizer_path ? e.tokenizer_path : "(none)");
    else
        CHECK_MSG(!e.tokenizer_path, "'%s' has tokenizer %s", name, e.tokenizer_path);
    CHECK(e.bytes > 0);
    kiln_model_entry_clear(&e);
    CHECK(entry_zero(&e));
}

/* Resolving name fails with want and a message holding needle, and fills nothing. */
static void check_refused(kiln_registry *r, const char *name, kiln_status want, const char *needle) {
    kiln_model_entry e;
    memset(&e, 0x5a, sizeof e);
    kiln_status st = kiln_registry_resolve(r, name, &e);
    const char *msg = kiln_last_error();
    CHECK_MSG(st == want, "resolve '%s': %s (want %s): %s", name, kiln_status_name(st), kiln_status_name(want), msg);
    CHECK_MSG(strstr(msg, needle) != NULL, "resolve '%s': message '%s' lacks '%s'", name, msg, needle);
    CHECK_MSG(entry_zero(&e), "resolve '%s' left something in the entry", name);
    if (name && !strchr(name, '/'))
        CHECK_MSG(!strstr(msg, "/etc/") && !strstr(msg, g_outside), "message reveals a target: %s", msg);
    if (st == KILN_OK) kiln_model_entry_clear(&e);
}

static void test_list(kiln_registry *r) {
    kiln_model_entry *e = NULL;
    size_t n = 99;
    CHECK_OK(kiln_registry_list(r, &e, &n));
    static const struct {
        const char *name, *format, *tail;
    } want[] = {
        {"dream", "sd-single", "/dream.safetensors"},
        {"ggdir", "gguf", "/ggdir/weights.Q4_0.gguf"},
        {"hf", "safetensors", "/hf"},
        {"hflink", "safetensors", "/hf"},
        {"l2c", "llama2c", "/l2c/ckpt.bin"},
        {"link", "gguf", "/tiny.gguf"},
        {"sd", "diffusers", "/sd"},
        {"story", "llama2c", "/story.bin"},
        {"sub", "gguf", "/tiny.gguf"},
        {"tiny", "gguf", "/tiny.gguf"},
    };
    size_t nw = sizeof want / sizeof want[0];
    CHECK_MSG(n == nw, "listed %zu models, want %zu", n, nw);
    for (size_t i = 0; i < n; i++) {
        printf("  %-8s %-12s %8lld %s%s%s\n", e[i].name, e[i].format, (long long)e[i].bytes, e[i].path,
               e[i].tokenizer_path ? " + " : "", e[i].tokenizer_path ? e[i].tokenizer_path : "");
        CHECK(inside_root(e[i].path));
        CHECK(!e[i].tokenizer_path || inside_root(e[i].tokenizer_path));
        if (i + 1 < n) CHECK(strcmp(e[i].name, e[i + 1].name) < 0);
        if (i < nw) {
            CHECK_MSG(!strcmp(e[i].name, want[i].name), "entry %zu is '%s', want '%s'", i, e[i].name, want[i].name);
            CHECK_MSG(!strcmp(e[i].format, want[i].format), "'%s' format %s", e[i].name, e[i].format);
            CHECK_MSG(ends_with(e[i].path, want[i].tail), "'%s' path %s", e[i].name, e[i].path);
            CHECK(!e[i].alias_of);
        }
    }
    kiln_model_entries_free(e, n);
}

static void test_resolve(kiln_registry *r) {
    check_resolves(r, "dream", "dream", "sd-single", "/dream.safetensors", NULL);
    check_resolves(r, "dream.safetensors", "dream", "sd-single", "/dream.safetensors", NULL);
    check_refused(r, "notsd", KILN_ERR_NOT_FOUND, "not a Stable Diffusion checkpoint");
    check_resolves(r, "tiny", "tiny", "gguf", "/tiny.gguf", NULL);
    check_resolves(r, "tiny.gguf", "tiny", "gguf", "/tiny.gguf", NULL);
    check_resolves(r, "link", "link", "gguf", "/tiny.gguf", NULL);
    check_resolves(r, "story", "story", "llama2c", "/story.bin", "/tokenizer.bin");
    check_resolves(r, "story.bin", "story", "llama2c", "/story.bin", "/tokenizer.bin");
    check_resolves(r, "hf", "hf", "safetensors", "/hf", NULL);
    check_resolves(r, "hflink", "hflink", "safetensors", "/hf", NULL);
    check_resolves(r, "ggdir", "ggdir", "gguf", "/ggdir/weights.Q4_0.gguf", NULL);
    check_resolves(r, "l2c", "l2c", "llama2c", "/l2c/ckpt.bin", "/l2c/tok512.bin");
    check_resolves(r, "sub", "sub", "gguf", "/tiny.gguf", NULL);

    kiln_model_entry e;
    CHECK_OK(kiln_registry_resolve(r, "story", &e));
    struct stat sb;
    CHECK(stat(e.path, &sb) == 0 && e.bytes == (int64_t)sb.st_size);
    kiln_model_entry_clear(&e);
    CHECK_OK(kiln_registry_resolve(r, "hf", &e));
    char st_path[4200];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", e.path);
    CHECK(stat(st_path, &sb) == 0 && e.bytes == (int64_t)sb.st_size); /* the weights only */
    kiln_model_entry_clear(&e);

    /* not models: not found, with a reason where there is one */
    check_refused(r, "notes.txt", KILN_ERR_NOT_FOUND, "no model named 'notes.txt' in");
    check_refused(r, "notes", KILN_ERR_NOT_FOUND, "no model named 'notes'");
    check_refused(r, "junk", KILN_ERR_NOT_FOUND, "is not a GGUF file");
    check_refused(r, "v9", KILN_ERR_NOT_FOUND, "no model named 'v9'");
    check_refused(r, "junk.bin", KILN_ERR_NOT_FOUND, "is not a llama2.c checkpoint");
    check_refused(r, "tokenizer", KILN_ERR_NOT_FOUND, "is not a llama2.c checkpoint");
    check_refused(r, "tokenizer.bin", KILN_ERR_NOT_FOUND, "is not a llama2.c checkpoint");
    check_refused(r, "plain", KILN_ERR_NOT_FOUND, "no model named 'plain'");
    check_refused(r, "empty", KILN_ERR_NOT_FOUND, "holds no model files");
    check_refused(r, "two", KILN_ERR_NOT_FOUND, "several GGUF files");
    check_refused(r, "dangling", KILN_ERR_NOT_FOUND, "no model named 'dangling'");
    check_refused(r, "loop", KILN_ERR_NOT_FOUND, "no model named 'loop'");
    check_refused(r, "pipe", KILN_ERR_NOT_FOUND, "no model named 'pipe'");
    check_refused(r, "missing", KILN_ERR_NOT_FOUND, "no model named 'missing' in ");
    check_refused(r, "%2e%2e%2f", KILN_ERR_NOT_FOUND, "no model named '%2e%2e%2f'");
    check_refused(r, "..%2fetc", KILN_ERR_INVALID_ARG, "starts with '.'");
    check_refused(r, "mod\xc3\xa8le", KILN_ERR_NOT_FOUND, "no model named 'mod\\xc3\\xa8le'");
}

static void test_traversal(kiln_registry *r) {
    static const char plain[] = "model names are plain names inside the models directory";
    static const struct {
        const char *name, *why;
    } bad[] = {
        {"../x", "path separator"},
        {"..", "names a folder"},
        {".", "names a folder"},
        {"", "empty"},
        {"/etc/passwd", "path separator"},
        {"a/../../etc", "path separator"},
        {"..\\x", "path separator"},
        {"x\\..\\..\\etc", "path separator"},
        {"x/..", "path separator"},
        {"tiny/", "path separator"},
        {"./tiny", "path separator"},
        {"../models/tiny", "path separator"},
        {".hidden", "starts with '.'"},
        {".hidden.gguf", "starts with '.'"},
        {".cache", "starts with '.'"},
        {"...", "starts with '.'"},
        {"\xff", "not valid UTF-8"},
        {"ab\xc3", "not valid UTF-8"},           /* truncated sequence */
        {"\xc0\xaf", "not valid UTF-8"},         /* overlong '/' */
        {"\xe0\x80\xaf", "not valid UTF-8"},     /* overlong '/' */
        {"\xed\xa0\x80", "not valid UTF-8"},     /* surrogate */
        {"\xf4\x90\x80\x80", "not valid UTF-8"}, /* > U+10FFFF */
        {"a\x01" "b", "control character"},
        {"tiny\n", "control character"},
        {"a\x7f", "control character"},
        {"a\xc2\x85", "control character"}, /* U+0085 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        check_refused(r, bad[i].name, KILN_ERR_INVALID_ARG, plain);
        check_refused(r, bad[i].name, KILN_ERR_INVALID_ARG, bad[i].why);
    }
    check_refused(r, NULL, KILN_ERR_INVALID_ARG, "no model name");

    char longname[301];
    memset(longname, 'a', 300);
    longname[300] = 0;
    check_refused(r, longname, KILN_ERR_INVALID_ARG, "longer than 255 bytes");
    longname[255] = 0; /* 255 bytes: a valid name, just absent */
    check_refused(r, longname, KILN_ERR_NOT_FOUND, "no model named");
    longname[255] = 'a';
    longname[256] = 0;
    check_refused(r, longname, KILN_ERR_INVALID_ARG, "longer than 255 bytes");

    /* the message escapes what it quotes */
    kiln_model_entry e;
    CHECK(kiln_registry_resolve(r, "a\nb/c", &e) == KILN_ERR_INVALID_ARG);
    CHECK(!strchr(kiln_last_error(), '\n') && strstr(kiln_last_error(), "'a\\x0ab/c'"));

    /* symlinks leading outside: refused by name, whatever they point at */
    static const char *out[] = {"etc", "passwd", "passwd.gguf", "outdir", "secret", "secret.gguf"};
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        check_refused(r, out[i], KILN_ERR_INVALID_ARG, "leads outside the models directory");
    check_refused(r, "evilcfg", KILN_ERR_INVALID_ARG, "its file 'config.json' leads outside");
    check_refused(r, "evilw", KILN_ERR_INVALID_ARG, "its file 'model.safetensors' leads outside");
    check_refused(r, "evilgg", KILN_ERR_INVALID_ARG, "its file 'a.gguf' leads outside");
    check_refused(r, "eviltok", KILN_ERR_INVALID_ARG, "its file 'tokenizer.bin' leads outside");
    check_refused(r, "evilsd", KILN_ERR_INVALID_ARG, "its file 'unet' leads outside");
    check_refused(r, "evilsd2", KILN_ERR_INVALID_ARG,
                  "its file 'vae/diffusion_pytorch_model.safetensors' leads outside");
    check_refused(r, "evilsd3", KILN_ERR_INVALID_ARG, "its file 'model_index.json' leads outside");
    /* a diffusers folder: the weights of the parts, each counted once */
    CHECK_OK(kiln_registry_resolve(r, "sd", &e));
    const int64_t one = 8 + (int64_t)strlen("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}") + 16;
    CHECK_MSG(e.format && !strcmp(e.format, "diffusers") && e.bytes == 3 * one, "%s %lld (want %lld)",
              e.format ? e.format : "-", (long long)e.bytes, (long long)(3 * one));
    kiln_model_entry_clear(&e);
}

static void test_aliases(kiln_registry *r) {
    CHECK_OK(kiln_registry_add_alias(r, "chat", "tiny"));
    CHECK_OK(kiln_registry_add_alias(r, "default", "story.bin"));
    CHECK_OK(kiln_registry_add_alias(r, "gpt-4o", "hf"));

    kiln_model_entry e;
    CHECK_OK(kiln_registry_resolve(r, "chat", &e));
    CHECK(e.name && !strcmp(e.name, "chat") && e.alias_of && !strcmp(e.alias_of, "tiny"));
    CHECK(e.format && !strcmp(e.format, "gguf") && inside_root(e.path) && ends_with(e.path, "/tiny.gguf"));
    kiln_model_entry_clear(&e);
    CHECK_OK(kiln_registry_resolve(r, "default", &e));
    CHECK(e.alias_of && !strcmp(e.alias_of, "story") && ends_with(e.tokenizer_path, "/tokenizer.bin"));
    kiln_model_entry_clear(&e);

    /* refused aliases */
    static const struct {
        const char *alias, *target;
        kiln_status want;
        const char *needle;
    } bad[] = {
        {"x", "missing", KILN_ERR_NOT_FOUND, "no model named 'missing'"},
        {"x", "notes.txt", KILN_ERR_NOT_FOUND, "no model named 'notes.txt'"},
        {"x", "chat", KILN_ERR_NOT_FOUND, "no model named 'chat'"}, /* no alias chains */
        {"x", "../outside/model", KILN_ERR_INVALID_ARG, "plain names"},
        {"x", "outdir", KILN_ERR_INVALID_ARG, "leads outside"},
        {"x", "etc", KILN_ERR_INVALID_ARG, "leads outside"},
        {"../x", "tiny", KILN_ERR_INVALID_ARG, "plain names"},
        {".x", "tiny", KILN_ERR_INVALID_ARG, "starts with '.'"},
        {"", "tiny", KILN_ERR_INVALID_ARG, "empty"},
        {"a/b", "tiny", KILN_ERR_INVALID_ARG, "path separator"},
        {"chat", "hf", KILN_ERR_INVALID_ARG, "given twice"},
        {"story", "tiny", KILN_ERR_INVALID_ARG, "already the name of a model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_status st = kiln_registry_add_alias(r, bad[i].alias, bad[i].target);
        const char *msg = kiln_last_error();
        CHECK_MSG(st == bad[i].want && strstr(msg, bad[i].needle), "alias '%s' -> '%s': %s: %s", bad[i].alias,
                  bad[i].target, kiln_status_name(st), msg);
    }
    CHECK(kiln_registry_add_alias(r, NULL, "tiny") == KILN_ERR_INVALID_ARG);
    check_refused(r, "x", KILN_ERR_NOT_FOUND, "no model named 'x'");

    /* aliases are listed among the models, sorted */
    kiln_model_entry *l;
    size_t n;
    CHECK_OK(kiln_registry_list(r, &l, &n));
    CHECK(n == 13);
    const char *order[] = {"chat", "default", "dream", "ggdir", "gpt-4o", "hf", "hflink", "l2c", "link", "sd", "story",
                           "sub", "tiny"};
    for (size_t i = 0; i < n && i < 13; i++) {
        CHECK_MSG(!strcmp(l[i].name, order[i]), "entry %zu is %s", i, l[i].name);
        CHECK(inside_root(l[i].path));
    }
    if (n == 13) CHECK(l[4].alias_of && !strcmp(l[4].alias_of, "hf") && !strcmp(l[4].format, "safetensors"));
    kiln_model_entries_free(l, n);

    /* an alias whose model went away is no longer listed, and says why */
    char p[2048], q[2048];
    path_of(p, sizeof p, "models/tiny.gguf");
    path_of(q, sizeof q, "models/tiny.moved");
    CHECK(rename(p, q) == 0);
    check_refused(r, "chat", KILN_ERR_NOT_FOUND, "alias 'chat': no model named 'tiny'");
    CHECK_OK(kiln_registry_list(r, &l, &n));
    CHECK(n == 9); /* chat, link and sub followed tiny.gguf away */
    kiln_model_entries_free(l, n);
    CHECK(rename(q, p) == 0);
}

static void test_open(void) {
    kiln_registry *r = (kiln_registry *)1;
    kiln_model_entry e;
    char p[2048];
    path_of(p, sizeof p, "nope");
    CHECK(kiln_registry_open(p, &r) == KILN_ERR_NOT_FOUND && r == NULL);
    path_of(p, sizeof p, "models/notes.txt");
    CHECK(kiln_registry_open(p, &r) == KILN_ERR_INVALID_ARG && r == NULL);
    CHECK(kiln_registry_open(NULL, &r) == KILN_ERR_INVALID_ARG);
    kiln_registry_free(NULL);
    kiln_model_entry_clear(NULL);
    kiln_model_entries_free(NULL, 0);

    /* an empty directory lists nothing */
    path_of(p, sizeof p, "models/empty");
    CHECK_OK(kiln_registry_open(p, &r));
    kiln_model_entry *l = (kiln_model_entry *)1;
    size_t n = 5;
    CHECK_OK(kiln_registry_list(r, &l, &n));
    CHECK(n == 0 && l == NULL);
    /* inside a model folder, '..' is as refused as anywhere */
    check_refused(r, "..", KILN_ERR_INVALID_ARG, "plain names");
    kiln_registry_free(r);

    /* a tokenizer.bin beside a checkpoint that leads outside is not used */
    path_of(p, sizeof p, "models2");
    CHECK_OK(kiln_registry_open(p, &r));
    CHECK_OK(kiln_registry_resolve(r, "story", &e));
    CHECK(e.format && !strcmp(e.format, "llama2c") && e.tokenizer_path == NULL);
    kiln_model_entry_clear(&e);
    CHECK_OK(kiln_registry_list(r, &l, &n));
    CHECK(n == 1 && !strcmp(l[0].name, "story") && !l[0].tokenizer_path);
    kiln_model_entries_free(l, n);
    kiln_registry_free(r);

    /* a models dir given through a symlink, with a trailing slash */
    path_of(p, sizeof p, "alias-of-models");
    CHECK(symlink("models", p) == 0);
    strcat(p, "/");
    CHECK_OK(kiln_registry_open(p, &r));
    check_resolves(r, "tiny", "tiny", "gguf", "/tiny.gguf", NULL);
    check_refused(r, "outdir", KILN_ERR_INVALID_ARG, "leads outside");
    kiln_registry_free(r);
}

/* The real stories260K folder of the shared data: `kiln serve --models
 * ../shared/models` must offer it. */
static void test_shared(void) {
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/models", kiln_test_shared());
    if (!g_have_shared) {
        printf("SKIP part: %s/stories260K is missing (set KILN_SHARED)\n", dir);
        return;
    }
    kiln_registry *r;
    CHECK_OK(kiln_registry_open(dir, &r));
    if (!r) return;
    kiln_model_entry *l;
    size_t n;
    CHECK_OK(kiln_registry_list(r, &l, &n));
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].name, "stories260K")) continue;
        seen = true;
        CHECK(!strcmp(l[i].format, "llama2c"));
        CHECK(ends_with(l[i].path, "/stories260K/stories260K.bin"));
        CHECK(ends_with(l[i].tokenizer_path, "/stories260K/tok512.bin"));
        CHECK(l[i].bytes == 1056540);
    }
    CHECK_MSG(seen, "stories260K not listed in %s", dir);
    kiln_model_entries_free(l, n);
    kiln_model_entry e;
    CHECK_OK(kiln_registry_resolve(r, "stories260K", &e));
    CHECK(e.path && e.path[0] == '/' && ends_with(e.path, "/stories260K/stories260K.bin"));
    CHECK(e.tokenizer_path && ends_with(e.tokenizer_path, "/stories260K/tok512.bin"));
    kiln_model_entry_clear(&e);
    CHECK(kiln_registry_resolve(r, "stories260K/tok512.bin", &e) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_registry_resolve(r, "../models", &e) == KILN_ERR_INVALID_ARG);
    kiln_registry_free(r);
}

int main(void) {
    build_fixture();
    kiln_registry *r = NULL;
    CHECK_OK(kiln_registry_open(g_models, &r));
    if (r) {
        test_list(r);
        test_resolve(r);
        test_traversal(r);
        test_aliases(r);
        kiln_registry_free(r);
    }
    test_open();
    test_shared();
    remove_fixture();
    TEST_MAIN_END();
}
