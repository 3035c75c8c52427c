// Differential tests of the code generator: every op of Ops.def, compiled by the JIT, must
// agree with the reference interpreter on random inputs (relative error 1e-5 in float32,
// 1e-12 in float64), with broadcasting variants and the symbolic batch dim bound to 1, 7,
// 32 and 33. Also: in-place updates of params that are read at other indices, a hand-built
// MLP step, the work size, and the LLVM / assembly / object outputs.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <unistd.h>

#include "autodiff/ReverseMode.h"
#include "autodiff/Step.h"
#include "codegen/Codegen.h"
#include "codegen/Fusion.h"
#include "codegen/LowerToLLVM.h"
#include "codegen/MemoryPlan.h"
#include "codegen/Target.h"
#include "frontend/Frontend.h"
#include "interp/Interpreter.h"
#include "ir/Builder.h"
#include "passes/Simplify.h"
#include "Sanitized.h"

using namespace gradc;
using namespace gradc::ir;

namespace {

const Dim B = Dim::sym(0);
Dim n(int64_t v) { return Dim::fixed(v); }

struct Slots {
  std::vector<std::vector<double>> f;   // float slots (also used for f32 via conversion)
  std::vector<std::vector<float>> f32;
  std::vector<std::vector<int32_t>> i;
  std::vector<void *> ptrs;
};

struct Fill {
  double lo = -2, hi = 2;
  int labels = 5;
};

// One buffer per slot: arguments random (ints in [0, labels)), results NaN.
Slots makeSlots(const rt::Signature &sig, const int64_t *dims, bool f64, std::mt19937 &rng,
                const Fill &fill) {
  Slots s;
  size_t k = sig.slots.size();
  s.f.resize(k);
  s.f32.resize(k);
  s.i.resize(k);
  std::uniform_real_distribution<double> u(fill.lo, fill.hi);
  std::uniform_int_distribution<int> lab(0, fill.labels - 1);
  for (size_t j = 0; j < k; ++j) {
    const rt::Slot &slot = sig.slots[j];
    size_t count = static_cast<size_t>(slot.elements(dims));
    bool isArg = slot.kind == rt::SlotKind::Input || slot.kind == rt::SlotKind::Param ||
                 slot.kind == rt::SlotKind::State || slot.kind == rt::SlotKind::Hyper;
    if (slot.isInt) {
      s.i[j].resize(count);
      for (auto &v : s.i[j]) v = isArg ? lab(rng) : -7;
      s.ptrs.push_back(s.i[j].data());
      continue;
    }
    std::vector<double> vals(count);
    for (auto &v : vals) {
      v = isArg ? u(rng) : NAN;
      if (slot.kind == rt::SlotKind::Hyper) v = slot.name == "t" ? 3 : 0.1;
    }
    if (f64) {
      s.f[j] = vals;
      s.ptrs.push_back(s.f[j].data());
    } else {
      s.f32[j].assign(vals.begin(), vals.end());
      s.ptrs.push_back(s.f32[j].data());
    }
  }
  return s;
}

Slots cloneSlots(const Slots &a) {
  Slots s = a;
  s.ptrs.clear();
  for (size_t j = 0; j < a.ptrs.size(); ++j)
    s.ptrs.push_back(!s.i[j].empty() ? static_cast<void *>(s.i[j].data())
                     : !s.f[j].empty() ? static_cast<void *>(s.f[j].data())
                                       : static_cast<void *>(s.f32[j].data()));
  return s;
}

std::vector<double> values(const Slots &s, size_t j) {
  if (!s.i[j].empty()) return {s.i[j].begin(), s.i[j].end()};
  if (!s.f[j].empty()) return s.f[j];
  return {s.f32[j].begin(), s.f32[j].end()};
}

struct AlignedWork {
  void *p = nullptr;
  explicit AlignedWork(size_t bytes) { p = std::aligned_alloc(64, (bytes + 64) / 64 * 64); }
  ~AlignedWork() { std::free(p); }
};

// Compiles f with the JIT and compares every slot (results and updated arguments) with the
// interpreter for each batch size.
void checkAgainstInterpreter(const Function &f, bool f64, Fill fill = {},
                             std::vector<int64_t> batches = {1, 7, 32, 33}) {
  verify(f);
  codegen::CodegenOptions o;
  o.f64 = f64;
  o.verifyStepReuse = true;
  rt::Kernel jit = codegen::jitCompile(f, o);
  rt::Kernel ref = interp::interpreterKernel(f, f64);
  double rtol = f64 ? 1e-12 : 1e-5;
  std::mt19937 rng(42);
  for (int64_t batch : batches) {
    int64_t dims[1] = {batch};
    Slots a = makeSlots(jit.sig, dims, f64, rng, fill);
    Slots b = cloneSlots(a);
    AlignedWork work(jit.workBytes(dims));
    jit.call(a.ptrs.data(), dims, work.p);
    ref.call(b.ptrs.data(), dims, nullptr);
    for (size_t j = 0; j < jit.sig.slots.size(); ++j) {
      std::vector<double> got = values(a, j), want = values(b, j);
      double scale = 0;
      for (double w : want)
        if (std::isfinite(w)) scale = std::max(scale, std::fabs(w));
      int bad = 0;
      for (size_t e = 0; e < got.size() && bad < 3; ++e) {
        double g = got[e], w = want[e];
        // (The floor rtol/100: a value that cancels to about zero, like logsumexp of a
        // log_softmax, is off by rounding alone, relative to nothing.)
        bool ok = (std::isnan(g) && std::isnan(w)) || g == w ||
                  std::fabs(g - w) <= rtol * (std::fabs(w) + scale + 0.01);
        if (!ok) {
          ++bad;
          FAIL_CHECK(f.name << " B=" << batch << " slot " << jit.sig.slots[j].name << "[" << e
                            << "]: jit " << g << " interp " << w);
        }
      }
    }
  }
}

}  // namespace

namespace gradc::codegen::testing {
void checkAgainstInterpreterFor(const Function &f, bool f64, double lo, double hi, int labels,
                                const std::vector<int64_t> &batches) {
  checkAgainstInterpreter(f, f64, {lo, hi, labels}, batches);
}
}  // namespace gradc::codegen::testing

namespace {

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

const Op kUnary[] = {Op::Neg,  Op::Exp,     Op::Log,      Op::Sqrt, Op::Abs, Op::Sign,
                     Op::Tanh, Op::Sigmoid, Op::Relu,     Op::Softplus, Op::Sin, Op::Cos,
                     Op::Square, Op::LeakyRelu, Op::StopGradient};
const Op kBinary[] = {Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Pow, Op::Maximum, Op::Minimum,
                      Op::Lt,  Op::Le,  Op::Gt,  Op::Ge,  Op::Eq,  Op::Ne};

}  // namespace

