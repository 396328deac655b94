/*
 * test.c — shared helpers of the test programs.
 */
#include "test.h"

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
