/*
 * ops_avx2.c — AVX2 + FMA element-wise and reduction ops: dot, axpy, add, rmsnorm,
 * layernorm, softmax, swiglu, gelu. Vector loops over 8 lanes; the n % 8 tail goes through the
 * same vector code on zero-padded copies (so tails add no rounding of their own)
 * or, where the op is element-wise and exact in scalar form, through the
 * reference.
 *
 * How they differ from the reference (ops_ref.c), which the tests bound: dot and
 * axpy fuse multiply-add and reorder the sums; rmsnorm and softmax keep their sums
 * in double like the reference but in another order; softmax and swiglu use the
 * polynomial exp below (about 2 ulp) instead of libm's expf; layernorm keeps its sums
 * in double; gelu's erfc is the fit below (relative error under 6e-7); add is identical.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/x86/avx2_util.h"

/* e^x for 8 lanes; the same algorithm as ops_avx512.c's exp512 (Cephes expf
 * polynomial, 2^n applied in two halves, input clamped to [-104, 89]). */
static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    const __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static inline double hsum4d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* Copies the n (< 8) floats at p into a zero-padded vector. */
static inline __m256 load_tail(const float *p, int64_t n) {
    float buf[8] = {0};
    memcpy(buf, p, (size_t)n * sizeof(float));
    return _mm256_loadu_ps(buf);
}

/* Stores the first n (1..8) lanes of v at p. */
static inline void store_part(float *p, __m256 v, int64_t n) {
    if (n == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    float buf[8];
    _mm256_storeu_ps(buf, v);
    memcpy(p, buf, (size_t)n * sizeof(float));
}

static float dot(const float *a, const float *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    if (i < n) acc = _mm256_fmadd_ps(load_tail(a + i, n - i), load_tail(b + i, n - i), acc);
    return hsum8(acc);
}

static void axpy(float *y, float a, const float *x, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]); /* same rounding as the vector lanes */
}

static void add(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    kiln_ref_add(y + i, x + i, n - i);
}

static void rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    if (n <= 0) return;
    __m256d ss = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        ss = _mm256_fmadd_pd(v, v, ss); /* squares of floats are exact in double */
    }
    double s = hsum4d(ss);
    for (; i < n; i++) s += (double)x[i] * (double)x[i];
    const float scale = 1.0f / sqrtf((float)(s / (double)n) + eps);
    const __m256 sv = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

static void layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps) {
    if (n <= 0) return;
    __m256d s4 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) s4 = _mm256_add_pd(s4, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
    double s = hsum4d(s4);
    for (; i < n; i++) s += x[i];
    const double mean = s / (double)n;
    const __m256d m4 = _mm256_set1_pd(mean);
    __m256d ss4 = _mm256_setzero_pd();
    for (i = 0; i + 4 <= n; i += 4) {
        const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), m4);
        ss4 = _mm256_fmadd_pd(d, d, ss4);
    }
    double ss = hsum4d(ss4);
    for (; i < n; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps), mf = (float)mean;
    const __m256 sv = _mm256_set1_ps(scale), mv = _mm256_set1_ps(mf);
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 c = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), sv);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(c, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = fmaf((x[i] - mf) * scale, w[i], b[i]);
}

/* erfc(u) for u >= 0 as t·exp(-u² + P(t)), t = 1/(1 + u/2): P is a degree-9
 * Chebyshev fit of ln(erfc(u)/t) + u² over u in [0, 10] (made with numpy for
 * kiln; evaluated in float its relative error stays under 6e-7 up to u = 9). */
static inline __m256 erfc256(__m256 u) {
    static const float c[10] = {-1.2654815912246704f, 0.9994024634361267f,  0.37923115491867065f,
                                0.07404769957065582f, -0.1270267814397812f, 0.18495039641857147f,
                                -1.0460398197174072f, 1.4415382146835327f,  -0.8111997246742249f,
                                0.17057833075523376f};
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(u, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(c[9]);
    for (int k = 8; k >= 0; k--) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c[k]));
    return _mm256_mul_ps(t, exp256(_mm256_fnmadd_ps(u, u, p)));
}

static void gelu(float *x, int64_t n, bool tanh_approx) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const int64_t left = n - i < 8 ? n - i : 8;
        const __m256 v = left == 8 ? _mm256_loadu_ps(x + i) : load_tail(x + i, left);
        __m256 o;
        if (tanh_approx) { /* v · sigmoid(2a), a = √(2/π)(v + 0.044715 v³) */
            const __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
            const __m256 a = _mm256_mul_ps(_mm256_set1_ps(-2.0f * 0.7978845608f),
                                           _mm256_fmadd_ps(v3, _mm256_set1_ps(0.044715f), v));
            o = _mm256_div_ps(v, _mm256_add_ps(one, exp256(a)));
        } else { /* Φ(v) = erfc(-v/√2)/2: for v < 0 directly, for v >= 0 as 1 - erfc(v/√2)/2 */
            const __m256 u = _mm256_andnot_ps(sign, _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)));
            const __m256 e = _mm256_mul_ps(half, erfc256(_mm256_min_ps(u, _mm256_set1_ps(10.0f))));
            const __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
            const __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(one, e), e, neg);
            o = _mm256_mul_ps(v, phi);
        }
        store_part(x + i, o, left);
    }
}

