/*
 * pack.c — weights repacked once at load for the fastest kernels (kernels.h:
 * kiln_weight_pack).
 *
 * Layout (KILN_Q4_0_X16 / KILN_Q8_0_X16): rows in groups of 16 (the last group padded
 * with zero-scale rows); a group is nb = k/32 blocks, each block:
 *   16 fp16 scales (row order), then the quants as 32-bit lanes, one lane per row:
 *   Q4_0: 4 vectors of 64 bytes; vector h, lane r = bytes 4h..4h+3 of row r's block
 *         (low nibbles: elements 4h..4h+3, high nibbles: elements 16+4h..16+4h+3,
 *         exactly as Q4_0 stores them), so one AND / shift gives 4 consecutive
 *         elements of all 16 rows, ready for vpdpbusd (unsigned nibble q, whose -8 is
 *         removed with the input's block sum);
 *   Q8_0: 8 vectors of 64 bytes; vector g, lane r = quants 4g..4g+3 of row r plus 128
 *         (unsigned for vpdpbusd; the 128 is removed the same way).
 *   Q4_K: per super-block of 256: the 16 rows' fp16 d, then fp16 dmin, then the 8
 *         sub-blocks' 6-bit scales (8 x 16 bytes, sub-block major) and mins (same),
 *         then per sub-block of 32 the 4 nibble vectors as for Q4_0 (Q4_K keeps
 *         sub-block 2c in the low nibbles and 2c+1 in the high nibbles of the same 32
 *         bytes; they are regrouped so each sub-block reads like a Q4_0 block).
 *         4.625 bits per weight (Q4_K: 4.5).
 *   Q5_K: as Q4_K, each sub-block's nibbles followed by its fifth bits as Q5_0's 8
 *         masks of 64 bits (bit 4r + e of mask g: element 4g + e of row r). 5.625 bits
 *         per weight (Q5_K: 5.5). AVX-512 only (the masks are mask registers).
 *   Q3_K: per super-block of 256: 16 fp16 d, then 16 sub-blocks x 16 rows of int8
 *         scales sc6 - 32, then per block of 32 elements 2 vectors of the 2-bit low
 *         parts (vector v, lane r, byte e: bits 2h..2h+1 = element 4(4v + h) + e, as
 *         Q6_K's high pairs) and 8 masks of the high bits (as Q5_0's: bit 4r + e of
 *         mask g, element 4g + e). 3.5625 bits per weight (Q3_K: 3.4375). AVX-512
 *         only.
 *   Q2_K: per super-block of 256: 16 fp16 d, 16 fp16 dmin, the 16 x 16 scale bytes as
 *         in the file (sub-block major), then per block of 32 the 2-bit quants as
 *         Q3_K's. 2.625 bits per weight, as the file. AVX-512 only (no AVX2 kernel).
 *   Q4_1 / Q5_1: 16 fp16 scales, 16 fp16 minimums, then the quants as Q4_0 / Q5_0
 *         (the same bits per weight as the files). AVX-512 only.
 *   Q6_K: per super-block of 256: 16 fp16 d, then 16 sub-blocks x 16 rows of int8
 *         scales, then per block of 32 elements the unsigned 6-bit quants (q + 32):
 *         4 low-nibble vectors as for Q4_0, and 2 vectors of 2-bit high parts (vector
 *         v, lane r, byte e: bits 2h..2h+1 = element 4(4v + h) + e). 6.56 bits per
 *         weight (Q6_K: 6.56).
 * One block of 16 rows is then 4 or 8 aligned loads, and the integer block sums of 16
 * rows come out in the 16 lanes with no horizontal reduction: matrix-vector products
 * run at memory speed and prompts reuse each loaded vector for 8 inputs.
 * Packing is pure byte movement: the numbers are exactly the file's.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "kernels/kernels_impl.h"
#include "kernels/ref/kquant_fit.h"

/* Every packed layout (kernels_impl.h: kiln_x16_layout). */
static const kiln_x16_layout g_layouts[] = {
    {KILN_Q4_0, KILN_Q4_0_X16, KILN_X16_Q4_0_BLOCK, false, false},
    {KILN_Q8_0, KILN_Q8_0_X16, KILN_X16_Q8_0_BLOCK, false, false},
    {KILN_Q4_K, KILN_Q4_K_X16, KILN_X16_Q4_K_BLOCK, true, false},
    {KILN_Q6_K, KILN_Q6_K_X16, KILN_X16_Q6_K_BLOCK, true, false},
    {KILN_Q5_0, KILN_Q5_0_X16, KILN_X16_Q5_0_BLOCK, false, true},
    {KILN_Q4_1, KILN_Q4_1_X16, KILN_X16_Q4_1_BLOCK, false, true},
    {KILN_Q5_1, KILN_Q5_1_X16, KILN_X16_Q5_1_BLOCK, false, true},
    {KILN_Q5_K, KILN_Q5_K_X16, KILN_X16_Q5_K_BLOCK, true, true},
    {KILN_Q3_K, KILN_Q3_K_X16, KILN_X16_Q3_K_BLOCK, true, true},
    {KILN_Q2_K, KILN_Q2_K_X16, KILN_X16_Q2_K_BLOCK, true, true},
};

