// Sema (see Sema.h): names, defs, constants, shapes -> Model + forward IR.
#include "frontend/Sema.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "ir/Builder.h"
#include "support/LargeStack.h"
#include "support/Suggest.h"
#include "ir/Printer.h"

namespace gradc {

using ir::DType;
using ir::Op;
using ir::Shape;
using ir::ValueId;

namespace {

// Total depth of nested expression evaluation, across inlined defs. Each level takes up to
// ~8 KiB of stack under AddressSanitizer (~1 KiB in a release build): 5,000 stay under the
// 64 MiB beyond which the sanitizer cannot unwind an exception thrown at the deepest level.
constexpr int kMaxEvalDepth = 5000;

enum class BK {
  Unary, LeakyRelu, MaxMin, Where, Transpose, Reshape, Reduce, Row, ArgMax, OneHot,
  Mse, Bce, BceLogits, CrossEntropy,
};

struct Builtin {
  BK kind;
  Op op;
  std::vector<std::string> params;
  size_t required;
};

const std::map<std::string, Builtin> &builtins() {
  static const std::map<std::string, Builtin> table = [] {
    std::map<std::string, Builtin> t;
    auto unary = [&](const char *n, Op op) { t[n] = {BK::Unary, op, {"x"}, 1}; };
    unary("exp", Op::Exp);
    unary("log", Op::Log);
    unary("sqrt", Op::Sqrt);
    unary("abs", Op::Abs);
    unary("tanh", Op::Tanh);
    unary("sigmoid", Op::Sigmoid);
    unary("relu", Op::Relu);
    unary("softplus", Op::Softplus);
    unary("sin", Op::Sin);
    unary("cos", Op::Cos);
    unary("square", Op::Square);
    unary("stop_gradient", Op::StopGradient);
    t["leaky_relu"] = {BK::LeakyRelu, Op::LeakyRelu, {"x", "slope"}, 1};
    t["maximum"] = {BK::MaxMin, Op::Maximum, {"a", "b"}, 2};
    t["minimum"] = {BK::MaxMin, Op::Minimum, {"a", "b"}, 2};
    t["where"] = {BK::Where, Op::Where, {"c", "a", "b"}, 3};
    t["transpose"] = {BK::Transpose, Op::Transpose, {"x"}, 1};
    t["reshape"] = {BK::Reshape, Op::Reshape, {"x", "shape"}, 2};
    t["sum"] = {BK::Reduce, Op::Sum, {"x", "axis", "keepdims"}, 1};
    t["mean"] = {BK::Reduce, Op::Mean, {"x", "axis", "keepdims"}, 1};
    t["max"] = {BK::Reduce, Op::Max, {"x", "axis", "keepdims"}, 1};
    t["min"] = {BK::Reduce, Op::Min, {"x", "axis", "keepdims"}, 1};
    t["logsumexp"] = {BK::Reduce, Op::LogSumExp, {"x", "axis", "keepdims"}, 1};
    t["softmax"] = {BK::Row, Op::Softmax, {"x", "axis"}, 1};
    t["log_softmax"] = {BK::Row, Op::LogSoftmax, {"x", "axis"}, 1};
    t["argmax"] = {BK::ArgMax, Op::ArgMax, {"x", "axis"}, 2};
    t["onehot"] = {BK::OneHot, Op::OneHot, {"labels", "n"}, 2};
    t["mse"] = {BK::Mse, Op::Sub, {"pred", "target"}, 2};
    t["bce"] = {BK::Bce, Op::Sub, {"p", "y"}, 2};
    t["bce_with_logits"] = {BK::BceLogits, Op::Sub, {"z", "y"}, 2};
    t["cross_entropy"] = {BK::CrossEntropy, Op::Sub, {"logits", "labels"}, 2};
    return t;
  }();
  return table;
}

const std::set<std::string> kInitNames = {"zeros", "ones", "const", "normal", "uniform", "glorot", "he"};

std::string fmtShape(const Shape &s, const std::vector<std::string> &dn) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + ir::formatDim(s[i], dn);
  return out + "]";
}

// The static part of a shape's size, checked against a limit so that size arithmetic here
// and in later stages cannot overflow.
constexpr int64_t kMaxElements = int64_t(1) << 32;
// The largest dim, and the largest whole number a model may give where a size is meant
// (onehot's class count, an axis): 2^30.
constexpr double kMaxDimSize = double(int64_t(1) << 30);
void checkSize(const Shape &s, Loc loc) {
  int64_t n = 1;
  for (const ir::Dim &d : s) {
    n *= d.factor;  // each factor is at most 2^32, so this cannot overflow before the check
    if (n > kMaxElements) userError(loc, "tensor too large: more than 2^32 elements");
  }
}

std::string where(Loc l) { return fmt::format("{}:{}", l.line, l.col); }

std::string joinNames(const std::vector<std::string> &v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out;
}

// The names a call may name, for "did you mean": the built-ins, and the defs visible there.
std::vector<std::string> callableNames(const std::map<std::string, size_t> &defs, size_t visibleDefs) {
  std::vector<std::string> out;
  for (const auto &[name, bi] : builtins()) out.push_back(name);
  for (const auto &[name, index] : defs)
    if (index < visibleDefs) out.push_back(name);
  return out;
}

Op binOpToIR(BinOp op) {
  switch (op) {
  case BinOp::Add: return Op::Add;
  case BinOp::Sub: return Op::Sub;
  case BinOp::Mul: return Op::Mul;
  case BinOp::Div: return Op::Div;
  case BinOp::Pow: return Op::Pow;
  case BinOp::Lt: return Op::Lt;
  case BinOp::Le: return Op::Le;
  case BinOp::Gt: return Op::Gt;
  case BinOp::Ge: return Op::Ge;
  case BinOp::Eq: return Op::Eq;
  case BinOp::Ne: return Op::Ne;
  case BinOp::MatMul: return Op::MatMul;
  }
  return Op::Add;
}

bool isCompare(BinOp op) {
  return op == BinOp::Lt || op == BinOp::Le || op == BinOp::Gt || op == BinOp::Ge ||
         op == BinOp::Eq || op == BinOp::Ne;
}

// Folds a constant expression: numbers, true/false, unary minus, + - * / ^, and a name when
// `name(e, out)` gives its value (a def's argument that the call gave a constant).
template <typename NameFold>
bool foldWith(const Expr &e, double &out, const NameFold &name) {
  switch (e.kind) {
  case Expr::Number:
  case Expr::Bool: out = e.number; return true;
  case Expr::Name: return name(e, out);
  case Expr::Neg:
    if (!foldWith(*e.args[0], out, name)) return false;
    out = -out;
    return true;
  case Expr::Binary: {
    double a, b;
    if (!foldWith(*e.args[0], a, name) || !foldWith(*e.args[1], b, name)) return false;
    switch (e.op) {
    case BinOp::Add: out = a + b; return true;
    case BinOp::Sub: out = a - b; return true;
    case BinOp::Mul: out = a * b; return true;
    case BinOp::Div: out = a / b; return true;
    case BinOp::Pow: out = std::pow(a, b); return true;
    default: return false;
    }
  }
  default: return false;
  }
}

class Sema {
public:
  Sema(const ModuleAST &m, SourceManager &sm) : m_(m), sm_(sm), b_(model_.forward) {}
  Model run();

private:
  struct Sym {
    bool isDim = false;
    int dimIndex = 0;
    ValueId v = ir::kNoValue;
    Loc loc;
    // A binding (`NAME = EXPR`, an output or a metric) whose expression is a constant
    // expression: its value, folded once where it is bound, for the places that need a
    // constant. As a value in an expression it is still the node v.
    std::optional<double> constant;
    bool whole = false;  // the constant is written as a whole number (spelledWhole)
  };
  // Where names are looked up: the globals, or the arguments of an inlined def. An argument
  // also keeps the expression the call gave it, in the caller's scope, so that a constant
  // passed to a def (an axis, a slope, a class count, a reshape dim) stays a constant inside.
  struct Scope;
  struct ArgExpr {
    const Expr *expr;
    const Scope *scope;
    std::optional<double> constant;  // the argument folded once, at the call
    bool whole = false;              // the argument is written as a whole number (spelledWhole)
  };
  using ArgExprs = std::map<std::string, ArgExpr>;
  struct Scope {
    const std::map<std::string, ValueId> *locals = nullptr;  // null: global scope
    size_t visibleDefs = 0;                                  // defs_[0..visibleDefs) callable
    const Stmt *def = nullptr;
    const ArgExprs *argExprs = nullptr;                      // with locals: the call's arguments
  };
  static const Scope kGlobal;

