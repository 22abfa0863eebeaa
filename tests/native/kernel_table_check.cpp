// kernel_table_check: zoo's CPU kernel tables (csrc/kern.h) against a double-precision scalar
// reference, with no MLX: the tables need only the C++ standard library, so this builds with any
// C++20 compiler, for the host or (cross-compiled, run under qemu-user) for arm64, whose one table
// is the NEON build of kern_generic.cpp. tests/test_kernels_arm64.py builds and runs it.
//
// Build: the driver plus kern_generic.cpp (and, on x86-64 with -DZK_CHECK_X86, kern_avx2.cpp,
// kern_avx512.cpp and kern_avx512bf16.cpp with their CMakeLists.txt flags, ZOO_HAVE_AVX512BF16
// defined when the last one is linked). Run: `kernel_table_check [isa...]` checks the named tables,
// or every linked table this CPU runs; one summary line, exit status 1 on any mismatch.
//
// The reference reads the same bytes independently: MLX's affine format (w = scale * q + bias,
// 4-bit element k in the low (k even) / high (k odd) nibble of byte k/2, 8-bit element k in byte
// k), bfloat16/float16 decoded with ldexp, sums in double. A kernel result passes when it is within
// TOL of the magnitude of the float32 terms it sums: sum |x| |w| for float weights, sum |x| (|s q| +
// |b|) for quantized ones (the kernels add scale * sum q x and bias * sum x, whose terms do not
// cancel as w's do).

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kern.h"

using namespace zoo_kernels;

namespace {

constexpr double TOL = 1e-6;  // ~8 float32 ulps of the magnitude; measured: <= 2e-7 on every table
const float CANARY = -12345.f;

std::mt19937_64 rng(20261202);
double urand(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); }
uint32_t ubits(int lo, int hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); }

// Independent decoders of the half formats.
double bf16_val(uint16_t h) {
  const int e = (h >> 7) & 0xff, m = h & 0x7f;
  const double v = e ? std::ldexp(128.0 + m, e - 134) : std::ldexp(double(m), -133);
  return (h & 0x8000) ? -v : v;
}
double f16_val(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e ? std::ldexp(1024.0 + m, e - 25) : std::ldexp(double(m), -24);
  return (h & 0x8000) ? -v : v;
}
// A random finite half value with a (biased) exponent in [elo, ehi] (0: subnormal).
uint16_t rand_half(DT dt, int elo, int ehi) {
  const uint32_t sign = ubits(0, 1), e = ubits(elo, ehi);
  return dt == BF16 ? uint16_t(sign << 15 | e << 7 | ubits(0, 127)) : uint16_t(sign << 15 | e << 10 | ubits(0, 1023));
}

const char* dt_name(DT d) { return d == F32 ? "float32" : d == BF16 ? "bfloat16" : "float16"; }

// One weight matrix: its bytes (as the kernels read them) and the reference values.
struct Mat {
  WDesc d;
  std::vector<uint8_t> w, scales, biases;
  std::vector<double> val, mag;  // [N][K]: w[n][k], and the magnitude of its float32 terms
  int N;
};

// A value of dtype dt written at element i of buf; returns the value the kernel will see.
double put(DT dt, std::vector<uint8_t>& buf, size_t i, double scale_e) {
  if (dt == F32) {
    const float f = float(urand(-1, 1) * scale_e);
    std::memcpy(buf.data() + 4 * i, &f, 4);
    return f;
  }
  // scale_e picks the exponent range: weights ~[2^-8, 2), scales ~[2^-8, 2^-4)
  const bool small = scale_e < 0.5;
  const uint16_t h = dt == BF16 ? rand_half(BF16, small ? 119 : 120, small ? 122 : 127)
                                : rand_half(F16, small ? 7 : 0, small ? 10 : 15);
  std::memcpy(buf.data() + 2 * i, &h, 2);
  return dt == BF16 ? bf16_val(h) : f16_val(h);
}

