// A small thread pool for the kernels: the calling thread and ZOO_THREADS - 1 workers take chunks
// of a job from a shared counter, so a worker that the OS does not schedule (another process
// holds its core) delays only the chunk it already took, never the whole job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace zoo_kernels {

class Pool {
 public:
  // The process-wide pool, created on first use with default_threads() threads.
  static Pool& get();
  // ZOO_THREADS if set (>= 1), else the CPUs this process may run on, at most 8.
  static int default_threads();

  explicit Pool(int threads);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return int(workers_.size()) + 1; }
  // Runs fn(0) ... fn(n - 1), spread over the pool; returns when all have finished.
  void run(int n, const std::function<void(int)>& fn);
  // Replaces the process-wide pool (for benchmarks and tests; not while kernels run).
  static void set_threads(int threads);

 private:
  struct Job {
    const std::function<void(int)>* fn;
    int n;
    std::atomic<int> next{0};
  };
  void worker();
  static void work(Job* job);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  Job* job_ = nullptr;                 // the open job (guarded by mutex_)
  std::atomic<unsigned long> gen_{0};  // bumped for every job
  std::atomic<int> active_{0};         // workers inside the current job
  bool stop_ = false;
  std::mutex run_mutex_;               // one job at a time
};

}  // namespace zoo_kernels
