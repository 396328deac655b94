/*
 * registry.c — model names -> files inside one models directory (see registry.h).
 *
 * Security rests on two checks, done in this order for every lookup:
 *  1. the name is a plain name (name_check): no separator, no dot-prefix, valid UTF-8,
 *     no control characters — before any path is built from it;
 *  2. every path the registry hands out or reads (the model entry, and each file it
 *     looks at inside a model folder) is realpath'd and must lie strictly inside
 *     realpath(DIR) (leads_inside). A symlink leading out is refused before the
 *     file it points to is opened.
 * Files are opened with O_NONBLOCK and checked to be regular files, so a FIFO or a
 * device node in the directory cannot hang or surprise a scan.
 */
#include "engine/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/status.h"
#include "formats/llama2c.h"

typedef struct {
    char *name, *target;
} alias;

struct kiln_registry {
    char *dir;       /* as given, for messages */
    char *root;      /* realpath(dir) */
    size_t root_len;
    alias *aliases;
    size_t n_aliases, cap_aliases;
};

/* A llama2.c tokenizer bigger than this is not probed (a 128K-token vocabulary is ~2 MB). */
#define TOKENIZER_MAX_BYTES ((size_t)64 << 20)
#define TOKENIZER_MAX_TOKEN_LEN 65536

/* ---- names ------------------------------------------------------------------------- */

/* Writes name into buf for a message: printable ASCII as is, anything else as \xNN
 * (so a hostile name cannot forge log lines), cut after 64 source bytes. */
static const char *quote(const char *name, char *buf, size_t n) {
    size_t o = 0, i = 0;
    for (; name[i] && i < 64 && o + 5 < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else {
            snprintf(buf + o, n - o, "\\x%02x", c);
            o += 4;
        }
    }
    if (name[i] && o + 4 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

/* Length of the UTF-8 sequence at s (n bytes left) and its code point, or 0 if it is
 * not a valid, shortest-form, non-surrogate sequence. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* Why name is not a plain name, or NULL if it is one. */
static const char *name_problem(const char *name) {
    if (!name[0]) return "it is empty";
    size_t n = strnlen(name, KILN_MODEL_NAME_MAX + 1);
    if (n > KILN_MODEL_NAME_MAX) return "it is longer than 255 bytes";
    if (!strcmp(name, ".") || !strcmp(name, "..")) return "it names a folder, not a model";
    const unsigned char *s = (const unsigned char *)name;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_next(s + i, n - i, &cp);
        if (!k) return "it is not valid UTF-8";
        if (cp == '/' || cp == '\\') return "it contains a path separator";
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return "it contains a control character";
        i += k;
    }
    if (name[0] == '.') return "it starts with '.'"; /* hidden entries are never models */
    return NULL;
}

kiln_status kiln_model_name_check(const char *name) {
    if (!name) return kiln_fail(KILN_ERR_INVALID_ARG, "no model name given");
    const char *why = name_problem(name);
    if (!why) return KILN_OK;
    char q[300];
    return kiln_fail(KILN_ERR_INVALID_ARG,
                     "model names are plain names inside the models directory: '%s' is refused (%s)",
                     quote(name, q, sizeof q), why);
}

/* ---- paths ------------------------------------------------------------------------- */

static char *join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b), n;
    char *p = NULL;
    if (kiln_add_ok(na, nb, &n) && kiln_add_ok(n, 2, &n) && (p = malloc(n))) {
        memcpy(p, a, na);
        p[na] = '/';
        memcpy(p + na + 1, b, nb + 1);
    }
    return p;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n > k && !strcmp(s + n - k, suf);
}

typedef enum { LOC_MISSING, LOC_OUTSIDE, LOC_INSIDE } location;

/* realpath(path) into *real (malloc'd) when it lies strictly inside the root. */
static location locate(const kiln_registry *r, const char *path, char **real) {
    *real = realpath(path, NULL);
    if (!*real) return LOC_MISSING; /* absent, dangling link, loop, unreadable: nothing to use */
    const char *p = *real;
    bool inside = r->root_len == 1 ? p[0] == '/' && p[1] != 0 /* root is "/" */
                                   : !strncmp(p, r->root, r->root_len) && p[r->root_len] == '/' &&
                                         p[r->root_len + 1] != 0;
    if (inside) return LOC_INSIDE;
    free(*real);
    *real = NULL;
    return LOC_OUTSIDE;
}