  const ir::Function &fn() const { return model_.forward; }
  const ir::Node &node(ValueId v) const { return model_.forward.node(v); }
  std::string text(const Expr &e) const { return exprText(sm_, m_.file, e); }
  void at(const Expr &e) {
    b_.loc = e.loc;
    b_.srcName.clear();
  }
  std::string shapeOf(ValueId v) const { return fmtShape(node(v).shape, fn().dimNames); }

  void declare(const std::string &name, Loc loc, Sym sym);
  void collectNames();
  Shape resolveType(const TypeAST &t, const std::string &what, bool allowSymbolicFirst);
  void declareParam(const Stmt &s);
  void checkDefBody(const Expr &e, const Stmt &def, const std::set<std::string> &args);
  void parseOptimizer(const Expr *e, Loc at);
  void bindName(ValueId v, const std::string &name);
  void warnUnreachedParams(ValueId loss);

  ValueId eval(const Expr &e, const Scope &sc);
  ValueId evalNode(const Expr &e, const Scope &sc);
  ValueId evalName(const Expr &e, const Scope &sc);
  ValueId evalBinary(const Expr &e, const Scope &sc);
  ValueId evalMatMul(const Expr &e, ValueId a, ValueId b);
  ValueId evalCall(const Expr &e, const Scope &sc);
  ValueId evalBuiltin(const Expr &e, const Builtin &bi, const Scope &sc);
  ValueId callDef(const Expr &e, size_t index, const Scope &sc);

  std::vector<const Expr *> bindArgs(const Expr &call, const std::string &fname,
                                     const std::vector<std::string> &params, size_t required);
  static void resolveArg(const Expr *&e, const Scope *&sc);
  bool foldIn(const Expr &e, const Scope &sc, double &out) const;
  bool spelledWhole(const Expr &e, const Scope &sc) const;
  std::string notConstant(const Expr &e, const Scope &sc);
  static void rejectPythonBool(const Expr &name);
  double constant(const Expr &e, const std::string &what, const Scope &sc = kGlobal);
  int64_t wholeNumber(const Expr &e, const std::string &what, const Scope &sc = kGlobal);
  int axis(const Expr &e, int rank, const std::string &fname, const Scope &sc);
  void requireFloat(ValueId v, const Expr &e, const std::string &what);
  void noteClasses(ValueId labels, int64_t classes, Loc loc);
  template <typename F>
  ValueId withText(const Expr &e, F &&build);

