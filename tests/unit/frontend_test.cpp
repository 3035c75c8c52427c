// Unit tests of the front end: the lexer (tokens, places, file rules), the parser
// (precedence, statements, limits) and sema (names, defs, shapes, dtypes, lowering, Model).
#include <doctest/doctest.h>

#include "frontend/AST.h"
#include "frontend/Lexer.h"
#include "frontend/Parser.h"
#include "frontend/Sema.h"
#include "ir/Printer.h"

using namespace gradc;

namespace {

std::vector<Token> lexAll(const std::string &text) {
  SourceManager sm;
  int f = sm.addBuffer("t.grad", text);
  Lexer lex(sm, f);
  std::vector<Token> out;
  for (;;) {
    out.push_back(lex.next());
    if (out.back().kind == Tok::Eof) return out;
  }
}

// The error a text gives: "LINE:COL: MESSAGE" (or "" when there is none).
std::string lexError(const std::string &text) {
  try {
    lexAll(text);
  } catch (const UserError &e) {
    return fmt::format("{}:{}: {}", e.loc.line, e.loc.col, e.what());
  }
  return "";
}

struct Parsed {
  SourceManager sm;
  std::unique_ptr<ModuleAST> ast;
};

std::unique_ptr<Parsed> parse(const std::string &text) {
  auto p = std::make_unique<Parsed>();
  int f = p->sm.addBuffer("t.grad", text);
  p->ast = Parser(p->sm, f).parseModule();
  return p;
}

// The AST of the expression bound by `e = ...`, printed on one line as an S-expression.
std::string sexpr(const Expr &e) {
  switch (e.kind) {
  case Expr::Number: return ir::formatNumber(e.number);
  case Expr::Bool: return e.number ? "true" : "false";
  case Expr::Name: return e.name;
  case Expr::Neg: return "(neg " + sexpr(*e.args[0]) + ")";
  case Expr::Binary:
    return fmt::format("({} {} {})", binOpSpelling(e.op), sexpr(*e.args[0]), sexpr(*e.args[1]));
  case Expr::Call:
  case Expr::List: {
    std::string s = "(" + (e.kind == Expr::Call ? e.name : std::string("list"));
    for (size_t i = 0; i < e.args.size(); ++i) {
      s += " ";
      if (i < e.argNames.size() && !e.argNames[i].empty()) s += e.argNames[i] + "=";
      s += sexpr(*e.args[i]);
    }
    return s + ")";
  }
  }
  return "?";
}

std::string parseExpr(const std::string &expr) {
  auto p = parse("e = " + expr);
  REQUIRE(p->ast->stmts.size() == 1);
  return sexpr(*p->ast->stmts[0].expr);
}

std::string parseError(const std::string &text) {
  try {
    parse(text);
  } catch (const UserError &e) {
    return fmt::format("{}:{}: {}", e.loc.line, e.loc.col, e.what());
  }
  return "";
}

struct Built {
  SourceManager sm;
  Model model;
};

std::unique_ptr<Built> build(const std::string &text) {
  auto b = std::make_unique<Built>();
  int f = b->sm.addBuffer("t.grad", text);
  auto ast = Parser(b->sm, f).parseModule();
  b->model = buildModel(*ast, b->sm);
  return b;
}

std::string buildError(const std::string &text) {
  SourceManager sm;
  int f = sm.addBuffer("t.grad", text);
  try {
    auto ast = Parser(sm, f).parseModule();
    buildModel(*ast, sm);
  } catch (const UserError &e) {
    return fmt::format("{}:{}: {}", e.loc.line, e.loc.col, e.what());
  }
  return "";
}

const char *kHeader = "dim B\ninput x: [B, 2]\ninput y: int[B]\nparam W: [2, 3] = zeros\n";

}  // namespace

