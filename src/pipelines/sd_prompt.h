/*
 * sd_prompt.h — Stable Diffusion prompts as AUTOMATIC1111 reads them: attention
 * weights in the text, and long prompts in chunks of 75 tokens for the CLIP encoder.
 *
 * Syntax: "(text)" multiplies the weight of text by 1.1, "[text]" divides it by 1.1,
 * "(text:1.5)" multiplies it by 1.5; brackets nest and multiply; an unclosed bracket
 * applies to the end of the prompt, an unmatched closer is plain text; "\(", "\)",
 * "\[", "\]" and "\\" are the characters themselves; the word BREAK starts a new chunk.
 */
#ifndef KILN_PIPELINES_SD_PROMPT_H
#define KILN_PIPELINES_SD_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"
#include "tokenizers/clip_tok.h"

typedef struct {
    char *text;
    double weight;
    bool brk; /* a BREAK (text NULL) */
} kiln_prompt_piece;

/* Splits a prompt into pieces of equal weight (adjacent pieces of equal weight are
 * merged; an empty prompt is one empty piece of weight 1). */
kiln_status kiln_prompt_parse(const char *prompt, kiln_prompt_piece **out, size_t *n);
void kiln_prompt_pieces_free(kiln_prompt_piece *p, size_t n);

#define KILN_CLIP_CHUNK 75 /* tokens of text per 77-token encoder window */

typedef struct {
    int32_t ids[KILN_CLIP_CHUNK + 2]; /* <|startoftext|>, 75 tokens or padding, <|endoftext|> */
    float weights[KILN_CLIP_CHUNK + 2];
} kiln_clip_chunk;

/* The prompt's encoder windows: pieces tokenized one by one, tokens packed into
 * chunks of 75 with their weights; a full chunk whose last comma is within the last
 * 20 tokens moves the tokens after that comma to the next chunk; BREAK pads the chunk.
 * Padding is pad_id (SD 1.x: <|endoftext|>; SD 2.x: 0) with weight 1. At least one
 * chunk; *chunks is malloc'd. */
kiln_status kiln_prompt_chunks(const kiln_clip_tok *t, const char *prompt, int32_t pad_id, kiln_clip_chunk **chunks,
                               size_t *n);

#endif