Mat make_quant(int N, int K, int bits, int gs, DT sdt) {
  Mat m;
  m.N = N;
  m.d.quant = true, m.d.bits = bits, m.d.gs = gs, m.d.wdt = sdt, m.d.K = K;
  m.d.row_bytes = size_t(K) * bits / 8;
  const int G = K / gs;
  const size_t es = sdt == F32 ? 4 : 2;
  m.w.resize(N * m.d.row_bytes);
  m.scales.resize(size_t(N) * G * es), m.biases.resize(size_t(N) * G * es);
  m.val.resize(size_t(N) * K), m.mag.resize(size_t(N) * K);
  for (auto& b : m.w) b = uint8_t(ubits(0, 255));
  for (int n = 0; n < N; ++n)
    for (int g = 0; g < G; ++g) {
      const size_t si = size_t(n) * G + g;
      const double s = put(sdt, m.scales, si, 0.05), b = put(sdt, m.biases, si, 1.0);
      for (int k = g * gs; k < (g + 1) * gs; ++k) {
        const uint8_t* row = m.w.data() + n * m.d.row_bytes;
        const int q = bits == 8 ? row[k] : (k % 2 == 0 ? row[k / 2] & 15 : row[k / 2] >> 4);
        m.val[size_t(n) * K + k] = s * q + b;
        m.mag[size_t(n) * K + k] = std::fabs(s * q) + std::fabs(b);
      }
    }
  m.d.w = m.w.data(), m.d.scales = m.scales.data(), m.d.biases = m.biases.data();
  return m;
}

Mat make_float(int N, int K, DT dt) {
  Mat m;
  m.N = N;
  m.d.quant = false, m.d.wdt = dt, m.d.K = K;
  m.d.row_bytes = size_t(K) * (dt == F32 ? 4 : 2);
  m.w.resize(N * m.d.row_bytes);
  m.val.resize(size_t(N) * K), m.mag.resize(size_t(N) * K);
  for (size_t i = 0; i < m.val.size(); ++i) m.val[i] = put(dt, m.w, i, 1.0), m.mag[i] = std::fabs(m.val[i]);
  m.d.w = m.w.data();
  return m;
}

std::vector<float> rand_floats(size_t n) {
  std::vector<float> v(n);
  for (auto& f : v) f = float(urand(-1, 1));
  return v;
}

struct Checker {
  const Table& T;
  long checks = 0, bad = 0;
  double worst = 0;  // largest |error| / magnitude seen

  void fail(const std::string& what) {
    if (++bad <= 12) std::printf("MISMATCH %s: %s\n", T.isa, what.c_str());
  }
  // got against ref with magnitude mag (the scale of the float32 terms); tol 0: exact.
  void value(double got, double ref, double mag, double tol, const std::string& what) {
    ++checks;
    const double err = std::fabs(got - ref);
    if (mag > 0) worst = std::max(worst, err / mag);
    if (!(err <= tol * mag)) {  // also catches NaN
      char buf[96];
      std::snprintf(buf, sizeof buf, ": got %.9g, want %.9g (|x||w| %.3g)", got, ref, mag);
      fail(what + buf);
    }
  }

  // matvec on rows [n0, n1) of m against the reference.
  void matvec(const Mat& m, int n0, int n1) {
    const WDesc& d = m.d;
    const int K = d.K;
    char what[128];
    std::snprintf(what, sizeof what, "matvec %s %d-bit gs %d %s N %d K %d rows [%d, %d)", d.quant ? "quantized" : "float",
                  d.quant ? d.bits : 0, d.quant ? d.gs : 0, dt_name(d.wdt), m.N, K, n0, n1);
    const std::vector<float> x = rand_floats(K);
    std::vector<float> xs(d.quant ? K / d.gs : 1, 0.f), xp;
    if (d.quant)
      for (int k = 0; k < K; ++k) xs[k / d.gs] += x[k];  // per-group sums in float32, as csrc/ops.cpp
    const float* xin = x.data();
    if (d.quant && d.bits == 4) {
      xp.assign(T.xp_len(K) + 8, CANARY);
      T.permute4(x.data(), K, xp.data());
      for (int i = 0; i < 8; ++i)
        if (xp[T.xp_len(K) + i] != CANARY) fail(std::string(what) + ": permute4 wrote past xp_len");
      xin = xp.data();
    }
    std::vector<float> y(n1 - n0 + 4, CANARY);
    T.matvec(d, xin, xs.data(), n0, n1, y.data());
    for (int n = n0; n < n1; ++n) {
      double ref = 0, mag = 0;
      for (int k = 0; k < K; ++k) ref += double(x[k]) * m.val[size_t(n) * K + k], mag += std::fabs(x[k]) * m.mag[size_t(n) * K + k];
      value(y[n - n0], ref, mag, TOL, std::string(what) + " row " + std::to_string(n));
    }
    for (int i = n1 - n0; i < n1 - n0 + 4; ++i)
      if (y[i] != CANARY) fail(std::string(what) + ": wrote past row n1");
  }

