/*
 * sd_cond.c — a prompt's text states for the UNet: AUTOMATIC1111's prompt syntax
 * (sd_prompt.h: weights, BREAK, 75-token chunks), each chunk through the CLIP text
 * encoder, the chunks' states concatenated.
 *
 * Weights as AUTOMATIC1111 applies them: each token's state is multiplied by its
 * weight, then the chunk is rescaled so that the mean of all its values is what it
 * was before (so emphasis shifts attention without changing the overall scale).
 * A prompt that fits one chunk is laid out as diffusers' tokenizer does (start,
 * text, end, padding); AUTOMATIC1111 puts the end token last, which is the same for
 * SD 1.x, whose padding is the end token.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "pipelines/sd_prompt.h"
#include "sd_internal.h"

enum { WINDOW = KILN_CLIP_CHUNK + 2 };

/* One chunk in diffusers' layout: the end token right after the text. */
static void diffusers_layout(kiln_clip_chunk *c, int32_t pad, int32_t eos) {
    int len = 0;
    for (int i = 1; i <= KILN_CLIP_CHUNK; i++)
        if (c->ids[i] != pad) len = i;
    if (len == KILN_CLIP_CHUNK) return;
    c->ids[len + 1] = eos;
    for (int i = len + 2; i < WINDOW; i++) c->ids[i] = pad;
}

static void apply_weights(float *z, const float *w, int d) {
    bool plain = true;
    for (int i = 0; i < WINDOW; i++) plain = plain && w[i] == 1.0f;
    if (plain) return;
    double before = 0, after = 0;
    const size_t n = (size_t)WINDOW * (size_t)d;
    for (size_t i = 0; i < n; i++) before += z[i];
    for (int t = 0; t < WINDOW; t++)
        for (int k = 0; k < d; k++) z[(size_t)t * d + k] *= w[t];
    for (size_t i = 0; i < n; i++) after += z[i];
    if (after == 0) return;
    const float f = (float)(before / after);
    for (size_t i = 0; i < n; i++) z[i] *= f;
}

kiln_status kiln_sd_condition(kiln_sd *m, const char *prompt, int skip, float **ctx, int *n_tokens) {
    *ctx = NULL;
    *n_tokens = 0;
    kiln_clip_chunk *chunks = NULL;
    size_t n = 0;
    kiln_status st = kiln_prompt_chunks(m->tok, prompt ? prompt : "", m->pad_id, &chunks, &n);
    if (st) return st;
    if (n > 64) {
        free(chunks);
        return kiln_fail(KILN_ERR_INVALID_ARG, "the prompt needs %zu chunks of 75 tokens; at most 64", n);
    }
    if (n == 1) diffusers_layout(&chunks[0], m->pad_id, kiln_clip_tok_eos(m->tok));
    const int d = kiln_clip_text_get_config(m->clip)->n_embd;
    int32_t *ids = kiln_malloc_array(n * WINDOW, sizeof *ids);
    float *z = kiln_malloc_array(n * WINDOW * (size_t)d, sizeof *z);
    if (!ids || !z) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (size_t c = 0; c < n && !st; c++) memcpy(ids + c * WINDOW, chunks[c].ids, sizeof chunks[c].ids);
    if (!st) st = kiln_clip_text_forward(m->clip, ids, (int)n, WINDOW, skip, true, z, NULL);
    for (size_t c = 0; c < n && !st; c++) apply_weights(z + c * WINDOW * (size_t)d, chunks[c].weights, d);
    free(ids);
    free(chunks);
    if (st) {
        free(z);
        return st;
    }
    *ctx = z;
    *n_tokens = (int)n * WINDOW;
    return KILN_OK;
}
