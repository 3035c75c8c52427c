// Reverse mode against central finite differences, op by op, in float64.
//
// For every op of Ops.def: a leaf or an op that stops gradients needs nothing; every other
// op must have a gradient rule AND at least one case below, so adding an op to the table
// without a rule (or without a test) fails here. Each case builds a tiny forward function
// y = op(params...), takes loss = sum(y * w) for a random input w of y's shape, and compares
// the gradient of every param from differentiate() (raw and simplified) with central
// differences. Inputs are drawn away from kinks. Then the same for the gradient function
// differentiated once more (loss2 = sum(grad * w2)), which checks that the gradient is
// ordinary, differentiable IR.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>

#include "autodiff/ReverseMode.h"
#include "interp/Interpreter.h"
#include "ir/Builder.h"
#include "ir/Printer.h"
#include "passes/Simplify.h"

using namespace gradc;
using namespace gradc::ir;
using gradc::interp::Tensor;

namespace {

Dim D(int64_t n) { return Dim::fixed(n); }
const Dim kB = Dim::sym(0);
constexpr int64_t kBatch = 3;  // the value of the symbolic dim B

enum class Domain { Any, Positive, AwayFromZero };

struct ParamSpec {
  Shape shape;
  Domain domain = Domain::Any;
};

struct Case {
  std::string label;
  std::vector<ParamSpec> params;
  // Builds y from the params (and may add inputs of its own, filled at random).
  std::function<ValueId(Builder &, const std::vector<ValueId> &)> build;
};

std::vector<int64_t> concrete(const Shape &s) {
  std::vector<int64_t> out;
  for (const Dim &d : s) out.push_back(d.eval({kBatch}));
  return out;
}

Tensor randomTensor(const Shape &s, Domain dom, std::mt19937_64 &rng) {
  Tensor t;
  t.shape = concrete(s);
  std::uniform_real_distribution<double> u(-1.5, 1.5), pos(0.5, 2.0), mag(0.2, 1.5);
  std::bernoulli_distribution coin;
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  for (int64_t i = 0; i < n; ++i) {
    double v = dom == Domain::Any ? u(rng) : dom == Domain::Positive ? pos(rng) : mag(rng) * (coin(rng) ? 1 : -1);
    t.data.push_back(v);
  }
  return t;
}

// Appends loss = sum(y * w) with w a fresh input of y's shape.
void addLoss(Function &f, ValueId y) {
  Builder b(f);
  ValueId w = b.input("w" + std::to_string(f.size()), DType::F32, f.node(y).shape);
  ValueId loss = b.reduce(Op::Sum, b.mul(y, w), (1u << f.node(y).shape.size()) - 1, false);
  f.results.push_back({"loss", loss, ResultKind::Loss});
}

std::vector<Tensor> randomArgs(const Function &f, const std::map<std::string, Domain> &domains,
                               std::mt19937_64 &rng) {
  std::vector<Tensor> args;
  for (ValueId v : f.arguments()) {
    const Node &n = f.node(v);
    auto it = domains.find(n.name);
    Tensor t = randomTensor(n.shape, it == domains.end() ? Domain::Any : it->second, rng);
    if (n.dtype == DType::I32 || n.name.rfind("c", 0) == 0)  // labels and conditions: 0/1
      for (double &x : t.data) x = x > 0 ? 1 : 0;
    t.isInt = n.dtype == DType::I32;
    args.push_back(std::move(t));
  }
  return args;
}

double lossOf(const Function &f, const std::vector<Tensor> &args) {
  return interp::interpret(f, args, {kBatch}, false).at(0).data.at(0);
}

// Worst relative error (floor 1e-2 on the magnitude) of grad `g` against central
// differences of the loss of `f`, over every element of every param.
double worstError(const Function &f, const Function &g, std::vector<Tensor> args) {
  std::vector<Tensor> got = interp::interpret(g, args, {kBatch}, false);
  std::vector<ValueId> argIds = f.arguments();
  double worst = 0;
  size_t gi = 0;
  for (size_t a = 0; a < argIds.size(); ++a) {
    if (f.node(argIds[a]).op != Op::Param) continue;
    ++gi;
    const std::string &name = f.node(argIds[a]).name;
    size_t ri = 0;
    while (g.results[ri].kind != ResultKind::Grad || g.results[ri].name != name) ++ri;
    const Tensor &grad = got[ri];
    REQUIRE(grad.data.size() == args[a].data.size());
    for (size_t i = 0; i < args[a].data.size(); ++i) {
      double x0 = args[a].data[i], h = 1e-6 * std::max(1.0, std::fabs(x0));
      args[a].data[i] = x0 + h;
      double up = lossOf(f, args);
      args[a].data[i] = x0 - h;
      double down = lossOf(f, args);
      args[a].data[i] = x0;
      double fd = (up - down) / (2 * h);
      double err = std::fabs(fd - grad.data[i]) / std::max({1e-2, std::fabs(fd), std::fabs(grad.data[i])});
      worst = std::max(worst, err);
    }
  }
  (void)gi;
  return worst;
}

// The gradient function with a second loss, sum over params of sum(grad * w2), so that it
// can be differentiated again.
Function secondOrder(const Function &g) {
  Function h = g;
  Builder b(h);
  ValueId total = kNoValue;
  for (const Result &r : g.results) {
    if (r.kind != ResultKind::Grad) continue;
    const Shape s = h.node(r.value).shape;
    ValueId w = b.input("w2" + r.name, DType::F32, s);
    ValueId part = b.reduce(Op::Sum, b.mul(r.value, w), (1u << s.size()) - 1, false);
    total = total == kNoValue ? part : b.add(total, part);
  }
  h.results.clear();
  h.results.push_back({"loss", total, ResultKind::Loss});
  verify(h);
  return h;
}

ValueId unaryOp(Builder &b, Op op, ValueId x) { return b.unary(op, x, op == Op::LeakyRelu ? 0.1 : 0); }

std::vector<Case> casesFor(Op op) {
  using P = std::vector<ValueId>;
  Shape m34 = {D(3), D(4)};
  std::vector<Case> cs;
  switch (opKind(op)) {
  case OpKind::Unary: {
    Domain d = Domain::Any;
    if (op == Op::Log || op == Op::Sqrt) d = Domain::Positive;
    if (op == Op::Abs || op == Op::Relu || op == Op::LeakyRelu) d = Domain::AwayFromZero;
    cs.push_back({"[3,4]", {{m34, d}}, [op](Builder &b, const P &p) { return unaryOp(b, op, p[0]); }});
    cs.push_back({"scalar", {{{}, d}}, [op](Builder &b, const P &p) { return unaryOp(b, op, p[0]); }});
    break;
  }
  case OpKind::Binary: {
    Domain da = op == Op::Pow ? Domain::Positive : Domain::Any;
    Domain db = op == Op::Div ? Domain::AwayFromZero : Domain::Any;
    auto bin = [op](Builder &b, const P &p) { return b.binary(op, p[0], p[1]); };
    cs.push_back({"[3,4] and [3,4]", {{m34, da}, {m34, db}}, bin});
    cs.push_back({"[3,4] and [4]", {{m34, da}, {{D(4)}, db}}, bin});
    cs.push_back({"[3,1] and [1,4]", {{{D(3), D(1)}, da}, {{D(1), D(4)}, db}}, bin});
    cs.push_back({"[] and [3,4]", {{{}, da}, {m34, db}}, bin});
    break;
  }
  case OpKind::Ternary:
    cs.push_back({"where [3,4] [3,4] [4]", {{m34}, {{D(4)}}}, [](Builder &b, const P &p) {
                    ValueId c = b.input("c", DType::F32, {D(3), D(4)});
                    return b.where(c, p[0], p[1]);
                  }});
    cs.push_back({"where [3,1] [] [1,4]", {{{}}, {{D(1), D(4)}}}, [](Builder &b, const P &p) {
                    ValueId c = b.input("c", DType::F32, {D(3), D(1)});
                    return b.where(c, p[0], p[1]);
                  }});
    break;
  case OpKind::Reduce: {
    Shape s = {D(3), D(4), D(2)};
    for (uint32_t axes : {1u, 2u, 5u, 7u})
      for (bool keep : {false, true})
        cs.push_back({fmt::format("axes {} keepdims {}", axes, keep), {{s}},
                      [op, axes, keep](Builder &b, const P &p) { return b.reduce(op, p[0], axes, keep); }});
    cs.push_back({"over the batch dim B", {{{D(4)}}}, [op](Builder &b, const P &p) {
                    ValueId x = b.input("x", DType::F32, {kB, D(4)});
                    return b.reduce(op, b.mul(x, p[0]), 1u, false);
                  }});
    break;
  }
  case OpKind::Row:
    for (int axis : {0, 1})
      cs.push_back({fmt::format("axis {}", axis), {{m34}},
                    [op, axis](Builder &b, const P &p) { return b.row(op, p[0], axis); }});
    break;
  case OpKind::Layout:
    if (op == Op::Transpose)
      cs.push_back({"[3,4]", {{m34}}, [](Builder &b, const P &p) { return b.transpose(p[0]); }});
    if (op == Op::Reshape) {
      cs.push_back({"[3,4] to [2,6]", {{m34}}, [](Builder &b, const P &p) { return b.reshape(p[0], {D(2), D(6)}); }});
      cs.push_back({"[3,4] to [12,1]", {{m34}}, [](Builder &b, const P &p) { return b.reshape(p[0], {D(12), D(1)}); }});
    }
    if (op == Op::Broadcast) {
      cs.push_back({"[4] to [3,4]", {{{D(4)}}}, [](Builder &b, const P &p) { return b.broadcast(p[0], {D(3), D(4)}); }});
      cs.push_back({"[3,1] to [2,3,4]", {{{D(3), D(1)}}}, [](Builder &b, const P &p) { return b.broadcast(p[0], {D(2), D(3), D(4)}); }});
      cs.push_back({"[] to [B,4]", {{{}}}, [](Builder &b, const P &p) { return b.broadcast(p[0], {kB, D(4)}); }});
    }
    break;
  case OpKind::Special:
    if (op == Op::MatMul)
      for (int flags = 0; flags < 4; ++flags) {
        bool ta = flags & 1, tb = flags & 2;
        Shape a = ta ? Shape{D(4), D(3)} : Shape{D(3), D(4)};
        Shape bs = tb ? Shape{D(5), D(4)} : Shape{D(4), D(5)};
        cs.push_back({fmt::format("transA {} transB {}", ta, tb), {{a}, {bs}},
                      [ta, tb](Builder &b, const P &p) { return b.matmul(p[0], p[1], ta, tb); }});
      }
    break;
  default:
    break;
  }
  return cs;
}

}  // namespace

