/*
 * llama2c.c — llama2.c checkpoint reader (legacy version 0 and export version 1).
 *
 * The layout is a fixed sequence of float32 arrays whose sizes follow from the header,
 * so reading is: validate the header, compute the size the file must have (every step
 * overflow-checked), then cut the mapping into views in the order the exporter wrote
 * them. The two versions differ only in header and order, so both are described by one
 * table of segments.
 */
#include "llama2c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/mapfile.h"
#include "base/status.h"

#define L2C_MAGIC 0x616b3432u   /* "ak42" */
#define L2C_V0_HEADER 28        /* 7 int32 */
#define L2C_V1_HEADER 256
#define L2C_MAX_DIM (1 << 20)
#define L2C_MAX_LAYERS 4096

struct kiln_llama2c {
    kiln_mapfile map;
    kiln_llama2c_config cfg;
    kiln_weight_list w;
};

/* One array of the file; per-layer segments hold n_layers consecutive matrices. */
typedef enum {
    SEG_TOK, SEG_ATT_NORM, SEG_WQ, SEG_WK, SEG_WV, SEG_WO, SEG_FFN_NORM,
    SEG_W1, SEG_W2, SEG_W3, SEG_NORM, SEG_FREQ, SEG_OUTPUT, SEG_END
} segment;

/* Order in which export.py writes the arrays (SEG_OUTPUT only if not shared). */
static const segment g_order_v0[] = {SEG_TOK, SEG_ATT_NORM, SEG_WQ, SEG_WK, SEG_WV, SEG_WO, SEG_FFN_NORM,
                                     SEG_W1, SEG_W2, SEG_W3, SEG_NORM, SEG_FREQ, SEG_OUTPUT, SEG_END};
static const segment g_order_v1[] = {SEG_ATT_NORM, SEG_FFN_NORM, SEG_NORM, SEG_TOK, SEG_WQ, SEG_WK, SEG_WV,
                                     SEG_WO, SEG_W1, SEG_W2, SEG_W3, SEG_OUTPUT, SEG_END};

typedef struct {
    const char *name;    /* printf format with %d for the layer when per_layer */
    bool per_layer;
    int64_t ne0, ne1;    /* kiln shape of one matrix: [in, out]; ne1 = 1 for vectors */
} seg_shape;

static seg_shape shape_of(segment s, const kiln_llama2c_config *c) {
    int64_t dim = c->dim, hidden = c->hidden_dim, vocab = c->vocab_size;
    int64_t head = dim / c->n_heads, kv_dim = (int64_t)c->n_kv_heads * head;
    switch (s) {
    case SEG_TOK: return (seg_shape){"tok_embeddings.weight", false, dim, vocab};          /* (vocab, dim) */
    case SEG_ATT_NORM: return (seg_shape){"layers.%d.attention_norm.weight", true, dim, 1};
    case SEG_WQ: return (seg_shape){"layers.%d.attention.wq.weight", true, dim, dim};      /* (n_heads*head, dim) */
    case SEG_WK: return (seg_shape){"layers.%d.attention.wk.weight", true, dim, kv_dim};   /* (kv_dim, dim) */
    case SEG_WV: return (seg_shape){"layers.%d.attention.wv.weight", true, dim, kv_dim};   /* (kv_dim, dim) */
    case SEG_WO: return (seg_shape){"layers.%d.attention.wo.weight", true, dim, dim};      /* (dim, n_heads*head) */
    case SEG_FFN_NORM: return (seg_shape){"layers.%d.ffn_norm.weight", true, dim, 1};
    case SEG_W1: return (seg_shape){"layers.%d.feed_forward.w1.weight", true, dim, hidden}; /* (hidden, dim) */
    case SEG_W2: return (seg_shape){"layers.%d.feed_forward.w2.weight", true, hidden, dim}; /* (dim, hidden) */
    case SEG_W3: return (seg_shape){"layers.%d.feed_forward.w3.weight", true, dim, hidden}; /* (hidden, dim) */
    case SEG_NORM: return (seg_shape){"norm.weight", false, dim, 1};
    /* freq_cis_real and freq_cis_imag, (seq_len, head/2) each: skipped, never named */
    case SEG_FREQ: return (seg_shape){NULL, false, head / 2, 2 * (int64_t)c->seq_len};
    case SEG_OUTPUT: return (seg_shape){"output.weight", false, dim, vocab};               /* (vocab, dim) */
    default: return (seg_shape){NULL, false, 0, 0};
    }
}

