/*
 * tok_llama2c.c — kiln_tokenizer_from_llama2c: llama2.c's tokenizer.bin.
 *
 * Layout: int32 max_token_length, then vocab_size records of (float32 score,
 * int32 len, len bytes), little-endian; the count is not in the file but in the
 * model checkpoint. Id 0 is <unk>, 1 BOS, 2 EOS, 3..258 the bytes <0x00>..<0xFF>,
 * which is what run.c's byte fallback (byte + 3) relies on.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/mapfile.h"
#include "base/status.h"
#include "tokenizers/tok_impl.h"

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static kiln_status parse(kiln_tokenizer *t, const char *path, const uint8_t *d, size_t size, int32_t n) {
    if (size < 4) return kiln_fail(KILN_ERR_FORMAT, "%s: too short for a tokenizer.bin", path);
    int32_t max_len = (int32_t)rd32(d);
    if (max_len <= 0 || max_len > TOK_MAX_TOKEN_LEN)
        return kiln_fail(KILN_ERR_FORMAT, "%s: max_token_length %d out of range", path, (int)max_len);
    const char **texts = kiln_malloc_array((size_t)n, sizeof *texts);
    size_t *lens = kiln_malloc_array((size_t)n, sizeof *lens);
    float *scores = kiln_malloc_array((size_t)n, sizeof *scores);
    kiln_status st = KILN_OK;
    if (!texts || !lens || !scores) st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    size_t p = 4;
    for (int32_t i = 0; i < n && st == KILN_OK; i++) {
        if (size - p < 8) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: truncated at token %d of %d", path, (int)i, (int)n);
            break;
        }
        uint32_t bits = rd32(d + p);
        memcpy(&scores[i], &bits, sizeof bits);
        int32_t len = (int32_t)rd32(d + p + 4);
        p += 8;
        if (len < 0 || len > max_len || (size_t)len > size - p) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: token %d has length %d (max %d, %zu bytes left)", path, (int)i,
                           (int)len, (int)max_len, size - p);
            break;
        }
        texts[i] = (const char *)d + p;
        lens[i] = (size_t)len;
        p += (size_t)len;
    }
    if (st == KILN_OK) st = tok_set_vocab(t, n, texts, lens);
    if (st == KILN_OK) memcpy(t->score, scores, (size_t)n * sizeof *scores);
    free(texts);
    free(lens);
    free(scores);
    return st;
}

kiln_status kiln_tokenizer_from_llama2c(const char *path, int32_t vocab_size, kiln_tokenizer **out) {
    if (!path || !out) return kiln_fail(KILN_ERR_INVALID_ARG, "kiln_tokenizer_from_llama2c: NULL argument");
    *out = NULL;
    if (vocab_size <= 0 || vocab_size > TOK_MAX_VOCAB)
        return kiln_fail(KILN_ERR_INVALID_ARG, "%s: vocab_size %d out of range", path, (int)vocab_size);
    kiln_mapfile mf;
    kiln_status st = kiln_mapfile_open(path, &mf);
    if (st != KILN_OK) return st;
    kiln_tokenizer *t = tok_alloc();
    if (!t) st = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    if (st == KILN_OK) st = parse(t, path, mf.data, mf.size, vocab_size);
    kiln_mapfile_close(&mf);
    if (st == KILN_OK) {
        t->alg = TOK_ALG_LLAMA2C;
        t->dec = TOK_DEC_LLAMA2C;
        t->unk = 0;
        t->attr[0] = TOK_ATTR_UNKNOWN;
        if (vocab_size > 1) t->bos = 1, t->attr[1] = TOK_ATTR_CONTROL;
        if (vocab_size > 2) t->eos = 2, t->attr[2] = TOK_ATTR_CONTROL;
        for (int b = 0; b < 256 && b + 3 < vocab_size; b++) t->byte_tok[b] = b + 3;
        t->add_bos = true;
        t->strip_after_bos = true; /* run.c: a piece after BOS drops its leading space */
        st = tok_finalize(t);
    }
    if (st != KILN_OK) {
        kiln_tokenizer_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}
