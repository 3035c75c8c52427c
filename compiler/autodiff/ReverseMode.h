// Reverse-mode automatic differentiation on the IR.
//
// differentiate() turns the forward function of a model into its gradient function: the
// same arguments (inputs, params), and as results the loss, the metrics unchanged and one
// `grad NAME` per param. It walks from the loss back to the params and applies one
// vector-Jacobian rule per op (GradRules.cpp). The gradient is ordinary IR: it can be
// printed, simplified, interpreted, compiled, and differentiated again.
#pragma once

#include "ir/IR.h"

namespace gradc::autodiff {

/// The gradient function of `forward` (which must have a Loss result).
ir::Function differentiate(const ir::Function &forward);

/// How reverse mode treats an op.
enum class GradKind {
  Leaf,           // an argument or constant: gradients end here
  Differentiable, // has a vector-Jacobian rule
  NoGradient,     // stops gradients (comparisons, argmax, onehot, cast, stop_gradient, sign)
  Missing,        // a non-leaf op that nobody wrote a rule for: a bug
};
GradKind gradKind(ir::Op op);

}  // namespace gradc::autodiff