TEST_CASE("lexer: tokens, numbers and places") {
  auto t = lexAll("model m # comment é\n  x1 = .5 + 1. * 1e-3 ^ 12 @ 1E3\n<= >= == != < > int[B]");
  std::vector<Tok> kinds;
  for (auto &tok : t) kinds.push_back(tok.kind);
  std::vector<Tok> want = {Tok::KwModel, Tok::Ident,  Tok::Ident,  Tok::Assign,  Tok::Number, Tok::Plus,
                           Tok::Number,  Tok::Star,   Tok::Number, Tok::Caret,   Tok::Number, Tok::At,
                           Tok::Number,  Tok::Le,     Tok::Ge,     Tok::EqEq,    Tok::Ne,     Tok::Lt,
                           Tok::Gt,      Tok::KwInt,  Tok::LBracket, Tok::Ident, Tok::RBracket, Tok::Eof};
  CHECK(kinds == want);
  CHECK(t[4].number == 0.5);
  CHECK(t[6].number == 1.0);
  CHECK(t[8].number == doctest::Approx(1e-3));
  CHECK(t[10].number == 12);
  CHECK(t[12].number == 1000);
  CHECK(t[2].text == "x1");
  CHECK(t[2].loc.line == 2);
  CHECK(t[2].loc.col == 3);
  CHECK(t[4].loc.col == 8);
  CHECK(t[13].loc.line == 3);
  CHECK(t[13].loc.col == 1);
  CHECK(t[14].loc.col == 4);
}

TEST_CASE("diagnostics: a one-line message escapes what a quoted line escapes") {
  CHECK(oneLine("a\nb\r\tc\x1b[2J") == "a\\nb\\r\tc\\x1b[2J\n");
  CHECK(oneLine("sky\xc2\x9blake") == "sky\\xc2\\x9blake\n");
  CHECK(oneLine("caf\xe9 caf\xc3\xa9 \x7f") == "caf\\xe9 caf\xc3\xa9 \\x7f\n");
}

TEST_CASE("lexer: file rules") {
  CHECK(lexError("x = 1\ny = é") == "2:5: non-ASCII character U+00E9 outside a comment; names and operators are ASCII");
  CHECK(lexError(std::string("x = 1\0", 6)) == "1:6: NUL byte in the source file");
  CHECK(lexError("x = 1 # \xff") == "1:9: invalid UTF-8 byte 0xff");
  CHECK(lexError("# \xc3\xa9 \xe2\x82\n") == "1:5: invalid UTF-8 sequence starting with byte 0xe2");
  CHECK(lexError("x = 1e") == "1:5: malformed number: an exponent needs digits");
  CHECK(lexError("x = 12abc") == "1:5: malformed number `12abc`");
  CHECK(lexError("x = 1e999") == "1:5: number `1e999` is outside float32's range (its largest magnitude is 3.4028235e38)");
  CHECK(lexError("x = 1e39") == "1:5: number `1e39` is outside float32's range (its largest magnitude is 3.4028235e38)");
  CHECK(lexError("x = 3.4028235e38").empty());
  CHECK(lexError("x = $") == "1:5: unexpected character '$'");
  CHECK(lexError("x = a ! b") == "1:7: unexpected character '!'; did you mean '!='?");
  CHECK(lexError("\xEF\xBB\xBFx = 1\t# tab\r\n") == "");
}

TEST_CASE("parser: precedence and associativity (docs/language.md, Expressions)") {
  CHECK(parseExpr("-a^2") == "(neg (^ a 2))");
  CHECK(parseExpr("a^-1") == "(^ a (neg 1))");
  CHECK(parseExpr("a^b^c") == "(^ a (^ b c))");
  CHECK(parseExpr("a - b - c") == "(- (- a b) c)");
  CHECK(parseExpr("a + b * c @ d") == "(+ a (@ (* b c) d))");
  CHECK(parseExpr("-a * b") == "(* (neg a) b)");
  CHECK(parseExpr("a + b < c * d") == "(< (+ a b) (* c d))");
  CHECK(parseExpr("(a + b) * c") == "(* (+ a b) c)");
  CHECK(parseExpr("f(x)^2") == "(^ (f x) 2)");
  CHECK(parseExpr("sum(x, axis = -1, keepdims=true)") == "(sum x axis=(neg 1) keepdims=true)");
  CHECK(parseExpr("reshape(x, [B, -1])") == "(reshape x (list B (neg 1)))");
  CHECK(parseExpr("f()") == "(f)");
}

