// zoo's CPU operations for the rest of a decode step (see docs/kernels.md, "The decode step").
//
// MLX's CPU backend has no kernels for mx.fast.rms_norm, mx.fast.rope or
// mx.fast.scaled_dot_product_attention: each runs as its composition of basic ops (RoPE ~15
// nodes, RMSNorm ~10, attention ~15), and every node of a graph costs one CPU dispatch (10-20 us
// measured), far more than the arithmetic of one token. These primitives compute each of them as
// one node. Gradients, vmap and jvp go through the same MLX compositions (the fallback).
#pragma once

#include <functional>
#include <optional>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace zoo_kernels {

namespace mx = mlx::core;

// mx.fast.rms_norm(x, weight, eps): x [..., D] * rsqrt(mean(x^2) + eps) (* weight), in float32,
// rounded once to result_type(x, weight).
mx::array rms_norm(const mx::array& x, const std::optional<mx::array>& weight, float eps, mx::StreamOrDevice s = {});

// A projection's output x [B, L, H*hd] as heads [B, H, L, hd], optionally rotated (RoPE exactly as
// mx.fast.rope with an integer offset; rope_dims 0: none; base or freqs) and then RMS-normalised
// per head (norm; optional weight [hd]) or normalised first (norm_first).
mx::array attention_heads(const mx::array& x, int n_heads, int rope_dims, bool traditional, std::optional<float> base,
                          float scale, int offset, const std::optional<mx::array>& freqs, bool norm,
                          const std::optional<mx::array>& norm_weight, float eps, bool norm_first,
                          mx::StreamOrDevice s = {});

// softmax(scale * q k^T (+ causal mask)) v for q [B, Hq, L, hd], k/v [B, Hkv, S, hd] (GQA; k/v may
// be slices of a KV cache), returned as [B, L, Hq*hd], the layout o_proj takes. Causal aligns the
// last query with the last key (mx.fast's "causal").
mx::array attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                    mx::StreamOrDevice s = {});

// nn.QuantizedEmbedding: rows `ids` of an MLX affine-quantized table w [V, D*bits/32], dequantized
// to the scales' dtype: [*ids.shape, D].
mx::array quantized_rows(const mx::array& ids, const mx::array& w, const mx::array& scales, const mx::array& biases,
                         int group_size, int bits, mx::StreamOrDevice s = {});

// A primitive whose transformations (vjp, jvp, vmap) run its MLX composition.
class ZooStepOp : public mx::Primitive {
 public:
  using Fallback = std::function<std::vector<mx::array>(const std::vector<mx::array>&)>;
  ZooStepOp(mx::Stream stream, Fallback fallback) : mx::Primitive(stream), fallback_(std::move(fallback)) {}
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                          const std::vector<int>& axes) override;

 protected:
  Fallback fallback_;
};

class ZooRmsNorm : public ZooStepOp {
 public:
  ZooRmsNorm(mx::Stream s, Fallback f, float eps, bool has_weight)
      : ZooStepOp(s, std::move(f)), eps_(eps), has_weight_(has_weight) {}
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  const char* name() const override { return "ZooRmsNorm"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  float eps_;
  bool has_weight_;
};

struct HeadsParams {
  int n_heads = 1, rope_dims = 0;
  bool traditional = false;
  float base = 10000.f, scale = 1.f;
  int offset = 0;
  bool has_freqs = false, norm = false, has_weight = false, norm_first = false;
  float eps = 1e-5f;
  bool operator==(const HeadsParams& o) const;
};

class ZooHeads : public ZooStepOp {
 public:
  ZooHeads(mx::Stream s, Fallback f, HeadsParams p) : ZooStepOp(s, std::move(f)), p_(p) {}
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  const char* name() const override { return "ZooHeads"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  HeadsParams p_;
};

class ZooAttention : public ZooStepOp {
 public:
  ZooAttention(mx::Stream s, Fallback f, float scale, bool causal)
      : ZooStepOp(s, std::move(f)), scale_(scale), causal_(causal) {}
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  const char* name() const override { return "ZooAttention"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  float scale_;
  bool causal_;
};

class ZooQuantizedRows : public ZooStepOp {
 public:
  ZooQuantizedRows(mx::Stream s, Fallback f, int group_size, int bits)
      : ZooStepOp(s, std::move(f)), group_size_(group_size), bits_(bits) {}
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  const char* name() const override { return "ZooQuantizedRows"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  int group_size_, bits_;
};

}  // namespace zoo_kernels
