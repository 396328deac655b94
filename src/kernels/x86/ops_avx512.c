/*
 * ops_avx512.c — AVX-512 element-wise and reduction ops: dot, axpy, add, rmsnorm,
 * softmax, swiglu, silu, and group norm on channels-last maps. Tails use masked
 * loads/stores, so every length is handled without scalar loops.
 *
 * How they differ from the reference (ops_ref.c), which the tests bound:
 *  - dot, axpy: fused multiply-add and 16 partial sums (rounding differs slightly);
 *  - rmsnorm, softmax: the sums are kept in double as in the reference, only their
 *    order differs;
 *  - softmax, swiglu, silu: exp is the polynomial below (about 2 ulp) instead of
 *    libm's expf;
 *  - group norm: the reference's double sums and float steps (same bits), but SiLU's exp;
 *  - add: exact, identical.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels_impl.h"

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* e^x for 16 lanes: x = n ln2 + r with |r| <= ln2/2, e^r by Cephes' degree-6
 * polynomial (expf), then 2^n applied in two halves so that results down in the
 * subnormal range and up to FLT_MAX are formed without overflowing the exponent
 * field. Inputs are clamped to [-104, 89], beyond which e^x rounds to 0 / inf. */
static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i ni = _mm512_cvtps_epi32(n);
    const __m512i n1 = _mm512_srai_epi32(ni, 1);
    const __m512i n2 = _mm512_sub_epi32(ni, n1);
    const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, _mm512_set1_epi32(127)), 23));
    const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, _mm512_set1_epi32(127)), 23));
    return _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
}

static float dot(const float *a, const float *b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static void axpy(float *y, float a, const float *x, int64_t n) {
    const __m512 av = _mm512_set1_ps(a);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m,
                              _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static void add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* Adds the 16 lanes of v, widened to double, into acc (8 doubles). */
static inline __m512d add_pd16(__m512d acc, __m512 v) {
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    return _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
}

static void rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    if (n <= 0) return;
    __m512d ss = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
        ss = _mm512_fmadd_pd(lo, lo, ss); /* squares of floats are exact in double */
        ss = _mm512_fmadd_pd(hi, hi, ss);
    }
    const float scale = 1.0f / sqrtf((float)(_mm512_reduce_add_pd(ss) / (double)n) + eps);
    const __m512 sv = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sv);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)));
    }
}

static void softmax(float *x, int64_t n) {
    if (n <= 0) return;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
    }
    const float max = _mm512_reduce_max_ps(mx);
    if (max == -INFINITY) { /* as the reference: all masked out gives zeros */
        for (int64_t i = 0; i < n; i++) x[i] = 0.0f;
        return;
    }
    const __m512 maxv = _mm512_set1_ps(max);
    __m512d sum = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), maxv)));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum = add_pd16(sum, e);
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(sum)));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

static void swiglu(float *out, const float *gate, const float *up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
    }
}

/* Attention for head sizes that are a multiple of 16 up to 256: per query the scores
 * are hd/16 FMAs and one lane sum per key, and the output row stays in up to 16
 * registers while the value rows stream by (key order, one FMA chain per lane).
 * Other sizes take the reference. */
#define ATT_MAXV 16
static void attention(const float *q, size_t q_stride, int64_t n_q, const float *k, const float *v, size_t kv_stride,
                      int64_t n_kv0, int64_t hd, float scale, float *out, size_t out_stride, float *scratch) {
    if (hd % 16 || hd / 16 > ATT_MAXV) {
        kiln_ref_attention(q, q_stride, n_q, k, v, kv_stride, n_kv0, hd, scale, out, out_stride, scratch);
        return;
    }
    const int nv = (int)(hd / 16);
    for (int64_t i = 0; i < n_q; i++) {
        const float *qi = q + (size_t)i * q_stride;
        const int64_t n_kv = n_kv0 + i + 1;
        __m512 qv[ATT_MAXV];
        for (int e = 0; e < nv; e++) qv[e] = _mm512_loadu_ps(qi + 16 * e);
        for (int64_t t = 0; t < n_kv; t++) {
            const float *kt = k + (size_t)t * kv_stride;
            __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kt));
            for (int e = 1; e < nv; e++) acc = _mm512_fmadd_ps(qv[e], _mm512_loadu_ps(kt + 16 * e), acc);
            scratch[t] = _mm512_reduce_add_ps(acc) * scale;
        }
        softmax(scratch, n_kv);
        __m512 o[ATT_MAXV];
        for (int e = 0; e < nv; e++) o[e] = _mm512_setzero_ps();
        for (int64_t t = 0; t < n_kv; t++) {
            const float *vt = v + (size_t)t * kv_stride;
            const __m512 p = _mm512_set1_ps(scratch[t]);
            for (int e = 0; e < nv; e++) o[e] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vt + 16 * e), o[e]);
        }
        float *oi = out + (size_t)i * out_stride;
        for (int e = 0; e < nv; e++) _mm512_storeu_ps(oi + 16 * e, o[e]);
    }
}

