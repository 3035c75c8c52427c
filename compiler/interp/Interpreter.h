// The reference interpreter of the IR: slow, obviously correct, the oracle.
//
// Every value is a dense row-major tensor of doubles (int tensors hold whole numbers).
// One small function per op, keyed on the op table; the semantics written here are the
// contract of the IR that the code generator must match. In float32 mode every value is
// rounded to float as soon as it is computed, so the interpreter predicts what float32
// code computes up to the rounding inside a single op.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/IR.h"
#include "runtime/Kernel.h"

namespace gradc::interp {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> data;
  bool isInt = false;
};

/// Runs `f` on `args` (one per f.arguments(), in that order) with the symbolic dims bound
/// to `dims` (indexed like f.dimNames). Returns one Tensor per entry of f.results.
std::vector<Tensor> interpret(const ir::Function &f, const std::vector<Tensor> &args,
                              const std::vector<int64_t> &dims, bool roundToF32);

/// The interpreter behind the calling convention of runtime/Kernel.h, so the runtime can
/// run it exactly like compiled code. `f64`: float buffers hold double (else float).
rt::Kernel interpreterKernel(const ir::Function &f, bool f64);

}  // namespace gradc::interp
