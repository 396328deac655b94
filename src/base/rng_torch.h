/*
 * rng_torch.h — PyTorch's CPU random generator, so that a Stable Diffusion seed gives
 * the latents (and the per-step noise of ancestral samplers) diffusers gives:
 * torch.randn(n, generator=torch.Generator("cpu").manual_seed(seed)), float32, with the
 * stream continuing from call to call on one generator exactly as torch's does.
 *
 * What torch (checked on 1.13.1, whose headers are ATen/core/MT19937RNGEngine.h,
 * DistributionsHelper.h, TransformationHelper.h, native/cpu/DistributionTemplates.h
 * and native/cpu/avx_mathfun.h) does, and this file reproduces:
 *
 * - The engine is MT19937 seeded from the low 32 bits of the 64-bit seed
 *   (manual_seed(2^32 + 5) draws what manual_seed(5) draws). Seeding also forgets the
 *   cached normal sample below.
 * - A float uniform is (u32 & 0xffffff) * 2^-24: one word, 24 bits, in [0, 1).
 * - randn(n) for n < 16 is the scalar Box–Muller of at::normal_distribution<double>:
 *   u1, u2 from two words each (((w1 & 0x1fffff) << 32 | w2) * 2^-53),
 *   r = sqrt(-2 log(1 - u2)), theta = 2 pi u1, gives r cos(theta) rounded to float
 *   and keeps r sin(theta) (a double) in the generator for the next scalar draw. That
 *   cache outlives the call: randn(1) twice gives cos then sin of one pair, and the
 *   n >= 16 path neither uses nor clears it.
 * - randn(n) for n >= 16 fills n float uniforms, turns each block of 16 into 16
 *   normals (u1 = 1 - data[j], u2 = data[j + 8], data[j] = r cos, data[j + 8] = r sin),
 *   and when 16 does not divide n draws 16 fresh uniforms into the last 16 places and
 *   transforms them again (so it consumes n + 16 words).
 * - The block transform depends on the CPU capability torch dispatches to:
 *   KILN_TORCH_PATH_AVX2 (an x86 CPU with AVX2 or AVX-512: torch 1.13 has no AVX-512
 *   build of this kernel, ATEN_CPU_CAPABILITY=avx512 gives the same values) uses the
 *   Cephes polynomials of avx_mathfun.h (log256_ps, sincos256_ps) in float, with the
 *   FMAs that GCC contracted them into when torch was built with -mfma: emulated
 *   here in scalar float with fmaf() at exactly those places, so the result is
 *   bit-exact (checked against those functions built from torch's header with
 *   torch's compiler and flags for every float input, and against torch.randn on
 *   millions of values). Plain logf/cosf/sinf in float, or log/cos/sin in double
 *   then rounded, are not: they differ from torch there in 17% (38%) of the values,
 *   by up to 7 ulp (7e-7 absolute). KILN_TORCH_PATH_SCALAR (torch's non-AVX2 kernels, e.g.
 *   ATEN_CPU_CAPABILITY=default, other CPUs) uses logf/cosf/sinf in float, theta
 *   computed in double and rounded; bit-exact where libm is the same (glibc gives
 *   the same logf/cosf/sinf as torch linked against), within 1 ulp of each otherwise.
 *
 * The code relies on IEEE float/double without excess precision (x86-64 SSE, AArch64)
 * and on no FP contraction of its own (forbidden below for GCC and Clang).
 */
#ifndef KILN_BASE_RNG_TORCH_H
#define KILN_BASE_RNG_TORCH_H

#include <stdint.h>

typedef enum {
    KILN_TORCH_PATH_AVX2 = 0, /* torch's normal_fill_AVX2 (x86 with AVX2) */
    KILN_TORCH_PATH_SCALAR,   /* torch's normal_fill (no AVX2 kernels) */
} kiln_torch_path;

typedef struct {
    uint32_t mt[624];
    int idx;                 /* next word of mt; 624: twist before the next draw */
    uint64_t seed;           /* as given, as torch's initial_seed() returns it */
    int has_next_normal;     /* torch's next_double_normal_sample_ */
    double next_normal;
    kiln_torch_path path;    /* block transform for n >= 16; seeding sets AVX2 */
} kiln_torch_rng;

/* torch.Generator().manual_seed(seed): the engine, no cached normal, path AVX2. */
void kiln_torch_rng_seed(kiln_torch_rng *g, uint64_t seed);
/* The next raw MT19937 word (torch's generator->random()). */
uint32_t kiln_torch_rng_u32(kiln_torch_rng *g);
/* torch.randn(n, generator=g) in float32, contiguous, consuming the stream as torch
 * does; n <= 0 draws nothing. */
void kiln_torch_randn(kiln_torch_rng *g, float *out, int64_t n);

#endif