const kiln_x16_layout *kiln_x16_layout_of(kiln_dtype t) {
    for (size_t i = 0; i < sizeof g_layouts / sizeof g_layouts[0]; i++)
        if (g_layouts[i].file == t || g_layouts[i].packed == t) return &g_layouts[i];
    return NULL;
}

/* The 32 bits of a block of 32 elements (bit e: element e) into lane `lane` of its 8
 * masks of 64 bits (bit 4 lane + e % 4 of mask e / 4, kernels_impl.h). */
static void set_masks(uint8_t *masks, int lane, uint32_t bits) {
    for (int gi = 0; gi < 8; gi++)
        masks[gi * 8 + lane / 2] |= (uint8_t)(((bits >> (4 * gi)) & 15) << (4 * (lane & 1)));
}

/* Bit `bit` of each of the 32 bytes at h as one word (bit e from h[e]): Q5_K's fifth
 * bits and Q3_K's high bits of one block of 32. */
static uint32_t bit_column(const uint8_t *h, int bit) {
    uint32_t w = 0;
    for (int e = 0; e < 32; e++) w |= (uint32_t)((h[e] >> bit) & 1) << e;
    return w;
}

/* One row of a Q4_K (five: Q5_K) matrix into lane `lane` of its group. */
static void pack_qk_row(const uint8_t *row, int64_t nsb, uint8_t *g, int lane, bool five) {
    const size_t in_bytes = five ? sizeof(kiln_block_q5_k) : sizeof(kiln_block_q4_k);
    const size_t sub = five ? 256 + 64 : 256;
    for (int64_t b = 0; b < nsb; b++) {
        kiln_block_q5_k blk; /* Q4_K: the same fields less qh */
        if (five) {
            memcpy(&blk, row + (size_t)b * in_bytes, sizeof blk);
        } else {
            kiln_block_q4_k b4;
            memcpy(&b4, row + (size_t)b * in_bytes, sizeof b4);
            blk.d = b4.d, blk.dmin = b4.dmin;
            memcpy(blk.scales, b4.scales, sizeof blk.scales);
            memcpy(blk.qs, b4.qs, sizeof blk.qs);
        }
        uint8_t *o = g + (size_t)b * (five ? KILN_X16_Q5_K_BLOCK : KILN_X16_Q4_K_BLOCK);
        memcpy(o + 2 * lane, &blk.d, 2);
        memcpy(o + 32 + 2 * lane, &blk.dmin, 2);
        uint8_t sc[8], mn[8];
        kiln_kq_unpack_scales(blk.scales, sc, mn);
        for (int j = 0; j < 8; j++) {
            o[64 + j * 16 + lane] = sc[j];
            o[192 + j * 16 + lane] = mn[j];
        }
        for (int j = 0; j < 8; j++) {
            /* sub-block j: 32 nibbles = low (j even) or high (j odd) nibbles of qs[32*(j/2) ..] */
            const uint8_t *src = blk.qs + 32 * (j / 2);
            uint8_t nib[32], bytes[16];
            for (int e = 0; e < 32; e++) nib[e] = (uint8_t)((j & 1) ? src[e] >> 4 : src[e] & 0x0f);
            for (int e = 0; e < 16; e++) bytes[e] = (uint8_t)(nib[e] | nib[e + 16] << 4); /* as Q4_0 stores them */
            uint8_t *sb = o + 320 + (size_t)j * sub;
            for (int h = 0; h < 4; h++) memcpy(sb + h * 64 + lane * 4, bytes + 4 * h, 4);
            if (five) set_masks(sb + 256, lane, bit_column(blk.qh, j)); /* fifth bits: bit j of qh[e] */
        }
    }
}