TEST_CASE("codegen: unary ops agree with the interpreter") {
  for (bool f64 : {false, true})
    for (Op op : kUnary) {
      bool positive = op == Op::Log || op == Op::Sqrt;
      Function f = make(opName(op), [&](Builder &b) {
        ValueId x = b.input("x", DType::F32, {B, n(5)});
        output(b, b.unary(op, x, 0.05));
      });
      CAPTURE(opName(op));
      checkAgainstInterpreter(f, f64, {positive ? 0.05 : -6, positive ? 4.0 : 6.0});
    }
}

TEST_CASE("codegen: binary ops with broadcasting agree with the interpreter") {
  for (bool f64 : {false, true})
    for (Op op : kBinary) {
      bool positive = op == Op::Pow;
      // [B,5] with [5], [B,1] with [1,5], and a scalar param on the left
      Function f = make(std::string(opName(op)) + "_bcast", [&](Builder &b) {
        ValueId x = b.input("x", DType::F32, {B, n(5)});
        ValueId w = b.param("w", {n(5)});
        ValueId c = b.input("c", DType::F32, {B, n(1)});
        ValueId r = b.param("r", {n(1), n(5)});
        ValueId s = b.param("s", {});
        output(b, b.binary(op, x, w), "xw");
        output(b, b.binary(op, c, r), "cr");
        output(b, b.binary(op, s, x), "sx");
        output(b, b.binary(op, x, x), "xx");
      });
      CAPTURE(opName(op));
      checkAgainstInterpreter(f, f64, {positive ? 0.1 : -3, 3});
    }
}

TEST_CASE("codegen: special values (0, -0, NaN, inf) follow the interpreter") {
  Function f = make("special", [&](Builder &b) {
    ValueId x = b.input("x", DType::F32, {n(8)});
    ValueId y = b.input("y", DType::F32, {n(8)});
    for (Op op : {Op::Abs, Op::Sign, Op::Relu, Op::LeakyRelu, Op::Sigmoid, Op::Softplus, Op::Tanh})
      output(b, b.unary(op, x, 0.1), opName(op));
    for (Op op : {Op::Maximum, Op::Minimum, Op::Eq, Op::Ne, Op::Lt})
      output(b, b.binary(op, x, y), opName(op));
    output(b, b.where(x, x, y), "where");
    output(b, b.reduce(Op::Max, x, 1, false), "max");
    output(b, b.reduce(Op::LogSumExp, x, 1, false), "lse");
    output(b, b.row(Op::Softmax, x, 0), "softmax");  // a +inf in the row: NaN throughout
    output(b, b.row(Op::LogSoftmax, x, 0), "log_softmax");
    output(b, b.argmax(x, 0), "argmax");
  });
  codegen::CodegenOptions o;
  rt::Kernel jit = codegen::jitCompile(f, o);
  rt::Kernel ref = interp::interpreterKernel(f, false);
  for (int variant = 0; variant < 4; ++variant) {
    std::vector<float> x = {0.0f, -0.0f, NAN, 1.5f, -2.0f, INFINITY, -INFINITY, 30.0f};
    std::vector<float> y = {-0.0f, 0.0f, 1.0f, NAN, -2.0f, 5.0f, -INFINITY, -30.0f};
    if (variant == 1 || variant == 3) x[2] = 0.25f;      // no NaN: max, lse, argmax finite paths
    if (variant == 3) x[5] = 7.0f;                        // no inf either: rows of finite values
    if (variant == 2) x = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    auto run = [&](rt::Kernel &k) {
      std::vector<float> xs = x, ys = y;
      std::vector<std::vector<float>> outs(jit.sig.slots.size(), std::vector<float>(8, 12345.f));
      std::vector<std::vector<int32_t>> ints(jit.sig.slots.size(), std::vector<int32_t>(8, -9));
      std::vector<void *> ptrs = {xs.data(), ys.data()};
      for (size_t j = 2; j < jit.sig.slots.size(); ++j)
        ptrs.push_back(jit.sig.slots[j].isInt ? static_cast<void *>(ints[j].data()) : outs[j].data());
      int64_t dims[1] = {1};
      AlignedWork work(k.workBytes(dims));
      k.call(ptrs.data(), dims, work.p);
      std::vector<std::vector<double>> res;
      for (size_t j = 2; j < jit.sig.slots.size(); ++j)
        res.push_back(jit.sig.slots[j].isInt ? std::vector<double>(ints[j].begin(), ints[j].end())
                                             : std::vector<double>(outs[j].begin(), outs[j].end()));
      return res;
    };
    auto got = run(jit), want = run(ref);
    for (size_t j = 0; j < got.size(); ++j)
      for (size_t e = 0; e < got[j].size(); ++e) {
        double g = got[j][e], w = want[j][e];
        CAPTURE(jit.sig.slots[j + 2].name);
        CAPTURE(e);
        CAPTURE(variant);
        if (std::isnan(w)) CHECK(std::isnan(g));
        else if (std::isinf(w)) CHECK(g == w);
        else CHECK(g == doctest::Approx(w).epsilon(1e-6));
        if (w == 0 && !std::isnan(g)) CHECK(std::signbit(g) == std::signbit(w));
      }
  }
}

TEST_CASE("codegen: where, cast, onehot, dimsize, layout ops") {
  for (bool f64 : {false, true}) {
    Function f = make("misc", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(4)});
      ValueId y = b.input("y", DType::I32, {B});
      ValueId w = b.param("w", {n(4), n(3)});
      ValueId yk = b.input("yk", DType::I32, {B, n(1)});
      ValueId c = b.binary(Op::Gt, x, b.constant(0.3));
      output(b, b.where(c, x, b.unary(Op::Exp, x)), "where");
      output(b, b.where(yk, x, b.constant(2.0)), "where_int");
      output(b, b.unary(Op::Cast, y), "cast");
      output(b, b.onehot(y, 5), "onehot");
      output(b, b.mul(b.onehot(y, 5), b.dimSize(B)), "onehot_scaled");
      output(b, b.transpose(b.unary(Op::Tanh, x)), "transpose");
      output(b, b.transpose(w), "transpose_param");
      output(b, b.reduce(Op::Sum, b.reshape(b.add(x, b.constant(1)), {Dim{4, 1}}), 1u, false), "reshape");
      output(b, b.reshape(b.add(x, b.constant(1)), {B, n(2), n(2)}), "reshape_fused");
      output(b, b.reshape(x, {B, n(2), n(2)}), "reshape3");
      output(b, b.mul(b.reshape(w, {n(12)}), b.constant(2)), "reshape_param");
      output(b, b.broadcast(b.param("v", {n(4)}), {B, n(4)}), "broadcast");
      output(b, b.add(x, b.dimSize(B)), "dimsize");
      output(b, b.binary(Op::Eq, b.argmax(x, 1), y), "eq_int");
      output(b, y, "labels_copy");
      output(b, b.constant(1.5, {n(2)}), "const");
    });
    checkAgainstInterpreter(f, f64, {-1, 1, 4});
  }
}

