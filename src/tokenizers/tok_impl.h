/*
 * tok_impl.h — the inside of kiln_tokenizer, shared by the tokenizer sources.
 *
 * A tokenizer is a vocabulary (token texts in one blob, scores, attributes, a
 * text -> id hash map), the rendered piece of every token (for decoding), the
 * special-token table used to split text before encoding, and per-algorithm data:
 * BPE merges, a pre-tokenizer pipeline, normalizer steps, WordPiece options.
 * The loaders (tok_gguf.c, tok_json.c, tok_llama2c.c) fill it and call
 * tok_finalize(), which derives everything else; tok_core.c runs encoding.
 */
#ifndef KILN_TOKENIZERS_TOK_IMPL_H
#define KILN_TOKENIZERS_TOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "tokenizers/tokenizer.h"

/* Largest vocabulary accepted (far above any real model; bounds allocations). */
#define TOK_MAX_VOCAB (1 << 24)
/* Largest single token text accepted, in bytes. */
#define TOK_MAX_TOKEN_LEN 65536

/* Token attributes (GGUF token_type mapped to flags, as llama.cpp does). */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_NORMAL = 1 << 0,
    TOK_ATTR_UNKNOWN = 1 << 1,
    TOK_ATTR_CONTROL = 1 << 2,
    TOK_ATTR_USER = 1 << 3,    /* user-defined: split out of text, printed as is */
    TOK_ATTR_UNUSED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,    /* <0xXX> */
    TOK_ATTR_LSTRIP = 1 << 6,  /* special token eats whitespace on its left */
    TOK_ATTR_RSTRIP = 1 << 7,  /* ... on its right */
    TOK_ATTR_EOG = 1 << 8,     /* ends generation */
};
#define TOK_ATTR_SPECIAL (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL)

typedef enum {
    TOK_ALG_SPM,     /* llama.cpp SentencePiece: merges by token score */
    TOK_ALG_BPE,     /* merges by rank (byte-level or with byte fallback) */
    TOK_ALG_WPM,     /* WordPiece */
    TOK_ALG_LLAMA2C, /* run.c */
} tok_alg;

typedef enum {
    TOK_DEC_SPM,      /* "▁" -> " ", <0xXX> -> byte */
    TOK_DEC_BYTELEVEL,/* GPT-2 code points -> bytes */
    TOK_DEC_WPM,      /* "▁word" -> " word" (GGUF form); continuation pieces as is */
    TOK_DEC_LLAMA2C,  /* text as is, <0xXX> -> byte */
} tok_decoder;

/* ---- text -> id hash map (open addressing over token ids) ---------------------- */
typedef struct {
    int32_t *slots; /* -1 = empty */
    size_t mask;
} tok_strmap;

/* ---- (left id, right id) -> (rank, merged id) ---------------------------------- */
typedef struct {
    uint32_t a, b;
    int32_t rank, id;
} tok_merge;
typedef struct {
    tok_merge *slots; /* a == UINT32_MAX: empty */
    size_t mask, n;
} tok_mergemap;

/* ---- normalizer steps (tokenizer.json) ------------------------------------------ */
typedef enum {
    TOK_NORM_PREPEND,   /* str: prepend to non-empty text */
    TOK_NORM_REPLACE,   /* str -> str2 (literal) or re -> str2 */
    TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE,
    TOK_NORM_STRIP_ACCENTS,
    TOK_NORM_STRIP,     /* left/right whitespace */
} tok_norm_kind;

typedef struct {
    tok_norm_kind kind;
    char *str, *str2;
    size_t len, len2;
    void *re;           /* a pcre2_code, for regex Replace */
    bool left, right;
} tok_norm;

/* ---- pre-tokenizer steps -------------------------------------------------------- */
typedef enum {
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
} tok_split_behavior;

typedef enum {
    TOK_PRE_SPLIT,      /* regex split with a behaviour */
    TOK_PRE_PREFIX_SPACE, /* ByteLevel add_prefix_space: " " before text not starting with one */
    TOK_PRE_METASPACE,  /* " " -> replacement, optional prepend, optional split */
} tok_pre_kind;

