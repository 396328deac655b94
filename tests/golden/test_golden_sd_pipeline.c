/*
 * test_golden_sd_pipeline.c — kiln's txt2img against the real diffusers
 * StableDiffusionPipeline (with transformers' CLIPTokenizer and CLIPTextModel) on the
 * same tiny random model: same prompt, negative prompt, seed, steps and guidance ->
 * the same image, for every sampler, with and without guidance, and for a batch of
 * two seeds.
 *
 * The model is kiln_model_random("sd-tiny", f32, seed 7), the very folder the
 * reference was computed from (data/sd_pipeline/cases.json says how; the reference
 * needs diffusers and transformers checkouts, so its outputs are committed). Checked
 * along the way: the tokenizer's ids, the text states of the prompt and the negative
 * prompt, and the seed's initial latents (torch.randn on CPU).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "base/rng_torch.h"
#include "files.h"
#include "kiln.h"
#include "models/bind.h"
#include "pipelines/sd_internal.h"
#include "golden.h"
#include "test.h"

static char g_data[2048];

static float *read_f32(const char *file, size_t want) {
    char p[2300], *buf = NULL;
    size_t len = 0;
    snprintf(p, sizeof p, "%s/%s", g_data, file);
    if (kiln_read_file(p, 1 << 26, &buf, &len) || len != want * sizeof(float)) {
        CHECK_MSG(0, "%s: unreadable or %zu bytes (want %zu)", p, len, want * sizeof(float));
        free(buf);
        return NULL;
    }
    return (float *)buf;
}

/* The tokenizer's ids and the text states of the prompt and negative prompt. */
static void text_side(kiln_sd *m, const cJSON *root) {
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
    if (!ids) ids = root;
    char p[2300], *txt = NULL;
    snprintf(p, sizeof p, "%s/ids.json", g_data);
    CHECK_OK(kiln_read_file(p, 1 << 20, &txt, NULL));
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    float *want = read_f32("prompt_embeds.f32", 2 * 77 * 32);
    static const char *const keys[] = {"prompt", "negative"};
    static const char *const texts[] = {"a photo of a cat", "blurry, low quality"};
    for (int k = 0; k < 2 && j && want; k++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        int32_t got[77];
        bool trunc = false;
        CHECK_OK(kiln_clip_tok_window(m->tok, texts[k], strlen(texts[k]), 77, m->pad_id, got, &trunc));
        bool same = cJSON_GetArraySize(list) == 77;
        for (int i = 0; same && i < 77; i++) same = got[i] == cJSON_GetArrayItem(list, i)->valueint;
        CHECK_MSG(same, "%s: token ids differ from CLIPTokenizer's", keys[k]);
        float *ctx = NULL;
        int n = 0;
        CHECK_OK(kiln_sd_condition(m, texts[k], 1, &ctx, &n));
        if (ctx && n == 77) {
            double e = kiln_test_rel_err(ctx, want + (size_t)k * 77 * 32, 77 * 32);
            CHECK_MSG(e < 1e-5, "%s: text states relative error %.3g", keys[k], e);
            printf("%-8s text states vs transformers' CLIPTextModel: %.2e\n", keys[k], e);
        }
        free(ctx);
    }
    cJSON_Delete(j);
    free(want);
    (void)ids;
}

static void latents(void) {
    float *want = read_f32("latents.f32", 4 * 8 * 8), got[4 * 8 * 8];
    kiln_torch_rng g;
    kiln_torch_rng_seed(&g, 42);
    kiln_torch_randn(&g, got, 4 * 8 * 8);
    CHECK(want && !memcmp(got, want, sizeof got));
    free(want);
}

static void run_case(kiln_sd *m, const cJSON *c) {
    const char *sampler = cJSON_GetObjectItemCaseSensitive(c, "sampler")->valuestring;
    const int batch = cJSON_GetObjectItemCaseSensitive(c, "batch")->valueint;
    const int idx = cJSON_GetObjectItemCaseSensitive(c, "index")->valueint;
    const double guidance = cJSON_GetObjectItemCaseSensitive(c, "guidance")->valuedouble;
    kiln_sd_params p = {.prompt = cJSON_GetObjectItemCaseSensitive(c, "prompt")->valuestring,
                        .negative_prompt = cJSON_GetObjectItemCaseSensitive(c, "negative")->valuestring,
                        .width = cJSON_GetObjectItemCaseSensitive(c, "width")->valueint,
                        .height = cJSON_GetObjectItemCaseSensitive(c, "height")->valueint,
                        .steps = cJSON_GetObjectItemCaseSensitive(c, "steps")->valueint,
                        .cfg_scale = (float)guidance, .sampler = sampler,
                        .seed = (uint64_t)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "seeds"), 0)->valueint,
                        .batch = batch};
    const size_t px = (size_t)p.width * p.height * 3;
    float *want = read_f32(cJSON_GetObjectItemCaseSensitive(c, "image")->valuestring, px * (size_t)batch);
    kiln_sd_image img[2] = {{0}};
    CHECK_OK(kiln_sd_generate(m, &p, img));
    double worst = 0, sum = 0;
    size_t off1 = 0;
    for (int b = 0; b < batch && want && img[b].rgb; b++)
        for (size_t i = 0; i < px; i++) {
            const double d = fabs((double)img[b].rgb[i] - round((double)want[(size_t)b * px + i] * 255.0));
            worst = d > worst ? d : worst;
            sum += d;
            off1 += d > 0;
        }
    const double n = (double)px * batch;
    /* kiln and diffusers compute in float32 in different orders; a pixel can round to
     * the neighbouring level, no more */
    CHECK_MSG(worst <= 1 && off1 <= n / 100, "case %d %s: pixels off by up to %.0f levels, %zu of %.0f differ", idx,
              sampler, worst, off1, n);
    printf("case %d %-16s cfg %-3g batch %d: max |kiln - diffusers| %.0f level, %zu of %.0f pixel values differ "
           "(mean %.4f)\n", idx, sampler, guidance, batch, worst, off1, n, sum / n);
    for (int b = 0; b < 2; b++) kiln_sd_image_clear(&img[b]);
    free(want);
}

int main(void) {
    snprintf(g_data, sizeof g_data, "%s/tests/golden/data/sd_pipeline", getenv("KILN_SRC") ? getenv("KILN_SRC") : ".");
    char dir[2048], name[64], p[2300], *txt = NULL;
    snprintf(p, sizeof p, "%s/cases.json", g_data);
    CHECK_OK(kiln_read_file(p, 1 << 22, &txt, NULL));
    cJSON *root = txt ? kiln_json_parse_py(txt) : NULL; /* Python's json: Infinity in the scheduler configs */
    CHECK(root != NULL);
    free(txt);
    snprintf(name, sizeof name, "sd_pipeline_golden_%ld", (long)getpid());
    kiln_test_tmp_path(dir, sizeof dir, name);
    kiln_random_model_options o = {.shape = "sd-tiny", .type = "f32", .seed = 7};
    CHECK_OK(kiln_model_random(dir, &o));
    kiln_sd_options so = {.path = dir, .precision = "f32", .n_threads = 2};
    kiln_sd *m = NULL;
    CHECK_OK(kiln_sd_load(&so, &m));
    if (m && root) {
        latents();
        text_side(m, root);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) run_case(m, c);
    }
    kiln_sd_free(m);
    cJSON_Delete(root);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    TEST_MAIN_END();
}
