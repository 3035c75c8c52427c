// The compiled step allocates nothing: a test that counts calls of malloc across 1,000 calls
// of a JIT-compiled MLP step (forward, backward, Adam update).
//
// Counting works by defining `malloc` in the test binary, which interposes the C library's
// for the whole process (operator new, libm, JIT code), and forwarding to glibc's
// __libc_malloc. Sanitizer builds replace malloc themselves, so the test is off there
// (Sanitized.h).
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <random>

#include "autodiff/ReverseMode.h"
#include "autodiff/Step.h"
#include "codegen/Codegen.h"
#include "ir/Builder.h"

#include "Sanitized.h"

#if !GRADC_SANITIZED
namespace {
std::atomic<long> mallocCalls{0};
}
extern "C" void *__libc_malloc(size_t);
extern "C" void *malloc(size_t n) {
  mallocCalls.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
#endif

using namespace gradc;
using namespace gradc::ir;

#if !GRADC_SANITIZED
TEST_CASE("codegen: a compiled step allocates nothing in 1000 calls") {
  Dim B = Dim::sym(0);
  Model m;
  m.name = "mlp";
  m.inputs = {{"x", DType::F32, {B, Dim::fixed(64)}, 0, {}}, {"y", DType::I32, {B}, 10, {}}};
  m.params = {{"W1", {Dim::fixed(64), Dim::fixed(32)}, InitKind::Zeros, {}, {}},
              {"W2", {Dim::fixed(32), Dim::fixed(10)}, InitKind::Zeros, {}, {}}};
  m.optimizer.kind = "adam";
  m.optimizer.args = optimizerDefaults("adam");
  Function &f = m.forward;
  f.name = "mlp";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {B, Dim::fixed(64)});
  ValueId y = b.input("y", DType::I32, {B});
  ValueId w1 = b.param("W1", {Dim::fixed(64), Dim::fixed(32)});
  ValueId w2 = b.param("W2", {Dim::fixed(32), Dim::fixed(10)});
  ValueId z = b.matmul(b.unary(Op::Tanh, b.matmul(x, w1)), w2);
  ValueId picked = b.reduce(Op::Sum, b.mul(b.row(Op::LogSoftmax, z, 1), b.onehot(y, 10)), 2u, false);
  f.results = {{"loss", b.neg(b.reduce(Op::Mean, picked, 1u, false)), ResultKind::Loss}};
  Function step = autodiff::buildStep(m, autodiff::differentiate(m.forward));

  rt::Kernel k = codegen::jitCompile(step, {});
  int64_t dims[1] = {32};
  std::vector<std::vector<float>> bufs;
  std::vector<int32_t> labels(32);
  std::vector<void *> args;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  for (const rt::Slot &s : k.sig.slots) {
    if (s.isInt) {
      for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 10);
      args.push_back(labels.data());
      continue;
    }
    bufs.emplace_back(static_cast<size_t>(s.elements(dims)));
    for (float &v : bufs.back()) v = s.kind == rt::SlotKind::State ? 0.0f : u(rng);
    if (s.kind == rt::SlotKind::Hyper) bufs.back()[0] = s.name == "t" ? 1.0f : 0.01f;
    args.push_back(bufs.back().data());
  }
  size_t workBytes = k.workBytes(dims);
  void *work = std::aligned_alloc(64, (workBytes + 64) / 64 * 64);
  int lossSlot = k.sig.find(rt::SlotKind::Loss, "loss");
  REQUIRE(lossSlot >= 0);
  float first = 0;
  k.call(args.data(), dims, work);  // warm up
  first = *static_cast<float *>(args[static_cast<size_t>(lossSlot)]);

  long before = mallocCalls.load();
  for (int i = 0; i < 1000; ++i) k.call(args.data(), dims, work);
  long after = mallocCalls.load();
  std::free(work);
  CHECK(after - before == 0);
  // The steps did train: the loss on the fixed batch went down.
  CHECK(*static_cast<float *>(args[static_cast<size_t>(lossSlot)]) < first);

  // The counter does count: a std::vector allocation is seen.
  long c0 = mallocCalls.load();
  std::vector<int> *v = new std::vector<int>(100);
  delete v;
  CHECK(mallocCalls.load() - c0 >= 1);
}
#endif