/* One row of a Q6_K matrix into lane `lane` of its group. */
static void pack_q6k_row(const uint8_t *row, int64_t nsb, uint8_t *g, int lane) {
    for (int64_t b = 0; b < nsb; b++) {
        kiln_block_q6_k blk;
        memcpy(&blk, row + (size_t)b * sizeof blk, sizeof blk);
        uint8_t *o = g + (size_t)b * KILN_X16_Q6_K_BLOCK;
        memcpy(o + 2 * lane, &blk.d, 2);
        for (int j = 0; j < 16; j++) o[32 + j * 16 + lane] = (uint8_t)blk.scales[j];
        uint8_t u[256]; /* q + 32, 0..63, element order (GGUF Q6_K bit layout) */
        for (int i = 0; i < 256; i++) {
            const int n = i / 128, off = i % 128, qq = off / 32, l = off % 32;
            const uint8_t lo = qq == 0   ? blk.ql[64 * n + l] & 0x0f
                               : qq == 1 ? blk.ql[64 * n + l + 32] & 0x0f
                               : qq == 2 ? blk.ql[64 * n + l] >> 4
                                         : blk.ql[64 * n + l + 32] >> 4;
            u[i] = (uint8_t)(lo | ((blk.qh[32 * n + l] >> (2 * qq)) & 3) << 4);
        }
        for (int bb = 0; bb < 8; bb++) {
            const uint8_t *e32 = u + 32 * bb;
            uint8_t *lo = o + 288 + (size_t)bb * 384, *hi = lo + 256;
            for (int h = 0; h < 4; h++)
                for (int e = 0; e < 4; e++) {
                    lo[h * 64 + lane * 4 + e] = (uint8_t)((e32[4 * h + e] & 0x0f) | (e32[16 + 4 * h + e] & 0x0f) << 4);
                }
            for (int v = 0; v < 2; v++)
                for (int e = 0; e < 4; e++) {
                    uint8_t byte = 0;
                    for (int h = 0; h < 4; h++) byte |= (uint8_t)((e32[4 * (4 * v + h) + e] >> 4) << (2 * h));
                    hi[v * 64 + lane * 4 + e] = byte;
                }
        }
    }
}

/* One Q4_0 / Q5_0 / Q4_1 / Q5_1 block of a row into lane `lane` of its packed block
 * blk: the fp16 scale d, the fp16 minimum m (NULL: none), the 16 nibble bytes qs and
 * the 32 fifth bits qh (bit j: element j; NULL: none), as kernels_impl.h lays them out. */
static void pack_legacy_block(uint8_t *blk, int lane, const uint8_t *d, const uint8_t *m, const uint8_t *qs,
                              const uint8_t *qh) {
    const size_t q_at = m ? 64 : 32;
    memcpy(blk + 2 * lane, d, 2);
    if (m) memcpy(blk + 32 + 2 * lane, m, 2);
    for (int h = 0; h < 4; h++) memcpy(blk + q_at + h * 64 + lane * 4, qs + 4 * h, 4);
    if (!qh) return;
    uint32_t bits;
    memcpy(&bits, qh, 4);
    set_masks(blk + q_at + 256, lane, bits);
}

