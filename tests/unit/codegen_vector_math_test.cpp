// Float exp, log, tanh, sigmoid, softplus (log1p), sin, cos and pow in compiled loops: on
// x86-64 Linux they are vectorised with glibc's libmvec (Target.h), elsewhere or with
// CodegenOptions::vectorMath off they call libm per element. Either way every value must be
// within 4 ulp of the exact one (computed in double), and the special values (0, -0, inf,
// NaN, overflow, underflow, the ends of each domain) must come out as libm gives them.
// Also the row reductions of log_softmax and of a sum along the inner axis, which are
// vectorised (LowerToLLVM.cpp, sumStep): the IR reduces lane-wise, NaN and inf propagate.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "codegen/Codegen.h"
#include "codegen/Target.h"
#include "ir/Builder.h"

using namespace gradc;
using namespace gradc::ir;

namespace {

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Fn {
  const char *name;
  Op op;
  std::function<double(double, double)> exact;
  bool binary = false;
};

const std::vector<Fn> &functions() {
  static const std::vector<Fn> fns = {
      {"exp", Op::Exp, [](double x, double) { return std::exp(x); }},
      {"log", Op::Log, [](double x, double) { return std::log(x); }},
      {"tanh", Op::Tanh, [](double x, double) { return std::tanh(x); }},
      // (0 where PyTorch's float32 1 / (1 + exp(-x)) is 1 / inf: below -88.72, ir::sigmoidZeroBelow)
      {"sigmoid", Op::Sigmoid,
       [](double x, double) { return x < -sigmoidZeroBelow(false) ? 0 : 1 / (1 + std::exp(-x)); }},
      {"softplus", Op::Softplus, [](double x, double) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }},
      {"sin", Op::Sin, [](double x, double) { return std::sin(x); }},
      {"cos", Op::Cos, [](double x, double) { return std::cos(x); }},
      {"pow", Op::Pow, [](double x, double y) { return std::pow(x, y); }, true},
  };
  return fns;
}

// One element-wise result per function of the inputs x and y ([B] each).
Function program() {
  Function f;
  f.name = "vector_math";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::sym(0)}), y = b.input("y", DType::F32, {Dim::sym(0)});
  for (const Fn &fn : functions())
    f.results.push_back({fn.name, fn.binary ? b.binary(fn.op, x, y) : b.unary(fn.op, x), ResultKind::Output});
  verify(f);
  return f;
}

// The results of kernel k for inputs x and y, by function.
std::vector<std::vector<float>> run(const rt::Kernel &k, std::vector<float> x, std::vector<float> y) {
  int64_t batch = static_cast<int64_t>(x.size());
  std::vector<std::vector<float>> out(functions().size(), std::vector<float>(x.size(), -7.0f));
  std::vector<void *> ptrs = {x.data(), y.data()};
  for (auto &o : out) ptrs.push_back(o.data());
  REQUIRE(ptrs.size() == k.sig.slots.size());
  size_t bytes = k.workBytes(&batch);
  void *work = std::aligned_alloc(64, (bytes + 64) / 64 * 64);
  k.call(ptrs.data(), &batch, work);
  std::free(work);
  return out;
}

