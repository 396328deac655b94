/*
 * test_torch_rng.c — kiln_torch_rng against PyTorch's CPU generator: the streams of
 * tests/golden/data/torch_rng (written by tests/golden/gen_torch_rng.py from torch
 * 1.13) word for word, for seeds up to beyond 2^32, sizes on both sides of torch's
 * n < 16 split, several calls on one generator, both block paths; plus MT19937's
 * reference value, reseeding and empty draws.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "base/rng_torch.h"
#include "kiln.h"
#include "test.h"

/* Allowed distance in ulps per path (rng_torch.h: the AVX2 emulation is exact; the
 * scalar path is exact with the same libm, which this machine has). */
static const int64_t TOL_ULP[2] = {0, 0};

static int64_t ordered(uint32_t bits) {
    return (bits & 0x80000000u) ? -(int64_t)(bits & 0x7fffffffu) : (int64_t)bits;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Runs one case; returns the largest ulp distance seen (words: mismatches). */
static int64_t run_case(const cJSON *c, const unsigned char *vals, size_t nwords) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    uint64_t seed = (uint64_t)cJSON_GetObjectItem(c, "seed")->valuedouble;
    int is_randn = strcmp(cJSON_GetObjectItem(c, "kind")->valuestring, "randn") == 0;
    int scalar = strcmp(cJSON_GetObjectItem(c, "path")->valuestring, "scalar") == 0;
    kiln_torch_rng g;
    kiln_torch_rng_seed(&g, seed);
    g.path = scalar ? KILN_TORCH_PATH_SCALAR : KILN_TORCH_PATH_AVX2;
    int64_t worst = 0, bad = 0;
    const cJSON *call;
    cJSON_ArrayForEach(call, cJSON_GetObjectItem(c, "calls")) {
        int64_t n = (int64_t)cJSON_GetObjectItem(call, "n")->valuedouble;
        size_t off = (size_t)cJSON_GetObjectItem(call, "offset")->valuedouble;
        uint32_t *got = malloc((size_t)n * sizeof *got);
        float *f = malloc((size_t)n * sizeof *f);
        CHECK(got != NULL && f != NULL);
        if (!got || !f) {
            free(got);
            free(f);
            return -1;
        }
        if (is_randn) {
            kiln_torch_randn(&g, f, n);
            memcpy(got, f, (size_t)n * sizeof *f);
        } else {
            for (int64_t i = 0; i < n; i++) got[i] = kiln_torch_rng_u32(&g) & 0x7fffffffu;
        }
        const cJSON *seg;
        cJSON_ArrayForEach(seg, cJSON_GetObjectItem(call, "segments")) {
            int64_t start = (int64_t)cJSON_GetArrayItem(seg, 0)->valuedouble;
            int64_t count = (int64_t)cJSON_GetArrayItem(seg, 1)->valuedouble;
            int64_t step = (int64_t)cJSON_GetArrayItem(seg, 2)->valuedouble;
            for (int64_t i = 0; i < count; i++, off++) {
                int64_t at = start + i * step;
                CHECK(off < nwords && at < n);
                if (off >= nwords || at >= n) break;
                uint32_t want = le32(vals + 4 * off);
                int64_t d = is_randn ? llabs(ordered(got[at]) - ordered(want))
                                     : (int64_t)(got[at] != want);
                if (d > worst) worst = d;
                if (d > (is_randn ? TOL_ULP[scalar] : 0) && bad++ < 3) {
                    float gf, wf;
                    memcpy(&gf, &got[at], 4);
                    memcpy(&wf, &want, 4);
                    fprintf(stderr, "%s: call n=%lld [%lld]: got %08x (%.9g) want %08x (%.9g)\n",
                            name, (long long)n, (long long)at, got[at], gf, want, wf);
                }
            }
        }
        free(got);
        free(f);
    }
    CHECK_MSG(bad == 0, "%s: %lld values beyond tolerance", name, (long long)bad);
    return worst;
}

static void fixture_cases(void) {
    const char *src = getenv("KILN_SRC");
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/tests/golden/data/torch_rng", src ? src : ".");
    snprintf(path, sizeof path, "%s/cases.json", dir);
    kiln_test_require_file(path);
    char *txt = NULL, *vals = NULL;
    size_t vlen = 0;
    CHECK_OK(kiln_read_file(path, 1 << 22, &txt, NULL));
    snprintf(path, sizeof path, "%s/values.bin", dir);
    CHECK_OK(kiln_read_file(path, 1 << 24, &vals, &vlen));
    cJSON *root = txt ? cJSON_Parse(txt) : NULL;
    CHECK(root != NULL && vals != NULL);
    if (root && vals) {
        int64_t worst[2] = {0, 0};
        int ncase = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
            int scalar = strcmp(cJSON_GetObjectItem(c, "path")->valuestring, "scalar") == 0;
            int64_t w = run_case(c, (const unsigned char *)vals, vlen / 4);
            if (w > worst[scalar]) worst[scalar] = w;
            ncase++;
        }
        CHECK(ncase >= 50);
        printf("%d cases; max distance: avx2 path %lld ulp, scalar path %lld ulp\n", ncase,
               (long long)worst[0], (long long)worst[1]);
    }
    cJSON_Delete(root);
    free(txt);
    free(vals);
}

int main(void) {
    kiln_torch_rng g, h;

    /* MT19937's reference: the 10000th word after seeding with 5489 (C++ [rand.predef]) */
    kiln_torch_rng_seed(&g, 5489);
    uint32_t w = 0;
    for (int i = 0; i < 10000; i++) w = kiln_torch_rng_u32(&g);
    CHECK(w == 4123659995u);

    /* a 64-bit seed keeps only its low 32 bits for the engine, as torch's does */
    kiln_torch_rng_seed(&g, (1ull << 32) + 5);
    kiln_torch_rng_seed(&h, 5);
    CHECK(g.seed == (1ull << 32) + 5);
    for (int i = 0; i < 1000; i++) CHECK(kiln_torch_rng_u32(&g) == kiln_torch_rng_u32(&h));

    /* reseeding forgets the cached normal; n <= 0 draws nothing */
    float a[2], b[2], one;
    kiln_torch_rng_seed(&g, 3);
    kiln_torch_randn(&g, &one, 1);
    CHECK(g.has_next_normal);
    kiln_torch_rng_seed(&g, 3);
    kiln_torch_randn(&g, a, 0);
    kiln_torch_randn(&g, a, -1);
    kiln_torch_randn(&g, a, 2);
    kiln_torch_rng_seed(&h, 3);
    kiln_torch_randn(&h, b, 2);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(bits_of(a[0]) == bits_of(one));
    CHECK(g.path == KILN_TORCH_PATH_AVX2);

    fixture_cases();
    TEST_MAIN_END();
}