/* The 2-bit quants of block bb (elements 32 bb ..) of a Q2_K / Q3_K super-block's qs
 * into lane `lane` of the 2 vectors at lo (KILN_X16_Q3_K_BLOCK). Element 32 bb + l is
 * bit pair bb % 4 of qs[32 (bb / 4) + l] (klow_ref.c). */
static void pack_low2(const uint8_t *qs, int bb, uint8_t *lo, int lane) {
    const uint8_t *src = qs + 32 * (bb / 4);
    const int shift = 2 * (bb % 4);
    for (int v = 0; v < 2; v++)
        for (int e = 0; e < 4; e++) {
            uint8_t byte = 0;
            for (int h = 0; h < 4; h++) byte |= (uint8_t)(((src[4 * (4 * v + h) + e] >> shift) & 3) << (2 * h));
            lo[v * 64 + lane * 4 + e] = byte;
        }
}

/* One row of a Q2_K matrix into lane `lane` of its group (KILN_X16_Q2_K_BLOCK). */
static void pack_q2k_row(const uint8_t *row, int64_t nsb, uint8_t *g, int lane) {
    for (int64_t b = 0; b < nsb; b++) {
        kiln_block_q2_k blk;
        memcpy(&blk, row + (size_t)b * sizeof blk, sizeof blk);
        uint8_t *o = g + (size_t)b * KILN_X16_Q2_K_BLOCK;
        memcpy(o + 2 * lane, &blk.d, 2);
        memcpy(o + 32 + 2 * lane, &blk.dmin, 2);
        for (int j = 0; j < 16; j++) o[64 + j * 16 + lane] = blk.scales[j];
        for (int bb = 0; bb < 8; bb++) pack_low2(blk.qs, bb, o + 320 + (size_t)bb * 128, lane);
    }
}

/* One row of a Q3_K matrix into lane `lane` of its group (KILN_X16_Q3_K_BLOCK). */
static void pack_q3k_row(const uint8_t *row, int64_t nsb, uint8_t *g, int lane) {
    for (int64_t b = 0; b < nsb; b++) {
        kiln_block_q3_k blk;
        memcpy(&blk, row + (size_t)b * sizeof blk, sizeof blk);
        uint8_t *o = g + (size_t)b * KILN_X16_Q3_K_BLOCK;
        memcpy(o + 2 * lane, &blk.d, 2);
        for (int j = 0; j < 16; j++) o[32 + j * 16 + lane] = (uint8_t)(int8_t)(kiln_kq_q3_scale(blk.scales, j) - 32);
        for (int bb = 0; bb < 8; bb++) {
            uint8_t *lo = o + 288 + (size_t)bb * 192, *masks = lo + 128;
            pack_low2(blk.qs, bb, lo, lane);
            set_masks(masks, lane, bit_column(blk.hmask, bb)); /* high bits: bit bb of hmask[e] */
        }
    }
}

