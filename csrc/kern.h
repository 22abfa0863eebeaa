// zoo CPU kernels: the per-instruction-set kernel table.
//
// Each table is compiled from kern_impl.inc in its own translation unit with its own compiler
// flags (kern_generic.cpp: the baseline of the target; kern_avx2.cpp: AVX2+FMA+F16C;
// kern_avx512.cpp: AVX-512 F/BW/VL/DQ; kern_avx512bf16.cpp: the same plus AVX512_BF16, whose
// bfloat16 dot products serve the 4-bit matrix-vector kernel). select_table() picks one at run
// time from the CPU's flags. The kernels use GCC/Clang vector extensions of VW floats, so the same source becomes
// AVX-512, AVX2, SSE2 or NEON code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zoo_kernels {

enum DT : int { F32 = 0, BF16 = 1, F16 = 2 };

// One weight matrix [N, K]: MLX affine-quantized (uint32-packed, one scale and bias per group of
// gs inputs) or half precision (bf16/fp16, row-major).
struct WDesc {
  bool quant = false;
  int bits = 4, gs = 64;
  DT wdt = BF16;  // half weights: their dtype; quantized: the dtype of scales/biases
  const uint8_t* w = nullptr;  // row n starts at w + n * row_bytes
  size_t row_bytes = 0;
  const void* scales = nullptr;  // quantized: [N, K/gs]
  const void* biases = nullptr;
  int K = 0;
};

struct Table {
  const char* isa;  // "avx512bf16", "avx512", "avx2", "neon", "generic"
  int vw;           // floats per vector
  int nbw;          // columns of a GEMM tile (2 * vw)
  // Reorder one float row of x (K values) for the 4-bit kernel: within each block of 2*vw
  // inputs the even ones first, then the odd ones (the order the nibbles unpack in). xp holds
  // xp_len(K) floats: the permuted row first (what the GEMM paths read), then whatever else this
  // table's 4-bit matrix-vector kernel wants (avx512bf16: x as three bfloat16 parts).
  void (*permute4)(const float* x, int K, float* xp);
  // y[n - n0] for n in [n0, n1): one input row times rows n of W. xp is x (permuted for 4-bit),
  // xs the per-group sums of x (quantized only).
  void (*matvec)(const WDesc& w, const float* xp, const float* xs, int n0, int n1, float* y);
  // Dequantize/convert rows [n0, n0 + nbw) of W (rows >= N read as zero: pass nrows) into a
  // transposed tile wt[K][nbw].
  void (*tile)(const WDesc& w, int n0, int nrows, float* wt);
  // Y[i][0..ncols) = sum_k X[i][k] * wt[k][.] for i < M, X given as row pointers.
  void (*gemm)(const float* const* xrows, int M, const float* wt, int K, float* y, int ldy, int ncols);
  // Floats permute4 writes for a row of K inputs (>= K; the row stride of permuted buffers).
  size_t (*xp_len)(int K);
  // The permuted row alone (the first K floats of permute4's output): what the GEMM paths read;
  // enough where no row of a product takes the matrix-vector kernel.
  void (*permute4_rows)(const float* x, int K, float* xp);
};

const Table& table_generic();
#if defined(__x86_64__) || defined(_M_X64)
const Table& table_avx2();
const Table& table_avx512();
#if defined(ZOO_HAVE_AVX512BF16)
const Table& table_avx512bf16();
#endif
#endif

// The best table this CPU runs (ZOO_KERNELS_ISA=generic|avx2|avx512 forces a lower one).
const Table& select_table();

}  // namespace zoo_kernels