TEST_CASE("codegen: reductions, rows and argmax agree with the interpreter") {
  for (bool f64 : {false, true})
    for (Op op : {Op::Sum, Op::Mean, Op::Max, Op::Min, Op::LogSumExp}) {
      Function f = make(std::string("reduce_") + opName(op), [&](Builder &b) {
        ValueId x = b.input("x", DType::F32, {B, n(6)});
        ValueId x3 = b.input("x3", DType::F32, {n(3), B, n(4)});
        ValueId e = b.unary(Op::Square, x);  // fused into the reduction's loop
        output(b, b.reduce(op, x, 1u << 1, false), "rows");
        output(b, b.reduce(op, x, 1u << 0, true), "cols_keep");
        output(b, b.reduce(op, e, 3u, false), "all");
        output(b, b.reduce(op, x3, 1u << 1, false), "middle");
        output(b, b.reduce(op, x3, 5u, true), "outer_keep");
      });
      CAPTURE(opName(op));
      checkAgainstInterpreter(f, f64);
    }
  for (bool f64 : {false, true}) {
    Function f = make("rows", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(6)});
      ValueId x3 = b.input("x3", DType::F32, {n(3), B, n(4)});
      output(b, b.row(Op::Softmax, x, 1), "softmax1");
      output(b, b.row(Op::Softmax, x, 0), "softmax0");
      output(b, b.row(Op::LogSoftmax, b.mul(x, b.constant(10)), 1), "logsoftmax1");
      output(b, b.row(Op::LogSoftmax, x3, 1), "logsoftmax_mid");
      output(b, b.argmax(x, 1), "argmax1");
      output(b, b.argmax(x, 0), "argmax0");
      output(b, b.argmax(x3, 2), "argmax_last");
    });
    checkAgainstInterpreter(f, f64);
  }
}

TEST_CASE("codegen: a sum of everything of a large batch is exact to float32 rounding") {
  // One float chain of B·k additions lost 1.7e-5 of the mean of a [300000, 2] tensor of
  // values in [0.5, 1.5]; PyTorch's cascade sum is exact to float32 rounding.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{300000, 2}, {100003, 7}, {600001, 1}, {3, 5}}) {
    CAPTURE(rows);
    CAPTURE(cols);
    Function f = make("bigsum", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(cols)});
      output(b, b.reduce(Op::Sum, x, 3, false), "sum");
      output(b, b.reduce(Op::Mean, x, 3, false), "mean");
    });
    codegen::CodegenOptions o;
    rt::Kernel jit = codegen::jitCompile(f, o);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    std::vector<float> x(static_cast<size_t>(rows * cols));
    double exact = 0;
    for (float &v : x) exact += v = u(rng);
    float sum = 0, mean = 0;
    std::vector<void *> ptrs = {x.data(), &sum, &mean};
    int64_t dims[1] = {rows};
    AlignedWork work(jit.workBytes(dims));
    jit.call(ptrs.data(), dims, work.p);
    CHECK(std::abs(sum - exact) <= 2e-7 * exact);
    CHECK(std::abs(mean - exact / static_cast<double>(rows * cols)) <= 2e-7 * exact / static_cast<double>(rows * cols));
  }
}

TEST_CASE("codegen: a sum over the batch adds blocks of 1,024 rows, so a long one keeps its accuracy") {
  // Each column: partials of 1,024 rows each, from zero in row order, added in order
  // (emitBlockedSum). A batch of at most 1,024 rows is the one float chain it always was.
  // One chain per column over 100,000 rows lost 1e-4 of a bias gradient to PyTorch's.
  // A stored operand is summed by the module's shared function, one read in check mode (or
  // computed in the loop) by the sum's own loops: both in the same order.
  const int64_t kBlock = 1024;
  for (bool checked : {false, true})
  for (int64_t rows : {5, 1024, 1025, 3000, 100003}) {
    CAPTURE(checked);
    CAPTURE(rows);
    Function f = make("colsum", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(300)});  // two strips of columns: 256 + 44
      ValueId x3 = b.input("x3", DType::F32, {B, n(3), n(5)});
      output(b, b.reduce(Op::Sum, x, 1, false), "sum");
      output(b, b.reduce(Op::Mean, x, 1, true), "mean");
      output(b, b.reduce(Op::Sum, x3, 3, false), "sum01");
      output(b, b.reduce(Op::Sum, b.unary(Op::Square, x), 1, false), "sumsq");  // computed in the loop
    });
    codegen::CodegenOptions options;
    options.checkNumerics = checked;
    rt::Kernel jit = codegen::jitCompile(f, options);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    std::vector<float> x(static_cast<size_t>(rows * 300)), x3(static_cast<size_t>(rows * 15));
    for (float &v : x) v = u(rng);
    for (float &v : x3) v = u(rng);
    std::vector<float> sum(300), mean(300), sum01(5), sumsq(300), sq(x.size());
    for (size_t e = 0; e < x.size(); ++e) sq[e] = x[e] * x[e];
    std::vector<void *> ptrs = {x.data(), x3.data(), sum.data(), mean.data(), sum01.data(), sumsq.data()};
    int64_t dims[1] = {rows};
    AlignedWork work(jit.workBytes(dims));
    jit.call(ptrs.data(), dims, work.p);
    // The same sums in the same order; and the exact sum, to float32 rounding.
    auto blocked = [&](const std::vector<float> &v, int64_t nrows, int64_t cols, int64_t c, double &exact) {
      float total = 0;
      exact = 0;
      for (int64_t r0 = 0; r0 < nrows; r0 += kBlock) {
        float part = 0;
        for (int64_t r = r0; r < std::min(nrows, r0 + kBlock); ++r) {
          part += v[static_cast<size_t>(r * cols + c)];
          exact += v[static_cast<size_t>(r * cols + c)];
        }
        total += part;
      }
      return total;
    };
    int bad = 0, inexact = 0;
    for (int64_t c = 0; c < 300; ++c) {
      double exact;
      float want = blocked(x, rows, 300, c, exact);
      bad += sum[static_cast<size_t>(c)] != want;
      bad += mean[static_cast<size_t>(c)] != want / static_cast<float>(rows);
      inexact += std::abs(sum[static_cast<size_t>(c)] - exact) > 5e-6 * exact;
      bad += sumsq[static_cast<size_t>(c)] != blocked(sq, rows, 300, c, exact);
    }
    for (int64_t c = 0; c < 5; ++c) {
      double exact;
      float want = blocked(x3, rows * 3, 5, c, exact);
      bad += sum01[static_cast<size_t>(c)] != want;
      inexact += std::abs(sum01[static_cast<size_t>(c)] - exact) > 5e-6 * exact;
    }
    CHECK(bad == 0);
    CHECK(inexact == 0);
  }
}