TEST_CASE("autodiff: every op is a leaf, stops gradients, or has a rule") {
  for (int i = 0; i < kNumOps; ++i) {
    Op op = static_cast<Op>(i);
    CAPTURE(opName(op));
    CHECK(autodiff::gradKind(op) != autodiff::GradKind::Missing);
  }
  CHECK(autodiff::gradKind(Op::Param) == autodiff::GradKind::Leaf);
  CHECK(autodiff::gradKind(Op::StopGradient) == autodiff::GradKind::NoGradient);
  CHECK(autodiff::gradKind(Op::Lt) == autodiff::GradKind::NoGradient);
  CHECK(autodiff::gradKind(Op::MatMul) == autodiff::GradKind::Differentiable);
}

TEST_CASE("autodiff: reverse mode equals central differences for every differentiable op") {
  std::mt19937_64 rng(42);
  int checked = 0;
  for (int i = 0; i < kNumOps; ++i) {
    Op op = static_cast<Op>(i);
    if (autodiff::gradKind(op) != autodiff::GradKind::Differentiable) continue;
    std::vector<Case> cs = casesFor(op);
    CAPTURE(opName(op));
    REQUIRE_MESSAGE(!cs.empty(), "no finite-difference case for op ", opName(op));
    for (const Case &c : cs) {
      CAPTURE(c.label);
      Function f;
      f.name = opName(op);
      f.dimNames = {"B"};
      Builder b(f);
      std::vector<ValueId> ps;
      std::map<std::string, Domain> domains;
      for (size_t k = 0; k < c.params.size(); ++k) {
        std::string name = std::string(1, static_cast<char>('p' + k));
        ps.push_back(b.param(name, c.params[k].shape));
        domains[name] = c.params[k].domain;
      }
      addLoss(f, c.build(b, ps));
      verify(f);
      std::vector<Tensor> args = randomArgs(f, domains, rng);

      Function g = autodiff::differentiate(f);
      CHECK(worstError(f, g, args) <= 1e-6);
      Function o = passes::simplify(g);
      CHECK(worstError(f, o, args) <= 1e-6);

      Function h = secondOrder(g);
      Function hg = autodiff::differentiate(h);
      std::vector<Tensor> args2 = randomArgs(h, domains, rng);
      for (size_t a = 0; a < args.size(); ++a) args2[a] = args[a];
      CHECK(worstError(h, hg, args2) <= 1e-6);
      CHECK(worstError(h, passes::simplify(hg), args2) <= 1e-6);
      ++checked;
    }
  }
  CHECK(checked > 60);
}
