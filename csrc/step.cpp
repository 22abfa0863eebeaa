// The operations of step.h: argument checks, the primitives and their CPU kernels. The arithmetic
// is float32 throughout; each output is rounded once (MLX's compositions round some intermediates
// to the input dtype, so half-precision results agree within one rounding).

#include "step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/fast.h"
#include "mlx/transforms.h"
#include "pool.h"
#include "rows.h"
#include "step_impl.h"

namespace zoo_kernels {

using namespace step_detail;

namespace {

// The rows of an array (all axes but the last) through its strides, and its last axis' stride.
struct RowAt : Strided {
  int64_t last = 1;
  explicit RowAt(const mx::array& a) {
    if (a.ndim() > 0) {
      shape.assign(a.shape().begin(), a.shape().end() - 1);
      strides.assign(a.strides().begin(), a.strides().end() - 1);
      last = a.strides().back();
    }
  }
  int64_t operator()(int64_t i) const { return loc(i); }
};

// Weights (parameters: already evaluated) are read as dense rows; anything else gets a copy.
mx::array contiguous(const mx::array& a, mx::Stream s) {
  return a.is_available() && a.flags().row_contiguous ? a : mx::contiguous(a, false, s);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Transformations through the MLX composition

void ZooStepOp::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("zoo kernels run on the CPU only");
}

std::vector<mx::array> ZooStepOp::vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                                      const std::vector<int>& argnums, const std::vector<mx::array>&) {
  auto [_, vjps] = mx::vjp(fallback_, primals, cotangents);
  std::vector<mx::array> out;
  for (int a : argnums) out.push_back(vjps[a]);
  return out;
}

std::vector<mx::array> ZooStepOp::jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                                      const std::vector<int>& argnums) {
  std::vector<mx::array> all;
  for (size_t i = 0, j = 0; i < primals.size(); ++i) {
    if (j < argnums.size() && int(i) == argnums[j]) all.push_back(tangents[j++]);
    else all.push_back(mx::zeros_like(primals[i]));
  }
  return mx::jvp(fallback_, primals, all).second;
}

std::pair<std::vector<mx::array>, std::vector<int>> ZooStepOp::vmap(const std::vector<mx::array>& inputs,
                                                                   const std::vector<int>& axes) {
  auto outputs = mx::vmap(fallback_, axes)(inputs);
  return {outputs, std::vector<int>(outputs.size(), 0)};
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

mx::array rms_norm(const mx::array& x, const std::optional<mx::array>& weight, float eps, mx::StreamOrDevice s_) {
  auto s = mx::to_stream(s_);
  check_cpu(s);
  check_float(x, "x");
  if (x.ndim() == 0) throw std::invalid_argument("zoo kernels: rms_norm needs at least one dimension");
  const bool has_w = weight.has_value();
  if (has_w) {
    check_float(*weight, "weight");
    if (weight->ndim() != 1 || weight->size() != size_t(x.shape(-1)))
      throw std::invalid_argument("zoo kernels: rms_norm weight must be 1-d with x.shape[-1] elements");
  }
  auto out_type = has_w ? mx::promote_types(x.dtype(), weight->dtype()) : x.dtype();
  auto fallback = [eps, has_w, s](const std::vector<mx::array>& in) {
    return std::vector<mx::array>{
        mx::fast::rms_norm(in[0], has_w ? std::optional<mx::array>(in[1]) : std::nullopt, eps, s)};
  };
  std::vector<mx::array> inputs{x};  // read through its strides
  if (has_w) inputs.push_back(*weight);
  return mx::array(x.shape(), out_type, std::make_shared<ZooRmsNorm>(s, fallback, eps, has_w), std::move(inputs));
}

void ZooRmsNorm::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  out.set_data(mx::allocator::malloc(out.nbytes()));
  const auto& x = inputs[0];
  const int D = x.shape(-1);
  const int64_t rows = D ? int64_t(x.size() / D) : 0;
  const void* xp = x.data<void>();
  const void* wp = has_weight_ ? inputs[1].data<void>() : nullptr;
  const int64_t wstride = has_weight_ ? inputs[1].strides(0) : 1;
  const DT xt = to_dt(x.dtype()), wt = has_weight_ ? to_dt(inputs[1].dtype()) : F32, ot = to_dt(out.dtype());
  const bool dense = x.flags().row_contiguous;
  const RowAt at(x);
  void* op = out.data<void>();
  const float eps = eps_;
  dispatch(stream(), inputs, outputs, [=]() {
    std::vector<float> y(D), w;
    if (wp) {
      w.resize(D);
      load_row(wp, wt, 0, D, w.data(), wstride);
    }
    for (int64_t r = 0; r < rows; ++r) {
      if (dense) load_row(xp, xt, r * D, D, y.data());
      else load_row(xp, xt, at(r), D, y.data(), at.last);
      rms(y.data(), D, eps, wp ? w.data() : nullptr);
      store_row(op, ot, r * D, y.data(), D);
    }
  });
}

