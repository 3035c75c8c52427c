// The front end's entry point: model file -> (AST ->) checked Model with its forward IR.
//
//   Lexer.h    characters -> tokens (each with file:line:col)
//   AST.h      the syntax tree of a model file, and its printer (`inspect --stage ast`)
//   Parser.h   tokens -> AST (an explicit stack where nesting is deep: no unbounded
//              recursion on the C++ stack)
//   Sema.h     names, defs (inlined), shapes, dtypes -> Model + forward ir::Function
#pragma once

#include <memory>
#include <string>

#include "ir/Model.h"

namespace gradc {

struct ModuleAST;  // AST.h

/// Reads and parses a model file; throws UserError on the first syntax error.
std::unique_ptr<ModuleAST> parseModelFile(SourceManager &sm, const std::string &path);
/// The AST as text (`gradc inspect --stage ast`), text or Graphviz.
std::string printAST(const ModuleAST &m, const SourceManager &sm, bool dot);
/// Resolves names, inlines defs, checks shapes and builds the forward IR. Warnings (e.g. a
/// param that does not reach the loss) go to stderr. Throws UserError on the first error.
Model buildModel(const ModuleAST &m, SourceManager &sm);
/// parseModelFile + buildModel.
Model loadModel(SourceManager &sm, const std::string &path);

}  // namespace gradc
