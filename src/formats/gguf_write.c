/*
 * gguf_write.c — GGUF v3 writer.
 *
 * Each metadata value is encoded into its own byte buffer when it is set (u32 type
 * followed by the payload, exactly as it appears in the file), so writing is a matter
 * of concatenating: header, key/value pairs, tensor infos, padding, tensor data.
 * Tensor offsets are computed at write time, each aligned, with overflow checks.
 */
#include "gguf_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"

#define WRITER_MAX_DEPTH 8          /* kiln_gguf_open rejects deeper nesting */
#define WRITER_MAX_NAME 4096        /* kiln_gguf_open's limit on tensor names */
#define WRITER_MAX_KEY 65535
#define WRITER_MAX_DIM ((int64_t)1 << 40)
#define WRITER_DEFAULT_ALIGNMENT 32

typedef struct {
    char *key;
    kiln_buf val; /* u32 type + payload */
} wkv;

typedef struct {
    char *name;
    kiln_dtype type;
    int n_dims;
    int64_t ne[KILN_MAX_DIMS];
    const void *data; /* referenced until write (NULL when fill produces it) */
    kiln_gguf_fill_fn fill;
    void *fill_user;
    size_t size;
} wtensor;

struct kiln_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

kiln_status kiln_gguf_writer_create(kiln_gguf_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory creating a GGUF writer");
}

void kiln_gguf_writer_free(kiln_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        kiln_buf_free(&w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Grows *items (of *cap elements of size sz) to hold one more. */
static kiln_status grow(void **items, size_t *cap, size_t n, size_t sz) {
    if (n < *cap) return KILN_OK;
    size_t nc = *cap ? *cap * 2 : 16, bytes;
    if (!kiln_mul_ok(nc, sz, &bytes)) return kiln_fail(KILN_ERR_NOMEM, "GGUF writer: too many entries");
    void *p = realloc(*items, bytes);
    if (!p) return kiln_fail(KILN_ERR_NOMEM, "GGUF writer: out of memory");
    *items = p;
    *cap = nc;
    return KILN_OK;
}

static kiln_status put_u32(kiln_buf *b, uint32_t v) { return kiln_buf_append(b, &v, 4); }
static kiln_status put_u64(kiln_buf *b, uint64_t v) { return kiln_buf_append(b, &v, 8); }
static kiln_status put_str(kiln_buf *b, const char *s, size_t len) {
    kiln_status st = put_u64(b, len);
    return st ? st : kiln_buf_append(b, s, len);
}

/* Takes ownership of val (freed on failure too) and stores it under key, replacing
 * an earlier value of the same key. */
static kiln_status put_kv(kiln_gguf_writer *w, const char *key, kiln_buf *val) {
    size_t klen = key ? strlen(key) : 0;
    if (klen == 0 || klen > WRITER_MAX_KEY) {
        kiln_buf_free(val);
        return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: metadata key must be 1 to %d bytes", WRITER_MAX_KEY);
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            kiln_buf_free(&w->kv[i].val);
            w->kv[i].val = *val;
            return KILN_OK;
        }
    }
    kiln_status st = grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv);
    char *k = st ? NULL : kiln_strdup(key);
    if (!k) {
        kiln_buf_free(val);
        return st ? st : kiln_fail(KILN_ERR_NOMEM, "GGUF writer: out of memory");
    }
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].val = *val;
    w->n_kv++;
    return KILN_OK;
}

static kiln_status set_scalar(kiln_gguf_writer *w, const char *key, kiln_gguf_type type, const void *v) {
    kiln_buf b = {0};
    kiln_status st = put_u32(&b, type);
    if (!st) st = kiln_buf_append(&b, v, (size_t)kiln_gguf_type_size(type));
    if (st) {
        kiln_buf_free(&b);
        return st;
    }
    return put_kv(w, key, &b);
}

kiln_status kiln_gguf_writer_set_u32(kiln_gguf_writer *w, const char *key, uint32_t value) {
    return set_scalar(w, key, KILN_GGUF_UINT32, &value);
}
kiln_status kiln_gguf_writer_set_i32(kiln_gguf_writer *w, const char *key, int32_t value) {
    return set_scalar(w, key, KILN_GGUF_INT32, &value);
}
kiln_status kiln_gguf_writer_set_u64(kiln_gguf_writer *w, const char *key, uint64_t value) {
    return set_scalar(w, key, KILN_GGUF_UINT64, &value);
}
kiln_status kiln_gguf_writer_set_f32(kiln_gguf_writer *w, const char *key, float value) {
    return set_scalar(w, key, KILN_GGUF_FLOAT32, &value);
}
kiln_status kiln_gguf_writer_set_bool(kiln_gguf_writer *w, const char *key, bool value) {
    uint8_t b = value ? 1 : 0;
    return set_scalar(w, key, KILN_GGUF_BOOL, &b);
}