TEST_CASE("parser: statements") {
  auto p = parse("model m\ndim B, N\ninput x: [B, 2]\ninput y: int[B]\nparam W: [2, 8] = normal(0, 1)\n"
                 "param a = -1.5\ndef f(u, v) = u * v\nh = f(x, x)\noutput o = h\nmetric k = mean(h)\n"
                 "minimize mean(h) with adam(lr = 0.1)\n");
  const auto &s = p->ast->stmts;
  REQUIRE(s.size() == 11);
  CHECK(s[0].kind == Stmt::Model);
  CHECK(s[1].names == std::vector<std::string>{"B", "N"});
  CHECK(s[2].type.dims.size() == 2);
  CHECK(s[3].type.isInt);
  CHECK(s[4].hasType);
  CHECK(sexpr(*s[4].expr) == "(normal 0 1)");
  CHECK(!s[5].hasType);
  CHECK(s[6].names == std::vector<std::string>{"u", "v"});
  CHECK(s[7].kind == Stmt::Bind);
  CHECK(s[8].kind == Stmt::Output);
  CHECK(s[9].kind == Stmt::Metric);
  CHECK(s[10].kind == Stmt::Minimize);
  CHECK(sexpr(*s[10].optimizer) == "(adam lr=0.1)");
  CHECK(s[10].loc.line == 11);
  CHECK(s[7].expr->loc.col == 5);
}

TEST_CASE("parser: errors and limits") {
  CHECK(parseError("x = a < b < c") == "1:11: comparisons cannot be chained (a < b < c); combine them with * instead");
  // A bracket left open: at the end of the file, the error points at it; before, it names it.
  CHECK(parseError("x = (a + b") == "1:5: this '(' is never closed: the file ends first");
  CHECK(parseError("x = f(a, b\ny = 2") == "2:1: expected ',' or ')', found name `y` (to close the '(' at 1:6)");
  CHECK(parseError("x = reshape(a, [2, 3)") == "1:21: expected ',' or ']', found ')' (to close the '[' at 1:16)");
  CHECK(parseError("x = [1, 2") == "1:5: this '[' is never closed: the file ends first");
  CHECK(parseError("x y") == "1:3: expected '=' after `x` (a statement starts with a keyword or NAME =), found name `y`");
  CHECK(parseError("input x [B]") == "1:9: expected ':' and the input's type, found '['");
  CHECK(parseError("x = 1 +") == "1:8: expected an expression, found end of file");
  CHECK(parseError(") = 1").find("1:1: expected a statement") == 0);
  CHECK(parseError("x = " + std::string(100000, '(') + "1" + std::string(100000, ')'))
            .find("expression nested too deeply") != std::string::npos);
  std::string chain = "x = 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  CHECK(parseError(chain).find("expression nested too deeply (more than 4096 levels)") != std::string::npos);
  CHECK(parseError("x = " + std::string(5000, '-') + "1").find("nested too deeply") != std::string::npos);
  std::string pow = "x = a";
  for (int i = 0; i < 5000; ++i) pow += "^a";
  CHECK(parseError(pow).find("nested too deeply") != std::string::npos);
  std::string ok = "x = 1";
  for (int i = 0; i < 4000; ++i) ok += " + 1";
  CHECK(parseError(ok) == "");
}

TEST_CASE("sema: the xor model") {
  auto b = build(R"(model xor
dim B
input x: [B, 2]
input y: [B, 1]
param W1: [2, 8] = normal(0, 1)
param b1: [8] = zeros
param W2: [8, 1] = glorot
param b2: [1] = zeros
h = tanh(x @ W1 + b1)
z = h @ W2 + b2
output p = sigmoid(z)
metric accuracy = mean((p > 0.5) == y)
minimize mean(bce_with_logits(z, y)) with sgd(lr = 0.5, momentum = 0.9)
)");
  const Model &m = b->model;
  CHECK(m.name == "xor");
  REQUIRE(m.inputs.size() == 2);
  CHECK(m.inputs[0].name == "x");
  REQUIRE(m.params.size() == 4);
  CHECK(m.params[0].init == InitKind::Normal);
  CHECK(m.params[0].initArgs == std::vector<double>{0, 1});
  CHECK(m.params[2].init == InitKind::Glorot);
  CHECK(m.params[0].loc.line == 5);
  CHECK(m.params[0].loc.col == 7);
  CHECK(m.optimizer.kind == "sgd");
  CHECK(m.optimizer.args.at("lr") == 0.5);
  CHECK(m.optimizer.args.at("momentum") == 0.9);
  CHECK(m.optimizer.args.at("nesterov") == 0);
  const ir::Function &f = m.forward;
  CHECK(f.name == "xor");
  CHECK(f.dimNames == std::vector<std::string>{"B"});
  REQUIRE(f.results.size() == 3);
  CHECK(f.results[0].kind == ir::ResultKind::Loss);
  CHECK(f.results[0].name == "loss");
  CHECK(f.results[1].kind == ir::ResultKind::Metric);
  CHECK(f.results[2].kind == ir::ResultKind::Output);
  ir::ValueId h = ir::kNoValue;
  for (ir::ValueId v = 0; v < f.size(); ++v)
    if (f.node(v).srcName == "h") h = v;
  REQUIRE(h != ir::kNoValue);
  CHECK(f.node(h).op == ir::Op::Tanh);
  CHECK(f.node(h).loc.line == 9);
  CHECK(ir::formatShape(f.node(h).shape, f.dimNames) == "[B,8]");
  CHECK(f.node(f.results[0].value).srcName == "loss");
  ir::verify(f);
}

