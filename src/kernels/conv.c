/*
 * conv.c — 2-D convolution on channels-last images as im2col on kiln_matmul, and the
 * load-time weight preparation it needs (kernels.h: kiln_conv_weight_prepare,
 * kiln_conv2d).
 *
 * Weight: PyTorch stores (O, C, kh, kw); a channels-last patch of output pixel
 * (oy, ox) is the kh x kw input pixels under the kernel, each C contiguous channels,
 * in (ky, kx, c) order. So the weight becomes a matrix ne = [kh*kw*C, O] with row o in
 * that order, and the convolution of the whole image is one matmul
 * y (Ho*Wo, O) = patches (Ho*Wo, kh*kw*C) · wᵀ. The matrix is packed once as fp32
 * panels where the CPU has them (the encoder path of kiln_matmul: any batch size, a
 * row of a batch equals a call with that row).
 *
 * Patches: a 512x512 VAE layer of 128 channels would need 1.2 GB of patches at once,
 * so they are built for a tile of output pixels at a time (consecutive in row-major
 * order; a tile may start and end mid-row), about TILE_BYTES each, and each tile runs
 * through the matmul. For one (pixel, ky) the kw input pixels are consecutive in x
 * whatever the stride, so a patch is kh copies of kw*C floats where the kernel lies
 * inside the image, and per-pixel copies or zeros at the borders.
 *
 * Threads: when there are enough tiles, tiles run in parallel, each thread building
 * patches into its own buffer and multiplying them alone; with few tiles (small maps:
 * there the weights are large and should be read once per tile by all threads
 * together) tiles run one after the other with the matmul split over the pool. Either
 * way an output pixel's value is that of its matmul row, which depends on its patch and
 * the weight only (tile sizes depend on the shapes, never on the threads), so every
 * thread count gives the same bits.
 *
 * Scratch: one tile buffer per thread running tiles (kiln_conv2d_scratch_bytes bounds
 * it), from the caller, or allocated per call when the caller gives none or too
 * little. A caller running many convolutions should give one reused buffer: fresh
 * pages cost a fault each on first touch, and in this project's VMs the faults of a
 * 3 MB buffer took 10-20 ms, as long as the arithmetic of an 8x8x1280 UNet conv.
 *
 * A 1x1 kernel with stride 1 and no padding needs no patches: x is already the
 * (H*W, C) matrix.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "kernels/kernels_impl.h"

/* Patch bytes per tile, and the bounds on its pixels: at least 64 pixels, so that the
 * weights, read once per tile, are reused enough (64 patches per weight row); at most
 * 1024. */
#define TILE_BYTES (4u << 20)
#define TILE_MIN 64
#define TILE_MAX 1024
#define TILE_SLOTS 64

/* Output pixels per tile for patches of k floats: a function of k only. */
static int64_t tile_pixels_for(int64_t k) {
    const int64_t t = (int64_t)(TILE_BYTES / ((size_t)k * sizeof(float)));
    return t < TILE_MIN ? TILE_MIN : t > TILE_MAX ? TILE_MAX : t;
}

size_t kiln_conv2d_scratch_bytes(int C, int kh, int kw, int threads) {
    if (C < 1 || kh < 1 || kw < 1) return 0;
    const int64_t k = (int64_t)kh * kw * C;
    const int64_t bufs = threads < 1 ? 1 : threads > TILE_SLOTS ? TILE_SLOTS : threads;
    size_t b;
    if (!kiln_mul_ok((size_t)tile_pixels_for(k) * (size_t)k, sizeof(float) * (size_t)bufs, &b)) return SIZE_MAX;
    return b;
}

bool kiln_conv2d_out_size(int H, int W, int kh, int kw, int stride, kiln_pad2d pad, int *Ho, int *Wo) {
    if (H < 1 || W < 1 || kh < 1 || kw < 1 || stride < 1 || pad.top < 0 || pad.left < 0 || pad.bottom < 0 ||
        pad.right < 0)
        return false;
    const int64_t hs = (int64_t)H + pad.top + pad.bottom - kh, ws = (int64_t)W + pad.left + pad.right - kw;
    if (hs < 0 || ws < 0) return false;
    *Ho = (int)(hs / stride + 1);
    *Wo = (int)(ws / stride + 1);
    return true;
}

