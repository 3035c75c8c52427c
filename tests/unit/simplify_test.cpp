// The simplifier: each algebraic identity, constant folding, CSE and DCE on a small
// function, and each numerically stable rewrite shown to matter: the naive form overflows
// or gives -inf/NaN in the interpreter, the rewritten one gives the right finite value.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "interp/Interpreter.h"
#include "ir/Builder.h"
#include "ir/Printer.h"
#include "passes/Simplify.h"

using namespace gradc;
using namespace gradc::ir;
using gradc::interp::Tensor;

namespace {

Dim D(int64_t n) { return Dim::fixed(n); }

// f(x) with x: input f32[B,4] (and y: param f32[4], a: input f32[3,4] for the cases that
// need them); returns the simplified function's text.
struct Fixture {
  Function f;
  Builder b{f};
  ValueId x, y, a;
  Fixture() {
    f.name = "t";
    f.dimNames = {"B"};
    x = b.input("x", DType::F32, {Dim::sym(0), D(4)});
    y = b.param("y", {D(4)});
    a = b.input("a", DType::F32, {D(3), D(4)});
  }
  ValueId k(double v) { return b.constant(v); }
  std::string simplified(ValueId result) {
    f.results = {{"r", result, ResultKind::Output}};
    verify(f);
    Function s = passes::simplify(f);
    return printFunction(s, nullptr);
  }
  // The body of the simplified function: only the lines that compute something.
  std::string body(ValueId result) {
    std::string text = simplified(result);
    size_t start = text.find('{') + 2, end = text.find("  return");
    return text.substr(start, end - start);
  }
};

std::string ret(const std::string &v) { return "output r = " + v; }

}  // namespace

TEST_CASE("simplify: identities remove the operation") {
  struct Id {
    const char *label;
    std::function<ValueId(Fixture &)> build;
    const char *result;  // what the function returns afterwards
  };
  std::vector<Id> ids = {
      {"x * 1", [](Fixture &t) { return t.b.mul(t.x, t.k(1)); }, "%x"},
      {"1 * x", [](Fixture &t) { return t.b.mul(t.k(1), t.x); }, "%x"},
      {"x + 0", [](Fixture &t) { return t.b.add(t.x, t.k(0)); }, "%x"},
      {"0 + x", [](Fixture &t) { return t.b.add(t.k(0), t.x); }, "%x"},
      {"x - 0", [](Fixture &t) { return t.b.sub(t.x, t.k(0)); }, "%x"},
      {"x / 1", [](Fixture &t) { return t.b.div(t.x, t.k(1)); }, "%x"},
      {"--x", [](Fixture &t) { return t.b.neg(t.b.neg(t.x)); }, "%x"},
      {"x ^ 1", [](Fixture &t) { return t.b.binary(Op::Pow, t.x, t.k(1)); }, "%x"},
      {"transpose(transpose(a))", [](Fixture &t) { return t.b.transpose(t.b.transpose(t.a)); }, "%a"},
      {"reshape to the same shape", [](Fixture &t) { return t.b.reshape(t.a, {D(3), D(4)}); }, "%a"},
      {"broadcast to the same shape", [](Fixture &t) { return t.b.broadcast(t.a, {D(3), D(4)}); }, "%a"},
      {"sum over no axes", [](Fixture &t) { return t.b.reduce(Op::Sum, t.x, 0, false); }, "%x"},
      {"max over no axes", [](Fixture &t) { return t.b.reduce(Op::Max, t.x, 0, true); }, "%x"},
      {"where(1, x, a)", [](Fixture &t) { return t.b.where(t.k(1), t.x, t.b.neg(t.x)); }, "%x"},
      {"where(c, x, x)", [](Fixture &t) { return t.b.where(t.b.binary(Op::Gt, t.x, t.k(0)), t.x, t.x); }, "%x"},
      {"maximum(x, x)", [](Fixture &t) { return t.b.binary(Op::Maximum, t.x, t.x); }, "%x"},
  };
  for (const Id &id : ids) {
    std::string label = id.label;
    CAPTURE(label);
    Fixture t;
    std::string text = t.simplified(id.build(t));
    CHECK(text.find(ret(id.result)) != std::string::npos);
    CHECK(t.body(id.build(t)).empty());
  }
}

