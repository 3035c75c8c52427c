// Random programs, JIT against interpreter: DAGs of element-wise ops (with broadcasting),
// reductions, rows, matmuls and layout ops over a few arguments, with outputs and in-place
// updates of params and states drawn at random. They exercise what hand-written cases miss:
// which values get fused or stored, region reuse, and updates of an argument that other
// loops still read (in place only when that is safe).
#include <doctest/doctest.h>

#include <random>

#include "codegen/Codegen.h"
#include "ir/Builder.h"
#include "ir/Printer.h"

using namespace gradc;
using namespace gradc::ir;

namespace gradc::codegen::testing {
void checkAgainstInterpreterFor(const ir::Function &f, bool f64, double lo, double hi, int labels,
                                const std::vector<int64_t> &batches);
}

namespace {

Function randomProgram(std::mt19937 &rng) {
  Function f;
  f.name = "random";
  f.dimNames = {"B"};
  Builder b(f);
  Dim B = Dim::sym(0), four = Dim::fixed(4), one = Dim::fixed(1);
  std::vector<ValueId> pool = {
      b.input("x0", DType::F32, {B, four}), b.input("x1", DType::F32, {B, one}),
      b.param("p0", {four, four}),          b.param("p1", {four}),
      b.param("p2", {one, four}),           b.state("s0", {four, four}),
      b.hyper("lr")};
  auto pick = [&](size_t lastN = 0) {
    size_t lo = lastN && pool.size() > lastN ? pool.size() - lastN : 0;
    return pool[std::uniform_int_distribution<size_t>(lo, pool.size() - 1)(rng)];
  };
  auto coin = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  const Op unary[] = {Op::Neg, Op::Tanh, Op::Sigmoid, Op::Relu, Op::Softplus, Op::Sin,
                      Op::Square, Op::Abs, Op::Sign, Op::LeakyRelu, Op::Exp, Op::Cos};
  const Op binary[] = {Op::Add, Op::Sub, Op::Mul, Op::Maximum, Op::Minimum, Op::Gt, Op::Div};
  int nodes = 6 + coin(14);
  for (int i = 0; i < nodes; ++i) {
    try {
      ValueId v = kNoValue;
      switch (coin(10)) {
      case 0: case 1: case 2: {
        Op op = unary[coin(std::size(unary))];
        ValueId x = pick(4);
        if (op == Op::Exp) x = b.unary(Op::Tanh, x);
        v = b.unary(op, x, 0.1);
        break;
      }
      case 3: case 4: case 5: {
        ValueId x = pick(5), y = pick();
        if (coin(2)) std::swap(x, y);
        Op op = binary[coin(std::size(binary))];
        if (op == Op::Div) y = b.add(b.unary(Op::Square, y), b.constant(1));
        v = b.binary(op, x, y);
        break;
      }
      case 6: {
        ValueId x = pick(4);
        size_t rank = f.node(x).shape.size();
        if (rank == 0) continue;
        Op op = std::array{Op::Sum, Op::Mean, Op::Max, Op::LogSumExp}[coin(4)];
        v = b.reduce(op, x, 1u << coin(static_cast<int>(rank)), coin(2));
        break;
      }
      case 7: {
        ValueId x = pick(4);
        if (f.node(x).shape.size() != 2) continue;
        v = coin(3) == 0 ? b.transpose(x) : b.row(coin(2) ? Op::Softmax : Op::LogSoftmax, x, coin(2));
        break;
      }
      case 8: {
        ValueId x = pick(), y = pick();
        if (f.node(x).shape.size() != 2 || f.node(y).shape.size() != 2) continue;
        bool ta = coin(2), tb = coin(2);
        v = b.matmul(x, y, ta, tb);
        break;
      }
      default: {
        ValueId c = pick(), x = pick(3), y = pick();
        v = b.where(b.binary(Op::Lt, c, b.constant(0.2)), x, y);
      }
      }
      pool.push_back(v);
    } catch (const UserError &) {
      // shapes that do not fit: draw again
    }
  }
  // Outputs: up to three recent values; updates: any value of the right shape (possibly
  // another argument, or a value that other loops still read).
  auto &res = f.results;
  for (int i = 0; i < 1 + coin(3); ++i) {
    ValueId v = pick(6);
    res.push_back({fmt::format("out{}", i), v, ResultKind::Output});
  }
  auto update = [&](const char *name, ResultKind kind, const Shape &s) {
    std::vector<ValueId> fits;
    for (ValueId v : pool)
      if (f.node(v).shape == s) fits.push_back(v);
    if (fits.empty() || coin(4) == 0) return;
    ValueId v = fits[static_cast<size_t>(coin(static_cast<int>(fits.size())))];
    if (coin(2)) v = b.sub(v, b.mul(b.constant(0.1), pick(3) == v ? v : b.unary(Op::Tanh, v)));
    res.push_back({name, v, kind});
  };
  update("p0", ResultKind::NewParam, {four, four});
  update("s0", ResultKind::NewState, {four, four});
  update("p1", ResultKind::NewParam, {four});
  update("p2", ResultKind::NewParam, {one, four});
  return f;
}

}  // namespace

// GRADC_TEST_SEED=S GRADC_TEST_PROGRAMS=K: K programs from seed S; GRADC_TEST_DUMP=I prints program I.
TEST_CASE("codegen: random programs agree with the interpreter") {
  std::mt19937 rng(getenv("GRADC_TEST_SEED") ? atoi(getenv("GRADC_TEST_SEED")) : 2026);
  for (int i = 0; i < (getenv("GRADC_TEST_PROGRAMS") ? atoi(getenv("GRADC_TEST_PROGRAMS")) : 100); ++i) {
    Function f = randomProgram(rng);
    CAPTURE(i);
    if (getenv("GRADC_TEST_DUMP") && atoi(getenv("GRADC_TEST_DUMP")) == i) fmt::print("{}\n", printFunction(f, nullptr));
    codegen::testing::checkAgainstInterpreterFor(f, true, -1.5, 1.5, 2, {1, 3});
    codegen::testing::checkAgainstInterpreterFor(f, false, -1.5, 1.5, 2, {5});
  }
}
