// The step's thread pool: every part of every call runs exactly once, with the right part
// count, before the call returns; also under many back-to-back calls and calls from two
// threads at once (the second runs its parts itself).
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "runtime/Parallel.h"

namespace {

struct Counts {
  std::vector<std::atomic<int>> hits;
  std::atomic<int> wrongParts{0};
  int64_t parts;
  explicit Counts(int64_t n) : hits(static_cast<size_t>(n)), parts(n) {}
};

void countPart(void *ctx, int64_t part, int64_t parts) {
  auto *c = static_cast<Counts *>(ctx);
  if (parts != c->parts) c->wrongParts.fetch_add(1);
  c->hits[static_cast<size_t>(part)].fetch_add(1);
}

// Runs `calls` fork-joins of `parts` parts; returns false at the first miscount.
bool runMany(int64_t parts, int calls) {
  for (int i = 0; i < calls; ++i) {
    Counts c(parts);
    gradc_parallel_run(countPart, &c, parts);
    if (c.wrongParts.load() != 0) return false;
    for (auto &h : c.hits)
      if (h.load() != 1) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("parallel: each part runs once per call, for 1 to 4 parts") {
  for (int64_t parts = 1; parts <= 4; ++parts) {
    CAPTURE(parts);
    CHECK(runMany(parts, 2000));
  }
}

TEST_CASE("parallel: calls from two threads at once") {
  bool a = false, b = false;
  std::thread other([&] { a = runMany(2, 3000); });
  b = runMany(3, 3000);
  other.join();
  CHECK(a);
  CHECK(b);
}