kiln_status kiln_conv_weight_prepare(const kiln_tensor *w4d, bool bf16, kiln_tensor *out, void **mem) {
    return kiln_conv_weight_prepare_with(kiln_kernels_current(), w4d, bf16, out, mem);
}

kiln_status kiln_conv_weight_prepare_with(const kiln_kernel_table *t, const kiln_tensor *w4d, bool bf16,
                                          kiln_tensor *out, void **mem) {
    *mem = NULL;
    if (!w4d || !w4d->data) return kiln_fail(KILN_ERR_INVALID_ARG, "conv weight: no tensor");
    if (w4d->type != KILN_F32 && w4d->type != KILN_F16 && w4d->type != KILN_BF16)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "conv weight: type %s (F32, F16, BF16 only)",
                         kiln_dtype_name(w4d->type));
    const int64_t kw = w4d->ne[0], kh = w4d->ne[1], C = w4d->ne[2], O = w4d->ne[3];
    const size_t esz = w4d->type == KILN_F32 ? 4 : 2;
    size_t k, total;
    /* kernels past 64 (no model has them) are refused, so kh * kw cannot overflow */
    if (kw < 1 || kh < 1 || C < 1 || O < 1 || w4d->nb[0] != esz || kw > 64 || kh > 64 ||
        !kiln_mul_ok((size_t)(kh * kw), (size_t)C, &k) || k > INT32_MAX ||
        !kiln_mul_ok(k, (size_t)O, &total) || !kiln_mul_ok(total, sizeof(float), &total))
        return kiln_fail(KILN_ERR_INVALID_ARG, "conv weight: bad shape [%lld, %lld, %lld, %lld]", (long long)kw,
                         (long long)kh, (long long)C, (long long)O);
    float *m = kiln_aligned_alloc(64, total);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "conv weight: cannot allocate %zu bytes", total);
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t ky = 0; ky < kh; ky++) {
                const uint8_t *src = (const uint8_t *)w4d->data + (size_t)o * w4d->nb[3] + (size_t)c * w4d->nb[2] +
                                     (size_t)ky * w4d->nb[1];
                float *dst = m + (size_t)o * k + (size_t)(ky * kw) * (size_t)C + (size_t)c;
                for (int64_t kx = 0; kx < kw; kx++) {
                    float f;
                    if (w4d->type == KILN_F32) {
                        memcpy(&f, src + 4 * kx, 4);
                    } else {
                        uint16_t h;
                        memcpy(&h, src + 2 * kx, 2);
                        f = w4d->type == KILN_F16 ? kiln_fp16_to_f32(h) : kiln_bf16_to_f32(h);
                    }
                    dst[(size_t)kx * (size_t)C] = f;
                }
            }
    const kiln_tensor mat = {.type = KILN_F32, .n_dims = 2, .ne = {(int64_t)k, O, 1, 1},
                             .nb = {4, k * 4, k * 4 * (size_t)O, k * 4 * (size_t)O}, .data = m};
    kiln_status st = bf16 ? kiln_weight_pack_panels_bf16_with(t, &mat, out, mem) : KILN_ERR_UNSUPPORTED;
    if (st == KILN_ERR_UNSUPPORTED) st = kiln_weight_pack_panels_with(t, &mat, out, mem);
    if (st == KILN_OK) {
        free(m);
        return KILN_OK;
    }
    if (st != KILN_ERR_UNSUPPORTED) {
        free(m);
        return st;
    }
    *out = mat;
    *mem = m;
    return KILN_OK;
}