bool ZooRmsNorm::is_equivalent(const mx::Primitive& other) const {
  auto& o = static_cast<const ZooRmsNorm&>(other);
  return eps_ == o.eps_ && has_weight_ == o.has_weight_;
}

// ---------------------------------------------------------------------------------------------
// Attention heads: split, RoPE, QK-norm

bool HeadsParams::operator==(const HeadsParams& o) const {
  return n_heads == o.n_heads && rope_dims == o.rope_dims && traditional == o.traditional && base == o.base &&
         scale == o.scale && offset == o.offset && has_freqs == o.has_freqs && norm == o.norm &&
         has_weight == o.has_weight && norm_first == o.norm_first && eps == o.eps;
}

mx::array attention_heads(const mx::array& x, int n_heads, int rope_dims, bool traditional, std::optional<float> base,
                          float scale, int offset, const std::optional<mx::array>& freqs, bool norm,
                          const std::optional<mx::array>& norm_weight, float eps, bool norm_first,
                          mx::StreamOrDevice s_) {
  auto s = mx::to_stream(s_);
  check_cpu(s);
  check_float(x, "x");
  if (x.ndim() != 3 || n_heads < 1 || x.shape(2) % n_heads)
    throw std::invalid_argument("zoo kernels: attention_heads needs x [B, L, n_heads * head_dim]");
  const int hd = x.shape(2) / n_heads;
  if (rope_dims < 0 || rope_dims % 2 || rope_dims > hd)
    throw std::invalid_argument("zoo kernels: rope dims must be even and at most head_dim");
  if (rope_dims && !freqs && !base) throw std::invalid_argument("zoo kernels: RoPE needs a base or freqs");
  if (freqs && (freqs->ndim() != 1 || freqs->size() != size_t(rope_dims / 2)))
    throw std::invalid_argument("zoo kernels: freqs must be 1-d with rope_dims / 2 elements");
  if (norm_weight && (!norm || norm_weight->ndim() != 1 || norm_weight->size() != size_t(hd)))
    throw std::invalid_argument("zoo kernels: the norm weight must be 1-d with head_dim elements");
  HeadsParams p;
  p.n_heads = n_heads;
  p.rope_dims = rope_dims;
  p.traditional = traditional;
  p.base = base.value_or(1.0f);
  p.scale = scale;
  p.offset = offset;
  p.has_freqs = freqs.has_value();
  p.norm = norm;
  p.has_weight = norm_weight.has_value();
  p.norm_first = norm_first;
  p.eps = eps;
  const int B = x.shape(0), L = x.shape(1);
  auto fallback = [p, B, L, hd, s](const std::vector<mx::array>& in) {
    auto y = mx::transpose(mx::reshape(in[0], {B, L, p.n_heads, hd}, s), {0, 2, 1, 3}, s);
    size_t next = 1;
    std::optional<mx::array> f, w;
    if (p.has_freqs) f = in[next++];
    if (p.has_weight) w = in[next++];
    auto normed = [&](const mx::array& a) { return mx::fast::rms_norm(a, w, p.eps, s); };
    if (p.norm && p.norm_first) y = normed(y);
    if (p.rope_dims)
      y = mx::fast::rope(y, p.rope_dims, p.traditional, p.has_freqs ? std::nullopt : std::optional<float>(p.base),
                         p.scale, p.offset, f, s);
    if (p.norm && !p.norm_first) y = normed(y);
    return std::vector<mx::array>{y};
  };
  std::vector<mx::array> inputs{x};  // all three read through their strides
  if (freqs) inputs.push_back(mx::astype(*freqs, mx::float32, s));
  if (norm_weight) inputs.push_back(*norm_weight);
  auto out_type = norm_weight ? mx::promote_types(x.dtype(), norm_weight->dtype()) : x.dtype();
  return mx::array({B, n_heads, L, hd}, out_type, std::make_shared<ZooHeads>(s, fallback, p), std::move(inputs));
}

