// zoo's fused feed-forward blocks as one MLX primitive (see docs/kernels.md): the SwiGLU MLP
// (gate and up in one pass over the input, silu * up, down) and the MoE block (float32 router,
// softmax, top-k, the selected SwiGLU experts, the weighted combine, plus a shared SwiGLU MLP).
// At decode this replaces ~25 MLX ops per block (each a CPU dispatch) with one.
#pragma once

#include <optional>
#include <vector>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace zoo_kernels {

namespace mx = mlx::core;

// One projection's format: bits 0 = a float32/bfloat16/float16 weight [..., N, K] (one array); bits 4 or 8
// = MLX affine quantization with that group size (three arrays: w, scales, biases).
struct ProjFormat {
  int bits = 0, group_size = 0;
  bool operator==(const ProjFormat&) const = default;
};

// y = shared(x) + sum_j w_j * expert_{i_j}(x) for x [..., D], where a SwiGLU "expert" is
// down(silu(gate(x)) * up(x)). Routing (with a router): logits = x @ router.T in float32, softmax
// over all E experts, the top_k largest (ties: the lower index), divided by their sum if
// renormalize. `experts` holds the stacked gate, up, down projections ([E, N, K], in that order,
// 1 or 3 arrays each by format), `shared` the shared MLP's; either may be empty (no router and no
// experts: a dense SwiGLU MLP). Output dtype: x's, promoted with the shared projections' float
// dtypes (what MLX's unfused ops return).
mx::array fused_ffn(const mx::array& x, const std::optional<mx::array>& router, const std::vector<mx::array>& experts,
                    const std::vector<int>& expert_formats, const std::vector<mx::array>& shared,
                    const std::vector<int>& shared_formats, int top_k, bool renormalize, mx::StreamOrDevice s = {});

class ZooFFN : public mx::Primitive {
 public:
  // Inputs: x, [router], the expert projections' arrays, the shared projections' arrays.
  ZooFFN(mx::Stream stream, bool router, std::vector<ProjFormat> experts, std::vector<ProjFormat> shared, int top_k,
         bool renormalize)
      : mx::Primitive(stream), router_(router), experts_(std::move(experts)), shared_(std::move(shared)),
        top_k_(top_k), renormalize_(renormalize) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  const char* name() const override { return "ZooFFN"; }
  bool is_equivalent(const mx::Primitive& other) const override;

  // The same block in MLX's own ops (for gradients and as the definition the kernel follows).
  mx::array reference(const std::vector<mx::array>& inputs);

 private:
  bool router_;
  std::vector<ProjFormat> experts_, shared_;
  int top_k_;
  bool renormalize_;
};

}  // namespace zoo_kernels
