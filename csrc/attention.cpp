// The attention primitive of step.h: softmax(scale * q k^T (+ causal mask)) v over mlx-lm's cache,
// in float32, each (batch, KV head) reading its keys and values once for all the queries that
// share them (GQA).

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "mlx/allocator.h"
#include "mlx/fast.h"
#include "step.h"
#include "step_impl.h"

namespace zoo_kernels {

using namespace step_detail;


mx::array attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                    mx::StreamOrDevice s_) {
  auto s = mx::to_stream(s_);
  check_cpu(s);
  for (auto* a : {&q, &k, &v}) check_float(*a, "q, k and v");
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4 || k.shape() != v.shape() || q.shape(0) != k.shape(0) ||
      q.shape(3) != k.shape(3) || k.shape(1) < 1 || q.shape(1) % k.shape(1))
    throw std::invalid_argument("zoo kernels: attention needs q [B, Hq, L, D], k and v [B, Hkv, S, D], Hq % Hkv == 0");
  if (causal && q.shape(2) > k.shape(2))
    throw std::invalid_argument("zoo kernels: causal attention needs at least as many keys as queries");
  const int B = q.shape(0), Hq = q.shape(1), L = q.shape(2), D = q.shape(3);
  auto out_type = mx::promote_types(q.dtype(), mx::promote_types(k.dtype(), v.dtype()));
  auto fallback = [scale, causal, B, L, s](const std::vector<mx::array>& in) {
    auto o = mx::fast::scaled_dot_product_attention(in[0], in[1], in[2], scale, causal ? "causal" : "", std::nullopt,
                                                     std::nullopt, false, s);
    return std::vector<mx::array>{mx::reshape(mx::transpose(o, {0, 2, 1, 3}, s), {B, L, -1}, s)};
  };
  return mx::array({B, L, Hq * D}, out_type, std::make_shared<ZooAttention>(s, fallback, scale, causal),
                   {q, k, v});  // read through their strides
}

void ZooAttention::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  out.set_data(mx::allocator::malloc(out.nbytes()));
  const auto &q = inputs[0], &k = inputs[1], &v = inputs[2];
  const int B = q.shape(0), Hq = q.shape(1), L = q.shape(2), D = q.shape(3), Hk = k.shape(1), S = k.shape(2);
  const int G = Hq / Hk;
  const auto qs = q.strides(), ks = k.strides(), vs = v.strides();
  const void *qp = q.data<void>(), *kp = k.data<void>(), *vp = v.data<void>();
  const DT qt = to_dt(q.dtype()), kt = to_dt(k.dtype()), vt = to_dt(v.dtype()), ot = to_dt(out.dtype());
  void* op = out.data<void>();
  const float scale = scale_;
  const bool causal = causal_;
  dispatch(stream(), inputs, outputs, [=]() {
    // One task per (batch, KV head): its keys and values are read once for the G * L queries.
    auto task = [&](int t) {
      const int b = t / Hk, hk = t % Hk, nq = G * L;
      std::vector<float> Q(size_t(nq) * D), P(size_t(nq) * S), O(size_t(nq) * D, 0.f), row(D);
      for (int g = 0; g < G; ++g)
        for (int l = 0; l < L; ++l) {
          const int h = hk * G + g;
          float* dst = Q.data() + size_t(g * L + l) * D;
          load_row(qp, qt, b * qs[0] + h * qs[1] + l * qs[2], D, dst, qs[3]);
          for (int d = 0; d < D; ++d) dst[d] *= scale;
        }
      auto visible = [&](int l) { return causal ? S - L + l + 1 : S; };  // keys [0, visible) for query row l
      for (int j = 0; j < S; ++j) {
        load_row(kp, kt, b * ks[0] + hk * ks[1] + j * ks[2], D, row.data(), ks[3]);
        for (int i = 0; i < nq; ++i)
          P[size_t(i) * S + j] = j < visible(i % L) ? dot(Q.data() + size_t(i) * D, row.data(), D) : -INFINITY;
      }
      std::vector<float> inv(nq);
      for (int i = 0; i < nq; ++i) {
        float* p = P.data() + size_t(i) * S;
        const int n = visible(i % L);
        float m = -INFINITY;
        for (int j = 0; j < n; ++j) m = std::max(m, p[j]);
        float sum = 0.f;
        for (int j = 0; j < S; ++j) {
          p[j] = j < n ? std::exp(p[j] - m) : 0.f;
          sum += p[j];
        }
        inv[i] = 1.0f / sum;
      }
      for (int j = 0; j < S; ++j) {
        load_row(vp, vt, b * vs[0] + hk * vs[1] + j * vs[2], D, row.data(), vs[3]);
        for (int i = 0; i < nq; ++i) {
          const float pj = P[size_t(i) * S + j];
          if (pj != 0.f) axpy(pj, row.data(), O.data() + size_t(i) * D, D);
        }
      }
      for (int i = 0; i < nq; ++i) {
        const int g = i / L, l = i % L;
        float* o = O.data() + size_t(i) * D;
        for (int d = 0; d < D; ++d) o[d] *= inv[i];
        store_row(op, ot, (int64_t(b) * L + l) * Hq * D + int64_t(hk * G + g) * D, o, D);
      }
    };
    parallel_for(B * Hk, size_t(B) * Hq * L * S * D, task);
  });
}

bool ZooAttention::is_equivalent(const mx::Primitive& other) const {
  auto& o = static_cast<const ZooAttention&>(other);
  return scale_ == o.scale_ && causal_ == o.causal_;
}

}  // namespace zoo_kernels
