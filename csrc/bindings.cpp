// Python bindings of zoo's CPU kernels (nanobind, in MLX's binding domain so mx.array passes).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>

#include "mlx/version.h"
#include "ops.h"
#include "kern.h"
#include "step.h"
#include <nanobind/stl/optional.h>

namespace nb = nanobind;
using namespace nb::literals;
namespace zk = zoo_kernels;

namespace zoo_kernels { void bind_moe(nb::module_& m); }  // moe_bindings.cpp

#define ZK_STR2(x) #x
#define ZK_STR(x) ZK_STR2(x)

NB_MODULE(_ext, m) {
  m.doc() = "zoo's CPU matmul kernels for MLX (quantized, gather and half-precision products)";
  // The MLX this module was compiled against; zoo_registry.kernels refuses to use it with another.
  m.attr("MLX_BUILD_VERSION") = ZK_STR(MLX_VERSION_MAJOR) "." ZK_STR(MLX_VERSION_MINOR) "." ZK_STR(MLX_VERSION_PATCH);
  m.def("mlx_runtime_version", [] { return std::string(mlx::core::version()); },
        "The version of the libmlx this process loaded.");
  m.def("qmm", &zk::qmm, "x"_a, "w"_a, "scales"_a, "biases"_a, "group_size"_a, "bits"_a, nb::kw_only(),
        "stream"_a = nb::none(), "x @ dequantize(w).T for MLX affine 4/8-bit weights (CPU).");
  m.def("gather_qmm", &zk::gather_qmm, "x"_a, "w"_a, "scales"_a, "biases"_a, "indices"_a, "group_size"_a, "bits"_a,
        nb::kw_only(), "stream"_a = nb::none(), "mx.gather_qmm(x, w, ..., rhs_indices=indices, transpose=True).");
  m.def("half_mm", &zk::half_mm, "x"_a, "w"_a, nb::kw_only(), "stream"_a = nb::none(),
        "x @ w.T for a bfloat16/float16 w (CPU).");
  m.def("gather_half_mm", &zk::gather_half_mm, "x"_a, "w"_a, "indices"_a, nb::kw_only(), "stream"_a = nb::none(),
        "mx.gather_mm(x, w.swapaxes(-1, -2), rhs_indices=indices) for bfloat16/float16 experts (CPU).");
  m.def("isa", &zk::isa, "The instruction set the kernels use.");
  m.def("set_isa", &zk::set_isa, "name"_a, "Use another (lower) instruction set: avx512, avx2, neon or generic.");
  m.def("threads", &zk::threads, "Threads the kernels use (ZOO_THREADS).");
  m.def("set_threads", &zk::set_threads, "n"_a, "Set the kernels' thread count.");
  m.def("dense_mm", &zk::dense_mm, "x"_a, "w"_a, nb::kw_only(), "stream"_a = nb::none(),
        "x @ w.T for a float32, bfloat16 or float16 w (CPU).");
  // The rest of a decode step (step.h)
  m.def("rms_norm", &zk::rms_norm, "x"_a, "weight"_a.none(), "eps"_a, nb::kw_only(), "stream"_a = nb::none(),
        "mx.fast.rms_norm as one CPU node.");
  m.def("attention_heads", &zk::attention_heads, "x"_a, "n_heads"_a, "rope_dims"_a, "traditional"_a, "base"_a.none(),
        "scale"_a, "offset"_a, "freqs"_a.none(), "norm"_a, "norm_weight"_a.none(), "eps"_a, "norm_first"_a,
        nb::kw_only(), "stream"_a = nb::none(),
        "x [B, L, H*hd] -> heads [B, H, L, hd], rotated (mx.fast.rope) and RMS-normalised per head, as one CPU node.");
  m.def("attention", &zk::attention, "q"_a, "k"_a, "v"_a, "scale"_a, "causal"_a, nb::kw_only(), "stream"_a = nb::none(),
        "mx.fast.scaled_dot_product_attention (no mask or causal) returned as [B, L, Hq*hd], as one CPU node.");
  m.def("quantized_rows", &zk::quantized_rows, "ids"_a, "w"_a, "scales"_a, "biases"_a, "group_size"_a, "bits"_a,
        nb::kw_only(), "stream"_a = nb::none(), "nn.QuantizedEmbedding's lookup (rows, dequantized) as one CPU node.");
  zk::bind_moe(m);
}