typedef struct {
    const kiln_kernel_table *t;
    const kiln_tensor *w;
    const float *bias, *x;
    int H, W, C, kh, kw, stride, Ho, Wo, O;
    kiln_pad2d pad;
    int64_t k, n_pix, tile;
    float *y;
    /* parallel tiles: one patch buffer per running task */
    float *bufs;
    int n_bufs;
    atomic_bool busy[TILE_SLOTS];
    atomic_int failed; /* first failing status of a task */
} conv_job;

/* Patches of output pixels [p0, p0 + n) into buf (n rows of k floats). */
static void im2col(const conv_job *j, int64_t p0, int64_t n, float *buf) {
    const size_t C = (size_t)j->C, run = (size_t)j->kw * C;
    for (int64_t i = 0; i < n; i++) {
        const int oy = (int)((p0 + i) / j->Wo), ox = (int)((p0 + i) % j->Wo);
        const int ix0 = ox * j->stride - j->pad.left;
        float *row = buf + (size_t)i * (size_t)j->k;
        for (int ky = 0; ky < j->kh; ky++) {
            float *seg = row + (size_t)ky * run;
            const int iy = oy * j->stride - j->pad.top + ky;
            if (iy < 0 || iy >= j->H) {
                memset(seg, 0, run * sizeof(float));
                continue;
            }
            const float *src = j->x + ((size_t)iy * (size_t)j->W) * C;
            if (ix0 >= 0 && ix0 + j->kw <= j->W) {
                memcpy(seg, src + (size_t)ix0 * C, run * sizeof(float));
                continue;
            }
            for (int kx = 0; kx < j->kw; kx++) {
                const int ix = ix0 + kx;
                if (ix < 0 || ix >= j->W)
                    memset(seg + (size_t)kx * C, 0, C * sizeof(float));
                else
                    memcpy(seg + (size_t)kx * C, src + (size_t)ix * C, C * sizeof(float));
            }
        }
    }
}

static void add_bias(const conv_job *j, float *y, int64_t n) {
    if (!j->bias) return;
    for (int64_t i = 0; i < n; i++) j->t->add(y + (size_t)i * (size_t)j->O, j->bias, j->O);
}

/* One tile, alone on its thread: its patches into a free buffer, then the matmul. */
static void tile_task(void *ctx, int64_t ti) {
    conv_job *j = ctx;
    const int64_t p0 = ti * j->tile, n = j->n_pix - p0 < j->tile ? j->n_pix - p0 : j->tile;
    int slot = -1;
    while (slot < 0)
        for (int i = 0; i < j->n_bufs && slot < 0; i++)
            if (!atomic_exchange_explicit(&j->busy[i], true, memory_order_acquire)) slot = i;
    float *buf = j->bufs + (size_t)slot * (size_t)j->tile * (size_t)j->k;
    im2col(j, p0, n, buf);
    float *y = j->y + (size_t)p0 * (size_t)j->O;
    kiln_status st = kiln_matmul_with(j->t, j->w, buf, n, y, NULL);
    atomic_store_explicit(&j->busy[slot], false, memory_order_release);
    if (st) {
        int expect = 0;
        atomic_compare_exchange_strong(&j->failed, &expect, (int)st);
        return;
    }
    add_bias(j, y, n);
}

kiln_status kiln_conv2d(const kiln_tensor *w, const float *bias, const float *x, int H, int W, int C, int kh, int kw,
                        int stride, kiln_pad2d pad, float *y, void *scratch, size_t scratch_bytes, kiln_pool *pool) {
    return kiln_conv2d_with(kiln_kernels_current(), w, bias, x, H, W, C, kh, kw, stride, pad, y, scratch,
                            scratch_bytes, pool, 0);
}

