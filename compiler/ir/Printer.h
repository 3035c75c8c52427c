// The text and Graphviz forms of the IR.
//
// The text form is one line per value: its name, op, operands, attributes, type, and a
// comment with the model place and source name it came from:
//
//   %h = tanh %1 : f32[B,8]                          # xor.grad:13 h
//
// Scalar constants are printed in place where they are used (`mul %3, 0.5`). The form is
// stable (value names come from source names or value ids, never from addresses), so golden
// tests run `gradc inspect` through FileCheck.
#pragma once

#include <string>
#include <vector>

#include "ir/IR.h"

namespace gradc::ir {

/// The text form. `sm` (may be null) turns locations into `file:line` comments.
std::string printFunction(const Function &f, const SourceManager *sm);
/// The Graphviz form (`dot -Tsvg`).
std::string printDot(const Function &f, const SourceManager *sm);
/// A value's place in the model as the text form comments it: `file:line` (escaped) and the
/// source name it came from, or "".
std::string placeComment(const Node &n, const SourceManager *sm);
/// A number the way the printer writes it: shortest form that reads back the same.
std::string formatNumber(double v);
/// The name the text form gives each value (without the `%`), indexed by ValueId.
std::vector<std::string> valueNames(const Function &f);
/// An op's attributes as the text form writes them after its operands (` axes=[1] keepdims`),
/// or "".
std::string opAttributes(const Node &n);

}  // namespace gradc::ir