TEST_CASE("sema: defaults, classes and lowering") {
  auto b = build(std::string(kHeader) + "param c = 2 * 3\ndef sq(a) = a * a\nz = x @ W\n"
                 "minimize cross_entropy(sq(z), y) + c\n");
  const Model &m = b->model;
  CHECK(m.name == "t");
  CHECK(m.optimizer.kind == "sgd");
  CHECK(m.optimizer.args.at("lr") == 0.01);
  CHECK(m.inputs[1].classes == 3);
  CHECK(m.inputs[1].dtype == ir::DType::I32);
  CHECK(m.params[1].init == InitKind::Const);
  CHECK(m.params[1].initArgs == std::vector<double>{6});
  CHECK(m.params[1].shape.empty());

  // [k] @ [k, n] and [m, k] @ [k] reshape to matrices and back.
  auto v = build("param a: [3] = ones\nparam M: [3, 4] = ones\nparam u: [4] = ones\n"
                 "p = a @ M\nq = M @ u\nminimize sum(p) + sum(q)\n");
  const ir::Function &f = v->model.forward;
  int reshapes = 0, matmuls = 0;
  for (const auto &n : f.nodes) {
    reshapes += n.op == ir::Op::Reshape;
    matmuls += n.op == ir::Op::MatMul;
    if (n.srcName == "p") CHECK(ir::formatShape(n.shape, f.dimNames) == "[4]");
    if (n.srcName == "q") CHECK(ir::formatShape(n.shape, f.dimNames) == "[3]");
  }
  CHECK(reshapes == 4);
  CHECK(matmuls == 2);
}

TEST_CASE("sema: def inlining is memoised and bounded") {
  std::string text = "param a = 1\ndef f0(x) = x * x\n";
  for (int i = 1; i <= 40; ++i) text += fmt::format("def f{}(x) = f{}(x) + f{}(x)\n", i, i - 1, i - 1);
  text += "minimize f40(a)\n";
  auto b = build(text);
  CHECK(b->model.forward.size() < 100);

  std::string grow = "param a = 1\ndef f0(x) = x * 2\n";
  for (int i = 1; i <= 40; ++i) grow += fmt::format("def f{}(x) = f{}(x) + f{}(x * 3)\n", i, i - 1, i - 1);
  grow += "minimize f40(a)\n";
  CHECK(buildError(grow).find("the program grows beyond 100000") != std::string::npos);
}

