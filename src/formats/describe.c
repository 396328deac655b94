/*
 * describe.c — `kiln info`: detect a model file's format and describe it.
 *
 * Detection looks at what the path is (folder, *.json) and at the first bytes
 * (GGUF magic, a safetensors header length followed by '{'); a .bin goes to the
 * llama2.c reader. The file is then opened with the format's validating reader, so a
 * broken file is reported with the reader's own message rather than described.
 */
#include "describe.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mapfile.h"
#include "base/status.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"

#define SHOW_ELEMS 8       /* array elements shown */
#define SHOW_STR 120       /* string bytes shown */

/* Output with a sticky status, so the printing code is not a ladder of checks. */
typedef struct {
    kiln_buf *b;
    kiln_status st;
} printer;

static void pr(printer *p, const char *fmt, ...) KILN_PRINTF(2, 3);
static void pr(printer *p, const char *fmt, ...) {
    if (p->st) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (p->st = kiln_buf_reserve(p->b, (size_t)n))) return;
    va_start(ap, fmt);
    vsnprintf(p->b->data + p->b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    p->b->len += (size_t)n;
}

/* A string shown quoted, with control bytes escaped and long ones cut. */
static void pr_str(printer *p, const char *s, uint64_t len) {
    pr(p, "\"");
    uint64_t shown = len < SHOW_STR ? len : SHOW_STR;
    for (uint64_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') pr(p, "\\%c", ch);
        else if (ch == '\n') pr(p, "\\n");
        else if (ch < 0x20 || ch == 0x7f) pr(p, "\\x%02x", ch);
        else pr(p, "%c", ch);
    }
    pr(p, "\"");
    if (shown < len) pr(p, "... (%llu bytes)", (unsigned long long)len);
}

static void pr_value(printer *p, const kiln_gguf_value *v);

static void pr_array(printer *p, const kiln_gguf_value *v) {
    kiln_gguf_type et = v->arr.elem_type;
    pr(p, "[%s; %llu]", kiln_gguf_type_name(et), (unsigned long long)v->arr.n);
    uint64_t shown = v->arr.n < SHOW_ELEMS ? v->arr.n : SHOW_ELEMS;
    for (uint64_t i = 0; i < shown; i++) {
        pr(p, i ? ", " : " ");
        if (et == KILN_GGUF_STRING) {
            pr_str(p, v->arr.strs[i].ptr, v->arr.strs[i].len);
        } else if (et == KILN_GGUF_ARRAY) {
            pr_array(p, &v->arr.items[i]);
        } else {
            kiln_gguf_value e = {.type = et};
            if (et == KILN_GGUF_FLOAT32 || et == KILN_GGUF_FLOAT64) e.f = kiln_gguf_arr_f64(v, i);
            else if (et == KILN_GGUF_INT8 || et == KILN_GGUF_INT16 || et == KILN_GGUF_INT32 || et == KILN_GGUF_INT64)
                e.i = kiln_gguf_arr_i64(v, i);
            else e.u = (uint64_t)kiln_gguf_arr_i64(v, i);
            pr_value(p, &e);
        }
    }
    if (shown < v->arr.n) pr(p, ", ...");
}

static void pr_value(printer *p, const kiln_gguf_value *v) {
    switch (v->type) {
    case KILN_GGUF_UINT8: case KILN_GGUF_UINT16: case KILN_GGUF_UINT32: case KILN_GGUF_UINT64:
        pr(p, "%llu", (unsigned long long)v->u);
        break;
    case KILN_GGUF_INT8: case KILN_GGUF_INT16: case KILN_GGUF_INT32: case KILN_GGUF_INT64:
        pr(p, "%lld", (long long)v->i);
        break;
    case KILN_GGUF_FLOAT32: case KILN_GGUF_FLOAT64: {
        /* shortest text that reads back as the same value: 1e-05, not 9.99999975e-06 */
        char s[40];
        bool f32 = v->type == KILN_GGUF_FLOAT32;
        for (int prec = f32 ? 6 : 15; prec <= (f32 ? 9 : 17); prec++) {
            snprintf(s, sizeof s, "%.*g", prec, v->f);
            if (f32 ? strtof(s, NULL) == (float)v->f : strtod(s, NULL) == v->f) break;
        }
        pr(p, "%s", s);
        break;
    }
    case KILN_GGUF_BOOL: pr(p, "%s", v->u ? "true" : "false"); break;
    case KILN_GGUF_STRING: pr_str(p, v->s.ptr, v->s.len); break;
    case KILN_GGUF_ARRAY: pr_array(p, v); break;
    default: pr(p, "?"); break;
    }
}

