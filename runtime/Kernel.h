// The calling convention of every compiled function (JIT or ahead of time), and of the
// interpreter when it stands in for one.
//
//   void fn(void *const *args, const int64_t *dims, void *work);
//
// args   one pointer per slot of the Signature, in order: first the function's arguments
//        (inputs, params, optimiser states, hyper-parameters, in IR order), then its results
//        that are not written in place (loss, metrics, outputs, gradients). An updated param
//        or optimiser state is written in place into its argument's buffer.
//        Float buffers hold float (f32 build) or double (f64 build); int inputs hold int32.
//        Tensors are dense and row-major; a scalar is a pointer to one element.
// dims   the values of the symbolic dims, in Signature::dimNames order; only the batch dim (the
//        first dim of the inputs, not always dims[0]: `dim T, B`) is read.
// work   scratch memory of at least workBytes(dims) bytes, 64-byte aligned; the function
//        allocates nothing.
//
// A kernel compiled in check mode (CodegenOptions::checkNumerics) has the same convention and
// also writes a flag into `work`: one float (double in an f64 build) at byte numericsFlag, 0
// when every value the step computed was finite, NaN when one was NaN or infinite.
//
// This header is plain data (no LLVM, no IR) so that the runtime and programs that embed a
// compiled model depend only on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace gradc::rt {

using KernelFn = void (*)(void *const *args, const int64_t *dims, void *work);

enum class SlotKind { Input, Param, State, Hyper, Loss, Metric, Output, Grad };

struct Slot {
  std::string name;
  SlotKind kind;
  bool isInt = false;          // int32 (labels) instead of float
  std::vector<int64_t> shape;  // -1 - i where the dim is symbolic dim i (e.g. -1 for B)
  int64_t elements(const int64_t *dims) const;  // with symbolic dims bound
};

struct Signature {
  std::vector<std::string> dimNames;
  std::vector<Slot> slots;
  int find(SlotKind kind, const std::string &name) const;  // index or -1
};

/// A callable compiled function with its signature.
struct Kernel {
  Signature sig;
  std::function<void(void *const *args, const int64_t *dims, void *work)> call;
  std::function<size_t(const int64_t *dims)> workBytes;
  bool f64 = false;  // float buffers hold double
  int64_t numericsFlag = -1;  // check mode: the flag's byte offset in `work`; else -1
};

}  // namespace gradc::rt
