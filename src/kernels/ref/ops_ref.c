/*
 * ops_ref.c — reference element-wise and reduction ops: dot, axpy, add, rmsnorm,
 * layernorm, softmax, swiglu, gelu, and rope (which has no SIMD variant: it touches each value once
 * and its cost is in cosf/sinf, computed once per pair for all heads).
 *
 * Reductions whose result scales a whole vector (rmsnorm's mean square, softmax's
 * sum) accumulate in double, as llama.cpp does, so the reference is accurate
 * enough to judge the SIMD variants by.
 */
#include <math.h>

#include "kernels/kernels_impl.h"

float kiln_ref_dot(const float *a, const float *b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

void kiln_ref_axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void kiln_ref_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void kiln_ref_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    if (n <= 0) return;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

void kiln_ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps) {
    if (n <= 0) return;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    const double mean = s / (double)n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps), m = (float)mean;
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) * scale * w[i] + b[i];
}

/* GELU with the exact normal CDF, written with erfc so that the negative side, where
 * 1 + erf(x/√2) would cancel, keeps its relative precision. */
void kiln_ref_gelu(float *x, int64_t n, bool tanh_approx) {
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        if (tanh_approx) /* 0.5 v (1 + tanh(a)) = v · sigmoid(2a) */
            x[i] = v / (1.0f + expf(-2.0f * 0.7978845608f * (v + 0.044715f * v * v * v)));
        else
            x[i] = 0.5f * v * erfcf(-v * 0.70710678118654752f);
    }
}

void kiln_ref_softmax(float *x, int64_t n) {
    if (n <= 0) return;
    float max = x[0];
    for (int64_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    if (max == -INFINITY) { /* every entry masked out: no distribution; give zeros, not NaN */
        for (int64_t i = 0; i < n; i++) x[i] = 0.0f;
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void kiln_ref_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void kiln_rope(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, const float *freq,
               bool neox) {
    if (n_rot > head_dim) n_rot = head_dim;
    const int64_t half = n_rot / 2;
    for (int64_t i = 0; i < half; i++) {
        const float theta = (float)pos * freq[i];
        const float c = cosf(theta), s = sinf(theta);
        /* element offsets of pair i inside a head */
        const int64_t a = neox ? i : 2 * i;
        const int64_t b = neox ? i + half : 2 * i + 1;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + h * head_dim;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

/* One query at a time: scores by dot products, softmax, then the weighted sum of the
 * value rows in key order. */
void kiln_ref_attention(const float *q, size_t q_stride, int64_t n_q, const float *k, const float *v, size_t kv_stride,
                        int64_t n_kv0, int64_t hd, float scale, float *out, size_t out_stride, float *scratch) {
    for (int64_t i = 0; i < n_q; i++) {
        const float *qi = q + (size_t)i * q_stride;
        const int64_t n_kv = n_kv0 + i + 1;
        for (int64_t t = 0; t < n_kv; t++) scratch[t] = kiln_ref_dot(qi, k + (size_t)t * kv_stride, hd) * scale;
        kiln_ref_softmax(scratch, n_kv);
        float *o = out + (size_t)i * out_stride;
        for (int64_t e = 0; e < hd; e++) o[e] = 0.0f;
        for (int64_t t = 0; t < n_kv; t++) kiln_ref_axpy(o, scratch[t], v + (size_t)t * kv_stride, hd);
    }
}