void ZooHeads::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  out.set_data(mx::allocator::malloc(out.nbytes()));
  const auto& x = inputs[0];
  const HeadsParams p = p_;
  const int B = x.shape(0), L = x.shape(1), H = p.n_heads, hd = x.shape(2) / H;
  const int64_t sb = x.strides(0), sl = x.strides(1), sd = x.strides(2);
  const void* xp = x.data<void>();
  const DT xt = to_dt(x.dtype()), ot = to_dt(out.dtype());
  size_t next = 1;
  const float* fp = p.has_freqs ? inputs[next].data<float>() : nullptr;
  const int64_t fstride = p.has_freqs ? inputs[next++].strides(0) : 1;
  const void* wp = p.has_weight ? inputs[next].data<void>() : nullptr;
  const DT wt = p.has_weight ? to_dt(inputs[next].dtype()) : F32;
  const int64_t wstride = p.has_weight ? inputs[next].strides(0) : 1;
  void* op = out.data<void>();
  dispatch(stream(), inputs, outputs, [=]() {
    const int half = p.rope_dims / 2;
    // cos/sin of every (position, frequency), as mx.fast.rope: positions (l + offset) * scale in
    // float32, inverse frequencies 1 / freqs or exp(-i * log(base) / half).
    std::vector<float> cs(size_t(L) * half), sn(size_t(L) * half), inv(half);
    const float step = half ? float(std::log(double(p.base)) / half) : 0.f;
    for (int i = 0; i < half; ++i) inv[i] = fp ? 1.0f / fp[i * fstride] : std::exp(float(-i) * step);
    for (int l = 0; l < L; ++l)
      for (int i = 0; i < half; ++i) {
        const float th = (float(l) + float(p.offset)) * p.scale * inv[i];
        cs[size_t(l) * half + i] = std::cos(th);
        sn[size_t(l) * half + i] = std::sin(th);
      }
    std::vector<float> w, y(hd), r(hd);
    if (wp) {
      w.resize(hd);
      load_row(wp, wt, 0, hd, w.data(), wstride);
    }
    const float* wf = wp ? w.data() : nullptr;
    for (int b = 0; b < B; ++b)
      for (int l = 0; l < L; ++l)
        for (int h = 0; h < H; ++h) {
          load_row(xp, xt, b * sb + l * sl + int64_t(h) * hd * sd, hd, y.data(), sd);
          if (p.norm && p.norm_first) rms(y.data(), hd, p.eps, wf);
          if (half) {
            const float* c = cs.data() + size_t(l) * half;
            const float* sv = sn.data() + size_t(l) * half;
            std::copy(y.begin(), y.end(), r.begin());
            for (int i = 0; i < half; ++i) {
              const int i1 = p.traditional ? 2 * i : i, i2 = p.traditional ? 2 * i + 1 : i + half;
              y[i1] = r[i1] * c[i] - r[i2] * sv[i];
              y[i2] = r[i1] * sv[i] + r[i2] * c[i];
            }
          }
          if (p.norm && !p.norm_first) rms(y.data(), hd, p.eps, wf);
          store_row(op, ot, ((int64_t(b) * H + h) * L + l) * hd, y.data(), hd);
        }
  });
}

bool ZooHeads::is_equivalent(const mx::Primitive& other) const {
  return p_ == static_cast<const ZooHeads&>(other).p_;
}

// ---------------------------------------------------------------------------------------------
// Quantized embedding rows