TEST_CASE("simplify: identities that become a cheaper operation") {
  struct Id {
    const char *label;
    std::function<ValueId(Fixture &)> build;
    const char *line;  // the one line left in the body
  };
  std::vector<Id> ids = {
      {"0 - x", [](Fixture &t) { return t.b.sub(t.k(0), t.x); }, "neg %x : f32[B,4]"},
      {"x * -1", [](Fixture &t) { return t.b.mul(t.x, t.k(-1)); }, "neg %x : f32[B,4]"},
      {"-1 * x", [](Fixture &t) { return t.b.mul(t.k(-1), t.x); }, "neg %x : f32[B,4]"},
      {"x / -1", [](Fixture &t) { return t.b.div(t.x, t.k(-1)); }, "neg %x : f32[B,4]"},
      {"x ^ 2", [](Fixture &t) { return t.b.binary(Op::Pow, t.x, t.k(2)); }, "square %x : f32[B,4]"},
      {"x * x", [](Fixture &t) { return t.b.mul(t.x, t.x); }, "square %x : f32[B,4]"},
      {"x + -y", [](Fixture &t) { return t.b.add(t.x, t.b.neg(t.y)); }, "sub %x, %y : f32[B,4]"},
      {"-y + x", [](Fixture &t) { return t.b.add(t.b.neg(t.y), t.x); }, "sub %x, %y : f32[B,4]"},
      {"x - -y", [](Fixture &t) { return t.b.sub(t.x, t.b.neg(t.y)); }, "add %x, %y : f32[B,4]"},
      {"-(x - y)", [](Fixture &t) { return t.b.neg(t.b.sub(t.x, t.y)); }, "sub %y, %x : f32[B,4]"},
      {"-x / y", [](Fixture &t) { return t.b.neg(t.b.div(t.b.neg(t.x), t.y)); }, "div %x, %y : f32[B,4]"},
      {"-(-x * y)", [](Fixture &t) { return t.b.neg(t.b.mul(t.b.neg(t.x), t.y)); }, "mul %x, %y : f32[B,4]"},
      {"(x * 2) * 100", [](Fixture &t) { return t.b.mul(t.b.mul(t.x, t.k(2)), t.k(100)); }, "mul %x, 200 : f32[B,4]"},
      {"(1 / x) * y", [](Fixture &t) { return t.b.mul(t.b.div(t.k(1), t.x), t.y); }, "div %y, %x : f32[B,4]"},
      {"reshape of a broadcast scalar",
       [](Fixture &t) { return t.b.reshape(t.b.broadcast(t.b.neg(t.k(2)), {D(3), D(4)}), {D(12)}); },
       "const -2 : f32[12]"},
      {"-x * -y", [](Fixture &t) { return t.b.mul(t.b.neg(t.x), t.b.neg(t.y)); }, "mul %x, %y : f32[B,4]"},
      {"reshape(reshape(a))", [](Fixture &t) { return t.b.reshape(t.b.reshape(t.a, {D(12)}), {D(2), D(6)}); },
       "reshape %a : f32[2,6]"},
      {"broadcast(broadcast(y))",
       [](Fixture &t) { return t.b.broadcast(t.b.broadcast(t.y, {D(3), D(4)}), {D(2), D(3), D(4)}); },
       "broadcast %y : f32[2,3,4]"},
      {"sum over an axis of size 1",
       [](Fixture &t) { return t.b.reduce(Op::Sum, t.b.reshape(t.a, {D(3), D(1), D(4)}), 2u, true); },
       "reshape %a : f32[3,1,4]"},
      {"constants go right in commutative ops", [](Fixture &t) { return t.b.add(t.k(2), t.x); },
       "add %x, 2 : f32[B,4]"},
      {"matmul(transpose(a), b)", [](Fixture &t) { return t.b.matmul(t.b.transpose(t.a), t.a); },
       "matmul %a^T, %a : f32[4,4]"},
      {"matmul(a, transpose(b))", [](Fixture &t) { return t.b.matmul(t.a, t.b.transpose(t.a)); },
       "matmul %a, %a^T : f32[3,3]"},
      {"matmul(transpose(a), b) with transB",
       [](Fixture &t) { return t.b.matmul(t.b.transpose(t.b.transpose(t.a)), t.a, false, true); },
       "matmul %a, %a^T : f32[3,3]"},
      {"an explicit broadcast in an element-wise op",
       [](Fixture &t) { return t.b.mul(t.x, t.b.broadcast(t.y, {Dim::sym(0), D(4)})); }, "mul %x, %y : f32[B,4]"},
      {"a constant of a larger shape in an element-wise op",
       [](Fixture &t) { return t.b.mul(t.x, t.b.constant(3, {Dim::sym(0), D(4)})); }, "mul %x, 3 : f32[B,4]"},
  };
  for (const Id &id : ids) {
    std::string label = id.label;
    CAPTURE(label);
    Fixture t;
    std::string body = t.body(id.build(t));
    CAPTURE(body);
    CHECK(std::count(body.begin(), body.end(), '\n') == 1);
    CHECK(body.find(std::string("= ") + id.line) != std::string::npos);
  }
}

