// The matrix kernel's row tiles for every remainder of m mod 6: with 3 to 5 leftover rows
// (any, for A^T) the last full tile of a column panel overlaps the one before it, with 1 or
// 2 (and for m below 6) they use tiles of two rows and one. Each element of a product must equal the float32 sum over
// p in ascending order with FMA, bit for bit, whether stored whole or fed to a fused
// element-wise epilogue (in blocks of 1,024 p when k is longer); and an epilogue that updates a weight and its momentum in place
// (w -= lr * (0.5 m + g)) must run exactly once on each element (twice would subtract the
// step twice). Also in check mode, with the flag left at 0. Each for the host's CPU and, where
// the host runs it, an AVX2 one (256-bit vectors, as on a CPU without AVX-512); widths of
// more than a panel and narrower ones. Under AddressSanitizer, a sample (kSanitized).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "codegen/Codegen.h"
#include "ir/Builder.h"
#include "Sanitized.h"

using namespace gradc;
using namespace gradc::ir;

namespace {

const Dim B = Dim::sym(0);
Dim n(int64_t v) { return Dim::fixed(v); }
constexpr int64_t kN = 70;  // more than one column panel, the last one masked

// Float slots by name, filled with random values (lr = 0.5, results NaN).
struct Run {
  std::map<std::string, std::vector<float>> in, out;
  float flag = -1;
};

Run run(const rt::Kernel &k, int64_t batch, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2, 2);
  Run r;
  std::vector<std::vector<float>> bufs(k.sig.slots.size());
  std::vector<void *> ptrs;
  for (size_t j = 0; j < k.sig.slots.size(); ++j) {
    const rt::Slot &s = k.sig.slots[j];
    bufs[j].resize(static_cast<size_t>(s.elements(&batch)), NAN);
    if (s.kind == rt::SlotKind::Hyper) bufs[j][0] = 0.5f;
    else if (s.kind == rt::SlotKind::Input || s.kind == rt::SlotKind::Param || s.kind == rt::SlotKind::State)
      for (float &v : bufs[j]) v = u(rng);
    r.in[s.name] = bufs[j];
    ptrs.push_back(bufs[j].data());
  }
  size_t bytes = k.workBytes(&batch);
  void *work = std::aligned_alloc(64, (bytes + 64) / 64 * 64);
  k.call(ptrs.data(), &batch, work);
  if (k.numericsFlag >= 0) std::memcpy(&r.flag, static_cast<char *>(work) + k.numericsFlag, sizeof(float));
  std::free(work);
  for (size_t j = 0; j < k.sig.slots.size(); ++j) r.out[k.sig.slots[j].name] = bufs[j];
  return r;
}

// op(a) @ b for a [m,k] (or [k,m] when transA) and b [k,n]: fma over ascending p, in blocks
// of 1,024 p each summed from zero, the blocks added in order (one chain for k <= 1,024).
std::vector<float> product(const std::vector<float> &a, const std::vector<float> &b, int64_t m, int64_t k,
                           bool transA, int64_t n = kN) {
  constexpr int64_t kBlock = 1024;
  std::vector<float> c(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0, sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        if (p > 0 && p % kBlock == 0) {
          sum += acc;
          acc = 0;
        }
        acc = std::fma(a[static_cast<size_t>(transA ? p * m + i : i * k + p)], b[static_cast<size_t>(p * n + j)], acc);
      }
      c[static_cast<size_t>(i * n + j)] = k > kBlock ? sum + acc : acc;
    }
  return c;
}

// Counts elements that differ (0 and -0 are equal; NaN never is).
int mismatches(const std::vector<float> &got, const std::vector<float> &want) {
  REQUIRE(got.size() == want.size());
  int bad = 0;
  for (size_t e = 0; e < got.size(); ++e) bad += !(got[e] == want[e]);
  return bad;
}

size_t count(const std::string &s, const std::string &what) {
  size_t c = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++c;
  return c;
}

