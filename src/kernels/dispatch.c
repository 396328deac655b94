/*
 * dispatch.c — chooses the kernel variants once, by cpuid, and routes the public
 * element-wise ops (kernels.h) to them.
 *
 * Three tables are built the first time anything asks: ref, avx2 (ref overlaid
 * with the AVX2 entries) and avx512 (avx2 overlaid with the AVX-512 entries). The
 * current level is the highest one this CPU runs, or the one named by the
 * environment variable KILN_ISA=ref|avx2|avx512 if that is lower (asking for more
 * than the CPU has gives what it has: a forced level must never crash).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels_impl.h"

static kiln_kernel_table g_tables[KILN_ISA_COUNT];
static bool g_avail[KILN_ISA_COUNT];
static kiln_isa g_level = KILN_ISA_REF;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 state. The
 * AVX-512 files are compiled with -mavx512bf16 too; only the bf16 panel kernel
 * (x86/gemmb_avx512.c) uses BF16 instructions, and it is put in the table only when
 * the CPU has AVX512_BF16, so a CPU without it (Ice Lake) still gets the rest. */
static bool cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

static bool cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

static void init_once(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
#endif
    g_avail[KILN_ISA_REF] = true;
    g_avail[KILN_ISA_AVX2] = cpu_has_avx2();
    g_avail[KILN_ISA_AVX512] = cpu_has_avx512();

    kiln_kernels_fill_ref(&g_tables[KILN_ISA_REF]);
    g_tables[KILN_ISA_AVX2] = g_tables[KILN_ISA_REF];
    kiln_kernels_fill_avx2(&g_tables[KILN_ISA_AVX2]);
    g_tables[KILN_ISA_AVX512] = g_tables[KILN_ISA_AVX2];
    kiln_kernels_fill_avx512(&g_tables[KILN_ISA_AVX512]);
#if defined(__x86_64__) || defined(__i386__)
    if (g_avail[KILN_ISA_AVX512] && __builtin_cpu_supports("avx512bf16"))
        kiln_avx512_fill_gemmb(&g_tables[KILN_ISA_AVX512]); /* bf16 panels (kiln_weight_pack_panels_bf16) */
#endif

    kiln_isa best = KILN_ISA_REF;
    for (int i = 0; i < KILN_ISA_COUNT; i++)
        if (g_avail[i]) best = (kiln_isa)i;
    kiln_isa want = best;
    const char *env = getenv("KILN_ISA");
    if (env && *env) {
        for (int i = 0; i < KILN_ISA_COUNT; i++)
            if (strcmp(env, g_tables[i].name) == 0) want = (kiln_isa)i;
    }
    g_level = want < best ? want : best;
}

void kiln_kernels_init(void) { pthread_once(&g_once, init_once); }

bool kiln_kernels_has_bf16(void) { return kiln_kernels_current()->gemmb != NULL; }

const char *kiln_kernels_isa(void) {
    kiln_kernels_init();
    return g_tables[g_level].name;
}

const kiln_kernel_table *kiln_kernels_table(kiln_isa level) {
    kiln_kernels_init();
    if ((int)level < 0 || level >= KILN_ISA_COUNT || !g_avail[level]) return NULL;
    return &g_tables[level];
}

const kiln_kernel_table *kiln_kernels_current(void) {
    kiln_kernels_init();
    return &g_tables[g_level];
}

/* ---- public ops: forward to the chosen variant ----------------------------- */

kiln_status kiln_matmul(const kiln_tensor *w, const float *x, int64_t n, float *y, kiln_pool *pool) {
    return kiln_matmul_with(kiln_kernels_current(), w, x, n, y, pool);
}

kiln_status kiln_matmul_many(int count, const kiln_tensor *const *w, const float *x, int64_t n, float *const *y,
                             kiln_pool *pool) {
    return kiln_matmul_many_with(kiln_kernels_current(), count, w, x, n, y, pool);
}

void kiln_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    kiln_kernels_current()->rmsnorm(y, x, w, n, eps);
}

void kiln_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps) {
    kiln_kernels_current()->layernorm(y, x, w, b, n, eps);
}

void kiln_softmax(float *x, int64_t n) { kiln_kernels_current()->softmax(x, n); }

void kiln_add_rows(float *y, const float *b, int64_t rows, int64_t n) {
    for (int64_t i = 0; i < rows; i++) kiln_add(y + i * n, b, n);
}

void kiln_layernorm_rows(float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t n, float eps) {
    for (int64_t i = 0; i < rows; i++) kiln_layernorm(y + i * n, x + i * n, w, b, n, eps);
}

void kiln_gelu(float *x, int64_t n, bool tanh_approx) { kiln_kernels_current()->gelu(x, n, tanh_approx); }

void kiln_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    kiln_kernels_current()->swiglu(out, gate, up, n);
}

void kiln_attention(const float *q, size_t q_stride, int64_t n_q, const float *k, const float *v, size_t kv_stride,
                    int64_t n_kv0, int64_t hd, float scale, float *out, size_t out_stride, float *scratch) {
    kiln_kernels_current()->attention(q, q_stride, n_q, k, v, kv_stride, n_kv0, hd, scale, out, out_stride, scratch);
}

void kiln_add(float *y, const float *x, int64_t n) { kiln_kernels_current()->add(y, x, n); }

float kiln_dot(const float *a, const float *b, int64_t n) { return kiln_kernels_current()->dot(a, b, n); }

void kiln_axpy(float *y, float a, const float *x, int64_t n) { kiln_kernels_current()->axpy(y, a, x, n); }
