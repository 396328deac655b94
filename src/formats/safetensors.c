/*
 * safetensors.c — safetensors reader: single files, index.json-sharded models, folders.
 *
 * The JSON header is copied out of the mapping (so cJSON always sees a NUL-terminated
 * string) and parsed; the tensors stay in the mapping. Every number that comes from the
 * header is checked to be an exact non-negative integer below 2^53 before it is used,
 * and every size product is overflow-checked.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/mapfile.h"
#include "base/status.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's limit */
#define ST_MAX_INDEX ((size_t)100 << 20)
#define ST_MAX_EXACT 9007199254740992.0     /* 2^53: larger JSON numbers are inexact */

typedef struct {
    char *key, *value;
} meta_kv;

struct kiln_safetensors {
    kiln_mapfile *files;
    size_t n_files;
    kiln_weight_list w;
    size_t *w_file;   /* per weight: index into files */
    uint64_t *w_off;  /* per weight: offset of its data from the start of its file */
    size_t loc_cap;
    meta_kv *meta;    /* __metadata__ of files[0] */
    size_t n_meta;
};

/* safetensors dtype names that kiln has a type for. */
static const struct {
    const char *name;
    kiln_dtype type;
} g_dtypes[] = {
    {"F32", KILN_F32}, {"F16", KILN_F16}, {"BF16", KILN_BF16}, {"F64", KILN_F64},
    {"I8", KILN_I8},   {"I16", KILN_I16}, {"I32", KILN_I32},   {"I64", KILN_I64},
};
/* Valid safetensors dtypes kiln cannot represent: rejected as unsupported, not malformed. */
static const char *const g_unsupported_dtypes[] = {"BOOL", "U8", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};

/* An exact non-negative integer JSON number below 2^53. */
static bool json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_EXACT)) return false; /* also rejects NaN and inf */
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return false;
    *out = u;
    return true;
}

static kiln_status add_weight(kiln_safetensors *st, const char *name, const kiln_tensor *t, size_t file,
                              uint64_t off) {
    kiln_status s = kiln_weights_add(&st->w, name, t);
    if (s) return s;
    if (st->loc_cap < st->w.cap) {
        size_t *wf = kiln_malloc_array(st->w.cap, sizeof *wf);
        uint64_t *wo = kiln_malloc_array(st->w.cap, sizeof *wo);
        if (!wf || !wo) {
            free(wf);
            free(wo);
            st->w.n--; /* keep the lists in step */
            free(st->w.items[st->w.n].name);
            return kiln_fail(KILN_ERR_NOMEM, "out of memory listing weights");
        }
        if (st->w.n > 1) {
            memcpy(wf, st->w_file, (st->w.n - 1) * sizeof *wf);
            memcpy(wo, st->w_off, (st->w.n - 1) * sizeof *wo);
        }
        free(st->w_file);
        free(st->w_off);
        st->w_file = wf;
        st->w_off = wo;
        st->loc_cap = st->w.cap;
    }
    st->w_file[st->w.n - 1] = file;
    st->w_off[st->w.n - 1] = off;
    return KILN_OK;
}

