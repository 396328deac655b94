/*
 * kquants_ref.c — the ref level of the kquants quantized types (Q4_K, Q5_K, Q6_K).
 *
 * Types not yet registered here are refused by kiln_matmul with KILN_ERR_UNSUPPORTED.
 */
#include "kernels/kernels_impl.h"

void kiln_ref_fill_kquants(kiln_kernel_table *t) { (void)t; }