/* Writes the first problem with c into why (and returns false), or returns true. */
static bool config_ok(const kiln_llama2c_config *c, char *why, size_t n) {
    const struct {
        const char *name;
        int32_t v, max;
    } f[] = {{"dim", c->dim, L2C_MAX_DIM},          {"hidden_dim", c->hidden_dim, L2C_MAX_DIM},
             {"n_layers", c->n_layers, L2C_MAX_LAYERS}, {"n_heads", c->n_heads, L2C_MAX_DIM},
             {"n_kv_heads", c->n_kv_heads, L2C_MAX_DIM}, {"vocab_size", c->vocab_size, L2C_MAX_DIM},
             {"seq_len", c->seq_len, L2C_MAX_DIM}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].v <= 0) {
            snprintf(why, n, "%s is %d (must be positive)", f[i].name, f[i].v);
            return false;
        }
        if (f[i].v > f[i].max) {
            snprintf(why, n, "%s is %d, absurdly large (limit %d)", f[i].name, f[i].v, f[i].max);
            return false;
        }
    }
    if (c->dim % c->n_heads != 0) {
        snprintf(why, n, "dim %d is not divisible by n_heads %d", c->dim, c->n_heads);
        return false;
    }
    if (c->n_heads % c->n_kv_heads != 0) {
        snprintf(why, n, "n_heads %d is not divisible by n_kv_heads %d", c->n_heads, c->n_kv_heads);
        return false;
    }
    if ((c->dim / c->n_heads) % 2 != 0) {
        snprintf(why, n, "head size %d (dim / n_heads) is odd; rotary embeddings need it even",
                 c->dim / c->n_heads);
        return false;
    }
    return true;
}

/* Fills c from the header at p (n bytes). On a bad header returns KILN_ERR_FORMAT
 * (or KILN_ERR_UNSUPPORTED for a newer export version) with the reason in why; sets
 * no error message, so format detection can call it. */
static kiln_status read_header(const uint8_t *p, size_t n, kiln_llama2c_config *c, size_t *header_size, char *why,
                               size_t why_n) {
    int32_t h[7];
    uint32_t magic = 0;
    memset(c, 0, sizeof *c);
    if (n >= 4) memcpy(&magic, p, 4);
    if (magic == L2C_MAGIC) {
        int32_t version;
        if (n < L2C_V1_HEADER) {
            snprintf(why, why_n, "truncated file: %zu bytes cannot hold the %d-byte header", n, L2C_V1_HEADER);
            return KILN_ERR_FORMAT;
        }
        memcpy(&version, p + 4, 4);
        if (version != 1) {
            snprintf(why, why_n, "llama2.c export version %d is not supported (only versions 0 and 1 are)", version);
            return KILN_ERR_UNSUPPORTED;
        }
        memcpy(h, p + 8, sizeof h);
        if (p[36] > 1) {
            snprintf(why, why_n, "shared-classifier flag is %u (must be 0 or 1)", p[36]);
            return KILN_ERR_FORMAT;
        }
        c->shared_classifier = p[36] == 1;
        c->version = 1;
        *header_size = L2C_V1_HEADER;
    } else {
        if (n < L2C_V0_HEADER) {
            snprintf(why, why_n, "truncated file: %zu bytes cannot hold the %d-byte header", n, L2C_V0_HEADER);
            return KILN_ERR_FORMAT;
        }
        memcpy(h, p, sizeof h);
        /* run.c: a negative vocab_size means the classifier is stored separately. */
        c->shared_classifier = h[5] > 0;
        if (h[5] < 0 && h[5] != INT32_MIN) h[5] = -h[5];
        c->version = 0;
        *header_size = L2C_V0_HEADER;
    }
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->vocab_size = h[5];
    c->seq_len = h[6];
    return config_ok(c, why, why_n) ? KILN_OK : KILN_ERR_FORMAT;
}

bool kiln_llama2c_sniff(const void *head, size_t n) {
    kiln_llama2c_config c;
    size_t hs;
    char why[160];
    uint32_t magic = 0;
    if (n >= 4) memcpy(&magic, head, 4);
    if (magic == L2C_MAGIC) return true;
    return read_header(head, n, &c, &hs, why, sizeof why) == KILN_OK;
}

