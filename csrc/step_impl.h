// Inline helpers of the decode-step primitives (step.cpp, attention.cpp): float32 loops the
// compiler vectorises, the pool threshold, dispatching a task on the stream's encoder.
#pragma once

#include <cmath>
#include <functional>
#include <vector>

#include "mlx/backend/cpu/encoder.h"
#include "pool.h"
#include "rows.h"

namespace zoo_kernels {
namespace step_detail {

// 8 independent partial sums: the compiler keeps them in vector registers.
inline float dot(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < 8; ++u) acc[u] += a[i + u] * b[i + u];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline void axpy(float a, const float* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

// y *= rsqrt(mean(y^2) + eps) (* w)
inline void rms(float* y, int n, float eps, const float* w) {
  const float r = 1.0f / std::sqrt(dot(y, y, n) / float(n) + eps);
  if (w) {
    for (int i = 0; i < n; ++i) y[i] = y[i] * r * w[i];
  } else {
    for (int i = 0; i < n; ++i) y[i] *= r;
  }
}

// Runs fn(0..n-1) on the pool when the work is large enough to pay for waking threads.
inline void parallel_for(int n, size_t work, const std::function<void(int)>& fn) {
  if (n > 1 && work >= (size_t(1) << 18) && Pool::get().threads() > 1) {
    Pool::get().run(n, fn);
  } else {
    for (int i = 0; i < n; ++i) fn(i);
  }
}


inline void dispatch(mx::Stream s, const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs,
              std::function<void()> task) {
  auto& encoder = mx::cpu::get_command_encoder(s);
  for (auto& a : inputs) encoder.set_input_array(a);
  for (auto& o : outputs) encoder.set_output_array(o);
  encoder.dispatch(std::move(task));
}

}  // namespace step_detail
}  // namespace zoo_kernels