/* Shape as the format writes it: GGUF's ne order, or row-major (reversed ne). */
static void pr_shape(printer *p, const kiln_tensor *t, bool row_major) {
    char s[128];
    size_t n = 0;
    s[n++] = '[';
    for (int i = 0; i < t->n_dims && n < sizeof s - 24; i++) {
        int d = row_major ? t->n_dims - 1 - i : i;
        n += (size_t)snprintf(s + n, sizeof s - n, "%s%lld", i ? ", " : "", (long long)t->ne[d]);
    }
    snprintf(s + n, sizeof s - n, "]");
    pr(p, " %-22s", s);
}

/* One table row; file >= 0 adds the shard index of a sharded model. */
static void pr_tensor(printer *p, const char *name, const kiln_tensor *t, bool row_major, uint64_t off, long file) {
    size_t bytes = t->nb[3] * (size_t)t->ne[3];
    pr(p, "  %-48s %-5s", name, kiln_dtype_name(t->type));
    pr_shape(p, t, row_major);
    pr(p, " %12llu %12zu", (unsigned long long)off, bytes);
    if (file >= 0) pr(p, "  (file %ld)", file);
    pr(p, "\n");
}

static kiln_status describe_gguf(const char *path, printer *p) {
    kiln_gguf *g;
    kiln_status st = kiln_gguf_open(path, &g);
    if (st) return st;
    pr(p, "%s: GGUF version %u, %llu metadata entries, %llu tensors, alignment %u, data at byte %llu\n", path,
       g->version, (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, g->alignment,
       (unsigned long long)g->data_offset);
    pr(p, "metadata:\n");
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const kiln_gguf_kv *kv = &g->kv[i];
        pr(p, "  %s = ", kv->key);
        pr_value(p, &kv->value);
        if (kv->value.type != KILN_GGUF_ARRAY && kv->value.type != KILN_GGUF_STRING)
            pr(p, " (%s)", kiln_gguf_type_name(kv->value.type));
        pr(p, "\n");
    }
    pr(p, "tensors (ne: innermost first; offset from the data section):\n");
    pr(p, "  %-48s %-5s %-22s %12s %12s\n", "name", "type", "ne", "offset", "bytes");
    for (uint64_t i = 0; i < g->n_tensors; i++)
        pr_tensor(p, g->tensors[i].name, &g->tensors[i].t, false, g->tensors[i].offset, -1);
    kiln_gguf_close(g);
    return p->st;
}

/* Prints architectures/model_type of dir/config.json if there is one. */
static void pr_config_json(printer *p, const char *dir) {
    char path[4096];
    char *text = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) return;
    if (kiln_read_file(path, (size_t)16 << 20, &text, NULL) != KILN_OK) {
        pr(p, "config.json: unreadable (%s)\n", kiln_last_error());
        return;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        pr(p, "config.json: not a JSON object\n");
        cJSON_Delete(root);
        return;
    }
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name"); /* diffusers */
    pr(p, "config.json:");
    if (cJSON_IsArray(arch)) {
        const cJSON *e;
        int i = 0;
        pr(p, " architectures = [");
        cJSON_ArrayForEach(e, arch) {
            if (cJSON_IsString(e)) pr(p, "%s%s", i++ ? ", " : "", e->valuestring);
        }
        pr(p, "]");
    }
    if (cJSON_IsString(mt)) pr(p, " model_type = %s", mt->valuestring);
    if (cJSON_IsString(cls)) pr(p, " _class_name = %s", cls->valuestring);
    pr(p, "\n");
    cJSON_Delete(root);
}

