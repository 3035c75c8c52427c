// Reverse mode beyond single ops: the shape of the gradient function (results, names,
// places), what stops gradients, accumulation of values used twice, PyTorch's derivatives
// at kinks, and gradients that must stay finite (logsumexp of an all -inf row, cross
// entropy and bce_with_logits on huge logits).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

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
constexpr double kInf = std::numeric_limits<double>::infinity();

// One param p of `shape`; loss built by `build`; returns dloss/dp at `value` (and the
// gradient function through `out`, when given).
template <typename Build>
std::vector<double> gradAt(Shape shape, std::vector<double> value, Build build,
                           std::vector<Tensor> extra = {}, bool simplified = false) {
  Function f;
  f.name = "t";
  Builder b(f);
  ValueId p = b.param("p", shape);
  f.results = {{"loss", build(b, p), ResultKind::Loss}};
  verify(f);
  Function g = autodiff::differentiate(f);
  if (simplified) g = passes::simplify(g);
  Tensor t;
  for (const Dim &d : shape) t.shape.push_back(d.factor);
  t.data = std::move(value);
  std::vector<Tensor> args = {t};
  for (Tensor &e : extra) args.push_back(e);
  std::vector<Tensor> r = interp::interpret(g, args, {}, false);
  return r.at(1).data;
}

ValueId sumAll(Builder &b, ValueId v) {
  uint32_t rank = static_cast<uint32_t>(b.function().node(v).shape.size());
  return b.reduce(Op::Sum, v, (1u << rank) - 1, false);
}

// A hand-built xor model (examples/xor.grad, plus a param U and an output q), with places and
// source names as the front end sets them.
struct Xor {
  SourceManager sm;
  Function f;
  Xor() {
    int file = sm.addBuffer("xor.grad", std::string(20, '\n'));
    f.name = "xor";
    f.dimNames = {"B"};
    Builder b(f);
    auto at = [&](int line, const char *name) {
      b.loc = Loc{file, line, 1};
      b.srcName = name;
    };
    at(5, "");
    ValueId x = b.input("x", DType::F32, {Dim::sym(0), D(2)});
    at(6, "");
    ValueId y = b.input("y", DType::F32, {Dim::sym(0), D(1)});
    at(8, "");
    ValueId W1 = b.param("W1", {D(2), D(8)});
    at(9, "");
    ValueId b1 = b.param("b1", {D(8)});
    at(10, "");
    ValueId W2 = b.param("W2", {D(8), D(1)});
    at(11, "");
    ValueId b2 = b.param("b2", {D(1)});
    at(12, "");
    ValueId unused = b.param("U", {D(3)});
    (void)unused;
    at(13, "h");
    ValueId h = b.unary(Op::Tanh, b.add(b.matmul(x, W1), b1));
    at(14, "z");
    ValueId z = b.add(b.matmul(h, W2), b2);
    at(15, "loss");
    ValueId bce = b.sub(b.unary(Op::Softplus, z), b.mul(z, y));
    ValueId loss = b.reduce(Op::Mean, bce, 3u, false);
    at(16, "q");
    ValueId q = b.unary(Op::Exp, z);
    at(17, "p");
    ValueId p = b.unary(Op::Sigmoid, z);
    at(18, "accuracy");
    ValueId acc = b.reduce(Op::Mean, b.binary(Op::Eq, b.binary(Op::Gt, p, b.constant(0.5)), y), 3u, false);
    f.results = {{"loss", loss, ResultKind::Loss},
                 {"p", p, ResultKind::Output},
                 {"q", q, ResultKind::Output},
                 {"accuracy", acc, ResultKind::Metric}};
    verify(f);
  }
};

}  // namespace

TEST_CASE("gradient function: results, arguments, zero gradient of an unused param") {
  Xor m;
  Function g = autodiff::differentiate(m.f);
  verify(g);
  REQUIRE(g.results.size() == 7);
  CHECK(g.results[0].kind == ResultKind::Loss);
  CHECK(g.results[1].kind == ResultKind::Metric);
  CHECK(g.results[1].name == "accuracy");
  const char *order[] = {"W1", "b1", "W2", "b2", "U"};
  for (int i = 0; i < 5; ++i) {
    CHECK(g.results[static_cast<size_t>(2 + i)].kind == ResultKind::Grad);
    CHECK(g.results[static_cast<size_t>(2 + i)].name == order[i]);
  }
  CHECK(g.findResult(ResultKind::Output) == kNoValue);
  const Node &dU = g.node(g.findResult(ResultKind::Grad, "U"));
  CHECK(dU.op == Op::Const);
  CHECK(dU.value == 0);
  CHECK(dU.shape == Shape{D(3)});
  CHECK(g.arguments().size() == m.f.arguments().size());
}

