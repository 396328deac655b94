/*
 * embed_pool.c — pooling and normalization of token states (embed.h).
 */
#include <math.h>
#include <stdlib.h>

#include "base/status.h"
#include "pipelines/embed.h"

kiln_status kiln_embed_pool(kiln_pooling mode, const float *states, int len, int d, bool normalize, float *out) {
    if (len <= 0 || d <= 0) return kiln_fail(KILN_ERR_INVALID_ARG, "nothing to pool");
    switch (mode) {
    case KILN_POOL_CLS:
    case KILN_POOL_LAST: {
        const float *row = states + (size_t)(mode == KILN_POOL_CLS ? 0 : len - 1) * d;
        for (int j = 0; j < d; j++) out[j] = row[j];
        break;
    }
    case KILN_POOL_MEAN:
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int i = 0; i < len; i++) s += states[(size_t)i * d + j];
            out[j] = (float)(s / len);
        }
        break;
    case KILN_POOL_MAX:
        for (int j = 0; j < d; j++) {
            float m = states[j];
            for (int i = 1; i < len; i++) m = fmaxf(m, states[(size_t)i * d + j]);
            out[j] = m;
        }
        break;
    default:
        return kiln_fail(KILN_ERR_INVALID_ARG, "the model has no pooling: it gives token states only");
    }
    if (normalize) {
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)out[j] * out[j];
        double inv = 1.0 / fmax(sqrt(ss), 1e-12);
        for (int j = 0; j < d; j++) out[j] = (float)(out[j] * inv);
    }
    return KILN_OK;
}
