/*
 * bandwidth.c — memory read bandwidth with 1..T threads (build/bench_bandwidth).
 *
 * Each thread sums its slice of a buffer much larger than the last-level cache
 * (default 1 GiB) with the widest loads the CPU has (AVX-512, AVX2 or plain C, chosen
 * at run time); the time of a pass is that of the slowest thread; the best of R passes
 * is reported in GB/s (10^9 bytes/s). This is the ceiling token generation runs into:
 * bench/roofline.sh divides the bytes kiln reads per token by it, so the probe must
 * not understate it: every pass is run twice, with the loads alone and with a
 * software prefetch 2 KiB ahead of them (on a Zen 4 VM the prefetched loop read
 * 62-64 GB/s with 2 threads where the plain one read 51-59), and the buffer is on
 * 2 MiB pages where the OS gives them (as kiln's weights are; --small-pages: 4 KiB).
 *
 *   build/bench_bandwidth [-t THREADS] [-s MIB] [-r RUNS] [--small-pages]   (threads 1..T, one line each)
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const uint8_t *p;
    size_t n;
    pthread_barrier_t *bar;
    double t0, t1;
    uint64_t sum;
} slice;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Bytes ahead of the loads the SIMD loops prefetch (0: none); set per pass. */
static size_t g_ahead;

__attribute__((target("avx512f"))) static uint64_t sum_avx512(const uint8_t *p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    const size_t ahead = g_ahead;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        if (ahead)
            for (size_t c = 0; c < 256; c += 64) __builtin_prefetch(p + i + ahead + c);
        a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    a0 = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
    return (uint64_t)_mm512_reduce_add_epi64(a0);
}

__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    const size_t ahead = g_ahead;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        if (ahead) {
            __builtin_prefetch(p + i + ahead);
            __builtin_prefetch(p + i + ahead + 64);
        }
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t v[4];
    _mm256_storeu_si256((__m256i *)v, a0);
    return v[0] + v[1] + v[2] + v[3];
}

static uint64_t sum_plain(const uint8_t *p, size_t n) {
    const uint64_t *q = (const uint64_t *)p;
    uint64_t s = 0;
    for (size_t i = 0; i < n / 8; i++) s += q[i];
    return s;
}

static uint64_t (*g_sum)(const uint8_t *, size_t) = sum_plain;

static void *worker(void *arg) {
    slice *s = arg;
    pthread_barrier_wait(s->bar);
    s->t0 = now();
    s->sum = g_sum(s->p, s->n);
    s->t1 = now();
    return NULL;
}

int main(int argc, char **argv) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int max_t = cores > 0 ? (int)cores : 1, runs = 5;
    size_t mib = 1024;
    int huge = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) max_t = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) mib = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--small-pages")) huge = 0;
        else {
            fprintf(stderr, "usage: %s [-t THREADS] [-s MIB] [-r RUNS]\n", argv[0]);
            return 2;
        }
    }
    if (max_t < 1 || max_t > 1024 || mib < 1 || runs < 1) {
        fprintf(stderr, "bench_bandwidth: bad arguments\n");
        return 2;
    }
    __builtin_cpu_init();
    const char *isa = "plain";
    if (__builtin_cpu_supports("avx512f")) g_sum = sum_avx512, isa = "avx512";
    else if (__builtin_cpu_supports("avx2")) g_sum = sum_avx2, isa = "avx2";
    size_t n = mib << 20;
    const size_t align = huge ? (size_t)2 << 20 : 4096;
    uint8_t *buf = aligned_alloc(align, (n + align - 1) / align * align);
    if (!buf) {
        fprintf(stderr, "bench_bandwidth: cannot allocate %zu MiB\n", mib);
        return 1;
    }
#ifdef MADV_HUGEPAGE
    if (huge) (void)madvise(buf, n, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < n; i += 8) { uint64_t v = i * 0x9E3779B97F4A7C15ull; memcpy(buf + i, &v, 8); }
    printf("# buffer %zu MiB (%s pages), %s loads, best of %d runs with and without prefetch\n# threads GB/s\n", mib, huge ? "2 MiB" : "4 KiB", isa, runs);
    uint64_t check = 0;
    for (int t = 1; t <= max_t; t++) {
        double best = 0;
        for (int r = 0; r < 2 * runs; r++) {
            g_ahead = r % 2 ? 2048 : 0;
            pthread_barrier_t bar;
            pthread_barrier_init(&bar, NULL, (unsigned)t);
            slice s[1024];
            pthread_t th[1024];
            size_t per = n / (size_t)t / 256 * 256;
            for (int k = 0; k < t; k++) s[k] = (slice){buf + (size_t)k * per, per, &bar, 0, 0, 0};
            for (int k = 1; k < t; k++) pthread_create(&th[k], NULL, worker, &s[k]);
            worker(&s[0]);
            for (int k = 1; k < t; k++) pthread_join(th[k], NULL);
            double t0 = s[0].t0, t1 = s[0].t1;
            for (int k = 0; k < t; k++) {
                t0 = s[k].t0 < t0 ? s[k].t0 : t0;
                t1 = s[k].t1 > t1 ? s[k].t1 : t1;
                check += s[k].sum;
            }
            double gbs = (double)per * t / (t1 - t0) / 1e9;
            best = gbs > best ? gbs : best;
            pthread_barrier_destroy(&bar);
        }
        printf("%d %.2f\n", t, best);
        fflush(stdout);
    }
    fprintf(stderr, "(checksum %llx)\n", (unsigned long long)check);
    free(buf);
    return 0;
}
