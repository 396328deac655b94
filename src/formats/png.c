/*
 * png.c — PNG encoding and decoding on libpng (see png.h for what is written and what
 * is accepted).
 *
 * libpng reports errors by longjmp from inside its calls. Each use of it is split so
 * that the function calling setjmp (encode_run, decode_run) touches nothing but the
 * context struct it is given a pointer to: everything that changes while libpng runs
 * lives in that struct, which belongs to the caller's frame, so nothing the error path
 * reads is a local variable modified after setjmp (whose value C leaves indeterminate
 * after the longjmp) and nothing needs volatile. The caller then frees whatever the
 * context holds, success or not. libpng's messages go to the context (error and first
 * warning), never to stderr, and end up in the kiln error message.
 */
#include "formats/png.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/mapfile.h"
#include "base/status.h"

/* ---- libpng callbacks shared by reading and writing ---------------------------- */

typedef struct {
    char msg[512];    /* libpng's error message */
    char warn[256];   /* its first warning, if any */
    kiln_status st;   /* KILN_OK, or the status a callback met (NOMEM, IO) */
    bool oom;         /* an allocation for libpng failed */
} png_errs;

static void on_error(png_structp png, png_const_charp msg) {
    png_errs *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    png_errs *e = png_get_error_ptr(png);
    if (!e->warn[0]) snprintf(e->warn, sizeof e->warn, "%s", msg ? msg : "warning");
}

static png_voidp on_malloc(png_structp png, png_alloc_size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) ((png_errs *)png_get_mem_ptr(png))->oom = true;
    return p;
}

static void on_free(png_structp png, png_voidp p) { free(p); }

/* The status of a failed libpng run: what a callback recorded, NOMEM if an allocation
 * failed, else dflt. */
static kiln_status errs_status(const png_errs *e, kiln_status dflt) {
    if (e->st) return e->st;
    if (e->oom) return KILN_ERR_NOMEM;
    return dflt;
}

/* ---- UTF-8 and Latin-1 ---------------------------------------------------------- */

/* Decodes one UTF-8 sequence at s[0..n) (shortest form, no surrogates, <= U+10FFFF);
 * returns its length (0 if invalid) and the code point in *cp. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) len = 2, v = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, v = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* Checks s is UTF-8 and says whether every code point fits Latin-1. */
static bool utf8_check(const char *s, size_t n, bool *latin1) {
    *latin1 = true;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (!k) return false;
        if (cp > 0xff) *latin1 = false;
        i += k;
    }
    return true;
}

/* UTF-8 (known valid, all code points <= U+00FF) to a malloc'd Latin-1 string. */
static char *utf8_to_latin1(const char *s, size_t n) {
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        i += utf8_next((const unsigned char *)s + i, n - i, &cp);
        out[j++] = (char)cp;
    }
    out[j] = 0;
    return out;
}

/* Latin-1 to a malloc'd UTF-8 string. */
static char *latin1_to_utf8(const char *s) {
    size_t n = strlen(s), m;
    if (!kiln_mul_ok(n, 2, &m) || !kiln_add_ok(m, 1, &m)) return NULL;
    char *out = malloc(m);
    if (!out) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            out[j++] = (char)c;
        } else {
            out[j++] = (char)(0xc0 | (c >> 6));
            out[j++] = (char)(0x80 | (c & 0x3f));
        }
    }
    out[j] = 0;
    return out;
}

/* A PNG keyword (PNG spec 11.3.4.2): 1..79 Latin-1 characters from 32..126 and
 * 161..255, no leading, trailing or consecutive spaces. */
static bool keyword_ok(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!((c >= 32 && c <= 126) || c >= 161)) return false;
        if (c == ' ' && k[i + 1] == ' ') return false;
    }
    return true;
}

/* ---- encoding ------------------------------------------------------------------- */

typedef struct {
    png_errs err;
    png_structp png;
    png_infop info;
    png_text *chunks; /* n_chunks entries, strings in owned */
    int n_chunks;
    char **owned;     /* 2 * n_texts strings (Latin-1 keys, Latin-1 values or NULL) */
    int n_owned;
    const uint8_t *rgb;
    int w, h, channels;
    kiln_buf out;
} enc_ctx;

