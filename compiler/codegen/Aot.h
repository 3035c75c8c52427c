// Ahead-of-time compilation of a whole model into one module: several ir::Functions (the
// step, eval and predict programs), each lowered and optimised exactly as the JIT does it
// (lowerToLLVM + optimizeModule, so the machine code computes the same values), linked into
// one module, plus an `init(state, seed)` function that zeroes the state buffer and calls the
// runtime library's initialisers (gradc_init_param_f32/_f64 of runtime/gradc_runtime.h) for
// each param with its constant shape and arguments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codegen/Codegen.h"

namespace gradc::codegen {

/// One param's initialiser: where it lives in the state buffer and how it is drawn.
struct AotParamInit {
  int64_t offset = 0;          // bytes into the state buffer
  int kind = 0;                // rt::Init
  std::vector<double> args;
  std::vector<int64_t> shape;
  int index = 0;               // declaration index = its random stream
};

struct AotUnit {
  std::string name;                          // the module's name
  std::vector<const ir::Function *> functions;  // each under entrySymbol(f, options)
  std::string initSymbol;                    // empty: no init function
  int64_t stateBytes = 0;
  std::vector<AotParamInit> inits;
};

enum class AotEmit { Object, Assembly, LLVM };

/// The unit's object file, assembly or LLVM IR, as bytes. UserError for an unknown target.
std::string emitAot(const AotUnit &u, const CodegenOptions &o, AotEmit kind);

}  // namespace gradc::codegen
