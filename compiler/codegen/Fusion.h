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
// elements; scalar constants and dim sizes are always inlined. A chain of inlined values is
// cut 128 deep (the value there becomes a kernel), so evaluating one nests boundedly. Reductions, rows, argmax and
// matrix products are kernels; so are results, values with several users (computing them
// once is cheaper than twice), and operands that must be a buffer (matmul, reshape).
// A matmul operand that is a transpose reads the transpose's operand with the flag flipped.
//
// Loop groups: an element-wise kernel whose only reader is a later element-wise kernel of its
// shape, reading it at the same index, is computed in that kernel's loop (its host), just
// before the host's own value: the Adam update's new first and second moments and the new
// weight (three results) are one loop over the weight. A joined kernel is stored only when it
// is a result; otherwise (a value with two users in one expression) it lives in a register
// for one index. Joining only ever moves a kernel later, past kernels that do not read it.
//
// Matmul epilogues: a matmul whose readers are all in one element-wise kernel's group, each
// reading it at the same index, becomes Fused: it is computed tile by tile inside that loop
// (bias + activation after x @ W, the activation's derivative after d @ W^T, the update
// W - lr * (x^T @ d), the whole Adam update of W), and the loop reads the matmul's operands
// instead.
#pragma once

#include <vector>

#include "ir/IR.h"

namespace gradc::codegen {

enum class Role : uint8_t { Dead, Leaf, Inline, Alias, Kernel, Fused };

struct FusionPlan {
  std::vector<Role> role;                    // per node
  std::vector<ir::ValueId> root;             // per node: the value whose buffer holds it
  std::vector<ir::ValueId> kernels;          // Kernel values, in node order
  std::vector<std::vector<ir::ValueId>> reads;  // per kernel: the roots whose buffers it reads
  std::vector<ir::ValueId> epilogueOf;       // per kernel: the Fused matmul its loop computes, or kNoValue
  std::vector<size_t> host;                  // per kernel: the kernel whose loop computes it (itself
                                             // unless it joined a later kernel's group)
  std::vector<bool> inLoopOnly;              // per kernel: joined a group and is no result, so it
                                             // is never stored: the loop keeps it in a register
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

/// True when the loop computing `v` reads `target` only at the index it writes: every path
/// from v to a read of target runs through element-wise ops of v's shape, and target has
/// v's shape. A Fused matmul reading target counts as a read at other indices.
bool readsOnlyAtSameIndex(const ir::Function &f, const FusionPlan &p, ir::ValueId v, ir::ValueId target);

}  // namespace gradc::codegen