static void write_cb(png_structp png, png_bytep data, size_t n) {
    enc_ctx *c = png_get_io_ptr(png);
    if (kiln_buf_append(&c->out, data, n)) {
        c->err.st = KILN_ERR_NOMEM;
        png_error(png, "out of memory");
    }
}

static void flush_cb(png_structp png) { (void)png; }

/* The libpng part of encoding; see the top of the file for why it only uses *c. */
static bool encode_run(enc_ctx *c) {
    if (setjmp(png_jmpbuf(c->png))) return false;
    png_set_write_fn(c->png, c, write_cb, flush_cb);
    png_set_IHDR(c->png, c->info, (png_uint_32)c->w, (png_uint_32)c->h, 8,
                 c->channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (c->n_chunks) png_set_text(c->png, c->info, c->chunks, c->n_chunks);
    png_write_info(c->png, c->info);
    size_t stride = (size_t)c->w * (size_t)c->channels;
    for (int y = 0; y < c->h; y++) png_write_row(c->png, c->rgb + (size_t)y * stride);
    png_write_end(c->png, NULL);
    return true;
}

/* Fills c->chunks from the caller's texts: Latin-1 copies for tEXt, the UTF-8 value
 * itself for iTXt. */
static kiln_status prepare_texts(enc_ctx *c, const kiln_png_text *texts, int n) {
    if (n == 0) return KILN_OK;
    c->chunks = kiln_calloc_array((size_t)n, sizeof *c->chunks);
    c->owned = kiln_calloc_array((size_t)n * 2, sizeof *c->owned);
    if (!c->chunks || !c->owned) return kiln_fail(KILN_ERR_NOMEM, "PNG: out of memory");
    for (int i = 0; i < n; i++) {
        const char *key = texts[i].key, *val = texts[i].value;
        if (!key || !val) return kiln_fail(KILN_ERR_INVALID_ARG, "PNG text %d: NULL key or value", i);
        size_t kn = strlen(key), vn = strlen(val);
        bool key_latin1, val_latin1;
        if (!utf8_check(key, kn, &key_latin1) || !key_latin1)
            return kiln_fail(KILN_ERR_INVALID_ARG,
                             "PNG text key \"%.80s\": not UTF-8 text within Latin-1", key);
        char *k = utf8_to_latin1(key, kn);
        if (!k) return kiln_fail(KILN_ERR_NOMEM, "PNG: out of memory");
        c->owned[c->n_owned++] = k;
        if (!keyword_ok(k))
            return kiln_fail(KILN_ERR_INVALID_ARG,
                             "PNG text key \"%.80s\": a key is 1..79 printable characters "
                             "without leading, trailing or double spaces", key);
        if (vn > KILN_PNG_MAX_TEXT)
            return kiln_fail(KILN_ERR_INVALID_ARG, "PNG text \"%s\": value of %zu bytes (at most %u)",
                             key, vn, (unsigned)KILN_PNG_MAX_TEXT);
        if (!utf8_check(val, vn, &val_latin1))
            return kiln_fail(KILN_ERR_INVALID_ARG, "PNG text \"%s\": value is not valid UTF-8", key);
        png_text *t = &c->chunks[c->n_chunks++];
        t->key = k;
        if (val_latin1) {
            char *v = utf8_to_latin1(val, vn);
            if (!v) return kiln_fail(KILN_ERR_NOMEM, "PNG: out of memory");
            c->owned[c->n_owned++] = v;
            t->compression = PNG_TEXT_COMPRESSION_NONE;
            t->text = v;
            t->text_length = strlen(v);
        } else {
            /* libpng only reads it; png_text has no const members */
            t->compression = PNG_ITXT_COMPRESSION_NONE;
            t->text = (char *)val;
            t->itxt_length = vn;
        }
    }
    return KILN_OK;
}

static void enc_free(enc_ctx *c) {
    if (c->png) png_destroy_write_struct(&c->png, c->info ? &c->info : NULL);
    for (int i = 0; i < c->n_owned; i++) free(c->owned[i]);
    free(c->owned);
    free(c->chunks);
    kiln_buf_free(&c->out);
}

kiln_status kiln_png_encode(const uint8_t *rgb, int w, int h, int channels,
                            const kiln_png_text *texts, int n_texts, uint8_t **out,
                            size_t *len) {
    *out = NULL;
    *len = 0;
    if (!rgb || w < 1 || h < 1 || w > KILN_PNG_MAX_SIDE || h > KILN_PNG_MAX_SIDE ||
        (uint64_t)w * (uint64_t)h > KILN_PNG_MAX_PIXELS)
        return kiln_fail(KILN_ERR_INVALID_ARG,
                         "PNG: image %dx%d: sides must be 1..%d and at most %u pixels", w, h,
                         KILN_PNG_MAX_SIDE, (unsigned)KILN_PNG_MAX_PIXELS);
    if (channels != 3 && channels != 4)
        return kiln_fail(KILN_ERR_INVALID_ARG, "PNG: %d channels (3 for RGB or 4 for RGBA)", channels);
    if (n_texts < 0 || (n_texts > 0 && !texts))
        return kiln_fail(KILN_ERR_INVALID_ARG, "PNG: bad text list (%d texts)", n_texts);

    enc_ctx c = {.rgb = rgb, .w = w, .h = h, .channels = channels};
    kiln_status st = prepare_texts(&c, texts, n_texts);
    if (st) {
        enc_free(&c);
        return st;
    }
    c.png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &c.err, on_error, on_warning,
                                      &c.err, on_malloc, on_free);
    if (c.png) c.info = png_create_info_struct(c.png);
    if (!c.png || !c.info) {
        enc_free(&c);
        return kiln_fail(KILN_ERR_NOMEM, "PNG: out of memory");
    }
    if (!encode_run(&c)) {
        st = kiln_fail(errs_status(&c.err, KILN_ERR_INVALID_ARG), "PNG encoding: %s", c.err.msg);
        enc_free(&c);
        return st;
    }
    *out = (uint8_t *)c.out.data;
    *len = c.out.len;
    c.out = (kiln_buf){0};
    enc_free(&c);
    return KILN_OK;
}