static kiln_status parse_metadata(kiln_safetensors *st, const cJSON *meta, const char *path, bool keep) {
    if (!cJSON_IsObject(meta)) return kiln_fail(KILN_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
    size_t n = (size_t)cJSON_GetArraySize(meta);
    if (keep) {
        st->meta = kiln_calloc_array(n, sizeof *st->meta);
        if (!st->meta) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, meta) {
        if (!cJSON_IsString(e) || !e->string)
            return kiln_fail(KILN_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", path,
                             e->string ? e->string : "?");
        if (!keep) continue;
        meta_kv *kv = &st->meta[st->n_meta];
        kv->key = kiln_strdup(e->string);
        kv->value = kiln_strdup(e->valuestring);
        st->n_meta++; /* counted before the check so close frees a partial pair */
        if (!kv->key || !kv->value) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    }
    return KILN_OK;
}

/* Validates one tensor entry of the header and appends it. */
static kiln_status parse_tensor(kiln_safetensors *st, size_t fi, const cJSON *e, const uint8_t *data,
                                uint64_t data_size, uint64_t data_start) {
    const char *path = st->files[fi].path, *name = e->string;
    if (!name || !*name) return kiln_fail(KILN_ERR_FORMAT, "%s: a tensor has an empty name", path);
    if (!cJSON_IsObject(e))
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has no dtype string", path, name);
    if (!cJSON_IsArray(js)) return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has no shape array", path, name);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has no data_offsets pair", path, name);

    kiln_tensor t = {0};
    bool found = false;
    for (size_t i = 0; i < sizeof g_dtypes / sizeof g_dtypes[0]; i++) {
        if (strcmp(jd->valuestring, g_dtypes[i].name) == 0) {
            t.type = g_dtypes[i].type;
            found = true;
        }
    }
    if (!found) {
        for (size_t i = 0; i < sizeof g_unsupported_dtypes / sizeof g_unsupported_dtypes[0]; i++) {
            if (strcmp(jd->valuestring, g_unsupported_dtypes[i]) == 0)
                return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which kiln does not support",
                                 path, name, jd->valuestring);
        }
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%.32s'", path, name, jd->valuestring);
    }

    int nd = cJSON_GetArraySize(js);
    if (nd > KILN_MAX_DIMS)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (at most %d supported)", path, name,
                         nd, KILN_MAX_DIMS);
    uint64_t dims[KILN_MAX_DIMS], nelem = 1;
    for (int d = 0; d < nd; d++) {
        if (!json_u64(cJSON_GetArrayItem(js, d), &dims[d]))
            return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a valid size (negative, fractional "
                             "or above 2^53)", path, name, d);
        if (__builtin_mul_overflow(nelem, dims[d], &nelem))
            return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': shape is too large (element count overflows)", path,
                             name);
    }
    uint64_t begin, end, bytes;
    if (!json_u64(cJSON_GetArrayItem(jo, 0), &begin) || !json_u64(cJSON_GetArrayItem(jo, 1), &end))
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': data_offsets are not valid integers", path, name);
    if (begin > end || end > data_size)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] are past the end of the data "
                         "buffer (%llu bytes) or reversed", path, name, (unsigned long long)begin,
                         (unsigned long long)end, (unsigned long long)data_size);
    if (__builtin_mul_overflow(nelem, (uint64_t)kiln_dtype_get(t.type)->type_size, &bytes))
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': shape is too large (byte size overflows)", path, name);
    if (bytes != end - begin)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes but its shape and dtype %s "
                         "need %llu (size mismatch)", path, name, (unsigned long long)(end - begin),
                         jd->valuestring, (unsigned long long)bytes);
    t.n_dims = nd;
    for (int d = 0; d < KILN_MAX_DIMS; d++) t.ne[d] = d < nd ? (int64_t)dims[nd - 1 - d] : 1;
    size_t total;
    if (!kiln_tensor_set_contiguous(&t, &total) || total != bytes)
        return kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s': invalid shape", path, name);
    t.data = data + begin;
    kiln_status s = add_weight(st, name, &t, fi, data_start + begin);
    return s ? kiln_fail_prefix(s, "%s", path) : KILN_OK;
}

typedef struct {
    uint64_t begin, end;
    size_t idx;
} extent;