TEST_CASE("sema: errors") {
  std::string h = kHeader;  // 4 lines
  CHECK(buildError(h + "param V: [3, 8] = zeros\nz = x @ V\nminimize mean(z)\n") ==
        "6:7: x @ V: [B, 2] @ [3, 8]: inner sizes 2 and 3 differ");
  CHECK(buildError(h + "z = x @ W\nz = x\nminimize mean(z)\n") == "6:1: `z` is already bound (at 5:1); each name is bound once");
  CHECK(buildError(h + "z = q + 1\nq = x\nminimize mean(z)\n") == "5:5: `q` is used before its definition at 6:1");
  CHECK(buildError(h + "z = nope\nminimize mean(z)\n") == "5:5: undefined name `nope`");
  CHECK(buildError(h + "param loss = 1\nminimize loss\n") ==
        "5:7: a param may not be named `loss` (gradient files use that name)");
  CHECK(buildError(h + "z = foo(x)\nminimize mean(z)\n") == "5:5: unknown function `foo`");
  CHECK(buildError(h + "z = sum(x, axes=1)\nminimize mean(z)\n") ==
        "5:12: unknown keyword argument `axes` for sum; it takes (x, axis, keepdims)");
  CHECK(buildError(h + "z = tanh(x, x)\nminimize mean(z)\n") == "5:13: tanh takes 1 argument, got 2");
  CHECK(buildError(h + "z = sum(x, axis=1, axis=0)\nminimize mean(z)\n") ==
        "5:20: argument `axis` of sum is given twice");
  CHECK(buildError(h + "z = sum(x, axis=2)\nminimize mean(z)\n") == "5:17: axis 2 is out of range for a tensor of rank 2");
  CHECK(buildError(h + "minimize x @ W\n") == "5:10: the loss must be a scalar, got f32[B, 3]; take its mean(...)");
  CHECK(buildError(h + "minimize mean(x)\nminimize mean(x)\n") ==
        "6:1: a second minimize; a model has exactly one loss (the first is at 5:1)");
  CHECK(buildError(h + "z = x\n") == "0:0: the model has no `minimize` statement; it needs exactly one loss");
  CHECK(buildError(h + "minimize mean(x) with sgdd(lr=1)\n") ==
        "5:23: unknown optimiser `sgdd`; expected one of sgd, adam, adamw, rmsprop, adagrad; did you mean `sgd`?");
  // A name, function, optimiser or initialiser one slip of the keyboard from a known one.
  CHECK(buildError(h + "z = tahn(x @ W)\nminimize mean(z)\n") == "5:5: unknown function `tahn`; did you mean `tanh`?");
  CHECK(buildError(h + "zz = x @ W\nminimize mean(z)\n") == "6:15: undefined name `z`; did you mean `zz`?");
  CHECK(buildError(h + "minimize mean(x @ WW)\n") == "5:19: undefined name `WW`; did you mean `W`?");
  CHECK(buildError(h + "minimize mean(x @ W) with adma(lr=1)\n") ==
        "5:27: unknown optimiser `adma`; expected one of sgd, adam, adamw, rmsprop, adagrad; did you mean `adam`?");
  CHECK(buildError(h + "param V: [3] = zeroes\nminimize mean(x)\n").find("glorot or he; did you mean `zeros`?") !=
        std::string::npos);
  CHECK(buildError(h + "def lin(v, M) = v @ M\nminimize mean(lni(x, W))\n") ==
        "6:15: unknown function `lni`; did you mean `lin`?");
  CHECK(buildError("def f(value) = valeu * 2\nparam a = 1\nminimize f(a)\n") ==
        "1:16: `valeu` is not defined in def f: a def body sees only its arguments, earlier defs and the built-ins; "
        "did you mean `value`?");
  CHECK(buildError(h + "minimize mean(x @ Wxyz)\n") == "5:19: undefined name `Wxyz`");  // too far from W
  CHECK(buildError(h + "param V: [3] = glorot\nminimize mean(x)\n") ==
        "5:16: glorot needs a param of 2 dims or more; V has shape [3]");
  CHECK(buildError(h + "param V: [3] = xavier\nminimize mean(x)\n").find("5:16: unknown initialiser `xavier`") == 0);
  CHECK(buildError(h + "z = y + 1\nminimize mean(x)\n") == "5:5: operator + expects a float tensor, but `y` is an int tensor");
  CHECK(buildError(h + "z = x + W\nminimize mean(z)\n") == "5:7: x + W: shapes [B, 2] and [2, 3] do not broadcast");
  CHECK(buildError("dim B, N\ninput x: [B, N]\nminimize mean(x)\n") ==
        "2:14: only the first dim of an input may be a dim name (the batch dim); `N` is dim 2 of input x");
  CHECK(buildError("def f(x) = f(x)\nparam a = 1\nminimize f(a)\n") == "1:12: def f calls itself; recursion is not allowed");
  CHECK(buildError("def f(x) = g(x)\ndef g(x) = x\nparam a = 1\nminimize f(a)\n") ==
        "1:12: def f calls `g`, which is defined later (at 2:5); a def may call only earlier defs");
  CHECK(buildError("param a = 1\ndef f(x) = x * a\nminimize f(a)\n").find("2:16: `a` is not defined in def f") == 0);
  CHECK(buildError("param a = 1\nminimize mse(a, x)\n") == "2:17: undefined name `x`");
  CHECK(buildError(h + "param p: [B, 1] = zeros\nminimize mean(x)\n") ==
        "5:11: the shape of param p must be static: `B` is a symbolic dim");
  CHECK(buildError(h + "z = mse(x, x @ W)\nminimize mean(z)\n") ==
        "5:5: mse: both arguments must have the same shape, got [B, 2] and [B, 3]");
}

