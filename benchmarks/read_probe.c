/* read_probe.c: how fast one core reads float32 weights from memory, the bound for zoo's one-row
 * (decode) products. Built and driven by benchmarks/bench_read_probe.py (cc -O2 -march=native).
 *
 * A STREAM-like read-only probe (STREAM: McCalpin, https://www.cs.virginia.edu/stream/): the sum
 * of n floats, read as `streams` equal contiguous parts interleaved one cache line (64 bytes, one
 * AVX-512 load) at a time, each part prefetched `dist` bytes ahead (0: the hardware prefetcher
 * alone). `streams` mimics the rows a matrix-vector kernel reads at once. */
#include <stddef.h>
#include <string.h>

typedef float vf __attribute__((vector_size(64)));

static inline vf ld(const float* p) {
  vf v;
  memcpy(&v, p, sizeof v);
  return v;
}

#define MAX_STREAMS 16

float read_probe(const float* a, size_t n, int streams, size_t dist, int locality) {
  if (streams < 1 || streams > MAX_STREAMS) return 0.f;
  const size_t part = n / (size_t)streams / 16 * 16, ahead = dist / 4;
  const float* p[MAX_STREAMS];
  vf acc[MAX_STREAMS];
  for (int s = 0; s < streams; ++s) p[s] = a + (size_t)s * part, acc[s] = (vf){0};
  for (size_t i = 0; i < part; i += 16)
    for (int s = 0; s < streams; ++s) {
      if (dist) {
        if (locality == 0) __builtin_prefetch(p[s] + i + ahead, 0, 0);
        else __builtin_prefetch(p[s] + i + ahead, 0, 3);
      }
      acc[s] += ld(p[s] + i);
    }
  vf t = {0};
  for (int s = 0; s < streams; ++s) t += acc[s];
  float r = 0.f;
  for (int i = 0; i < 16; ++i) r += t[i];
  return r;
}
