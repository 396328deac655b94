/*
 * test_bench_matmul.c — a micro-benchmark of kiln_matmul per weight type and
 * variant, for generation (n = 1: a weight stream, reported in GB/s of weights)
 * and prompt processing (n > 1: reported in GFLOP/s).
 *
 * As a test it runs small shapes in a fraction of a second and only checks that
 * repeated runs give identical bits. For real numbers:
 *   KILN_BENCH=1 build/test_bench_matmul            (k = m = 4096, n = 1 and 64)
 *   KILN_BENCH=1 KILN_BENCH_THREADS=2 build/test_bench_matmul
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "kernels/kernels_impl.h"
#include "test.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
    const bool full = getenv("KILN_BENCH") && atoi(getenv("KILN_BENCH")) > 0;
    const int64_t k = full ? 4096 : 1024, m = full ? 4096 : 256;
    const int64_t ns[2] = {1, full ? 64 : 8};
    const int threads = getenv("KILN_BENCH_THREADS") ? atoi(getenv("KILN_BENCH_THREADS")) : 1;
    const kiln_dtype types[] = {KILN_F32, KILN_F16, KILN_BF16, KILN_Q8_0, KILN_Q4_0, KILN_Q4_K, KILN_Q5_K, KILN_Q6_K};

    kiln_pool *pool = NULL;
    CHECK_OK(kiln_pool_create(threads, &pool));
    kiln_rng rng;
    kiln_rng_seed(&rng, 42);
    float *x = malloc(sizeof(float) * (size_t)(k * ns[1]));
    float *y = malloc(sizeof(float) * (size_t)(m * ns[1]));
    float *y0 = malloc(sizeof(float) * (size_t)(m * ns[1]));
    float *wf = malloc(sizeof(float) * (size_t)k);
    for (int64_t i = 0; i < k * ns[1]; i++) x[i] = kiln_rng_f32(&rng) - 0.5f;
    printf("k %lld, m %lld, %d thread(s)\n", (long long)k, (long long)m, threads);

    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        size_t row;
        kiln_dtype_row_bytes(types[ti], k, &row);
        uint8_t *w = malloc(row * (size_t)m);
        for (int64_t r = 0; r < m; r++) {
            for (int64_t j = 0; j < k; j++) wf[j] = kiln_rng_f32(&rng) - 0.5f;
            kiln_quantize_row(types[ti], wf, w + (size_t)r * row, k);
        }
        kiln_tensor t = {.type = types[ti], .n_dims = 2, .ne = {k, m, 1, 1}};
        size_t total;
        kiln_tensor_set_contiguous(&t, &total);
        t.data = w;
        for (int l = 0; l < KILN_ISA_COUNT; l++) {
            const kiln_kernel_table *v = kiln_kernels_table((kiln_isa)l);
            if (!v) continue;
            for (int ni = 0; ni < 2; ni++) {
                const int64_t n = ns[ni];
                CHECK_OK(kiln_matmul_with(v, &t, x, n, y0, pool)); /* warm-up, reference bits */
                int reps = l == 0 ? 1 : (full ? (n == 1 ? 20 : 3) : 3);
                const double t0 = now();
                for (int i = 0; i < reps; i++) CHECK_OK(kiln_matmul_with(v, &t, x, n, y, pool));
                const double dt = (now() - t0) / reps;
                CHECK(memcmp(y, y0, sizeof(float) * (size_t)(m * n)) == 0);
                printf("%-5s %-7s n %-3lld %9.3f ms %7.2f GB/s %8.1f GFLOP/s\n", kiln_dtype_name(types[ti]), v->name,
                       (long long)n, dt * 1e3, (double)total / dt / 1e9, 2.0 * (double)(k * m * n) / dt / 1e9);
            }
        }
        free(w);
    }
    free(x), free(y), free(y0), free(wf);
    kiln_pool_free(pool);
    TEST_MAIN_END();
}