TEST_CASE("codegen: matmul with every transpose flag, batch in each position") {
  for (bool f64 : {false, true})
    for (int flags = 0; flags < 4; ++flags) {
      bool ta = flags & 1, tb = flags & 2;
      Function f = make(fmt::format("matmul{}{}", ta, tb), [&](Builder &b) {
        auto mat = [&](const char *name, Dim r, Dim c, bool t) {
          return t ? b.input(name, DType::F32, {c, r}) : b.input(name, DType::F32, {r, c});
        };
        // [B,7]@[7,5], [5,B]@[B,3], [3,7]@[7,B]
        output(b, b.matmul(mat("a1", B, n(7), ta), mat("b1", n(7), n(5), tb), ta, tb), "m_batch");
        output(b, b.matmul(mat("a2", n(5), B, ta), mat("b2", B, n(3), tb), ta, tb), "k_batch");
        output(b, b.matmul(mat("a3", n(3), n(7), ta), mat("b3", n(7), B, tb), ta, tb), "n_batch");
        // an explicit transpose folded into the flag, and a fused operand materialised
        ValueId x = b.input("x", DType::F32, {B, n(7)});
        output(b, b.matmul(b.transpose(x), b.unary(Op::Relu, x), ta && false, false), "xtx");
      });
      checkAgainstInterpreter(f, f64);
    }
}

TEST_CASE("codegen: params updated in place, also when read at other indices") {
  for (bool f64 : {false, true}) {
    Function f = make("update", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(3)});
      ValueId w = b.param("W", {n(3), n(3)});
      ValueId v = b.param("V", {n(3), n(3)});
      ValueId u = b.param("U", {n(3)});
      ValueId m = b.state("W.m", {n(3), n(3)});
      ValueId lr = b.hyper("lr");
      ValueId z = b.matmul(x, w);
      ValueId loss = b.reduce(Op::Mean, b.unary(Op::Square, z), 3u, false);
      ValueId g = b.matmul(x, z, true, false);
      ValueId m2 = b.add(b.mul(m, b.constant(0.9)), g);
      auto &res = b.function().results;
      res.push_back({"loss", loss, ResultKind::Loss});
      res.push_back({"W.m", m2, ResultKind::NewState});
      res.push_back({"W", b.sub(w, b.mul(lr, m2)), ResultKind::NewParam});
      // V becomes its own transpose (reads other indices: needs a temporary); U is swapped
      // with the old value of W's first row (W is updated in place later).
      res.push_back({"V", b.add(b.transpose(v), b.constant(1)), ResultKind::NewParam});
      res.push_back({"grad", g, ResultKind::Grad});
      res.push_back({"U", b.reshape(b.reduce(Op::Sum, w, 1u, false), {n(3)}), ResultKind::NewParam});
      (void)u;
    });
    checkAgainstInterpreter(f, f64);
  }
}

namespace {

// A 784-128-10 relu MLP with cross-entropy (as the front end lowers it), differentiated by
// reverse mode, with an optimiser step.
Model mlpModel(int64_t in, int64_t hidden, int64_t classes, const std::string &optimizer) {
  Model m;
  m.name = "mlp";
  m.inputs = {{"x", DType::F32, {B, n(in)}, 0, {}}, {"y", DType::I32, {B}, classes, {}}};
  m.params = {{"W1", {n(in), n(hidden)}, InitKind::Zeros, {}, {}},
              {"b1", {n(hidden)}, InitKind::Zeros, {}, {}},
              {"W2", {n(hidden), n(classes)}, InitKind::Zeros, {}, {}},
              {"b2", {n(classes)}, InitKind::Zeros, {}, {}}};
  m.optimizer.kind = optimizer;
  m.optimizer.args = optimizerDefaults(optimizer);
  Function &f = m.forward;
  f.name = "mlp";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {B, n(in)});
  ValueId y = b.input("y", DType::I32, {B});
  ValueId w1 = b.param("W1", {n(in), n(hidden)}), b1 = b.param("b1", {n(hidden)});
  ValueId w2 = b.param("W2", {n(hidden), n(classes)}), b2 = b.param("b2", {n(classes)});
  ValueId h = b.unary(Op::Relu, b.add(b.matmul(x, w1), b1));
  ValueId z = b.add(b.matmul(h, w2), b2);
  ValueId picked = b.reduce(Op::Sum, b.mul(b.row(Op::LogSoftmax, z, 1), b.onehot(y, classes)), 2u, false);
  ValueId loss = b.neg(b.reduce(Op::Mean, picked, 1u, false));
  ValueId acc = b.reduce(Op::Mean, b.binary(Op::Eq, b.argmax(z, 1), y), 1u, false);
  f.results = {{"loss", loss, ResultKind::Loss}, {"accuracy", acc, ResultKind::Metric}};
  return m;
}

}  // namespace

TEST_CASE("codegen: MLP gradient and optimiser steps agree with the interpreter") {
  for (const char *opt : {"sgd", "adam"}) {
    Model m = mlpModel(20, 16, 4, opt);
    Function grad = autodiff::differentiate(m.forward);
    Function step = autodiff::buildStep(m, grad);
    CAPTURE(opt);
    checkAgainstInterpreter(grad, false, {-1, 1, 4});
    checkAgainstInterpreter(step, false, {-1, 1, 4});
    checkAgainstInterpreter(step, true, {-1, 1, 4}, {5, 32});
  }
}

TEST_CASE("codegen: an optimiser update is one loop over each weight, with its gradient computed in it") {
  // Adam: the new moments m and v and the new weight are three results, each read only at
  // the same index by the next; the weight gradient x^T @ d is read by the first two.
  // Momentum: the new buffer and the new weight. Either way one loop per weight, which
  // computes the gradient tile by tile, stores the results in place and nothing else.
  for (const char *opt : {"adam", "momentum"}) {
    CAPTURE(opt);
    Model m = mlpModel(20, 16, 4, opt == std::string("momentum") ? "sgd" : opt);
    if (opt == std::string("momentum")) m.optimizer.args["momentum"] = 0.9;
    Function step = autodiff::buildStep(m, autodiff::differentiate(m.forward));
    codegen::FusionPlan fp = codegen::planFusion(step);
    codegen::MemoryPlan mp = codegen::planMemory(step, fp, 4);
    auto result = [&](ResultKind kind, const std::string &name) {
      ValueId v = step.findResult(kind, name);
      REQUIRE(v != kNoValue);
      return v;
    };
    for (const char *w : {"W1", "W2"}) {
      CAPTURE(w);
      ValueId nw = result(ResultKind::NewParam, w);
      std::vector<std::string> states = opt == std::string("adam") ? std::vector<std::string>{".m", ".v"}
                                                                    : std::vector<std::string>{".buf"};
      const codegen::Step *loop = nullptr;
      for (const codegen::Step &s : mp.steps)
        if (s.kind == codegen::Step::Compute && s.value == nw) loop = &s;
      REQUIRE(loop != nullptr);
      REQUIRE(loop->also.size() == states.size());
      for (size_t i = 0; i < states.size(); ++i) {
        CHECK(loop->also[i] == result(ResultKind::NewState, w + states[i]));
        // in place: the state's own argument slot
        ValueId arg = step.findArgument(Op::State, w + states[i]);
        CHECK(loop->alsoDest[i] == mp.homeOf(arg));
      }
      CHECK(loop->dest == mp.homeOf(step.findArgument(Op::Param, w)));
      REQUIRE(loop->matmul != kNoValue);
      CHECK(step.node(loop->matmul).srcName == std::string("d.") + w);
    }
    checkAgainstInterpreter(step, false, {-1, 1, 4});
    checkAgainstInterpreter(step, true, {-1, 1, 4}, {5, 32});
  }
}

