// Sema: the checked meaning of a model file. Resolves names, inlines defs, folds constants,
// checks shapes and dtypes, and builds the Model with its forward IR (buildModel in
// Frontend.h is defined in Sema.cpp).
//
// Shape checking is the IR's own: every value is made with ir::Builder, whose shape rules
// throw a UserError at the builder's location; Sema sets that location (and the source
// name) before each node. Errors of binary operators are reported at the operator, prefixed
// with the expression's source text: `x @ W1: [B, 2] @ [3, 8]: inner sizes 2 and 3 differ`.
//
// Lowering of built-ins to IR ops (a contract for the later stages):
//   element-wise built-ins and operators -> the op of the same name (`^` pow, unary - neg,
//   comparisons lt le gt ge eq ne; an int compared with a float is cast first);
//   `@` -> 2-D matmul, vectors reshaped to 1-row/1-column matrices and back;
//   sum mean max min logsumexp -> reduce ops (no axis: all axes); softmax, log_softmax -> row ops;
//   mse(p, t) = square(p - t);
//   bce(p, y) = -(y * maximum(log(q), -100) + (1 - y) * maximum(log(1 - q), -100))
//               + (p - q) * stop_gradient(dp), q = stop_gradient(p): the last term is 0 and
//   gives PyTorch's derivative in p, dp = (q - y) / maximum(q * (1 - q), 1e-12); through q,
//   log(sigmoid(z)) is not rewritten to its stable form, so the values are PyTorch's too;
//   bce_with_logits(z, y) = softplus(z) - z * y;
//   cross_entropy(z, y) = -mean(sum(log_softmax(z, axis=1) * onehot(y, C), axis=1)).
// Choices the core rules leave open (docs/language.md, "Choices where the specification is silent"):
//   - an error of an operator is reported at the operator (`x @ W1` at the `@`), an error of
//     a call at the function's name, a wrong argument at that argument;
//   - normal and uniform default to (0, 1) like torch.nn.init; argmax needs its axis;
//   - `param NAME: TYPE = CONST` is allowed (every element starts at CONST);
//   - a dim name used as a value is its run-time size (`sum(x) / B`);
//   - a def's argument given a constant (or a dim name) by the call is a constant inside the
//     def: it may be an axis, keepdims, a slope, a class count or a reshape dim;
//   - a binding whose expression folds to a constant (numbers, true/false, unary minus,
//     arithmetic, names of such bindings) is a constant wherever one is needed (a dim of a
//     type too), folded once where it is bound; in an expression it is its scalar value as before;
//   - an output may be an int tensor (argmax); a metric is a float scalar and is not named `loss`;
//   - tensors hold at most 2^32 elements (dims at most 2^30) so that sizes cannot overflow.
// Limits: expressions nest at most kMaxExprDepth levels (the parser enforces it), def calls
// nest at most kMaxDefDepth deep, and inlining stops with an error beyond kMaxNodes IR nodes;
// a def called again with the same argument values reuses the first result.
#pragma once

#include <string>
#include <vector>

#include "frontend/AST.h"
#include "frontend/Frontend.h"

namespace gradc {

constexpr int kMaxDefDepth = 64;
constexpr int kMaxNodes = 100000;

/// The names of the built-in functions (docs/language.md, "Expressions"), in a stable order.
const std::vector<std::string> &builtinNames();

}  // namespace gradc