// Distance in units in the last place of float at `want`.
double ulps(float got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e9;
  if (std::isinf(want) || std::isinf(got)) return static_cast<double>(got) == static_cast<double>(static_cast<float>(want)) ? 0 : 1e9;
  int e = 0;
  std::frexp(static_cast<float>(want) == 0 ? std::numeric_limits<float>::min() : static_cast<float>(want), &e);
  double ulp = std::max(std::ldexp(1.0, e - 24), std::ldexp(1.0, -149));
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

// Inputs for a batch: the interesting values, then a sweep of each function's useful range.
void inputs(std::vector<float> &x, std::vector<float> &y) {
  const float specials[] = {0.0f, -0.0f, kInf, -kInf, kNaN, 1.0f, -1.0f, 1e-30f, -1e-30f, 1e-40f, 88.7f,
                            89.0f, -87.0f, -104.0f, 200.0f, -200.0f, 0.5f, 2.0f, 1e30f, 0.999f, 1.001f,
                            // the last float whose sigmoid is not 0, and the first whose is
                            -0x1.62e42ep+6f, -0x1.62e430p+6f, -95.0f};
  for (float s : specials)
    for (float t : {2.0f, 0.5f, -1.0f, 0.0f, 3.0f}) {
      x.push_back(s);
      y.push_back(t);
    }
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> wide(-30, 30), expo(-20, 20), pw(-4, 4);
  for (int i = 0; i < 3000; ++i) {
    float v = i % 3 == 0 ? wide(rng) : i % 3 == 1 ? std::exp2(expo(rng)) : -std::exp2(expo(rng)) / 8;
    x.push_back(v);
    y.push_back(pw(rng));
  }
}

void checkAccurate(const std::vector<std::vector<float>> &out, const std::vector<float> &x, const std::vector<float> &y) {
  for (size_t f = 0; f < functions().size(); ++f) {
    const Fn &fn = functions()[f];
    int bad = 0;
    for (size_t e = 0; e < x.size() && bad < 5; ++e) {
      double want = fn.exact(x[e], y[e]);
      // sin and cos of large arguments, and sin near a multiple of pi, are judged in absolute
      // terms (their value near 0 is a cancellation in any float implementation).
      bool absolute = (fn.op == Op::Sin || fn.op == Op::Cos) && std::fabs(want) < 1e-3;
      bool ok = absolute ? std::fabs(out[f][e] - want) <= 1e-7 : ulps(out[f][e], want) <= 4;
      if (!ok) {
        ++bad;
        FAIL_CHECK(std::string(fn.name) << "(" << x[e] << (fn.binary ? ", " + std::to_string(y[e]) : std::string()) << ") = "
                           << out[f][e] << ", exact " << want << " (" << ulps(out[f][e], want) << " ulp)");
      }
    }
  }
}

}  // namespace

TEST_CASE("vector math: exp, log, tanh, sigmoid, softplus, sin, cos and pow are within 4 ulp, specials exact") {
  Function f = program();
  std::vector<float> x, y;
  inputs(x, y);
  codegen::CodegenOptions libm;
  libm.vectorMath = false;
  rt::Kernel vec = codegen::jitCompile(f, {}), scalar = codegen::jitCompile(f, libm);
  for (size_t rows : {x.size(), size_t{3}, size_t{37}}) {
    CAPTURE(rows);
    std::vector<float> xs(x.begin(), x.begin() + static_cast<long>(rows)), ys(y.begin(), y.begin() + static_cast<long>(rows));
    checkAccurate(run(vec, xs, ys), xs, ys);
    checkAccurate(run(scalar, xs, ys), xs, ys);
  }
}

TEST_CASE("vector math: on x86-64 Linux the loops call libmvec, and not with vectorMath off or in float64") {
  Function f = program();
  std::string vec = codegen::emitLLVM(f, {});
  codegen::CodegenOptions libm;
  libm.vectorMath = false;
  codegen::CodegenOptions f64;
  f64.f64 = true;
  CHECK(codegen::emitLLVM(f, libm).find("@_ZGV") == std::string::npos);
  CHECK(codegen::emitLLVM(f, f64).find("@_ZGV") == std::string::npos);
#if defined(__x86_64__) && defined(__linux__)
  // (Without a libmvec of glibc 2.35 or later, the host's code does without it.)
  for (const char *name : {"expf", "logf", "tanhf", "log1pf", "sinf", "cosf", "powf"}) {
    CAPTURE(name);
    CHECK((vec.find(std::string("v_") + name + "(") != std::string::npos) == codegen::hostLibmvec().isValid());
  }
  CHECK(codegen::hostLibmvec().isValid());  // glibc 2.36 on Debian 12, the supported system
#endif
}

