// The parser: tokens -> ModuleAST (the grammar of docs/language.md, "Lexical rules" to
// "Expressions", written above each function in Parser.cpp).
//
// Recursive descent with precedence levels; `^` is right-associative and binds tighter than
// unary minus (`-a^2` is `-(a^2)`, `a^-1` is `a^(-1)`); comparisons do not chain. Nesting
// deeper than kMaxExprDepth (parentheses, unary minus, long operator chains) is an error,
// so the C++ stack stays bounded whatever the input.
#pragma once

#include <memory>

#include "frontend/AST.h"
#include "frontend/Lexer.h"

namespace gradc {

class Parser {
public:
  Parser(const SourceManager &sm, int file);
  /// Parses the whole file, on a stack of its own (a parenthesis recurses: support/LargeStack.h).
  std::unique_ptr<ModuleAST> parseModule();

private:
  std::unique_ptr<ModuleAST> parseModuleHere();
  Stmt parseStatement();
  void parseType(TypeAST &t);
  ExprPtr parseExpr();
  ExprPtr parseAdditive();
  ExprPtr parseMultiplicative();
  ExprPtr parseUnary();
  ExprPtr parsePower();
  ExprPtr parsePrimary();
  void parseCallArgs(Expr &call);

  const Token &peek2();
  Token take();
  Token expect(Tok kind, const char *what);
  Token expectClose(Tok kind, const char *what, const Token &open);
  [[noreturn]] void failAt(const Token &t, const std::string &msg);
  ExprPtr makeBinary(BinOp op, const Token &opTok, ExprPtr a, ExprPtr b);

  int file_;
  Lexer lex_;
  Token cur_;
  Token next_;
  bool hasNext_ = false;
  int depth_ = 0;
  std::string argKeyword_;  // the keyword of the call argument being parsed (`betas`), if any
};

}  // namespace gradc