TEST_CASE("simplify: a broadcast moves below element-wise ops of one operand") {
  Fixture t;
  std::string body = t.body(t.b.mul(t.b.unary(Op::Exp, t.b.broadcast(t.y, {Dim::sym(0), D(4)})), t.x));
  CHECK(body == "  %3 = exp %y : f32[4]\n  %4 = mul %3, %x : f32[B,4]\n");
}

TEST_CASE("simplify: a shared factor comes out") {
  Fixture t;
  ValueId e = t.b.unary(Op::Exp, t.y);
  std::string body = t.body(t.b.sub(t.b.mul(e, t.x), t.b.mul(t.y, e)));
  CHECK(body == "  %3 = exp %y : f32[4]\n  %4 = sub %x, %y : f32[B,4]\n  %5 = mul %3, %4 : f32[B,4]\n");
}

TEST_CASE("simplify: a shared divisor comes out") {
  Fixture t;
  ValueId e = t.b.unary(Op::Exp, t.y);
  std::string body = t.body(t.b.add(t.b.div(t.x, e), t.b.div(t.y, e)));
  CHECK(body == "  %3 = exp %y : f32[4]\n  %4 = add %x, %y : f32[B,4]\n  %5 = div %4, %3 : f32[B,4]\n");
}

TEST_CASE("simplify: 0 * x stays a product (it is NaN where x is NaN or infinite)") {
  Fixture t;
  ValueId sum = t.b.add(t.x, t.y);  // %3, then the constant 0 (%4): in this order under any compiler
  std::string body = t.body(t.b.mul(t.k(0), sum));
  CHECK(body == "  %3 = add %x, %y : f32[B,4]\n  %5 = mul %3, 0 : f32[B,4]\n");
  Fixture u;
  // Constants alone still fold.
  std::string text = u.simplified(u.b.mul(u.k(2), u.b.constant(0, {D(3), D(4)})));
  CHECK(text.find("const 0 : f32[3,4]") != std::string::npos);
  CHECK(text.find("mul") == std::string::npos);
}

TEST_CASE("simplify: constant folding") {
  Fixture t;
  // (2 + 3) * exp(0) * x -> x * 5
  ValueId c = t.b.mul(t.b.add(t.k(2), t.k(3)), t.b.unary(Op::Exp, t.k(0)));
  std::string body = t.body(t.b.mul(c, t.x));
  CAPTURE(body);
  CHECK(body.find("= mul %x, 5 : f32[B,4]") != std::string::npos);
  Fixture u;
  // sum of a constant [3,4] over axis 1 is 4 * the constant; mean leaves it
  ValueId s = u.b.reduce(Op::Sum, u.b.constant(0.5, {D(3), D(4)}), 2u, false);
  CHECK(u.simplified(s).find("const 2 : f32[3]") != std::string::npos);
  Fixture v;
  CHECK(v.simplified(v.b.binary(Op::Gt, v.k(2), v.k(1))).find("output r = 1") != std::string::npos);
}

TEST_CASE("simplify: CSE merges equal values and DCE removes unused ones") {
  Fixture t;
  t.b.srcName = "first";
  ValueId e1 = t.b.unary(Op::Exp, t.x);
  t.b.srcName = "second";
  ValueId e2 = t.b.unary(Op::Exp, t.x);
  t.b.srcName = "";
  t.b.unary(Op::Tanh, t.a);  // unused
  std::string body = t.body(t.b.add(e1, e2));
  CHECK(body.find("%first = exp %x") != std::string::npos);
  CHECK(body.find("second") == std::string::npos);
  CHECK(body.find("tanh") == std::string::npos);
  // Arguments stay even when unused.
  Fixture u;
  CHECK(u.simplified(u.x).find("func @t(%x: input f32[B,4], %y: param f32[4], %a: input f32[3,4])") !=
        std::string::npos);
}

TEST_CASE("simplify: surviving nodes keep their place and source name") {
  Fixture t;
  t.b.loc = Loc{0, 7, 3};
  t.b.srcName = "h";
  ValueId h = t.b.unary(Op::Tanh, t.b.mul(t.x, t.k(1)));
  Function &f = t.f;
  f.results = {{"r", h, ResultKind::Output}};
  Function s = passes::simplify(f);
  ValueId r = s.findResult(ResultKind::Output, "r");
  CHECK(s.node(r).op == Op::Tanh);
  CHECK(s.node(r).srcName == "h");
  CHECK(s.node(r).loc.line == 7);
  CHECK(s.node(r).loc.col == 3);
}

// ---- numerically stable rewrites ---------------------------------------------------------

namespace {

struct Stable {
  Function f;
  Builder b{f};
  ValueId x;
  explicit Stable(Shape s) {
    f.name = "s";
    x = b.input("x", DType::F32, std::move(s));
  }
  Function finish(ValueId r) {
    f.results = {{"r", r, ResultKind::Output}};
    verify(f);
    return f;
  }
};

std::vector<double> run(const Function &f, Tensor x) {
  return interp::interpret(f, {std::move(x)}, {}, false).at(0).data;
}

bool hasOp(const Function &f, Op op) {
  return std::any_of(f.nodes.begin(), f.nodes.end(), [&](const Node &n) { return n.op == op; });
}

}  // namespace

