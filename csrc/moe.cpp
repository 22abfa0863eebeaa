// fused_ffn (moe.h): argument checks, the MLX primitive, its reference in MLX ops and gradient.

#include "moe.h"

#include <stdexcept>
#include <string>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/transforms.h"
#include "moe_exec.h"

namespace zoo_kernels {

namespace {

DT dt_of(mx::Dtype d) {
  if (d == mx::float32) return F32;
  if (d == mx::bfloat16) return BF16;
  if (d == mx::float16) return F16;
  throw std::invalid_argument("zoo fused_ffn: expected float32, bfloat16 or float16 arrays");
}

bool is_float(mx::Dtype d) { return d == mx::float32 || d == mx::bfloat16 || d == mx::float16; }

std::vector<ProjFormat> formats(const std::vector<int>& flat, size_t arrays, const char* what) {
  if (flat.size() != 0 && flat.size() != 6)
    throw std::invalid_argument(std::string("zoo fused_ffn: ") + what + "_formats must hold (bits, group_size) for gate, up, down");
  std::vector<ProjFormat> f;
  size_t need = 0;
  for (size_t i = 0; i < flat.size(); i += 2) {
    f.push_back({flat[i], flat[i + 1]});
    const ProjFormat& p = f.back();
    if (p.bits != 0 && !((p.bits == 4 || p.bits == 8) && (p.group_size == 32 || p.group_size == 64 || p.group_size == 128)))
      throw std::invalid_argument("zoo fused_ffn: quantized projections must have 4 or 8 bits and group size 32, 64 or 128");
    need += p.bits ? 3 : 1;
  }
  if (need != arrays)
    throw std::invalid_argument(std::string("zoo fused_ffn: ") + what + " holds " + std::to_string(arrays) +
                                " arrays, its formats need " + std::to_string(need));
  return f;
}

// Checks one projection ([E, N, K] with experts, else [N, K]) and returns its output size N.
int check_proj(const std::vector<mx::array>& a, size_t i, const ProjFormat& f, int K, int E, const char* what) {
  const mx::array& w = a[i];
  const int dims = E > 0 ? 3 : 2;
  const std::string name = std::string("zoo fused_ffn: ") + what;
  if (w.ndim() != dims || (E > 0 && w.shape(0) != E)) throw std::invalid_argument(name + ": wrong weight shape");
  if (f.bits) {
    if (w.dtype() != mx::uint32 || int64_t(w.shape(-1)) * 32 / f.bits != K || K % f.group_size)
      throw std::invalid_argument(name + ": quantized weight does not take " + std::to_string(K) + " inputs");
    auto expect = w.shape();
    expect.back() = K / f.group_size;
    if (!is_float(a[i + 1].dtype()) || a[i + 1].shape() != expect || a[i + 2].shape() != expect ||
        a[i + 2].dtype() != a[i + 1].dtype())
      throw std::invalid_argument(name + ": scales/biases do not match the weight");
  } else if (!is_float(w.dtype()) || w.shape(-1) != K) {
    throw std::invalid_argument(name + ": expected a float weight taking " + std::to_string(K) + " inputs");
  }
  return w.shape(-2);
}

// Checks a gate/up/down triple; returns the arrays' dtype that the output sees.
mx::Dtype check_block(const std::vector<mx::array>& a, const std::vector<ProjFormat>& f, int D, int E, const char* what) {
  size_t i = 0;
  const int H = check_proj(a, i, f[0], D, E, what);
  mx::Dtype dt = f[0].bits ? a[i + 1].dtype() : a[i].dtype();
  i += f[0].bits ? 3 : 1;
  if (check_proj(a, i, f[1], D, E, what) != H) throw std::invalid_argument(std::string("zoo fused_ffn: ") + what + ": gate and up differ");
  dt = mx::promote_types(dt, f[1].bits ? a[i + 1].dtype() : a[i].dtype());
  i += f[1].bits ? 3 : 1;
  if (check_proj(a, i, f[2], H, E, what) != D) throw std::invalid_argument(std::string("zoo fused_ffn: ") + what + ": down does not return the model width");
  return mx::promote_types(dt, f[2].bits ? a[i + 1].dtype() : a[i].dtype());
}

// Fills `p` from the arrays at inputs[i...] (advancing i) for a stack of E experts (0: one matrix).
void describe(const std::vector<mx::array>& in, size_t& i, const ProjFormat& f, int E, FfnProj& p) {
  const mx::array& w = in[i];
  p.N = w.shape(-2);
  p.w.quant = f.bits != 0;
  p.w.K = f.bits ? int(int64_t(w.shape(-1)) * 32 / f.bits) : w.shape(-1);
  p.w.row_bytes = f.bits ? size_t(p.w.K) * f.bits / 8 : size_t(p.w.K) * w.itemsize();
  p.w.w = w.data<uint8_t>();
  p.expert_w = E > 0 ? size_t(p.N) * p.w.row_bytes : 0;
  if (f.bits) {
    p.w.bits = f.bits;
    p.w.gs = f.group_size;
    p.w.wdt = dt_of(in[i + 1].dtype());
    p.w.scales = in[i + 1].data<void>();
    p.w.biases = in[i + 2].data<void>();
    p.expert_s = E > 0 ? size_t(p.N) * (p.w.K / f.group_size) * in[i + 1].itemsize() : 0;
    i += 3;
  } else {
    p.w.wdt = dt_of(w.dtype());
    i += 1;
  }
}

}  // namespace

mx::array fused_ffn(const mx::array& x, const std::optional<mx::array>& router, const std::vector<mx::array>& experts,
                    const std::vector<int>& expert_formats, const std::vector<mx::array>& shared,
                    const std::vector<int>& shared_formats, int top_k, bool renormalize, mx::StreamOrDevice s) {
  auto st = mx::to_stream(s);
  if (st.device != mx::Device::cpu) throw std::invalid_argument("zoo kernels run on the CPU only; use MLX's own ops on other devices");
  if (!is_float(x.dtype()) || x.ndim() < 1) throw std::invalid_argument("zoo fused_ffn: x must be a float array [..., D]");
  auto ef = formats(expert_formats, experts.size(), "experts");
  auto sf = formats(shared_formats, shared.size(), "shared");
  const int D = x.shape(-1);
  if (router.has_value() != !ef.empty()) throw std::invalid_argument("zoo fused_ffn: a router needs experts and experts need a router");
  if (ef.empty() && sf.empty()) throw std::invalid_argument("zoo fused_ffn: nothing to compute (no experts, no shared MLP)");
  mx::Dtype out = x.dtype();
  std::vector<mx::array> inputs{x};
  if (router) {
    const int E = router->ndim() == 2 ? router->shape(0) : 0;
    if (!is_float(router->dtype()) || E < 1 || router->shape(1) != D)
      throw std::invalid_argument("zoo fused_ffn: the router must be a float [E, " + std::to_string(D) + "] matrix");
    if (top_k < 1 || top_k > E) throw std::invalid_argument("zoo fused_ffn: top_k must be in [1, E]");
    check_block(experts, ef, D, E, "experts");
    inputs.push_back(*router);
  }
  if (!sf.empty()) out = mx::promote_types(out, check_block(shared, sf, D, 0, "shared"));
  inputs.insert(inputs.end(), experts.begin(), experts.end());
  inputs.insert(inputs.end(), shared.begin(), shared.end());
  for (size_t i = 1; i < inputs.size(); ++i)
    if (inputs[i].is_available() && !inputs[i].flags().row_contiguous) inputs[i] = mx::contiguous(inputs[i], false, st);
  return mx::array(x.shape(), out, std::make_shared<ZooFFN>(st, router.has_value(), ef, sf, top_k, renormalize), std::move(inputs));
}

void ZooFFN::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  out.set_data(mx::allocator::malloc(out.nbytes()));
  for (size_t i = 1; i < inputs.size(); ++i)
    if (!inputs[i].flags().row_contiguous) throw std::runtime_error("zoo fused_ffn: weights must be row-contiguous");
  const mx::array& x = inputs[0];
  FfnJob j;
  j.xdt = dt_of(x.dtype());
  j.x = x.data<void>();
  j.D = x.shape(-1);
  j.T = j.D ? int(x.size() / j.D) : 0;
  j.x_kstride = x.strides().back();
  std::vector<int64_t> rows(j.T);
  for (int t = 0; t < j.T; ++t) {  // the offset of row t over x.shape[:-1] through x's strides
    int64_t off = 0, r = t;
    for (int d = int(x.ndim()) - 2; d >= 0; --d) {
      off += (r % x.shape(d)) * x.strides()[d];
      r /= x.shape(d);
    }
    rows[t] = off;
  }
  size_t i = 1;
  if (router_) {
    j.router = inputs[i].data<void>();
    j.rdt = dt_of(inputs[i].dtype());
    j.E = inputs[i].shape(0);
    j.top_k = top_k_;
    j.renormalize = renormalize_;
    j.experts = true;
    ++i;
    for (int q = 0; q < 3; ++q) describe(inputs, i, experts_[q], j.E, j.ex[q]);
  }
  if (!shared_.empty()) {
    j.shared = true;
    for (int q = 0; q < 3; ++q) describe(inputs, i, shared_[q], 0, j.sh[q]);
  }
  j.out = out.data<void>();
  j.odt = dt_of(out.dtype());
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  encoder.dispatch([j, rows = std::move(rows)]() mutable {
    j.x_rows = rows.data();
    if (j.T > 0 && j.D > 0) run_ffn(j);
  });
}