kiln_status kiln_weight_pack(const kiln_tensor *w, kiln_tensor *out, void **mem) {
    *mem = NULL;
    const kiln_kernel_table *t = kiln_kernels_current();
    if (!t->gemm_x16 || !w || w->ne[2] != 1 || w->ne[3] != 1) return KILN_ERR_UNSUPPORTED;
    const kiln_x16_layout *lay = kiln_x16_layout_of(w->type);
    if (!lay || lay->file != w->type || (lay->extended && !t->x16_ext)) return KILN_ERR_UNSUPPORTED;
    const bool q4 = w->type == KILN_Q4_0, q4k = w->type == KILN_Q4_K, q6k = w->type == KILN_Q6_K;
    const bool q5 = w->type == KILN_Q5_0, q5k = w->type == KILN_Q5_K, q3k = w->type == KILN_Q3_K,
               q2k = w->type == KILN_Q2_K, q41 = w->type == KILN_Q4_1, q51 = w->type == KILN_Q5_1;
    const int64_t k = w->ne[0], m = w->ne[1];
    size_t row_bytes;
    if (k <= 0 || m <= 0 || !kiln_dtype_row_bytes(w->type, k, &row_bytes) || w->nb[1] < row_bytes || !w->data)
        return KILN_ERR_UNSUPPORTED;
    const int64_t nb = lay->superblock ? k / 256 : k / 32, groups = (m + 15) / 16;
    const size_t bsz = lay->block_bytes;
    size_t total;
    if (!kiln_mul_ok((size_t)groups * (size_t)nb, bsz, &total))
        return kiln_fail(KILN_ERR_NOMEM, "packing a %lld x %lld matrix: size overflows", (long long)m, (long long)k);
    uint8_t *p = kiln_alloc_weights(total);
    if (!p) return kiln_fail(KILN_ERR_NOMEM, "out of memory packing a %lld x %lld matrix", (long long)m, (long long)k);
    memset(p, 0, total); /* padding rows: scale 0 */
    const uint8_t *src = w->data;
    for (int64_t r = 0; r < m; r++) {
        const uint8_t *row = src + (size_t)r * w->nb[1];
        uint8_t *g = p + (size_t)(r / 16) * (size_t)nb * bsz;
        const int lane = (int)(r % 16);
        if (q4k || q5k) {
            pack_qk_row(row, nb, g, lane, q5k);
            continue;
        }
        if (q6k || q3k || q2k) {
            (q6k ? pack_q6k_row : q3k ? pack_q3k_row : pack_q2k_row)(row, nb, g, lane);
            continue;
        }
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = g + (size_t)b * bsz;
            if (q4) {
                const uint8_t *s = row + (size_t)b * sizeof(kiln_block_q4_0);
                pack_legacy_block(blk, lane, s, NULL, s + 2, NULL);
            } else if (q5) {
                const uint8_t *s = row + (size_t)b * sizeof(kiln_block_q5_0);
                pack_legacy_block(blk, lane, s + offsetof(kiln_block_q5_0, d), NULL, s + offsetof(kiln_block_q5_0, qs),
                                  s + offsetof(kiln_block_q5_0, qh));
            } else if (q41) {
                const uint8_t *s = row + (size_t)b * sizeof(kiln_block_q4_1);
                pack_legacy_block(blk, lane, s + offsetof(kiln_block_q4_1, d), s + offsetof(kiln_block_q4_1, m),
                                  s + offsetof(kiln_block_q4_1, qs), NULL);
            } else if (q51) {
                const uint8_t *s = row + (size_t)b * sizeof(kiln_block_q5_1);
                pack_legacy_block(blk, lane, s + offsetof(kiln_block_q5_1, d), s + offsetof(kiln_block_q5_1, m),
                                  s + offsetof(kiln_block_q5_1, qs), s + offsetof(kiln_block_q5_1, qh));
            } else {
                const uint8_t *s = row + (size_t)b * sizeof(kiln_block_q8_0);
                memcpy(blk + 2 * lane, s, 2);
                for (int gi = 0; gi < 8; gi++)
                    for (int e = 0; e < 4; e++) blk[32 + gi * 64 + lane * 4 + e] = (uint8_t)(s[2 + 4 * gi + e] ^ 0x80);
            }
        }
    }
    /* Rows of zero-scale padding must not hold the 128 offset of Q8_0 wrongly: their
     * quants are 0 (not 128), but their scale is 0, so they add nothing. */
    memset(out, 0, sizeof *out);
    out->type = lay->packed;
    out->n_dims = 2;
    out->ne[0] = k, out->ne[1] = m, out->ne[2] = 1, out->ne[3] = 1;
    out->nb[0] = 1, out->nb[1] = (size_t)nb * bsz / 16; /* informative: bytes per row on average */
    out->data = p;
    *mem = p;
    return KILN_OK;
}

