/*
 * golden.h — what the golden tests share with their generator scripts: the
 * counter-based weight generator (gen_bert.py's hashed(), element for element), and a
 * safetensors writer for named f32 arrays stored as F32, F16 or BF16.
 *
 * The scripts commit only the inputs and the expected outputs; both sides make the
 * weights from (name, seed), so large shapes need no weight files in git.
 */
#ifndef KILN_TEST_GOLDEN_H
#define KILN_TEST_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a of the string. */
uint64_t kiln_test_fnv1a(const char *s);
/* out[i] = offset + scale * u_i, u_i uniform in [-1, 1) from splitmix64(seed + (i+1) * golden) >> 40. */
void kiln_test_hashed(uint64_t seed, int64_t n, double scale, double offset, float *out);

/* max|a - ref| / max|ref| (a NaN counts as the worst error). */
double kiln_test_rel_err(const float *a, const float *ref, size_t n);

typedef struct {
    const char *name;
    int n_dims;        /* safetensors shape: row-major, outermost first */
    int64_t shape[4];
    const float *data; /* the f32 values; converted to the file's dtype when written */
} kiln_test_tensor;

/* Writes the tensors, in order, as one safetensors file of dtype "F32", "F16" or
 * "BF16" (round to nearest even), the header padded to 8 bytes as safetensors pads
 * it. Aborts the test program on failure. */
void kiln_test_write_tensors(const char *path, const kiln_test_tensor *t, int n, const char *dtype);

/* Writes the tensors a golden case lists (cJSON array of [name, shape, scale,
 * offset]) as one safetensors file of dtype, each made by kiln_test_hashed from
 * (prefix + name, seed) and stored under prefix + name; extra tensors (n_extra, may
 * be 0) go first. skip_name (or NULL) is left out; bad_shape (or NULL) gets one row
 * fewer (names without the prefix). Aborts on allocation failure. */
struct cJSON;
void kiln_test_write_case_tensors(const char *path, const struct cJSON *list, const char *prefix, uint64_t seed,
                                  const char *dtype, const kiln_test_tensor *extra, int n_extra,
                                  const char *skip_name, const char *bad_shape);

#endif
