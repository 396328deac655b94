/*
 * random_vocab.h — synthetic but valid tokenizers for random-weight models: the
 * GGUF tokenizer.ggml.* metadata of a SentencePiece ("llama"), byte-level BPE
 * ("gpt2") or WordPiece ("bert") vocabulary of a given size, which kiln's and llama.cpp's loaders accept.
 */
#ifndef KILN_MODELS_RANDOM_VOCAB_H
#define KILN_MODELS_RANDOM_VOCAB_H

#include "formats/gguf_write.h"

typedef enum {
    KILN_RVOCAB_SPM,          /* llama 2 / TinyLlama: <unk> <s> </s>, <0x00>..<0xFF>, pieces */
    KILN_RVOCAB_BPE_SMOLLM,   /* SmolLM: specials first, 256 byte tokens, merged tokens; pre "smollm" */
    KILN_RVOCAB_BPE_LLAMA3,   /* Llama 3: byte tokens, merged tokens, then 256 specials; pre "llama-bpe" */
    KILN_RVOCAB_WPM,          /* BERT WordPiece: [PAD], [unused*], [UNK] [CLS] [SEP] [MASK] at
                                 100..103, printable ASCII, then words and ##continuations */
} kiln_rvocab_kind;

/* Sets the tokenizer metadata of an n_vocab-token vocabulary of the given kind on w
 * (n_vocab at least 512; llama3 at least 1024). KILN_ERR_INVALID_ARG / KILN_ERR_NOMEM. */
kiln_status kiln_rvocab_write(kiln_gguf_writer *w, kiln_rvocab_kind kind, int n_vocab);

#endif
