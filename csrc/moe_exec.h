// The execution side of the fused feed-forward primitive (moe.h): plain pointers, no MLX arrays.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kern.h"

namespace zoo_kernels {

// One projection: its weight description for expert 0 (or the only matrix) and the byte distance
// between consecutive experts of a stack, of the weights and of the scales/biases.
struct FfnProj {
  WDesc w;
  int N = 0;
  size_t expert_w = 0, expert_s = 0;
  WDesc at(int e) const {
    WDesc d = w;
    d.w += size_t(e) * expert_w;
    if (d.quant) {
      d.scales = static_cast<const uint8_t*>(d.scales) + size_t(e) * expert_s;
      d.biases = static_cast<const uint8_t*>(d.biases) + size_t(e) * expert_s;
    }
    return d;
  }
};

struct FfnJob {
  const void* x = nullptr;  // [..., D] read through its strides: token t's row starts at element
  DT xdt = F32;              // x_rows[t], its inputs x_kstride elements apart
  const int64_t* x_rows = nullptr;
  int64_t x_kstride = 1;
  int T = 0, D = 0;
  const void* router = nullptr;  // [E, D] or null
  DT rdt = F32;
  int E = 0, top_k = 0;
  bool renormalize = false;
  bool experts = false, shared = false;
  FfnProj ex[3], sh[3];  // gate, up, down
  void* out = nullptr;   // [T, D], row-contiguous
  DT odt = F32;
};

void run_ffn(const FfnJob& j);

}  // namespace zoo_kernels
