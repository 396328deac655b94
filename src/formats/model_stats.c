/*
 * model_stats.c — kiln_model_stats_get: sizes of a GGUF model's weights, for
 * benchmarks (`kiln bench`) and the roofline script (bytes read per generated token).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/status.h"
#include "formats/gguf.h"
#include "kiln.h"

/* llama.cpp's llama_ftype numbers and names. */
static const char *ftype_name(int64_t f) {
    static const struct { int id; const char *name; } names[] = {
        {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},    {8, "Q5_0"},
        {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"},
        {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},   {32, "BF16"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].id == f) return names[i].name;
    return NULL;
}

kiln_status kiln_model_stats_get(const char *path, kiln_model_stats *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return kiln_fail(KILN_ERR_NOT_FOUND, "%s: cannot open", path);
    bool gguf = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(f);
    if (!gguf) return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: weight statistics need a GGUF file", path);
    kiln_gguf *g = NULL;
    kiln_status st = kiln_gguf_open(path, &g);
    if (st) return st;
    uint64_t by_type[KILN_DTYPE_COUNT] = {0};
    bool has_output = false;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const kiln_gguf_tensor *t = &g->tensors[i];
        out->n_params += (uint64_t)kiln_tensor_nelements(&t->t);
        out->n_bytes += t->size;
        if ((unsigned)t->t.type < KILN_DTYPE_COUNT) by_type[t->t.type] += t->size;
        if (!strcmp(t->name, "token_embd.weight")) out->embd_bytes = t->size;
        if (!strcmp(t->name, "output.weight")) has_output = true;
    }
    out->bytes_per_token = has_output ? out->n_bytes - out->embd_bytes : out->n_bytes;
    int64_t ft;
    const char *name = kiln_gguf_get_i64(g, "general.file_type", &ft) ? ftype_name(ft) : NULL;
    if (!name) {
        int best = 0;
        for (int t = 1; t < KILN_DTYPE_COUNT; t++)
            if (by_type[t] > by_type[best]) best = t;
        name = g->n_tensors ? kiln_dtype_name((uint32_t)best) : "";
    }
    size_t k = 0;
    for (; name[k] && k + 1 < sizeof out->file_type; k++) out->file_type[k] = (char)toupper((unsigned char)name[k]);
    out->file_type[k] = 0;
    kiln_gguf_close(g);
    return KILN_OK;
}
