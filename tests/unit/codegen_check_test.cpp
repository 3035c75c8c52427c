// The code generator's check mode (CodegenOptions::checkNumerics): the kernel sets its flag
// when a value it computes is NaN or infinite, also when that value never reaches anything
// it writes (masked by relu, sent to 0 by exp(-inf)), and leaves it at 0 on finite runs,
// where its results equal those of the normal kernel bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>

#include "autodiff/ReverseMode.h"
#include "autodiff/Step.h"
#include "codegen/Codegen.h"
#include "ir/Builder.h"

using namespace gradc;
using namespace gradc::ir;

namespace {

const Dim B = Dim::sym(0);
Dim n(int64_t v) { return Dim::fixed(v); }

Function make(const std::string &name, const std::function<void(Builder &)> &body) {
  Function f;
  f.name = name;
  f.dimNames = {"B"};
  Builder b(f);
  body(b);
  return f;
}

void output(Builder &b, ValueId v, const std::string &name = "out") {
  b.function().results.push_back({name, v, ResultKind::Output});
}

// One float32 (or int32) buffer per slot; arguments from `fill(slot, element)`.
struct Run {
  std::vector<std::vector<float>> f;
  std::vector<std::vector<int32_t>> i;
  float flag = -1;
};

Run run(const rt::Kernel &k, int64_t batch, const std::function<double(const rt::Slot &, size_t)> &fill) {
  Run r;
  std::vector<void *> ptrs;
  r.f.resize(k.sig.slots.size());
  r.i.resize(k.sig.slots.size());
  for (size_t j = 0; j < k.sig.slots.size(); ++j) {
    const rt::Slot &s = k.sig.slots[j];
    size_t count = static_cast<size_t>(s.elements(&batch));
    bool isArg = s.kind == rt::SlotKind::Input || s.kind == rt::SlotKind::Param ||
                 s.kind == rt::SlotKind::State || s.kind == rt::SlotKind::Hyper;
    if (s.isInt) {
      r.i[j].resize(count);
      for (size_t e = 0; e < count; ++e) r.i[j][e] = static_cast<int32_t>(fill(s, e));
      ptrs.push_back(r.i[j].data());
    } else {
      r.f[j].resize(count);
      for (size_t e = 0; e < count; ++e) r.f[j][e] = isArg ? static_cast<float>(fill(s, e)) : 12345.f;
      ptrs.push_back(r.f[j].data());
    }
  }
  size_t bytes = k.workBytes(&batch);
  void *work = std::aligned_alloc(64, (bytes + 64) / 64 * 64);
  std::memset(work, 0x7f, bytes);  // a stale flag would read as a large number, not 0
  k.call(ptrs.data(), &batch, work);
  if (k.numericsFlag >= 0) std::memcpy(&r.flag, static_cast<char *>(work) + k.numericsFlag, sizeof(float));
  std::free(work);
  return r;
}

// Equal bit for bit (NaN included).
bool sameBits(const Run &a, const Run &b) {
  if (a.f.size() != b.f.size() || a.i != b.i) return false;
  for (size_t j = 0; j < a.f.size(); ++j)
    if (a.f[j].size() != b.f[j].size() ||
        (!a.f[j].empty() && std::memcmp(a.f[j].data(), b.f[j].data(), a.f[j].size() * sizeof(float)) != 0))
      return false;
  return true;
}

rt::Kernel compile(const Function &f, bool check) {
  codegen::CodegenOptions o;
  o.checkNumerics = check;
  o.verifyStepReuse = true;
  return codegen::jitCompile(f, o);
}

}  // namespace

TEST_CASE("codegen check mode: the kernel keeps the calling convention, the flag is in work") {
  Function f = make("plain", [&](Builder &b) {
    ValueId x = b.input("x", DType::F32, {B, n(4)});
    output(b, b.unary(Op::Relu, b.unary(Op::Log, x)));
  });
  rt::Kernel normal = compile(f, false), checked = compile(f, true);
  CHECK(normal.numericsFlag == -1);
  CHECK(checked.numericsFlag == codegen::kNumericsFlagOffset);
  int64_t batch = 7;
  CHECK(checked.workBytes(&batch) == normal.workBytes(&batch) + codegen::kNumericsFlagBytes);
}