  const ModuleAST &m_;
  SourceManager &sm_;
  Model model_;
  ir::Builder b_;
  std::map<std::string, Sym> globals_;
  std::map<std::string, Loc> allNames_;  // every global name -> its first definition
  std::map<std::string, Loc> allDefs_;
  std::vector<const Stmt *> defs_;
  std::map<std::string, size_t> defIndex_;
  std::map<std::pair<size_t, std::vector<ValueId>>, ValueId> memo_;
  std::map<std::string, Loc> classesLoc_;
  int evalDepth_ = 0;
  int defDepth_ = 0;
  int64_t inlined_ = 0;
  std::map<int, Loc> dimValueUses_;  // dim index -> its first use as a value
};

void Sema::declare(const std::string &name, Loc loc, Sym sym) {
  auto it = globals_.find(name);
  if (it != globals_.end())
    userError(loc, "`{}` is already bound (at {}); each name is bound once", name, where(it->second.loc));
  if (auto d = defIndex_.find(name); d != defIndex_.end())
    userError(loc, "`{}` is already bound (a def at {}); each name is bound once", name,
              where(defs_[d->second]->nameLoc));
  sym.loc = loc;
  globals_[name] = sym;
}

void Sema::collectNames() {
  for (const Stmt &s : m_.stmts) {
    switch (s.kind) {
    case Stmt::Dim:
      for (size_t i = 0; i < s.names.size(); ++i) allNames_.emplace(s.names[i], s.nameLocs[i]);
      break;
    case Stmt::Input:
    case Stmt::Param:
    case Stmt::Bind:
    case Stmt::Output:
    case Stmt::Metric: allNames_.emplace(s.name, s.nameLoc); break;
    case Stmt::Def: allDefs_.emplace(s.name, s.nameLoc); break;
    default: break;
    }
  }
}

Shape Sema::resolveType(const TypeAST &t, const std::string &what, bool allowSymbolicFirst) {
  if (t.dims.size() > static_cast<size_t>(ir::kMaxRank))
    userError(t.loc, "tensors may have at most {} dims, {} has {}", ir::kMaxRank, what, t.dims.size());
  Shape s;
  // A number, written (`spelling`, whole: written without a point or exponent) or the value of
  // a binding (`which` says which), as a dim. Like torch's sizes (ints), a number written in
  // the type is written as a whole number: `[3.0]` is an error, as the axis `1.0` is. A
  // binding's value only has to be whole: `/` is the only division (`half = hidden / 2`).
  auto fixed = [&](double v, bool whole, const std::string &spelling, Loc loc, const std::string &which) {
    if (v < 1 || v != std::floor(v) || v > kMaxDimSize)
      userError(loc, "a dim must be a positive whole number (at most 2^30), got {}{}", ir::formatNumber(v), which);
    if (!whole)
      userError(loc, "a dim must be written as a whole number, got `{}`; write {}", spelling, ir::formatNumber(v));
    s.push_back(ir::Dim::fixed(static_cast<int64_t>(v)));
  };
  for (size_t i = 0; i < t.dims.size(); ++i) {
    const DimAST &d = t.dims[i];
    if (!d.isName) {
      fixed(d.number, d.whole, d.name, d.loc, "");
      continue;
    }
    auto it = globals_.find(d.name);
    if (it == globals_.end()) {
      if (allNames_.count(d.name))
        userError(d.loc, "`{}` is used before its definition at {}", d.name, where(allNames_[d.name]));
      userError(d.loc, "undefined dim `{}`; declare it with `dim {}`", d.name, d.name);
    }
    if (!it->second.isDim && it->second.constant) {
      // A binding of a constant (`hidden = 128`) is that number.
      fixed(*it->second.constant, true, d.name, d.loc,
            fmt::format(" (`{}`, bound at {})", d.name, where(it->second.loc)));
      continue;
    }
    if (!it->second.isDim)
      userError(d.loc, "`{}` is not a dim or a constant (bound at {})", d.name, where(it->second.loc));
    if (i != 0 || !allowSymbolicFirst) {
      if (allowSymbolicFirst)
        userError(d.loc, "only the first dim of an input may be a dim name (the batch dim); `{}` is dim {} of {}",
                  d.name, i + 1, what);
      userError(d.loc, "the shape of {} must be static: `{}` is a symbolic dim", what, d.name);
    }
    s.push_back(ir::Dim::sym(it->second.dimIndex));
  }
  checkSize(s, t.loc);
  return s;
}

void Sema::declareParam(const Stmt &s) {
  if (s.name == "loss")
    userError(s.nameLoc, "a param may not be named `loss` (gradient files use that name)");
  if (globals_.count(s.name) || defIndex_.count(s.name)) declare(s.name, s.nameLoc, {});
  ParamInfo p;
  p.name = s.name;
  p.loc = s.nameLoc;
  if (s.hasType) {
    if (s.type.isInt) userError(s.type.loc, "params are float tensors; `int` is only for inputs");
    p.shape = resolveType(s.type, "param " + s.name, false);
  }
  const Expr &e = *s.expr;
  double v;
  // An initialiser's name is the initialiser even when a binding has that name (`he = 0.1`).
  bool initName = e.kind == Expr::Name && kInitNames.count(e.name);
  if (!initName && foldIn(e, kGlobal, v)) {
    if (!std::isfinite(v)) userError(e.loc, "the value of param {} is not a finite number", s.name);
    p.init = InitKind::Const;
    p.initArgs = {v};
  } else {
    if ((e.kind != Expr::Name && e.kind != Expr::Call) ||
        (e.kind == Expr::Name && !initName && (globals_.count(e.name) || allNames_.count(e.name))))
      userError(e.loc, "expected an initialiser (zeros, ones, const(v), normal(mean, std), uniform(lo, hi), "
                       "glorot, he) or a constant{}", notConstant(e, kGlobal));
    if (!kInitNames.count(e.name)) {
      // torch.nn.init's names for the two scaled initialisers.
      auto startsWith = [&](const char *prefix) { return e.name.rfind(prefix, 0) == 0; };
      std::vector<std::string> inits(kInitNames.begin(), kInitNames.end());
      std::string hint = startsWith("xavier") || startsWith("glorot") ? " (Xavier uniform is glorot)"
                         : startsWith("kaiming") || startsWith("he_") ? " (Kaiming normal is he)"
                                                                      : didYouMean(e.name, inits);
      userError(e.loc, "unknown initialiser `{}`; expected zeros, ones, const(v), normal(mean, std), "
                       "uniform(lo, hi), glorot or he{}", e.name, hint);
    }
    static const std::map<std::string, std::pair<InitKind, std::vector<std::string>>> inits = {
        {"zeros", {InitKind::Zeros, {}}},       {"ones", {InitKind::Ones, {}}},
        {"const", {InitKind::Const, {"v"}}},    {"normal", {InitKind::Normal, {"mean", "std"}}},
        {"uniform", {InitKind::Uniform, {"lo", "hi"}}}, {"glorot", {InitKind::Glorot, {}}},
        {"he", {InitKind::He, {}}},
    };
    const auto &[kind, names] = inits.at(e.name);
    p.init = kind;
    std::vector<double> defaults = kind == InitKind::Uniform ? std::vector<double>{0, 1}
                                   : kind == InitKind::Normal ? std::vector<double>{0, 1}
                                                              : std::vector<double>{};
    if (e.kind == Expr::Call) {
      auto args = bindArgs(e, e.name, names, kind == InitKind::Const ? 1 : 0);
      for (size_t i = 0; i < args.size(); ++i)
        p.initArgs.push_back(args[i] ? constant(*args[i], "an initialiser argument") : defaults[i]);
    } else {
      if (kind == InitKind::Const) userError(e.loc, "const needs a value: const(v)");
      p.initArgs = defaults;
    }
    if (kind == InitKind::Normal && p.initArgs[1] < 0)
      userError(e.loc, "normal: the standard deviation must not be negative");
    if (kind == InitKind::Uniform && p.initArgs[0] > p.initArgs[1])
      userError(e.loc, "uniform: lo must not be greater than hi");
    if ((kind == InitKind::Glorot || kind == InitKind::He) && p.shape.size() < 2)
      userError(e.loc, "{} needs a param of 2 dims or more; {} has shape {}", e.name, s.name,
                fmtShape(p.shape, fn().dimNames));
  }
  b_.loc = s.nameLoc;
  b_.srcName.clear();
  Sym sym;
  sym.v = b_.param(s.name, p.shape);
  declare(s.name, s.nameLoc, sym);
  model_.params.push_back(std::move(p));
}

void Sema::checkDefBody(const Expr &e, const Stmt &def, const std::set<std::string> &args) {
  if (e.kind == Expr::Name && !args.count(e.name)) {
    if (defIndex_.count(e.name) || builtins().count(e.name))
      userError(e.loc, "`{}` is a function; call it as {}(...)", e.name, e.name);
    userError(e.loc, "`{}` is not defined in def {}: a def body sees only its arguments, earlier defs "
                     "and the built-ins{}", e.name, def.name,
              didYouMean(e.name, std::vector<std::string>(args.begin(), args.end())));
  }
  if (e.kind == Expr::Call) {
    if (e.name == def.name)
      userError(e.loc, "def {} calls itself; recursion is not allowed", def.name);
    if (!defIndex_.count(e.name) && !builtins().count(e.name)) {
      if (allDefs_.count(e.name))
        userError(e.loc, "def {} calls `{}`, which is defined later (at {}); a def may call only earlier defs",
                  def.name, e.name, where(allDefs_[e.name]));
      userError(e.loc, "unknown function `{}`{}", e.name,
                didYouMean(e.name, callableNames(defIndex_, defIndex_.size())));
    }
  }
  for (const ExprPtr &a : e.args) checkDefBody(*a, def, args);
}

std::vector<const Expr *> Sema::bindArgs(const Expr &call, const std::string &fname,
                                         const std::vector<std::string> &params, size_t required) {
  std::vector<const Expr *> out(params.size(), nullptr);
  bool sawKeyword = false;
  size_t positional = 0;
  for (size_t i = 0; i < call.args.size(); ++i) {
    const std::string &kw = i < call.argNames.size() ? call.argNames[i] : std::string();
    if (kw.empty()) {
      if (sawKeyword) userError(call.args[i]->loc, "a positional argument after a keyword argument");
      if (positional >= params.size())
        userError(call.args[i]->loc, "{} takes {}{} argument{}, got {}", fname,
                  required == params.size() ? "" : "at most ", params.size(), params.size() == 1 ? "" : "s",
                  call.args.size());
      out[positional++] = call.args[i].get();
      continue;
    }
    sawKeyword = true;
    auto it = std::find(params.begin(), params.end(), kw);
    if (it == params.end())
      userError(call.argNameLocs[i], "unknown keyword argument `{}` for {}; it takes ({})", kw, fname,
                joinNames(params));
    size_t k = static_cast<size_t>(it - params.begin());
    if (out[k]) userError(call.argNameLocs[i], "argument `{}` of {} is given twice", kw, fname);
    out[k] = call.args[i].get();
  }
  for (size_t k = 0; k < required; ++k)
    if (!out[k]) userError(call.loc, "{} needs the argument `{}` ({} takes {})", fname, params[k], fname,
                           joinNames(params));
  return out;
}

const Sema::Scope Sema::kGlobal;

// Follows a name that is a def's argument to the expression the call gave it (through
// nested calls), with the scope that expression is read in.
void Sema::resolveArg(const Expr *&e, const Scope *&sc) {
  while (e->kind == Expr::Name && sc->argExprs) {
    auto it = sc->argExprs->find(e->name);
    if (it == sc->argExprs->end()) return;
    e = it->second.expr;
    sc = it->second.scope;
  }
}

// Folds a constant expression in a scope: inside a def, an argument given a constant is that
// constant; among the globals, a binding whose expression is constant is its value. Each is
// folded once, an argument at its call (callDef), a binding where it is bound (run), not
// again at each use: `def f1(x, s) = f0(x, s + s)` nested 40 deep, or `c1 = c0 + c0`,
// `c2 = c1 + c1`, ... 40 long, would otherwise walk 2^40 expressions.
bool Sema::foldIn(const Expr &e, const Scope &sc, double &out) const {
  return foldWith(e, out, [&](const Expr &n, double &v) {
    std::optional<double> c;
    if (sc.argExprs) {
      auto it = sc.argExprs->find(n.name);
      if (it != sc.argExprs->end()) c = it->second.constant;
    } else if (!sc.locals) {
      auto it = globals_.find(n.name);
      if (it != globals_.end()) c = it->second.constant;
    }
    if (c) v = *c;
    return c.has_value();
  });
}

// Whether a constant expression is written as a whole number, as a Python int is: whole
// number literals (no `.` or exponent), unary minus, `+ - *`, `^` with a non-negative
// exponent, and names of constants written so (looked up, like foldIn, in what was worked
// out once where they were bound). `1.0`, `true` and `2 / 1` are not: an axis is an int.
bool Sema::spelledWhole(const Expr &e, const Scope &sc) const {
  switch (e.kind) {
  case Expr::Number: {
    std::string_view t = std::string_view(sm_.text(m_.file)).substr(e.begin, e.end - e.begin);
    return t.find_first_of(".eE") == std::string_view::npos;
  }
  case Expr::Name:
    if (sc.argExprs) {
      auto it = sc.argExprs->find(e.name);
      return it != sc.argExprs->end() && it->second.constant && it->second.whole;
    }
    if (!sc.locals) {
      auto it = globals_.find(e.name);
      return it != globals_.end() && it->second.constant && it->second.whole;
    }
    return false;
  case Expr::Neg: return spelledWhole(*e.args[0], sc);
  case Expr::Binary: {
    if (!spelledWhole(*e.args[0], sc) || !spelledWhole(*e.args[1], sc)) return false;
    double b;
    if (e.op == BinOp::Pow) return foldIn(*e.args[1], sc, b) && b >= 0;
    return e.op == BinOp::Add || e.op == BinOp::Sub || e.op == BinOp::Mul;
  }
  default: return false;  // true/false, a call, a list
  }
}

// Why `e`, which does not fold, is not a constant: the first name in it that is not one,
// followed to the global it stands for through def arguments (", but `h` (bound at 5:1) is
// not a constant"), or "" when no name is to blame (a call, a comparison). An undefined
// name, or one used before its definition, is the error of that name.
std::string Sema::notConstant(const Expr &e, const Scope &sc) {
  const Expr *r = &e;
  const Scope *rs = &sc;
  resolveArg(r, rs);
  switch (r->kind) {
  case Expr::Name: {
    double v;
    if (foldIn(*r, *rs, v)) return "";
    if (rs->locals) return "";  // checkDefBody allows only arguments, and resolveArg followed them
    auto it = globals_.find(r->name);
    if (it == globals_.end()) evalName(*r, *rs);  // throws the name's own error
    const Sym &sym = it->second;
    if (sym.isDim) return fmt::format(", but `{}` is a dim (a size known at run time)", r->name);
    const ir::Node &n = node(sym.v);
    if (n.op == Op::Input && n.name == r->name) return fmt::format(", but `{}` is an input", r->name);
    if (n.op == Op::Param && n.name == r->name) return fmt::format(", but `{}` is a param", r->name);
    return fmt::format(", but `{}` (bound at {}) is not a constant", r->name, where(sym.loc));
  }
  case Expr::Neg:
  case Expr::Binary:
    for (const ExprPtr &a : r->args) {
      double v;
      if (!foldIn(*a, *rs, v)) return notConstant(*a, *rs);
    }
    return "";
  default: return "";
  }
}

// An undefined name `True` or `False`: Python's spelling of the boolean literals.
void Sema::rejectPythonBool(const Expr &name) {
  if (name.name == "True" || name.name == "False")
    userError(name.loc, "`{}` is not defined; the boolean literals are `true` and `false`", name.name);
}

double Sema::constant(const Expr &e, const std::string &what, const Scope &sc) {
  double v;
  if (!foldIn(e, sc, v))
    userError(e.loc, "{} must be a constant (numbers, true/false, arithmetic and names bound to constants){}", what,
              notConstant(e, sc));
  if (!std::isfinite(v)) userError(e.loc, "{} is not a finite number", what);
  return v;
}

int64_t Sema::wholeNumber(const Expr &e, const std::string &what, const Scope &sc) {
  double v = constant(e, what, sc);
  if (v != std::floor(v)) userError(e.loc, "{} must be a whole number, got {}", what, ir::formatNumber(v));
  if (std::fabs(v) > kMaxDimSize) userError(e.loc, "{} is too large: {} (at most 2^30)", what, ir::formatNumber(v));
  // As torch takes an int there (a size, a class count), a number written `3.0` or `1e1` is an
  // error too; a binding's value (`rows = classes / 4`) only has to be whole, as for a type.
  if (e.kind == Expr::Number && !spelledWhole(e, sc))
    userError(e.loc, "{} must be written as a whole number, got `{}`; write {}", what, text(e),
              ir::formatNumber(v + 0.0));
  return static_cast<int64_t>(v);
}

int Sema::axis(const Expr &e, int rank, const std::string &fname, const Scope &sc) {
  const Expr *given = &e;
  const Scope *gs = &sc;
  resolveArg(given, gs);
  // `axis=[0, 1]` (NumPy and JAX take a list of axes): one axis at a time, as for a tuple.
  if (given->kind == Expr::List) {
    bool reduction = fname == "sum" || fname == "mean" || fname == "max" || fname == "min" || fname == "logsumexp";
    if (reduction)
      userError(e.loc, "{} takes one axis (or all, without `axis`), not a list: reduce one axis at a time, "
                       "e.g. {}({}(x, axis = 1), axis = 0)", fname, fname, fname);
    userError(e.loc, "{} takes one axis, not a list", fname);
  }
  // `max(a, b)`, torch.max's element-wise form, reads b as an axis: point to maximum(a, b),
  // also for a number that cannot be an axis (`max(x, 0.5)` or `max(x, 0.0)`, a clamp).
  if (double v; fname == "max" || fname == "min") {
    const char *elementwise = fname == "max" ? "maximum" : "minimum";
    if (!foldIn(e, sc, v))
      userError(e.loc, "the axis of {} must be a constant (numbers, true/false, arithmetic and names bound to "
                       "constants){}; for the element-wise {} of two tensors, use {}(a, b)",
                fname, notConstant(e, sc), elementwise, elementwise);
    if (std::isfinite(v) && (v != std::floor(v) || !spelledWhole(e, sc))) {
      std::string got = v != std::floor(v) ? ir::formatNumber(v) : "`" + text(e) + "`";
      userError(e.loc, "the axis of {} must be a whole number, got {}; for the element-wise {} of a tensor and a "
                       "number, use {}(a, {})",
                fname, got, elementwise, elementwise, text(e));
    }
  }
  // Like torch's `dim` (an int), an axis is written as a whole number: `1.5`, and also `1.0`
  // or `true`, which fold to one, are errors (`max(x, 0.0)` for maximum is caught above).
  if (double v = constant(e, "the axis of " + fname, sc); v != std::floor(v) || !spelledWhole(e, sc))
    userError(e.loc, "the axis of {} must be a whole number such as 1 or -1, got `{}`{}", fname, text(e),
              v == std::floor(v) && std::fabs(v) <= kMaxDimSize ? "; write " + ir::formatNumber(v + 0.0) : "");
  int64_t a = wholeNumber(e, "the axis of " + fname, sc);
  if (a < -rank || a >= rank)
    userError(e.loc, "axis {} is out of range for a tensor of rank {}", a, rank);
  return static_cast<int>(a < 0 ? a + rank : a);
}

void Sema::requireFloat(ValueId v, const Expr &e, const std::string &what) {
  if (node(v).dtype != DType::F32)
    userError(e.loc, "{} expects a float tensor, but `{}` is an int tensor", what, text(e));
}

void Sema::noteClasses(ValueId labels, int64_t classes, Loc loc) {
  const ir::Node &n = node(labels);
  // Labels the model computes come from argmax: over an axis of K elements they range over
  // 0..K-1, and one of C classes or more would count as no class at all (a zero row of onehot,
  // no loss), where PyTorch raises an IndexError. Caught here, as the labels of a data file are
  // when it is read.
  if (n.op == Op::ArgMax) {
    const ir::Dim &k = node(n.operands[0]).shape[static_cast<size_t>(std::countr_zero(n.axes))];
    if (k.isStatic() && k.factor > classes)
      userError(n.loc.valid() ? n.loc : loc, "these labels range over 0..{} (argmax over an axis of {}), but there are "
                "only {} classes (0..{})", k.factor - 1, k.factor, classes, classes - 1);
    return;
  }
  if (n.op != Op::Input) return;
  for (InputInfo &in : model_.inputs) {
    if (in.name != n.name) continue;
    if (in.classes != 0 && in.classes != classes)
      userError(loc, "labels `{}` are used with {} classes here but with {} classes at {}", in.name, classes,
                in.classes, where(classesLoc_[in.name]));
    in.classes = classes;
    classesLoc_[in.name] = loc;
  }
}

template <typename F>
ValueId Sema::withText(const Expr &e, F &&build) {
  try {
    return build();
  } catch (const UserError &err) {
    throw UserError(err.loc, text(e) + ": " + err.what());
  }
}

ValueId Sema::eval(const Expr &e, const Scope &sc) {
  struct Depth {
    int &d;
    ~Depth() { --d; }
  } depth{++evalDepth_};
  if (evalDepth_ > kMaxEvalDepth)
    userError(e.loc, "expression nested too deeply through def calls (more than {} levels)", kMaxEvalDepth);
  if (fn().size() > kMaxNodes)
    userError(e.loc, "the program grows beyond {} IR nodes (defs inlined too often)", kMaxNodes);
  ValueId v = evalNode(e, sc);
  checkSize(node(v).shape, e.loc);
  return v;
}

ValueId Sema::evalNode(const Expr &e, const Scope &sc) {
  switch (e.kind) {
  case Expr::Number:
  case Expr::Bool:
    at(e);
    return b_.constant(e.number);
  case Expr::Name: return evalName(e, sc);
  case Expr::List:
    userError(e.loc, "a list [...] is only allowed as the shape argument of reshape");
  case Expr::Neg: {
    const Expr &x = *e.args[0];
    if (x.kind == Expr::Number) {
      at(e);
      return b_.constant(-x.number);
    }
    ValueId v = eval(x, sc);
    requireFloat(v, x, "unary -");
    at(e);
    return b_.neg(v);
  }
  case Expr::Binary: return evalBinary(e, sc);
  case Expr::Call: return evalCall(e, sc);
  }
  internalError("unknown expression kind");
}

ValueId Sema::evalName(const Expr &e, const Scope &sc) {
  if (sc.locals) {
    auto it = sc.locals->find(e.name);
    if (it != sc.locals->end()) return it->second;
    userError(e.loc, "`{}` is not defined in def {}: a def body sees only its arguments, earlier defs "
                     "and the built-ins", e.name, sc.def->name);
  }
  auto it = globals_.find(e.name);
  if (it != globals_.end()) {
    if (!it->second.isDim) return it->second.v;
    dimValueUses_.emplace(it->second.dimIndex, e.loc);
    at(e);
    return b_.dimSize(ir::Dim::sym(it->second.dimIndex));
  }
  if (allNames_.count(e.name))
    userError(e.loc, "`{}` is used before its definition at {}", e.name, where(allNames_[e.name]));
  if (builtins().count(e.name) || allDefs_.count(e.name))
    userError(e.loc, "`{}` is a function; call it as {}(...)", e.name, e.name);
  rejectPythonBool(e);
  std::vector<std::string> known;
  for (const auto &[name, sym] : globals_) known.push_back(name);
  userError(e.loc, "undefined name `{}`{}", e.name, didYouMean(e.name, known));
}

ValueId Sema::evalBinary(const Expr &e, const Scope &sc) {
  const Expr &lhs = *e.args[0], &rhs = *e.args[1];
  ValueId a = eval(lhs, sc);
  ValueId b = eval(rhs, sc);
  if (isCompare(e.op)) {
    if (node(a).dtype != node(b).dtype) {
      at(e);
      if (node(a).dtype == DType::I32) a = b_.unary(Op::Cast, a);
      else b = b_.unary(Op::Cast, b);
    }
  } else {
    std::string what = fmt::format("operator {}", binOpSpelling(e.op));
    requireFloat(a, lhs, what);
    requireFloat(b, rhs, what);
  }
  if (e.op == BinOp::MatMul) return evalMatMul(e, a, b);
  at(e);
  return withText(e, [&] { return b_.binary(binOpToIR(e.op), a, b); });
}

// `[m,k] @ [k,n]` is a matmul; `[k] @ [k,n]` and `[m,k] @ [k]` reshape the vector to a
// 1-row (1-column) matrix and the product back to a vector.
ValueId Sema::evalMatMul(const Expr &e, ValueId a, ValueId b) {
  Shape sa = node(a).shape, sb = node(b).shape;
  if (sa.empty() || sb.empty() || sa.size() > 2 || sb.size() > 2 || (sa.size() == 1 && sb.size() == 1))
    userError(e.loc, "{}: @ multiplies a matrix or vector by a matrix ([m,k]@[k,n], [k]@[k,n], [m,k]@[k]); "
                     "got shapes {} and {}{}", text(e), shapeOf(a), shapeOf(b),
              sa.size() == 1 && sb.size() == 1 ? "; for the dot product of two vectors write sum(u * v)" : "");
  ir::Dim ka = sa.back(), kb = sb[0];
  if (ka != kb)
    userError(e.loc, "{}: {} @ {}: inner sizes {} and {} differ", text(e), shapeOf(a), shapeOf(b),
              ir::formatDim(ka, fn().dimNames), ir::formatDim(kb, fn().dimNames));
  at(e);
  if (sa.size() == 1) a = b_.reshape(a, {ir::Dim::fixed(1), ka});
  if (sb.size() == 1) b = b_.reshape(b, {kb, ir::Dim::fixed(1)});
  ValueId r = withText(e, [&] { return b_.matmul(a, b); });
  if (sa.size() == 1) r = b_.reshape(r, {sb[1]});
  else if (sb.size() == 1) r = b_.reshape(r, {sa[0]});
  return r;
}

ValueId Sema::evalCall(const Expr &e, const Scope &sc) {
  auto d = defIndex_.find(e.name);
  if (d != defIndex_.end() && d->second < sc.visibleDefs) return callDef(e, d->second, sc);
  if (!sc.locals && allDefs_.count(e.name) && !builtins().count(e.name))
    userError(e.loc, "def `{}` is used before its definition at {}", e.name, where(allDefs_[e.name]));
  auto bi = builtins().find(e.name);
  if (bi != builtins().end()) return evalBuiltin(e, bi->second, sc);
  if (kInitNames.count(e.name))
    userError(e.loc, "`{}` is an initialiser; it can only follow `param NAME: TYPE =`", e.name);
  if (!optimizerDefaults(e.name).empty())
    userError(e.loc, "`{}` is an optimiser; it can only follow `minimize ... with`", e.name);
  userError(e.loc, "unknown function `{}`{}", e.name, didYouMean(e.name, callableNames(defIndex_, sc.visibleDefs)));
}

ValueId Sema::callDef(const Expr &e, size_t index, const Scope &sc) {
  const Stmt &def = *defs_[index];
  auto args = bindArgs(e, def.name, def.names, def.names.size());
  std::vector<ValueId> vals;
  for (const Expr *a : args) vals.push_back(eval(*a, sc));
  auto key = std::make_pair(index, vals);
  if (auto it = memo_.find(key); it != memo_.end()) return it->second;
  if (++inlined_ > kMaxNodes)
    userError(e.loc, "the program grows beyond {} inlined def calls", kMaxNodes);
  if (defDepth_ >= kMaxDefDepth)
    userError(e.loc, "def calls nested too deeply (more than {} levels)", kMaxDefDepth);
  std::map<std::string, ValueId> locals;
  ArgExprs argExprs;
  for (size_t i = 0; i < vals.size(); ++i) {
    locals[def.names[i]] = vals[i];
    double c;
    bool folded = foldIn(*args[i], sc, c);
    argExprs[def.names[i]] = {args[i], &sc, folded ? std::optional<double>(c) : std::nullopt,
                              folded && spelledWhole(*args[i], sc)};
  }
  Scope inner{&locals, index, &def, &argExprs};
  // The values of the body take the place of the outermost call as their call place.
  Loc outerCall = b_.callLoc;
  if (defDepth_ == 0) b_.callLoc = e.loc;
  ++defDepth_;
  ValueId v = eval(*def.expr, inner);
  --defDepth_;
  b_.callLoc = outerCall;
  memo_[key] = v;
  return v;
}

ValueId Sema::evalBuiltin(const Expr &e, const Builtin &bi, const Scope &sc) {
  auto args = bindArgs(e, e.name, bi.params, bi.required);
  auto value = [&](size_t i, bool needFloat = true) {
    ValueId v = eval(*args[i], sc);
    if (needFloat) requireFloat(v, *args[i], e.name);
    return v;
  };
  // (The two arguments, args[0] and args[1]. One of [B, 1] against the other's [B], a
  // column of logits against a vector of targets, is the common case: the fix is named.)
  auto sameShape = [&](ValueId a, ValueId b) {
    const Shape &sa = node(a).shape, &sb = node(b).shape;
    if (sa == sb) return;
    std::string fix;
    auto oneMore = [](const Shape &longer, const Shape &shorter) {
      return longer.size() == shorter.size() + 1 && longer.back() == ir::Dim::fixed(1) &&
             std::equal(shorter.begin(), shorter.end(), longer.begin());
    };
    if (oneMore(sa, sb) || oneMore(sb, sa)) {
      bool first = oneMore(sb, sa);  // the first is the shorter: reshape it
      fix = fmt::format("; write reshape({}, {})", text(*args[first ? 0 : 1]),
                        ir::formatShapeForUser(first ? sb : sa, fn().dimNames));
    }
    userError(e.loc, "{}: both arguments must have the same shape, got {} and {}{}", e.name, shapeOf(a), shapeOf(b),
              fix);
  };
  switch (bi.kind) {
  case BK::Unary: {
    ValueId x = value(0);
    at(e);
    return b_.unary(bi.op, x);
  }
  case BK::LeakyRelu: {
    ValueId x = value(0);
    double slope = args[1] ? constant(*args[1], "the slope of leaky_relu", sc) : 0.01;
    at(e);
    return b_.unary(Op::LeakyRelu, x, slope);
  }
  case BK::MaxMin: {
    ValueId a = value(0), b = value(1);
    at(e);
    return withText(e, [&] { return b_.binary(bi.op, a, b); });
  }
  case BK::Where: {
    ValueId c = value(0, false), a = value(1), b = value(2);
    at(e);
    return withText(e, [&] { return b_.where(c, a, b); });
  }
  case BK::Transpose: {
    ValueId x = value(0, false);
    at(e);
    return b_.transpose(x);
  }
  case BK::Reshape: {
    ValueId x = value(0, false);
    const Expr &list = *args[1];
    if (list.kind != Expr::List)
      userError(list.loc, "the shape argument of reshape is a list of dims, e.g. [B, 4] or [-1]");
    Shape target;
    int inferred = -1;
    for (size_t i = 0; i < list.args.size(); ++i) {
      const Expr *dp = list.args[i].get();
      const Scope *ds = &sc;
      resolveArg(dp, ds);  // a def's argument: the dim name or number the call gave
      const Expr &d = *dp;
      if (d.kind == Expr::Name) {
        auto it = globals_.find(d.name);
        if (it == globals_.end() || (!it->second.isDim && !it->second.constant))
          userError(d.loc, "`{}` is not a dim or a constant; a reshape dim is a number, a dim name, a constant "
                           "or -1", d.name);
        if (it->second.isDim) {
          target.push_back(ir::Dim::sym(it->second.dimIndex));
          continue;
        }
      }
      // `B*3` or `-B`: a dim name is a reshape dim only on its own (its size is known only at
      // run time); say so rather than that `B` must be a constant, as a lone `B` is fine.
      // dimIn finds the first dim in an expression: where it is written (in a def, the
      // argument's use) and the dim's name.
      using DimUse = std::pair<const Expr *, std::string>;
      std::function<DimUse(const Expr *, const Scope *)> dimIn = [&](const Expr *x, const Scope *xs) -> DimUse {
        const Expr *use = x;
        resolveArg(x, xs);
        if (x->kind == Expr::Name && !xs->locals) {
          auto g = globals_.find(x->name);
          if (g != globals_.end() && g->second.isDim) return {use, x->name};
        }
        if (x->kind == Expr::Neg || x->kind == Expr::Binary)
          for (const ExprPtr &a : x->args)
            if (DimUse found = dimIn(a.get(), xs); found.first) return found;
        return {nullptr, ""};
      };
      if (d.kind == Expr::Neg || d.kind == Expr::Binary)
        if (auto [use, dim] = dimIn(&d, ds); use)
          userError(use->loc, "a reshape dim is a number, a dim name on its own, a constant or -1, not arithmetic "
                              "with the dim `{}` (its size is known only at run time): write -1 for this dim", dim);
      int64_t n = wholeNumber(d, "a reshape dim", *ds);
      if (n > kMaxElements) userError(d.loc, "tensor too large: more than 2^32 elements");
      if (n == -1) {
        if (inferred >= 0) userError(d.loc, "only one dim of a reshape may be -1");
        inferred = static_cast<int>(i);
        target.push_back(ir::Dim::fixed(1));
      } else if (n < 1) {
        userError(d.loc, "a reshape dim must be positive or -1, got {}", n);
      } else {
        target.push_back(ir::Dim::fixed(n));
      }
    }
    if (target.size() > static_cast<size_t>(ir::kMaxRank))
      userError(list.loc, "tensors may have at most {} dims", ir::kMaxRank);
    checkSize(target, list.loc);
    if (inferred >= 0) {
      ir::Dim total{1, 0}, known{1, 0};
      bool ok = true;
      for (const ir::Dim &d : node(x).shape) ok &= !(total.syms & d.syms), total.factor *= d.factor, total.syms |= d.syms;
      for (const ir::Dim &d : target) ok &= !(known.syms & d.syms), known.factor *= d.factor, known.syms |= d.syms;
      if (!ok || (known.syms & ~total.syms) || total.factor % known.factor != 0)
        userError(list.loc, "cannot reshape {} to {}: the sizes do not divide", shapeOf(x),
                  exprText(sm_, m_.file, list));
      target[static_cast<size_t>(inferred)] = {total.factor / known.factor, total.syms & ~known.syms};
    }
    at(e);
    return b_.reshape(x, target);
  }
  case BK::Reduce: {
    ValueId x = value(0);
    int rank = static_cast<int>(node(x).shape.size());
    uint32_t axes = args[1] ? 1u << axis(*args[1], rank, e.name, sc) : (rank >= 32 ? ~0u : (1u << rank) - 1);
    double kd = args[2] ? constant(*args[2], "keepdims", sc) : 0;
    if (kd != 0 && kd != 1) userError(args[2]->loc, "keepdims is true or false (or 1 or 0)");
    bool keepdims = kd != 0;
    at(e);
    return b_.reduce(bi.op, x, axes, keepdims);
  }
  case BK::Row: {
    ValueId x = value(0);
    int rank = static_cast<int>(node(x).shape.size());
    if (rank == 0) userError(e.loc, "{} needs a tensor of at least one dim, got a scalar", e.name);
    int ax = args[1] ? axis(*args[1], rank, e.name, sc) : rank - 1;
    at(e);
    return b_.row(bi.op, x, ax);
  }
  case BK::ArgMax: {
    ValueId x = value(0);
    int ax = axis(*args[1], static_cast<int>(node(x).shape.size()), e.name, sc);
    at(e);
    return b_.argmax(x, ax);
  }
  case BK::OneHot: {
    ValueId y = value(0, false);
    if (node(y).dtype != DType::I32)
      userError(args[0]->loc, "onehot expects int labels, but `{}` is a float tensor", text(*args[0]));
    int64_t n = wholeNumber(*args[1], "the class count of onehot", sc);
    if (n < 1) userError(args[1]->loc, "onehot needs a positive number of classes, got {}", n);
    noteClasses(y, n, e.loc);
    at(e);
    return b_.onehot(y, n);
  }
  case BK::Mse: {
    // mse(p, t) = square(p - t)
    ValueId p = value(0), t = value(1);
    sameShape(p, t);
    at(e);
    ValueId diff = b_.sub(p, t);
    return b_.unary(Op::Square, diff);
  }
  case BK::Bce: {
    // bce(p, y) = -(y * maximum(log(q), -100) + (1 - y) * maximum(log(1 - q), -100))
    //             + (p - q) * stop_gradient((q - y) / maximum(q * (1 - q), 1e-12)),
    // q = stop_gradient(p). The last term is 0; its derivative in p is PyTorch's, finite where
    // p is 0 or 1 (there the clamped log's is 0 / 0). The derivative in y is the logs'.
    // PyTorch's values too: through q, log(sigmoid(z)) keeps its float32 saturation (-100
    // when sigmoid(z) rounds to 1) instead of becoming the stable -softplus(-z).
    ValueId p = value(0), y = value(1);
    sameShape(p, y);
    at(e);
    ValueId q = b_.unary(Op::StopGradient, p);
    auto clampLog = [&](ValueId v) {
      ValueId l = b_.unary(Op::Log, v);
      return b_.binary(Op::Maximum, l, b_.constant(-100));
    };
    ValueId logP = clampLog(q);
    ValueId pos = b_.mul(y, logP);
    ValueId oneMinusY = b_.sub(b_.constant(1), y);
    ValueId oneMinusQ = b_.sub(b_.constant(1), q);
    ValueId log1mP = clampLog(oneMinusQ);
    ValueId neg = b_.mul(oneMinusY, log1mP);
    ValueId value = b_.neg(b_.add(pos, neg));
    ValueId tiny = b_.constant(1e-12);  // (made first: one order of values under any compiler)
    ValueId var = b_.binary(Op::Maximum, b_.mul(q, oneMinusQ), tiny);
    ValueId dp = b_.unary(Op::StopGradient, b_.div(b_.sub(q, y), var));
    return b_.add(value, b_.mul(b_.sub(p, q), dp));
  }
  case BK::BceLogits: {
    // bce_with_logits(z, y) = softplus(z) - z * y
    ValueId z = value(0), y = value(1);
    sameShape(z, y);
    at(e);
    ValueId sp = b_.unary(Op::Softplus, z);
    ValueId zy = b_.mul(z, y);
    return b_.sub(sp, zy);
  }
  case BK::CrossEntropy: {
    // cross_entropy(z[B,C], y int[B]) = -mean(sum(log_softmax(z, axis=1) * onehot(y, C), axis=1))
    ValueId z = value(0), y = value(1, false);
    const Shape &sz = node(z).shape, &sy = node(y).shape;
    if (sz.size() != 2)
      userError(args[0]->loc, "cross_entropy expects logits of shape [B, C], got {}", shapeOf(z));
    if (node(y).dtype != DType::I32)
      userError(args[1]->loc, "cross_entropy expects int labels (int[B]), but `{}` is a float tensor",
                text(*args[1]));
    if (sy.size() != 1 || sy[0] != sz[0])
      userError(args[1]->loc, "cross_entropy expects labels of shape [{}], got {}",
                ir::formatDim(sz[0], fn().dimNames), shapeOf(y));
    if (!sz[1].isStatic())
      userError(args[0]->loc, "cross_entropy needs a fixed number of classes, got logits {}", shapeOf(z));
    int64_t classes = sz[1].factor;
    noteClasses(y, classes, e.loc);
    at(e);
    ValueId logp = b_.row(Op::LogSoftmax, z, 1);
    ValueId hot = b_.onehot(y, classes);
    ValueId picked = b_.reduce(Op::Sum, b_.mul(logp, hot), 1u << 1, false);
    ValueId mean = b_.reduce(Op::Mean, picked, 1u, false);
    return b_.neg(mean);
  }
  }
  internalError("unknown built-in kind");
}

void Sema::parseOptimizer(const Expr *e, Loc at) {
  OptimizerInfo &o = model_.optimizer;
  o.loc = at;
  if (!e) {
    o.kind = "sgd";
    o.args = optimizerDefaults("sgd");
    return;
  }
  o.loc = e->loc;
  if (e->kind != Expr::Name && e->kind != Expr::Call)
    userError(e->loc, "expected an optimiser such as sgd(lr = 0.1)");
  if (optimizerDefaults(e->name).empty())
    userError(e->loc, "unknown optimiser `{}`; expected one of {}{}", e->name, joinNames(optimizerNames()),
              didYouMean(e->name, optimizerNames()));
  o.kind = e->name;
  o.args = optimizerDefaults(e->name);
  if (e->kind != Expr::Call) return;
  const auto &order = optimizerArgOrder(e->name);
  auto args = bindArgs(*e, e->name, order, 0);
  for (size_t i = 0; i < args.size(); ++i) {
    if (!args[i]) continue;
    double v = constant(*args[i], "the optimiser argument " + order[i]);
    if (order[i] == "nesterov" && v != 0 && v != 1)
      userError(args[i]->loc, "nesterov is true or false (or 1 or 0)");
    if (v < 0) userError(args[i]->loc, "the optimiser argument {} must not be negative", order[i]);
    if ((order[i] == "beta1" || order[i] == "beta2" || order[i] == "alpha") && v >= 1)
      userError(args[i]->loc, "{} must be less than 1", order[i]);
    o.args[order[i]] = v;
  }
  // torch.optim.SGD refuses Nesterov momentum without momentum or with dampening.
  for (size_t i = 0; i < args.size(); ++i)
    if (args[i] && order[i] == "nesterov" && o.args["nesterov"] != 0 &&
        (o.args["momentum"] <= 0 || o.args["dampening"] != 0))
      userError(args[i]->loc, "nesterov needs momentum > 0 and dampening = 0 (as in torch.optim.SGD)");
}

void Sema::bindName(ValueId v, const std::string &name) {
  ir::Node &n = model_.forward.node(v);
  if (!ir::isLeaf(n.op) && n.srcName.empty()) n.srcName = name;
  if (n.op == Op::Const && n.srcName.empty()) n.srcName = name;
}

// A param whose value cannot change the loss gets a zero gradient, and the optimiser leaves it
// as it is (ParamInfo::reachesLoss): walk back from the loss, not through the ops that are
// never differentiated.
void Sema::warnUnreachedParams(ValueId loss) {
  std::vector<char> reach(static_cast<size_t>(fn().size()), 0);
  reach[static_cast<size_t>(loss)] = 1;
  for (ValueId v = loss; v >= 0; --v) {
    const ir::Node &n = node(v);
    if (!reach[static_cast<size_t>(v)]) continue;
    if (n.op == Op::StopGradient || n.op == Op::ArgMax || n.op == Op::OneHot ||
        ir::opKind(n.op) == ir::OpKind::Compare)
      continue;
    for (ValueId o : n.operands) reach[static_cast<size_t>(o)] = 1;
  }
  for (ParamInfo &p : model_.params) {
    ValueId v = fn().findArgument(Op::Param, p.name);
    p.reachesLoss = reach[static_cast<size_t>(v)] != 0;
    if (!p.reachesLoss)
      warn(sm_, p.loc, fmt::format("param {} does not reach the loss; its gradient is zero, and training "
                                   "leaves it as it is", p.name));
  }
}

Model Sema::run() {
  model_.sourceFile = m_.file;
  std::string stem = sm_.name(m_.file);
  if (size_t slash = stem.rfind('/'); slash != std::string::npos) stem = stem.substr(slash + 1);
  if (size_t dot = stem.rfind('.'); dot != std::string::npos && dot > 0) stem = stem.substr(0, dot);
  model_.name = stem;
  collectNames();

  Scope global;
  const Stmt *modelStmt = nullptr, *minimize = nullptr;
  ValueId loss = ir::kNoValue;
  std::vector<ir::Result> metrics, outputs;
  for (const Stmt &s : m_.stmts) {
    global.visibleDefs = defs_.size();
    switch (s.kind) {
    case Stmt::Model:
      if (modelStmt) userError(s.loc, "the model is named twice (first at {})", where(modelStmt->loc));
      modelStmt = &s;
      model_.name = s.name;
      break;
    case Stmt::Dim:
      for (size_t i = 0; i < s.names.size(); ++i) {
        if (fn().dimNames.size() >= 32) userError(s.nameLocs[i], "too many dims (at most 32)");
        Sym sym;
        sym.isDim = true;
        sym.dimIndex = static_cast<int>(fn().dimNames.size());
        declare(s.names[i], s.nameLocs[i], sym);
        model_.forward.dimNames.push_back(s.names[i]);
      }
      break;
    case Stmt::Input: {
      if (globals_.count(s.name) || defIndex_.count(s.name)) declare(s.name, s.nameLoc, {});
      InputInfo in;
      in.name = s.name;
      in.loc = s.nameLoc;
      in.dtype = s.type.isInt ? DType::I32 : DType::F32;
      in.shape = resolveType(s.type, "input " + s.name, true);
      if (in.shape.empty())
        userError(s.type.loc, "an input needs at least one dim (the batch dim), e.g. [B] or [B, 4]");
      // The batch dim is the first dim of every input (each CSV row is one sample of each).
      if (!model_.inputs.empty() && in.shape[0] != model_.inputs.front().shape[0])
        userError(s.type.dims.front().loc, "the first dim of every input is the batch dim: input {} has {}, "
                  "input {} has {}", model_.inputs.front().name,
                  ir::formatDim(model_.inputs.front().shape[0], fn().dimNames), s.name,
                  ir::formatDim(in.shape[0], fn().dimNames));
      b_.loc = s.nameLoc;
      b_.srcName.clear();
      Sym sym;
      sym.v = b_.input(s.name, in.dtype, in.shape);
      declare(s.name, s.nameLoc, sym);
      model_.inputs.push_back(std::move(in));
      break;
    }
    case Stmt::Param: declareParam(s); break;
    case Stmt::Def: {
      if (builtins().count(s.name))
        userError(s.nameLoc, "def {} would hide the built-in function of that name", s.name);
      if (auto it = defIndex_.find(s.name); it != defIndex_.end())
        userError(s.nameLoc, "def {} is defined twice (first at {})", s.name, where(defs_[it->second]->nameLoc));
      if (auto it = globals_.find(s.name); it != globals_.end())
        userError(s.nameLoc, "`{}` is already bound (at {}); each name is bound once", s.name, where(it->second.loc));
      std::set<std::string> args;
      for (size_t i = 0; i < s.names.size(); ++i)
        if (!args.insert(s.names[i]).second)
          userError(s.nameLocs[i], "def {} has two arguments named `{}`", s.name, s.names[i]);
      checkDefBody(*s.expr, s, args);
      defIndex_[s.name] = defs_.size();
      defs_.push_back(&s);
      break;
    }
    case Stmt::Bind:
    case Stmt::Output:
    case Stmt::Metric: {
      if (s.kind == Stmt::Metric && s.name == "loss")
        userError(s.nameLoc, "a metric may not be named `loss`: the loss is always reported under that name");
      if (s.kind == Stmt::Metric) {
        // train's epoch lines and --metrics file name their columns epoch, step, loss, the
        // metrics, then val_loss and val_METRIC: a metric's name must not be one of the others.
        if (s.name == "epoch" || s.name == "step" || s.name == "val_loss")
          userError(s.nameLoc, "a metric may not be named `{}`: train reports {} under that name", s.name,
                    s.name == "val_loss" ? "the validation loss" : "the " + s.name);
        for (const ir::Result &r : metrics)
          if (s.name == "val_" + r.name || r.name == "val_" + s.name)
            userError(s.nameLoc, "metric {} would share a column of train's report with metric {}: with --val, "
                                 "`val_{}` is the validation value of `{}`; rename one of them", s.name, r.name,
                      s.name.size() > r.name.size() ? r.name : s.name,
                      s.name.size() > r.name.size() ? r.name : s.name);
      }
      if (auto it = globals_.find(s.name); it != globals_.end() && s.kind != Stmt::Bind) {
        // `output z = z`, the natural way to expose a value: say what to write instead.
        const char *kw = s.kind == Stmt::Output ? "output" : "metric";
        std::string fresh = s.name + (s.kind == Stmt::Output ? "_out" : "_metric");
        while (allNames_.count(fresh) || allDefs_.count(fresh)) fresh += "_";
        userError(s.nameLoc, "`{}` is already bound (at {}); each name is bound once: give the {} a name of its "
                             "own (`{} {} = {}`) or rename the earlier `{}`", s.name, where(it->second.loc), kw,
                  kw, fresh, exprText(sm_, m_.file, *s.expr, 30), s.name);
      }
      if (globals_.count(s.name) || defIndex_.count(s.name)) declare(s.name, s.nameLoc, {});
      ValueId v = eval(*s.expr, global);
      bindName(v, s.name);
      if (s.kind == Stmt::Metric) {
        if (node(v).dtype != DType::F32 || !node(v).shape.empty())
          userError(s.expr->start, "metric {} must be a float scalar, got {}{}; take its mean(...)", s.name,
                    ir::dtypeName(node(v).dtype), shapeOf(v));
        metrics.push_back({s.name, v, ir::ResultKind::Metric});
      } else if (s.kind == Stmt::Output) {
        outputs.push_back({s.name, v, ir::ResultKind::Output});
        model_.outputLocs[s.name] = s.nameLoc;
        model_.outputExprLocs[s.name] = s.expr->start;
      }
      Sym sym;
      sym.v = v;
      if (double c; foldIn(*s.expr, global, c)) {
        sym.constant = c;
        sym.whole = spelledWhole(*s.expr, global);
      }
      declare(s.name, s.nameLoc, sym);
      break;
    }
    case Stmt::Minimize:
      if (minimize)
        userError(s.loc, "a second minimize; a model has exactly one loss (the first is at {})", where(minimize->loc));
      minimize = &s;
      loss = eval(*s.expr, global);
      if (node(loss).dtype != DType::F32 || !node(loss).shape.empty())
        userError(s.expr->start, "the loss must be a scalar, got {}{}; take its mean(...)",
                  ir::dtypeName(node(loss).dtype), shapeOf(loss));
      bindName(loss, "loss");
      parseOptimizer(s.optimizer.get(), s.loc);
      break;
    }
  }
  if (!minimize)
    throw UserError(Loc{m_.file, 0, 0}, "the model has no `minimize` statement; it needs exactly one loss");
  // A dim has a size only once a batch binds it: as a value it must be some input's batch dim.
  for (const auto &[index, loc] : dimValueUses_) {
    bool bound = false;
    for (const InputInfo &in : model_.inputs) bound |= (in.shape[0].syms & (1u << index)) != 0;
    if (!bound)
      userError(loc, "dim `{}` has no size: no input has it as its first (batch) dim", fn().dimNames[index]);
  }

  ir::Function &f = model_.forward;
  f.name = model_.name;
  f.results.push_back({"loss", loss, ir::ResultKind::Loss});
  for (auto &r : metrics) f.results.push_back(r);
  for (auto &r : outputs) f.results.push_back(r);
  ir::verify(f);
  warnUnreachedParams(loss);
  return std::move(model_);
}

}  // namespace

const std::vector<std::string> &builtinNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (auto &[k, v] : builtins()) n.push_back(k);
    return n;
  }();
  return names;
}

// On a stack of its own: evaluation recurses as deep as the expressions nest (support/LargeStack.h).
Model buildModel(const ModuleAST &m, SourceManager &sm) {
  return onLargeStack([&] { return Sema(m, sm).run(); });
}

}  // namespace gradc