// m mod 6 from 0 to 5, below and above 6: two-row and one-row tiles for 1 or 2 leftover rows
// (and all of m < 6), an overlapping full tile for 3 to 5 (and for 1 or 2 with A^T).
const int64_t kRows[] = {1, 2, 5, 6, 7, 8, 9, 10, 11, 13, 260, 262};

using gradc::testing::kSanitized;

// The CPUs to compile for: the host's ("") and haswell (AVX2) when the host can run it (not
// under the sanitizers).
std::vector<std::string> cpus() {
  std::vector<std::string> out = {""};
#if defined(__x86_64__)
  if (!kSanitized && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back("haswell");
#endif
  return out;
}

// Every m of kRows, or under the sanitizers one of each kind of remainder: a two-row tile
// and a one-row tile (5), an overlapping full tile (9; with A^T also 7), many full tiles (262).
bool sampled(int64_t m) { return !kSanitized || m == 5 || m == 7 || m == 9 || m == 262; }

}  // namespace

TEST_CASE("matmul rows: a weight's in-place update and fused epilogues run once per element, for any m") {
  // 70 columns: two panels, the last masked; 10: narrower than a panel, whose tiles compute
  // only the vectors that hold columns (one with AVX-512, two with AVX2).
  for (const std::string &cpu : cpus())
  for (int64_t cols : {kN, int64_t{10}})
  for (int64_t m : kRows)
    for (bool transA : {false, true}) {
      // The narrow width with the remainders that take different tiles: two-row tiles (2),
      // an overlapping full tile (7, 13), many full tiles (262).
      if (cols != kN && m != 2 && m != 7 && m != 13 && m != 262) continue;
      if (!sampled(m)) continue;
      CAPTURE(cpu);
      CAPTURE(cols);
      CAPTURE(m);
      CAPTURE(transA);
      // m is static (a weight's rows); k is the batch.
      Function f;
      f.name = "rows";
      f.dimNames = {"B"};
      Builder b(f);
      auto a = [&](const char *name) {
        return transA ? b.input(name, DType::F32, {B, n(m)}) : b.input(name, DType::F32, {n(m), B});
      };
      ValueId a1 = a("a1"), a2 = a("a2"), a3 = a("a3"), a4 = a("a4");
      ValueId b1 = b.input("b1", DType::F32, {B, n(cols)}), b2 = b.input("b2", DType::F32, {B, n(cols)});
      ValueId b3 = b.input("b3", DType::F32, {B, n(cols)}), b4 = b.input("b4", DType::F32, {B, n(cols)});
      ValueId bias = b.param("bias", {n(cols)});
      ValueId w = b.param("W", {n(m), n(cols)}), wm = b.state("W.m", {n(m), n(cols)});
      ValueId v = b.param("V", {n(m), n(cols)});
      ValueId lr = b.hyper("lr");
      ValueId m2 = b.add(b.mul(wm, b.constant(0.5)), b.matmul(a3, b3, transA, false));
      f.results = {
          {"plain", b.matmul(a1, b1, transA, false), ResultKind::Output},
          {"relu", b.unary(Op::Relu, b.add(b.matmul(a2, b2, transA, false), bias)), ResultKind::Output},
          {"W.m", m2, ResultKind::NewState},
          {"W", b.sub(w, b.mul(lr, m2)), ResultKind::NewParam},
          {"V", b.sub(v, b.mul(lr, b.matmul(a4, b4, transA, false))), ResultKind::NewParam},
      };
      verify(f);
      // Only "plain" is a stand-alone product; the other three run inside their readers, each
      // with its tile buffer (kMatMulTileBytes) on the stack.
      if (cpu.empty() && cols == kN) CHECK(count(codegen::emitLLVM(f, {}), "alloca [1536 x i8]") == 3);
      codegen::CodegenOptions plain, check;
      plain.cpu = check.cpu = cpu;
      check.checkNumerics = true;
      rt::Kernel normal = codegen::jitCompile(f, plain), checked = codegen::jitCompile(f, check);
      // k past one block of the sum over p (1,024) for two of the m.
      std::vector<int64_t> ks = {1, 9};
      if (m == 7 || m == 13) ks.push_back(2500);
      for (int64_t k : ks) {
        CAPTURE(k);
        Run r = run(normal, k, static_cast<uint32_t>(m * 10 + k));
        std::vector<float> relu = product(r.in["a2"], r.in["b2"], m, k, transA, cols);
        for (size_t e = 0; e < relu.size(); ++e) relu[e] = std::max(relu[e] + r.in["bias"][e % cols], 0.f);
        std::vector<float> mom = product(r.in["a3"], r.in["b3"], m, k, transA, cols);
        std::vector<float> wNew(mom.size()), vNew = product(r.in["a4"], r.in["b4"], m, k, transA, cols);
        for (size_t e = 0; e < mom.size(); ++e) {
          mom[e] = r.in["W.m"][e] * 0.5f + mom[e];
          wNew[e] = r.in["W"][e] - 0.5f * mom[e];
          vNew[e] = r.in["V"][e] - 0.5f * vNew[e];
        }
        CHECK(mismatches(r.out["plain"], product(r.in["a1"], r.in["b1"], m, k, transA, cols)) == 0);
        CHECK(mismatches(r.out["relu"], relu) == 0);
        CHECK(mismatches(r.out["W.m"], mom) == 0);
        CHECK(mismatches(r.out["W"], wNew) == 0);
        CHECK(mismatches(r.out["V"], vNew) == 0);
        Run c = run(checked, k, static_cast<uint32_t>(m * 10 + k));
        CHECK(c.flag == 0);
        for (const auto &[name, vals] : r.out) {
          CAPTURE(name);
          CHECK(mismatches(c.out[name], vals) == 0);
        }
      }
    }
}