TEST_CASE("codegen check mode: a non-finite value masked before any result sets the flag") {
  struct Case {
    const char *what;
    std::function<void(Builder &, ValueId x, ValueId w)> body;
    double bad;  // the value of x[1][2] and x[1][3] that makes a value non-finite
  };
  std::vector<Case> cases = {
      // relu(log(0)) = relu(-inf) = 0
      {"relu of log", [](Builder &b, ValueId x, ValueId) { output(b, b.unary(Op::Relu, b.unary(Op::Log, x))); }, 0},
      // exp(-exp(100)) = exp(-inf) = 0
      {"exp of -inf", [](Builder &b, ValueId x, ValueId) {
         output(b, b.unary(Op::Exp, b.neg(b.unary(Op::Exp, x))));
       }, 100},
      // exp(100) = inf divided into 1: 0
      {"1 / exp", [](Builder &b, ValueId x, ValueId) {
         output(b, b.div(b.constant(1), b.unary(Op::Exp, x)));
       }, 100},
      // log(0) * 2 = -inf, checked as the product's value, then masked by relu
      {"relu of a product", [](Builder &b, ValueId x, ValueId) {
         output(b, b.unary(Op::Relu, b.mul(b.unary(Op::Log, x), b.constant(2))));
       }, 0},
      // a row sum that overflows to inf, sent to 0 by exp(-relu(.))
      {"sum overflow", [](Builder &b, ValueId x, ValueId) {
         ValueId s = b.reduce(Op::Sum, x, 2u, false);
         output(b, b.unary(Op::Exp, b.neg(b.unary(Op::Relu, s))));
       }, 3e38},
      // softmax of a row with +inf: NaN, sent to 0 by where(x < 10, ., 0)
      {"softmax", [](Builder &b, ValueId x, ValueId) {
         ValueId p = b.row(Op::Softmax, x, 1);
         ValueId lt = b.binary(Op::Lt, x, b.constant(10));
         output(b, b.where(lt, p, b.constant(0, {})));
       }, INFINITY},
      // a matmul element that overflows, read by relu(-.) in the fused epilogue
      {"fused matmul", [](Builder &b, ValueId x, ValueId w) {
         output(b, b.unary(Op::Relu, b.neg(b.matmul(x, w))));
       }, 3e38},
      // a matmul fused into x @ w + 1: the sum is checked in a second loop over the tile's
      // rows just stored
      {"fused matmul, stored sum", [](Builder &b, ValueId x, ValueId w) {
         output(b, b.add(b.matmul(x, w), b.constant(1)));
       }, 3e38},
      // a matmul with two readers (not fused): its result is checked where it is read
      {"matmul read twice", [](Builder &b, ValueId x, ValueId w) {
         ValueId m = b.matmul(x, w);
         output(b, b.reduce(Op::Max, b.binary(Op::Minimum, m, b.constant(1)), 2u, false), "a");
         output(b, b.reduce(Op::Sum, b.unary(Op::Exp, b.neg(m)), 2u, false), "b");
       }, 3e38},
      // values that are results themselves, and nothing else is computed: a stored matmul
      // and a stored reduction are checked in a pass over the result
      {"matmul result", [](Builder &b, ValueId x, ValueId w) { output(b, b.matmul(x, w)); }, 3e38},
      {"sum result", [](Builder &b, ValueId x, ValueId) { output(b, b.reduce(Op::Sum, x, 2u, false)); }, 3e38},
      // relu and maximum create no NaN or Inf from finite operands, so relu(log(x)) needs no
      // check of its own; but an argument of the step is not checked where it is loaded, so
      // maximum(x, 0) of an infinite x must be
      {"maximum of an input", [](Builder &b, ValueId x, ValueId) {
         output(b, b.unary(Op::Tanh, b.binary(Op::Maximum, x, b.constant(0))));
       }, INFINITY},
  };
  for (const Case &c : cases) {
    CAPTURE(c.what);
    Function f = make("masked", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(5)});
      ValueId w = b.param("w", {n(5), n(3)});
      c.body(b, x, w);
    });
    rt::Kernel normal = compile(f, false), checked = compile(f, true);
    for (bool bad : {false, true}) {
      CAPTURE(bad);
      auto fill = [&](const rt::Slot &s, size_t e) -> double {
        if (s.name == "w") return 1.0;
        if (bad && (e == 7 || e == 8)) return c.bad;
        return 0.5 + 0.25 * static_cast<double>(e % 3);
      };
      Run a = run(normal, 3, fill), k = run(checked, 3, fill);
      CHECK(sameBits(a, k));  // the same results
      if (bad) CHECK(std::isnan(k.flag));
      else CHECK(k.flag == 0.0f);
    }
  }
}

