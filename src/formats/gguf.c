/*
 * gguf.c — GGUF v2/v3 reader.
 *
 * Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv
 * (string key, u32 type, value), then n_tensors (string name, u32 n_dims,
 * u64 ne[n_dims], u32 type, u64 offset), padding to `general.alignment` (default
 * 32), then the tensor data. All integers little-endian.
 *
 * Every read goes through a cursor that checks the remaining bytes first, and every
 * count is checked against the bytes left before anything is allocated for it, so
 * allocations are bounded by the file size.
 */
#include "gguf.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

#define GGUF_MAX_DEPTH 8
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    const uint8_t *p;
    size_t pos, size;
    const char *path;
} cursor;

static kiln_status truncated(const cursor *c, const char *what) {
    return kiln_fail(KILN_ERR_FORMAT, "%s: truncated file: cannot read %s at byte %zu (file is %zu bytes)",
                     c->path, what, c->pos, c->size);
}

static kiln_status rd(cursor *c, void *dst, size_t n, const char *what) {
    if (c->size - c->pos < n) return truncated(c, what);
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return KILN_OK;
}

static kiln_status rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static kiln_status rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

static kiln_status rd_str(cursor *c, kiln_gguf_str *s, const char *what) {
    uint64_t len = 0;
    kiln_status st = rd_u64(c, &len, what);
    if (st) return st;
    if (len > c->size - c->pos)
        return kiln_fail(KILN_ERR_FORMAT, "%s: %s at byte %zu claims %llu bytes, past the end of the file",
                         c->path, what, c->pos - 8, (unsigned long long)len);
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return KILN_OK;
}

int kiln_gguf_type_size(kiln_gguf_type t) {
    switch (t) {
    case KILN_GGUF_UINT8: case KILN_GGUF_INT8: case KILN_GGUF_BOOL: return 1;
    case KILN_GGUF_UINT16: case KILN_GGUF_INT16: return 2;
    case KILN_GGUF_UINT32: case KILN_GGUF_INT32: case KILN_GGUF_FLOAT32: return 4;
    case KILN_GGUF_UINT64: case KILN_GGUF_INT64: case KILN_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *kiln_gguf_type_name(kiln_gguf_type t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                  "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < KILN_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* Decodes one scalar at p into v (v->type already set). */
static void decode_scalar(kiln_gguf_value *v, const uint8_t *p) {
    switch (v->type) {
    case KILN_GGUF_UINT8: v->u = p[0]; break;
    case KILN_GGUF_BOOL: v->u = p[0] != 0; break;
    case KILN_GGUF_INT8: v->i = (int8_t)p[0]; break;
    case KILN_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); v->u = x; break; }
    case KILN_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); v->i = x; break; }
    case KILN_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); v->u = x; break; }
    case KILN_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); v->i = x; break; }
    case KILN_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); v->f = x; break; }
    case KILN_GGUF_UINT64: memcpy(&v->u, p, 8); break;
    case KILN_GGUF_INT64: memcpy(&v->i, p, 8); break;
    case KILN_GGUF_FLOAT64: memcpy(&v->f, p, 8); break;
    default: break;
    }
}

static void free_value(kiln_gguf_value *v) {
    if (v->type != KILN_GGUF_ARRAY) return;
    free(v->arr.strs);
    if (v->arr.items) {
        for (uint64_t i = 0; i < v->arr.n; i++) free_value(&v->arr.items[i]);
        free(v->arr.items);
    }
    v->arr.strs = NULL;
    v->arr.items = NULL;
}

static kiln_status rd_value(cursor *c, kiln_gguf_type type, kiln_gguf_value *v, int depth, const char *key);