TEST_CASE("gradient function: names and places, matmul with transposed operands") {
  Xor m;
  Function g = autodiff::differentiate(m.f);
  const Node &dW1 = g.node(g.findResult(ResultKind::Grad, "W1"));
  CHECK(dW1.op == Op::MatMul);
  CHECK(dW1.transA);
  CHECK(dW1.srcName == "d.W1");
  CHECK(dW1.loc.line == 8);
  Function o = passes::simplify(g);
  std::string text = printFunction(o, &m.sm);
  CAPTURE(text);
  CHECK(text.find("matmul %x^T, ") != std::string::npos);
  CHECK(text.find("matmul %h^T, ") != std::string::npos);
  CHECK(text.find(", %W2^T : f32[B,8]") != std::string::npos);
  CHECK(text.find("xor.grad:16") == std::string::npos);  // the output q is gone
  CHECK(text.find("%p = sigmoid %z") != std::string::npos);  // p: the metric needs it
  CHECK(text.find("sigmoid", text.find("sigmoid") + 1) == std::string::npos);  // one sigmoid
  for (const Node &n : o.nodes) {
    CAPTURE(opName(n.op));
    CHECK(n.loc.valid());
    if (n.srcName.rfind("d.", 0) == 0) CHECK(n.loc.line >= 8);
  }
  // Every gradient value names its line: the value of d.h is at line 13.
  for (const Node &n : o.nodes)
    if (n.srcName == "d.h") CHECK(n.loc.line == 13);
  verify(o);
}

TEST_CASE("stop_gradient, comparisons, argmax, onehot and casts stop gradients") {
  // loss = sum(stop_gradient(p) * p)  ->  dp = p
  auto g = gradAt({D(3)}, {1, -2, 3}, [](Builder &b, ValueId p) {
    return sumAll(b, b.mul(b.unary(Op::StopGradient, p), p));
  });
  CHECK(g == std::vector<double>{1, -2, 3});
  // loss = sum(onehot(argmax(p)) * p) + sum(p > 0) + sum(cast(argmax(p)))  ->  dp = onehot(argmax p)
  g = gradAt({D(1), D(3)}, {0.5, 2, -1}, [](Builder &b, ValueId p) {
    ValueId am = b.argmax(p, 1);
    ValueId l = sumAll(b, b.mul(b.onehot(am, 3), p));
    l = b.add(l, sumAll(b, b.binary(Op::Gt, p, b.constant(0))));
    return b.add(l, sumAll(b, b.unary(Op::Cast, am)));
  });
  CHECK(g == std::vector<double>{0, 1, 0});
  // where(p, a, b): the condition gets no gradient; sign has zero gradient
  g = gradAt({D(2)}, {1, 0}, [](Builder &b, ValueId p) {
    return b.add(sumAll(b, b.where(p, b.constant(2), b.constant(3))), sumAll(b, b.unary(Op::Sign, p)));
  });
  CHECK(g == std::vector<double>{0, 0});
}

TEST_CASE("a value used several times accumulates its gradients") {
  // loss = sum(p * p + 3 p + p)  ->  dp = 2p + 4
  auto g = gradAt({D(2)}, {1, -5}, [](Builder &b, ValueId p) {
    return sumAll(b, b.add(b.add(b.mul(p, p), b.mul(b.constant(3), p)), p));
  });
  CHECK(g == std::vector<double>{6, -6});
}

TEST_CASE("derivatives at kinks follow PyTorch") {
  auto relu = gradAt({D(3)}, {0, 1, -1}, [](Builder &b, ValueId p) { return sumAll(b, b.unary(Op::Relu, p)); });
  CHECK(relu == std::vector<double>{0, 1, 0});
  auto abs = gradAt({D(3)}, {0, 1, -1}, [](Builder &b, ValueId p) { return sumAll(b, b.unary(Op::Abs, p)); });
  CHECK(abs == std::vector<double>{0, 1, -1});
  auto leaky = gradAt({D(2)}, {0, 1}, [](Builder &b, ValueId p) {
    return sumAll(b, b.unary(Op::LeakyRelu, p, 0.01));
  });
  CHECK(leaky == std::vector<double>{0.01, 1});
  // maximum(p, 1) and minimum(p, 1) split the gradient evenly at a tie.
  auto mx = gradAt({D(3)}, {1, 2, 0}, [](Builder &b, ValueId p) {
    return sumAll(b, b.binary(Op::Maximum, p, b.constant(1)));
  });
  CHECK(mx == std::vector<double>{0.5, 1, 0});
  auto mn = gradAt({D(3)}, {1, 2, 0}, [](Builder &b, ValueId p) {
    return sumAll(b, b.binary(Op::Minimum, p, b.constant(1)));
  });
  CHECK(mn == std::vector<double>{0.5, 0, 1});
  // maximum(p, p): both operands are p, the halves add up to 1.
  auto same = gradAt({D(1)}, {4}, [](Builder &b, ValueId p) { return sumAll(b, b.binary(Op::Maximum, p, p)); });
  CHECK(same == std::vector<double>{1});
  // max and min reductions split the gradient among tied elements, like torch.amax.
  auto amax = gradAt({D(2), D(3)}, {2, 2, 1, 5, 5, 5}, [](Builder &b, ValueId p) {
    return sumAll(b, b.reduce(Op::Max, p, 2u, false));
  });
  CHECK(amax[0] == 0.5);
  CHECK(amax[1] == 0.5);
  CHECK(amax[2] == 0);
  CHECK(amax[3] == doctest::Approx(1.0 / 3));
  auto amin = gradAt({D(4)}, {1, 3, 1, 2}, [](Builder &b, ValueId p) {
    return b.reduce(Op::Min, p, 1u, false);
  });
  CHECK(amin == std::vector<double>{0.5, 0, 0.5, 0});
}

