/*
 * test_png.c — the PNG module and the image conversions of formats/:
 *  - kiln_png_write / kiln_png_read round trips (RGB, RGBA, odd sizes), reading RGBA as
 *    RGB and RGB as RGBA; kiln_png_encode's bytes equal the file's;
 *  - texts: an AUTOMATIC1111 "parameters" string (newlines, long), Latin-1 values
 *    (a tEXt chunk holding Latin-1 bytes) and non-Latin-1 ones (an iTXt chunk laid out
 *    as PIL writes it), read back as UTF-8; bad keys and values refused;
 *  - other PNG kinds written here with libpng directly (gray, gray+alpha, palette with
 *    tRNS, 16-bit, low bit depths, Adam7 interlace, zTXt and compressed iTXt) decoded to
 *    8-bit RGB(A) as libpng's transforms (and PIL) give them;
 *  - hostile data: truncations, CRC errors in critical and ancillary chunks, huge or
 *    zero dimensions, no signature, missing file: KILN_ERR_FORMAT / KILN_ERR_IO with a
 *    message, nothing on stderr from libpng, nothing leaked (run under ASan too);
 *  - kiln_image_f32_to_rgb8 / kiln_image_rgb8_to_f32 against values computed once with
 *    torch + numpy as diffusers' VaeImageProcessor runs them (float32).
 */
#include <png.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "files.h"
#include "formats/image.h"
#include "formats/png.h"
#include "test.h"

static char g_dir[4096];

