// The vector-Jacobian rules of reverse mode, one per differentiable op (GradRules.cpp).
//
// A rule gets the forward value y = op(x0, x1, ...) and its adjoint g = dL/dy (same shape
// as y) and returns the contribution to dL/dxi for one operand i. For element-wise ops the
// contribution may have the broadcast shape of y: the driver (ReverseMode.cpp) sums it back
// to the operand's shape and adds up contributions of values used more than once.
#pragma once

#include "autodiff/ReverseMode.h"
#include "ir/Builder.h"

namespace gradc::autodiff {

struct RuleArgs {
  ir::Builder &b;           // builds the gradient function
  const ir::Function &fwd;  // the forward function (its ids are the same in both)
  const ir::Node &node;     // the forward node of y
  ir::ValueId y;   // the forward value
  ir::ValueId g;   // dL/dy
  ir::ValueId x(int i) const { return node.operands[static_cast<size_t>(i)]; }
  const ir::Node &operand(int i) const { return fwd.node(x(i)); }
};

using GradRule = ir::ValueId (*)(const RuleArgs &r, int i);

/// The rule of `op`, or nullptr when the op has none (see gradKind).
GradRule gradRule(ir::Op op);

}  // namespace gradc::autodiff
