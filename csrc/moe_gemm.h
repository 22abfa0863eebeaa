// Products of several input rows with one weight matrix for the fused feed-forward block
// (moe_exec.cpp), compiled for AVX-512, AVX2+FMA and the baseline by function multiversioning.
#pragma once

#include "kern.h"

namespace zoo_kernels {

// y[i][n - n0] = x[i] . W[n] for n in [n0, n1), i < m, any weight format of kern.h or float32:
// blocks of W's rows are dequantized (or converted) to float32 (float32 rows are read in place),
// then multiplied by a 4x4 register-blocked dot-product kernel. The x rows must be in the order
// the kernel table's matrix-vector kernel reads (4-bit: permuted by the table's permute4 with
// vector width vw; other formats: as they are).
void rows_any(const WDesc& w, int vw, const float* const* x, int m, int n0, int n1, float* const* y);

}  // namespace zoo_kernels