static kiln_status rd_array(cursor *c, kiln_gguf_value *v, int depth, const char *key) {
    uint32_t et = 0;
    uint64_t n = 0;
    kiln_status st;
    if (depth >= GGUF_MAX_DEPTH)
        return kiln_fail(KILN_ERR_FORMAT, "%s: key '%s': arrays nested deeper than %d", c->path, key, GGUF_MAX_DEPTH);
    if ((st = rd_u32(c, &et, "array element type")) || (st = rd_u64(c, &n, "array length"))) return st;
    if (et >= KILN_GGUF_TYPE_COUNT)
        return kiln_fail(KILN_ERR_FORMAT, "%s: key '%s': unknown array element type %u", c->path, key, et);
    v->arr.elem_type = (kiln_gguf_type)et;
    v->arr.n = 0;
    size_t left = c->size - c->pos;
    int es = kiln_gguf_type_size((kiln_gguf_type)et);
    /* Each element takes at least min_bytes of the file: a bound on n before allocating. */
    size_t min_bytes = es ? (size_t)es : (et == KILN_GGUF_STRING ? 8 : 12);
    if (n > left / min_bytes)
        return kiln_fail(KILN_ERR_FORMAT, "%s: key '%s': array of %llu elements does not fit in the file",
                         c->path, key, (unsigned long long)n);
    if (es) {
        v->arr.data = c->p + c->pos;
        v->arr.n = n;
        c->pos += (size_t)n * (size_t)es;
        return KILN_OK;
    }
    if (et == KILN_GGUF_STRING) {
        v->arr.strs = kiln_malloc_array(n, sizeof *v->arr.strs);
        if (!v->arr.strs) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c->path);
        for (uint64_t i = 0; i < n; i++) {
            if ((st = rd_str(c, &v->arr.strs[i], "string array element"))) return st;
        }
        v->arr.n = n;
        return KILN_OK;
    }
    v->arr.items = kiln_calloc_array(n, sizeof *v->arr.items);
    if (!v->arr.items) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c->path);
    v->arr.n = n; /* items are zeroed, so free_value is safe on a partial parse */
    for (uint64_t i = 0; i < n; i++) {
        if ((st = rd_value(c, KILN_GGUF_ARRAY, &v->arr.items[i], depth + 1, key))) return st;
    }
    return KILN_OK;
}

static kiln_status rd_value(cursor *c, kiln_gguf_type type, kiln_gguf_value *v, int depth, const char *key) {
    v->type = type;
    if (type == KILN_GGUF_STRING) return rd_str(c, &v->s, "string value");
    if (type == KILN_GGUF_ARRAY) return rd_array(c, v, depth, key);
    int es = kiln_gguf_type_size(type);
    if (!es) return kiln_fail(KILN_ERR_FORMAT, "%s: key '%s': unknown value type %u", c->path, key, (unsigned)type);
    if (c->size - c->pos < (size_t)es) return truncated(c, "value");
    decode_scalar(v, c->p + c->pos);
    c->pos += (size_t)es;
    return KILN_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const kiln_gguf_tensor *x = *(kiln_gguf_tensor *const *)a, *y = *(kiln_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static kiln_status read_tensor_infos(kiln_gguf *g, cursor *c) {
    kiln_status st;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        kiln_gguf_tensor *t = &g->tensors[i];
        kiln_gguf_str name = {0};
        uint32_t n_dims = 0, type = 0;
        if ((st = rd_str(c, &name, "tensor name"))) return st;
        if (name.len == 0 || name.len > 4096 || memchr(name.ptr, 0, name.len))
            return kiln_fail(KILN_ERR_FORMAT, "%s: tensor %llu has an invalid name", c->path, (unsigned long long)i);
        if (!(t->name = kiln_gguf_str_dup(name))) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c->path);
        if ((st = rd_u32(c, &n_dims, "tensor dimension count"))) return st;
        if (n_dims == 0 || n_dims > KILN_MAX_DIMS)
            return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1 to %d allowed)", c->path, t->name,
                             n_dims, KILN_MAX_DIMS);
        t->t.n_dims = (int)n_dims;
        for (int d = 0; d < KILN_MAX_DIMS; d++) t->t.ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t ne = 0;
            if ((st = rd_u64(c, &ne, "tensor dimension"))) return st;
            if (ne == 0 || ne > ((uint64_t)1 << 40))
                return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has an absurd dimension %u: %llu", c->path,
                                 t->name, d, (unsigned long long)ne);
            t->t.ne[d] = (int64_t)ne;
        }
        if ((st = rd_u32(c, &type, "tensor type")) || (st = rd_u64(c, &t->offset, "tensor offset"))) return st;
        if (!kiln_dtype_get(type))
            return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has unknown type %u", c->path, t->name, type);
        t->t.type = (kiln_dtype)type;
        size_t total;
        if (!kiln_tensor_set_contiguous(&t->t, &total))
            return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': shape is not valid for type %s (row of %lld)", c->path,
                             t->name, kiln_dtype_name(type), (long long)t->t.ne[0]);
        t->size = total;
        if (t->offset % g->alignment != 0)
            return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' offset %llu is not aligned to %u", c->path, t->name,
                             (unsigned long long)t->offset, g->alignment);
    }
    return KILN_OK;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Rejects a repeated name among n strings found at base + i*stride. Sorting keeps this
 * O(n log n): a file may hold millions of entries. */
static kiln_status check_unique(const char *path, const void *base, size_t stride, uint64_t n, const char *what) {
    if (n < 2) return KILN_OK;
    const char **names = kiln_malloc_array((size_t)n, sizeof *names);
    if (!names) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    for (uint64_t i = 0; i < n; i++) memcpy(&names[i], (const char *)base + i * stride, sizeof *names);
    qsort(names, (size_t)n, sizeof *names, cmp_cstr);
    kiln_status st = KILN_OK;
    for (uint64_t i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: duplicate %s '%s'", path, what, names[i]);
            break;
        }
    }
    free(names);
    return st;
}

