/*
 * clip_tok.h — the CLIP BPE tokenizer of Stable Diffusion's text encoders (OpenAI's
 * simple_tokenizer, Hugging Face's CLIPTokenizer).
 *
 * Text is cleaned (runs of whitespace become one space, ends trimmed, lowercased),
 * split by CLIP's pattern (<|startoftext|>, <|endoftext|>, English contractions, runs
 * of letters, single digits, runs of other non-space characters), each piece mapped
 * byte -> printable code point as GPT-2 does, and merged by rank with "</w>" marking
 * the end of a word. Not applied: ftfy's mojibake repair and HTML unescaping, which
 * OpenAI's cleaner runs first (kiln has neither library); plain text is unaffected.
 *
 * The vocabulary comes from OpenAI's merges file (bpe_simple_vocab_16e6.txt.gz: the
 * 256 byte symbols, the same with "</w>", one token per merge, then the two special
 * tokens: 49408 in all) or from a Hugging Face tokenizer folder's vocab.json and
 * merges.txt. Immutable once loaded: any number of threads may encode at once.
 */
#ifndef KILN_TOKENIZERS_CLIP_TOK_H
#define KILN_TOKENIZERS_CLIP_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "kiln.h"

typedef struct kiln_clip_tok kiln_clip_tok;

/* From OpenAI's gzip'd merges file (the first line a header, then "a b" merges; the
 * first 49152 - 256 - 2 of them are used, as CLIP does). */
kiln_status kiln_clip_tok_from_merges_gz(const char *path, kiln_clip_tok **out);
/* From a Hugging Face CLIPTokenizer's vocab.json (token -> id) and merges.txt. */
kiln_status kiln_clip_tok_from_hf(const char *vocab_json, const char *merges_txt, kiln_clip_tok **out);
void kiln_clip_tok_free(kiln_clip_tok *t);

/* The printable symbol byte b stands for in the vocabulary (GPT-2's byte mapping),
 * as UTF-8 in out (not NUL-terminated); returns its length (1 or 2). For writers of
 * vocabularies (random models). */
size_t kiln_clip_tok_byte_symbol(int b, char out[4]);

int32_t kiln_clip_tok_n_vocab(const kiln_clip_tok *t);
int32_t kiln_clip_tok_bos(const kiln_clip_tok *t); /* <|startoftext|> */
int32_t kiln_clip_tok_eos(const kiln_clip_tok *t); /* <|endoftext|> */
/* The token's text ("a</w>"), or NULL for an id out of range. */
const char *kiln_clip_tok_text(const kiln_clip_tok *t, int32_t id);
/* Id of a token's exact text, or -1. */
int32_t kiln_clip_tok_find(const kiln_clip_tok *t, const char *text);

/* The ids of text[0..len) without start/end tokens. *ids is malloc'd (NULL if *n is 0). */
kiln_status kiln_clip_tok_encode(const kiln_clip_tok *t, const char *text, size_t len, int32_t **ids, size_t *n);
/* Appends the text of ids to out: "</w>" becomes a space after the word; special
 * tokens are skipped. Invalid UTF-8 cannot arise from ids of this vocabulary's words
 * except when a word is cut inside a character; such bytes are kept as they are. */
kiln_status kiln_clip_tok_decode(const kiln_clip_tok *t, const int32_t *ids, size_t n, kiln_buf *out);

/* One text-encoder window: <|startoftext|>, the first `window - 2` ids of text, then
 * <|endoftext|>, padded with pad_id (SD 1.x: <|endoftext|>; SD 2.x: 0) to window
 * tokens. *truncated says whether ids were cut. out has window entries. */
kiln_status kiln_clip_tok_window(const kiln_clip_tok *t, const char *text, size_t len, int window, int32_t pad_id,
                                 int32_t *out, bool *truncated);

#endif