  // permute4: within each block of 2*vw inputs the even ones, then the odd ones; xp_len(K) >= K.
  void permute(int K) {
    const std::vector<float> x = rand_floats(K);
    std::vector<float> xp(T.xp_len(K) + 8, CANARY);
    T.permute4(x.data(), K, xp.data());
    ++checks;
    if (T.xp_len(K) < size_t(K)) fail("xp_len(" + std::to_string(K) + ") < K");
    for (int b = 0; b < K; b += T.nbw)
      for (int i = 0; i < T.vw; ++i) {
        value(xp[b + i], x[b + 2 * i], 1, 0, "permute4 K " + std::to_string(K) + " even " + std::to_string(b + i));
        value(xp[b + T.vw + i], x[b + 2 * i + 1], 1, 0, "permute4 K " + std::to_string(K) + " odd " + std::to_string(b + i));
      }
    for (int i = 0; i < 8; ++i)
      if (xp[T.xp_len(K) + i] != CANARY) fail("permute4 K " + std::to_string(K) + " wrote past xp_len");
  }

  // tile: rows [n0, n0 + nrows) as floats, transposed into wt[K][nbw], zero beyond nrows.
  void tile(const Mat& m, int n0, int nrows) {
    const int K = m.d.K, NBW = T.nbw;
    std::vector<float> wt(size_t(K) * NBW + 4, CANARY);
    T.tile(m.d, n0, nrows, wt.data());
    char what[96];
    std::snprintf(what, sizeof what, "tile %s %s K %d rows %d+%d", m.d.quant ? (m.d.bits == 4 ? "q4" : "q8") : "float",
                  dt_name(m.d.wdt), K, n0, nrows);
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < NBW; ++c) {
        const float got = wt[size_t(k) * NBW + c];
        const std::string at = std::string(what) + " [" + std::to_string(k) + "][" + std::to_string(c) + "]";
        if (c >= nrows) value(got, 0, 1, 0, at);
        else if (m.d.quant) value(got, m.val[size_t(n0 + c) * K + k], m.mag[size_t(n0 + c) * K + k], 2 * 0x1p-24, at);
        else value(got, m.val[size_t(n0 + c) * K + k], 1, 0, at);  // conversions are exact
      }
    for (int i = 0; i < 4; ++i)
      if (wt[size_t(K) * NBW + i] != CANARY) fail(std::string(what) + ": wrote past the tile");
  }

  // gemm: M rows (scattered in memory) times a K x nbw tile, ncols columns stored at stride ldy.
  void gemm(int M, int K, int ncols) {
    const int NBW = T.nbw, ldy = NBW + 3;
    const std::vector<float> wt = rand_floats(size_t(K) * NBW);
    std::vector<std::vector<float>> xr(M);
    std::vector<const float*> rows(M);
    for (int i = M - 1; i >= 0; --i) xr[i] = rand_floats(K), rows[i] = xr[i].data();
    std::vector<float> y(size_t(M) * ldy, CANARY);
    T.gemm(rows.data(), M, wt.data(), K, y.data(), ldy, ncols);
    char what[64];
    std::snprintf(what, sizeof what, "gemm M %d K %d ncols %d", M, K, ncols);
    for (int i = 0; i < M; ++i)
      for (int c = 0; c < ldy; ++c) {
        const std::string at = std::string(what) + " y[" + std::to_string(i) + "][" + std::to_string(c) + "]";
        if (c >= ncols) {
          value(y[size_t(i) * ldy + c], CANARY, 1, 0, at + " (must stay untouched)");
          continue;
        }
        double ref = 0, mag = 0;
        for (int k = 0; k < K; ++k) ref += double(xr[i][k]) * wt[size_t(k) * NBW + c], mag += std::fabs(xr[i][k] * wt[size_t(k) * NBW + c]);
        value(y[size_t(i) * ldy + c], ref, mag, TOL, at);
      }
  }

  void run() {
    const DT dts[] = {F32, BF16, F16};
    // Quantized: every bit width, scale dtype and group size; N not a multiple of 4 (the 4-row and
    // 1-row paths), a sub-range of rows; K = 1, 3 and 4 groups (4-bit K % 64 != 0 takes the plain
    // kernel on the avx512bf16 table, K % 64 == 0 its bfloat16 one).
    for (int bits : {4, 8})
      for (DT sdt : dts)
        for (int gs : {32, 64, 128})
          for (int G : {1, 3, 4}) {
            const Mat m = make_quant(11, G * gs, bits, gs, sdt);
            matvec(m, 0, 11);
            matvec(m, 2, 9);
            if (G == 3) tile(m, 1, T.nbw < 10 ? T.nbw : 10), tile(m, 8, 3);
          }
    // Float weights: K not a multiple of the vector width, N not a multiple of 4.
    for (DT dt : dts)
      for (int K : {1, 3, 17, 37, 64, 129, 300}) {
        const Mat m = make_float(7, K, dt);
        matvec(m, 0, 7);
        matvec(m, 3, 6);
        if (K == 37 || K == 1) tile(m, 0, 7), tile(m, 5, 2);
      }
    // 4-bit rows hold whole groups (K % 32 == 0), so K is a multiple of 2*vw (<= 32) here.
    for (int K : {T.nbw, 32, 64, 96, 128, 384, 512}) permute(K);
    for (int M : {1, 2, 5, 6, 7, 12, 13})
      for (int K : {1, 7, 64, 100})
        for (int ncols : {T.nbw, T.nbw - 1, 1}) gemm(M, K, ncols);
  }
};