/* Bytes of one segment (all layers), overflow-checked. */
static bool segment_bytes(segment s, const kiln_llama2c_config *c, uint64_t *bytes) {
    seg_shape sh = shape_of(s, c);
    uint64_t n = (uint64_t)sh.ne0;
    if (__builtin_mul_overflow(n, (uint64_t)sh.ne1, &n)) return false;
    if (sh.per_layer && __builtin_mul_overflow(n, (uint64_t)c->n_layers, &n)) return false;
    return !__builtin_mul_overflow(n, (uint64_t)sizeof(float), bytes);
}

static kiln_status add_view(kiln_llama2c *m, const char *name, int64_t ne0, int64_t ne1, uint64_t off) {
    kiln_tensor t = {.type = KILN_F32, .n_dims = ne1 == 1 ? 1 : 2, .ne = {ne0, ne1, 1, 1}};
    size_t total;
    if (!kiln_tensor_set_contiguous(&t, &total))
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor %s has an invalid shape", m->map.path, name);
    t.data = m->map.data + off;
    kiln_status s = kiln_weights_add(&m->w, name, &t);
    return s ? kiln_fail_prefix(s, "%s", m->map.path) : KILN_OK;
}

static kiln_status parse(kiln_llama2c *m) {
    const char *path = m->map.path;
    char why[200];
    size_t header;
    kiln_status st = read_header(m->map.data, m->map.size, &m->cfg, &header, why, sizeof why);
    if (st) return kiln_fail(st, "%s: not a valid llama2.c checkpoint: %s", path, why);
    const kiln_llama2c_config *c = &m->cfg;
    const segment *order = c->version == 1 ? g_order_v1 : g_order_v0;

    uint64_t need = header;
    for (const segment *s = order; *s != SEG_END; s++) {
        uint64_t b;
        if (*s == SEG_OUTPUT && c->shared_classifier) continue;
        if (!segment_bytes(*s, c, &b) || __builtin_add_overflow(need, b, &need))
            return kiln_fail(KILN_ERR_FORMAT, "%s: header sizes overflow", path);
    }
    if (need > m->map.size)
        return kiln_fail(KILN_ERR_FORMAT, "%s: truncated file: the header (dim %d, %d layers, vocab %d%s) implies "
                         "%llu bytes but the file has %zu (%llu bytes missing)", path, c->dim, c->n_layers,
                         c->vocab_size, c->shared_classifier ? "" : ", separate classifier",
                         (unsigned long long)need, m->map.size, (unsigned long long)(need - m->map.size));

    uint64_t off = header, tok_off = 0;
    for (const segment *s = order; *s != SEG_END; s++) {
        if (*s == SEG_OUTPUT && c->shared_classifier) continue;
        seg_shape sh = shape_of(*s, c);
        uint64_t one = (uint64_t)sh.ne0 * (uint64_t)sh.ne1 * sizeof(float); /* bounded by need */
        if (*s == SEG_TOK) tok_off = off;
        if (!sh.name) {
            off += one;
            continue;
        }
        int n = sh.per_layer ? c->n_layers : 1;
        for (int l = 0; l < n; l++) {
            char name[96];
            if (sh.per_layer) snprintf(name, sizeof name, sh.name, l);
            else snprintf(name, sizeof name, "%s", sh.name);
            kiln_status st = add_view(m, name, sh.ne0, sh.ne1, off);
            if (st) return st;
            off += one;
        }
    }
    if (c->shared_classifier) return add_view(m, "output.weight", c->dim, c->vocab_size, tok_off);
    return KILN_OK;
}

kiln_status kiln_llama2c_open(const char *path, kiln_llama2c **out) {
    *out = NULL;
    kiln_llama2c *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    kiln_status s = kiln_mapfile_open(path, &m->map);
    if (!s) s = parse(m);
    if (s) {
        kiln_llama2c_close(m);
        return s;
    }
    *out = m;
    return KILN_OK;
}

const kiln_llama2c_config *kiln_llama2c_config_get(const kiln_llama2c *m) { return &m->cfg; }
const kiln_weight_list *kiln_llama2c_weights(const kiln_llama2c *m) { return &m->w; }
const kiln_mapfile *kiln_llama2c_map(const kiln_llama2c *m) { return &m->map; }

uint64_t kiln_llama2c_offset(const kiln_llama2c *m, size_t i) {
    return (uint64_t)((const uint8_t *)m->w.items[i].t.data - m->map.data);
}

void kiln_llama2c_close(kiln_llama2c *m) {
    if (!m) return;
    kiln_weights_free(&m->w);
    kiln_mapfile_close(&m->map);
    free(m);
}