static int cmp_extent(const void *a, const void *b) {
    const extent *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* No two non-empty tensors of file fi (weights first..n) share a byte. */
static kiln_status check_overlaps(kiln_safetensors *st, size_t fi, size_t first) {
    size_t n = st->w.n - first;
    if (n < 2) return KILN_OK;
    extent *ex = kiln_malloc_array(n, sizeof *ex);
    if (!ex) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", st->files[fi].path);
    size_t m = 0;
    for (size_t i = first; i < st->w.n; i++) {
        const kiln_tensor *t = &st->w.items[i].t;
        uint64_t bytes = (uint64_t)t->nb[3] * (uint64_t)t->ne[3]; /* checked in parse_tensor */
        if (bytes) ex[m++] = (extent){st->w_off[i], st->w_off[i] + bytes, i};
    }
    qsort(ex, m, sizeof *ex, cmp_extent);
    kiln_status s = KILN_OK;
    for (size_t i = 1; i < m; i++) {
        if (ex[i].begin < ex[i - 1].end) {
            s = kiln_fail(KILN_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", st->files[fi].path,
                          st->w.items[ex[i - 1].idx].name, st->w.items[ex[i].idx].name);
            break;
        }
    }
    free(ex);
    return s;
}

/* Parses the header of files[fi] (already mapped) and appends its tensors. */
static kiln_status parse_file(kiln_safetensors *st, size_t fi) {
    const kiln_mapfile *mf = &st->files[fi];
    const char *path = mf->path;
    uint64_t n;
    if (mf->size < 8)
        return kiln_fail(KILN_ERR_FORMAT, "%s: truncated file: %zu bytes cannot hold a safetensors header length", path,
                         mf->size);
    memcpy(&n, mf->data, 8);
    if (n > ST_MAX_HEADER)
        return kiln_fail(KILN_ERR_FORMAT, "%s: header length %llu is absurd (limit %llu bytes): not a safetensors "
                         "file?", path, (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
    if (n > mf->size - 8)
        return kiln_fail(KILN_ERR_FORMAT, "%s: header length %llu is past the end of the file (%zu bytes)", path,
                         (unsigned long long)n, mf->size);
    char *text = kiln_strndup((const char *)mf->data + 8, (size_t)n);
    if (!text) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    const char *err_at = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &err_at, 0);
    kiln_status s = KILN_OK;
    if (!root) {
        s = kiln_fail(KILN_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu of %llu)", path,
                      err_at && err_at >= text ? (size_t)(err_at - text) : 0, (unsigned long long)n);
    } else if (!cJSON_IsObject(root)) {
        s = kiln_fail(KILN_ERR_FORMAT, "%s: header JSON is not an object", path);
    } else {
        const uint8_t *data = mf->data + 8 + n;
        uint64_t data_size = mf->size - 8 - n;
        size_t first = st->w.n;
        const cJSON *e;
        cJSON_ArrayForEach(e, root) {
            if (e->string && strcmp(e->string, "__metadata__") == 0)
                s = parse_metadata(st, e, path, fi == 0 && !st->meta);
            else
                s = parse_tensor(st, fi, e, data, data_size, 8 + n);
            if (s) break;
        }
        if (!s) s = check_overlaps(st, fi, first);
    }
    cJSON_Delete(root);
    free(text);
    return s;
}

static kiln_status open_single(kiln_safetensors *st, const char *path) {
    st->files = calloc(1, sizeof *st->files);
    if (!st->files) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    kiln_status s = kiln_mapfile_open(path, &st->files[0]);
    if (s) return s;
    st->n_files = 1;
    if ((s = parse_file(st, 0))) return s;
    return kiln_weights_check_unique(&st->w, path);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }
static int cmp_weight_name(const void *a, const void *b) {
    return strcmp((*(const kiln_weight *const *)a)->name, (*(const kiln_weight *const *)b)->name);
}

/* A shard name must stay inside the index's folder: a plain file name. */
static bool safe_shard_name(const char *s) {
    return *s && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           strlen(s) < 1024;
}

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Opens every shard named in the weight_map, then checks the map against them. */
static kiln_status open_shards(kiln_safetensors *st, const char *index_path, const cJSON *wm) {
    size_t n = (size_t)cJSON_GetArraySize(wm);
    if (n == 0) return kiln_fail(KILN_ERR_FORMAT, "%s: weight_map is empty", index_path);
    const char **names = kiln_malloc_array(n, sizeof *names);
    const kiln_weight **sorted = NULL;
    char *dir = NULL;
    kiln_status s = KILN_OK;
    if (!names) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", index_path);
    size_t k = 0, n_shards = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !e->string) {
            s = kiln_fail(KILN_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name string", index_path,
                          e->string ? e->string : "?");
            goto done;
        }
        if (!safe_shard_name(e->valuestring)) {
            s = kiln_fail(KILN_ERR_FORMAT, "%s: weight_map names shard '%.200s', which is not a plain file name in the "
                          "index's folder (escaping the folder is not allowed)", index_path, e->valuestring);
            goto done;
        }
        names[k++] = e->valuestring;
    }
    qsort(names, k, sizeof *names, cmp_str);
    for (size_t i = 0; i < k; i++) {
        if (n_shards == 0 || strcmp(names[n_shards - 1], names[i]) != 0) names[n_shards++] = names[i];
    }
    const char *slash = strrchr(index_path, '/');
    dir = slash ? kiln_strndup(index_path, (size_t)(slash - index_path) + (slash == index_path)) : kiln_strdup(".");
    st->files = kiln_calloc_array(n_shards, sizeof *st->files);
    if (!dir || !st->files) {
        s = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    for (size_t i = 0; i < n_shards; i++) {
        char *p = join_path(dir, names[i]);
        if (!p) {
            s = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", index_path);
            goto done;
        }
        s = kiln_mapfile_open(p, &st->files[i]);
        free(p);
        if (s) {
            s = kiln_fail_prefix(s, "%s: shard listed in weight_map", index_path);
            goto done;
        }
        st->n_files = i + 1;
        if ((s = parse_file(st, i))) goto done;
    }
    /* Names sorted once: duplicates are neighbours, and each weight_map entry is a bsearch. */
    sorted = kiln_malloc_array(st->w.n ? st->w.n : 1, sizeof *sorted);
    if (!sorted) {
        s = kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    for (size_t i = 0; i < st->w.n; i++) sorted[i] = &st->w.items[i];
    qsort(sorted, st->w.n, sizeof *sorted, cmp_weight_name);
    for (size_t i = 1; i < st->w.n; i++) {
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            s = kiln_fail(KILN_ERR_FORMAT, "%s: duplicate tensor name '%s' (in %s and %s)", index_path, sorted[i]->name,
                          st->files[st->w_file[sorted[i - 1] - st->w.items]].path,
                          st->files[st->w_file[sorted[i] - st->w.items]].path);
            goto done;
        }
    }
    cJSON_ArrayForEach(e, wm) {
        kiln_weight key = {.name = e->string};
        const kiln_weight *kp = &key;
        const kiln_weight **hit = bsearch(&kp, sorted, st->w.n, sizeof *sorted, cmp_weight_name);
        if (!hit) {
            s = kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' listed in weight_map is missing from shard %s", index_path,
                          e->string, e->valuestring);
            goto done;
        }
        const char *in = st->files[st->w_file[*hit - st->w.items]].path;
        const char *base = strrchr(in, '/');
        base = base ? base + 1 : in;
        if (strcmp(base, e->valuestring) != 0) {
            s = kiln_fail(KILN_ERR_FORMAT, "%s: tensor '%s' is mapped to shard %s but found in %s", index_path,
                          e->string, e->valuestring, in);
            goto done;
        }
    }
