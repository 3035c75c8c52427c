// The update function of data-parallel training (autodiff::buildUpdate): its arguments and
// results, and that gradient function + update give the fused step's params bit for bit
// (both come from one optimiser lowering), for every optimiser, run by the interpreter.
#include <doctest/doctest.h>

#include <map>

#include "autodiff/ReverseMode.h"
#include "autodiff/Step.h"
#include "interp/Interpreter.h"
#include "ir/Builder.h"
#include "passes/Simplify.h"

using namespace gradc;
using namespace gradc::ir;

namespace {

// loss = mean((x @ W + b - y)^2) over 4 rows of 3 features.
Function forward() {
  Function f;
  f.name = "linreg";
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::fixed(4), Dim::fixed(3)});
  ValueId y = b.input("y", DType::F32, {Dim::fixed(4), Dim::fixed(1)});
  ValueId w = b.param("W", {Dim::fixed(3), Dim::fixed(1)});
  ValueId bias = b.param("b", {Dim::fixed(1)});
  ValueId r = b.sub(b.add(b.matmul(x, w), bias), y);
  f.results = {{"loss", b.reduce(Op::Mean, b.unary(Op::Square, r), 3u, false), ResultKind::Loss}};
  verify(f);
  return f;
}

Model model(const std::string &kind, const std::map<std::string, double> &args) {
  Model m;
  m.name = "linreg";
  m.params = {{"W", {Dim::fixed(3), Dim::fixed(1)}, InitKind::Zeros, {}, {}},
              {"b", {Dim::fixed(1)}, InitKind::Zeros, {}, {}}};
  m.optimizer.kind = kind;
  m.optimizer.args = optimizerDefaults(kind);
  for (auto &[k, v] : args) m.optimizer.args[k] = v;
  return m;
}

// One float buffer per slot of a kernel, and the pointer array to call it with.
struct Buffers {
  explicit Buffers(const rt::Kernel &k) : k(k) {
    for (const rt::Slot &s : k.sig.slots) buf.emplace_back(static_cast<size_t>(s.elements(nullptr)), 0.0f);
    for (auto &v : buf) ptrs.push_back(v.data());
  }
  std::vector<float> &at(rt::SlotKind kind, const std::string &name) {
    int i = k.sig.find(kind, name);
    REQUIRE(i >= 0);
    return buf[static_cast<size_t>(i)];
  }
  void call() { k.call(ptrs.data(), nullptr, nullptr); }
  const rt::Kernel &k;
  std::vector<std::vector<float>> buf;
  std::vector<void *> ptrs;
};

}  // namespace

TEST_CASE("update: arguments are params, states, lr, t, then grad.NAME; results as in the step") {
  Model m = model("adam", {});
  Function u = autodiff::buildUpdate(m, passes::simplify(autodiff::differentiate(forward())));
  std::vector<std::string> args;
  for (ValueId v : u.arguments()) args.push_back(std::string(opName(u.node(v).op)) + " " + u.node(v).name);
  CHECK(args == std::vector<std::string>{"param W", "param b", "state W.m", "state W.v", "state b.m",
                                         "state b.v", "hyper lr", "hyper t", "input grad.W", "input grad.b"});
  std::vector<std::string> results;
  for (const Result &r : u.results) results.push_back(std::string(resultKindName(r.kind)) + " " + r.name);
  CHECK(results == std::vector<std::string>{"param W", "param b", "state W.m", "state W.v", "state b.m", "state b.v"});
  CHECK(u.node(u.findResult(ResultKind::NewParam, "W")).srcName == "W.new");
  CHECK(autodiff::gradInputName("W1") == "grad.W1");
}

TEST_CASE("update: gradient then update equals the fused step, bit for bit, for every optimiser") {
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 1.5f, 0.3f, -0.7f, -1.2f, 0.8f, 0.1f, 0.0f, -0.4f, 1.1f};
  const std::vector<float> y = {1.0f, -0.5f, 0.25f, 2.0f};
  const std::vector<std::pair<const char *, std::map<std::string, double>>> settings = {
      {"sgd", {{"lr", 0.05}}},
      {"sgd", {{"lr", 0.05}, {"momentum", 0.8}, {"dampening", 0.5}, {"weight_decay", 0.1}}},
      {"sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"nesterov", 1.0}}},
      {"adam", {{"lr", 0.1}, {"weight_decay", 0.1}}},
      {"adamw", {{"lr", 0.1}}},
      {"rmsprop", {{"lr", 0.01}, {"momentum", 0.9}}},
      {"adagrad", {{"lr", 0.1}}},
  };
  Function grad = passes::simplify(autodiff::differentiate(forward()));
  for (auto &[kind, args] : settings) {
    CAPTURE(kind);
    CAPTURE(args.size());
    Model m = model(kind, args);
    rt::Kernel stepK = interp::interpreterKernel(passes::simplify(autodiff::buildStep(m, grad)), false);
    rt::Kernel gradK = interp::interpreterKernel(grad, false);
    rt::Kernel updK = interp::interpreterKernel(passes::simplify(autodiff::buildUpdate(m, grad)), false);
    Buffers step(stepK), g(gradK), u(updK);
    step.at(rt::SlotKind::Input, "x") = g.at(rt::SlotKind::Input, "x") = x;
    step.at(rt::SlotKind::Input, "y") = g.at(rt::SlotKind::Input, "y") = y;
    step.at(rt::SlotKind::Param, "W") = u.at(rt::SlotKind::Param, "W") = {0.1f, -0.2f, 0.3f};
    step.at(rt::SlotKind::Param, "b") = u.at(rt::SlotKind::Param, "b") = {0.05f};
    step.at(rt::SlotKind::Hyper, "lr") = u.at(rt::SlotKind::Hyper, "lr") = {static_cast<float>(args.at("lr"))};
    for (int t = 1; t <= 10; ++t) {
      step.at(rt::SlotKind::Hyper, "t")[0] = u.at(rt::SlotKind::Hyper, "t")[0] = static_cast<float>(t);
      step.call();
      g.at(rt::SlotKind::Param, "W") = u.at(rt::SlotKind::Param, "W");
      g.at(rt::SlotKind::Param, "b") = u.at(rt::SlotKind::Param, "b");
      g.call();
      u.at(rt::SlotKind::Input, "grad.W") = g.at(rt::SlotKind::Grad, "W");
      u.at(rt::SlotKind::Input, "grad.b") = g.at(rt::SlotKind::Grad, "b");
      u.call();
    }
    CHECK(step.at(rt::SlotKind::Param, "W") == u.at(rt::SlotKind::Param, "W"));
    CHECK(step.at(rt::SlotKind::Param, "b") == u.at(rt::SlotKind::Param, "b"));
    CHECK(step.at(rt::SlotKind::Param, "W") != std::vector<float>{0.1f, -0.2f, 0.3f});
  }
}
