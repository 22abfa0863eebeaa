// zoo's CPU matmul operations as MLX primitives (see docs/kernels.md).
#pragma once

#include <optional>
#include <string>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace zoo_kernels {

namespace mx = mlx::core;

// x[..., K] @ dequantize(w, scales, biases).T -> [..., N]; w [N, K*bits/32] uint32 (mx.quantize),
// bits 4 or 8, group_size 32/64/128. Output dtype: result_type(x, scales).
mx::array qmm(const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
              int group_size, int bits, mx::StreamOrDevice s = {});

// The gather form (mx.gather_qmm with rhs_indices, transpose=True): out[b] = x[b] @ W[idx[b]].T
// with x [..., M, K] and idx [...] broadcast together; w [E, N, K*bits/32].
mx::array gather_qmm(const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
                     const mx::array& indices, int group_size, int bits, mx::StreamOrDevice s = {});

// x[..., K] @ w.T for a bfloat16/float16 w [N, K]. Output dtype: result_type(x, w).
mx::array half_mm(const mx::array& x, const mx::array& w, mx::StreamOrDevice s = {});

// x[..., K] @ w.T for a float32, bfloat16 or float16 w [N, K] (float32: the one-row products of
// decode, where MLX's M=1 sgemm call costs more than reading the weight).
mx::array dense_mm(const mx::array& x, const mx::array& w, mx::StreamOrDevice s = {});

// The same for stacked half-precision experts w [E, N, K] (mx.gather_mm with rhs_indices).
mx::array gather_half_mm(const mx::array& x, const mx::array& w, const mx::array& indices, mx::StreamOrDevice s = {});

// The instruction set the kernels use ("avx512", "avx2", "neon", "generic"), and choosing one.
std::string isa();
void set_isa(const std::string& name);
int threads();
void set_threads(int n);

class ZooMatmul : public mx::Primitive {
 public:
  // quant: affine-quantized weights (bits, group_size) else half precision; gather: a last
  // input holds the expert of every batch entry.
  ZooMatmul(mx::Stream stream, bool quant, bool gather, int bits, int group_size)
      : mx::Primitive(stream), quant_(quant), gather_(gather), bits_(bits), group_size_(group_size) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  const char* name() const override { return "ZooMatmul"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  bool quant_, gather_;
  int bits_, group_size_;
};

}  // namespace zoo_kernels