TEST_CASE("codegen: a value computed in a later loop keeps its buffer when a reshape or a result reads it") {
  // u and w are each read by one loop (v and z, at the same index), so each is computed in
  // that loop; u is then kept in a register, unless a reshape of u (a result) reads its
  // buffer; w is a result, so it is stored either way.
  for (bool reshape : {false, true}) {
    CAPTURE(reshape);
    ValueId u = kNoValue, v = kNoValue, w = kNoValue, z = kNoValue;
    Function f = make("groups", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(4)});
      u = b.add(b.unary(Op::Tanh, x), b.constant(1));
      v = b.mul(u, b.unary(Op::Sigmoid, u));
      w = b.sub(b.unary(Op::Exp, x), x);
      z = b.mul(w, b.constant(3));
      auto &res = b.function().results;
      res.push_back({"v", v, ResultKind::Output});
      if (reshape) res.push_back({"r", b.reshape(u, {B, n(2), n(2)}), ResultKind::Output});
      res.push_back({"w", w, ResultKind::Output});
      res.push_back({"z", z, ResultKind::Output});
    });
    codegen::FusionPlan fp = codegen::planFusion(f);
    auto kernel = [&](ValueId x) {
      auto it = std::find(fp.kernels.begin(), fp.kernels.end(), x);
      REQUIRE(it != fp.kernels.end());
      return static_cast<size_t>(it - fp.kernels.begin());
    };
    CHECK(fp.host[kernel(u)] == (reshape ? kernel(u) : kernel(v)));
    CHECK(fp.inLoopOnly[kernel(u)] == !reshape);
    CHECK(fp.host[kernel(w)] == kernel(z));
    CHECK(!fp.inLoopOnly[kernel(w)]);
    checkAgainstInterpreter(f, false);
    checkAgainstInterpreter(f, true);
  }
}

TEST_CASE("codegen: a long element-wise chain is cut into loops, so no expression nests too deeply") {
  // 1000 tanh in a row, each read once at the same index: without a limit every one would be
  // inlined into the last, and lowering (which recurses through inlined operands) ran out of
  // stack on chains of some ten thousand. No inlined expression may nest more than 128 deep.
  Function f = make("chain", [&](Builder &b) {
    ValueId v = b.input("x", DType::F32, {B, n(4)});
    for (int i = 0; i < 1000; ++i) v = b.unary(Op::Tanh, b.add(v, b.constant(0.01)));
    output(b, v);
  });
  codegen::FusionPlan fp = codegen::planFusion(f);
  std::vector<int> depth(static_cast<size_t>(f.size()), 0);
  int deepest = 0;
  for (ValueId v = 0; v < f.size(); ++v) {
    if (fp.role[static_cast<size_t>(v)] != codegen::Role::Inline) continue;
    int d = 0;
    for (ValueId u : f.node(v).operands) d = std::max(d, depth[static_cast<size_t>(u)]);
    depth[static_cast<size_t>(v)] = d + 1;
    deepest = std::max(deepest, d + 1);
  }
  CHECK(deepest <= 128);
  CHECK(deepest >= 64);
  checkAgainstInterpreter(f, false, {}, {1, 33});
}

TEST_CASE("codegen: a constant that is a result or a reshape's operand is read from its buffer") {
  // The constant 0 is a result (a param's zero gradient) and also an operand of a compare;
  // 2 and the batch size are reshaped. Each is a kernel with a buffer, which the loops that
  // read it must be given.
  Function f = make("constants", [&](Builder &b) {
    ValueId x = b.input("x", DType::F32, {B, n(3)});
    ValueId zero = b.constant(0);
    ValueId gt = b.binary(Op::Gt, x, zero);
    ValueId two = b.reshape(b.constant(2), {n(1), n(1)});
    ValueId size = b.reshape(b.dimSize(B), {n(1)});
    ValueId sum = b.add(b.add(gt, b.mul(x, two)), size);
    auto &res = b.function().results;
    res.push_back({"zero", zero, ResultKind::Output});
    res.push_back({"sum", sum, ResultKind::Output});
  });
  checkAgainstInterpreter(f, false);
  checkAgainstInterpreter(f, true);
}

TEST_CASE("codegen: the work size grows with the batch and covers every live value") {
  Model m = mlpModel(784, 128, 10, "sgd");
  Function step = autodiff::buildStep(m, autodiff::differentiate(m.forward));
  rt::Kernel k = codegen::jitCompile(step, {});
  size_t prev = 0;
  for (int64_t batch : {1, 2, 7, 32, 33, 64, 256}) {
    size_t w = k.workBytes(&batch);
    CHECK(w % 64 == 0);
    CHECK(w >= prev);
    // at least the hidden activations [B,128] must be kept for the backward pass
    CHECK(w >= static_cast<size_t>(batch) * 128 * 4);
    prev = w;
  }
  CHECK(k.workBytes(std::array<int64_t, 1>{256}.data()) > k.workBytes(std::array<int64_t, 1>{1}.data()));
  // The gradient of W1 [784,128] is never stored whole: its matmul runs inside the update.
  int64_t b32 = 32;
  CHECK(k.workBytes(&b32) < size_t{784} * 128 * 4);
}