TEST_CASE("sema: int compared with float is cast; comparisons give f32") {
  auto b = build(std::string(kHeader) + "z = x @ W\nmetric m = mean(y == 1)\nminimize mean(z)\n");
  const ir::Function &f = b->model.forward;
  bool sawCast = false;
  for (const auto &n : f.nodes) sawCast |= n.op == ir::Op::Cast;
  CHECK(sawCast);
}

TEST_CASE("sema: bindings of constant expressions as initialiser, param and optimiser arguments") {
  auto b = build("mu = 1 / 4\nsd = mu * 2\nhe = 0.1\nflag = true\n"
                 "param a: [2, 2] = normal(mu, sd)\nparam c = -mu\nparam e: [3, 2] = he\nparam f: [2] = const(he)\n"
                 "minimize sum(a) + c + sum(e) + sum(f) with sgd(lr = he, momentum = mu, nesterov = flag)\n");
  const Model &m = b->model;
  CHECK(m.params[0].init == InitKind::Normal);
  CHECK(m.params[0].initArgs == std::vector<double>{0.25, 0.5});
  CHECK(m.params[1].init == InitKind::Const);
  CHECK(m.params[1].initArgs == std::vector<double>{-0.25});
  CHECK(m.params[2].init == InitKind::He);  // the initialiser's name, not the binding `he`
  CHECK(m.params[3].initArgs == std::vector<double>{0.1});
  CHECK(m.optimizer.args.at("lr") == 0.1);
  CHECK(m.optimizer.args.at("momentum") == 0.25);
  CHECK(m.optimizer.args.at("nesterov") == 1);
}

TEST_CASE("sema: initialisers and optimisers") {
  auto b = build("param a: [2, 2] = uniform(-1, hi = 2)\nparam c: [2] = const(v = 3 / 4)\nparam d: [2] = ones\n"
                 "param e: [3, 2] = he\nparam f: [2] = normal\n"
                 "minimize sum(a) + sum(c) + sum(d) + sum(e) + sum(f) with sgd(0.1, 0.9, nesterov = true)\n");
  const Model &m = b->model;
  CHECK(m.params[0].init == InitKind::Uniform);
  CHECK(m.params[0].initArgs == std::vector<double>{-1, 2});
  CHECK(m.params[1].init == InitKind::Const);
  CHECK(m.params[1].initArgs == std::vector<double>{0.75});
  CHECK(m.params[2].init == InitKind::Ones);
  CHECK(m.params[3].init == InitKind::He);
  CHECK(m.params[4].init == InitKind::Normal);
  CHECK(m.params[4].initArgs == std::vector<double>{0, 1});
  CHECK(m.optimizer.kind == "sgd");
  CHECK(m.optimizer.args.at("lr") == 0.1);
  CHECK(m.optimizer.args.at("momentum") == 0.9);
  CHECK(m.optimizer.args.at("nesterov") == 1);
  CHECK(m.optimizer.args.at("dampening") == 0);
  CHECK(m.optimizer.args.size() == 5);

  for (const std::string &opt : optimizerNames()) {
    auto o = build("param a = 1\nminimize a * a with " + opt + "(lr = 0.5)\n");
    CHECK(o->model.optimizer.kind == opt);
    CHECK(o->model.optimizer.args.at("lr") == 0.5);
    CHECK(o->model.optimizer.args.size() == optimizerDefaults(opt).size());
  }
  auto w = build("param a = 1\nminimize a * a with adamw\n");
  CHECK(w->model.optimizer.args.at("weight_decay") == 0.01);
  CHECK(buildError("param a = 1\nminimize a with adam(lr = 0.1, beta1 = 1)\n") == "2:40: beta1 must be less than 1");
  CHECK(buildError("param a = 1\nminimize a with adagrad(0.1, 1e-10, 3)\n") == "2:37: adagrad takes at most 2 arguments, got 3");
  CHECK(buildError("param a: [2] = normal(0, -1)\nminimize sum(a)\n") ==
        "1:16: normal: the standard deviation must not be negative");
  CHECK(buildError("param a: [2] = const\nminimize sum(a)\n") == "1:16: const needs a value: const(v)");
  CHECK(buildError("param a: [65536, 65536, 2] = zeros\nminimize sum(a)\n") ==
        "1:10: tensor too large: more than 2^32 elements");
}