typedef struct {
    tok_pre_kind kind;
    void *re;           /* a pcre2_code */
    tok_split_behavior behavior;
    bool invert;
    /* metaspace */
    char repl[8];
    size_t repl_len;
    int prepend;        /* 0 never, 1 first, 2 always */
    bool split;
} tok_pre;

struct kiln_tokenizer {
    tok_alg alg;
    tok_decoder dec;
    int32_t n_vocab;

    char *blob;        /* token texts, back to back */
    size_t *off;       /* n_vocab + 1 offsets into blob */
    float *score;      /* n_vocab scores (0 when the source has none) */
    uint16_t *attr;    /* n_vocab TOK_ATTR_* flags */
    tok_strmap map;
    size_t max_token_len;

    char *pblob;       /* rendered pieces (decoder view), back to back */
    size_t *poff;

    int32_t bos, eos, eot, eom, unk, sep, pad;
    bool add_bos, add_eos;
    bool add_space_prefix;   /* SPM: " " before text at the start / after a special token */
    bool strip_first_space;  /* decoder drops the leading space of the first piece */
    bool strip_after_bos;    /* ... and of the piece after BOS */

    int32_t byte_tok[256];   /* token of each byte: <0xXX> (SPM) or its GPT-2 char (BPE); -1 */

    /* special tokens for text splitting, grouped by first byte, longest first in
     * each group: those starting with byte c are special[special_at[c] ..
     * special_at[c + 1]) */
    int32_t *special;
    size_t n_special;
    size_t special_at[257];

    /* BPE */
    tok_mergemap merges;
    bool byte_level;         /* bytes -> GPT-2 code points before merging */
    bool byte_fallback;      /* unknown chars -> <0xXX> tokens (HF BPE) */
    bool ignore_merges;      /* a whole pre-token found in the vocab is taken as is */
    bool fuse_unk;

    tok_norm *norm;
    size_t n_norm;
    tok_pre *pre;
    size_t n_pre;

    /* WordPiece */
    bool wpm_lower, wpm_strip_accents, wpm_clean, wpm_chinese;
    size_t wpm_max_chars;    /* longer words become [UNK] (HF: 100) */
};

/* ---- growable id array ----------------------------------------------------------- */
typedef struct {
    int32_t *v;
    size_t n, cap;
} tok_ids;
kiln_status tok_ids_push(tok_ids *a, int32_t id);

/* ---- merge candidates: a binary min-heap on (key, left) ------------------------- */
typedef struct {
    double key;        /* SPM: -score; BPE: rank */
    int32_t left, right;
    int32_t a, b;      /* ids (or sizes) at push time, to detect stale entries */
} tok_cand;
typedef struct {
    tok_cand *v;
    size_t n, cap;
} tok_heap;
kiln_status tok_heap_push(tok_heap *h, tok_cand c);
/* Removes the smallest entry into *c; false when empty. */
bool tok_heap_pop(tok_heap *h, tok_cand *c);

/* ---- vocabulary helpers (tok_vocab.c) --------------------------------------------- */
static inline const char *tok_text(const kiln_tokenizer *t, int32_t id) { return t->blob + t->off[id]; }
static inline size_t tok_len(const kiln_tokenizer *t, int32_t id) { return t->off[id + 1] - t->off[id]; }

/* Allocates an empty tokenizer (all ids -1, byte_tok -1). NULL on failure. */
kiln_tokenizer *tok_alloc(void);
/* Stores n token texts (texts[i], lens[i]); copies them. Empty texts are kept empty.
 * Fails on oversize input. */
kiln_status tok_set_vocab(kiln_tokenizer *t, int32_t n, const char *const *texts, const size_t *lens);
/* Builds the hash map (first id wins on duplicates), the byte tokens, the special
 * token table, the EOG flags and the rendered pieces. Call once all fields are set. */