kiln_status kiln_conv2d_with(const kiln_kernel_table *t, const kiln_tensor *w, const float *bias, const float *x, int H,
                             int W, int C, int kh, int kw, int stride, kiln_pad2d pad, float *y, void *scratch,
                             size_t scratch_bytes, kiln_pool *pool, int64_t tile_pixels) {
    int Ho, Wo;
    if (!t || !w || !x || !y || C < 1 || !kiln_conv2d_out_size(H, W, kh, kw, stride, pad, &Ho, &Wo))
        return kiln_fail(KILN_ERR_INVALID_ARG, "conv2d: bad arguments (%dx%dx%d, kernel %dx%d, stride %d)", H, W, C,
                         kh, kw, stride);
    const int64_t k = (int64_t)kh * kw * C;
    if (w->ne[0] != k || w->ne[1] < 1 || w->ne[1] > INT32_MAX || w->ne[2] != 1 || w->ne[3] != 1)
        return kiln_fail(KILN_ERR_INVALID_ARG, "conv2d: weight ne [%lld, %lld] is not [%lld, O] (%dx%dx%d)",
                         (long long)w->ne[0], (long long)w->ne[1], (long long)k, kh, kw, C);
    conv_job j = {.t = t, .w = w, .bias = bias, .x = x, .H = H, .W = W, .C = C, .kh = kh, .kw = kw,
                  .stride = stride, .Ho = Ho, .Wo = Wo, .O = (int)w->ne[1], .pad = pad, .k = k,
                  .n_pix = (int64_t)Ho * Wo, .y = y};
    if (kh == 1 && kw == 1 && stride == 1 && !pad.top && !pad.left && !pad.bottom && !pad.right) {
        kiln_status st = kiln_matmul_with(t, w, x, j.n_pix, y, pool);
        if (!st) add_bias(&j, y, j.n_pix);
        return st;
    }
    int64_t tile = tile_pixels > 0 ? tile_pixels : tile_pixels_for(k);
    if (tile > j.n_pix) tile = j.n_pix;
    j.tile = tile;
    const int64_t n_tiles = (j.n_pix + tile - 1) / tile, threads = pool ? kiln_pool_size(pool) : 1;
    /* Parallel tiles when they balance over the threads (within 1/3), else one tile
     * at a time with the matmul parallel. Either gives the same bits. */
    const bool par = n_tiles >= 3 * threads || n_tiles % threads == 0;
    j.n_bufs = (int)(!par ? 1 : threads < n_tiles ? threads : n_tiles);
    if (j.n_bufs > TILE_SLOTS) j.n_bufs = TILE_SLOTS;
    size_t bytes;
    void *own = NULL;
    if (!kiln_mul_ok((size_t)tile * (size_t)k, sizeof(float) * (size_t)j.n_bufs, &bytes))
        return kiln_fail(KILN_ERR_NOMEM, "conv2d: patch tiles of %lld x %lld overflow", (long long)tile,
                         (long long)k);
    if (scratch && scratch_bytes >= bytes && (uintptr_t)scratch % sizeof(float) == 0)
        j.bufs = scratch;
    else if (!(j.bufs = own = kiln_aligned_alloc(64, bytes)))
        return kiln_fail(KILN_ERR_NOMEM, "conv2d: cannot allocate %d patch tiles of %lld x %lld", j.n_bufs,
                         (long long)tile, (long long)k);
    kiln_status st = KILN_OK;
    if (par) {
        for (int i = 0; i < TILE_SLOTS; i++) atomic_init(&j.busy[i], false);
        atomic_init(&j.failed, 0);
        kiln_pool_for(pool, n_tiles, tile_task, &j);
        st = (kiln_status)atomic_load(&j.failed);
        if (st) st = kiln_fail(st, "conv2d: a tile's matmul failed (%s)", kiln_status_name(st));
    } else {
        for (int64_t ti = 0; ti < n_tiles && !st; ti++) {
            const int64_t p0 = ti * tile, n = j.n_pix - p0 < tile ? j.n_pix - p0 : tile;
            im2col(&j, p0, n, j.bufs);
            float *yt = y + (size_t)p0 * (size_t)j.O;
            st = kiln_matmul_with(t, w, j.bufs, n, yt, pool);
            if (!st) add_bias(&j, yt, n);
        }
    }
    free(own);
    return st;
}
