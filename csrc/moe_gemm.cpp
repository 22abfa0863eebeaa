// moe_gemm.h: dot-product GEMM over dequantized weight rows. Unlike the kernel table's tiled GEMM
// (which dequantizes into a transposed tile with scalar code), rows are dequantized in the order
// they are stored, with vector loads and stores, so the conversion costs a few instructions per 16
// weights and pays from a handful of input rows on.

#include "moe_gemm.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // 64-byte vectors passed between inline helpers only

#include <algorithm>
#include <cstring>
#include <vector>

#include "mlx/types/half_types.h"

namespace zoo_kernels {

namespace {

// Clones need ifunc (glibc) and GCC 12's x86-64-v3 level (AVX2+FMA+F16C); elsewhere the
// baseline build of the same code runs.
#if defined(__x86_64__) && defined(__linux__) && !defined(__clang__) && __GNUC__ >= 12
#define ZK_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define ZK_CLONES
#endif

// Helpers are forced inline: a separate copy would be compiled for the baseline only.
#define ZK_INLINE inline __attribute__((always_inline))

typedef float v16 __attribute__((vector_size(64)));
constexpr int MB = 4, NB = 4;  // input rows x weight rows per register block (16 accumulators)
constexpr int ROWS = 16;       // weight rows dequantized at a time (ROWS * K floats, in L1/L2)

ZK_INLINE v16 ld16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

ZK_INLINE float scalar(DT dt, const void* p, size_t i) {
  if (dt == F32) return static_cast<const float*>(p)[i];
  const auto h = static_cast<const uint16_t*>(p)[i];
  if (dt == BF16) {
    const uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  mlx::core::float16_t f;
  std::memcpy(&f, &h, 2);
  return static_cast<float>(f);
}

// Row n of W as K floats, 4-bit in the permuted order (per block of 2*vw inputs: the low nibbles
// of its vw bytes, then the high nibbles), w = scale * q + bias as mx.dequantize computes it.
ZK_CLONES void dequant(const WDesc& w, int vw, int n, float* out) {
  const int K = w.K;
  const uint8_t* row = w.w + size_t(n) * w.row_bytes;
  if (!w.quant) {
    if (w.wdt == BF16) {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
      for (int k = 0; k < K; ++k) {
        const uint32_t u = uint32_t(h[k]) << 16;
        std::memcpy(out + k, &u, 4);
      }
    } else {
      for (int k = 0; k < K; ++k) out[k] = scalar(w.wdt, row, k);
    }
    return;
  }
  const int G = K / w.gs;
  for (int g = 0; g < G; ++g) {
    const float s = scalar(w.wdt, w.scales, size_t(n) * G + g), b = scalar(w.wdt, w.biases, size_t(n) * G + g);
    float* o = out + size_t(g) * w.gs;
    if (w.bits == 8) {
      const uint8_t* q = row + size_t(g) * w.gs;
      for (int i = 0; i < w.gs; ++i) o[i] = s * float(q[i]) + b;
      continue;
    }
    const uint8_t* q = row + size_t(g) * w.gs / 2;
    for (int blk = 0; blk < w.gs; blk += 2 * vw, q += vw, o += 2 * vw) {
      for (int i = 0; i < vw; ++i) o[i] = s * float(q[i] & 15) + b;
      for (int i = 0; i < vw; ++i) o[vw + i] = s * float(q[i] >> 4) + b;
    }
  }
}

// y[i][off + c] = x[i] . wr[c] for the MBT rows x[0..MBT), c < nr.
template <int MBT>
ZK_INLINE void dot_block(const float* const* xr, const float* const* wr, int nr, int K, float* const* y, int off) {
  const int Kv = K - K % 16;
  for (int c0 = 0; c0 < nr; c0 += NB) {
    const int nb = std::min(NB, nr - c0);
    const float* w[NB];
    for (int c = 0; c < NB; ++c) w[c] = wr[c0 + std::min(c, nb - 1)];
    v16 acc[MBT][NB];
    for (int i = 0; i < MBT; ++i)
      for (int c = 0; c < NB; ++c) acc[i][c] = v16{};
    for (int k = 0; k < Kv; k += 16) {
      v16 xv[MBT];
      for (int i = 0; i < MBT; ++i) xv[i] = ld16(xr[i] + k);
#pragma GCC unroll 4
      for (int c = 0; c < NB; ++c) {
        const v16 wv = ld16(w[c] + k);
        for (int i = 0; i < MBT; ++i) acc[i][c] += xv[i] * wv;
      }
    }
    for (int i = 0; i < MBT; ++i)
      for (int c = 0; c < nb; ++c) {
        float s = 0.f;
        for (int l = 0; l < 16; ++l) s += acc[i][c][l];
        for (int k = Kv; k < K; ++k) s += xr[i][k] * w[c][k];
        y[i][off + c0 + c] = s;
      }
  }
}

// y[i][off + c] = x[i] . wr[c] for i < m, c < nr: blocks of MB rows, the rest one by one.
ZK_CLONES void dots(const float* const* x, int m, const float* const* wr, int nr, int K, float* const* y, int off) {
  int i = 0;
  for (; i + MB <= m; i += MB) dot_block<MB>(x + i, wr, nr, K, y + i, off);
  for (; i < m; ++i) dot_block<1>(x + i, wr, nr, K, y + i, off);
}

void rows_f32(const WDesc& w, const float* const* x, int m, int n0, int n1, float* const* y) {
  const float* wr[ROWS];
  for (int n = n0; n < n1; n += ROWS) {
    const int nr = std::min(ROWS, n1 - n);
    for (int c = 0; c < nr; ++c) wr[c] = reinterpret_cast<const float*>(w.w + size_t(n + c) * w.row_bytes);
    dots(x, m, wr, nr, w.K, y, n - n0);
  }
}

}  // namespace

void rows_any(const WDesc& w, int vw, const float* const* x, int m, int n0, int n1, float* const* y) {
  if (!w.quant && w.wdt == F32) return rows_f32(w, x, m, n0, n1, y);
  thread_local std::vector<float> buf;
  buf.resize(size_t(ROWS) * w.K);
  const float* wr[ROWS];
  for (int n = n0; n < n1; n += ROWS) {
    const int nr = std::min(ROWS, n1 - n);
    for (int c = 0; c < nr; ++c) {
      dequant(w, vw, n + c, buf.data() + size_t(c) * w.K);
      wr[c] = buf.data() + size_t(c) * w.K;
    }
    dots(x, m, wr, nr, w.K, y, n - n0);
  }
}

}  // namespace zoo_kernels
