// Python binding of the fused feed-forward primitive (moe.h); bindings.cpp calls bind_moe.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "moe.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace zoo_kernels {

void bind_moe(nb::module_& m) {
  m.def("fused_ffn", &fused_ffn, "x"_a, "router"_a.none(), "experts"_a, "expert_formats"_a, "shared"_a,
        "shared_formats"_a, "top_k"_a, "renormalize"_a, nb::kw_only(), "stream"_a = nb::none(),
        "shared(x) + sum_j w_j * expert_j(x): a SwiGLU MLP or MoE block in one CPU primitive. Formats are "
        "(bits, group_size) per gate/up/down projection, bits 0 for a float32/bfloat16/float16 weight (one array), "
        "else 4/8 (w, scales, biases).");
}

}  // namespace zoo_kernels
