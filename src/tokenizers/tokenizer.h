/*
 * tokenizer.h — text <-> token ids for every model family kiln runs.
 *
 * One opaque kiln_tokenizer covers four algorithms, chosen by where the vocabulary
 * comes from:
 *   - SentencePiece BPE (GGUF tokenizer.ggml.model = "llama": Llama, Phi-3, Baichuan):
 *     score-driven pair merges with <0xXX> byte fallback, as llama.cpp does it;
 *   - byte-level BPE (GGUF "gpt2", or a Hugging Face tokenizer.json of type BPE):
 *     a per-model regex pre-tokenizer, bytes mapped to printable code points, merges
 *     by rank; SentencePiece-style tokenizer.json files (byte_fallback) use the same
 *     rank-driven merge on "▁"-escaped text;
 *   - WordPiece (GGUF "bert", tokenizer.json "WordPiece"): BERT's basic tokenizer,
 *     then greedy longest-match-first;
 *   - llama2.c tokenizer.bin: run.c's encoder.
 * Special tokens (control / user-defined / added tokens) are split out of the text
 * before the algorithm runs. A tokenizer is immutable once built, so one may be
 * shared by any number of threads.
 *
 * Detokenizing is streaming: kiln_detok turns ids into text as they arrive and
 * never splits a UTF-8 character across two outputs.
 */
#ifndef KILN_TOKENIZERS_TOKENIZER_H
#define KILN_TOKENIZERS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "formats/gguf.h"
#include "kiln.h"

typedef struct kiln_tokenizer kiln_tokenizer;

/* Builds a tokenizer from GGUF metadata (tokenizer.ggml.model = llama | gpt2 | bert;
 * tokens, scores, token_type, merges, bos/eos/unk/sep/pad/eot ids, add_bos_token /
 * add_eos_token, add_space_prefix, tokenizer.ggml.pre). Everything needed is copied:
 * g may be closed afterwards. On success *out is owned by the caller
 * (kiln_tokenizer_free). Errors: KILN_ERR_FORMAT (missing/inconsistent arrays, merges
 * naming unknown tokens), KILN_ERR_UNSUPPORTED (unknown model or pre-tokenizer),
 * KILN_ERR_NOMEM. */
kiln_status kiln_tokenizer_from_gguf(const kiln_gguf *g, kiln_tokenizer **out);

/* Builds a tokenizer from a Hugging Face tokenizer.json file (path), plus an optional
 * tokenizer_config.json path (NULL if none) for add_bos_token / add_eos_token /
 * bos_token / eos_token. Supported models: BPE (byte-level, with the pre_tokenizer
 * from the file; or SentencePiece-style with byte_fallback and the Prepend/Replace
 * normalizer), WordPiece. added_tokens become special tokens. Errors as for GGUF,
 * plus KILN_ERR_IO for unreadable files. */
kiln_status kiln_tokenizer_from_json(const char *tokenizer_json, const char *tokenizer_config_json,
                                     kiln_tokenizer **out);

/* Builds a WordPiece tokenizer from a BERT vocab.txt (one token per line, id = line
 * number, "##" marking continuations) plus an optional tokenizer_config.json path
 * (NULL if none), read as Hugging Face's BertTokenizer does: do_lower_case (default
 * true), strip_accents (default: as do_lower_case), tokenize_chinese_chars (default
 * true), and the unk / sep / pad / cls / mask token texts (default [UNK] ...), which
 * become control tokens. Errors as for tokenizer.json. */
kiln_status kiln_tokenizer_from_vocab_txt(const char *vocab_txt, const char *tokenizer_config_json,
                                          kiln_tokenizer **out);

/* Reads a llama2.c tokenizer.bin: int32 max_token_length, then vocab_size ×
 * (float32 score, int32 len, len bytes). vocab_size comes from the model checkpoint.
 * BOS is id 1, EOS id 2, ids 3..258 are the bytes <0x00>..<0xFF>. */
kiln_status kiln_tokenizer_from_llama2c(const char *path, int32_t vocab_size, kiln_tokenizer **out);

/* Frees t (NULL is fine). */
void kiln_tokenizer_free(kiln_tokenizer *t);

int32_t kiln_tokenizer_n_vocab(const kiln_tokenizer *t);
int32_t kiln_tokenizer_bos(const kiln_tokenizer *t); /* -1 if none (CLS for WordPiece) */
int32_t kiln_tokenizer_eos(const kiln_tokenizer *t); /* -1 if none */
/* Whether the model wants BOS (CLS ... SEP for WordPiece) when add_special is set. */
bool kiln_tokenizer_add_bos(const kiln_tokenizer *t);
/* True for ids that end generation: EOS, EOT, EOM and tokens such as <|im_end|>,
 * <|eot_id|>, <|end|>, <end_of_turn>, <|endoftext|>. False for out-of-range ids. */
bool kiln_tokenizer_is_eog(const kiln_tokenizer *t, int32_t id);
/* Id of a token given its exact vocabulary text, or -1. */
int32_t kiln_tokenizer_find(const kiln_tokenizer *t, const char *text, size_t len);

/* Encodes text[0..len) (arbitrary bytes: invalid UTF-8 is encoded losslessly through
 * byte tokens where the vocabulary has them, never a crash). add_special: add BOS/EOS
 * as the model says (CLS/SEP for WordPiece); parse_special: recognise control-token
 * text such as "<|im_end|>" in text (user-defined tokens are always recognised).
 * On success *ids is malloc'd (caller frees; NULL when *n == 0). */
kiln_status kiln_tokenizer_encode(const kiln_tokenizer *t, const char *text, size_t len, bool add_special,
                                  bool parse_special, int32_t **ids, size_t *n);

/* Appends to out the raw bytes of one token as the model's decoder renders it: SPM
 * "▁" -> " ", byte tokens <0x41> -> the byte, byte-level BPE code points -> bytes,
 * WordPiece word starts get a leading space. Control tokens render as their text.
 * Out-of-range ids append nothing and return KILN_OK. */
kiln_status kiln_tokenizer_piece(const kiln_tokenizer *t, int32_t id, kiln_buf *out);

/* Streaming detokenizer: push ids one at a time; text is appended to out as soon as
 * it is final, never splitting a UTF-8 character (an incomplete multi-byte sequence
 * is held back until complete; invalid bytes are emitted as U+FFFD as soon as they
 * are provably invalid, or at flush). The SentencePiece dummy-prefix space before the
 * first word is not output (llama2.c: run.c's rule, a piece following BOS drops its
 * leading space). Control tokens (BOS, EOS, ...) print nothing. No "clean up
 * tokenization spaces" pass is applied, so decode(encode(text)) == text for lossless
 * vocabularies. */
typedef struct kiln_detok kiln_detok;
/* t must outlive the detokenizer. */
kiln_status kiln_detok_create(const kiln_tokenizer *t, kiln_detok **out);
kiln_status kiln_detok_push(kiln_detok *d, int32_t id, kiln_buf *out);
/* Emits whatever is held back (as U+FFFD if incomplete) and resets the stream to
 * its initial state. */
kiln_status kiln_detok_flush(kiln_detok *d, kiln_buf *out);
void kiln_detok_free(kiln_detok *d);

#endif
