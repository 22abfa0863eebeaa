// Choosing the kernel table (instruction set) at run time, and the kernels' thread count.

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kern.h"
#include "ops.h"
#include "pool.h"

namespace zoo_kernels {


namespace {

const Table* best_table() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma")) {
#if defined(ZOO_HAVE_AVX512BF16)
    if (__builtin_cpu_supports("avx512bf16")) return &table_avx512bf16();
#endif
    return &table_avx512();
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &table_avx2();
#endif
  return &table_generic();
}

const Table* table_named(const std::string& name) {
  for (const Table* t : {
#if defined(__x86_64__) || defined(_M_X64)
#if defined(ZOO_HAVE_AVX512BF16)
           &table_avx512bf16(),
#endif
           &table_avx512(), &table_avx2(),
#endif
           &table_generic()})
    if (name == t->isa) return t;
  return nullptr;
}

int rank(const Table* t) {
  std::string n = t->isa;
  return n == "avx512bf16" ? 3 : n == "avx512" ? 2 : n == "avx2" ? 1 : 0;
}

std::atomic<const Table*> current{nullptr};

}  // namespace

const Table& select_table() {
  const Table* t = current.load(std::memory_order_acquire);
  if (t) return *t;
  t = best_table();
  if (const char* env = std::getenv("ZOO_KERNELS_ISA")) {  // a lower level only
    const Table* forced = table_named(env);
    if (forced && rank(forced) <= rank(t)) t = forced;
  }
  current.store(t, std::memory_order_release);
  return *t;
}

std::string isa() { return select_table().isa; }

void set_isa(const std::string& name) {
  const Table* t = table_named(name);
  if (!t || rank(t) > rank(best_table()))
    throw std::invalid_argument("zoo kernels: instruction set '" + name + "' is not available on this CPU (best: " +
                                best_table()->isa + ")");
  current.store(t, std::memory_order_release);
}

int threads() { return Pool::get().threads(); }
void set_threads(int n) { Pool::set_threads(n); }

}  // namespace zoo_kernels
