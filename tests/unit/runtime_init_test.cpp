// Initialisers and the random generator: determinism (pinned values, so a change of
// platform or compiler that changed the weights would fail here), statistics, fans, and the
// epoch order of batches.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "runtime/Batches.h"
#include "runtime/Init.h"

using namespace gradc::rt;

namespace {

struct Stats {
  double mean, std, min, max;
};

Stats stats(const std::vector<double> &v) {
  double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  var /= static_cast<double>(v.size());
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return {mean, std::sqrt(var), *lo, *hi};
}

std::vector<double> init(Init kind, std::vector<double> args, std::vector<int64_t> shape,
                         uint64_t seed = 0, int index = 0) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<double> out(static_cast<size_t>(n), -99);
  initParam(out.data(), static_cast<int>(kind), args, shape, seed, index);
  return out;
}

}  // namespace

TEST_CASE("rng: pinned values") {
  Rng r(0, 0);
  std::vector<uint64_t> got;
  for (int i = 0; i < 3; ++i) got.push_back(r.next());
  CHECK(got == std::vector<uint64_t>{0xfb5405f7bd79c540ull, 0x780c98e26cea5883ull, 0x2a146e0980febc66ull});
  Rng u(42, 7);
  CHECK(u.uniform() == doctest::Approx(0.1582675969415045).epsilon(1e-15));
}

TEST_CASE("rng: streams differ, seeds differ, same inputs agree") {
  CHECK(Rng(0, 0).next() == Rng(0, 0).next());
  CHECK(Rng(0, 0).next() != Rng(0, 1).next());
  CHECK(Rng(0, 0).next() != Rng(1, 0).next());
  CHECK(Rng(1, 0).next() != Rng(0, 1).next());
}

TEST_CASE("rng: below() is unbiased on a small range") {
  Rng r(3, 0);
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 60000; ++i) counts[r.below(6)]++;
  for (int c : counts) CHECK(std::abs(c - 10000) < 400);  // ~4.4 standard deviations
}

TEST_CASE("init: constants") {
  CHECK(init(Init::Zeros, {}, {2, 3}) == std::vector<double>(6, 0.0));
  CHECK(init(Init::Ones, {}, {4}) == std::vector<double>(4, 1.0));
  CHECK(init(Init::Const, {-2.5}, {}) == std::vector<double>{-2.5});
}

TEST_CASE("init: normal and uniform statistics") {
  Stats n = stats(init(Init::Normal, {1.5, 2.0}, {100000}));
  CHECK(n.mean == doctest::Approx(1.5).epsilon(0.02 / 1.5));
  CHECK(n.std == doctest::Approx(2.0).epsilon(0.01));
  Stats u = stats(init(Init::Uniform, {-3, 5}, {100000}));
  CHECK(u.min >= -3);
  CHECK(u.max < 5);
  CHECK(u.mean == doctest::Approx(1.0).epsilon(0.03));
  CHECK(u.std == doctest::Approx(8 / std::sqrt(12.0)).epsilon(0.01));
}

TEST_CASE("init: fans use gradc's [in, out] layout") {
  Fans f = fans({64, 128});
  CHECK(f.in == 64);
  CHECK(f.out == 128);
  Fans c = fans({3, 4, 5, 2});
  CHECK(c.in == 30);
  CHECK(c.out == 40);
  Fans v = fans({7});
  CHECK(v.in == 7);
  CHECK(v.out == 7);
}

TEST_CASE("init: glorot is U(-a, a) with a = sqrt(6 / (fan_in + fan_out))") {
  std::vector<double> w = init(Init::Glorot, {}, {300, 200});
  double a = std::sqrt(6.0 / 500);
  Stats s = stats(w);
  CHECK(s.min >= -a);
  CHECK(s.max <= a);
  CHECK(s.max > 0.99 * a);
  CHECK(s.std == doctest::Approx(a / std::sqrt(3.0)).epsilon(0.01));
  CHECK(std::abs(s.mean) < 0.002);
}

TEST_CASE("init: he is N(0, sqrt(2 / fan_in))") {
  Stats s = stats(init(Init::He, {}, {200, 300}));
  CHECK(s.std == doctest::Approx(std::sqrt(2.0 / 200)).epsilon(0.01));
  CHECK(std::abs(s.mean) < 0.001);
}

