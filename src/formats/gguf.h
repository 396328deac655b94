/*
 * gguf.h — reader for GGUF files (versions 2 and 3).
 *
 * The file is mmap'd; metadata values and tensor data are views into the mapping
 * (strings are NOT NUL-terminated: use ptr+len). Everything read from the file is
 * validated when it is opened: counts, string lengths, nesting, types, shapes,
 * alignment, tensor extents and overlaps. A file that passes kiln_gguf_open can be
 * walked without further checks.
 */
#ifndef KILN_FORMATS_GGUF_H
#define KILN_FORMATS_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "base/mapfile.h"
#include "tensor/tensor.h"

typedef enum {
    KILN_GGUF_UINT8 = 0,
    KILN_GGUF_INT8 = 1,
    KILN_GGUF_UINT16 = 2,
    KILN_GGUF_INT16 = 3,
    KILN_GGUF_UINT32 = 4,
    KILN_GGUF_INT32 = 5,
    KILN_GGUF_FLOAT32 = 6,
    KILN_GGUF_BOOL = 7,
    KILN_GGUF_STRING = 8,
    KILN_GGUF_ARRAY = 9,
    KILN_GGUF_UINT64 = 10,
    KILN_GGUF_INT64 = 11,
    KILN_GGUF_FLOAT64 = 12,
    KILN_GGUF_TYPE_COUNT
} kiln_gguf_type;

typedef struct {
    const char *ptr; /* into the mapping; not NUL-terminated */
    uint64_t len;
} kiln_gguf_str;

typedef struct kiln_gguf_value kiln_gguf_value;
struct kiln_gguf_value {
    kiln_gguf_type type;
    union {
        uint64_t u;       /* UINT8..UINT64, BOOL (0/1) */
        int64_t i;        /* INT8..INT64 */
        double f;         /* FLOAT32, FLOAT64 */
        kiln_gguf_str s;  /* STRING */
        struct {
            kiln_gguf_type elem_type;
            uint64_t n;
            const uint8_t *data;     /* scalar elements, packed little-endian (unaligned) */
            kiln_gguf_str *strs;     /* elem_type STRING: n strings (owned by the file) */
            kiln_gguf_value *items;  /* elem_type ARRAY: n nested arrays (owned) */
        } arr;
    };
};

typedef struct {
    char *key;             /* NUL-terminated copy */
    kiln_gguf_value value;
} kiln_gguf_kv;

typedef struct {
    char *name;            /* NUL-terminated copy */
    kiln_tensor t;         /* data points into the mapping */
    uint64_t offset;       /* relative to the data section */
    size_t size;           /* bytes */
} kiln_gguf_tensor;

typedef struct {
    kiln_mapfile map;
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv, n_tensors;
    kiln_gguf_kv *kv;
    kiln_gguf_tensor *tensors;
    uint64_t data_offset;  /* start of the tensor data section in the file */
} kiln_gguf;

/* Opens and validates path. On success *out is owned by the caller (kiln_gguf_close).
 * On failure returns KILN_ERR_IO / KILN_ERR_FORMAT / KILN_ERR_NOMEM with a message
 * naming the file and the problem. */
kiln_status kiln_gguf_open(const char *path, kiln_gguf **out);
void kiln_gguf_close(kiln_gguf *g);

/* Lookups; NULL if absent. */
const kiln_gguf_kv *kiln_gguf_find(const kiln_gguf *g, const char *key);
const kiln_gguf_tensor *kiln_gguf_find_tensor(const kiln_gguf *g, const char *name);

/* Typed getters: return true and set *out if key exists and holds an integer
 * (any integer type, value in range) / a float / a string / a bool. */
bool kiln_gguf_get_i64(const kiln_gguf *g, const char *key, int64_t *out);
bool kiln_gguf_get_f64(const kiln_gguf *g, const char *key, double *out);
bool kiln_gguf_get_str(const kiln_gguf *g, const char *key, kiln_gguf_str *out);
bool kiln_gguf_get_bool(const kiln_gguf *g, const char *key, bool *out);
/* Array of the given element type; NULL if absent or of another type. */
const kiln_gguf_value *kiln_gguf_get_arr(const kiln_gguf *g, const char *key, kiln_gguf_type elem);

/* Element i of a scalar array, converted. Caller guarantees i < n. */
int64_t kiln_gguf_arr_i64(const kiln_gguf_value *arr, uint64_t i);
double kiln_gguf_arr_f64(const kiln_gguf_value *arr, uint64_t i);

/* True if s equals the C string c. */
bool kiln_gguf_str_eq(kiln_gguf_str s, const char *c);
/* malloc'd NUL-terminated copy (NULL on failure). */
char *kiln_gguf_str_dup(kiln_gguf_str s);

const char *kiln_gguf_type_name(kiln_gguf_type t);
/* Size in bytes of a scalar type, 0 for STRING/ARRAY/unknown. */
int kiln_gguf_type_size(kiln_gguf_type t);

#endif
