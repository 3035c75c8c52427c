// The step's thread pool (see Parallel.h).
//
// One fork-join at a time: the caller publishes (task, ctx, parts) and bumps `generation`;
// every worker, whether it has a part or not, acknowledges the generation by decrementing
// `pending`, so when the caller sees pending == 0 no worker still reads the published call.
// Waiting spins (with a pause) for up to kSpin before sleeping on the atomic (a futex).
#include "runtime/Parallel.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GRADC_PAUSE() _mm_pause()
#else
#define GRADC_PAUSE() ((void)0)
#endif

namespace {

constexpr auto kSpin = std::chrono::microseconds(200);

template <typename T, typename Pred>
void spinThenWait(std::atomic<T> &a, Pred done) {
  auto until = std::chrono::steady_clock::now() + kSpin;
  for (int n = 0;; ++n) {
    T v = a.load(std::memory_order_acquire);
    if (done(v)) return;
    if ((n & 63) == 63 && std::chrono::steady_clock::now() > until) {
      a.wait(v, std::memory_order_acquire);
    } else {
      GRADC_PAUSE();
    }
  }
}

struct Pool {
  std::mutex call;  // one fork-join at a time
  std::vector<std::thread> workers;
  std::atomic<uint64_t> generation{0};
  std::atomic<int64_t> pending{0};
  gradc_task_fn task = nullptr;
  void *ctx = nullptr;
  int64_t parts = 0;

  void work(int64_t part, uint64_t seen) {
    for (;;) {
      spinThenWait(generation, [&](uint64_t g) { return g != seen; });
      seen = generation.load(std::memory_order_acquire);
      if (part < parts) task(ctx, part, parts);
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) pending.notify_one();
    }
  }

  // Called with `call` held.
  void grow(int64_t n) {
    while (static_cast<int64_t>(workers.size()) < n) {
      int64_t part = static_cast<int64_t>(workers.size()) + 1;
      uint64_t now = generation.load(std::memory_order_relaxed);
      workers.emplace_back([this, part, now] { work(part, now); });
      workers.back().detach();
    }
  }
};

// Never destroyed: detached workers may still be waiting on it when the process exits.
Pool &pool() {
  static Pool *p = new Pool;
  return *p;
}

}  // namespace

extern "C" void gradc_parallel_run(gradc_task_fn task, void *ctx, int64_t parts) {
  Pool &p = pool();
  std::unique_lock<std::mutex> lock(p.call, std::try_to_lock);
  if (parts <= 1 || !lock.owns_lock()) {
    for (int64_t i = 0; i < parts; ++i) task(ctx, i, parts);
    return;
  }
  p.grow(parts - 1);
  p.task = task;
  p.ctx = ctx;
  p.parts = parts;
  p.pending.store(static_cast<int64_t>(p.workers.size()), std::memory_order_relaxed);
  p.generation.fetch_add(1, std::memory_order_release);
  p.generation.notify_all();
  task(ctx, 0, parts);
  spinThenWait(p.pending, [](int64_t v) { return v == 0; });
}
