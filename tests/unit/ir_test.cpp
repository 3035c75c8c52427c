// Unit tests of the IR core: shape rules, broadcasting, the printer and the verifier.
#include <doctest/doctest.h>

#include "ir/Builder.h"
#include "ir/Printer.h"

using namespace gradc;
using namespace gradc::ir;

TEST_CASE("shape rules: matmul, broadcast, reduce") {
  Function f;
  f.name = "t";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::sym(0), Dim::fixed(2)});
  ValueId w = b.param("W", {Dim::fixed(2), Dim::fixed(8)});
  ValueId bias = b.param("b", {Dim::fixed(8)});
  ValueId z = b.add(b.matmul(x, w), bias);
  CHECK(formatShape(f.node(z).shape, f.dimNames) == "[B,8]");
  ValueId s = b.reduce(Op::Sum, z, 1u << 1, true);
  CHECK(formatShape(f.node(s).shape, f.dimNames) == "[B,1]");
  ValueId m = b.reduce(Op::Mean, z, 3u, false);
  CHECK(f.node(m).shape.empty());
  ValueId g = b.matmul(x, z, /*transA=*/true);
  CHECK(formatShape(f.node(g).shape, f.dimNames) == "[2,8]");
  verify(f);

  ValueId w3 = b.param("W3", {Dim::fixed(3), Dim::fixed(8)});
  try {
    b.matmul(x, w3);
    FAIL("expected a shape error");
  } catch (const UserError &e) {
    CHECK(std::string(e.what()) == "[B, 2] @ [3, 8]: inner sizes 2 and 3 differ");
  }
  CHECK_THROWS_AS(b.add(x, bias), UserError);
}

TEST_CASE("symbolic reshape keeps the element count") {
  Function f;
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::sym(0), Dim::fixed(64)});
  ValueId r = b.reshape(x, {Dim::sym(0), Dim::fixed(8), Dim::fixed(8)});
  CHECK(formatShape(f.node(r).shape, f.dimNames) == "[B,8,8]");
  ValueId flat = b.reshape(x, {Dim{64, 1}});
  CHECK(formatShape(f.node(flat).shape, f.dimNames) == "[64*B]");
  CHECK(Dim{64, 1}.eval({3}) == 192);
  CHECK_THROWS_AS(b.reshape(x, {Dim::sym(0), Dim::fixed(63)}), UserError);
}

TEST_CASE("printer: one line per value, inline scalar constants, results") {
  Function f;
  f.name = "xor";
  f.dimNames = {"B"};
  Builder b(f);
  ValueId x = b.input("x", DType::F32, {Dim::sym(0), Dim::fixed(2)});
  b.srcName = "h";
  ValueId h = b.unary(Op::Tanh, x);
  b.srcName = "";
  ValueId l = b.reduce(Op::Mean, b.mul(h, b.constant(0.5)), 3u, false);
  f.results.push_back({"loss", l, ResultKind::Loss});
  std::string text = printFunction(f, nullptr);
  CHECK(text.find("func @xor(%x: input f32[B,2])") != std::string::npos);
  CHECK(text.find("%h = tanh %x : f32[B,2]") != std::string::npos);
  CHECK(text.find("mul %h, 0.5 : f32[B,2]") != std::string::npos);
  CHECK(text.find("loss loss = %") != std::string::npos);
}

TEST_CASE("verifier catches a wrong type") {
  Function f;
  Builder b(f);
  ValueId x = b.param("x", {Dim::fixed(3)});
  ValueId y = b.unary(Op::Exp, x);
  f.node(y).shape = {Dim::fixed(4)};
  CHECK_THROWS_AS(verify(f), InternalError);
}