/* Opens a regular file for reading without blocking on FIFOs; -1 if it is none. */
static int open_regular(const char *path, int64_t *size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return -1;
    }
    if (size) *size = (int64_t)sb.st_size;
    return fd;
}

/* Reads up to n bytes from the start of the regular file path; -1 if it is none. */
static ssize_t read_head(const char *path, void *buf, size_t n, int64_t *size) {
    int fd = open_regular(path, size);
    if (fd < 0) return -1;
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    return (ssize_t)got;
}

/* ---- file kinds -------------------------------------------------------------------- */

static bool is_gguf(const char *path, int64_t *size) {
    uint8_t h[8];
    if (read_head(path, h, sizeof h, size) != (ssize_t)sizeof h || memcmp(h, "GGUF", 4)) return false;
    uint32_t version = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
    return version == 2 || version == 3;
}

/* A llama2.c checkpoint: the header is probed, then the reader checks the file is as
 * long as the header says (it maps the file and reads only the header). */
static bool is_checkpoint(const char *path, int64_t *size, int32_t *vocab) {
    uint8_t h[256];
    ssize_t n = read_head(path, h, sizeof h, size);
    if (n < 0 || !kiln_llama2c_sniff(h, (size_t)n)) return false;
    kiln_llama2c *m = NULL;
    if (kiln_llama2c_open(path, &m) != KILN_OK) return false;
    if (vocab) *vocab = kiln_llama2c_config_get(m)->vocab_size;
    kiln_llama2c_close(m);
    return true;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Number of tokens of a llama2.c tokenizer (int32 max_token_length, then records of
 * float score, int32 len, len bytes, up to the end of the file exactly), or -1. */
static int64_t tokenizer_tokens(const char *path) {
    int64_t size;
    int fd = open_regular(path, &size);
    if (fd < 0) return -1;
    int64_t count = -1;
    uint8_t *d = NULL;
    if (size >= 4 + 3 * 8 && (uint64_t)size <= TOKENIZER_MAX_BYTES && (d = malloc((size_t)size))) {
        size_t got = 0, n = (size_t)size;
        while (got < n) {
            ssize_t k = pread(fd, d + got, n - got, (off_t)got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            got += (size_t)k;
        }
        int32_t max_len = (int32_t)rd32(d);
        if (got == n && max_len > 0 && max_len <= TOKENIZER_MAX_TOKEN_LEN) {
            size_t p = 4;
            int64_t c = 0;
            while (n - p >= 8) {
                int32_t len = (int32_t)rd32(d + p + 4);
                if (len < 0 || len > max_len || (size_t)len > n - p - 8) break;
                p += 8 + (size_t)len;
                c++;
            }
            if (p == n && c >= 3) count = c;
        }
    }
    free(d);
    close(fd);
    return count;
}

/* ---- classification ---------------------------------------------------------------- */

/* What a name led to. */
typedef struct {
    const char *format;
    char *path, *tokenizer;
    int64_t bytes;
} found;

static void found_clear(found *f) {
    free(f->path);
    free(f->tokenizer);
    memset(f, 0, sizeof *f);
}

/* A candidate that is no model: KILN_ERR_NOT_FOUND, with the reason in why unless an
 * earlier candidate gave one (other statuses are final and set the message). */
static kiln_status not_model(char *why, size_t n, const char *fmt, const char *arg) {
    if (!why[0]) snprintf(why, n, fmt, arg);
    return KILN_ERR_NOT_FOUND;
}

static kiln_status outside(const kiln_registry *r, const char *name, const char *file) {
    char q[300], qf[300];
    if (file)
        return kiln_fail(KILN_ERR_INVALID_ARG,
                         "model '%s': its file '%s' leads outside the models directory %s: refused",
                         quote(name, q, sizeof q), quote(file, qf, sizeof qf), r->dir);
    return kiln_fail(KILN_ERR_INVALID_ARG, "model '%s' leads outside the models directory %s: refused",
                     quote(name, q, sizeof q), r->dir);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void free_strs(char **s, size_t n) {
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* The visible entries of folder path, sorted (*names malloc'd). KILN_ERR_IO if it
 * cannot be read, KILN_ERR_NOMEM. */
static kiln_status read_folder(const char *path, char ***names, size_t *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d) return KILN_ERR_IO;
    size_t cap = 0;
    kiln_status st = KILN_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = kiln_malloc_array(cap, sizeof *p);
            if (!p) {
                st = KILN_ERR_NOMEM;
                break;
            }
            if (*n) memcpy(p, *names, *n * sizeof *p);
            free(*names);
            *names = p;
        }
        if (!((*names)[*n] = kiln_strdup(e->d_name))) {
            st = KILN_ERR_NOMEM;
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (st) {
        free_strs(*names, *n);
        *names = NULL;
        *n = 0;
        return st;
    }
    if (*n) qsort(*names, *n, sizeof **names, cmp_str);
    return KILN_OK;
}

/* Which files of a model folder the registry reads. */
static bool relevant(const char *f) {
    return !strcmp(f, "config.json") || has_suffix(f, ".safetensors") || has_suffix(f, ".safetensors.index.json") ||
           has_suffix(f, ".gguf") || has_suffix(f, ".bin");
}

/* A diffusers folder (model_index.json, read by kiln_sd_load): every entry of its
 * parts' folders is realpath'd, so a link leading out of the models directory is
 * refused before anything is opened; the weights counted are the safetensors files of
 * the parts (an fp16 variant only where the plain file is missing, as the loader picks). */
static kiln_status classify_diffusers(const kiln_registry *r, const char *name, const char *dir, found *out) {
    static const char *const parts[] = {"text_encoder", "unet", "vae", "tokenizer", "scheduler"};
    int64_t bytes = 0;
    kiln_status st = KILN_OK;
    for (size_t k = 0; k < sizeof parts / sizeof parts[0] && !st; k++) {
        char *sub = join(dir, parts[k]), *real = NULL;
        if (!sub) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        location loc = locate(r, sub, &real);
        free(sub);
        if (loc == LOC_OUTSIDE) return outside(r, name, parts[k]);
        if (loc == LOC_MISSING) continue;
        char **files;
        size_t n;
        kiln_status rs = read_folder(real, &files, &n);
        if (rs == KILN_ERR_NOMEM) st = kiln_fail(rs, "out of memory");
        for (size_t i = 0; !rs && i < n && !st; i++) {
            char *p = join(real, files[i]), *freal = NULL;
            if (!p) {
                st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
                break;
            }
            loc = locate(r, p, &freal);
            free(p);
            if (loc == LOC_OUTSIDE) {
                char what[600];
                snprintf(what, sizeof what, "%s/%s", parts[k], files[i]);
                st = outside(r, name, what);
            } else if (loc == LOC_INSIDE && has_suffix(files[i], ".safetensors")) {
                bool skip = false;
                if (has_suffix(files[i], ".fp16.safetensors")) { /* its plain twin wins */
                    char plain[600];
                    snprintf(plain, sizeof plain, "%.*s.safetensors",
                             (int)(strlen(files[i]) - strlen(".fp16.safetensors")), files[i]);
                    for (size_t q = 0; q < n && !skip; q++) skip = !strcmp(files[q], plain);
                }
                struct stat sb;
                if (!skip && stat(freal, &sb) == 0 && S_ISREG(sb.st_mode)) bytes += (int64_t)sb.st_size;
            }
            free(freal);
        }
        if (!rs) free_strs(files, n);
        free(real);
    }
    if (st) return st;
    out->format = "diffusers";
    out->bytes = bytes;
    if (!(out->path = kiln_strdup(dir))) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    return KILN_OK;
}

/* A model folder (realpath dir) listed as name. */
static kiln_status classify_folder(const kiln_registry *r, const char *name, const char *dir, found *out,
                                   char *why, size_t why_n) {
    {
        char *idx = join(dir, "model_index.json"), *real = NULL;
        if (!idx) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        location loc = locate(r, idx, &real);
        free(idx);
        struct stat sb;
        const bool present = loc == LOC_INSIDE && stat(real, &sb) == 0 && S_ISREG(sb.st_mode);
        free(real);
        if (loc == LOC_OUTSIDE) return outside(r, name, "model_index.json");
        if (present) return classify_diffusers(r, name, dir, out);
    }
    char **files;
    size_t n;
    kiln_status st = read_folder(dir, &files, &n);
    if (st == KILN_ERR_NOMEM) return kiln_fail(st, "out of memory");
    if (st) return not_model(why, why_n, "folder '%s' cannot be read", name);
    /* Every file the registry may read is realpath'd first; real[i] NULL = not used. */
    char **real = kiln_calloc_array(n ? n : 1, sizeof *real);
    if (!real) {
        free_strs(files, n);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    st = KILN_OK;
    for (size_t i = 0; i < n && !st; i++) {
        if (!relevant(files[i])) continue;
        char *p = join(dir, files[i]);
        if (!p) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        location loc = locate(r, p, &real[i]);
        free(p);
        if (loc == LOC_OUTSIDE) st = outside(r, name, files[i]);
    }
    int64_t bytes = 0, size;
    bool config = false, index = false;
    size_t n_st = 0, n_gguf = 0, n_ckpt = 0, gguf = 0, ckpt = 0;
    int32_t vocab = 0;
    for (size_t i = 0; i < n && !st; i++) {
        if (!real[i]) continue;
        const char *f = files[i];
        if (!strcmp(f, "config.json")) {
            struct stat sb;
            config = stat(real[i], &sb) == 0 && S_ISREG(sb.st_mode);
        } else if (has_suffix(f, ".safetensors.index.json")) {
            index = true;
        } else if (has_suffix(f, ".safetensors")) {
            struct stat sb;
            if (stat(real[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
                n_st++;
                bytes += (int64_t)sb.st_size;
            }
        } else if (has_suffix(f, ".gguf")) {
            if (is_gguf(real[i], &size)) n_gguf++, gguf = i;
        } else if (has_suffix(f, ".bin")) {
            int32_t v;
            if (is_checkpoint(real[i], &size, &v)) n_ckpt++, ckpt = i, vocab = v;
        }
    }
    if (!st) {
        if (config && (n_st || index)) {
            out->format = "safetensors";
            out->bytes = bytes;
            if (!(out->path = kiln_strdup(dir))) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        } else if (n_gguf > 1) {
            st = not_model(why, why_n, "folder '%s' holds several GGUF files", name);
        } else if (n_gguf == 1) {
            out->format = "gguf";
            is_gguf(real[gguf], &out->bytes);
            if (!(out->path = kiln_strdup(real[gguf]))) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        } else if (n_ckpt > 1) {
            st = not_model(why, why_n, "folder '%s' holds several llama2.c checkpoints", name);
        } else if (n_ckpt == 1) {
            out->format = "llama2c";
            is_checkpoint(real[ckpt], &out->bytes, NULL);
            /* Its tokenizer: tokenizer.bin, else one whose size matches the vocabulary,
             * else the first llama2.c tokenizer of the folder. */
            size_t tok = n, first = n;
            for (size_t i = 0; i < n; i++) {
                if (!real[i] || i == ckpt || !has_suffix(files[i], ".bin")) continue;
                int64_t t = tokenizer_tokens(real[i]);
                if (t < 0) continue;
                if (first == n) first = i;
                if (!strcmp(files[i], "tokenizer.bin")) {
                    tok = i;
                    break;
                }
                if (t == vocab && tok == n) tok = i;
            }
            if (tok == n) tok = first;
            if (!(out->path = kiln_strdup(real[ckpt])) || (tok < n && !(out->tokenizer = kiln_strdup(real[tok]))))
                st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        } else {
            st = not_model(why, why_n, "folder '%s' holds no model files", name);
        }
    }
    for (size_t i = 0; i < n; i++) free(real[i]);
    free(real);
    free_strs(files, n);
    if (st) found_clear(out);
    return st;
}

/* A model file (entry: its name in the directory; real: realpath'd). */
static kiln_status classify_file(const kiln_registry *r, const char *entry, const char *real, found *out,
                                 char *why, size_t why_n) {
    if (has_suffix(entry, ".gguf")) {
        if (!is_gguf(real, &out->bytes)) return not_model(why, why_n, "'%s' is not a GGUF file", entry);
        out->format = "gguf";
    } else if (has_suffix(entry, ".bin")) {
        if (!is_checkpoint(real, &out->bytes, NULL))
            return not_model(why, why_n, "'%s' is not a llama2.c checkpoint", entry);
        out->format = "llama2c";
        char *tp = join(r->root, "tokenizer.bin"), *treal = NULL;
        if (!tp) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        if (locate(r, tp, &treal) == LOC_INSIDE && tokenizer_tokens(treal) >= 0) {
            out->tokenizer = treal;
            treal = NULL;
        }
        free(treal);
        free(tp);
    } else if (has_suffix(entry, ".safetensors")) { /* a Stable Diffusion single-file checkpoint */
        struct stat sb;
        if (!kiln_sd_supports(real) || stat(real, &sb) != 0)
            return not_model(why, why_n, "'%s' is not a Stable Diffusion checkpoint", entry);
        out->format = "sd-single";
        out->bytes = (int64_t)sb.st_size;
    } else {
        return not_model(why, why_n, "'%s' is neither a .gguf, a .bin nor a .safetensors file", entry);
    }
    if (!(out->path = kiln_strdup(real))) {
        found_clear(out);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    return KILN_OK;
}

/* The name a directory entry is listed under: a file NAME.gguf / NAME.bin /
 * NAME.safetensors as NAME, unless DIR/NAME exists itself (then it keeps its full
 * name). malloc'd. */
static char *listed_name(const kiln_registry *r, const char *entry, bool is_file) {
    const char *suf = !is_file                               ? NULL
                      : has_suffix(entry, ".gguf")           ? ".gguf"
                      : has_suffix(entry, ".bin")            ? ".bin"
                      : has_suffix(entry, ".safetensors")    ? ".safetensors"
                                                             : NULL;
    if (!suf) return kiln_strdup(entry);
    char *base = kiln_strndup(entry, strlen(entry) - strlen(suf));
    if (!base) return NULL;
    char *p = join(r->root, base);
    struct stat sb;
    bool taken = !p || lstat(p, &sb) == 0;
    free(p);
    if (taken) {
        free(base);
        return kiln_strdup(entry);
    }
    return base;
}

/* Looks name (already checked) up in the directory: DIR/name, then (files only)
 * DIR/name.gguf, DIR/name.bin and DIR/name.safetensors. On success fills *out and
 * *listed. */
static kiln_status resolve_in_dir(const kiln_registry *r, const char *name, found *out, char **listed) {
    char why[400] = "";
    char *cand[4] = {kiln_strdup(name), NULL, NULL, NULL};
    size_t n_cand = 1;
    if (!has_suffix(name, ".gguf") && !has_suffix(name, ".bin") && !has_suffix(name, ".safetensors")) {
        static const char *const sufs[] = {".gguf", ".bin", ".safetensors"};
        const size_t len = strlen(name);
        for (int k = 0; k < 3; k++)
            if ((cand[1 + k] = malloc(len + strlen(sufs[k]) + 1))) {
                memcpy(cand[1 + k], name, len);
                memcpy(cand[1 + k] + len, sufs[k], strlen(sufs[k]) + 1);
            }
        n_cand = 4;
    }
    kiln_status st = KILN_ERR_NOT_FOUND;
    for (size_t i = 0; i < n_cand && st == KILN_ERR_NOT_FOUND; i++) {
        if (!cand[i]) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        char *p = join(r->root, cand[i]), *real = NULL;
        if (!p) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        struct stat sb;
        location loc = lstat(p, &sb) == 0 ? locate(r, p, &real) : LOC_MISSING;
        free(p);
        if (loc == LOC_OUTSIDE) {
            st = outside(r, cand[i], NULL);
            break;
        }
        if (loc == LOC_MISSING || stat(real, &sb) != 0) {
            free(real);
            continue;
        }
        if (S_ISDIR(sb.st_mode) && i == 0)
            st = classify_folder(r, cand[i], real, out, why, sizeof why);
        else if (S_ISREG(sb.st_mode))
            st = classify_file(r, cand[i], real, out, why, sizeof why);
        if (st == KILN_OK && !(*listed = listed_name(r, cand[i], S_ISREG(sb.st_mode)))) {
            found_clear(out);
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
        }
        free(real);
    }
    for (size_t i = 0; i < 4; i++) free(cand[i]);
    if (st == KILN_ERR_NOT_FOUND) {
        char q[300];
        if (why[0])
            kiln_fail(st, "no model named '%s' in %s (%s)", quote(name, q, sizeof q), r->dir, why);
        else
            kiln_fail(st, "no model named '%s' in %s", quote(name, q, sizeof q), r->dir);
    }
    return st;
}

/* ---- public API ---------------------------------------------------------------------- */

kiln_status kiln_registry_open(const char *models_dir, kiln_registry **out) {
    if (!out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_registry_open: NULL argument");
    *out = NULL;
    if (!models_dir || !models_dir[0]) return kiln_fail(KILN_ERR_INVALID_ARG, "no models directory given");
    char *root = realpath(models_dir, NULL);
    if (!root) return kiln_fail(KILN_ERR_NOT_FOUND, "models directory %s: %s", models_dir, strerror(errno));
    struct stat sb;
    if (stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        free(root);
        return kiln_fail(KILN_ERR_INVALID_ARG, "models directory %s is not a folder", models_dir);
    }
    kiln_registry *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = kiln_strdup(models_dir))) {
        free(r);
        free(root);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    r->root = root;
    r->root_len = strlen(root);
    *out = r;
    return KILN_OK;
}

void kiln_registry_free(kiln_registry *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_aliases; i++) {
        free(r->aliases[i].name);
        free(r->aliases[i].target);
    }
    free(r->aliases);
    free(r->dir);
    free(r->root);
    free(r);
}

static const alias *find_alias(const kiln_registry *r, const char *name) {
    for (size_t i = 0; i < r->n_aliases; i++)
        if (!strcmp(r->aliases[i].name, name)) return &r->aliases[i];
    return NULL;
}

kiln_status kiln_registry_add_alias(kiln_registry *r, const char *alias_name, const char *target) {
    if (!r || !alias_name || !target) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_registry_add_alias: NULL argument");
    kiln_status st;
    if ((st = kiln_model_name_check(alias_name))) return kiln_fail_prefix(st, "alias");
    if ((st = kiln_model_name_check(target))) return kiln_fail_prefix(st, "alias target");
    char q[300];
    if (find_alias(r, alias_name))
        return kiln_fail(KILN_ERR_INVALID_ARG, "alias '%s' is given twice", quote(alias_name, q, sizeof q));
    found f = {0};
    char *listed = NULL;
    if (resolve_in_dir(r, alias_name, &f, &listed) == KILN_OK) {
        found_clear(&f);
        free(listed);
        return kiln_fail(KILN_ERR_INVALID_ARG, "alias '%s' is already the name of a model in %s",
                         quote(alias_name, q, sizeof q), r->dir);
    }
    if ((st = resolve_in_dir(r, target, &f, &listed))) return kiln_fail_prefix(st, "alias '%s'", quote(alias_name, q, sizeof q));
    found_clear(&f);
    if (r->n_aliases == r->cap_aliases) {
        size_t cap = r->cap_aliases ? 2 * r->cap_aliases : 8;
        alias *a = kiln_malloc_array(cap, sizeof *a);
        if (!a) {
            free(listed);
            return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        }
        if (r->n_aliases) memcpy(a, r->aliases, r->n_aliases * sizeof *a);
        free(r->aliases);
        r->aliases = a;
        r->cap_aliases = cap;
    }
    /* The alias stands for the listed name ("x.gguf" given, "x" kept). */
    alias a = {kiln_strdup(alias_name), listed};
    if (!a.name) {
        free(listed);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    r->aliases[r->n_aliases++] = a;
    return KILN_OK;
}

/* Moves f into e under name (copied) and alias_of (copied, may be NULL). */
static kiln_status fill_entry(kiln_model_entry *e, found *f, const char *name, const char *alias_of) {
    memset(e, 0, sizeof *e);
    e->name = kiln_strdup(name);
    e->alias_of = alias_of ? kiln_strdup(alias_of) : NULL;
    if (!e->name || (alias_of && !e->alias_of)) {
        kiln_model_entry_clear(e);
        found_clear(f);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    e->path = f->path;
    e->tokenizer_path = f->tokenizer;
    e->format = f->format;
    e->bytes = f->bytes;
    memset(f, 0, sizeof *f);
    return KILN_OK;
}

kiln_status kiln_registry_resolve(kiln_registry *r, const char *name, kiln_model_entry *out) {
    if (!out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_registry_resolve: NULL argument");
    memset(out, 0, sizeof *out);
    if (!r) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_registry_resolve: NULL argument");
    kiln_status st = kiln_model_name_check(name);
    if (st) return st;
    const alias *a = find_alias(r, name);
    found f = {0};
    char *listed = NULL;
    if ((st = resolve_in_dir(r, a ? a->target : name, &f, &listed))) {
        char q[300];
        return a ? kiln_fail_prefix(st, "alias '%s'", quote(name, q, sizeof q)) : st;
    }
    st = fill_entry(out, &f, a ? name : listed, a ? a->target : NULL);
    free(listed);
    return st;
}

void kiln_model_entry_clear(kiln_model_entry *e) {
    if (!e) return;
    free(e->name);
    free(e->alias_of);
    free(e->path);
    free(e->tokenizer_path);
    memset(e, 0, sizeof *e);
}

void kiln_model_entries_free(kiln_model_entry *e, size_t n) {
    if (!e) return;
    for (size_t i = 0; i < n; i++) kiln_model_entry_clear(&e[i]);
    free(e);
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const kiln_model_entry *)a)->name, ((const kiln_model_entry *)b)->name);
}

kiln_status kiln_registry_list(kiln_registry *r, kiln_model_entry **entries, size_t *n) {
    if (!r || !entries || !n) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_registry_list: NULL argument");
    *entries = NULL;
    *n = 0;
    char **files;
    size_t n_files;
    kiln_status st = read_folder(r->root, &files, &n_files);
    if (st == KILN_ERR_IO) return kiln_fail(st, "models directory %s cannot be read: %s", r->dir, strerror(errno));
    if (st) return kiln_fail(st, "out of memory");

    size_t cap = n_files + r->n_aliases;
    kiln_model_entry *list = kiln_calloc_array(cap ? cap : 1, sizeof *list);
    if (!list) {
        free_strs(files, n_files);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    size_t count = 0;
    /* Each entry is resolved under its listed name, exactly as a client would; names
     * that do not resolve (no model, outside, shadowed by an alias) are left out. */
    for (size_t i = 0; i < n_files && !st; i++) {
        if (name_problem(files[i])) continue;
        char *p = join(r->root, files[i]);
        struct stat sb;
        bool is_file = p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
        free(p);
        char *want = listed_name(r, files[i], is_file), *listed = NULL;
        if (!want) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        found f = {0};
        bool dup = find_alias(r, want) != NULL;
        for (size_t k = 0; k < count && !dup; k++) dup = !strcmp(list[k].name, want);
        kiln_status s = dup ? KILN_ERR_NOT_FOUND : resolve_in_dir(r, want, &f, &listed);
        if (s == KILN_OK) {
            /* listed == want unless another entry took precedence; keep one copy */
            bool again = false;
            for (size_t k = 0; k < count && !again; k++) again = !strcmp(list[k].name, listed);
            if (again)
                found_clear(&f);
            else
                s = fill_entry(&list[count++], &f, listed, NULL);
            if (s) count--, st = s;
        } else if (s == KILN_ERR_NOMEM) {
            st = s;
        }
        free(listed);
        free(want);
    }
    for (size_t i = 0; i < r->n_aliases && !st; i++) {
        found f = {0};
        char *listed = NULL;
        kiln_status s = resolve_in_dir(r, r->aliases[i].target, &f, &listed);
        free(listed);
        if (s == KILN_OK) {
            s = fill_entry(&list[count++], &f, r->aliases[i].name, r->aliases[i].target);
            if (s) count--, st = s;
        } else if (s == KILN_ERR_NOMEM) {
            st = s;
        }
    }
    free_strs(files, n_files);
    if (st) {
        kiln_model_entries_free(list, count);
        return st;
    }
    kiln_clear_error(); /* the scan's per-entry failures are not the caller's */
    if (count) qsort(list, count, sizeof *list, cmp_entry);
    if (!count) {
        free(list);
        list = NULL;
    }
    *entries = list;
    *n = count;
    return KILN_OK;
}