TEST_CASE("codegen check mode: an element-wise value alone sets the flag, whatever its place") {
  // The non-finite value at each position of a vectorised loop, and batch sizes around the
  // vector width: the remainder loop counts too.
  Function f = make("positions", [&](Builder &b) {
    ValueId x = b.input("x", DType::F32, {B, n(3)});
    output(b, b.unary(Op::Relu, b.unary(Op::Log, x)));
  });
  rt::Kernel k = compile(f, true);
  for (int64_t batch : {1, 5, 16, 33}) {
    for (int64_t at = 0; at < batch * 3; at += 1 + batch / 3) {
      CAPTURE(batch);
      CAPTURE(at);
      Run r = run(k, batch, [&](const rt::Slot &, size_t e) { return static_cast<int64_t>(e) == at ? 0.0 : 2.0; });
      CHECK(std::isnan(r.flag));
      for (float v : r.f[1]) CHECK(std::isfinite(v));
    }
  }
}

namespace {

Model mlp() {
  Model m;
  m.name = "mlp";
  m.inputs = {{"x", DType::F32, {B, n(12)}, 0, {}}, {"y", DType::I32, {B}, 5, {}}};
  m.params = {{"W1", {n(12), n(16)}, InitKind::Zeros, {}, {}},
              {"b1", {n(16)}, InitKind::Zeros, {}, {}},
              {"W2", {n(16), n(5)}, InitKind::Zeros, {}, {}},
              {"b2", {n(5)}, InitKind::Zeros, {}, {}}};
  m.optimizer.kind = "adam";
  m.optimizer.args = optimizerDefaults("adam");
  Function &f = m.forward;
  f.name = "mlp";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {B, n(12)});
  ValueId y = b.input("y", DType::I32, {B});
  ValueId w1 = b.param("W1", {n(12), n(16)}), b1 = b.param("b1", {n(16)});
  ValueId w2 = b.param("W2", {n(16), n(5)}), b2 = b.param("b2", {n(5)});
  ValueId h = b.unary(Op::Relu, b.add(b.matmul(x, w1), b1));
  ValueId z = b.add(b.matmul(h, w2), b2);
  ValueId picked = b.reduce(Op::Sum, b.mul(b.row(Op::LogSoftmax, z, 1), b.onehot(y, 5)), 2u, false);
  f.results = {{"loss", b.neg(b.reduce(Op::Mean, picked, 1u, false)), ResultKind::Loss}};
  return m;
}

}  // namespace

TEST_CASE("codegen check mode: an Adam step gives the normal kernel's results and a 0 flag") {
  Model m = mlp();
  Function step = autodiff::buildStep(m, autodiff::differentiate(m.forward));
  rt::Kernel normal = compile(step, false), checked = compile(step, true);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> noise(4096);
  for (double &v : noise) v = u(rng);
  auto fill = [&](const rt::Slot &s, size_t e) -> double {
    if (s.isInt) return static_cast<double>(e % 5);
    if (s.kind == rt::SlotKind::Hyper) return s.name == "t" ? 3 : 0.01;
    if (s.kind == rt::SlotKind::State) return std::fabs(noise[(e * 7 + s.name.size()) % noise.size()]);
    return noise[(e * 13 + s.name.size()) % noise.size()];
  };
  for (int64_t batch : {1, 9, 32}) {
    CAPTURE(batch);
    Run a = run(normal, batch, fill), k = run(checked, batch, fill);
    CHECK(sameBits(a, k));
    CHECK(k.flag == 0.0f);
  }
  // A param that holds a huge value: the hidden values and the gradient of W2 follow, and
  // the gradient's square in Adam's second moment overflows to inf.
  auto huge = [&](const rt::Slot &s, size_t e) -> double {
    if (s.name == "W1" && e == 3) return 1e30;
    return fill(s, e);
  };
  Run k = run(checked, 9, huge);
  CHECK(std::isnan(k.flag));
}

