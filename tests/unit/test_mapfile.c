/*
 * test_mapfile.c — kiln_mapfile_release: pages of a file mapping given back after a
 * copy replaced them read the same bytes again; ranges outside the mapping (or
 * straddling its ends) are refused and left alone.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "files.h"
#include "test.h"

int main(void) {
    const size_t n = 5 * 4096 + 100;
    unsigned char *bytes = malloc(n);
    for (size_t i = 0; i < n; i++) bytes[i] = (unsigned char)(i * 131 + (i >> 12));
    char path[512];
    kiln_test_write_file(kiln_test_tmp_path(path, sizeof path, "mapfile.bin"), bytes, n);

    kiln_mapfile mf;
    CHECK_OK(kiln_mapfile_open(path, &mf));
    CHECK(mf.size == n && memcmp(mf.data, bytes, n) == 0); /* every page faulted in */
    /* an inner range (not page aligned at either end), then the whole file */
    CHECK(kiln_mapfile_release(&mf, mf.data + 100, n - 300));
    CHECK(memcmp(mf.data, bytes, n) == 0);
    CHECK(kiln_mapfile_release(&mf, mf.data, n));
    CHECK(memcmp(mf.data, bytes, n) == 0);
    CHECK(kiln_mapfile_release(&mf, mf.data + n, 0)); /* empty, at the end: inside */
    /* outside, or past either end: refused */
    CHECK(!kiln_mapfile_release(&mf, mf.data + 1, n));
    CHECK(!kiln_mapfile_release(&mf, mf.data + n - 10, 11));
    CHECK(!kiln_mapfile_release(&mf, mf.data + n, SIZE_MAX));
    unsigned char *heap = malloc(n);
    memcpy(heap, bytes, n);
    CHECK(!kiln_mapfile_release(&mf, heap, n));
    CHECK(memcmp(heap, bytes, n) == 0);
    kiln_mapfile_close(&mf);
    /* a closed (empty) mapping holds nothing */
    CHECK(!kiln_mapfile_release(&mf, heap, 1));
    free(heap);
    free(bytes);
    TEST_MAIN_END();
}