void ZooFFN::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("zoo kernels run on the CPU only");
}

namespace {

// One projection in MLX ops; `idx` selects experts (the gather form SwitchGLU uses).
mx::array proj_ref(const mx::array& x, const std::vector<mx::array>& in, size_t& i, const ProjFormat& f,
                   const std::optional<mx::array>& idx, mx::Stream s) {
  if (f.bits) {
    i += 3;
    if (idx) return mx::gather_qmm(x, in[i - 3], in[i - 2], in[i - 1], std::nullopt, idx, true, f.group_size, f.bits, "affine", std::nullopt, false, s);
    return mx::quantized_matmul(x, in[i - 3], in[i - 2], in[i - 1], true, f.group_size, f.bits, "affine", s);
  }
  const mx::array& w = in[i++];
  if (idx) return mx::gather_mm(x, mx::swapaxes(w, -1, -2, s), std::nullopt, idx, false, s);
  return mx::matmul(x, mx::transpose(w, s), s);
}

mx::array swiglu_ref(const mx::array& x, const std::vector<mx::array>& in, size_t& i, const std::vector<ProjFormat>& f,
                     const std::optional<mx::array>& idx, mx::Stream s) {
  mx::array g = proj_ref(x, in, i, f[0], idx, s);
  mx::array u = proj_ref(x, in, i, f[1], idx, s);
  return proj_ref(mx::multiply(mx::multiply(g, mx::sigmoid(g, s), s), u, s), in, i, f[2], idx, s);
}

}  // namespace