/* Places the data section and checks every tensor lies inside it, without overlap. */
static kiln_status check_extents(kiln_gguf *g, size_t header_end) {
    const char *path = g->map.path;
    uint64_t a = g->alignment;
    uint64_t data_off = (header_end + a - 1) / a * a;
    if (g->n_tensors && data_off > g->map.size)
        return kiln_fail(KILN_ERR_FORMAT, "%s: truncated file: no tensor data section", path);
    g->data_offset = data_off;
    uint64_t data_size = g->map.size > data_off ? g->map.size - data_off : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        kiln_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_size || t->size > data_size - t->offset)
            return kiln_fail(KILN_ERR_FORMAT,
                             "%s: tensor '%s' (%zu bytes at offset %llu) extends past the end of the file "
                             "(data section is %llu bytes)",
                             path, t->name, t->size, (unsigned long long)t->offset, (unsigned long long)data_size);
        t->t.data = g->map.data + data_off + t->offset;
    }
    kiln_gguf_tensor **order = kiln_malloc_array(g->n_tensors, sizeof *order);
    if (!order) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    for (uint64_t i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof *order, cmp_offset);
    kiln_status st = KILN_OK;
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        if (order[i - 1]->offset + order[i - 1]->size > order[i]->offset) {
            st = kiln_fail(KILN_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path, order[i - 1]->name,
                           order[i]->name);
            break;
        }
    }
    free(order);
    return st;
}

static kiln_status parse(kiln_gguf *g) {
    cursor c = {g->map.data, 0, g->map.size, g->map.path};
    char magic[4];
    kiln_status st;
    if (c.size < 4) return truncated(&c, "magic");
    if ((st = rd(&c, magic, 4, "magic"))) return st;
    if (memcmp(magic, "GGUF", 4) != 0) return kiln_fail(KILN_ERR_FORMAT, "%s: not a GGUF file (bad magic)", c.path);
    if ((st = rd_u32(&c, &g->version, "version"))) return st;
    if (g->version == 1)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (convert it to v3)", c.path);
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: big-endian GGUF files are not supported", c.path);
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: unknown GGUF version %u", c.path, g->version);
    }
    if ((st = rd_u64(&c, &g->n_tensors, "tensor count")) || (st = rd_u64(&c, &g->n_kv, "metadata count"))) return st;
    /* A kv takes at least 8+4+1 bytes, a tensor info at least 8+1+4+8+4+8. */
    size_t left = c.size - c.pos;
    if (g->n_kv > left / 13 || g->n_tensors > left / 33)
        return kiln_fail(KILN_ERR_FORMAT, "%s: header claims %llu metadata entries and %llu tensors, more than the "
                         "file can hold", c.path, (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors);
    g->kv = kiln_calloc_array(g->n_kv, sizeof *g->kv);
    g->tensors = kiln_calloc_array(g->n_tensors, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c.path);

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        kiln_gguf_kv *kv = &g->kv[i];
        kiln_gguf_str key = {0};
        uint32_t type = 0;
        if ((st = rd_str(&c, &key, "metadata key"))) return st;
        if (key.len == 0 || key.len > 65535 || memchr(key.ptr, 0, key.len))
            return kiln_fail(KILN_ERR_FORMAT, "%s: metadata entry %llu has an invalid key", c.path, (unsigned long long)i);
        if (!(kv->key = kiln_gguf_str_dup(key))) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", c.path);
        if ((st = rd_u32(&c, &type, "metadata type"))) return st;
        if (type >= KILN_GGUF_TYPE_COUNT)
            return kiln_fail(KILN_ERR_FORMAT, "%s: key '%s' has unknown type %u", c.path, kv->key, type);
        if ((st = rd_value(&c, (kiln_gguf_type)type, &kv->value, 0, kv->key))) return st;
        if (strcmp(kv->key, "general.alignment") == 0) {
            if (kv->value.type != KILN_GGUF_UINT32 || kv->value.u == 0 || (kv->value.u & (kv->value.u - 1)) ||
                kv->value.u > 65536)
                return kiln_fail(KILN_ERR_FORMAT, "%s: general.alignment must be a u32 power of two", c.path);
            g->alignment = (uint32_t)kv->value.u;
        }
    }
    if ((st = check_unique(c.path, &g->kv[0].key, sizeof *g->kv, g->n_kv, "metadata key"))) return st;
    if ((st = read_tensor_infos(g, &c))) return st;
    if ((st = check_unique(c.path, &g->tensors[0].name, sizeof *g->tensors, g->n_tensors, "tensor name"))) return st;
    return check_extents(g, c.pos);
}