TEST_CASE("codegen check mode: the check is a vector reduction in the fused loop") {
  Function f = make("vectorised", [&](Builder &b) {
    ValueId x = b.input("x", DType::F32, {B, n(64)});
    ValueId y = b.input("y", DType::F32, {B, n(64)});
    output(b, b.unary(Op::Relu, b.add(b.mul(x, y), y)));
  });
  codegen::CodegenOptions o;
  o.checkNumerics = true;
  std::string ir = codegen::emitLLVM(f, o);
  // The accumulator lives in a vector register and is reduced once after the loop.
  CHECK(ir.find("@llvm.vector.reduce.or.v") != std::string::npos);
  CHECK(ir.find(" = or <") != std::string::npos);
  o.checkNumerics = false;
  CHECK(codegen::emitLLVM(f, o).find("llvm.vector.reduce.or") == std::string::npos);
}

TEST_CASE("codegen check mode: float64 kernels flag with a double") {
  Function f = make("f64", [&](Builder &b) {
    ValueId x = b.input("x", DType::F32, {B, n(3)});
    output(b, b.unary(Op::Relu, b.unary(Op::Log, x)));
  });
  codegen::CodegenOptions o;
  o.f64 = true;
  o.checkNumerics = true;
  rt::Kernel k = codegen::jitCompile(f, o);
  for (double bad : {2.0, 0.0}) {
    std::vector<double> x = {1, 2, 3, 4, bad, 6}, out(6, 9);
    std::vector<void *> ptrs = {x.data(), out.data()};
    int64_t batch = 2;
    size_t bytes = k.workBytes(&batch);
    void *work = std::aligned_alloc(64, (bytes + 64) / 64 * 64);
    std::memset(work, 0x7f, bytes);
    k.call(ptrs.data(), &batch, work);
    double flag;
    std::memcpy(&flag, static_cast<char *>(work) + k.numericsFlag, sizeof flag);
    std::free(work);
    CAPTURE(bad);
    if (bad == 0) CHECK(std::isnan(flag));
    else CHECK(flag == 0.0);
    CHECK(out[4] == (bad == 0 ? 0.0 : std::log(bad)));
  }
}

TEST_CASE("codegen check mode: a value seen only by the second thread's part sets the flag") {
  // x @ w split over 2 threads by column panels (8 panels of 64): only the columns from 400
  // on overflow, and they belong to the second part. Fused: relu(-(x @ w)) hides the inf;
  // unfused: the product itself is the result, checked by each part over its own columns.
  for (bool fused : {true, false}) {
    CAPTURE(fused);
    Function f = make("split", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(300)});
      ValueId w = b.param("w", {n(300), n(512)});
      ValueId m = b.matmul(x, w);
      output(b, fused ? b.unary(Op::Relu, b.neg(m)) : m);
    });
    codegen::CodegenOptions o;
    o.checkNumerics = true;
    o.threads = 2;
    rt::Kernel k = codegen::jitCompile(f, o);
    for (bool bad : {false, true}) {
      CAPTURE(bad);
      Run r = run(k, 64, [&](const rt::Slot &s, size_t e) -> double {
        if (s.name == "w") return bad && e % 512 >= 400 ? 3e38 : 1.0;
        return 2.0;
      });
      CHECK(std::isnan(r.flag) == bad);
      if (!bad) CHECK(r.flag == 0.0f);
    }
  }
}
