// Simplification of IR functions: what makes the gradient readable and fast.
//
// simplify() repeats, until nothing changes: constant folding, algebraic identities
// (x*1, x+0, 0*x, --x, transpose(transpose(x)), reshape of reshape, ...), folding
// transposes into matmul flags, numerically stable rewrites (log(softmax(x)) ->
// log_softmax(x), log(sigmoid(x)) -> -softplus(-x), log(sum(exp(x))) -> logsumexp(x), ...),
// common-subexpression elimination (across forward and backward) and dead-code
// elimination (only what the results need survives; every argument stays). Surviving nodes
// keep their place and source name; the result is verified.
#pragma once

#include "ir/IR.h"

namespace gradc::passes {

ir::Function simplify(const ir::Function &f);

/// One round of the pieces above, for tests that look at a single step.
ir::Function rewriteOnce(const ir::Function &f, bool *changed = nullptr);
ir::Function eliminateCommonSubexpressions(const ir::Function &f, bool *changed = nullptr);
ir::Function eliminateDeadCode(const ir::Function &f, bool *changed = nullptr);

}  // namespace gradc::passes