TEST_CASE("stable: log(softmax(x)) -> log_softmax(x)") {
  Stable s({D(1), D(2)});
  Function naive = s.finish(s.b.unary(Op::Log, s.b.row(Op::Softmax, s.x, 1)));
  Function opt = passes::simplify(naive);
  CHECK(hasOp(opt, Op::LogSoftmax));
  CHECK_FALSE(hasOp(opt, Op::Log));
  Tensor x{{1, 2}, {0, 1000}, false};
  CHECK(std::isinf(run(naive, x)[0]));  // softmax underflows to 0
  std::vector<double> r = run(opt, x);
  CHECK(r[0] == doctest::Approx(-1000));
  CHECK(r[1] == doctest::Approx(0));
}

TEST_CASE("stable: log(sigmoid(x)) -> -softplus(-x)") {
  Stable s({D(2)});
  Function naive = s.finish(s.b.unary(Op::Log, s.b.unary(Op::Sigmoid, s.x)));
  Function opt = passes::simplify(naive);
  CHECK(hasOp(opt, Op::Softplus));
  CHECK_FALSE(hasOp(opt, Op::Log));
  Tensor x{{2}, {-800, 0}, false};
  CHECK(std::isinf(run(naive, x)[0]));
  std::vector<double> r = run(opt, x);
  CHECK(r[0] == doctest::Approx(-800));
  CHECK(r[1] == doctest::Approx(-std::log(2.0)));
}

TEST_CASE("stable: log(1 - sigmoid(x)) -> -softplus(x)") {
  Stable s({D(2)});
  Function naive =
      s.finish(s.b.unary(Op::Log, s.b.sub(s.b.constant(1), s.b.unary(Op::Sigmoid, s.x))));
  Function opt = passes::simplify(naive);
  CHECK(hasOp(opt, Op::Softplus));
  CHECK_FALSE(hasOp(opt, Op::Sigmoid));
  Tensor x{{2}, {40, 0}, false};
  CHECK(std::isinf(run(naive, x)[0]));  // 1 - sigmoid(40) is exactly 0 in double
  std::vector<double> r = run(opt, x);
  CHECK(r[0] == doctest::Approx(-40));
  CHECK(r[1] == doctest::Approx(-std::log(2.0)));
}

TEST_CASE("stable: log(exp(x)) -> x") {
  Stable s({D(1)});
  Function naive = s.finish(s.b.unary(Op::Log, s.b.unary(Op::Exp, s.x)));
  Function opt = passes::simplify(naive);
  CHECK(opt.node(opt.results[0].value).op == Op::Input);
  Tensor x{{1}, {800}, false};
  CHECK(std::isinf(run(naive, x)[0]));
  CHECK(run(opt, x)[0] == 800);
}

TEST_CASE("stable: log(sum(exp(x))) -> logsumexp(x), computed with the max subtracted") {
  Stable s({D(2), D(2)});
  Function naive =
      s.finish(s.b.unary(Op::Log, s.b.reduce(Op::Sum, s.b.unary(Op::Exp, s.x), 2u, true)));
  Function opt = passes::simplify(naive);
  CHECK(hasOp(opt, Op::LogSumExp));
  CHECK(printFunction(opt, nullptr).find("logsumexp %x axes=[1] keepdims : f32[2,1]") != std::string::npos);
  Tensor x{{2, 2}, {800, 800, -800, -801}, false};
  CHECK(std::isinf(run(naive, x)[0]));   // exp(800) overflows
  CHECK(std::isinf(run(naive, x)[1]));   // exp(-800) underflows to 0
  std::vector<double> r = run(opt, x);
  CHECK(r[0] == doctest::Approx(800 + std::log(2.0)));
  CHECK(r[1] == doctest::Approx(-800 + std::log1p(std::exp(-1.0))));
}

TEST_CASE("stable: log(1 + exp(x)) -> softplus(x)") {
  Stable s({D(2)});
  Function naive =
      s.finish(s.b.unary(Op::Log, s.b.add(s.b.constant(1), s.b.unary(Op::Exp, s.x))));
  Function opt = passes::simplify(naive);
  CHECK(hasOp(opt, Op::Softplus));
  Tensor x{{2}, {800, -800}, false};
  CHECK(std::isinf(run(naive, x)[0]));
  std::vector<double> r = run(opt, x);
  CHECK(r[0] == doctest::Approx(800));
  CHECK(r[1] == doctest::Approx(std::exp(-800.0)));
}
