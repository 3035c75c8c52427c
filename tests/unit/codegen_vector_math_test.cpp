// Float exp, log, tanh, sigmoid, softplus (log1p), sin, cos and pow in compiled loops: on
// x86-64 Linux they are vectorised with glibc's libmvec (Target.h), elsewhere or with
// CodegenOptions::vectorMath off they call libm per element. Either way every value must be
// within 4 ulp of the exact one (computed in double), and the special values (0, -0, inf,
// NaN, overflow, underflow, the ends of each domain) must come out as libm gives them.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "codegen/Codegen.h"
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
      {"sigmoid", Op::Sigmoid, [](double x, double) { return 1 / (1 + std::exp(-x)); }},
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
                            89.0f, -87.0f, -104.0f, 200.0f, -200.0f, 0.5f, 2.0f, 1e30f, 0.999f, 1.001f};
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
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
  for (const char *name : {"expf", "logf", "tanhf", "log1pf", "sinf", "cosf", "powf"}) {
    CAPTURE(name);
    CHECK(vec.find(std::string("v_") + name + "(") != std::string::npos);
  }
#endif
}