/* A plain copy of w's rows, back to back, in memory backed by 2 MiB pages where the
 * OS gives them (kiln_alloc_weights). Generation streams every weight once per token
 * in runs of a few hundred KiB per thread; over a file mapping's 4 KiB pages those
 * runs cost page walks and restart the hardware prefetcher at every page, which
 * measured 10-25% of generation speed (issue 4). Matrices under 2 MiB stay as they
 * are. */
kiln_status kiln_weight_copy_large(const kiln_tensor *w, kiln_tensor *out, void **mem) {
    *mem = NULL;
    if (!w || !w->data || w->ne[2] != 1 || w->ne[3] != 1 || w->ne[0] <= 0 || w->ne[1] <= 0)
        return KILN_ERR_UNSUPPORTED;
    size_t row_bytes, total;
    if (!kiln_dtype_row_bytes(w->type, w->ne[0], &row_bytes) || w->nb[1] < row_bytes ||
        !kiln_mul_ok(row_bytes, (size_t)w->ne[1], &total) || total < ((size_t)2 << 20))
        return KILN_ERR_UNSUPPORTED;
    uint8_t *p = kiln_alloc_weights(total);
    if (!p) return kiln_fail(KILN_ERR_NOMEM, "out of memory copying a %lld x %lld matrix", (long long)w->ne[1],
                             (long long)w->ne[0]);
    const uint8_t *src = w->data;
    for (int64_t r = 0; r < w->ne[1]; r++) memcpy(p + (size_t)r * row_bytes, src + (size_t)r * w->nb[1], row_bytes);
    *out = *w;
    out->nb[1] = row_bytes;
    out->nb[2] = out->nb[3] = total;
    out->data = p;
    *mem = p;
    return KILN_OK;
}

/* fp32 panels (KILN_F32_P32): rows in groups of KILN_GEMMF_ROWS, group g holding
 * element j of row 32g + r at [j * 32 + r] (rows past m zero). The F16 / BF16 to f32
 * conversion is exact, so the numbers are still the file's. */
kiln_status kiln_weight_pack_panels(const kiln_tensor *w, kiln_tensor *out, void **mem) {
    return kiln_weight_pack_panels_with(kiln_kernels_current(), w, out, mem);
}

kiln_status kiln_weight_pack_panels_with(const kiln_kernel_table *t, const kiln_tensor *w, kiln_tensor *out,
                                         void **mem) {
    *mem = NULL;
    if (!t || !t->gemmp || !w || (w->type != KILN_F32 && w->type != KILN_F16 && w->type != KILN_BF16) || w->ne[2] != 1 ||
        w->ne[3] != 1 || !w->data)
        return KILN_ERR_UNSUPPORTED;
    const int64_t k = w->ne[0], m = w->ne[1];
    size_t row_bytes, total;
    if (k <= 0 || m <= 0 || !kiln_dtype_row_bytes(w->type, k, &row_bytes) || w->nb[1] < row_bytes)
        return KILN_ERR_UNSUPPORTED;
    const int64_t groups = (m + KILN_GEMMF_ROWS - 1) / KILN_GEMMF_ROWS;
    if (!kiln_mul_ok((size_t)groups * KILN_GEMMF_ROWS, (size_t)k * sizeof(float), &total))
        return kiln_fail(KILN_ERR_NOMEM, "packing a %lld x %lld matrix: size overflows", (long long)m, (long long)k);
    float *p = kiln_aligned_alloc(64, total), *row = kiln_malloc_array((size_t)k, sizeof *row);
    if (!p || !row) {
        free(p);
        free(row);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory packing a %lld x %lld matrix", (long long)m, (long long)k);
    }
    memset(p, 0, total);
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    for (int64_t r = 0; r < m; r++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->nb[1];
        if (w->type == KILN_F32)
            memcpy(row, src, (size_t)k * sizeof *row);
        else
            ref->dequant[w->type](src, row, k);
        float *g = p + (size_t)(r / KILN_GEMMF_ROWS) * KILN_GEMMF_ROWS * (size_t)k + r % KILN_GEMMF_ROWS;
        for (int64_t j = 0; j < k; j++) g[(size_t)j * KILN_GEMMF_ROWS] = row[j];
    }
    free(row);
    *out = *w;
    out->type = KILN_F32_P32;
    out->nb[0] = sizeof(float), out->nb[1] = (size_t)k * sizeof(float);
    out->data = p;
    *mem = p;
    return KILN_OK;
}

