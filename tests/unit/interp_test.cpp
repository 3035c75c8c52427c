// The reference interpreter: every op on hand-computed values, float32 rounding, and the
// Kernel calling convention.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "interp/Interpreter.h"
#include "ir/Builder.h"

using namespace gradc;
using namespace gradc::ir;
using interp::Tensor;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A function under construction whose arguments are given with their values.
struct Fixture {
  Function f;
  Builder b{f};
  std::vector<Tensor> args;
  std::vector<int64_t> dims;

  ValueId arg(std::vector<int64_t> shape, std::vector<double> data, bool isInt = false) {
    Shape s;
    for (int64_t d : shape) s.push_back(Dim::fixed(d));
    std::string name = "a" + std::to_string(args.size());
    args.push_back({shape, data, isInt});
    return isInt ? b.input(name, DType::I32, s) : b.param(name, s);
  }
  Tensor run(ValueId v, bool f32 = false) {
    f.results = {{"r", v, ResultKind::Output}};
    verify(f);
    return interp::interpret(f, args, dims, f32)[0];
  }
  std::vector<double> eval(ValueId v) { return run(v).data; }
};

void checkNear(const std::vector<double> &got, const std::vector<double> &want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    if (std::isinf(want[i])) CHECK(got[i] == want[i]);
    else if (std::isnan(want[i])) CHECK(std::isnan(got[i]));
    else CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("interp: leaves") {
  Fixture t;
  t.f.dimNames = {"B"};
  t.dims = {5};
  checkNear(t.eval(t.b.constant(2.5, {Dim::fixed(2), Dim::fixed(2)})), {2.5, 2.5, 2.5, 2.5});
  checkNear(t.eval(t.b.dimSize(Dim::sym(0))), {5});
  checkNear(t.eval(t.b.dimSize(Dim{3, 1})), {15});
  ValueId h = t.b.hyper("lr");
  t.args.push_back({{}, {0.25}, false});
  checkNear(t.eval(h), {0.25});
  Tensor r = t.run(t.b.constant(1, {Dim::sym(0)}));
  CHECK(r.shape == std::vector<int64_t>{5});
}

TEST_CASE("interp: unary ops") {
  Fixture t;
  ValueId x = t.arg({5}, {-2, -0.5, 0, 0.5, 3});
  auto un = [&](Op op, double attr = 0) { return t.eval(t.b.unary(op, x, attr)); };
  checkNear(un(Op::Neg), {2, 0.5, 0, -0.5, -3});
  checkNear(un(Op::Exp), {std::exp(-2), std::exp(-0.5), 1, std::exp(0.5), std::exp(3)});
  checkNear(un(Op::Abs), {2, 0.5, 0, 0.5, 3});
  checkNear(un(Op::Sign), {-1, -1, 0, 1, 1});
  checkNear(un(Op::Tanh), {std::tanh(-2), std::tanh(-0.5), 0, std::tanh(0.5), std::tanh(3)});
  checkNear(un(Op::Sigmoid), {1 / (1 + std::exp(2)), 1 / (1 + std::exp(0.5)), 0.5, 1 / (1 + std::exp(-0.5)),
                              1 / (1 + std::exp(-3))});
  checkNear(un(Op::Relu), {0, 0, 0, 0.5, 3});
  checkNear(un(Op::Softplus), {std::log(1 + std::exp(-2)), std::log(1 + std::exp(-0.5)), std::log(2),
                               std::log(1 + std::exp(0.5)), std::log(1 + std::exp(3))});
  checkNear(un(Op::Sin), {std::sin(-2), std::sin(-0.5), 0, std::sin(0.5), std::sin(3)});
  checkNear(un(Op::Cos), {std::cos(-2), std::cos(-0.5), 1, std::cos(0.5), std::cos(3)});
  checkNear(un(Op::Square), {4, 0.25, 0, 0.25, 9});
  checkNear(un(Op::LeakyRelu, 0.1), {-0.2, -0.05, 0, 0.5, 3});
  checkNear(un(Op::StopGradient), {-2, -0.5, 0, 0.5, 3});

  ValueId p = t.arg({3}, {0.25, 1, 4});
  checkNear(t.eval(t.b.unary(Op::Log, p)), {std::log(0.25), 0, std::log(4)});
  checkNear(t.eval(t.b.unary(Op::Sqrt, p)), {0.5, 1, 2});

  ValueId labels = t.arg({3}, {2, 0, 7}, true);
  Tensor c = t.run(t.b.unary(Op::Cast, labels));
  CHECK(!c.isInt);
  checkNear(c.data, {2, 0, 7});
}

TEST_CASE("interp: stable forms at extreme arguments") {
  Fixture t;
  ValueId x = t.arg({3}, {-1000, 0, 1000});
  checkNear(t.eval(t.b.unary(Op::Sigmoid, x)), {0, 0.5, 1});
  checkNear(t.eval(t.b.unary(Op::Softplus, x)), {0, std::log(2), 1000});
  ValueId row = t.arg({1, 3}, {1000, 1000, -kInf});
  checkNear(t.eval(t.b.reduce(Op::LogSumExp, row, 2u, false)), {1000 + std::log(2)});
  checkNear(t.eval(t.b.row(Op::Softmax, row, 1)), {0.5, 0.5, 0});
  checkNear(t.eval(t.b.row(Op::LogSoftmax, row, 1)), {-std::log(2), -std::log(2), -kInf});
  ValueId dead = t.arg({2, 2}, {-kInf, -kInf, 1, 2});
  checkNear(t.eval(t.b.reduce(Op::LogSumExp, dead, 2u, false)), {-kInf, 2 + std::log(1 + std::exp(-1))});
}

TEST_CASE("interp: binary ops broadcast like NumPy") {
  Fixture t;
  ValueId a = t.arg({2, 1}, {1, 2});
  ValueId b = t.arg({3}, {10, 20, 30});
  Tensor s = t.run(t.b.add(a, b));
  CHECK(s.shape == std::vector<int64_t>{2, 3});
  checkNear(s.data, {11, 21, 31, 12, 22, 32});
  checkNear(t.eval(t.b.sub(a, b)), {-9, -19, -29, -8, -18, -28});
  checkNear(t.eval(t.b.mul(a, b)), {10, 20, 30, 20, 40, 60});
  checkNear(t.eval(t.b.div(b, a)), {10, 20, 30, 5, 10, 15});
  ValueId e = t.arg({3}, {2, 0.5, 3});
  checkNear(t.eval(t.b.binary(Op::Pow, a, e)), {1, 1, 1, 4, std::sqrt(2), 8});
  ValueId c = t.arg({3}, {1, 5, -1});
  ValueId d = t.arg({3}, {2, 5, -3});
  checkNear(t.eval(t.b.binary(Op::Maximum, c, d)), {2, 5, -1});
  checkNear(t.eval(t.b.binary(Op::Minimum, c, d)), {1, 5, -3});
}

TEST_CASE("interp: comparisons and where") {
  Fixture t;
  ValueId a = t.arg({3}, {1, 2, 3});
  ValueId b = t.arg({3}, {2, 2, 2});
  checkNear(t.eval(t.b.binary(Op::Lt, a, b)), {1, 0, 0});
  checkNear(t.eval(t.b.binary(Op::Le, a, b)), {1, 1, 0});
  checkNear(t.eval(t.b.binary(Op::Gt, a, b)), {0, 0, 1});
  checkNear(t.eval(t.b.binary(Op::Ge, a, b)), {0, 1, 1});
  checkNear(t.eval(t.b.binary(Op::Eq, a, b)), {0, 1, 0});
  checkNear(t.eval(t.b.binary(Op::Ne, a, b)), {1, 0, 1});
  ValueId ia = t.arg({2}, {3, 4}, true);
  ValueId ib = t.arg({2}, {3, 5}, true);
  checkNear(t.eval(t.b.binary(Op::Eq, ia, ib)), {1, 0});
  ValueId c = t.arg({3}, {0, -0.5, 2});
  checkNear(t.eval(t.b.where(c, a, t.b.constant(-7))), {-7, 2, 3});
}

TEST_CASE("interp: reductions over axes, with and without keepdims") {
  Fixture t;
  ValueId x = t.arg({2, 3}, {1, 5, 3, -4, 2, 6});
  Tensor s0 = t.run(t.b.reduce(Op::Sum, x, 1u, false));
  CHECK(s0.shape == std::vector<int64_t>{3});
  checkNear(s0.data, {-3, 7, 9});
  Tensor s1 = t.run(t.b.reduce(Op::Sum, x, 2u, true));
  CHECK(s1.shape == std::vector<int64_t>{2, 1});
  checkNear(s1.data, {9, 4});
  checkNear(t.eval(t.b.reduce(Op::Sum, x, 3u, false)), {13});
  checkNear(t.eval(t.b.reduce(Op::Mean, x, 2u, false)), {3, 4.0 / 3});
  checkNear(t.eval(t.b.reduce(Op::Mean, x, 3u, false)), {13.0 / 6});
  checkNear(t.eval(t.b.reduce(Op::Max, x, 2u, false)), {5, 6});
  checkNear(t.eval(t.b.reduce(Op::Max, x, 1u, true)), {1, 5, 6});
  checkNear(t.eval(t.b.reduce(Op::Min, x, 2u, false)), {1, -4});
  checkNear(t.eval(t.b.reduce(Op::Min, x, 3u, false)), {-4});
  checkNear(t.eval(t.b.reduce(Op::LogSumExp, x, 1u, false)),
            {std::log(std::exp(1) + std::exp(-4)), std::log(std::exp(5) + std::exp(2)),
             std::log(std::exp(3) + std::exp(6))});
  ValueId y = t.arg({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  checkNear(t.eval(t.b.reduce(Op::Sum, y, 5u, false)), {1 + 2 + 5 + 6, 3 + 4 + 7 + 8});
}

TEST_CASE("interp: softmax and log_softmax along one axis") {
  Fixture t;
  ValueId x = t.arg({2, 2}, {0, std::log(3), 1, 1});
  checkNear(t.eval(t.b.row(Op::Softmax, x, 1)), {0.25, 0.75, 0.5, 0.5});
  checkNear(t.eval(t.b.row(Op::LogSoftmax, x, 1)), {std::log(0.25), std::log(0.75), std::log(0.5), std::log(0.5)});
  double e = std::exp(1);
  checkNear(t.eval(t.b.row(Op::Softmax, x, 0)), {1 / (1 + e), 3 / (3 + e), e / (1 + e), e / (3 + e)});
}

TEST_CASE("interp: layout ops") {
  Fixture t;
  ValueId x = t.arg({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor tr = t.run(t.b.transpose(x));
  CHECK(tr.shape == std::vector<int64_t>{3, 2});
  checkNear(tr.data, {1, 4, 2, 5, 3, 6});
  Tensor r = t.run(t.b.reshape(x, {Dim::fixed(3), Dim::fixed(2)}));
  CHECK(r.shape == std::vector<int64_t>{3, 2});
  checkNear(r.data, {1, 2, 3, 4, 5, 6});
  ValueId v = t.arg({2, 1}, {7, 8});
  checkNear(t.eval(t.b.broadcast(v, {Dim::fixed(3), Dim::fixed(2), Dim::fixed(2)})),
            {7, 7, 8, 8, 7, 7, 8, 8, 7, 7, 8, 8});
}

TEST_CASE("interp: matmul with transposed operands") {
  Fixture t;
  ValueId a = t.arg({2, 3}, {1, 2, 3, 4, 5, 6});
  ValueId b = t.arg({3, 2}, {1, 0, 0, 1, 2, -1});
  checkNear(t.eval(t.b.matmul(a, b)), {7, -1, 16, -1});
  ValueId at = t.arg({3, 2}, {1, 4, 2, 5, 3, 6});  // a transposed
  ValueId bt = t.arg({2, 3}, {1, 0, 2, 0, 1, -1});  // b transposed
  checkNear(t.eval(t.b.matmul(at, b, true, false)), {7, -1, 16, -1});
  checkNear(t.eval(t.b.matmul(a, bt, false, true)), {7, -1, 16, -1});
  checkNear(t.eval(t.b.matmul(at, bt, true, true)), {7, -1, 16, -1});
}

TEST_CASE("interp: onehot and argmax") {
  Fixture t;
  ValueId l = t.arg({3}, {2, 0, 1}, true);
  Tensor oh = t.run(t.b.onehot(l, 3));
  CHECK(oh.shape == std::vector<int64_t>{3, 3});
  CHECK(!oh.isInt);
  checkNear(oh.data, {0, 0, 1, 1, 0, 0, 0, 1, 0});
  ValueId x = t.arg({2, 3}, {1, 5, 5, 7, 2, 7});
  Tensor am = t.run(t.b.argmax(x, 1));
  CHECK(am.isInt);
  checkNear(am.data, {1, 0});  // the first of tied maxima
  checkNear(t.eval(t.b.argmax(x, 0)), {1, 0, 1});
}

TEST_CASE("interp: float32 mode rounds every value") {
  Fixture t;
  ValueId x = t.arg({1}, {1});
  ValueId e = t.b.unary(Op::Exp, x);
  CHECK(t.run(e, true).data[0] == static_cast<double>(static_cast<float>(std::exp(1.0))));
  CHECK(t.run(e, false).data[0] == std::exp(1.0));
  // 1 + 1e-10 is 1 in float32, so the difference vanishes there but not in float64.
  ValueId d = t.b.sub(t.b.add(x, t.b.constant(1e-10)), x);
  CHECK(t.run(d, true).data[0] == 0.0);
  CHECK(t.run(d, false).data[0] != 0.0);
}

TEST_CASE("interp: the Kernel convention writes results in order and params in place") {
  Function f;
  f.name = "k";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::sym(0), Dim::fixed(2)});
  ValueId y = b.input("y", DType::I32, {Dim::sym(0)});
  ValueId w = b.param("w", {Dim::fixed(2)});
  ValueId lr = b.hyper("lr");
  ValueId z = b.reduce(Op::Sum, b.mul(x, w), 2u, false);  // [B]
  ValueId loss = b.reduce(Op::Sum, b.mul(z, b.unary(Op::Cast, y)), 1u, false);
  ValueId newW = b.sub(w, lr);
  f.results = {{"loss", loss, ResultKind::Loss}, {"w", newW, ResultKind::NewParam}, {"z", z, ResultKind::Output}};
  verify(f);
  for (bool f64 : {false, true}) {
    CAPTURE(f64);
    rt::Kernel k = interp::interpreterKernel(f, f64);
    REQUIRE(k.sig.slots.size() == 6);
    CHECK(k.sig.slots[0].shape == std::vector<int64_t>{-1, 2});
    CHECK(k.sig.slots[1].isInt);
    CHECK(k.sig.slots[4].kind == rt::SlotKind::Loss);
    CHECK(k.sig.slots[5].kind == rt::SlotKind::Output);
    CHECK(k.workBytes(nullptr) == 0);
    int64_t dims[] = {3};
    std::vector<int32_t> ys = {1, 0, 2};
    if (f64) {
      std::vector<double> xs = {1, 2, 3, 4, 5, 6}, ws = {1, 10}, lrv = {0.5}, l(1), zs(3);
      void *args[] = {xs.data(), ys.data(), ws.data(), lrv.data(), l.data(), zs.data()};
      k.call(args, dims, nullptr);
      CHECK(zs == std::vector<double>{21, 43, 65});
      CHECK(l[0] == 21 + 2 * 65);
      CHECK(ws == std::vector<double>{0.5, 9.5});
    } else {
      std::vector<float> xs = {1, 2, 3, 4, 5, 6}, ws = {1, 10}, lrv = {0.5}, l(1), zs(3);
      void *args[] = {xs.data(), ys.data(), ws.data(), lrv.data(), l.data(), zs.data()};
      k.call(args, dims, nullptr);
      CHECK(zs == std::vector<float>{21, 43, 65});
      CHECK(l[0] == 21 + 2 * 65);
      CHECK(ws == std::vector<float>{0.5f, 9.5f});
    }
  }
}

TEST_CASE("interp: wrong arguments and undescribable slots are internal errors") {
  Function f;
  f.name = "bad";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::sym(0), Dim::fixed(2)});
  f.results = {{"y", b.reshape(x, {Dim{2, 1}}), ResultKind::Output}};
  Tensor good{{2, 2}, {1, 2, 3, 4}, false};
  CHECK(interp::interpret(f, {good}, {2}, false)[0].shape == std::vector<int64_t>{4});
  CHECK_THROWS_AS(interp::interpret(f, {}, {2}, false), InternalError);
  CHECK_THROWS_AS(interp::interpret(f, {good}, {3}, false), InternalError);
  CHECK_THROWS_AS(interp::interpret(f, {good}, {}, false), InternalError);
  // A result of size 2*B has no slot shape (slots hold plain numbers or one dim each).
  CHECK_THROWS_AS(interp::interpreterKernel(f, true), InternalError);
}