static inline __m512 silu512(__m512 v) {
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), v))));
}

static void silu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, silu512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* Group norm with the reference's sums (ref/image_ref.c: per channel in pixel order,
 * double, the squared deviation formed as a product then added) and its float steps
 * after them (a subtract, a multiply, an add: no fma), so without SiLU the bits are
 * the reference's; SiLU uses exp512. */
static void group_norm(float *y, const float *x, int64_t n_pix, int64_t C, int groups, const float *w,
                       const float *b, float eps, bool silu_after, double *scratch) {
    double *s1 = scratch, *s2 = scratch + C;
    float *mean = (float *)(void *)(scratch + 2 * C), *scale = mean + C;
    const int64_t cg = C / groups;
    const double count = (double)n_pix * (double)cg;
    for (int64_t c = 0; c < C; c++) s1[c] = s2[c] = 0.0;
    for (int64_t p = 0; p < n_pix; p++)
        for (int64_t c = 0; c < C; c += 16) {
            const __mmask16 m = tail_mask(C - c);
            const __mmask8 lo = (__mmask8)m, hi = (__mmask8)(m >> 8);
            const __m512 v = _mm512_maskz_loadu_ps(m, x + p * C + c);
            _mm512_mask_storeu_pd(s1 + c, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, s1 + c),
                                                            _mm512_cvtps_pd(_mm512_castps512_ps256(v))));
            _mm512_mask_storeu_pd(s1 + c + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, s1 + c + 8),
                                                                _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1))));
        }
    for (int g = 0; g < groups; g++) {
        double s = 0.0;
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) s += s1[c];
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) s1[c] = s / count;
    }
    for (int64_t p = 0; p < n_pix; p++)
        for (int64_t c = 0; c < C; c += 16) {
            const __mmask16 m = tail_mask(C - c);
            const __mmask8 lo = (__mmask8)m, hi = (__mmask8)(m >> 8);
            const __m512 v = _mm512_maskz_loadu_ps(m, x + p * C + c);
            const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), _mm512_maskz_loadu_pd(lo, s1 + c));
            const __m512d d1 =
                _mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)), _mm512_maskz_loadu_pd(hi, s1 + c + 8));
            _mm512_mask_storeu_pd(s2 + c, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, s2 + c), _mm512_mul_pd(d0, d0)));
            _mm512_mask_storeu_pd(s2 + c + 8, hi,
                                  _mm512_add_pd(_mm512_maskz_loadu_pd(hi, s2 + c + 8), _mm512_mul_pd(d1, d1)));
        }
    for (int g = 0; g < groups; g++) {
        double s = 0.0;
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) s += s2[c];
        const double rstd = 1.0 / sqrt(s / count + (double)eps);
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
            mean[c] = (float)s1[c];
            scale[c] = (float)(rstd * (double)w[c]);
        }
    }
    for (int64_t p = 0; p < n_pix; p++)
        for (int64_t c = 0; c < C; c += 16) {
            const __mmask16 m = tail_mask(C - c);
            const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + p * C + c), _mm512_maskz_loadu_ps(m, mean + c));
            __m512 v = _mm512_add_ps(_mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, scale + c)),
                                     _mm512_maskz_loadu_ps(m, b + c));
            if (silu_after) v = silu512(v);
            _mm512_mask_storeu_ps(y + p * C + c, m, v);
        }
}

void kiln_avx512_fill_ops(kiln_kernel_table *t) {
    t->silu = silu;
    t->group_norm = group_norm;
    t->attention = attention;
    t->dot = dot;
    t->axpy = axpy;
    t->add = add;
    t->rmsnorm = rmsnorm;
    t->softmax = softmax;
    t->swiglu = swiglu;
}
