// Python bindings of zoo's CPU kernels (nanobind, in MLX's binding domain so mx.array passes).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>

#include "mlx/version.h"
#include "ops.h"
#include "kern.h"

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
  zk::bind_moe(m);
}