TEST_CASE("codegen: LLVM IR, assembly and objects for the host and for AArch64") {
  Function f = make("axpy", [&](Builder &b) {
    ValueId x = b.input("x", DType::F32, {B, n(16)});
    ValueId y = b.param("y", {n(16)});
    output(b, b.add(b.mul(x, b.constant(2)), y));
  });
  std::string ir = codegen::emitLLVM(f, {});
  CHECK(ir.find("void @gradc_axpy(ptr") != std::string::npos);
  CHECK(ir.find("i64 @gradc_axpy_work_size(ptr") != std::string::npos);
  CHECK(ir.find("\"prefer-vector-width\"") != std::string::npos);
  codegen::CodegenOptions d;
  d.f64 = true;
  d.symbol = "axpy_step";
  CHECK(codegen::emitLLVM(f, d).find("double") != std::string::npos);
  std::string as = codegen::emitAsm(f, d);
  CHECK(as.find("axpy_step:") != std::string::npos);
  CHECK(as.find("axpy_step_work_size:") != std::string::npos);

  codegen::CodegenOptions arm;
  arm.triple = "aarch64-linux-gnu";
  std::string armAsm = codegen::emitAsm(f, arm);
  CHECK(armAsm.find("ret") != std::string::npos);
  std::string path = "codegen_test_aarch64.o";
  codegen::emitObject(f, arm, path);
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> head(20);
  in.read(reinterpret_cast<char *>(head.data()), 20);
  CHECK(head[0] == 0x7f);
  CHECK(head[1] == 'E');
  CHECK(head[18] == 183);  // e_machine EM_AARCH64
  std::remove(path.c_str());

  // A whole training step (matmul kernels with masked tails, softmax, libm calls) for AArch64.
  Model m = mlpModel(20, 16, 4, "adam");
  Function step = autodiff::buildStep(m, autodiff::differentiate(m.forward));
  arm.cpu = "cortex-a72";
  std::string stepAsm = codegen::emitAsm(step, arm);
  CHECK(stepAsm.find("gradc_mlp_step:") != std::string::npos);
  CHECK(stepAsm.find("fmla") != std::string::npos);

  codegen::CodegenOptions bad;
  bad.triple = "nonsense-unknown-thing";
  CHECK_THROWS_AS(codegen::emitObject(f, bad, "never.o"), UserError);
}

TEST_CASE("codegen: work regions are reused once their value is dead") {
  // v <- v * v + rowsum(v), twenty times: each v is read by two loops (the row sum and the
  // next v), so each is stored, but only the last two are ever live together.
  Function f = make("chain", [&](Builder &b) {
    ValueId v = b.input("x", DType::F32, {B, n(64)});
    for (int i = 0; i < 20; ++i)
      v = b.add(b.mul(v, b.constant(0.5)), b.mul(b.reduce(Op::Mean, v, 1u << 1, true), b.constant(0.25)));
    output(b, b.reduce(Op::Sum, v, 1u << 1, false));
  });
  checkAgainstInterpreter(f, false, {-0.5, 0.5});
  rt::Kernel k = codegen::jitCompile(f, {});
  int64_t batch = 32;
  size_t one = static_cast<size_t>(batch) * 64 * 4;
  CHECK(k.workBytes(&batch) >= 2 * one);
  CHECK(k.workBytes(&batch) <= 3 * one);
}

TEST_CASE("codegen: a value read twice by the next loop only is kept in a register, not stored") {
  // v <- v * v - v / 2, twenty times: each v has two users, both in the next v's
  // expression, so the twenty values are one loop that stores only the last.
  Function f = make("chain", [&](Builder &b) {
    ValueId v = b.input("x", DType::F32, {B, n(64)});
    for (int i = 0; i < 20; ++i) v = b.add(b.mul(v, v), b.mul(v, b.constant(-0.5)));
    output(b, b.reduce(Op::Sum, v, 1u << 1, false));
  });
  checkAgainstInterpreter(f, false, {-0.5, 0.5});
  checkAgainstInterpreter(f, true, {-0.5, 0.5});
  rt::Kernel k = codegen::jitCompile(f, {});
  int64_t batch = 32;
  size_t one = static_cast<size_t>(batch) * 64 * 4;
  CHECK(k.workBytes(&batch) <= one + 64);
}

namespace {

// Every int and float slot of a and b holds the same bits.
void checkSameBits(const rt::Signature &sig, const Slots &a, const Slots &b) {
  for (size_t j = 0; j < sig.slots.size(); ++j) {
    CAPTURE(sig.slots[j].name);
    CHECK(a.i[j] == b.i[j]);
    if (!a.f32[j].empty())
      CHECK(std::memcmp(a.f32[j].data(), b.f32[j].data(), a.f32[j].size() * sizeof(float)) == 0);
    if (!a.f[j].empty()) CHECK(std::memcmp(a.f[j].data(), b.f[j].data(), a.f[j].size() * sizeof(double)) == 0);
  }
}

// Two compilations of one step, each called twice (the second step starts from the first's
// updated params and state) on the same random arguments: every slot the same bits.
void checkSameSteps(const rt::Kernel &ref, const rt::Kernel &k, int64_t batch, bool f64, std::mt19937 &rng,
                    const Fill &fill) {
  int64_t dims[1] = {batch};
  Slots a = makeSlots(ref.sig, dims, f64, rng, fill);
  Slots b = cloneSlots(a);
  AlignedWork w1(ref.workBytes(dims)), w2(k.workBytes(dims));
  for (int rep = 0; rep < 2; ++rep) {
    ref.call(a.ptrs.data(), dims, w1.p);
    k.call(b.ptrs.data(), dims, w2.p);
  }
  checkSameBits(ref.sig, a, b);
}

}  // namespace

TEST_CASE("codegen: a step split over threads gives the one-thread result bit for bit") {
  // Large enough that every hidden-layer matmul (forward, input gradient, weight gradient
  // with the optimiser update fused in) is split over up to 3 threads (12 column panels of
  // 64); the 40-class layer is not (one panel).
  Model m = mlpModel(300, 768, 40, "adam");
  Function step = autodiff::buildStep(m, autodiff::differentiate(m.forward));
  codegen::CodegenOptions one, many;
  one.verifyStepReuse = many.verifyStepReuse = true;
  many.threads = 2;
  CHECK(codegen::emitLLVM(step, one).find("gradc_parallel_run") == std::string::npos);
  CHECK(codegen::emitLLVM(step, many).find("gradc_parallel_run") != std::string::npos);
  rt::Kernel k1 = codegen::jitCompile(step, one);
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    many.threads = threads;
    rt::Kernel kn = codegen::jitCompile(step, many);
    std::mt19937 rng(7);
    for (int64_t batch : {64, 33}) {
      CHECK(kn.workBytes(&batch) > k1.workBytes(&batch));  // a panel scratch per thread
      checkSameSteps(k1, kn, batch, false, rng, {-1, 1, 40});
    }
  }
}

TEST_CASE("codegen: a product too narrow to split gives the one-thread result bit for bit") {
  // tanh(x @ W + b) with W of width 3: never split, so the same code with 2 threads as with
  // one (its part-generic lowering took tanhf from libm where the other took libmvec's).
  for (int64_t width : {2, 3, 16, 17}) {
    CAPTURE(width);
    Function f = make("narrow", [&](Builder &b) {
      ValueId x = b.input("x", DType::F32, {B, n(3)});
      ValueId w = b.input("W", DType::F32, {n(3), n(width)});
      ValueId bias = b.input("b", DType::F32, {n(width)});
      ValueId t = b.unary(Op::Tanh, b.add(b.matmul(x, w), bias));
      output(b, t, "t");
    });
    codegen::CodegenOptions one, two;
    two.threads = 2;
    CHECK(codegen::emitLLVM(f, two).find("gradc_parallel_run") == std::string::npos);
    rt::Kernel k1 = codegen::jitCompile(f, one), k2 = codegen::jitCompile(f, two);
    std::mt19937 rng(3);
    for (int64_t batch : {23, 64}) {
      int64_t dims[1] = {batch};
      Slots a = makeSlots(k1.sig, dims, false, rng, {-2, 2, 1});
      Slots c = cloneSlots(a);
      AlignedWork w1(k1.workBytes(dims)), w2(k2.workBytes(dims));
      k1.call(a.ptrs.data(), dims, w1.p);
      k2.call(c.ptrs.data(), dims, w2.p);
      checkSameBits(k1.sig, a, c);
    }
  }
}

