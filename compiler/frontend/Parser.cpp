// The parser (see Parser.h). Each function parses one rule of the grammar written above it.
#include "frontend/Parser.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "frontend/Frontend.h"
#include "support/LargeStack.h"

namespace gradc {

const char *binOpSpelling(BinOp op) {
  switch (op) {
  case BinOp::Add: return "+";
  case BinOp::Sub: return "-";
  case BinOp::Mul: return "*";
  case BinOp::Div: return "/";
  case BinOp::MatMul: return "@";
  case BinOp::Pow: return "^";
  case BinOp::Lt: return "<";
  case BinOp::Le: return "<=";
  case BinOp::Gt: return ">";
  case BinOp::Ge: return ">=";
  case BinOp::Eq: return "==";
  case BinOp::Ne: return "!=";
  }
  return "?";
}

std::string exprText(const SourceManager &sm, int file, const Expr &e, size_t max) {
  const std::string &text = sm.text(file);
  if (e.begin >= text.size() || e.end <= e.begin) return "";
  std::string out;
  bool space = false;
  for (size_t i = e.begin; i < std::min(e.end, text.size()); ++i) {
    char c = text[i];
    if (c == '#') {  // a comment inside a multi-line expression
      while (i < e.end && text[i] != '\n') ++i;
      space = true;
      continue;
    }
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
    if (out.size() > max) return out.substr(0, max) + "...";
  }
  return out;
}

namespace {
// RAII guard for the nesting depth of the parser's recursion. Every cycle of the recursion
// (parentheses, call arguments, unary minus, an exponent) passes through parseUnary, which
// holds the guard; one nesting level is one level of that recursion.
struct DepthGuard {
  int &d;
  DepthGuard(int &depth, const Token &t) : d(depth) {
    if (++d > kMaxExprDepth)
      throw UserError(t.loc, fmt::format("expression nested too deeply (more than {} levels)",
                                         kMaxExprDepth));
  }
  ~DepthGuard() { --d; }
};

ExprPtr leaf(Expr::Kind k, const Token &t) {
  auto e = std::make_unique<Expr>();
  e->kind = k;
  e->loc = t.loc;
  e->start = t.loc;
  e->begin = t.begin;
  e->end = t.end;
  return e;
}
}  // namespace

Parser::Parser(const SourceManager &sm, int file) : file_(file), lex_(sm, file) {
  cur_ = lex_.next();
}

const Token &Parser::peek2() {
  if (!hasNext_) {
    next_ = lex_.next();
    hasNext_ = true;
  }
  return next_;
}

Token Parser::take() {
  Token t = std::move(cur_);
  if (hasNext_) {
    cur_ = std::move(next_);
    hasNext_ = false;
  } else {
    cur_ = lex_.next();
  }
  return t;
}

void Parser::failAt(const Token &t, const std::string &msg) { throw UserError(t.loc, msg); }

static std::string describe(const Token &t) {
  if (t.kind == Tok::Ident) return fmt::format("name `{}`", t.text.substr(0, 40));
  if (t.kind == Tok::Number) return fmt::format("number {}", t.text.substr(0, 40));
  return tokName(t.kind);
}

Token Parser::expect(Tok kind, const char *what) {
  if (cur_.kind != kind) failAt(cur_, fmt::format("expected {}, found {}", what, describe(cur_)));
  return take();
}

// The `)` or `]` that closes `open`: where it is missing, the error names the opening one
// too, and at the end of the file it points at that one (the end of a file is no place).
Token Parser::expectClose(Tok kind, const char *what, const Token &open) {
  if (cur_.kind == kind) return take();
  const char *o = open.kind == Tok::LParen ? "'('" : "'['";
  if (cur_.kind == Tok::Eof) failAt(open, fmt::format("this {} is never closed: the file ends first", o));
  failAt(cur_, fmt::format("expected {}, found {} (to close the {} at {}:{})", what, describe(cur_), o, open.loc.line,
                           open.loc.col));
}

// module = stmt*
std::unique_ptr<ModuleAST> Parser::parseModule() {
  return onLargeStack([&] { return parseModuleHere(); });
}

std::unique_ptr<ModuleAST> Parser::parseModuleHere() {
  auto m = std::make_unique<ModuleAST>();
  m->file = file_;
  while (cur_.kind != Tok::Eof) m->stmts.push_back(parseStatement());
  return m;
}

// type = ["int"] "[" [dim ("," dim)*] "]"      dim = NUMBER | NAME
void Parser::parseType(TypeAST &t) {
  t.loc = cur_.loc;
  if (cur_.kind == Tok::KwInt) {
    take();
    t.isInt = true;
  }
  if (cur_.kind != Tok::LBracket)
    failAt(cur_, fmt::format("expected a type such as [B, 2] or int[B], found {}", describe(cur_)));
  take();
  if (cur_.kind != Tok::RBracket) {
    for (;;) {
      DimAST d;
      d.loc = cur_.loc;
      if (cur_.kind == Tok::Ident) {
        d.isName = true;
        d.name = take().text;
      } else if (cur_.kind == Tok::Number) {
        d.whole = cur_.text.find_first_of(".eE") == std::string::npos;
        d.name = cur_.text;
        d.number = take().number;
      } else {
        failAt(cur_, fmt::format("expected a dim (a number or a dim name), found {}", describe(cur_)));
      }
      t.dims.push_back(std::move(d));
      // (A bound on what is kept; the checker allows 8. Reported at the type, as that is.)
      if (t.dims.size() > 64) throw UserError(t.loc, "tensors may have at most 8 dims; this type has more than 64");
      if (cur_.kind != Tok::Comma) break;
      take();
    }
  }
  expect(Tok::RBracket, "',' or ']'");
}

// stmt = "model" NAME
//      | "dim" NAME ("," NAME)*
//      | "input" NAME ":" type
//      | "param" NAME [":" type] "=" expr
//      | "def" NAME "(" [NAME ("," NAME)*] ")" "=" expr
//      | ("output" | "metric") NAME "=" expr
//      | "minimize" expr ["with" expr]
//      | NAME "=" expr
Stmt Parser::parseStatement() {
  Stmt s;
  s.loc = cur_.loc;
  auto name = [&](const char *what) {
    s.nameLoc = cur_.loc;
    s.name = expect(Tok::Ident, what).text;
  };
  switch (cur_.kind) {
  case Tok::KwModel:
    take();
    s.kind = Stmt::Model;
    name("the model's name");
    break;
  case Tok::KwDim:
    take();
    s.kind = Stmt::Dim;
    for (;;) {
      s.nameLocs.push_back(cur_.loc);
      s.names.push_back(expect(Tok::Ident, "a dim name").text);
      if (s.names.size() > 32) throw UserError(s.nameLocs.back(), "too many dims (at most 32)");
      if (cur_.kind != Tok::Comma) break;
      take();
    }
    break;
  case Tok::KwInput:
    take();
    s.kind = Stmt::Input;
    name("the input's name");
    expect(Tok::Colon, "':' and the input's type");
    s.hasType = true;
    parseType(s.type);
    break;
  case Tok::KwParam:
    take();
    s.kind = Stmt::Param;
    name("the param's name");
    if (cur_.kind == Tok::Colon) {
      take();
      s.hasType = true;
      parseType(s.type);
    }
    expect(Tok::Assign, "'=' and an initialiser");
    s.expr = parseExpr();
    break;
  case Tok::KwDef:
    take();
    s.kind = Stmt::Def;
    name("the def's name");
    expect(Tok::LParen, "'(' and the def's arguments");
    if (cur_.kind != Tok::RParen) {
      for (;;) {
        s.nameLocs.push_back(cur_.loc);
        s.names.push_back(expect(Tok::Ident, "an argument name").text);
        if (s.names.size() > 256) throw UserError(s.nameLocs.back(), "too many arguments (more than 256)");
        if (cur_.kind != Tok::Comma) break;
        take();
      }
    }
    expect(Tok::RParen, "',' or ')'");
    expect(Tok::Assign, "'=' and the def's body");
    s.expr = parseExpr();
    break;
  case Tok::KwOutput:
  case Tok::KwMetric:
    s.kind = cur_.kind == Tok::KwOutput ? Stmt::Output : Stmt::Metric;
    take();
    name(s.kind == Stmt::Output ? "the output's name" : "the metric's name");
    expect(Tok::Assign, "'='");
    s.expr = parseExpr();
    break;
  case Tok::KwMinimize:
    take();
    s.kind = Stmt::Minimize;
    s.expr = parseExpr();
    if (cur_.kind == Tok::KwWith) {
      take();
      if (cur_.kind != Tok::Ident)
        failAt(cur_, fmt::format("expected an optimiser such as sgd(lr = 0.1), found {}", describe(cur_)));
      s.optimizer = parsePrimary();
    }
    break;
  case Tok::Ident:
    s.kind = Stmt::Bind;
    name("a name");
    if (cur_.kind != Tok::Assign)
      failAt(cur_, fmt::format("expected '=' after `{}` (a statement starts with a keyword or NAME =), found {}",
                               s.name.substr(0, 40), describe(cur_)));
    take();
    s.expr = parseExpr();
    break;
  default:
    failAt(cur_, fmt::format("expected a statement (model, dim, input, param, def, output, metric, "
                             "minimize or NAME = ...), found {}",
                             describe(cur_)));
  }
  return s;
}

ExprPtr Parser::makeBinary(BinOp op, const Token &opTok, ExprPtr a, ExprPtr b) {
  auto e = std::make_unique<Expr>();
  e->kind = Expr::Binary;
  e->op = op;
  e->loc = opTok.loc;
  e->start = a->start;
  e->begin = a->begin;
  e->end = b->end;
  e->height = 1 + std::max(a->height, b->height);
  if (e->height > kMaxExprDepth)
    failAt(opTok, fmt::format("expression nested too deeply (more than {} levels)", kMaxExprDepth));
  e->args.push_back(std::move(a));
  e->args.push_back(std::move(b));
  return e;
}

static bool compareOp(Tok t, BinOp &op) {
  switch (t) {
  case Tok::Lt: op = BinOp::Lt; return true;
  case Tok::Le: op = BinOp::Le; return true;
  case Tok::Gt: op = BinOp::Gt; return true;
  case Tok::Ge: op = BinOp::Ge; return true;
  case Tok::EqEq: op = BinOp::Eq; return true;
  case Tok::Ne: op = BinOp::Ne; return true;
  default: return false;
  }
}

// expr = additive [("<" | "<=" | ">" | ">=" | "==" | "!=") additive]      (no chains)
ExprPtr Parser::parseExpr() {
  ExprPtr lhs = parseAdditive();
  BinOp op;
  if (!compareOp(cur_.kind, op)) return lhs;
  Token opTok = take();
  ExprPtr rhs = parseAdditive();
  if (compareOp(cur_.kind, op))
    failAt(cur_, "comparisons cannot be chained (a < b < c); combine them with * instead");
  return makeBinary(op, opTok, std::move(lhs), std::move(rhs));
}

// additive = multiplicative (("+" | "-") multiplicative)*
ExprPtr Parser::parseAdditive() {
  ExprPtr e = parseMultiplicative();
  while (cur_.kind == Tok::Plus || cur_.kind == Tok::Minus) {
    Token opTok = take();
    e = makeBinary(opTok.kind == Tok::Plus ? BinOp::Add : BinOp::Sub, opTok, std::move(e),
                   parseMultiplicative());
  }
  return e;
}

// multiplicative = unary (("*" | "/" | "@") unary)*
ExprPtr Parser::parseMultiplicative() {
  ExprPtr e = parseUnary();
  while (cur_.kind == Tok::Star || cur_.kind == Tok::Slash || cur_.kind == Tok::At) {
    Token opTok = take();
    if (opTok.kind == Tok::Star && cur_.kind == Tok::Star && cur_.begin == opTok.end)
      failAt(opTok, "`**` is not an operator; a power is written with ^ (x^2)");
    BinOp op = opTok.kind == Tok::Star ? BinOp::Mul : opTok.kind == Tok::Slash ? BinOp::Div : BinOp::MatMul;
    e = makeBinary(op, opTok, std::move(e), parseUnary());
  }
  return e;
}

// unary = "-" unary | power
ExprPtr Parser::parseUnary() {
  DepthGuard guard(depth_, cur_);
  if (cur_.kind != Tok::Minus) return parsePower();
  Token opTok = take();
  ExprPtr x = parseUnary();
  auto e = std::make_unique<Expr>();
  e->kind = Expr::Neg;
  e->loc = opTok.loc;
  e->start = opTok.loc;
  e->begin = opTok.begin;
  e->end = x->end;
  e->height = x->height + 1;
  if (e->height > kMaxExprDepth)
    failAt(opTok, fmt::format("expression nested too deeply (more than {} levels)", kMaxExprDepth));
  e->args.push_back(std::move(x));
  return e;
}

// power = primary ["^" unary]          (right-associative: the exponent may hold another ^)
ExprPtr Parser::parsePower() {
  ExprPtr base = parsePrimary();
  // Nothing in the grammar follows a primary with '[': it is NumPy's indexing.
  if (cur_.kind == Tok::LBracket)
    failAt(cur_, "there is no indexing (`z[...]`): compute with whole tensors (reductions, reshape, where, "
                 "onehot)");
  if (cur_.kind != Tok::Caret) return base;
  Token opTok = take();
  ExprPtr exponent = parseUnary();
  return makeBinary(BinOp::Pow, opTok, std::move(base), std::move(exponent));
}

// primary = NUMBER | "true" | "false" | NAME | NAME "(" args ")" | "(" expr ")"
//         | "[" [expr ("," expr)*] "]"
ExprPtr Parser::parsePrimary() {
  switch (cur_.kind) {
  case Tok::Number: {
    ExprPtr e = leaf(Expr::Number, cur_);
    e->number = take().number;
    return e;
  }
  case Tok::KwTrue:
  case Tok::KwFalse: {
    ExprPtr e = leaf(Expr::Bool, cur_);
    e->number = take().kind == Tok::KwTrue ? 1 : 0;
    return e;
  }
  case Tok::Ident: {
    bool call = peek2().kind == Tok::LParen;
    ExprPtr e = leaf(call ? Expr::Call : Expr::Name, cur_);
    e->name = take().text;
    if (call) parseCallArgs(*e);
    return e;
  }
  case Tok::LParen: {
    Token open = take();
    std::string keyword = std::move(argKeyword_);
    argKeyword_.clear();
    ExprPtr e = parseExpr();
    if (cur_.kind == Tok::Comma) {
      // A Python tuple: name the spelling torch users reach for.
      if (keyword == "betas")
        failAt(cur_, "adam's betas are two arguments: `betas = (b1, b2)` is written `beta1 = b1, beta2 = b2`");
      if (keyword == "axis")
        failAt(cur_, "a reduction takes one axis (or all, without `axis`): reduce one axis at a time, "
                     "e.g. sum(sum(x, axis = 2), axis = 1)");
      failAt(cur_, "expected ')', found ','; there are no tuples, (a, b) is not a value");
    }
    Token close = expectClose(Tok::RParen, "')'", open);
    e->start = open.loc;
    e->begin = open.begin;
    e->end = close.end;
    return e;
  }
  case Tok::LBracket: {
    ExprPtr e = leaf(Expr::List, cur_);
    Token open = take();
    int h = 0;
    if (cur_.kind != Tok::RBracket) {
      for (;;) {
        e->args.push_back(parseExpr());
        h = std::max(h, e->args.back()->height);
        if (e->args.size() > 256) throw UserError(e->args.back()->start, "too many elements in a list (more than 256)");
        if (cur_.kind != Tok::Comma) break;
        take();
      }
    }
    e->end = expectClose(Tok::RBracket, "',' or ']'", open).end;
    e->height = h + 1;
    if (e->height > kMaxExprDepth)
      failAt(cur_, fmt::format("expression nested too deeply (more than {} levels)", kMaxExprDepth));
    return e;
  }
  default:
    failAt(cur_, fmt::format("expected an expression, found {}", describe(cur_)));
  }
}

// args = [arg ("," arg)*]      arg = [NAME "="] expr
void Parser::parseCallArgs(Expr &call) {
  Token open = expect(Tok::LParen, "'('");
  int h = 0;
  if (cur_.kind != Tok::RParen) {
    for (;;) {
      std::string kw;
      Loc kwLoc;
      // A keyword spelled as an argument name (`dim = 1`) is still read as one, so that the
      // error says "unknown keyword argument".
      bool nameLike = cur_.kind == Tok::Ident || (cur_.kind >= Tok::KwModel && cur_.kind <= Tok::KwFalse);
      if (nameLike && peek2().kind == Tok::Assign) {
        kwLoc = cur_.loc;
        kw = take().text;
        take();
      }
      std::string outer = std::exchange(argKeyword_, kw);
      call.args.push_back(parseExpr());
      argKeyword_ = std::move(outer);
      call.argNames.push_back(std::move(kw));
      call.argNameLocs.push_back(kwLoc);
      h = std::max(h, call.args.back()->height);
      if (call.args.size() > 256) throw UserError(call.args.back()->start, "too many arguments (more than 256)");
      if (cur_.kind != Tok::Comma) break;
      take();
    }
  }
  call.end = expectClose(Tok::RParen, "',' or ')'", open).end;
  call.height = h + 1;
  if (call.height > kMaxExprDepth)
    failAt(cur_, fmt::format("expression nested too deeply (more than {} levels)", kMaxExprDepth));
}

std::unique_ptr<ModuleAST> parseModelFile(SourceManager &sm, const std::string &path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fileError(path, "is a directory, not a model file");
  int file = sm.addFile(path);
  return Parser(sm, file).parseModule();
}

}  // namespace gradc
