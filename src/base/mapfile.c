/*
 * mapfile.c — mmap of model files and whole-file reads of small text files.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise */
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "status.h"

kiln_status kiln_mapfile_open(const char *path, kiln_mapfile *mf) {
    memset(mf, 0, sizeof *mf);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return kiln_fail(KILN_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return kiln_fail(KILN_ERR_IO, "%s: not a regular file", path);
    }
    mf->size = (size_t)st.st_size;
    if (mf->size > 0) {
        void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return kiln_fail(KILN_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
        mf->data = p;
    }
    close(fd);
    mf->path = kiln_strdup(path);
    if (!mf->path) {
        kiln_mapfile_close(mf);
        return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    }
    return KILN_OK;
}

void kiln_mapfile_close(kiln_mapfile *mf) {
    if (mf->data) munmap((void *)mf->data, mf->size);
    free(mf->path);
    memset(mf, 0, sizeof *mf);
}

bool kiln_mapfile_release(const kiln_mapfile *mf, const void *p, size_t n) {
    const uintptr_t b = (uintptr_t)mf->data, e = b + mf->size, s = (uintptr_t)p;
    if (!mf->data || s < b || s > e || n > e - s) return false;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = (s + page - 1) / page * page, hi = (s + n) / page * page;
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
    return true;
}

kiln_status kiln_read_file(const char *path, size_t max_size, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max_size) {
                free(buf);
                fclose(f);
                return kiln_fail(KILN_ERR_FORMAT, "%s: larger than %zu bytes", path, max_size);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return kiln_fail(KILN_ERR_IO, "%s: read error", path);
    }
    if (n > max_size) {
        free(buf);
        return kiln_fail(KILN_ERR_FORMAT, "%s: larger than %zu bytes", path, max_size);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return KILN_OK;
}