kiln_status kiln_gguf_open(const char *path, kiln_gguf **out) {
    *out = NULL;
    kiln_gguf *g = calloc(1, sizeof *g);
    if (!g) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    kiln_status st = kiln_mapfile_open(path, &g->map);
    if (!st) st = parse(g);
    if (st) {
        kiln_gguf_close(g);
        return st;
    }
    *out = g;
    return KILN_OK;
}

void kiln_gguf_close(kiln_gguf *g) {
    if (!g) return;
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free_value(&g->kv[i].value);
        }
        free(g->kv);
    }
    if (g->tensors) {
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
        free(g->tensors);
    }
    kiln_mapfile_close(&g->map);
    free(g);
}

const kiln_gguf_kv *kiln_gguf_find(const kiln_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    }
    return NULL;
}

const kiln_gguf_tensor *kiln_gguf_find_tensor(const kiln_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    }
    return NULL;
}

bool kiln_gguf_get_i64(const kiln_gguf *g, const char *key, int64_t *out) {
    const kiln_gguf_kv *kv = kiln_gguf_find(g, key);
    if (!kv) return false;
    switch (kv->value.type) {
    case KILN_GGUF_UINT8: case KILN_GGUF_UINT16: case KILN_GGUF_UINT32: case KILN_GGUF_UINT64:
        if (kv->value.u > INT64_MAX) return false;
        *out = (int64_t)kv->value.u;
        return true;
    case KILN_GGUF_INT8: case KILN_GGUF_INT16: case KILN_GGUF_INT32: case KILN_GGUF_INT64:
        *out = kv->value.i;
        return true;
    default:
        return false;
    }
}

bool kiln_gguf_get_f64(const kiln_gguf *g, const char *key, double *out) {
    const kiln_gguf_kv *kv = kiln_gguf_find(g, key);
    if (!kv) return false;
    if (kv->value.type == KILN_GGUF_FLOAT32 || kv->value.type == KILN_GGUF_FLOAT64) {
        *out = kv->value.f;
        return true;
    }
    int64_t i;
    if (kiln_gguf_get_i64(g, key, &i)) {
        *out = (double)i;
        return true;
    }
    return false;
}

bool kiln_gguf_get_str(const kiln_gguf *g, const char *key, kiln_gguf_str *out) {
    const kiln_gguf_kv *kv = kiln_gguf_find(g, key);
    if (!kv || kv->value.type != KILN_GGUF_STRING) return false;
    *out = kv->value.s;
    return true;
}

bool kiln_gguf_get_bool(const kiln_gguf *g, const char *key, bool *out) {
    const kiln_gguf_kv *kv = kiln_gguf_find(g, key);
    if (!kv || kv->value.type != KILN_GGUF_BOOL) return false;
    *out = kv->value.u != 0;
    return true;
}

const kiln_gguf_value *kiln_gguf_get_arr(const kiln_gguf *g, const char *key, kiln_gguf_type elem) {
    const kiln_gguf_kv *kv = kiln_gguf_find(g, key);
    if (!kv || kv->value.type != KILN_GGUF_ARRAY || kv->value.arr.elem_type != elem) return NULL;
    return &kv->value;
}

int64_t kiln_gguf_arr_i64(const kiln_gguf_value *arr, uint64_t i) {
    kiln_gguf_value v = {.type = arr->arr.elem_type};
    decode_scalar(&v, arr->arr.data + i * (uint64_t)kiln_gguf_type_size(arr->arr.elem_type));
    switch (v.type) {
    case KILN_GGUF_INT8: case KILN_GGUF_INT16: case KILN_GGUF_INT32: case KILN_GGUF_INT64: return v.i;
    case KILN_GGUF_FLOAT32: case KILN_GGUF_FLOAT64: return (int64_t)v.f;
    default: return (int64_t)v.u;
    }
}

double kiln_gguf_arr_f64(const kiln_gguf_value *arr, uint64_t i) {
    kiln_gguf_value v = {.type = arr->arr.elem_type};
    decode_scalar(&v, arr->arr.data + i * (uint64_t)kiln_gguf_type_size(arr->arr.elem_type));
    switch (v.type) {
    case KILN_GGUF_FLOAT32: case KILN_GGUF_FLOAT64: return v.f;
    case KILN_GGUF_INT8: case KILN_GGUF_INT16: case KILN_GGUF_INT32: case KILN_GGUF_INT64: return (double)v.i;
    default: return (double)v.u;
    }
}

bool kiln_gguf_str_eq(kiln_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

char *kiln_gguf_str_dup(kiln_gguf_str s) { return kiln_strndup(s.ptr, (size_t)s.len); }