kiln_status kiln_gguf_writer_set_str(kiln_gguf_writer *w, const char *key, const char *value) {
    if (!value) return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: NULL string for key '%s'", key ? key : "");
    kiln_buf b = {0};
    kiln_status st = put_u32(&b, KILN_GGUF_STRING);
    if (!st) st = put_str(&b, value, strlen(value));
    if (st) {
        kiln_buf_free(&b);
        return st;
    }
    return put_kv(w, key, &b);
}

/* Appends the payload of an array of scalars (elem type, count, elements). */
static kiln_status put_scalar_arr(kiln_buf *b, kiln_gguf_type elem, const void *data, uint64_t n) {
    int es = kiln_gguf_type_size(elem);
    size_t bytes;
    if (!es) return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: %s is not a scalar array element type",
                              kiln_gguf_type_name(elem));
    if (n > SIZE_MAX || !kiln_mul_ok((size_t)n, (size_t)es, &bytes))
        return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: array of %llu elements is too large",
                         (unsigned long long)n);
    if (n && !data) return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: NULL array data");
    kiln_status st = put_u32(b, elem);
    if (!st) st = put_u64(b, n);
    if (!st && bytes) st = kiln_buf_append(b, data, bytes);
    return st;
}

kiln_status kiln_gguf_writer_set_arr(kiln_gguf_writer *w, const char *key, kiln_gguf_type elem, const void *data,
                                     uint64_t n) {
    kiln_buf b = {0};
    kiln_status st = put_u32(&b, KILN_GGUF_ARRAY);
    if (!st) st = put_scalar_arr(&b, elem, data, n);
    if (st) {
        kiln_buf_free(&b);
        return st;
    }
    return put_kv(w, key, &b);
}

kiln_status kiln_gguf_writer_set_str_arr(kiln_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    kiln_buf b = {0};
    kiln_status st = put_u32(&b, KILN_GGUF_ARRAY);
    if (!st) st = put_u32(&b, KILN_GGUF_STRING);
    if (!st) st = put_u64(&b, n);
    for (uint64_t i = 0; i < n && !st; i++) {
        if (!strs[i]) st = kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: NULL string %llu in array '%s'",
                                     (unsigned long long)i, key ? key : "");
        else st = put_str(&b, strs[i], strlen(strs[i]));
    }
    if (st) {
        kiln_buf_free(&b);
        return st;
    }
    return put_kv(w, key, &b);
}

/* Appends the payload of v (without its type, which the caller has written). */
static kiln_status put_payload(kiln_buf *b, const kiln_gguf_value *v, int depth) {
    if (v->type == KILN_GGUF_STRING) return put_str(b, v->s.ptr, (size_t)v->s.len);
    if (v->type != KILN_GGUF_ARRAY) {
        int es = kiln_gguf_type_size(v->type);
        if (!es) return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: unknown value type %d", (int)v->type);
        uint8_t raw[8];
        switch (v->type) {
        case KILN_GGUF_UINT8: case KILN_GGUF_BOOL: raw[0] = (uint8_t)v->u; break;
        case KILN_GGUF_INT8: raw[0] = (uint8_t)(int8_t)v->i; break;
        case KILN_GGUF_UINT16: { uint16_t x = (uint16_t)v->u; memcpy(raw, &x, 2); break; }
        case KILN_GGUF_INT16: { int16_t x = (int16_t)v->i; memcpy(raw, &x, 2); break; }
        case KILN_GGUF_UINT32: { uint32_t x = (uint32_t)v->u; memcpy(raw, &x, 4); break; }
        case KILN_GGUF_INT32: { int32_t x = (int32_t)v->i; memcpy(raw, &x, 4); break; }
        case KILN_GGUF_FLOAT32: { float x = (float)v->f; memcpy(raw, &x, 4); break; }
        case KILN_GGUF_UINT64: memcpy(raw, &v->u, 8); break;
        case KILN_GGUF_INT64: memcpy(raw, &v->i, 8); break;
        default: memcpy(raw, &v->f, 8); break; /* FLOAT64 */
        }
        return kiln_buf_append(b, raw, (size_t)es);
    }
    if (depth >= WRITER_MAX_DEPTH)
        return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: arrays nested deeper than %d", WRITER_MAX_DEPTH);
    kiln_gguf_type et = v->arr.elem_type;
    if (et != KILN_GGUF_STRING && et != KILN_GGUF_ARRAY) return put_scalar_arr(b, et, v->arr.data, v->arr.n);
    kiln_status st = put_u32(b, et);
    if (!st) st = put_u64(b, v->arr.n);
    if (!st && v->arr.n && !(et == KILN_GGUF_STRING ? (void *)v->arr.strs : (void *)v->arr.items))
        st = kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: NULL array elements");
    for (uint64_t i = 0; i < v->arr.n && !st; i++) {
        if (et == KILN_GGUF_STRING) st = put_str(b, v->arr.strs[i].ptr, (size_t)v->arr.strs[i].len);
        else if (v->arr.items[i].type != KILN_GGUF_ARRAY)
            st = kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: element %llu of an array of arrays is not an array",
                           (unsigned long long)i);
        else st = put_payload(b, &v->arr.items[i], depth + 1);
    }
    return st;
}