TEST_CASE("matmul rows: a batch of any size, stored whole or through a fused epilogue") {
  // m is the batch, known only at run time: the full-tile, two-row and one-row loops exist.
  // 70 columns: B packed (the last panel masked); 128: B's short rows read in place; 10
  // and 40: narrower than a panel (with AVX-512 one and three of its four vectors computed).
  // k = 2,100: three blocks of the sum over p.
  for (const std::string &cpu : cpus())
  for (auto [cols, k] : {std::pair<int64_t, int64_t>{70, 7}, {128, 7}, {70, 2100}, {10, 7}, {40, 2100}}) {
    CAPTURE(cpu);
    CAPTURE(cols);
    CAPTURE(k);
    Function f;
    f.name = "batch";
    f.dimNames = {"B"};
    Builder b(f);
    ValueId x1 = b.input("x1", DType::F32, {B, n(k)}), x2 = b.input("x2", DType::F32, {B, n(k)});
    ValueId w1 = b.param("W1", {n(k), n(cols)}), w2 = b.param("W2", {n(k), n(cols)});
    ValueId bias = b.param("bias", {n(cols)});
    f.results = {{"plain", b.matmul(x1, w1), ResultKind::Output},
                 {"relu", b.unary(Op::Relu, b.add(b.matmul(x2, w2), bias)), ResultKind::Output}};
    verify(f);
    codegen::CodegenOptions plain, check;
    plain.cpu = check.cpu = cpu;
    check.checkNumerics = true;
    rt::Kernel normal = codegen::jitCompile(f, plain), checked = codegen::jitCompile(f, check);
    for (int64_t m : kRows) {
      if (!sampled(m)) continue;
      CAPTURE(m);
      Run r = run(normal, m, static_cast<uint32_t>(m));
      std::vector<float> relu = product(r.in["x2"], r.in["W2"], m, k, false, cols);
      for (size_t e = 0; e < relu.size(); ++e) relu[e] = std::max(relu[e] + r.in["bias"][e % cols], 0.f);
      CHECK(mismatches(r.out["plain"], product(r.in["x1"], r.in["W1"], m, k, false, cols)) == 0);
      CHECK(mismatches(r.out["relu"], relu) == 0);
      Run c = run(checked, m, static_cast<uint32_t>(m));
      CHECK(c.flag == 0);
      CHECK(mismatches(c.out["plain"], r.out["plain"]) == 0);
      CHECK(mismatches(c.out["relu"], r.out["relu"]) == 0);
    }
  }
}
