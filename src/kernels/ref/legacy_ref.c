/*
 * legacy_ref.c — the ref level of the legacy quantized types (Q4_1, Q5_0, Q5_1).
 *
 * Types not yet registered here are refused by kiln_matmul with KILN_ERR_UNSUPPORTED.
 */
#include "kernels/kernels_impl.h"

void kiln_ref_fill_legacy(kiln_kernel_table *t) { (void)t; }