kiln_status kiln_gguf_writer_set_value(kiln_gguf_writer *w, const char *key, const kiln_gguf_value *v) {
    kiln_buf b = {0};
    if ((unsigned)v->type >= KILN_GGUF_TYPE_COUNT)
        return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: unknown value type %d", (int)v->type);
    kiln_status st = put_u32(&b, v->type);
    if (!st) st = put_payload(&b, v, 0);
    if (st) {
        kiln_buf_free(&b);
        return st;
    }
    return put_kv(w, key, &b);
}

static kiln_status add_tensor(kiln_gguf_writer *w, const char *name, kiln_dtype type, int n_dims, const int64_t *ne,
                              const void *data, kiln_gguf_fill_fn fill, void *fill_user) {
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen > WRITER_MAX_NAME)
        return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: tensor name must be 1 to %d bytes", WRITER_MAX_NAME);
    if (!kiln_dtype_get(type))
        return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: tensor '%s' has unknown type %d", name, (int)type);
    if (n_dims < 1 || n_dims > KILN_MAX_DIMS)
        return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: tensor '%s' has %d dimensions (1 to %d allowed)", name,
                         n_dims, KILN_MAX_DIMS);
    if (!data && !fill) return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: tensor '%s' has no data", name);
    kiln_tensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1 || ne[d] > WRITER_MAX_DIM)
            return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: tensor '%s' dimension %d is %lld", name, d,
                             (long long)ne[d]);
        t.ne[d] = ne[d];
    }
    size_t size;
    if (!kiln_tensor_set_contiguous(&t, &size))
        return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: tensor '%s': a row of %lld is not valid for type %s", name,
                         (long long)ne[0], kiln_dtype_name(type));
    for (size_t i = 0; i < w->n_t; i++) {
        if (strcmp(w->t[i].name, name) == 0)
            return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: duplicate tensor name '%s'", name);
    }
    kiln_status st = grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t);
    if (st) return st;
    wtensor *wt = &w->t[w->n_t];
    if (!(wt->name = kiln_strdup(name))) return kiln_fail(KILN_ERR_NOMEM, "GGUF writer: out of memory");
    wt->type = type;
    wt->n_dims = n_dims;
    memcpy(wt->ne, t.ne, sizeof wt->ne);
    wt->data = data;
    wt->fill = fill;
    wt->fill_user = fill_user;
    wt->size = size;
    w->n_t++;
    return KILN_OK;
}

kiln_status kiln_gguf_writer_add_tensor(kiln_gguf_writer *w, const char *name, kiln_dtype type, int n_dims,
                                        const int64_t *ne, const void *data) {
    return add_tensor(w, name, type, n_dims, ne, data, NULL, NULL);
}

kiln_status kiln_gguf_writer_add_tensor_fn(kiln_gguf_writer *w, const char *name, kiln_dtype type, int n_dims,
                                           const int64_t *ne, kiln_gguf_fill_fn fill, void *user) {
    if (!fill) return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: tensor '%s' has no fill function", name ? name : "");
    return add_tensor(w, name, type, n_dims, ne, NULL, fill, user);
}

static kiln_status find_alignment(const kiln_gguf_writer *w, uint64_t *align) {
    *align = WRITER_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0) continue;
        uint32_t type, v = 0;
        memcpy(&type, w->kv[i].val.data, 4);
        if (type == KILN_GGUF_UINT32) memcpy(&v, w->kv[i].val.data + 4, 4);
        if (v == 0 || (v & (v - 1)) || v > 65536) /* what kiln_gguf_open accepts */
            return kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: general.alignment must be a u32 power of two up to "
                             "65536");
        *align = v;
    }
    return KILN_OK;
}