static char *tmp_file(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
    return buf;
}

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void fill_pixels(uint8_t *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Offset of the first chunk of the given type in a PNG (its length field), or 0. */
static size_t find_chunk(const uint8_t *p, size_t n, const char *type, size_t from) {
    size_t off = from ? from : 8;
    while (off + 12 <= n) {
        uint32_t len = be32(p + off);
        if (memcmp(p + off + 4, type, 4) == 0) return off;
        off += 12 + (size_t)len;
    }
    return 0;
}

/* ---- round trips ---------------------------------------------------------------- */

static void test_round_trip(int w, int h, int ch) {
    size_t n = (size_t)w * h * ch;
    uint8_t *px = malloc(n);
    fill_pixels(px, n, (uint32_t)(w * 131 + h * 7 + ch));
    char path[4200], name[64];
    snprintf(name, sizeof name, "rt_%dx%d_%d.png", w, h, ch);
    tmp_file(path, sizeof path, name);
    CHECK_OK(kiln_png_write(path, px, w, h, ch, NULL, 0));

    kiln_png_image img;
    CHECK_OK(kiln_png_read(path, ch, &img));
    CHECK(img.w == w && img.h == h && img.channels == ch && img.n_texts == 0);
    CHECK(img.had_alpha == (ch == 4));
    CHECK(img.pixels && memcmp(img.pixels, px, n) == 0);
    kiln_png_image_free(&img);
    CHECK(img.pixels == NULL && img.texts == NULL);

    /* the other channel count: alpha dropped, or an opaque one added */
    int other = ch == 3 ? 4 : 3;
    CHECK_OK(kiln_png_read(path, other, &img));
    CHECK(img.channels == other && img.had_alpha == (ch == 4));
    bool same = img.pixels != NULL;
    for (size_t i = 0; same && i < (size_t)w * h; i++) {
        for (int c = 0; c < 3; c++) same = same && img.pixels[i * other + c] == px[i * ch + c];
        if (other == 4) same = same && img.pixels[i * 4 + 3] == 255;
    }
    CHECK_MSG(same, "%dx%d read with %d channels", w, h, other);
    kiln_png_image_free(&img);

    /* the encoder's bytes are the file's bytes, and decode from memory agrees */
    uint8_t *enc = NULL;
    size_t enc_len = 0, file_len = 0;
    CHECK_OK(kiln_png_encode(px, w, h, ch, NULL, 0, &enc, &enc_len));
    uint8_t *file = read_all(path, &file_len);
    CHECK(file && enc && file_len == enc_len && memcmp(file, enc, enc_len) == 0);
    CHECK_OK(kiln_png_decode(enc, enc_len, ch, &img));
    CHECK(img.pixels && img.w == w && img.h == h && memcmp(img.pixels, px, n) == 0);
    kiln_png_image_free(&img);
    free(enc);
    free(file);
    free(px);
}

/* No temporary file is left beside the written one. */
static void test_no_leftovers(void) {
    char path[4200];
    uint8_t px[12] = {0};
    tmp_file(path, sizeof path, "clean.png");
    CHECK_OK(kiln_png_write(path, px, 2, 2, 3, NULL, 0));
    CHECK_OK(kiln_png_write(path, px, 2, 2, 3, NULL, 0)); /* replaces it */
    char pattern[4300];
    snprintf(pattern, sizeof pattern, "%s.%ld.", path, (long)getpid());
    for (unsigned i = 0; i < 4; i++) {
        char tmp[4400];
        snprintf(tmp, sizeof tmp, "%s%u.tmp", pattern, i);
        CHECK_MSG(access(tmp, F_OK) != 0, "%s left behind", tmp);
    }
    /* a folder that does not exist: IO error naming the path, nothing created */
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/no-such-dir/x.png", g_dir);
    kiln_status st = kiln_png_write(bad, px, 2, 2, 3, NULL, 0);
    CHECK(st == KILN_ERR_IO && strstr(kiln_last_error(), "no-such-dir/x.png"));
}

/* ---- texts ---------------------------------------------------------------------- */

static const char *A1111 =
    "a photograph of an astronaut riding a horse, (masterpiece:1.2), [detailed]\n"
    "Negative prompt: blurry, lowres, (worst quality:1.4)\n"
    "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1234567890, "
    "Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1";

static void test_texts(void) {
    /* a long value: the A1111 string repeated to ~100 KB */
    size_t one = strlen(A1111), reps = 100000 / one + 1;
    char *longv = malloc(reps * (one + 1) + 1);
    size_t k = 0;
    for (size_t i = 0; i < reps; i++) {
        memcpy(longv + k, A1111, one);
        k += one;
        longv[k++] = '\n';
    }
    longv[k] = 0;
    kiln_png_text texts[] = {
        {"parameters", A1111},
        {"Comment", "caf\xc3\xa9 \xc2\xb5 \xc3\xbf"},         /* Latin-1: tEXt */
        {"prompt", "\xe7\x8c\xab \xf0\x9f\x90\xb1 na\xc3\xafve"}, /* not Latin-1: iTXt */
        {"Empty", ""},
        {"long", longv},
        {"Cl\xc3\xa9", "key in Latin-1"},
    };
    int n = (int)(sizeof texts / sizeof texts[0]);
    uint8_t px[7 * 5 * 3];
    fill_pixels(px, sizeof px, 5);
    char path[4200];
    tmp_file(path, sizeof path, "texts.png");
    CHECK_OK(kiln_png_write(path, px, 7, 5, 3, texts, n));

    kiln_png_image img;
    CHECK_OK(kiln_png_read(path, 3, &img));
    CHECK(img.n_texts == n);
    for (int i = 0; i < n && i < img.n_texts; i++) {
        CHECK_MSG(strcmp(img.texts[i].key, texts[i].key) == 0, "key %d: %s", i, img.texts[i].key);
        CHECK_MSG(strcmp(img.texts[i].value, texts[i].value) == 0, "value of %s", texts[i].key);
    }
    CHECK(img.pixels && memcmp(img.pixels, px, sizeof px) == 0);
    kiln_png_image_free(&img);

    /* the chunks as PIL's PngInfo.add_text writes them */
    size_t len;
    uint8_t *f = read_all(path, &len);
    CHECK(f != NULL);
    if (f) {
        size_t off = find_chunk(f, len, "tEXt", 0);
        CHECK(off && be32(f + off) == 11 + one && memcmp(f + off + 8, "parameters\0", 11) == 0 &&
              memcmp(f + off + 19, A1111, one) == 0);
        off = off ? find_chunk(f, len, "tEXt", off + 12 + be32(f + off)) : 0;
        static const char latin1[] = "Comment\0caf\xe9 \xb5 \xff";
        CHECK(off && be32(f + off) == sizeof latin1 - 1 &&
              memcmp(f + off + 8, latin1, sizeof latin1 - 1) == 0);
        off = find_chunk(f, len, "iTXt", 0);
        const char *v = texts[2].value;
        CHECK(off && be32(f + off) == 7 + 4 + strlen(v) &&
              memcmp(f + off + 8, "prompt\0\0\0\0\0", 11) == 0 &&
              memcmp(f + off + 19, v, strlen(v)) == 0);
        /* texts come before the image data, as PIL writes them */
        size_t idat = find_chunk(f, len, "IDAT", 0);
        CHECK(idat > off);
        /* only one iTXt: the others were Latin-1 */
        CHECK(find_chunk(f, len, "iTXt", off + 12 + be32(f + off)) == 0);
        free(f);
    }
    free(longv);

    /* refused keys and values */
    static const struct {
        const char *key, *value;
    } bad[] = {
        {"", "x"},
        {" lead", "x"},
        {"trail ", "x"},
        {"two  spaces", "x"},
        {"01234567890123456789012345678901234567890123456789012345678901234567890123456789", "x"},
        {"\xe7\x8c\xab", "key not Latin-1"},
        {"tab\tkey", "x"},
        {"ok", "bad \xc3\x28 utf-8"},
        {"ok", "overlong \xc0\xaf"},
        {"ok", "surrogate \xed\xa0\x80"},
        {"\xff", "key not UTF-8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_png_text t = {bad[i].key, bad[i].value};
        uint8_t *out = (uint8_t *)1;
        size_t olen = 1;
        kiln_status st = kiln_png_encode(px, 7, 5, 3, &t, 1, &out, &olen);
        CHECK_MSG(st == KILN_ERR_INVALID_ARG && out == NULL && olen == 0 && kiln_last_error()[0],
                  "bad text %zu", i);
    }
    /* a 79-character key is fine */
    kiln_png_text t79 = {"012345678901234567890123456789012345678901234567890123456789012345678901234567"
                         "8", "x"};
    CHECK(strlen(t79.key) == 79);
    uint8_t *out;
    size_t olen;
    CHECK_OK(kiln_png_encode(px, 7, 5, 3, &t79, 1, &out, &olen));
    free(out);
}

static void test_bad_args(void) {
    uint8_t px[16] = {0}, *out;
    size_t len;
    CHECK(kiln_png_encode(px, 0, 1, 3, NULL, 0, &out, &len) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_png_encode(px, 1, -1, 3, NULL, 0, &out, &len) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_png_encode(px, 16385, 1, 3, NULL, 0, &out, &len) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_png_encode(px, 1, 1, 2, NULL, 0, &out, &len) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_png_encode(NULL, 1, 1, 3, NULL, 0, &out, &len) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_png_encode(px, 1, 1, 3, NULL, 2, &out, &len) == KILN_ERR_INVALID_ARG);
    kiln_png_image img;
    uint8_t *good;
    size_t glen;
    CHECK_OK(kiln_png_encode(px, 1, 1, 3, NULL, 0, &good, &glen));
    CHECK(kiln_png_decode(good, glen, 1, &img) == KILN_ERR_INVALID_ARG);
    free(good);
}

/* ---- other PNG kinds, written with libpng directly -------------------------------- */

typedef struct {
    int w, h, depth, color, interlace;
    const uint8_t *rows; /* packed rows as the PNG stores them, big-endian 16-bit */
    const png_color *palette;
    int n_palette;
    const uint8_t *trns; /* palette alpha, n_trns entries */
    int n_trns;
    const png_color_16 *trns_color;
    const png_text *texts;
    int n_texts;
} raw_png;

static void raw_write(png_structp png, png_bytep d, size_t n) {
    kiln_test_bytes_put(png_get_io_ptr(png), d, n);
}

static void raw_flush(png_structp png) { (void)png; }

static kiln_test_bytes raw_encode(const raw_png *r) {
    kiln_test_bytes b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "test helper: libpng write failed\n");
        exit(1);
    }
    png_set_write_fn(png, &b, raw_write, raw_flush);
    png_set_IHDR(png, info, (png_uint_32)r->w, (png_uint_32)r->h, r->depth, r->color, r->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (r->palette) png_set_PLTE(png, info, r->palette, r->n_palette);
    if (r->trns || r->trns_color) png_set_tRNS(png, info, r->trns, r->n_trns, r->trns_color);
    if (r->texts) png_set_text(png, info, r->texts, r->n_texts);
    png_write_info(png, info);
    png_uint_32 rowbytes = (png_uint_32)png_get_rowbytes(png, info);
    png_bytep *rows = malloc(sizeof *rows * (size_t)r->h);
    for (int y = 0; y < r->h; y++) rows[y] = (png_bytep)r->rows + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

static void test_kinds(void) {
    kiln_png_image img;
    kiln_test_bytes b;
    {   /* gray 8-bit, interlaced, with a zTXt and a compressed iTXt */
        uint8_t rows[5 * 9];
        fill_pixels(rows, sizeof rows, 9);
        png_text t[2] = {{.compression = PNG_TEXT_COMPRESSION_zTXt, .key = "zkey",
                          .text = "zipped caf\xe9", .text_length = 11},
                         {.compression = PNG_ITXT_COMPRESSION_zTXt, .key = "ikey",
                          .text = "\xe7\x8c\xab zipped", .lang = "ja", .lang_key = ""}};
        raw_png r = {9, 5, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, .rows = rows, .texts = t, .n_texts = 2};
        b = raw_encode(&r);
        CHECK_OK(kiln_png_decode(b.p, b.n, 3, &img));
        bool ok = img.pixels && img.w == 9 && img.h == 5 && !img.had_alpha;
        for (int i = 0; ok && i < 45; i++)
            ok = img.pixels[3 * i] == rows[i] && img.pixels[3 * i + 1] == rows[i] &&
                 img.pixels[3 * i + 2] == rows[i];
        CHECK_MSG(ok, "gray interlaced");
        CHECK(img.n_texts == 2);
        if (img.n_texts == 2) {
            CHECK(strcmp(img.texts[0].key, "zkey") == 0 && strcmp(img.texts[0].value, "zipped caf\xc3\xa9") == 0);
            CHECK(strcmp(img.texts[1].key, "ikey") == 0 && strcmp(img.texts[1].value, "\xe7\x8c\xab zipped") == 0);
        }
        kiln_png_image_free(&img);
        kiln_test_bytes_free(&b);
    }
    {   /* gray + alpha 16-bit: high bytes kept, alpha dropped or kept */
        uint8_t rows[2 * 3 * 4];
        fill_pixels(rows, sizeof rows, 11);
        raw_png r = {3, 2, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, .rows = rows};
        b = raw_encode(&r);
        CHECK_OK(kiln_png_decode(b.p, b.n, 4, &img));
        bool ok = img.pixels && img.had_alpha;
        for (int i = 0; ok && i < 6; i++)
            ok = img.pixels[4 * i] == rows[4 * i] && img.pixels[4 * i + 2] == rows[4 * i] &&
                 img.pixels[4 * i + 3] == rows[4 * i + 2];
        CHECK_MSG(ok, "gray alpha 16");
        kiln_png_image_free(&img);
        CHECK_OK(kiln_png_decode(b.p, b.n, 3, &img));
        ok = img.pixels && img.had_alpha && img.channels == 3;
        for (int i = 0; ok && i < 6; i++) ok = img.pixels[3 * i + 1] == rows[4 * i];
        CHECK_MSG(ok, "gray alpha 16 as RGB");
        kiln_png_image_free(&img);
        kiln_test_bytes_free(&b);
    }
    {   /* RGB 16-bit */
        uint8_t rows[3 * 2 * 6];
        fill_pixels(rows, sizeof rows, 13);
        raw_png r = {2, 3, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, .rows = rows};
        b = raw_encode(&r);
        CHECK_OK(kiln_png_decode(b.p, b.n, 3, &img));
        bool ok = img.pixels && !img.had_alpha;
        for (int i = 0; ok && i < 18; i++) ok = img.pixels[i] == rows[2 * i];
        CHECK_MSG(ok, "rgb 16");
        kiln_png_image_free(&img);
        kiln_test_bytes_free(&b);
    }
    {   /* palette 4-bit with tRNS */
        png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {1, 2, 3}};
        uint8_t trns[2] = {0, 128};
        uint8_t rows[2] = {0x01, 0x20}; /* 3x1 at 4 bits: 0, 1, 2 (+pad) -> 0x01 0x20 */
        raw_png r = {3, 1, 4, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, .rows = rows, .palette = pal,
                     .n_palette = 3, .trns = trns, .n_trns = 2};
        b = raw_encode(&r);
        CHECK_OK(kiln_png_decode(b.p, b.n, 4, &img));
        static const uint8_t want[12] = {255, 0, 0, 0, 0, 255, 0, 128, 1, 2, 3, 255};
        CHECK(img.pixels && img.had_alpha && memcmp(img.pixels, want, 12) == 0);
        kiln_png_image_free(&img);
        CHECK_OK(kiln_png_decode(b.p, b.n, 3, &img));
        static const uint8_t want3[9] = {255, 0, 0, 0, 255, 0, 1, 2, 3};
        CHECK(img.pixels && img.had_alpha && memcmp(img.pixels, want3, 9) == 0);
        kiln_png_image_free(&img);
        kiln_test_bytes_free(&b);
    }
    {   /* gray 1-bit: 0 -> 0, 1 -> 255 */
        uint8_t rows[1] = {0xa0}; /* 1 0 1 */
        raw_png r = {3, 1, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, .rows = rows};
        b = raw_encode(&r);
        CHECK_OK(kiln_png_decode(b.p, b.n, 3, &img));
        static const uint8_t want[9] = {255, 255, 255, 0, 0, 0, 255, 255, 255};
        CHECK(img.pixels && !img.had_alpha && memcmp(img.pixels, want, 9) == 0);
        kiln_png_image_free(&img);
        kiln_test_bytes_free(&b);
    }
    {   /* texts: an iTXt that is not UTF-8 is skipped; a zTXt inflating past the
         * limit is dropped (libpng's warning stays quiet); the image still reads */
        size_t big = 2 * (size_t)KILN_PNG_MAX_TEXT;
        char *bomb = malloc(big + 1);
        memset(bomb, 'a', big);
        bomb[big] = 0;
        png_text t[3] = {{.compression = PNG_ITXT_COMPRESSION_NONE, .key = "bad", .text = "x\xff\xfe"},
                         {.compression = PNG_TEXT_COMPRESSION_zTXt, .key = "bomb", .text = bomb,
                          .text_length = big},
                         {.compression = PNG_TEXT_COMPRESSION_NONE, .key = "ok", .text = "fine",
                          .text_length = 4}};
        uint8_t rows[3] = {1, 2, 3};
        raw_png r = {1, 1, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, .rows = rows, .texts = t, .n_texts = 3};
        b = raw_encode(&r);
        free(bomb);
        CHECK(b.n < 100000);
        CHECK_OK(kiln_png_decode(b.p, b.n, 3, &img));
        CHECK_MSG(img.pixels && img.pixels[2] == 3 && img.n_texts == 1, "%d texts", img.n_texts);
        if (img.n_texts == 1) CHECK(strcmp(img.texts[0].key, "ok") == 0 && strcmp(img.texts[0].value, "fine") == 0);
        kiln_png_image_free(&img);
        kiln_test_bytes_free(&b);
    }
    {   /* RGB with a tRNS colour: that colour becomes transparent */
        uint8_t rows[6] = {10, 20, 30, 40, 50, 60};
        png_color_16 key = {.red = 40, .green = 50, .blue = 60};
        raw_png r = {2, 1, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, .rows = rows, .trns_color = &key};
        b = raw_encode(&r);
        CHECK_OK(kiln_png_decode(b.p, b.n, 4, &img));
        static const uint8_t want[8] = {10, 20, 30, 255, 40, 50, 60, 0};
        CHECK(img.pixels && img.had_alpha && memcmp(img.pixels, want, 8) == 0);
        kiln_png_image_free(&img);
        kiln_test_bytes_free(&b);
    }
}

/* ---- hostile data --------------------------------------------------------------- */

static void expect_refused(const uint8_t *p, size_t n, kiln_status want, const char *needle,
                           const char *what) {
    kiln_png_image img;
    memset(&img, 0x55, sizeof img);
    kiln_status st = kiln_png_decode(p, n, 3, &img);
    const char *msg = kiln_last_error();
    CHECK_MSG(st == want, "%s: got %s: %s", what, kiln_status_name(st), msg);
    CHECK_MSG(strstr(msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, needle);
    CHECK(img.pixels == NULL && img.texts == NULL && img.n_texts == 0 && img.w == 0);
}

static void fix_crc(uint8_t *p, size_t off) {
    uint32_t len = be32(p + off);
    put_be32(p + off + 8 + len, (uint32_t)crc32(0, p + off + 4, 4 + len));
}

static void test_hostile(void) {
    uint8_t px[40 * 30 * 3];
    fill_pixels(px, sizeof px, 17);
    kiln_png_text t = {"parameters", A1111};
    uint8_t *good;
    size_t n;
    CHECK_OK(kiln_png_encode(px, 40, 30, 3, &t, 1, &good, &n));
    if (!good) return;
    size_t idat = find_chunk(good, n, "IDAT", 0), text = find_chunk(good, n, "tEXt", 0);
    size_t iend = find_chunk(good, n, "IEND", 0);
    CHECK(idat && text && iend == n - 12);

    /* truncations: inside the signature, IHDR, the text, IDAT, before and inside IEND */
    size_t cuts[] = {0, 4, 7, 8, 12, 20, 32, text + 30, idat + 4, idat + 20,
                     idat + be32(good + idat) / 2, iend, iend + 6, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "cut at %zu", cuts[i]);
        expect_refused(good, cuts[i], KILN_ERR_FORMAT, cuts[i] < 8 ? "not a PNG" : "PNG data: PNG: ", what);
    }
    uint8_t *bad = malloc(n);
    /* a CRC byte flipped in IHDR, the text, IDAT, IEND */
    size_t crcs[] = {8 + 8 + 13, text + 8 + be32(good + text), idat + 8 + be32(good + idat), iend + 8};
    const char *names[] = {"IHDR", "tEXt", "IDAT", "IEND"};
    for (int i = 0; i < 4; i++) {
        memcpy(bad, good, n);
        bad[crcs[i] + 1] ^= 0x40;
        expect_refused(bad, n, KILN_ERR_FORMAT, "CRC", names[i]);
    }
    /* a flipped byte inside IDAT's compressed data, CRC fixed: zlib's complaint */
    memcpy(bad, good, n);
    bad[idat + 8 + 2] ^= 0xff;
    bad[idat + 8 + 3] ^= 0xff;
    fix_crc(bad, idat);
    {
        kiln_png_image img;
        kiln_status st = kiln_png_decode(bad, n, 3, &img);
        CHECK_MSG(st == KILN_ERR_FORMAT && img.pixels == NULL, "corrupt IDAT: %s", kiln_last_error());
    }
    /* header dimensions: huge, over the side limit, zero */
    static const uint32_t dims[][2] = {{100000, 100000}, {16385, 1}, {1, 16385}, {0x7fffffff, 1}};
    for (int i = 0; i < 4; i++) {
        memcpy(bad, good, n);
        put_be32(bad + 16, dims[i][0]);
        put_be32(bad + 20, dims[i][1]);
        fix_crc(bad, 8);
        expect_refused(bad, n, KILN_ERR_FORMAT, "too large", "huge");
    }
    memcpy(bad, good, n);
    put_be32(bad + 16, 0);
    fix_crc(bad, 8);
    expect_refused(bad, n, KILN_ERR_FORMAT, "width", "zero width");
    memcpy(bad, good, n);
    put_be32(bad + 16, 0x80000000u); /* over PNG's 2^31 - 1 */
    fix_crc(bad, 8);
    expect_refused(bad, n, KILN_ERR_FORMAT, "PNG data: PNG: ", "width 2^31");
    /* bad bit depth for the colour type */
    memcpy(bad, good, n);
    bad[24] = 3;
    fix_crc(bad, 8);
    expect_refused(bad, n, KILN_ERR_FORMAT, "PNG data: PNG: ", "depth 3");
    /* a chunk length far past the end */
    memcpy(bad, good, n);
    put_be32(bad + text, 0x7ffffff0u);
    expect_refused(bad, n, KILN_ERR_FORMAT, "PNG data: PNG: ", "long chunk");
    /* IDAT missing: IHDR then IEND */
    memcpy(bad, good, 33);
    memcpy(bad + 33, good + iend, 12);
    expect_refused(bad, 45, KILN_ERR_FORMAT, "PNG data: PNG: ", "no IDAT");
    /* not a PNG at all; empty; NULL */
    static const char text_file[] = "Steps: 20, Sampler: Euler a\n";
    expect_refused((const uint8_t *)text_file, sizeof text_file - 1, KILN_ERR_FORMAT, "not a PNG", "text");
    expect_refused(NULL, 0, KILN_ERR_FORMAT, "not a PNG", "empty");
    free(bad);

    /* the same through files: a truncated file, a text file, a missing file, a folder */
    char path[4200];
    kiln_png_image img;
    tmp_file(path, sizeof path, "truncated.png");
    kiln_test_write_file(path, good, idat + 30);
    CHECK(kiln_png_read(path, 3, &img) == KILN_ERR_FORMAT && strstr(kiln_last_error(), path) &&
          strstr(kiln_last_error(), "truncated") && img.pixels == NULL);
    tmp_file(path, sizeof path, "notpng.png");
    kiln_test_write_file(path, text_file, sizeof text_file - 1);
    CHECK(kiln_png_read(path, 3, &img) == KILN_ERR_FORMAT && strstr(kiln_last_error(), "not a PNG"));
    tmp_file(path, sizeof path, "missing.png");
    unlink(path);
    CHECK(kiln_png_read(path, 3, &img) == KILN_ERR_IO && strstr(kiln_last_error(), "missing.png") &&
          strstr(kiln_last_error(), "No such file"));
    CHECK(kiln_png_read(g_dir, 3, &img) == KILN_ERR_IO && img.pixels == NULL);
    free(good);
}

/* ---- float <-> 8-bit ------------------------------------------------------------ */

/* Inputs (float32 bits) and what diffusers + PIL give: torch (v * 0.5 + 0.5).clamp(0, 1),
 * numpy (x * 255).round().astype("uint8"), computed once with torch 2 / numpy 1.24.
 * Around each rounding point k + 0.5 a few neighbours (ulps) on both sides; ties go to
 * even (126.5 -> 126, 127.5 -> 128); NaN -> 0. */
static const struct {
    uint32_t bits;
    uint8_t want;
} F2U[] = {
    {0xbf800000u, 0},   {0x3f800000u, 255}, {0x00000000u, 128}, {0x80000000u, 128},
    {0xc0000000u, 0},   {0x40000000u, 255}, {0x7f800000u, 255}, {0xff800000u, 0},
    {0x7fc00000u, 0},   {0x322bcc77u, 128}, {0xb22bcc77u, 128}, {0x3f7fffffu, 255},
    {0xbf7fffffu, 0},   {0xbf7eff02u, 0},   {0xbf7eff01u, 0},   {0xbf7eff00u, 0},
    {0xbf7efeffu, 0},   {0xbf7efefeu, 1},   {0xbf7efefdu, 1},   {0xbf7efefcu, 1},
    {0xbf7cfd00u, 1},   {0xbf7cfcffu, 1},   {0xbf7cfcfeu, 1},   {0xbf7cfcfdu, 1},
    {0xbf7cfcfcu, 2},   {0xbf7cfcfbu, 2},   {0xbf7cfcfau, 2},   {0xbf7afafeu, 2},
    {0xbf7afafdu, 2},   {0xbf7afafcu, 2},   {0xbf7afafbu, 2},   {0xbf7afafau, 3},
    {0xbf7afaf9u, 3},   {0xbf7afaf8u, 3},   {0xbf008084u, 63},  {0xbf008083u, 63},
    {0xbf008082u, 63},  {0xbf008081u, 63},  {0xbf008080u, 64},  {0xbf00807fu, 64},
    {0xbf00807eu, 64},  {0xbc008084u, 126}, {0xbc008083u, 126}, {0xbc008082u, 126},
    {0xbc008081u, 126}, {0xbc008080u, 126}, {0xbc00807fu, 126}, {0xbc00807eu, 126},
    {0x80000003u, 128}, {0x80000002u, 128}, {0x80000001u, 128}, {0x00000001u, 128},
    {0x00000002u, 128}, {0x00000003u, 128}, {0x3c00807eu, 128}, {0x3c00807fu, 128},
    {0x3c008080u, 128}, {0x3c008081u, 128}, {0x3c008082u, 128}, {0x3c008083u, 128},
    {0x3c008084u, 128}, {0x3f129290u, 200}, {0x3f129291u, 200}, {0x3f129292u, 200},
    {0x3f129293u, 201}, {0x3f129294u, 201}, {0x3f129295u, 201}, {0x3f129296u, 201},
    {0x3f7cfcfau, 253}, {0x3f7cfcfbu, 254}, {0x3f7cfcfcu, 254}, {0x3f7cfcfdu, 254},
    {0x3f7cfcfeu, 254}, {0x3f7cfcffu, 254}, {0x3f7cfd00u, 254}, {0x3f7efefcu, 254},
    {0x3f7efefdu, 254}, {0x3f7efefeu, 254}, {0x3f7efeffu, 254}, {0x3f7eff00u, 254},
    {0x3f7eff01u, 254}, {0x3f7eff02u, 255},
};

static float from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static uint32_t to_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static void test_convert(void) {
    size_t n = sizeof F2U / sizeof F2U[0];
    float *in = malloc(n * sizeof *in);
    uint8_t *out = malloc(n);
    for (size_t i = 0; i < n; i++) in[i] = from_bits(F2U[i].bits);
    /* as one (h, w, c) image: n = 2 * 41 * 1 */
    CHECK(n == 82);
    kiln_image_f32_to_rgb8(in, 41, 2, 1, out);
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(out[i] == F2U[i].want, "f32 %08x (%.9g): %d, want %d", F2U[i].bits, in[i], out[i],
                  F2U[i].want);
    free(in);
    free(out);

    /* the inverse: np.float32(u) / 255 then 2 * x - 1 in float32 (torch) */
    uint8_t u[256];
    float f[256];
    for (int i = 0; i < 256; i++) u[i] = (uint8_t)i;
    kiln_image_rgb8_to_f32(u, 16, 4, 4, f);
    static const struct {
        int u;
        uint32_t bits;
    } U2F[] = {{0, 0xbf800000u}, {1, 0xbf7dfdfeu}, {127, 0xbb808080u},
               {128, 0x3b808100u}, {254, 0x3f7dfdfeu}, {255, 0x3f800000u}};
    for (size_t i = 0; i < sizeof U2F / sizeof U2F[0]; i++)
        CHECK_MSG(to_bits(f[U2F[i].u]) == U2F[i].bits, "u8 %d: %08x", U2F[i].u, to_bits(f[U2F[i].u]));
    /* and back: every byte survives rgb8 -> f32 -> rgb8 */
    uint8_t back[256];
    kiln_image_f32_to_rgb8(f, 256, 1, 1, back);
    CHECK(memcmp(back, u, 256) == 0);
}

int main(void) {
    kiln_test_tmp_dir(g_dir, sizeof g_dir, "test_png");
    test_round_trip(1, 1, 3);
    test_round_trip(1, 1, 4);
    test_round_trip(7, 5, 3);
    test_round_trip(7, 5, 4);
    test_round_trip(64, 33, 3);
    test_round_trip(1, 300, 4);
    test_no_leftovers();
    test_texts();
    test_bad_args();
    test_kinds();
    test_hostile();
    test_convert();
    TEST_MAIN_END();
}
