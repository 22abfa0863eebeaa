// The fused feed-forward block on the CPU: routing, then two phases of products spread over the
// thread pool (gate and up of every used expert; down of every used expert), with the SwiGLU
// activation between them and the weighted combine at the end. Each phase's products run the
// kernel table's matrix-vector kernel (kern.h) for an expert with fewer than GEMM_ROWS rows and
// moe_gemm.h's blocked product from there on, so one call serves decode (one token) and prefill
// (every expert's rows at once).

#include "moe_exec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "mlx/types/bf16.h"
#include "mlx/types/half_types.h"
#include "moe_gemm.h"
#include "pool.h"
#include "rows.h"

namespace zoo_kernels {

namespace {

namespace mxt = mlx::core;

// From this many rows per expert, blocks of dequantized weight rows times the rows (moe_gemm.h);
// below, the table's matrix-vector kernel once per row. (With the table's transposed tiles,
// dequantized by scalar code, the crossover was ~16-24 rows; with moe_gemm's vectorised
// dequantization 4 rows, measured on the small A13B-shaped model's MoE block at 4-128 tokens.)
constexpr int GEMM_ROWS = 4;
constexpr size_t PARALLEL_MIN_BYTES = 1 << 20;  // weight bytes below which one thread is faster

template <typename T>
float to_f(const void* p, int64_t i) {
  return static_cast<float>(static_cast<const T*>(p)[i]);
}

float load(DT dt, const void* p, int64_t i) {
  return dt == F32 ? to_f<float>(p, i) : dt == BF16 ? to_f<mxt::bfloat16_t>(p, i) : to_f<mxt::float16_t>(p, i);
}

void store(DT dt, void* p, int64_t i, float v) {
  if (dt == F32) static_cast<float*>(p)[i] = v;
  else if (dt == BF16) static_cast<mxt::bfloat16_t*>(p)[i] = mxt::bfloat16_t(v);
  else static_cast<mxt::float16_t*>(p)[i] = mxt::float16_t(v);
}

// out[out_rows[i]][n0, n1) = in[in_rows[i]] @ W[n0, n1).T for the m rows of one expert.
void product(const Table& T, const WDesc& w, const Operand& in, const std::vector<int>& in_rows,
             const std::vector<int>& out_rows, int n0, int n1, float* out, int ldo) {
  const int m = int(in_rows.size());
  if (m < GEMM_ROWS) {
    for (int i = 0; i < m; ++i)
      T.matvec(w, in.xp(in_rows[i]), in.xs(in_rows[i]), n0, n1, out + size_t(out_rows[i]) * ldo + n0);
    return;
  }
  thread_local std::vector<const float*> rows;
  thread_local std::vector<float*> outs;
  rows.resize(m);
  outs.resize(m);
  for (int i = 0; i < m; ++i) {
    rows[i] = in.xp(in_rows[i]);
    outs[i] = out + size_t(out_rows[i]) * ldo + n0;
  }
  rows_any(w, T.vw, rows.data(), m, n0, n1, outs.data());
}

// Softmax over E logits, the top_k largest (ties: the lower index), optionally renormalised.
// NaN probabilities (NaN logits) are never larger than another; they are taken last.
void route(const float* logits, int E, int k, bool renorm, int* sel, float* wts) {
  float mx = logits[0];
  for (int e = 1; e < E; ++e) mx = std::max(mx, logits[e]);
  std::vector<float> p(E);
  std::vector<char> taken(E, 0);
  float sum = 0.f;
  for (int e = 0; e < E; ++e) sum += (p[e] = std::exp(logits[e] - mx));
  for (int e = 0; e < E; ++e) p[e] /= sum;
  float total = 0.f;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int e = 0; e < E; ++e)
      if (!taken[e] && (best < 0 || p[e] > p[best] || std::isnan(p[best]))) best = e;
    taken[best] = 1;
    sel[j] = best;
    total += (wts[j] = p[best]);
  }
  if (renorm)
    for (int j = 0; j < k; ++j) wts[j] /= total;
}

float dot(const float* a, const float* b, int n) {
  typedef float v8 __attribute__((vector_size(32)));
  v8 acc{};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    v8 va, vb;
    std::memcpy(&va, a + i, sizeof va);
    std::memcpy(&vb, b + i, sizeof vb);
    acc += va * vb;
  }
  float s = 0.f;
  for (int l = 0; l < 8; ++l) s += acc[l];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One SwiGLU "unit": a routed expert with the (token, slot) pairs it serves, or the shared MLP
// with every token. `tokens` index the input rows, `pairs` the rows of its kind's buffers.
struct Unit {
  const FfnProj* proj;
  int e;
  std::vector<int> tokens, pairs;
};

// Buffers of one kind (routed or shared): gate/up outputs, the activation, the down outputs.
struct Mid {
  int H = 0;
  std::vector<float> g, u, y;
  Operand h;
};

struct Task {
  int unit, proj, n0, n1;
};

void run_tasks(const std::vector<Task>& tasks, bool parallel, const std::function<void(int)>& fn) {
  if (parallel && tasks.size() > 1) Pool::get().run(int(tasks.size()), fn);
  else
    for (size_t t = 0; t < tasks.size(); ++t) fn(int(t));
}

}  // namespace

