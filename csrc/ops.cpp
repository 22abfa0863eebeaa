// The operations of ops.h: argument checks, the MLX primitive, and the driver that splits a
// product into tasks for the thread pool and runs the kernels of kern.h on them.

#include "ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "kern.h"
#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/utils.h"
#include "pool.h"
#include "rows.h"

namespace zoo_kernels {

// ---------------------------------------------------------------------------------------------
// Driver

namespace {

constexpr int GEMM_MIN_ROWS = 4;         // from this many input rows per weight, dequantize tiles + GEMM
// Below these sizes a second thread costs more (waking it, sharing the chunks) than it saves:
// weights of a tiled (several-row) product, and weight bytes of a one-row product. Measured on a
// 2-core Zen 4: a 4-bit 512x512 matrix-vector product takes 19 us on one thread, 65 us on two.
constexpr size_t PARALLEL_MIN = 1 << 16;
constexpr size_t PARALLEL_MIN_MATVEC_BYTES = 1 << 20;

struct Job {
  bool quant;
  int bits, gs;
  DT xdt, wdt, odt;  // wdt: half weights' dtype, or the scales' dtype
  const void* x;     // [..., M, K], any strides: rows through xrows_at, inputs kstride apart
  Strided xrows_at;  // over x.shape[:-1]
  int64_t kstride;
  Strided idx_at;    // over the batch shape (gather)
  const uint8_t* w;  // [E, N, row_bytes]
  const void* scales;
  const void* biases;
  const uint32_t* idx;  // [B] or null (dense)
  int R, M, K, N, E;
  void* out;  // [R, N]
};

struct Task {
  int slot, n0, n1;
};

void execute(const Job& j) {
  const Table& T = select_table();
  const int K = j.K, N = j.N, G = j.quant ? K / j.gs : 0;
  const size_t row_bytes = j.quant ? size_t(K) * j.bits / 8 : size_t(K) * dt_size(j.wdt);

  // The input rows in float32 (the GEMM path reads them as they are).
  std::vector<float> X(size_t(j.R) * K);
  for (int r = 0; r < j.R; ++r) load_row(j.x, j.xdt, size_t(j.xrows_at.loc(r)), K, X.data() + size_t(r) * K, j.kstride);

  // Rows of each used expert (dense: one "expert" with every row).
  std::vector<int> experts;
  std::vector<std::vector<int>> rows;
  if (j.idx == nullptr) {
    experts.push_back(0);
    rows.emplace_back(j.R);
    for (int r = 0; r < j.R; ++r) rows[0][r] = r;
  } else {
    std::vector<int> slot_of(j.E, -1);
    const int B = j.R / j.M;
    for (int b = 0; b < B; ++b) {
      const uint32_t e = j.idx[j.idx_at.loc(b)];
      if (e >= uint32_t(j.E)) {  // cannot come from a router; make it visible rather than plausible
        for (int m = 0; m < j.M; ++m) {
          std::vector<float> nan(N, std::nanf(""));
          store_row(j.out, j.odt, size_t(b * j.M + m) * N, nan.data(), N);
        }
        continue;
      }
      if (slot_of[e] < 0) {
        slot_of[e] = int(experts.size());
        experts.push_back(int(e));
        rows.emplace_back();
      }
      for (int m = 0; m < j.M; ++m) rows[slot_of[e]].push_back(b * j.M + m);
    }
  }
  // The rows as the matrix-vector kernel reads them (group sums; 4-bit: permuted), when some
  // expert's rows take it.
  Operand in;
  in.x = X.data();
  in.K = K;
  bool matvec = false;
  for (auto& r : rows) matvec = matvec || int(r.size()) < GEMM_MIN_ROWS;
  if (matvec && j.quant) {
    WDesc fmt;
    fmt.quant = true, fmt.bits = j.bits, fmt.gs = j.gs;
    prepare(T, X.data(), j.R, K, fmt, in, true);
  }
  std::vector<std::vector<const float*>> xrows(experts.size());
  for (size_t s = 0; s < experts.size(); ++s)
    for (int r : rows[s]) xrows[s].push_back(X.data() + size_t(r) * K);

  // Tasks: chunks of output columns of each used expert.
  const int threads = Pool::get().threads();
  bool any_gemm = false;
  for (auto& r : rows) any_gemm = any_gemm || int(r.size()) >= GEMM_MIN_ROWS;
  const bool parallel = threads > 1 && (any_gemm ? size_t(N) * K * experts.size() >= PARALLEL_MIN
                                                 : size_t(N) * row_bytes * experts.size() >= PARALLEL_MIN_MATVEC_BYTES);
  std::vector<Task> tasks;
  for (size_t s = 0; s < experts.size(); ++s) {
    const bool gemm = int(rows[s].size()) >= GEMM_MIN_ROWS;
    int chunk;
    if (!parallel) {
      chunk = N;
    } else if (gemm) {
      chunk = T.nbw;
    } else {
      chunk = std::max(32, (N / (8 * threads) + 3) / 4 * 4);
    }
    for (int n0 = 0; n0 < N; n0 += chunk) tasks.push_back({int(s), n0, std::min(N, n0 + chunk)});
  }

  auto run_task = [&](int t) {
    const Task& task = tasks[t];
    const int s = task.slot, e = experts[s];
    WDesc wd;
    wd.quant = j.quant;
    wd.bits = j.bits;
    wd.gs = j.gs;
    wd.wdt = j.wdt;
    wd.K = K;
    wd.row_bytes = row_bytes;
    wd.w = j.w + size_t(e) * N * row_bytes;
    if (j.quant) {
      const size_t off = size_t(e) * N * G * dt_size(j.wdt);
      wd.scales = static_cast<const uint8_t*>(j.scales) + off;
      wd.biases = static_cast<const uint8_t*>(j.biases) + off;
    }
    thread_local std::vector<float> ybuf, wt;
    const std::vector<int>& rs = rows[s];
    const int width = task.n1 - task.n0;
    if (int(rs.size()) >= GEMM_MIN_ROWS) {
      ybuf.resize(rs.size() * size_t(T.nbw));
      wt.resize(size_t(K) * T.nbw);
      for (int n = task.n0; n < task.n1; n += T.nbw) {
        const int nr = std::min(T.nbw, task.n1 - n);
        T.tile(wd, n, nr, wt.data());
        T.gemm(xrows[s].data(), int(rs.size()), wt.data(), K, ybuf.data(), T.nbw, nr);
        for (size_t i = 0; i < rs.size(); ++i)
          store_row(j.out, j.odt, size_t(rs[i]) * N + n, ybuf.data() + i * T.nbw, nr);
      }
    } else {
      ybuf.resize(width);
      for (int r : rs) {
        T.matvec(wd, in.xp(r), in.xs(r), task.n0, task.n1, ybuf.data());
        store_row(j.out, j.odt, size_t(r) * N + task.n0, ybuf.data(), width);
      }
    }
  };
  if (parallel && tasks.size() > 1) {
    Pool::get().run(int(tasks.size()), run_task);
  } else {
    for (size_t t = 0; t < tasks.size(); ++t) run_task(int(t));
  }
}

void check_quant(const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
                 int group_size, int bits, int wdims) {
  if (bits != 4 && bits != 8) throw std::invalid_argument("zoo kernels: bits must be 4 or 8");
  if (group_size != 32 && group_size != 64 && group_size != 128)
    throw std::invalid_argument("zoo kernels: group_size must be 32, 64 or 128");
  if (w.dtype() != mx::uint32 || w.ndim() != wdims)
    throw std::invalid_argument("zoo kernels: quantized weights must be uint32 with " + std::to_string(wdims) + " dims");
  check_float(x, "x");
  check_float(scales, "scales");
  if (biases.dtype() != scales.dtype() || biases.shape() != scales.shape())
    throw std::invalid_argument("zoo kernels: biases must match scales in shape and dtype");
  const int K = x.shape(-1), N = w.shape(-2);
  if (int64_t(w.shape(-1)) * 32 / bits != K || K % group_size != 0)
    throw std::invalid_argument("zoo kernels: x has " + std::to_string(K) + " inputs, the weights " +
                                std::to_string(int64_t(w.shape(-1)) * 32 / bits));
  auto expect = w.shape();
  expect.back() = K / group_size;
  if (scales.shape() != expect) throw std::invalid_argument("zoo kernels: scales have the wrong shape");
  (void)N;
}

// x (inputs[0]) and the indices are read through their strides; weights, scales and biases must
// be row-contiguous (parameters are; anything else gets a contiguous copy).
mx::array make(mx::Stream st, bool quant, bool gather, int bits, int gs, mx::Shape shape, mx::Dtype dtype,
               std::vector<mx::array> inputs) {
  const size_t nweights = inputs.size() - (gather ? 1 : 0);
  for (size_t i = 1; i < nweights; ++i)
    if (!(inputs[i].is_available() && inputs[i].flags().row_contiguous)) inputs[i] = mx::contiguous(inputs[i], false, st);
  return mx::array(std::move(shape), dtype, std::make_shared<ZooMatmul>(st, quant, gather, bits, gs), std::move(inputs));
}

std::pair<mx::array, mx::array> broadcast_gather(const mx::array& x, const mx::array& indices, mx::Stream st) {
  if (x.ndim() < 2) throw std::invalid_argument("zoo kernels: gather x needs at least 2 dims");
  mx::Shape xb(x.shape().begin(), x.shape().end() - 2);
  mx::Shape batch = mx::broadcast_shapes(xb, indices.shape());
  mx::Shape xs = batch;
  xs.push_back(x.shape(-2));
  xs.push_back(x.shape(-1));
  return {mx::broadcast_to(x, xs, st), mx::broadcast_to(mx::astype(indices, mx::uint32, st), batch, st)};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Operations

mx::array qmm(const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
              int group_size, int bits, mx::StreamOrDevice s) {
  auto st = mx::to_stream(s);
  check_cpu(st);
  check_quant(x, w, scales, biases, group_size, bits, 2);
  auto shape = x.shape();
  shape.back() = w.shape(0);
  return make(st, true, false, bits, group_size, shape, mx::promote_types(x.dtype(), scales.dtype()),
              {x, w, scales, biases});
}

mx::array gather_qmm(const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
                     const mx::array& indices, int group_size, int bits, mx::StreamOrDevice s) {
  auto st = mx::to_stream(s);
  check_cpu(st);
  check_quant(x, w, scales, biases, group_size, bits, 3);
  auto [xb, ib] = broadcast_gather(x, indices, st);
  auto shape = xb.shape();
  shape.back() = w.shape(1);
  return make(st, true, true, bits, group_size, shape, mx::promote_types(x.dtype(), scales.dtype()),
              {xb, w, scales, biases, ib});
}

mx::array half_mm(const mx::array& x, const mx::array& w, mx::StreamOrDevice s) {
  auto st = mx::to_stream(s);
  check_cpu(st);
  check_float(x, "x");
  if ((w.dtype() != mx::bfloat16 && w.dtype() != mx::float16) || w.ndim() != 2)
    throw std::invalid_argument("zoo kernels: half_mm needs a 2-d bfloat16 or float16 weight");
  if (w.shape(1) != x.shape(-1)) throw std::invalid_argument("zoo kernels: x and w disagree on the input size");
  auto shape = x.shape();
  shape.back() = w.shape(0);
  return make(st, false, false, 16, 0, shape, mx::promote_types(x.dtype(), w.dtype()), {x, w});
}

mx::array dense_mm(const mx::array& x, const mx::array& w, mx::StreamOrDevice s) {
  auto st = mx::to_stream(s);
  check_cpu(st);
  check_float(x, "x");
  check_float(w, "w");
  if (w.ndim() != 2) throw std::invalid_argument("zoo kernels: dense_mm needs a 2-d weight");
  if (w.shape(1) != x.shape(-1)) throw std::invalid_argument("zoo kernels: x and w disagree on the input size");
  auto shape = x.shape();
  shape.back() = w.shape(0);
  return make(st, false, false, 16, 0, shape, mx::promote_types(x.dtype(), w.dtype()), {x, w});
}

mx::array gather_half_mm(const mx::array& x, const mx::array& w, const mx::array& indices, mx::StreamOrDevice s) {
  auto st = mx::to_stream(s);
  check_cpu(st);
  check_float(x, "x");
  if ((w.dtype() != mx::bfloat16 && w.dtype() != mx::float16) || w.ndim() != 3)
    throw std::invalid_argument("zoo kernels: gather_half_mm needs a 3-d bfloat16 or float16 weight");
  if (w.shape(2) != x.shape(-1)) throw std::invalid_argument("zoo kernels: x and w disagree on the input size");
  auto [xb, ib] = broadcast_gather(x, indices, st);
  auto shape = xb.shape();
  shape.back() = w.shape(1);
  return make(st, false, true, 16, 0, shape, mx::promote_types(x.dtype(), w.dtype()), {xb, w, ib});
}

// ---------------------------------------------------------------------------------------------
// Primitive

void ZooMatmul::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  for (size_t i = 1; i < inputs.size() - (gather_ ? 1 : 0); ++i)
    if (!inputs[i].flags().row_contiguous) throw std::runtime_error("zoo kernels: weights must be row-contiguous");
  out.set_data(mx::allocator::malloc(out.nbytes()));
  const auto& x = inputs[0];
  const auto& w = inputs[1];
  Job j{};
  j.quant = quant_;
  j.bits = bits_;
  j.gs = group_size_;
  j.xdt = to_dt(x.dtype());
  j.odt = to_dt(out.dtype());
  j.x = x.data<void>();
  j.w = w.data<uint8_t>();
  j.K = x.shape(-1);
  j.M = x.ndim() >= 2 ? x.shape(-2) : 1;
  j.R = int(x.size() / std::max(j.K, 1));
  j.N = out.shape(-1);
  j.E = w.ndim() == 3 ? w.shape(0) : 1;
  if (quant_) {
    j.wdt = to_dt(inputs[2].dtype());
    j.scales = inputs[2].data<void>();
    j.biases = inputs[3].data<void>();
  } else {
    j.wdt = to_dt(w.dtype());
  }
  j.xrows_at.shape.assign(x.shape().begin(), x.shape().end() - 1);
  j.xrows_at.strides.assign(x.strides().begin(), x.strides().end() - 1);
  j.kstride = x.strides().back();
  j.idx = gather_ ? inputs.back().data<uint32_t>() : nullptr;
  if (gather_) {
    j.idx_at.shape.assign(inputs.back().shape().begin(), inputs.back().shape().end());
    j.idx_at.strides.assign(inputs.back().strides().begin(), inputs.back().strides().end());
  }
  j.out = out.data<void>();

  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  encoder.dispatch([j]() {
    if (j.R > 0 && j.N > 0) execute(j);
  });
}

void ZooMatmul::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("zoo kernels run on the CPU only");
}

std::vector<mx::array> ZooMatmul::vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                                      const std::vector<int>& argnums, const std::vector<mx::array>&) {
  const auto& cot = cotangents[0];
  const auto& x = primals[0];
  const auto& w = primals[1];
  auto s = stream();
  std::vector<mx::array> grads;
  for (int a : argnums) {
    if (a == 0) {
      mx::array g = quant_ ? (gather_ ? mx::gather_qmm(cot, w, primals[2], primals[3], std::nullopt, primals.back(),
                                                       false, group_size_, bits_, "affine", std::nullopt, false, s)
                                      : mx::quantized_matmul(cot, w, primals[2], primals[3], false, group_size_, bits_,
                                                             "affine", s))
                           : (gather_ ? mx::gather_mm(cot, w, std::nullopt, primals.back(), false, s)
                                      : mx::matmul(cot, w, s));
      grads.push_back(mx::astype(g, x.dtype(), s));
    } else if (a == 1 && !quant_ && !gather_) {
      const int K = x.shape(-1), N = w.shape(0);
      auto c2 = mx::reshape(cot, {-1, N}, s);
      auto x2 = mx::reshape(x, {-1, K}, s);
      grads.push_back(mx::astype(mx::matmul(mx::transpose(c2, s), x2, s), w.dtype(), s));
    } else {
      throw std::invalid_argument("zoo kernels: no gradient for quantized weights, scales, biases or indices");
    }
  }
  return grads;
}

bool ZooMatmul::is_equivalent(const mx::Primitive& other) const {
  auto& o = static_cast<const ZooMatmul&>(other);
  return quant_ == o.quant_ && gather_ == o.gather_ && bits_ == o.bits_ && group_size_ == o.group_size_;
}

}  // namespace zoo_kernels