TEST_CASE("vector math: a row's sum and maximum are vectorised (log_softmax, sum over the inner axis)") {
  // 1000 classes: log_softmax = x - max - log(sum(exp(x - max))), and a plain row sum.
  const int64_t kCols = 1000;
  Function f;
  f.name = "rows";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::sym(0), Dim::fixed(kCols)});
  f.results = {{"log_softmax", b.row(Op::LogSoftmax, x, 1), ResultKind::Output},
               {"sum", b.reduce(Op::Sum, x, 2u, false), ResultKind::Output}};
  verify(f);
  std::string ir = codegen::emitLLVM(f, {});
  CHECK(ir.find("@llvm.vector.reduce.fadd") != std::string::npos);
  CHECK(ir.find("@llvm.vector.reduce.fmaximum") != std::string::npos);

  rt::Kernel k = codegen::jitCompile(f, {});
  int64_t rows = 5;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-20, 20);
  std::vector<float> in(static_cast<size_t>(rows * kCols));
  for (float &v : in) v = u(rng);
  in[3] = kNaN;                     // row 0: NaN everywhere in log_softmax, and the sum
  in[kCols + 7] = kInf;             // row 1: the maximum is inf
  std::vector<float> ls(in.size()), sum(static_cast<size_t>(rows));
  std::vector<void *> ptrs = {in.data(), ls.data(), sum.data()};
  size_t bytes = k.workBytes(&rows);
  void *work = std::aligned_alloc(64, (bytes + 64) / 64 * 64);
  k.call(ptrs.data(), &rows, work);
  std::free(work);
  CHECK(std::isnan(sum[0]));
  CHECK(std::isnan(ls[5]));
  CHECK(sum[1] == kInf);
  CHECK(ls[kCols + 7] != ls[kCols + 7]);  // inf - inf
  for (int64_t r = 2; r < rows; ++r) {
    double m = -INFINITY, s = 0, total = 0, magnitude = 0;
    for (int64_t c = 0; c < kCols; ++c) m = std::max(m, static_cast<double>(in[static_cast<size_t>(r * kCols + c)]));
    for (int64_t c = 0; c < kCols; ++c) {
      double v = in[static_cast<size_t>(r * kCols + c)];
      s += std::exp(v - m);
      total += v;
      magnitude += std::fabs(v);
    }
    CHECK(std::fabs(sum[static_cast<size_t>(r)] - total) <= 1e-6 * magnitude);
    for (int64_t c = 0; c < kCols; ++c) {
      double want = in[static_cast<size_t>(r * kCols + c)] - m - std::log(s);
      CHECK(std::fabs(ls[static_cast<size_t>(r * kCols + c)] - want) <= 1e-5 * (1 + std::fabs(want)));
    }
  }
}

TEST_CASE("vector math: an element's value does not depend on where the loop computes it") {
  // Equal inputs give equal outputs wherever they are: in the vector body, in the loop's
  // remainder (B = 17, 20, 33, 37 with 16, 8 or 4 lanes), alone (B = 1). libm and libmvec round
  // differently by an ulp or so; a remainder computed with libm broke the ties of max(exp(w))
  // over equal w, which must split the gradient evenly (docs/language.md, "Expressions").
  Function f = program();
  rt::Kernel k = codegen::jitCompile(f, {});
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-6, 6), pw(-3, 3);
  std::vector<std::pair<float, float>> values = {{1.0f, 2.0f}, {0.5f, 1.5f}, {-1.0f, 3.0f}, {2.0f, 0.5f}};
  for (int i = 0; i < 60; ++i) values.push_back({u(rng), pw(rng)});
  for (auto [v, w] : values) {
    std::vector<std::vector<float>> alone = run(k, {v}, {w});
    for (size_t rows : {size_t{5}, size_t{17}, size_t{20}, size_t{33}, size_t{37}}) {
      std::vector<std::vector<float>> out = run(k, std::vector<float>(rows, v), std::vector<float>(rows, w));
      for (size_t fn = 0; fn < functions().size(); ++fn)
        for (size_t e = 0; e < rows; ++e) {
          bool same = out[fn][e] == alone[fn][0] || (std::isnan(out[fn][e]) && std::isnan(alone[fn][0]));
          if (!same)
            FAIL_CHECK(std::string(functions()[fn].name) << std::setprecision(9) << "(" << v << ", " << w << ") at "
                                                         << e << " of " << rows << " = " << out[fn][e] << ", alone "
                                                         << alone[fn][0]);
        }
    }
  }
#if defined(__x86_64__) && defined(__linux__)
  // No float call of libm is left in the optimised IR: each goes to libmvec.
  std::string ir = codegen::emitLLVM(f, {});
  std::istringstream lines(ir);
  for (std::string line; std::getline(lines, line);)
    if (line.find(" call ") != std::string::npos)
      for (const char *scalar : {"@expf(", "@logf(", "@log1pf(", "@tanhf(", "@sinf(", "@cosf(", "@powf(", "@llvm.exp.f32(",
                                 "@llvm.log.f32(", "@llvm.sin.f32(", "@llvm.cos.f32(", "@llvm.pow.f32("})
        CHECK_MESSAGE(line.find(scalar) == std::string::npos, line);
#endif
}