TEST_CASE("init: deterministic per (seed, param index); float is the rounded double") {
  CHECK(init(Init::He, {}, {8, 4}, 5, 2) == init(Init::He, {}, {8, 4}, 5, 2));
  CHECK(init(Init::He, {}, {8, 4}, 5, 2) != init(Init::He, {}, {8, 4}, 5, 3));
  CHECK(init(Init::He, {}, {8, 4}, 5, 2) != init(Init::He, {}, {8, 4}, 6, 2));
  std::vector<double> d = init(Init::Normal, {0, 1}, {33}, 9, 1);
  std::vector<float> f(33);
  initParam(f.data(), static_cast<int>(Init::Normal), {0, 1}, {33}, 9, 1);
  for (size_t i = 0; i < f.size(); ++i) CHECK(f[i] == static_cast<float>(d[i]));
  // Pinned: the first weights of a he-initialised [2, 2] param, seed 0, param 0.
  std::vector<double> p = init(Init::He, {}, {2, 2}, 0, 0);
  CHECK(p[0] == doctest::Approx(0.37396224245515741).epsilon(1e-14));
  CHECK(p[1] == doctest::Approx(-0.024108806268664268).epsilon(1e-14));
}

TEST_CASE("batches: epoch order") {
  std::vector<int64_t> id(10);
  std::iota(id.begin(), id.end(), int64_t(0));
  CHECK(epochOrder(10, 0, 0, false) == id);
  CHECK(epochOrder(10, 7, 3, false) == id);
  std::vector<int64_t> a = epochOrder(10, 0, 0, true);
  CHECK(a != id);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == id);
  CHECK(epochOrder(10, 0, 0, true) == a);
  CHECK(epochOrder(10, 0, 1, true) != a);
  CHECK(epochOrder(10, 1, 0, true) != a);
  CHECK(a == std::vector<int64_t>{0, 8, 3, 6, 7, 4, 2, 5, 1, 9});
  CHECK(epochOrder(0, 0, 0, true).empty());
  CHECK(epochOrder(1, 0, 0, true) == std::vector<int64_t>{0});
}

TEST_CASE("batches: every permutation of 3 rows is equally likely") {
  std::map<std::vector<int64_t>, int> counts;
  for (int e = 0; e < 60000; ++e) counts[epochOrder(3, 11, e, true)]++;
  CHECK(counts.size() == 6);
  for (auto &[perm, c] : counts) CHECK(std::abs(c - 10000) < 400);
}

TEST_CASE("batches: count and gathering") {
  CHECK(batchCount(10, 3, false) == 4);
  CHECK(batchCount(10, 3, true) == 3);
  CHECK(batchCount(9, 3, false) == 3);
  CHECK(batchCount(2, 3, true) == 0);

  Dataset ds;
  ds.rows = 5;
  Column x;
  x.name = "x";
  x.width = 2;
  x.f = {0, 1, 10, 11, 20, 21, 30, 31, 40, 41};
  Column y;
  y.name = "y";
  y.isInt = true;
  y.i = {0, 1, 2, 3, 4};
  ds.inputs = {x, y};
  std::vector<int64_t> order = {4, 2, 0, 1, 3};

  Batcher b(ds, 2, false);
  CHECK(b.buffer("z") == nullptr);
  CHECK(b.gather(order, 0) == 2);
  const float *xf = static_cast<const float *>(b.buffer("x"));
  const int32_t *yi = static_cast<const int32_t *>(b.buffer("y"));
  CHECK(std::vector<float>(xf, xf + 4) == std::vector<float>{40, 41, 20, 21});
  CHECK(std::vector<int32_t>(yi, yi + 2) == std::vector<int32_t>{4, 2});
  CHECK(b.gather(order, 2) == 1);
  CHECK(xf[0] == 30);
  CHECK(xf[1] == 31);
  CHECK(yi[0] == 3);

  Batcher d(ds, 4, true);
  CHECK(d.gather(order, 0) == 4);
  const double *xd = static_cast<const double *>(d.buffer("x"));
  CHECK(std::vector<double>(xd, xd + 8) == std::vector<double>{40, 41, 20, 21, 0, 1, 10, 11});
}

TEST_CASE("batches: a float64 run's columns read as doubles are gathered exactly") {
  Dataset ds;
  ds.rows = 3;
  Column x;
  x.name = "x";
  x.width = 1;
  x.d = {0.1, 0.2, 1e39};
  ds.inputs = {x};
  Batcher b(ds, 2, true);
  CHECK(b.gather({2, 0, 1}, 0) == 2);
  const double *xd = static_cast<const double *>(b.buffer("x"));
  CHECK(std::vector<double>(xd, xd + 2) == std::vector<double>{1e39, 0.1});
}
