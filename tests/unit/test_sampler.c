/*
 * test_sampler.c — the sampler chain on known logits: greedy, top-k, top-p, min-p,
 * penalties (exact values), seeded reproducibility, the drawn distribution, and
 * parameter errors.
 */
#include <math.h>

#include "pipelines/sampler.h"
#include "test.h"

static kiln_sampler_params base(void) {
    kiln_sampler_params p = {0};
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.repeat_penalty = 1.0f;
    p.seed = 42;
    return p;
}

static int32_t sample_once(kiln_sampler_params p, const float *in, int n) {
    kiln_sampler *s = NULL;
    float l[16];
    memcpy(l, in, (size_t)n * sizeof *l);
    if (kiln_sampler_create(&p, n, &s)) return -1;
    int32_t id = kiln_sampler_sample(s, l);
    kiln_sampler_free(s);
    return id;
}

/* Frequencies of each id over many draws. */
static void histogram(kiln_sampler_params p, const float *in, int n, int draws, int *count) {
    kiln_sampler *s = NULL;
    CHECK_OK(kiln_sampler_create(&p, n, &s));
    memset(count, 0, (size_t)n * sizeof *count);
    for (int i = 0; i < draws && s; i++) {
        float l[16];
        memcpy(l, in, (size_t)n * sizeof *l);
        count[kiln_sampler_sample(s, l)]++;
    }
    kiln_sampler_free(s);
}

int main(void) {
    const float lg[4] = {1.0f, 3.0f, 2.0f, 3.0f};
    kiln_sampler_params p = base();

    /* greedy: argmax, ties to the lowest id */
    p.temperature = 0;
    CHECK(sample_once(p, lg, 4) == 1);
    /* top-k 1 is greedy at any temperature */
    p = base();
    p.top_k = 1;
    p.temperature = 5;
    CHECK(sample_once(p, lg, 4) == 1);

    /* same seed, same stream; another seed, another stream */
    const float flat[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int a[64], b[64], c[64];
    for (int run = 0; run < 3; run++) {
        p = base();
        p.seed = run == 2 ? 43 : 42;
        kiln_sampler *s = NULL;
        CHECK_OK(kiln_sampler_create(&p, 8, &s));
        for (int i = 0; i < 64 && s; i++) {
            float l[8];
            memcpy(l, flat, sizeof l);
            (run == 0 ? a : run == 1 ? b : c)[i] = kiln_sampler_sample(s, l);
        }
        kiln_sampler_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);

    /* distribution at temperature 1: within 4 sigma of softmax */
    const float d4[4] = {0.0f, 1.0f, 2.0f, -1.0f};
    int cnt[4];
    p = base();
    histogram(p, d4, 4, 20000, cnt);
    double z = 0;
    for (int i = 0; i < 4; i++) z += exp(d4[i]);
    for (int i = 0; i < 4; i++) {
        double pr = exp(d4[i]) / z, mean = 20000 * pr, sd = sqrt(20000 * pr * (1 - pr));
        CHECK_MSG(fabs(cnt[i] - mean) < 4 * sd, "id %d: %d draws, expected %.0f ± %.0f", i, cnt[i], mean, sd);
    }

    /* top-p: probabilities 0.5, 0.25, 0.125, 0.125 (logits ln). p = 0.75 keeps ids 0,1 */
    const float tp[4] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.125f)};
    p = base();
    p.top_p = 0.75f;
    histogram(p, tp, 4, 3000, cnt);
    CHECK(cnt[0] > 0 && cnt[1] > 0 && cnt[2] == 0 && cnt[3] == 0);
    p.top_p = 0.74f;
    histogram(p, tp, 4, 3000, cnt);
    CHECK(cnt[0] > 0 && cnt[1] > 0 && cnt[2] == 0);
    p.top_p = 0.5f;
    histogram(p, tp, 4, 500, cnt);
    CHECK(cnt[0] == 500);

    /* min-p 0.3: keeps tokens with p >= 0.3 × 0.5 = 0.15: ids 0 and 1 */
    p = base();
    p.min_p = 0.3f;
    histogram(p, tp, 4, 3000, cnt);
    CHECK(cnt[0] > 0 && cnt[1] > 0 && cnt[2] == 0 && cnt[3] == 0);

    /* top-k 2 over 4 */
    p = base();
    p.top_k = 2;
    histogram(p, d4, 4, 3000, cnt);
    CHECK(cnt[0] == 0 && cnt[3] == 0 && cnt[1] > 0 && cnt[2] > 0);

    /* penalties, exact: history 2, 2, 0 */
    p = base();
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    kiln_sampler *s = NULL;
    CHECK_OK(kiln_sampler_create(&p, 4, &s));
    if (s) {
        kiln_sampler_accept(s, 2);
        kiln_sampler_accept(s, 2);
        kiln_sampler_accept(s, 0);
        float l[4] = {-1.0f, 1.0f, 4.0f, 0.5f};
        kiln_sampler_sample(s, l);
        CHECK(l[0] == -1.0f * 2 - 0.5f - 0.25f);  /* negative: multiplied */
        CHECK(l[1] == 1.0f);                       /* not in history */
        CHECK(l[2] == 4.0f / 2 - 2 * 0.5f - 0.25f); /* positive: divided; counted twice */
        CHECK(l[3] == 0.5f);
        kiln_sampler_free(s);
    }
    /* the window: only the last repeat_last_n tokens count */
    p.repeat_last_n = 1;
    p.frequency_penalty = p.presence_penalty = 0;
    CHECK_OK(kiln_sampler_create(&p, 4, &s));
    if (s) {
        kiln_sampler_accept(s, 2);
        kiln_sampler_accept(s, 1);
        float l[4] = {0, 2.0f, 2.0f, 0};
        CHECK(kiln_sampler_sample(s, l) == 2 && l[1] == 1.0f && l[2] == 2.0f);
        kiln_sampler_free(s);
    }

    /* errors */
    p = base();
    CHECK(kiln_sampler_create(&p, 0, &s) == KILN_ERR_INVALID_ARG);
    p.temperature = NAN;
    CHECK(kiln_sampler_create(&p, 4, &s) == KILN_ERR_INVALID_ARG && strstr(kiln_last_error(), "temperature"));
    p = base();
    p.repeat_penalty = 0;
    CHECK(kiln_sampler_create(&p, 4, &s) == KILN_ERR_INVALID_ARG);
    p = base();
    p.min_p = 2;
    CHECK(kiln_sampler_create(&p, 4, &s) == KILN_ERR_INVALID_ARG);
    /* top_k larger than the vocabulary clamps */
    p = base();
    p.top_k = 1000;
    CHECK(sample_once(p, d4, 4) >= 0);
    TEST_MAIN_END();
}
