// Reverse mode and the simplifier on every example model: the raw gradient agrees with
// central differences of the forward loss (float64, a sample of elements of each param),
// the simplified gradient computes the same numbers, and it holds no dead value.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "autodiff/ReverseMode.h"
#include "frontend/Frontend.h"
#include "interp/Interpreter.h"
#include "passes/Simplify.h"

using namespace gradc;
using namespace gradc::ir;
using gradc::interp::Tensor;

namespace {

std::filesystem::path examples() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "examples";
}

std::vector<Tensor> randomArgs(const Model &m, const Function &f, const std::vector<int64_t> &dims,
                               std::mt19937_64 &rng) {
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  std::vector<Tensor> args;
  for (ValueId v : f.arguments()) {
    const Node &n = f.node(v);
    Tensor t;
    for (const Dim &d : n.shape) t.shape.push_back(d.eval(dims));
    int64_t count = 1;
    for (int64_t s : t.shape) count *= s;
    t.isInt = n.dtype == DType::I32;
    int64_t classes = 2;
    for (const InputInfo &in : m.inputs)
      if (in.name == n.name && in.classes > 0) classes = in.classes;
    for (int64_t i = 0; i < count; ++i)
      t.data.push_back(t.isInt ? static_cast<double>(rng() % static_cast<uint64_t>(classes)) : u(rng));
    args.push_back(std::move(t));
  }
  return args;
}

}  // namespace

TEST_CASE("every example: gradient = finite differences; simplified = raw; nothing dead") {
  int models = 0;
  for (const auto &entry : std::filesystem::directory_iterator(examples())) {
    if (entry.path().extension() != ".grad") continue;
    std::string file = entry.path().filename().string();
    CAPTURE(file);
    SourceManager sm;
    Model m = loadModel(sm, entry.path().string());
    const Function &f = m.forward;
    Function g = autodiff::differentiate(f);
    Function o = passes::simplify(g);
    ++models;

    std::vector<bool> used(static_cast<size_t>(o.size()), false);
    for (const Result &r : o.results) used[static_cast<size_t>(r.value)] = true;
    for (ValueId v = o.size() - 1; v >= 0; --v)
      for (ValueId x : o.node(v).operands)
        if (used[static_cast<size_t>(v)]) used[static_cast<size_t>(x)] = true;
    for (ValueId v = 0; v < o.size(); ++v)
      if (!isLeaf(o.node(v).op) || o.node(v).op == Op::Const) CHECK(used[static_cast<size_t>(v)]);
    CHECK(o.size() < g.size());

    std::mt19937_64 rng(7);
    std::vector<int64_t> dims(f.dimNames.size(), 4);
    std::vector<Tensor> args = randomArgs(m, f, dims, rng);
    std::vector<Tensor> raw = interp::interpret(g, args, dims, false);
    std::vector<Tensor> opt = interp::interpret(o, args, dims, false);
    REQUIRE(raw.size() == opt.size());
    std::vector<ValueId> argIds = f.arguments();
    for (size_t r = 0; r < g.results.size(); ++r) {
      CAPTURE(g.results[r].name);
      for (size_t i = 0; i < raw[r].data.size(); ++i)
        CHECK(std::fabs(raw[r].data[i] - opt[r].data[i]) <= 1e-12 * std::max(1.0, std::fabs(raw[r].data[i])));
      if (g.results[r].kind != ResultKind::Grad) continue;
      size_t a = 0;
      while (f.node(argIds[a]).op != Op::Param || f.node(argIds[a]).name != g.results[r].name) ++a;
      std::vector<double> &x = args[a].data;
      for (int s = 0; s < 12; ++s) {
        size_t i = static_cast<size_t>(rng() % x.size());
        double x0 = x[i], h = 1e-6;
        x[i] = x0 + h;
        double up = interp::interpret(f, args, dims, false)[0].data[0];
        x[i] = x0 - h;
        double down = interp::interpret(f, args, dims, false)[0].data[0];
        x[i] = x0;
        double fd = (up - down) / (2 * h);
        CHECK(std::fabs(fd - raw[r].data[i]) <= 1e-6 * std::max({1e-2, std::fabs(fd)}));
      }
    }
  }
  CHECK(models >= 6);
}