TEST_CASE("codegen: layers of the same shapes share one lowered function, and only those") {
  // Thirty hidden layers of width 24: the same computation in layers 1-16 (relu), 17-24
  // (tanh, with a residual), then leaky_relu with slope 0.1 and 0.2, which differ in a
  // constant only. Over 128 steps: the entry calls them through functions of 128 calls each.
  const int layers = 30;
  std::string text = "dim B\ninput x: [B, 24]\ninput y: int[B]\n";
  for (int i = 1; i <= layers; ++i) text += fmt::format("param W{0}: [24, 24] = he\nparam b{0}: [24] = zeros\n", i);
  text += "h0 = x\n";
  for (int i = 1; i <= layers; ++i) {
    std::string pre = fmt::format("h{} @ W{} + b{}", i - 1, i, i);
    std::string act = i <= 16   ? fmt::format("relu({})", pre)
                      : i <= 24 ? fmt::format("tanh({}) + h{}", pre, i - 1)
                      : fmt::format("leaky_relu({}, {})", pre, i <= 27 ? "0.1" : "0.2");
    text += fmt::format("h{} = {}\n", i, act);
  }
  text += fmt::format("minimize cross_entropy(h{}, y) with sgd(lr = 0.1, momentum = 0.9)\n", layers);
  std::filesystem::path path = std::filesystem::temp_directory_path() / fmt::format("gradc_deep_{}.grad", getpid());
  std::ofstream(path) << text;
  SourceManager sm;
  Model m = loadModel(sm, path.string());
  std::filesystem::remove(path);
  Function step = passes::simplify(autodiff::buildStep(m, passes::simplify(autodiff::differentiate(m.forward))));

  for (bool check : {false, true}) {
    CAPTURE(check);
    codegen::CodegenOptions o;
    o.checkNumerics = check;
    o.verifyStepReuse = true;  // each reuse is lowered again and compared
    codegen::initTargets();
    codegen::TargetDesc t = codegen::resolveTarget(o);
    llvm::LLVMContext ctx;
    auto mod = codegen::lowerToLLVM(step, o, t, ctx, codegen::createTargetMachine(t)->createDataLayout());
    // The step functions (gradc_INDEX_...), and the calls to them.
    auto isStep = [](const llvm::Function &fn) {
      return !fn.isDeclaration() && fn.hasInternalLinkage() && fn.getName().starts_with("gradc_") &&
             !fn.getName().starts_with("gradc_matmul") && !fn.getName().contains("_steps_") &&
             !fn.getName().contains("_offsets_");
    };
    int defined = 0, calls = 0, chunks = 0, fills = 0;
    size_t mostStores = 0;  // the most stores in the entry or one function filling the table
    for (llvm::Function &fn : *mod) {
      if (isStep(fn)) ++defined;
      if (fn.getName().contains("_steps_")) ++chunks;
      if (fn.getName().contains("_offsets_")) ++fills;
      size_t stores = 0;
      for (llvm::BasicBlock &bb : fn)
        for (llvm::Instruction &inst : bb) {
          if (auto *call = llvm::dyn_cast<llvm::CallInst>(&inst))
            if (call->getCalledFunction() && isStep(*call->getCalledFunction())) ++calls;
          if (llvm::isa<llvm::StoreInst>(inst)) ++stores;
        }
      if (fn.getName().contains("_offsets_") || (!fn.isDeclaration() && fn.hasExternalLinkage()))
        mostStores = std::max(mostStores, stores);
    }
    CAPTURE(defined);
    CAPTURE(calls);
    // Layers 2-16, 18-24, 26-27 and 29-30 reuse the functions of 1, 17, 25 and 28 (forward,
    // input gradient, weight update): at least 3 x 26 = 78 fewer than one function per call.
    CHECK(calls - defined >= 78);
    CHECK(calls > 128);
    CHECK(chunks == (calls + 127) / 128);
    // The regions' offset table is filled by functions of at most 128 stores each (thousands
    // in one block made LLVM's instruction scheduler quadratic in them).
    CHECK(fills >= 1);
    CAPTURE(mostStores);
    CHECK(mostStores <= 128);
  }
  // And what is shared computes what the interpreter computes, slope by slope.
  checkAgainstInterpreter(step, false, {-1, 1, 24}, {1, 7, 32});
}

namespace {

// The training step of a model given as text.
Function stepOf(const std::string &text) {
  std::filesystem::path path = std::filesystem::temp_directory_path() / fmt::format("gradc_step_{}.grad", getpid());
  std::ofstream(path) << text;
  SourceManager sm;
  Model m = loadModel(sm, path.string());
  std::filesystem::remove(path);
  return passes::simplify(autodiff::buildStep(m, passes::simplify(autodiff::differentiate(m.forward))));
}

}  // namespace