mx::array quantized_rows(const mx::array& ids, const mx::array& w, const mx::array& scales, const mx::array& biases,
                         int group_size, int bits, mx::StreamOrDevice s_) {
  auto s = mx::to_stream(s_);
  check_cpu(s);
  if (bits != 4 && bits != 8) throw std::invalid_argument("zoo kernels: bits must be 4 or 8");
  if (group_size != 32 && group_size != 64 && group_size != 128)
    throw std::invalid_argument("zoo kernels: group_size must be 32, 64 or 128");
  if (w.dtype() != mx::uint32 || w.ndim() != 2) throw std::invalid_argument("zoo kernels: w must be 2-d uint32");
  check_float(scales, "scales");
  const int D = int(int64_t(w.shape(1)) * 32 / bits);
  if (scales.shape() != mx::Shape{w.shape(0), D / group_size} || biases.shape() != scales.shape() ||
      biases.dtype() != scales.dtype())
    throw std::invalid_argument("zoo kernels: scales and biases must be [rows, D / group_size], of one dtype");
  if (!mx::issubdtype(ids.dtype(), mx::integer)) throw std::invalid_argument("zoo kernels: ids must be integers");
  auto fallback = [group_size, bits, s](const std::vector<mx::array>& in) {
    return std::vector<mx::array>{mx::dequantize(mx::take(in[1], in[0], 0, s), mx::take(in[2], in[0], 0, s),
                                                 mx::take(in[3], in[0], 0, s), group_size, bits, "affine",
                                                 std::nullopt, std::nullopt, s)};
  };
  auto shape = ids.shape();
  shape.push_back(D);
  auto idx = ids.dtype() == mx::uint32 ? ids : mx::astype(ids, mx::uint32, s);  // read through its strides
  return mx::array(std::move(shape), scales.dtype(), std::make_shared<ZooQuantizedRows>(s, fallback, group_size, bits),
                   {idx, contiguous(w, s), contiguous(scales, s), contiguous(biases, s)});
}

void ZooQuantizedRows::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  out.set_data(mx::allocator::malloc(out.nbytes()));
  const auto &ids = inputs[0], &w = inputs[1], &sc = inputs[2], &bi = inputs[3];
  const int V = w.shape(0), bits = bits_, gs = group_size_;
  const int D = int(int64_t(w.shape(1)) * 32 / bits), G = D / gs;
  const size_t n = ids.size(), row_bytes = size_t(D) * bits / 8;
  const uint32_t* ip = ids.data<uint32_t>();
  const bool dense_ids = ids.flags().row_contiguous;
  const Strided id_at{std::vector<int>(ids.shape().begin(), ids.shape().end()),
                      std::vector<int64_t>(ids.strides().begin(), ids.strides().end())};
  const uint8_t* wp = w.data<uint8_t>();
  const void *sp = sc.data<void>(), *bp = bi.data<void>();
  const DT st = to_dt(sc.dtype());
  void* op = out.data<void>();
  dispatch(stream(), inputs, outputs, [=]() {
    std::vector<float> y(D);
    for (size_t r = 0; r < n; ++r) {
      const uint32_t id = ip[dense_ids ? int64_t(r) : id_at.loc(int64_t(r))];
      if (id >= uint32_t(V)) {  // out of range: NaN rather than another row
        std::fill(y.begin(), y.end(), std::nanf(""));
      } else {
        const uint8_t* row = wp + size_t(id) * row_bytes;
        for (int g = 0; g < G; ++g) {
          const float a = load_one(sp, st, int64_t(id) * G + g), c = load_one(bp, st, int64_t(id) * G + g);
          for (int i = g * gs; i < (g + 1) * gs; ++i) {
            const int qv = bits == 8 ? row[i] : (row[i >> 1] >> ((i & 1) * 4)) & 15;
            y[i] = a * float(qv) + c;
          }
        }
      }
      store_row(op, st, int64_t(r) * D, y.data(), D);
    }
  });
}

bool ZooQuantizedRows::is_equivalent(const mx::Primitive& other) const {
  auto& o = static_cast<const ZooQuantizedRows&>(other);
  return group_size_ == o.group_size_ && bits_ == o.bits_;
}

}  // namespace zoo_kernels
