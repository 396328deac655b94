/*
 * files.h — helpers for tests that write model files into $KILN_TMP: byte builders,
 * whole-file writes, and safetensors files from a JSON header and a data buffer.
 */
#ifndef KILN_TEST_FILES_H
#define KILN_TEST_FILES_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte string; aborts the test program on allocation failure. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} kiln_test_bytes;

void kiln_test_bytes_put(kiln_test_bytes *b, const void *p, size_t n);
void kiln_test_bytes_u32(kiln_test_bytes *b, uint32_t v);
void kiln_test_bytes_u64(kiln_test_bytes *b, uint64_t v);
void kiln_test_bytes_str(kiln_test_bytes *b, const char *s); /* GGUF string: u64 length + bytes */
void kiln_test_bytes_pad(kiln_test_bytes *b, size_t align); /* zeros up to a multiple of align */
void kiln_test_bytes_free(kiln_test_bytes *b);

/* Fills buf with "$KILN_TMP/name" and returns buf. */
char *kiln_test_tmp_path(char *buf, size_t n, const char *name);
/* Creates (or empties) the folder "$KILN_TMP/name", fills buf with its path. */
char *kiln_test_tmp_dir(char *buf, size_t n, const char *name);

/* The whole file at path, NUL-terminated (malloc'd), or NULL if it cannot be read. */
char *kiln_test_slurp(const char *path);

/* Writes n bytes to path; aborts the test program on failure. */
void kiln_test_write_file(const char *path, const void *p, size_t n);
/* Writes a safetensors file: u64 strlen(json), json, then data[0..n). */
void kiln_test_write_safetensors(const char *path, const char *json, const void *data, size_t n);

#endif