TEST_CASE("logsumexp of an all -inf row has a finite gradient") {
  // loss = sum(logsumexp(p + c, axis 1) * [1, 0]), row 1 of c is all -inf.
  Tensor c{{2, 3}, {0, 0, 0, -kInf, -kInf, -kInf}, false};
  Tensor w{{2}, {1, 0}, false};
  auto build = [](Builder &b, ValueId p) {
    ValueId ci = b.input("c", DType::F32, {D(2), D(3)});
    ValueId wi = b.input("w", DType::F32, {D(2)});
    return sumAll(b, b.mul(b.reduce(Op::LogSumExp, b.add(p, ci), 2u, false), wi));
  };
  std::vector<double> p = {0, std::log(2.0), std::log(5.0), 1, 2, 3};
  for (bool simplified : {false, true}) {
    auto g = gradAt({D(2), D(3)}, p, build, {c, w}, simplified);
    CHECK(g[0] == doctest::Approx(1.0 / 8));
    CHECK(g[1] == doctest::Approx(2.0 / 8));
    CHECK(g[2] == doctest::Approx(5.0 / 8));
    CHECK(g[3] == 0);
    CHECK(g[4] == 0);
    CHECK(g[5] == 0);
  }
  // The naive formula g * exp(x - lse) gives NaN on that row: -inf - -inf.
  Function f;
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {D(1), D(2)});
  ValueId lse = b.reduce(Op::LogSumExp, x, 2u, true);
  f.results = {{"r", b.unary(Op::Exp, b.sub(x, lse)), ResultKind::Output}};
  auto naive = interp::interpret(f, {Tensor{{1, 2}, {-kInf, -kInf}, false}}, {}, false);
  CHECK(std::isnan(naive[0].data[0]));
}

TEST_CASE("cross entropy and bce_with_logits keep finite gradients for huge logits") {
  // cross_entropy as the front end lowers it: -mean(sum(log_softmax(z) * onehot(y), axis 1))
  Tensor labels{{2}, {0, 1}, true};
  auto ce = [](Builder &b, ValueId z) {
    ValueId y = b.input("y", DType::I32, {D(2)});
    ValueId picked = b.reduce(Op::Sum, b.mul(b.row(Op::LogSoftmax, z, 1), b.onehot(y, 3)), 2u, false);
    return b.neg(b.reduce(Op::Mean, picked, 1u, false));
  };
  std::vector<double> z = {1e4, 0, -1e4, 0, -1e4, 1e4};
  for (bool simplified : {false, true}) {
    auto g = gradAt({D(2), D(3)}, z, ce, {labels}, simplified);
    // (softmax(z) - onehot(y)) / B: row 0 is right already, row 1 puts all mass on class 2.
    std::vector<double> want = {0, 0, 0, 0, -0.5, 0.5};
    for (size_t i = 0; i < 6; ++i) CHECK(g[i] == doctest::Approx(want[i]));
  }
  // bce_with_logits: mean(softplus(z) - z * y)
  Tensor targets{{4}, {1, 0, 0, 1}, false};
  auto bce = [](Builder &b, ValueId zv) {
    ValueId y = b.input("y", DType::F32, {D(4)});
    return b.reduce(Op::Mean, b.sub(b.unary(Op::Softplus, zv), b.mul(zv, y)), 1u, false);
  };
  for (bool simplified : {false, true}) {
    auto g = gradAt({D(4)}, {1e4, 1e4, -1e4, -1e4}, bce, {targets}, simplified);
    // (sigmoid(z) - y) / 4
    std::vector<double> want = {0, 0.25, 0, -0.25};
    for (size_t i = 0; i < 4; ++i) CHECK(g[i] == doctest::Approx(want[i]));
  }
}

TEST_CASE("the gradient of a mean over the batch divides by the run-time batch size") {
  Function f;
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::sym(0)});
  ValueId p = b.param("p", {});
  f.results = {{"loss", b.reduce(Op::Mean, b.mul(x, p), 1u, false), ResultKind::Loss}};
  Function g = passes::simplify(autodiff::differentiate(f));
  CHECK(printFunction(g, nullptr).find("dimsize B") != std::string::npos);
  for (int64_t n : {2, 5}) {
    Tensor xs{{n}, std::vector<double>(static_cast<size_t>(n), 3.0), false};
    auto r = interp::interpret(g, {xs, Tensor{{}, {1.0}, false}}, {n}, false);
    CHECK(r[1].data[0] == doctest::Approx(3.0));
  }
}