struct Entry {
  const Table& (*get)();
  bool runs;  // this CPU has the instructions
};

std::vector<Entry> linked_tables() {
  std::vector<Entry> t{{table_generic, true}};
#if defined(ZK_CHECK_X86)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && avx2;
  t.push_back({table_avx2, avx2});
  t.push_back({table_avx512, avx512});
#if defined(ZOO_HAVE_AVX512BF16)
  t.push_back({table_avx512bf16, avx512 && __builtin_cpu_supports("avx512bf16")});
#endif
#endif
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> want(argv + 1, argv + argc);
  std::string done, skipped;
  long checks = 0, bad = 0;
  double worst = 0;
  for (const Entry& e : linked_tables()) {
    const Table& T = e.get();
    bool named = want.empty();
    for (auto& w : want) named = named || w == T.isa;
    if (!named) continue;
    if (!e.runs) {
      skipped += std::string(skipped.empty() ? "" : ",") + T.isa;
      continue;
    }
    Checker c{T};
    c.run();
    checks += c.checks, bad += c.bad, worst = std::max(worst, c.worst);
    done += std::string(done.empty() ? "" : ",") + T.isa + "(vw " + std::to_string(T.vw) + ")";
  }
  std::printf("kernel_table_check: tables %s; %ld checks, %ld mismatches, max error %.2g of the terms' magnitude%s%s\n",
              done.empty() ? "none" : done.c_str(), checks, bad, worst,
              skipped.empty() ? "" : "; not run on this CPU: ", skipped.c_str());
  return bad || done.empty() ? 1 : 0;
}