/* Header: everything before the tensor data, padded to the alignment. */
static kiln_status build_header(const kiln_gguf_writer *w, uint64_t align, kiln_buf *b) {
    kiln_status st = kiln_buf_append(b, "GGUF", 4);
    if (!st) st = put_u32(b, 3);
    if (!st) st = put_u64(b, w->n_t);
    if (!st) st = put_u64(b, w->n_kv);
    for (size_t i = 0; i < w->n_kv && !st; i++) {
        st = put_str(b, w->kv[i].key, strlen(w->kv[i].key));
        if (!st) st = kiln_buf_append(b, w->kv[i].val.data, w->kv[i].val.len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t && !st; i++) {
        const wtensor *t = &w->t[i];
        st = put_str(b, t->name, strlen(t->name));
        if (!st) st = put_u32(b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims && !st; d++) st = put_u64(b, (uint64_t)t->ne[d]);
        if (!st) st = put_u32(b, (uint32_t)t->type);
        if (!st) st = put_u64(b, off);
        uint64_t padded = ((uint64_t)t->size + align - 1) / align * align;
        if (!st && __builtin_add_overflow(off, padded, &off))
            st = kiln_fail(KILN_ERR_INVALID_ARG, "GGUF writer: tensor data too large");
    }
    static const uint8_t zeros[64];
    while (!st && b->len % align) {
        size_t pad = (size_t)(align - b->len % align);
        st = kiln_buf_append(b, zeros, pad < sizeof zeros ? pad : sizeof zeros);
    }
    return st;
}

static bool write_all(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n; }

#define FILL_CHUNK_BYTES ((size_t)16 << 20)

/* Writes a tensor produced by its fill function, a chunk of rows at a time through
 * *buf (grown as needed). Returns KILN_OK, the callback's status, or KILN_ERR_IO with
 * *io_failed set. */
static kiln_status write_filled(FILE *f, const wtensor *t, uint8_t **buf, size_t *cap, bool *io_failed) {
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t row_bytes = t->size / (size_t)rows;
    int64_t per = (int64_t)(FILL_CHUNK_BYTES / row_bytes);
    if (per < 1) per = 1;
    if (per > rows) per = rows;
    size_t need = (size_t)per * row_bytes;
    if (need > *cap) {
        uint8_t *p = realloc(*buf, need);
        if (!p) return kiln_fail(KILN_ERR_NOMEM, "GGUF writer: out of memory for tensor '%s'", t->name);
        *buf = p;
        *cap = need;
    }
    for (int64_t r = 0; r < rows; r += per) {
        int64_t n = rows - r < per ? rows - r : per;
        kiln_status st = t->fill(t->fill_user, r, n, *buf);
        if (st) return st;
        if (!write_all(f, *buf, (size_t)n * row_bytes)) {
            *io_failed = true;
            return KILN_ERR_IO;
        }
    }
    return KILN_OK;
}

static bool write_padding(FILE *f, size_t n) {
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (fwrite(zeros, 1, k, f) != k) return false;
        n -= k;
    }
    return true;
}

kiln_status kiln_gguf_writer_write(kiln_gguf_writer *w, const char *path) {
    uint64_t align;
    kiln_status st = find_alignment(w, &align);
    if (st) return st;
    kiln_buf hdr = {0};
    if ((st = build_header(w, align, &hdr))) {
        kiln_buf_free(&hdr);
        return kiln_fail_prefix(st, "%s", path);
    }
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        kiln_buf_free(&hdr);
        return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = kiln_fail(KILN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        kiln_buf_free(&hdr);
        return st;
    }
    bool ok = write_all(f, hdr.data, hdr.len);
    uint8_t *chunk = NULL;
    size_t chunk_cap = 0;
    kiln_status fill_st = KILN_OK;
    for (size_t i = 0; i < w->n_t && ok; i++) {
        size_t pad = (size_t)((align - w->t[i].size % align) % align);
        if (w->t[i].fill) {
            bool io_failed = false;
            fill_st = write_filled(f, &w->t[i], &chunk, &chunk_cap, &io_failed);
            ok = !fill_st;
            if (io_failed) fill_st = KILN_OK; /* reported below with errno */
            if (!ok) break;
        } else {
            ok = write_all(f, w->t[i].data, w->t[i].size);
        }
        ok = ok && write_padding(f, pad);
    }
    free(chunk);
    int err = ok ? 0 : errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        remove(tmp);
        if (fill_st) st = kiln_fail_prefix(fill_st, "%s", path);
        else st = kiln_fail(KILN_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    free(tmp);
    kiln_buf_free(&hdr);
    return st;
}
