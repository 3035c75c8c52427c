// The AST printer behind `gradc inspect --stage ast`: an indented tree (text) or a Graphviz
// graph (dot). Every node shows its line:col. Trees are at most kMaxExprDepth high (the
// parser's limit), so the recursion here is bounded.
#include <string>

#include "frontend/AST.h"
#include "frontend/Frontend.h"
#include "ir/Printer.h"
#include "support/LargeStack.h"

namespace gradc {

namespace {

std::string at(Loc l) { return fmt::format("@{}:{}", l.line, l.col); }

std::string typeText(const TypeAST &t) {
  std::string s = t.isInt ? "int[" : "[";
  for (size_t i = 0; i < t.dims.size(); ++i) {
    if (i) s += ", ";
    s += t.dims[i].isName ? t.dims[i].name : ir::formatNumber(t.dims[i].number);
  }
  return s + "]";
}

std::string exprLabel(const Expr &e) {
  switch (e.kind) {
  case Expr::Number: return "Number " + ir::formatNumber(e.number);
  case Expr::Bool: return e.number != 0 ? "Bool true" : "Bool false";
  case Expr::Name: return "Name " + e.name;
  case Expr::Neg: return "Neg";
  case Expr::Binary: return std::string("Binary ") + binOpSpelling(e.op);
  case Expr::Call: return "Call " + e.name;
  case Expr::List: return "List";
  }
  return "?";
}

std::string stmtLabel(const Stmt &s) {
  std::string names;
  for (size_t i = 0; i < s.names.size(); ++i) names += (i ? ", " : "") + s.names[i];
  switch (s.kind) {
  case Stmt::Model: return "Model " + s.name;
  case Stmt::Dim: return "Dim " + names;
  case Stmt::Input: return "Input " + s.name + ": " + typeText(s.type);
  case Stmt::Param: return "Param " + s.name + (s.hasType ? ": " + typeText(s.type) : "");
  case Stmt::Def: return "Def " + s.name + "(" + names + ")";
  case Stmt::Bind: return "Bind " + s.name;
  case Stmt::Output: return "Output " + s.name;
  case Stmt::Metric: return "Metric " + s.name;
  case Stmt::Minimize: return "Minimize";
  }
  return "?";
}

void printExpr(const Expr &e, int indent, const std::string &keyword, std::string &out) {
  out += std::string(static_cast<size_t>(indent) * 2, ' ');
  if (!keyword.empty()) out += keyword + " = ";
  out += exprLabel(e) + "  " + at(e.loc) + "\n";
  for (size_t i = 0; i < e.args.size(); ++i)
    printExpr(*e.args[i], indent + 1, i < e.argNames.size() ? e.argNames[i] : "", out);
}

std::string esc(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

int dotExpr(const Expr &e, const std::string &edgeLabel, int parent, int &next, std::string &out) {
  int id = next++;
  out += fmt::format("  n{} [label=\"{}\\n{}\"];\n", id, esc(exprLabel(e)), at(e.loc));
  if (parent >= 0)
    out += fmt::format("  n{} -> n{}{};\n", parent, id,
                       edgeLabel.empty() ? "" : fmt::format(" [label=\"{}\"]", esc(edgeLabel)));
  for (size_t i = 0; i < e.args.size(); ++i)
    dotExpr(*e.args[i], i < e.argNames.size() ? e.argNames[i] : "", id, next, out);
  return id;
}

}  // namespace

static std::string printASTHere(const ModuleAST &m, const SourceManager &sm, bool dot) {
  std::string out;
  if (dot) {
    out = fmt::format("digraph \"{}\" {{\n  node [shape=box, fontname=\"monospace\"];\n", esc(sm.name(m.file)));
    out += "  module [label=\"Module\"];\n";
    int next = 0;
    for (const Stmt &s : m.stmts) {
      int id = next++;
      out += fmt::format("  n{} [shape=ellipse, label=\"{}\\n{}\"];\n  module -> n{};\n", id, esc(stmtLabel(s)),
                         at(s.loc), id);
      if (s.expr) dotExpr(*s.expr, "", id, next, out);
      if (s.optimizer) dotExpr(*s.optimizer, "with", id, next, out);
    }
    return out + "}\n";
  }
  out = "Module " + escapeText(sm.name(m.file)) + "\n";
  for (const Stmt &s : m.stmts) {
    out += "  " + stmtLabel(s) + "  " + at(s.loc) + "\n";
    if (s.expr) printExpr(*s.expr, 2, "", out);
    if (s.optimizer) printExpr(*s.optimizer, 2, "with", out);
  }
  return out;
}

// On a stack of its own: printing recurses as deep as the expressions nest.
std::string printAST(const ModuleAST &m, const SourceManager &sm, bool dot) {
  return onLargeStack([&] { return printASTHere(m, sm, dot); });
}

}  // namespace gradc