TEST_CASE("codegen: a weight's update run inside the product that reads it gives the same bits") {
  // W2 (590 x 520 floats, 1.2 MB) is read by d.h1 = d @ W2^T a column panel at a time, and
  // updated by the tiles of h1^T @ d after each panel (MemoryPlan.cpp, interleaveUpdates).
  // 590 rows: 9.2 panels of 64, the last masked, and 590 = 98 * 6 + 2 (the last tile
  // overlaps); 520 columns: the update's last panel masked. Against the same step with every
  // loop on its own: each element is the same sum, so every result is the same bit for bit,
  // with 1, 2 and 3 threads (2: the product split, each part updating the rows its panels
  // read; 3: too few panels to split; by default only one thread interleaves), at batches of one tile, several, and over 1,024 (the
  // update's sum over the batch in blocks). With the size limit at 0, W3 (520 x 7) is
  // interleaved too. The second model reads one weight twice (h2 and h3): its update adds
  // two products and is not interleaved. Under AddressSanitizer, the models after the first
  // run one setting (every weight interleaved, 2 threads; Sanitized.h).
  const std::string head = "dim B\ninput x: [B, 40]\ninput y: int[B]\n"
                           "param W1: [40, 590] = he\nparam b1: [590] = zeros\n";
  const std::string mlp = head +
                          "param W2: [590, 520] = he\nparam b2: [520] = zeros\n"
                          "param W3: [520, 7] = glorot\nparam b3: [7] = zeros\n"
                          "h1 = relu(x @ W1 + b1)\nh2 = tanh(h1 @ W2 + b2)\nz = h2 @ W3 + b3\n";
  const std::string shared = head +
                             "param W: [590, 590] = he\nparam W3: [590, 7] = glorot\n"
                             "h1 = relu(x @ W1 + b1)\nh2 = relu(h1 @ W)\nh3 = tanh(h2 @ W)\nz = h3 @ W3\n";
  struct Case {
    std::string text;
    bool f64;
  };
  std::vector<Case> cases;
  for (const char *opt : {"adam(lr = 0.01)", "sgd(lr = 0.1, momentum = 0.9)", "sgd(lr = 0.1)"})
    cases.push_back({mlp + "minimize cross_entropy(z, y) with " + opt + "\n", false});
  cases.push_back({mlp + "minimize cross_entropy(z, y) with adam(lr = 0.01)\n", true});
  cases.push_back({shared + "minimize cross_entropy(z, y) with adam(lr = 0.01)\n", false});
  // Two hidden layers of the same shapes: their interleaved pairs are one function.
  cases.push_back({head +
                       "param W2: [590, 590] = he\nparam W3: [590, 590] = he\nparam W4: [590, 7] = glorot\n"
                       "h1 = relu(x @ W1 + b1)\nh2 = relu(h1 @ W2)\nh3 = relu(h2 @ W3)\nz = h3 @ W4\n"
                       "minimize cross_entropy(z, y) with sgd(lr = 0.1, momentum = 0.9)\n",
                   false});
  for (size_t c = 0; c < cases.size(); ++c) {
    CAPTURE(c);
    Function step = stepOf(cases[c].text);
    codegen::CodegenOptions separate;
    separate.f64 = cases[c].f64;
    separate.interleaveMinBytes = -1;
    CHECK(codegen::printLoopPlan(step, separate, nullptr).find("interleaved") == std::string::npos);
    rt::Kernel ref = codegen::jitCompile(step, separate);
    codegen::CodegenOptions two = separate;
    two.interleaveMinBytes = 0;
    two.threads = 2;
    CHECK(codegen::printLoopPlan(step, two, nullptr).find("interleaved") == std::string::npos);
    if (c == 0) {
      // Check mode: the same numbers, and no NaN flagged; a NaN in W2's state is flagged.
      codegen::CodegenOptions checked = separate;
      checked.interleaveMinBytes = 0;
      checked.checkNumerics = true;
      CHECK(codegen::printLoopPlan(step, checked, nullptr).find("interleaved") != std::string::npos);
      rt::Kernel k = codegen::jitCompile(step, checked);
      std::mt19937 rng(5);
      int64_t dims[1] = {64};
      for (bool poison : {false, true}) {
        CAPTURE(poison);
        Slots a = makeSlots(ref.sig, dims, false, rng, {0, 1, 7});  // v >= 0: sqrt(v) is a number
        for (size_t j = 0; j < ref.sig.slots.size(); ++j)
          if (poison && ref.sig.slots[j].name == "W2.v") a.f32[j][12345] = NAN;
        Slots b = cloneSlots(a);
        AlignedWork w1(ref.workBytes(dims)), w2(k.workBytes(dims));
        ref.call(a.ptrs.data(), dims, w1.p);
        k.call(b.ptrs.data(), dims, w2.p);
        if (!poison) checkSameBits(ref.sig, a, b);
        float flag = 0;
        std::memcpy(&flag, static_cast<char *>(w2.p) + k.numericsFlag, sizeof flag);
        CHECK(std::isnan(flag) == poison);
      }
    }
    for (int64_t minBytes : {int64_t{1} << 20, int64_t{0}}) {
      for (int threads : {1, 2, 3}) {
        if (threads == 3 && c > 0) continue;
        if (gradc::testing::kSanitized && c > 0 && (minBytes != 0 || threads != 2)) continue;
        CAPTURE(minBytes);
        CAPTURE(threads);
        codegen::CodegenOptions o = separate;
        o.interleaveMinBytes = minBytes;
        o.interleaveThreads = true;
        o.threads = threads;
        o.verifyStepReuse = true;
        std::string plan = codegen::printLoopPlan(step, o, nullptr);
        // The shared weight's update adds two products, one of them stored: it has no
        // product of its own to interleave (W3 has, at any size).
        CHECK((plan.find("interleaved") != std::string::npos) == (c != 4 || minBytes == 0));
        if (c == 5) {
          // Both hidden layers' pairs (the second pair's function is the first's, checked
          // by verifyStepReuse).
          CHECK(plan.find("rows of %W2") != std::string::npos);
          CHECK(plan.find("rows of %W3") != std::string::npos);
        }
        rt::Kernel k = codegen::jitCompile(step, o);
        std::mt19937 rng(11);
        for (int64_t batch : {6, 64, 1100}) {
          CAPTURE(batch);
          checkSameSteps(ref, k, batch, cases[c].f64, rng, {-1, 1, 7});
        }
      }
    }
  }
}

TEST_CASE("codegen: a product that reads the weight other than as its B is not interleaved") {
  // W @ W^T reads W as B^T a column panel at a time, but also as A, every row for every
  // panel; P @ W^T + W reads W element-wise. Interleaving W's update there would let the
  // later panels read rows already updated (V's update, which reads the product, differed
  // from the 65th column on). Only d.h = d @ W^T may take W's update; each result is the
  // same bit for bit as with every loop on its own.
  const std::string head = "dim B\ninput x: [B, 40]\ninput y: [B, 590]\nparam W1: [40, 590] = he\n"
                           "param W: [590, 590] = normal(0, 0.05)\nparam V: [590, 590] = zeros\n"
                           "param P: [590, 590] = normal(0, 0.05)\nh = relu(x @ W1)\n";
  const std::string tail = "minimize mean(square(h @ W - y)) + mean(V * stop_gradient(g)) + mean(P) with sgd(lr = 0.5)\n";
  for (std::string g : {"g = tanh(W @ transpose(W))\n", "g = tanh(P @ transpose(W) + W)\n"}) {
    CAPTURE(g);
    Function step = stepOf(head + g + tail);
    codegen::CodegenOptions separate;
    separate.interleaveMinBytes = -1;
    rt::Kernel ref = codegen::jitCompile(step, separate);
    codegen::CodegenOptions o;
    o.threads = 1;
    std::string plan = codegen::printLoopPlan(step, o, nullptr);
    // The one interleaved pair: W's update in the loop of d.h.
    size_t at = plan.find(" is interleaved in this one: its tiles over each column panel's rows of %W,");
    REQUIRE(at != std::string::npos);
    CHECK(plan.find(" is interleaved in this one", at + 1) == std::string::npos);
    size_t e = plan.rfind('\n', at), s = plan.rfind('\n', e - 1);
    CHECK(plan.substr(s + 1, e - s - 1).find("%d.h = matmul(") != std::string::npos);
    rt::Kernel k = codegen::jitCompile(step, o);
    std::mt19937 rng(3);
    checkSameSteps(ref, k, 7, false, rng, {-1, 1, 7});
  }
}
