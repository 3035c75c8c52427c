// The syntax tree of a model file.
//
// A ModuleAST is the list of statements (docs/language.md, "Statements") in file order;
// expressions are small trees of Expr. Every node carries its Loc (file:line:col) and the byte
// span of its source text, so that messages can quote the expression
// (`x @ W1: [B, 2] @ [3, 8]: ...`). The parser bounds the height of every expression tree
// (kMaxExprDepth), so recursive walks (sema, printers, the destructor) use a bounded amount of
// C++ stack; they run on a stack of their own (support/LargeStack.h), where 4,096 levels fit
// also under the sanitizers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "support/Diagnostics.h"

namespace gradc {

/// Expressions deeper than this are rejected by the parser ("expression nested too deeply").
constexpr int kMaxExprDepth = 4096;

enum class BinOp { Add, Sub, Mul, Div, MatMul, Pow, Lt, Le, Gt, Ge, Eq, Ne };
const char *binOpSpelling(BinOp op);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum Kind { Number, Bool, Name, Neg, Binary, Call, List } kind = Number;
  // The place of the node: a literal's or name's first character, a call's function name,
  // the operator of a unary or binary expression.
  Loc loc;
  Loc start;                  // the expression's first character
  size_t begin = 0, end = 0;  // byte span of the whole expression in the file
  int height = 1;             // 1 for a leaf

  double number = 0;   // Number; Bool (0 or 1)
  std::string name;    // Name; Call: the function
  BinOp op = BinOp::Add;
  std::vector<ExprPtr> args;          // Neg: 1, Binary: 2, Call and List: the elements
  std::vector<std::string> argNames;  // Call: keyword of each argument ("" if positional)
  std::vector<Loc> argNameLocs;       // Call: place of each keyword
};

/// One dim of a type: a number or a `dim` name.
struct DimAST {
  bool isName = false;
  std::string name;   // the dim name, or the number as written
  double number = 0;
  bool whole = true;  // a number written as a whole number (`3`, not `3.0` or `3e0`)
  Loc loc;
};

struct TypeAST {
  bool isInt = false;
  std::vector<DimAST> dims;
  Loc loc;
};

struct Stmt {
  enum Kind { Model, Dim, Input, Param, Def, Bind, Output, Metric, Minimize } kind = Bind;
  Loc loc;                        // the keyword (or the name of a binding)
  std::string name;               // model, input, param, def, binding, output, metric name
  Loc nameLoc;
  std::vector<std::string> names; // Dim: the dims; Def: the arguments
  std::vector<Loc> nameLocs;
  bool hasType = false;
  TypeAST type;                   // Input; Param (when hasType)
  ExprPtr expr;                   // Param: initialiser or constant; Def body; Bind/Output/Metric value;
                                  // Minimize: the loss
  ExprPtr optimizer;              // Minimize: the `with` clause (a Name or Call), may be null
};

struct ModuleAST {
  int file = -1;
  std::vector<Stmt> stmts;
};

/// The source text of an expression, shortened to at most `max` characters.
std::string exprText(const SourceManager &sm, int file, const Expr &e, size_t max = 60);

}  // namespace gradc
