/*
 * test.c — shared helpers of the test programs.
 */
#include "test.h"

#include <stdint.h>
#include <unistd.h>

int kiln_test_failures = 0;
int kiln_test_checks = 0;

int kiln_test_end(const char *name) {
    printf("%s: %d checks, %d failed\n", name, kiln_test_checks, kiln_test_failures);
    if (kiln_test_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    return kiln_test_failures ? 1 : 0;
}

const char *kiln_test_shared(void) {
    const char *s = getenv("KILN_SHARED");
    return s && *s ? s : "../shared";
}

const char *kiln_test_tmp(void) {
    const char *s = getenv("KILN_TMP");
    return s && *s ? s : "/tmp";
}

void kiln_test_require_file(const char *path) {
    if (access(path, R_OK) != 0) {
        printf("SKIP: %s is missing (set KILN_SHARED to the shared data folder)\n", path);
        exit(77);
    }
}

#define GUARD 16
static const uint32_t g_sentinel = 0x7fc0beef;

float *kiln_test_guarded_alloc(size_t n) {
    if (n > ((size_t)1 << 40)) abort();
    float *b = malloc(sizeof(float) * (n + 2 * GUARD));
    if (!b) abort();
    for (size_t i = 0; i < n + 2 * GUARD; i++) memcpy(&b[i], &g_sentinel, 4);
    return b + GUARD;
}

bool kiln_test_guard_intact(const float *y, size_t n) {
    for (int i = 1; i <= GUARD; i++)
        if (memcmp(&y[-i], &g_sentinel, 4) != 0 || memcmp(&y[n + i - 1], &g_sentinel, 4) != 0) return false;
    return true;
}

void kiln_test_guarded_free(float *y) {
    if (y) free(y - GUARD);
}
