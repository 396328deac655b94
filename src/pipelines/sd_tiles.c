/*
 * sd_tiles.c — the VAE decode of large images in overlapping tiles, as diffusers'
 * AutoencoderKL.tiled_decode does it, so memory stays that of one 512x512 decode
 * whatever the image size.
 *
 * Latent tiles of T = 64 (a 512-pixel tile) start every 3T/4 = 48 latents in each
 * direction. Each decoded tile is blended into its upper and left neighbours over
 * E = 2T = 128 pixels (linear ramps: the top tile's row E - y weighted 1 - y/E), the
 * upper blend first, each on the tile as already blended, and then cut to its first
 * 8T - E = 384 pixels in each direction before the tiles are put side by side.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "sd_internal.h"

enum { T = 64, STRIDE = 48, PX = 8 * T, BLEND = PX / 4, KEEP = PX - BLEND };

typedef struct {
    float *d;
    int h, w; /* pixels */
} tile;

/* b's first rows blended with a's last ones (diffusers' blend_v), in place. */
static void blend_v(const tile *a, tile *b, int c) {
    int e = BLEND < a->h ? BLEND : a->h;
    if (b->h < e) e = b->h;
    const int w = a->w < b->w ? a->w : b->w;
    for (int y = 0; y < e; y++) {
        const float t = (float)y / (float)e;
        const float *ra = a->d + (size_t)(a->h - e + y) * a->w * c;
        float *rb = b->d + (size_t)y * b->w * c;
        for (int x = 0; x < w * c; x++) rb[x] = ra[x] * (1.0f - t) + rb[x] * t;
    }
}

/* b's first columns blended with a's last ones (blend_h), in place. */
static void blend_h(const tile *a, tile *b, int c) {
    int e = BLEND < a->w ? BLEND : a->w;
    if (b->w < e) e = b->w;
    const int h = a->h < b->h ? a->h : b->h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < e; x++) {
            const float t = (float)x / (float)e;
            const float *pa = a->d + ((size_t)y * a->w + (a->w - e + x)) * c;
            float *pb = b->d + ((size_t)y * b->w + x) * c;
            for (int k = 0; k < c; k++) pb[k] = pa[k] * (1.0f - t) + pb[k] * t;
        }
}

kiln_status kiln_sd_decode_tiled(kiln_sd *m, const float *z, int h, int w, float *img) {
    const kiln_vae_config *vc = kiln_vae_get_config(m->vae);
    const int lc = vc->latent_channels, c = vc->out_channels, f = 1 << (vc->n_blocks - 1);
    const int rows = (h + STRIDE - 1) / STRIDE, cols = (w + STRIDE - 1) / STRIDE;
    tile *tiles = calloc((size_t)rows * cols, sizeof *tiles);
    float *zt = kiln_malloc_array((size_t)T * T * lc, sizeof *zt);
    kiln_status st = tiles && zt ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < rows && !st; i++)
        for (int j = 0; j < cols && !st; j++) {
            const int y0 = i * STRIDE, x0 = j * STRIDE, th = h - y0 < T ? h - y0 : T, tw = w - x0 < T ? w - x0 : T;
            for (int y = 0; y < th; y++)
                memcpy(zt + (size_t)y * tw * lc, z + ((size_t)(y0 + y) * w + x0) * lc, (size_t)tw * lc * sizeof *zt);
            tile *t = &tiles[i * cols + j];
            t->h = th * f;
            t->w = tw * f;
            if (!(t->d = kiln_malloc_array((size_t)t->h * t->w * c, sizeof *t->d)))
                st = kiln_fail(KILN_ERR_NOMEM, "out of memory for a decoded tile");
            else
                st = kiln_vae_decode(m->vae, zt, th, tw, t->d, NULL, NULL);
        }
    for (int i = 0; i < rows && !st; i++)
        for (int j = 0; j < cols; j++) {
            tile *t = &tiles[i * cols + j];
            if (i > 0) blend_v(&tiles[(i - 1) * cols + j], t, c);
            if (j > 0) blend_h(&tiles[i * cols + j - 1], t, c);
        }
    const int W = w * f;
    for (int i = 0; i < rows && !st; i++)
        for (int j = 0; j < cols; j++) { /* each tile's first KEEP pixels each way, side by side */
            const tile *t = &tiles[i * cols + j];
            const int kh = t->h < KEEP ? t->h : KEEP, kw = t->w < KEEP ? t->w : KEEP;
            for (int y = 0; y < kh && i * KEEP + y < h * f; y++) {
                const int n = j * KEEP + kw <= W ? kw : W - j * KEEP;
                memcpy(img + ((size_t)(i * KEEP + y) * W + (size_t)j * KEEP) * c, t->d + (size_t)y * t->w * c,
                       (size_t)n * c * sizeof *img);
            }
        }
    for (int i = 0; tiles && i < rows * cols; i++) free(tiles[i].d);
    free(tiles);
    free(zt);
    return st;
}