/* bf16 panels (KILN_BF16_P32, kernels_impl.h): rows in groups of KILN_GEMMF_ROWS, k padded
 * to even kp, element j of row 32g + r at [(j/2) * 64 + r * 2 + j % 2] of group g (rows
 * past m and the pad element zero), so that one 64-byte vector holds an element pair of
 * 16 rows, what vdpbf16ps multiplies by a broadcast pair of one input. */
kiln_status kiln_weight_pack_panels_bf16(const kiln_tensor *w, kiln_tensor *out, void **mem) {
    return kiln_weight_pack_panels_bf16_with(kiln_kernels_current(), w, out, mem);
}

kiln_status kiln_weight_pack_panels_bf16_with(const kiln_kernel_table *t, const kiln_tensor *w, kiln_tensor *out,
                                              void **mem) {
    *mem = NULL;
    if (!t || !t->gemmb || !w || (w->type != KILN_F32 && w->type != KILN_F16 && w->type != KILN_BF16) ||
        w->ne[2] != 1 || w->ne[3] != 1 || !w->data)
        return KILN_ERR_UNSUPPORTED;
    const int64_t k = w->ne[0], m = w->ne[1], kp = (k + 1) & ~(int64_t)1;
    size_t row_bytes, total;
    if (k <= 0 || m <= 0 || !kiln_dtype_row_bytes(w->type, k, &row_bytes) || w->nb[1] < row_bytes)
        return KILN_ERR_UNSUPPORTED;
    const int64_t groups = (m + KILN_GEMMF_ROWS - 1) / KILN_GEMMF_ROWS;
    if (!kiln_mul_ok((size_t)groups * KILN_GEMMF_ROWS, (size_t)kp * sizeof(uint16_t), &total))
        return kiln_fail(KILN_ERR_NOMEM, "packing a %lld x %lld matrix: size overflows", (long long)m, (long long)k);
    uint16_t *p = kiln_aligned_alloc(64, total);
    float *row = kiln_malloc_array((size_t)k, sizeof *row);
    if (!p || !row) {
        free(p);
        free(row);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory packing a %lld x %lld matrix", (long long)m, (long long)k);
    }
    memset(p, 0, total);
    const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
    for (int64_t r = 0; r < m; r++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->nb[1];
        uint16_t *g = p + (size_t)(r / KILN_GEMMF_ROWS) * KILN_GEMMF_ROWS * (size_t)kp + 2 * (r % KILN_GEMMF_ROWS);
        if (w->type == KILN_BF16) {
            for (int64_t j = 0; j < k; j++) memcpy(&g[(size_t)(j / 2) * 64 + (size_t)(j % 2)], src + 2 * j, 2);
            continue;
        }
        if (w->type == KILN_F32)
            memcpy(row, src, (size_t)k * sizeof *row);
        else
            ref->dequant[w->type](src, row, k);
        for (int64_t j = 0; j < k; j++) g[(size_t)(j / 2) * 64 + (size_t)(j % 2)] = kiln_f32_to_bf16(row[j]);
    }
    free(row);
    *out = *w;
    out->type = KILN_BF16_P32;
    out->nb[0] = sizeof(uint16_t), out->nb[1] = (size_t)kp * sizeof(uint16_t);
    out->data = p;
    *mem = p;
    return KILN_OK;
}
