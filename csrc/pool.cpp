#include "pool.h"

#include <chrono>
#include <cstdlib>
#include <memory>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define ZK_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define ZK_PAUSE() asm volatile("yield")
#else
#define ZK_PAUSE() ((void)0)
#endif

namespace zoo_kernels {

namespace {
// How long an idle worker polls for the next job before it sleeps: kernels of one forward pass
// follow each other within microseconds, a futex wake-up costs tens of them. After the first few
// polls it yields the CPU between polls, so that on a busy machine the threads that have work
// (MLX's, other processes') run first.
constexpr auto SPIN = std::chrono::microseconds(50);
constexpr int SPIN_PAUSES = 256;

std::mutex global_mutex;
std::unique_ptr<Pool> global_pool;
}  // namespace

int Pool::default_threads() {
  if (const char* env = std::getenv("ZOO_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n > 256 ? 256 : n;
  }
  int n = int(std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
  if (n < 1) n = 1;
  return n > 8 ? 8 : n;  // matrix-vector products are memory-bound well before 8 cores
}

Pool& Pool::get() {
  std::lock_guard<std::mutex> lock(global_mutex);
  if (!global_pool) global_pool = std::make_unique<Pool>(default_threads());
  return *global_pool;
}

void Pool::set_threads(int threads) {
  std::lock_guard<std::mutex> lock(global_mutex);
  global_pool = std::make_unique<Pool>(threads < 1 ? 1 : threads);
}

Pool::Pool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker(); });
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    gen_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void Pool::work(Job* job) {
  for (int i; (i = job->next.fetch_add(1, std::memory_order_relaxed)) < job->n;) (*job->fn)(i);
}

void Pool::worker() {
  unsigned long seen = gen_.load();
  for (;;) {
    auto until = std::chrono::steady_clock::now() + SPIN;
    for (int spins = 0; gen_.load(std::memory_order_acquire) == seen; ++spins) {
      if (spins < SPIN_PAUSES) {
        ZK_PAUSE();
        continue;
      }
      if (std::chrono::steady_clock::now() > until) break;
      std::this_thread::yield();
    }
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || gen_.load() != seen; });
      if (stop_) return;
      seen = gen_.load();
      job = job_;
      if (job == nullptr) continue;  // that job closed before this worker got to it
      active_.fetch_add(1);
    }
    work(job);
    active_.fetch_sub(1, std::memory_order_release);
  }
}

void Pool::run(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> serial(run_mutex_);
  Job job;
  job.fn = &fn;
  job.n = n;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &job;
    gen_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work(&job);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;  // from here on no worker joins; the ones inside finish their chunk
  }
  for (int spins = 0; active_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096) ZK_PAUSE();
    else std::this_thread::yield();
  }
}

}  // namespace zoo_kernels