/* ---- atomic file write ---------------------------------------------------------- */

static bool write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Makes the rename durable: fsync of the folder holding path. */
static void sync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? kiln_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : kiln_strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

kiln_status kiln_png_write(const char *path, const uint8_t *rgb, int w, int h, int channels,
                           const kiln_png_text *texts, int n_texts) {
    uint8_t *data;
    size_t len;
    kiln_status st = kiln_png_encode(rgb, w, h, channels, texts, n_texts, &data, &len);
    if (st) return kiln_fail_prefix(st, "%s", path);

    /* A name no other writer uses: pid and a per-process counter; O_EXCL makes sure,
     * and the mode 0666 is narrowed by the umask like any new file's. */
    static atomic_uint counter;
    size_t tlen = strlen(path) + 48;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(data);
        return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = -1;
    for (int tries = 0; tries < 100 && fd < 0; tries++) {
        snprintf(tmp, tlen, "%s.%ld.%u.tmp", path, (long)getpid(), atomic_fetch_add(&counter, 1));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        st = kiln_fail(KILN_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        free(data);
        return st;
    }
    bool ok = write_all(fd, data, len) && fsync(fd) == 0;
    int err = ok ? 0 : errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        err = errno;
    }
    if (ok) {
        sync_parent(path);
    } else {
        unlink(tmp);
        st = kiln_fail(KILN_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    free(tmp);
    free(data);
    return st;
}

/* ---- decoding ------------------------------------------------------------------- */

typedef struct {
    png_errs err;
    const char *name;     /* the path, or "PNG data", for messages */
    const uint8_t *data;  /* the whole PNG, read from at pos */
    size_t len, pos;
    int want;             /* 3 or 4 channels */
    bool too_big;         /* refused from the header; message in err.msg */
    png_structp png;
    png_infop info;
    png_bytep *rows;
    kiln_png_image img;
} dec_ctx;

static void read_cb(png_structp png, png_bytep dst, size_t n) {
    dec_ctx *c = png_get_io_ptr(png);
    if (c->len - c->pos < n) png_error(png, "truncated (the data ends inside a chunk)");
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walks the chunk lengths up to IEND before libpng sees them: libpng allocates a
 * chunk's claimed length before reading it, so a lying length would cost up to 2 GiB.
 * After this every chunk lies inside the data. */
static kiln_status check_chunks(const dec_ctx *c) {
    size_t off = 8;
    for (;;) {
        if (c->len - off < 8)
            return kiln_fail(KILN_ERR_FORMAT, "%s: PNG: truncated (ends at byte %zu, before IEND)",
                             c->name, c->len);
        uint32_t n = be32(c->data + off);
        char type[5];
        for (int i = 0; i < 4; i++) {
            uint8_t ch = c->data[off + 4 + i];
            type[i] = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ? (char)ch : '?';
        }
        type[4] = 0;
        if (n > PNG_UINT_31_MAX)
            return kiln_fail(KILN_ERR_FORMAT, "%s: PNG: chunk %s at byte %zu: length %u over 2^31 - 1",
                             c->name, type, off, (unsigned)n);
        if (c->len - off < (size_t)n + 12)
            return kiln_fail(KILN_ERR_FORMAT,
                             "%s: PNG: truncated (chunk %s at byte %zu needs %zu bytes, %zu left)",
                             c->name, type, off, (size_t)n + 12, c->len - off);
        off += 12 + (size_t)n;
        if (memcmp(type, "IEND", 4) == 0) return KILN_OK;
    }
}

/* The libpng part of decoding; see the top of the file for why it only uses *c. */
static bool decode_run(dec_ctx *c) {
    if (setjmp(png_jmpbuf(c->png))) return false;
    png_set_read_fn(c->png, c, read_cb);
    png_set_sig_bytes(c->png, 8);
    /* a CRC error in any chunk is an error, as PIL has it */
    png_set_crc_action(c->png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_set_chunk_malloc_max(c->png, KILN_PNG_MAX_TEXT + 4096);
    /* libpng's own size limit (10^6) off, so that our check below names the limit */
    png_set_user_limits(c->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(c->png, c->info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(c->png, c->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if (w > KILN_PNG_MAX_SIDE || h > KILN_PNG_MAX_SIDE || (uint64_t)w * h > KILN_PNG_MAX_PIXELS) {
        snprintf(c->err.msg, sizeof c->err.msg,
                 "image of %ux%u pixels is too large (at most %d per side and %u pixels)",
                 (unsigned)w, (unsigned)h, KILN_PNG_MAX_SIDE, (unsigned)KILN_PNG_MAX_PIXELS);
        c->too_big = true;
        return false;
    }
    bool trns = png_get_valid(c->png, c->info, PNG_INFO_tRNS) != 0;
    c->img.had_alpha = (color & PNG_COLOR_MASK_ALPHA) || trns;
    if (color == PNG_COLOR_TYPE_PALETTE || depth < 8 || trns) png_set_expand(c->png);
    if (depth == 16) png_set_strip_16(c->png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(c->png);
    if (c->want == 3 && c->img.had_alpha) png_set_strip_alpha(c->png);
    if (c->want == 4 && !c->img.had_alpha) png_set_add_alpha(c->png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);

    size_t stride = (size_t)w * (size_t)c->want;
    if (png_get_rowbytes(c->png, c->info) != stride || png_get_bit_depth(c->png, c->info) != 8)
        png_error(c->png, "unexpected row layout after conversion");
    c->img.pixels = kiln_malloc_array((size_t)h, stride);
    c->rows = kiln_malloc_array((size_t)h, sizeof *c->rows);
    if (!c->img.pixels || !c->rows) {
        c->err.st = KILN_ERR_NOMEM;
        png_error(c->png, "out of memory");
    }
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->img.pixels + (size_t)y * stride;
    png_read_image(c->png, c->rows);
    png_read_end(c->png, c->info);
    c->img.w = (int)w;
    c->img.h = (int)h;
    c->img.channels = c->want;
    return true;
}

/* Copies libpng's texts as UTF-8. iTXt values that are not UTF-8 are skipped, as PIL
 * skips them. */
static kiln_status collect_texts(dec_ctx *c) {
    png_textp t = NULL;
    int n = png_get_text(c->png, c->info, &t, NULL);
    if (n <= 0) return KILN_OK;
    c->img.texts = kiln_calloc_array((size_t)n, sizeof *c->img.texts);
    if (!c->img.texts) return KILN_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        const char *raw = t[i].text ? t[i].text : "";
        bool itxt = t[i].compression == PNG_ITXT_COMPRESSION_NONE ||
                    t[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        bool latin1;
        if (itxt && !utf8_check(raw, strlen(raw), &latin1)) continue;
        char *key = latin1_to_utf8(t[i].key);
        char *val = itxt ? kiln_strdup(raw) : latin1_to_utf8(raw);
        if (!key || !val) {
            free(key);
            free(val);
            return KILN_ERR_NOMEM;
        }
        c->img.texts[c->img.n_texts].key = key;
        c->img.texts[c->img.n_texts].value = val;
        c->img.n_texts++;
    }
    return KILN_OK;
}

static kiln_status decode(dec_ctx *c, kiln_png_image *out) {
    memset(out, 0, sizeof *out);
    if (c->want != 3 && c->want != 4)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: %d channels asked (3 or 4)", c->name, c->want);
    if (c->len < 8 || png_sig_cmp(c->data, 0, 8) != 0)
        return kiln_fail(KILN_ERR_FORMAT, "%s: not a PNG file (no PNG signature)", c->name);
    kiln_status st = check_chunks(c);
    if (st) return st;
    c->pos = 8;

    c->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &c->err, on_error, on_warning,
                                      &c->err, on_malloc, on_free);
    if (c->png) c->info = png_create_info_struct(c->png);
    if (!c->png || !c->info) {
        st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c->name);
    } else if (!decode_run(c)) {
        st = c->too_big ? KILN_ERR_FORMAT : errs_status(&c->err, KILN_ERR_FORMAT);
        if (c->err.warn[0] && strcmp(c->err.warn, c->err.msg) != 0)
            kiln_fail(st, "%s: PNG: %s (libpng warned: %s)", c->name, c->err.msg, c->err.warn);
        else
            kiln_fail(st, "%s: PNG: %s", c->name, c->err.msg);
    } else if (collect_texts(c)) {
        st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c->name);
    }
    if (c->png) png_destroy_read_struct(&c->png, c->info ? &c->info : NULL, NULL);
    free(c->rows);
    if (st) kiln_png_image_free(&c->img);
    *out = c->img;
    return st;
}

kiln_status kiln_png_read(const char *path, int channels, kiln_png_image *out) {
    memset(out, 0, sizeof *out);
    kiln_mapfile mf;
    kiln_status st = kiln_mapfile_open(path, &mf);
    if (st) return st;
    dec_ctx c = {.name = path, .data = mf.data, .len = mf.size, .want = channels};
    st = decode(&c, out);
    kiln_mapfile_close(&mf);
    return st;
}

kiln_status kiln_png_decode(const uint8_t *data, size_t len, int channels, kiln_png_image *out) {
    dec_ctx c = {.name = "PNG data", .data = data, .len = data ? len : 0, .want = channels};
    return decode(&c, out);
}

void kiln_png_image_free(kiln_png_image *img) {
    if (!img) return;
    for (int i = 0; i < img->n_texts; i++) {
        free((char *)img->texts[i].key);
        free((char *)img->texts[i].value);
    }
    free(img->texts);
    free(img->pixels);
    memset(img, 0, sizeof *img);
}
