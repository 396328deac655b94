/*
 * klow_avx512.c — the avx512 level of the low-bit K-quant types (Q2_K, Q3_K).
 *
 * Types not yet registered here are refused by kiln_matmul with KILN_ERR_UNSUPPORTED.
 */
#include "kernels/kernels_impl.h"

void kiln_avx512_fill_klow(kiln_kernel_table *t) { (void)t; }