void run_ffn(const FfnJob& j) {
  const Table& T = select_table();
  const int Tn = j.T, D = j.D, k = j.experts ? j.top_k : 0;
  std::vector<float> X(size_t(Tn) * D);
  for (int t = 0; t < Tn; ++t)
    for (int d = 0; d < D; ++d) X[size_t(t) * D + d] = load(j.xdt, j.x, j.x_rows[t] + d * j.x_kstride);

  // Routing and the units.
  std::vector<int> sel(size_t(Tn) * k);
  std::vector<float> wts(size_t(Tn) * k);
  std::vector<Unit> units;
  if (j.experts) {
    std::vector<float> wg(size_t(j.E) * D), logits(j.E);
    for (size_t i = 0; i < wg.size(); ++i) wg[i] = load(j.rdt, j.router, int64_t(i));
    std::vector<int> unit_of(j.E, -1);
    for (int t = 0; t < Tn; ++t) {
      for (int e = 0; e < j.E; ++e) logits[e] = dot(X.data() + size_t(t) * D, wg.data() + size_t(e) * D, D);
      route(logits.data(), j.E, k, j.renormalize, sel.data() + size_t(t) * k, wts.data() + size_t(t) * k);
      for (int s = 0; s < k; ++s) {
        const int e = sel[size_t(t) * k + s];
        if (unit_of[e] < 0) {
          unit_of[e] = int(units.size());
          units.push_back({j.ex, e, {}, {}});
        }
        units[unit_of[e]].tokens.push_back(t);
        units[unit_of[e]].pairs.push_back(t * k + s);
      }
    }
  }
  if (j.shared) {
    units.push_back({j.sh, 0, {}, {}});
    for (int t = 0; t < Tn; ++t) units.back().tokens.push_back(t), units.back().pairs.push_back(t);
  }
  Mid mids[2];  // 0: routed, 1: shared
  auto kind = [&](const Unit& u) { return u.proj == j.sh ? 1 : 0; };
  Operand xin[2][2];  // [kind][gate/up]
  bool matvec[2] = {false, false};  // [kind]: some unit has fewer rows than the GEMM takes
  for (const Unit& u : units) matvec[kind(u)] = matvec[kind(u)] || int(u.tokens.size()) < GEMM_ROWS;
  for (int c = 0; c < 2; ++c) {
    if (!(c ? j.shared : j.experts)) continue;
    const FfnProj* p = c ? j.sh : j.ex;
    const int rows = c ? Tn : Tn * k;
    mids[c].H = p[0].N;
    mids[c].g.assign(size_t(rows) * p[0].N, 0.f);
    mids[c].u.assign(size_t(rows) * p[0].N, 0.f);
    mids[c].y.assign(size_t(rows) * D, 0.f);
    for (int q = 0; q < 2; ++q) prepare(T, X.data(), Tn, D, p[q].w, xin[c][q], matvec[c]);
  }

  // Work split: chunks of output rows of every (unit, projection).
  const int threads = Pool::get().threads();
  size_t bytes = 0;
  for (const Unit& u : units)
    for (int q = 0; q < 3; ++q) bytes += size_t(u.proj[q].N) * u.proj[q].w.row_bytes;
  const bool parallel = threads > 1 && bytes >= PARALLEL_MIN_BYTES;
  auto tasks_for = [&](std::vector<int> projs) {
    std::vector<Task> tasks;
    for (size_t i = 0; i < units.size(); ++i)
      for (int q : projs) {
        const int N = units[i].proj[q].N;
        const bool gemm = int(units[i].tokens.size()) >= GEMM_ROWS;
        const int chunk = !parallel ? N : gemm ? T.nbw * 2 : std::max(32, (N / (4 * threads) + 3) / 4 * 4);
        for (int n0 = 0; n0 < N; n0 += chunk) tasks.push_back({int(i), q, n0, std::min(N, n0 + chunk)});
      }
    return tasks;
  };

  // Phase 1: gate and up (one pass over the token rows for both).
  std::vector<Task> tasks = tasks_for({0, 1});
  run_tasks(tasks, parallel, [&](int t) {
    const Task& task = tasks[t];
    const Unit& u = units[task.unit];
    Mid& m = mids[kind(u)];
    product(T, u.proj[task.proj].at(u.e), xin[kind(u)][task.proj], u.tokens, u.pairs, task.n0, task.n1,
            (task.proj == 0 ? m.g : m.u).data(), m.H);
  });

  // silu(gate) * up, then the down projection's operand.
  for (int c = 0; c < 2; ++c) {
    Mid& m = mids[c];
    if (m.g.empty()) continue;
    for (size_t i = 0; i < m.g.size(); ++i) {
      const float g = m.g[i];
      m.g[i] = g / (1.f + std::exp(-g)) * m.u[i];
    }
    const FfnProj* p = c ? j.sh : j.ex;
    prepare(T, m.g.data(), c ? Tn : Tn * k, m.H, p[2].w, m.h, matvec[c]);
  }

  // Phase 2: down.
  tasks = tasks_for({2});
  run_tasks(tasks, parallel, [&](int t) {
    const Task& task = tasks[t];
    const Unit& u = units[task.unit];
    Mid& m = mids[kind(u)];
    product(T, u.proj[2].at(u.e), m.h, u.pairs, u.pairs, task.n0, task.n1, m.y.data(), D);
  });

  // The weighted combine, plus the shared MLP; rounded once to the output dtype.
  std::vector<float> acc(D);
  for (int t = 0; t < Tn; ++t) {
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int s = 0; s < k; ++s) {
      const float w = wts[size_t(t) * k + s];
      const float* y = mids[0].y.data() + size_t(t * k + s) * D;
      for (int d = 0; d < D; ++d) acc[d] += w * y[d];
    }
    if (j.shared) {
      const float* y = mids[1].y.data() + size_t(t) * D;
      for (int d = 0; d < D; ++d) acc[d] += y[d];
    }
    for (int d = 0; d < D; ++d) store(j.odt, j.out, int64_t(t) * D + d, acc[d]);
  }
}

}  // namespace zoo_kernels
