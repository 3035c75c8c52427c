// The step's thread pool (see Parallel.h).
//
// One fork-join at a time. The caller publishes the call (task, ctx) and then a new `claim`
// word: the call's generation, its part count and the next unclaimed part. The caller and
// every awake worker take parts by compare-and-swap on `claim` until none is left, and count
// finished parts in `done`; the caller returns when done == parts. A part is only ever run by
// whoever claimed it, so a worker that the OS has not scheduled (the other core busy with
// another process) costs nothing: the caller runs its part itself. A CAS that succeeds
// proves the call was still current (a new call is published only after every part of the
// last one is done), so the task and context read after it are that call's.
// Waiting spins (with a pause) for up to kSpin before sleeping on the atomic (a futex).
#include "runtime/Parallel.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <system_error>
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
T spinThenWait(std::atomic<T> &a, Pred done) {
  auto until = std::chrono::steady_clock::now() + kSpin;
  for (int n = 0;; ++n) {
    T v = a.load(std::memory_order_acquire);
    if (done(v)) return v;
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
  // generation (32 bits) | parts (16) | next unclaimed part (16): the bound a participant
  // checks comes from the word its CAS succeeds on, never from a field of another call.
  std::atomic<uint64_t> claim{0};
  std::atomic<int64_t> done{0};
  std::atomic<gradc_task_fn> task{nullptr};
  std::atomic<void *> ctx{nullptr};

  static uint64_t generationOf(uint64_t c) { return c >> 32; }

  // Claims and runs parts of the call of `claim` value c (or of a later call) until none is
  // left. task and ctx are read after a successful claim: the caller publishes them before
  // the claim word and changes them only once every part of the call is done.
  void runParts(uint64_t c) {
    for (;;) {
      uint64_t n = (c >> 16) & 0xffffu, part = c & 0xffffu;
      if (part >= n) return;
      if (!claim.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire))
        continue;  // c now holds the current value: another part, or a new call
      gradc_task_fn t = task.load(std::memory_order_relaxed);
      void *x = ctx.load(std::memory_order_relaxed);
      t(x, static_cast<int64_t>(part), static_cast<int64_t>(n));
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<int64_t>(n)) done.notify_one();
      c = claim.load(std::memory_order_acquire);
    }
  }

  void work() {
    uint64_t seen = generationOf(claim.load(std::memory_order_acquire));
    for (;;) {
      uint64_t c = spinThenWait(claim, [&](uint64_t v) { return generationOf(v) != seen; });
      seen = generationOf(c);
      runParts(c);
    }
  }

  // Called with `call` held. A worker that cannot be started is done without: the caller
  // claims the parts nobody else takes.
  void grow(int64_t n) {
    try {
      while (static_cast<int64_t>(workers.size()) < n) {
        workers.emplace_back([this] { work(); });
        workers.back().detach();
      }
    } catch (const std::system_error &) {
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
  if (parts <= 1 || parts > 0xffff || !lock.owns_lock()) {
    for (int64_t i = 0; i < parts; ++i) task(ctx, i, parts);
    return;
  }
  p.grow(parts - 1);
  p.task.store(task, std::memory_order_relaxed);
  p.ctx.store(ctx, std::memory_order_relaxed);
  p.done.store(0, std::memory_order_relaxed);
  uint64_t generation = Pool::generationOf(p.claim.load(std::memory_order_relaxed)) + 1;
  if (generation > 0xffffffffu) generation = 1;
  uint64_t c = generation << 32 | static_cast<uint64_t>(parts) << 16;
  p.claim.store(c, std::memory_order_release);
  p.claim.notify_all();
  p.runParts(c);
  spinThenWait(p.done, [parts](int64_t v) { return v == parts; });
}