kiln_status tok_finalize(kiln_tokenizer *t);
/* Id of text[0..len) or -1. */
int32_t tok_lookup(const kiln_tokenizer *t, const char *text, size_t len);
/* Merge table. */
kiln_status tok_merges_init(tok_mergemap *m, size_t n);
/* Adds a merge; the first (lowest rank) wins for a duplicate pair. */
void tok_merges_add(tok_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
const tok_merge *tok_merges_find(const tok_mergemap *m, int32_t a, int32_t b);

/* ---- UTF-8 (tok_utf8.c) ------------------------------------------------------------ */
/* Length of the valid UTF-8 sequence at s[0..n) and its code point in *cp; 0 if the
 * bytes there are not a valid sequence (then treat s[0] as one invalid byte).
 * *incomplete (may be NULL) is set when s[0..n) is a valid but truncated prefix. */
size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp, bool *incomplete);
/* Writes cp as UTF-8 into out (4 bytes room), returns the length (0 for invalid cp). */
size_t tok_utf8_encode(uint32_t cp, char *out);
/* Code point of GPT-2's byte-level alphabet for byte b, and the inverse (-1 if cp is
 * not in the alphabet). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);

/* ---- algorithms -------------------------------------------------------------------- */
/* SPM on one raw-text fragment (escaping and the prefix space are done inside). */
kiln_status tok_spm_encode(const kiln_tokenizer *t, const char *text, size_t len, bool prefix_space,
                           tok_ids *out);
/* llama2.c run.c encoding of the whole text (dummy prefix included). */
kiln_status tok_llama2c_encode(const kiln_tokenizer *t, const char *text, size_t len, tok_ids *out);
/* BPE on one fragment: normalize, pre-tokenize, merge. first: fragment is at the
 * start of the text (Metaspace prepend_scheme "first"). */
kiln_status tok_bpe_encode(const kiln_tokenizer *t, const char *text, size_t len, bool first, tok_ids *out);
/* WordPiece on one fragment. */
kiln_status tok_wpm_encode(const kiln_tokenizer *t, const char *text, size_t len, tok_ids *out);

/* ---- pre-tokenizers (tok_pretok.c) ------------------------------------------------- */
/* Appends the split steps of llama.cpp's pre-tokenizer `name` (tokenizer.ggml.pre) to
 * t->pre and sets the flags it implies. KILN_ERR_UNSUPPORTED for an unknown name. */
kiln_status tok_pre_from_name(kiln_tokenizer *t, const char *name);
/* Compiles a Hugging Face / llama.cpp regex with PCRE2 (UTF, UCP; \s as Unicode
 * White_Space). *re receives the compiled pcre2_code. */
kiln_status tok_regex_compile(const char *pattern, size_t len, void **re);
void tok_regex_free(void *re);
/* Adds a regex split step. */
kiln_status tok_pre_add_split(kiln_tokenizer *t, const char *pattern, size_t len, tok_split_behavior b,
                              bool invert);
/* A piece of pre-tokenized text: byte range in the (normalized) fragment. */
typedef struct {
    size_t start, len;
} tok_span;
typedef struct {
    tok_span *v;
    size_t n, cap;
} tok_spans;
/* Runs t->pre over s[0..len) (may rewrite it for Metaspace: *s_out and *len_out give
 * the text the spans refer to, owned by *owned when not NULL). */
kiln_status tok_pretokenize(const kiln_tokenizer *t, const char *s, size_t len, bool first, tok_spans *out,
                            char **owned, const char **s_out, size_t *len_out);
void tok_spans_free(tok_spans *s);

/* ---- normalizers (tok_norm.c) ------------------------------------------------------ */
/* Applies t->norm to s[0..len); *out is malloc'd (NUL-terminated) with *out_len bytes. */
kiln_status tok_normalize(const kiln_tokenizer *t, const char *s, size_t len, char **out, size_t *out_len);
void tok_norm_free(tok_norm *n);

/* ---- WordPiece character classes (tok_wpm.c) ------------------------------------- */
bool tok_is_chinese_char(uint32_t cp);

#endif
