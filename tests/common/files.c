/*
 * files.c — file-writing helpers of the format tests.
 */
#include "files.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static void die(const char *what) {
    fprintf(stderr, "test helper: %s\n", what);
    exit(1);
}

void kiln_test_bytes_put(kiln_test_bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) die("out of memory");
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

void kiln_test_bytes_u32(kiln_test_bytes *b, uint32_t v) { kiln_test_bytes_put(b, &v, 4); }
void kiln_test_bytes_u64(kiln_test_bytes *b, uint64_t v) { kiln_test_bytes_put(b, &v, 8); }

void kiln_test_bytes_str(kiln_test_bytes *b, const char *s) {
    kiln_test_bytes_u64(b, strlen(s));
    kiln_test_bytes_put(b, s, strlen(s));
}

void kiln_test_bytes_pad(kiln_test_bytes *b, size_t align) {
    static const uint8_t zero = 0;
    while (b->n % align) kiln_test_bytes_put(b, &zero, 1);
}

void kiln_test_bytes_free(kiln_test_bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

char *kiln_test_tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", kiln_test_tmp(), name);
    return buf;
}

char *kiln_test_tmp_dir(char *buf, size_t n, const char *name) {
    kiln_test_tmp_path(buf, n, name);
    mkdir(buf, 0755);
    DIR *d = opendir(buf);
    if (!d) die("cannot create a temporary folder");
    struct dirent *e;
    while ((e = readdir(d))) { /* empty it: files only, as the tests create */
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", buf, e->d_name);
        unlink(p);
    }
    closedir(d);
    return buf;
}

char *kiln_test_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    if (p) p[n] = 0;
    fclose(f);
    return p;
}

void kiln_test_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    bool ok = n == 0 || fwrite(p, 1, n, f) == n;
    if (fclose(f) != 0 || !ok) die(path);
}

void kiln_test_write_safetensors(const char *path, const char *json, const void *data, size_t n) {
    kiln_test_bytes b = {0};
    kiln_test_bytes_u64(&b, strlen(json));
    kiln_test_bytes_put(&b, json, strlen(json));
    kiln_test_bytes_put(&b, data, n);
    kiln_test_write_file(path, b.p, b.n);
    kiln_test_bytes_free(&b);
}