static void softmax(float *x, int64_t n) {
    if (n <= 0) return;
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + i));
    float max = hmax8(mx);
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    if (max == -INFINITY) { /* as the reference: all masked out gives zeros */
        for (i = 0; i < n; i++) x[i] = 0.0f;
        return;
    }
    const __m256 maxv = _mm256_set1_ps(max);
    __m256d sum = _mm256_setzero_pd();
    for (i = 0; i < n; i += 8) {
        const int64_t left = n - i < 8 ? n - i : 8;
        float buf[8];
        const __m256 v = left == 8 ? _mm256_loadu_ps(x + i) : load_tail(x + i, left);
        __m256 e = exp256(_mm256_sub_ps(v, maxv));
        if (left < 8) { /* padded lanes must not count in the sum */
            _mm256_storeu_ps(buf, e);
            for (int64_t l = left; l < 8; l++) buf[l] = 0.0f;
            e = _mm256_loadu_ps(buf);
        }
        sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
        _mm256_storeu_ps(buf, e);
        memcpy(x + i, buf, (size_t)left * sizeof(float));
    }
    const float inv = (float)(1.0 / hsum4d(sum));
    const __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
    for (; i < n; i++) x[i] *= inv;
}

static void swiglu(float *out, const float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const int64_t left = n - i < 8 ? n - i : 8;
        const __m256 g = left == 8 ? _mm256_loadu_ps(gate + i) : load_tail(gate + i, left);
        const __m256 u = left == 8 ? _mm256_loadu_ps(up + i) : load_tail(up + i, left);
        const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
        const __m256 o = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u);
        store_part(out + i, o, left);
    }
}

/* Attention for head sizes that are a multiple of 8 up to 256. Scores: 8 keys at a
 * time, one 8-lane FMA chain per key, and one horizontal-add tree that turns the 8
 * accumulators into the 8 scores (the same tree for every key: lanes
 * ((0+1)+(2+3)) + ((4+5)+(6+7)); missing keys of the last group are zero vectors).
 * Values: the output row is built 64 floats at a time in 8 registers while the value
 * rows stream by (key order, one FMA chain per lane). Other sizes take the reference. */
#define ATT_KEYS 8
static void attention(const float *q, size_t q_stride, int64_t n_q, const float *k, const float *v, size_t kv_stride,
                      int64_t n_kv0, int64_t hd, float scale, float *out, size_t out_stride, float *scratch) {
    if (hd % 8 || hd > 256) {
        kiln_ref_attention(q, q_stride, n_q, k, v, kv_stride, n_kv0, hd, scale, out, out_stride, scratch);
        return;
    }
    const int nv = (int)(hd / 8);
    const __m256 sv = _mm256_set1_ps(scale);
    for (int64_t i = 0; i < n_q; i++) {
        const float *qi = q + (size_t)i * q_stride;
        const int64_t n_kv = n_kv0 + i + 1;
        for (int64_t t0 = 0; t0 < n_kv; t0 += ATT_KEYS) {
            const int nk = (int)(n_kv - t0 < ATT_KEYS ? n_kv - t0 : ATT_KEYS);
            __m256 a[ATT_KEYS];
            for (int t = 0; t < ATT_KEYS; t++) a[t] = _mm256_setzero_ps();
            for (int e = 0; e < nv; e++) {
                const __m256 qv = _mm256_loadu_ps(qi + 8 * e);
                for (int t = 0; t < nk; t++)
                    a[t] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + (size_t)(t0 + t) * kv_stride + 8 * e), a[t]);
            }
            const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
            const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
            /* lanes: [k0 k1 k2 k3 | k4 k5 k6 k7] halves, low 128 bits from lanes 0-3 */
            const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
            const __m256 lo = _mm256_permute2f128_ps(h0123, h4567, 0x20), hi = _mm256_permute2f128_ps(h0123, h4567, 0x31);
            const __m256 sc = _mm256_mul_ps(_mm256_add_ps(lo, hi), sv);
            if (nk == ATT_KEYS) {
                _mm256_storeu_ps(scratch + t0, sc);
            } else {
                float buf[ATT_KEYS];
                _mm256_storeu_ps(buf, sc);
                memcpy(scratch + t0, buf, sizeof(float) * (size_t)nk);
            }
        }
        softmax(scratch, n_kv);
        float *oi = out + (size_t)i * out_stride;
        for (int e0 = 0; e0 < nv; e0 += 8) {
            const int ne = nv - e0 < 8 ? nv - e0 : 8;
            __m256 o[8];
            for (int e = 0; e < 8; e++) o[e] = _mm256_setzero_ps();
            for (int64_t t = 0; t < n_kv; t++) {
                const float *vt = v + (size_t)t * kv_stride + 8 * e0;
                const __m256 p = _mm256_set1_ps(scratch[t]);
                for (int e = 0; e < ne; e++) o[e] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + 8 * e), o[e]);
            }
            for (int e = 0; e < ne; e++) _mm256_storeu_ps(oi + 8 * (e0 + e), o[e]);
        }
    }
}

void kiln_avx2_fill_ops(kiln_kernel_table *t) {
    t->attention = attention;
    t->dot = dot;
    t->axpy = axpy;
    t->add = add;
    t->rmsnorm = rmsnorm;
    t->layernorm = layernorm;
    t->softmax = softmax;
    t->swiglu = swiglu;
    t->gelu = gelu;
}