done:
    free(sorted);
    free(dir);
    free(names);
    return s;
}

static kiln_status open_index(kiln_safetensors *st, const char *path) {
    char *text = NULL;
    kiln_status s = kiln_read_file(path, ST_MAX_INDEX, &text, NULL);
    if (s) return s;
    const char *err_at = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &err_at, 0);
    if (!root) {
        s = kiln_fail(KILN_ERR_FORMAT, "%s: not valid JSON (error near byte %zu)", path,
                      err_at && err_at >= text ? (size_t)(err_at - text) : 0);
    } else {
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
        if (!cJSON_IsObject(wm))
            s = kiln_fail(KILN_ERR_FORMAT, "%s: no \"weight_map\" object: not a safetensors index", path);
        else
            s = open_shards(st, path, wm);
    }
    cJSON_Delete(root);
    free(text);
    return s;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

kiln_status kiln_safetensors_open(const char *path, kiln_safetensors **out) {
    static const char *const folder_names[] = {"model.safetensors", "model.safetensors.index.json",
                                               "diffusion_pytorch_model.safetensors",
                                               "diffusion_pytorch_model.safetensors.index.json"};
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    kiln_safetensors *st = calloc(1, sizeof *st);
    if (!st) return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    kiln_status s;
    char *chosen = NULL;
    if (S_ISDIR(sb.st_mode)) {
        for (size_t i = 0; i < sizeof folder_names / sizeof folder_names[0] && !chosen; i++) {
            char *p = join_path(path, folder_names[i]);
            if (p && is_regular(p)) chosen = p;
            else free(p);
        }
        if (!chosen) {
            kiln_safetensors_close(st);
            return kiln_fail(KILN_ERR_NOT_FOUND, "%s: folder holds no model.safetensors or "
                             "model.safetensors.index.json", path);
        }
        path = chosen;
    }
    s = ends_with(path, ".json") ? open_index(st, path) : open_single(st, path);
    free(chosen);
    if (s) {
        kiln_safetensors_close(st);
        return s;
    }
    *out = st;
    return KILN_OK;
}

const kiln_weight_list *kiln_safetensors_weights(const kiln_safetensors *st) { return &st->w; }

const char *kiln_safetensors_metadata(const kiln_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++) {
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    }
    return NULL;
}

size_t kiln_safetensors_metadata_count(const kiln_safetensors *st) { return st->n_meta; }

void kiln_safetensors_metadata_at(const kiln_safetensors *st, size_t i, const char **key, const char **value) {
    *key = st->meta[i].key;
    *value = st->meta[i].value;
}

size_t kiln_safetensors_n_files(const kiln_safetensors *st) { return st->n_files; }
const char *kiln_safetensors_file(const kiln_safetensors *st, size_t i) { return st->files[i].path; }
const kiln_mapfile *kiln_safetensors_map(const kiln_safetensors *st, size_t i) { return &st->files[i]; }

void kiln_safetensors_locate(const kiln_safetensors *st, size_t i, size_t *file, uint64_t *offset) {
    *file = st->w_file[i];
    *offset = st->w_off[i];
}

void kiln_safetensors_close(kiln_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n_files; i++) kiln_mapfile_close(&st->files[i]);
    free(st->files);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    kiln_weights_free(&st->w);
    free(st->w_file);
    free(st->w_off);
    free(st);
}
