// The plain C header `gradc compile --header` writes (contract in docs/aot.md), and the
// layout of the state buffer it describes. Everything in it is read off the model and the
// signatures of the compiled functions (ir::signatureOf), so header and object agree.
#pragma once

#include <string>
#include <vector>

#include "ir/Model.h"
#include "runtime/Kernel.h"

namespace gradc::driver {

/// One tensor of the contiguous state buffer: params (declaration order), then the
/// step's optimiser states (slot order), each at a 64-byte aligned offset.
struct StateEntry {
  std::string name;
  rt::SlotKind kind = rt::SlotKind::Param;
  std::vector<int64_t> shape;
  int64_t offset = 0, bytes = 0;
  int paramIndex = -1;  // declaration index of a param
};

struct StateLayout {
  std::vector<StateEntry> entries;
  int64_t bytes = 0;
};

StateLayout stateLayout(const Model &m, const rt::Signature &step, bool f64);

/// A compiled function as the header describes it.
struct HeaderFunction {
  std::string role;    // "step", "eval", "predict"
  std::string symbol;  // its entry symbol; empty when the model has no such function
  rt::Signature sig;
};

struct HeaderInfo {
  std::string modelPath, hash, triple, cpu, initSymbol;
  bool f64 = false;
  double lr = 0.01;
  int threads = 1;  // --threads: above 1 the step calls libgradc_runtime's thread pool
};

/// The text of the header.
std::string cHeader(const Model &m, const HeaderInfo &info, const StateLayout &state,
                    const std::vector<HeaderFunction> &fns);

/// The C type block of runtime/gradc_runtime.h (between its begin/end markers), copied at
/// build time (ModelTypes.inc, written by CMakeLists.txt).
extern const char *const kCModelTypes;

}  // namespace gradc::driver
