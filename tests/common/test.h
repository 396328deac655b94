/*
 * test.h — minimal assertions for kiln's test programs.
 *
 * CHECK(cond) records a failure with file:line and continues; TEST_MAIN_END returns
 * the exit status ctest reads (0 pass, 1 fail, 77 skip).
 */
#ifndef KILN_TEST_H
#define KILN_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int kiln_test_failures;
extern int kiln_test_checks;

#define CHECK(cond)                                                              \
    do {                                                                         \
        kiln_test_checks++;                                                      \
        if (!(cond)) {                                                           \
            kiln_test_failures++;                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        kiln_test_checks++;                                                      \
        if (!(cond)) {                                                           \
            kiln_test_failures++;                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
        }                                                                        \
    } while (0)

/* Checks a kiln_status is KILN_OK, printing the error message otherwise. */
#define CHECK_OK(expr)                                                           \
    do {                                                                         \
        kiln_status st_ = (expr);                                                \
        kiln_test_checks++;                                                      \
        if (st_ != KILN_OK) {                                                    \
            kiln_test_failures++;                                                \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #expr, \
                    kiln_status_name(st_), kiln_last_error());                   \
        }                                                                        \
    } while (0)

/* Ends main: prints a summary line and returns the status. */
int kiln_test_end(const char *name);
#define TEST_MAIN_END() return kiln_test_end(__FILE__)

/* n floats with 16 sentinel values (a NaN no kernel makes) before and after, for
 * checking that a kernel writes nothing outside its output; aborts on allocation
 * failure. kiln_test_guard_intact says whether the sentinels are untouched. */
float *kiln_test_guarded_alloc(size_t n);
bool kiln_test_guard_intact(const float *y, size_t n);
void kiln_test_guarded_free(float *y);

/* Directory of the shared data ($KILN_SHARED, default ../shared). */
const char *kiln_test_shared(void);
/* Directory for temporary files ($KILN_TMP, default /tmp). */
const char *kiln_test_tmp(void);
/* Exits with 77 (skip) after printing why, if path does not exist. */
void kiln_test_require_file(const char *path);

#endif
