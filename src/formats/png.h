/*
 * png.h — PNG files for Stable Diffusion images: writing generated images with their
 * generation parameters, reading img2img inputs and the metadata of earlier images.
 *
 * libpng does the format (chunks, zlib, filters, CRCs); this module chooses what is
 * written and checks what is read:
 *  - 8-bit RGB or RGBA, no interlace, no time chunk, so the same pixels and texts
 *    always give the same bytes.
 *  - Texts as PIL's PngInfo.add_text writes them (which is what AUTOMATIC1111 uses for
 *    its "parameters" key): an uncompressed tEXt chunk when the value is Latin-1
 *    (every code point <= U+00FF), otherwise an uncompressed iTXt chunk in UTF-8 with
 *    empty language and translated key. Keys and values are UTF-8 on both sides of the
 *    API; kiln converts to and from Latin-1 where the chunk needs it.
 *  - kiln_png_write writes atomically: a temporary file beside the target, fsync,
 *    rename, fsync of the folder, so a crash never leaves a partial PNG under the
 *    final name.
 *  - Reading converts any PNG (palette, gray, 1..16 bits, alpha, tRNS, interlaced)
 *    to 8-bit RGB or RGBA with libpng's transforms, giving what PIL's
 *    Image.open(...).convert("RGB") gives (diffusers' preprocess) for 8-bit and
 *    palette files: alpha and tRNS dropped for RGB output, gray replicated, no gamma
 *    applied. 16-bit samples keep their high byte, as PIL does for 16-bit RGB(A)
 *    (PIL clips 16-bit gray to 255 instead, which kiln does not copy).
 *  - Texts read: tEXt, zTXt (Latin-1) and iTXt (UTF-8) chunks, before and after the
 *    image data. An iTXt value that is not UTF-8 is skipped, as PIL skips it; a
 *    compressed text that inflates past KILN_PNG_MAX_TEXT is dropped by libpng.
 *  - Files are mapped, and every chunk length is checked against the data before
 *    libpng runs (libpng allocates a chunk's claimed length before reading it).
 *  - Hostile input gives KILN_ERR_FORMAT and a message naming the file and libpng's
 *    complaint (truncated, CRC error in any chunk, bad header, ...), never output on
 *    stderr. Images over KILN_PNG_MAX_SIDE per side or KILN_PNG_MAX_PIXELS pixels are
 *    refused from the header, before anything is allocated for them.
 */
#ifndef KILN_FORMATS_PNG_H
#define KILN_FORMATS_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

#define KILN_PNG_MAX_SIDE 16384
#define KILN_PNG_MAX_PIXELS (1u << 28)
/* Longest text value written or read (bytes of UTF-8 / of the chunk). */
#define KILN_PNG_MAX_TEXT (8u << 20)

/* One text chunk: key (1..79 Latin-1 characters, printable, no leading, trailing or
 * double spaces) and value, both UTF-8. */
typedef struct {
    const char *key;
    const char *value;
} kiln_png_text;

/* A decoded image; everything owned (kiln_png_image_free). */
typedef struct {
    uint8_t *pixels;      /* h rows of w * channels bytes, top row first */
    int w, h;
    int channels;         /* 3 (RGB) or 4 (RGBA), as asked */
    int had_alpha;        /* the file had an alpha channel or a tRNS transparency */
    kiln_png_text *texts; /* tEXt, zTXt and iTXt chunks in file order, as UTF-8 */
    int n_texts;
} kiln_png_image;

/* Encodes h rows of w * channels bytes (channels 3: RGB, 4: RGBA) with texts[0..n_texts)
 * into a malloc'd buffer *out of *len bytes (the caller frees it). KILN_ERR_INVALID_ARG
 * for bad sizes, channels, keys or values that are not UTF-8; *out is NULL on failure. */
kiln_status kiln_png_encode(const uint8_t *rgb, int w, int h, int channels,
                            const kiln_png_text *texts, int n_texts, uint8_t **out,
                            size_t *len);

/* kiln_png_encode's bytes written atomically to path (KILN_ERR_IO naming the path on
 * failure; nothing is left under path or beside it then). */
kiln_status kiln_png_write(const char *path, const uint8_t *rgb, int w, int h, int channels,
                           const kiln_png_text *texts, int n_texts);

/* Decodes the PNG file at path into *out as channels (3 or 4) 8-bit samples per pixel.
 * KILN_ERR_IO if it cannot be read, KILN_ERR_FORMAT if it is not a sound PNG or is too
 * large, KILN_ERR_NOMEM; *out is zeroed on failure. */
kiln_status kiln_png_read(const char *path, int channels, kiln_png_image *out);

/* The same for a PNG held in memory (data[0..len)). */
kiln_status kiln_png_decode(const uint8_t *data, size_t len, int channels, kiln_png_image *out);

/* Frees what a read or decode gave; the struct is zeroed. NULL is fine. */
void kiln_png_image_free(kiln_png_image *img);

#endif