static kiln_status describe_safetensors(const char *path, bool is_dir, printer *p) {
    kiln_safetensors *st;
    kiln_status s = kiln_safetensors_open(path, &st);
    if (s) return s;
    const kiln_weight_list *w = kiln_safetensors_weights(st);
    size_t nf = kiln_safetensors_n_files(st);
    pr(p, "%s: safetensors, %zu tensors in %zu file%s\n", path, w->n, nf, nf == 1 ? "" : "s");
    if (nf > 1) {
        for (size_t i = 0; i < nf; i++) pr(p, "  file %zu: %s\n", i, kiln_safetensors_file(st, i));
    }
    if (is_dir) {
        pr_config_json(p, path);
    } else {
        const char *slash = strrchr(path, '/');
        char dir[4096];
        if (!slash) snprintf(dir, sizeof dir, ".");
        else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + (slash == path)), path);
        pr_config_json(p, dir);
    }
    size_t nm = kiln_safetensors_metadata_count(st);
    if (nm) {
        pr(p, "metadata:\n");
        for (size_t i = 0; i < nm; i++) {
            const char *k, *v;
            kiln_safetensors_metadata_at(st, i, &k, &v);
            pr(p, "  %s = ", k);
            pr_str(p, v, strlen(v));
            pr(p, "\n");
        }
    }
    pr(p, "tensors (shape row-major; offset from the start of the file%s):\n", nf > 1 ? ", file index" : "");
    pr(p, "  %-48s %-5s %-22s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
    for (size_t i = 0; i < w->n; i++) {
        size_t file;
        uint64_t off;
        kiln_safetensors_locate(st, i, &file, &off);
        pr_tensor(p, w->items[i].name, &w->items[i].t, true, off, nf > 1 ? (long)file : -1);
    }
    kiln_safetensors_close(st);
    return p->st;
}

static kiln_status describe_llama2c(const char *path, printer *p) {
    kiln_llama2c *m;
    kiln_status s = kiln_llama2c_open(path, &m);
    if (s) return s;
    const kiln_llama2c_config *c = kiln_llama2c_config_get(m);
    const kiln_weight_list *w = kiln_llama2c_weights(m);
    pr(p, "%s: llama2.c checkpoint (version %d)\n", path, c->version);
    pr(p, "config:\n  dim = %d\n  hidden_dim = %d\n  n_layers = %d\n  n_heads = %d\n  n_kv_heads = %d\n"
       "  vocab_size = %d\n  seq_len = %d\n  shared_classifier = %s\n", c->dim, c->hidden_dim, c->n_layers,
       c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len, c->shared_classifier ? "true" : "false");
    pr(p, "tensors (shape row-major (out, in); offset from the start of the file):\n");
    pr(p, "  %-48s %-5s %-22s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
    for (size_t i = 0; i < w->n; i++)
        pr_tensor(p, w->items[i].name, &w->items[i].t, true, kiln_llama2c_offset(m, i), -1);
    kiln_llama2c_close(m);
    return p->st;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

kiln_status kiln_describe_file(const char *path, kiln_buf *out) {
    printer p = {out, KILN_OK};
    struct stat sb;
    if (stat(path, &sb) != 0) return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return describe_safetensors(path, true, &p);
    if (ends_with(path, ".json")) return describe_safetensors(path, false, &p);

    uint8_t head[256] = {0};
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    n = fread(head, 1, sizeof head, f);
    fclose(f);
    uint64_t hlen = 0;
    if (n >= 8) memcpy(&hlen, head, 8);
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0) return describe_gguf(path, &p);
    if (n >= 9 && hlen >= 2 && hlen <= ((uint64_t)100 << 20) && head[8] == '{')
        return describe_safetensors(path, false, &p);
    if (ends_with(path, ".safetensors")) return describe_safetensors(path, false, &p);
    if (ends_with(path, ".gguf")) return describe_gguf(path, &p);
    if (n >= 4 && memcmp(head, "PK\003\004", 4) == 0)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: a zip archive (a PyTorch checkpoint?): not supported, convert "
                         "it to safetensors or GGUF", path);
    if (ends_with(path, ".bin") || kiln_llama2c_sniff(head, n)) return describe_llama2c(path, &p);
    return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: unrecognized file format (not GGUF, safetensors or a llama2.c .bin)",
                     path);
}
