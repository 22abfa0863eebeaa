// Helpers the operations share: dtypes, reading and writing rows of float32/bfloat16/float16
// arrays as float32, strided element offsets, argument checks, and the input rows in the form the
// matrix-vector kernel reads (Operand).
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kern.h"
#include "mlx/array.h"

namespace zoo_kernels {

namespace mx = mlx::core;

inline DT to_dt(mx::Dtype d) {
  if (d == mx::float32) return F32;
  if (d == mx::bfloat16) return BF16;
  if (d == mx::float16) return F16;
  throw std::invalid_argument("zoo kernels: expected a float32, bfloat16 or float16 array");
}

inline size_t dt_size(DT d) { return d == F32 ? 4 : 2; }

inline void load_row(const void* src, DT dt, size_t off, int n, float* dst, int64_t stride = 1) {
  if (stride != 1) {
    for (int i = 0; i < n; ++i) {
      const size_t o = off + size_t(int64_t(i) * stride);
      dst[i] = dt == F32 ? static_cast<const float*>(src)[o]
             : dt == BF16 ? static_cast<float>(static_cast<const mx::bfloat16_t*>(src)[o])
                          : static_cast<float>(static_cast<const mx::float16_t*>(src)[o]);
    }
    return;
  }
  if (dt == F32) {
    std::memcpy(dst, static_cast<const float*>(src) + off, sizeof(float) * n);
  } else if (dt == BF16) {
    auto p = static_cast<const mx::bfloat16_t*>(src) + off;
    for (int i = 0; i < n; ++i) dst[i] = static_cast<float>(p[i]);
  } else {
    auto p = static_cast<const mx::float16_t*>(src) + off;
    for (int i = 0; i < n; ++i) dst[i] = static_cast<float>(p[i]);
  }
}

inline void store_row(void* dst, DT dt, size_t off, const float* src, int n) {
  if (dt == F32) {
    std::memcpy(static_cast<float*>(dst) + off, src, sizeof(float) * n);
  } else if (dt == BF16) {
    auto p = static_cast<mx::bfloat16_t*>(dst) + off;
    for (int i = 0; i < n; ++i) p[i] = static_cast<mx::bfloat16_t>(src[i]);
  } else {
    auto p = static_cast<mx::float16_t*>(dst) + off;
    for (int i = 0; i < n; ++i) p[i] = static_cast<mx::float16_t>(src[i]);
  }
}

// An array's element offsets: the flat index over `shape` mapped through `strides`.
struct Strided {
  std::vector<int> shape;
  std::vector<int64_t> strides;
  int64_t loc(int64_t i) const {
    int64_t off = 0;
    for (int d = int(shape.size()) - 1; d >= 0; --d) {
      off += (i % shape[d]) * strides[d];
      i /= shape[d];
    }
    return off;
  }
};

inline void check_cpu(const mx::Stream& s) {
  if (s.device != mx::Device::cpu)
    throw std::invalid_argument("zoo kernels run on the CPU only; use MLX's own ops on other devices");
}

inline void check_float(const mx::array& a, const char* what) {
  if (a.dtype() != mx::float32 && a.dtype() != mx::bfloat16 && a.dtype() != mx::float16)
    throw std::invalid_argument(std::string("zoo kernels: ") + what + " must be float32, bfloat16 or float16");
}

// One element of a float32/bfloat16/float16 array as float32.
inline float load_one(const void* src, DT dt, int64_t i) {
  return dt == F32 ? static_cast<const float*>(src)[i]
       : dt == BF16 ? static_cast<float>(static_cast<const mx::bfloat16_t*>(src)[i])
                    : static_cast<float>(static_cast<const mx::float16_t*>(src)[i]);
}

// Input rows in the form the matrix-vector kernel wants for one weight format: permuted for
// 4-bit (kern.h permute4), plus per-group sums for quantized weights.
struct Operand {
  const float* x = nullptr;  // [rows, K] in order (GEMM input)
  int K = 0, G = 1;
  size_t stride = 0;  // floats per row of perm (the kernel table's xp_len(K))
  std::vector<float> perm, sums;
  const float* xp(int r) const { return perm.empty() ? x + size_t(r) * K : perm.data() + size_t(r) * stride; }
  const float* xs(int r) const { return sums.empty() ? nullptr : sums.data() + size_t(r) * G; }
  const float* row(int r) const { return x + size_t(r) * K; }
};

// matvec: some rows will take the matrix-vector kernel (4-bit: the table's full permute4, e.g. the
// bfloat16 parts); otherwise only the permuted rows the GEMM path reads.
inline void prepare(const Table& T, const float* x, int rows, int K, const WDesc& w, Operand& op, bool matvec) {
  op.x = x;
  op.K = K;
  if (!w.quant) return;
  op.G = K / w.gs;
  op.sums.assign(size_t(rows) * op.G, 0.f);
  for (int r = 0; r < rows; ++r)
    for (int g = 0; g < op.G; ++g) {
      const float* p = x + size_t(r) * K + size_t(g) * w.gs;
      float s = 0.f;
      for (int i = 0; i < w.gs; ++i) s += p[i];
      op.sums[size_t(r) * op.G + g] = s;
    }
  if (w.bits == 4) {
    op.stride = matvec ? T.xp_len(K) : size_t(K);
    op.perm.resize(size_t(rows) * op.stride);
    for (int r = 0; r < rows; ++r)
      (matvec ? T.permute4 : T.permute4_rows)(x + size_t(r) * K, K, op.perm.data() + size_t(r) * op.stride);
  }
}

}  // namespace zoo_kernels
