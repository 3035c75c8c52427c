// The fused step program against torch.optim: 20 full-batch steps of every optimiser on a
// small linear regression, run by the interpreter in float32 through the Kernel convention.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "autodiff/ReverseMode.h"
#include "autodiff/Step.h"
#include "interp/Interpreter.h"
#include "ir/Builder.h"
#include "ir/Printer.h"
#include "passes/Simplify.h"

using namespace gradc;
using namespace gradc::ir;

namespace {

const std::vector<float> kX = {0.5f, -1.0f, 2.0f, 1.5f, 0.3f, -0.7f, -1.2f, 0.8f, 0.1f, 0.0f, -0.4f, 1.1f};
const std::vector<float> kY = {1.0f, -0.5f, 0.25f, 2.0f};
const std::vector<float> kW0 = {0.1f, -0.2f, 0.3f};
const std::vector<float> kB0 = {0.05f};

// loss = mean((x @ W + b - y)^2) and its gradient, written out by hand:
//   dz = 2/4 (z - y);  dW = x^T dz;  db = sum(dz)
Function linregGrad() {
  Function g;
  g.name = "linreg";
  Builder b(g);
  ValueId x = b.input("x", DType::F32, {Dim::fixed(4), Dim::fixed(3)});
  ValueId y = b.input("y", DType::F32, {Dim::fixed(4), Dim::fixed(1)});
  ValueId w = b.param("W", {Dim::fixed(3), Dim::fixed(1)});
  ValueId bias = b.param("b", {Dim::fixed(1)});
  ValueId r = b.sub(b.add(b.matmul(x, w), bias), y);
  ValueId loss = b.reduce(Op::Mean, b.mul(r, r), 3u, false);
  ValueId dz = b.mul(r, b.constant(0.5));
  g.results = {{"loss", loss, ResultKind::Loss},
               {"W", b.matmul(x, dz, true), ResultKind::Grad},
               {"b", b.reduce(Op::Sum, dz, 1u, false), ResultKind::Grad}};
  verify(g);
  return g;
}

// The same loss as a forward function, for reverse mode to differentiate.
Function linregForward() {
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

Model linregModel(const std::string &kind, const std::map<std::string, double> &args) {
  Model m;
  m.name = "linreg";
  m.params = {{"W", {Dim::fixed(3), Dim::fixed(1)}, InitKind::Zeros, {}, {}},
              {"b", {Dim::fixed(1)}, InitKind::Zeros, {}, {}}};
  m.optimizer.kind = kind;
  m.optimizer.args = optimizerDefaults(kind);
  for (auto &[k, v] : args) m.optimizer.args[k] = v;
  return m;
}

struct Reference {
  const char *name, *kind;
  std::map<std::string, double> args;
  double loss;
  std::vector<double> w, b;
};

// Produced by `/usr/bin/python3 tests/torch/optim_reference.py` (torch 1.13, float32):
// the loss of step 20 and the params after its update.
const std::vector<Reference> kReferences = {
    {"sgd", "sgd", {{"lr", 0.05}}, 0.3282241225242615, {-0.18761815130710602, -0.2188686728477478, 0.5599339604377747}, {0.3224879801273346}},
    {"sgd_momentum", "sgd", {{"lr", 0.05}, {"momentum", 0.9}}, 0.3542255163192749, {-0.17329229414463043, -0.46186184883117676, 0.4976707994937897}, {0.4660516381263733}},
    {"sgd_dampening_wd", "sgd", {{"lr", 0.05}, {"momentum", 0.8}, {"dampening", 0.5}, {"weight_decay", 0.1}}, 0.3272946774959564, {-0.25119730830192566, -0.20204997062683105, 0.49593064188957214}, {0.3725273013114929}},
    {"sgd_nesterov", "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"nesterov", 1.0}, {"weight_decay", 0.01}}, 0.31397730112075806, {-0.26568296551704407, -0.41701218485832214, 0.4298953711986542}, {0.43137723207473755}},
    {"adam", "adam", {{"lr", 0.1}}, 0.3293488323688507, {-0.22341866791248322, -0.5660136342048645, 0.38522589206695557}, {0.43368157744407654}},
    {"adam_wd", "adam", {{"lr", 0.1}, {"beta1", 0.8}, {"beta2", 0.99}, {"eps", 1e-06}, {"weight_decay", 0.1}}, 0.31204360723495483, {-0.32938066124916077, -0.39104679226875305, 0.41219478845596313}, {0.4306963086128235}},
    {"adamw", "adamw", {{"lr", 0.1}, {"weight_decay", 0.1}}, 0.3243137001991272, {-0.24364298582077026, -0.5669295787811279, 0.3754064738750458}, {0.43590232729911804}},
    {"rmsprop", "rmsprop", {{"lr", 0.01}}, 0.3160426616668701, {-0.27335453033447266, -0.3340294361114502, 0.4856491684913635}, {0.3969244658946991}},
    {"rmsprop_momentum", "rmsprop", {{"lr", 0.01}, {"alpha", 0.9}, {"eps", 1e-06}, {"momentum", 0.9}}, 0.3198041021823883, {-0.21623718738555908, -0.39341962337493896, 0.3943411409854889}, {0.4291872978210449}},
    {"adagrad", "adagrad", {{"lr", 0.1}}, 0.3163638710975647, {-0.2711009383201599, -0.3292788565158844, 0.4887765347957611}, {0.3942415118217468}},
};

bool close(double a, double ref) { return std::fabs(a - ref) <= 2e-4 * std::fabs(ref) + 1e-7; }

}  // namespace

TEST_CASE("step: 20 steps of every optimiser match torch.optim (float32)") {
  bool byReverseMode = false;
  SUBCASE("gradient written by hand") {}
  SUBCASE("gradient from reverse mode and simplification") { byReverseMode = true; }
  Function grad = byReverseMode ? passes::simplify(autodiff::differentiate(linregForward())) : linregGrad();
  for (const Reference &ref : kReferences) {
    CAPTURE(ref.name);
    Model m = linregModel(ref.kind, ref.args);
    Function step = autodiff::buildStep(m, grad);
    rt::Kernel k = interp::interpreterKernel(step, /*f64=*/false);
    std::vector<std::vector<float>> buf;
    for (const rt::Slot &s : k.sig.slots) buf.emplace_back(static_cast<size_t>(s.elements(nullptr)), 0.0f);
    buf[static_cast<size_t>(k.sig.find(rt::SlotKind::Input, "x"))] = kX;
    buf[static_cast<size_t>(k.sig.find(rt::SlotKind::Input, "y"))] = kY;
    buf[static_cast<size_t>(k.sig.find(rt::SlotKind::Param, "W"))] = kW0;
    buf[static_cast<size_t>(k.sig.find(rt::SlotKind::Param, "b"))] = kB0;
    buf[static_cast<size_t>(k.sig.find(rt::SlotKind::Hyper, "lr"))] = {static_cast<float>(ref.args.at("lr"))};
    std::vector<void *> ptrs;
    for (auto &v : buf) ptrs.push_back(v.data());
    int tSlot = k.sig.find(rt::SlotKind::Hyper, "t");
    for (int t = 1; t <= 20; ++t) {
      buf[static_cast<size_t>(tSlot)][0] = static_cast<float>(t);
      k.call(ptrs.data(), nullptr, nullptr);
    }
    CHECK(close(buf[static_cast<size_t>(k.sig.find(rt::SlotKind::Loss, "loss"))][0], ref.loss));
    const auto &w = buf[static_cast<size_t>(k.sig.find(rt::SlotKind::Param, "W"))];
    for (size_t i = 0; i < 3; ++i) CHECK(close(w[i], ref.w[i]));
    CHECK(close(buf[static_cast<size_t>(k.sig.find(rt::SlotKind::Param, "b"))][0], ref.b[0]));
  }
}

TEST_CASE("step: arguments, results and names") {
  Model m = linregModel("adam", {});
  m.optimizer.loc = Loc{0, 7, 1};
  auto states = autodiff::optimizerStates(m);
  REQUIRE(states.size() == 4);
  CHECK(states[0].first == "W.m");
  CHECK(states[1].first == "W.v");
  CHECK(states[2].first == "b.m");
  CHECK(states[3].first == "b.v");
  Function step = autodiff::buildStep(m, linregGrad());
  std::vector<std::string> args;
  for (ValueId v : step.arguments()) args.push_back(std::string(opName(step.node(v).op)) + " " + step.node(v).name);
  CHECK(args == std::vector<std::string>{"input x", "input y", "param W", "param b", "state W.m", "state W.v",
                                         "state b.m", "state b.v", "hyper lr", "hyper t"});
  std::vector<std::string> results;
  for (const Result &r : step.results) results.push_back(std::string(resultKindName(r.kind)) + " " + r.name);
  CHECK(results == std::vector<std::string>{"loss loss", "param W", "param b", "state W.m", "state W.v",
                                            "state b.m", "state b.v"});
  const Node &newW = step.node(step.findResult(ResultKind::NewParam, "W"));
  CHECK(newW.srcName == "W.new");
  CHECK(newW.loc.line == 7);
  CHECK(step.node(step.findResult(ResultKind::NewState, "W.m")).srcName == "W.m.new");
  for (const char *kind : {"sgd", "rmsprop", "adagrad", "adamw"}) {
    CAPTURE(kind);
    Function other = autodiff::buildStep(linregModel(kind, {{"momentum", 0.5}}), linregGrad());
    CHECK(other.node(other.findResult(ResultKind::NewParam, "b")).srcName == "b.new");
  }
  std::string text = printFunction(step, nullptr);
  CHECK(text.find("%W.new = sub %W,") != std::string::npos);

  rt::Signature sig = interp::interpreterKernel(step, true).sig;
  REQUIRE(sig.slots.size() == 11);  // 10 arguments and the loss; params and states are in place
  CHECK(sig.slots.back().kind == rt::SlotKind::Loss);
}

TEST_CASE("step: plain sgd has no state; sgd with momentum keeps a buffer") {
  CHECK(autodiff::optimizerStates(linregModel("sgd", {})).empty());
  auto s = autodiff::optimizerStates(linregModel("sgd", {{"momentum", 0.9}}));
  REQUIRE(s.size() == 2);
  CHECK(s[0].first == "W.buf");
  CHECK(autodiff::optimizerStates(linregModel("rmsprop", {})).size() == 2);
  CHECK(autodiff::optimizerStates(linregModel("rmsprop", {{"momentum", 0.5}})).size() == 4);
  CHECK(autodiff::optimizerStates(linregModel("adagrad", {}))[1].first == "b.sq");
}
