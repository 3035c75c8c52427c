// Fusion: which values get their own loop nest, and which are computed inside the loop of
// the value that uses them.
//
// Every live non-leaf value gets a role. A Kernel value is materialised: one loop nest (an
// element-wise loop, a reduction, a row normalisation or a matrix product) writes it to a
// buffer. An Inline value is never stored: its expression is evaluated, index by index,
// inside the loop of its user, so a chain of element-wise ops (bias add, activation, the
// optimiser update) becomes one loop. An Alias (a reshape) shares its operand's buffer.
//
// The rule is deliberately simple: a value is inlined when it is element-wise (or a
// transpose, broadcast, onehot) and has exactly one user that walks the same number of
// elements; scalar constants and dim sizes are always inlined. Reductions, rows, argmax and
// matrix products are kernels; so are results, values with several users (computing them
// once is cheaper than twice), and operands that must be a buffer (matmul, reshape).
// A matmul operand that is a transpose reads the transpose's operand with the flag flipped.
#pragma once

#include <vector>

#include "ir/IR.h"

namespace gradc::codegen {

enum class Role : uint8_t { Dead, Leaf, Inline, Alias, Kernel };

struct FusionPlan {
  std::vector<Role> role;                    // per node
  std::vector<ir::ValueId> root;             // per node: the value whose buffer holds it
  std::vector<ir::ValueId> kernels;          // Kernel values, in execution (node) order
  std::vector<std::vector<ir::ValueId>> reads;  // per kernel: the roots whose buffers it reads
};

FusionPlan planFusion(const ir::Function &f);

/// A matmul operand after looking through a transpose: the value read and whether the
/// operand's transpose flag flips.
struct MatMulOperand {
  ir::ValueId value;
  bool flipped;
};
MatMulOperand matmulOperand(const ir::Function &f, ir::ValueId operand);

/// The roots whose buffers the loop computing `v` reads (inlined operands are walked).
std::vector<ir::ValueId> kernelReads(const ir::Function &f, const FusionPlan &p, ir::ValueId v);

}  // namespace gradc::codegen