mx::array ZooFFN::reference(const std::vector<mx::array>& in) {
  auto s = stream();
  const mx::array& x = in[0];
  size_t i = 1;
  std::optional<mx::array> y;
  if (router_) {
    mx::array logits = mx::matmul(mx::astype(x, mx::float32, s), mx::transpose(mx::astype(in[i++], mx::float32, s), s), s);
    mx::array probs = mx::softmax(logits, -1, true, s);
    mx::array inds = top_k_ == 1 ? mx::argmax(probs, -1, true, s)
                                 : mx::slice(mx::argpartition(mx::negative(probs, s), top_k_ - 1, -1, s),
                                             mx::Shape(probs.ndim(), 0), [&] { auto e = probs.shape(); e.back() = top_k_; return e; }(), s);
    inds = mx::stop_gradient(mx::astype(inds, mx::uint32, s), s);
    mx::array w = mx::take_along_axis(probs, inds, -1, s);
    if (renormalize_) w = mx::divide(w, mx::sum(w, -1, true, s), s);
    mx::array xe = mx::expand_dims(x, {-2, -3}, s);                               // [..., 1, 1, D]
    mx::array ye = mx::squeeze(swiglu_ref(xe, in, i, experts_, inds, s), -2, s);  // [..., k, D]
    y = mx::astype(mx::sum(mx::multiply(ye, mx::expand_dims(w, -1, s), s), -2, false, s), x.dtype(), s);
  }
  if (!shared_.empty()) {
    mx::array sh = swiglu_ref(x, in, i, shared_, std::nullopt, s);
    y = y ? mx::add(*y, sh, s) : sh;
  }
  return *y;
}

std::vector<mx::array> ZooFFN::vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                                   const std::vector<int>& argnums, const std::vector<mx::array>&) {
  for (int a : argnums)
    if (a != 0) throw std::invalid_argument("zoo fused_ffn: gradients only with respect to x (run with ZOO_KERNELS=off to train weights)");
  auto fn = [this, &primals](const std::vector<mx::array>& xs) {
    std::vector<mx::array> in = primals;
    in[0] = xs[0];
    return std::vector<mx::array>{reference(in)};
  };
  auto [outs, grads] = mx::vjp(fn, {primals[0]}, {cotangents[0]});
  return {grads[0]};
}

bool ZooFFN::is_equivalent(const mx::Primitive& other) const {
  auto& o = static_cast<const ZooFFN&>(other);
  return router_ == o.router_ && experts_ == o.experts_ && shared_ == o.shared_ && top_k_ == o.top_k_ &&
         renormalize_ == o.renormalize_;
}

}  // namespace zoo_kernels
